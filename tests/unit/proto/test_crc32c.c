/* CRC-32C (lib/proto/crc32c.c): known vectors, and the three-stream and folding versions against the
 * portable table at every length around its block boundaries and at random lengths and
 * alignments, whole and in pieces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/crc32c.h"

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);
static uint32_t clmul_narrow(uint32_t c, const void *b, size_t n)
{
    return ufio_crc32c_clmul(c, b, n, false);
}

static uint32_t clmul_wide(uint32_t c, const void *b, size_t n)
{
    return ufio_crc32c_clmul(c, b, n, true);
}

/* every implementation this CPU can run (on one without PCLMUL, the fold entries
 * run the three streams: still checked, not skipped) */
static const crc_fn fns[] = { ufio_crc32c,         ufio_crc32c_portable, ufio_crc32c_1stream,
                              ufio_crc32c_3stream, clmul_narrow,         clmul_wide };
#define NFNS (sizeof(fns) / sizeof(fns[0]))

/* RFC 3720 (iSCSI), appendix B.4, and the catalogue's check value */
static void test_known_vectors(void **st)
{
    (void)st;
    uint8_t zeros[32] = { 0 }, ones[32], inc[32], dec[32];
    memset(ones, 0xff, sizeof(ones));
    for (int i = 0; i < 32; i++) {
        inc[i] = (uint8_t)i;
        dec[i] = (uint8_t)(31 - i);
    }
    for (size_t f = 0; f < sizeof(fns) / sizeof(fns[0]); f++) {
        assert_int_equal(fns[f](0, "123456789", 9), 0xe3069283u);
        assert_int_equal(fns[f](0, zeros, 32), 0x8a9136aau);
        assert_int_equal(fns[f](0, ones, 32), 0x62a8ab43u);
        assert_int_equal(fns[f](0, inc, 32), 0x46dd794eu);
        assert_int_equal(fns[f](0, dec, 32), 0x113fdb5cu);
        assert_int_equal(fns[f](0, "", 0), 0);
        assert_int_equal(fns[f](0x12345678u, "", 0), 0x12345678u);
    }
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

#define BIG (200u * 1024)

static uint8_t *random_buf(void)
{
    uint8_t *b = malloc(BIG + 64);
    assert_non_null(b);
    for (size_t i = 0; i < BIG + 64; i++)
        b[i] = (uint8_t)next();
    return b;
}

/* the lengths where the rounds change: 3 x 256 and 3 x 8192 bytes, and their multiples;
 * for the folds 256 (the smallest folded), 64 and 256 a round, 16 a block */
static void test_block_boundaries(void **st)
{
    (void)st;
    uint8_t *b = random_buf();
    static const size_t around[] = { 0, 1, 7, 8, 9, 767, 768, 769, 1536, 1543, 24575, 24576, 24577, 25343, 25344,
                                     25345, 49152, 49152 + 768, 73727, 73728, 73729, 255, 256, 257, 271, 272, 319, 320, 321,
                                     511, 512, 513, 527, 528, 575, 576, 4095, 4096, 4097, 1048576 / 8 };
    for (size_t i = 0; i < sizeof(around) / sizeof(around[0]); i++)
        for (size_t a = 0; a < 8; a++)
            for (size_t f = 0; f < NFNS; f++)
                assert_int_equal(fns[f](0, b + a, around[i]), ufio_crc32c_portable(0, b + a, around[i]));
    free(b);
}

static void test_random_lengths_alignments(void **st)
{
    (void)st;
    uint8_t *b = random_buf();
    for (int i = 0; i < 400; i++) {
        size_t a = next() % 64, len = next() % (BIG + 1);
        uint32_t seed = i % 3 ? (uint32_t)next() : 0;
        uint32_t want = ufio_crc32c_portable(seed, b + a, len);
        assert_int_equal(ufio_crc32c(seed, b + a, len), want);
        for (size_t f = 2; f < NFNS; f++)
            assert_int_equal(fns[f](seed, b + a, len), want);
        /* in two pieces, cut anywhere: a record checksummed as it arrives */
        size_t cut = len ? next() % len : 0;
        assert_int_equal(ufio_crc32c(ufio_crc32c(seed, b + a, cut), b + a + cut, len - cut), want);
    }
    free(b);
}

/* a single flipped bit anywhere in a long buffer changes the CRC (every stream is counted) */
static void test_every_stream_counts(void **st)
{
    (void)st;
    uint8_t *b = random_buf();
    uint32_t c0 = ufio_crc32c(0, b, BIG);
    for (size_t off = 0; off < BIG; off += 997) {
        b[off] ^= 0x10;
        assert_int_not_equal(ufio_crc32c(0, b, BIG), c0);
        uint32_t want = ufio_crc32c_portable(0, b, BIG);
        for (size_t f = 0; f < NFNS; f++)
            if (f != 1)
                assert_int_equal(fns[f](0, b, BIG), want);
        b[off] ^= 0x10;
    }
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_vectors),
        cmocka_unit_test(test_block_boundaries),
        cmocka_unit_test(test_random_lengths_alignments),
        cmocka_unit_test(test_every_stream_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
