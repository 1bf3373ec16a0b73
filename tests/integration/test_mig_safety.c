/*
 * Migration you can trust: the defects of issue 14, each checked from
 * outside (a second client reads both devices back after every path).
 *   - a second migration from the same source, and a retry with no precopy
 *     after an aborted precopy, carry BAR2 (the save-session-start signal);
 *   - a source already migrated away (STOP) is refused unless forced;
 *   - a destination left half-loaded is refused by name and can be reset;
 *   - a digest mismatch rolls back before the destination runs;
 *   - every arc can fail and leaves device and library in `from`;
 *   - stop-copy past its deadline puts the source back to RUNNING;
 *   - a budget that cannot be met is refused before the source stops;
 *   - the device honours a dirty-rate limit;
 *   - SIGINT, SIGTERM and SIGKILL of ufio-migrate at each phase roll back, an owner
 *     busy on the source all along (held requests answered once it runs again);
 *   - a busy owner's writes are refused, not lost, once its device migrated away;
 *   - a source migrated away stays stopped whoever comes and goes.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <ufio/client.h>
#include <ufio/migrate.h>
#include <ufio/migration.h>

#include "harness.h"

static const char *sample_bin, *migrate_bin, *plain_bin;

enum { REG_SCRATCH = 0x08, REG_DIGEST_LO = 0x38, REG_DIGEST_HI = 0x3c, REG_MIG_FAIL = 0x40 };
#define FAIL_ARC(from, to) (0x10000u | (unsigned)(from) | (unsigned)(to) << 8)
#define FAIL_SAVE_START 0x20000u
#define FAIL_CORRUPT_LOAD 0x40000u
#define FAIL_SAVE_ETIME 0x80000u

/* What a device looks like from outside: scratch, BAR2, digest, migration state. */
struct look {
    uint32_t scratch;
    uint8_t bar2[65536];
    uint64_t digest;
    unsigned state;
};

static void look(struct srv *s, struct look *l)
{
    struct ufio_client *c = t_owner(s);
    l->scratch = t_r32(c, 0, REG_SCRATCH);
    assert_int_equal(ufio_client_region_read(c, 2, 0, l->bar2, sizeof(l->bar2)), 0);
    l->digest = t_digest(c);
    l->state = t_state(c);
    ufio_client_destroy(c);
}

/* Gives the device a state that differs from its initial one. */
static void scribble(struct srv *s, uint32_t seed)
{
    static uint8_t ram[65536];
    for (size_t i = 0; i < sizeof(ram); i++)
        ram[i] = (uint8_t)(i * 13 + seed);
    struct ufio_client *c = t_owner(s);
    assert_int_equal(ufio_client_region_write(c, 2, 0, ram, sizeof(ram)), 0);
    t_w32(c, 0, REG_SCRATCH, seed);
    ufio_client_destroy(c);
}

static void set_state(struct srv *s, unsigned st)
{
    struct ufio_client *c = t_owner(s);
    assert_int_equal(ufio_client_mig_set_state(c, st, NULL), 0);
    ufio_client_destroy(c);
}

static void inject(struct srv *s, uint32_t what)
{
    struct ufio_client *c = t_owner(s);
    t_w32(c, 0, REG_MIG_FAIL, what);
    ufio_client_destroy(c);
}

/* The destination has the source's state (source read while stopped). */
static void assert_same(const struct look *src, const struct look *dst)
{
    assert_int_equal(dst->scratch, src->scratch);
    assert_memory_equal(dst->bar2, src->bar2, sizeof(src->bar2));
    assert_int_equal(dst->digest, src->digest);
}

static char errbuf[UFIO_MIGRATE_ERROR_MAX], digbuf[UFIO_MIGRATE_DIGEST_MAX];

static int migrate(struct srv *a, struct srv *b, struct ufio_migrate_opts *o, struct ufio_migrate_result *r)
{
    o->size = sizeof(*o);
    o->src_path = a->path;
    o->dst_path = b->path;
    *r = (struct ufio_migrate_result){ .size = sizeof(*r), .error = errbuf, .error_size = sizeof(errbuf),
                                       .digest = digbuf, .digest_size = sizeof(digbuf) };
    return ufio_migrate(o, r);
}

/* ---- the silent data loss ------------------------------------------------------ */

/* A second migration from the same source sends BAR2 again (main left it out). */
static void test_second_migration_keeps_bar2(void **st)
{
    struct srv a, b, c;
    assert_int_equal(srv_start(&a, sample_bin, NULL), 0);
    assert_int_equal(srv_start(&b, sample_bin, NULL), 0);
    assert_int_equal(srv_start(&c, sample_bin, NULL), 0);
    scribble(&a, 0x31);
    struct ufio_migrate_opts o = { 0 };
    struct ufio_migrate_result r;
    assert_int_equal(migrate(&a, &b, &o, &r), 0);
    /* the source is run again (say the migration is undone by hand), then moved anew */
    set_state(&a, UFIO_MIG_RUNNING);
    o = (struct ufio_migrate_opts){ .no_precopy = true };
    assert_int_equal(migrate(&a, &c, &o, &r), 0);
    static struct look la, lc;
    look(&a, &la);
    look(&c, &lc);
    assert_int_equal(la.state, UFIO_MIG_STOP);
    assert_int_equal(lc.state, UFIO_MIG_RUNNING);
    assert_same(&la, &lc);
    assert_true(r.verified);
    srv_stop(&a);
    srv_stop(&b);
    srv_stop(&c);
}

/* Progress hook: SIGKILL the server in opaque once precopy data flows. */
static void kill_in_precopy(void *opaque, enum ufio_migrate_phase ph, uint64_t bytes, unsigned round)
{
    struct srv *s = opaque;
    if (ph == UFIO_MIGRATE_PRECOPY)
        srv_kill(s);
}

/* A retry with no precopy after an aborted precopy sends BAR2 (main left it out). */
static void test_retry_after_aborted_precopy(void **st)
{
    struct srv a, b, c;
    assert_int_equal(srv_start(&a, sample_bin, NULL), 0);
    assert_int_equal(srv_start(&b, sample_bin, NULL), 0);
    assert_int_equal(srv_start(&c, sample_bin, NULL), 0);
    scribble(&a, 0x77);
    struct ufio_migrate_opts o = { .progress = kill_in_precopy, .opaque = &b };
    struct ufio_migrate_result r;
    assert_true(migrate(&a, &b, &o, &r) < 0);
    static struct look la, lc;
    look(&a, &la);
    assert_int_equal(la.state, UFIO_MIG_RUNNING); /* rolled back */
    o = (struct ufio_migrate_opts){ .no_precopy = true };
    assert_int_equal(migrate(&a, &c, &o, &r), 0);
    look(&a, &la);
    look(&c, &lc);
    assert_same(&la, &lc);
    srv_stop(&a);
    srv_stop(&c);
}

/* A source left in STOP (migrated away) is refused by name; --force moves it. */
static void test_stopped_source_refused(void **st)
{
    struct srv a, b, c;
    assert_int_equal(srv_start(&a, sample_bin, NULL), 0);
    assert_int_equal(srv_start(&b, sample_bin, NULL), 0);
    assert_int_equal(srv_start(&c, sample_bin, NULL), 0);
    scribble(&a, 0x05);
    scribble(&c, 0x99); /* the destination runs something of its own */
    struct ufio_migrate_opts o = { 0 };
    struct ufio_migrate_result r;
    assert_int_equal(migrate(&a, &b, &o, &r), 0);
    static struct look la, lc, lc0;
    look(&c, &lc0);
    assert_int_equal(migrate(&a, &c, &o, &r), -EALREADY);
    assert_non_null(strstr(r.error, "stopped"));
    assert_non_null(strstr(r.error, "--force"));
    look(&c, &lc);
    assert_int_equal(lc.state, UFIO_MIG_RUNNING); /* untouched */
    assert_int_equal(lc.scratch, 0x99);
    assert_int_equal(lc.digest, lc0.digest);
    o.force = true;
    assert_int_equal(migrate(&a, &c, &o, &r), 0);
    look(&a, &la);
    look(&c, &lc);
    assert_same(&la, &lc);
    srv_stop(&a);
    srv_stop(&b);
    srv_stop(&c);
}

/* A destination left in RESUMING is refused by name; ufio_migrate_reset makes it usable. */
static void test_half_loaded_destination(void **st)
{
    struct srv a, b;
    assert_int_equal(srv_start(&a, sample_bin, NULL), 0);
    assert_int_equal(srv_start(&b, sample_bin, NULL), 0);
    scribble(&a, 0x42);
    /* half a stream into b, as an interrupted migration would leave it */
    struct ufio_client *ca = t_owner(&a), *cb = t_owner(&b);
    assert_int_equal(ufio_client_mig_set_state(cb, UFIO_MIG_RESUMING, NULL), 0);
    assert_int_equal(ufio_client_mig_set_state(ca, UFIO_MIG_PRE_COPY, NULL), 0);
    static uint8_t buf[40000];
    size_t got = 0;
    assert_int_equal(ufio_client_mig_data_read(ca, buf, sizeof(buf), &got), 0);
    assert_int_equal(got, sizeof(buf));
    assert_int_equal(ufio_client_mig_data_write(cb, buf, got), 0);
    assert_int_equal(ufio_client_mig_set_state(ca, UFIO_MIG_RUNNING, NULL), 0);
    ufio_client_destroy(ca);
    /* cb stays connected: the destination stays in RESUMING, half loaded */
    struct ufio_migrate_opts o = { 0 };
    struct ufio_migrate_result r;
    assert_int_equal(migrate(&a, &b, &o, &r), -EBUSY);
    assert_non_null(strstr(r.error, "RESUMING"));
    assert_non_null(strstr(r.error, "--reset"));
    char why[256];
    assert_int_equal(ufio_migrate_reset(b.path, NULL, 0, why, sizeof(why)), 0);
    assert_int_equal(t_state(cb), UFIO_MIG_STOP);
    ufio_client_destroy(cb);
    static struct look la, lb;
    assert_int_equal(migrate(&a, &b, &o, &r), 0);
    look(&a, &la);
    look(&b, &lb);
    assert_same(&la, &lb);
    srv_stop(&a);
    srv_stop(&b);
}

/* ---- verified migration ----------------------------------------------------------- */

/* The destination loads a wrong byte: the digests differ, nothing runs on it. */
static void test_digest_mismatch_rolls_back(void **st)
{
    struct srv a, b;
    assert_int_equal(srv_start(&a, sample_bin, NULL), 0);
    assert_int_equal(srv_start(&b, sample_bin, NULL), 0);
    scribble(&a, 0x11);
    static struct look la0, la, lb;
    set_state(&a, UFIO_MIG_STOP);
    look(&a, &la0);
    set_state(&a, UFIO_MIG_RUNNING);
    inject(&b, FAIL_CORRUPT_LOAD);
    struct ufio_migrate_opts o = { 0 };
    struct ufio_migrate_result r;
    assert_int_equal(migrate(&a, &b, &o, &r), -EBADE);
    assert_non_null(strstr(r.error, "digest mismatch"));
    assert_false(r.verified);
    look(&a, &la);
    assert_int_equal(la.state, UFIO_MIG_RUNNING);
    assert_int_equal(la.digest, la0.digest);
    look(&b, &lb);
    assert_int_equal(lb.state, UFIO_MIG_STOP); /* loaded but never ran */
    assert_true(lb.digest != la.digest);
    /* without the fault the same pair migrates, verified */
    assert_int_equal(migrate(&a, &b, &o, &r), 0);
    assert_true(r.verified);
    assert_int_equal(strlen(r.digest), 2 * 16);
    look(&a, &la);
    look(&b, &lb);
    assert_same(&la, &lb);
    srv_stop(&a);
    srv_stop(&b);
}

/* Library state is part of the digest: two stopped devices that differ only in config space. */
static void test_digest_covers_library_state(void **st)
{
    struct srv a, b;
    assert_int_equal(srv_start(&a, sample_bin, NULL), 0);
    assert_int_equal(srv_start(&b, sample_bin, NULL), 0);
    struct ufio_client *ca = t_owner(&a), *cb = t_owner(&b);
    assert_int_equal(ufio_client_mig_set_state(ca, UFIO_MIG_STOP, NULL), 0);
    assert_int_equal(ufio_client_mig_set_state(cb, UFIO_MIG_STOP, NULL), 0);
    uint8_t da[80], db[80];
    size_t la = 0, lb = 0;
    assert_int_equal(ufio_client_feature(ca, UFIO_FEATURE_GET | UFIO_FEATURE_DIGEST, NULL, 0, da, sizeof(da), &la), 0);
    assert_int_equal(ufio_client_feature(cb, UFIO_FEATURE_GET | UFIO_FEATURE_DIGEST, NULL, 0, db, sizeof(db), &lb), 0);
    assert_int_equal(la, 16);
    assert_int_equal(get32(da), UFIO_DIGEST_F_DEVICE);
    assert_memory_equal(da, db, la);
    uint16_t cmd = 0x0006; /* memory + bus master: config space only */
    assert_int_equal(ufio_client_region_write(ca, 7, 4, &cmd, 2), 0);
    assert_int_equal(ufio_client_feature(ca, UFIO_FEATURE_GET | UFIO_FEATURE_DIGEST, NULL, 0, da, sizeof(da), &la), 0);
    assert_memory_equal(da + 8, db + 8, 8);       /* the device's part is the same */
    assert_memory_not_equal(da + 4, db + 4, 4);   /* the library's is not */
    /* a running device is not digested */
    assert_int_equal(ufio_client_mig_set_state(ca, UFIO_MIG_RUNNING, NULL), 0);
    assert_int_equal(ufio_client_feature(ca, UFIO_FEATURE_GET | UFIO_FEATURE_DIGEST, NULL, 0, da, sizeof(da), &la),
                     -EBUSY);
    ufio_client_destroy(ca);
    ufio_client_destroy(cb);
    srv_stop(&a);
    srv_stop(&b);
}

/* ---- the step contract ----------------------------------------------------------- */

/* Each arc of a migration fails once: the device reports `from`, the library agrees
 * (data calls follow that state), the same request then succeeds, and the device
 * arrives whole. */
static void test_every_arc_can_fail(void **st)
{
    struct srv a, b;
    assert_int_equal(srv_start(&a, sample_bin, NULL), 0);
    assert_int_equal(srv_start(&b, sample_bin, NULL), 0);
    scribble(&a, 0x66);
    struct ufio_client *ca = t_owner(&a), *cb = t_owner(&b);
    static uint8_t buf[1 << 20];
    size_t got;
    unsigned reached;
#define FAIL_THEN_OK(c, from, to, srvp)                                                  \
    do {                                                                                 \
        t_w32(c, 0, REG_MIG_FAIL, FAIL_ARC(from, to));                                     \
        assert_int_equal(ufio_client_mig_set_state(c, to, &reached), -EIO);              \
        assert_int_equal(reached, from);                                                 \
        assert_int_equal(t_state(c), from);                                                \
        assert_int_equal(ufio_client_mig_set_state(c, to, NULL), 0);                    \
    } while (0)

    FAIL_THEN_OK(cb, UFIO_MIG_RUNNING, UFIO_MIG_STOP, &b);
    FAIL_THEN_OK(cb, UFIO_MIG_STOP, UFIO_MIG_RESUMING, &b);
    /* the library stayed out of RESUMING while the device was: nothing was accepted */
    FAIL_THEN_OK(ca, UFIO_MIG_RUNNING, UFIO_MIG_PRE_COPY, &a);
    /* a failed save session start: still RUNNING, and no data to read */
    assert_int_equal(ufio_client_mig_set_state(ca, UFIO_MIG_RUNNING, NULL), 0);
    t_w32(ca, 0, REG_MIG_FAIL, FAIL_SAVE_START);
    assert_int_equal(ufio_client_mig_set_state(ca, UFIO_MIG_PRE_COPY, &reached), -EIO);
    assert_int_equal(reached, UFIO_MIG_RUNNING);
    assert_int_equal(ufio_client_mig_data_read(ca, buf, 4096, &got), -EINVAL);
    assert_int_equal(ufio_client_mig_set_state(ca, UFIO_MIG_PRE_COPY, NULL), 0);
    size_t total = 0;
    do {
        assert_int_equal(ufio_client_mig_data_read(ca, buf, sizeof(buf), &got), 0);
        assert_int_equal(ufio_client_mig_data_write(cb, buf, got), 0);
        total += got;
    } while (got == sizeof(buf));
    assert_true(total > 65536);
    /* PRE_COPY -> STOP_COPY fails: still PRE_COPY, and the library still serves precopy data */
    t_w32(ca, 0, REG_MIG_FAIL, FAIL_ARC(UFIO_MIG_PRE_COPY, UFIO_MIG_STOP_COPY));
    assert_int_equal(ufio_client_mig_set_state(ca, UFIO_MIG_STOP_COPY, &reached), -EIO);
    assert_int_equal(reached, UFIO_MIG_PRE_COPY);
    uint64_t ini, dirty;
    assert_int_equal(ufio_client_mig_precopy_info(ca, &ini, &dirty), 0);
    assert_int_equal(ufio_client_mig_data_read(ca, buf, sizeof(buf), &got), 0);
    assert_int_equal(ufio_client_mig_data_write(cb, buf, got), 0);
    assert_int_equal(ufio_client_mig_set_state(ca, UFIO_MIG_STOP_COPY, NULL), 0);
    do {
        assert_int_equal(ufio_client_mig_data_read(ca, buf, sizeof(buf), &got), 0);
        assert_int_equal(ufio_client_mig_data_write(cb, buf, got), 0);
    } while (got == sizeof(buf));
    /* RESUMING -> STOP fails: the destination stays RESUMING with its stream, then loads it */
    FAIL_THEN_OK(cb, UFIO_MIG_RESUMING, UFIO_MIG_STOP, &b);
    FAIL_THEN_OK(ca, UFIO_MIG_STOP_COPY, UFIO_MIG_STOP, &a);
    static struct look la, lb;
    assert_int_equal(t_state(ca), UFIO_MIG_STOP);
    /* the session that stopped it goes away: the device runs again, with its state */
    ufio_client_destroy(ca);
    look(&a, &la);
    assert_int_equal(la.state, UFIO_MIG_RUNNING);
    FAIL_THEN_OK(cb, UFIO_MIG_STOP, UFIO_MIG_RUNNING, &b);
    ufio_client_destroy(cb);
    look(&b, &lb);
    assert_int_equal(lb.state, UFIO_MIG_RUNNING);
    assert_same(&la, &lb);
#undef FAIL_THEN_OK
    srv_stop(&a);
    srv_stop(&b);
}

/* A failed arc in the engine's path rolls back: source RUNNING, destination stopped. */
static void test_engine_failed_arcs_roll_back(void **st)
{
    static const struct { bool on_src; unsigned from, to; } arcs[] = {
        { false, UFIO_MIG_RUNNING, UFIO_MIG_STOP }, /* first: the destination starts RUNNING */
        { true, UFIO_MIG_RUNNING, UFIO_MIG_PRE_COPY },
        { true, UFIO_MIG_PRE_COPY, UFIO_MIG_STOP_COPY },
        { false, UFIO_MIG_STOP, UFIO_MIG_RESUMING },
        { false, UFIO_MIG_RESUMING, UFIO_MIG_STOP },
        { false, UFIO_MIG_STOP, UFIO_MIG_RUNNING },
    };
    struct srv a, b;
    assert_int_equal(srv_start(&a, sample_bin, NULL), 0);
    assert_int_equal(srv_start(&b, sample_bin, NULL), 0);
    scribble(&a, 0x23);
    static struct look la, lb;
    for (size_t i = 0; i < sizeof(arcs) / sizeof(arcs[0]); i++) {
        inject(arcs[i].on_src ? &a : &b, FAIL_ARC(arcs[i].from, arcs[i].to));
        struct ufio_migrate_opts o = { 0 };
        struct ufio_migrate_result r;
        int err = migrate(&a, &b, &o, &r);
        assert_true(err < 0);
        assert_non_null(strstr(r.error, "failed the arc"));
        look(&a, &la);
        assert_int_equal(la.state, UFIO_MIG_RUNNING);
        look(&b, &lb);
        assert_true(lb.state == UFIO_MIG_STOP || (i == 0 && lb.state == UFIO_MIG_RUNNING));
    }
    struct ufio_migrate_opts o = { 0 };
    struct ufio_migrate_result r;
    assert_int_equal(migrate(&a, &b, &o, &r), 0);
    look(&a, &la);
    look(&b, &lb);
    assert_same(&la, &lb);
    srv_stop(&a);
    srv_stop(&b);
}

/* ---- deadlines and budgets -------------------------------------------------------- */

static void set_u64(struct ufio_client *c, unsigned index, uint64_t v)
{
    uint8_t b[8];
    put64(b, v);
    assert_int_equal(ufio_client_feature(c, UFIO_FEATURE_SET | index, b, 8, NULL, 0, NULL), 0);
}

/* Stop-copy past its deadline, or a device that says it cannot make it: back to RUNNING. */
static void test_stop_copy_deadline(void **st)
{
    struct srv a;
    assert_int_equal(srv_start(&a, sample_bin, NULL), 0);
    scribble(&a, 0x3);
    struct ufio_client *c = t_owner(&a);
    static uint8_t buf[4096];
    size_t got;
    set_u64(c, UFIO_FEATURE_STOP_COPY_DEADLINE, 2);
    assert_int_equal(ufio_client_mig_set_state(c, UFIO_MIG_STOP_COPY, NULL), 0);
    double t0 = t_now_ms();
    while (t_now_ms() - t0 < 5) /* the deadline is a time: let it pass */
        ;
    assert_int_equal(ufio_client_mig_data_read(c, buf, sizeof(buf), &got), -ETIME);
    assert_int_equal(t_state(c), UFIO_MIG_RUNNING);
    char why[256];
    size_t wl;
    assert_int_equal(ufio_client_feature(c, UFIO_FEATURE_GET | UFIO_FEATURE_MIG_REASON, NULL, 0, why, sizeof(why), &wl), 0);
    assert_non_null(strstr(why, "within 2 ms"));
    /* the deadline was for that session only */
    assert_int_equal(ufio_client_mig_set_state(c, UFIO_MIG_STOP_COPY, NULL), 0);
    t0 = t_now_ms();
    while (t_now_ms() - t0 < 5)
        ;
    assert_int_equal(ufio_client_mig_data_read(c, buf, sizeof(buf), &got), 0);
    /* the device itself gives up */
    assert_int_equal(ufio_client_mig_set_state(c, UFIO_MIG_RUNNING, NULL), 0);
    t_w32(c, 0, REG_MIG_FAIL, FAIL_SAVE_ETIME);
    assert_int_equal(ufio_client_mig_set_state(c, UFIO_MIG_STOP_COPY, NULL), 0);
    assert_int_equal(ufio_client_mig_data_read(c, buf, sizeof(buf), &got), -ETIME);
    assert_int_equal(t_state(c), UFIO_MIG_RUNNING);
    ufio_client_destroy(c);
    srv_stop(&a);
}

static bool saw_stopcopy;
static void note_phase(void *opaque, enum ufio_migrate_phase ph, uint64_t bytes, unsigned round)
{
    if (ph == UFIO_MIGRATE_STOPCOPY)
        saw_stopcopy = true;
}

/* A budget the measured rate cannot meet: refused, and the source never stopped. */
static void test_budget_refused(void **st)
{
    const char *busy[] = { "--state-mib=8", "--dirty-rate=200", NULL }, *idle[] = { "--state-mib=8", NULL };
    struct srv a, b;
    assert_int_equal(srv_start(&a, sample_bin, busy), 0);
    assert_int_equal(srv_start(&b, sample_bin, idle), 0);
    set_state(&a, UFIO_MIG_STOP);
    static struct look la0, la, lb;
    look(&a, &la0);
    set_state(&a, UFIO_MIG_RUNNING);
    /* 200 pages/ms is 800 MB/s of new state over 2048 pages: what is left after a round never fits 1 ms */
    struct ufio_migrate_opts o = { .max_downtime_ms = 1, .max_rounds = 3, .progress = note_phase };
    struct ufio_migrate_result r;
    saw_stopcopy = false;
    assert_int_equal(migrate(&a, &b, &o, &r), -ETIME);
    assert_false(saw_stopcopy);
    assert_non_null(strstr(r.error, "budget cannot be met"));
    assert_non_null(strstr(r.error, "never stopped"));
    assert_true(r.predicted_downtime_ms > 1);
    look(&a, &la);
    assert_int_equal(la.state, UFIO_MIG_RUNNING);
    look(&b, &lb);
    assert_int_equal(lb.state, UFIO_MIG_STOP);
    /* with --force-downtime it goes, and arrives whole */
    o.force_downtime = true;
    assert_int_equal(migrate(&a, &b, &o, &r), 0);
    assert_true(r.verified);
    look(&a, &la);
    look(&b, &lb);
    assert_same(&la, &lb);
    srv_stop(&a);
    srv_stop(&b);
}

/* Pages dirtied while precopy waits, with and without a limit (precopy info counts them). */
static uint64_t dirtied_in(struct ufio_client *c, double ms)
{
    static uint8_t buf[1 << 20];
    size_t got;
    do
        assert_int_equal(ufio_client_mig_data_read(c, buf, sizeof(buf), &got), 0);
    while (got == sizeof(buf));
    do /* the pass that started at the end of the last read: drain it too */
        assert_int_equal(ufio_client_mig_data_read(c, buf, sizeof(buf), &got), 0);
    while (got == sizeof(buf));
    uint64_t i0, d0, i1, d1;
    assert_int_equal(ufio_client_mig_precopy_info(c, &i0, &d0), 0);
    double t0 = t_now_ms();
    while (t_now_ms() - t0 < ms)
        ;
    assert_int_equal(ufio_client_mig_precopy_info(c, &i1, &d1), 0);
    return (i1 + d1 - i0 - d0) / (5 + 4096);
}

static void test_dirty_rate_limit(void **st)
{
    const char *busy[] = { "--state-mib=16", "--dirty-rate=20", NULL };
    struct srv a;
    assert_int_equal(srv_start(&a, sample_bin, busy), 0);
    struct ufio_client *c = t_owner(&a);
    assert_int_equal(ufio_client_mig_set_state(c, UFIO_MIG_PRE_COPY, NULL), 0);
    /* a longer window under valgrind, which runs one thread at a time */
    double ms = getenv("UFIO_UNDER_VALGRIND") ? 400 : 50;
    uint64_t free_run = dirtied_in(c, ms);
    set_u64(c, UFIO_FEATURE_DIRTY_RATE_LIMIT, 20); /* 20 pages per second */
    uint64_t limited = dirtied_in(c, ms);
    print_message("dirtied in %.0f ms: %llu pages free, %llu limited to 20/s\n", ms, (unsigned long long)free_run,
                  (unsigned long long)limited);
    assert_true(free_run > 200);  /* 20 pages/ms for 50 ms: ~1000 writes over 4096 pages */
    assert_true(limited < 20);    /* 20/s: one, or eight under valgrind */
    ufio_client_destroy(c);
    srv_stop(&a);
}

/* The controller that asked for a dirty-rate limit is killed mid-precopy: the device runs again
 * at its own pace (the limit was for that migration), as the engine's rollback would leave it. */
static void test_killed_controller_lifts_dirty_limit(void **st)
{
    const char *busy[] = { "--state-mib=16", "--dirty-rate=20", NULL };
    struct srv a;
    assert_int_equal(srv_start(&a, sample_bin, busy), 0);
    int ready[2];
    assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct ufio_client_opts co = { .size = sizeof(co), .role = UFIO_ROLE_CONTROLLER_REQ };
        struct ufio_client *c;
        uint8_t b[8];
        put64(b, 20);
        if (ufio_client_connect(a.path, &co, &c) || ufio_client_mig_set_state(c, UFIO_MIG_PRE_COPY, NULL) ||
            ufio_client_feature(c, UFIO_FEATURE_SET | UFIO_FEATURE_DIRTY_RATE_LIMIT, b, 8, NULL, 0, NULL))
            _exit(1);
        if (write(ready[1], "k", 1) != 1)
            _exit(2);
        pause();
        _exit(0);
    }
    t_child_add(pid);
    close(ready[1]);
    char k = 0;
    assert_int_equal(read(ready[0], &k, 1), 1);
    close(ready[0]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    t_child_forget(pid);
    struct ufio_client *obs = t_connect(a.path, UFIO_ROLE_OBSERVER_REQ);
    assert_int_equal(t_wait_state(obs, UFIO_MIG_RUNNING, 5000), UFIO_MIG_RUNNING);
    ufio_client_destroy(obs);
    struct ufio_client *c = t_connect(a.path, UFIO_ROLE_CONTROLLER_REQ);
    assert_int_equal(ufio_client_mig_set_state(c, UFIO_MIG_PRE_COPY, NULL), 0);
    double ms = getenv("UFIO_UNDER_VALGRIND") ? 400 : 50;
    uint64_t pages = dirtied_in(c, ms);
    print_message("dirtied in %.0f ms after the limiting controller was killed: %llu pages\n", ms,
                  (unsigned long long)pages);
    assert_true(pages > 200); /* 20 pages/ms; limited to 20/s it would be one */
    assert_int_equal(ufio_client_mig_set_state(c, UFIO_MIG_RUNNING, NULL), 0);
    ufio_client_destroy(c);
    srv_stop(&a);
}

/* A downtime budget no load on a shared test machine exceeds (these tests are about safety,
 * not downtime): a refused budget would fail them for the wrong reason. */
#define LOADED 60000

/* ---- ufio-migrate interrupted, the owner busy ----------------------------------------- */

/* ufio-migrate --test-pause-at PHASE, run until it says it paused there; its stderr in *errfd. */
static pid_t run_paused(struct srv *a, struct srv *b, const char *phase, int *errfd, char *err, size_t cap)
{
    int pe[2];
    assert_int_equal(pipe2(pe, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pe[1], 2);
        /* a budget no load on the machine exceeds: the pause may last, and must not pass the
         * source's stop-copy deadline (three quarters of it) */
        execl(migrate_bin, migrate_bin, "--from", a->path, "--to", b->path, "--max-downtime", "60000", "--test-pause-at",
              phase, (char *)NULL);
        _exit(127);
    }
    t_child_add(pid);
    close(pe[1]);
    size_t n = 0;
    err[0] = 0;
    while (!strstr(err, "paused at")) {
        struct pollfd p = { pe[0], POLLIN, 0 };
        assert_int_equal(poll(&p, 1, 10000), 1);
        ssize_t k = read(pe[0], err + n, cap - 1 - n);
        assert_true(k > 0);
        n += (size_t)k;
        err[n] = 0;
    }
    *errfd = pe[0];
    return pid;
}

/* Sends sig, reads the rest of stderr, reaps; returns the wait status. */
static int signal_paused(pid_t pid, int sig, int errfd, char *err, size_t cap)
{
    assert_int_equal(kill(pid, sig), 0);
    size_t n = strlen(err);
    ssize_t k;
    while ((k = read(errfd, err + n, cap - 1 - n)) > 0) {
        n += (size_t)k;
        err[n] = 0;
    }
    close(errfd);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    t_child_forget(pid);
    return status;
}

/* A device as the owner would find it: the model's state (what the owner did to it) */
static void assert_like_model(struct ufio_client *c, struct t_busy *model, uint32_t scratch)
{
    static uint32_t win[T_BUSY_WIN / 4];
    assert_int_equal(ufio_client_region_read(c, 2, T_BUSY_OFF, win, sizeof(win)), 0);
    assert_memory_equal(win, model->shadow, sizeof(win));
    assert_int_equal(t_r32(c, 0, REG_SCRATCH), scratch);
    assert_int_equal(t_digest(c), t_digest(model->c));
}

/* A migration a -> b with nothing interrupting it, checked against the model; then back. */
static void migrate_there_and_back(struct srv *a, struct srv *b, struct t_busy *model, uint32_t scratch)
{
    struct ufio_migrate_opts o = { .max_downtime_ms = LOADED };
    struct ufio_migrate_result r;
    assert_int_equal(migrate(a, b, &o, &r), 0);
    assert_true(r.verified);
    struct ufio_client *cb = t_owner(b);
    assert_int_equal(t_state(cb), UFIO_MIG_RUNNING);
    assert_like_model(cb, model, scratch);
    ufio_client_destroy(cb);
    o = (struct ufio_migrate_opts){ .max_downtime_ms = LOADED };
    assert_int_equal(migrate(b, a, &o, &r), 0);
}

/*
 * SIGINT, SIGTERM and SIGKILL of ufio-migrate paused at each phase (--test-pause-at), an
 * owner attached to the source and busy (BAR2 writes and reads, DMA) all along: its requests
 * made while the source is stopped are held, and answered normally once it runs again.
 * Afterwards the source runs with exactly the state the owner gave it (its digest equals a
 * model device's that was given the same), the destination is not running a half state
 * (stopped; ERROR after SIGKILL once records were loaded), and a fresh migration to it
 * arrives whole. SIGKILL leaves the clean-up to the servers: the controller's session goes.
 */
static void test_signals_each_phase(void **st)
{
    static const char *phases[] = { "checking", "precopy", "stop-copy", "resuming" };
    static const int sigs[] = { SIGINT, SIGTERM, SIGKILL };
    struct srv a, b, m;
    assert_int_equal(srv_start(&a, sample_bin, NULL), 0);
    assert_int_equal(srv_start(&b, sample_bin, NULL), 0);
    assert_int_equal(srv_start(&m, sample_bin, NULL), 0);
    scribble(&a, 0x5a);
    scribble(&m, 0x5a);
    struct ufio_client *owner = t_owner(&a), *mo = t_owner(&m);
    static struct t_busy busy, model;
    t_busy_init(&busy, owner);
    t_busy_init(&model, mo);
    for (size_t s = 0; s < sizeof(sigs) / sizeof(sigs[0]); s++) {
        for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
            t_busy_start(&busy);
            char err[4096];
            int errfd;
            pid_t pid = run_paused(&a, &b, phases[i], &errfd, err, sizeof(err));
            /* the owner asks while the tool is paused: answered at once while the source runs
             * (checking, precopy), held while it is stopped (stop-copy, resuming); that it stays
             * unanswered is a bounded negative check */
            unsigned long k = atomic_load(&busy.issued);
            if (i >= 2) {
                double end = t_now_ms() + 5000;
                while (atomic_load(&busy.answered) == atomic_load(&busy.issued) && t_now_ms() < end)
                    sched_yield();
                /* a request sent before the source stopped may still have its answer on the
                 * way: let it land, then the one outstanding must stay so */
                poll(NULL, 0, 200);
                unsigned long asked = atomic_load(&busy.issued);
                assert_int_equal(atomic_load(&busy.answered) + 1, asked);
                poll(NULL, 0, 200);
                assert_int_equal(atomic_load(&busy.answered) + 1, asked);
                assert_int_equal(atomic_load(&busy.issued), asked);
            } else {
                assert_true(t_busy_wait_issued(&busy, k + 20, 5000) >= k + 20);
            }
            int status = signal_paused(pid, sigs[s], errfd, err, sizeof(err));
            print_message("%s at %s: %s %d\n", strsignal(sigs[s]), phases[i],
                          WIFEXITED(status) ? "exit" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            if (sigs[s] == SIGKILL) {
                assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
            } else {
                assert_true(WIFEXITED(status));
                assert_int_equal(WEXITSTATUS(status), 5);
                assert_non_null(strstr(err, "interrupted"));
                assert_non_null(strstr(err, "the source runs on"));
            }
            /* the source runs again (after SIGKILL as soon as its server saw the session go) */
            assert_int_equal(t_wait_state(owner, UFIO_MIG_RUNNING, 5000), UFIO_MIG_RUNNING);
            /* the owner's held request was answered, and it goes on */
            unsigned long n = atomic_load(&busy.rounds);
            assert_true(t_busy_wait(&busy, n + 20, 5000) >= n + 20);
            assert_int_equal(t_busy_stop(&busy), 0);
            t_busy_replay(&busy, &model);
            assert_like_model(owner, &model, 0x5a);
            /* the destination does not run the source's half-moved state */
            struct ufio_client *cb = t_owner(&b);
            unsigned bs = t_state(cb);
            ufio_client_destroy(cb);
            if (i == 0)
                assert_true(bs == UFIO_MIG_RUNNING || bs == UFIO_MIG_STOP); /* untouched */
            else if (sigs[s] == SIGKILL)
                assert_true(bs == UFIO_MIG_STOP || bs == UFIO_MIG_ERROR);
            else
                assert_int_equal(bs, UFIO_MIG_STOP);
            /* nothing left over in either: a migration goes through, and comes back */
            migrate_there_and_back(&a, &b, &model, 0x5a);
            assert_int_equal(t_state(owner), UFIO_MIG_RUNNING);
            assert_like_model(owner, &model, 0x5a);
        }
    }
    t_busy_fini(&busy);
    t_busy_fini(&model);
    ufio_client_destroy(owner);
    ufio_client_destroy(mo);
    srv_stop(&a);
    srv_stop(&b);
    srv_stop(&m);
}

/* Progress hook: the owner has a request on its way while the source is in STOP_COPY. */
static void owner_asks_in_stopcopy(void *opaque, enum ufio_migrate_phase ph, uint64_t bytes, unsigned round)
{
    struct t_busy *b = opaque;
    static bool done;
    if (ph == UFIO_MIGRATE_CHECK)
        done = false;
    if (ph != UFIO_MIGRATE_STOPCOPY || done)
        return;
    done = true;
    /* a request issued now is held (or, once the migration is over, refused) */
    unsigned long n = atomic_load(&b->rounds);
    t_busy_wait(b, n + 1, 300);
}

/*
 * The owner busy while its device migrates away: every request it made from stop-copy on is
 * answered once the migration is over, and none of its writes is answered with success by
 * the source after the stream was taken (that write would be lost: the destination never
 * sees it). The source answers them ENODEV: the device lives elsewhere now. So every write
 * the owner had acknowledged is on the destination.
 */
static void test_busy_owner_migrated_away(void **st)
{
    struct srv a, b, m;
    assert_int_equal(srv_start(&a, sample_bin, NULL), 0);
    assert_int_equal(srv_start(&b, sample_bin, NULL), 0);
    assert_int_equal(srv_start(&m, sample_bin, NULL), 0);
    scribble(&a, 0x17);
    scribble(&m, 0x17);
    struct ufio_client *owner = t_owner(&a), *mo = t_owner(&m);
    static struct t_busy busy, model;
    t_busy_init(&busy, owner);
    t_busy_init(&model, mo);
    t_busy_start(&busy);
    struct ufio_migrate_opts o = { .max_downtime_ms = LOADED, .progress = owner_asks_in_stopcopy, .opaque = &busy };
    struct ufio_migrate_result r;
    assert_int_equal(migrate(&a, &b, &o, &r), 0);
    /* the owner's next write gets its answer: an error, not a success that would be lost */
    double end = t_now_ms() + 5000;
    while (!atomic_load(&busy.err) && t_now_ms() < end)
        poll(NULL, 0, 1);
    int err = t_busy_stop(&busy);
    print_message("the owner's first refused request: %s (%s)\n", strerror(-err),
                  atomic_load(&busy.err_in_write) ? "a write" : "a read");
    assert_int_equal(err, -ENODEV);
    assert_true(atomic_load(&busy.err_in_write));
    /* every acknowledged write, and every acknowledged DMA, is on the destination */
    t_busy_replay(&busy, &model);
    struct ufio_client *cb = t_owner(&b);
    assert_int_equal(t_state(cb), UFIO_MIG_RUNNING);
    assert_like_model(cb, &model, 0x17);
    ufio_client_destroy(cb);
    /* the source rests stopped; reads still show the state it sent */
    assert_int_equal(t_state(owner), UFIO_MIG_STOP);
    assert_like_model(owner, &model, 0x17);
    t_busy_fini(&busy);
    t_busy_fini(&model);
    ufio_client_destroy(owner);
    ufio_client_destroy(mo);
    srv_stop(&a);
    srv_stop(&b);
    srv_stop(&m);
}

/*
 * A source migrated away rests in STOP: owners and observers coming and going, an owner's
 * state reads, writes and reset do not run it again (it would live twice). Only an explicit
 * state change does.
 */
static void test_migrated_away_stays_stopped(void **st)
{
    struct srv a, b;
    assert_int_equal(srv_start(&a, sample_bin, NULL), 0);
    assert_int_equal(srv_start(&b, sample_bin, NULL), 0);
    int idle_fds = srv_fd_count(&a); /* no session */
    scribble(&a, 0x29);
    struct ufio_migrate_opts o = { .max_downtime_ms = LOADED };
    struct ufio_migrate_result r;
    assert_int_equal(migrate(&a, &b, &o, &r), 0);
    assert_int_equal(srv_wait_fd_count(&a, idle_fds), idle_fds); /* the controller's session is gone */
    static struct look la, lb;
    for (int i = 0; i < 3; i++) {
        /* an observer looks (a state GET, the descriptor), and goes */
        struct ufio_client *ob = t_connect(a.path, UFIO_ROLE_OBSERVER_REQ);
        assert_int_equal(t_state(ob), UFIO_MIG_STOP);
        ufio_client_destroy(ob);
        assert_int_equal(srv_wait_fd_count(&a, idle_fds), idle_fds);
        /* an owner attaches, reads, is refused a write and a reset, detaches */
        struct ufio_client *c = t_owner(&a);
        assert_int_equal(t_state(c), UFIO_MIG_STOP);
        uint32_t v = 0x1234;
        assert_int_equal(ufio_client_region_write(c, 0, REG_SCRATCH, &v, 4), -ENODEV);
        assert_int_equal(ufio_client_region_write(c, 2, 0, &v, 4), -ENODEV);
        assert_int_equal(ufio_client_reset(c), -ENODEV);
        assert_int_equal(t_state(c), UFIO_MIG_STOP);
        ufio_client_destroy(c);
        assert_int_equal(srv_wait_fd_count(&a, idle_fds), idle_fds);
    }
    look(&a, &la);
    look(&b, &lb);
    assert_int_equal(la.state, UFIO_MIG_STOP);
    assert_int_equal(lb.state, UFIO_MIG_RUNNING);
    assert_same(&la, &lb);
    /* an explicit state change runs it again, and then it takes writes */
    struct ufio_client *c = t_owner(&a);
    assert_int_equal(ufio_client_mig_set_state(c, UFIO_MIG_RUNNING, NULL), 0);
    t_w32(c, 0, REG_SCRATCH, 0x4321);
    assert_int_equal(t_r32(c, 0, REG_SCRATCH), 0x4321);
    ufio_client_destroy(c);
    /* and a source stopped by its owner (not migrated away) takes writes as before */
    c = t_owner(&b);
    assert_int_equal(ufio_client_mig_set_state(c, UFIO_MIG_STOP, NULL), 0);
    t_w32(c, 0, REG_SCRATCH, 0x777);
    ufio_client_destroy(c);
    srv_stop(&a);
    srv_stop(&b);
}

/* Malformed values are refused (exit 2) with the option named, never replaced by defaults. */
static void test_bad_option_values(void **st)
{
    static const char *bad[][2] = { { "--max-downtime", "abc" }, { "--max-rounds", "-1" }, { "--max-downtime", "" },
                                    { "--timeout", "5s" }, { "--max-precopy-bytes", "0" } };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int pe[2];
        assert_int_equal(pipe(pe), 0);
        pid_t pid = fork();
        if (pid == 0) {
            dup2(pe[1], 2);
            execl(migrate_bin, migrate_bin, "--from", "/nonexistent-a", "--to", "/nonexistent-b", bad[i][0], bad[i][1],
                  (char *)NULL);
            _exit(127);
        }
        close(pe[1]);
        char err[1024] = "";
        ssize_t n = read(pe[0], err, sizeof(err) - 1);
        close(pe[0]);
        err[n > 0 ? n : 0] = 0;
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 2);
        assert_non_null(strstr(err, bad[i][0] + 2));
    }
}

/* ---- servers without ufio's extensions ------------------------------------------------ */

/* libvfio-user-like servers: descriptor from the PCI ids, precopy ended by a short read,
 * padded MIG_DATA_READ replies; the state arrives (checked from outside), unverified. */
static void test_plain_servers_migrate(void **st)
{
    struct srv a, b;
    assert_int_equal(srv_start(&a, plain_bin, NULL), 0);
    assert_int_equal(srv_start(&b, plain_bin, NULL), 0);
    static uint8_t ram[65536], back[65536];
    for (size_t i = 0; i < sizeof(ram); i++)
        ram[i] = (uint8_t)(i * 31 + 7);
    struct ufio_client *c = t_owner(&a);
    assert_int_equal(ufio_client_region_write(c, 2, 0, ram, sizeof(ram)), 0);
    /* the client takes a padded reply: 100 bytes asked of a pass, all data */
    assert_int_equal(ufio_client_mig_set_state(c, UFIO_MIG_PRE_COPY, NULL), 0);
    size_t got = 0;
    uint8_t small[100];
    assert_int_equal(ufio_client_mig_data_read(c, small, sizeof(small), &got), 0);
    assert_int_equal(got, sizeof(small));
    assert_int_equal(ufio_client_mig_set_state(c, UFIO_MIG_RUNNING, NULL), 0);
    ufio_client_destroy(c);
    struct ufio_migrate_opts o = { 0 };
    struct ufio_migrate_result r;
    assert_int_equal(migrate(&a, &b, &o, &r), 0);
    assert_false(r.verified);
    assert_true(r.rounds >= 1);
    assert_true(r.precopy_bytes >= sizeof(ram));
    c = t_owner(&b);
    assert_int_equal(t_state(c), UFIO_MIG_RUNNING);
    assert_int_equal(ufio_client_region_read(c, 2, 0, back, sizeof(back)), 0);
    assert_memory_equal(back, ram, sizeof(ram));
    ufio_client_destroy(c);
    c = t_owner(&a);
    assert_int_equal(t_state(c), UFIO_MIG_STOP);
    ufio_client_destroy(c);
    /* and a ufio device is not taken for it: different ids */
    struct srv u;
    assert_int_equal(srv_start(&u, sample_bin, NULL), 0);
    set_state(&a, UFIO_MIG_RUNNING);
    assert_int_equal(migrate(&a, &u, &o, &r), -EPERM);
    assert_non_null(strstr(r.error, "type"));
    srv_stop(&u);
    srv_stop(&a);
    srv_stop(&b);
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    sample_bin = argv[1];
    migrate_bin = argv[2];
    plain_bin = argv[3];
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        T_TEST(test_second_migration_keeps_bar2),
        T_TEST(test_retry_after_aborted_precopy),
        T_TEST(test_stopped_source_refused),
        T_TEST(test_half_loaded_destination),
        T_TEST(test_digest_mismatch_rolls_back),
        T_TEST(test_digest_covers_library_state),
        T_TEST(test_every_arc_can_fail),
        T_TEST(test_engine_failed_arcs_roll_back),
        T_TEST(test_stop_copy_deadline),
        T_TEST(test_budget_refused),
        T_TEST(test_dirty_rate_limit),
        T_TEST(test_killed_controller_lifts_dirty_limit),
        T_TEST(test_signals_each_phase),
        T_TEST(test_busy_owner_migrated_away),
        T_TEST(test_migrated_away_stays_stopped),
        T_TEST(test_bad_option_values),
        T_TEST(test_plain_servers_migrate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
