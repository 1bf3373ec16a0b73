/*
 * Live migration between two sample server processes: state moves intact,
 * precopy catches pages dirtied while running, truncated or corrupted streams
 * are refused before the destination runs, incompatible devices are refused
 * before any state moves, a failure leaves the source running, and dirty
 * logging reports the pages the device wrote.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <ufio/client.h>
#include <ufio/migrate.h>
#include <ufio/migration.h>

#include "harness.h"
#include "proto/mig_stream.h"

static const char *server_bin;
static struct srv A, B;

static int setup(void **st)
{
    if (srv_start(&A, server_bin, NULL) || srv_start(&B, server_bin, NULL))
        return -1;
    return 0;
}

static int teardown(void **st)
{
    if (A.pid)
        srv_stop(&A);
    if (B.pid)
        srv_stop(&B);
    return 0;
}

/* Moves the stream by hand; returns the bytes moved. */
static size_t pump(struct ufio_client *src, struct ufio_client *dst, uint8_t *keep, size_t keep_cap)
{
    static uint8_t buf[1 << 20];
    size_t total = 0;
    for (;;) {
        size_t got = 0;
        assert_int_equal(ufio_client_mig_data_read(src, buf, sizeof(buf), &got), 0);
        if (keep && total + got <= keep_cap)
            memcpy(keep + total, buf, got);
        if (dst && got)
            assert_int_equal(ufio_client_mig_data_write(dst, buf, got), 0);
        total += got;
        if (got < sizeof(buf))
            return total;
    }
}

static void test_flags_and_states(void **st)
{
    struct ufio_client *a = t_owner(&A);
    uint64_t flags;
    assert_int_equal(ufio_client_mig_flags(a, &flags), 0);
    assert_int_equal(flags, UFIO_MIG_F_STOP_COPY | UFIO_MIG_F_PRE_COPY);
    assert_int_equal(t_state(a), UFIO_MIG_RUNNING);
    /* STOP_COPY -> PRE_COPY is refused; P2P states are not supported by this device */
    assert_int_equal(ufio_client_mig_set_state(a, UFIO_MIG_STOP_COPY, NULL), 0);
    unsigned reached;
    assert_int_equal(ufio_client_mig_set_state(a, UFIO_MIG_PRE_COPY, &reached), -EINVAL);
    assert_int_equal(reached, UFIO_MIG_STOP_COPY);
    assert_int_equal(ufio_client_mig_set_state(a, UFIO_MIG_RUNNING_P2P, NULL), -EINVAL);
    assert_int_equal(ufio_client_mig_set_state(a, UFIO_MIG_ERROR, NULL), -EINVAL);
    /* MIG_DATA_WRITE is only for RESUMING; precopy info only in PRE_COPY */
    uint8_t b[8] = { 0 };
    assert_int_equal(ufio_client_mig_data_write(a, b, sizeof(b)), -EINVAL);
    uint64_t i, d;
    assert_int_equal(ufio_client_mig_precopy_info(a, &i, &d), -EINVAL);
    uint64_t sz;
    assert_int_equal(ufio_client_mig_stop_copy_size(a, &sz), 0);
    assert_true(sz > 64 * 1024); /* nothing precopied: the whole BAR2 and more */
    /* RUNNING via the kernel's path STOP_COPY -> STOP -> RUNNING */
    assert_int_equal(ufio_client_mig_set_state(a, UFIO_MIG_RUNNING, NULL), 0);
    /* reset from anywhere goes back to RUNNING */
    assert_int_equal(ufio_client_mig_set_state(a, UFIO_MIG_RESUMING, NULL), 0);
    assert_int_equal(ufio_client_reset(a), 0);
    assert_int_equal(t_state(a), UFIO_MIG_RUNNING);
    ufio_client_destroy(a);
}

/* Precopy while the device runs, a page dirtied in between, then stop-copy. */
static void test_manual_precopy_migration(void **st)
{
    struct ufio_client *a = t_owner(&A), *b = t_owner(&B);
    t_w32(a, 0, 8, 0x11223344);
    uint8_t page[4096];
    memset(page, 0xc3, sizeof(page));
    assert_int_equal(ufio_client_region_write(a, 2, 0x1000, page, sizeof(page)), 0);
    /* enable MSI-X on the source: library-owned config state must move too */
    uint8_t cfg[256];
    assert_int_equal(ufio_client_region_read(a, 7, 0, cfg, sizeof(cfg)), 0);
    unsigned off = cfg[0x34];
    while (off && cfg[off] != 0x11)
        off = cfg[off + 1];
    uint16_t ctl = 0x8000;
    assert_int_equal(ufio_client_region_write(a, 7, off + 2, &ctl, 2), 0);

    assert_int_equal(ufio_client_mig_set_state(b, UFIO_MIG_RESUMING, NULL), 0);
    assert_int_equal(ufio_client_mig_set_state(a, UFIO_MIG_PRE_COPY, NULL), 0);
    uint64_t initial, dirty;
    assert_int_equal(ufio_client_mig_precopy_info(a, &initial, &dirty), 0);
    assert_true(initial >= 64 * 1024);
    size_t pre = pump(a, b, NULL, 0);
    assert_true(pre > 64 * 1024);
    assert_int_equal(ufio_client_mig_precopy_info(a, &initial, &dirty), 0);
    assert_int_equal(initial, 0);
    assert_int_equal(dirty, 0);
    /* the device still runs: dirty a page and change a register */
    memset(page, 0x5e, sizeof(page));
    assert_int_equal(ufio_client_region_write(a, 2, 0x3000, page, sizeof(page)), 0);
    t_w32(a, 0, 8, 0x55667788);
    assert_int_equal(ufio_client_mig_precopy_info(a, &initial, &dirty), 0);
    assert_true(dirty >= 4096);
    assert_int_equal(ufio_client_mig_set_state(a, UFIO_MIG_STOP_COPY, NULL), 0);
    size_t rest = pump(a, b, NULL, 0);
    assert_true(rest > 4096 && rest < 16384); /* the dirty page, registers, config: not all of BAR2 */
    assert_int_equal(ufio_client_mig_set_state(b, UFIO_MIG_STOP, NULL), 0);
    assert_int_equal(ufio_client_mig_set_state(b, UFIO_MIG_RUNNING, NULL), 0);
    assert_int_equal(ufio_client_mig_set_state(a, UFIO_MIG_STOP, NULL), 0);

    assert_int_equal(t_r32(b, 0, 8), 0x55667788);
    uint8_t got[4096];
    assert_int_equal(ufio_client_region_read(b, 2, 0x1000, got, sizeof(got)), 0);
    assert_int_equal(got[100], 0xc3);
    assert_int_equal(ufio_client_region_read(b, 2, 0x3000, got, sizeof(got)), 0);
    assert_int_equal(got[4095], 0x5e);
    assert_int_equal(ufio_client_region_read(b, 2, 0x8000, got, sizeof(got)), 0);
    assert_int_equal(got[7], 7); /* untouched pages came with the precopy */
    uint16_t bctl;
    assert_int_equal(ufio_client_region_read(b, 7, off + 2, &bctl, 2), 0);
    assert_true(bctl & 0x8000);
    /* both back to RUNNING for the next tests */
    assert_int_equal(ufio_client_mig_set_state(a, UFIO_MIG_RUNNING, NULL), 0);
    ctl = 0;
    assert_int_equal(ufio_client_region_write(a, 7, off + 2, &ctl, 2), 0);
    assert_int_equal(ufio_client_region_write(b, 7, off + 2, &ctl, 2), 0);
    ufio_client_destroy(a);
    ufio_client_destroy(b);
}

/*
 * The source frames the next read while the client receives one (read-ahead,
 * lib/server/migration.c). A PRE_COPY round that ends during that still ends
 * the client's next read short, even when pages are dirtied meanwhile (they
 * go in the next round, not glued to this one); and going to STOP_COPY right
 * after a round ended in read-ahead still moves the whole stream.
 */
static size_t read_until_round_tail(struct ufio_client *a, struct ufio_client *b, size_t r)
{
    static uint8_t buf[8192];
    size_t total = 0;
    for (;;) {
        uint64_t initial, dirty;
        assert_int_equal(ufio_client_mig_precopy_info(a, &initial, &dirty), 0);
        if (initial + 200 < r)
            return total; /* what is left of this round (record headers included) fits one read */
        size_t got = 0;
        assert_int_equal(ufio_client_mig_data_read(a, buf, r, &got), 0);
        assert_int_equal(got, r);
        assert_int_equal(ufio_client_mig_data_write(b, buf, got), 0);
        total += got;
    }
}

static void test_precopy_round_ends_with_read_ahead(void **st)
{
    struct ufio_client *a = t_owner(&A), *b = t_owner(&B);
    const size_t r = 8192;
    uint8_t page[4096], buf[8192];
    for (int pass = 0; pass < 2; pass++) {
        assert_int_equal(ufio_client_mig_set_state(b, UFIO_MIG_RESUMING, NULL), 0);
        assert_int_equal(ufio_client_mig_set_state(a, UFIO_MIG_PRE_COPY, NULL), 0);
        assert_true(read_until_round_tail(a, b, r) > 64 * 1024 - r);
        /* two pages dirtied now: 2 x 4101 bytes, more than the tail leaves of a read */
        memset(page, 0x70 + pass, sizeof(page));
        assert_int_equal(ufio_client_region_write(a, 2, 0x2000, page, sizeof(page)), 0);
        assert_int_equal(ufio_client_region_write(a, 2, 0x5000, page, sizeof(page)), 0);
        if (pass == 0) {
            size_t got = 0;
            assert_int_equal(ufio_client_mig_data_read(a, buf, r, &got), 0);
            assert_true(got < r); /* the round's tail alone */
            assert_int_equal(ufio_client_mig_data_write(b, buf, got), 0);
            uint64_t initial, dirty;
            assert_int_equal(ufio_client_mig_precopy_info(a, &initial, &dirty), 0);
            assert_int_equal(initial, 0);
            assert_true(dirty >= 2 * 4096);
            assert_true(pump(a, b, NULL, 0) >= 2 * 4096); /* the next round has them */
        }
        /* pass 1: straight to STOP_COPY with the round's end framed ahead and unread */
        assert_int_equal(ufio_client_mig_set_state(a, UFIO_MIG_STOP_COPY, NULL), 0);
        pump(a, b, NULL, 0);
        assert_int_equal(ufio_client_mig_set_state(b, UFIO_MIG_STOP, NULL), 0);
        assert_int_equal(ufio_client_mig_set_state(b, UFIO_MIG_RUNNING, NULL), 0);
        assert_int_equal(ufio_client_mig_set_state(a, UFIO_MIG_RUNNING, NULL), 0);
        uint8_t got[4096];
        assert_int_equal(ufio_client_region_read(b, 2, 0x5000, got, sizeof(got)), 0);
        assert_memory_equal(got, page, sizeof(got));
        assert_int_equal(ufio_client_region_read(b, 2, 0xf000, got, sizeof(got)), 0);
        assert_int_equal(ufio_client_region_read(a, 2, 0xf000, buf, sizeof(got)), 0);
        assert_memory_equal(got, buf, sizeof(got)); /* the last page, framed ahead, arrived */
    }
    ufio_client_destroy(a);
    ufio_client_destroy(b);
}

static uint8_t stream[1 << 20];

/* Captures a whole stream from A (without loading it anywhere). */
static size_t capture(struct ufio_client *a)
{
    assert_int_equal(ufio_client_mig_set_state(a, UFIO_MIG_STOP_COPY, NULL), 0);
    size_t n = pump(a, NULL, stream, sizeof(stream));
    assert_true(n < sizeof(stream));
    assert_int_equal(ufio_client_mig_set_state(a, UFIO_MIG_RUNNING, NULL), 0);
    return n;
}

static int load(struct ufio_client *b, const uint8_t *s, size_t n, size_t piece)
{
    assert_int_equal(ufio_client_mig_set_state(b, UFIO_MIG_RESUMING, NULL), 0);
    for (size_t o = 0; o < n; o += piece) {
        size_t k = n - o < piece ? n - o : piece;
        int err = ufio_client_mig_data_write(b, s + o, k);
        if (err)
            return err;
    }
    return ufio_client_mig_set_state(b, UFIO_MIG_STOP, NULL);
}

static void test_stream_any_chunking_and_damage(void **st)
{
    struct ufio_client *a = t_owner(&A), *b = t_owner(&B);
    t_w32(a, 0, 8, 0xfeedf00d);
    size_t n = capture(a);
    /* odd chunking is fine: the stream is bytes */
    t_w32(b, 0, 8, 0);
    assert_int_equal(load(b, stream, n, 777), 0);
    assert_int_equal(ufio_client_mig_set_state(b, UFIO_MIG_RUNNING, NULL), 0);
    assert_int_equal(t_r32(b, 0, 8), 0xfeedf00d);

    /* truncated: the records that arrived were loaded (streaming), so leaving RESUMING
     * fails into ERROR and the device cannot run until it is reset */
    t_w32(b, 0, 8, 0x1234);
    assert_int_equal(load(b, stream, n - 10, 4096), -EINVAL);
    assert_int_equal(t_state(b), UFIO_MIG_ERROR);
    assert_int_equal(ufio_client_mig_set_state(b, UFIO_MIG_RUNNING, NULL), -EINVAL);
    assert_int_equal(t_state(b), UFIO_MIG_ERROR);
    assert_int_equal(ufio_client_reset(b), 0);
    assert_int_equal(t_state(b), UFIO_MIG_RUNNING);
    t_w32(b, 0, 8, 0x1234);

    /* one flipped byte in the first data record (the registers): its CRC catches it
     * before the device sees it, so nothing was loaded */
    static uint8_t bad[1 << 20];
    memcpy(bad, stream, n);
    size_t first = UFIO_MIG_HDR_SIZE + UFIO_MIG_REC_HDR + get32(stream + UFIO_MIG_HDR_SIZE + 4);
    assert_int_equal(get16(stream + first), UFIO_MIG_TAG_DATA);
    bad[first + UFIO_MIG_REC_HDR + 2] ^= 0x40;
    assert_int_equal(load(b, bad, n, 65536), -EBADMSG);
    assert_int_equal(ufio_client_mig_set_state(b, UFIO_MIG_STOP, NULL), -EBADMSG);
    assert_int_equal(t_state(b), UFIO_MIG_ERROR);
    assert_int_equal(ufio_client_reset(b), 0);
    assert_int_equal(t_r32(b, 0, 8), 0x1234);

    /* bad magic is refused at once */
    memcpy(bad, stream, n);
    bad[0] = 'X';
    assert_int_equal(ufio_client_mig_set_state(b, UFIO_MIG_RESUMING, NULL), 0);
    assert_int_equal(ufio_client_mig_data_write(b, bad, 64), -EINVAL);
    assert_int_equal(ufio_client_reset(b), 0);
    ufio_client_destroy(a);
    ufio_client_destroy(b);
}

static void test_engine_migrates(void **st)
{
    struct ufio_client *a = t_owner(&A);
    t_w32(a, 0, 8, 0xabcdef01);
    t_w32(a, 1, 4, 0x77);
    ufio_client_destroy(a);
    struct ufio_migrate_opts o = { .size = sizeof(o), .src_path = A.path, .dst_path = B.path, .max_downtime_ms = 300 };
    char errbuf[UFIO_MIGRATE_ERROR_MAX];
    struct ufio_migrate_result r = { .size = sizeof(r), .error = errbuf, .error_size = sizeof(errbuf) };
    assert_int_equal(ufio_migrate(&o, &r), 0);
    assert_true(r.compatible);
    assert_true(r.rounds >= 1);
    assert_true(r.bytes > 64 * 1024);
    struct ufio_client *b = t_owner(&B);
    assert_int_equal(t_state(b), UFIO_MIG_RUNNING);
    assert_int_equal(t_r32(b, 0, 8), 0xabcdef01);
    assert_int_equal(t_r32(b, 1, 4), 0x77);
    ufio_client_destroy(b);
    a = t_owner(&A);
    assert_int_equal(t_state(a), UFIO_MIG_STOP); /* the device moved */
    assert_int_equal(ufio_client_mig_set_state(a, UFIO_MIG_RUNNING, NULL), 0);
    ufio_client_destroy(a);
}

/* Progress hook: SIGKILL the server in opaque once precopy data flows. */
static void kill_in_precopy(void *opaque, enum ufio_migrate_phase ph, uint64_t bytes, unsigned round)
{
    struct srv *s = opaque;
    if (ph == UFIO_MIGRATE_PRECOPY)
        srv_kill(s);
}

/* The destination dies mid-way: the source is back to RUNNING with its state. */
static void test_engine_rolls_back(void **st)
{
    struct srv C;
    assert_int_equal(srv_start(&C, server_bin, NULL), 0);
    struct ufio_client *a = t_owner(&A);
    t_w32(a, 0, 8, 0x0badcafe);
    ufio_client_destroy(a);
    struct ufio_migrate_opts o = { .size = sizeof(o), .src_path = A.path, .dst_path = C.path, .progress = kill_in_precopy, .opaque = &C };
    char errbuf[UFIO_MIGRATE_ERROR_MAX];
    struct ufio_migrate_result r = { .size = sizeof(r), .error = errbuf, .error_size = sizeof(errbuf) };
    int err = ufio_migrate(&o, &r);
    assert_true(err < 0 && err != -EPERM);
    assert_true(strlen(r.error) > 0);
    a = t_owner(&A);
    assert_int_equal(t_state(a), UFIO_MIG_RUNNING);
    assert_int_equal(t_r32(a, 0, 8), 0x0badcafe);
    ufio_client_destroy(a);
}

/* The source dies mid-way: the destination must not run half a state. */
static void test_engine_source_dies(void **st)
{
    struct srv src, dst;
    assert_int_equal(srv_start(&src, server_bin, NULL), 0);
    assert_int_equal(srv_start(&dst, server_bin, NULL), 0);
    struct ufio_client *d = t_owner(&dst);
    t_w32(d, 0, 8, 0x5eed0001); /* the destination's own state before */
    ufio_client_destroy(d);
    struct ufio_migrate_opts o = { .size = sizeof(o), .src_path = src.path, .dst_path = dst.path, .progress = kill_in_precopy, .opaque = &src };
    char errbuf[UFIO_MIGRATE_ERROR_MAX];
    struct ufio_migrate_result r = { .size = sizeof(r), .error = errbuf, .error_size = sizeof(errbuf) };
    int err = ufio_migrate(&o, &r);
    assert_true(err < 0 && err != -EPERM);
    /* the records that arrived were loaded as they came (streaming): the destination
     * holds part of the source's state, so it is left stopped, never running it */
    d = t_owner(&dst);
    assert_int_equal(t_state(d), UFIO_MIG_STOP);
    ufio_client_destroy(d);
    srv_stop(&dst);
}

/* Without precopy: everything moves in STOP_COPY, byte for byte. */
static void test_engine_no_precopy(void **st)
{
    struct srv src, dst;
    assert_int_equal(srv_start(&src, server_bin, NULL), 0);
    assert_int_equal(srv_start(&dst, server_bin, NULL), 0);
    struct ufio_client *a = t_owner(&src);
    static uint8_t ram[65536], back[65536];
    for (size_t i = 0; i < sizeof(ram); i++)
        ram[i] = (uint8_t)(i * 7 + 1);
    assert_int_equal(ufio_client_region_write(a, 2, 0, ram, sizeof(ram)), 0);
    t_w32(a, 0, 8, 0x13579bdf);
    ufio_client_destroy(a);
    struct ufio_migrate_opts o = { .size = sizeof(o), .src_path = src.path, .dst_path = dst.path, .no_precopy = true };
    char errbuf[UFIO_MIGRATE_ERROR_MAX];
    struct ufio_migrate_result r = { .size = sizeof(r), .error = errbuf, .error_size = sizeof(errbuf) };
    assert_int_equal(ufio_migrate(&o, &r), 0);
    assert_int_equal(r.rounds, 0);
    assert_int_equal(r.precopy_bytes, 0);
    assert_true(r.stopcopy_bytes > sizeof(ram));
    struct ufio_client *b = t_owner(&dst);
    assert_int_equal(ufio_client_region_read(b, 2, 0, back, sizeof(back)), 0);
    assert_memory_equal(back, ram, sizeof(ram));
    assert_int_equal(t_r32(b, 0, 8), 0x13579bdf);
    ufio_client_destroy(b);
    srv_stop(&src);
    srv_stop(&dst);
}

/* Compatibility: a newer minor loads an older stream; the reverse is refused with reasons. */
static void test_compatibility(void **st)
{
    const char *v11[] = { "--sw-version=1.1.0", NULL }, *v20[] = { "--sw-version=2.0.0", NULL };
    struct srv old, newer, major2;
    assert_int_equal(srv_start(&old, server_bin, NULL), 0);       /* 1.0.0 */
    assert_int_equal(srv_start(&newer, server_bin, v11), 0);
    assert_int_equal(srv_start(&major2, server_bin, v20), 0);
    char errbuf[UFIO_MIGRATE_ERROR_MAX];
    struct ufio_migrate_result r = { .size = sizeof(r), .error = errbuf, .error_size = sizeof(errbuf) };
    struct ufio_migrate_opts o = { .size = sizeof(o), .src_path = newer.path, .dst_path = old.path };
    assert_int_equal(ufio_migrate(&o, &r), -EPERM);
    assert_false(r.compatible);
    assert_non_null(strstr(r.error, "software_version"));
    assert_non_null(strstr(r.error, "1.1.0"));
    /* the refused destination was not touched */
    struct ufio_client *c = t_owner(&old);
    assert_int_equal(t_state(c), UFIO_MIG_RUNNING);
    ufio_client_destroy(c);
    o = (struct ufio_migrate_opts){ .size = sizeof(o), .src_path = old.path, .dst_path = major2.path };
    assert_int_equal(ufio_migrate(&o, &r), -EPERM);
    o = (struct ufio_migrate_opts){ .size = sizeof(o), .src_path = old.path, .dst_path = newer.path };
    assert_int_equal(ufio_migrate(&o, &r), 0);
    assert_true(r.compatible);

    /* a hand-made stream whose descriptor is the destination's own (so it passes
     * the check) but whose payload is not this device's state: the framing
     * verifies, the device's load refuses it, nothing is loaded */
    c = t_owner(&old);
    assert_int_equal(t_state(c), UFIO_MIG_STOP); /* migrated away: it takes no write until told to run */
    assert_int_equal(ufio_client_mig_set_state(c, UFIO_MIG_RUNNING, NULL), 0);
    t_w32(c, 0, 8, 0x600d);
    static char desc[4096];
    size_t dl = 0;
    assert_int_equal(ufio_client_feature(c, UFIO_FEATURE_GET | UFIO_FEATURE_COMPAT_DESC, NULL, 0, desc,
                                         sizeof(desc), &dl), 0);
    static uint8_t f[16384];
    size_t n = 0;
    ufio_mig_put_header(f);
    n += UFIO_MIG_HDR_SIZE;
    ufio_mig_frame(f + n, UFIO_MIG_TAG_DESC, 0, desc, (uint32_t)dl);
    memcpy(f + n + UFIO_MIG_REC_HDR, desc, dl);
    n += UFIO_MIG_REC_HDR + dl;
    uint8_t junk[64];
    memset(junk, 9, sizeof(junk)); /* record kind 9: no such thing in the sample's format */
    ufio_mig_frame(f + n, UFIO_MIG_TAG_DATA, 0, junk, sizeof(junk));
    memcpy(f + n + UFIO_MIG_REC_HDR, junk, sizeof(junk));
    n += UFIO_MIG_REC_HDR + sizeof(junk);
    /* the record is refused as it arrives; leaving RESUMING then fails into ERROR */
    assert_int_equal(load(c, f, n, 1000), -EINVAL);
    assert_int_equal(ufio_client_mig_set_state(c, UFIO_MIG_STOP, NULL), -EINVAL);
    assert_int_equal(t_state(c), UFIO_MIG_ERROR);
    char why[256];
    size_t wl = 0;
    assert_int_equal(ufio_client_feature(c, UFIO_FEATURE_GET | UFIO_FEATURE_MIG_REASON, NULL, 0, why,
                                         sizeof(why), &wl), 0);
    assert_non_null(strstr(why, "refused record 1"));
    assert_int_equal(ufio_client_reset(c), 0);
    assert_int_equal(t_r32(c, 0, 8), 0x600d);
    /* the same stream claiming another device's identity is refused by the check */
    char *t = strstr(desc, "ufio-sample");
    assert_non_null(t);
    memcpy(t, "ufio-simple", 11);
    n = 0;
    ufio_mig_put_header(f);
    n += UFIO_MIG_HDR_SIZE;
    ufio_mig_frame(f + n, UFIO_MIG_TAG_DESC, 0, desc, (uint32_t)dl);
    memcpy(f + n + UFIO_MIG_REC_HDR, desc, dl);
    n += UFIO_MIG_REC_HDR + dl;
    assert_int_equal(ufio_client_mig_set_state(c, UFIO_MIG_RESUMING, NULL), 0);
    assert_int_equal(ufio_client_mig_data_write(c, f, n), -EINVAL);
    assert_int_equal(ufio_client_reset(c), 0);
    ufio_client_destroy(c);
    srv_stop(&old);
    srv_stop(&newer);
    srv_stop(&major2);
    (void)n;
}

static void test_dirty_logging(void **st)
{
    struct ufio_client *a = t_owner(&A);
    int mfd = memfd_create("g", MFD_CLOEXEC);
    assert_int_equal(ftruncate(mfd, 1 << 20), 0);
    uint8_t *g = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    assert_int_equal(ufio_client_dma_map(a, 0x40000000, 1 << 20, 3, g, mfd, 0), 0);
    static uint8_t plain[1 << 16];
    assert_int_equal(ufio_client_dma_map(a, 0x50000000, sizeof(plain), 3, plain, -1, 0), 0);
    /* report before start: refused */
    uint64_t bm[4] = { 0 };
    assert_int_equal(ufio_client_dirty_log_report(a, 0x40000000, 1 << 20, 4096, bm), -EINVAL);
    assert_int_equal(ufio_client_dirty_log_start(a, 4096, NULL, 0), 0);
    assert_int_equal(ufio_client_dirty_log_start(a, 4096, NULL, 0), -EBUSY);
    /* the device writes 8 KiB at +0x5000 (pages 5 and 6) of the mapped range */
    t_w32(a, 0, 0x18, 0x40000000);
    t_w32(a, 0, 0x1c, 0);
    t_w32(a, 0, 0x20, 0x40005000);
    t_w32(a, 0, 0x24, 0);
    t_w32(a, 0, 0x28, 8192);
    t_w32(a, 0, 0x2c, 1);
    assert_int_equal(t_r32(a, 0, 0x30), 1);
    /* and 100 bytes by DMA_WRITE message at +0x2010 of the fd-less range */
    t_w32(a, 0, 0x20, 0x50002010);
    t_w32(a, 0, 0x24, 0);
    t_w32(a, 0, 0x28, 100);
    t_w32(a, 0, 0x2c, 1);
    assert_int_equal(t_r32(a, 0, 0x30), 1);
    memset(bm, 0, sizeof(bm));
    assert_int_equal(ufio_client_dirty_log_report(a, 0x40000000, 1 << 20, 4096, bm), 0);
    assert_int_equal(bm[0], 0x60);
    for (int i = 1; i < 4; i++)
        assert_int_equal(bm[i], 0);
    uint64_t bm2[1] = { 0 };
    assert_int_equal(ufio_client_dirty_log_report(a, 0x50000000, sizeof(plain), 4096, bm2), 0);
    assert_int_equal(bm2[0], 0x4);
    /* a report clears what it reported */
    memset(bm, 0, sizeof(bm));
    assert_int_equal(ufio_client_dirty_log_report(a, 0x40000000, 1 << 20, 4096, bm), 0);
    assert_int_equal(bm[0], 0);
    /* a larger report page size merges: 64 KiB pages, both writes in page 0 */
    t_w32(a, 0, 0x20, 0x40015000);
    t_w32(a, 0, 0x28, 4096);
    t_w32(a, 0, 0x2c, 1);
    memset(bm, 0, sizeof(bm));
    assert_int_equal(ufio_client_dirty_log_report(a, 0x40000000, 1 << 20, 65536, bm), 0);
    assert_int_equal(bm[0], 0x2);
    /* a range whose bitmap is more than one reply carries (40 GiB at 4 KiB pages: 1.25 MiB of
     * bitmap, the sample's max_data_xfer_size is 1 MiB): asked for in pieces, every bit where
     * it belongs */
    int big = memfd_create("sparse", MFD_CLOEXEC);
    const uint64_t big_len = 40ull << 30, big_iova = 0x100000000000ull, hit = (36ull << 30) + 0x3000;
    assert_int_equal(ftruncate(big, (off_t)big_len), 0);
    assert_int_equal(ufio_client_dma_map(a, big_iova, big_len, 3, NULL, big, 0), 0);
    t_w32(a, 0, 0x20, (uint32_t)(big_iova + hit));
    t_w32(a, 0, 0x24, (uint32_t)((big_iova + hit) >> 32));
    t_w32(a, 0, 0x28, 4096);
    t_w32(a, 0, 0x2c, 1);
    assert_int_equal(t_r32(a, 0, 0x30), 1);
    const size_t words = big_len / 4096 / 64;
    uint64_t *bbm = calloc(words, 8);
    assert_non_null(bbm);
    assert_int_equal(ufio_client_dirty_log_report(a, big_iova, big_len, 4096, bbm), 0);
    for (size_t i = 0; i < words; i++)
        assert_int_equal(bbm[i], i == hit / 4096 / 64 ? 1ull << (hit / 4096 % 64) : 0);
    free(bbm);
    assert_int_equal(ufio_client_dma_unmap(a, big_iova, big_len), 0);
    close(big);
    t_w32(a, 0, 0x24, 0);
    /* malformed requests */
    assert_int_equal(ufio_client_dirty_log_report(a, 0x40000000, 1 << 20, 3000, bm), -EINVAL);
    struct ufio_iova_range bad = { 0x40000100, 4096 };
    assert_int_equal(ufio_client_dirty_log_stop(a), 0);
    assert_int_equal(ufio_client_dirty_log_stop(a), -EINVAL);
    assert_int_equal(ufio_client_dirty_log_start(a, 4096, &bad, 1), -EINVAL);
    assert_int_equal(ufio_client_dirty_log_start(a, 4097, NULL, 0), -EINVAL);
    /* logging belongs to the client that started it: a client that leaves with it on
     * leaves none behind for the next one */
    assert_int_equal(ufio_client_dirty_log_start(a, 4096, NULL, 0), 0);
    ufio_client_destroy(a);
    a = t_owner(&A);
    assert_int_equal(ufio_client_dma_map(a, 0x40000000, 1 << 20, 3, g, mfd, 0), 0);
    assert_int_equal(ufio_client_dirty_log_report(a, 0x40000000, 1 << 20, 4096, bm), -EINVAL);
    assert_int_equal(ufio_client_dirty_log_start(a, 4096, NULL, 0), 0);
    ufio_client_destroy(a);
    munmap(g, 1 << 20);
    close(mfd);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    server_bin = argv[1];
    const struct CMUnitTest tests[] = {
        T_TEST(test_flags_and_states),
        T_TEST(test_manual_precopy_migration),
        T_TEST(test_precopy_round_ends_with_read_ahead),
        T_TEST(test_stream_any_chunking_and_damage),
        T_TEST(test_engine_migrates),
        T_TEST(test_engine_rolls_back),
        T_TEST(test_engine_source_dies),
        T_TEST(test_engine_no_precopy),
        T_TEST(test_compatibility),
        T_TEST(test_dirty_logging),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
