/*
 * The DMA table's tree against a plain reference: random maps and unmaps of
 * non-overlapping ranges, every lookup and range walk compared, the tree
 * kept balanced (height within the AVL bound).
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/dev_internal.h"

#define SLOTS 4096 /* slot i is [i * 16 KiB, i * 16 KiB + size_i), size_i <= 12 KiB */

static uint64_t slot_size[SLOTS];
static bool present[SLOTS];

static uint64_t rnd(void)
{
    static uint64_t x = 0x9e3779b97f4a7c15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

/* the reference lower bound: first present slot whose end is above iova */
static int ref_lower_bound(uint64_t iova)
{
    for (int i = 0; i < SLOTS; i++)
        if (present[i] && (uint64_t)i * 16384 + slot_size[i] > iova)
            return i;
    return -1;
}

struct walk_ctx {
    int seen[SLOTS];
    int n;
};

static bool collect(struct ufio_dma_region *r, void *opaque)
{
    struct walk_ctx *c = opaque;
    c->seen[c->n++] = (int)(r->iova / 16384);
    return true;
}

static int cleared;
static void count_clear(struct ufio_dma_region *r, void *opaque) { cleared++; }

static void test_against_reference(void **st)
{
    struct ufio_dma_table t;
    memset(&t, 0, sizeof(t));
    size_t n = 0;
    for (int step = 0; step < 40000; step++) {
        int i = (int)(rnd() % SLOTS);
        if (!present[i]) {
            struct ufio_dma_region r = { .iova = (uint64_t)i * 16384, .size = 4096 * (1 + rnd() % 3), .prot = 3 };
            slot_size[i] = r.size;
            assert_int_equal(dma_tree_insert(&t, &r), 0);
            present[i] = true;
            n++;
        } else {
            struct ufio_dma_region *r = dma_tree_lower_bound(&t, (uint64_t)i * 16384);
            assert_non_null(r);
            assert_int_equal(r->iova, (uint64_t)i * 16384);
            dma_tree_remove(&t, r);
            present[i] = false;
            n--;
        }
        assert_int_equal(t.n, n);
        if (step % 97 == 0) {
            /* lookups at, inside, at the end of and between ranges */
            for (int k = 0; k < 64; k++) {
                uint64_t iova = rnd() % ((uint64_t)SLOTS * 16384 + 32768);
                int want = ref_lower_bound(iova);
                struct ufio_dma_region *r = dma_tree_lower_bound(&t, iova);
                if (want < 0) {
                    assert_null(r);
                } else {
                    assert_non_null(r);
                    assert_int_equal(r->iova, (uint64_t)want * 16384);
                    assert_int_equal(r->size, slot_size[want]);
                }
            }
            /* a range walk visits exactly the ranges meeting [from, to), in order */
            uint64_t from = rnd() % ((uint64_t)SLOTS * 16384), to = from + rnd() % (1u << 22);
            static struct walk_ctx c;
            c.n = 0;
            dma_tree_walk(&t, from, to, collect, &c);
            int k = 0;
            for (int s = 0; s < SLOTS; s++) {
                uint64_t a = (uint64_t)s * 16384, b = a + slot_size[s];
                if (present[s] && a < to && b > from) {
                    assert_true(k < c.n);
                    assert_int_equal(c.seen[k], s);
                    k++;
                }
            }
            assert_int_equal(k, c.n);
        }
    }
    /* balanced: an AVL tree of n nodes is at most 1.44 log2(n + 2) high */
    int h = dma_tree_height(&t);
    assert_true(h <= (int)(1.4405 * log2((double)n + 2)) + 1);
    cleared = 0;
    dma_tree_clear(&t, count_clear, NULL);
    assert_int_equal(cleared, (int)n);
    assert_null(t.root);
    assert_int_equal(t.n, 0);
}

/* 100,000 ascending maps (the worst case for a naive tree) stay logarithmic. */
static void test_ascending_100k(void **st)
{
    struct ufio_dma_table t;
    memset(&t, 0, sizeof(t));
    for (uint64_t i = 0; i < 100000; i++) {
        struct ufio_dma_region r = { .iova = i * 4096, .size = 4096 };
        assert_int_equal(dma_tree_insert(&t, &r), 0);
    }
    int h = dma_tree_height(&t);
    assert_true(h <= 25);
    assert_int_equal(dma_tree_lower_bound(&t, 99999 * 4096 + 17)->iova, 99999 * 4096);
    assert_null(dma_tree_lower_bound(&t, 100000 * 4096));
    for (uint64_t i = 0; i < 100000; i += 2)
        dma_tree_remove(&t, dma_tree_lower_bound(&t, i * 4096));
    assert_int_equal(t.n, 50000);
    assert_int_equal(dma_tree_lower_bound(&t, 0)->iova, 4096);
    dma_tree_clear(&t, count_clear, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_reference),
        cmocka_unit_test(test_ascending_100k),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
