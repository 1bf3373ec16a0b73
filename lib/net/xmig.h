/*
 * Cross-host migration: two agents, one per host, joined by a link (link.h).
 * The destination agent owns a vfio-user client of the destination device,
 * the source agent one of the source device; the device's framed, verified
 * migration stream (lib/proto/mig_stream.h) crosses the link unchanged inside
 * DATA messages. The message protocol is in docs/cross-host.md.
 *
 * Outcomes are ufio_xmig_code values; the tool's exit status is the code, on
 * one host as across hosts (one table: man/ufio-migrate.1, docs/cross-host.md).
 */
#ifndef UFIO_NET_XMIG_H
#define UFIO_NET_XMIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/link.h"

enum ufio_xmig_code {
    UFIO_XMIG_OK = 0,            /* migrated: the destination runs, the source is stopped */
    UFIO_XMIG_FAILED = 1,        /* failed, rolled back: source RUNNING with its state, destination stopped */
    UFIO_XMIG_USAGE = 2,
    UFIO_XMIG_INCOMPATIBLE = 3,  /* the devices are incompatible; nothing moved */
    UFIO_XMIG_REFUSED = 4,       /* refused before anything moved: authentication (either side), plaintext
                                    without --insecure, a stopped or busy device */
    UFIO_XMIG_INTERRUPTED = 5,   /* SIGINT/SIGTERM: rolled back as FAILED */
    UFIO_XMIG_LINK = 6,          /* link lost, peer gone, stalled, or no peer came: rolled back as FAILED */
    UFIO_XMIG_BUDGET = 7,        /* the downtime budget cannot be met: the source runs (never stopped, or
                                    resumed when stop-copy passed its deadline) */
    UFIO_XMIG_IN_DOUBT = 8,      /* commit sent (source) or loaded but not committed (destination):
                                    both devices stopped; see docs/cross-host.md */
    UFIO_XMIG_SOURCE_LOST = 9,   /* failed and the source device could not be put back to RUNNING */
    UFIO_XMIG_NUM_CODES
};
/* "migrated", "failed", "usage", ... (the JSON result names); "?" for another value */
const char *ufio_xmig_code_name(int code);

/* Message types (u32 LE type, u32 LE length, payload; bounds in xmig_proto.c). */
enum {
    XM_DESC = 1,     /* dst→src: the destination's compatibility descriptor, JSON + NUL */
    XM_BEGIN = 2,    /* src→dst: u64 flags (bit 0 precopy), u64 stop-copy estimate */
    XM_READY = 3,    /* dst→src: in RESUMING */
    XM_DATA = 4,     /* src→dst: migration stream bytes */
    XM_PROGRESS = 5, /* src→dst: u32 phase, u32 round, u64 bytes, u64 estimate left, u64 rate B/s */
    XM_END = 6,      /* src→dst: u64 stream bytes sent */
    XM_LOADED = 7,   /* dst→src: i32 status (0 or -errno), reason */
    XM_COMMIT = 8,   /* src→dst: the source is stopped; run */
    XM_DONE = 9,     /* dst→src: i32 status, reason: the destination runs */
    XM_ABORT = 10,   /* either way: i32 code (ufio_xmig_code), reason; the sender closes */
    XM_MAX_TYPE = 10,
};

#define XM_HDR 8
#define XM_MAX_DATA (4u << 20)
#define XM_MAX_REASON 1024

enum ufio_xmig_phase {
    XMIG_CONNECT, XMIG_CHECK, XMIG_PRECOPY, XMIG_STOPCOPY, XMIG_LOAD, XMIG_COMMIT, XMIG_DONE, XMIG_ABORTED,
};
const char *ufio_xmig_phase_name(enum ufio_xmig_phase p);

struct ufio_xmig_event {
    enum ufio_xmig_phase phase;
    unsigned round;
    uint64_t bytes;          /* stream bytes so far */
    double rate_bps;         /* measured stream rate over the link, bytes/s (0: none yet) */
    uint64_t estimate;       /* bytes still to send (source's estimate), 0 unknown */
    const char *msg;         /* a line for humans, or NULL */
};

struct ufio_xmig_opts {
    const char *dev_path;           /* the local device's socket */
    struct ufio_link_cfg link;
    const char *host, *port;        /* source: where to connect */
    unsigned max_downtime_ms;       /* default 300 */
    unsigned max_rounds;            /* default 30 */
    bool no_precopy;
    int dev_timeout_ms;             /* per device request, default 5000 */
    int accept_timeout_ms;          /* destination: wait this long for the source, < 0 for ever */
    void (*event)(void *opaque, const struct ufio_xmig_event *ev);
    void *opaque;
};

struct ufio_xmig_result {
    uint64_t bytes, precopy_bytes, stopcopy_bytes;
    unsigned rounds;
    double downtime_ms, total_ms, throughput_mib_s, link_rate_mib_s;
    char peer[256];
    char error[XM_MAX_REASON + 256];
};

/* Source agent: connect, check, stream, commit. Returns a ufio_xmig_code. */
int ufio_xmig_send(const struct ufio_xmig_opts *o, struct ufio_xmig_result *r);
/* Destination agent: one migration on the listening socket lfd. */
int ufio_xmig_receive(int lfd, const struct ufio_xmig_opts *o, struct ufio_xmig_result *r);

/* ---- framing (xmig_proto.c), shared by both agents and the fuzz target ---- */

/* The largest payload a message of this type may carry, 0 for "no payload",
 * -1 for an unknown type. */
long ufio_xmig_max_len(uint32_t type);
/* Decodes a message head: -EPROTO for an unknown type or a length above the bound. */
int ufio_xmig_parse_head(const uint8_t head[XM_HDR], uint32_t *type, uint32_t *len);
/* Writes a message head (for a payload already placed after it). */
void ufio_xmig_put_head(uint8_t head[XM_HDR], uint32_t type, uint32_t len);
/* Sends one message: head + the payload pieces, batched. */
int ufio_xmig_sendv(struct ufio_link *l, uint32_t type, const struct iovec *iov, int iovcnt);
int ufio_xmig_send_status(struct ufio_link *l, uint32_t type, int32_t status, const char *reason);
/* Receives one message into buf (cap bytes): -EPROTO when it does not fit or
 * is malformed; -ETIMEDOUT / -ECONNRESET from the link. */
int ufio_xmig_recv(struct ufio_link *l, uint32_t *type, void *buf, size_t cap, uint32_t *len);
/* Parses a status message (LOADED, DONE, ABORT): i32 LE + reason (sanitised, NUL-terminated). */
int ufio_xmig_parse_status(const uint8_t *buf, uint32_t len, int32_t *status, char *reason, size_t cap);

struct ufio_xmig_progress {
    uint32_t phase, round;
    uint64_t bytes, left, rate_bps;
};
/* Decoders of the fixed-layout messages: -EPROTO unless len is exact. */
int ufio_xmig_parse_begin(const uint8_t *buf, uint32_t len, uint64_t *flags, uint64_t *estimate);
int ufio_xmig_parse_progress(const uint8_t *buf, uint32_t len, struct ufio_xmig_progress *p);
int ufio_xmig_parse_end(const uint8_t *buf, uint32_t len, uint64_t *total);

#endif
