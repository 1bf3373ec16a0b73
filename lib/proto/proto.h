/*
 * vfio-user wire layer: pure encode/decode/validate of every message.
 *
 * No I/O, no allocation. Decoders read a payload (the bytes after the 16-byte
 * header) through a bounds-checked cursor into a host-side struct; a decoder
 * never keeps pointers into the buffer except where a field is documented as
 * "borrowed" (valid while the message buffer lives). Encoders write a payload
 * into a caller buffer and return its length or -ENOSPC.
 *
 * All functions return 0 (or a length) on success and a negative errno on
 * failure; the errno is the one that goes into an error reply.
 */
#ifndef UFIO_PROTO_H
#define UFIO_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/cursor.h"

/* ---- header ---------------------------------------------------------- */

#define VFIO_USER_HDR_SIZE 16

enum vfio_user_command {
    VFIO_USER_VERSION = 1,
    VFIO_USER_DMA_MAP = 2,
    VFIO_USER_DMA_UNMAP = 3,
    VFIO_USER_DEVICE_GET_INFO = 4,
    VFIO_USER_DEVICE_GET_REGION_INFO = 5,
    VFIO_USER_DEVICE_GET_REGION_IO_FDS = 6,
    VFIO_USER_DEVICE_GET_IRQ_INFO = 7,
    VFIO_USER_DEVICE_SET_IRQS = 8,
    VFIO_USER_REGION_READ = 9,
    VFIO_USER_REGION_WRITE = 10,
    VFIO_USER_DMA_READ = 11,
    VFIO_USER_DMA_WRITE = 12,
    VFIO_USER_DEVICE_RESET = 13,
    /* 14 was DIRTY_PAGES (migration v1); never reuse. */
    VFIO_USER_REGION_WRITE_MULTI = 15,
    VFIO_USER_DEVICE_FEATURE = 16,
    VFIO_USER_MIG_DATA_READ = 17,
    VFIO_USER_MIG_DATA_WRITE = 18,
    UFIO_CMD_HANDOVER = 19,  /* ufio's own: the controller takes over the device's fds (docs/handover.md) */
    VFIO_USER_MAX_CMD = 20,
};

#define VFIO_USER_F_TYPE_MASK    0xfu
#define VFIO_USER_F_TYPE_COMMAND 0x0u
#define VFIO_USER_F_TYPE_REPLY   0x1u
#define VFIO_USER_F_NO_REPLY     0x10u
#define VFIO_USER_F_ERROR        0x20u
#define VFIO_USER_F_KNOWN        (VFIO_USER_F_TYPE_MASK | VFIO_USER_F_NO_REPLY | VFIO_USER_F_ERROR)

/* Largest errno we accept from a peer; anything above is mapped to EPROTO. */
#define UFIO_MAX_ERRNO 4095

struct vfio_user_header {
    uint16_t msg_id;
    uint16_t cmd;
    uint32_t msg_size; /* whole message, header included */
    uint32_t flags;
    uint32_t error_no;
};

/*
 * Decodes and validates a header: buf must hold >= 16 bytes; msg_size must be
 * >= 16 and <= max_size; type must be command or reply; no reserved flag bits.
 * Returns 0, -EPROTO for a header that breaks framing (size out of bounds,
 * which means the stream cannot be resynchronised) or -EINVAL for a bad flag.
 */
int ufio_hdr_decode(const void *buf, size_t len, size_t max_size,
                    struct vfio_user_header *h);
void ufio_hdr_encode(void *buf, const struct vfio_user_header *h);
const char *ufio_cmd_name(unsigned cmd);
static inline bool ufio_hdr_is_reply(const struct vfio_user_header *h)
{
    return (h->flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_REPLY;
}

/* ---- VERSION (1) ----------------------------------------------------- */

#define UFIO_PROTO_MAJOR 0
#define UFIO_PROTO_MINOR 2

#define UFIO_DEFAULT_MAX_MSG_FDS 1
#define UFIO_DEFAULT_MAX_DATA_XFER (1u << 20)
#define UFIO_DEFAULT_MAX_DMA_MAPS 65535
#define UFIO_DEFAULT_PGSIZES 4096
/* QEMU refuses a peer max_msg_fds above 16; a peer offering more is clamped to it. */
#define UFIO_MAX_MSG_FDS_LIMIT 16
/* Our ceiling for any max_data_xfer_size, proposed or accepted (QEMU: 64 MiB). */
#define UFIO_MAX_DATA_XFER_LIMIT (64u << 20)
/* Upper bound on the JSON text we accept in a VERSION message. */
#define UFIO_MAX_VERSION_JSON 4096
/* Containers nested in it (the capabilities themselves need 3). */
#define UFIO_VERSION_JSON_DEPTH 16

struct ufio_caps {
    uint32_t max_msg_fds;
    uint64_t max_data_xfer_size;
    uint32_t max_dma_maps;
    uint64_t pgsizes;
    bool has_migration;           /* legacy v1 object; parsed, never required */
    uint64_t mig_pgsize;
    uint64_t mig_max_bitmap_size;
    bool twin_socket;             /* twin_socket.supported */
    bool has_twin_fd_index;
    uint32_t twin_fd_index;       /* reply only */
    bool write_multiple;
    uint8_t role;                 /* ufio_role: UFIO_ROLE_*, 0 = not asked (docs/sessions.md) */
    bool no_wait;                 /* ufio_no_wait: refuse at once if the role is taken (request only) */
    uint8_t handover;             /* ufio_handover: the handover protocol a controller speaks, 0 = none */
};

/* Session roles (a bit each, so the command table can hold sets of them). */
#define UFIO_ROLE_OWNER      0x1u
#define UFIO_ROLE_OBSERVER   0x2u
#define UFIO_ROLE_CONTROLLER 0x4u
const char *ufio_role_name(unsigned role);

/* Fills caps with the spec's defaults (what an absent key means). */
void ufio_caps_defaults(struct ufio_caps *c);

/*
 * Parses the NUL-terminated JSON text of a VERSION message into caps (which
 * starts from defaults). Unknown keys are ignored; wrong types, values out of
 * range, anything the strict reader (proto/json.h) refuses (duplicate keys
 * included), trailing garbage or a missing NUL are -EINVAL.
 */
int ufio_caps_parse(const char *json, size_t len, struct ufio_caps *caps);
/* Emits the JSON object text (with its NUL) into buf; returns length incl. NUL. */
ssize_t ufio_caps_emit(const struct ufio_caps *caps, char *buf, size_t cap);

struct ufio_version {
    uint16_t major;
    uint16_t minor;
    struct ufio_caps caps;  /* defaults when no JSON present */
    bool has_json;
};
int ufio_version_decode(const void *payload, size_t len, struct ufio_version *v);
ssize_t ufio_version_encode(const struct ufio_version *v, void *buf, size_t cap);

/*
 * Server-side negotiation: given the client's proposal and what the server
 * offers, computes the reply (major = client's, minor = min, caps = the
 * server's limits, twin_socket only when both want it). -ENOTSUP when the
 * major differs.
 */
int ufio_version_negotiate(const struct ufio_version *client,
                           const struct ufio_version *server,
                           struct ufio_version *reply);

/* ---- DMA_MAP (2) / DMA_UNMAP (3) ------------------------------------- */

#define VFIO_USER_F_DMA_REGION_READ  0x1u
#define VFIO_USER_F_DMA_REGION_WRITE 0x2u
#define VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP 0x1u
#define VFIO_DMA_UNMAP_FLAG_ALL 0x2u

struct ufio_dma_map {
    uint32_t argsz;
    uint32_t flags;
    uint64_t offset;
    uint64_t addr;
    uint64_t size;
};
/* Checks argsz == 32, known flags, size > 0, addr + size does not wrap. */
int ufio_dma_map_decode(const void *payload, size_t len, struct ufio_dma_map *m);
ssize_t ufio_dma_map_encode(const struct ufio_dma_map *m, void *buf, size_t cap);

struct ufio_dma_unmap {
    uint32_t argsz;
    uint32_t flags;
    uint64_t addr;
    uint64_t size;
};
/* Accepts flags 0 or FLAG_ALL (then addr = size = 0); GET_DIRTY_BITMAP is -ENOTSUP. */
int ufio_dma_unmap_decode(const void *payload, size_t len, struct ufio_dma_unmap *u);
ssize_t ufio_dma_unmap_encode(const struct ufio_dma_unmap *u, void *buf, size_t cap);

/* ---- DEVICE_GET_INFO (4) --------------------------------------------- */

#define VFIO_DEVICE_FLAGS_RESET 0x1u
#define VFIO_DEVICE_FLAGS_PCI   0x2u

struct ufio_device_info {
    uint32_t argsz;
    uint32_t flags;
    uint32_t num_regions;
    uint32_t num_irqs;
};
/* Request: argsz >= 16 (any size payload >= 16 bytes is read; extra ignored). */
int ufio_device_info_decode(const void *payload, size_t len, struct ufio_device_info *i);
ssize_t ufio_device_info_encode(const struct ufio_device_info *i, void *buf, size_t cap);

/* ---- DEVICE_GET_REGION_INFO (5) -------------------------------------- */

#define VFIO_REGION_INFO_FLAG_READ  0x1u
#define VFIO_REGION_INFO_FLAG_WRITE 0x2u
#define VFIO_REGION_INFO_FLAG_MMAP  0x4u
#define VFIO_REGION_INFO_FLAG_CAPS  0x8u
#define VFIO_REGION_INFO_CAP_SPARSE_MMAP 1
#define VFIO_REGION_INFO_CAP_TYPE 2
#define UFIO_REGION_INFO_SIZE 32
#define UFIO_MAX_SPARSE_AREAS 64

struct ufio_sparse_area {
    uint64_t offset;
    uint64_t size;
};

struct ufio_region_info {
    uint32_t argsz;
    uint32_t flags;
    uint32_t index;
    uint32_t cap_offset;
    uint64_t size;
    uint64_t offset;
    /* decoded / to-encode capabilities */
    uint32_t nr_areas;                 /* sparse mmap areas; 0 = no sparse cap */
    struct ufio_sparse_area areas[UFIO_MAX_SPARSE_AREAS];
    bool has_type;
    uint32_t type, subtype;
};
/* Request: argsz >= 32, index only (others ignored). */
int ufio_region_info_req_decode(const void *payload, size_t len, uint32_t *argsz, uint32_t *index);
ssize_t ufio_region_info_req_encode(uint32_t argsz, uint32_t index, void *buf, size_t cap);
/*
 * Reply: encodes the 32-byte struct plus the capability chain. The reply argsz
 * is the full size; when it exceeds client_argsz only the 32 bytes are written
 * (the client retries with a larger argsz), as VFIO does.
 */
ssize_t ufio_region_info_encode(const struct ufio_region_info *ri, uint32_t client_argsz,
                                void *buf, size_t cap);
/*
 * Reply decode (client side): walks the cap chain with loop and bounds
 * protection, validates areas lie within size. -EINVAL on malformed.
 */
int ufio_region_info_decode(const void *payload, size_t len, struct ufio_region_info *ri);

/* ---- DEVICE_GET_REGION_IO_FDS (6) ------------------------------------ */

#define VFIO_USER_IO_FD_TYPE_IOEVENTFD 0
#define VFIO_USER_IO_FD_TYPE_IOREGIONFD 1
#define UFIO_IO_FD_ENTRY_SIZE 40
#define UFIO_MAX_IO_FDS 16

struct ufio_io_fd_entry {
    uint64_t offset;
    uint64_t size;
    uint32_t fd_index;
    uint32_t type;
    uint32_t flags;
    uint64_t datamatch; /* or user_data for ioregionfd */
};

struct ufio_io_fds {
    uint32_t argsz;
    uint32_t flags;
    uint32_t index;
    uint32_t count;
    struct ufio_io_fd_entry e[UFIO_MAX_IO_FDS];
};
int ufio_io_fds_req_decode(const void *payload, size_t len, uint32_t *argsz, uint32_t *index);
ssize_t ufio_io_fds_req_encode(uint32_t argsz, uint32_t index, void *buf, size_t cap);
/* Same fitting rule as region info: head only if client_argsz is too small. */
ssize_t ufio_io_fds_encode(const struct ufio_io_fds *f, uint32_t client_argsz, void *buf, size_t cap);
/* Stride is (argsz - 16) / count (spec text says 32; the head is 16 bytes). nfds bounds fd_index. */
int ufio_io_fds_decode(const void *payload, size_t len, size_t nfds, struct ufio_io_fds *f);

/* ---- DEVICE_GET_IRQ_INFO (7) / DEVICE_SET_IRQS (8) -------------------- */

#define VFIO_IRQ_INFO_EVENTFD    0x1u
#define VFIO_IRQ_INFO_MASKABLE   0x2u
#define VFIO_IRQ_INFO_AUTOMASKED 0x4u
#define VFIO_IRQ_INFO_NORESIZE   0x8u

#define VFIO_IRQ_SET_DATA_NONE      0x01u
#define VFIO_IRQ_SET_DATA_BOOL      0x02u
#define VFIO_IRQ_SET_DATA_EVENTFD   0x04u
#define VFIO_IRQ_SET_DATA_TYPE_MASK 0x07u
#define VFIO_IRQ_SET_ACTION_MASK    0x08u
#define VFIO_IRQ_SET_ACTION_UNMASK  0x10u
#define VFIO_IRQ_SET_ACTION_TRIGGER 0x20u
#define VFIO_IRQ_SET_ACTION_TYPE_MASK 0x38u

struct ufio_irq_info {
    uint32_t argsz;
    uint32_t flags;
    uint32_t index;
    uint32_t count;
};
int ufio_irq_info_decode(const void *payload, size_t len, struct ufio_irq_info *i);
ssize_t ufio_irq_info_encode(const struct ufio_irq_info *i, void *buf, size_t cap);

struct ufio_irq_set {
    uint32_t argsz;
    uint32_t flags;
    uint32_t index;
    uint32_t start;
    uint32_t count;
    const uint8_t *bools; /* borrowed: count bytes when DATA_BOOL */
};
/*
 * Decodes and validates everything that does not need device knowledge:
 * argsz == payload length, exactly one data type and one action, no unknown
 * flag, index < 5, ERR/REQ only TRIGGER with count <= 1, count 0 only with
 * start 0 + DATA_NONE + TRIGGER, DATA_BOOL payload = count bytes, no payload
 * otherwise, nfds == count (or 0) for DATA_EVENTFD and nfds == 0 otherwise,
 * start + count no overflow. The device checks start + count <= its count.
 */
int ufio_irq_set_decode(const void *payload, size_t len, size_t nfds, struct ufio_irq_set *s);
ssize_t ufio_irq_set_encode(const struct ufio_irq_set *s, void *buf, size_t cap);

/* ---- REGION_READ (9) / REGION_WRITE (10) ----------------------------- */

struct ufio_region_access {
    uint64_t offset;
    uint32_t region;
    uint32_t count;
    const uint8_t *data; /* borrowed: count bytes (WRITE request, READ reply) */
};
/* READ request: exactly 16 bytes; count <= max_xfer. */
int ufio_region_read_req_decode(const void *payload, size_t len, uint64_t max_xfer,
                                struct ufio_region_access *a);
/* WRITE request: 16 + count bytes exactly; count <= max_xfer. */
int ufio_region_write_req_decode(const void *payload, size_t len, uint64_t max_xfer,
                                 struct ufio_region_access *a);
/* A REGION_WRITE whose data (data_len bytes) was received elsewhere: only the
 * 16-byte head is in head; data stays NULL. Same rules as the above. */
int ufio_region_write_head_decode(const void *head, size_t head_len, uint64_t data_len,
                                  uint64_t max_xfer, struct ufio_region_access *a);
/* READ reply: 16 + count. WRITE reply: 16 bytes. Both checked against want. */
int ufio_region_read_reply_decode(const void *payload, size_t len,
                                  const struct ufio_region_access *want,
                                  struct ufio_region_access *a);
int ufio_region_write_reply_decode(const void *payload, size_t len,
                                   const struct ufio_region_access *want);
/* Writes the 16-byte head; data (if any) follows separately (scatter-gather). */
ssize_t ufio_region_access_head_encode(const struct ufio_region_access *a, void *buf, size_t cap);

/* ---- DMA_READ (11) / DMA_WRITE (12), server -> client ---------------- */

struct ufio_dma_access {
    uint64_t addr;
    uint64_t count;
    const uint8_t *data; /* borrowed */
};
/* Spec layout: addr u64, count u64, data. */
int ufio_dma_read_req_decode(const void *payload, size_t len, uint64_t max_xfer, struct ufio_dma_access *a);
int ufio_dma_write_req_decode(const void *payload, size_t len, uint64_t max_xfer, struct ufio_dma_access *a);
int ufio_dma_read_reply_decode(const void *payload, size_t len, const struct ufio_dma_access *want,
                               struct ufio_dma_access *a);
/* DMA_WRITE reply: addr u64 + count (spec: u32; u64 accepted too); empty payload accepted (QEMU). */
int ufio_dma_write_reply_decode(const void *payload, size_t len, const struct ufio_dma_access *want);
ssize_t ufio_dma_access_head_encode(const struct ufio_dma_access *a, void *buf, size_t cap);
/* DMA_WRITE reply as the spec gives it: addr u64, count u32 (12 bytes). */
ssize_t ufio_dma_write_reply_encode(const struct ufio_dma_access *a, void *buf, size_t cap);

/* ---- REGION_WRITE_MULTI (15) ----------------------------------------- */

#define UFIO_WRITE_MULTI_MAX 200
#define UFIO_WRITE_MULTI_ENTRY 24

struct ufio_write_multi_entry {
    uint64_t offset;
    uint32_t region;
    uint32_t count;   /* 1..8 */
    uint8_t data[8];
};
/* Validates wr_cnt in 1..UFIO_WRITE_MULTI_MAX, payload = 8 + 24*wr_cnt, each count 1..8. */
int ufio_write_multi_decode(const void *payload, size_t len, uint64_t *wr_cnt,
                            struct ufio_write_multi_entry *e /* [UFIO_WRITE_MULTI_MAX] */);
ssize_t ufio_write_multi_encode(const struct ufio_write_multi_entry *e, uint64_t n, void *buf, size_t cap);

/* ---- DEVICE_FEATURE (16) --------------------------------------------- */

#define VFIO_DEVICE_FEATURE_MASK  0xffffu
#define VFIO_DEVICE_FEATURE_GET   0x10000u
#define VFIO_DEVICE_FEATURE_SET   0x20000u
#define VFIO_DEVICE_FEATURE_PROBE 0x40000u
#define VFIO_DEVICE_FEATURE_KNOWN (VFIO_DEVICE_FEATURE_MASK | VFIO_DEVICE_FEATURE_GET | \
                                   VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE)

#define VFIO_DEVICE_FEATURE_MIGRATION 1
#define VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE 2
#define VFIO_DEVICE_FEATURE_DMA_LOGGING_START 6
#define VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP 7
#define VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT 8
#define VFIO_DEVICE_FEATURE_MIG_DATA_SIZE 9

struct ufio_feature {
    uint32_t argsz;
    uint32_t flags;
    const uint8_t *data; /* borrowed */
    size_t data_len;
};
/*
 * Checks unknown flag bits, GET and SET together only with PROBE,
 * argsz >= 8. Feature-specific data is decoded by the handler.
 */
int ufio_feature_decode(const void *payload, size_t len, struct ufio_feature *f);
ssize_t ufio_feature_head_encode(uint32_t argsz, uint32_t flags, void *buf, size_t cap);

/* DEVICE_FEATURE data of MIG_DEVICE_STATE: device_state u32, data_fd s32 (-1: none in vfio-user). */
struct ufio_mig_state_data {
    uint32_t state;
    int32_t data_fd;
};
/* Exactly 8 bytes. */
int ufio_mig_state_decode(const void *data, size_t len, struct ufio_mig_state_data *d);
ssize_t ufio_mig_state_encode(const struct ufio_mig_state_data *d, void *buf, size_t cap);

/*
 * DMA_LOGGING_START control: page_size u64, num_ranges u32, reserved u32,
 * then num_ranges x (iova u64, length u64). The decoder checks page_size (a
 * power of two, 4 KiB .. 1 GiB), num_ranges <= UFIO_LOG_MAX_RANGES (else
 * -E2BIG), the exact length, every range non-empty and page-aligned (-EINVAL),
 * not wrapping (-EOVERFLOW) and not overlapping another (-EINVAL).
 */
#define UFIO_LOG_MAX_RANGES 1024
struct ufio_log_start {
    uint64_t page_size;
    uint32_t nranges;
    const uint8_t *ranges; /* borrowed: nranges x 16 bytes */
};
int ufio_log_start_decode(const void *data, size_t len, struct ufio_log_start *s);
void ufio_log_start_range(const struct ufio_log_start *s, uint32_t i, uint64_t *iova, uint64_t *length);
/* ranges: nranges x {iova, length}, written as the wire wants them. */
ssize_t ufio_log_start_encode(uint64_t page_size, const uint64_t (*ranges)[2], uint32_t nranges, void *buf,
                              size_t cap);

/*
 * DMA_LOGGING_REPORT request: iova u64, length u64, page_size u64 (a power
 * of two >= 4 KiB, length > 0, no wrap). The reply is the 24 bytes echoed,
 * then ufio_log_bitmap_bytes() of bitmap.
 */
struct ufio_log_report {
    uint64_t iova, length, page_size;
};
int ufio_log_report_decode(const void *data, size_t len, struct ufio_log_report *r);
ssize_t ufio_log_report_encode(const struct ufio_log_report *r, void *buf, size_t cap);
uint64_t ufio_log_bitmap_bytes(const struct ufio_log_report *r);

/* ---- MIG_DATA_READ (17) / MIG_DATA_WRITE (18) ------------------------ */

struct ufio_mig_data {
    uint32_t argsz;
    uint32_t size;
    const uint8_t *data; /* borrowed (WRITE request, READ reply) */
};
int ufio_mig_read_req_decode(const void *payload, size_t len, uint64_t max_xfer, struct ufio_mig_data *m);
int ufio_mig_write_req_decode(const void *payload, size_t len, uint64_t max_xfer, struct ufio_mig_data *m);
int ufio_mig_read_reply_decode(const void *payload, size_t len, uint32_t asked, struct ufio_mig_data *m);
ssize_t ufio_mig_data_head_encode(const struct ufio_mig_data *m, void *buf, size_t cap);

#endif
