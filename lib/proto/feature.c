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
