/*
 * The destination agent (xmig.h): offers its device's descriptor, feeds the
 * stream that arrives to the destination device, loads it, and runs the
 * device only when the source has committed.
 */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ufio/client.h>
#include <ufio/migration.h>

#include "net/relay.h"
#include "net/xmig.h"
#include "proto/compat.h"
#include "proto/cursor.h"

struct dst {
    const struct ufio_xmig_opts *o;
    struct ufio_xmig_result *r;
    struct ufio_client *dev;
    struct ufio_link *link;
    uint8_t *msg;           /* XM_MAX_DATA */
    struct relay relay;     /* messages between the link reader and the device writer */
    bool resuming;          /* the device was put in RESUMING */
    double rate;
    unsigned round;
    uint64_t estimate;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void emit(struct dst *d, enum ufio_xmig_phase ph, const char *msg)
{
    if (!d->o->event)
        return;
    struct ufio_xmig_event ev = { .phase = ph, .round = d->round, .bytes = d->r->bytes, .rate_bps = d->rate,
                                  .estimate = d->estimate, .msg = msg };
    d->o->event(d->o->opaque, &ev);
}

static int fail(struct dst *d, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct dst *d, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->r->error, sizeof(d->r->error), fmt, ap);
    va_end(ap);
    return code;
}

static int link_err(struct dst *d, int e, const char *what)
{
    if (e == -EPROTO)
        return fail(d, UFIO_XMIG_FAILED, "%s: malformed message from the source", what);
    return fail(d, UFIO_XMIG_LINK, "%s: %s (%s)", what, e == -ETIMEDOUT ? "link stalled (timeout)" : strerror(-e),
                ufio_link_error(d->link));
}

/* A peer's ABORT: its reason becomes ours. */
static int peer_abort(struct dst *d, uint32_t len)
{
    int32_t code;
    char reason[XM_MAX_REASON + 1];
    if (ufio_xmig_parse_status(d->msg, len, &code, reason, sizeof(reason)))
        return fail(d, UFIO_XMIG_FAILED, "malformed ABORT from the source");
    int c = code == UFIO_XMIG_INCOMPATIBLE || code == UFIO_XMIG_BUDGET ? code : UFIO_XMIG_FAILED;
    return fail(d, c, "the source aborted: %s", reason);
}

static int set_state(struct dst *d, unsigned st)
{
    unsigned reached = 0;
    int e = ufio_client_mig_set_state(d->dev, st, &reached);
    if (e)
        snprintf(d->r->error, sizeof(d->r->error), "destination device: moving to %s failed (%s); now %s",
                 ufio_mig_state_name(st), strerror(-e), ufio_mig_state_name(reached));
    return e;
}

static int recv_msg(struct dst *d, uint32_t *t, uint32_t *len, const char *what)
{
    int e = ufio_xmig_recv(d->link, t, d->msg, XM_MAX_DATA, len);
    if (e)
        return link_err(d, e, what);
    if (*t == XM_ABORT)
        return peer_abort(d, *len);
    return 0;
}

/* The link side of the stream: messages into relay slots until END or ABORT. */
static void *read_link(void *arg)
{
    struct dst *d = arg;
    for (;;) {
        struct relay_slot *sl = relay_claim(&d->relay);
        if (!sl) {
            relay_close(&d->relay, -ECANCELED);
            return NULL;
        }
        uint32_t len;
        int e = ufio_xmig_recv(d->link, &sl->type, sl->buf, XM_MAX_DATA, &len);
        if (e) {
            relay_close(&d->relay, e);
            return NULL;
        }
        sl->len = len;
        relay_publish(&d->relay);
        if (sl->type == XM_END || sl->type == XM_ABORT) {
            relay_close(&d->relay, 0);
            return NULL;
        }
    }
}

static int apply(struct dst *d, uint32_t t, const uint8_t *buf, uint32_t len)
{
    if (t == XM_ABORT) {
        memcpy(d->msg, buf, len);
        return peer_abort(d, len);
    }
    if (t == XM_DATA) {
        int e = ufio_client_mig_data_write(d->dev, buf, len);
        if (e) {
            fail(d, UFIO_XMIG_FAILED, "the destination device refused the migration data: %s (see its log)",
                 strerror(-e));
            ufio_xmig_send_status(d->link, XM_ABORT, UFIO_XMIG_FAILED, d->r->error);
            return UFIO_XMIG_FAILED;
        }
        d->r->bytes += len;
        return 0;
    }
    if (t == XM_PROGRESS) {
        struct ufio_xmig_progress pr;
        if (ufio_xmig_parse_progress(buf, len, &pr))
            return fail(d, UFIO_XMIG_FAILED, "malformed PROGRESS from the source");
        d->round = pr.round;
        d->estimate = pr.left;
        d->rate = (double)pr.rate_bps;
        emit(d, pr.phase == XMIG_STOPCOPY ? XMIG_STOPCOPY : XMIG_PRECOPY, NULL);
        return 0;
    }
    if (t == XM_END) {
        uint64_t total;
        if (ufio_xmig_parse_end(buf, len, &total))
            return fail(d, UFIO_XMIG_FAILED, "malformed END from the source");
        if (total != d->r->bytes) {
            fail(d, UFIO_XMIG_FAILED, "the source sent %llu bytes, %llu arrived", (unsigned long long)total,
                 (unsigned long long)d->r->bytes);
            ufio_xmig_send_status(d->link, XM_ABORT, UFIO_XMIG_FAILED, d->r->error);
            return UFIO_XMIG_FAILED;
        }
        return 0;
    }
    return fail(d, UFIO_XMIG_FAILED, "unexpected message %u in the stream", t);
}

/*
 * Receives the stream up to END. A reader thread takes messages off the link
 * while this thread writes the previous ones to the device.
 */
static int stream(struct dst *d)
{
    pthread_t t;
    if (pthread_create(&t, NULL, read_link, d))
        return fail(d, UFIO_XMIG_FAILED, "no reader thread");
    int code = 0, e;
    bool ended = false;
    struct relay_slot *sl;
    while (!code && (sl = relay_next(&d->relay, &e))) {
        ended = sl->type == XM_END;
        code = apply(d, sl->type, sl->buf, (uint32_t)sl->len);
        relay_release(&d->relay);
    }
    if (code) {
        /* the reader may be waiting on the link: stop it */
        relay_cancel(&d->relay);
        ufio_link_shutdown(d->link);
    }
    pthread_join(t, NULL);
    if (code)
        return code;
    if (e)
        return link_err(d, e, "receiving the stream");
    return ended ? 0 : fail(d, UFIO_XMIG_FAILED, "the stream ended without END");
}

static int run(struct dst *d)
{
    static char desc[UFIO_COMPAT_MAX_DESC];
    size_t got = 0;
    int e = ufio_client_feature(d->dev, UFIO_FEATURE_GET | UFIO_FEATURE_COMPAT_DESC, NULL, 0, desc,
                                sizeof(desc) - 1, &got);
    if (e || !got || desc[got - 1] != 0) {
        fail(d, UFIO_XMIG_FAILED, "reading the destination's descriptor: %s", e ? strerror(-e) : "malformed");
        ufio_xmig_send_status(d->link, XM_ABORT, UFIO_XMIG_FAILED, d->r->error);
        return UFIO_XMIG_FAILED;
    }
    emit(d, XMIG_CHECK, NULL);
    struct iovec iov = { desc, got };
    if ((e = ufio_xmig_sendv(d->link, XM_DESC, &iov, 1)))
        return link_err(d, e, "sending the descriptor");
    uint32_t t, len;
    int code = recv_msg(d, &t, &len, "waiting for the source to begin");
    if (code)
        return code;
    uint64_t flags, est;
    if (t != XM_BEGIN || ufio_xmig_parse_begin(d->msg, len, &flags, &est))
        return fail(d, UFIO_XMIG_FAILED, "expected BEGIN, got message %u (%u bytes)", t, len);
    d->estimate = est;
    d->resuming = true;
    if (set_state(d, UFIO_MIG_RESUMING)) {
        ufio_xmig_send_status(d->link, XM_ABORT, UFIO_XMIG_FAILED, d->r->error);
        return UFIO_XMIG_FAILED;
    }
    if ((e = ufio_xmig_sendv(d->link, XM_READY, NULL, 0)))
        return link_err(d, e, "sending READY");
    emit(d, (flags & 1) ? XMIG_PRECOPY : XMIG_STOPCOPY, NULL);
    if ((code = stream(d)))
        return code;
    emit(d, XMIG_LOAD, NULL);
    /* the library verifies the stream (framing, CRC, the source's descriptor against ours) */
    if (set_state(d, UFIO_MIG_STOP)) {
        ufio_xmig_send_status(d->link, XM_LOADED, -EINVAL, d->r->error);
        return UFIO_XMIG_FAILED;
    }
    if ((e = ufio_xmig_send_status(d->link, XM_LOADED, 0, NULL)))
        return link_err(d, e, "sending LOADED");
    e = ufio_xmig_recv(d->link, &t, d->msg, XM_MAX_DATA, &len);
    if (e || t != XM_COMMIT)
        return fail(d, UFIO_XMIG_IN_DOUBT,
                    "loaded, but the source did not commit (%s): the device stays stopped with the state loaded",
                    e ? (e == -ETIMEDOUT ? "timeout" : strerror(-e)) : "unexpected message");
    emit(d, XMIG_COMMIT, NULL);
    if (set_state(d, UFIO_MIG_RUNNING)) {
        ufio_xmig_send_status(d->link, XM_DONE, -EIO, d->r->error);
        return UFIO_XMIG_IN_DOUBT;
    }
    ufio_xmig_send_status(d->link, XM_DONE, 0, NULL);
    return UFIO_XMIG_OK;
}

/*
 * After a failure before commit: leave the device stopped with nothing
 * buffered. Leaving RESUMING with an incomplete stream puts the device in
 * ERROR (and frees what it buffered); a reset brings it out, then STOP.
 */
static void stop_device(struct dst *d)
{
    unsigned st;
    if (ufio_client_mig_get_state(d->dev, &st))
        return;
    if (st == UFIO_MIG_RESUMING)
        ufio_client_mig_set_state(d->dev, UFIO_MIG_STOP, &st);
    if (st == UFIO_MIG_ERROR) {
        ufio_client_reset(d->dev);
        ufio_client_mig_get_state(d->dev, &st);
    }
    if (st != UFIO_MIG_STOP)
        ufio_client_mig_set_state(d->dev, UFIO_MIG_STOP, NULL);
}

int ufio_xmig_receive(int lfd, const struct ufio_xmig_opts *o, struct ufio_xmig_result *r)
{
    memset(r, 0, sizeof(*r));
    struct dst d = { .o = o, .r = r };
    char err[UFIO_LINK_MAX_REASON + 256];
    emit(&d, XMIG_CONNECT, NULL);
    int e = ufio_link_accept(lfd, &o->link, o->accept_timeout_ms, &d.link, err, sizeof(err));
    if (e)
        return fail(&d, e == -EACCES ? UFIO_XMIG_REFUSED : UFIO_XMIG_LINK, "%s", err);
    double t0 = now_ms();
    snprintf(r->peer, sizeof(r->peer), "%s", ufio_link_peer(d.link));
    struct ufio_client_opts co = { .size = sizeof(co), .timeout_ms = o->dev_timeout_ms > 0 ? o->dev_timeout_ms : 5000,
                                   .role = UFIO_ROLE_CONTROLLER_REQ };
    int code;
    d.msg = malloc(XM_MAX_DATA);
    bool relay_ok = relay_init(&d.relay, XM_MAX_DATA) == 0;
    if (!d.msg || !relay_ok) {
        code = fail(&d, UFIO_XMIG_FAILED, "out of memory");
        ufio_xmig_send_status(d.link, XM_ABORT, code, r->error);
        goto out;
    }
    e = ufio_client_connect(o->dev_path, &co, &d.dev);
    if (e) {
        code = fail(&d, UFIO_XMIG_FAILED, "destination device %s: %s", o->dev_path, strerror(-e));
        ufio_xmig_send_status(d.link, XM_ABORT, code, r->error);
        goto out;
    }
    code = run(&d);
    if (code != UFIO_XMIG_OK && code != UFIO_XMIG_IN_DOUBT && d.resuming)
        stop_device(&d);
out:
    r->total_ms = now_ms() - t0;
    r->throughput_mib_s = r->total_ms > 0 ? r->bytes / 1048576.0 / (r->total_ms / 1e3) : 0;
    emit(&d, code ? XMIG_ABORTED : XMIG_DONE, code ? r->error : NULL);
    ufio_link_close(d.link);
    if (relay_ok)
        relay_free(&d.relay);
    free(d.msg);
    ufio_client_destroy(d.dev);
    return code;
}
