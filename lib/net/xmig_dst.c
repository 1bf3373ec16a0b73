/*
 * The destination agent (xmig.h): serves the source agent's endpoint
 * requests (xmig_ep.c) against its local device, in the order they arrive,
 * and runs the device only on COMMIT, which the source sends once it has
 * stopped for good. A reader thread takes messages off the link while this
 * thread writes the previous ones to the device.
 *
 * Only what a migration into the device needs is served: its descriptor,
 * flags, state, digest and reason, the moves to RESUMING and STOP, config
 * reads, a reset, the stream. Anything else is refused (EACCES).
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
#include "proto/cursor.h"
#include "proto/proto.h"

struct dst {
    const struct ufio_xmig_opts *o;
    struct ufio_xmig_result *r;
    struct ufio_client *dev;
    struct ufio_link *link;
    struct relay relay;     /* messages between the link reader and this thread */
    uint8_t *out;           /* a REPLY's payload: i32 + XM_MAX_REPLY */
    unsigned cur;           /* the device's state as we last saw it */
    bool touched;           /* we moved the device out of its first state */
    bool loaded;            /* RESUMING -> STOP succeeded: the stream is loaded, the device stopped */
    bool committed;         /* COMMIT: the device runs */
    bool checked;           /* the first request came */
    int data_err;           /* the first refused DATA since RESUMING */
    uint64_t got;           /* stream bytes since RESUMING */
    int src_code;           /* the source's CLOSE (or ABORT) code, -1 none */
    bool fatal;             /* a protocol violation: abort */
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

static void fail(struct dst *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct dst *d, const char *fmt, ...)
{
    if (d->r->error[0])
        return; /* the first cause is the one to report */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->r->error, sizeof(d->r->error), fmt, ap);
    va_end(ap);
}

static int reply(struct dst *d, int32_t status, const void *data, uint32_t n)
{
    uint8_t s[4];
    ufio_st32(s, htole32((uint32_t)status));
    struct iovec iov[2] = { { s, 4 }, { (void *)data, status ? 0 : n } };
    int e = ufio_xmig_sendv(d->link, XM_REPLY, iov, !status && n ? 2 : 1);
    if (e)
        fail(d, "answering the source: %s (%s)", e == -ETIMEDOUT ? "link stalled (timeout)" : strerror(-e),
             ufio_link_error(d->link));
    return e;
}

static void refresh_state(struct dst *d)
{
    unsigned st;
    if (ufio_client_mig_get_state(d->dev, &st) == 0)
        d->cur = st;
}

static void device_reason(struct dst *d, char *buf, size_t cap)
{
    size_t got = 0;
    buf[0] = 0;
    if (ufio_client_feature(d->dev, UFIO_FEATURE_GET | UFIO_FEATURE_MIG_REASON, NULL, 0, buf, cap - 1, &got) == 0)
        buf[got < cap ? got : cap - 1] = 0;
}

static bool served(uint32_t flags, const uint8_t *in, uint32_t in_len)
{
    unsigned index = flags & 0xffffu, op = flags & ~0xffffu;
    if (op == UFIO_FEATURE_GET || op == UFIO_FEATURE_PROBE)
        return index == VFIO_DEVICE_FEATURE_MIGRATION || index == VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE ||
               index == UFIO_FEATURE_COMPAT_DESC || index == UFIO_FEATURE_MIG_DATA_SIZE ||
               index == UFIO_FEATURE_MIG_REASON || index == UFIO_FEATURE_DIGEST ||
               index == UFIO_FEATURE_PRECOPY_INFO;
    if (op != UFIO_FEATURE_SET || index != VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE || in_len < 4)
        return false;
    /* RUNNING only on COMMIT; a destination never saves */
    unsigned to = ufio_ld32(in);
    return to == UFIO_MIG_RESUMING || to == UFIO_MIG_STOP;
}

static int on_feature(struct dst *d, const uint8_t *p, uint32_t len)
{
    uint32_t flags, cap, in_len;
    const uint8_t *in;
    if (ufio_xmig_parse_feature(p, len, &flags, &cap, &in, &in_len))
        return -EPROTO;
    if (!d->checked) {
        d->checked = true;
        emit(d, XMIG_CHECK, NULL);
    }
    if (!served(flags, in, in_len))
        return reply(d, -EACCES, NULL, 0);
    bool set_state = (flags & UFIO_FEATURE_SET) != 0;
    unsigned to = set_state ? ufio_ld32(in) : 0;
    if (set_state && to == UFIO_MIG_STOP && d->cur == UFIO_MIG_RESUMING)
        emit(d, XMIG_LOAD, NULL);
    size_t got = 0;
    int e = ufio_client_feature(d->dev, flags, in, in_len, d->out, cap, &got);
    if (set_state) {
        unsigned from = d->cur;
        if (!e)
            d->cur = to;
        else
            refresh_state(d);
        if (d->cur != from)
            d->touched = true;
        if (!e && to == UFIO_MIG_RESUMING) {
            d->got = 0;
            d->data_err = 0;
            d->loaded = false;
        }
        d->loaded = !e && to == UFIO_MIG_STOP && (from == UFIO_MIG_RESUMING || d->loaded);
    }
    return reply(d, e, d->out, (uint32_t)got);
}

static int on_data(struct dst *d, const uint8_t *p, uint32_t len)
{
    d->got += len;
    d->r->bytes += len;
    if (d->data_err)
        return 0; /* refused already: what follows is dropped, the FLUSH says so again */
    int e = ufio_client_mig_data_write(d->dev, p, len);
    if (!e)
        return 0;
    d->data_err = e;
    char why[XM_MAX_REASON - 100];
    device_reason(d, why, sizeof(why));
    char msg[XM_MAX_REASON];
    snprintf(msg, sizeof(msg), "the destination device refused the migration data: %s%s%s", strerror(-e),
             why[0] ? ": " : "", why);
    fail(d, "%s", msg);
    e = ufio_xmig_send_status(d->link, XM_DATA_ERR, d->data_err, msg);
    return e;
}

static int on_flush(struct dst *d, const uint8_t *p, uint32_t len)
{
    uint64_t sent;
    if (ufio_xmig_parse_u64(p, len, &sent))
        return -EPROTO;
    int st = d->data_err;
    if (!st && sent != d->got) {
        fail(d, "the source sent %llu stream bytes, %llu arrived", (unsigned long long)sent,
             (unsigned long long)d->got);
        st = -EPROTO;
    }
    return reply(d, st, NULL, 0);
}

/* Runs the device: the source has stopped for good. */
static int on_commit(struct dst *d)
{
    if (!d->loaded) {
        fail(d, "COMMIT before a stream was loaded: refused");
        return reply(d, -EACCES, NULL, 0);
    }
    uint8_t in[8];
    ufio_st32(in, UFIO_MIG_RUNNING);
    ufio_st32(in + 4, 0xffffffffu);
    size_t got = 0;
    int e = ufio_client_feature(d->dev, UFIO_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, in, 8, d->out, 8,
                                &got);
    if (e) {
        char why[512];
        device_reason(d, why, sizeof(why));
        fail(d, "the destination device did not start: %s%s%s", strerror(-e), why[0] ? ": " : "", why);
        refresh_state(d);
        return reply(d, e, NULL, 0);
    }
    d->cur = UFIO_MIG_RUNNING;
    d->committed = true;
    d->loaded = false;
    emit(d, XMIG_COMMIT, NULL);
    if (d->o->pause)
        d->o->pause(d->o->opaque, XMIG_COMMIT);
    return reply(d, 0, d->out, (uint32_t)got);
}

/* One message from the source; -EPROTO ends the session. */
static int handle(struct dst *d, uint32_t t, const uint8_t *p, uint32_t len)
{
    switch (t) {
    case XM_FEATURE: return on_feature(d, p, len);
    case XM_DATA: return on_data(d, p, len);
    case XM_FLUSH: return on_flush(d, p, len);
    case XM_COMMIT: return on_commit(d);
    case XM_CONFIG: {
        uint64_t off;
        uint32_t n;
        if (ufio_xmig_parse_config(p, len, &off, &n))
            return -EPROTO;
        int e = ufio_client_region_read(d->dev, 7 /* VFIO_PCI_CONFIG_REGION_INDEX */, off, d->out, n);
        return reply(d, e, d->out, n);
    }
    case XM_RESET: {
        int e = ufio_client_reset(d->dev);
        refresh_state(d);
        d->touched = true;
        d->loaded = false;
        return reply(d, e, NULL, 0);
    }
    case XM_PROGRESS: {
        struct ufio_xmig_progress pr;
        if (ufio_xmig_parse_progress(p, len, &pr) || pr.phase >= XMIG_ABORTED)
            return -EPROTO;
        d->round = pr.round;
        d->estimate = pr.left;
        d->rate = (double)pr.rate_bps;
        emit(d, (enum ufio_xmig_phase)pr.phase, NULL);
        return 0;
    }
    case XM_CLOSE: case XM_ABORT: {
        char reason[XM_MAX_REASON + 1];
        int code;
        if (ufio_xmig_parse_code(p, len, &code, reason, sizeof(reason)))
            return -EPROTO;
        d->src_code = code;
        if (code)
            fail(d, "the source %s: %s", t == XM_ABORT ? "aborted" : "ended", reason);
        return 0;
    }
    default:
        return -EPROTO; /* a message the destination sends, not receives */
    }
}

/* The link side: messages into relay slots until CLOSE, ABORT or an error. */
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
        if (sl->type == XM_CLOSE || sl->type == XM_ABORT) {
            relay_close(&d->relay, 0);
            return NULL;
        }
    }
}

/* Serves until CLOSE: 0, or the link's error (-EPROTO: the source broke the protocol). */
static int serve(struct dst *d)
{
    pthread_t t;
    if (pthread_create(&t, NULL, read_link, d)) {
        fail(d, "no reader thread");
        return -ENOMEM;
    }
    int err = 0, e = 0;
    struct relay_slot *sl;
    while (!err && (sl = relay_next(&d->relay, &e))) {
        err = handle(d, sl->type, sl->buf, (uint32_t)sl->len);
        relay_release(&d->relay);
    }
    if (err) {
        /* the reader may be waiting on the link: stop it */
        relay_cancel(&d->relay);
        ufio_link_shutdown(d->link);
    }
    pthread_join(t, NULL);
    if (err == -EPROTO)
        fail(d, "a malformed or unexpected message from the source");
    if (!err && e) {
        fail(d, "the source: %s (%s)", e == -ETIMEDOUT ? "link stalled (timeout)" : e == -EPROTO ?
             "a malformed message" : "link lost", ufio_link_error(d->link));
        err = e;
    }
    return err;
}

/*
 * Not committed: leave the device stopped with nothing half-loaded. Leaving
 * RESUMING with an incomplete stream puts the device in ERROR (and frees
 * what it buffered); a reset brings it out, then STOP. A device we never
 * moved stays as it was.
 */
static void stop_device(struct dst *d)
{
    unsigned st;
    if (!d->touched || ufio_client_mig_get_state(d->dev, &st))
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

/* Our exit code once the session ended (err: serve()'s). */
static int settle(struct dst *d, int err)
{
    if (d->committed) {
        if (d->src_code < 0)
            snprintf(d->r->warning, sizeof(d->r->warning), "the device runs; the source's close did not come");
        d->r->error[0] = 0;
        return UFIO_XMIG_OK;
    }
    bool loaded = d->loaded;
    if (!loaded)
        stop_device(d);
    if (d->src_code > 0)
        return d->src_code;
    if (d->src_code == 0) {
        fail(d, "the source ended as migrated, but never committed");
        return UFIO_XMIG_FAILED;
    }
    if (loaded) {
        /* the whole state is here, stopped: only the source's side can say whether to run it */
        d->r->error[0] = 0;
        fail(d, "in doubt: loaded, but the source did not commit (%s); the device stays stopped with the state",
             err == -ETIMEDOUT ? "link stalled (timeout)" : "link lost");
        return UFIO_XMIG_IN_DOUBT;
    }
    return err == -EPROTO || err == -ENOMEM ? UFIO_XMIG_FAILED : UFIO_XMIG_LINK;
}

int ufio_xmig_receive(int lfd, const struct ufio_xmig_opts *o, struct ufio_xmig_result *r)
{
    memset(r, 0, sizeof(*r));
    r->peer_code = -1;
    struct dst d = { .o = o, .r = r, .src_code = -1 };
    char err[UFIO_LINK_MAX_REASON + 256];
    emit(&d, XMIG_CONNECT, NULL);
    int e = ufio_link_accept(lfd, &o->link, o->accept_timeout_ms, &d.link, err, sizeof(err));
    if (e) {
        snprintf(r->error, sizeof(r->error), "%s", err);
        return e == -EACCES || e == -EPROTONOSUPPORT ? UFIO_XMIG_REFUSED : UFIO_XMIG_LINK;
    }
    double t0 = now_ms();
    snprintf(r->peer, sizeof(r->peer), "%s", ufio_link_peer(d.link));
    struct ufio_client_opts co = { .size = sizeof(co), .timeout_ms = o->dev_timeout_ms > 0 ? o->dev_timeout_ms : 5000,
                                   .max_data_xfer_size = XM_MAX_DATA, .role = UFIO_ROLE_CONTROLLER_REQ };
    int code;
    d.out = malloc(XM_MAX_REPLY);
    bool relay_ok = relay_init(&d.relay, XM_MAX_DATA) == 0;
    if (!d.out || !relay_ok) {
        snprintf(r->error, sizeof(r->error), "out of memory");
        code = UFIO_XMIG_FAILED;
        ufio_xmig_send_status(d.link, XM_ABORT, code, r->error);
        goto out;
    }
    /* the device is reached only once the source has proved who it is */
    e = ufio_client_connect(o->dev_path, &co, &d.dev);
    if (!e && (e = ufio_client_mig_get_state(d.dev, &d.cur)))
        snprintf(r->error, sizeof(r->error), "destination device %s: its migration state: %s", o->dev_path,
                 strerror(-e));
    else if (e)
        snprintf(r->error, sizeof(r->error), "destination device %s: %s", o->dev_path, strerror(-e));
    if (e) {
        code = e == -EBUSY ? UFIO_XMIG_REFUSED : UFIO_XMIG_FAILED;
        ufio_xmig_send_status(d.link, XM_ABORT, code, r->error);
        goto out;
    }
    e = serve(&d);
    code = settle(&d, e);
    r->peer_code = d.src_code;
    if (d.src_code >= 0)
        ufio_xmig_send_status(d.link, XM_DONE, code, code ? r->error : NULL);
    else if (e == -EPROTO)
        ufio_xmig_send_status(d.link, XM_ABORT, code, r->error);
out:
    r->total_ms = now_ms() - t0;
    r->throughput_mib_s = r->total_ms > 0 ? r->bytes / 1048576.0 / (r->total_ms / 1e3) : 0;
    emit(&d, code ? XMIG_ABORTED : XMIG_DONE, code ? r->error : NULL);
    ufio_link_close(d.link);
    if (relay_ok)
        relay_free(&d.relay);
    free(d.out);
    ufio_client_destroy(d.dev);
    return code;
}
