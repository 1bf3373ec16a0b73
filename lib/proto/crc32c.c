/*
 * CRC-32C. The crc32 instruction has a latency of three cycles and a
 * throughput of one, so a single stream of it runs at a third of what the
 * CPU can do: here three streams checksum three adjacent blocks at once, and
 * the three CRCs are joined by the linearity of CRCs (below). The table that
 * joins them is the same portable code that is the fallback elsewhere.
 */
#include "proto/crc32c.h"

#include <pthread.h>
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
#endif

uint32_t ufio_crc32c_1stream(uint32_t crc, const void *buf, size_t len)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2"))
        return ~hw1(~crc, buf, len);
#endif
    return ufio_crc32c_portable(crc, buf, len);
}

uint32_t ufio_crc32c(uint32_t crc, const void *buf, size_t len)
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
