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

enum ufio_migrate_phase {
    UFIO_MIGRATE_CHECK,
    UFIO_MIGRATE_PRECOPY,
    UFIO_MIGRATE_STOPCOPY,
    UFIO_MIGRATE_RESUME,
    UFIO_MIGRATE_DONE,
};

struct ufio_migrate_opts {
    size_t size;                /* sizeof(struct ufio_migrate_opts) in the caller's build */
    const char *src_path;
    const char *dst_path;
    unsigned max_downtime_ms;   /* default 300 */
    unsigned max_rounds;        /* precopy rounds, default 30 */
    bool no_precopy;            /* go straight to STOP_COPY */
    int timeout_ms;             /* per request, default 5000 */
    /* progress: called after every chunk; may be NULL */
    void (*progress)(void *opaque, enum ufio_migrate_phase phase, uint64_t bytes, unsigned round);
    void *opaque;
};

struct ufio_migrate_result {
    size_t size;                /* set by the caller: sizeof(struct ufio_migrate_result) */
    uint64_t bytes;             /* migration stream bytes moved */
    uint64_t precopy_bytes;
    uint64_t stopcopy_bytes;
    unsigned rounds;            /* precopy rounds */
    double downtime_ms;         /* source STOP_COPY to destination RUNNING */
    double total_ms;
    double throughput_mib_s;
    bool compatible;
    /* Set by the caller (both may be 0): a buffer that receives what failed,
     * or the compatibility reasons, NUL-terminated, truncated to error_size
     * (UFIO_MIGRATE_ERROR_MAX holds any message in full); "" on success. */
    char *error;
    size_t error_size;
};
#define UFIO_MIGRATE_ERROR_MAX 1024

/* 0 on success; -EPERM when the devices are incompatible (reasons in
 * result->error); another -errno otherwise. opts->size and result->size as in
 * ufio.h (-EINVAL, -E2BIG); the result is written on failure too. */
UFIO_API int ufio_migrate(const struct ufio_migrate_opts *opts, struct ufio_migrate_result *result);

#ifdef __cplusplus
}
#endif
#endif
