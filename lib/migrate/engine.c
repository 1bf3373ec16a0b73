/* The out-of-band migration engine (include/ufio/migrate.h). */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ufio/client.h>
#include <ufio/migrate.h>
#include <ufio/migration.h>

#include "common/abi.h"
#include "migrate/ep.h"
#include "proto/compat.h"
#include "proto/proto.h"

#define PUMP_MAX_CHUNK (8u << 20)
#define PUMP_NBUF 3

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct ctx {
    const struct ufio_migrate_opts *o;
    struct ufio_migrate_result *r;
    struct mep src, dst;
    size_t chunk;
    uint8_t *buf[PUMP_NBUF];
    unsigned dst_state0;  /* the destination's state before we touched it */
    bool dst_touched;     /* we moved the destination out of dst_state0 */
    bool src_touched;
    bool deadline_set;
    /* copied to the caller's buffers at the end */
    char error[UFIO_MIGRATE_ERROR_MAX];
    char warning[UFIO_MIGRATE_ERROR_MAX];
    char digest[2 * (8 + UFIO_DIGEST_MAX) + 1];
};

static void fail(struct ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct ctx *x, const char *fmt, ...)
{
    if (x->error[0])
        return; /* the first cause is the one to report */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->error, sizeof(x->error), fmt, ap);
    va_end(ap);
}

static bool cancelled(struct ctx *x)
{
    return x->o->cancel && *x->o->cancel;
}

/* A failed request on an end: its own reason when it gives one. */
static void fail_ep(struct ctx *x, struct mep *e, int err, const char *what)
{
    char why[512];
    if (mep_reason(e, why, sizeof(why)) == 0 && why[0])
        fail(x, "%s: %s: %s (%s)", e->who, what, strerror(-err), why);
    else
        fail(x, "%s: %s: %s", e->who, what, strerror(-err));
}

static int set(struct ctx *x, struct mep *e, unsigned st)
{
    unsigned reached;
    int err = mep_set_state(e, st, &reached);
    if (err) {
        char what[128];
        snprintf(what, sizeof(what), "moving to %s failed, device now %s", ufio_mig_state_name(st),
                 ufio_mig_state_name(reached));
        fail_ep(x, e, err, what);
    }
    return err;
}

/* ---- the pump: a reader thread on the source, the writer here ----------------------- */

struct pump {
    struct ctx *x;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t len[PUMP_NBUF];
    unsigned head, count;
    bool eof, stop;
    int rerr;
};

static void *reader(void *arg)
{
    struct pump *p = arg;
    struct ctx *x = p->x;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->count == PUMP_NBUF && !p->stop)
            pthread_cond_wait(&p->cond, &p->lock);
        if (p->stop)
            break;
        unsigned slot = (p->head + p->count) % PUMP_NBUF;
        pthread_mutex_unlock(&p->lock);
        size_t got = 0;
        int err = cancelled(x) ? -ECANCELED : mep_read(&x->src, x->buf[slot], x->chunk, &got);
        pthread_mutex_lock(&p->lock);
        if (err) {
            p->rerr = err;
            break;
        }
        p->len[slot] = got;
        p->count++;
        pthread_cond_broadcast(&p->cond);
        /* a short read ends the pass: "no more now" in PRE_COPY, the end in STOP_COPY */
        if (got < x->chunk) {
            p->eof = true;
            break;
        }
    }
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Moves stream bytes until the source gives a short read; reads overlap writes. */
static int pump(struct ctx *x, enum ufio_migrate_phase phase, uint64_t *moved)
{
    struct pump p = { .x = x };
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.cond, NULL);
    pthread_t th;
    int err = -pthread_create(&th, NULL, reader, &p);
    if (err) {
        fail(x, "starting the pump: %s", strerror(-err));
        goto out;
    }
    pthread_mutex_lock(&p.lock);
    for (;;) {
        while (p.count == 0 && !p.eof && !p.rerr)
            pthread_cond_wait(&p.cond, &p.lock);
        if (p.count == 0)
            break;
        unsigned slot = p.head;
        size_t n = p.len[slot];
        pthread_mutex_unlock(&p.lock);
        int werr = n ? mep_write(&x->dst, x->buf[slot], n) : 0;
        if (!werr && cancelled(x))
            werr = -ECANCELED;
        pthread_mutex_lock(&p.lock);
        if (werr) {
            err = werr;
            p.stop = true;
            pthread_cond_broadcast(&p.cond);
            break;
        }
        p.head = (p.head + 1) % PUMP_NBUF;
        p.count--;
        pthread_cond_broadcast(&p.cond);
        *moved += n;
        x->r->bytes += n;
        if (x->o->progress) {
            pthread_mutex_unlock(&p.lock);
            x->o->progress(x->o->opaque, phase, x->r->bytes, x->r->rounds);
            pthread_mutex_lock(&p.lock);
        }
    }
    int rerr = p.rerr;
    pthread_mutex_unlock(&p.lock);
    pthread_join(th, NULL);
    /* a destination that takes writes ahead of its device (a network link) has the whole
     * pass only now: the caller's clock, and so the measured rate, includes this wait */
    if (!err && !rerr)
        err = mep_flush(&x->dst);
    if (err == -ECANCELED || (!err && rerr == -ECANCELED)) {
        fail(x, "interrupted");
        err = -ECANCELED;
    } else if (err) {
        fail_ep(x, &x->dst, err, "the migration data was refused");
    } else if (rerr) {
        err = rerr;
        fail_ep(x, &x->src, err, "reading migration data");
    }
out:
    pthread_cond_destroy(&p.cond);
    pthread_mutex_destroy(&p.lock);
    return err;
}

/* ---- steps --------------------------------------------------------------------------- */

static int check(struct ctx *x)
{
    size_t cap = UFIO_COMPAT_MAX_DESC + 1;
    char *sd = malloc(cap), *dd = malloc(cap);
    struct ufio_compat_verdict *v = malloc(sizeof(*v));
    int err = sd && dd && v ? 0 : -ENOMEM;
    if (err)
        fail(x, "no memory for the descriptors");
    else if ((err = mep_desc(&x->src, sd, cap)))
        fail(x, "%s: reading its compatibility descriptor: %s", x->src.who, strerror(-err));
    else if ((err = mep_desc(&x->dst, dd, cap)))
        fail(x, "%s: reading its compatibility descriptor: %s", x->dst.who, strerror(-err));
    char e[256];
    if (!err && ufio_compat_check_json(sd, dd, v, e, sizeof(e))) {
        fail(x, "%s", e);
        err = -EINVAL;
    }
    if (!err) {
        x->r->compatible = v->compatible;
        if (!v->compatible) {
            ufio_compat_format(v, x->error, sizeof(x->error));
            err = -EPERM;
        }
    }
    free(sd);
    free(dd);
    free(v);
    return err;
}

/* The states both ends must be in to start, and what --force allows. */
static int check_states(struct ctx *x, unsigned *sstate)
{
    const struct ufio_migrate_opts *o = x->o;
    int err;
    if ((err = mep_get_state(&x->src, sstate))) {
        fail_ep(x, &x->src, err, "reading its migration state");
        return err;
    }
    if (*sstate == UFIO_MIG_STOP && !o->force) {
        fail(x, "%s: the device is stopped (STOP): it was migrated away already, or is paused; "
                "--force migrates the stopped state anyway", x->src.who);
        return -EALREADY;
    }
    if (*sstate != UFIO_MIG_RUNNING && *sstate != UFIO_MIG_STOP) {
        fail(x, "%s: the device is in %s, not RUNNING: another migration is in progress or was interrupted",
             x->src.who, ufio_mig_state_name(*sstate));
        return -EBUSY;
    }
    if ((err = mep_get_state(&x->dst, &x->dst_state0))) {
        fail_ep(x, &x->dst, err, "reading its migration state");
        return err;
    }
    if (x->dst_state0 == UFIO_MIG_ERROR) {
        /* an earlier migration into it was abandoned with records loaded (its controller
         * went away: SIGKILL): it never ran them, and a reset drops them; it is left stopped */
        if ((err = mep_reset(&x->dst)) || (err = set(x, &x->dst, UFIO_MIG_STOP))) {
            if (!x->error[0])
                fail_ep(x, &x->dst, err, "resetting a device left in ERROR by an abandoned migration");
            return err;
        }
        x->dst_state0 = UFIO_MIG_STOP;
    }
    if (x->dst_state0 != UFIO_MIG_RUNNING && x->dst_state0 != UFIO_MIG_STOP) {
        fail(x, "%s: the device is in %s: a migration into it is in progress or was interrupted; "
                "ufio-migrate --reset %s makes it usable again", x->dst.who, ufio_mig_state_name(x->dst_state0),
             x->dst.who);
        return -EBUSY;
    }
    return 0;
}

static void hex(char *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
    out[2 * n] = 0;
}

/* Both stopped: the source's digest against the loaded destination's. */
static int verify(struct ctx *x)
{
    uint8_t sd[8 + UFIO_DIGEST_MAX], dd[8 + UFIO_DIGEST_MAX];
    size_t sl = 0, dl = 0;
    int err = mep_digest(&x->src, sd, sizeof(sd), &sl);
    if (err == -ENOTSUP || err == -EINVAL)
        return 0; /* a device without the extension: nothing to compare */
    if (err) {
        fail_ep(x, &x->src, err, "reading its digest");
        return err;
    }
    if ((err = mep_digest(&x->dst, dd, sizeof(dd), &dl))) {
        fail_ep(x, &x->dst, err, "reading its digest");
        return err == -ENOTSUP ? -EBADE : err;
    }
    char sh[2 * sizeof(sd) + 1], dh[2 * sizeof(dd) + 1];
    hex(sh, sd, sl);
    hex(dh, dd, dl);
    if (sl != dl || memcmp(sd, dd, sl)) {
        fail(x, "digest mismatch: the destination loaded a state that differs from the source's (source %s, "
                "destination %s%s); rolled back, the source runs on",
             sh, dh, sl >= 8 && dl >= 8 && memcmp(sd + 4, dd + 4, 4) ? ", library state differs" : "");
        return -EBADE;
    }
    x->r->verified = true;
    snprintf(x->digest, sizeof(x->digest), "%s", sh);
    return 0;
}

/* What is left to send in precopy, or -ENOTSUP when the source cannot say. */
static int left_bytes(struct ctx *x, uint64_t *left, double *rtt)
{
    uint64_t initial = 0, dirty = 0;
    double t0 = now_ms();
    int err = mep_precopy_info(&x->src, &initial, &dirty);
    double t = now_ms() - t0;
    if (t < *rtt || *rtt == 0)
        *rtt = t;
    if (err == -ENOTSUP || err == -EINVAL) {
        /* no PRECOPY_INFO (libvfio-user answers EINVAL for a feature it lacks) */
        uint64_t sc;
        if (mep_stop_copy_size(&x->src, &sc) == 0) {
            *left = sc;
            return 0;
        }
        return -ENOTSUP;
    }
    if (err) {
        fail_ep(x, &x->src, err, "precopy info");
        return err;
    }
    *left = initial + dirty;
    return 0;
}

/*
 * The destination was told to run and did not say it does. Asked again: not
 * running, so rolling back is safe; running after all, the migration goes on
 * (returns 0). When it cannot be asked (its agent's link is gone) it may run:
 * resuming the source could run the device twice, so the source is stopped
 * for good (STOP keeps its state) and nothing is rolled back: -EINPROGRESS,
 * "in doubt", for the caller to settle (docs/cross-host.md).
 */
static int start_unconfirmed(struct ctx *x, int err)
{
    unsigned st;
    int e = mep_get_state(&x->dst, &st);
    if (!e && st != UFIO_MIG_RUNNING)
        return err;
    if (!e) {
        x->error[0] = 0; /* it runs: the failure was its answer, not the move */
        return 0;
    }
    mep_set_state(&x->src, UFIO_MIG_STOP, NULL);
    if (x->deadline_set)
        mep_set_u64(&x->src, UFIO_FEATURE_STOP_COPY_DEADLINE, 0);
    x->src_touched = x->dst_touched = x->deadline_set = false;
    if (x->r->dirty_limit)
        mep_set_u64(&x->src, UFIO_FEATURE_DIRTY_RATE_LIMIT, 0);
    size_t l = strlen(x->error);
    snprintf(x->error + l, sizeof(x->error) - l,
             "; in doubt: the destination may be running, so the source is left stopped (STOP, its state kept)");
    return -EINPROGRESS;
}

static int run(struct ctx *x, double t_start)
{
    const struct ufio_migrate_opts *o = x->o;
    struct ufio_migrate_result *r = x->r;
    if (o->progress)
        o->progress(o->opaque, UFIO_MIGRATE_CHECK, 0, 0);
    uint64_t sflags, dflags;
    int err;
    if ((err = mep_flags(&x->src, &sflags)) || (err = mep_flags(&x->dst, &dflags))) {
        fail(x, "a device does not support migration: %s", strerror(-err));
        return err;
    }
    if ((err = check(x)))
        return err;
    unsigned sstate;
    if ((err = check_states(x, &sstate)))
        return err;
    if (cancelled(x)) {
        fail(x, "interrupted before anything moved");
        return -ECANCELED;
    }
    uint64_t sc = mep_max_chunk(&x->src);
    x->chunk = sc && sc < PUMP_MAX_CHUNK ? (size_t)sc : PUMP_MAX_CHUNK;
    for (int i = 0; i < PUMP_NBUF; i++)
        if (!(x->buf[i] = malloc(x->chunk))) {
            fail(x, "no memory for the pump buffers");
            return -ENOMEM;
        }
    x->dst_touched = true;
    if ((err = set(x, &x->dst, UFIO_MIG_RESUMING)))
        return err;
    /* a stopped source stays stopped: no precopy, which would run it */
    bool precopy = !o->no_precopy && (sflags & UFIO_MIG_F_PRE_COPY) && sstate == UFIO_MIG_RUNNING;
    unsigned max_dt = o->max_downtime_ms ? o->max_downtime_ms : 300;
    unsigned max_rounds = o->max_rounds ? o->max_rounds : 30;
    double max_pre_ms = o->max_precopy_ms ? o->max_precopy_ms : 60000;
    double bw = 0;  /* bytes per ms, end to end: the destination's load included */
    double rtt = 0; /* the quickest request, ms */
    double lat = 0; /* the slower end's quickest request: over a link, the destination's */
    double predicted = 0;
    x->src_touched = true;
    if (precopy) {
        double t_pre = now_ms();
        if ((err = set(x, &x->src, UFIO_MIG_PRE_COPY)))
            return err;
        uint64_t last_left = UINT64_MAX;
        for (;;) {
            double t0 = now_ms();
            uint64_t moved = 0;
            if ((err = pump(x, UFIO_MIGRATE_PRECOPY, &moved)))
                return err;
            double dt = now_ms() - t0;
            r->precopy_bytes += moved;
            r->rounds++;
            if (moved >= x->chunk && dt > 0)
                bw = moved / dt; /* a round of a single short read says nothing of the rate */
            uint64_t left;
            if ((err = left_bytes(x, &left, &rtt)) == -ENOTSUP)
                left = moved; /* no estimate (a server without ufio's extensions): what this round moved */
            else if (err)
                return err;
            lat = rtt > x->dst.quickest_ms ? rtt : x->dst.quickest_ms;
            double rate = bw > 0 ? bw : 100e3; /* before a measurement: a conservative 100 MB/s */
            /* a quarter more than the rate says, for what the rate does not see (the source's
             * stop, the destination's final checks, both digests, its start) */
            predicted = left / rate * 1.25 + 4 * lat + 1;
            /* the first round's rate is that of one sequential pass over the state; what is left
             * after it is pages scattered through it, which both ends move slower (each page its
             * own TLB and cache misses): measured, 1 GiB dirtied at 100 pages/ms, a stop-copy of
             * the ~57 MiB left after one round overran a prediction of 30 ms past its 36 ms
             * deadline. So unless what is left is a chunk or less, stop only on the rate of a
             * round of dirty pages. */
            bool fits = predicted <= max_dt && (r->rounds >= 2 || left <= x->chunk);
            bool bounded = r->rounds >= max_rounds || now_ms() - t_pre >= max_pre_ms ||
                           (o->max_precopy_bytes && r->precopy_bytes >= o->max_precopy_bytes);
            if (fits || bounded || cancelled(x))
                break;
            /* not converging (what is left does not shrink by a tenth): ask the device to dirty
             * less, a quarter of what the link moves, then half of that each time */
            if (r->rounds >= 2 && left * 10 > last_left * 9 && bw > 0) {
                uint64_t lim = r->dirty_limit ? r->dirty_limit / 2 : (uint64_t)(bw * 1000 / 4 / 4096);
                if (lim == 0)
                    lim = 1;
                if (mep_set_u64(&x->src, UFIO_FEATURE_DIRTY_RATE_LIMIT, lim) == 0)
                    r->dirty_limit = lim;
            }
            last_left = left;
        }
        r->predicted_downtime_ms = predicted;
        r->rate_mib_s = bw * 1000 / 1048576.0;
        if (predicted > max_dt && !o->force_downtime && !cancelled(x)) {
            fail(x, "the budget cannot be met: %.1f MiB still to move at the measured %.1f MiB/s (the "
                    "destination's load included) is about %.0f ms of downtime, over the %u ms budget; the source "
                    "was never stopped and runs on (--force-downtime stops it anyway)",
                 (predicted - 4 * lat - 1) / 1.25 * (bw > 0 ? bw : 100e3) / 1048576.0,
                 (bw > 0 ? bw : 100e3) * 1000 / 1048576.0,
                 predicted, max_dt);
            return -ETIME;
        }
    }
    if (cancelled(x)) {
        fail(x, "interrupted");
        return -ECANCELED;
    }
    /* the source gets three quarters of the budget for stop-copy: the rest is for the
     * destination's STOP and RUNNING and the digests */
    lat = rtt > x->dst.quickest_ms ? rtt : x->dst.quickest_ms;
    double dl = max_dt * 0.75 - 4 * lat;
    uint64_t deadline = !o->force_downtime && dl >= 1 ? (uint64_t)dl : 0;
    if (deadline && mep_set_u64(&x->src, UFIO_FEATURE_STOP_COPY_DEADLINE, deadline) != 0)
        deadline = 0; /* a device without the extension: the engine's own decision stands */
    x->deadline_set = deadline != 0;
    double t_stop = now_ms();
    if ((err = set(x, &x->src, UFIO_MIG_STOP_COPY)))
        return err;
    uint64_t moved = 0;
    if ((err = pump(x, UFIO_MIGRATE_STOPCOPY, &moved))) {
        r->downtime_ms = now_ms() - t_stop; /* how long the source was stopped before it ran again */
        if (err == -ETIME)
            snprintf(x->error + strlen(x->error), sizeof(x->error) - strlen(x->error),
                     "; the source did not finish stop-copy within the %llu ms it was given",
                     (unsigned long long)deadline);
        return err;
    }
    r->stopcopy_bytes = moved;
    if (o->progress)
        o->progress(o->opaque, UFIO_MIGRATE_RESUME, r->bytes, r->rounds);
    if ((err = set(x, &x->dst, UFIO_MIG_STOP)))
        return err;
    if (!o->no_verify && (err = verify(x)))
        return err;
    if (cancelled(x)) {
        fail(x, "interrupted");
        return -ECANCELED;
    }
    if ((err = set(x, &x->dst, UFIO_MIG_RUNNING)) && (err = start_unconfirmed(x, err)))
        return err;
    r->downtime_ms = now_ms() - t_stop;
    x->dst_touched = x->src_touched = false; /* the device lives on the destination now */
    /* end the source's session, stopped */
    if (set(x, &x->src, UFIO_MIG_STOP)) {
        /* not fatal: the destination runs; report it */
        snprintf(x->warning, sizeof(x->warning), "%s", x->error);
        x->error[0] = 0;
    }
    if (r->dirty_limit)
        mep_set_u64(&x->src, UFIO_FEATURE_DIRTY_RATE_LIMIT, 0);
    r->total_ms = now_ms() - t_start;
    r->throughput_mib_s = r->total_ms > 0 ? (r->bytes / 1048576.0) / (r->total_ms / 1e3) : 0;
    if (o->progress)
        o->progress(o->opaque, UFIO_MIGRATE_DONE, r->bytes, r->rounds);
    return 0;
}

/* Undo after a failure: the source runs on with its state, the destination is stopped. */
static void roll_back(struct ctx *x)
{
    unsigned st;
    if (x->src_touched && mep_get_state(&x->src, &st) == 0 && st != UFIO_MIG_RUNNING) {
        if (mep_set_state(&x->src, UFIO_MIG_RUNNING, NULL) != 0 && mep_reset(&x->src) != 0)
            snprintf(x->warning, sizeof(x->warning), "%s: could not be put back to RUNNING", x->src.who);
    }
    if (x->r->dirty_limit)
        mep_set_u64(&x->src, UFIO_FEATURE_DIRTY_RATE_LIMIT, 0);
    if (x->deadline_set)
        mep_set_u64(&x->src, UFIO_FEATURE_STOP_COPY_DEADLINE, 0);
    if (x->dst_touched && mep_get_state(&x->dst, &st) == 0 && st != UFIO_MIG_STOP) {
        /* leaving RESUMING with half a stream fails into ERROR; a reset (to RUNNING) then STOP
         * frees what it holds and leaves it stopped */
        if (mep_set_state(&x->dst, UFIO_MIG_STOP, NULL) != 0) {
            if (mep_reset(&x->dst) != 0 || mep_set_state(&x->dst, UFIO_MIG_STOP, NULL) != 0)
                snprintf(x->warning, sizeof(x->warning), "%s: could not be stopped", x->dst.who);
        }
    }
}

static int open_end(struct ctx *x, struct mep *e, struct ufio_mig_endpoint *given, const char *path,
                    const char *who)
{
    e->who = who;
    if (given) {
        /* every call up to destroy is needed (an older, shorter table cannot be used); flush,
         * added after them, is optional (ep.c reads it only when the table's size covers it) */
        if (given->size < sizeof(*given) || !given->ops ||
            given->ops->size < offsetof(struct ufio_mig_endpoint_ops, flush) ||
            !given->ops->feature || !given->ops->data_read || !given->ops->data_write) {
            fail(x, "%s: the endpoint given is incomplete", who);
            return -EINVAL;
        }
        e->e = given;
        e->owned = false;
        return 0;
    }
    /* a controller, through the management socket when there is one: the VMM may hold the device */
    struct ufio_client_opts co = { .size = sizeof(co), .timeout_ms = x->o->timeout_ms > 0 ? x->o->timeout_ms : 5000,
                                   .max_data_xfer_size = PUMP_MAX_CHUNK, .role = UFIO_ROLE_CONTROLLER_REQ };
    struct ufio_client *c;
    int err = path ? ufio_client_connect(path, &co, &c) : -EINVAL;
    if (!err && (err = ufio_mig_endpoint_client(c, true, &e->e)))
        ufio_client_destroy(c);
    if (err)
        fail(x, "%s %s: %s", who, path ? path : "(no path)", strerror(-err));
    e->owned = !err;
    return err;
}

static int migrate(struct ctx *x)
{
    const struct ufio_migrate_opts *o = x->o;
    double t0 = now_ms();
    int err = open_end(x, &x->src, o->src, o->src_path, "source");
    if (!err && (err = open_end(x, &x->dst, o->dst, o->dst_path, "destination")))
        mep_close(&x->src);
    if (err)
        return err;
    err = run(x, t0);
    if (err && err != -EPERM && err != -EINPROGRESS)
        roll_back(x);
    for (int i = 0; i < PUMP_NBUF; i++)
        free(x->buf[i]);
    mep_close(&x->src);
    mep_close(&x->dst);
    return err;
}

static void copy_out(char *to, size_t cap, const char *from)
{
    if (to && cap)
        snprintf(to, cap, "%s", from);
}

UFIO_API int ufio_migrate(const struct ufio_migrate_opts *user_o, struct ufio_migrate_result *user_r)
{
    if (!user_o || abi_check_out(user_r))
        return -EINVAL;
    struct ufio_migrate_opts opts;
    int err = abi_struct_in(&opts, sizeof(opts), user_o);
    if (err)
        return err;
    /* the caller's buffers, if its build knows the members */
    struct ufio_migrate_result caller = { .size = sizeof(caller) };
    abi_struct_out(&caller, user_r, abi_user_size(user_r) < sizeof(caller) ? abi_user_size(user_r) : sizeof(caller));
    struct ufio_migrate_result r = { .size = sizeof(r) };
    struct ctx *x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    x->o = &opts;
    x->r = &r;
    err = migrate(x);
    r.error = caller.error;
    r.error_size = caller.error_size;
    r.warning = caller.warning;
    r.warning_size = caller.warning_size;
    r.digest = caller.digest;
    r.digest_size = caller.digest_size;
    copy_out(r.error, r.error_size, x->error);
    copy_out(r.warning, r.warning_size, x->warning);
    copy_out(r.digest, r.digest_size, x->digest);
    free(x);
    abi_struct_out(user_r, &r, sizeof(r));
    return err;
}

UFIO_API int ufio_migrate_reset(const char *path, struct ufio_mig_endpoint *given, int timeout_ms, char *why,
                                size_t why_len)
{
    struct ufio_migrate_opts o = { .size = sizeof(o), .timeout_ms = timeout_ms };
    struct ufio_migrate_result r = { .size = sizeof(r) };
    struct ctx *x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    x->o = &o;
    x->r = &r;
    int err = open_end(x, &x->dst, given, path, "device");
    if (!err) {
        unsigned st = UFIO_MIG_ERROR;
        mep_get_state(&x->dst, &st);
        /* RESUMING -> STOP would load a half stream: a reset drops it */
        if (st != UFIO_MIG_STOP && st != UFIO_MIG_RUNNING && (err = mep_reset(&x->dst)))
            fail(x, "device: reset: %s", strerror(-err));
        if (!err)
            err = set(x, &x->dst, UFIO_MIG_STOP);
        mep_close(&x->dst);
    }
    if (why)
        snprintf(why, why_len, "%s", x->error);
    free(x);
    return err;
}
