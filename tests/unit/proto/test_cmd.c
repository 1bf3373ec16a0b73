/*
 * The command table, row by row: what the issue and the spec say each role
 * may send is written here independently, and every row's bounds are probed
 * one byte / one fd either side.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <ufio/migration.h>

#include "proto/cmd.h"

#define O UFIO_ROLE_OWNER
#define V UFIO_ROLE_OBSERVER
#define C UFIO_ROLE_CONTROLLER
#define XF 4096 /* max_xfer used for LEN_XFER rows */

/* who may send what: observers read, the controller migrates, the owner does it all */
static const struct {
    unsigned cmd;
    unsigned roles;
    bool state;   /* held for the owner while a controller has the device stopped */
    bool mig;     /* EBUSY while another session holds the migration */
} expect[] = {
    { VFIO_USER_VERSION, O | V | C, false, false },
    { VFIO_USER_DMA_MAP, O, true, false },
    { VFIO_USER_DMA_UNMAP, O, true, false },
    { VFIO_USER_DEVICE_GET_INFO, O | V | C, false, false },
    { VFIO_USER_DEVICE_GET_REGION_INFO, O | V | C, false, false },
    { VFIO_USER_DEVICE_GET_REGION_IO_FDS, O, false, false },
    { VFIO_USER_DEVICE_GET_IRQ_INFO, O | V | C, false, false },
    { VFIO_USER_DEVICE_SET_IRQS, O, true, false },
    { VFIO_USER_REGION_READ, O | V | C, true, false }, /* observers: config space only */
    { VFIO_USER_REGION_WRITE, O, true, false },
    { VFIO_USER_DEVICE_RESET, O | C, true, false }, /* a controller resets a half-loaded destination */
    { VFIO_USER_REGION_WRITE_MULTI, O, true, false },
    { VFIO_USER_DEVICE_FEATURE, O | V | C, false, false }, /* the sub-format decides */
    { VFIO_USER_MIG_DATA_READ, O | C, false, true },
    { VFIO_USER_MIG_DATA_WRITE, O | C, false, true },
    { UFIO_CMD_HANDOVER, C, false, true }, /* ufio: the controller takes the fds (docs/handover.md) */
};

static void check_row(unsigned cmd, unsigned roles, bool state, bool mig)
{
    const struct ufio_cmd_desc *d = ufio_cmd_desc(cmd);
    assert_non_null(d);
    assert_int_equal(d->cmd, cmd);
    assert_string_equal(d->name, ufio_cmd_name(cmd));
    assert_int_equal(d->roles, roles);
    assert_int_equal(!!(d->flags & UFIO_CMD_F_STATE), state);
    assert_int_equal(!!(d->flags & UFIO_CMD_F_MIG), mig);
    unsigned some = roles & O ? O : roles & C ? C : V;
    size_t maxf = d->max_fds == UFIO_CMD_FDS_NEG ? 8 : d->max_fds;
    /* the smallest payload, as many fds as allowed: accepted for each role of the set */
    for (unsigned r = 1; r <= 4; r <<= 1)
        assert_int_equal(ufio_cmd_check(d, r, d->min_len, maxf, XF, 8), (roles & r) ? 0 : -EACCES);
    /* one fd more, one byte less, one byte more: EINVAL whoever sends it */
    assert_int_equal(ufio_cmd_check(d, some, d->min_len, maxf + 1, XF, 8), -EINVAL);
    if (d->min_len)
        assert_int_equal(ufio_cmd_check(d, some, d->min_len - 1, 0, XF, 8), -EINVAL);
    size_t max = d->max_len == UFIO_CMD_LEN_XFER ? d->min_len + XF : d->max_len;
    assert_int_equal(ufio_cmd_check(d, some, max, 0, XF, 8), 0);
    assert_int_equal(ufio_cmd_check(d, some, max + 1, 0, XF, 8), -EINVAL);
}

static void test_every_row(void **st)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        check_row(expect[i].cmd, expect[i].roles, expect[i].state, expect[i].mig);
        n++;
    }
    /* the table has no row the expectations above do not cover, except the server's own */
    size_t rows = 0;
    for (const struct ufio_cmd_desc *d; (d = ufio_cmd_row(rows)); rows++)
        if (d->flags & UFIO_CMD_F_S2C)
            n++;
    assert_int_equal(rows, n);
}

/* Fixed sizes the spec gives, checked on their own. */
static void test_fixed_sizes(void **st)
{
    const struct ufio_cmd_desc *d = ufio_cmd_desc(VFIO_USER_DMA_MAP);
    assert_int_equal(ufio_cmd_check(d, O, 32, 1, XF, 8), 0);
    assert_int_equal(ufio_cmd_check(d, O, 31, 1, XF, 8), -EINVAL);
    assert_int_equal(ufio_cmd_check(d, O, 33, 1, XF, 8), -EINVAL);
    assert_int_equal(ufio_cmd_check(d, O, 32, 2, XF, 8), -EINVAL);
    d = ufio_cmd_desc(VFIO_USER_REGION_READ);
    assert_int_equal(ufio_cmd_check(d, V, 16, 0, XF, 8), 0);
    assert_int_equal(ufio_cmd_check(d, V, 17, 0, XF, 8), -EINVAL);
    d = ufio_cmd_desc(VFIO_USER_REGION_WRITE);
    assert_int_equal(ufio_cmd_check(d, O, 16 + XF, 0, XF, 8), 0);
    assert_int_equal(ufio_cmd_check(d, O, 16 + XF + 1, 0, XF, 8), -EINVAL);
    d = ufio_cmd_desc(VFIO_USER_DEVICE_SET_IRQS);
    assert_int_equal(ufio_cmd_check(d, O, 20, 8, XF, 8), 0); /* up to the negotiated count */
    assert_int_equal(ufio_cmd_check(d, O, 20, 9, XF, 8), -EINVAL);
    d = ufio_cmd_desc(VFIO_USER_DEVICE_RESET);
    assert_int_equal(ufio_cmd_check(d, O, 0, 0, XF, 8), 0);
    assert_int_equal(ufio_cmd_check(d, O, 1, 0, XF, 8), -EINVAL);
    /* no such command; the server's own requests are never accepted as commands */
    assert_null(ufio_cmd_desc(14));
    assert_null(ufio_cmd_desc(0));
    assert_null(ufio_cmd_desc(VFIO_USER_MAX_CMD));
    assert_int_equal(ufio_cmd_check(NULL, O, 0, 0, XF, 8), -ENOSYS);
    assert_int_equal(ufio_cmd_check(ufio_cmd_desc(VFIO_USER_DMA_READ), O, 16, 0, XF, 8), -ENOSYS);
    assert_int_equal(ufio_cmd_check(ufio_cmd_desc(VFIO_USER_DMA_WRITE), O, 16, 0, XF, 8), -ENOSYS);
}

/* The rows refused on a device migrated away: what changes state the stream carried
 * (reads, the owner's DMA mappings and everything else are answered). */
static void test_change_column(void **st)
{
    static const unsigned change[] = { VFIO_USER_DEVICE_SET_IRQS, VFIO_USER_REGION_WRITE, VFIO_USER_DEVICE_RESET,
                                       VFIO_USER_REGION_WRITE_MULTI };
    size_t n = 0;
    for (size_t r = 0; ufio_cmd_row(r); r++) {
        const struct ufio_cmd_desc *d = ufio_cmd_row(r);
        bool want = false;
        for (size_t i = 0; i < sizeof(change) / sizeof(change[0]); i++)
            want |= d->cmd == change[i];
        assert_int_equal(!!(d->flags & UFIO_CMD_F_CHANGE), want);
        if (want) {
            assert_true(d->flags & UFIO_CMD_F_STATE); /* held too, while a controller has it stopped */
            n++;
        }
    }
    assert_int_equal(n, sizeof(change) / sizeof(change[0]));
}

static void test_states(void **st)
{
    const struct ufio_cmd_desc *rd = ufio_cmd_desc(VFIO_USER_MIG_DATA_READ);
    const struct ufio_cmd_desc *wr = ufio_cmd_desc(VFIO_USER_MIG_DATA_WRITE);
    const struct ufio_cmd_desc *rr = ufio_cmd_desc(VFIO_USER_REGION_READ);
    for (unsigned s = 0; s < UFIO_MIG_NUM_STATES; s++) {
        bool saving = s == UFIO_MIG_PRE_COPY || s == UFIO_MIG_PRE_COPY_P2P || s == UFIO_MIG_STOP_COPY;
        assert_int_equal(ufio_cmd_state_ok(rd, s), saving ? 0 : -EINVAL);
        assert_int_equal(ufio_cmd_state_ok(wr, s), s == UFIO_MIG_RESUMING ? 0 : -EINVAL);
        assert_int_equal(ufio_cmd_state_ok(rr, s), 0);
    }
    assert_int_equal(ufio_cmd_state_ok(rd, 99), -EINVAL);
}

static void test_reply_lengths(void **st)
{
    const struct ufio_cmd_desc *d = ufio_cmd_desc(VFIO_USER_DEVICE_GET_INFO);
    assert_int_equal(ufio_cmd_reply_len_ok(d, 16, XF), 0);
    assert_int_equal(ufio_cmd_reply_len_ok(d, 15, XF), -EINVAL);
    assert_int_equal(ufio_cmd_reply_len_ok(d, 17, XF), -EINVAL);
    d = ufio_cmd_desc(VFIO_USER_REGION_READ);
    assert_int_equal(ufio_cmd_reply_len_ok(d, 16 + XF, XF), 0);
    assert_int_equal(ufio_cmd_reply_len_ok(d, 16 + XF + 1, XF), -EINVAL);
    d = ufio_cmd_desc(VFIO_USER_DMA_MAP);
    assert_int_equal(ufio_cmd_reply_len_ok(d, 0, XF), 0);
    assert_int_equal(ufio_cmd_reply_len_ok(d, 1, XF), -EINVAL);
}

/* ---- replies: every row's bounds, fds and decoder (what the client validates) ---- */

/* A success reply to cmd that its decoder accepts, at the row's smallest size; its length. */
static size_t valid_reply(unsigned cmd, uint8_t *b, size_t cap)
{
    memset(b, 0, cap);
    ssize_t n = -1;
    switch (cmd) {
    case VFIO_USER_VERSION: {
        struct ufio_version v = { .major = 0, .minor = 0 };
        ufio_caps_defaults(&v.caps);
        n = ufio_version_encode(&v, b, cap);
        break;
    }
    case VFIO_USER_DMA_UNMAP: {
        struct ufio_dma_unmap u = { .argsz = 24, .addr = 0x1000, .size = 0x1000 };
        n = ufio_dma_unmap_encode(&u, b, cap);
        break;
    }
    case VFIO_USER_DEVICE_GET_INFO: {
        struct ufio_device_info i = { .argsz = 16, .num_regions = 9, .num_irqs = 5 };
        n = ufio_device_info_encode(&i, b, cap);
        break;
    }
    case VFIO_USER_DEVICE_GET_REGION_INFO: {
        static struct ufio_region_info ri;
        memset(&ri, 0, sizeof(ri));
        ri.index = 2;
        ri.size = 4096;
        n = ufio_region_info_encode(&ri, 32, b, cap);
        break;
    }
    case VFIO_USER_DEVICE_GET_REGION_IO_FDS: {
        struct ufio_io_fds f;
        memset(&f, 0, sizeof(f));
        n = ufio_io_fds_encode(&f, 16, b, cap);
        break;
    }
    case VFIO_USER_DEVICE_GET_IRQ_INFO: {
        struct ufio_irq_info i = { .argsz = 16, .index = 0, .count = 1 };
        n = ufio_irq_info_encode(&i, b, cap);
        break;
    }
    case VFIO_USER_DEVICE_FEATURE:
        n = ufio_feature_head_encode(8, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, b, cap);
        break;
    default: /* heads of zeros: REGION_READ/DMA_READ of count 0, MIG_DATA_READ of size 0, ... */
        n = ufio_cmd_desc(cmd)->reply_min;
        break;
    }
    assert_true(n >= 0);
    return (size_t)n;
}

static void test_reply_every_row(void **st)
{
    static uint8_t b[16 + XF + 64];
    size_t checked = 0;
    for (size_t i = 0; ufio_cmd_row(i); i++) {
        const struct ufio_cmd_desc *d = ufio_cmd_row(i);
        size_t n = valid_reply(d->cmd, b, sizeof(b));
        /* accepted as it is, with as many fds as the reply carries */
        assert_int_equal(ufio_cmd_reply_check(d, b, n, 0, d->reply_fds, false, XF), 0);
        /* one fd more, or fds that did not fit: refused */
        assert_int_equal(ufio_cmd_reply_check(d, b, n, 0, d->reply_fds + 1u, false, XF), -EINVAL);
        assert_int_equal(ufio_cmd_reply_check(d, b, n, 0, 0, true, XF), -EINVAL);
        /* one byte short of the row's minimum */
        if (d->reply_min)
            assert_int_equal(ufio_cmd_reply_check(d, b, d->reply_min - 1, 0, 0, false, XF), -EINVAL);
        /* one byte past the row's maximum */
        size_t max = d->reply_max == UFIO_CMD_LEN_XFER ? d->reply_min + XF : d->reply_max;
        assert_true(max + 1 <= sizeof(b));
        assert_int_equal(ufio_cmd_reply_check(d, b, max + 1, 0, 0, false, XF), -EINVAL);
        checked++;
    }
    assert_int_equal(checked, sizeof(expect) / sizeof(expect[0]) + 2 /* DMA_READ, DMA_WRITE */);
    assert_int_equal(ufio_cmd_reply_check(NULL, b, 0, 0, 0, false, XF), -ENOSYS);
}

/* The decoders in the rows: data counts, here or placed, must match the heads. */
static void test_reply_decoders(void **st)
{
    uint8_t b[64];
    memset(b, 0, sizeof(b));
    const struct ufio_cmd_desc *rr = ufio_cmd_desc(VFIO_USER_REGION_READ);
    b[12] = 8; /* count 8 */
    assert_int_equal(ufio_cmd_reply_check(rr, b, 24, 0, 0, false, XF), 0);
    assert_int_equal(ufio_cmd_reply_check(rr, b, 16, 8, 0, false, XF), 0); /* the data went to the caller */
    assert_int_equal(ufio_cmd_reply_check(rr, b, 23, 0, 0, false, XF), -EINVAL);
    assert_int_equal(ufio_cmd_reply_check(rr, b, 25, 0, 0, false, XF), -EINVAL);
    const struct ufio_cmd_desc *dr = ufio_cmd_desc(VFIO_USER_DMA_READ);
    memset(b, 0, sizeof(b));
    b[8] = 4;
    assert_int_equal(ufio_cmd_reply_check(dr, b, 20, 0, 0, false, XF), 0);
    assert_int_equal(ufio_cmd_reply_check(dr, b, 21, 0, 0, false, XF), -EINVAL);
    /* MIG_DATA_READ: size says what is data; libvfio-user pads up to what was asked */
    const struct ufio_cmd_desc *mr = ufio_cmd_desc(VFIO_USER_MIG_DATA_READ);
    memset(b, 0, sizeof(b));
    b[0] = 8 + 32; /* argsz */
    b[4] = 4;      /* size */
    assert_int_equal(ufio_cmd_reply_check(mr, b, 12, 0, 0, false, XF), 0);
    assert_int_equal(ufio_cmd_reply_check(mr, b, 8 + 32, 0, 0, false, XF), 0); /* padded */
    assert_int_equal(ufio_cmd_reply_check(mr, b, 8, 4, 0, false, XF), 0);      /* placed */
    assert_int_equal(ufio_cmd_reply_check(mr, b, 11, 0, 0, false, XF), -EINVAL); /* size beyond the body */
    /* DMA_UNMAP: empty (QEMU) or the echoed 24 bytes, nothing in between */
    const struct ufio_cmd_desc *um = ufio_cmd_desc(VFIO_USER_DMA_UNMAP);
    memset(b, 0, sizeof(b));
    assert_int_equal(ufio_cmd_reply_check(um, b, 0, 0, 0, false, XF), 0);
    assert_int_equal(ufio_cmd_reply_check(um, b, 12, 0, 0, false, XF), -EINVAL);
    /* GET_INFO with an argsz the decoder refuses */
    const struct ufio_cmd_desc *gi = ufio_cmd_desc(VFIO_USER_DEVICE_GET_INFO);
    assert_int_equal(ufio_cmd_reply_check(gi, b, 16, 0, 0, false, XF), -EINVAL);
    /* data placed for a command whose reply has none is refused */
    size_t n = valid_reply(VFIO_USER_DEVICE_GET_INFO, b, sizeof(b));
    assert_int_equal(ufio_cmd_reply_check(gi, b, n, 0, 0, false, XF), 0);
    assert_int_equal(ufio_cmd_reply_check(gi, b, n - 4, 4, 0, false, XF), -EINVAL);
}

/* Lookups are by index: every row sits at its command's number. */
static void test_indexed(void **st)
{
    for (unsigned c = 0; c < VFIO_USER_MAX_CMD + 4; c++) {
        const struct ufio_cmd_desc *d = ufio_cmd_desc(c);
        if (d)
            assert_int_equal(d->cmd, c);
    }
}

#define GET VFIO_DEVICE_FEATURE_GET
#define SET VFIO_DEVICE_FEATURE_SET
#define PROBE VFIO_DEVICE_FEATURE_PROBE

/* DEVICE_FEATURE sub-formats: observers GET/PROBE the read-only ones; migrators SET and log. */
static void test_feature_rows(void **st)
{
    static const struct {
        unsigned index;
        unsigned get, set, probe;
    } fx[] = {
        { VFIO_DEVICE_FEATURE_MIGRATION, O | V | C, 0, O | V | C },
        { VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, O | V | C, O | C, O | V | C },
        { VFIO_DEVICE_FEATURE_DMA_LOGGING_START, 0, O | C, O | C },
        { VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, 0, O | C, O | C },
        { VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, O | C, 0, O | C },
        { UFIO_FEATURE_MIG_DATA_SIZE, O | V | C, 0, O | V | C },
        { UFIO_FEATURE_PRECOPY_INFO, O | V | C, 0, O | V | C },
        { UFIO_FEATURE_COMPAT_DESC, O | V | C, 0, O | V | C },
        { UFIO_FEATURE_DIGEST, O | V | C, 0, O | V | C },
        { UFIO_FEATURE_MIG_REASON, O | V | C, 0, O | V | C },
        { UFIO_FEATURE_STOP_COPY_DEADLINE, 0, O | C, O | C },
        { UFIO_FEATURE_DIRTY_RATE_LIMIT, 0, O | C, O | C },
    };
    size_t n = sizeof(fx) / sizeof(fx[0]);
    for (size_t i = 0; i < n; i++) {
        const struct ufio_feature_desc *d = ufio_feature_desc(fx[i].index);
        assert_non_null(d);
        assert_ptr_equal(ufio_feature_row(i), d);
        for (unsigned r = 1; r <= 4; r <<= 1) {
            int g = ufio_feature_check(d, r, GET | fx[i].index, 0);
            assert_int_equal(g, !fx[i].get ? -EINVAL : (fx[i].get & r) ? 0 : -EACCES);
            int s = ufio_feature_check(d, r, SET | fx[i].index, d->set_len);
            assert_int_equal(s, !fx[i].set ? -EINVAL : (fx[i].set & r) ? 0 : -EACCES);
            int p = ufio_feature_check(d, r, PROBE | fx[i].index, 0);
            assert_int_equal(p, (fx[i].probe & r) ? 0 : -EACCES);
        }
        /* probing an access the feature does not have fails */
        if (!fx[i].set)
            assert_int_equal(ufio_feature_check(d, O, PROBE | SET | fx[i].index, 0), -EINVAL);
        if (!fx[i].get)
            assert_int_equal(ufio_feature_check(d, O, PROBE | GET | fx[i].index, 0), -EINVAL);
    }
    assert_null(ufio_feature_row(n));
    assert_null(ufio_feature_desc(3));
    assert_int_equal(ufio_feature_check(NULL, O, GET | 3, 0), -ENOTSUP);
    /* MIG_DEVICE_STATE SET carries exactly device_state + data_fd */
    const struct ufio_feature_desc *ms = ufio_feature_desc(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE);
    assert_int_equal(ufio_feature_check(ms, C, SET | 2, 8), 0);
    assert_int_equal(ufio_feature_check(ms, C, SET | 2, 4), -EINVAL);
    assert_int_equal(ufio_feature_check(ms, C, SET | 2, 12), -EINVAL);
    assert_int_equal(ufio_feature_check(ms, C, 2, 8), -EINVAL); /* no access named */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_row),
        cmocka_unit_test(test_fixed_sizes),
        cmocka_unit_test(test_change_column),
        cmocka_unit_test(test_reply_every_row),
        cmocka_unit_test(test_reply_decoders),
        cmocka_unit_test(test_indexed),
        cmocka_unit_test(test_states),
        cmocka_unit_test(test_reply_lengths),
        cmocka_unit_test(test_feature_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
