/* DMA_MAP, DMA_UNMAP and the server->client DMA_READ / DMA_WRITE (lib/proto/dma.c). */
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

/* argsz 32, flags R|W, offset 0x1000, addr 0x80000000, size 0x200000 */
static const uint8_t map_good[32] = {
    0x20, 0, 0, 0, 0x03, 0, 0, 0,
    0x00, 0x10, 0, 0, 0, 0, 0, 0,
    0x00, 0, 0, 0x80, 0, 0, 0, 0,
    0x00, 0, 0x20, 0, 0, 0, 0, 0,
};

static void test_dma_map_good(void **st)
{
    (void)st;
    struct ufio_dma_map m;
    assert_int_equal(ufio_dma_map_decode(map_good, 32, &m), 0);
    assert_int_equal(m.argsz, 32);
    assert_int_equal(m.flags, VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE);
    assert_int_equal(m.offset, 0x1000);
    assert_int_equal(m.addr, 0x80000000);
    assert_int_equal(m.size, 0x200000);
    uint8_t out[40];
    memset(out, 0xee, sizeof(out));
    assert_int_equal(ufio_dma_map_encode(&m, out, sizeof(out)), 32);
    assert_memory_equal(out, map_good, 32);
    assert_int_equal(out[32], 0xee);
    for (size_t cap = 0; cap < 32; cap++)
        assert_int_equal(ufio_dma_map_encode(&m, out, cap), -ENOSPC);
    /* every flag combination we know */
    uint8_t p[32];
    for (uint32_t f = 0; f <= 3; f++) {
        memcpy(p, map_good, 32);
        put32(p + 4, f);
        assert_int_equal(ufio_dma_map_decode(p, 32, &m), 0);
        assert_int_equal(m.flags, f);
    }
    /* the last byte of the address space is mappable */
    memcpy(p, map_good, 32);
    put64(p + 8, 0);
    put64(p + 16, UINT64_MAX - 0x1000);
    put64(p + 24, 0x1000);
    assert_int_equal(ufio_dma_map_decode(p, 32, &m), 0);
}

static void test_dma_map_bad(void **st)
{
    (void)st;
    struct ufio_dma_map m;
    uint8_t p[33];
    for (size_t n = 0; n < 32; n++)
        assert_int_equal(ufio_dma_map_decode(map_good, n, &m), -EINVAL);
    memcpy(p, map_good, 32);
    p[32] = 0;
    assert_int_equal(ufio_dma_map_decode(p, 33, &m), -EINVAL); /* longer payload */
    static const uint32_t argsz[] = { 0, 16, 31, 33, 64, UINT32_MAX };
    for (size_t i = 0; i < sizeof(argsz) / sizeof(argsz[0]); i++) {
        memcpy(p, map_good, 32);
        put32(p, argsz[i]);
        assert_int_equal(ufio_dma_map_decode(p, 32, &m), -EINVAL);
    }
    for (unsigned bit = 2; bit < 32; bit++) {
        memcpy(p, map_good, 32);
        put32(p + 4, 3u | (1u << bit));
        assert_int_equal(ufio_dma_map_decode(p, 32, &m), -EINVAL);
    }
    memcpy(p, map_good, 32);
    put64(p + 24, 0);
    assert_int_equal(ufio_dma_map_decode(p, 32, &m), -EINVAL); /* size 0 */
    memcpy(p, map_good, 32);
    put64(p + 16, UINT64_MAX - 0xfff);
    put64(p + 24, 0x1000);
    assert_int_equal(ufio_dma_map_decode(p, 32, &m), -EINVAL); /* ends at 2^64: wraps */
    put64(p + 16, 0x1000);
    put64(p + 24, UINT64_MAX);
    assert_int_equal(ufio_dma_map_decode(p, 32, &m), -EINVAL);
    memcpy(p, map_good, 32);
    put64(p + 8, UINT64_MAX - 0xff);
    assert_int_equal(ufio_dma_map_decode(p, 32, &m), -EINVAL); /* file offset wraps */
}

/* argsz 24, flags 0, addr 0x4000, size 0x1000 */
static const uint8_t unmap_good[24] = {
    0x18, 0, 0, 0, 0, 0, 0, 0,
    0x00, 0x40, 0, 0, 0, 0, 0, 0,
    0x00, 0x10, 0, 0, 0, 0, 0, 0,
};

static void test_dma_unmap(void **st)
{
    (void)st;
    struct ufio_dma_unmap u;
    uint8_t p[48];
    assert_int_equal(ufio_dma_unmap_decode(unmap_good, 24, &u), 0);
    assert_int_equal(u.argsz, 24);
    assert_int_equal(u.flags, 0);
    assert_int_equal(u.addr, 0x4000);
    assert_int_equal(u.size, 0x1000);
    uint8_t out[24];
    assert_int_equal(ufio_dma_unmap_encode(&u, out, sizeof(out)), 24);
    assert_memory_equal(out, unmap_good, 24);
    for (size_t cap = 0; cap < 24; cap++)
        assert_int_equal(ufio_dma_unmap_encode(&u, out, cap), -ENOSPC);
    for (size_t n = 0; n < 24; n++)
        assert_int_equal(ufio_dma_unmap_decode(unmap_good, n, &u), -EINVAL);
    memcpy(p, unmap_good, 24);
    p[24] = 0;
    assert_int_equal(ufio_dma_unmap_decode(p, 25, &u), -EINVAL);
    put32(p, 23);
    assert_int_equal(ufio_dma_unmap_decode(p, 24, &u), -EINVAL);
    put32(p, 0);
    assert_int_equal(ufio_dma_unmap_decode(p, 24, &u), -EINVAL);
    /* argsz above 24 is room for a reply: allowed */
    put32(p, 4096);
    assert_int_equal(ufio_dma_unmap_decode(p, 24, &u), 0);
    assert_int_equal(u.argsz, 4096);
    /* size 0 and wrap-around without FLAG_ALL */
    memcpy(p, unmap_good, 24);
    put64(p + 16, 0);
    assert_int_equal(ufio_dma_unmap_decode(p, 24, &u), -EINVAL);
    put64(p + 8, UINT64_MAX);
    put64(p + 16, 2);
    assert_int_equal(ufio_dma_unmap_decode(p, 24, &u), -EINVAL);
    /* FLAG_ALL: only with addr = size = 0 */
    memcpy(p, unmap_good, 24);
    put32(p + 4, VFIO_DMA_UNMAP_FLAG_ALL);
    assert_int_equal(ufio_dma_unmap_decode(p, 24, &u), -EINVAL);
    put64(p + 8, 0);
    assert_int_equal(ufio_dma_unmap_decode(p, 24, &u), -EINVAL);
    put64(p + 16, 0);
    assert_int_equal(ufio_dma_unmap_decode(p, 24, &u), 0);
    assert_int_equal(u.flags, VFIO_DMA_UNMAP_FLAG_ALL);
    put64(p + 8, 0x1000);
    assert_int_equal(ufio_dma_unmap_decode(p, 24, &u), -EINVAL);
    /* GET_DIRTY_BITMAP (migration v1): not supported, alone, with ALL, or with a bitmap after it */
    memcpy(p, unmap_good, 24);
    put32(p + 4, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP);
    assert_int_equal(ufio_dma_unmap_decode(p, 24, &u), -ENOTSUP);
    put32(p, 48);
    memset(p + 24, 0, 24);
    assert_int_equal(ufio_dma_unmap_decode(p, 48, &u), -ENOTSUP);
    put32(p + 4, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_ALL);
    assert_int_equal(ufio_dma_unmap_decode(p, 48, &u), -ENOTSUP);
    for (unsigned bit = 2; bit < 32; bit++) {
        memcpy(p, unmap_good, 24);
        put32(p + 4, 1u << bit);
        assert_int_equal(ufio_dma_unmap_decode(p, 24, &u), -EINVAL);
        put32(p + 4, (1u << bit) | VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP);
        assert_int_equal(ufio_dma_unmap_decode(p, 24, &u), -EINVAL);
    }
    /* round trip */
    struct ufio_dma_unmap in = { .argsz = 24, .flags = 0, .addr = 0xfffff000, .size = 0x1000 }, back;
    assert_int_equal(ufio_dma_unmap_encode(&in, out, sizeof(out)), 24);
    assert_int_equal(ufio_dma_unmap_decode(out, 24, &back), 0);
    assert_memory_equal(&back, &in, sizeof(in));
}

/* addr 0x1122334455667788, count 8, then 8 data bytes */
static const uint8_t access[24] = {
    0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
    0x08, 0, 0, 0, 0, 0, 0, 0,
    'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h',
};

static void test_dma_read_req(void **st)
{
    (void)st;
    struct ufio_dma_access a;
    assert_int_equal(ufio_dma_read_req_decode(access, 16, 1 << 20, &a), 0);
    assert_true(a.addr == 0x1122334455667788ull);
    assert_int_equal(a.count, 8);
    assert_null(a.data);
    for (size_t n = 0; n < 16; n++)
        assert_int_equal(ufio_dma_read_req_decode(access, n, 1 << 20, &a), -EINVAL);
    assert_int_equal(ufio_dma_read_req_decode(access, 17, 1 << 20, &a), -EINVAL);
    assert_int_equal(ufio_dma_read_req_decode(access, 24, 1 << 20, &a), -EINVAL);
    assert_int_equal(ufio_dma_read_req_decode(access, 16, 8, &a), 0);
    assert_int_equal(ufio_dma_read_req_decode(access, 16, 7, &a), -E2BIG);
    uint8_t p[16];
    memcpy(p, access, 16);
    put64(p + 8, 0);
    assert_int_equal(ufio_dma_read_req_decode(p, 16, 1 << 20, &a), -EINVAL);
    put64(p, UINT64_MAX - 3);
    put64(p + 8, 4);
    assert_int_equal(ufio_dma_read_req_decode(p, 16, 1 << 20, &a), -EINVAL);
    put64(p + 8, 3);
    assert_int_equal(ufio_dma_read_req_decode(p, 16, 1 << 20, &a), 0);
    put64(p + 8, UINT64_MAX);
    put64(p, 0);
    assert_int_equal(ufio_dma_read_req_decode(p, 16, UINT64_MAX, &a), 0);
    assert_int_equal(ufio_dma_read_req_decode(p, 16, 1 << 20, &a), -E2BIG);
}

static void test_dma_write_req(void **st)
{
    (void)st;
    struct ufio_dma_access a;
    assert_int_equal(ufio_dma_write_req_decode(access, 24, 1 << 20, &a), 0);
    assert_true(a.addr == 0x1122334455667788ull);
    assert_int_equal(a.count, 8);
    assert_ptr_equal(a.data, access + 16);
    for (size_t n = 0; n < 24; n++)
        assert_int_equal(ufio_dma_write_req_decode(access, n, 1 << 20, &a), -EINVAL);
    uint8_t p[32] = { 0 };
    memcpy(p, access, 24);
    assert_int_equal(ufio_dma_write_req_decode(p, 25, 1 << 20, &a), -EINVAL);
    assert_int_equal(ufio_dma_write_req_decode(p, 24, 7, &a), -E2BIG);
    /* a count far beyond the payload is a size problem first: no length math on it */
    put64(p + 8, UINT64_MAX);
    put64(p, 0);
    assert_int_equal(ufio_dma_write_req_decode(p, 24, 1 << 20, &a), -E2BIG);
    put64(p + 8, 0);
    assert_int_equal(ufio_dma_write_req_decode(p, 16, 1 << 20, &a), -EINVAL);
}

static void test_dma_read_reply(void **st)
{
    (void)st;
    struct ufio_dma_access want = { .addr = 0x1122334455667788ull, .count = 8 }, a;
    assert_int_equal(ufio_dma_read_reply_decode(access, 24, &want, &a), 0);
    assert_ptr_equal(a.data, access + 16);
    assert_int_equal(a.count, 8);
    for (size_t n = 0; n < 24; n++)
        assert_int_equal(ufio_dma_read_reply_decode(access, n, &want, &a), -EINVAL);
    uint8_t p[25] = { 0 };
    memcpy(p, access, 24);
    assert_int_equal(ufio_dma_read_reply_decode(p, 25, &want, &a), -EINVAL);
    want.addr++;
    assert_int_equal(ufio_dma_read_reply_decode(access, 24, &want, &a), -EINVAL);
    want.addr--;
    want.count = 4;
    assert_int_equal(ufio_dma_read_reply_decode(access, 24, &want, &a), -EINVAL);
    assert_int_equal(ufio_dma_read_reply_decode(access, 20, &want, &a), -EINVAL);
}

static void test_dma_write_reply(void **st)
{
    (void)st;
    struct ufio_dma_access want = { .addr = 0x1122334455667788ull, .count = 8 };
    /* spec: addr u64 + count u32 */
    const uint8_t spec[12] = { 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 8, 0, 0, 0 };
    assert_int_equal(ufio_dma_write_reply_decode(spec, 12, &want), 0);
    assert_int_equal(ufio_dma_write_reply_decode(access, 16, &want), 0); /* u64 count */
    assert_int_equal(ufio_dma_write_reply_decode(NULL, 0, &want), 0);    /* QEMU: header only */
    for (size_t n = 1; n < 12; n++)
        assert_int_equal(ufio_dma_write_reply_decode(access, n, &want), -EINVAL);
    for (size_t n = 13; n < 16; n++)
        assert_int_equal(ufio_dma_write_reply_decode(access, n, &want), -EINVAL);
    assert_int_equal(ufio_dma_write_reply_decode(access, 24, &want), -EINVAL);
    want.count = 7;
    assert_int_equal(ufio_dma_write_reply_decode(spec, 12, &want), -EINVAL);
    assert_int_equal(ufio_dma_write_reply_decode(access, 16, &want), -EINVAL);
    want.count = 8;
    want.addr = 0x1122334455667789ull;
    assert_int_equal(ufio_dma_write_reply_decode(spec, 12, &want), -EINVAL);
    assert_int_equal(ufio_dma_write_reply_decode(access, 16, &want), -EINVAL);
    /* a u32 count can only echo the low half of a larger transfer */
    want.addr = 0x1122334455667788ull;
    want.count = 0x100000008ull;
    assert_int_equal(ufio_dma_write_reply_decode(spec, 12, &want), 0);
    assert_int_equal(ufio_dma_write_reply_decode(access, 16, &want), -EINVAL);
}

static void test_dma_encoders(void **st)
{
    (void)st;
    struct ufio_dma_access a = { .addr = 0x1122334455667788ull, .count = 8 };
    uint8_t out[20];
    memset(out, 0xee, sizeof(out));
    assert_int_equal(ufio_dma_access_head_encode(&a, out, sizeof(out)), 16);
    assert_memory_equal(out, access, 16);
    assert_int_equal(out[16], 0xee);
    for (size_t cap = 0; cap < 16; cap++)
        assert_int_equal(ufio_dma_access_head_encode(&a, out, cap), -ENOSPC);
    memset(out, 0xee, sizeof(out));
    assert_int_equal(ufio_dma_write_reply_encode(&a, out, sizeof(out)), 12);
    const uint8_t spec[12] = { 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 8, 0, 0, 0 };
    assert_memory_equal(out, spec, 12);
    assert_int_equal(out[12], 0xee);
    for (size_t cap = 0; cap < 12; cap++)
        assert_int_equal(ufio_dma_write_reply_encode(&a, out, cap), -ENOSPC);
    assert_int_equal(ufio_dma_write_reply_decode(out, 12, &a), 0);
    /* head + data round trip */
    uint8_t msg[16 + 8];
    assert_int_equal(ufio_dma_access_head_encode(&a, msg, sizeof(msg)), 16);
    memcpy(msg + 16, "12345678", 8);
    struct ufio_dma_access back;
    assert_int_equal(ufio_dma_write_req_decode(msg, sizeof(msg), 8, &back), 0);
    assert_true(back.addr == a.addr);
    assert_memory_equal(back.data, "12345678", 8);
}

int main(void)
{
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    return 77; /* the hand-written byte arrays are little-endian */
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dma_map_good),
        cmocka_unit_test(test_dma_map_bad),
        cmocka_unit_test(test_dma_unmap),
        cmocka_unit_test(test_dma_read_req),
        cmocka_unit_test(test_dma_write_req),
        cmocka_unit_test(test_dma_read_reply),
        cmocka_unit_test(test_dma_write_reply),
        cmocka_unit_test(test_dma_encoders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
