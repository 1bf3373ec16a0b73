/* DEVICE_FEATURE framing and MIG_DATA_READ / MIG_DATA_WRITE (lib/proto/feature.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

/* argsz 16, GET | MIG_DEVICE_STATE, 8 bytes of data */
static const uint8_t feat[16] = {
    0x10, 0, 0, 0, 0x02, 0, 0x01, 0,
    1, 2, 3, 4, 5, 6, 7, 8,
};

static void test_feature_good(void **st)
{
    (void)st;
    struct ufio_feature f;
    assert_int_equal(ufio_feature_decode(feat, 16, &f), 0);
    assert_int_equal(f.argsz, 16);
    assert_int_equal(f.flags, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE);
    assert_int_equal(f.data_len, 8);
    assert_ptr_equal(f.data, feat + 8);
    /* no data at all */
    assert_int_equal(ufio_feature_decode(feat, 8, &f), 0);
    assert_int_equal(f.data_len, 0);
    /* argsz is room for the reply, not the request's length */
    uint8_t p[16];
    memcpy(p, feat, 16);
    put32(p, 8);
    assert_int_equal(ufio_feature_decode(p, 16, &f), 0);
    put32(p, 0x100000);
    assert_int_equal(ufio_feature_decode(p, 8, &f), 0);
    assert_int_equal(f.argsz, 0x100000);
    /* every allowed operation mix, any feature number */
    static const uint32_t ops[] = {
        VFIO_DEVICE_FEATURE_GET, VFIO_DEVICE_FEATURE_SET, VFIO_DEVICE_FEATURE_PROBE,
        VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_PROBE, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE,
        VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE,
    };
    static const uint32_t feats[] = { 0, 1, 2, 6, 7, 8, 9, 0xffff };
    memcpy(p, feat, 16);
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        for (size_t j = 0; j < sizeof(feats) / sizeof(feats[0]); j++) {
            put32(p + 4, ops[i] | feats[j]);
            assert_int_equal(ufio_feature_decode(p, 16, &f), 0);
            assert_int_equal(f.flags & VFIO_DEVICE_FEATURE_MASK, feats[j]);
        }
}

static void test_feature_bad(void **st)
{
    (void)st;
    struct ufio_feature f;
    for (size_t n = 0; n < 8; n++)
        assert_int_equal(ufio_feature_decode(feat, n, &f), -EINVAL);
    uint8_t p[16];
    memcpy(p, feat, 16);
    for (uint32_t a = 0; a < 8; a++) {
        put32(p, a);
        assert_int_equal(ufio_feature_decode(p, 16, &f), -EINVAL);
    }
    memcpy(p, feat, 16);
    put32(p + 4, VFIO_DEVICE_FEATURE_MIGRATION); /* no operation */
    assert_int_equal(ufio_feature_decode(p, 16, &f), -EINVAL);
    put32(p + 4, 0);
    assert_int_equal(ufio_feature_decode(p, 16, &f), -EINVAL);
    put32(p + 4, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | 2); /* both without PROBE */
    assert_int_equal(ufio_feature_decode(p, 16, &f), -EINVAL);
    for (unsigned bit = 19; bit < 32; bit++) {
        put32(p + 4, VFIO_DEVICE_FEATURE_GET | 2 | (1u << bit));
        assert_int_equal(ufio_feature_decode(p, 16, &f), -EINVAL);
    }
}

static void test_feature_encode(void **st)
{
    (void)st;
    uint8_t out[9];
    memset(out, 0xee, sizeof(out));
    assert_int_equal(ufio_feature_head_encode(16, VFIO_DEVICE_FEATURE_GET | 2, out, sizeof(out)), 8);
    assert_memory_equal(out, feat, 8);
    assert_int_equal(out[8], 0xee);
    for (size_t cap = 0; cap < 8; cap++)
        assert_int_equal(ufio_feature_head_encode(16, 0x10002, out, cap), -ENOSPC);
}

static void test_mig_read_req(void **st)
{
    (void)st;
    /* argsz 8 + 0x1000, size 0x1000 */
    const uint8_t p[8] = { 0x08, 0x10, 0, 0, 0x00, 0x10, 0, 0 };
    struct ufio_mig_data m;
    assert_int_equal(ufio_mig_read_req_decode(p, 8, 1 << 20, &m), 0);
    assert_int_equal(m.argsz, 0x1008);
    assert_int_equal(m.size, 0x1000);
    assert_null(m.data);
    for (size_t n = 0; n < 8; n++)
        assert_int_equal(ufio_mig_read_req_decode(p, n, 1 << 20, &m), -EINVAL);
    uint8_t q[12] = { 0 };
    memcpy(q, p, 8);
    assert_int_equal(ufio_mig_read_req_decode(q, 9, 1 << 20, &m), -EINVAL);
    assert_int_equal(ufio_mig_read_req_decode(q, 12, 1 << 20, &m), -EINVAL);
    assert_int_equal(ufio_mig_read_req_decode(q, 8, 0x1000, &m), 0);
    assert_int_equal(ufio_mig_read_req_decode(q, 8, 0xfff, &m), -E2BIG);
    put32(q, 0x1007);                       /* argsz cannot hold the reply */
    assert_int_equal(ufio_mig_read_req_decode(q, 8, 1 << 20, &m), -EINVAL);
    put32(q, UINT32_MAX);
    assert_int_equal(ufio_mig_read_req_decode(q, 8, 1 << 20, &m), 0);
    /* size near UINT32_MAX: argsz + size math must not wrap */
    put32(q + 4, UINT32_MAX);
    assert_int_equal(ufio_mig_read_req_decode(q, 8, UINT64_MAX, &m), -EINVAL);
    put32(q + 4, UINT32_MAX - 8);
    assert_int_equal(ufio_mig_read_req_decode(q, 8, UINT64_MAX, &m), 0);
    put32(q + 4, 0);
    put32(q, 8);
    assert_int_equal(ufio_mig_read_req_decode(q, 8, 1 << 20, &m), 0);
}

static void test_mig_write_req(void **st)
{
    (void)st;
    const uint8_t p[12] = { 12, 0, 0, 0, 4, 0, 0, 0, 0xca, 0xfe, 0xba, 0xbe };
    struct ufio_mig_data m;
    assert_int_equal(ufio_mig_write_req_decode(p, 12, 1 << 20, &m), 0);
    assert_int_equal(m.argsz, 12);
    assert_int_equal(m.size, 4);
    assert_ptr_equal(m.data, p + 8);
    for (size_t n = 0; n < 12; n++)
        assert_int_equal(ufio_mig_write_req_decode(p, n, 1 << 20, &m), -EINVAL);
    uint8_t q[16] = { 0 };
    memcpy(q, p, 12);
    assert_int_equal(ufio_mig_write_req_decode(q, 13, 1 << 20, &m), -EINVAL);
    assert_int_equal(ufio_mig_write_req_decode(q, 12, 4, &m), 0);
    assert_int_equal(ufio_mig_write_req_decode(q, 12, 3, &m), -E2BIG);
    put32(q + 4, UINT32_MAX);
    assert_int_equal(ufio_mig_write_req_decode(q, 12, 1 << 20, &m), -E2BIG);
    put32(q + 4, 0);
    assert_int_equal(ufio_mig_write_req_decode(q, 8, 1 << 20, &m), 0);
    assert_int_equal(m.size, 0);
}

static void test_mig_read_reply(void **st)
{
    (void)st;
    const uint8_t p[12] = { 12, 0, 0, 0, 4, 0, 0, 0, 0xca, 0xfe, 0xba, 0xbe };
    struct ufio_mig_data m;
    assert_int_equal(ufio_mig_read_reply_decode(p, 12, 4, &m), 0);
    assert_int_equal(m.size, 4);
    assert_ptr_equal(m.data, p + 8);
    assert_int_equal(ufio_mig_read_reply_decode(p, 12, 4096, &m), 0); /* less than asked */
    assert_int_equal(ufio_mig_read_reply_decode(p, 12, 3, &m), -EINVAL); /* more than asked */
    for (size_t n = 0; n < 12; n++)
        assert_int_equal(ufio_mig_read_reply_decode(p, n, 4, &m), -EINVAL);
    uint8_t q[13] = { 0 };
    memcpy(q, p, 12);
    /* a body longer than asked is refused; one padded up to what was asked is not */
    assert_int_equal(ufio_mig_read_reply_decode(q, 13, 4, &m), -EINVAL);
    put32(q + 4, 2);
    assert_int_equal(ufio_mig_read_reply_decode(q, 12, 4, &m), 0);
    assert_int_equal(m.size, 2);
    assert_ptr_equal(m.data, q + 8);
    assert_int_equal(ufio_mig_read_reply_decode(q, 13, 5, &m), 0);
    assert_int_equal(m.size, 2);
    assert_int_equal(ufio_mig_read_reply_decode(q, 13, 4, &m), -EINVAL);
    put32(q + 4, 6); /* size beyond the body */
    assert_int_equal(ufio_mig_read_reply_decode(q, 13, 8, &m), -EINVAL);
    /* end of stream: size 0 */
    put32(q, 8);
    put32(q + 4, 0);
    assert_int_equal(ufio_mig_read_reply_decode(q, 8, 4, &m), 0);
    assert_int_equal(m.size, 0);
}

static void test_mig_encode(void **st)
{
    (void)st;
    struct ufio_mig_data m = { .argsz = 0x1008, .size = 0x1000 };
    const uint8_t want[8] = { 0x08, 0x10, 0, 0, 0x00, 0x10, 0, 0 };
    uint8_t out[9];
    memset(out, 0xee, sizeof(out));
    assert_int_equal(ufio_mig_data_head_encode(&m, out, sizeof(out)), 8);
    assert_memory_equal(out, want, 8);
    assert_int_equal(out[8], 0xee);
    for (size_t cap = 0; cap < 8; cap++)
        assert_int_equal(ufio_mig_data_head_encode(&m, out, cap), -ENOSPC);
    struct ufio_mig_data back;
    assert_int_equal(ufio_mig_read_req_decode(out, 8, 0x1000, &back), 0);
    assert_int_equal(back.argsz, m.argsz);
    assert_int_equal(back.size, m.size);
}

int main(void)
{
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    return 77; /* the hand-written byte arrays are little-endian */
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_feature_good),
        cmocka_unit_test(test_feature_bad),
        cmocka_unit_test(test_feature_encode),
        cmocka_unit_test(test_mig_read_req),
        cmocka_unit_test(test_mig_write_req),
        cmocka_unit_test(test_mig_read_reply),
        cmocka_unit_test(test_mig_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
