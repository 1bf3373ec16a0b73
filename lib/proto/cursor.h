/*
 * Bounds-checked cursors over untrusted bytes.
 *
 * Every field that comes from a peer is read through a struct ufio_rd: each
 * read checks the bytes remaining and fails with -EINVAL instead of running
 * past the end. Writers (struct ufio_wr) carry a sticky error so a sequence of
 * puts can be checked once at the end.
 *
 * Byte order: vfio-user says "host order" for this revision. All conversion
 * happens in ufio_ld*() / ufio_st*() below, so a transport that crosses hosts
 * can pin the order by changing only these helpers.
 */
#ifndef UFIO_PROTO_CURSOR_H
#define UFIO_PROTO_CURSOR_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t ufio_ld16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t ufio_ld32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t ufio_ld64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline void ufio_st16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void ufio_st32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void ufio_st64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

struct ufio_rd {
    const uint8_t *p;
    size_t len;
    size_t off;
};

static inline struct ufio_rd ufio_rd_init(const void *p, size_t len)
{
    struct ufio_rd r = { .p = p, .len = len, .off = 0 };
    return r;
}

static inline size_t ufio_rd_left(const struct ufio_rd *r) { return r->len - r->off; }

static inline int ufio_rd_u16(struct ufio_rd *r, uint16_t *v)
{
    if (ufio_rd_left(r) < 2) return -EINVAL;
    *v = ufio_ld16(r->p + r->off); r->off += 2; return 0;
}
static inline int ufio_rd_u32(struct ufio_rd *r, uint32_t *v)
{
    if (ufio_rd_left(r) < 4) return -EINVAL;
    *v = ufio_ld32(r->p + r->off); r->off += 4; return 0;
}
static inline int ufio_rd_u64(struct ufio_rd *r, uint64_t *v)
{
    if (ufio_rd_left(r) < 8) return -EINVAL;
    *v = ufio_ld64(r->p + r->off); r->off += 8; return 0;
}
/* Borrow n bytes in place (no copy); *out stays valid as long as the buffer. */
static inline int ufio_rd_ptr(struct ufio_rd *r, const void **out, size_t n)
{
    if (ufio_rd_left(r) < n) return -EINVAL;
    *out = r->p + r->off; r->off += n; return 0;
}
static inline int ufio_rd_bytes(struct ufio_rd *r, void *dst, size_t n)
{
    if (ufio_rd_left(r) < n) return -EINVAL;
    if (n) memcpy(dst, r->p + r->off, n);
    r->off += n; return 0;
}
static inline int ufio_rd_skip(struct ufio_rd *r, size_t n)
{
    if (ufio_rd_left(r) < n) return -EINVAL;
    r->off += n; return 0;
}

struct ufio_wr {
    uint8_t *p;
    size_t cap;
    size_t off;
    int err; /* sticky: first failure, -ENOSPC */
};

static inline struct ufio_wr ufio_wr_init(void *p, size_t cap)
{
    struct ufio_wr w = { .p = p, .cap = cap, .off = 0, .err = 0 };
    return w;
}
static inline bool ufio_wr_room(struct ufio_wr *w, size_t n)
{
    if (w->err) return false;
    if (w->cap - w->off < n) { w->err = -ENOSPC; return false; }
    return true;
}
static inline void ufio_wr_u16(struct ufio_wr *w, uint16_t v) { if (ufio_wr_room(w, 2)) { ufio_st16(w->p + w->off, v); w->off += 2; } }
static inline void ufio_wr_u32(struct ufio_wr *w, uint32_t v) { if (ufio_wr_room(w, 4)) { ufio_st32(w->p + w->off, v); w->off += 4; } }
static inline void ufio_wr_u64(struct ufio_wr *w, uint64_t v) { if (ufio_wr_room(w, 8)) { ufio_st64(w->p + w->off, v); w->off += 8; } }
static inline void ufio_wr_bytes(struct ufio_wr *w, const void *src, size_t n)
{
    if (ufio_wr_room(w, n)) { if (n) memcpy(w->p + w->off, src, n); w->off += n; }
}
static inline void ufio_wr_zero(struct ufio_wr *w, size_t n)
{
    if (ufio_wr_room(w, n)) { memset(w->p + w->off, 0, n); w->off += n; }
}

/* Overflow-safe "does [off, off+len) fit in [0, size)". */
static inline bool ufio_range_ok(uint64_t off, uint64_t len, uint64_t size)
{
    return off <= size && len <= size - off;
}

#endif
