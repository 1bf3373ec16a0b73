/*
 * libufio client API: attach to any vfio-user server.
 *
 * The client trusts nothing from the server: every reply is validated
 * (sizes, argsz, counts, fds, offsets); a reply that does not come within the
 * timeout is -ETIMEDOUT; a server that dies is -ENOTCONN (never SIGPIPE);
 * every fd the server sends is either handed to the caller (documented per
 * call) or closed.
 *
 * Threading: every call may be made from several threads at once. Requests
 * get distinct msg_ids and replies are matched by msg_id. While a thread
 * waits for its reply it also serves the server's DMA_READ/DMA_WRITE requests
 * (on the twin socket when negotiated) against memory registered with
 * ufio_client_dma_map(). When no call is in flight, a client whose server
 * may start DMA on its own should poll ufio_client_get_poll_fd() and call
 * ufio_client_process() when it is readable.
 */
#ifndef UFIO_CLIENT_H
#define UFIO_CLIENT_H

#include <ufio/ufio.h>

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ufio_client;

struct ufio_client_opts {
    size_t size;                 /* sizeof(struct ufio_client_opts) in the caller's build */
    int timeout_ms;              /* connect and per-reply timeout; default 5000 */
    bool no_twin_socket;         /* do not propose a twin socket */
    uint32_t max_data_xfer_size; /* what we accept; default 1 MiB */
    uint32_t max_msg_fds;        /* what we accept; default 16 */
    /* busy-poll for a reply up to this many microseconds before sleeping
     * (in recvmsg, or in poll() while the server may ask us for fd-less
     * memory or shares our one CPU): saves the wake-up (tens of µs across
     * CPUs) on short requests */
    unsigned poll_us;
    /* enum ufio_role: what to ask a ufio server for (docs/sessions.md).
     * DEFAULT / OWNER_REQ: the device socket, as the VMM. OBSERVER_REQ
     * (read-only) and CONTROLLER_REQ (migration): the device's management
     * socket PATH.mgmt when it exists, else PATH itself; a device with an
     * owner attached is reached that way. A second owner or controller is
     * refused with -EBUSY. */
    uint64_t role;               /* 64 bits: starts after 1.0's sizeof (docs/abi.md) */
};

/* Connects to path (waiting up to timeout_ms for it to appear), negotiates,
 * and records the device's identity (PCI ids from config space, compatibility
 * descriptor) for ufio_client_reconnect(). opts may be NULL (defaults);
 * opts->size as in ufio.h (-EINVAL, -E2BIG). */
UFIO_API int ufio_client_connect(const char *path, const struct ufio_client_opts *opts,
                                 struct ufio_client **out);
/* Same over an already-connected socket (taken over; closed by destroy). */
UFIO_API int ufio_client_attach_fd(int fd, const struct ufio_client_opts *opts, struct ufio_client **out);
UFIO_API void ufio_client_destroy(struct ufio_client *c);

/* What the server granted in VERSION. */
struct ufio_client_caps {
    size_t size;            /* set by the caller: sizeof(struct ufio_client_caps) */
    uint16_t major, minor;
    uint32_t max_msg_fds;
    uint64_t max_data_xfer_size;
    uint32_t max_dma_maps;
    uint64_t pgsizes;
    bool twin_socket;
    bool write_multiple;
};
/* -EINVAL when caps->size is not set. */
UFIO_API int ufio_client_get_caps(struct ufio_client *c, struct ufio_client_caps *caps);

/* ---- device description ------------------------------------------------ */

/* The info structs below: the caller sets size = sizeof the struct before the call. */
struct ufio_client_device_info {
    size_t size;
    uint32_t flags;         /* VFIO_DEVICE_FLAGS_* (1 reset, 2 PCI) */
    uint32_t num_regions;
    uint32_t num_irqs;
};
UFIO_API int ufio_client_device_info(struct ufio_client *c, struct ufio_client_device_info *info);

struct ufio_client_region_info {
    size_t size;
    uint32_t index;
    uint32_t flags;         /* 1 read, 2 write, 4 mmap, 8 caps */
    uint64_t region_size;
    uint64_t offset;        /* mmap offset in fd */
    int fd;                 /* mmap fd or -1; owned by the client (valid until destroy/reconnect) */
    uint32_t nr_areas;      /* sparse mmap areas: ufio_client_region_areas() lists them */
    bool has_type;
    uint32_t type, subtype;
};
UFIO_API int ufio_client_region_info(struct ufio_client *c, unsigned index,
                                     struct ufio_client_region_info *ri);

/* One sparse mmap area of a region (a frozen layout: it never grows). */
struct ufio_client_area {
    uint64_t offset, size;
};
/*
 * The region's sparse mmap areas (asks the server, as region_info does):
 * fills areas[0 .. min(n, max)) and returns n, the region's number of areas
 * (call again with a larger array when n > max); areas may be NULL when max
 * is 0. -errno on failure.
 */
UFIO_API int ufio_client_region_areas(struct ufio_client *c, unsigned index,
                                      struct ufio_client_area *areas, uint32_t max);

struct ufio_client_irq_info {
    size_t size;
    uint32_t flags;         /* 1 eventfd, 2 maskable, 4 automasked, 8 noresize */
    uint32_t count;
};
UFIO_API int ufio_client_irq_info(struct ufio_client *c, unsigned index, struct ufio_client_irq_info *ii);

/* ---- region access ----------------------------------------------------- */

/* Any length: split at the server's max_data_xfer_size. Offsets are checked
 * against the region's size when it is known. */
UFIO_API int ufio_client_region_read(struct ufio_client *c, unsigned region, uint64_t offset,
                                     void *buf, size_t len);
UFIO_API int ufio_client_region_write(struct ufio_client *c, unsigned region, uint64_t offset,
                                      const void *buf, size_t len);
/* Posted write (No_reply): returns once sent; errors are not reported by the
 * server. Small writes are queued and sent as REGION_WRITE_MULTI batches when
 * the server offers it; any following request flushes the queue first. */
UFIO_API int ufio_client_region_write_posted(struct ufio_client *c, unsigned region, uint64_t offset,
                                             const void *buf, size_t len);
UFIO_API int ufio_client_flush(struct ufio_client *c);

/*
 * Maps an mmap-able area of a region: [offset, offset+len) must lie inside
 * one sparse mmap area (or the whole region if it has MMAP and no areas).
 * Returns the mapping in *ptr (unmap with munmap(ptr, len)).
 */
UFIO_API int ufio_client_region_mmap(struct ufio_client *c, unsigned region, uint64_t offset,
                                     size_t len, void **ptr);

/* ---- DMA --------------------------------------------------------------- */

#define UFIO_DMA_READ  0x1u  /* the device may read */
#define UFIO_DMA_WRITE 0x2u  /* the device may write */

/*
 * Makes [iova, iova+size) of client memory available to the device. local is
 * the client's own view of it (used to serve DMA_READ/DMA_WRITE requests);
 * fd (with fd_offset) lets the server mmap it directly, -1 for none. The
 * client keeps a dup of fd so the mapping can be re-established after a
 * reconnect. The caller keeps local valid until unmap.
 */
UFIO_API int ufio_client_dma_map(struct ufio_client *c, uint64_t iova, uint64_t size, uint32_t prot,
                                 void *local, int fd, uint64_t fd_offset);
UFIO_API int ufio_client_dma_unmap(struct ufio_client *c, uint64_t iova, uint64_t size);

/* ---- interrupts -------------------------------------------------------- */

/* Assigns eventfds to vectors [start, start+count) (fds NULL: de-assign).
 * The client keeps dups to restore them after a reconnect. */
UFIO_API int ufio_client_irq_set_eventfds(struct ufio_client *c, unsigned index, uint32_t start,
                                          uint32_t count, const int *fds);
/* Disables every vector of the index. */
UFIO_API int ufio_client_irq_disable(struct ufio_client *c, unsigned index);
#define UFIO_IRQ_ACTION_MASK    0x08u
#define UFIO_IRQ_ACTION_UNMASK  0x10u
#define UFIO_IRQ_ACTION_TRIGGER 0x20u
/* MASK, UNMASK or TRIGGER (loopback) for vectors [start, start+count). */
UFIO_API int ufio_client_irq_action(struct ufio_client *c, unsigned index, uint32_t start,
                                    uint32_t count, uint32_t action);
/* Waits up to timeout_ms for the eventfd to fire; returns the count (> 0),
 * 0 on timeout, -errno. */
UFIO_API int ufio_client_irq_wait(int eventfd, int timeout_ms);

/* ---- reset, features, migration data ------------------------------------ */

UFIO_API int ufio_client_reset(struct ufio_client *c);

/*
 * DEVICE_FEATURE with flags = feature index | GET/SET/PROBE bits (as the
 * kernel's). in: the request data; out: receives the reply data (after the
 * 8-byte argsz/flags head), *out_len its length.
 */
#define UFIO_FEATURE_GET   0x10000u
#define UFIO_FEATURE_SET   0x20000u
#define UFIO_FEATURE_PROBE 0x40000u
UFIO_API int ufio_client_feature(struct ufio_client *c, uint32_t flags, const void *in, size_t in_len,
                                 void *out, size_t out_cap, size_t *out_len);
/* MIG_DATA_READ of up to len bytes: *got < len means "no more now". */
UFIO_API int ufio_client_mig_data_read(struct ufio_client *c, void *buf, size_t len, size_t *got);
UFIO_API int ufio_client_mig_data_write(struct ufio_client *c, const void *buf, size_t len);

/* ---- event loop and reconnect ------------------------------------------ */

/* The fd to poll for server-initiated requests (the twin socket when
 * negotiated, else the main socket). */
UFIO_API int ufio_client_get_poll_fd(struct ufio_client *c);
/* Serves what the server sent without blocking. 0, or -ENOTCONN. */
UFIO_API int ufio_client_process(struct ufio_client *c);
UFIO_API bool ufio_client_connected(struct ufio_client *c);
/*
 * After the server went away (calls return -ENOTCONN): connects to the same
 * path again (waiting up to timeout_ms), renegotiates, and restores every DMA
 * mapping and IRQ eventfd the client had set up.
 * Only to the same device: its PCI ids (vendor, device, subsystem vendor and
 * id, class code, revision) and its compatibility descriptor (byte for byte;
 * none for a server without one) must be those ufio_client_connect() found.
 * Otherwise -ENODEV, a warning names every difference, the new connection is
 * closed before any mapping or eventfd is sent, and the client stays
 * disconnected (a later reconnect may find the right device). -ENOTSUP for a
 * client made with ufio_client_attach_fd().
 */
UFIO_API int ufio_client_reconnect(struct ufio_client *c, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
