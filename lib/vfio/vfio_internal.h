/*
 * Internals of the host VFIO backend (lib/vfio): the plugin binding that
 * maps struct ufio_migration_plugin onto struct ufio_mig_ops with every
 * return value checked, and the built-in "plugin" that forwards a variant
 * driver's VFIO migration v2 through a replaceable ioctl layer (so the
 * forwarding is testable without such hardware).
 */
#ifndef UFIO_VFIO_INTERNAL_H
#define UFIO_VFIO_INTERNAL_H

#include <ufio/migration.h>
#include <ufio/migration_plugin.h>
#include <ufio/server.h>

#include <linux/vfio.h>

/* Kernel ABI values newer than some distributions' linux/vfio.h (6.2+). */
#ifndef VFIO_MIGRATION_PRE_COPY
#define VFIO_MIGRATION_PRE_COPY (1 << 2)
#endif
#define UFIO_VFIO_MIG_GET_PRECOPY_INFO _IO(VFIO_TYPE, VFIO_BASE + 21)
struct ufio_vfio_precopy_info {
    uint32_t argsz;
    uint32_t flags;
    uint64_t initial_bytes;
    uint64_t dirty_bytes;
};
#define UFIO_VFIO_FEATURE_MIG_DATA_SIZE 9

/* ---- plugin binding (mig_plugin.c) ---------------------------------------- */

struct mp_binding {
    struct ufio_migration_plugin p; /* the plugin's descriptor, members past its size zeroed */
    void *state;
    bool inited;
    bool save_failed;               /* a save() broke the rules: the stream is void */
    struct ufio_dev *dev;
    void *dl;                       /* dlopen handle, NULL for a built-in */
};

/* Maps any plugin return value to 0 or a negative errno. */
int mp_errno(long v);
/*
 * Checks a descriptor against this host (ABI major, size, flags, required
 * callbacks) and copies it into b->p. -EINVAL / -EPROTO with why filled.
 */
int mp_bind(struct mp_binding *b, const struct ufio_migration_plugin *p, char *why, size_t why_len);
/* The ufio_mig_ops that call the bound plugin (opaque = b). */
void mp_mig_ops(const struct mp_binding *b, struct ufio_mig_ops *ops);
/* dlopen + entry point + mp_bind. */
int mp_load(struct mp_binding *b, const char *path, char *why, size_t why_len);
void mp_unload(struct mp_binding *b);
/* Calls the plugin's dirty_pages and marks what it reports (a dirty-sync hook). */
void mp_dirty_sync(struct ufio_dev *dev, void *opaque, uint64_t iova, uint64_t len, uint64_t page_size);
/* Tells the plugin the client started/stopped dirty logging (a dirty-log hook). */
int mp_dirty_log(struct ufio_dev *dev, void *opaque, bool start, uint64_t page_size,
                 const struct ufio_iova_range *ranges, uint32_t nranges);

/* ---- VFIO migration v2 forwarding (mig_kernel.c) -------------------------- */

/* The ioctl layer: the real ioctl(2) or a test's fake. */
typedef int (*vfio_ioctl_fn)(void *ctx, int fd, unsigned long req, void *arg);
typedef ssize_t (*vfio_rw_fn)(void *ctx, int fd, void *buf, size_t len, bool write);
typedef int (*vfio_close_fn)(void *ctx, int fd);

struct mig_kernel {
    int device_fd;
    int data_fd;            /* -1 outside saving/resuming states */
    uint64_t flags;         /* the driver's VFIO_MIGRATION_* */
    vfio_ioctl_fn ioctl;
    vfio_rw_fn rw;
    vfio_close_fn close;
    void *ctx;
};
/*
 * Probes the device's MIGRATION feature: 0 and k set up when the driver
 * offers migration v2 (with STOP_COPY), -ENOTTY/-EINVAL/-ENOTSUP when not.
 * NULL ops = the real system calls.
 */
int mig_kernel_probe(struct mig_kernel *k, int device_fd, vfio_ioctl_fn ioctl_fn, vfio_rw_fn rw, vfio_close_fn close_fn,
                     void *ctx);
/* A plugin descriptor whose state is k (init returns k). */
const struct ufio_migration_plugin *mig_kernel_plugin(void);

#endif
