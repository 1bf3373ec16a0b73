/*
 * The server's migration state walk (lib/server/migration.c), without a
 * client: a SET of MIG_DEVICE_STATE goes from the current state to the target
 * one direct arc at a time, each arc through the device's transition callback,
 * in exactly the order ufio_mig_path() gives; an arc the device fails stops
 * the walk in the last state reached, with the device's errno. For every
 * flag combination, every pair of states and every arc failing.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "server/dev_internal.h"

static unsigned arcs[2 * UFIO_MIG_NUM_STATES][2];
static size_t narcs;
static bool recording;
static int fail_at = -1; /* the index of the recorded arc that fails, -1 = none */

static int transition(struct ufio_dev *dev, void *opaque, unsigned from, unsigned to)
{
    if (!recording)
        return 0;
    assert_true(narcs < 2 * UFIO_MIG_NUM_STATES);
    arcs[narcs][0] = from;
    arcs[narcs][1] = to;
    /* the library has not moved yet while the device is asked */
    assert_int_equal(ufio_dev_mig_state(dev), from);
    return (int)narcs++ == fail_at ? -EAGAIN : 0;
}

static ssize_t save(struct ufio_dev *dev, void *opaque, void *buf, size_t len)
{
    return 0;
}

static int load(struct ufio_dev *dev, void *opaque, const void *buf, size_t len, bool last)
{
    return 0;
}

static struct ufio_dev *make(uint64_t flags)
{
    static const struct ufio_pci_ids ids = { 0x5546, 0x0a1c, 0x5546, 0x0a1c, 0xff0000, 1 };
    struct ufio_dev *dev;
    assert_int_equal(ufio_dev_create("walk", &ids, NULL, NULL, &dev), 0);
    const struct ufio_mig_ops ops = { .size = sizeof(ops), .flags = flags, .transition = transition, .save = save, .load = load };
    assert_int_equal(ufio_dev_setup_migration(dev, &ops, NULL), 0);
    return dev;
}

/* SET MIG_DEVICE_STATE as the client's DEVICE_FEATURE would ask it */
static int set_state(struct ufio_dev *dev, unsigned st)
{
    uint8_t data[8];
    ufio_st32(data, st);
    ufio_st32(data + 4, 0xffffffffu);
    struct ufio_feature f = { .argsz = 16, .flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
                              .data = data, .data_len = 8 };
    struct ufio_reply rep = { 0 };
    int err = dev_feature(dev, &f, &rep);
    if (!err) /* the reply carries the state reached */
        assert_int_equal(ufio_ld32(rep.head + 8), ufio_dev_mig_state(dev));
    return err;
}

static const uint64_t all_flags[] = {
    UFIO_MIG_F_STOP_COPY,
    UFIO_MIG_F_STOP_COPY | UFIO_MIG_F_P2P,
    UFIO_MIG_F_STOP_COPY | UFIO_MIG_F_PRE_COPY,
    UFIO_MIG_F_STOP_COPY | UFIO_MIG_F_P2P | UFIO_MIG_F_PRE_COPY,
};

/* Puts a new device in state `from` (not recorded). */
static struct ufio_dev *at(uint64_t flags, unsigned from)
{
    struct ufio_dev *dev = make(flags);
    recording = false;
    assert_int_equal(set_state(dev, from), 0);
    assert_int_equal(ufio_dev_mig_state(dev), from);
    recording = true;
    narcs = 0;
    fail_at = -1;
    return dev;
}

static void test_every_walk_follows_the_path(void **st)
{
    unsigned walks = 0;
    for (size_t fi = 0; fi < 4; fi++) {
        uint64_t fl = all_flags[fi];
        for (unsigned from = 1; from < UFIO_MIG_NUM_STATES; from++) {
            /* RESUMING is left only by loading a stream: test_resuming_without_a_stream */
            if (!ufio_mig_state_supported(fl, from) || from == UFIO_MIG_RESUMING)
                continue;
            for (unsigned to = 1; to < UFIO_MIG_NUM_STATES; to++) {
                unsigned path[UFIO_MIG_NUM_STATES];
                size_t len;
                int perr = ufio_mig_path(fl, from, to, path, &len);
                struct ufio_dev *dev = at(fl, from);
                int err = set_state(dev, to);
                if (perr) {
                    /* unsupported or impossible: refused before any arc, nothing moved */
                    assert_int_equal(err, perr);
                    assert_int_equal(narcs, 0);
                    assert_int_equal(ufio_dev_mig_state(dev), from);
                } else {
                    assert_int_equal(err, 0);
                    assert_int_equal(narcs, len);
                    unsigned cur = from;
                    for (size_t i = 0; i < len; i++) {
                        assert_int_equal(arcs[i][0], cur);
                        assert_int_equal(arcs[i][1], path[i]);
                        assert_true(ufio_mig_arc_is_direct(fl, cur, path[i]));
                        cur = path[i];
                    }
                    assert_int_equal(ufio_dev_mig_state(dev), to);
                    walks++;
                }
                ufio_dev_destroy(dev);
            }
        }
    }
    assert_true(walks > 60);
}

/* A failing arc: the walk stops in the state before it, with the device's errno; a new SET
 * from there walks on. */
static void test_a_failing_arc_stops_the_walk(void **st)
{
    unsigned cases = 0;
    for (size_t fi = 0; fi < 4; fi++) {
        uint64_t fl = all_flags[fi];
        for (unsigned from = 1; from < UFIO_MIG_NUM_STATES; from++) {
            if (!ufio_mig_state_supported(fl, from) || from == UFIO_MIG_RESUMING)
                continue;
            for (unsigned to = 1; to < UFIO_MIG_NUM_STATES; to++) {
                unsigned path[UFIO_MIG_NUM_STATES];
                size_t len;
                if (ufio_mig_path(fl, from, to, path, &len))
                    continue;
                for (size_t k = 0; k < len; k++) {
                    struct ufio_dev *dev = at(fl, from);
                    fail_at = (int)k;
                    assert_int_equal(set_state(dev, to), -EAGAIN);
                    assert_int_equal(narcs, k + 1); /* nothing tried after the failure */
                    unsigned reached = k ? path[k - 1] : from;
                    assert_int_equal(ufio_dev_mig_state(dev), reached);
                    /* and from there the rest of the way, when asked again */
                    fail_at = -1;
                    narcs = 0;
                    assert_int_equal(set_state(dev, to), 0);
                    assert_int_equal(ufio_dev_mig_state(dev), to);
                    assert_int_equal(narcs, len - k);
                    ufio_dev_destroy(dev);
                    cases++;
                }
            }
        }
    }
    assert_true(cases > 100);
}

/* RESUMING -> STOP with no stream loaded: the device is told nothing and ends in ERROR,
 * from which only a reset leaves. */
static void test_resuming_without_a_stream(void **st)
{
    struct ufio_dev *dev = at(UFIO_MIG_F_STOP_COPY, UFIO_MIG_RESUMING);
    assert_int_not_equal(set_state(dev, UFIO_MIG_RUNNING), 0);
    assert_int_equal(ufio_dev_mig_state(dev), UFIO_MIG_ERROR);
    assert_int_equal(narcs, 0);
    assert_int_equal(set_state(dev, UFIO_MIG_RUNNING), -EINVAL);
    dev_mig_reset(dev);
    assert_int_equal(ufio_dev_mig_state(dev), UFIO_MIG_RUNNING);
    ufio_dev_destroy(dev);
}

/* A transition that returns something other than 0 or -errno fails the arc with EIO. */
static int positive(struct ufio_dev *dev, void *opaque, unsigned from, unsigned to)
{
    return 1;
}

static void test_transition_return_convention(void **st)
{
    static const struct ufio_pci_ids ids = { 0x5546, 0x0a1d, 0x5546, 0x0a1d, 0xff0000, 1 };
    struct ufio_dev *dev;
    assert_int_equal(ufio_dev_create("walk2", &ids, NULL, NULL, &dev), 0);
    const struct ufio_mig_ops ops = { .size = sizeof(ops), .flags = UFIO_MIG_F_STOP_COPY, .transition = positive, .save = save,
                                      .load = load };
    assert_int_equal(ufio_dev_setup_migration(dev, &ops, NULL), 0);
    assert_int_equal(set_state(dev, UFIO_MIG_STOP), -EIO);
    assert_int_equal(ufio_dev_mig_state(dev), UFIO_MIG_RUNNING);
    ufio_dev_destroy(dev);
}

int main(void)
{
    ufio_set_log(NULL, NULL, UFIO_LOG_ERR); /* every failed arc warns, and these fail on purpose */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_walk_follows_the_path),
        cmocka_unit_test(test_a_failing_arc_stops_the_walk),
        cmocka_unit_test(test_resuming_without_a_stream),
        cmocka_unit_test(test_transition_return_convention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
