/* Per-command payload codecs (lib/proto/dma.c, device.c, region.c, feature.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"

static void le32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void le64(uint8_t *p, uint64_t v) { le32(p, (uint32_t)v); le32(p + 4, (uint32_t)(v >> 32)); }

/* every strict prefix of a valid payload must be refused */
#define ALL_TRUNCATIONS_FAIL(call_with_len, full)          \
    for (size_t n_ = 0; n_ < (full); n_++)                \
        assert_true((call_with_len(n_)) < 0)

static void test_dma_map(void **st)
{
    uint8_t p[32];
    le32(p, 32); le32(p + 4, 3); le64(p + 8, 0x1000); le64(p + 16, 0x80000000); le64(p + 24, 0x200000);
    struct ufio_dma_map m;
    assert_int_equal(ufio_dma_map_decode(p, 32, &m), 0);
    assert_int_equal(m.flags, 3);
    assert_int_equal(m.offset, 0x1000);
    assert_int_equal(m.addr, 0x80000000);
    assert_int_equal(m.size, 0x200000);
    uint8_t out[32];
    assert_int_equal(ufio_dma_map_encode(&m, out, sizeof(out)), 32);
    assert_memory_equal(out, p, 32);
#define DM(n) ufio_dma_map_decode(p, n, &m)
    ALL_TRUNCATIONS_FAIL(DM, 32);
    le32(p, 31);
    assert_int_equal(DM(32), -EINVAL);
    le32(p, 32); le32(p + 4, 4);
    assert_int_equal(DM(32), -EINVAL);
    le32(p + 4, 1); le64(p + 24, 0);
    assert_int_equal(DM(32), -EINVAL);
    le64(p + 16, UINT64_MAX - 10); le64(p + 24, 0x1000);
    assert_int_equal(DM(32), -EINVAL);
    assert_int_equal(ufio_dma_map_encode(&m, out, 31), -ENOSPC);
}

static void test_dma_unmap(void **st)
{
    uint8_t p[24];
    struct ufio_dma_unmap u;
    le32(p, 24); le32(p + 4, 0); le64(p + 8, 0x4000); le64(p + 16, 0x1000);
    assert_int_equal(ufio_dma_unmap_decode(p, 24, &u), 0);
    assert_int_equal(u.addr, 0x4000);
    le32(p + 4, VFIO_DMA_UNMAP_FLAG_ALL);
    assert_int_equal(ufio_dma_unmap_decode(p, 24, &u), -EINVAL);
    le64(p + 8, 0); le64(p + 16, 0);
    assert_int_equal(ufio_dma_unmap_decode(p, 24, &u), 0);
    le32(p + 4, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP);
    assert_int_equal(ufio_dma_unmap_decode(p, 24, &u), -ENOTSUP);
    le32(p + 4, 8);
    assert_int_equal(ufio_dma_unmap_decode(p, 24, &u), -EINVAL);
    le32(p + 4, 0);
    assert_int_equal(ufio_dma_unmap_decode(p, 24, &u), -EINVAL); /* size 0 */
}

static void test_region_info_caps(void **st)
{
    struct ufio_region_info ri, back;
    memset(&ri, 0, sizeof(ri));
    ri.index = 2;
    ri.flags = 7;
    ri.size = 0x10000;
    ri.nr_areas = 2;
    ri.areas[0] = (struct ufio_sparse_area){ 0, 0x1000 };
    ri.areas[1] = (struct ufio_sparse_area){ 0x8000, 0x8000 };
    ri.has_type = true;
    ri.type = 0x80001234;
    ri.subtype = 5;
    uint8_t buf[256];
    ssize_t n = ufio_region_info_encode(&ri, 256, buf, sizeof(buf));
    assert_int_equal(n, 32 + 8 + 8 + 32 + 16);
    assert_int_equal(buf[0], n);               /* argsz = full length */
    assert_int_equal(buf[4], 0xf);             /* CAPS added */
    assert_int_equal(buf[12], 32);             /* cap_offset */
    assert_int_equal(buf[32], 1);              /* SPARSE_MMAP id */
    assert_int_equal(buf[36], 32 + 48);        /* next -> TYPE cap */
    assert_int_equal(buf[40], 2);              /* nr_areas */
    assert_int_equal(ufio_region_info_decode(buf, (size_t)n, &back), 0);
    assert_int_equal(back.nr_areas, 2);
    assert_int_equal(back.areas[1].offset, 0x8000);
    assert_true(back.has_type);
    assert_int_equal(back.type, 0x80001234);
    assert_int_equal(back.subtype, 5);
    /* too small an argsz: 32 bytes with the needed size (cap_offset stays 32 for QEMU) */
    assert_int_equal(ufio_region_info_encode(&ri, 32, buf, sizeof(buf)), 32);
    assert_int_equal(buf[0], n);
    assert_int_equal(buf[12], 32);
    assert_int_equal(ufio_region_info_decode(buf, 32, &back), 0);
    assert_int_equal(back.nr_areas, 0);
    assert_true(back.argsz > 32);
    /* malformed chains */
    n = ufio_region_info_encode(&ri, 256, buf, sizeof(buf));
    uint8_t bad[256];
    memcpy(bad, buf, (size_t)n);
    le32(bad + 36, 32);                        /* next points back: loop */
    assert_int_equal(ufio_region_info_decode(bad, (size_t)n, &back), -EINVAL);
    memcpy(bad, buf, (size_t)n);
    le32(bad + 12, 8);                         /* cap inside the fixed struct */
    assert_int_equal(ufio_region_info_decode(bad, (size_t)n, &back), -EINVAL);
    memcpy(bad, buf, (size_t)n);
    le32(bad + 40, 65);                        /* too many areas */
    assert_int_equal(ufio_region_info_decode(bad, (size_t)n, &back), -E2BIG);
    memcpy(bad, buf, (size_t)n);
    le64(bad + 64, 0xf000);                    /* area 1 past the region */
    assert_int_equal(ufio_region_info_decode(bad, (size_t)n, &back), -EINVAL);
    /* a cut answer either fails or is read as "ask again with argsz" without caps */
    for (size_t k = 32; k < (size_t)n; k++) {
        int r = ufio_region_info_decode(buf, k, &back);
        assert_true(r < 0 || (back.nr_areas == 0 && !back.has_type && back.argsz > k));
    }
    for (size_t k = 0; k < 32; k++)
        assert_int_equal(ufio_region_info_decode(buf, k, &back), -EINVAL);
    uint32_t argsz, index;
    uint8_t req[32] = { 0 };
    le32(req, 16);
    assert_int_equal(ufio_region_info_req_decode(req, 32, &argsz, &index), -EINVAL);
    le32(req, 32);
    le32(req + 8, 7);
    assert_int_equal(ufio_region_info_req_decode(req, 32, &argsz, &index), 0);
    assert_int_equal(index, 7);
}

static void test_io_fds(void **st)
{
    struct ufio_io_fds f, back;
    memset(&f, 0, sizeof(f));
    f.index = 0;
    f.count = 2;
    f.e[0] = (struct ufio_io_fd_entry){ .offset = 0x100, .size = 4, .fd_index = 0, .datamatch = 7 };
    f.e[1] = (struct ufio_io_fd_entry){ .offset = 0x200, .size = 4, .fd_index = 1, .type = 1 };
    uint8_t buf[256];
    ssize_t n = ufio_io_fds_encode(&f, 256, buf, sizeof(buf));
    assert_int_equal(n, 16 + 80);
    assert_int_equal(ufio_io_fds_decode(buf, (size_t)n, 2, &back), 0);
    assert_int_equal(back.e[1].offset, 0x200);
    assert_int_equal(back.e[0].datamatch, 7);
    assert_int_equal(ufio_io_fds_decode(buf, (size_t)n, 1, &back), -EINVAL); /* fd_index 1 >= 1 fd */
    /* a peer with 48-byte entries (libvfio-user's shadow layout): stride from argsz */
    uint8_t wide[16 + 96] = { 0 };
    le32(wide, 16 + 96); le32(wide + 12, 2);
    le64(wide + 16, 0x10); le64(wide + 16 + 48, 0x20); le32(wide + 16 + 48 + 16, 1);
    assert_int_equal(ufio_io_fds_decode(wide, sizeof(wide), 2, &back), 0);
    assert_int_equal(back.e[1].offset, 0x20);
    assert_int_equal(back.e[1].fd_index, 1);
    le32(wide, 16 + 60); /* stride 30 < 40 */
    assert_int_equal(ufio_io_fds_decode(wide, sizeof(wide), 2, &back), -EINVAL);
    assert_int_equal(ufio_io_fds_encode(&f, 16, buf, sizeof(buf)), 16);
}

static void test_set_irqs(void **st)
{
    uint8_t p[32];
    struct ufio_irq_set s;
    le32(p, 20); le32(p + 4, 0x24); le32(p + 8, 2); le32(p + 12, 0); le32(p + 16, 3);
    assert_int_equal(ufio_irq_set_decode(p, 20, 3, &s), 0);
    assert_int_equal(ufio_irq_set_decode(p, 20, 0, &s), 0);   /* zero fds: de-assign */
    assert_int_equal(ufio_irq_set_decode(p, 20, 2, &s), -EINVAL);
    le32(p, 23); le32(p + 4, 0x22); p[20] = 1; p[21] = 0; p[22] = 1;
    assert_int_equal(ufio_irq_set_decode(p, 23, 0, &s), 0);
    assert_int_equal(s.bools[2], 1);
    assert_int_equal(ufio_irq_set_decode(p, 23, 1, &s), -EINVAL);
    le32(p, 20); le32(p + 4, 0x21); le32(p + 16, 0);
    assert_int_equal(ufio_irq_set_decode(p, 20, 0, &s), 0);   /* disable index */
    le32(p + 12, 1);
    assert_int_equal(ufio_irq_set_decode(p, 20, 0, &s), -EINVAL);
    le32(p + 12, 0); le32(p + 4, 0x11);
    assert_int_equal(ufio_irq_set_decode(p, 20, 0, &s), -EINVAL); /* count 0 needs TRIGGER */
    le32(p + 8, 4); le32(p + 4, 0x09); le32(p + 16, 1);
    assert_int_equal(ufio_irq_set_decode(p, 20, 0, &s), -EINVAL); /* REQ: trigger only */
    le32(p + 8, 5); le32(p + 4, 0x21);
    assert_int_equal(ufio_irq_set_decode(p, 20, 0, &s), -EINVAL);
    le32(p + 8, 2); le32(p + 4, 0x61);
    assert_int_equal(ufio_irq_set_decode(p, 20, 0, &s), -EINVAL);
    le32(p + 4, 0x21); le32(p + 12, 0xffffffff); le32(p + 16, 2);
    assert_int_equal(ufio_irq_set_decode(p, 20, 0, &s), -EINVAL);
    for (size_t n = 0; n < 20; n++)
        assert_int_equal(ufio_irq_set_decode(p, n, 0, &s), -EINVAL);
    struct ufio_irq_set e = { .flags = 0x24, .index = 2, .start = 1, .count = 2 };
    uint8_t out[20];
    assert_int_equal(ufio_irq_set_encode(&e, out, sizeof(out)), 20);
    assert_int_equal(out[0], 20);
    assert_int_equal(out[12], 1);
}

static void test_region_access(void **st)
{
    uint8_t p[24];
    struct ufio_region_access a, got;
    le64(p, 0x10); le32(p + 8, 2); le32(p + 12, 4); le32(p + 16, 0xdeadbeef);
    assert_int_equal(ufio_region_write_req_decode(p, 20, 1 << 20, &a), 0);
    assert_int_equal(a.offset, 0x10);
    assert_int_equal(a.count, 4);
    assert_memory_equal(a.data, p + 16, 4);
    assert_int_equal(ufio_region_write_req_decode(p, 19, 1 << 20, &a), -EINVAL);
    assert_int_equal(ufio_region_write_req_decode(p, 21, 1 << 20, &a), -EINVAL);
    assert_int_equal(ufio_region_write_req_decode(p, 20, 2, &a), -E2BIG);
    assert_int_equal(ufio_region_read_req_decode(p, 16, 1 << 20, &a), 0);
    assert_int_equal(ufio_region_read_req_decode(p, 20, 1 << 20, &a), -EINVAL);
    struct ufio_region_access want = { .offset = 0x10, .region = 2, .count = 4 };
    assert_int_equal(ufio_region_read_reply_decode(p, 20, &want, &got), 0);
    want.region = 3;
    assert_int_equal(ufio_region_read_reply_decode(p, 20, &want, &got), -EINVAL);
    want.region = 2;
    assert_int_equal(ufio_region_write_reply_decode(p, 16, &want), 0);
    assert_int_equal(ufio_region_write_reply_decode(p, 20, &want), -EINVAL);
    uint8_t out[16];
    assert_int_equal(ufio_region_access_head_encode(&want, out, 16), 16);
    assert_memory_equal(out, p, 16);
}

static void test_write_multi(void **st)
{
    struct ufio_write_multi_entry e[UFIO_WRITE_MULTI_MAX], in[2] = {
        { .offset = 8, .region = 0, .count = 4, .data = { 1, 2, 3, 4 } },
        { .offset = 0x10, .region = 1, .count = 8, .data = { 9, 9, 9, 9, 9, 9, 9, 9 } },
    };
    uint8_t buf[8 + 2 * 24];
    assert_int_equal(ufio_write_multi_encode(in, 2, buf, sizeof(buf)), sizeof(buf));
    uint64_t n;
    assert_int_equal(ufio_write_multi_decode(buf, sizeof(buf), &n, e), 0);
    assert_int_equal(n, 2);
    assert_int_equal(e[1].region, 1);
    assert_memory_equal(e[0].data, in[0].data, 4);
    assert_int_equal(ufio_write_multi_decode(buf, sizeof(buf) - 1, &n, e), -EINVAL);
    buf[8 + 24 + 12] = 9; /* count 9 */
    assert_int_equal(ufio_write_multi_decode(buf, sizeof(buf), &n, e), -EINVAL);
    le64(buf, 201);
    assert_int_equal(ufio_write_multi_decode(buf, sizeof(buf), &n, e), -EINVAL);
}

static void test_feature_and_mig_data(void **st)
{
    uint8_t p[16];
    struct ufio_feature f;
    le32(p, 16); le32(p + 4, 0x10001); le64(p + 8, 0);
    assert_int_equal(ufio_feature_decode(p, 16, &f), 0);
    assert_int_equal(f.data_len, 8);
    le32(p + 4, 0x30001);
    assert_int_equal(ufio_feature_decode(p, 16, &f), -EINVAL);
    le32(p + 4, 0x70001);
    assert_int_equal(ufio_feature_decode(p, 16, &f), 0);
    le32(p + 4, 0x1);
    assert_int_equal(ufio_feature_decode(p, 16, &f), -EINVAL);
    le32(p + 4, 0x110001);
    assert_int_equal(ufio_feature_decode(p, 16, &f), -EINVAL);
    le32(p, 4); le32(p + 4, 0x10001);
    assert_int_equal(ufio_feature_decode(p, 16, &f), -EINVAL);
    struct ufio_mig_data m;
    le32(p, 8 + 100); le32(p + 4, 100);
    assert_int_equal(ufio_mig_read_req_decode(p, 8, 1 << 20, &m), 0);
    assert_int_equal(ufio_mig_read_req_decode(p, 8, 50, &m), -E2BIG);
    le32(p, 50);
    assert_int_equal(ufio_mig_read_req_decode(p, 8, 1 << 20, &m), -EINVAL);
    le32(p, 12); le32(p + 4, 4);
    assert_int_equal(ufio_mig_write_req_decode(p, 12, 1 << 20, &m), 0);
    assert_int_equal(ufio_mig_write_req_decode(p, 13, 1 << 20, &m), -EINVAL);
    assert_int_equal(ufio_mig_read_reply_decode(p, 12, 4, &m), 0);
    assert_int_equal(ufio_mig_read_reply_decode(p, 12, 3, &m), -EINVAL);
}

static void test_dma_access(void **st)
{
    uint8_t p[24];
    struct ufio_dma_access a, got;
    le64(p, 0x1000); le64(p + 8, 8); le64(p + 16, 0x0102030405060708ull);
    assert_int_equal(ufio_dma_read_req_decode(p, 16, 1 << 20, &a), 0);
    assert_int_equal(ufio_dma_write_req_decode(p, 24, 1 << 20, &a), 0);
    assert_int_equal(a.data[0], 8);
    assert_int_equal(ufio_dma_write_req_decode(p, 23, 1 << 20, &a), -EINVAL);
    assert_int_equal(ufio_dma_read_req_decode(p, 16, 4, &a), -E2BIG);
    struct ufio_dma_access want = { .addr = 0x1000, .count = 8 };
    assert_int_equal(ufio_dma_read_reply_decode(p, 24, &want, &got), 0);
    assert_int_equal(ufio_dma_write_reply_decode(p, 0, &want), 0);   /* QEMU: header only */
    assert_int_equal(ufio_dma_write_reply_decode(p, 12, &want), 0);  /* spec: u32 count */
    assert_int_equal(ufio_dma_write_reply_decode(p, 16, &want), 0);
    assert_int_equal(ufio_dma_write_reply_decode(p, 8, &want), -EINVAL);
    uint8_t out[12];
    assert_int_equal(ufio_dma_write_reply_encode(&want, out, sizeof(out)), 12);
    assert_memory_equal(out, p, 12);
    le64(p + 8, 0);
    assert_int_equal(ufio_dma_read_req_decode(p, 16, 1 << 20, &a), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dma_map),
        cmocka_unit_test(test_dma_unmap),
        cmocka_unit_test(test_region_info_caps),
        cmocka_unit_test(test_io_fds),
        cmocka_unit_test(test_set_irqs),
        cmocka_unit_test(test_region_access),
        cmocka_unit_test(test_write_multi),
        cmocka_unit_test(test_feature_and_mig_data),
        cmocka_unit_test(test_dma_access),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
