/* DEVICE_FEATURE framing and MIG_DATA_READ / MIG_DATA_WRITE. */
#include "proto/proto.h"

int ufio_feature_decode(const void *payload, size_t len, struct ufio_feature *f)
{
    struct ufio_rd r = ufio_rd_init(payload, len);
    if (ufio_rd_u32(&r, &f->argsz) || ufio_rd_u32(&r, &f->flags))
        return -EINVAL;
    uint32_t m = f->flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE);
    if (f->argsz < 8 || (f->flags & ~VFIO_DEVICE_FEATURE_KNOWN) || m == 0 ||
        ((f->flags & VFIO_DEVICE_FEATURE_GET) && (f->flags & VFIO_DEVICE_FEATURE_SET) &&
         !(f->flags & VFIO_DEVICE_FEATURE_PROBE)))
        return -EINVAL;
    f->data_len = ufio_rd_left(&r);
    const void *d = NULL;
    ufio_rd_ptr(&r, &d, f->data_len);
    f->data = d;
    return 0;
}

ssize_t ufio_feature_head_encode(uint32_t argsz, uint32_t flags, void *buf, size_t cap)
{
    struct ufio_wr w = ufio_wr_init(buf, cap);
    ufio_wr_u32(&w, argsz);
    ufio_wr_u32(&w, flags);
    return w.err ? w.err : (ssize_t)w.off;
}

int ufio_mig_read_req_decode(const void *payload, size_t len, uint64_t max_xfer, struct ufio_mig_data *m)
{
    struct ufio_rd r = ufio_rd_init(payload, len);
    m->data = NULL;
    if (len != 8 || ufio_rd_u32(&r, &m->argsz) || ufio_rd_u32(&r, &m->size))
        return -EINVAL;
    if (m->size > max_xfer)
        return -E2BIG;
    return (uint64_t)m->argsz < 8ull + m->size ? -EINVAL : 0;
}

int ufio_mig_write_req_decode(const void *payload, size_t len, uint64_t max_xfer, struct ufio_mig_data *m)
{
    struct ufio_rd r = ufio_rd_init(payload, len);
    m->data = NULL;
    if (ufio_rd_u32(&r, &m->argsz) || ufio_rd_u32(&r, &m->size))
        return -EINVAL;
    if (m->size > max_xfer)
        return -E2BIG;
    if (ufio_rd_left(&r) != m->size)
        return -EINVAL;
    const void *d = NULL;
    ufio_rd_ptr(&r, &d, m->size);
    m->data = d;
    return 0;
}

int ufio_mig_read_reply_decode(const void *payload, size_t len, uint32_t asked, struct ufio_mig_data *m)
{
    struct ufio_rd r = ufio_rd_init(payload, len);
    m->data = NULL;
    /* the body may be padded up to what was asked (libvfio-user does so); size says what is data */
    if (ufio_rd_u32(&r, &m->argsz) || ufio_rd_u32(&r, &m->size) || m->size > asked ||
        ufio_rd_left(&r) < m->size || ufio_rd_left(&r) > asked)
        return -EINVAL;
    const void *d = NULL;
    ufio_rd_ptr(&r, &d, m->size);
    m->data = d;
    return 0;
}

ssize_t ufio_mig_data_head_encode(const struct ufio_mig_data *m, void *buf, size_t cap)
{
    struct ufio_wr w = ufio_wr_init(buf, cap);
    ufio_wr_u32(&w, m->argsz);
    ufio_wr_u32(&w, m->size);
    return w.err ? w.err : (ssize_t)w.off;
}

/* ---- MIG_DEVICE_STATE and DMA logging data (one codec for server and client) ---- */

int ufio_mig_state_decode(const void *data, size_t len, struct ufio_mig_state_data *d)
{
    struct ufio_rd r = ufio_rd_init(data, len);
    uint32_t fd;
    if (len != 8 || ufio_rd_u32(&r, &d->state) || ufio_rd_u32(&r, &fd))
        return -EINVAL;
    d->data_fd = (int32_t)fd;
    return 0;
}

ssize_t ufio_mig_state_encode(const struct ufio_mig_state_data *d, void *buf, size_t cap)
{
    struct ufio_wr w = ufio_wr_init(buf, cap);
    ufio_wr_u32(&w, d->state);
    ufio_wr_u32(&w, (uint32_t)d->data_fd);
    return w.err ? w.err : (ssize_t)w.off;
}

static bool log_pgsize_ok(uint64_t p, uint64_t max)
{
    return p >= 4096 && !(p & (p - 1)) && p <= max;
}

void ufio_log_start_range(const struct ufio_log_start *s, uint32_t i, uint64_t *iova, uint64_t *length)
{
    *iova = ufio_ld64(s->ranges + (size_t)i * 16);
    *length = ufio_ld64(s->ranges + (size_t)i * 16 + 8);
}

int ufio_log_start_decode(const void *data, size_t len, struct ufio_log_start *s)
{
    struct ufio_rd r = ufio_rd_init(data, len);
    uint32_t rsvd;
    if (ufio_rd_u64(&r, &s->page_size) || ufio_rd_u32(&r, &s->nranges) || ufio_rd_u32(&r, &rsvd))
        return -EINVAL;
    if (!log_pgsize_ok(s->page_size, 1ull << 30))
        return -EINVAL;
    if (s->nranges > UFIO_LOG_MAX_RANGES)
        return -E2BIG;
    if (ufio_rd_left(&r) != (size_t)s->nranges * 16)
        return -EINVAL;
    s->ranges = (const uint8_t *)data + 16;
    /* aligned, no wrap, no overlap (pairwise: at most 1024 ranges) */
    for (uint32_t i = 0; i < s->nranges; i++) {
        uint64_t a, n;
        ufio_log_start_range(s, i, &a, &n);
        if (!n || (a | n) % s->page_size)
            return -EINVAL;
        if (a + n < a)
            return -EOVERFLOW;
        for (uint32_t j = 0; j < i; j++) {
            uint64_t b, m;
            ufio_log_start_range(s, j, &b, &m);
            if (a < b + m && b < a + n)
                return -EINVAL;
        }
    }
    return 0;
}

ssize_t ufio_log_start_encode(uint64_t page_size, const uint64_t (*ranges)[2], uint32_t nranges, void *buf,
                              size_t cap)
{
    struct ufio_wr w = ufio_wr_init(buf, cap);
    ufio_wr_u64(&w, page_size);
    ufio_wr_u32(&w, nranges);
    ufio_wr_u32(&w, 0);
    for (uint32_t i = 0; i < nranges; i++) {
        ufio_wr_u64(&w, ranges[i][0]);
        ufio_wr_u64(&w, ranges[i][1]);
    }
    return w.err ? w.err : (ssize_t)w.off;
}

int ufio_log_report_decode(const void *data, size_t len, struct ufio_log_report *r)
{
    struct ufio_rd rd = ufio_rd_init(data, len);
    if (ufio_rd_u64(&rd, &r->iova) || ufio_rd_u64(&rd, &r->length) || ufio_rd_u64(&rd, &r->page_size))
        return -EINVAL;
    if (!log_pgsize_ok(r->page_size, UINT64_C(1) << 63) || !r->length || r->iova + r->length < r->iova)
        return -EINVAL;
    return 0;
}

ssize_t ufio_log_report_encode(const struct ufio_log_report *r, void *buf, size_t cap)
{
    struct ufio_wr w = ufio_wr_init(buf, cap);
    ufio_wr_u64(&w, r->iova);
    ufio_wr_u64(&w, r->length);
    ufio_wr_u64(&w, r->page_size);
    return w.err ? w.err : (ssize_t)w.off;
}

uint64_t ufio_log_bitmap_bytes(const struct ufio_log_report *r)
{
    uint64_t pages = r->length / r->page_size + (r->length % r->page_size != 0);
    return (pages + 63) / 64 * 8;
}
