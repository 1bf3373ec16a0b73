/*
 * CRC-32C. The crc32 instruction has a latency of three cycles and a
 * throughput of one, so a single stream of it runs at a third of what the
 * CPU can do: here three streams checksum three adjacent blocks at once, and
 * the three CRCs are joined by the linearity of CRCs (below). The table that
 * joins them is the same portable code that is the fallback elsewhere.
 */
#include "proto/crc32c.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

/* The register update f(c, bytes) of the reflected CRC, without the initial
 * and final inversions: the crc32 instruction computes exactly this. Being
 * linear, f(c, A || B) = shift_|B|(f(c, A)) ^ f(0, B), where shift_n(c) =
 * f(c, n zero bytes) is a linear map of the 32 bits of c, applied through
 * four tables of 256 entries. The two block sizes: long buffers go in rounds
 * of 3 x 8 KiB, what is left in rounds of 3 x 256 bytes, then one stream. */
#define BLK_BIG 8192u
#define BLK_SMALL 256u

static uint32_t table[256];
static uint32_t shift_big[4][256], shift_small[4][256];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static uint32_t sw_update(uint32_t c, const uint8_t *p, size_t len)
{
    while (len--)
        c = table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return c;
}

static uint32_t sw_zeros(uint32_t c, size_t n)
{
    while (n--)
        c = table[c & 0xff] ^ (c >> 8);
    return c;
}

static void shift_init(uint32_t t[4][256], size_t n)
{
    uint32_t basis[32];
    for (unsigned i = 0; i < 32; i++)
        basis[i] = sw_zeros(1u << i, n);
    for (unsigned k = 0; k < 4; k++)
        for (unsigned b = 0; b < 256; b++) {
            uint32_t v = 0;
            for (unsigned j = 0; j < 8; j++)
                if (b >> j & 1)
                    v ^= basis[8 * k + j];
            t[k][b] = v;
        }
}

static void init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        table[i] = c;
    }
    shift_init(shift_big, BLK_BIG);
    shift_init(shift_small, BLK_SMALL);
}

uint32_t ufio_crc32c_portable(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&once, init);
    return ~sw_update(~crc, buf, len);
}

#if defined(__x86_64__)
static inline uint32_t shift(const uint32_t t[4][256], uint32_t c)
{
    return t[0][c & 0xff] ^ t[1][(c >> 8) & 0xff] ^ t[2][(c >> 16) & 0xff] ^ t[3][c >> 24];
}

__attribute__((target("sse4.2"))) static uint32_t hw1(uint32_t c32, const uint8_t *p, size_t len)
{
    uint64_t c = c32;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
    }
    c32 = (uint32_t)c;
    while (len--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}

__attribute__((target("sse4.2"))) static uint32_t hw3(uint32_t c, const uint8_t *p, size_t len)
{
    size_t blk = BLK_BIG;
    const uint32_t(*t)[256] = shift_big;
    for (int pass = 0; pass < 2; pass++) {
        for (; len >= 3 * blk; p += 3 * blk, len -= 3 * blk) {
            uint64_t a = c, b = 0, d = 0;
            const uint8_t *pb = p + blk, *pd = p + 2 * blk;
            for (size_t i = 0; i < blk; i += 8) {
                uint64_t x, y, z;
                memcpy(&x, p + i, 8);
                memcpy(&y, pb + i, 8);
                memcpy(&z, pd + i, 8);
                a = __builtin_ia32_crc32di(a, x);
                b = __builtin_ia32_crc32di(b, y);
                d = __builtin_ia32_crc32di(d, z);
            }
            /* f(c, A B D) = shift(shift(f(c, A)) ^ f(0, B)) ^ f(0, D) */
            c = shift(t, shift(t, (uint32_t)a) ^ (uint32_t)b) ^ (uint32_t)d;
        }
        blk = BLK_SMALL;
        t = shift_small;
    }
    return hw1(c, p, len);
}

/*
 * Folding by carry-less multiplication. With a 16-byte block A = lo || hi
 * (reflected: byte 0's low bit is the highest power) followed by n bytes,
 * only A(x) x^(8n) mod P matters, so A can be replaced by a value congruent
 * to it, XORed into the block n bytes later: lo(x) (x^(8n+64) mod P) ^
 * hi(x) (x^(8n) mod P), two 64 x 64 carry-less products. In the reflected
 * bit order a product comes out one place short, hence the constants are
 * x^(e-1) mod P (the CRC register's representation of it, which sw_pow()
 * computes bit by bit) in the upper half of a 64-bit lane. What is left at
 * the end, one 16-byte value congruent to everything before the tail, goes
 * through the crc32 instruction with the tail.
 */
static uint32_t sw_pow(unsigned e)
{
    uint32_t c = 1u << 31; /* x^0 */
    while (e--)
        c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    return c;
}

/* the pair of constants that folds a 16-byte block n bytes forward */
static void fold_k(uint64_t k[2], unsigned n)
{
    k[0] = (uint64_t)sw_pow(8 * n + 63) << 32;
    k[1] = (uint64_t)sw_pow(8 * n - 1) << 32;
}

static uint64_t k16[2], k64[2], k256[2];
static pthread_once_t once_fold = PTHREAD_ONCE_INIT;

static void init_fold(void)
{
    fold_k(k16, 16);
    fold_k(k64, 64);
    fold_k(k256, 256);
}

#include <immintrin.h>

#define CLMUL_MIN 256u /* below this the fold's set-up costs more than it saves */

__attribute__((target("sse4.2,pclmul"))) static inline __m128i fold16(__m128i x, __m128i k)
{
    return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}

/* len >= 64; c is the register (inverted) value so far */
__attribute__((target("sse4.2,pclmul"))) static uint32_t clmul_tail(__m128i x, const uint8_t *p, size_t len)
{
    const __m128i K16 = _mm_loadu_si128((const __m128i *)k16);
    for (; len >= 16; p += 16, len -= 16)
        x = _mm_xor_si128(fold16(x, K16), _mm_loadu_si128((const __m128i *)p));
    uint64_t c = __builtin_ia32_crc32di(0, (uint64_t)_mm_cvtsi128_si64(x));
    c = __builtin_ia32_crc32di(c, (uint64_t)_mm_extract_epi64(x, 1));
    return hw1((uint32_t)c, p, len);
}

/* four 16-byte accumulators, 64 bytes a round; len >= CLMUL_MIN */
__attribute__((target("sse4.2,pclmul"))) static uint32_t hw_clmul(uint32_t c, const uint8_t *p, size_t len)
{
    const __m128i K64 = _mm_loadu_si128((const __m128i *)k64);
    const __m128i K16 = _mm_loadu_si128((const __m128i *)k16);
    __m128i x0 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)p), _mm_cvtsi32_si128((int)c));
    __m128i x1 = _mm_loadu_si128((const __m128i *)(p + 16));
    __m128i x2 = _mm_loadu_si128((const __m128i *)(p + 32));
    __m128i x3 = _mm_loadu_si128((const __m128i *)(p + 48));
    p += 64;
    len -= 64;
    for (; len >= 64; p += 64, len -= 64) {
        x0 = _mm_xor_si128(fold16(x0, K64), _mm_loadu_si128((const __m128i *)p));
        x1 = _mm_xor_si128(fold16(x1, K64), _mm_loadu_si128((const __m128i *)(p + 16)));
        x2 = _mm_xor_si128(fold16(x2, K64), _mm_loadu_si128((const __m128i *)(p + 32)));
        x3 = _mm_xor_si128(fold16(x3, K64), _mm_loadu_si128((const __m128i *)(p + 48)));
    }
    __m128i x = _mm_xor_si128(fold16(x0, K16), x1);
    x = _mm_xor_si128(fold16(x, K16), x2);
    x = _mm_xor_si128(fold16(x, K16), x3);
    return clmul_tail(x, p, len);
}

#define AVX512_T "sse4.2,pclmul,avx512f,avx512vl,avx512bw,vpclmulqdq"

__attribute__((target(AVX512_T))) static inline __m512i fold64z(__m512i x, __m512i k)
{
    return _mm512_xor_si512(_mm512_clmulepi64_epi128(x, k, 0x00), _mm512_clmulepi64_epi128(x, k, 0x11));
}

/* the same with four 64-byte accumulators (four blocks each), 256 bytes a round */
__attribute__((target(AVX512_T))) static uint32_t hw_vclmul(uint32_t c, const uint8_t *p, size_t len)
{
    const __m512i K256 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)k256));
    const __m512i K64 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)k64));
    const __m128i K16 = _mm_loadu_si128((const __m128i *)k16);
    __m512i z0 = _mm512_xor_si512(_mm512_loadu_si512(p), _mm512_castsi128_si512(_mm_cvtsi32_si128((int)c)));
    __m512i z1 = _mm512_loadu_si512(p + 64);
    __m512i z2 = _mm512_loadu_si512(p + 128);
    __m512i z3 = _mm512_loadu_si512(p + 192);
    p += 256;
    len -= 256;
    for (; len >= 256; p += 256, len -= 256) {
        z0 = _mm512_xor_si512(fold64z(z0, K256), _mm512_loadu_si512(p));
        z1 = _mm512_xor_si512(fold64z(z1, K256), _mm512_loadu_si512(p + 64));
        z2 = _mm512_xor_si512(fold64z(z2, K256), _mm512_loadu_si512(p + 128));
        z3 = _mm512_xor_si512(fold64z(z3, K256), _mm512_loadu_si512(p + 192));
    }
    __m512i z = _mm512_xor_si512(fold64z(z0, K64), z1);
    z = _mm512_xor_si512(fold64z(z, K64), z2);
    z = _mm512_xor_si512(fold64z(z, K64), z3);
    __m128i x = _mm512_castsi512_si128(z);
    x = _mm_xor_si128(fold16(x, K16), _mm512_extracti32x4_epi32(z, 1));
    x = _mm_xor_si128(fold16(x, K16), _mm512_extracti32x4_epi32(z, 2));
    x = _mm_xor_si128(fold16(x, K16), _mm512_extracti32x4_epi32(z, 3));
    return clmul_tail(x, p, len);
}

static bool has_clmul(void)
{
    return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul");
}

static bool has_vclmul(void)
{
    return has_clmul() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("vpclmulqdq");
}
#endif

uint32_t ufio_crc32c_1stream(uint32_t crc, const void *buf, size_t len)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2"))
        return ~hw1(~crc, buf, len);
#endif
    return ufio_crc32c_portable(crc, buf, len);
}

uint32_t ufio_crc32c_3stream(uint32_t crc, const void *buf, size_t len)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2")) {
        if (len < 3 * BLK_SMALL)
            return ~hw1(~crc, buf, len);
        pthread_once(&once, init);
        return ~hw3(~crc, buf, len);
    }
#endif
    return ufio_crc32c_portable(crc, buf, len);
}

uint32_t ufio_crc32c_clmul(uint32_t crc, const void *buf, size_t len, bool wide)
{
#if defined(__x86_64__)
    if (has_clmul() && len >= CLMUL_MIN) {
        pthread_once(&once_fold, init_fold);
        if (wide && has_vclmul())
            return ~hw_vclmul(~crc, buf, len);
        return ~hw_clmul(~crc, buf, len);
    }
#endif
    (void)wide;
    return ufio_crc32c_3stream(crc, buf, len);
}

uint32_t ufio_crc32c(uint32_t crc, const void *buf, size_t len)
{
#if defined(__x86_64__)
    /* Only the 512-bit fold beats the three streams here (AMD EPYC, a 1 MiB
     * buffer in cache: 55 GiB/s against 27; the 128-bit fold with four
     * accumulators: 14), so the 128-bit one is not chosen by itself. */
    if (len >= CLMUL_MIN && has_vclmul()) {
        pthread_once(&once_fold, init_fold);
        return ~hw_vclmul(~crc, buf, len);
    }
#endif
    return ufio_crc32c_3stream(crc, buf, len);
}
