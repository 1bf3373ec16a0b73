/*
 * The out-of-band migration engine: moves a live device from one vfio-user
 * server process to another, within a downtime budget.
 *
 * Sequence: compatibility check (refuse before any state moves), destination
 * to RESUMING, optional PRE_COPY rounds on the source until what is left
 * fits max_downtime_ms at the measured bandwidth (or max_rounds), STOP_COPY
 * and the rest of the stream, destination STOP (the library verifies the
 * stream there) and RUNNING, source STOP. Any failure puts the source back to
 * RUNNING with its state intact and leaves the destination not running.
 */
#ifndef UFIO_MIGRATE_H
#define UFIO_MIGRATE_H

#include <ufio/ufio.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A migration endpoint: one end of a migration (the device a source reads
 * from or a destination writes to), as the engine sees it. The engine needs
 * only these calls, so the device may be a local vfio-user server reached by
 * a ufio client (ufio_mig_endpoint_client()) or anything that forwards them
 * (a network link to an agent next to the device).
 *
 * Every call returns 0 or a negative errno and mirrors the vfio-user message
 * of the same name:
 *   feature     DEVICE_FEATURE: flags = index | UFIO_FEATURE_GET/SET/PROBE
 *               (include/ufio/client.h), in/out the data after argsz+flags
 *   data_read   MIG_DATA_READ of up to len bytes; *got < len = "no more now"
 *   data_write  MIG_DATA_WRITE of len bytes (any length: split as needed)
 *   config_read REGION_READ of PCI config space (used to describe a device
 *               that has no ufio descriptor by its PCI ids)
 *   reset       DEVICE_RESET
 *   max_chunk   the largest data_read / data_write worth issuing (the
 *               negotiated max_data_xfer_size)
 *   destroy     frees the endpoint (closes its connection)
 *   flush       optional (NULL, or a table whose size does not cover it):
 *               returns once every data_write so far has reached the device,
 *               with the first error any of them met. For an endpoint whose
 *               data_write returns before the device has the data (a network
 *               link to an agent next to the device; ufio_mig_endpoint_client(),
 *               which keeps one MIG_DATA_WRITE in flight): the engine flushes at
 *               the end of every pass, so the rate it measures, and the
 *               downtime it predicts from it, include the far end's load.
 * Calls on one endpoint are never concurrent, but the engine calls the
 * source and the destination from different threads at the same time (its
 * pump reads from one while it writes to the other).
 */
struct ufio_mig_endpoint_ops {
    size_t size; /* sizeof(struct ufio_mig_endpoint_ops) the implementation was built with */
    int (*feature)(void *priv, uint32_t flags, const void *in, size_t in_len, void *out, size_t out_cap,
                   size_t *out_len);
    int (*data_read)(void *priv, void *buf, size_t len, size_t *got);
    int (*data_write)(void *priv, const void *buf, size_t len);
    int (*config_read)(void *priv, uint64_t offset, void *buf, size_t len);
    int (*reset)(void *priv);
    uint64_t (*max_chunk)(void *priv);
    void (*destroy)(void *priv);
    int (*flush)(void *priv);
};

struct ufio_mig_endpoint {
    size_t size; /* sizeof(struct ufio_mig_endpoint) in the implementation's build */
    const struct ufio_mig_endpoint_ops *ops;
    void *priv;
    const char *name; /* for messages ("source", a path, a URL); may be NULL */
};

struct ufio_client;
/* An endpoint over a connected ufio client; destroy() destroys the client
 * when own is true. *ep is freed by ufio_mig_endpoint_destroy(). */
UFIO_API int ufio_mig_endpoint_client(struct ufio_client *c, bool own, struct ufio_mig_endpoint **ep);
UFIO_API void ufio_mig_endpoint_destroy(struct ufio_mig_endpoint *ep);

enum ufio_migrate_phase {
    UFIO_MIGRATE_CHECK,
    UFIO_MIGRATE_PRECOPY,
    UFIO_MIGRATE_STOPCOPY,
    UFIO_MIGRATE_RESUME,
    UFIO_MIGRATE_DONE,
};

struct ufio_migrate_opts {
    size_t size;                /* sizeof(struct ufio_migrate_opts) in the caller's build */
    /* the two devices: a socket path each, or an endpoint (used instead of
     * the path when set; the engine does not destroy it) */
    const char *src_path;
    const char *dst_path;
    unsigned max_downtime_ms;   /* default 300 */
    unsigned max_rounds;        /* precopy rounds, default 30 */
    bool no_precopy;            /* go straight to STOP_COPY */
    int timeout_ms;             /* per request, default 5000 */
    /* progress: called after every chunk; may be NULL */
    void (*progress)(void *opaque, enum ufio_migrate_phase phase, uint64_t bytes, unsigned round);
    void *opaque;
    struct ufio_mig_endpoint *src, *dst;
    /* a source in STOP (already migrated away, or paused) is refused unless force */
    bool force;
    /* checked between steps and chunks: when it becomes nonzero the engine
     * stops, rolls back and returns -ECANCELED (set it from a signal handler) */
    const volatile int *cancel;
    /* precopy ends after this long (ms, default 60000) or this many bytes
     * (default 0: no byte bound), whatever max_rounds says */
    unsigned max_precopy_ms;
    uint64_t max_precopy_bytes;
    /* stop the source even when the measured cost of stop-copy (the
     * destination's load included) says the budget cannot be met */
    bool force_downtime;
    /* do not compare digests (a device without one is never compared) */
    bool no_verify;
};

struct ufio_migrate_result {
    size_t size;                /* set by the caller: sizeof(struct ufio_migrate_result) */
    uint64_t bytes;             /* migration stream bytes moved */
    uint64_t precopy_bytes;
    uint64_t stopcopy_bytes;
    unsigned rounds;            /* precopy rounds */
    double downtime_ms;         /* source STOP_COPY to destination RUNNING (or, when stop-copy
                                 * failed, until the failure) */
    double total_ms;
    double throughput_mib_s;
    bool compatible;
    /* Set by the caller (both may be 0): a buffer that receives what failed,
     * or the compatibility reasons, NUL-terminated, truncated to error_size
     * (UFIO_MIGRATE_ERROR_MAX holds any message in full); "" on success. */
    char *error;
    size_t error_size;
    /* the same for something that did not stop the migration (or its rollback) */
    char *warning;
    size_t warning_size;
    /* the stop decision: downtime predicted from what was left and the
     * measured end-to-end rate, and the dirty-rate limit asked for (pages
     * per second, 0 = none) when precopy did not converge */
    double predicted_downtime_ms;
    double rate_mib_s;
    uint64_t dirty_limit;
    /* the stopped source's digest was compared with the loaded destination's;
     * digest (set by the caller, may be NULL) receives it in hex
     * (UFIO_MIGRATE_DIGEST_MAX holds any) */
    bool verified;
    char *digest;
    size_t digest_size;
};
#define UFIO_MIGRATE_ERROR_MAX 1024
#define UFIO_MIGRATE_DIGEST_MAX 145

/*
 * 0 on success; -EPERM when the devices are incompatible (reasons in
 * result->error); -EALREADY a stopped source (without force); -EBUSY an end
 * in the middle of another migration; -ETIME the budget cannot be met (the
 * source was never stopped) or the source could not finish stop-copy within
 * its deadline (it runs again); -EBADE the digests differ (rolled back);
 * -ECANCELED cancelled; -EINPROGRESS in doubt: the destination was told
 * to run and neither confirmed nor denied it (its end could not be asked
 * again), so the source is left stopped (STOP, state kept) and nothing is
 * rolled back; another -errno otherwise. On every other error but -EPERM
 * the source runs on with its state and the destination is left stopped.
 */
UFIO_API int ufio_migrate(const struct ufio_migrate_opts *opts, struct ufio_migrate_result *result);

/* Makes a device left half-way by an interrupted migration usable again: a
 * device in RESUMING, ERROR or a saving state is reset (what a half-loaded
 * destination holds is dropped) and left in STOP; RUNNING goes to STOP.
 * ep is used instead of path when not NULL. why gets the reason on failure. */
UFIO_API int ufio_migrate_reset(const char *path, struct ufio_mig_endpoint *ep, int timeout_ms, char *why,
                                size_t why_len);

#ifdef __cplusplus
}
#endif
#endif
