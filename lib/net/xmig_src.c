/*
 * The source agent (xmig.h): connects to the destination agent and runs the
 * one-host engine, ufio_migrate(), from its local source device to the link
 * endpoint (xmig_ep.c). The engine brings what one host has: the digest
 * comparison before the destination runs, the dirty-rate cap, the stop-copy
 * deadline, the precopy limits, --force and --no-verify; its stop decision
 * uses the rate and latency the link endpoint shows it (every pass ends with
 * a FLUSH round trip).
 *
 * The source endpoint is the local client's, seen through a thin wrapper that
 * notes the state the engine puts it in and its last precopy estimate, for
 * the progress both agents report.
 */
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

struct src {
    const struct ufio_xmig_opts *o;
    struct ufio_xmig_result *r;
    struct ufio_client *dev;
    struct ufio_link *link;
    struct ufio_mig_endpoint *inner, *dst;
    struct ufio_mig_endpoint watch;  /* the source endpoint the engine gets */
    unsigned state;                  /* the last state the engine set on the source */
    uint64_t left;                   /* its last precopy estimate */
    unsigned passes;                 /* precopy passes begun */
    enum ufio_xmig_phase phase;      /* the last phase reported */
    uint64_t last_event_bytes;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void emit(struct src *s, enum ufio_xmig_phase ph, const char *msg)
{
    if (!s->o->event)
        return;
    struct ufio_xmig_event ev = { .phase = ph, .round = s->passes,
                                  .bytes = s->dst ? ufio_xmig_ep_bytes(s->dst) : 0,
                                  .rate_bps = s->dst ? ufio_xmig_ep_rate(s->dst) : 0,
                                  .estimate = ph == XMIG_PRECOPY ? s->left : 0, .msg = msg };
    s->o->event(s->o->opaque, &ev);
}

/* A new phase: a test may hold the agent there (--test-pause-at). */
static void enter(struct src *s, enum ufio_xmig_phase ph)
{
    if (ph == s->phase)
        return;
    s->phase = ph;
    if (s->o->pause)
        s->o->pause(s->o->opaque, ph);
}

/* ---- the source endpoint, watched ---------------------------------------------------- */

static int w_feature(void *p, uint32_t flags, const void *in, size_t in_len, void *out, size_t cap, size_t *got)
{
    struct src *s = p;
    int e = s->inner->ops->feature(s->inner->priv, flags, in, in_len, out, cap, got);
    unsigned index = flags & 0xffffu;
    if (!e && (flags & UFIO_FEATURE_SET) && index == VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE && in_len >= 4)
        s->state = ufio_ld32(in);
    if (!e && (flags & UFIO_FEATURE_GET) && index == UFIO_FEATURE_PRECOPY_INFO && got && *got == 16)
        s->left = ufio_ld64(out) + ufio_ld64((uint8_t *)out + 8);
    return e;
}

static int w_read(void *p, void *buf, size_t len, size_t *got)
{
    struct src *s = p;
    return s->inner->ops->data_read(s->inner->priv, buf, len, got);
}

static int w_write(void *p, const void *buf, size_t len)
{
    struct src *s = p;
    return s->inner->ops->data_write(s->inner->priv, buf, len);
}

static int w_config_read(void *p, uint64_t off, void *buf, size_t len)
{
    struct src *s = p;
    return s->inner->ops->config_read(s->inner->priv, off, buf, len);
}

static int w_reset(void *p)
{
    struct src *s = p;
    return s->inner->ops->reset(s->inner->priv);
}

static uint64_t w_max_chunk(void *p)
{
    struct src *s = p;
    return s->inner->ops->max_chunk(s->inner->priv);
}

static void w_destroy(void *p)
{
    (void)p; /* the agent destroys the inner endpoint */
}

static const struct ufio_mig_endpoint_ops watch_ops = {
    .size = sizeof(struct ufio_mig_endpoint_ops),
    .feature = w_feature,
    .data_read = w_read,
    .data_write = w_write,
    .config_read = w_config_read,
    .reset = w_reset,
    .max_chunk = w_max_chunk,
    .destroy = w_destroy,
};

/* ---- hooks ------------------------------------------------------------------------ */

static bool cancelled(struct src *s)
{
    return s->o->mig && s->o->mig->cancel && *s->o->mig->cancel;
}

static void fill_progress(struct src *s, struct ufio_xmig_progress *p)
{
    p->phase = s->phase;
    p->round = s->passes;
    p->bytes = ufio_xmig_ep_bytes(s->dst);
    p->left = s->phase == XMIG_PRECOPY ? s->left : 0;
    p->rate_bps = (uint64_t)ufio_xmig_ep_rate(s->dst);
}

/* A pass begins: say so on both sides, with the estimate of the pass before. */
static void pass_start(void *opaque, struct ufio_xmig_progress *p)
{
    struct src *s = opaque;
    bool pre = s->state == UFIO_MIG_PRE_COPY || s->state == UFIO_MIG_PRE_COPY_P2P;
    if (pre)
        s->passes++;
    enter(s, pre ? XMIG_PRECOPY : XMIG_STOPCOPY);
    emit(s, s->phase, NULL);
    s->last_event_bytes = ufio_xmig_ep_bytes(s->dst);
    fill_progress(s, p);
}

/* The source stops for good before the destination is told to run (xmig_ep.c). */
static int before_commit(void *opaque)
{
    struct src *s = opaque;
    if (cancelled(s))
        return -ECANCELED;
    int e = ufio_client_mig_set_state(s->dev, UFIO_MIG_STOP, NULL);
    if (e)
        return e; /* not stopped: the engine puts it back to RUNNING */
    s->state = UFIO_MIG_STOP;
    enter(s, XMIG_COMMIT);
    emit(s, XMIG_COMMIT, NULL);
    /* still ours to undo: COMMIT is not sent, the engine resumes the source */
    return cancelled(s) ? -ECANCELED : 0;
}

static void on_progress(void *opaque, enum ufio_migrate_phase ph, uint64_t bytes, unsigned round)
{
    struct src *s = opaque;
    (void)round;
    enum ufio_xmig_phase xp = ph == UFIO_MIGRATE_CHECK      ? XMIG_CHECK
                              : ph == UFIO_MIGRATE_PRECOPY  ? XMIG_PRECOPY
                              : ph == UFIO_MIGRATE_STOPCOPY ? XMIG_STOPCOPY
                              : ph == UFIO_MIGRATE_RESUME   ? XMIG_LOAD
                                                            : XMIG_DONE;
    if (xp == XMIG_DONE)
        return; /* the result says it */
    bool changed = xp != s->phase;
    enter(s, xp);
    /* every 64 MiB, to both sides (the destination says check and load itself) */
    if (changed || bytes - s->last_event_bytes >= (64u << 20)) {
        s->last_event_bytes = bytes;
        emit(s, xp, NULL);
        struct ufio_xmig_progress p;
        fill_progress(s, &p);
        if (xp == XMIG_PRECOPY || xp == XMIG_STOPCOPY)
            ufio_xmig_ep_progress(s->dst, &p); /* a failure shows at the next write */
    }
}

/* ---- the agent ---------------------------------------------------------------------- */

/* What the engine's outcome means here: the link's own failure or the
 * destination's abort come first, as the engine sees only their errno. */
static int outcome(struct src *s, int err, const char *warning)
{
    int code = ufio_xmig_code_of(err, warning);
    if (code == UFIO_XMIG_IN_DOUBT || code == UFIO_XMIG_SOURCE_LOST || code == UFIO_XMIG_OK ||
        code == UFIO_XMIG_INTERRUPTED)
        return code;
    int ac = ufio_xmig_ep_abort_code(s->dst);
    if (ac > 0)
        return ac;
    const char *why;
    int le = ufio_xmig_ep_link_error(s->dst, &why);
    if (le == -ECONNRESET || le == -ETIMEDOUT)
        return UFIO_XMIG_LINK;
    return code;
}

static int migrate(struct src *s)
{
    const struct ufio_xmig_opts *o = s->o;
    struct ufio_xmig_result *r = s->r;
    struct ufio_migrate_opts mo = { .size = sizeof(mo) };
    if (o->mig)
        memcpy(&mo, o->mig, o->mig->size < sizeof(mo) ? o->mig->size : sizeof(mo));
    mo.size = sizeof(mo);
    mo.src_path = mo.dst_path = NULL;
    mo.src = &s->watch;
    mo.dst = s->dst;
    mo.progress = on_progress;
    mo.opaque = s;
    char error[UFIO_MIGRATE_ERROR_MAX], warning[UFIO_MIGRATE_ERROR_MAX];
    struct ufio_migrate_result mr = { .size = sizeof(mr), .error = error, .error_size = sizeof(error),
                                      .warning = warning, .warning_size = sizeof(warning),
                                      .digest = r->digest, .digest_size = sizeof(r->digest) };
    error[0] = warning[0] = 0;
    int err = ufio_migrate(&mo, &mr);
    r->bytes = mr.bytes;
    r->precopy_bytes = mr.precopy_bytes;
    r->stopcopy_bytes = mr.stopcopy_bytes;
    r->rounds = mr.rounds;
    r->downtime_ms = mr.downtime_ms;
    r->predicted_downtime_ms = mr.predicted_downtime_ms;
    r->link_rate_mib_s = mr.rate_mib_s;
    r->dirty_limit = mr.dirty_limit;
    r->verified = mr.verified;
    if (!mr.verified)
        r->digest[0] = 0;
    snprintf(r->warning, sizeof(r->warning), "%s", warning);
    int code = outcome(s, err, warning);
    const char *why;
    if (code && ufio_xmig_ep_link_error(s->dst, &why) && !strstr(error, why))
        snprintf(r->error, sizeof(r->error), "%s; %s", error, why);
    else if (code)
        snprintf(r->error, sizeof(r->error), "%s", error);
    return code;
}

int ufio_xmig_send(const struct ufio_xmig_opts *o, struct ufio_xmig_result *r)
{
    memset(r, 0, sizeof(*r));
    r->peer_code = -1;
    double t0 = now_ms();
    struct src s = { .o = o, .r = r, .phase = XMIG_CONNECT };
    struct ufio_client_opts co = { .size = sizeof(co), .timeout_ms = o->dev_timeout_ms > 0 ? o->dev_timeout_ms : 5000,
                                   .max_data_xfer_size = 8u << 20, .role = UFIO_ROLE_CONTROLLER_REQ };
    int e = ufio_client_connect(o->dev_path, &co, &s.dev);
    if (e) {
        snprintf(r->error, sizeof(r->error), "source device %s: %s", o->dev_path, strerror(-e));
        return e == -EBUSY ? UFIO_XMIG_REFUSED : UFIO_XMIG_FAILED;
    }
    int code;
    emit(&s, XMIG_CONNECT, NULL);
    char err[UFIO_LINK_MAX_REASON + 256];
    e = ufio_link_connect(o->host, o->port, &o->link, &s.link, err, sizeof(err));
    if (e) {
        snprintf(r->error, sizeof(r->error), "%s", err);
        code = e == -EACCES || e == -EPROTONOSUPPORT ? UFIO_XMIG_REFUSED : UFIO_XMIG_LINK;
        goto out;
    }
    snprintf(r->peer, sizeof(r->peer), "%s", ufio_link_peer(s.link));
    char name[600];
    snprintf(name, sizeof(name), "destination (%s)", r->peer);
    struct ufio_xmig_ep_hooks h = { .pass_start = pass_start, .before_commit = before_commit, .opaque = &s };
    if ((e = ufio_mig_endpoint_client(s.dev, false, &s.inner)) || (e = ufio_xmig_ep_new(s.link, &h, name, &s.dst))) {
        snprintf(r->error, sizeof(r->error), "endpoints: %s", strerror(-e));
        code = UFIO_XMIG_FAILED;
        goto out;
    }
    s.watch = (struct ufio_mig_endpoint){ .size = sizeof(s.watch), .ops = &watch_ops, .priv = &s, .name = "source" };
    code = migrate(&s);
    char peer_reason[XM_MAX_REASON + 1];
    if (ufio_xmig_ep_close(s.dst, code, code ? r->error : NULL, &r->peer_code, peer_reason, sizeof(peer_reason)) &&
        !code)
        snprintf(r->warning, sizeof(r->warning), "the destination agent did not confirm the end (it runs: it "
                                                 "answered the commit)");
    else if (r->peer_code > 0 && code == UFIO_XMIG_OK)
        snprintf(r->warning, sizeof(r->warning), "the destination agent ended with %d: %.900s", r->peer_code,
                 peer_reason);
out:
    r->total_ms = now_ms() - t0;
    r->throughput_mib_s = r->total_ms > 0 ? r->bytes / 1048576.0 / (r->total_ms / 1e3) : 0;
    emit(&s, code ? XMIG_ABORTED : XMIG_DONE, code ? r->error : NULL);
    if (s.dst)
        ufio_mig_endpoint_destroy(s.dst);
    if (s.inner)
        ufio_mig_endpoint_destroy(s.inner);
    ufio_link_close(s.link);
    ufio_client_destroy(s.dev);
    return code;
}
