/* REGION_READ, REGION_WRITE, REGION_WRITE_MULTI (lib/proto/region.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* offset 0x1122334455667788, region 7, count 4, data de ad be ef */
static const uint8_t acc[20] = {
    0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
    0x07, 0, 0, 0, 0x04, 0, 0, 0,
    0xde, 0xad, 0xbe, 0xef,
};

static void test_read_req(void **st)
{
    (void)st;
    struct ufio_region_access a;
    assert_int_equal(ufio_region_read_req_decode(acc, 16, 1 << 20, &a), 0);
    assert_true(a.offset == 0x1122334455667788ull);
    assert_int_equal(a.region, 7);
    assert_int_equal(a.count, 4);
    assert_null(a.data);
    for (size_t n = 0; n < 16; n++)
        assert_int_equal(ufio_region_read_req_decode(acc, n, 1 << 20, &a), -EINVAL);
    for (size_t n = 17; n <= 20; n++)
        assert_int_equal(ufio_region_read_req_decode(acc, n, 1 << 20, &a), -EINVAL);
    assert_int_equal(ufio_region_read_req_decode(acc, 16, 4, &a), 0);
    assert_int_equal(ufio_region_read_req_decode(acc, 16, 3, &a), -E2BIG);
    assert_int_equal(ufio_region_read_req_decode(acc, 16, 0, &a), -E2BIG);
    uint8_t p[16];
    memcpy(p, acc, 16);
    put32(p + 12, UINT32_MAX);
    assert_int_equal(ufio_region_read_req_decode(p, 16, 1 << 20, &a), -E2BIG);
    put32(p + 12, 0);
    assert_int_equal(ufio_region_read_req_decode(p, 16, 1 << 20, &a), 0);
    assert_int_equal(a.count, 0);
}

static void test_write_req(void **st)
{
    (void)st;
    struct ufio_region_access a;
    assert_int_equal(ufio_region_write_req_decode(acc, 20, 1 << 20, &a), 0);
    assert_true(a.offset == 0x1122334455667788ull);
    assert_int_equal(a.region, 7);
    assert_int_equal(a.count, 4);
    assert_ptr_equal(a.data, acc + 16);
    for (size_t n = 0; n < 20; n++)
        assert_int_equal(ufio_region_write_req_decode(acc, n, 1 << 20, &a), -EINVAL);
    uint8_t p[24] = { 0 };
    memcpy(p, acc, 20);
    assert_int_equal(ufio_region_write_req_decode(p, 21, 1 << 20, &a), -EINVAL);
    assert_int_equal(ufio_region_write_req_decode(p, 24, 1 << 20, &a), -EINVAL);
    assert_int_equal(ufio_region_write_req_decode(p, 20, 4, &a), 0);
    assert_int_equal(ufio_region_write_req_decode(p, 20, 3, &a), -E2BIG);
    /* the size limit is checked before the length: a huge count is E2BIG, not EINVAL */
    put32(p + 12, UINT32_MAX);
    assert_int_equal(ufio_region_write_req_decode(p, 20, 1 << 20, &a), -E2BIG);
    put32(p + 12, 0);
    assert_int_equal(ufio_region_write_req_decode(p, 16, 1 << 20, &a), 0);
    assert_int_equal(a.count, 0);
}

static void test_replies(void **st)
{
    (void)st;
    struct ufio_region_access want = { .offset = 0x1122334455667788ull, .region = 7, .count = 4 }, a;
    assert_int_equal(ufio_region_read_reply_decode(acc, 20, &want, &a), 0);
    assert_ptr_equal(a.data, acc + 16);
    assert_int_equal(a.count, 4);
    for (size_t n = 0; n < 20; n++)
        assert_int_equal(ufio_region_read_reply_decode(acc, n, &want, &a), -EINVAL);
    uint8_t p[21] = { 0 };
    memcpy(p, acc, 20);
    assert_int_equal(ufio_region_read_reply_decode(p, 21, &want, &a), -EINVAL);
    /* every echoed field must match the request */
    struct ufio_region_access w = want;
    w.offset++;
    assert_int_equal(ufio_region_read_reply_decode(acc, 20, &w, &a), -EINVAL);
    assert_int_equal(ufio_region_write_reply_decode(acc, 16, &w), -EINVAL);
    w = want;
    w.region = 6;
    assert_int_equal(ufio_region_read_reply_decode(acc, 20, &w, &a), -EINVAL);
    assert_int_equal(ufio_region_write_reply_decode(acc, 16, &w), -EINVAL);
    w = want;
    w.count = 3;
    assert_int_equal(ufio_region_read_reply_decode(acc, 19, &w, &a), -EINVAL);
    assert_int_equal(ufio_region_write_reply_decode(acc, 16, &w), -EINVAL);
    /* WRITE reply: the head alone */
    assert_int_equal(ufio_region_write_reply_decode(acc, 16, &want), 0);
    for (size_t n = 0; n < 16; n++)
        assert_int_equal(ufio_region_write_reply_decode(acc, n, &want), -EINVAL);
    for (size_t n = 17; n <= 20; n++)
        assert_int_equal(ufio_region_write_reply_decode(acc, n, &want), -EINVAL);
}

static void test_head_encode(void **st)
{
    (void)st;
    struct ufio_region_access a = { .offset = 0x1122334455667788ull, .region = 7, .count = 4 };
    uint8_t out[17];
    memset(out, 0xee, sizeof(out));
    assert_int_equal(ufio_region_access_head_encode(&a, out, sizeof(out)), 16);
    assert_memory_equal(out, acc, 16);
    assert_int_equal(out[16], 0xee);
    for (size_t cap = 0; cap < 16; cap++)
        assert_int_equal(ufio_region_access_head_encode(&a, out, cap), -ENOSPC);
    /* head + data decodes back to what went in */
    uint8_t msg[20];
    assert_int_equal(ufio_region_access_head_encode(&a, msg, sizeof(msg)), 16);
    memcpy(msg + 16, acc + 16, 4);
    struct ufio_region_access back;
    assert_int_equal(ufio_region_write_req_decode(msg, 20, 4, &back), 0);
    assert_true(back.offset == a.offset);
    assert_int_equal(back.region, a.region);
    assert_int_equal(back.count, a.count);
    assert_memory_equal(back.data, acc + 16, 4);
}

/* two entries: 4 bytes to region 0 @ 8, 8 bytes to region 1 @ 0x10 */
static const uint8_t wm[8 + 2 * 24] = {
    2, 0, 0, 0, 0, 0, 0, 0,
    0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0,
    0x10, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9,
};

static void test_write_multi_decode(void **st)
{
    (void)st;
    struct ufio_write_multi_entry *e = calloc(UFIO_WRITE_MULTI_MAX, sizeof(*e));
    assert_non_null(e);
    uint64_t n = 0;
    assert_int_equal(ufio_write_multi_decode(wm, sizeof(wm), &n, e), 0);
    assert_int_equal(n, 2);
    assert_int_equal(e[0].offset, 8);
    assert_int_equal(e[0].region, 0);
    assert_int_equal(e[0].count, 4);
    assert_memory_equal(e[0].data, ((const uint8_t[8]){ 1, 2, 3, 4, 0, 0, 0, 0 }), 8);
    assert_int_equal(e[1].offset, 0x10);
    assert_int_equal(e[1].region, 1);
    assert_int_equal(e[1].count, 8);
    assert_memory_equal(e[1].data, ((const uint8_t[8]){ 9, 9, 9, 9, 9, 9, 9, 9 }), 8);
    for (size_t k = 0; k < sizeof(wm); k++)
        assert_int_equal(ufio_write_multi_decode(wm, k, &n, e), -EINVAL);
    uint8_t *b = calloc(1, 8 + 24 * (UFIO_WRITE_MULTI_MAX + 1));
    assert_non_null(b);
    memcpy(b, wm, sizeof(wm));
    assert_int_equal(ufio_write_multi_decode(b, sizeof(wm) + 1, &n, e), -EINVAL);
    assert_int_equal(ufio_write_multi_decode(b, sizeof(wm) + 24, &n, e), -EINVAL);
    /* wr_cnt says one, two came */
    put64(b, 1);
    assert_int_equal(ufio_write_multi_decode(b, sizeof(wm), &n, e), -EINVAL);
    assert_int_equal(ufio_write_multi_decode(b, 8 + 24, &n, e), 0);
    assert_int_equal(n, 1);
    /* wr_cnt 0, above the limit, absurd */
    put64(b, 0);
    assert_int_equal(ufio_write_multi_decode(b, 8, &n, e), -EINVAL);
    /* one past the limit, every entry otherwise valid */
    put64(b, UFIO_WRITE_MULTI_MAX + 1);
    for (size_t i = 0; i <= UFIO_WRITE_MULTI_MAX; i++)
        put32(b + 8 + 24 * i + 12, 1);
    assert_int_equal(ufio_write_multi_decode(b, 8 + 24 * (UFIO_WRITE_MULTI_MAX + 1), &n, e), -EINVAL);
    put64(b, UINT64_MAX);
    assert_int_equal(ufio_write_multi_decode(b, sizeof(wm), &n, e), -EINVAL);
    put64(b, 0x0aaaaaaaaaaaaaabull); /* * 24 wraps to a small number */
    assert_int_equal(ufio_write_multi_decode(b, sizeof(wm), &n, e), -EINVAL);
    /* each count 1..8 */
    memcpy(b, wm, sizeof(wm));
    static const uint32_t bad_counts[] = { 0, 9, 16, UINT32_MAX };
    for (size_t i = 0; i < sizeof(bad_counts) / sizeof(bad_counts[0]); i++) {
        memcpy(b, wm, sizeof(wm));
        put32(b + 8 + 24 + 12, bad_counts[i]);
        assert_int_equal(ufio_write_multi_decode(b, sizeof(wm), &n, e), -EINVAL);
    }
    for (uint32_t c = 1; c <= 8; c++) {
        put32(b + 8 + 24 + 12, c);
        assert_int_equal(ufio_write_multi_decode(b, sizeof(wm), &n, e), 0);
        assert_int_equal(e[1].count, c);
    }
    /* the maximum */
    put64(b, UFIO_WRITE_MULTI_MAX);
    for (size_t i = 0; i < UFIO_WRITE_MULTI_MAX; i++) {
        uint8_t *x = b + 8 + 24 * i;
        put64(x, 4 * i);
        put32(x + 8, 2);
        put32(x + 12, 4);
        memset(x + 16, (int)i, 8);
    }
    assert_int_equal(ufio_write_multi_decode(b, 8 + 24 * UFIO_WRITE_MULTI_MAX, &n, e), 0);
    assert_int_equal(n, UFIO_WRITE_MULTI_MAX);
    assert_int_equal(e[199].offset, 4 * 199);
    assert_int_equal(e[199].data[7], 199);
    free(b);
    free(e);
}

static void test_write_multi_encode(void **st)
{
    (void)st;
    struct ufio_write_multi_entry in[2] = {
        { .offset = 8, .region = 0, .count = 4, .data = { 1, 2, 3, 4 } },
        { .offset = 0x10, .region = 1, .count = 8, .data = { 9, 9, 9, 9, 9, 9, 9, 9 } },
    };
    uint8_t out[sizeof(wm) + 1];
    memset(out, 0xee, sizeof(out));
    assert_int_equal(ufio_write_multi_encode(in, 2, out, sizeof(out)), sizeof(wm));
    assert_memory_equal(out, wm, sizeof(wm));
    assert_int_equal(out[sizeof(wm)], 0xee);
    for (size_t cap = 0; cap < sizeof(wm); cap++)
        assert_int_equal(ufio_write_multi_encode(in, 2, out, cap), -ENOSPC);
    assert_int_equal(ufio_write_multi_encode(in, 0, out, sizeof(out)), -EINVAL);
    assert_int_equal(ufio_write_multi_encode(in, UFIO_WRITE_MULTI_MAX + 1, out, sizeof(out)), -EINVAL);
    struct ufio_write_multi_entry back[UFIO_WRITE_MULTI_MAX];
    uint64_t n;
    assert_int_equal(ufio_write_multi_decode(out, sizeof(wm), &n, back), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(back, in, sizeof(in));
}

int main(void)
{
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    return 77; /* the hand-written byte arrays are little-endian */
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_req),
        cmocka_unit_test(test_write_req),
        cmocka_unit_test(test_replies),
        cmocka_unit_test(test_head_encode),
        cmocka_unit_test(test_write_multi_decode),
        cmocka_unit_test(test_write_multi_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
