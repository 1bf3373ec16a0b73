/*
 * Dirty-page logging arithmetic (lib/server/dma.c), without a client: marks
 * from device writes, reports at the client's page size over any range, and
 * which logged pages a report clears. Hand-picked cases, then random ones
 * against a model that decides each bit byte by byte (not by the interval
 * arithmetic the library uses).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/dev_internal.h"

#define KB 1024ull
#define MB (1024 * KB)

static struct ufio_dev *dev;

static int setup(void **st)
{
    static const struct ufio_pci_ids ids = { 0x5546, 0x0d17, 0x5546, 0x0d17, 0xff0000, 1 };
    return ufio_dev_create("dirty", &ids, NULL, NULL, &dev);
}

static int teardown(void **st)
{
    ufio_dev_destroy(dev);
    dev = NULL;
    return 0;
}

static void map(uint64_t iova, uint64_t size)
{
    struct ufio_dma_map m = { .argsz = 32, .flags = VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE,
                              .addr = iova, .size = size };
    assert_int_equal(dma_map(dev, &m, -1), 0); /* no fd: no memory, just the table */
}

/* Reports [iova, iova+len) at pgsize into bm (zeroed here); returns bm. */
static uint64_t *report(uint64_t iova, uint64_t len, uint64_t pgsize)
{
    static uint64_t bm[4096];
    memset(bm, 0, sizeof(bm));
    assert_int_equal(dma_log_report(dev, iova, len, pgsize, bm), 0);
    return bm;
}

static void test_marks_and_exact_reports(void **st)
{
    map(1 * MB, 64 * KB);
    assert_int_equal(dma_log_report(dev, 1 * MB, 4 * KB, 4 * KB, (uint64_t[1]){ 0 }), -EINVAL); /* not logging */
    assert_int_equal(dma_log_start(dev, 4 * KB), 0);
    assert_int_equal(dma_log_start(dev, 4 * KB), -EBUSY);
    /* one byte dirties its page; a write over a page boundary dirties both */
    ufio_dev_dma_mark_dirty(dev, 1 * MB + 5, 1);
    ufio_dev_dma_mark_dirty(dev, 1 * MB + 3 * 4 * KB - 1, 2);
    uint64_t *bm = report(1 * MB, 64 * KB, 4 * KB);
    assert_int_equal(bm[0], 0x1 | 0x4 | 0x8);
    /* the report cleared them: nothing now */
    bm = report(1 * MB, 64 * KB, 4 * KB);
    assert_int_equal(bm[0], 0);
    /* outside the mapping, nothing is marked and nothing reported */
    ufio_dev_dma_mark_dirty(dev, 2 * MB, 4 * KB);
    bm = report(1 * MB - 16 * KB, 96 * KB, 4 * KB);
    assert_int_equal(bm[0], 0);
    dma_log_stop(dev);
    assert_int_equal(dma_log_report(dev, 1 * MB, 4 * KB, 4 * KB, (uint64_t[1]){ 0 }), -EINVAL);
}

/* Reported at a bigger page than logged: pages merge; at a smaller one: each logged page fans out. */
static void test_report_page_sizes(void **st)
{
    map(0, 256 * KB);
    assert_int_equal(dma_log_start(dev, 4 * KB), 0);
    ufio_dev_dma_mark_dirty(dev, 20 * KB, 1);  /* log page 5 */
    ufio_dev_dma_mark_dirty(dev, 200 * KB, 1); /* log page 50 */
    uint64_t *bm = report(0, 256 * KB, 64 * KB);
    assert_int_equal(bm[0], 0x1 | 0x8); /* 20K in 64K-page 0, 200K in page 3 */
    dma_log_stop(dev);
    assert_int_equal(dma_log_start(dev, 64 * KB), 0);
    ufio_dev_dma_mark_dirty(dev, 70 * KB, 1); /* log page 1 = [64K, 128K) */
    bm = report(0, 256 * KB, 4 * KB);
    assert_int_equal(bm[0], 0xffffull << 16); /* 4K pages 16..31 */
    bm = report(0, 256 * KB, 4 * KB);
    assert_int_equal(bm[0], 0);
}

/* A logged page only partly inside the reported range is reported for its part and kept dirty:
 * reporting it again is safe, losing it is not. */
static void test_straddling_page_stays_dirty(void **st)
{
    map(0, 256 * KB);
    assert_int_equal(dma_log_start(dev, 64 * KB), 0);
    ufio_dev_dma_mark_dirty(dev, 64 * KB, 64 * KB); /* log page 1 whole */
    uint64_t *bm = report(96 * KB, 128 * KB, 4 * KB); /* [96K, 224K): the upper half of page 1 */
    assert_int_equal(bm[0], 0xff);                  /* 4K pages 96K..128K, relative to 96K */
    bm = report(0, 256 * KB, 64 * KB);
    assert_int_equal(bm[0], 0x2); /* still dirty */
    bm = report(0, 256 * KB, 64 * KB);
    assert_int_equal(bm[0], 0); /* the whole page was inside that one: cleared */
    /* an unaligned range and a partial last report page */
    ufio_dev_dma_mark_dirty(dev, 0, 1);
    bm = report(60 * KB + 512, 8 * KB, 4 * KB); /* touches log page 0's last 3.5K and page 1 */
    assert_int_equal(bm[0], 0x1);
    bm = report(0, 64 * KB, 4 * KB);
    assert_int_equal(bm[0], 0xffff); /* page 0 was only partly inside: still there */
}

/* Marks and reports cross mappings and holes; a region's log page may run past its end. */
static void test_across_mappings(void **st)
{
    map(0, 12 * KB);        /* 3 pages; at a 16K log page, its one page runs past the end */
    map(12 * KB, 16 * KB);  /* adjacent: its log page 0 is [12K, 28K) (pages count from its start) */
    map(64 * KB, 4 * KB);   /* after a hole */
    assert_int_equal(dma_log_start(dev, 16 * KB), 0);
    ufio_dev_dma_mark_dirty(dev, 8 * KB, 12 * KB); /* [8K, 20K): region 0's page, region 1's first page */
    uint64_t *bm = report(0, 128 * KB, 4 * KB);
    /* region 0: its log page covers [0, 12K): 4K pages 0..2; region 1: [12K, 28K): pages 3..6 */
    assert_int_equal(bm[0], 0x7 | 0x78);
    /* a mark over a hole marks what is mapped after it too */
    ufio_dev_dma_mark_dirty(dev, 24 * KB, 64 * KB);
    bm = report(0, 128 * KB, 4 * KB);
    assert_int_equal(bm[0], 0x78 | 1ull << 16);
    /* a mark wholly in a hole, or past every mapping, marks nothing */
    ufio_dev_dma_mark_dirty(dev, 32 * KB, 32 * KB);
    ufio_dev_dma_mark_dirty(dev, 1 * MB, 4 * KB);
    bm = report(0, 2 * MB, 4 * KB);
    for (int w = 0; w < 8; w++)
        assert_int_equal(bm[w], 0);
}

/* A big logged mapping with one dirty page at its end: reported at the right bit, quickly
 * (clean words are skipped). */
static void test_big_mapping(void **st)
{
    map(1ull << 40, 64ull << 30); /* 64 GiB at 1 TiB: a 2 MiB bitmap */
    assert_int_equal(dma_log_start(dev, 4 * KB), 0);
    uint64_t last = (1ull << 40) + (64ull << 30) - 4 * KB;
    ufio_dev_dma_mark_dirty(dev, last, 4 * KB);
    static uint64_t bm[2];
    assert_int_equal(dma_log_report(dev, last - 64 * KB, 128 * KB, 4 * KB, bm), 0);
    assert_int_equal(bm[0], 1ull << 16);
    /* the whole mapping at 1 GiB pages: bit 63 */
    ufio_dev_dma_mark_dirty(dev, last, 1);
    bm[0] = bm[1] = 0;
    assert_int_equal(dma_log_report(dev, 1ull << 40, 64ull << 30, 1ull << 30, bm), 0);
    assert_int_equal(bm[0], 1ull << 63);
}

/* Bitmaps the client's mapping sizes would make too big are refused, at start and at map time. */
static void test_bitmap_cap(void **st)
{
    map(0, 8ull << 40); /* 8 TiB at 4 KiB pages: exactly 256 MiB of bitmap, the cap */
    map(16ull << 40, 4 * KB);
    assert_int_equal(dma_log_start(dev, 4 * KB), -E2BIG);
    assert_false(dev->dma.logging);
    assert_int_equal(dma_log_start(dev, 1ull << 30), 0); /* at 1 GiB pages it is small */
    struct ufio_dma_map m = { .argsz = 32, .flags = 3, .addr = 32ull << 40, .size = 4 * KB };
    assert_int_equal(dma_map(dev, &m, -1), 0);
}

/* ---- random cases against a model ----------------------------------------------------------- */

#define SPACE (1 * MB)   /* the model's address space */
#define ATOM 512u        /* its granule: every address and length below is a multiple */
#define NATOMS (SPACE / ATOM)

struct mreg {
    uint64_t iova, size;
    bool dirty[SPACE / (4 * KB) + 1]; /* per logged page */
};
static struct mreg R[8];
static unsigned NR;
static uint64_t LP;

static uint64_t rnd(uint64_t n)
{
    return (uint64_t)random() % n;
}

static struct mreg *mreg_at(uint64_t a)
{
    for (unsigned i = 0; i < NR; i++)
        if (a >= R[i].iova && a < R[i].iova + R[i].size)
            return &R[i];
    return NULL;
}

static void model_mark(uint64_t iova, uint64_t len)
{
    /* byte by byte (atom by atom): whatever is mapped in the range */
    for (uint64_t a = iova; a < iova + len; a += ATOM) {
        struct mreg *r = mreg_at(a);
        if (r)
            r->dirty[(a - r->iova) / LP] = true;
    }
}

static void model_report(uint64_t iova, uint64_t len, uint64_t pg, uint64_t *bm)
{
    for (uint64_t a = iova; a < iova + len; a += ATOM) {
        struct mreg *r = mreg_at(a);
        if (r && r->dirty[(a - r->iova) / LP]) {
            uint64_t k = (a - iova) / pg;
            bm[k / 64] |= 1ull << (k % 64);
        }
    }
    /* a logged page wholly inside the range is clean afterwards */
    for (unsigned i = 0; i < NR; i++)
        for (uint64_t p = 0; p * LP < R[i].size; p++) {
            uint64_t a = R[i].iova + p * LP;
            if (a >= iova && a + LP <= iova + len)
                R[i].dirty[p] = false;
        }
}

static void test_random_against_model(void **st)
{
    srandom(20261202);
    for (int round = 0; round < 60; round++) {
        teardown(NULL);
        assert_int_equal(setup(NULL), 0);
        memset(R, 0, sizeof(R));
        NR = 0;
        /* up to 6 mappings with gaps, page-aligned */
        uint64_t at = rnd(4) * 4 * KB;
        while (NR < 6 && at < SPACE - 8 * KB) {
            uint64_t size = (1 + rnd(24)) * 4 * KB;
            if (at + size > SPACE)
                size = (SPACE - at) / (4 * KB) * 4 * KB;
            R[NR].iova = at;
            R[NR].size = size;
            map(at, size);
            NR++;
            at += size + rnd(3) * 4 * KB; /* sometimes adjacent */
        }
        LP = (4 * KB) << rnd(4); /* 4K..32K */
        assert_int_equal(dma_log_start(dev, LP), 0);
        for (int op = 0; op < 40; op++) {
            if (rnd(2)) {
                uint64_t a = rnd(NATOMS) * ATOM, n = (1 + rnd(64)) * ATOM;
                if (a + n > SPACE)
                    n = SPACE - a;
                ufio_dev_dma_mark_dirty(dev, a, n);
                model_mark(a, n);
            } else {
                uint64_t pg = (4 * KB) << rnd(4);
                uint64_t a = rnd(NATOMS) * ATOM, n = (1 + rnd(NATOMS / 2)) * ATOM;
                if (a + n > SPACE)
                    n = SPACE - a;
                uint64_t *got = report(a, n, pg);
                static uint64_t want[4096];
                memset(want, 0, sizeof(want));
                model_report(a, n, pg, want);
                size_t words = (n / pg + 1 + 63) / 64;
                for (size_t w = 0; w < words; w++)
                    if (got[w] != want[w])
                        fail_msg("round %d op %d: report [%#llx,+%#llx) at %#llx, log page %#llx: word %zu "
                                 "is %#llx, model says %#llx",
                                 round, op, (unsigned long long)a, (unsigned long long)n, (unsigned long long)pg,
                                 (unsigned long long)LP, w, (unsigned long long)got[w], (unsigned long long)want[w]);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_marks_and_exact_reports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_page_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_straddling_page_stays_dirty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_across_mappings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bitmap_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_against_model, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
