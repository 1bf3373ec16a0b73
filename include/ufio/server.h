/*
 * libufio server API: emulate a PCI device and serve it over vfio-user.
 *
 * A device is described once (ids, capabilities, BARs, IRQs, callbacks),
 * then attached to a listening UNIX socket (or an already-connected fd).
 * Every connection is a session with a role (docs/sessions.md): one owner
 * (the VMM) with every right the spec gives a client, observers (read-only)
 * and at most one migration controller, served in turn by one loop. When the
 * owner leaves, its DMA mappings and IRQ eventfds are dropped, the device
 * state is kept, and the next owner is accepted. When the session that took
 * the device out of RUNNING leaves, the device returns to RUNNING.
 *
 * Threading: a device is driven by one thread at a time: the thread that calls
 * ufio_dev_run()/ufio_dev_run_once(). All callbacks run on that thread, and
 * the ufio_dev_* calls below are to be made from it (from inside callbacks or
 * between run_once calls), except ufio_dev_stop(), which any thread or a
 * signal handler may call, ufio_dev_quiesced(), which any thread may call,
 * and ufio_dev_dma_ptr() memory, which the device may touch from any thread
 * while the mapping lives (and, with ops.quiesce, outside a quiesce).
 */
#ifndef UFIO_SERVER_H
#define UFIO_SERVER_H

#include <ufio/ufio.h>

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ufio_dev;

/*
 * Return values of callbacks (every int-returning callback here and in
 * migration.h follows the API's own rule):
 *  - 0 is success;
 *  - a negative errno is a failure, and that errno is what the client gets in
 *    its error reply (-EINVAL for a bad access, -EIO for a device fault...);
 *  - a region access callback may also return len, the full byte count (as
 *    libvfio-user's callbacks do): success, the same as 0;
 *  - anything else is the device's bug: a short (or long) byte count, another
 *    positive value, or a negative number no errno has (below -4095). The
 *    client gets EIO and the library logs a warning naming the callback and
 *    the value (the 1st, 2nd, 4th, 8th... occurrence, so a guest repeating the
 *    access cannot flood the log). A short count never means "partly done":
 *    the library does not retry the rest.
 * ufio_mig_ops.save returns a byte count by its own contract (migration.h).
 */

/*
 * Region access callback for BAR/ROM regions (and config-space ranges a
 * device claims with ufio_dev_claim_config(), with region =
 * UFIO_PCI_CONFIG_REGION and offset the config-space offset). buf holds len
 * bytes to write, or receives len bytes read. Returns 0 or len on success, a
 * negative errno (sent to the client) on failure; see "Return values" above.
 */
typedef int (*ufio_region_access_fn)(struct ufio_dev *dev, void *opaque, unsigned region,
                                     uint64_t offset, void *buf, uint32_t len, bool is_write);

struct ufio_dev_ops {
    size_t size;  /* sizeof(struct ufio_dev_ops) in the caller's build */
    /* DEVICE_RESET from the client (also after a client disconnect when
     * reset_on_disconnect is set). Config space is reset by the library
     * before this is called. 0 or a negative errno (the client's reply).
     * May be NULL. */
    int (*reset)(struct ufio_dev *dev, void *opaque);
    /* A DMA range became available / is about to go away. On unmap the
     * device must drop every pointer into [iova, iova+len) before returning. */
    void (*dma_map)(struct ufio_dev *dev, void *opaque, uint64_t iova, uint64_t len, uint32_t prot);
    void (*dma_unmap)(struct ufio_dev *dev, void *opaque, uint64_t iova, uint64_t len);
    /* After the client wrote config space at [offset, offset+len); the
     * library has already applied the write. May be NULL. */
    void (*cfg_write)(struct ufio_dev *dev, void *opaque, uint32_t offset, uint32_t len);
    /* A client attached (after VERSION) or went away. May be NULL. */
    void (*attach)(struct ufio_dev *dev, void *opaque);
    void (*detach)(struct ufio_dev *dev, void *opaque);
    /*
     * Asynchronous quiesce (the contract: "quiesce" below). Called on the
     * loop's thread before an operation that would break DMA in flight on
     * the device's own threads: a DMA_UNMAP that removes a mapping, the
     * unmaps of an owner that goes away, DEVICE_RESET, a migration state
     * change from a running state (RUNNING, PRE_COPY and their P2P states)
     * to a stopped one, and a live handover. Returns 0 when the device is
     * quiescent now (the operation goes on at once), -EBUSY when it will call
     * ufio_dev_quiesced() once its work in flight is done, or another
     * negative errno to fail the operation. May be NULL: nothing waits.
     */
    int (*quiesce)(struct ufio_dev *dev, void *opaque);
};

struct ufio_pci_ids {
    uint16_t vendor_id;
    uint16_t device_id;
    uint16_t subsys_vendor_id;
    uint16_t subsys_id;
    uint32_t class_code;  /* 24 bits: base class, subclass, prog-if */
    uint8_t revision;
};

/* Creates a device. name appears in log lines. ops may be NULL (no
 * callbacks); ops->size as in ufio.h (-EINVAL, -E2BIG). The ops are copied. */
UFIO_API int ufio_dev_create(const char *name, const struct ufio_pci_ids *ids,
                             const struct ufio_dev_ops *ops, void *opaque,
                             struct ufio_dev **out);
UFIO_API void ufio_dev_destroy(struct ufio_dev *dev);
UFIO_API void *ufio_dev_opaque(struct ufio_dev *dev);
UFIO_API const char *ufio_dev_name(struct ufio_dev *dev);

/* ---- configuration (before the device is attached) ------------------- */

struct ufio_dev_limits {
    size_t size;                 /* sizeof(struct ufio_dev_limits) in the caller's build */
    uint32_t max_msg_fds;        /* default 8, at most 16 */
    uint32_t max_data_xfer_size; /* default 1 MiB, at most 64 MiB */
    uint32_t max_dma_maps;       /* default 65535 (a vIOMMU guest maps many) */
    bool twin_socket;            /* offer a twin socket for DMA_READ/WRITE (default true) */
    bool write_multiple;         /* accept REGION_WRITE_MULTI (default true) */
    int reply_timeout_ms;        /* for DMA_READ/WRITE replies from the client (default 5000) */
    uint64_t max_mig_stream;     /* migration payload a destination buffers (default 1 GiB) */
    int handshake_timeout_ms;    /* a connection sends VERSION within this or is closed (default 5000, 0 = never) */
    int msg_timeout_ms;          /* a message begun is complete within this or the session is closed (default 5000) */
};
/* Get, change, set: the caller sets l->size first. Limits a caller's build
 * does not know keep their current value on set. -EINVAL for a bad size or
 * value, -EBUSY with a client attached. */
UFIO_API int ufio_dev_get_limits(struct ufio_dev *dev, struct ufio_dev_limits *l);
UFIO_API int ufio_dev_set_limits(struct ufio_dev *dev, const struct ufio_dev_limits *l);

/* ---- PCI config space ------------------------------------------------ */

/* A PCI Express device gets a 4 KiB config space; the default is 256 bytes. */
UFIO_API int ufio_dev_set_config_size(struct ufio_dev *dev, uint32_t size);
/* INTx pin 1..4 (INTA..INTD); 0 = no INTx (default pin A with 1 INTx IRQ). */
UFIO_API int ufio_dev_set_intx_pin(struct ufio_dev *dev, uint8_t pin);

/* Capability builders: each returns the capability's config offset or -errno. */
UFIO_API int ufio_dev_add_cap_pm(struct ufio_dev *dev);
#define UFIO_MSI_64BIT    0x1u
#define UFIO_MSI_MASKABLE 0x2u
/* nvec: 1, 2, 4, 8, 16 or 32. Sets up the MSI IRQ index with nvec vectors. */
UFIO_API int ufio_dev_add_cap_msi(struct ufio_dev *dev, unsigned nvec, unsigned flags);
/* nvec 1..2048; table and PBA live in memory BARs already added, inside
 * their size, not overlapping; the library emulates both. ufio_dev_add_msix()
 * below chooses the offsets instead. */
UFIO_API int ufio_dev_add_cap_msix(struct ufio_dev *dev, unsigned nvec,
                                   unsigned table_bar, uint32_t table_offset,
                                   unsigned pba_bar, uint32_t pba_offset);
/*
 * MSI-X whose table and PBA the library lays out in memory BAR `bar`, so no
 * offsets are computed by hand. Call it after the BAR's own mmap areas.
 *  - bar not added yet (after = 0): the helper adds it as a 32-bit memory BAR
 *    holding only the table (at 0) and the PBA, of the smallest power-of-two
 *    size of at least 4 KiB;
 *  - bar already added (with its callback): the table goes to the first 4 KiB
 *    boundary at or after `after` (the end of the device's own registers there)
 *    that keeps table and PBA clear of the BAR's mmap areas; -ENOSPC when the
 *    BAR is too small.
 * The PBA follows the table (8-byte aligned; the spec lets both share a
 * page); the table never shares a page with the device's registers. The
 * library emulates both. *table_offset / *pba_offset (each may be NULL)
 * receive where they went. Returns the capability's config offset, or -EINVAL
 * (nvec not 1..2048, an I/O BAR, after != 0 for a new BAR), -EEXIST (MSI-X
 * already set up), -ENOSPC, -EBUSY (after attach); on failure nothing changed.
 */
UFIO_API int ufio_dev_add_msix(struct ufio_dev *dev, unsigned nvec, unsigned bar, uint64_t after,
                               uint32_t *table_offset, uint32_t *pba_offset);
/* PCIe capability (version 2) of the given device/port type (0 = endpoint);
 * switches the config space to 4 KiB. */
UFIO_API int ufio_dev_add_cap_pcie(struct ufio_dev *dev, uint8_t port_type);
/* Vendor-specific capability; data is the body after the 3-byte header
 * (id, next, length), at most 252 bytes. */
UFIO_API int ufio_dev_add_cap_vendor(struct ufio_dev *dev, const void *data, size_t len);
/* Raw standard capability (id, body after the 2-byte id/next header);
 * wmask marks writable body bits (may be NULL = read-only). */
UFIO_API int ufio_dev_add_cap(struct ufio_dev *dev, uint8_t id, const void *body,
                              const void *wmask, size_t len);
/* Extended capabilities (need a 4 KiB config space). */
UFIO_API int ufio_dev_add_ext_cap_dsn(struct ufio_dev *dev, uint64_t serial);
UFIO_API int ufio_dev_add_ext_cap(struct ufio_dev *dev, uint16_t id, uint8_t version,
                                  const void *body, size_t len);

/*
 * Claims config space [offset, offset+len) for the device: client reads and
 * writes there go to fn (no write masks applied, nothing stored by the
 * library), for registers whose value exists only when read (a window into
 * a BAR, a live counter). Inside a capability the device added, or past the
 * capability list: not in the header (below 0x40) and not over the PM, MSI,
 * MSI-X or PCIe capabilities the library emulates. At most 8 ranges, not
 * overlapping; -EINVAL / -ENOSPC / -EBUSY (after attach) otherwise. The
 * device's state behind a claimed range is its own to migrate.
 */
UFIO_API int ufio_dev_claim_config(struct ufio_dev *dev, uint32_t offset, uint32_t len,
                                   ufio_region_access_fn fn, void *opaque);

/* Read the current config space (for the device's own use). */
UFIO_API int ufio_dev_config_read(struct ufio_dev *dev, uint32_t offset, void *buf, uint32_t len);
/* Device-side write that bypasses write masks (e.g. status bits, cap data). */
UFIO_API int ufio_dev_config_write_raw(struct ufio_dev *dev, uint32_t offset, const void *buf, uint32_t len);

/* ---- regions --------------------------------------------------------- */

#define UFIO_BAR_MEM32    0x0u
#define UFIO_BAR_IO       0x1u
#define UFIO_BAR_MEM64    0x2u  /* takes bar and bar+1 */
#define UFIO_BAR_PREFETCH 0x4u

/*
 * Adds BAR 0..5 of the given size (a power of two, >= 16 for memory and
 * >= 4 for I/O) and type. fn handles accesses outside mmap areas and the
 * MSI-X table/PBA; fn may be NULL (reads return zero, writes are ignored).
 */
UFIO_API int ufio_dev_add_bar(struct ufio_dev *dev, unsigned bar, uint64_t size, unsigned flags,
                              ufio_region_access_fn fn, void *opaque);
/* Expansion ROM: read-only to the client. */
UFIO_API int ufio_dev_add_rom(struct ufio_dev *dev, uint64_t size, ufio_region_access_fn fn, void *opaque);

/*
 * Backs [offset, offset+size) of a BAR with shared memory the client may
 * mmap (advertised as a sparse mmap area with a memfd). offset and size are
 * page-aligned. *mem receives the device's own mapping of that range, valid
 * until the device is destroyed. Client REGION_READ/WRITE there access the
 * memory directly. Must not overlap the MSI-X table or PBA.
 */
UFIO_API int ufio_dev_add_mmap_area(struct ufio_dev *dev, unsigned region,
                                    uint64_t offset, uint64_t size, void **mem);

/* ---- interrupts ------------------------------------------------------ */

/* Declares count vectors for ERR or REQ (0 or 1). INTx/MSI/MSI-X follow
 * the pin and capabilities. */
UFIO_API int ufio_dev_setup_irq(struct ufio_dev *dev, unsigned index, uint32_t count);

/*
 * Raises an interrupt. MSI-X: delivered unless the function or the vector is
 * masked, in which case the PBA bit is set and the interrupt delivered on
 * unmask. MSI: delivered if enabled and unmasked (else pending). INTx: only if
 * not disabled in the command register and not masked; INTx auto-masks until
 * the client unmasks. Returns 0 when signalled, 1 when left pending,
 * -ENOENT when the client has no eventfd for that vector.
 */
UFIO_API int ufio_dev_irq_trigger(struct ufio_dev *dev, unsigned index, uint32_t vector);
/* Which interrupt mode the guest enabled: UFIO_IRQ_MSIX, UFIO_IRQ_MSI, UFIO_IRQ_INTX, or -1. */
UFIO_API int ufio_dev_irq_mode(struct ufio_dev *dev);

/* ---- DMA -------------------------------------------------------------- */

/*
 * Copies between device buffers and client memory. Ranges mapped with an fd
 * are accessed directly; ranges without one go through DMA_READ/DMA_WRITE
 * messages to the client (over the twin socket when negotiated), split at
 * the client's max_data_xfer_size. Writes are recorded for dirty logging.
 * -EFAULT when [iova, iova+len) is not entirely mapped with the needed
 * permission; -ENOTCONN without a client.
 */
UFIO_API int ufio_dev_dma_read(struct ufio_dev *dev, uint64_t iova, void *buf, size_t len);
UFIO_API int ufio_dev_dma_write(struct ufio_dev *dev, uint64_t iova, const void *buf, size_t len);

/*
 * Direct pointer to [iova, iova+len) when it lies inside one fd-backed
 * mapping with the needed permission, else NULL. With write = true the
 * range is recorded as dirty (call ufio_dev_dma_mark_dirty() again if the
 * device keeps writing through the pointer across a dirty-log report).
 */
UFIO_API void *ufio_dev_dma_ptr(struct ufio_dev *dev, uint64_t iova, size_t len, bool write);
/* Marks the mapped parts of [iova, iova+len) dirty (holes between mappings are skipped). */
UFIO_API void ufio_dev_dma_mark_dirty(struct ufio_dev *dev, uint64_t iova, size_t len);

/* ---- attaching and running ------------------------------------------- */

/* Listens on a UNIX socket path (replacing a stale socket file). */
UFIO_API int ufio_dev_listen(struct ufio_dev *dev, const char *path);
/*
 * The management socket: observers and the migration controller connect
 * there while the owner holds the device socket. path NULL: the default
 * derived from the device socket (ufio_mgmt_path(): PATH.mgmt; call after
 * ufio_dev_listen()). Created mode 0600.
 */
UFIO_API int ufio_dev_listen_mgmt(struct ufio_dev *dev, const char *path);
/*
 * Live handover (docs/handover.md): instead of ufio_dev_listen(), takes the
 * running device served at old_path from its server process, which must be
 * a compatible device (the compatibility descriptor; -EPERM otherwise, with
 * the reasons logged). As that process's migration controller (its
 * management socket old_path.mgmt): PRE_COPY while it serves on (unless
 * opts->no_precopy), STOP_COPY (its owner's requests held), the stream
 * loaded into dev, then the owner's connection and twin socket, its bytes
 * not yet handled, every DMA mapping, IRQ eventfd, mmap'd region memfd and
 * both listening sockets come over by SCM_RIGHTS. On 0, dev serves the same
 * owner on the same paths and the old process exits. On any failure before
 * that the old process serves on and dev has no session. dev must have
 * migration callbacks and no socket yet. opts may be NULL. Errors that say
 * more than "failed": -EPERM the devices are not compatible (the reasons
 * logged; nothing moved), -EBUSY another controller holds the device
 * (refused at once), -ENOTCONN no owner attached, -EAGAIN the old process
 * cannot hand over right now (try again); -ECONNRESET the old process died
 * during the handover (docs/handover.md).
 */
struct ufio_takeover_opts {
    size_t size;        /* sizeof(struct ufio_takeover_opts) in the caller's build */
    int timeout_ms;     /* per step; default (0) 3000: well under QEMU's 5 s per reply */
    bool no_precopy;    /* straight to STOP_COPY */
};
UFIO_API int ufio_dev_takeover(struct ufio_dev *dev, const char *old_path, const struct ufio_takeover_opts *opts);
/* Its path, or NULL when there is none. */
UFIO_API const char *ufio_dev_mgmt_socket(struct ufio_dev *dev);
/*
 * Every connection on either socket is checked with SO_PEERCRED: only the
 * listed uids get in (a refused peer is closed and logged with its pid and
 * uid). The list starts as the server's own effective uid and root; this
 * adds one (-ENOSPC past 16).
 */
UFIO_API int ufio_dev_allow_uid(struct ufio_dev *dev, uid_t uid);
/* Number of connections being served (any role, handshake included). */
UFIO_API unsigned ufio_dev_session_count(struct ufio_dev *dev);

/* Serves an already-connected socket (the backend-program --fd=N mode). */
UFIO_API int ufio_dev_attach_fd(struct ufio_dev *dev, int fd);

/* One fd to poll for readability (an epoll fd over the listener and the
 * connection); stable for the device's life. */
UFIO_API int ufio_dev_get_poll_fd(struct ufio_dev *dev);

/*
 * Handles everything pending without blocking: accepts a client, reads and
 * answers whole messages. Returns 0; -ENOTCONN when an --fd client went away
 * (nothing more to serve); other -errno only for fatal local errors.
 * A client that misbehaves is answered or disconnected, never fatal.
 */
UFIO_API int ufio_dev_run_once(struct ufio_dev *dev);

/*
 * Blocking loop around run_once until ufio_dev_stop(); returns 0 then. With a
 * client attached it sleeps in recvmsg on the client's socket (cheaper to
 * wake than epoll_wait; see docs/performance.md), at most 100 ms at a time,
 * unless client and device are pinned to the same single CPU. The device's
 * socket is then in blocking mode; the library itself never blocks on it
 * outside this loop.
 */
UFIO_API int ufio_dev_run(struct ufio_dev *dev);
/*
 * Adaptive polling for ufio_dev_run(): after handling a message, keep polling
 * the socket for up to usec microseconds before sleeping, so back-to-back
 * accesses do not pay a process wake-up each; an idle device sleeps once the
 * budget is spent. 0 (the default) always sleeps. At most UFIO_MAX_POLL_US.
 */
#define UFIO_MAX_POLL_US 100000
UFIO_API int ufio_dev_set_poll_budget(struct ufio_dev *dev, unsigned usec);

/* Async-signal-safe: makes ufio_dev_run() return: at once from a signal
 * handler on the loop's thread, within 100 ms from any other thread. */
UFIO_API void ufio_dev_stop(struct ufio_dev *dev);

/*
 * ---- quiesce ----------------------------------------------------------
 *
 * For a device whose own threads do DMA (a worker copying through
 * ufio_dev_dma_ptr() memory): ops.quiesce lets it finish what is in flight
 * before the library takes that memory away, stops or resets the device.
 *
 * The contract, from the device's side:
 *  - when ops.quiesce is called, the device stops starting new DMA: from
 *    then until the operation is done, no thread of the device begins an
 *    access to client memory (through ufio_dev_dma_ptr() pointers or
 *    ufio_dev_dma_read/write()); what is already under way may complete;
 *  - it returns 0 if nothing is in flight, or -EBUSY and, once the last
 *    access in flight has completed, calls ufio_dev_quiesced(dev, 0) from any
 *    thread (also from inside ops.quiesce itself: the library then goes on at
 *    once), or ufio_dev_quiesced(dev, -errno) if it could not quiesce: the
 *    operation then fails with that errno (its client gets it; a DMA mapping
 *    stays mapped, the state is unchanged) and the session goes on. It calls
 *    ufio_dev_quiesced() exactly once per -EBUSY;
 *  - the quiesce ends with the operation, implicitly: there is no resume
 *    call. The operation runs on the loop's thread right after the device is
 *    quiesced and makes its own callbacks (dma_unmap for each range, reset,
 *    the migration transition, detach); once they have returned, the device
 *    may start DMA again (typically that callback restarts its workers). A
 *    migration stop leaves the device stopped: it resumes DMA when a
 *    transition runs it again, as without a quiesce. If no such callback
 *    comes (the device registered none, or the request failed after all or
 *    its session went away), the quiesce has ended by the time the library
 *    calls a callback for the owner's next request that touches device
 *    state (a BAR access, a DMA map...): those wait until then. Callbacks
 *    for other sessions (an observer's read of a claimed config range, a
 *    migration size estimate) may come while a quiesce is pending and do not
 *    end it;
 *  - a device that failed a quiesce may start DMA again at once.
 *
 * And the library's side: while a quiesce is pending, the request that
 * caused it is held, and so is every later request of the same session (none
 * is read from its socket, so order is kept), as is every owner request
 * that touches device state (REGION_READ/WRITE, SET_IRQS, DMA_MAP/UNMAP,
 * DEVICE_RESET); other sessions (observers, the migration controller's
 * queries) are served meanwhile. No reply is sent until the device said it
 * is quiesced: keep the wait well inside the VMM's reply timeout (QEMU's
 * x-msg-timeout, 5 s). An owner that goes away keeps its DMA mappings until
 * the quiesce completes (a new owner waits for its place meanwhile, within
 * its handshake limit); a device that fails that quiesce loses them anyway,
 * since the client is gone. One quiesce is pending at a time; a request
 * needing another waits for the first operation to end. If the session of a
 * held request goes away, the quiesce still completes and no operation
 * follows. ufio_dev_destroy() does not quiesce: stop the device's threads
 * before destroying it (and never call ufio_dev_quiesced() after).
 *
 * ufio_dev_quiesced() returns 0, or -EINVAL when no quiesce is waiting (or
 * the device has no ops.quiesce). An err that is neither 0 nor a negative
 * errno counts as -EIO. Safe from any thread, not from a signal handler.
 */
UFIO_API int ufio_dev_quiesced(struct ufio_dev *dev, int err);

/* Is an owner attached (past VERSION)? */
UFIO_API bool ufio_dev_client_connected(struct ufio_dev *dev);
/* Removes the listening socket files, device and management (also done by destroy). */
UFIO_API void ufio_dev_unlink_socket(struct ufio_dev *dev);

#ifdef __cplusplus
}
#endif
#endif
