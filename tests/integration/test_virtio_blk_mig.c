/*
 * ufio-virtio-blk migrates between two server processes on one backing file
 * while its driver is busy: requests published before and after the stop,
 * a notify that reaches the stopped source, the rest served by the
 * destination without a new notify; data checked against a model of the disk
 * and the file itself, device state (features, status, queue layout,
 * vectors, MSI-X enable) read back on both ends, interrupts arriving from the
 * destination on the same eventfd. The same with ufio-migrate as the
 * migration controller on the management sockets while the driver keeps
 * the source busy. Incompatible destinations and damaged device records are
 * refused and the source goes on.
 *
 * The driver here keeps many requests in flight (one slot of three
 * descriptors each) and owns the "guest memory" (a memfd both servers map),
 * as a VMM that migrates its device does over its own connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <ufio/client.h>
#include <ufio/migration.h>

#include "harness.h"
#include "proto/mig_stream.h"

static const char *server_bin, *migrate_bin;

/* virtio 1.x facts (from the specification) */
#define S_ACK 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define S_NEEDS_RESET 0x40
#define F_FLUSH (1ull << 9)
#define F_VERSION_1 (1ull << 32)
#define D_NEXT 1
#define D_WRITE 2
#define T_IN 0
#define T_OUT 1
#define C_DFSELECT 0x00
#define C_GFSELECT 0x08
#define C_GF 0x0c
#define C_MSIX 0x10
#define C_STATUS 0x14
#define C_QSEL 0x16
#define C_QSIZE 0x18
#define C_QMSIX 0x1a
#define C_QENABLE 0x1c
#define C_QDESC 0x20
#define C_QDRIVER 0x28
#define C_QDEVICE 0x30
#define C_END 0x38

#define DISK_SECTORS 4096u /* 2 MiB */
#define QS 64
#define SLOTS 16
#define BLOCK 4096u /* one request moves one 8-sector block */
#define BLOCKS (DISK_SECTORS * 512 / BLOCK)
#define MEM_IOVA 0x200000ull
#define MEM_SIZE (1u << 20)
#define DESC_OFF 0x0000u
#define AVAIL_OFF 0x1000u
#define USED_OFF 0x2000u
#define HDR_OFF 0x4000u
#define STATUS_OFF 0x5000u
#define DATA_OFF 0x10000u

/* The "guest": its memory, interrupt eventfds, ring positions, a model of the disk. */
struct guest {
    int memfd;
    uint8_t *mem;
    int irq[2];
    uint16_t avail_idx, used_seen;
    uint32_t gen[BLOCKS];     /* what each block should hold: 0 = the initial pattern */
    uint32_t slot_block[SLOTS];
    bool slot_write[SLOTS];
    uint32_t seq;
};

/* One server process and the driver's connection to it. */
struct side {
    struct srv srv;
    struct ufio_client *c;
    unsigned bar;
    uint32_t common, notify, mult;
};

static char disk[64];
static int disk_fd = -1;
static struct guest g;
/* every server a test started, so a failed test leaves none behind */
static pid_t started[8];
static unsigned nstarted;

/* ---- plumbing ------------------------------------------------------------------------ */

static uint64_t rd(struct side *s, uint32_t off, unsigned size)
{
    uint8_t b[8] = { 0 };
    assert_int_equal(ufio_client_region_read(s->c, s->bar, off, b, size), 0);
    return get64(b);
}

static void wr(struct side *s, uint32_t off, uint64_t v, unsigned size)
{
    uint8_t b[8];
    put64(b, v);
    assert_int_equal(ufio_client_region_write(s->c, s->bar, off, b, size), 0);
}

#define CR(s, off, size) rd(s, (s)->common + (off), size)
#define CW(s, off, v, size) wr(s, (s)->common + (off), v, size)

static unsigned msix_cap(struct side *s, uint8_t *cfg)
{
    assert_int_equal(ufio_client_region_read(s->c, UFIO_PCI_CONFIG_REGION, 0, cfg, 256), 0);
    for (unsigned off = cfg[0x34]; off; off = cfg[off + 1])
        if (cfg[off] == 0x11)
            return off;
    fail_msg("no MSI-X capability");
    return 0;
}

static void find_caps(struct side *s)
{
    uint8_t cfg[256];
    assert_int_equal(ufio_client_region_read(s->c, UFIO_PCI_CONFIG_REGION, 0, cfg, 256), 0);
    for (unsigned off = cfg[0x34]; off; off = cfg[off + 1]) {
        if (cfg[off] != 0x09 || cfg[off + 2] < 16 || cfg[off + 3] < 1 || cfg[off + 3] > 4)
            continue;
        s->bar = cfg[off + 4];
        if (cfg[off + 3] == 1)
            s->common = get32(cfg + off + 8);
        if (cfg[off + 3] == 2) {
            s->notify = get32(cfg + off + 8);
            s->mult = get32(cfg + off + 16);
        }
    }
    assert_true(s->mult > 0);
}

static void disk_create(void)
{
    snprintf(disk, sizeof(disk), "/tmp/ufio-vblk-mig-handover.XXXXXX");
    disk_fd = mkstemp(disk);
    assert_true(disk_fd >= 0);
    static uint8_t blk[BLOCK];
    for (uint32_t b = 0; b < BLOCKS; b++) {
        for (unsigned i = 0; i < BLOCK; i += 4)
            put32(blk + i, b * 0x10001u ^ i);
        assert_int_equal(pwrite(disk_fd, blk, BLOCK, (off_t)b * BLOCK), (ssize_t)BLOCK);
    }
}

/* The content block b has at generation gen (gen 0: as disk_create wrote it). */
static void pattern(uint32_t b, uint32_t gen, uint8_t *out)
{
    for (unsigned i = 0; i < BLOCK; i += 4)
        put32(out + i, gen ? (gen * 0x9e3779b9u) ^ (b << 12) ^ i : b * 0x10001u ^ i);
}

static void guest_create(void)
{
    memset(&g, 0, sizeof(g));
    g.memfd = memfd_create("guest", MFD_CLOEXEC);
    assert_true(g.memfd >= 0);
    assert_int_equal(ftruncate(g.memfd, MEM_SIZE), 0);
    g.mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, g.memfd, 0);
    assert_true(g.mem != MAP_FAILED);
    for (int i = 0; i < 2; i++) {
        g.irq[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true(g.irq[i] >= 0);
    }
}

static void guest_destroy(void)
{
    munmap(g.mem, MEM_SIZE);
    close(g.memfd);
    close(g.irq[0]);
    close(g.irq[1]);
}

/* Starts a server on the disk (extra: another option, may be NULL) and
 * connects the driver: guest memory mapped, both vectors wired. */
static void side_start(struct side *s, const char *file, const char *extra)
{
    memset(s, 0, sizeof(*s));
    char filearg[96];
    snprintf(filearg, sizeof(filearg), "--file=%s", file);
    const char *args[] = { filearg, extra, NULL };
    assert_int_equal(srv_start(&s->srv, server_bin, args), 0);
    if (nstarted < 8)
        started[nstarted++] = s->srv.pid;
    assert_int_equal(ufio_client_connect(s->srv.path, NULL, &s->c), 0);
    assert_int_equal(ufio_client_dma_map(s->c, MEM_IOVA, MEM_SIZE, UFIO_DMA_READ | UFIO_DMA_WRITE, g.mem, g.memfd, 0),
                     0);
    assert_int_equal(ufio_client_irq_set_eventfds(s->c, UFIO_IRQ_MSIX, 0, 2, g.irq), 0);
    find_caps(s);
}

static void side_stop(struct side *s)
{
    assert_true(srv_alive(&s->srv));
    for (unsigned i = 0; i < nstarted; i++)
        if (started[i] == s->srv.pid)
            started[i] = 0;
    ufio_client_destroy(s->c);
    assert_int_equal(srv_stop(&s->srv), 0);
}

static void bring_up(struct side *s)
{
    uint8_t cfg[256];
    unsigned mx = msix_cap(s, cfg);
    uint8_t ctl[2];
    put16(ctl, (uint16_t)(get16(cfg + mx + 2) | 0x8000));
    assert_int_equal(ufio_client_region_write(s->c, UFIO_PCI_CONFIG_REGION, mx + 2, ctl, 2), 0);
    CW(s, C_STATUS, 0, 1);
    CW(s, C_STATUS, S_ACK | S_DRIVER, 1);
    uint64_t f = F_VERSION_1 | F_FLUSH;
    CW(s, C_GFSELECT, 0, 4);
    CW(s, C_GF, (uint32_t)f, 4);
    CW(s, C_GFSELECT, 1, 4);
    CW(s, C_GF, (uint32_t)(f >> 32), 4);
    CW(s, C_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK, 1);
    assert_int_equal(CR(s, C_STATUS, 1), S_ACK | S_DRIVER | S_FEATURES_OK);
    CW(s, C_MSIX, 0, 2);
    memset(g.mem, 0, DATA_OFF);
    g.avail_idx = g.used_seen = 0;
    CW(s, C_QSEL, 0, 2);
    CW(s, C_QSIZE, QS, 2);
    CW(s, C_QMSIX, 1, 2);
    CW(s, C_QDESC, MEM_IOVA + DESC_OFF, 8);
    CW(s, C_QDRIVER, MEM_IOVA + AVAIL_OFF, 8);
    CW(s, C_QDEVICE, MEM_IOVA + USED_OFF, 8);
    CW(s, C_QENABLE, 1, 2);
    CW(s, C_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK, 1);
}

static void put_desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    uint8_t *t = g.mem + DESC_OFF + 16 * i;
    put64(t, addr);
    put32(t + 8, len);
    put16(t + 12, flags);
    put16(t + 14, next);
}

/* Fills slot with a request for block b (a write of the next generation, or a
 * read) and publishes it in the avail ring, without a notify. */
static void publish(unsigned slot, uint32_t b, bool write)
{
    uint8_t *hdr = g.mem + HDR_OFF + 16 * slot;
    memset(hdr, 0, 16);
    put32(hdr, write ? T_OUT : T_IN);
    put64(hdr + 8, (uint64_t)b * (BLOCK / 512));
    g.mem[STATUS_OFF + slot] = 0xff;
    uint8_t *data = g.mem + DATA_OFF + slot * BLOCK;
    if (write)
        pattern(b, ++g.seq, data);
    else
        memset(data, 0xcc, BLOCK);
    g.slot_block[slot] = b;
    g.slot_write[slot] = write;
    unsigned d = slot * 3;
    put_desc(d, MEM_IOVA + HDR_OFF + 16 * slot, 16, D_NEXT, (uint16_t)(d + 1));
    put_desc(d + 1, MEM_IOVA + DATA_OFF + slot * BLOCK, BLOCK, (uint16_t)(D_NEXT | (write ? 0 : D_WRITE)),
             (uint16_t)(d + 2));
    put_desc(d + 2, MEM_IOVA + STATUS_OFF + slot, 1, D_WRITE, 0);
    put16(g.mem + AVAIL_OFF + 4 + 2 * (g.avail_idx % QS), (uint16_t)d);
    g.avail_idx++;
    __atomic_store_n((uint16_t *)(void *)(g.mem + AVAIL_OFF + 2), g.avail_idx, __ATOMIC_RELEASE);
    if (write)
        g.gen[b] = g.seq; /* the device will have it once the request completes */
}

static void notify(struct side *s)
{
    wr(s, s->notify, 0, 2);
}

static uint16_t used_idx(void)
{
    return __atomic_load_n((uint16_t *)(void *)(g.mem + USED_OFF + 2), __ATOMIC_ACQUIRE);
}

/* Takes every used entry up to the device's index: each must be a slot's
 * head, answered OK, a read holding what the model says. Returns the count. */
static unsigned reap(void)
{
    unsigned n = 0;
    uint16_t end = used_idx();
    while (g.used_seen != end) {
        const uint8_t *e = g.mem + USED_OFF + 4 + 8 * (g.used_seen % QS);
        g.used_seen++;
        uint32_t head = get32(e);
        assert_true(head % 3 == 0 && head / 3 < SLOTS);
        unsigned slot = head / 3;
        assert_int_equal(g.mem[STATUS_OFF + slot], 0);
        assert_int_equal(get32(e + 4), g.slot_write[slot] ? 1 : BLOCK + 1);
        if (!g.slot_write[slot]) {
            uint8_t want[BLOCK];
            uint32_t b = g.slot_block[slot];
            pattern(b, g.gen[b], want);
            assert_memory_equal(g.mem + DATA_OFF + slot * BLOCK, want, BLOCK);
        }
        n++;
    }
    return n;
}

static void expect_irq(int fd, const char *what)
{
    if (ufio_client_irq_wait(fd, 2000) <= 0)
        fail_msg("no interrupt for %s", what);
    uint64_t v;
    while (read(fd, &v, 8) == 8)
        ;
}

/* n requests (writes and reads mixed over the disk), one notify, all answered. */
static void burst(struct side *s, unsigned n)
{
    assert_true(n <= SLOTS);
    for (unsigned i = 0; i < n; i++) {
        uint32_t b = (g.seq * 7 + i * 13) % BLOCKS;
        publish(i, b, i % 3 != 2);
    }
    notify(s);
    assert_int_equal(reap(), n);
    expect_irq(g.irq[1], "burst completion");
}

/* Every block through the device, and the file itself, against the model. */
static void verify_disk(struct side *s)
{
    uint8_t want[BLOCK], got[BLOCK];
    for (uint32_t b = 0; b < BLOCKS; b += SLOTS) {
        for (unsigned i = 0; i < SLOTS; i++)
            publish(i, b + i, false);
        notify(s);
        assert_int_equal(reap(), SLOTS);
    }
    for (uint32_t b = 0; b < BLOCKS; b++) {
        pattern(b, g.gen[b], want);
        assert_int_equal(pread(disk_fd, got, BLOCK, (off_t)b * BLOCK), (ssize_t)BLOCK);
        if (memcmp(got, want, BLOCK))
            fail_msg("block %u of the file differs from the model (generation %u)", b, g.gen[b]);
    }
}

/* What a driver can read back of the device: common config of queue 0, MSI-X control. */
struct snap {
    uint8_t common[C_END];
    uint16_t msix_ctl;
    uint8_t msix_table[32];
};

static void snapshot(struct side *s, struct snap *out)
{
    CW(s, C_QSEL, 0, 2);
    CW(s, C_DFSELECT, 1, 4);
    CW(s, C_GFSELECT, 1, 4);
    assert_int_equal(ufio_client_region_read(s->c, s->bar, s->common, out->common, C_END), 0);
    uint8_t cfg[256];
    unsigned mx = msix_cap(s, cfg);
    out->msix_ctl = get16(cfg + mx + 2);
    uint32_t table = get32(cfg + mx + 4);
    assert_int_equal(ufio_client_region_read(s->c, table & 7, table & ~7u, out->msix_table, sizeof(out->msix_table)),
                     0);
}

/* Moves the stream by hand (the VMM's part); keep may be NULL. */
static size_t pump(struct ufio_client *src, struct ufio_client *dst, uint8_t *keep, size_t cap)
{
    static uint8_t buf[64 * 1024];
    size_t total = 0;
    for (;;) {
        size_t got = 0;
        assert_int_equal(ufio_client_mig_data_read(src, buf, sizeof(buf), &got), 0);
        if (keep) {
            assert_true(total + got <= cap);
            memcpy(keep + total, buf, got);
        }
        if (dst && got)
            assert_int_equal(ufio_client_mig_data_write(dst, buf, got), 0);
        total += got;
        if (got < sizeof(buf))
            return total;
    }
}

static unsigned mig_state(struct side *s)
{
    unsigned st;
    assert_int_equal(ufio_client_mig_get_state(s->c, &st), 0);
    return st;
}

static int setup(void **st)
{
    disk_create();
    guest_create();
    return 0;
}

static int teardown(void **st)
{
    for (unsigned i = 0; i < nstarted; i++)
        if (started[i] > 0 && kill(started[i], SIGKILL) == 0)
            waitpid(started[i], NULL, 0);
    nstarted = 0;
    guest_destroy();
    close(disk_fd);
    unlink(disk);
    return 0;
}

/* ---- the tests -------------------------------------------------------------------------- */

static void test_busy_migration(void **st)
{
    struct side a, b;
    side_start(&a, disk, NULL);
    side_start(&b, disk, NULL);
    uint64_t flags;
    assert_int_equal(ufio_client_mig_flags(a.c, &flags), 0);
    assert_int_equal(flags, UFIO_MIG_F_STOP_COPY | UFIO_MIG_F_PRE_COPY);
    bring_up(&a);
    for (int i = 0; i < 8; i++)
        burst(&a, SLOTS);

    /* PRE_COPY: the source still serves; the device has nothing to precopy */
    assert_int_equal(ufio_client_mig_set_state(b.c, UFIO_MIG_RESUMING, NULL), 0);
    assert_int_equal(ufio_client_mig_set_state(a.c, UFIO_MIG_PRE_COPY, NULL), 0);
    burst(&a, SLOTS);
    uint64_t initial, dirty;
    assert_int_equal(ufio_client_mig_precopy_info(a.c, &initial, &dirty), 0);
    size_t pre = pump(a.c, b.c, NULL, 0);
    assert_true(pre > 0 && pre < 4096); /* the stream header and descriptor only */
    burst(&a, SLOTS);

    /* requests published, not yet notified, when the stop comes ... */
    for (unsigned i = 0; i < 6; i++)
        publish(i, (uint32_t)(100 + i), i != 5);
    uint16_t served = used_idx();
    assert_int_equal(ufio_client_mig_set_state(a.c, UFIO_MIG_STOP_COPY, NULL), 0);
    /* ... and more, with a notify that reaches the stopped source: it takes nothing */
    for (unsigned i = 6; i < 10; i++)
        publish(i, (uint32_t)(200 + i), true);
    notify(&a);
    assert_int_equal(used_idx(), served);
    assert_int_equal(ufio_client_irq_wait(g.irq[1], 0), 0);
    struct snap sa, sb;
    snapshot(&a, &sa);
    assert_int_equal(sa.common[C_STATUS], S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    assert_true(sa.msix_ctl & 0x8000);

    size_t rest = pump(a.c, b.c, NULL, 0);
    assert_true(rest > 0);
    assert_int_equal(ufio_client_mig_set_state(b.c, UFIO_MIG_STOP, NULL), 0);
    assert_int_equal(used_idx(), served); /* loaded, not running: still nothing taken */
    assert_int_equal(ufio_client_mig_set_state(b.c, UFIO_MIG_RUNNING, NULL), 0);
    /* the destination serves what the driver published while the source was stopped */
    assert_int_equal(reap(), 10);
    expect_irq(g.irq[1], "completions from the destination");
    assert_int_equal(ufio_client_mig_set_state(a.c, UFIO_MIG_STOP, NULL), 0);
    assert_int_equal(mig_state(&a), UFIO_MIG_STOP);
    assert_int_equal(mig_state(&b), UFIO_MIG_RUNNING);

    /* the same device on both ends, as a driver reads it */
    snapshot(&b, &sb);
    assert_memory_equal(sa.common, sb.common, C_END);
    assert_int_equal(sa.msix_ctl, sb.msix_ctl);
    assert_memory_equal(sa.msix_table, sb.msix_table, sizeof(sa.msix_table));
    assert_int_equal(get16(sb.common + C_QSIZE), QS);
    assert_int_equal(get16(sb.common + C_QMSIX), 1);
    assert_int_equal(get16(sb.common + C_MSIX), 0);
    assert_int_equal(get64(sb.common + C_QDESC), MEM_IOVA + DESC_OFF);
    assert_int_equal(get64(sb.common + C_QDEVICE), MEM_IOVA + USED_OFF);
    assert_int_equal(get32(sb.common + C_GF), 1); /* gfselect 1: VERSION_1 */

    /* (within a queue of where it stopped) the stopped source never touches the rings again: not on a notify, nor
     * when its driver leaves (the device then runs again, without the memory) */
    uint16_t end = used_idx();
    publish(0, 1, true);
    notify(&a);
    assert_int_equal(used_idx(), end);
    side_stop(&a);
    assert_int_equal(used_idx(), end);
    notify(&b);
    assert_int_equal(reap(), 1);

    /* the I/O goes on at the destination, from where the source left the rings */
    for (int i = 0; i < 8; i++)
        burst(&b, SLOTS);
    verify_disk(&b);
    burst(&b, SLOTS);
    verify_disk(&b);
    side_stop(&b);
}

/* A destination that cannot load the source's device: refused before any
 * device state moves; the source runs on and serves what was published meanwhile. */
static void test_incompatible_refused(void **st)
{
    char small[64];
    snprintf(small, sizeof(small), "/tmp/ufio-vblk-mig-small.XXXXXX");
    int fd = mkstemp(small);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 1 << 20), 0);
    const char *other[][2] = { { small, NULL }, { disk, "--readonly" } };
    struct side a;
    side_start(&a, disk, NULL);
    bring_up(&a);
    burst(&a, SLOTS);
    for (int k = 0; k < 2; k++) {
        struct side b;
        side_start(&b, other[k][0], other[k][1]);
        assert_int_equal(ufio_client_mig_set_state(b.c, UFIO_MIG_RESUMING, NULL), 0);
        assert_int_equal(ufio_client_mig_set_state(a.c, UFIO_MIG_STOP_COPY, NULL), 0);
        publish(0, 7, true);
        static uint8_t buf[64 * 1024];
        size_t got;
        assert_int_equal(ufio_client_mig_data_read(a.c, buf, sizeof(buf), &got), 0);
        assert_true(ufio_client_mig_data_write(b.c, buf, got) < 0);
        assert_true(ufio_client_mig_set_state(b.c, UFIO_MIG_STOP, NULL) < 0);
        /* the source resumes and serves the request published while it was stopped */
        assert_int_equal(ufio_client_mig_set_state(a.c, UFIO_MIG_RUNNING, NULL), 0);
        assert_int_equal(reap(), 1);
        burst(&a, SLOTS);
        assert_int_equal(ufio_client_reset(b.c), 0);
        side_stop(&b);
    }
    verify_disk(&a);
    side_stop(&a);
    close(fd);
    unlink(small);
}

/* Re-frames a captured stream after its device record was edited: the CRC
 * over every payload but the descriptor's and the payload total are recomputed, so only the device's
 * own checks stand between the record and the device. */
static void reframe(uint8_t *s, size_t n)
{
    /* stream v2: each record carries its own CRC-32C; END chains the DATA and
     * DEVCFG records' CRCs and counts the DATA records */
    uint32_t chain = 0, nrec = 0;
    uint64_t total = 0;
    size_t off = UFIO_MIG_HDR_SIZE;
    while (off + UFIO_MIG_REC_HDR <= n) {
        uint16_t tag = get16(s + off);
        uint32_t len = get32(s + off + 4);
        uint8_t *body = s + off + UFIO_MIG_REC_HDR;
        assert_true(off + UFIO_MIG_REC_HDR + len <= n);
        if (tag == UFIO_MIG_TAG_END) {
            ufio_mig_put_end(body, total, chain, nrec);
            ufio_mig_frame(s + off, tag, get16(s + off + 2), body, len);
            return;
        }
        ufio_mig_frame(s + off, tag, get16(s + off + 2), body, len);
        uint32_t crc = get32(s + off + 8);
        if (tag == UFIO_MIG_TAG_DATA || tag == UFIO_MIG_TAG_DEVCFG)
            chain = ufio_mig_crc_chain(chain, crc);
        if (tag == UFIO_MIG_TAG_DATA) {
            total += len;
            nrec++;
        }
        off += UFIO_MIG_REC_HDR + len;
    }
    fail_msg("no end record");
}

/* The device's record inside a stream: the first DATA record. */
static uint8_t *device_record(uint8_t *s, size_t n, uint32_t *len)
{
    size_t off = UFIO_MIG_HDR_SIZE;
    while (off + UFIO_MIG_REC_HDR <= n) {
        uint32_t l = get32(s + off + 4);
        if (get16(s + off) == UFIO_MIG_TAG_DATA) {
            *len = l;
            return s + off + UFIO_MIG_REC_HDR;
        }
        off += UFIO_MIG_REC_HDR + l;
    }
    fail_msg("no device record");
    return NULL;
}

static void test_damaged_record_refused(void **st)
{
    struct side a, b;
    side_start(&a, disk, NULL);
    side_start(&b, disk, NULL);
    bring_up(&a);
    burst(&a, SLOTS);
    static uint8_t stream[256 * 1024], bad[256 * 1024];
    assert_int_equal(ufio_client_mig_set_state(a.c, UFIO_MIG_STOP_COPY, NULL), 0);
    size_t n = pump(a.c, NULL, stream, sizeof(stream));
    assert_int_equal(ufio_client_mig_set_state(a.c, UFIO_MIG_RUNNING, NULL), 0);
    uint32_t len = 0;
    size_t rec = (size_t)(device_record(stream, n, &len) - stream);
    assert_int_equal(len, 54 + 33);
    /* byte offsets in the record (docs/virtio-blk.md "Migration"): guest features at
     * 24, msix_config 40, needs-reset 46, pending notifies 48, queue 0 size 54,
     * its vector 56, desc 59, and one byte too many or too few */
    struct { size_t at; uint8_t xor; int grow; } damage[] = {
        { 0, 0x01, 0 },       /* magic */
        { 4, 0x02, 0 },       /* version */
        { 8, 0x01, 0 },       /* host features */
        { 16, 0x01, 0 },      /* capacity */
        { 24 + 7, 0x80, 0 },  /* a guest feature nobody offered (bit 63) */
        { 40, 0x05, 0 },      /* config vector 5 of 2 */
        { 46, 0x02, 0 },      /* needs-reset flag 2 */
        { 48, 0x02, 0 },      /* notify pending on queue 1 */
        { 54, 0x01, 0 },      /* queue size 65: not a power of two */
        { 56, 0x04, 0 },      /* queue vector 5 */
        { 59, 0x08, 0 },      /* misaligned descriptor table */
        { 0, 0, 1 },          /* a trailing byte */
        { 0, 0, -1 },         /* one byte short */
    };
    for (size_t k = 0; k < sizeof(damage) / sizeof(damage[0]); k++) {
        size_t m = n;
        memcpy(bad, stream, n);
        uint32_t l = len;
        if (damage[k].grow) {
            l = (uint32_t)((int)len + damage[k].grow);
            memmove(bad + rec + l, stream + rec + len, n - rec - len);
            m = (size_t)((ptrdiff_t)n + damage[k].grow);
            put32(bad + rec - UFIO_MIG_REC_HDR + 4, l);
            if (damage[k].grow > 0)
                bad[rec + len] = 0;
        } else {
            bad[rec + damage[k].at] ^= damage[k].xor;
        }
        reframe(bad, m);
        assert_int_equal(ufio_client_mig_set_state(b.c, UFIO_MIG_RESUMING, NULL), 0);
        /* the stream is loaded as it arrives: a bad record is refused by the write
         * that completes it, or by RESUMING -> STOP for what only the end shows */
        int werr = ufio_client_mig_data_write(b.c, bad, m);
        if (werr != 0 && werr != -EINVAL)
            fail_msg("damage %zu: MIG_DATA_WRITE gave %d", k, werr);
        int err = ufio_client_mig_set_state(b.c, UFIO_MIG_STOP, NULL);
        if (err != -EINVAL)
            fail_msg("damage %zu: RESUMING -> STOP gave %d, not -EINVAL", k, err);
        assert_int_equal(mig_state(&b), UFIO_MIG_ERROR);
        assert_int_equal(ufio_client_reset(b.c), 0);
        /* nothing was applied: the destination's driver state is still a fresh device */
        assert_int_equal(CR(&b, C_STATUS, 1), 0);
        assert_int_equal(CR(&b, C_QENABLE, 2), 0);
    }
    /* the untouched stream, re-framed the same way, loads: the checks above were the device's */
    memcpy(bad, stream, n);
    reframe(bad, n);
    assert_int_equal(ufio_client_mig_set_state(b.c, UFIO_MIG_RESUMING, NULL), 0);
    assert_int_equal(ufio_client_mig_data_write(b.c, bad, n), 0);
    assert_int_equal(ufio_client_mig_set_state(b.c, UFIO_MIG_RUNNING, NULL), 0);
    assert_int_equal(CR(&b, C_STATUS, 1), S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    assert_int_equal(ufio_client_mig_set_state(a.c, UFIO_MIG_STOP, NULL), 0);
    burst(&b, SLOTS);
    verify_disk(&b);
    side_stop(&a);
    side_stop(&b);
}


/* ufio-migrate moves the device while the driver keeps the source busy: the
 * driver's notify during STOP_COPY waits (held) and is answered once the
 * migration is over; the destination has served what was published by then;
 * the rest is served after a notify to the destination. */
static void test_tool_migrates_busy_device(void **st)
{
    if (!migrate_bin)
        skip();
    struct side a, b;
    side_start(&a, disk, NULL);
    side_start(&b, disk, NULL);
    bring_up(&a);
    for (int i = 0; i < 4; i++)
        burst(&a, SLOTS);
    struct snap sa, sb;
    snapshot(&a, &sa);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execl(migrate_bin, migrate_bin, "--from", a.srv.path, "--to", b.srv.path, "--quiet", (char *)NULL);
        _exit(127);
    }
    /* busy until a burst is not (wholly) served by the source, or the tool is done */
    unsigned bursts = 0, pending = 0;
    int status = 0;
    bool exited = false;
    for (;;) {
        for (unsigned i = 0; i < SLOTS; i++)
            publish(i, (uint32_t)((g.seq * 5 + i * 17) % BLOCKS), i % 4 != 3);
        /* once migrated away the source refuses the doorbell (a write it would lose) */
        uint8_t z[2] = { 0 };
        int nerr = ufio_client_region_write(a.c, a.bar, a.notify, z, 2);
        if (nerr != -ENODEV)
            assert_int_equal(nerr, 0);
        unsigned got = reap();
        bursts++;
        if (got < SLOTS) {
            pending = SLOTS - got;
            break;
        }
        uint64_t v;
        while (read(g.irq[1], &v, 8) == 8)
            ;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            exited = true;
            break;
        }
    }
    if (!exited)
        assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(bursts >= 1);
    /* the source rests stopped; the destination runs */
    assert_int_equal(mig_state(&a), UFIO_MIG_STOP);
    assert_int_equal(mig_state(&b), UFIO_MIG_RUNNING);
    if (pending) {
        notify(&b);
        assert_int_equal(reap(), pending);
    }
    /* from outside: an observer sees the destination's config space with MSI-X on */
    struct ufio_client_opts o = { .size = sizeof(o), .role = UFIO_ROLE_OBSERVER_REQ };
    struct ufio_client *obs = NULL;
    assert_int_equal(ufio_client_connect(b.srv.path, &o, &obs), 0);
    uint8_t cfg_a[256], cfg_b[256];
    assert_int_equal(ufio_client_region_read(obs, UFIO_PCI_CONFIG_REGION, 0, cfg_b, sizeof(cfg_b)), 0);
    assert_int_equal(ufio_client_region_read(a.c, UFIO_PCI_CONFIG_REGION, 0, cfg_a, sizeof(cfg_a)), 0);
    assert_memory_equal(cfg_a, cfg_b, sizeof(cfg_a));
    unsigned ost;
    assert_int_equal(ufio_client_mig_get_state(obs, &ost), 0);
    assert_int_equal(ost, UFIO_MIG_RUNNING);
    ufio_client_destroy(obs);
    snapshot(&b, &sb);
    assert_memory_equal(sa.common + C_MSIX, sb.common + C_MSIX, C_END - C_MSIX);
    assert_int_equal(sa.msix_ctl, sb.msix_ctl);
    for (int i = 0; i < 4; i++)
        burst(&b, SLOTS);
    verify_disk(&b);
    side_stop(&a);
    side_stop(&b);
}

/* Starts `ufio-virtio-blk --file=F --takeover=PATH` (env NAME=VALUE or NULL); its stdout is *out. */
static pid_t takeover_start(const char *path, const char *env, int *out)
{
    int pfd[2];
    assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
    char filearg[96], tk[160];
    snprintf(filearg, sizeof(filearg), "--file=%s", disk);
    snprintf(tk, sizeof(tk), "--takeover=%s", path);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pfd[1], 1);
        if (env)
            putenv((char *)env);
        execl(server_bin, server_bin, filearg, tk, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    if (nstarted < 8)
        started[nstarted++] = pid;
    *out = pfd[0];
    return pid;
}

/* Has the new process said "listening on" (1), exited without (-1), or not yet (0)? */
static int takeover_done(int out, char *buf, size_t *got)
{
    struct pollfd p = { .fd = out, .events = POLLIN };
    if (poll(&p, 1, 0) <= 0)
        return 0;
    ssize_t n = read(out, buf + *got, 511 - *got);
    if (n <= 0)
        return -1;
    *got += (size_t)n;
    buf[*got] = 0;
    return strstr(buf, "listening on") ? 1 : 0;
}

static int exit_status(pid_t pid)
{
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    for (unsigned i = 0; i < nstarted; i++)
        if (started[i] == pid)
            started[i] = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int pid_fds(pid_t pid)
{
    struct srv s = { .pid = pid };
    return srv_fd_count(&s);
}

/*
 * The driver keeps bursting on its one connection while the server process
 * is replaced by `--takeover`, five times: every burst is answered whole
 * (by the old or the new process), device state and MSI-X read back equal,
 * the old process exits 0, the disk equals the model, the survivor's fd
 * count is the first one's.
 */
static void test_takeover_busy(void **st)
{
    struct side a;
    side_start(&a, disk, NULL);
    bring_up(&a);
    burst(&a, SLOTS);
    struct snap s0, s1;
    snapshot(&a, &s0);
    int fds0 = pid_fds(a.srv.pid);
    for (int round = 0; round < 5; round++) {
        int out;
        pid_t next = takeover_start(a.srv.path, NULL, &out);
        char buf[512];
        size_t got = 0;
        int done = 0;
        unsigned bursts = 0;
        while (!done || bursts < 2) {
            burst(&a, SLOTS);
            bursts++;
            if (!done)
                done = takeover_done(out, buf, &got);
            assert_true(done >= 0);
        }
        close(out);
        assert_int_equal(exit_status(a.srv.pid), 0);
        a.srv.pid = next;
    }
    snapshot(&a, &s1);
    assert_memory_equal(s0.common + C_MSIX, s1.common + C_MSIX, C_END - C_MSIX);
    assert_int_equal(s0.msix_ctl, s1.msix_ctl);
    assert_memory_equal(s0.msix_table, s1.msix_table, sizeof(s0.msix_table));
    assert_int_equal(mig_state(&a), UFIO_MIG_RUNNING);
    verify_disk(&a);
    assert_int_equal(pid_fds(a.srv.pid), fds0);
    side_stop(&a);
}

/* The new process dies at each step: the old one serves every burst on, fds back where they were. */
static void test_takeover_faults(void **st)
{
    static const char *const steps[] = { "precopy", "stream", "before-ack" };
    struct side a;
    side_start(&a, disk, NULL);
    bring_up(&a);
    burst(&a, SLOTS);
    int fds0 = pid_fds(a.srv.pid);
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        char env[64];
        snprintf(env, sizeof(env), "UFIO_TAKEOVER_FAIL_AT=%s", steps[i]);
        int out;
        pid_t next = takeover_start(a.srv.path, env, &out);
        char buf[512];
        size_t got = 0;
        int done = 0;
        while (!done) {
            burst(&a, SLOTS);
            done = takeover_done(out, buf, &got);
        }
        assert_int_equal(done, -1);
        close(out);
        assert_int_equal(exit_status(next), 9);
        burst(&a, SLOTS);
        assert_int_equal(mig_state(&a), UFIO_MIG_RUNNING);
        assert_int_equal(srv_wait_fd_count(&a.srv, fds0), fds0);
    }
    verify_disk(&a);
    side_stop(&a);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s UFIO_VIRTIO_BLK_BINARY [UFIO_MIGRATE_BINARY]\n", argv[0]);
        return 2;
    }
    server_bin = argv[1];
    migrate_bin = argc > 2 ? argv[2] : NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_busy_migration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incompatible_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_record_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tool_migrates_busy_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_takeover_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_takeover_faults, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
