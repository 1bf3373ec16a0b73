/*
 * DEVICE_GET_INFO, DEVICE_GET_REGION_INFO (with capabilities),
 * DEVICE_GET_REGION_IO_FDS, DEVICE_GET_IRQ_INFO, DEVICE_SET_IRQS.
 */
#include "proto/proto.h"

#include <string.h>

#define CAP_HDR 8u
#define IO_FDS_HEAD 16u
#define IRQ_SET_HEAD 20u

/* ---- device info -------------------------------------------------------------- */

int ufio_device_info_decode(const void *payload, size_t len, struct ufio_device_info *i)
{
    struct ufio_rd r = ufio_rd_init(payload, len);
    if (ufio_rd_u32(&r, &i->argsz) || ufio_rd_u32(&r, &i->flags) || ufio_rd_u32(&r, &i->num_regions) ||
        ufio_rd_u32(&r, &i->num_irqs))
        return -EINVAL;
    return i->argsz < 16 ? -EINVAL : 0;
}

ssize_t ufio_device_info_encode(const struct ufio_device_info *i, void *buf, size_t cap)
{
    struct ufio_wr w = ufio_wr_init(buf, cap);
    ufio_wr_u32(&w, i->argsz);
    ufio_wr_u32(&w, i->flags);
    ufio_wr_u32(&w, i->num_regions);
    ufio_wr_u32(&w, i->num_irqs);
    return w.err ? w.err : (ssize_t)w.off;
}

/* ---- region info ------------------------------------------------------------------ */

int ufio_region_info_req_decode(const void *payload, size_t len, uint32_t *argsz, uint32_t *index)
{
    struct ufio_rd r = ufio_rd_init(payload, len);
    uint32_t flags;
    if (len < UFIO_REGION_INFO_SIZE || ufio_rd_u32(&r, argsz) || ufio_rd_u32(&r, &flags) || ufio_rd_u32(&r, index))
        return -EINVAL;
    return *argsz < UFIO_REGION_INFO_SIZE ? -EINVAL : 0;
}

ssize_t ufio_region_info_req_encode(uint32_t argsz, uint32_t index, void *buf, size_t cap)
{
    struct ufio_wr w = ufio_wr_init(buf, cap);
    ufio_wr_u32(&w, argsz);
    ufio_wr_u32(&w, 0);
    ufio_wr_u32(&w, index);
    ufio_wr_zero(&w, UFIO_REGION_INFO_SIZE - 12);
    return w.err ? w.err : (ssize_t)w.off;
}

static size_t region_caps_len(const struct ufio_region_info *ri)
{
    size_t n = 0;
    if (ri->nr_areas)
        n += CAP_HDR + 8 + 16u * ri->nr_areas;
    if (ri->has_type)
        n += CAP_HDR + 8;
    return n;
}

/*
 * When the client's argsz is too small for the capabilities, only the fixed
 * part goes back, with argsz = the size needed. cap_offset still says 32:
 * QEMU refuses CAPS with a cap_offset outside [32, argsz], then asks again.
 */
ssize_t ufio_region_info_encode(const struct ufio_region_info *ri, uint32_t client_argsz, void *buf, size_t cap)
{
    if (ri->nr_areas > UFIO_MAX_SPARSE_AREAS)
        return -EINVAL;
    size_t caps = region_caps_len(ri);
    size_t full = UFIO_REGION_INFO_SIZE + caps;
    bool fits = full <= client_argsz;
    uint32_t flags = ri->flags | (caps ? VFIO_REGION_INFO_FLAG_CAPS : 0);
    struct ufio_wr w = ufio_wr_init(buf, cap);
    ufio_wr_u32(&w, (uint32_t)full);
    ufio_wr_u32(&w, flags);
    ufio_wr_u32(&w, ri->index);
    ufio_wr_u32(&w, caps ? UFIO_REGION_INFO_SIZE : 0);
    ufio_wr_u64(&w, ri->size);
    ufio_wr_u64(&w, ri->offset);
    if (caps && fits) {
        size_t off = UFIO_REGION_INFO_SIZE;
        if (ri->nr_areas) {
            size_t len = CAP_HDR + 8 + 16u * ri->nr_areas;
            ufio_wr_u16(&w, VFIO_REGION_INFO_CAP_SPARSE_MMAP);
            ufio_wr_u16(&w, 1);
            ufio_wr_u32(&w, ri->has_type ? (uint32_t)(off + len) : 0);
            ufio_wr_u32(&w, ri->nr_areas);
            ufio_wr_u32(&w, 0);
            for (uint32_t i = 0; i < ri->nr_areas; i++) {
                ufio_wr_u64(&w, ri->areas[i].offset);
                ufio_wr_u64(&w, ri->areas[i].size);
            }
            off += len;
        }
        if (ri->has_type) {
            ufio_wr_u16(&w, VFIO_REGION_INFO_CAP_TYPE);
            ufio_wr_u16(&w, 1);
            ufio_wr_u32(&w, 0);
            ufio_wr_u32(&w, ri->type);
            ufio_wr_u32(&w, ri->subtype);
        }
    }
    return w.err ? w.err : (ssize_t)w.off;
}

int ufio_region_info_decode(const void *payload, size_t len, struct ufio_region_info *ri)
{
    struct ufio_rd r = ufio_rd_init(payload, len);
    memset(ri, 0, sizeof(*ri));
    if (ufio_rd_u32(&r, &ri->argsz) || ufio_rd_u32(&r, &ri->flags) || ufio_rd_u32(&r, &ri->index) ||
        ufio_rd_u32(&r, &ri->cap_offset) || ufio_rd_u64(&r, &ri->size) || ufio_rd_u64(&r, &ri->offset))
        return -EINVAL;
    if (ri->argsz < UFIO_REGION_INFO_SIZE || ri->offset + ri->size < ri->offset)
        return -EINVAL;
    /* a truncated answer (argsz beyond what came) carries no caps: the caller retries */
    if (!(ri->flags & VFIO_REGION_INFO_FLAG_CAPS) || ri->cap_offset == 0 || ri->argsz > len)
        return 0;
    /* the chain lives inside the structure argsz describes; bytes past it are not ours to read */
    len = ri->argsz;
    /* strictly increasing offsets: no loops, no overlaps */
    uint32_t off = ri->cap_offset, min = UFIO_REGION_INFO_SIZE;
    while (off) {
        if (off < min || off > len)
            return -EINVAL;
        struct ufio_rd c = ufio_rd_init((const uint8_t *)payload + off, len - off);
        uint16_t id, ver;
        uint32_t next;
        if (ufio_rd_u16(&c, &id) || ufio_rd_u16(&c, &ver) || ufio_rd_u32(&c, &next))
            return -EINVAL;
        if (id == VFIO_REGION_INFO_CAP_SPARSE_MMAP) {
            uint32_t n, rsvd;
            if (ufio_rd_u32(&c, &n) || ufio_rd_u32(&c, &rsvd))
                return -EINVAL;
            if (n > UFIO_MAX_SPARSE_AREAS)
                return -E2BIG;
            for (uint32_t i = 0; i < n; i++) {
                if (ufio_rd_u64(&c, &ri->areas[i].offset) || ufio_rd_u64(&c, &ri->areas[i].size))
                    return -EINVAL;
                if (!ufio_range_ok(ri->areas[i].offset, ri->areas[i].size, ri->size))
                    return -EINVAL;
            }
            ri->nr_areas = n;
        } else if (id == VFIO_REGION_INFO_CAP_TYPE) {
            if (ufio_rd_u32(&c, &ri->type) || ufio_rd_u32(&c, &ri->subtype))
                return -EINVAL;
            ri->has_type = true;
        }
        min = off + (uint32_t)c.off;
        if (next && next < min)
            return -EINVAL;
        off = next;
    }
    return 0;
}

/* ---- region io fds ----------------------------------------------------------------- */

int ufio_io_fds_req_decode(const void *payload, size_t len, uint32_t *argsz, uint32_t *index)
{
    struct ufio_rd r = ufio_rd_init(payload, len);
    uint32_t flags, count;
    if (len != IO_FDS_HEAD || ufio_rd_u32(&r, argsz) || ufio_rd_u32(&r, &flags) || ufio_rd_u32(&r, index) ||
        ufio_rd_u32(&r, &count))
        return -EINVAL;
    return (*argsz < IO_FDS_HEAD || flags || count) ? -EINVAL : 0;
}

ssize_t ufio_io_fds_req_encode(uint32_t argsz, uint32_t index, void *buf, size_t cap)
{
    struct ufio_wr w = ufio_wr_init(buf, cap);
    ufio_wr_u32(&w, argsz);
    ufio_wr_u32(&w, 0);
    ufio_wr_u32(&w, index);
    ufio_wr_u32(&w, 0);
    return w.err ? w.err : (ssize_t)w.off;
}

ssize_t ufio_io_fds_encode(const struct ufio_io_fds *f, uint32_t client_argsz, void *buf, size_t cap)
{
    if (f->count > UFIO_MAX_IO_FDS)
        return -EINVAL;
    uint32_t full = IO_FDS_HEAD + UFIO_IO_FD_ENTRY_SIZE * f->count;
    struct ufio_wr w = ufio_wr_init(buf, cap);
    ufio_wr_u32(&w, full);
    ufio_wr_u32(&w, 0);
    ufio_wr_u32(&w, f->index);
    ufio_wr_u32(&w, f->count);
    if (full <= client_argsz) {
        for (uint32_t i = 0; i < f->count; i++) {
            const struct ufio_io_fd_entry *e = &f->e[i];
            ufio_wr_u64(&w, e->offset);
            ufio_wr_u64(&w, e->size);
            ufio_wr_u32(&w, e->fd_index);
            ufio_wr_u32(&w, e->type);
            ufio_wr_u32(&w, e->flags);
            ufio_wr_u32(&w, 0);
            ufio_wr_u64(&w, e->datamatch);
        }
    }
    return w.err ? w.err : (ssize_t)w.off;
}

int ufio_io_fds_decode(const void *payload, size_t len, size_t nfds, struct ufio_io_fds *f)
{
    struct ufio_rd r = ufio_rd_init(payload, len);
    memset(f, 0, sizeof(*f));
    if (ufio_rd_u32(&r, &f->argsz) || ufio_rd_u32(&r, &f->flags) || ufio_rd_u32(&r, &f->index) ||
        ufio_rd_u32(&r, &f->count))
        return -EINVAL;
    if (f->argsz < IO_FDS_HEAD)
        return -EINVAL;
    if (f->count == 0)
        return 0;
    if (f->count > UFIO_MAX_IO_FDS)
        return -E2BIG;
    /*
     * Head only, argsz beyond what came: the client's argsz was too small and
     * it must ask again with f->argsz. The entries are not there, so count
     * goes back as 0 and nobody can use an unchecked entry by mistake.
     */
    if (len == IO_FDS_HEAD && f->argsz > len) {
        f->count = 0;
        return 0;
    }
    /* more than the head means all of it: a partial answer is malformed */
    if (f->argsz > len)
        return -EINVAL;
    /* the entry size comes from argsz and count (implementations differ) */
    uint32_t stride = (f->argsz - IO_FDS_HEAD) / f->count;
    if (stride < UFIO_IO_FD_ENTRY_SIZE || (uint64_t)IO_FDS_HEAD + (uint64_t)stride * f->count > len)
        return -EINVAL;
    for (uint32_t i = 0; i < f->count; i++) {
        struct ufio_rd e = ufio_rd_init((const uint8_t *)payload + IO_FDS_HEAD + (size_t)stride * i, stride);
        struct ufio_io_fd_entry *x = &f->e[i];
        uint32_t pad;
        ufio_rd_u64(&e, &x->offset);
        ufio_rd_u64(&e, &x->size);
        ufio_rd_u32(&e, &x->fd_index);
        ufio_rd_u32(&e, &x->type);
        ufio_rd_u32(&e, &x->flags);
        ufio_rd_u32(&e, &pad);
        ufio_rd_u64(&e, &x->datamatch);
        if (x->fd_index >= nfds || x->type > VFIO_USER_IO_FD_TYPE_IOREGIONFD ||
            x->offset + x->size < x->offset)
            return -EINVAL;
    }
    return 0;
}

/* ---- irq info / set irqs ---------------------------------------------------------- */

int ufio_irq_info_decode(const void *payload, size_t len, struct ufio_irq_info *i)
{
    struct ufio_rd r = ufio_rd_init(payload, len);
    if (ufio_rd_u32(&r, &i->argsz) || ufio_rd_u32(&r, &i->flags) || ufio_rd_u32(&r, &i->index) ||
        ufio_rd_u32(&r, &i->count))
        return -EINVAL;
    return i->argsz < 16 ? -EINVAL : 0;
}

ssize_t ufio_irq_info_encode(const struct ufio_irq_info *i, void *buf, size_t cap)
{
    struct ufio_wr w = ufio_wr_init(buf, cap);
    ufio_wr_u32(&w, i->argsz);
    ufio_wr_u32(&w, i->flags);
    ufio_wr_u32(&w, i->index);
    ufio_wr_u32(&w, i->count);
    return w.err ? w.err : (ssize_t)w.off;
}

static bool one_bit(uint32_t v) { return v && !(v & (v - 1)); }

int ufio_irq_set_decode(const void *payload, size_t len, size_t nfds, struct ufio_irq_set *s)
{
    struct ufio_rd r = ufio_rd_init(payload, len);
    s->bools = NULL;
    if (ufio_rd_u32(&r, &s->argsz) || ufio_rd_u32(&r, &s->flags) || ufio_rd_u32(&r, &s->index) ||
        ufio_rd_u32(&r, &s->start) || ufio_rd_u32(&r, &s->count))
        return -EINVAL;
    uint32_t data = s->flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
    uint32_t action = s->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
    if (s->argsz != len || (s->flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK)) ||
        !one_bit(data) || !one_bit(action) || s->index >= 5)
        return -EINVAL;
    if (s->start + s->count < s->start)
        return -EINVAL;
    /* ERR and REQ only signal: one vector, trigger only */
    if ((s->index == 3 || s->index == 4) && (action != VFIO_IRQ_SET_ACTION_TRIGGER || s->count > 1))
        return -EINVAL;
    if (s->count == 0 &&
        (s->start || data != VFIO_IRQ_SET_DATA_NONE || action != VFIO_IRQ_SET_ACTION_TRIGGER))
        return -EINVAL;
    if (data == VFIO_IRQ_SET_DATA_BOOL) {
        if (len != IRQ_SET_HEAD + (size_t)s->count || nfds)
            return -EINVAL;
        const void *b = NULL;
        ufio_rd_ptr(&r, &b, s->count);
        s->bools = b;
        return 0;
    }
    if (len != IRQ_SET_HEAD)
        return -EINVAL;
    if (data == VFIO_IRQ_SET_DATA_EVENTFD)
        return (nfds == s->count || nfds == 0) ? 0 : -EINVAL;
    return nfds ? -EINVAL : 0;
}

ssize_t ufio_irq_set_encode(const struct ufio_irq_set *s, void *buf, size_t cap)
{
    bool with_bools = (s->flags & VFIO_IRQ_SET_DATA_TYPE_MASK) == VFIO_IRQ_SET_DATA_BOOL;
    struct ufio_wr w = ufio_wr_init(buf, cap);
    ufio_wr_u32(&w, IRQ_SET_HEAD + (with_bools ? s->count : 0));
    ufio_wr_u32(&w, s->flags);
    ufio_wr_u32(&w, s->index);
    ufio_wr_u32(&w, s->start);
    ufio_wr_u32(&w, s->count);
    if (with_bools)
        ufio_wr_bytes(&w, s->bools, s->count);
    return w.err ? w.err : (ssize_t)w.off;
}
