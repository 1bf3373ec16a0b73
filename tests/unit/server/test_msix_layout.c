/* Where the MSI-X helper puts table and PBA: pure arithmetic over BAR size, registers and mmap areas. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/msix_layout.h"

static uint32_t T, P;
static uint64_t S;

static int lay(unsigned nvec, uint64_t after, uint64_t bar, const struct ufio_sparse_area *a, uint32_t n)
{
    T = P = 0xdead;
    S = 0xdead;
    return msix_layout(nvec, after, bar, a, n, &T, &P, &S);
}

/* A BAR the helper adds: table at 0, PBA right after it, the smallest power of two >= 4 KiB. */
static void test_new_bar(void **st)
{
    assert_int_equal(lay(1, 0, 0, NULL, 0), 0);
    assert_int_equal(T, 0);
    assert_int_equal(P, 16);
    assert_int_equal(S, 4096);
    assert_int_equal(lay(4, 0, 0, NULL, 0), 0);
    assert_int_equal(P, 0x40);
    assert_int_equal(S, 4096);
    /* 252 entries + a 32-byte PBA = 4064 bytes: one page still */
    assert_int_equal(lay(252, 0, 0, NULL, 0), 0);
    assert_int_equal(P, 252 * 16);
    assert_int_equal(S, 4096);
    /* 255 entries (4080) + 32 bytes of PBA do not fit a page */
    assert_int_equal(lay(255, 0, 0, NULL, 0), 0);
    assert_int_equal(P, 255 * 16);
    assert_int_equal(S, 8192);
    assert_int_equal(lay(2048, 0, 0, NULL, 0), 0);
    assert_int_equal(P, 32768);
    assert_int_equal(S, 65536); /* 32 KiB table + 256 B PBA */
    assert_int_equal(P % 8, 0);
}

static void test_bad_arguments(void **st)
{
    assert_int_equal(lay(0, 0, 0, NULL, 0), -EINVAL);
    assert_int_equal(lay(2049, 0, 0, NULL, 0), -EINVAL);
    assert_int_equal(lay(4, 16, 0, NULL, 0), -EINVAL); /* content in a BAR nobody added */
    assert_int_equal(T, 0xdead);                      /* nothing written on failure */
}

/* After the device's registers: the next page boundary, PBA following. */
static void test_after_registers(void **st)
{
    assert_int_equal(lay(4, 0, 8192, NULL, 0), 0);
    assert_int_equal(T, 0);
    assert_int_equal(P, 0x40);
    assert_int_equal(S, 8192);
    assert_int_equal(lay(4, 1, 8192, NULL, 0), 0);
    assert_int_equal(T, 4096); /* never the page of a register */
    assert_int_equal(lay(4, 4096, 8192, NULL, 0), 0);
    assert_int_equal(T, 4096);
    assert_int_equal(P, 4096 + 0x40);
    assert_int_equal(lay(4, 4097, 8192, NULL, 0), -ENOSPC);
    /* exactly fits: 254 entries (4064 bytes) + 32 bytes of PBA end at 8192 */
    assert_int_equal(lay(254, 4000, 8192, NULL, 0), 0);
    assert_int_equal(T, 4096);
    assert_int_equal(P, 4096 + 4064);
    assert_int_equal(lay(255, 4000, 8192, NULL, 0), -ENOSPC); /* 4080 + 32 past 4096: 8208 > 8192 */
    assert_int_equal(T, 0xdead);
}

/* mmap areas are skipped: the table goes to the first boundary clear of all of them. */
static void test_skips_mmap_areas(void **st)
{
    const struct ufio_sparse_area a[] = { { 0x2000, 0x2000 }, { 0x0000, 0x1000 }, { 0x5000, 0x1000 } };
    assert_int_equal(lay(4, 0, 0x8000, a, 3), 0);
    assert_int_equal(T, 0x1000); /* the gap between areas 1 and 0 */
    assert_int_equal(lay(4, 0x1001, 0x8000, a, 3), 0);
    assert_int_equal(T, 0x4000); /* past area 0, before area 2 */
    assert_int_equal(lay(300, 0x1001, 0x8000, a, 3), 0);
    assert_int_equal(T, 0x6000); /* 300 entries (0x12c0) do not fit in 0x4000..0x5000 */
    const struct ufio_sparse_area whole[] = { { 0, 0x8000 } };
    assert_int_equal(lay(4, 0, 0x8000, whole, 1), -ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_bar),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_after_registers),
        cmocka_unit_test(test_skips_mmap_areas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
