/*
 * The destination device as a migration endpoint (include/ufio/migrate.h),
 * reached over the link: every call is a request to the destination agent
 * (xmig_dst.c), answered by one REPLY, except data_write. Stream data goes
 * out unanswered, so the link stays full; the agent answers a refusal with
 * DATA_ERR at once (seen before the next write) and at the next FLUSH, which
 * the engine sends after every pass (ep.h: flush).
 *
 * Moving the destination to RUNNING is the commit: the hook stops the source
 * first, then COMMIT goes out. A destination that runs before the source has
 * stopped for good could run the device twice if this agent died in between
 * (its server would resume a source left in STOP_COPY).
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ufio/client.h>
#include <ufio/migrate.h>
#include <ufio/migration.h>

#include "net/xmig.h"
#include "proto/cursor.h"
#include "proto/proto.h"

struct xep {
    struct ufio_mig_endpoint ep;
    struct ufio_link *l;
    struct ufio_xmig_ep_hooks h;
    uint8_t *msg;           /* a received message (4 + XM_MAX_REPLY) */
    int broken;             /* the link failed (-errno): every later call fails with it */
    char why[XM_MAX_REASON + 128];
    int abort_code;         /* the destination's ABORT, -1 none */
    int data_err;           /* the first DATA_ERR since the last FLUSH */
    uint64_t sent;
    bool in_pass;
    uint64_t pass_bytes;
    double pass_t0, rate;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The link is gone: remember why, answer every later call with it. */
static int lost(struct xep *x, int e, const char *what)
{
    if (x->broken)
        return x->broken;
    x->broken = e == -EPROTO ? -EPROTO : e == -ETIMEDOUT ? -ETIMEDOUT : -ECONNRESET;
    if (e == -EPROTO)
        snprintf(x->why, sizeof(x->why), "%s: a malformed or unexpected message from the destination agent", what);
    else
        snprintf(x->why, sizeof(x->why), "%s: %s (%s)", what,
                 e == -ETIMEDOUT ? "link stalled (timeout)" : "link lost", ufio_link_error(x->l));
    return x->broken;
}

/* A message the destination may send at any time: DATA_ERR or ABORT. */
static int unsolicited(struct xep *x, uint32_t t, uint32_t len)
{
    char reason[XM_MAX_REASON + 1];
    if (t == XM_DATA_ERR) {
        int32_t st;
        if (ufio_xmig_parse_status(x->msg, len, &st, reason, sizeof(reason)) || st >= 0 || st < -4095)
            return lost(x, -EPROTO, "DATA_ERR");
        if (!x->data_err)
            x->data_err = st;
        return 0;
    }
    if (t == XM_ABORT) {
        int code;
        if (ufio_xmig_parse_code(x->msg, len, &code, reason, sizeof(reason)))
            return lost(x, -EPROTO, "ABORT");
        x->abort_code = code;
        x->broken = -ECONNABORTED;
        snprintf(x->why, sizeof(x->why), "the destination agent aborted: %s", reason);
        return x->broken;
    }
    return lost(x, -EPROTO, "waiting for an answer");
}

static int recv_msg(struct xep *x, uint32_t *t, uint32_t *len, const char *what)
{
    int e = ufio_xmig_recv(x->l, t, x->msg, 4 + XM_MAX_REPLY, len);
    return e ? lost(x, e, what) : 0;
}

/* Reads what the destination sent while we were writing data, without waiting. */
static int poll_async(struct xep *x)
{
    while (!x->broken && ufio_link_readable(x->l)) {
        uint32_t t, len;
        int e = recv_msg(x, &t, &len, "sending migration data");
        if (!e)
            e = unsolicited(x, t, len);
        if (e)
            return e;
    }
    return x->broken;
}

/* One request, one REPLY: *data points into x->msg. */
static int request(struct xep *x, uint32_t type, const struct iovec *iov, int iovcnt, const char *what,
                   const uint8_t **data, uint32_t *dlen)
{
    if (x->broken)
        return x->broken;
    int e = ufio_xmig_sendv(x->l, type, iov, iovcnt);
    if (e)
        return lost(x, e, what);
    for (;;) {
        uint32_t t, len;
        if ((e = recv_msg(x, &t, &len, what)))
            return e;
        if (t != XM_REPLY) {
            if ((e = unsolicited(x, t, len)))
                return e;
            continue;
        }
        int32_t st;
        const uint8_t *d;
        uint32_t n;
        if (ufio_xmig_parse_reply(x->msg, len, &st, &d, &n))
            return lost(x, -EPROTO, what);
        if (data)
            *data = d, *dlen = n;
        return st;
    }
}

static int feature_req(struct xep *x, uint32_t type, uint32_t flags, const void *in, size_t in_len, void *out,
                       size_t cap, size_t *got, const char *what)
{
    if (in_len > XM_MAX_FEATURE_IN)
        return -E2BIG;
    uint32_t c = cap > XM_MAX_REPLY ? XM_MAX_REPLY : (uint32_t)cap;
    uint8_t head[8];
    ufio_st32(head, htole32(flags));
    ufio_st32(head + 4, htole32(c));
    struct iovec iov[2] = { { head, 8 }, { (void *)in, in_len } };
    const uint8_t *d = NULL;
    uint32_t n = 0;
    int e = type == XM_COMMIT ? request(x, type, NULL, 0, what, &d, &n)
                              : request(x, type, iov, in_len ? 2 : 1, what, &d, &n);
    if (e)
        return e;
    if (n > c)
        return lost(x, -EPROTO, what);
    if (n)
        memcpy(out, d, n);
    if (got)
        *got = n;
    return 0;
}

static bool is_run_request(uint32_t flags, const void *in, size_t in_len)
{
    return (flags & UFIO_FEATURE_SET) && (flags & 0xffffu) == VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE && in_len >= 4 &&
           ufio_ld32(in) == UFIO_MIG_RUNNING;
}

static int x_feature(void *p, uint32_t flags, const void *in, size_t in_len, void *out, size_t cap, size_t *got)
{
    struct xep *x = p;
    if (got)
        *got = 0;
    if (x->broken) {
        /* the reason for a refusal the link caused is the link's */
        if ((flags & UFIO_FEATURE_GET) && (flags & 0xffffu) == UFIO_FEATURE_MIG_REASON && cap) {
            size_t n = strnlen(x->why, cap - 1);
            memcpy(out, x->why, n);
            ((char *)out)[n] = 0;
            if (got)
                *got = n + 1;
            return 0;
        }
        return x->broken;
    }
    if (is_run_request(flags, in, in_len)) {
        int e = x->h.before_commit ? x->h.before_commit(x->h.opaque) : 0;
        if (e)
            return e;
        return feature_req(x, XM_COMMIT, 0, NULL, 0, out, cap, got, "committing");
    }
    return feature_req(x, XM_FEATURE, flags, in, in_len, out, cap, got, "a request to the destination");
}

static int x_read(void *p, void *buf, size_t len, size_t *got)
{
    (void)p, (void)buf, (void)len, (void)got;
    return -ENOTSUP; /* a destination is written to, never read */
}

static int x_write(void *p, const void *buf, size_t len)
{
    struct xep *x = p;
    int e = poll_async(x);
    if (e)
        return e;
    if (x->data_err)
        return x->data_err;
    if (!x->in_pass) {
        x->in_pass = true;
        x->pass_bytes = 0;
        x->pass_t0 = now_ms();
        if (x->h.pass_start) {
            struct ufio_xmig_progress pr = { 0 };
            x->h.pass_start(x->h.opaque, &pr);
            if ((e = ufio_xmig_ep_progress(&x->ep, &pr)))
                return e;
        }
    }
    const uint8_t *b = buf;
    while (len) {
        size_t n = len > XM_MAX_DATA ? XM_MAX_DATA : len;
        struct iovec iov = { (void *)b, n };
        if ((e = ufio_xmig_sendv(x->l, XM_DATA, &iov, 1)))
            return lost(x, e, "sending migration data");
        b += n, len -= n;
        x->sent += n;
        x->pass_bytes += n;
    }
    return 0;
}

static int x_flush(void *p)
{
    struct xep *x = p;
    uint64_t n = htole64(x->sent);
    struct iovec iov = { &n, 8 };
    int e = request(x, XM_FLUSH, &iov, 1, "waiting for the destination to take the data", NULL, NULL);
    /* a pass of a few pages measures the round trip, not the link */
    if (!e && x->in_pass && x->pass_bytes >= (4u << 20)) {
        double dt = now_ms() - x->pass_t0;
        if (dt > 0)
            x->rate = x->pass_bytes / dt * 1e3;
    }
    x->in_pass = false;
    if (!e && x->data_err)
        e = x->data_err;
    x->data_err = 0;
    return e;
}

static int x_config_read(void *p, uint64_t off, void *buf, size_t len)
{
    struct xep *x = p;
    uint8_t *b = buf;
    while (len) {
        uint32_t n = len > XM_MAX_CONFIG ? XM_MAX_CONFIG : (uint32_t)len;
        uint8_t req[12];
        ufio_st64(req, htole64(off));
        ufio_st32(req + 8, htole32(n));
        struct iovec iov = { req, sizeof(req) };
        const uint8_t *d = NULL;
        uint32_t got = 0;
        int e = request(x, XM_CONFIG, &iov, 1, "reading the destination's config space", &d, &got);
        if (e)
            return e;
        if (got != n)
            return lost(x, -EPROTO, "reading the destination's config space");
        memcpy(b, d, n);
        b += n, off += n, len -= n;
    }
    return 0;
}

static int x_reset(void *p)
{
    return request(p, XM_RESET, NULL, 0, "resetting the destination", NULL, NULL);
}

static uint64_t x_max_chunk(void *p)
{
    (void)p;
    return XM_MAX_DATA;
}

static void x_destroy(void *p)
{
    struct xep *x = p;
    free(x->msg);
    free(x);
}

static const struct ufio_mig_endpoint_ops xep_ops = {
    .size = sizeof(struct ufio_mig_endpoint_ops),
    .feature = x_feature,
    .data_read = x_read,
    .data_write = x_write,
    .config_read = x_config_read,
    .reset = x_reset,
    .max_chunk = x_max_chunk,
    .destroy = x_destroy,
    .flush = x_flush,
};

int ufio_xmig_ep_new(struct ufio_link *l, const struct ufio_xmig_ep_hooks *h, const char *name,
                     struct ufio_mig_endpoint **out)
{
    struct xep *x = calloc(1, sizeof(*x));
    if (!x || !(x->msg = malloc(4 + XM_MAX_REPLY))) {
        free(x);
        return -ENOMEM;
    }
    x->l = l;
    if (h)
        x->h = *h;
    x->abort_code = -1;
    x->ep.size = sizeof(x->ep);
    x->ep.ops = &xep_ops;
    x->ep.priv = x;
    x->ep.name = name;
    *out = &x->ep;
    return 0;
}

int ufio_xmig_ep_progress(struct ufio_mig_endpoint *ep, const struct ufio_xmig_progress *p)
{
    struct xep *x = ep->priv;
    if (x->broken)
        return x->broken;
    uint8_t b[32];
    struct ufio_wr w = ufio_wr_init(b, sizeof(b));
    ufio_wr_u32(&w, htole32(p->phase));
    ufio_wr_u32(&w, htole32(p->round));
    ufio_wr_u64(&w, htole64(p->bytes));
    ufio_wr_u64(&w, htole64(p->left));
    ufio_wr_u64(&w, htole64(p->rate_bps));
    struct iovec iov = { b, sizeof(b) };
    int e = ufio_xmig_sendv(x->l, XM_PROGRESS, &iov, 1);
    return e ? lost(x, e, "sending progress") : 0;
}

int ufio_xmig_ep_close(struct ufio_mig_endpoint *ep, int code, const char *reason, int *peer_code,
                       char *peer_reason, size_t cap)
{
    struct xep *x = ep->priv;
    *peer_code = -1;
    if (cap)
        peer_reason[0] = 0;
    if (x->broken)
        return x->broken;
    int e = ufio_xmig_send_status(x->l, XM_CLOSE, code, reason);
    if (e)
        return lost(x, e, "closing");
    for (;;) {
        uint32_t t, len;
        if ((e = recv_msg(x, &t, &len, "waiting for the destination's DONE")))
            return e;
        if (t == XM_DONE) {
            int c;
            if (ufio_xmig_parse_code(x->msg, len, &c, peer_reason, cap))
                return lost(x, -EPROTO, "DONE");
            *peer_code = c;
            return 0;
        }
        if ((e = unsolicited(x, t, len)))
            return e;
    }
}

int ufio_xmig_ep_link_error(const struct ufio_mig_endpoint *ep, const char **why)
{
    const struct xep *x = ep->priv;
    *why = x->why;
    return x->broken;
}

int ufio_xmig_ep_abort_code(const struct ufio_mig_endpoint *ep)
{
    return ((const struct xep *)ep->priv)->abort_code;
}

uint64_t ufio_xmig_ep_bytes(const struct ufio_mig_endpoint *ep)
{
    return ((const struct xep *)ep->priv)->sent;
}

double ufio_xmig_ep_rate(const struct ufio_mig_endpoint *ep)
{
    return ((const struct xep *)ep->priv)->rate;
}
