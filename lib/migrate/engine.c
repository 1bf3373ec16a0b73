/* The out-of-band migration engine (include/ufio/migrate.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ufio/client.h>
#include <ufio/migrate.h>
#include <ufio/migration.h>

#include "common/abi.h"
#include "proto/compat.h"

#define PUMP_CHUNK (1u << 20)

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int get_desc(struct ufio_client *c, char *buf, size_t cap)
{
    size_t got = 0;
    int err = ufio_client_feature(c, UFIO_FEATURE_GET | UFIO_FEATURE_COMPAT_DESC, NULL, 0, buf, cap - 1, &got);
    if (err)
        return err;
    if (!got || buf[got - 1] != 0)
        return -EPROTO;
    return 0;
}

struct ctx {
    const struct ufio_migrate_opts *o;
    struct ufio_migrate_result *r;
    struct ufio_client *src, *dst;
    uint8_t *buf;
    char error[UFIO_MIGRATE_ERROR_MAX]; /* copied to the caller's buffer at the end */
};

/* Moves stream bytes until the source gives a short read. */
static int pump(struct ctx *x, enum ufio_migrate_phase phase, uint64_t *moved)
{
    for (;;) {
        size_t got = 0;
        int err = ufio_client_mig_data_read(x->src, x->buf, PUMP_CHUNK, &got);
        if (err) {
            snprintf(x->error, sizeof(x->error), "reading migration data from the source: %s", strerror(-err));
            return err;
        }
        if (got) {
            err = ufio_client_mig_data_write(x->dst, x->buf, got);
            if (err) {
                snprintf(x->error, sizeof(x->error),
                         "the destination refused the migration data: %s (see its log for the reason)",
                         strerror(-err));
                return err;
            }
        }
        *moved += got;
        x->r->bytes += got;
        if (x->o->progress)
            x->o->progress(x->o->opaque, phase, x->r->bytes, x->r->rounds);
        /* the server caps a read at its max_data_xfer_size: a short read is one below that */
        struct ufio_client_caps caps = { .size = sizeof(caps) };
        ufio_client_get_caps(x->src, &caps);
        size_t full = caps.max_data_xfer_size < PUMP_CHUNK ? (size_t)caps.max_data_xfer_size : PUMP_CHUNK;
        if (got < full)
            return 0;
    }
}

static int set(struct ctx *x, struct ufio_client *c, unsigned st, const char *who)
{
    unsigned reached;
    int err = ufio_client_mig_set_state(c, st, &reached);
    if (err)
        snprintf(x->error, sizeof(x->error), "%s: moving to %s failed (%s); device now %s", who,
                 ufio_mig_state_name(st), strerror(-err), ufio_mig_state_name(reached));
    return err;
}

static int check(struct ctx *x)
{
    static char sd[65536], dd[65536];
    int err = get_desc(x->src, sd, sizeof(sd));
    if (!err)
        err = get_desc(x->dst, dd, sizeof(dd));
    if (err) {
        snprintf(x->error, sizeof(x->error), "reading compatibility descriptors: %s", strerror(-err));
        return err;
    }
    struct ufio_compat_verdict v;
    char e[256];
    if (ufio_compat_check_json(sd, dd, &v, e, sizeof(e))) {
        snprintf(x->error, sizeof(x->error), "%s", e);
        return -EINVAL;
    }
    x->r->compatible = v.compatible;
    if (!v.compatible) {
        ufio_compat_format(&v, x->error, sizeof(x->error));
        return -EPERM;
    }
    return 0;
}

static int run(struct ctx *x, double t_start)
{
    const struct ufio_migrate_opts *o = x->o;
    struct ufio_migrate_result *r = x->r;
    if (o->progress)
        o->progress(o->opaque, UFIO_MIGRATE_CHECK, 0, 0);
    int err = check(x);
    if (err)
        return err;
    uint64_t sflags, dflags;
    if ((err = ufio_client_mig_flags(x->src, &sflags)) || (err = ufio_client_mig_flags(x->dst, &dflags))) {
        snprintf(x->error, sizeof(x->error), "a device does not support migration: %s", strerror(-err));
        return err;
    }
    unsigned sstate;
    if ((err = ufio_client_mig_get_state(x->src, &sstate)))
        return err;
    if (sstate != UFIO_MIG_RUNNING && sstate != UFIO_MIG_STOP) {
        snprintf(x->error, sizeof(x->error), "the source device is in %s, not RUNNING or STOP",
                 ufio_mig_state_name(sstate));
        return -EBUSY;
    }
    if ((err = set(x, x->dst, UFIO_MIG_RESUMING, "destination")))
        return err;
    /* a stopped source stays stopped: no precopy, which would run it */
    bool precopy = !o->no_precopy && (sflags & UFIO_MIG_F_PRE_COPY) && sstate == UFIO_MIG_RUNNING;
    unsigned max_dt = o->max_downtime_ms ? o->max_downtime_ms : 300;
    unsigned max_rounds = o->max_rounds ? o->max_rounds : 30;
    double bw = 0; /* bytes per ms, measured */
    if (precopy) {
        if ((err = set(x, x->src, UFIO_MIG_PRE_COPY, "source")))
            return err;
        for (;;) {
            double t0 = now_ms();
            uint64_t moved = 0;
            if ((err = pump(x, UFIO_MIGRATE_PRECOPY, &moved)))
                return err;
            double dt = now_ms() - t0;
            r->precopy_bytes += moved;
            r->rounds++;
            if (moved && dt > 0)
                bw = moved / dt;
            uint64_t initial = 0, dirty = 0;
            if ((err = ufio_client_mig_precopy_info(x->src, &initial, &dirty))) {
                snprintf(x->error, sizeof(x->error), "precopy info: %s", strerror(-err));
                return err;
            }
            uint64_t left = initial + dirty;
            /* without a measurement yet, assume a conservative 100 MB/s */
            double rate = bw > 0 ? bw : 100e3;
            if (left / rate <= max_dt || r->rounds >= max_rounds)
                break;
        }
    }
    double t_stop = now_ms();
    if ((err = set(x, x->src, UFIO_MIG_STOP_COPY, "source")))
        return err;
    uint64_t moved = 0;
    if ((err = pump(x, UFIO_MIGRATE_STOPCOPY, &moved)))
        return err;
    r->stopcopy_bytes = moved;
    if (o->progress)
        o->progress(o->opaque, UFIO_MIGRATE_RESUME, r->bytes, r->rounds);
    if ((err = set(x, x->dst, UFIO_MIG_STOP, "destination (the stream was refused)")))
        return err;
    if ((err = set(x, x->dst, UFIO_MIG_RUNNING, "destination")))
        return err;
    r->downtime_ms = now_ms() - t_stop;
    /* the device lives on the destination now: end the source's session, stopped */
    if (set(x, x->src, UFIO_MIG_STOP, "source")) {
        /* not fatal: the destination runs; report it */
        fprintf(stderr, "ufio-migrate: warning: %s\n", x->error);
        x->error[0] = 0;
    }
    r->total_ms = now_ms() - t_start;
    r->throughput_mib_s = r->total_ms > 0 ? (r->bytes / 1048576.0) / (r->total_ms / 1e3) : 0;
    if (o->progress)
        o->progress(o->opaque, UFIO_MIGRATE_DONE, r->bytes, r->rounds);
    return 0;
}

static int migrate(struct ctx *x)
{
    const struct ufio_migrate_opts *o = x->o;
    double t0 = now_ms();
    /* a controller, through the management socket when there is one: the VMM may hold the device */
    struct ufio_client_opts co = { .size = sizeof(co), .timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000,
                                   .role = UFIO_ROLE_CONTROLLER_REQ };
    int err = ufio_client_connect(o->src_path, &co, &x->src);
    if (err) {
        snprintf(x->error, sizeof(x->error), "source %s: %s", o->src_path, strerror(-err));
        return err;
    }
    err = ufio_client_connect(o->dst_path, &co, &x->dst);
    if (err) {
        snprintf(x->error, sizeof(x->error), "destination %s: %s", o->dst_path, strerror(-err));
        ufio_client_destroy(x->src);
        return err;
    }
    x->buf = malloc(PUMP_CHUNK);
    err = x->buf ? run(x, t0) : -ENOMEM;
    if (err && err != -EPERM) {
        /* roll back: the source runs on with its state; the destination stays stopped */
        unsigned st;
        if (ufio_client_mig_get_state(x->src, &st) == 0 && st != UFIO_MIG_RUNNING) {
            if (ufio_client_mig_set_state(x->src, UFIO_MIG_RUNNING, NULL) != 0 && st == UFIO_MIG_ERROR)
                ufio_client_reset(x->src);
        }
        if (ufio_client_mig_get_state(x->dst, &st) == 0 && st == UFIO_MIG_RESUMING)
            ufio_client_mig_set_state(x->dst, UFIO_MIG_STOP, NULL);
    }
    free(x->buf);
    ufio_client_destroy(x->src);
    ufio_client_destroy(x->dst);
    return err;
}

UFIO_API int ufio_migrate(const struct ufio_migrate_opts *user_o, struct ufio_migrate_result *user_r)
{
    if (!user_o || abi_check_out(user_r))
        return -EINVAL;
    struct ufio_migrate_opts opts;
    int err = abi_struct_in(&opts, sizeof(opts), user_o);
    if (err)
        return err;
    /* the caller's error buffer, if its build knows the members */
    struct ufio_migrate_result caller = { .size = sizeof(caller) };
    abi_struct_out(&caller, user_r, abi_user_size(user_r) < sizeof(caller) ? abi_user_size(user_r) : sizeof(caller));
    struct ufio_migrate_result r = { .size = sizeof(r) };
    struct ctx x = { .o = &opts, .r = &r };
    err = migrate(&x);
    r.error = caller.error;
    r.error_size = caller.error_size;
    if (r.error && r.error_size)
        snprintf(r.error, r.error_size, "%s", x.error);
    abi_struct_out(user_r, &r, sizeof(r));
    return err;
}
