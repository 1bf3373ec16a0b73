/*
 * The region walker (lib/server/region.c), without a client: an access that
 * spans several owners (the device's callback, shared memory, the MSI-X table
 * and PBA the library emulates, config-space claims) is cut into one piece per
 * owner, in order, each piece going to its owner with the right offset, length
 * and bytes. Hand-picked cases, then random accesses against a byte-by-byte
 * model of the BAR.
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

#define BAR_SIZE 0x10000u
#define AREA_OFF 0x4000u
#define AREA_LEN 0x2000u
#define TABLE_OFF 0x8000u
#define NVEC 16u
#define TABLE_LEN (NVEC * 16)
#define PBA_OFF 0x9000u
#define PBA_LEN 8u

struct piece {
    uint64_t off;
    uint32_t len;
    bool write;
};
static struct piece calls[64];
static unsigned ncalls;
static uint8_t shadow[BAR_SIZE]; /* what the callback holds */
static uint64_t fail_off = UINT64_MAX;

static int bar_cb(struct ufio_dev *dev, void *opaque, unsigned region, uint64_t off, void *buf, uint32_t len,
                  bool is_write)
{
    assert_int_equal(region, 0);
    assert_true(ncalls < 64);
    calls[ncalls++] = (struct piece){ off, len, is_write };
    if (fail_off >= off && fail_off < off + len)
        return -EIO;
    if (is_write)
        memcpy(shadow + off, buf, len);
    else
        memcpy(buf, shadow + off, len);
    return (int)len; /* the byte-count convention, on purpose */
}

static struct ufio_dev *dev;
static uint8_t *area;

static int setup(void **st)
{
    static const struct ufio_pci_ids ids = { 0x5546, 0x0511, 0x5546, 0x0511, 0xff0000, 1 };
    assert_int_equal(ufio_dev_create("split", &ids, NULL, NULL, &dev), 0);
    assert_int_equal(ufio_dev_add_bar(dev, 0, BAR_SIZE, UFIO_BAR_MEM32, bar_cb, NULL), 0);
    void *mem;
    assert_int_equal(ufio_dev_add_mmap_area(dev, 0, AREA_OFF, AREA_LEN, &mem), 0);
    area = mem;
    assert_true(ufio_dev_add_cap_msix(dev, NVEC, 0, TABLE_OFF, 0, PBA_OFF) >= 0x40);
    for (unsigned i = 0; i < BAR_SIZE; i++)
        shadow[i] = (uint8_t)(i * 13 + 1);
    for (unsigned i = 0; i < AREA_LEN; i++)
        area[i] = (uint8_t)(i * 7 + 3);
    ncalls = 0;
    fail_off = UINT64_MAX;
    return 0;
}

static int teardown(void **st)
{
    ufio_dev_destroy(dev);
    return 0;
}

static void test_one_owner_is_one_piece(void **st)
{
    uint8_t b[256];
    assert_int_equal(region_access(dev, 0, 0x100, b, 200, false), 0);
    assert_int_equal(ncalls, 1);
    assert_int_equal(calls[0].off, 0x100);
    assert_int_equal(calls[0].len, 200);
    assert_memory_equal(b, shadow + 0x100, 200);
    /* inside the shared memory: the callback is not asked */
    assert_int_equal(region_access(dev, 0, AREA_OFF + 8, b, 64, false), 0);
    assert_int_equal(ncalls, 1);
    assert_memory_equal(b, area + 8, 64);
}

/* callback | area | callback | table | callback | PBA | callback, in one read */
static void test_a_read_across_every_owner(void **st)
{
    static uint8_t b[BAR_SIZE];
    uint64_t from = AREA_OFF - 16;
    uint32_t len = PBA_OFF + PBA_LEN + 16 - (uint32_t)from;
    assert_int_equal(region_access(dev, 0, from, b, len, false), 0);
    assert_int_equal(ncalls, 4);
    const struct piece want[4] = {
        { AREA_OFF - 16, 16, false },
        { AREA_OFF + AREA_LEN, TABLE_OFF - AREA_OFF - AREA_LEN, false },
        { TABLE_OFF + TABLE_LEN, PBA_OFF - TABLE_OFF - TABLE_LEN, false },
        { PBA_OFF + PBA_LEN, 16, false },
    };
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(calls[i].off, want[i].off);
        assert_int_equal(calls[i].len, want[i].len);
        assert_memory_equal(b + (calls[i].off - from), shadow + calls[i].off, calls[i].len);
    }
    assert_memory_equal(b + 16, area, AREA_LEN);
    /* the table as the library keeps it: vector control starts masked */
    for (unsigned v = 0; v < NVEC; v++) {
        const uint8_t *e = b + (TABLE_OFF - from) + 16 * v;
        assert_int_equal(e[12], 1);
        assert_int_equal(e[0] | e[4] | e[8] | e[13], 0);
    }
    for (unsigned i = 0; i < PBA_LEN; i++)
        assert_int_equal(b[PBA_OFF - from + i], 0);
}

/* A write is split the same way; each owner gets exactly its bytes. */
static void test_a_write_across_owners(void **st)
{
    uint8_t src[64];
    for (unsigned i = 0; i < sizeof(src); i++)
        src[i] = (uint8_t)(0xc0 + i);
    assert_int_equal(region_access(dev, 0, AREA_OFF + AREA_LEN - 32, src, 64, true), 0);
    assert_int_equal(ncalls, 1);
    assert_int_equal(calls[0].off, AREA_OFF + AREA_LEN);
    assert_int_equal(calls[0].len, 32);
    assert_memory_equal(area + AREA_LEN - 32, src, 32);
    assert_memory_equal(shadow + AREA_OFF + AREA_LEN, src + 32, 32);
}

/* The first failing piece ends the access with its error; pieces before it were done. */
static void test_a_failing_piece_stops_the_walk(void **st)
{
    static uint8_t src[16 + AREA_LEN + 32];
    memset(src, 0xee, sizeof(src));
    fail_off = AREA_OFF + AREA_LEN + 4;
    assert_int_equal(region_access(dev, 0, AREA_OFF - 16, src, 16 + AREA_LEN + 32, true), -EIO);
    assert_int_equal(ncalls, 2);
    assert_int_equal(area[0], 0xee); /* done before the failure */
    assert_int_equal(shadow[AREA_OFF - 16], 0xee);
    /* out of the BAR, or empty: refused before any piece */
    ncalls = 0;
    assert_int_equal(region_access(dev, 0, BAR_SIZE - 8, src, 16, false), -EINVAL);
    assert_int_equal(region_access(dev, 0, 0, src, 0, false), -EINVAL);
    assert_int_equal(region_access(dev, 1, 0, src, 4, false), -EINVAL);
    assert_int_equal(ncalls, 0);
}

/* ---- config space: claims split an access between the device and the library ---- */

static struct piece ccalls[8];
static unsigned nccalls;

static int claim_cb(struct ufio_dev *d, void *opaque, unsigned region, uint64_t off, void *buf, uint32_t len,
                    bool is_write)
{
    assert_int_equal(region, UFIO_PCI_CONFIG_REGION);
    ccalls[nccalls++] = (struct piece){ off, len, is_write };
    if (!is_write)
        memset(buf, (int)(uintptr_t)opaque, len);
    return 0;
}

static void test_config_claims(void **st)
{
    uint8_t body[30] = { 0 };
    int vnd = ufio_dev_add_cap_vendor(dev, body, sizeof(body));
    assert_true(vnd >= 0x40);
    uint32_t c1 = (uint32_t)vnd + 4, c2 = (uint32_t)vnd + 16;
    assert_int_equal(ufio_dev_claim_config(dev, c2, 8, claim_cb, (void *)(uintptr_t)0xbb), 0);
    assert_int_equal(ufio_dev_claim_config(dev, c1, 4, claim_cb, (void *)(uintptr_t)0xaa), 0);
    uint8_t b[32];
    /* [vnd, vnd+28): header (library), c1 (device), gap (library), c2 (device), tail (library) */
    assert_int_equal(region_access(dev, UFIO_PCI_CONFIG_REGION, (uint64_t)vnd, b, 28, false), 0);
    assert_int_equal(nccalls, 2);
    assert_int_equal(ccalls[0].off, c1);
    assert_int_equal(ccalls[0].len, 4);
    assert_int_equal(ccalls[1].off, c2);
    assert_int_equal(ccalls[1].len, 8);
    assert_int_equal(b[0], 0x09);      /* vendor-specific id, from the library */
    assert_int_equal(b[2], 3 + 30);    /* its length */
    assert_int_equal(b[4], 0xaa);
    assert_int_equal(b[7], 0xaa);
    assert_int_equal(b[8], 0);         /* the gap: the body the library holds */
    assert_int_equal(b[16], 0xbb);
    assert_int_equal(b[23], 0xbb);
    assert_int_equal(b[24], 0);
    /* a read that starts inside a claim */
    nccalls = 0;
    assert_int_equal(region_access(dev, UFIO_PCI_CONFIG_REGION, c1 + 2, b, 4, false), 0);
    assert_int_equal(nccalls, 1);
    assert_int_equal(ccalls[0].off, c1 + 2);
    assert_int_equal(ccalls[0].len, 2);
    assert_int_equal(b[2], 0);
}

/* ---- random accesses against a model --------------------------------------------------------- */

enum owner { CB, AREA, TABLE, PBA };

static enum owner owner(uint64_t b)
{
    if (b >= AREA_OFF && b < AREA_OFF + AREA_LEN)
        return AREA;
    if (b >= TABLE_OFF && b < TABLE_OFF + TABLE_LEN)
        return TABLE;
    if (b >= PBA_OFF && b < PBA_OFF + PBA_LEN)
        return PBA;
    return CB;
}

static uint8_t m_cb[BAR_SIZE], m_area[AREA_LEN], m_table[TABLE_LEN];

static void test_random_against_model(void **st)
{
    memcpy(m_cb, shadow, BAR_SIZE);
    memcpy(m_area, area, AREA_LEN);
    memset(m_table, 0, TABLE_LEN);
    for (unsigned v = 0; v < NVEC; v++)
        m_table[16 * v + 12] = 1;
    srandom(1202);
    static uint8_t buf[BAR_SIZE], want[BAR_SIZE];
    /* offsets near the boundaries are the interesting ones */
    const uint64_t edges[] = { 0, AREA_OFF, AREA_OFF + AREA_LEN, TABLE_OFF, TABLE_OFF + TABLE_LEN, PBA_OFF,
                               PBA_OFF + PBA_LEN, BAR_SIZE };
    for (int op = 0; op < 3000; op++) {
        uint64_t off = edges[random() % 8] + (uint64_t)(random() % 64) - 32;
        if (random() % 4 == 0)
            off = (uint64_t)random() % BAR_SIZE;
        if (off >= BAR_SIZE)
            off = BAR_SIZE - 1;
        uint32_t len = 1 + (uint32_t)(random() % (random() % 3 ? 64 : 0x6000));
        if (off + len > BAR_SIZE)
            len = BAR_SIZE - (uint32_t)off;
        bool write = random() % 2;
        for (uint32_t i = 0; i < len; i++)
            buf[i] = (uint8_t)random();
        ncalls = 0;
        assert_int_equal(region_access(dev, 0, off, buf, len, write), 0);
        /* the callback saw exactly the maximal runs of its own bytes, in order */
        unsigned k = 0;
        for (uint64_t b = off; b < off + len;) {
            uint64_t e = b;
            while (e < off + len && owner(e) == owner(b))
                e++;
            if (owner(b) == CB) {
                assert_true(k < ncalls);
                assert_int_equal(calls[k].off, b);
                assert_int_equal(calls[k].len, e - b);
                assert_int_equal(calls[k].write, write);
                k++;
            }
            b = e;
        }
        assert_int_equal(k, ncalls);
        /* and every byte went to (or came from) its owner */
        for (uint32_t i = 0; i < len; i++) {
            uint64_t b = off + i;
            switch (owner(b)) {
            case CB:
                if (write)
                    m_cb[b] = buf[i];
                want[i] = m_cb[b];
                break;
            case AREA:
                if (write)
                    m_area[b - AREA_OFF] = buf[i];
                want[i] = m_area[b - AREA_OFF];
                break;
            case TABLE: {
                uint64_t t = b - TABLE_OFF;
                if (write) /* vector control: only the mask bit; the rest of it reserved */
                    m_table[t] = t % 16 == 12 ? buf[i] & 1 : t % 16 > 12 ? 0 : buf[i];
                want[i] = m_table[t];
                break;
            }
            case PBA:
                want[i] = 0; /* nothing pending; writes ignored */
                break;
            }
        }
        if (!write)
            assert_memory_equal(buf, want, len);
    }
    /* the end state, read back whole */
    for (uint64_t b = 0; b < BAR_SIZE; b++)
        if (owner(b) == CB && shadow[b] != m_cb[b])
            fail_msg("callback byte %#llx is %#x, the model says %#x", (unsigned long long)b, shadow[b], m_cb[b]);
    assert_memory_equal(area, m_area, AREA_LEN);
    assert_int_equal(region_access(dev, 0, TABLE_OFF, buf, TABLE_LEN, false), 0);
    assert_memory_equal(buf, m_table, TABLE_LEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_owner_is_one_piece, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_read_across_every_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_write_across_owners, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_failing_piece_stops_the_walk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_against_model, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
