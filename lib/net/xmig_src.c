/*
 * The source agent (xmig.h): reads the source device's migration stream and
 * sends it over the link, deciding when to stop the source from the rate the
 * link actually carries.
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

#define CHUNK (1u << 20)

struct src {
    const struct ufio_xmig_opts *o;
    struct ufio_xmig_result *r;
    struct ufio_client *dev;
    struct ufio_link *link;
    struct relay relay;     /* CHUNK slots between the device reader and the link */
    uint8_t *msg;           /* a received message */
    bool moved_state;       /* the source left RUNNING/STOP */
    bool committed;         /* COMMIT sent: no rollback after this */
    double rate;            /* bytes per ms over the link, measured */
    unsigned src_state0;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void emit(struct src *s, enum ufio_xmig_phase ph, uint64_t estimate, const char *msg)
{
    if (!s->o->event)
        return;
    struct ufio_xmig_event ev = { .phase = ph, .round = s->r->rounds, .bytes = s->r->bytes,
                                  .rate_bps = s->rate * 1e3, .estimate = estimate, .msg = msg };
    s->o->event(s->o->opaque, &ev);
}

static int fail(struct src *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct src *s, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->r->error, sizeof(s->r->error), fmt, ap);
    va_end(ap);
    return code;
}

/* A link failure while sending: the peer may have said why before closing. */
static int link_fail(struct src *s, int e, const char *what)
{
    char reason[XM_MAX_REASON + 1] = "";
    if (e == -ECONNRESET || e == -EIO) {
        uint32_t t, n;
        ufio_link_set_timeout(s->link, 500);
        if (ufio_xmig_recv(s->link, &t, s->msg, 4 + XM_MAX_REASON, &n) == 0 && t == XM_ABORT) {
            int32_t st;
            ufio_xmig_parse_status(s->msg, n, &st, reason, sizeof(reason));
            return fail(s, UFIO_XMIG_FAILED, "%s: the destination aborted: %s", what, reason);
        }
    }
    return fail(s, UFIO_XMIG_LINK, "%s: %s (%s)", what, e == -ETIMEDOUT ? "link stalled (timeout)" : strerror(-e),
                ufio_link_error(s->link));
}

static int abort_peer(struct src *s, int code, const char *why)
{
    ufio_xmig_send_status(s->link, XM_ABORT, code, why);
    return code;
}

static int set_state(struct src *s, unsigned st)
{
    unsigned reached = 0;
    int e = ufio_client_mig_set_state(s->dev, st, &reached);
    if (e)
        snprintf(s->r->error, sizeof(s->r->error), "source device: moving to %s failed (%s); now %s",
                 ufio_mig_state_name(st), strerror(-e), ufio_mig_state_name(reached));
    return e;
}

/* Waits for one message of the wanted type; an ABORT carries the peer's reason. */
static int expect(struct src *s, uint32_t want, uint32_t *len, const char *what)
{
    uint32_t t;
    int e = ufio_xmig_recv(s->link, &t, s->msg, UFIO_COMPAT_MAX_DESC, len);
    if (e == -EPROTO)
        return fail(s, UFIO_XMIG_FAILED, "%s: malformed message from the destination", what);
    if (e)
        return fail(s, UFIO_XMIG_LINK, "%s: %s (%s)", what, e == -ETIMEDOUT ? "no answer (timeout)" : strerror(-e),
                    ufio_link_error(s->link));
    if (t == XM_ABORT) {
        int32_t code;
        char reason[XM_MAX_REASON + 1];
        ufio_xmig_parse_status(s->msg, *len, &code, reason, sizeof(reason));
        return fail(s, code == UFIO_XMIG_INCOMPATIBLE ? UFIO_XMIG_INCOMPATIBLE : UFIO_XMIG_FAILED,
                    "%s: the destination aborted: %s", what, reason);
    }
    if (t != want)
        return fail(s, UFIO_XMIG_FAILED, "%s: unexpected message %u from the destination", what, t);
    return 0;
}

static int check(struct src *s)
{
    uint32_t len;
    emit(s, XMIG_CHECK, 0, NULL);
    int code = expect(s, XM_DESC, &len, "waiting for the destination's descriptor");
    if (code)
        return code;
    if (!len || s->msg[len - 1] != 0)
        return abort_peer(s, fail(s, UFIO_XMIG_FAILED, "the destination's descriptor is not NUL-terminated"),
                          "descriptor not NUL-terminated");
    static char mine[UFIO_COMPAT_MAX_DESC];
    size_t got = 0;
    int e = ufio_client_feature(s->dev, UFIO_FEATURE_GET | UFIO_FEATURE_COMPAT_DESC, NULL, 0, mine,
                                sizeof(mine) - 1, &got);
    if (e || !got || mine[got - 1] != 0) {
        fail(s, UFIO_XMIG_FAILED, "reading the source's descriptor: %s", e ? strerror(-e) : "malformed");
        return abort_peer(s, UFIO_XMIG_FAILED, s->r->error);
    }
    struct ufio_compat_verdict v;
    char err[256];
    if (ufio_compat_check_json(mine, (const char *)s->msg, &v, err, sizeof(err))) {
        fail(s, UFIO_XMIG_INCOMPATIBLE, "descriptor: %s", err);
        return abort_peer(s, UFIO_XMIG_INCOMPATIBLE, s->r->error);
    }
    if (!v.compatible) {
        char reasons[1024];
        ufio_compat_format(&v, reasons, sizeof(reasons));
        fail(s, UFIO_XMIG_INCOMPATIBLE, "incompatible: %s", reasons);
        return abort_peer(s, UFIO_XMIG_INCOMPATIBLE, s->r->error);
    }
    return 0;
}

static int send_progress(struct src *s, enum ufio_xmig_phase ph, uint64_t left)
{
    uint8_t b[32];
    struct ufio_wr w = ufio_wr_init(b, sizeof(b));
    ufio_wr_u32(&w, htole32(ph));
    ufio_wr_u32(&w, htole32(s->r->rounds));
    ufio_wr_u64(&w, htole64(s->r->bytes));
    ufio_wr_u64(&w, htole64(left));
    ufio_wr_u64(&w, htole64((uint64_t)(s->rate * 1e3)));
    struct iovec iov = { b, sizeof(b) };
    emit(s, ph, left, NULL);
    return ufio_xmig_sendv(s->link, XM_PROGRESS, &iov, 1);
}

struct reader {
    struct src *s;
    struct relay *rl;
    size_t full;
};

/* The device side of the pump: MIG_DATA_READs until a short one. */
static void *read_device(void *arg)
{
    struct reader *rd = arg;
    for (;;) {
        struct relay_slot *sl = relay_claim(rd->rl);
        if (!sl) {
            relay_close(rd->rl, -ECANCELED);
            return NULL;
        }
        size_t got = 0;
        /* the message head goes in front of the data: one contiguous send */
        int e = ufio_client_mig_data_read(rd->s->dev, sl->buf + XM_HDR, rd->full, &got);
        if (e) {
            relay_close(rd->rl, e);
            return NULL;
        }
        sl->len = got;
        relay_publish(rd->rl);
        if (got < rd->full) {
            relay_close(rd->rl, 0);
            return NULL;
        }
    }
}

/*
 * Moves stream bytes from the device to the link until a short read. A
 * reader thread keeps up to RELAY_SLOTS chunks read ahead, so the link
 * (encryption, the network) and the device are busy at the same time.
 */
static int pump(struct src *s, enum ufio_xmig_phase ph, uint64_t *moved)
{
    struct ufio_client_caps caps = { .size = sizeof(caps) };
    ufio_client_get_caps(s->dev, &caps);
    struct reader rd = { .s = s, .rl = &s->relay };
    rd.full = caps.max_data_xfer_size < CHUNK ? (size_t)caps.max_data_xfer_size : CHUNK;
    s->relay.produced = s->relay.consumed = 0;
    s->relay.closed = s->relay.cancel = false;
    s->relay.err = 0;
    pthread_t t;
    if (pthread_create(&t, NULL, read_device, &rd))
        return fail(s, UFIO_XMIG_FAILED, "no reader thread");
    int code = 0, e;
    struct relay_slot *sl;
    while ((sl = relay_next(&s->relay, &e))) {
        if (sl->len) {
            ufio_xmig_put_head(sl->buf, XM_DATA, (uint32_t)sl->len);
            struct iovec iov = { sl->buf, XM_HDR + sl->len };
            int se = ufio_link_sendv(s->link, &iov, 1);
            if (se) {
                relay_cancel(&s->relay);
                pthread_join(t, NULL);
                return link_fail(s, se, "sending migration data");
            }
        }
        *moved += sl->len;
        s->r->bytes += sl->len;
        if (s->o->event && (s->r->bytes & ((64u << 20) - 1)) < sl->len)
            emit(s, ph, 0, NULL);
        relay_release(&s->relay);
    }
    pthread_join(t, NULL);
    if (e)
        code = fail(s, UFIO_XMIG_FAILED, "reading the source's migration data: %s", strerror(-e));
    return code;
}

static int run(struct src *s)
{
    const struct ufio_xmig_opts *o = s->o;
    struct ufio_xmig_result *r = s->r;
    int code = check(s);
    if (code)
        return code;
    uint64_t flags;
    int e = ufio_client_mig_flags(s->dev, &flags);
    if (!e)
        e = ufio_client_mig_get_state(s->dev, &s->src_state0);
    if (e) {
        fail(s, UFIO_XMIG_FAILED, "the source device does not support migration: %s", strerror(-e));
        return abort_peer(s, UFIO_XMIG_FAILED, r->error);
    }
    if (s->src_state0 != UFIO_MIG_RUNNING && s->src_state0 != UFIO_MIG_STOP) {
        fail(s, UFIO_XMIG_FAILED, "the source device is in %s, not RUNNING or STOP", ufio_mig_state_name(s->src_state0));
        return abort_peer(s, UFIO_XMIG_FAILED, r->error);
    }
    bool precopy = !o->no_precopy && (flags & UFIO_MIG_F_PRE_COPY) && s->src_state0 == UFIO_MIG_RUNNING;
    uint64_t sc_est = 0;
    ufio_client_mig_stop_copy_size(s->dev, &sc_est);
    uint8_t b[16];
    struct ufio_wr w = ufio_wr_init(b, sizeof(b));
    ufio_wr_u64(&w, htole64(precopy ? 1 : 0));
    ufio_wr_u64(&w, htole64(sc_est));
    struct iovec iov = { b, sizeof(b) };
    if ((e = ufio_xmig_sendv(s->link, XM_BEGIN, &iov, 1)))
        return link_fail(s, e, "starting");
    uint32_t len;
    if ((code = expect(s, XM_READY, &len, "waiting for the destination to be RESUMING")))
        return code;

    unsigned max_dt = o->max_downtime_ms ? o->max_downtime_ms : 300;
    unsigned max_rounds = o->max_rounds ? o->max_rounds : 30;
    if (precopy) {
        s->moved_state = true;
        if (set_state(s, UFIO_MIG_PRE_COPY))
            return abort_peer(s, UFIO_XMIG_FAILED, r->error);
        for (;;) {
            double t0 = now_ms();
            uint64_t moved = 0;
            if ((code = pump(s, XMIG_PRECOPY, &moved)))
                return code;
            double dt = now_ms() - t0;
            r->precopy_bytes += moved;
            r->rounds++;
            /* big rounds measure the link; a round of a few pages measures latency */
            if (moved >= (4u << 20) && dt > 0)
                s->rate = moved / dt;
            else if (moved && dt > 0 && s->rate == 0)
                s->rate = moved / dt;
            uint64_t initial = 0, dirty = 0;
            if ((e = ufio_client_mig_precopy_info(s->dev, &initial, &dirty)))
                return abort_peer(s, fail(s, UFIO_XMIG_FAILED, "precopy info: %s", strerror(-e)), r->error);
            uint64_t left = initial + dirty, sc = 0;
            /* what stop-copy will send: the device's own figure when it gives one */
            if (!ufio_client_mig_stop_copy_size(s->dev, &sc) && sc > left)
                left = sc;
            if ((e = send_progress(s, XMIG_PRECOPY, left)))
                return link_fail(s, e, "sending progress");
            double rate = s->rate > 0 ? s->rate : 1;
            if (left / rate <= max_dt)
                break;
            if (r->rounds >= max_rounds) {
                fail(s, UFIO_XMIG_BUDGET,
                     "downtime budget cannot be met: %llu bytes left at %.1f MiB/s need %.0f ms > %u ms "
                     "after %u rounds; the source was not stopped",
                     (unsigned long long)left, rate * 1e3 / 1048576, left / rate, max_dt, r->rounds);
                return abort_peer(s, UFIO_XMIG_BUDGET, r->error);
            }
        }
    }
    double t_stop = now_ms();
    s->moved_state = true;
    if (set_state(s, UFIO_MIG_STOP_COPY))
        return abort_peer(s, UFIO_XMIG_FAILED, r->error);
    emit(s, XMIG_STOPCOPY, 0, NULL);
    uint64_t moved = 0;
    if ((code = pump(s, XMIG_STOPCOPY, &moved)))
        return code;
    r->stopcopy_bytes = moved;
    uint64_t total = htole64(r->bytes);
    iov = (struct iovec){ &total, 8 };
    if ((e = ufio_xmig_sendv(s->link, XM_END, &iov, 1)))
        return link_fail(s, e, "ending the stream");
    emit(s, XMIG_LOAD, 0, NULL);
    if ((code = expect(s, XM_LOADED, &len, "waiting for the destination to load")))
        return code;
    int32_t st;
    char reason[XM_MAX_REASON + 1];
    if (ufio_xmig_parse_status(s->msg, len, &st, reason, sizeof(reason)))
        return fail(s, UFIO_XMIG_FAILED, "malformed LOADED message");
    if (st)
        return fail(s, UFIO_XMIG_FAILED, "the destination refused the stream: %s", reason);
    /* from here the destination holds the state: stop the source for good, then commit */
    if (set_state(s, UFIO_MIG_STOP))
        return abort_peer(s, UFIO_XMIG_FAILED, r->error);
    emit(s, XMIG_COMMIT, 0, NULL);
    s->committed = true;
    uint32_t t = 0;
    e = ufio_xmig_sendv(s->link, XM_COMMIT, NULL, 0);
    if (!e)
        e = ufio_xmig_recv(s->link, &t, s->msg, 4 + XM_MAX_REASON, &len);
    if (!e && t != XM_DONE)
        e = -EPROTO;
    if (e)
        return fail(s, UFIO_XMIG_IN_DOUBT,
                    "commit sent but not confirmed (%s): the source stays stopped; the destination agent's "
                    "exit status says whether it runs (0) or not (8: then resume the source with --recover)",
                    e == -ETIMEDOUT ? "timeout" : strerror(-e));
    if (ufio_xmig_parse_status(s->msg, len, &st, reason, sizeof(reason)) || st)
        return fail(s, UFIO_XMIG_IN_DOUBT, "the destination did not start: %s; the source stays stopped", reason);
    r->downtime_ms = now_ms() - t_stop;
    return UFIO_XMIG_OK;
}

/* Puts the source back as it was (RUNNING, or STOP if it started stopped), state intact. */
static int rollback(struct src *s, int code)
{
    if (!s->moved_state)
        return code;
    unsigned st;
    unsigned want = s->src_state0 == UFIO_MIG_STOP ? UFIO_MIG_STOP : UFIO_MIG_RUNNING;
    if (ufio_client_mig_get_state(s->dev, &st) == 0 && st == want)
        return code;
    if (ufio_client_mig_set_state(s->dev, want, NULL) == 0)
        return code;
    size_t l = strlen(s->r->error);
    snprintf(s->r->error + l, sizeof(s->r->error) - l, "; and the source device could not be put back to %s",
             ufio_mig_state_name(want));
    return UFIO_XMIG_SOURCE_LOST;
}

int ufio_xmig_send(const struct ufio_xmig_opts *o, struct ufio_xmig_result *r)
{
    memset(r, 0, sizeof(*r));
    double t0 = now_ms();
    struct src s = { .o = o, .r = r };
    struct ufio_client_opts co = { .size = sizeof(co), .timeout_ms = o->dev_timeout_ms > 0 ? o->dev_timeout_ms : 5000,
                                   .role = UFIO_ROLE_CONTROLLER_REQ };
    int e = ufio_client_connect(o->dev_path, &co, &s.dev);
    if (e)
        return fail(&s, UFIO_XMIG_FAILED, "source device %s: %s", o->dev_path, strerror(-e));
    bool relay_ok = relay_init(&s.relay, XM_HDR + CHUNK) == 0;
    s.msg = malloc(UFIO_COMPAT_MAX_DESC);
    int code;
    if (!relay_ok || !s.msg) {
        code = fail(&s, UFIO_XMIG_FAILED, "out of memory");
        goto out;
    }
    emit(&s, XMIG_CONNECT, 0, NULL);
    char err[UFIO_LINK_MAX_REASON + 256];
    e = ufio_link_connect(o->host, o->port, &o->link, &s.link, err, sizeof(err));
    if (e) {
        code = fail(&s, e == -EACCES ? UFIO_XMIG_REFUSED : UFIO_XMIG_LINK, "%s", err);
        goto out;
    }
    snprintf(r->peer, sizeof(r->peer), "%s", ufio_link_peer(s.link));
    code = run(&s);
    if (code != UFIO_XMIG_OK && !s.committed)
        code = rollback(&s, code);
out:
    r->total_ms = now_ms() - t0;
    r->throughput_mib_s = r->total_ms > 0 ? r->bytes / 1048576.0 / (r->total_ms / 1e3) : 0;
    r->link_rate_mib_s = s.rate * 1e3 / 1048576.0;
    emit(&s, code ? XMIG_ABORTED : XMIG_DONE, 0, code ? r->error : NULL);
    ufio_link_close(s.link);
    if (relay_ok)
        relay_free(&s.relay);
    free(s.msg);
    ufio_client_destroy(s.dev);
    return code;
}
