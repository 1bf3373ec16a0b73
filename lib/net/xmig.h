/*
 * Cross-host migration: two agents, one per host, joined by a link (link.h).
 *
 * The source agent runs the one-host engine (ufio_migrate(), lib/migrate)
 * with two endpoints: its local source device, and the destination reached
 * over the link (xmig_ep.c). The destination agent (xmig_dst.c) serves that
 * endpoint's requests against its local device. The device's framed,
 * verified migration stream crosses the link unchanged inside DATA
 * messages. The message protocol is in docs/cross-host.md.
 *
 * Outcomes are ufio_xmig_code values; the tool's exit status is the code, on
 * one host as across hosts (one table: man/ufio-migrate.1, docs/cross-host.md).
 */
#ifndef UFIO_NET_XMIG_H
#define UFIO_NET_XMIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ufio/migrate.h>

#include "net/link.h"

enum ufio_xmig_code {
    UFIO_XMIG_OK = 0,            /* migrated: the destination runs, the source is stopped */
    UFIO_XMIG_FAILED = 1,        /* failed, rolled back: source RUNNING with its state, destination stopped */
    UFIO_XMIG_USAGE = 2,
    UFIO_XMIG_INCOMPATIBLE = 3,  /* the devices are incompatible; nothing moved */
    UFIO_XMIG_REFUSED = 4,       /* refused before anything moved: authentication (either side), plaintext
                                    without --insecure, an agent of another protocol version, a stopped or
                                    busy device */
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
/* The exit code of a ufio_migrate() outcome (err, its warning text); the one
 * table tools/migrate.c uses on one host. */
int ufio_xmig_code_of(int err, const char *warning);

/*
 * Message types, protocol version 2 (link.c's verdict record names the
 * version: an agent of another version is refused before any message).
 * u32 LE type, u32 LE length, payload; bounds in xmig_proto.c. Every request
 * (FEATURE, CONFIG, RESET, FLUSH, COMMIT) gets exactly one REPLY, in order;
 * DATA is not answered: a refusal comes back as DATA_ERR, and at the next
 * FLUSH.
 */
enum {
    XM_FEATURE = 1,   /* src→dst: u32 flags, u32 out cap, input: a DEVICE_FEATURE of the destination */
    XM_CONFIG = 2,    /* src→dst: u64 offset, u32 length: a read of its PCI config space */
    XM_RESET = 3,     /* src→dst: DEVICE_RESET */
    XM_DATA = 4,      /* src→dst: migration stream bytes (unanswered) */
    XM_FLUSH = 5,     /* src→dst: u64 stream bytes sent so far; answered once all reached the device */
    XM_COMMIT = 6,    /* src→dst: the source is stopped for good: run (REPLY: the state feature's answer) */
    XM_PROGRESS = 7,  /* src→dst: u32 phase, u32 round, u64 bytes, u64 estimate left, u64 rate B/s */
    XM_CLOSE = 8,     /* src→dst: i32 source exit code, reason; answered by DONE */
    XM_REPLY = 9,     /* dst→src: i32 status (0 or -errno), the answer's bytes (status 0 only) */
    XM_DATA_ERR = 10, /* dst→src: i32 -errno, reason: the device refused stream data */
    XM_DONE = 11,     /* dst→src: i32 destination exit code, reason */
    XM_ABORT = 12,    /* either way: i32 exit code, reason; the sender closes */
    XM_MAX_TYPE = 12,
};

#define XM_HDR 8
#define XM_MAX_DATA (4u << 20)
#define XM_MAX_REASON 1024
#define XM_MAX_FEATURE_IN 4096u
#define XM_MAX_REPLY (64u << 10)  /* an answer's bytes: the largest is a compatibility descriptor */
#define XM_MAX_CONFIG 4096u

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
    /* source: the engine's options as for one host (budget, limits, force,
     * no_verify, cancel, timeout_ms); its paths, endpoints and progress are
     * the agent's own */
    const struct ufio_migrate_opts *mig;
    int dev_timeout_ms;             /* per device request, default 5000 */
    int accept_timeout_ms;          /* destination: wait this long for the source, < 0 for ever */
    void (*event)(void *opaque, const struct ufio_xmig_event *ev);
    /* for tests (--test-pause-at): called on reaching a phase, may wait;
     * XMIG_COMMIT comes on the source with its device stopped and COMMIT not
     * sent, on the destination with its device running and not answered */
    void (*pause)(void *opaque, enum ufio_xmig_phase ph);
    void *opaque;
};

struct ufio_xmig_result {
    uint64_t bytes, precopy_bytes, stopcopy_bytes;
    unsigned rounds;
    double downtime_ms, total_ms, throughput_mib_s, link_rate_mib_s, predicted_downtime_ms;
    uint64_t dirty_limit;
    bool verified;                  /* the digests were compared and equal */
    char digest[UFIO_MIGRATE_DIGEST_MAX];
    int peer_code;                  /* the other agent's exit code (CLOSE / DONE), -1 unknown */
    char peer[256];
    char error[XM_MAX_REASON + 256];
    char warning[XM_MAX_REASON];
};

/* Source agent: connect, then the engine with the link endpoint. Returns a ufio_xmig_code. */
int ufio_xmig_send(const struct ufio_xmig_opts *o, struct ufio_xmig_result *r);
/* Destination agent: one migration on the listening socket lfd. */
int ufio_xmig_receive(int lfd, const struct ufio_xmig_opts *o, struct ufio_xmig_result *r);

/* ---- the destination as an engine endpoint over the link (xmig_ep.c) ---- */

struct ufio_xmig_progress {
    uint32_t phase, round;
    uint64_t bytes, left, rate_bps;
};

struct ufio_xmig_ep_hooks {
    /* before the first DATA of a pass: fills the PROGRESS sent ahead of it (may be NULL) */
    void (*pass_start)(void *opaque, struct ufio_xmig_progress *p);
    /* before COMMIT: stop the source for good; nonzero (-errno) and COMMIT is not sent */
    int (*before_commit)(void *opaque);
    void *opaque;
};

/* An endpoint whose calls are requests to the destination agent on l (not
 * owned). Freed by ufio_mig_endpoint_destroy(). */
int ufio_xmig_ep_new(struct ufio_link *l, const struct ufio_xmig_ep_hooks *h, const char *name,
                     struct ufio_mig_endpoint **out);
/* Sends one PROGRESS (between data writes, from the engine's thread). */
int ufio_xmig_ep_progress(struct ufio_mig_endpoint *ep, const struct ufio_xmig_progress *p);
/* CLOSE with our exit code, then the destination's DONE: *peer_code (-1 when
 * none came) and its reason. */
int ufio_xmig_ep_close(struct ufio_mig_endpoint *ep, int code, const char *reason, int *peer_code,
                       char *peer_reason, size_t cap);
/* After a failure: the link's (0: it is healthy), and what the destination
 * said when it aborted (code -1: it did not) */
int ufio_xmig_ep_link_error(const struct ufio_mig_endpoint *ep, const char **why);
int ufio_xmig_ep_abort_code(const struct ufio_mig_endpoint *ep);
/* stream bytes sent; the rate the last full pass carried end to end (B/s, 0 none yet) */
uint64_t ufio_xmig_ep_bytes(const struct ufio_mig_endpoint *ep);
double ufio_xmig_ep_rate(const struct ufio_mig_endpoint *ep);

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
/* Parses a status message (DATA_ERR, CLOSE, DONE, ABORT): i32 LE + reason
 * (sanitised, NUL-terminated, cut to cap). */
int ufio_xmig_parse_status(const uint8_t *buf, uint32_t len, int32_t *status, char *reason, size_t cap);
/* A CLOSE, DONE or ABORT: the code must be an exit code (0..9); -EPROTO else. */
int ufio_xmig_parse_code(const uint8_t *buf, uint32_t len, int *code, char *reason, size_t cap);

/* Decoders of the other messages: -EPROTO unless the layout and bounds hold. */
int ufio_xmig_parse_feature(const uint8_t *buf, uint32_t len, uint32_t *flags, uint32_t *out_cap,
                            const uint8_t **in, uint32_t *in_len);
int ufio_xmig_parse_config(const uint8_t *buf, uint32_t len, uint64_t *offset, uint32_t *n);
/* REPLY: status 0 or -1..-4095; bytes only with status 0 */
int ufio_xmig_parse_reply(const uint8_t *buf, uint32_t len, int32_t *status, const uint8_t **data,
                          uint32_t *data_len);
int ufio_xmig_parse_progress(const uint8_t *buf, uint32_t len, struct ufio_xmig_progress *p);
/* FLUSH: u64 */
int ufio_xmig_parse_u64(const uint8_t *buf, uint32_t len, uint64_t *v);

#endif
