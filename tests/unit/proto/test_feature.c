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
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

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


/* MIG_DEVICE_STATE data: exactly 8 bytes, state then data_fd. */
static void test_mig_state_codec(void **st)
{
    uint8_t b[8];
    const struct ufio_mig_state_data d = { 3, -1 };
    assert_int_equal(ufio_mig_state_encode(&d, b, sizeof(b)), 8);
    static const uint8_t want[8] = { 3, 0, 0, 0, 0xff, 0xff, 0xff, 0xff };
    assert_memory_equal(b, want, 8);
    assert_int_equal(ufio_mig_state_encode(&d, b, 7), -ENOSPC);
    struct ufio_mig_state_data got;
    assert_int_equal(ufio_mig_state_decode(b, 8, &got), 0);
    assert_int_equal(got.state, 3);
    assert_int_equal(got.data_fd, -1);
    assert_int_equal(ufio_mig_state_decode(b, 7, &got), -EINVAL);
    uint8_t nine[9] = { 0 };
    assert_int_equal(ufio_mig_state_decode(nine, 9, &got), -EINVAL);
}

/* DMA_LOGGING_START control data: bytes, and every rule of the decoder. */
static void test_log_start_codec(void **st)
{
    static const uint64_t r[2][2] = { { 0x10000, 0x4000 }, { 0x40000, 0x1000 } };
    uint8_t b[64];
    assert_int_equal(ufio_log_start_encode(4096, r, 2, b, sizeof(b)), 48);
    assert_int_equal(get64(b), 4096);
    assert_int_equal(get32(b + 8), 2);
    assert_int_equal(get32(b + 12), 0);
    assert_int_equal(get64(b + 16), 0x10000);
    assert_int_equal(get64(b + 24), 0x4000);
    assert_int_equal(get64(b + 40), 0x1000);
    struct ufio_log_start s;
    assert_int_equal(ufio_log_start_decode(b, 48, &s), 0);
    assert_int_equal(s.page_size, 4096);
    assert_int_equal(s.nranges, 2);
    uint64_t a, n;
    ufio_log_start_range(&s, 1, &a, &n);
    assert_int_equal(a, 0x40000);
    assert_int_equal(n, 0x1000);
    assert_int_equal(ufio_log_start_decode(b, 47, &s), -EINVAL);    /* length */
    assert_int_equal(ufio_log_start_decode(b, 15, &s), -EINVAL);
    assert_int_equal(ufio_log_start_encode(4096, r, 2, b, 47), -ENOSPC);
    /* no ranges = everything */
    assert_int_equal(ufio_log_start_encode(8192, NULL, 0, b, sizeof(b)), 16);
    assert_int_equal(ufio_log_start_decode(b, 16, &s), 0);
    /* page sizes: power of two, 4 KiB .. 1 GiB */
    put64(b, 2048);
    assert_int_equal(ufio_log_start_decode(b, 16, &s), -EINVAL);
    put64(b, 12288);
    assert_int_equal(ufio_log_start_decode(b, 16, &s), -EINVAL);
    put64(b, 2ull << 30);
    assert_int_equal(ufio_log_start_decode(b, 16, &s), -EINVAL);
    put64(b, 1ull << 30);
    assert_int_equal(ufio_log_start_decode(b, 16, &s), 0);
    /* too many ranges */
    put64(b, 4096);
    put32(b + 8, UFIO_LOG_MAX_RANGES + 1);
    assert_int_equal(ufio_log_start_decode(b, 16, &s), -E2BIG);
    /* empty, unaligned, wrapping, overlapping ranges */
    static const uint64_t empty[1][2] = { { 0x1000, 0 } }, odd[1][2] = { { 0x1800, 0x1000 } },
                          wrap[1][2] = { { 0xfffffffffffff000ull, 0x2000 } },
                          over[2][2] = { { 0x1000, 0x3000 }, { 0x3000, 0x1000 } },
                          touch[2][2] = { { 0x1000, 0x2000 }, { 0x3000, 0x1000 } };
    ufio_log_start_encode(4096, empty, 1, b, sizeof(b));
    assert_int_equal(ufio_log_start_decode(b, 32, &s), -EINVAL);
    ufio_log_start_encode(4096, odd, 1, b, sizeof(b));
    assert_int_equal(ufio_log_start_decode(b, 32, &s), -EINVAL);
    ufio_log_start_encode(4096, wrap, 1, b, sizeof(b));
    assert_int_equal(ufio_log_start_decode(b, 32, &s), -EOVERFLOW);
    ufio_log_start_encode(4096, over, 2, b, sizeof(b));
    assert_int_equal(ufio_log_start_decode(b, 48, &s), -EINVAL);
    ufio_log_start_encode(4096, touch, 2, b, sizeof(b));
    assert_int_equal(ufio_log_start_decode(b, 48, &s), 0); /* adjacent is fine */
}

/* DMA_LOGGING_REPORT request and the bitmap size it asks for. */
static void test_log_report_codec(void **st)
{
    uint8_t b[24];
    const struct ufio_log_report r = { 0x100000, 0x41000, 4096 };
    assert_int_equal(ufio_log_report_encode(&r, b, sizeof(b)), 24);
    assert_int_equal(get64(b), 0x100000);
    assert_int_equal(get64(b + 8), 0x41000);
    assert_int_equal(get64(b + 16), 4096);
    struct ufio_log_report got;
    assert_int_equal(ufio_log_report_decode(b, 24, &got), 0);
    assert_int_equal(got.length, 0x41000);
    /* 0x41 pages: two 64-bit words */
    assert_int_equal(ufio_log_bitmap_bytes(&got), 16);
    got.length = 4096 * 64;
    assert_int_equal(ufio_log_bitmap_bytes(&got), 8);
    got.length = 1; /* a partial page counts */
    assert_int_equal(ufio_log_bitmap_bytes(&got), 8);
    assert_int_equal(ufio_log_report_decode(b, 23, &got), -EINVAL);
    put64(b + 16, 4095);
    assert_int_equal(ufio_log_report_decode(b, 24, &got), -EINVAL);
    put64(b + 16, 4096);
    put64(b + 8, 0);
    assert_int_equal(ufio_log_report_decode(b, 24, &got), -EINVAL);
    put64(b, 0xfffffffffffff000ull);
    put64(b + 8, 0x2000);
    assert_int_equal(ufio_log_report_decode(b, 24, &got), -EINVAL);
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
        cmocka_unit_test(test_mig_state_codec),
        cmocka_unit_test(test_log_start_codec),
        cmocka_unit_test(test_log_report_codec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
