/* REGION_READ, REGION_WRITE, REGION_WRITE_MULTI. */
#include "proto/proto.h"

#include <string.h>

#define ACCESS_HEAD 16u

static int access_head(struct ufio_rd *r, struct ufio_region_access *a)
{
    a->data = NULL;
    if (ufio_rd_u64(r, &a->offset) || ufio_rd_u32(r, &a->region) || ufio_rd_u32(r, &a->count))
        return -EINVAL;
    return 0;
}

int ufio_region_read_req_decode(const void *payload, size_t len, uint64_t max_xfer,
                                struct ufio_region_access *a)
{
    struct ufio_rd r = ufio_rd_init(payload, len);
    if (len != ACCESS_HEAD || access_head(&r, a))
        return -EINVAL;
    return a->count > max_xfer ? -E2BIG : 0;
}

int ufio_region_write_req_decode(const void *payload, size_t len, uint64_t max_xfer,
                                 struct ufio_region_access *a)
{
    struct ufio_rd r = ufio_rd_init(payload, len);
    if (access_head(&r, a))
        return -EINVAL;
    if (a->count > max_xfer)
        return -E2BIG;
    if (ufio_rd_left(&r) != a->count)
        return -EINVAL;
    const void *d = NULL;
    ufio_rd_ptr(&r, &d, a->count);
    a->data = d;
    return 0;
}

int ufio_region_write_head_decode(const void *head, size_t head_len, uint64_t data_len,
                                  uint64_t max_xfer, struct ufio_region_access *a)
{
    struct ufio_rd r = ufio_rd_init(head, head_len);
    if (head_len != ACCESS_HEAD || access_head(&r, a))
        return -EINVAL;
    if (a->count > max_xfer)
        return -E2BIG;
    return a->count == data_len ? 0 : -EINVAL;
}

static bool same(const struct ufio_region_access *a, const struct ufio_region_access *b)
{
    return a->offset == b->offset && a->region == b->region && a->count == b->count;
}

int ufio_region_read_reply_decode(const void *payload, size_t len, const struct ufio_region_access *want,
                                  struct ufio_region_access *a)
{
    struct ufio_rd r = ufio_rd_init(payload, len);
    if (access_head(&r, a) || !same(a, want) || ufio_rd_left(&r) != a->count)
        return -EINVAL;
    const void *d = NULL;
    ufio_rd_ptr(&r, &d, a->count);
    a->data = d;
    return 0;
}

int ufio_region_write_reply_decode(const void *payload, size_t len, const struct ufio_region_access *want)
{
    struct ufio_rd r = ufio_rd_init(payload, len);
    struct ufio_region_access a;
    if (len != ACCESS_HEAD || access_head(&r, &a) || !same(&a, want))
        return -EINVAL;
    return 0;
}

ssize_t ufio_region_access_head_encode(const struct ufio_region_access *a, void *buf, size_t cap)
{
    struct ufio_wr w = ufio_wr_init(buf, cap);
    ufio_wr_u64(&w, a->offset);
    ufio_wr_u32(&w, a->region);
    ufio_wr_u32(&w, a->count);
    return w.err ? w.err : (ssize_t)w.off;
}

int ufio_write_multi_decode(const void *payload, size_t len, uint64_t *wr_cnt,
                            struct ufio_write_multi_entry *e)
{
    struct ufio_rd r = ufio_rd_init(payload, len);
    if (ufio_rd_u64(&r, wr_cnt) || *wr_cnt == 0 || *wr_cnt > UFIO_WRITE_MULTI_MAX ||
        ufio_rd_left(&r) != *wr_cnt * UFIO_WRITE_MULTI_ENTRY)
        return -EINVAL;
    for (uint64_t i = 0; i < *wr_cnt; i++) {
        ufio_rd_u64(&r, &e[i].offset);
        ufio_rd_u32(&r, &e[i].region);
        ufio_rd_u32(&r, &e[i].count);
        ufio_rd_bytes(&r, e[i].data, 8);
        if (e[i].count == 0 || e[i].count > 8)
            return -EINVAL;
    }
    return 0;
}

ssize_t ufio_write_multi_encode(const struct ufio_write_multi_entry *e, uint64_t n, void *buf, size_t cap)
{
    if (n == 0 || n > UFIO_WRITE_MULTI_MAX)
        return -EINVAL;
    struct ufio_wr w = ufio_wr_init(buf, cap);
    ufio_wr_u64(&w, n);
    for (uint64_t i = 0; i < n; i++) {
        ufio_wr_u64(&w, e[i].offset);
        ufio_wr_u32(&w, e[i].region);
        ufio_wr_u32(&w, e[i].count);
        ufio_wr_bytes(&w, e[i].data, 8);
    }
    return w.err ? w.err : (ssize_t)w.off;
}
