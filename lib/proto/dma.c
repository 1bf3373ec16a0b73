/* DMA_MAP, DMA_UNMAP, and the server->client DMA_READ / DMA_WRITE. */
#include "proto/proto.h"

#include <string.h>

#define DMA_MAP_SIZE 32u
#define DMA_UNMAP_SIZE 24u
#define DMA_ACCESS_HEAD 16u

int ufio_dma_map_decode(const void *payload, size_t len, struct ufio_dma_map *m)
{
    struct ufio_rd r = ufio_rd_init(payload, len);
    if (len != DMA_MAP_SIZE || ufio_rd_u32(&r, &m->argsz) || ufio_rd_u32(&r, &m->flags) ||
        ufio_rd_u64(&r, &m->offset) || ufio_rd_u64(&r, &m->addr) || ufio_rd_u64(&r, &m->size))
        return -EINVAL;
    if (m->argsz != DMA_MAP_SIZE ||
        (m->flags & ~(VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE)) ||
        m->size == 0 || m->addr + m->size < m->addr || m->offset + m->size < m->offset)
        return -EINVAL;
    return 0;
}

ssize_t ufio_dma_map_encode(const struct ufio_dma_map *m, void *buf, size_t cap)
{
    struct ufio_wr w = ufio_wr_init(buf, cap);
    ufio_wr_u32(&w, m->argsz);
    ufio_wr_u32(&w, m->flags);
    ufio_wr_u64(&w, m->offset);
    ufio_wr_u64(&w, m->addr);
    ufio_wr_u64(&w, m->size);
    return w.err ? w.err : (ssize_t)w.off;
}

int ufio_dma_unmap_decode(const void *payload, size_t len, struct ufio_dma_unmap *u)
{
    struct ufio_rd r = ufio_rd_init(payload, len);
    if (ufio_rd_u32(&r, &u->argsz) || ufio_rd_u32(&r, &u->flags) || ufio_rd_u64(&r, &u->addr) ||
        ufio_rd_u64(&r, &u->size))
        return -EINVAL;
    /* a v1 dirty-bitmap request carries a bitmap after the 24 bytes: say "not supported", not "malformed" */
    if (u->flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP)
        return (u->flags & ~(VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_ALL)) ? -EINVAL : -ENOTSUP;
    if (len != DMA_UNMAP_SIZE || u->argsz < DMA_UNMAP_SIZE)
        return -EINVAL;
    if (u->flags == VFIO_DMA_UNMAP_FLAG_ALL)
        return (u->addr || u->size) ? -EINVAL : 0;
    if (u->flags || u->size == 0 || u->addr + u->size < u->addr)
        return -EINVAL;
    return 0;
}

ssize_t ufio_dma_unmap_encode(const struct ufio_dma_unmap *u, void *buf, size_t cap)
{
    struct ufio_wr w = ufio_wr_init(buf, cap);
    ufio_wr_u32(&w, u->argsz);
    ufio_wr_u32(&w, u->flags);
    ufio_wr_u64(&w, u->addr);
    ufio_wr_u64(&w, u->size);
    return w.err ? w.err : (ssize_t)w.off;
}

static int dma_head(struct ufio_rd *r, struct ufio_dma_access *a)
{
    a->data = NULL;
    if (ufio_rd_u64(r, &a->addr) || ufio_rd_u64(r, &a->count))
        return -EINVAL;
    if (a->count == 0 || a->addr + a->count < a->addr)
        return -EINVAL;
    return 0;
}

int ufio_dma_read_req_decode(const void *payload, size_t len, uint64_t max_xfer, struct ufio_dma_access *a)
{
    struct ufio_rd r = ufio_rd_init(payload, len);
    if (len != DMA_ACCESS_HEAD || dma_head(&r, a))
        return -EINVAL;
    return a->count > max_xfer ? -E2BIG : 0;
}

int ufio_dma_write_req_decode(const void *payload, size_t len, uint64_t max_xfer, struct ufio_dma_access *a)
{
    struct ufio_rd r = ufio_rd_init(payload, len);
    if (dma_head(&r, a))
        return -EINVAL;
    if (a->count > max_xfer)
        return -E2BIG;
    if (ufio_rd_left(&r) != a->count)
        return -EINVAL;
    const void *d = NULL;
    ufio_rd_ptr(&r, &d, (size_t)a->count);
    a->data = d;
    return 0;
}

int ufio_dma_read_reply_decode(const void *payload, size_t len, const struct ufio_dma_access *want,
                               struct ufio_dma_access *a)
{
    struct ufio_rd r = ufio_rd_init(payload, len);
    if (dma_head(&r, a) || a->addr != want->addr || a->count != want->count || ufio_rd_left(&r) != a->count)
        return -EINVAL;
    const void *d = NULL;
    ufio_rd_ptr(&r, &d, (size_t)a->count);
    a->data = d;
    return 0;
}

int ufio_dma_write_reply_decode(const void *payload, size_t len, const struct ufio_dma_access *want)
{
    /* header-only (QEMU), addr + u32 count (the spec), or addr + u64 count */
    if (len == 0)
        return 0;
    struct ufio_rd r = ufio_rd_init(payload, len);
    uint64_t addr = 0, count = 0;
    uint32_t c32 = 0;
    if (ufio_rd_u64(&r, &addr))
        return -EINVAL;
    if (len == 12) {
        ufio_rd_u32(&r, &c32);
        count = c32;
    } else if (len == 16) {
        ufio_rd_u64(&r, &count);
    } else {
        return -EINVAL;
    }
    return addr == want->addr && (count == want->count || (len == 12 && count == (uint32_t)want->count)) ? 0 : -EINVAL;
}

ssize_t ufio_dma_access_head_encode(const struct ufio_dma_access *a, void *buf, size_t cap)
{
    struct ufio_wr w = ufio_wr_init(buf, cap);
    ufio_wr_u64(&w, a->addr);
    ufio_wr_u64(&w, a->count);
    return w.err ? w.err : (ssize_t)w.off;
}

ssize_t ufio_dma_write_reply_encode(const struct ufio_dma_access *a, void *buf, size_t cap)
{
    struct ufio_wr w = ufio_wr_init(buf, cap);
    ufio_wr_u64(&w, a->addr);
    ufio_wr_u32(&w, (uint32_t)a->count);
    return w.err ? w.err : (ssize_t)w.off;
}
