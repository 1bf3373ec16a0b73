/*
 * ufio-virtio-blk driven by a minimal virtio driver written here on ufio's
 * client library: the rings and buffers live in a memfd the test maps for
 * the device with DMA_MAP, as QEMU maps guest RAM. Feature negotiation, one
 * queue, write + read + flush checked against the backing file, and a
 * hostile driver (bad indices, loops, lengths, addresses) that may only get
 * IOERR or NEEDS_RESET, never a dead server.
 *
 * The virtio facts below are spelled out from the specification on purpose,
 * not taken from the device's source.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include <ufio/client.h>

#include "harness.h"

static const char *server_bin;

/* virtio 1.x facts */
#define CAP_COMMON 1
#define CAP_NOTIFY 2
#define CAP_ISR 3
#define CAP_DEVICE 4
#define S_ACK 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define S_NEEDS_RESET 0x40
#define F_SEG_MAX (1ull << 2)
#define F_RO (1ull << 5)
#define F_BLK_SIZE (1ull << 6)
#define F_FLUSH (1ull << 9)
#define F_INDIRECT (1ull << 28)
#define F_VERSION_1 (1ull << 32)
#define D_NEXT 1
#define D_WRITE 2
#define D_INDIRECT 4
#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define T_DISCARD 11
#define ST_OK 0
#define ST_IOERR 1
#define ST_UNSUPP 2
#define NO_VECTOR 0xffff

/* common configuration offsets */
#define C_DFSELECT 0x00
#define C_DF 0x04
#define C_GFSELECT 0x08
#define C_GF 0x0c
#define C_MSIX 0x10
#define C_NUMQ 0x12
#define C_STATUS 0x14
#define C_QSEL 0x16
#define C_QSIZE 0x18
#define C_QMSIX 0x1a
#define C_QENABLE 0x1c
#define C_QNOTIFY 0x1e
#define C_QDESC 0x20
#define C_QDRIVER 0x28
#define C_QDEVICE 0x30

#define DISK_SECTORS 2048u /* 1 MiB */
#define QS 16
#define MEM_IOVA 0x100000ull
#define MEM_SIZE (1u << 20)
/* where things live in the test's "guest memory" */
#define DESC_OFF 0x0000u
#define AVAIL_OFF 0x1000u
#define USED_OFF 0x2000u
#define ITABLE_OFF 0x3000u
#define HDR_OFF 0x4000u
#define STATUS_OFF 0x5000u
#define DATA_OFF 0x10000u
#define UNMAPPED_IOVA 0x40000000ull

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
};

struct drv {
    struct srv srv;
    struct ufio_client *c;
    char disk[64];
    int disk_fd;
    int memfd;
    uint8_t *mem;
    unsigned bar;
    uint32_t common, isr, device, notify, mult;
    int irq[2]; /* eventfds: vector 0 config, vector 1 queue */
    uint16_t avail_idx, used_seen;
};

/* ---- plumbing -------------------------------------------------------------------- */

static void cfg_read(struct drv *d, uint32_t off, void *buf, size_t len)
{
    assert_int_equal(ufio_client_region_read(d->c, UFIO_PCI_CONFIG_REGION, off, buf, len), 0);
}

static uint64_t rd(struct drv *d, uint32_t off, unsigned size)
{
    uint8_t b[8] = { 0 };
    assert_int_equal(ufio_client_region_read(d->c, d->bar, off, b, size), 0);
    return get64(b);
}

static void wr(struct drv *d, uint32_t off, uint64_t v, unsigned size)
{
    uint8_t b[8];
    put64(b, v);
    assert_int_equal(ufio_client_region_write(d->c, d->bar, off, b, size), 0);
}

#define CR(d, off, size) rd(d, (d)->common + (off), size)
#define CW(d, off, v, size) wr(d, (d)->common + (off), v, size)

static void find_caps(struct drv *d)
{
    uint8_t cfg[256];
    cfg_read(d, 0, cfg, sizeof(cfg));
    unsigned seen = 0;
    for (unsigned off = cfg[0x34], hops = 0; off && hops < 48; off = cfg[off + 1], hops++) {
        assert_true(off >= 0x40 && off < 0xf0);
        if (cfg[off] != 0x09 || cfg[off + 2] < 16)
            continue;
        uint8_t type = cfg[off + 3];
        uint32_t where = get32(cfg + off + 8);
        if (type < CAP_COMMON || type > CAP_DEVICE)
            continue;
        assert_false(seen & (1u << type));
        seen |= 1u << type;
        d->bar = cfg[off + 4];
        if (type == CAP_COMMON) {
            d->common = where;
            assert_true(get32(cfg + off + 12) >= 0x38);
        } else if (type == CAP_NOTIFY) {
            assert_int_equal(cfg[off + 2], 20);
            d->notify = where;
            d->mult = get32(cfg + off + 16);
        } else if (type == CAP_ISR) {
            d->isr = where;
        } else {
            d->device = where;
        }
    }
    assert_int_equal(seen, 0x1e);
}

static void enable_msix(struct drv *d)
{
    uint8_t cfg[256];
    cfg_read(d, 0, cfg, sizeof(cfg));
    for (unsigned off = cfg[0x34]; off; off = cfg[off + 1]) {
        if (cfg[off] == 0x11) {
            assert_int_equal((get16(cfg + off + 2) & 0x7ff) + 1, 2);
            uint8_t ctl[2];
            put16(ctl, (uint16_t)(get16(cfg + off + 2) | 0x8000));
            assert_int_equal(ufio_client_region_write(d->c, UFIO_PCI_CONFIG_REGION, off + 2, ctl, 2), 0);
            return;
        }
    }
    fail_msg("no MSI-X capability");
}

static void start_with(struct drv *d, const char *option)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->disk, sizeof(d->disk), "/tmp/ufio-vblk-test.XXXXXX");
    d->disk_fd = mkstemp(d->disk);
    assert_true(d->disk_fd >= 0);
    /* a recognisable disk: sector s starts with its number */
    for (uint32_t s = 0; s < DISK_SECTORS; s++) {
        uint8_t sec[512] = { 0 };
        put32(sec, s);
        assert_int_equal(pwrite(d->disk_fd, sec, 512, (off_t)s * 512), 512);
    }
    char filearg[80];
    snprintf(filearg, sizeof(filearg), "--file=%s", d->disk);
    const char *extra[] = { filearg, option, NULL };
    assert_int_equal(srv_start(&d->srv, server_bin, extra), 0);
    assert_int_equal(ufio_client_connect(d->srv.path, NULL, &d->c), 0);
    d->memfd = memfd_create("guest", MFD_CLOEXEC);
    assert_true(d->memfd >= 0);
    assert_int_equal(ftruncate(d->memfd, MEM_SIZE), 0);
    d->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, d->memfd, 0);
    assert_true(d->mem != MAP_FAILED);
    assert_int_equal(ufio_client_dma_map(d->c, MEM_IOVA, MEM_SIZE, UFIO_DMA_READ | UFIO_DMA_WRITE, d->mem, d->memfd, 0), 0);
    for (int i = 0; i < 2; i++) {
        d->irq[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true(d->irq[i] >= 0);
    }
    assert_int_equal(ufio_client_irq_set_eventfds(d->c, UFIO_IRQ_MSIX, 0, 2, d->irq), 0);
    find_caps(d);
    enable_msix(d);
}

static void start(struct drv *d, bool readonly)
{
    start_with(d, readonly ? "--readonly" : NULL);
}

static void stop(struct drv *d)
{
    assert_true(srv_alive(&d->srv));
    ufio_client_destroy(d->c);
    assert_int_equal(srv_stop(&d->srv), 0);
    munmap(d->mem, MEM_SIZE);
    close(d->memfd);
    close(d->irq[0]);
    close(d->irq[1]);
    close(d->disk_fd);
    unlink(d->disk);
}

static uint64_t device_features(struct drv *d)
{
    CW(d, C_DFSELECT, 0, 4);
    uint64_t lo = CR(d, C_DF, 4);
    CW(d, C_DFSELECT, 1, 4);
    return lo | CR(d, C_DF, 4) << 32;
}

/* Reset, ACK, DRIVER, features, FEATURES_OK; returns the status read back. */
static uint8_t negotiate(struct drv *d, uint64_t features)
{
    CW(d, C_STATUS, 0, 1);
    assert_int_equal(CR(d, C_STATUS, 1), 0);
    CW(d, C_STATUS, S_ACK, 1);
    CW(d, C_STATUS, S_ACK | S_DRIVER, 1);
    CW(d, C_GFSELECT, 0, 4);
    CW(d, C_GF, (uint32_t)features, 4);
    CW(d, C_GFSELECT, 1, 4);
    CW(d, C_GF, (uint32_t)(features >> 32), 4);
    CW(d, C_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK, 1);
    return (uint8_t)CR(d, C_STATUS, 1);
}

static void queue_setup(struct drv *d, uint16_t size)
{
    memset(d->mem, 0, DATA_OFF);
    d->avail_idx = d->used_seen = 0;
    CW(d, C_QSEL, 0, 2);
    assert_int_equal(CR(d, C_QSIZE, 2), 256);
    CW(d, C_QSIZE, size, 2);
    CW(d, C_QMSIX, 1, 2);
    assert_int_equal(CR(d, C_QMSIX, 2), 1);
    /* 64-bit fields as two 32-bit halves, as drivers write them */
    CW(d, C_QDESC, (uint32_t)(MEM_IOVA + DESC_OFF), 4);
    CW(d, C_QDESC + 4, (MEM_IOVA + DESC_OFF) >> 32, 4);
    CW(d, C_QDRIVER, MEM_IOVA + AVAIL_OFF, 8);
    CW(d, C_QDEVICE, (uint32_t)(MEM_IOVA + USED_OFF), 4);
    CW(d, C_QDEVICE + 4, 0, 4);
    assert_int_equal(CR(d, C_QDRIVER, 8), MEM_IOVA + AVAIL_OFF);
    CW(d, C_QENABLE, 1, 2);
    assert_int_equal(CR(d, C_QENABLE, 2), 1);
}

/* A driver ready to go: the default feature set, queue 0 of QS entries. */
static void bring_up(struct drv *d)
{
    uint64_t want = F_VERSION_1 | F_FLUSH | F_SEG_MAX | F_BLK_SIZE | F_INDIRECT;
    assert_int_equal(negotiate(d, want), S_ACK | S_DRIVER | S_FEATURES_OK);
    CW(d, C_MSIX, 0, 2);
    assert_int_equal(CR(d, C_MSIX, 2), 0);
    queue_setup(d, QS);
    CW(d, C_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK, 1);
}

static void put_desc(uint8_t *table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    put64(table + 16 * i, addr);
    put32(table + 16 * i + 8, len);
    put16(table + 16 * i + 12, flags);
    put16(table + 16 * i + 14, next);
}

static uint64_t iova(uint32_t mem_off)
{
    return MEM_IOVA + mem_off;
}

static void put_header(struct drv *d, uint32_t type, uint64_t sector)
{
    memset(d->mem + HDR_OFF, 0, 16);
    put32(d->mem + HDR_OFF, type);
    put64(d->mem + HDR_OFF + 8, sector);
}

/* Publishes head in the avail ring and rings the doorbell. */
static void kick(struct drv *d, uint16_t head)
{
    put16(d->mem + AVAIL_OFF + 4 + 2 * (d->avail_idx % QS), head);
    d->avail_idx++;
    __atomic_store_n((uint16_t *)(d->mem + AVAIL_OFF + 2), d->avail_idx, __ATOMIC_RELEASE);
    wr(d, d->notify + 0 * d->mult, 0, 2);
}

static uint16_t used_idx(struct drv *d)
{
    return __atomic_load_n((uint16_t *)(d->mem + USED_OFF + 2), __ATOMIC_ACQUIRE);
}

/* The next used element: it must exist and name head; returns its len. */
static uint32_t take_used(struct drv *d, uint16_t head)
{
    assert_int_equal(used_idx(d), (uint16_t)(d->used_seen + 1));
    const uint8_t *e = d->mem + USED_OFF + 4 + 8 * (d->used_seen % QS);
    d->used_seen++;
    assert_int_equal(get32(e), head);
    return get32(e + 4);
}

/* A 3-descriptor request: header, data (len bytes at DATA_OFF), status. */
static uint8_t request(struct drv *d, uint32_t type, uint64_t sector, uint32_t len, bool data_in,
                       uint32_t *used_len)
{
    put_header(d, type, sector);
    d->mem[STATUS_OFF] = 0xff;
    uint8_t *t = d->mem + DESC_OFF;
    put_desc(t, 0, iova(HDR_OFF), 16, D_NEXT, 1);
    put_desc(t, 1, iova(DATA_OFF), len, D_NEXT | (data_in ? D_WRITE : 0), 2);
    put_desc(t, 2, iova(STATUS_OFF), 1, D_WRITE, 0);
    kick(d, 0);
    uint32_t ul = take_used(d, 0);
    if (used_len)
        *used_len = ul;
    return d->mem[STATUS_OFF];
}

static void expect_irq(int fd, const char *what)
{
    if (ufio_client_irq_wait(fd, 2000) <= 0)
        fail_msg("no interrupt for %s", what);
}

static void drain_irq(int fd)
{
    uint64_t v;
    while (read(fd, &v, 8) == 8)
        ;
}

/* ---- the tests ------------------------------------------------------------------------ */

static void test_identity(void **st)
{
    struct drv d;
    start(&d, false);
    uint8_t cfg[64];
    cfg_read(&d, 0, cfg, sizeof(cfg));
    assert_int_equal(get16(cfg), 0x1af4);
    assert_int_equal(get16(cfg + 2), 0x1042);
    assert_int_equal(cfg[8], 1);                      /* revision */
    assert_int_equal(get32(cfg + 8) >> 8, 0x018000); /* class */
    assert_int_equal(get16(cfg + 0x2c), 0x1af4);
    assert_true(get16(cfg + 0x2e) >= 0x40);
    assert_true(get16(cfg + 6) & 0x10); /* capability list */
    assert_true(d.mult > 0);
    assert_int_equal(CR(&d, C_NUMQ, 2), 1);
    assert_int_equal(CR(&d, C_QNOTIFY, 2), 0);
    /* no queue 1: size 0 */
    CW(&d, C_QSEL, 1, 2);
    assert_int_equal(CR(&d, C_QSIZE, 2), 0);
    CW(&d, C_QSEL, 0, 2);
    assert_int_equal(CR(&d, C_QSIZE, 2), 256);
    assert_int_equal(CR(&d, C_MSIX, 2), NO_VECTOR);
    /* device config: capacity, seg_max, blk_size */
    assert_int_equal(rd(&d, d.device + 0, 8), DISK_SECTORS);
    assert_int_equal(rd(&d, d.device + 0x0c, 4), 254);
    assert_int_equal(rd(&d, d.device + 0x14, 4), 512);
    uint64_t f = device_features(&d);
    uint64_t must = F_VERSION_1 | F_FLUSH | F_SEG_MAX | F_BLK_SIZE | F_INDIRECT;
    assert_int_equal(f & must, must);
    assert_false(f & F_RO);
    stop(&d);
}

static void test_feature_negotiation(void **st)
{
    struct drv d;
    start(&d, false);
    /* a legacy driver (no VERSION_1) is refused */
    assert_int_equal(negotiate(&d, F_FLUSH), S_ACK | S_DRIVER);
    /* so is a feature the device did not offer */
    assert_int_equal(negotiate(&d, F_VERSION_1 | (1ull << 63)), S_ACK | S_DRIVER);
    assert_int_equal(negotiate(&d, F_VERSION_1 | F_RO), S_ACK | S_DRIVER);
    /* a subset is accepted, and frozen once FEATURES_OK is set */
    assert_int_equal(negotiate(&d, F_VERSION_1 | F_FLUSH), S_ACK | S_DRIVER | S_FEATURES_OK);
    CW(&d, C_GFSELECT, 0, 4);
    CW(&d, C_GF, 0xffffffff, 4);
    assert_int_equal(CR(&d, C_GF, 4), (uint32_t)F_FLUSH);
    CW(&d, C_GFSELECT, 1, 4);
    assert_int_equal(CR(&d, C_GF, 4), 1);
    /* reset clears it all */
    CW(&d, C_STATUS, 0, 1);
    assert_int_equal(CR(&d, C_STATUS, 1), 0);
    CW(&d, C_GFSELECT, 0, 4);
    assert_int_equal(CR(&d, C_GF, 4), 0);
    stop(&d);
}

static void test_write_read_flush(void **st)
{
    struct drv d;
    start(&d, false);
    bring_up(&d);
    /* OUT: 8 KiB at sector 8, checked in the file itself */
    for (unsigned i = 0; i < 8192; i++)
        d.mem[DATA_OFF + i] = (uint8_t)(i * 7 + 1);
    uint32_t ulen;
    assert_int_equal(request(&d, T_OUT, 8, 8192, false, &ulen), ST_OK);
    assert_int_equal(ulen, 1); /* only the status byte was written */
    expect_irq(d.irq[1], "OUT completion");
    uint8_t file[8192];
    assert_int_equal(pread(d.disk_fd, file, sizeof(file), 8 * 512), (ssize_t)sizeof(file));
    assert_memory_equal(file, d.mem + DATA_OFF, sizeof(file));
    uint8_t before[512];
    assert_int_equal(pread(d.disk_fd, before, 512, 7 * 512), 512);
    assert_int_equal(get32(before), 7); /* the neighbour is untouched */

    /* IN through an indirect table, header split across two descriptors */
    memset(d.mem + DATA_OFF, 0, 8192);
    put_header(&d, T_IN, 8);
    d.mem[STATUS_OFF] = 0xff;
    uint8_t *it = d.mem + ITABLE_OFF;
    put_desc(it, 0, iova(HDR_OFF), 8, D_NEXT, 1);
    put_desc(it, 1, iova(HDR_OFF + 8), 8, D_NEXT, 2);
    put_desc(it, 2, iova(DATA_OFF), 4096, D_NEXT | D_WRITE, 3);
    put_desc(it, 3, iova(DATA_OFF + 4096), 4096, D_NEXT | D_WRITE, 4);
    put_desc(it, 4, iova(STATUS_OFF), 1, D_WRITE, 0);
    put_desc(d.mem + DESC_OFF, 5, iova(ITABLE_OFF), 5 * 16, D_INDIRECT, 0);
    kick(&d, 5);
    assert_int_equal(take_used(&d, 5), 8192 + 1);
    assert_int_equal(d.mem[STATUS_OFF], ST_OK);
    assert_memory_equal(d.mem + DATA_OFF, file, sizeof(file));
    /* the last sector is readable */
    assert_int_equal(request(&d, T_IN, DISK_SECTORS - 1, 512, true, &ulen), ST_OK);
    assert_int_equal(ulen, 513);
    assert_int_equal(get32(d.mem + DATA_OFF), DISK_SECTORS - 1);

    assert_int_equal(request(&d, T_FLUSH, 0, 0, false, NULL), ST_OK);
    memset(d.mem + DATA_OFF, 0xee, 20);
    assert_int_equal(request(&d, T_GET_ID, 0, 20, true, &ulen), ST_OK);
    assert_int_equal(ulen, 21);
    uint8_t id[20] = "ufio-virtio-blk";
    assert_memory_equal(d.mem + DATA_OFF, id, 20);
    assert_int_equal(request(&d, T_DISCARD, 0, 16, false, NULL), ST_UNSUPP);
    assert_int_equal(request(&d, 0x7fffffff, 0, 512, true, NULL), ST_UNSUPP);

    /* bad requests in well-formed chains: IOERR, and the disk is unchanged */
    assert_int_equal(request(&d, T_IN, DISK_SECTORS, 512, true, NULL), ST_IOERR);
    assert_int_equal(request(&d, T_IN, DISK_SECTORS - 1, 1024, true, NULL), ST_IOERR);
    assert_int_equal(request(&d, T_OUT, UINT64_MAX, 512, false, NULL), ST_IOERR);
    assert_int_equal(request(&d, T_OUT, 0, 100, false, NULL), ST_IOERR);
    assert_int_equal(request(&d, T_IN, 0, 0xfffffe00u, true, NULL), ST_IOERR);
    /* data outside mapped memory */
    put_header(&d, T_OUT, 0);
    put_desc(d.mem + DESC_OFF, 0, iova(HDR_OFF), 16, D_NEXT, 1);
    put_desc(d.mem + DESC_OFF, 1, UNMAPPED_IOVA, 512, D_NEXT, 2);
    put_desc(d.mem + DESC_OFF, 2, iova(STATUS_OFF), 1, D_WRITE, 0);
    kick(&d, 0);
    take_used(&d, 0);
    assert_int_equal(d.mem[STATUS_OFF], ST_IOERR);
    /* data running off the end of the mapping */
    put_desc(d.mem + DESC_OFF, 1, MEM_IOVA + MEM_SIZE - 512, 1024, D_NEXT, 2);
    kick(&d, 0);
    take_used(&d, 0);
    assert_int_equal(d.mem[STATUS_OFF], ST_IOERR);
    uint8_t s0[512];
    assert_int_equal(pread(d.disk_fd, s0, 512, 0), 512);
    assert_int_equal(get32(s0), 0);
    assert_int_equal(get32(s0 + 4), 0);
    /* none of it needed a reset */
    assert_false(CR(&d, C_STATUS, 1) & S_NEEDS_RESET);
    assert_int_equal(request(&d, T_IN, 3, 512, true, NULL), ST_OK);
    assert_int_equal(get32(d.mem + DATA_OFF), 3);
    stop(&d);
}

/* After a malformed chain or ring: NEEDS_RESET with a config interrupt, no
 * used entry, the server alive; a reset and a fresh setup work again. */
static void expect_needs_reset_then_recover(struct drv *d, const char *what)
{
    uint8_t status = (uint8_t)CR(d, C_STATUS, 1);
    if (!(status & S_NEEDS_RESET))
        fail_msg("%s: status 0x%02x without NEEDS_RESET", what, status);
    expect_irq(d->irq[0], what);
    assert_int_equal(used_idx(d), d->used_seen);
    assert_true(srv_alive(&d->srv));
    /* further kicks are ignored while broken */
    kick(d, 0);
    assert_int_equal(used_idx(d), d->used_seen);
    bring_up(d);
    assert_false(CR(d, C_STATUS, 1) & S_NEEDS_RESET);
    drain_irq(d->irq[1]);
    assert_int_equal(request(d, T_IN, 5, 512, true, NULL), ST_OK);
    assert_int_equal(get32(d->mem + DATA_OFF), 5);
}

static void hdr_status_chain(struct drv *d)
{
    put_header(d, T_IN, 0);
    put_desc(d->mem + DESC_OFF, 0, iova(HDR_OFF), 16, D_NEXT, 1);
    put_desc(d->mem + DESC_OFF, 1, iova(DATA_OFF), 512, D_NEXT | D_WRITE, 2);
    put_desc(d->mem + DESC_OFF, 2, iova(STATUS_OFF), 1, D_WRITE, 0);
}

static void test_hostile_driver(void **st)
{
    struct drv d;
    start(&d, false);
    bring_up(&d);
    uint8_t *t = d.mem + DESC_OFF;

    kick(&d, QS); /* head index out of range */
    expect_needs_reset_then_recover(&d, "head index");

    hdr_status_chain(&d);
    put_desc(t, 1, iova(DATA_OFF), 512, D_NEXT | D_WRITE, 1); /* 0 -> 1 -> 1 -> ... */
    kick(&d, 0);
    expect_needs_reset_then_recover(&d, "descriptor loop");

    hdr_status_chain(&d);
    put_desc(t, 1, iova(DATA_OFF), 512, D_NEXT | D_WRITE, 0xffff);
    kick(&d, 0);
    expect_needs_reset_then_recover(&d, "next index");

    hdr_status_chain(&d);
    put_desc(t, 0, iova(DATA_OFF), 512, D_NEXT | D_WRITE, 1);
    put_desc(t, 1, iova(HDR_OFF), 16, D_NEXT, 2); /* readable after writable */
    kick(&d, 0);
    expect_needs_reset_then_recover(&d, "readable after writable");

    hdr_status_chain(&d);
    put_desc(t, 1, iova(DATA_OFF), 512, D_NEXT, 2);
    put_desc(t, 2, iova(STATUS_OFF), 1, 0, 0); /* nothing writable: no status byte */
    kick(&d, 0);
    expect_needs_reset_then_recover(&d, "no status byte");

    hdr_status_chain(&d);
    put_desc(t, 2, UNMAPPED_IOVA, 1, D_WRITE, 0);
    kick(&d, 0);
    expect_needs_reset_then_recover(&d, "status byte unmapped");

    put_desc(t, 0, iova(ITABLE_OFF), 40, D_INDIRECT, 0); /* not a multiple of 16 */
    kick(&d, 0);
    expect_needs_reset_then_recover(&d, "indirect length");

    put_desc(t, 0, iova(ITABLE_OFF), 0x100000, D_INDIRECT, 0); /* longer than any chain */
    kick(&d, 0);
    expect_needs_reset_then_recover(&d, "indirect table too long");

    put_desc(d.mem + ITABLE_OFF, 0, iova(ITABLE_OFF), 16, D_INDIRECT, 0); /* nested */
    put_desc(t, 0, iova(ITABLE_OFF), 16, D_INDIRECT, 0);
    kick(&d, 0);
    expect_needs_reset_then_recover(&d, "nested indirect");

    put_desc(t, 0, UNMAPPED_IOVA, 16 * 3, D_INDIRECT, 0);
    kick(&d, 0);
    expect_needs_reset_then_recover(&d, "indirect table unmapped");

    /* the driver's avail index runs ahead by more than a queue */
    hdr_status_chain(&d);
    d.avail_idx = (uint16_t)(d.avail_idx + QS);
    kick(&d, 0);
    expect_needs_reset_then_recover(&d, "avail index jump");

    /* rings outside mapped memory */
    assert_int_equal(negotiate(&d, F_VERSION_1), S_ACK | S_DRIVER | S_FEATURES_OK);
    CW(&d, C_QSEL, 0, 2);
    CW(&d, C_QSIZE, QS, 2);
    CW(&d, C_QDESC, UNMAPPED_IOVA, 8);
    CW(&d, C_QDRIVER, iova(AVAIL_OFF), 8);
    CW(&d, C_QDEVICE, UNMAPPED_IOVA + 0x1000, 8);
    CW(&d, C_QENABLE, 1, 2);
    CW(&d, C_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK, 1);
    d.avail_idx = d.used_seen = 0;
    kick(&d, 0);
    assert_true(CR(&d, C_STATUS, 1) & S_NEEDS_RESET);
    bring_up(&d);

    /* a queue size that is not a power of two, and misaligned rings */
    assert_int_equal(negotiate(&d, F_VERSION_1), S_ACK | S_DRIVER | S_FEATURES_OK);
    CW(&d, C_QSIZE, 12, 2);
    CW(&d, C_QENABLE, 1, 2);
    assert_int_equal(CR(&d, C_QENABLE, 2), 0);
    assert_true(CR(&d, C_STATUS, 1) & S_NEEDS_RESET);
    assert_int_equal(negotiate(&d, F_VERSION_1), S_ACK | S_DRIVER | S_FEATURES_OK);
    CW(&d, C_QDESC, iova(DESC_OFF) + 8, 8);
    CW(&d, C_QENABLE, 1, 2);
    assert_int_equal(CR(&d, C_QENABLE, 2), 0);
    assert_true(CR(&d, C_STATUS, 1) & S_NEEDS_RESET);

    /* indirect descriptors without the feature */
    assert_int_equal(negotiate(&d, F_VERSION_1), S_ACK | S_DRIVER | S_FEATURES_OK);
    queue_setup(&d, QS);
    CW(&d, C_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK, 1);
    put_desc(t, 0, iova(ITABLE_OFF), 48, D_INDIRECT, 0);
    kick(&d, 0);
    assert_true(CR(&d, C_STATUS, 1) & S_NEEDS_RESET);

    /* odd register accesses: vectors beyond the table read back NO_VECTOR,
     * unaligned and oversized accesses are harmless */
    bring_up(&d);
    CW(&d, C_MSIX, 7, 2);
    assert_int_equal(CR(&d, C_MSIX, 2), NO_VECTOR);
    CW(&d, C_QMSIX, 2, 2);
    assert_int_equal(CR(&d, C_QMSIX, 2), NO_VECTOR);
    CW(&d, C_QMSIX, 1, 2);
    wr(&d, d.common + 0x11, 0xffffffffffffffffull, 8);
    wr(&d, d.device, 0, 8); /* read-only */
    assert_int_equal(rd(&d, d.device, 8), DISK_SECTORS);
    uint8_t junk[64];
    memset(junk, 0xff, sizeof(junk));
    assert_int_equal(ufio_client_region_write(d.c, d.bar, d.common, junk, sizeof(junk)), 0);
    assert_int_equal(ufio_client_region_read(d.c, d.bar, d.common + 0xff0, junk, 64), -EINVAL);
    assert_true(srv_alive(&d.srv));
    bring_up(&d);
    assert_int_equal(request(&d, T_IN, 9, 512, true, NULL), ST_OK);
    assert_int_equal(get32(d.mem + DATA_OFF), 9);
    stop(&d);
}

static void test_readonly(void **st)
{
    struct drv d;
    start(&d, true);
    assert_true(device_features(&d) & F_RO);
    uint64_t want = F_VERSION_1 | F_RO | F_FLUSH;
    assert_int_equal(negotiate(&d, want), S_ACK | S_DRIVER | S_FEATURES_OK);
    queue_setup(&d, QS);
    CW(&d, C_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK, 1);
    memset(d.mem + DATA_OFF, 0xab, 512);
    assert_int_equal(request(&d, T_OUT, 1, 512, false, NULL), ST_IOERR);
    uint8_t s1[512];
    assert_int_equal(pread(d.disk_fd, s1, 512, 512), 512);
    assert_int_equal(get32(s1), 1);
    assert_int_equal(request(&d, T_IN, 1, 512, true, NULL), ST_OK);
    assert_int_equal(get32(d.mem + DATA_OFF), 1);
    stop(&d);
}

/* --direct: page-aligned requests take O_DIRECT, the others the page cache;
 * both land in the file. */
static void test_direct(void **st)
{
    struct drv d;
    start_with(&d, "--direct");
    bring_up(&d);
    for (unsigned i = 0; i < 8192; i++)
        d.mem[DATA_OFF + i] = (uint8_t)(i * 13 + 5);
    assert_int_equal(request(&d, T_OUT, 8, 8192, false, NULL), ST_OK);  /* aligned */
    assert_int_equal(request(&d, T_OUT, 33, 1024, false, NULL), ST_OK); /* not aligned */
    uint8_t file[8192];
    assert_int_equal(pread(d.disk_fd, file, sizeof(file), 8 * 512), (ssize_t)sizeof(file));
    assert_memory_equal(file, d.mem + DATA_OFF, sizeof(file));
    assert_int_equal(pread(d.disk_fd, file, 1024, 33 * 512), 1024);
    assert_memory_equal(file, d.mem + DATA_OFF, 1024);
    memset(d.mem + DATA_OFF, 0, 8192);
    assert_int_equal(request(&d, T_IN, 8, 8192, true, NULL), ST_OK);
    assert_int_equal(pread(d.disk_fd, file, sizeof(file), 8 * 512), (ssize_t)sizeof(file));
    assert_memory_equal(file, d.mem + DATA_OFF, sizeof(file));
    assert_int_equal(request(&d, T_IN, 3, 512, true, NULL), ST_OK);
    assert_int_equal(get32(d.mem + DATA_OFF), 3);
    assert_int_equal(request(&d, T_FLUSH, 0, 0, false, NULL), ST_OK);
    stop(&d);
}

/* The VIRTIO_PCI_CAP_PCI_CFG window: BAR4 through config space. */
static uint32_t find_pci_cfg_cap(struct drv *d)
{
    uint8_t cfg[256];
    cfg_read(d, 0, cfg, sizeof(cfg));
    for (unsigned off = cfg[0x34], hops = 0; off && hops < 48; off = cfg[off + 1], hops++)
        if (cfg[off] == 0x09 && cfg[off + 3] == 5 && cfg[off + 2] >= 20)
            return off;
    fail_msg("no PCI_CFG capability");
    return 0;
}

static void window_set(struct drv *d, uint32_t cap, uint8_t bar, uint32_t off, uint32_t len)
{
    uint8_t b[4];
    assert_int_equal(ufio_client_region_write(d->c, UFIO_PCI_CONFIG_REGION, cap + 4, &bar, 1), 0);
    put32(b, off);
    assert_int_equal(ufio_client_region_write(d->c, UFIO_PCI_CONFIG_REGION, cap + 8, b, 4), 0);
    put32(b, len);
    assert_int_equal(ufio_client_region_write(d->c, UFIO_PCI_CONFIG_REGION, cap + 12, b, 4), 0);
}

static uint32_t window_read(struct drv *d, uint32_t cap, uint8_t bar, uint32_t off, uint32_t len)
{
    window_set(d, cap, bar, off, len);
    uint8_t b[4];
    cfg_read(d, cap + 16, b, 4);
    return get32(b) & (len == 4 ? 0xffffffffu : (1u << (8 * len)) - 1);
}

static void window_write(struct drv *d, uint32_t cap, uint8_t bar, uint32_t off, uint32_t len, uint32_t v)
{
    window_set(d, cap, bar, off, len);
    uint8_t b[4];
    put32(b, v);
    assert_int_equal(ufio_client_region_write(d->c, UFIO_PCI_CONFIG_REGION, cap + 16, b, 4), 0);
}

static void test_pci_cfg_window(void **st)
{
    struct drv d;
    start(&d, false);
    uint32_t cap = find_pci_cfg_cap(&d);
    window_write(&d, cap, (uint8_t)d.bar, d.common + C_DFSELECT, 4, 1);
    assert_int_equal(CR(&d, C_DFSELECT, 4), 1);
    assert_int_equal(window_read(&d, cap, (uint8_t)d.bar, d.common + C_DF, 4), F_VERSION_1 >> 32);
    window_write(&d, cap, (uint8_t)d.bar, d.common + C_STATUS, 1, S_ACK);
    assert_int_equal(CR(&d, C_STATUS, 1), S_ACK);
    assert_int_equal(window_read(&d, cap, (uint8_t)d.bar, d.common + C_STATUS, 1), S_ACK);
    assert_int_equal(window_read(&d, cap, (uint8_t)d.bar, d.common + C_QSIZE, 2), 256);
    assert_int_equal(window_read(&d, cap, (uint8_t)d.bar, d.device, 4), DISK_SECTORS);
    /* a window onto another BAR, a bad length or a misaligned offset reads 0 and writes nothing */
    assert_int_equal(window_read(&d, cap, 1, 0, 4), 0);
    assert_int_equal(window_read(&d, cap, (uint8_t)d.bar, d.device, 3), 0);
    assert_int_equal(window_read(&d, cap, (uint8_t)d.bar, d.device + 2, 4), 0);
    assert_int_equal(window_read(&d, cap, (uint8_t)d.bar, 0xfffffffc, 4), 0);
    window_write(&d, cap, (uint8_t)d.bar, d.common + C_STATUS + 1, 2, 0);
    assert_int_equal(CR(&d, C_STATUS, 1), S_ACK);
    /* DRIVER_OK without FEATURES_OK: the queue does not run */
    assert_int_equal(negotiate(&d, 0), S_ACK | S_DRIVER);
    queue_setup(&d, QS);
    CW(&d, C_STATUS, S_ACK | S_DRIVER | S_DRIVER_OK, 1);
    hdr_status_chain(&d);
    kick(&d, 0);
    assert_int_equal(used_idx(&d), 0);
    /* the whole bring-up works through BAR accesses afterwards */
    bring_up(&d);
    assert_int_equal(request(&d, T_IN, 6, 512, true, NULL), ST_OK);
    assert_int_equal(get32(d.mem + DATA_OFF), 6);
    stop(&d);
}

/* xorshift64*: a fixed seed, so a failure replays */
static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state >> 12;
    rnd_state ^= rnd_state << 25;
    rnd_state ^= rnd_state >> 27;
    return rnd_state * 0x2545f4914f6cdd1dull;
}

/* An address a confused driver might use; never the rings themselves, so
 * that what the test reads back from the used ring is the device's doing. */
static uint64_t random_addr(void)
{
    switch (rnd() % 5) {
    case 0: return UNMAPPED_IOVA + rnd() % 0x10000;
    case 1: return rnd();
    case 2: return MEM_IOVA + MEM_SIZE - rnd() % 1024;
    default: return iova(DATA_OFF) + rnd() % (MEM_SIZE - DATA_OFF);
    }
}

static uint32_t random_len(void)
{
    static const uint32_t lens[] = { 0, 1, 8, 15, 16, 17, 511, 512, 4096, 65536, 0x7fffffff, 0xffffffff };
    return rnd() % 4 ? lens[rnd() % (sizeof(lens) / sizeof(lens[0]))] : (uint32_t)rnd();
}

static void random_table(uint8_t *t, unsigned n, bool indirect_ok)
{
    for (unsigned i = 0; i < n; i++) {
        uint16_t flags = (uint16_t)(rnd() % 8);
        if (!indirect_ok)
            flags &= (uint16_t)~D_INDIRECT;
        uint64_t addr = random_addr();
        uint32_t len = random_len();
        if ((flags & D_INDIRECT) && rnd() % 2) {
            addr = iova(ITABLE_OFF);
            len = (uint32_t)(16 * (rnd() % 20));
        }
        put_desc(t, i, addr, len, flags, (uint16_t)(rnd() % 3 ? rnd() % QS : rnd()));
    }
}

/* Thousands of random chains and register writes: each kick ends in a used
 * entry for the head or in NEEDS_RESET; the server never dies. */
static void test_random_driver(void **st)
{
    struct drv d;
    start(&d, false);
    bring_up(&d);
    const unsigned rounds = getenv("UFIO_UNDER_VALGRIND") ? 300 : 3000;
    unsigned resets = 0, answered = 0;
    for (unsigned round = 0; round < rounds; round++) {
        random_table(d.mem + DESC_OFF, QS, true);
        random_table(d.mem + ITABLE_OFF, 20, rnd() % 8 == 0);
        static const uint32_t types[] = { T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, 0xffffffff };
        uint64_t sector = rnd() % 2 ? rnd() % DISK_SECTORS : rnd();
        put_header(&d, types[rnd() % (sizeof(types) / sizeof(types[0]))], sector);
        /* mostly a header/data/status start, so requests get executed too */
        if (rnd() % 2) {
            put_desc(d.mem + DESC_OFF, 0, iova(HDR_OFF), 16, D_NEXT, 1);
            if (rnd() % 2)
                put_desc(d.mem + DESC_OFF, 1, random_addr(), random_len(), (uint16_t)(D_NEXT | (rnd() % 2 ? D_WRITE : 0)), 2);
            put_desc(d.mem + DESC_OFF, 2, iova(STATUS_OFF), 1, D_WRITE, 0);
        }
        uint16_t head = (uint16_t)(rnd() % 4 ? 0 : rnd() % (QS + 2));
        if (rnd() % 16 == 0)
            wr(&d, d.common + (uint32_t)(rnd() % 0x38), rnd(), 1u << (rnd() % 4));
        kick(&d, head);
        uint8_t status = (uint8_t)CR(&d, C_STATUS, 1);
        bool live = (status & (S_DRIVER_OK | S_FEATURES_OK)) == (S_DRIVER_OK | S_FEATURES_OK) &&
                    CR(&d, C_QENABLE, 2) == 1;
        if ((status & S_NEEDS_RESET) || !live) {
            resets++;
            bring_up(&d);
            continue;
        }
        if (used_idx(&d) != (uint16_t)(d.used_seen + 1))
            fail_msg("round %u: kick of head %u neither answered nor NEEDS_RESET (status 0x%02x)", round, head, status);
        take_used(&d, head);
        answered++;
    }
    assert_true(srv_alive(&d.srv));
    assert_true(resets > 0 && answered > 0);
    bring_up(&d);
    assert_int_equal(request(&d, T_IN, 7, 512, true, NULL), ST_OK);
    print_message("%u random chains: %u answered, %u reset\n", rounds, answered, resets);
    stop(&d);
}

/* Without MSI-X: INTx, and the reason in ISR, which a read clears (through the BAR or the window). */
static void test_intx_isr(void **st)
{
    struct drv d;
    start(&d, false);
    uint8_t cfg[256];
    cfg_read(&d, 0, cfg, sizeof(cfg));
    unsigned msix = 0;
    for (unsigned off = cfg[0x34]; off && !msix; off = cfg[off + 1])
        if (cfg[off] == 0x11)
            msix = off;
    uint8_t ctl[2];
    put16(ctl, (uint16_t)(get16(cfg + msix + 2) & ~0x8000));
    assert_int_equal(ufio_client_region_write(d.c, UFIO_PCI_CONFIG_REGION, msix + 2, ctl, 2), 0);
    int intx = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(intx >= 0);
    assert_int_equal(ufio_client_irq_set_eventfds(d.c, UFIO_IRQ_INTX, 0, 1, &intx), 0);
    bring_up(&d);
    assert_int_equal(rd(&d, d.isr, 1), 0);
    assert_int_equal(request(&d, T_IN, 1, 512, true, NULL), ST_OK);
    expect_irq(intx, "INTx completion");
    assert_int_equal(rd(&d, d.isr, 1), 1);
    assert_int_equal(rd(&d, d.isr, 1), 0);
    /* read through the PCI_CFG window, ISR acknowledges just the same */
    assert_int_equal(ufio_client_irq_action(d.c, UFIO_IRQ_INTX, 0, 1, UFIO_IRQ_ACTION_UNMASK), 0);
    assert_int_equal(request(&d, T_IN, 1, 512, true, NULL), ST_OK);
    expect_irq(intx, "INTx completion");
    uint32_t cap = find_pci_cfg_cap(&d);
    assert_int_equal(window_read(&d, cap, (uint8_t)d.bar, d.isr, 1), 1);
    assert_int_equal(rd(&d, d.isr, 1), 0);
    /* NEEDS_RESET raises the configuration bit */
    assert_int_equal(ufio_client_irq_action(d.c, UFIO_IRQ_INTX, 0, 1, UFIO_IRQ_ACTION_UNMASK), 0);
    kick(&d, QS);
    assert_true(CR(&d, C_STATUS, 1) & S_NEEDS_RESET);
    expect_irq(intx, "INTx config change");
    assert_int_equal(rd(&d, d.isr, 1), 2);
    assert_int_equal(rd(&d, d.isr, 1), 0);
    close(intx);
    stop(&d);
}

/* vfio-user DEVICE_RESET resets the virtio device too; so does a reconnect. */
static void test_device_reset(void **st)
{
    struct drv d;
    start(&d, false);
    bring_up(&d);
    assert_int_equal(request(&d, T_IN, 2, 512, true, NULL), ST_OK);
    assert_int_equal(ufio_client_reset(d.c), 0);
    assert_int_equal(CR(&d, C_STATUS, 1), 0);
    assert_int_equal(CR(&d, C_QENABLE, 2), 0);
    assert_int_equal(CR(&d, C_QSIZE, 2), 256);
    /* kicking a reset device does nothing */
    uint16_t u = used_idx(&d);
    kick(&d, 0);
    assert_int_equal(used_idx(&d), u);
    /* the library reset MSI-X too: enable it again, then a fresh setup works */
    enable_msix(&d);
    bring_up(&d);
    drain_irq(d.irq[1]);
    assert_int_equal(request(&d, T_IN, 4, 512, true, NULL), ST_OK);
    assert_int_equal(get32(d.mem + DATA_OFF), 4);
    expect_irq(d.irq[1], "after reset");
    stop(&d);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s UFIO-VIRTIO-BLK\n", argv[0]);
        return 2;
    }
    server_bin = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_feature_negotiation),
        cmocka_unit_test(test_write_read_flush),
        cmocka_unit_test(test_hostile_driver),
        cmocka_unit_test(test_readonly),
        cmocka_unit_test(test_direct),
        cmocka_unit_test(test_pci_cfg_window),
        cmocka_unit_test(test_intx_isr),
        cmocka_unit_test(test_random_driver),
        cmocka_unit_test(test_device_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
