/*
 * Live migration (VFIO migration v2 over vfio-user): the state machine,
 * the device-side callbacks, and the client-side calls that drive it.
 *
 * The state machine is Linux's (drivers/vfio/vfio_main.c,
 * vfio_mig_get_next_state): for any (current, requested) pair the server
 * walks the same path of direct arcs the kernel would, calling the device's
 * transition callback once per arc.
 *
 * Migration data is an opaque byte stream. The library frames the device's
 * payload (a versioned header, the source's compatibility descriptor,
 * length-prefixed records, an end record with a CRC-32C), so a truncated or
 * corrupted stream is refused when the destination leaves RESUMING, before
 * the device loads anything; the receiver accepts any chunking.
 */
#ifndef UFIO_MIGRATION_H
#define UFIO_MIGRATION_H

#include <ufio/ufio.h>

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

enum ufio_mig_state {
    UFIO_MIG_ERROR = 0,
    UFIO_MIG_STOP = 1,
    UFIO_MIG_RUNNING = 2,
    UFIO_MIG_STOP_COPY = 3,
    UFIO_MIG_RESUMING = 4,
    UFIO_MIG_RUNNING_P2P = 5,
    UFIO_MIG_PRE_COPY = 6,
    UFIO_MIG_PRE_COPY_P2P = 7,
    UFIO_MIG_NUM_STATES = 8,
};

/* VFIO_MIGRATION_* flags of the MIGRATION feature */
#define UFIO_MIG_F_STOP_COPY 0x1u
#define UFIO_MIG_F_P2P       0x2u
#define UFIO_MIG_F_PRE_COPY  0x4u

UFIO_API const char *ufio_mig_state_name(unsigned state);
/* Case-insensitive name ("stop_copy") to state, or -EINVAL. */
UFIO_API int ufio_mig_state_parse(const char *name);
UFIO_API bool ufio_mig_state_supported(uint64_t flags, unsigned state);
/*
 * The next direct arc from cur toward target, as the kernel computes it.
 * -EINVAL for flags without STOP_COPY or with unknown bits, a state the
 * flags do not support, ERROR as either end, or an impossible pair
 * (STOP_COPY -> PRE_COPY). cur == target gives *next = cur.
 */
UFIO_API int ufio_mig_next_state(uint64_t flags, unsigned cur, unsigned target, unsigned *next);
/* The whole path after cur, ending with target (*len 0 when equal). */
UFIO_API int ufio_mig_path(uint64_t flags, unsigned cur, unsigned target,
                           unsigned path[UFIO_MIG_NUM_STATES], size_t *len);
/* Whether from -> to is a direct arc a driver implements for those flags. */
UFIO_API bool ufio_mig_arc_is_direct(uint64_t flags, unsigned from, unsigned to);

/* ---- ufio's DEVICE_FEATURE extensions (outside the kernel's index range) ---- */

/* GET: u64 initial_bytes, u64 dirty_bytes (the kernel's PRECOPY_INFO); valid in PRE_COPY* */
#define UFIO_FEATURE_PRECOPY_INFO 0xf001u
/* GET: the device's compatibility descriptor as NUL-terminated JSON */
#define UFIO_FEATURE_COMPAT_DESC  0xf002u
/* GET in STOP / STOP_COPY: a digest of the whole device state, library-owned
 * state (config space, MSI-X) included: u32 flags (bit 0: the device added
 * its own digest), then the bytes. Equal on source and destination after a
 * migration; ufio-migrate compares them before the destination runs. */
#define UFIO_FEATURE_DIGEST 0xf003u
#define UFIO_DIGEST_F_DEVICE 0x1u
#define UFIO_DIGEST_MAX 64u          /* the device's part, bytes */
/* GET: why the last migration request was refused, NUL-terminated text ("" if none) */
#define UFIO_FEATURE_MIG_REASON 0xf004u
/* SET u64 ms: the time STOP_COPY may take from its start (0 = no limit). A
 * device that has not finished when it runs out goes back to RUNNING and
 * MIG_DATA_READ fails with ETIME. */
#define UFIO_FEATURE_STOP_COPY_DEADLINE 0xf005u
/* SET u64 pages per second the device may dirty while running (0 = no limit);
 * ENOTSUP when the device cannot limit itself */
#define UFIO_FEATURE_DIRTY_RATE_LIMIT 0xf006u
/* the kernel's MIG_DATA_SIZE (9): GET u64 stop-copy size estimate */
#define UFIO_FEATURE_MIG_DATA_SIZE 9u

/* ---- device side ------------------------------------------------------------- */

struct ufio_dev;

struct ufio_mig_ops {
    size_t size;  /* sizeof(struct ufio_mig_ops) in the caller's build */
    /* UFIO_MIG_F_*; STOP_COPY is required */
    uint64_t flags;
    /* One direct arc. Return 0, or a negative errno to fail the step (the
     * device must then still be in `from`; the library stays there too). */
    int (*transition)(struct ufio_dev *dev, void *opaque, unsigned from, unsigned to);
    /* Produces the next bytes of device state in PRE_COPY / STOP_COPY into
     * buf (len is at least 64 KiB and at most what the client's read asks
     * for, 16 MiB at most). Returns the byte count; 0 in PRE_COPY means
     * "nothing more for now" (the client's read ends short there, which ends
     * its precopy round), 0 in STOP_COPY means the state is complete.
     * -ETIME in STOP_COPY: the device cannot finish in the time it was given
     * (ufio_dev_mig_time_left_ms()); the library puts it back to RUNNING. */
    ssize_t (*save)(struct ufio_dev *dev, void *opaque, void *buf, size_t len);
    /* One piece of the stream, exactly what one save() produced on the
     * source, handed over as soon as it arrived and its CRC was checked (the
     * rest of the stream has not been seen yet). Then one final call with
     * (NULL, 0, last = true) once the whole stream is verified, before the
     * device leaves RESUMING: check completeness there (it may come again if
     * the RESUMING -> STOP transition failed). An error here (or an invalid
     * stream) puts the device in ERROR: it never runs on a partial state. */
    int (*load)(struct ufio_dev *dev, void *opaque, const void *buf, size_t len, bool last);
    /* Estimates in bytes (may be NULL): what PRE_COPY still has to send
     * (initial, dirty) and what STOP_COPY would send. */
    void (*estimate)(struct ufio_dev *dev, void *opaque, uint64_t *initial, uint64_t *dirty,
                     uint64_t *stop_copy);
    /* May be NULL. A new save session starts: the next save() calls must
     * produce the whole state again, from scratch; forget what an earlier
     * session sent (a second migration from the same source, or a retry
     * after an aborted precopy, is a new session). Called on entering
     * PRE_COPY / STOP_COPY from a non-saving state, before transition().
     * An error fails the arc. */
    int (*save_start)(struct ufio_dev *dev, void *opaque);
    /* May be NULL. Writes a digest of the device's whole state (up to
     * UFIO_DIGEST_MAX bytes, at most cap) and returns its length. Called only
     * while the device is stopped; the source's (after STOP_COPY) and the
     * destination's (after loading) must be equal exactly when the states are. */
    int (*digest)(struct ufio_dev *dev, void *opaque, void *out, size_t cap);
    /* May be NULL. Limit the pages dirtied per second while running
     * (0 = no limit); asked for when precopy does not converge. */
    int (*dirty_limit)(struct ufio_dev *dev, void *opaque, uint64_t pages_per_sec);
};

/* Enables migration for the device (before it is attached). The ops are
 * copied; ops->size as in ufio.h (-EINVAL, -E2BIG). */
UFIO_API int ufio_dev_setup_migration(struct ufio_dev *dev, const struct ufio_mig_ops *ops, void *opaque);
UFIO_API unsigned ufio_dev_mig_state(struct ufio_dev *dev);
/* In STOP_COPY with a deadline (UFIO_FEATURE_STOP_COPY_DEADLINE): the ms
 * left (0 when passed); -1 without a deadline or outside STOP_COPY. */
UFIO_API int64_t ufio_dev_mig_time_left_ms(struct ufio_dev *dev);
/*
 * The device's compatibility descriptor (JSON; fields and matching rules in
 * docs/compatibility.md). Without one, the device is described by its PCI ids
 * at software_version 0.0.0. -EINVAL (nothing changed) if malformed.
 */
UFIO_API int ufio_dev_set_compat(struct ufio_dev *dev, const char *json);

/* ---- client side ------------------------------------------------------------- */

struct ufio_client;

/* MIGRATION feature: the device's flags; -ENOTSUP when it cannot migrate. */
UFIO_API int ufio_client_mig_flags(struct ufio_client *c, uint64_t *flags);
UFIO_API int ufio_client_mig_get_state(struct ufio_client *c, unsigned *state);
/* Requests a state; on error *reached (may be NULL) gets the state the device
 * reports afterwards (any state on the path, or ERROR). */
UFIO_API int ufio_client_mig_set_state(struct ufio_client *c, unsigned state, unsigned *reached);
UFIO_API int ufio_client_mig_precopy_info(struct ufio_client *c, uint64_t *initial, uint64_t *dirty);
UFIO_API int ufio_client_mig_stop_copy_size(struct ufio_client *c, uint64_t *bytes);
/* Dirty-page logging of device DMA. nranges 0 = everything mapped.
 * (ufio_iova_range is an array element with a frozen layout: no size.) */
struct ufio_iova_range { uint64_t iova, length; };
UFIO_API int ufio_client_dirty_log_start(struct ufio_client *c, uint64_t page_size,
                                         const struct ufio_iova_range *ranges, uint32_t nranges);
UFIO_API int ufio_client_dirty_log_stop(struct ufio_client *c);
/* bitmap: ceil(length / page_size / 64) u64 words; bit k = page k. Reading clears. */
UFIO_API int ufio_client_dirty_log_report(struct ufio_client *c, uint64_t iova, uint64_t length,
                                          uint64_t page_size, uint64_t *bitmap);

#ifdef __cplusplus
}
#endif
#endif
