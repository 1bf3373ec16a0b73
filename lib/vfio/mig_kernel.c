/*
 * VFIO migration v2 of a variant driver, forwarded as a built-in plugin:
 * each arc is one MIG_DEVICE_STATE SET, the data fd the kernel returns for
 * saving and resuming carries save()/load(), MIG_DATA_SIZE and PRECOPY_INFO
 * give the estimates, and DMA_LOGGING_REPORT the hardware's dirty pages.
 * ufio frames and checks the driver's opaque bytes like any device payload.
 * The ioctl/read/write layer is replaceable so tests can play the driver.
 */
#include "vfio/vfio_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int sys_ioctl(void *ctx, int fd, unsigned long req, void *arg)
{
    (void)ctx;
    return ioctl(fd, req, arg) < 0 ? -errno : 0;
}

static ssize_t sys_rw(void *ctx, int fd, void *buf, size_t len, bool write_)
{
    (void)ctx;
    ssize_t n = write_ ? write(fd, buf, len) : read(fd, buf, len);
    return n < 0 ? -errno : n;
}

static int sys_close(void *ctx, int fd)
{
    (void)ctx;
    return close(fd);
}

/* DEVICE_FEATURE with a payload of plen bytes after the 16-byte head. */
static int feature(struct mig_kernel *k, uint32_t flags, void *payload, size_t plen)
{
    union {
        struct vfio_device_feature f;
        uint8_t raw[sizeof(struct vfio_device_feature) + 64];
    } u;
    if (plen > 64)
        return -EINVAL;
    memset(&u, 0, sizeof(u));
    u.f.argsz = (uint32_t)(sizeof(u.f) + plen);
    u.f.flags = flags;
    if (plen)
        memcpy(u.f.data, payload, plen);
    int err = k->ioctl(k->ctx, k->device_fd, VFIO_DEVICE_FEATURE, &u.f);
    if (!err && plen)
        memcpy(payload, u.f.data, plen);
    return err;
}

int mig_kernel_probe(struct mig_kernel *k, int device_fd, vfio_ioctl_fn ioctl_fn, vfio_rw_fn rw, vfio_close_fn close_fn,
                     void *ctx)
{
    k->device_fd = device_fd;
    k->data_fd = -1;
    k->ioctl = ioctl_fn ? ioctl_fn : sys_ioctl;
    k->rw = rw ? rw : sys_rw;
    k->close = close_fn ? close_fn : sys_close;
    k->ctx = ctx;
    struct vfio_device_feature_migration m = { 0 };
    int err = feature(k, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, &m, sizeof(m));
    if (err)
        return err;
    if (!(m.flags & VFIO_MIGRATION_STOP_COPY))
        return -ENOTSUP;
    /* what ufio's state machine knows; the driver's other bits are not offered */
    k->flags = m.flags & (UFIO_MIG_F_STOP_COPY | UFIO_MIG_F_P2P | UFIO_MIG_F_PRE_COPY);
    return 0;
}

static bool saving(unsigned s)
{
    return s == UFIO_MIG_STOP_COPY || s == UFIO_MIG_PRE_COPY || s == UFIO_MIG_PRE_COPY_P2P;
}

static void drop_data_fd(struct mig_kernel *k)
{
    if (k->data_fd >= 0)
        k->close(k->ctx, k->data_fd);
    k->data_fd = -1;
}

static int mk_transition(void *state, unsigned from, unsigned to)
{
    struct mig_kernel *k = state;
    struct vfio_device_feature_mig_state st = { .device_state = to, .data_fd = -1 };
    int err = feature(k, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &st, sizeof(st));
    if (err)
        return err;
    bool wants_fd = (saving(to) && !saving(from)) || to == UFIO_MIG_RESUMING;
    if (st.data_fd >= 0 && !wants_fd) {
        /* the kernel gives a data fd only on those arcs; one elsewhere is not ours to keep */
        k->close(k->ctx, st.data_fd);
        st.data_fd = -1;
    }
    if (wants_fd) {
        drop_data_fd(k);
        if (st.data_fd < 0)
            return -EIO; /* the driver moved but gave no stream: the walk stops here */
        k->data_fd = st.data_fd;
    } else if (!saving(to)) {
        drop_data_fd(k); /* saving or resuming is over */
    }
    return 0;
}

static ssize_t mk_save(void *state, void *buf, size_t len)
{
    struct mig_kernel *k = state;
    if (k->data_fd < 0)
        return -EINVAL;
    ssize_t n = k->rw(k->ctx, k->data_fd, buf, len, false);
    if (n == -ENOMSG)
        return 0; /* PRE_COPY: nothing more now */
    return n;
}

static int mk_load(void *state, const void *buf, size_t len, bool last)
{
    struct mig_kernel *k = state;
    if (k->data_fd < 0)
        return -EINVAL;
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = k->rw(k->ctx, k->data_fd, (void *)p, len, true);
        if (n < 0)
            return (int)n;
        if (n == 0 || (size_t)n > len)
            return -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void mk_estimate(void *state, uint64_t *initial, uint64_t *dirty, uint64_t *stop_copy)
{
    struct mig_kernel *k = state;
    uint64_t size = 0;
    if (!feature(k, VFIO_DEVICE_FEATURE_GET | UFIO_VFIO_FEATURE_MIG_DATA_SIZE, &size, sizeof(size)))
        *stop_copy = size;
    if (k->data_fd >= 0 && (k->flags & UFIO_MIG_F_PRE_COPY)) {
        struct ufio_vfio_precopy_info pi = { .argsz = sizeof(pi) };
        if (!k->ioctl(k->ctx, k->data_fd, UFIO_VFIO_MIG_GET_PRECOPY_INFO, &pi)) {
            *initial = pi.initial_bytes;
            *dirty = pi.dirty_bytes;
        }
    }
}

static int mk_dirty_pages(void *state, uint64_t iova, uint64_t len, uint64_t page_size, uint64_t *bitmap)
{
    struct mig_kernel *k = state;
    struct vfio_device_feature_dma_logging_report r = {
        .iova = iova, .length = len, .page_size = page_size, .bitmap = (uint64_t)(uintptr_t)bitmap,
    };
    return feature(k, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, &r, sizeof(r));
}

static int mk_dirty_log(void *state, bool start, uint64_t page_size, const uint64_t *ranges, uint32_t nranges)
{
    struct mig_kernel *k = state;
    if (!start)
        return feature(k, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, NULL, 0);
    if (!nranges)
        return 0; /* nothing mapped: nothing the device can write */
    struct vfio_device_feature_dma_logging_range *r = calloc(nranges, sizeof(*r));
    if (!r)
        return -ENOMEM;
    for (uint32_t i = 0; i < nranges; i++)
        r[i] = (struct vfio_device_feature_dma_logging_range){ .iova = ranges[2 * i], .length = ranges[2 * i + 1] };
    struct vfio_device_feature_dma_logging_control c = {
        .page_size = page_size, .num_ranges = nranges, .ranges = (uint64_t)(uintptr_t)r,
    };
    int err = feature(k, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, &c, sizeof(c));
    free(r);
    return err;
}

static void mk_fini(void *state)
{
    drop_data_fd(state);
}

static const struct ufio_migration_plugin mk_plugin = {
    .abi_version = UFIO_MP_ABI_VERSION,
    .size = sizeof(struct ufio_migration_plugin),
    .name = "vfio-migration-v2",
    .flags = UFIO_MIG_F_STOP_COPY, /* replaced by the driver's at bind time */
    .fini = mk_fini,
    .transition = mk_transition,
    .save = mk_save,
    .load = mk_load,
    .estimate = mk_estimate,
    .dirty_pages = mk_dirty_pages,
    .dirty_log = mk_dirty_log,
};

const struct ufio_migration_plugin *mig_kernel_plugin(void)
{
    return &mk_plugin;
}
