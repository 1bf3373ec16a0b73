/*
 * DEVICE_GET_INFO, DEVICE_GET_REGION_INFO with its capability chain,
 * DEVICE_GET_REGION_IO_FDS, DEVICE_GET_IRQ_INFO, DEVICE_SET_IRQS
 * (lib/proto/device.c).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* ---- DEVICE_GET_INFO ---------------------------------------------------- */

static void test_device_info(void **st)
{
    (void)st;
    /* argsz 16, flags RESET|PCI, 9 regions, 5 irqs */
    const uint8_t p[20] = { 16, 0, 0, 0, 3, 0, 0, 0, 9, 0, 0, 0, 5, 0, 0, 0, 0xff, 0xff, 0xff, 0xff };
    struct ufio_device_info i;
    assert_int_equal(ufio_device_info_decode(p, 16, &i), 0);
    assert_int_equal(i.argsz, 16);
    assert_int_equal(i.flags, VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI);
    assert_int_equal(i.num_regions, 9);
    assert_int_equal(i.num_irqs, 5);
    assert_int_equal(ufio_device_info_decode(p, 20, &i), 0); /* extra bytes ignored */
    for (size_t n = 0; n < 16; n++)
        assert_int_equal(ufio_device_info_decode(p, n, &i), -EINVAL);
    uint8_t q[16];
    memcpy(q, p, 16);
    put32(q, 15);
    assert_int_equal(ufio_device_info_decode(q, 16, &i), -EINVAL);
    put32(q, 0);
    assert_int_equal(ufio_device_info_decode(q, 16, &i), -EINVAL);
    put32(q, 1000);
    assert_int_equal(ufio_device_info_decode(q, 16, &i), 0);
    struct ufio_device_info e = { .argsz = 16, .flags = 3, .num_regions = 9, .num_irqs = 5 };
    uint8_t out[17];
    memset(out, 0xee, sizeof(out));
    assert_int_equal(ufio_device_info_encode(&e, out, sizeof(out)), 16);
    assert_memory_equal(out, p, 16);
    assert_int_equal(out[16], 0xee);
    for (size_t cap = 0; cap < 16; cap++)
        assert_int_equal(ufio_device_info_encode(&e, out, cap), -ENOSPC);
}

/* ---- DEVICE_GET_REGION_INFO ---------------------------------------------- */

/*
 * Region 2, R|W|MMAP|CAPS, size 0x10000 at offset 2 << 40; a SPARSE_MMAP cap
 * at 32 with areas [0, 0x1000) and [0x8000, 0x10000), then a TYPE cap at 80.
 */
static const uint8_t ri_full[96] = {
    0x60, 0, 0, 0, 0x0f, 0, 0, 0, 0x02, 0, 0, 0, 0x20, 0, 0, 0,
    0, 0, 0x01, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0x02, 0, 0,
    /* 32: SPARSE_MMAP v1, next 80, 2 areas */
    0x01, 0, 0x01, 0, 0x50, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x10, 0, 0, 0, 0, 0, 0,
    0x00, 0x80, 0, 0, 0, 0, 0, 0, 0x00, 0x80, 0, 0, 0, 0, 0, 0,
    /* 80: TYPE v1, last, type 0x80001234 subtype 5 */
    0x02, 0, 0x01, 0, 0, 0, 0, 0, 0x34, 0x12, 0x00, 0x80, 0x05, 0, 0, 0,
};

static struct ufio_region_info *ri_sample(void)
{
    struct ufio_region_info *ri = calloc(1, sizeof(*ri));
    assert_non_null(ri);
    ri->index = 2;
    ri->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP;
    ri->size = 0x10000;
    ri->offset = 2ull << 40;
    ri->nr_areas = 2;
    ri->areas[0] = (struct ufio_sparse_area){ 0, 0x1000 };
    ri->areas[1] = (struct ufio_sparse_area){ 0x8000, 0x8000 };
    ri->has_type = true;
    ri->type = 0x80001234;
    ri->subtype = 5;
    return ri;
}

static void test_region_info_req(void **st)
{
    (void)st;
    uint32_t argsz = 0, index = 0;
    /* argsz 0x1000, flags ignored, index 7, the rest ignored */
    uint8_t p[40] = { 0x00, 0x10, 0, 0, 0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0 };
    memset(p + 12, 0xab, 20);
    assert_int_equal(ufio_region_info_req_decode(p, 32, &argsz, &index), 0);
    assert_int_equal(argsz, 0x1000);
    assert_int_equal(index, 7);
    assert_int_equal(ufio_region_info_req_decode(p, 40, &argsz, &index), 0);
    for (size_t n = 0; n < 32; n++)
        assert_int_equal(ufio_region_info_req_decode(p, n, &argsz, &index), -EINVAL);
    put32(p, 31);
    assert_int_equal(ufio_region_info_req_decode(p, 32, &argsz, &index), -EINVAL);
    put32(p, 32);
    assert_int_equal(ufio_region_info_req_decode(p, 32, &argsz, &index), 0);
    uint8_t out[33];
    memset(out, 0xee, sizeof(out));
    assert_int_equal(ufio_region_info_req_encode(0x1000, 7, out, sizeof(out)), 32);
    const uint8_t want[32] = { 0x00, 0x10, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0 };
    assert_memory_equal(out, want, 32);
    assert_int_equal(out[32], 0xee);
    for (size_t cap = 0; cap < 32; cap++)
        assert_int_equal(ufio_region_info_req_encode(0x1000, 7, out, cap), -ENOSPC);
}

static void test_region_info_encode(void **st)
{
    (void)st;
    struct ufio_region_info *ri = ri_sample();
    uint8_t out[128];
    memset(out, 0xee, sizeof(out));
    assert_int_equal(ufio_region_info_encode(ri, 96, out, sizeof(out)), 96);
    assert_memory_equal(out, ri_full, 96);
    assert_int_equal(out[96], 0xee);
    for (size_t cap = 0; cap < 96; cap++)
        assert_int_equal(ufio_region_info_encode(ri, 96, out, cap), -ENOSPC);
    /* client argsz too small: the fixed part only, argsz = what is needed, cap_offset kept (QEMU) */
    for (uint32_t client = 0; client < 96; client += 19) {
        memset(out, 0xee, sizeof(out));
        assert_int_equal(ufio_region_info_encode(ri, client, out, sizeof(out)), 32);
        assert_memory_equal(out, ri_full, 32);
        assert_int_equal(out[32], 0xee);
    }
    assert_int_equal(ufio_region_info_encode(ri, 95, out, sizeof(out)), 32);
    /* no capabilities: no CAPS flag, cap_offset 0, argsz 32 */
    ri->nr_areas = 0;
    ri->has_type = false;
    assert_int_equal(ufio_region_info_encode(ri, 4096, out, sizeof(out)), 32);
    const uint8_t plain[32] = { 0x20, 0, 0, 0, 0x07, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0,
                                0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0 };
    assert_memory_equal(out, plain, 32);
    /* only the TYPE cap: it sits at 32 and ends the chain */
    ri->has_type = true;
    assert_int_equal(ufio_region_info_encode(ri, 4096, out, sizeof(out)), 48);
    assert_int_equal(out[0], 48);
    assert_int_equal(out[4], 0x0f);
    assert_int_equal(out[12], 32);
    assert_memory_equal(out + 32, ri_full + 80, 16);
    /* only SPARSE_MMAP: next is 0 */
    ri->has_type = false;
    ri->nr_areas = 2;
    assert_int_equal(ufio_region_info_encode(ri, 4096, out, sizeof(out)), 80);
    assert_int_equal(out[0], 80);
    uint8_t sparse_last[48];
    memcpy(sparse_last, ri_full + 32, 48);
    put32(sparse_last + 4, 0);
    assert_memory_equal(out + 32, sparse_last, 48);
    /* the encoder refuses what the struct cannot describe */
    ri->nr_areas = UFIO_MAX_SPARSE_AREAS + 1;
    assert_int_equal(ufio_region_info_encode(ri, 4096, out, sizeof(out)), -EINVAL);
    free(ri);
}

static void test_region_info_decode_good(void **st)
{
    (void)st;
    struct ufio_region_info *ri = calloc(1, sizeof(*ri)), *in = ri_sample();
    assert_non_null(ri);
    assert_int_equal(ufio_region_info_decode(ri_full, 96, ri), 0);
    assert_int_equal(ri->argsz, 96);
    assert_int_equal(ri->flags, 0x0f);
    assert_int_equal(ri->index, 2);
    assert_int_equal(ri->cap_offset, 32);
    assert_int_equal(ri->size, 0x10000);
    assert_true(ri->offset == 2ull << 40);
    assert_int_equal(ri->nr_areas, 2);
    assert_int_equal(ri->areas[0].offset, 0);
    assert_int_equal(ri->areas[0].size, 0x1000);
    assert_int_equal(ri->areas[1].offset, 0x8000);
    assert_int_equal(ri->areas[1].size, 0x8000);
    assert_true(ri->has_type);
    assert_int_equal(ri->type, 0x80001234);
    assert_int_equal(ri->subtype, 5);
    /* encode -> decode with 64 areas */
    in->nr_areas = UFIO_MAX_SPARSE_AREAS;
    for (uint32_t i = 0; i < in->nr_areas; i++)
        in->areas[i] = (struct ufio_sparse_area){ 0x400ull * i, 0x100 + i };
    uint8_t *buf = malloc(4096);
    assert_non_null(buf);
    ssize_t n = ufio_region_info_encode(in, 4096, buf, 4096);
    assert_int_equal(n, 32 + 16 + 16 * 64 + 16);
    assert_int_equal(ufio_region_info_decode(buf, (size_t)n, ri), 0);
    assert_int_equal(ri->nr_areas, 64);
    assert_memory_equal(ri->areas, in->areas, sizeof(in->areas));
    assert_int_equal(ri->type, in->type);
    /* the cut answer: nothing past 32 is read, argsz tells the caller to ask again */
    for (size_t k = 32; k < 96; k++) {
        assert_int_equal(ufio_region_info_decode(ri_full, k, ri), 0);
        assert_int_equal(ri->argsz, 96);
        assert_int_equal(ri->nr_areas, 0);
        assert_false(ri->has_type);
    }
    for (size_t k = 0; k < 32; k++)
        assert_int_equal(ufio_region_info_decode(ri_full, k, ri), -EINVAL);
    free(buf);
    free(in);
    free(ri);
}

static int decode_mutated(size_t at, uint32_t v32, size_t len)
{
    uint8_t b[96];
    memcpy(b, ri_full, 96);
    put32(b + at, v32);
    struct ufio_region_info *ri = malloc(sizeof(*ri));
    assert_non_null(ri);
    int r = ufio_region_info_decode(b, len, ri);
    free(ri);
    return r;
}

static void test_region_info_decode_bad(void **st)
{
    (void)st;
    struct ufio_region_info *ri = malloc(sizeof(*ri));
    assert_non_null(ri);
    uint8_t b[96];
    /* argsz below the fixed struct */
    assert_int_equal(decode_mutated(0, 31, 96), -EINVAL);
    assert_int_equal(decode_mutated(0, 0, 96), -EINVAL);
    /* offset + size wraps */
    memcpy(b, ri_full, 96);
    put64(b + 24, UINT64_MAX - 0xfff);
    assert_int_equal(ufio_region_info_decode(b, 96, ri), -EINVAL);
    /* cap_offset inside the fixed struct, past the end, or with no room for a header */
    static const uint32_t bad_offsets[] = { 4, 8, 31, 89, 92, 96, 97, 0x80000000u, UINT32_MAX };
    for (size_t i = 0; i < sizeof(bad_offsets) / sizeof(bad_offsets[0]); i++)
        assert_int_equal(decode_mutated(12, bad_offsets[i], 96), -EINVAL);
    /* a well-formed cap hidden inside the fixed struct (size = id 99, v1, next 0) is still refused */
    memcpy(b, ri_full, 32);
    put32(b, 32);
    put32(b + 12, 16);
    put64(b + 16, 0x10063);
    put64(b + 24, 0);
    assert_int_equal(ufio_region_info_decode(b, 32, ri), -EINVAL);
    put32(b + 12, 32);
    put32(b + 4, 0x07);
    assert_int_equal(ufio_region_info_decode(b, 32, ri), 0);
    /* loops and overlaps: next must be past the end of the current cap */
    assert_int_equal(decode_mutated(36, 32, 96), -EINVAL);  /* sparse -> itself */
    assert_int_equal(decode_mutated(36, 40, 96), -EINVAL);  /* into its own body */
    assert_int_equal(decode_mutated(36, 79, 96), -EINVAL);
    assert_int_equal(decode_mutated(84, 80, 96), -EINVAL);  /* type -> itself */
    assert_int_equal(decode_mutated(84, 32, 96), -EINVAL);  /* type -> back to sparse */
    assert_int_equal(decode_mutated(84, 88, 96), -EINVAL);  /* type -> into its body */
    assert_int_equal(decode_mutated(84, 96, 96), -EINVAL);  /* type -> the end */
    assert_int_equal(decode_mutated(84, UINT32_MAX, 96), -EINVAL);
    /* sparse area count: too many is E2BIG, more than the bytes hold is EINVAL */
    assert_int_equal(decode_mutated(40, UFIO_MAX_SPARSE_AREAS + 1, 96), -E2BIG);
    assert_int_equal(decode_mutated(40, UINT32_MAX, 96), -E2BIG);
    assert_int_equal(decode_mutated(40, 3, 96), -EINVAL);   /* runs over the TYPE cap */
    assert_int_equal(decode_mutated(40, 4, 96), -EINVAL);   /* runs past the end */
    /* the last cap announces more areas than follow */
    struct ufio_region_info *one = ri_sample();
    one->has_type = false;
    assert_int_equal(ufio_region_info_encode(one, 4096, b, sizeof(b)), 80);
    free(one);
    assert_int_equal(ufio_region_info_decode(b, 80, ri), 0);
    put32(b + 40, 3);
    assert_int_equal(ufio_region_info_decode(b, 80, ri), -EINVAL);
    put32(b, 88);
    memset(b + 80, 0, 8);
    assert_int_equal(ufio_region_info_decode(b, 88, ri), -EINVAL); /* half an area */
    /* areas outside [0, size) */
    memcpy(b, ri_full, 96);
    put64(b + 64, 0x8001);
    assert_int_equal(ufio_region_info_decode(b, 96, ri), -EINVAL);
    put64(b + 64, 0x10001);
    put64(b + 72, 0);
    assert_int_equal(ufio_region_info_decode(b, 96, ri), -EINVAL);
    put64(b + 64, UINT64_MAX);
    put64(b + 72, 2);
    assert_int_equal(ufio_region_info_decode(b, 96, ri), -EINVAL);
    put64(b + 64, 0);
    put64(b + 72, 0x10001);
    assert_int_equal(ufio_region_info_decode(b, 96, ri), -EINVAL);
    /* a cap header cut by the payload end */
    memcpy(b, ri_full, 96);
    put32(b, 86);
    assert_int_equal(ufio_region_info_decode(b, 86, ri), -EINVAL);
    /* caps past argsz are not read even when bytes follow */
    assert_int_equal(decode_mutated(0, 80, 96), -EINVAL);
    assert_int_equal(decode_mutated(0, 88, 96), -EINVAL);
    free(ri);
}

static void test_region_info_decode_lenient(void **st)
{
    (void)st;
    struct ufio_region_info *ri = malloc(sizeof(*ri));
    assert_non_null(ri);
    uint8_t b[96];
    /* no CAPS flag: the chain is not looked at, whatever it holds */
    memcpy(b, ri_full, 96);
    put32(b + 4, 0x07);
    put32(b + 36, 32); /* would be a loop */
    assert_int_equal(ufio_region_info_decode(b, 96, ri), 0);
    assert_int_equal(ri->nr_areas, 0);
    assert_false(ri->has_type);
    /* CAPS with cap_offset 0: no caps */
    memcpy(b, ri_full, 96);
    put32(b + 12, 0);
    assert_int_equal(ufio_region_info_decode(b, 96, ri), 0);
    assert_int_equal(ri->nr_areas, 0);
    /* unknown cap ids are skipped; the chain goes on */
    memcpy(b, ri_full, 96);
    put16(b + 32, 0x7777);
    assert_int_equal(ufio_region_info_decode(b, 96, ri), 0);
    assert_int_equal(ri->nr_areas, 0);
    assert_true(ri->has_type);
    assert_int_equal(ri->subtype, 5);
    /* a zero-area sparse cap is just no areas */
    memcpy(b, ri_full, 96);
    put32(b + 40, 0);
    assert_int_equal(ufio_region_info_decode(b, 96, ri), 0);
    assert_int_equal(ri->nr_areas, 0);
    assert_true(ri->has_type);
    /* a long chain of unknown caps, each right after the previous */
    enum { HOPS = 500 };
    size_t len = 32 + 8 * HOPS;
    uint8_t *c = calloc(1, len);
    assert_non_null(c);
    memcpy(c, ri_full, 32);
    put32(c, (uint32_t)len);
    for (size_t i = 0; i < HOPS; i++) {
        uint8_t *h = c + 32 + 8 * i;
        put16(h, 99);
        put16(h + 2, 1);
        put32(h + 4, i + 1 < HOPS ? (uint32_t)(32 + 8 * (i + 1)) : 0);
    }
    assert_int_equal(ufio_region_info_decode(c, len, ri), 0);
    assert_int_equal(ri->nr_areas, 0);
    assert_false(ri->has_type);
    put32(c + 32 + 8 * (HOPS - 1) + 4, 32 + 8 * 100); /* the last points back */
    assert_int_equal(ufio_region_info_decode(c, len, ri), -EINVAL);
    free(c);
    free(ri);
}

/* ---- DEVICE_GET_REGION_IO_FDS -------------------------------------------- */

/* region 3, two entries: ioeventfd fd 0 at 0x100 (4 bytes, datamatch 7), ioregionfd fd 1 at 0x200 */
static const uint8_t iofds_full[96] = {
    0x60, 0, 0, 0, 0, 0, 0, 0, 0x03, 0, 0, 0, 0x02, 0, 0, 0,
    0x00, 0x01, 0, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07, 0, 0, 0, 0, 0, 0, 0,
    0x00, 0x02, 0, 0, 0, 0, 0, 0, 0x08, 0, 0, 0, 0, 0, 0, 0,
    0x01, 0, 0, 0, 0x01, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0xdd, 0xcc, 0xbb, 0xaa, 0, 0, 0, 0,
};

static void iofds_sample(struct ufio_io_fds *f)
{
    memset(f, 0, sizeof(*f));
    f->index = 3;
    f->count = 2;
    f->e[0] = (struct ufio_io_fd_entry){ .offset = 0x100, .size = 4, .fd_index = 0, .datamatch = 7 };
    f->e[1] = (struct ufio_io_fd_entry){ .offset = 0x200, .size = 8, .fd_index = 1, .type = 1, .flags = 1,
                                         .datamatch = 0xaabbccdd };
}

static void test_io_fds_req(void **st)
{
    (void)st;
    const uint8_t p[16] = { 0x00, 0x01, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0 };
    uint32_t argsz, index;
    assert_int_equal(ufio_io_fds_req_decode(p, 16, &argsz, &index), 0);
    assert_int_equal(argsz, 0x100);
    assert_int_equal(index, 3);
    for (size_t n = 0; n < 16; n++)
        assert_int_equal(ufio_io_fds_req_decode(p, n, &argsz, &index), -EINVAL);
    uint8_t q[17] = { 0 };
    memcpy(q, p, 16);
    assert_int_equal(ufio_io_fds_req_decode(q, 17, &argsz, &index), -EINVAL);
    put32(q + 4, 1);
    assert_int_equal(ufio_io_fds_req_decode(q, 16, &argsz, &index), -EINVAL); /* flags */
    put32(q + 4, 0);
    put32(q + 12, 1);
    assert_int_equal(ufio_io_fds_req_decode(q, 16, &argsz, &index), -EINVAL); /* count */
    put32(q + 12, 0);
    put32(q, 15);
    assert_int_equal(ufio_io_fds_req_decode(q, 16, &argsz, &index), -EINVAL); /* argsz */
    put32(q, 16);
    assert_int_equal(ufio_io_fds_req_decode(q, 16, &argsz, &index), 0);
    uint8_t out[17];
    memset(out, 0xee, sizeof(out));
    assert_int_equal(ufio_io_fds_req_encode(0x100, 3, out, sizeof(out)), 16);
    assert_memory_equal(out, p, 16);
    assert_int_equal(out[16], 0xee);
    for (size_t cap = 0; cap < 16; cap++)
        assert_int_equal(ufio_io_fds_req_encode(0x100, 3, out, cap), -ENOSPC);
}

static void test_io_fds_encode(void **st)
{
    (void)st;
    struct ufio_io_fds f;
    iofds_sample(&f);
    uint8_t out[128];
    memset(out, 0xee, sizeof(out));
    assert_int_equal(ufio_io_fds_encode(&f, 96, out, sizeof(out)), 96);
    assert_memory_equal(out, iofds_full, 96);
    assert_int_equal(out[96], 0xee);
    for (size_t cap = 0; cap < 96; cap++)
        assert_int_equal(ufio_io_fds_encode(&f, 96, out, cap), -ENOSPC);
    /* too small a client argsz: the head with the size needed */
    memset(out, 0xee, sizeof(out));
    assert_int_equal(ufio_io_fds_encode(&f, 95, out, sizeof(out)), 16);
    assert_memory_equal(out, iofds_full, 16);
    assert_int_equal(out[16], 0xee);
    f.count = 0;
    assert_int_equal(ufio_io_fds_encode(&f, 0, out, sizeof(out)), 16);
    const uint8_t empty[16] = { 16, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0 };
    assert_memory_equal(out, empty, 16);
    f.count = UFIO_MAX_IO_FDS + 1;
    assert_int_equal(ufio_io_fds_encode(&f, 4096, out, sizeof(out)), -EINVAL);
}

static void test_io_fds_decode(void **st)
{
    (void)st;
    struct ufio_io_fds f, in;
    iofds_sample(&in);
    assert_int_equal(ufio_io_fds_decode(iofds_full, 96, 2, &f), 0);
    assert_int_equal(f.argsz, 96);
    assert_int_equal(f.flags, 0);
    assert_int_equal(f.index, 3);
    assert_int_equal(f.count, 2);
    assert_memory_equal(f.e, in.e, 2 * sizeof(in.e[0]));
    assert_int_equal(ufio_io_fds_decode(iofds_full, 96, 16, &f), 0);
    /* fd_index must name a received fd */
    assert_int_equal(ufio_io_fds_decode(iofds_full, 96, 1, &f), -EINVAL);
    assert_int_equal(ufio_io_fds_decode(iofds_full, 96, 0, &f), -EINVAL);
    /* every cut: the head alone asks again, anything else is malformed */
    for (size_t n = 0; n < 16; n++)
        assert_int_equal(ufio_io_fds_decode(iofds_full, n, 2, &f), -EINVAL);
    assert_int_equal(ufio_io_fds_decode(iofds_full, 16, 2, &f), 0);
    assert_int_equal(f.argsz, 96);
    assert_int_equal(f.count, 0); /* no entries came, none can be used */
    for (size_t n = 17; n < 96; n++)
        assert_int_equal(ufio_io_fds_decode(iofds_full, n, 2, &f), -EINVAL);
    uint8_t b[16 + 48 * 2 + 8];
    /* type other than ioeventfd / ioregionfd */
    memcpy(b, iofds_full, 96);
    put32(b + 56 + 20, 2);
    assert_int_equal(ufio_io_fds_decode(b, 96, 2, &f), -EINVAL);
    /* offset + size wraps */
    memcpy(b, iofds_full, 96);
    put64(b + 16, UINT64_MAX - 1);
    assert_int_equal(ufio_io_fds_decode(b, 96, 2, &f), -EINVAL);
    /* count over the limit */
    memcpy(b, iofds_full, 96);
    put32(b + 12, UFIO_MAX_IO_FDS + 1);
    assert_int_equal(ufio_io_fds_decode(b, 96, 2, &f), -E2BIG);
    put32(b + 12, UINT32_MAX);
    assert_int_equal(ufio_io_fds_decode(b, 96, 2, &f), -E2BIG);
    /* argsz: below the head, too small for count entries (stride < 40), larger than what came */
    memcpy(b, iofds_full, 96);
    put32(b, 15);
    assert_int_equal(ufio_io_fds_decode(b, 96, 2, &f), -EINVAL);
    put32(b, 16 + 79);
    assert_int_equal(ufio_io_fds_decode(b, 96, 2, &f), -EINVAL);
    put32(b, 97);
    assert_int_equal(ufio_io_fds_decode(b, 96, 2, &f), -EINVAL); /* partial: neither head-only nor whole */
    put32(b, 16 + 82);
    assert_int_equal(ufio_io_fds_decode(b, 96, 2, &f), -EINVAL); /* stride 41 overruns */
    /* head only but argsz says it all came: entries missing */
    memcpy(b, iofds_full, 16);
    put32(b, 16);
    assert_int_equal(ufio_io_fds_decode(b, 16, 2, &f), -EINVAL);
    /* count 0 needs no entries */
    put32(b + 12, 0);
    assert_int_equal(ufio_io_fds_decode(b, 16, 0, &f), 0);
    assert_int_equal(f.count, 0);
    /* 48-byte entries (a peer with a wider layout): stride comes from argsz */
    memset(b, 0, sizeof(b));
    put32(b, 16 + 96);
    put32(b + 12, 2);
    memcpy(b + 16, iofds_full + 16, 40);
    memcpy(b + 16 + 48, iofds_full + 56, 40);
    memset(b + 16 + 40, 0x5a, 8); /* trailing bytes of entry 0 are not entry 1 */
    assert_int_equal(ufio_io_fds_decode(b, 16 + 96, 2, &f), 0);
    assert_memory_equal(f.e, in.e, 2 * sizeof(in.e[0]));
    assert_int_equal(ufio_io_fds_decode(b, 16 + 95, 2, &f), -EINVAL);
}

/* ---- DEVICE_GET_IRQ_INFO -------------------------------------------------- */

static void test_irq_info(void **st)
{
    (void)st;
    /* argsz 16, EVENTFD|MASKABLE|NORESIZE, index 2 (MSI-X), 32 vectors */
    const uint8_t p[16] = { 16, 0, 0, 0, 0x0b, 0, 0, 0, 2, 0, 0, 0, 32, 0, 0, 0 };
    struct ufio_irq_info i;
    assert_int_equal(ufio_irq_info_decode(p, 16, &i), 0);
    assert_int_equal(i.argsz, 16);
    assert_int_equal(i.flags, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_NORESIZE);
    assert_int_equal(i.index, 2);
    assert_int_equal(i.count, 32);
    for (size_t n = 0; n < 16; n++)
        assert_int_equal(ufio_irq_info_decode(p, n, &i), -EINVAL);
    uint8_t q[16];
    memcpy(q, p, 16);
    put32(q, 15);
    assert_int_equal(ufio_irq_info_decode(q, 16, &i), -EINVAL);
    uint8_t out[17];
    memset(out, 0xee, sizeof(out));
    struct ufio_irq_info e = { .argsz = 16, .flags = 0x0b, .index = 2, .count = 32 };
    assert_int_equal(ufio_irq_info_encode(&e, out, sizeof(out)), 16);
    assert_memory_equal(out, p, 16);
    assert_int_equal(out[16], 0xee);
    for (size_t cap = 0; cap < 16; cap++)
        assert_int_equal(ufio_irq_info_encode(&e, out, cap), -ENOSPC);
}

/* ---- DEVICE_SET_IRQS ------------------------------------------------------ */

#define NONE VFIO_IRQ_SET_DATA_NONE
#define BOOL VFIO_IRQ_SET_DATA_BOOL
#define EFD VFIO_IRQ_SET_DATA_EVENTFD
#define MASK VFIO_IRQ_SET_ACTION_MASK
#define UNMASK VFIO_IRQ_SET_ACTION_UNMASK
#define TRIG VFIO_IRQ_SET_ACTION_TRIGGER

struct irq_case {
    uint32_t flags, index, start, count;
    size_t nbools; /* bytes after the 20-byte head */
    int32_t argsz_delta;
    size_t nfds;
    int want;
};

static const struct irq_case irq_cases[] = {
    /* good */
    { EFD | TRIG, 2, 0, 3, 0, 0, 3, 0 },
    { EFD | TRIG, 2, 5, 3, 0, 0, 0, 0 },            /* no fds: de-assign */
    { EFD | TRIG, 0, 0, 1, 0, 0, 1, 0 },
    { EFD | TRIG, 3, 0, 1, 0, 0, 1, 0 },            /* ERR */
    { EFD | TRIG, 4, 0, 1, 0, 0, 1, 0 },            /* REQ */
    { NONE | TRIG, 2, 0, 0, 0, 0, 0, 0 },           /* disable the index */
    { NONE | TRIG, 4, 0, 0, 0, 0, 0, 0 },
    { NONE | MASK, 1, 0, 1, 0, 0, 0, 0 },
    { NONE | UNMASK, 2, 7, 4, 0, 0, 0, 0 },
    { BOOL | TRIG, 2, 0, 3, 3, 0, 0, 0 },
    { BOOL | MASK, 0, 0, 1, 1, 0, 0, 0 },
    { NONE | TRIG, 2, UINT32_MAX - 1, 1, 0, 0, 0, 0 }, /* the last vector a u32 end can name */
    /* bad flags */
    { 0, 2, 0, 1, 0, 0, 0, -EINVAL },
    { NONE, 2, 0, 1, 0, 0, 0, -EINVAL },
    { TRIG, 2, 0, 1, 0, 0, 0, -EINVAL },
    { NONE | BOOL | TRIG, 2, 0, 1, 0, 0, 0, -EINVAL },
    { EFD | BOOL | TRIG, 2, 0, 1, 1, 0, 0, -EINVAL },
    { NONE | MASK | TRIG, 2, 0, 1, 0, 0, 0, -EINVAL },
    { NONE | MASK | UNMASK, 2, 0, 1, 0, 0, 0, -EINVAL },
    { NONE | TRIG | 0x40, 2, 0, 1, 0, 0, 0, -EINVAL },
    { NONE | TRIG | 0x80000000u, 2, 0, 1, 0, 0, 0, -EINVAL },
    /* index */
    { NONE | TRIG, 5, 0, 1, 0, 0, 0, -EINVAL },
    { NONE | TRIG, UINT32_MAX, 0, 1, 0, 0, 0, -EINVAL },
    /* ERR / REQ: trigger only, one vector */
    { NONE | MASK, 3, 0, 1, 0, 0, 0, -EINVAL },
    { NONE | UNMASK, 4, 0, 1, 0, 0, 0, -EINVAL },
    { EFD | TRIG, 3, 0, 2, 0, 0, 2, -EINVAL },
    { EFD | TRIG, 4, 0, 2, 0, 0, 0, -EINVAL },
    /* count 0 only as "disable": start 0, DATA_NONE, TRIGGER */
    { NONE | TRIG, 2, 1, 0, 0, 0, 0, -EINVAL },
    { EFD | TRIG, 2, 0, 0, 0, 0, 0, -EINVAL },
    { BOOL | TRIG, 2, 0, 0, 0, 0, 0, -EINVAL },
    { NONE | MASK, 2, 0, 0, 0, 0, 0, -EINVAL },
    /* start + count wraps */
    { NONE | TRIG, 2, UINT32_MAX, 1, 0, 0, 0, -EINVAL },
    { NONE | TRIG, 2, UINT32_MAX, 2, 0, 0, 0, -EINVAL },
    { NONE | TRIG, 2, 2, UINT32_MAX, 0, 0, 0, -EINVAL },
    /* payload and argsz */
    { BOOL | TRIG, 2, 0, 3, 2, 0, 0, -EINVAL },      /* bools short */
    { BOOL | TRIG, 2, 0, 3, 4, 0, 0, -EINVAL },      /* bools long */
    { NONE | TRIG, 2, 0, 1, 1, 0, 0, -EINVAL },      /* data with DATA_NONE */
    { EFD | TRIG, 2, 0, 1, 4, 0, 1, -EINVAL },       /* data with DATA_EVENTFD */
    { NONE | TRIG, 2, 0, 1, 0, 1, 0, -EINVAL },      /* argsz != payload */
    { NONE | TRIG, 2, 0, 1, 0, -1, 0, -EINVAL },
    { BOOL | TRIG, 2, 0, 3, 3, -1, 0, -EINVAL },
    /* fds */
    { EFD | TRIG, 2, 0, 3, 0, 0, 2, -EINVAL },
    { EFD | TRIG, 2, 0, 3, 0, 0, 4, -EINVAL },
    { NONE | TRIG, 2, 0, 1, 0, 0, 1, -EINVAL },
    { BOOL | TRIG, 2, 0, 1, 1, 0, 1, -EINVAL },
    { NONE | TRIG, 2, 0, 0, 0, 0, 1, -EINVAL },
};

static void test_set_irqs_table(void **st)
{
    (void)st;
    for (size_t i = 0; i < sizeof(irq_cases) / sizeof(irq_cases[0]); i++) {
        const struct irq_case *c = &irq_cases[i];
        uint8_t b[32];
        memset(b, 1, sizeof(b));
        size_t len = 20 + c->nbools;
        put32(b, (uint32_t)((int64_t)len + c->argsz_delta));
        put32(b + 4, c->flags);
        put32(b + 8, c->index);
        put32(b + 12, c->start);
        put32(b + 16, c->count);
        struct ufio_irq_set s;
        int r = ufio_irq_set_decode(b, len, c->nfds, &s);
        if (r != c->want)
            print_error("case %zu: got %d want %d\n", i, r, c->want);
        assert_int_equal(r, c->want);
        if (r == 0) {
            assert_int_equal(s.flags, c->flags);
            assert_int_equal(s.index, c->index);
            assert_int_equal(s.start, c->start);
            assert_int_equal(s.count, c->count);
            if ((c->flags & VFIO_IRQ_SET_DATA_TYPE_MASK) == BOOL)
                assert_ptr_equal(s.bools, b + 20);
            else
                assert_null(s.bools);
        }
    }
}

static void test_set_irqs_bytes(void **st)
{
    (void)st;
    /* argsz 23, DATA_BOOL|TRIGGER, index 2, start 1, count 3, bools 1 0 1 */
    const uint8_t p[23] = { 23, 0, 0, 0, 0x22, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 1, 0, 1 };
    struct ufio_irq_set s;
    assert_int_equal(ufio_irq_set_decode(p, 23, 0, &s), 0);
    assert_int_equal(s.argsz, 23);
    assert_int_equal(s.flags, 0x22);
    assert_int_equal(s.index, 2);
    assert_int_equal(s.start, 1);
    assert_int_equal(s.count, 3);
    assert_ptr_equal(s.bools, p + 20);
    uint8_t out[24];
    memset(out, 0xee, sizeof(out));
    assert_int_equal(ufio_irq_set_encode(&s, out, sizeof(out)), 23);
    assert_memory_equal(out, p, 23);
    assert_int_equal(out[23], 0xee);
    for (size_t cap = 0; cap < 23; cap++)
        assert_int_equal(ufio_irq_set_encode(&s, out, cap), -ENOSPC);
    for (size_t n = 0; n < 23; n++)
        assert_int_equal(ufio_irq_set_decode(p, n, 0, &s), -EINVAL);
    /* eventfds travel as fds: no data bytes, argsz 20 */
    struct ufio_irq_set e = { .argsz = 999, .flags = 0x24, .index = 2, .start = 0, .count = 5, .bools = p };
    const uint8_t want[20] = { 20, 0, 0, 0, 0x24, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0 };
    memset(out, 0xee, sizeof(out));
    assert_int_equal(ufio_irq_set_encode(&e, out, sizeof(out)), 20);
    assert_memory_equal(out, want, 20);
    assert_int_equal(out[20], 0xee);
    assert_int_equal(ufio_irq_set_decode(out, 20, 5, &s), 0);
}

int main(void)
{
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    return 77; /* the hand-written byte arrays are little-endian */
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_info),
        cmocka_unit_test(test_region_info_req),
        cmocka_unit_test(test_region_info_encode),
        cmocka_unit_test(test_region_info_decode_good),
        cmocka_unit_test(test_region_info_decode_bad),
        cmocka_unit_test(test_region_info_decode_lenient),
        cmocka_unit_test(test_io_fds_req),
        cmocka_unit_test(test_io_fds_encode),
        cmocka_unit_test(test_io_fds_decode),
        cmocka_unit_test(test_irq_info),
        cmocka_unit_test(test_set_irqs_table),
        cmocka_unit_test(test_set_irqs_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
