/*
 * The sample server as a real process, driven with raw bytes: every reply is
 * checked byte by byte, and each malformed request must get its error reply
 * with the right errno while the connection keeps serving.
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
#include <linux/sockios.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static const char *server_bin;
static struct srv S;
static struct rmsg R; /* large: keep off the stack */

enum { VERSION = 1, DMA_MAP, DMA_UNMAP, GET_INFO, GET_REGION_INFO, GET_IO_FDS, GET_IRQ_INFO,
       SET_IRQS, REGION_READ, REGION_WRITE, DMA_READ, DMA_WRITE, RESET, WRITE_MULTI = 15,
       FEATURE = 16, MIG_READ = 17, MIG_WRITE = 18 };

static int idle_fds; /* the server's fd count with no client, taken before the first one */

static int group_setup(void **st)
{
    if (srv_start(&S, server_bin, NULL))
        return -1;
    idle_fds = srv_fd_count(&S);
    return idle_fds > 0 ? 0 : -1;
}

/* Waits (with a deadline) until the peer has read every byte we sent on fd: for a UNIX stream
 * socket SIOCOUTQ counts the bytes still queued at the peer. */
static void wait_peer_read_all(int fd)
{
    int q = -1;
    for (int i = 0; i < 5000; i++) {
        assert_int_equal(ioctl(fd, SIOCOUTQ, &q), 0);
        if (q == 0)
            return;
        struct pollfd none = { .fd = -1 };
        poll(&none, 1, 1); /* the peer is another process: nothing of ours to wait on */
    }
    fail_msg("the server left %d bytes unread for 5 s", q);
}

static int group_teardown(void **st)
{
    return srv_stop(&S) == 0 ? 0 : -1;
}

/* every connection a test opens, closed after it even when it fails */
static int open_fds[64];
static int n_open;

static int teardown_conns(void **st)
{
    for (int i = 0; i < n_open; i++)
        close(open_fds[i]);
    n_open = 0;
    return 0;
}

static int track(int fd)
{
    if (fd >= 0 && n_open < 64)
        open_fds[n_open++] = fd;
    return fd;
}

static void cclose(int fd)
{
    for (int i = 0; i < n_open; i++)
        if (open_fds[i] == fd) {
            open_fds[i] = open_fds[--n_open];
            break;
        }
    close(fd);
}

/* a negotiated connection without twin socket */
static int conn(void)
{
    int fd = track(raw_connect(S.path));
    assert_true(fd >= 0);
    assert_int_equal(raw_version(fd, "{\"capabilities\":{\"max_msg_fds\":8}}", &R), 0);
    assert_int_equal(R.nfds, 0);
    return fd;
}

static void assert_serving(int fd)
{
    uint8_t p[16] = { 0 };
    put32(p, 16);
    assert_int_equal(xfer(fd, 0x7777, GET_INFO, p, 16, NULL, 0, &R), 0);
    assert_int_equal(R.id, 0x7777);
    assert_int_equal(R.flags, 1);
    assert_int_equal(R.len, 16);
    assert_int_equal(get32(R.payload + 8), 9);
    assert_int_equal(get32(R.payload + 12), 5);
}

static uint32_t cfg_read32(int fd, uint32_t off)
{
    uint8_t p[16];
    put64(p, off);
    put32(p + 8, 7);
    put32(p + 12, 4);
    assert_int_equal(xfer(fd, 3, REGION_READ, p, 16, NULL, 0, &R), 0);
    assert_int_equal(R.flags, 1);
    assert_int_equal(R.len, 20);
    return get32(R.payload + 16);
}

static void region_write32(int fd, uint32_t region, uint64_t off, uint32_t v)
{
    uint8_t p[20];
    put64(p, off);
    put32(p + 8, region);
    put32(p + 12, 4);
    put32(p + 16, v);
    assert_int_equal(xfer(fd, 4, REGION_WRITE, p, 20, NULL, 0, &R), 0);
    assert_int_equal(R.flags, 1);
    assert_int_equal(R.len, 16);
}

static uint32_t region_read32(int fd, uint32_t region, uint64_t off)
{
    uint8_t p[16];
    put64(p, off);
    put32(p + 8, region);
    put32(p + 12, 4);
    assert_int_equal(xfer(fd, 5, REGION_READ, p, 16, NULL, 0, &R), 0);
    assert_int_equal(R.flags, 1);
    assert_int_equal(R.len, 20);
    return get32(R.payload + 16);
}

/* A REGION_READ/WRITE of len (1..8) bytes: 0 or the error reply's errno (negative). */
static int region_rw(int fd, uint32_t region, uint64_t off, uint8_t *data, uint32_t len, bool write)
{
    uint8_t p[24];
    put64(p, off);
    put32(p + 8, region);
    put32(p + 12, len);
    if (write)
        memcpy(p + 16, data, len);
    assert_int_equal(xfer(fd, 6, write ? REGION_WRITE : REGION_READ, p, 16 + (write ? len : 0), NULL, 0, &R), 0);
    if (R.flags & 0x20)
        return -(int)R.err;
    assert_int_equal(R.len, 16 + (write ? 0 : len));
    assert_int_equal(get32(R.payload + 12), len);
    if (!write)
        memcpy(data, R.payload + 16, len);
    return 0;
}

/* ---- positive behaviour --------------------------------------------------- */

static void test_version_negotiation(void **st)
{
    int fd = track(raw_connect(S.path));
    uint8_t p[256];
    put16(p, 0);
    put16(p + 2, 7); /* a minor above ours: the reply's is the lower one */
    const char *j = "{\"capabilities\":{\"max_msg_fds\":4,\"unknown_key\":[1,2],\"pgsizes\":4096}}";
    memcpy(p + 4, j, strlen(j) + 1);
    assert_int_equal(xfer(fd, 42, VERSION, p, 4 + strlen(j) + 1, NULL, 0, &R), 0);
    assert_int_equal(R.id, 42);
    assert_int_equal(R.cmd, VERSION);
    assert_int_equal(R.flags, 1);
    assert_int_equal(get16(R.payload), 0);
    assert_int_equal(get16(R.payload + 2), 2);
    assert_int_equal(R.payload[R.len - 1], 0);
    assert_non_null(strstr((char *)R.payload + 4, "\"max_data_xfer_size\""));
    assert_null(strstr((char *)R.payload + 4, "twin_socket")); /* not proposed */
    assert_int_equal(R.nfds, 0);

    /* QEMU proposes 0.0: the reply must be 0.0 */
    int fd2;
    cclose(fd);
    fd2 = track(raw_connect(S.path));
    put16(p + 2, 0);
    assert_int_equal(xfer(fd2, 1, VERSION, p, 4, NULL, 0, &R), 0);
    assert_int_equal(get16(R.payload + 2), 0);
    cclose(fd2);
}

static void test_device_info_and_regions(void **st)
{
    int fd = conn();
    assert_serving(fd);
    uint8_t p[32] = { 0 };
    /* config space: ids, class, revision, header type */
    assert_int_equal(cfg_read32(fd, 0), 0x00015546);
    assert_int_equal(cfg_read32(fd, 8), 0xff000001);
    assert_int_equal(cfg_read32(fd, 0x2c), 0x00015546);
    /* BAR2 info: 64 KiB, mmap with a sparse cap and an fd */
    put32(p, 256);
    put32(p + 8, 2);
    assert_int_equal(xfer(fd, 9, GET_REGION_INFO, p, 32, NULL, 0, &R), 0);
    assert_int_equal(R.flags, 1);
    assert_int_equal(get32(R.payload + 4), 0xf); /* read write mmap caps */
    assert_int_equal(get32(R.payload + 8), 2);
    assert_int_equal(get32(R.payload + 12), 32);
    assert_int_equal(get64(R.payload + 16), 65536);
    assert_int_equal(get32(R.payload), R.len);
    assert_int_equal(get16(R.payload + 32), 1); /* SPARSE_MMAP */
    assert_int_equal(get32(R.payload + 40), 1); /* one area */
    assert_int_equal(get64(R.payload + 48), 0);
    assert_int_equal(get64(R.payload + 56), 65536);
    assert_int_equal(R.nfds, 1);
    uint8_t *mem = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, R.fds[0], (off_t)get64(R.payload + 24));
    assert_true(mem != MAP_FAILED);
    close(R.fds[0]);
    assert_int_equal(mem[0x1234], 0x34);
    mem[0x100] = 0xab;
    /* the same byte through a REGION_READ */
    assert_int_equal(region_read32(fd, 2, 0x100) & 0xff, 0xab);
    munmap(mem, 65536);

    /* a too-small argsz gets the 32-byte head with the needed size, no fd */
    put32(p, 32);
    assert_int_equal(xfer(fd, 10, GET_REGION_INFO, p, 32, NULL, 0, &R), 0);
    assert_int_equal(R.len, 32);
    assert_true(get32(R.payload) > 32);
    assert_int_equal(R.nfds, 0);

    /* BAR0 trapped registers; BAR1 I/O; absent BAR3 */
    assert_int_equal(region_read32(fd, 0, 0), 0x4f494655);
    region_write32(fd, 0, 8, 0xdeadbeef);
    assert_int_equal(region_read32(fd, 0, 8), 0xdeadbeef);
    assert_int_equal(region_read32(fd, 1, 0), 0x4f494655);
    put32(p, 32);
    put32(p + 8, 3);
    assert_int_equal(xfer(fd, 11, GET_REGION_INFO, p, 32, NULL, 0, &R), 0);
    assert_int_equal(get64(R.payload + 16), 0);
    assert_int_equal(get32(R.payload + 4), 0);
    cclose(fd);

    /* state survives a reconnect */
    fd = conn();
    assert_int_equal(region_read32(fd, 0, 8), 0xdeadbeef);
    cclose(fd);
}

/* The sample's I/O BAR answers 1-, 2- and 4-byte accesses as port I/O does: each
 * byte of ID at its own offset, narrow writes change only their bytes of SCRATCH. */
static void test_io_bar_widths(void **st)
{
    int fd = conn();
    uint8_t b[4];
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(region_rw(fd, 1, i, b, 1, false), 0);
        assert_int_equal(b[0], "UFIO"[i]);
    }
    assert_int_equal(region_rw(fd, 1, 2, b, 2, false), 0);
    assert_memory_equal(b, "IO", 2);
    uint8_t w4[4] = { 0x11, 0x22, 0x33, 0x44 };
    assert_int_equal(region_rw(fd, 1, 4, w4, 4, true), 0);
    uint8_t w1 = 0xaa, w2[2] = { 0xbb, 0xcc };
    assert_int_equal(region_rw(fd, 1, 5, &w1, 1, true), 0);
    assert_int_equal(region_rw(fd, 1, 6, w2, 2, true), 0);
    assert_int_equal(region_read32(fd, 1, 4), 0xccbbaa11);
    assert_int_equal(region_rw(fd, 1, 7, b, 1, false), 0);
    assert_int_equal(b[0], 0xcc);
    assert_int_equal(region_rw(fd, 1, 4, b, 2, false), 0);
    assert_int_equal(get16(b), 0xaa11);
    /* unaligned or odd widths are refused, and change nothing */
    assert_int_equal(region_rw(fd, 1, 5, w2, 2, true), -EINVAL);
    assert_int_equal(region_rw(fd, 1, 4, b, 3, false), -EINVAL);
    assert_int_equal(region_rw(fd, 1, 6, w4, 4, true), -EINVAL);
    assert_int_equal(region_read32(fd, 1, 4), 0xccbbaa11);
    region_write32(fd, 1, 4, 0);
    cclose(fd);
}

static void test_irq_info(void **st)
{
    int fd = conn();
    static const uint32_t want_count[5] = { 1, 1, 4, 1, 1 };
    for (uint32_t i = 0; i < 5; i++) {
        uint8_t p[16] = { 0 };
        put32(p, 16);
        put32(p + 8, i);
        assert_int_equal(xfer(fd, 20, GET_IRQ_INFO, p, 16, NULL, 0, &R), 0);
        assert_int_equal(R.flags, 1);
        assert_int_equal(get32(R.payload + 8), i);
        assert_int_equal(get32(R.payload + 12), want_count[i]);
        assert_true(get32(R.payload + 4) & 1); /* EVENTFD */
    }
    cclose(fd);
}

static bool efd_fired(int efd, int timeout_ms)
{
    struct pollfd p = { .fd = efd, .events = POLLIN };
    if (poll(&p, 1, timeout_ms) != 1)
        return false;
    uint64_t v;
    return read(efd, &v, 8) == 8 && v > 0;
}

static void test_msix_interrupt(void **st)
{
    int fd = conn();
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    uint8_t p[20];
    put32(p, 20);
    put32(p + 4, 0x04 | 0x20); /* DATA_EVENTFD | ACTION_TRIGGER */
    put32(p + 8, 2);
    put32(p + 12, 0);
    put32(p + 16, 1);
    assert_int_equal(xfer(fd, 30, SET_IRQS, p, 20, &efd, 1, &R), 0);
    assert_int_equal(R.flags, 1);
    /* find the MSI-X cap and enable it */
    uint32_t off = cfg_read32(fd, 0x34) & 0xff;
    while (off && (cfg_read32(fd, off) & 0xff) != 0x11)
        off = (cfg_read32(fd, off) >> 8) & 0xff;
    assert_true(off != 0);
    uint32_t ctl = cfg_read32(fd, off);
    assert_int_equal((ctl >> 16) & 0x7ff, 3); /* table size 4 */
    /* ufio_dev_add_msix() placed them: table at BAR4+0, the PBA right after its 4 entries */
    assert_int_equal(cfg_read32(fd, off + 4), 0x000 | 4);
    assert_int_equal(cfg_read32(fd, off + 8), 0x040 | 4);
    uint8_t w[20];
    put64(w, off + 2);
    put32(w + 8, 7);
    put32(w + 12, 2);
    put16(w + 16, 0x8000);
    assert_int_equal(xfer(fd, 31, REGION_WRITE, w, 18, NULL, 0, &R), 0);
    /* a client that leaves the table alone (QEMU emulates it itself) gets interrupts */
    region_write32(fd, 0, 0x0c, 0);
    assert_true(efd_fired(efd, 1000));
    /* once the client uses our table, its mask bits count: mask vector 0 */
    region_write32(fd, 4, 12, 1);
    region_write32(fd, 0, 0x0c, 0);
    assert_false(efd_fired(efd, 50));
    assert_int_equal(region_read32(fd, 4, 0x040) & 1, 1);
    /* unmask vector 0: the pending interrupt is delivered */
    region_write32(fd, 4, 12, 0);
    assert_true(efd_fired(efd, 1000));
    assert_int_equal(region_read32(fd, 4, 0x040) & 1, 0);
    region_write32(fd, 0, 0x0c, 0);
    assert_true(efd_fired(efd, 1000));
    /* disable MSI-X again for the other tests */
    put16(w + 16, 0);
    assert_int_equal(xfer(fd, 32, REGION_WRITE, w, 18, NULL, 0, &R), 0);
    close(efd);
    cclose(fd);
}

static void test_dma_mapped_memory(void **st)
{
    int fd = conn();
    int mfd = memfd_create("guest", MFD_CLOEXEC);
    assert_int_equal(ftruncate(mfd, 1 << 20), 0);
    uint8_t *g = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    for (int i = 0; i < 4096; i++)
        g[i] = (uint8_t)(i * 7);
    uint8_t p[32];
    put32(p, 32);
    put32(p + 4, 3);
    put64(p + 8, 0);
    put64(p + 16, 0x100000000ull);
    put64(p + 24, 1 << 20);
    assert_int_equal(xfer(fd, 40, DMA_MAP, p, 32, &mfd, 1, &R), 0);
    assert_int_equal(R.flags, 1);
    assert_int_equal(R.len, 0);
    /* mapping the same range again: EEXIST */
    assert_int_equal(xfer(fd, 41, DMA_MAP, p, 32, NULL, 0, &R), 0);
    assert_int_equal(R.flags, 0x21);
    assert_int_equal(R.err, EEXIST);
    /* device DMA: read 4 KiB at +0, write XOR 0x5a at +64 KiB */
    region_write32(fd, 0, 0x18, 0);
    region_write32(fd, 0, 0x1c, 1);
    region_write32(fd, 0, 0x20, 0x10000);
    region_write32(fd, 0, 0x24, 1);
    region_write32(fd, 0, 0x28, 4096);
    region_write32(fd, 0, 0x2c, 1);
    assert_int_equal(region_read32(fd, 0, 0x30), 1);
    uint32_t sum = 0;
    for (int i = 0; i < 4096; i++) {
        sum += (uint8_t)(i * 7);
        assert_int_equal(g[0x10000 + i], (uint8_t)(i * 7) ^ 0x5a);
    }
    assert_int_equal(region_read32(fd, 0, 0x34), sum);
    /* DMA outside the mapping fails cleanly */
    region_write32(fd, 0, 0x20, 0xfffff800u);
    region_write32(fd, 0, 0x2c, 1);
    assert_int_equal(region_read32(fd, 0, 0x30), 0x80000000u | EFAULT);
    /* unmap: reply echoes the request */
    uint8_t u[24];
    put32(u, 24);
    put32(u + 4, 0);
    put64(u + 8, 0x100000000ull);
    put64(u + 16, 1 << 20);
    assert_int_equal(xfer(fd, 42, DMA_UNMAP, u, 24, NULL, 0, &R), 0);
    assert_int_equal(R.flags, 1);
    assert_int_equal(R.len, 24);
    assert_memory_equal(R.payload, u, 24);
    munmap(g, 1 << 20);
    close(mfd);
    cclose(fd);
}

/* ---- DMA by message: the sample's DMA engine, served by hand ---------------------- */

/* DMA_MAP without an fd: the device must ask for [iova, iova+size) by message. */
static void map_by_message(int fd, uint64_t iova, uint64_t size)
{
    uint8_t p[32];
    put32(p, 32);
    put32(p + 4, 3);
    put64(p + 8, 0);
    put64(p + 16, iova);
    put64(p + 24, size);
    assert_int_equal(xfer(fd, 50, DMA_MAP, p, 32, NULL, 0, &R), 0);
    assert_int_equal(R.flags, 1);
}

/* Programs the sample's DMA (docs/sample-device.md) and starts it with a posted
 * write: no reply comes, the device's requests do. */
static void start_dma(int fd, uint64_t src, uint64_t dst, uint32_t len)
{
    region_write32(fd, 0, 0x18, (uint32_t)src);
    region_write32(fd, 0, 0x1c, (uint32_t)(src >> 32));
    region_write32(fd, 0, 0x20, (uint32_t)dst);
    region_write32(fd, 0, 0x24, (uint32_t)(dst >> 32));
    region_write32(fd, 0, 0x28, len);
    uint8_t w[64], wp[20];
    put64(wp, 0x2c);
    put32(wp + 8, 0);
    put32(wp + 12, 4);
    put32(wp + 16, 1);
    size_t n = mk(w, 51, REGION_WRITE, 0x10, wp, 20);
    assert_int_equal(raw_send(fd, w, n, NULL, 0), 0);
}

static struct rmsg D;
static uint8_t dma_rep[16 + 16 + 0x8000];

/* Receives the device's DMA_READ of len bytes at addr on sock and answers it
 * with data, under a head that names head_addr (addr, unless testing a lie). */
static void answer_dma_read(int sock, uint64_t addr, uint64_t head_addr, const uint8_t *data, uint32_t len)
{
    assert_int_equal(raw_recv(sock, &D, 5000), 0);
    assert_int_equal(D.cmd, DMA_READ);
    assert_int_equal(D.flags, 0);
    assert_int_equal(D.len, 16);
    assert_int_equal(get64(D.payload), addr);
    assert_int_equal(get64(D.payload + 8), len);
    put64(dma_rep + 16, head_addr);
    put64(dma_rep + 24, len);
    memcpy(dma_rep + 32, data, len);
    size_t n = mk(dma_rep, D.id, DMA_READ, 1, dma_rep + 16, 16 + len);
    assert_int_equal(raw_send(sock, dma_rep, n, NULL, 0), 0);
}

/* Receives the device's DMA_WRITE at addr on sock (its data is then in D) and
 * acknowledges it; count_u32: the 12-byte reply QEMU sends. */
static void answer_dma_write(int sock, uint64_t addr, uint32_t len, bool count_u32)
{
    assert_int_equal(raw_recv(sock, &D, 5000), 0);
    assert_int_equal(D.cmd, DMA_WRITE);
    assert_int_equal(D.len, 16 + len);
    assert_int_equal(get64(D.payload), addr);
    uint8_t head[16];
    put64(head, addr);
    put64(head + 8, len);
    size_t n = mk(dma_rep, D.id, DMA_WRITE, 1, head, count_u32 ? 12 : 16);
    assert_int_equal(raw_send(sock, dma_rep, n, NULL, 0), 0);
}

static int twin_conn(void)
{
    int fd = track(raw_connect(S.path));
    assert_int_equal(raw_version(fd, "{\"capabilities\":{\"twin_socket\":{\"supported\":true}}}", &R), 0);
    assert_int_equal(R.nfds, 1);
    assert_non_null(strstr((char *)R.payload + 4, "\"fd_index\":0"));
    return fd;
}

/* DMA without an fd goes through DMA_READ/DMA_WRITE on the twin socket. */
static void test_dma_messages_twin_socket(void **st)
{
    int fd = twin_conn();
    int twin = track(R.fds[0]);
    map_by_message(fd, 0x200000, 0x2000);
    static uint8_t guest[0x1000];
    for (int i = 0; i < 0x1000; i++)
        guest[i] = (uint8_t)(i + 3);
    start_dma(fd, 0x200000, 0x201000, 0x1000);
    answer_dma_read(twin, 0x200000, 0x200000, guest, 0x1000);
    answer_dma_write(twin, 0x201000, 0x1000, true);
    for (int i = 0; i < 0x1000; i++)
        assert_int_equal(D.payload[16 + i], (uint8_t)(i + 3) ^ 0x5a);
    /* the posted write got no reply; the next request's reply is the next message */
    assert_int_equal(region_read32(fd, 0, 0x30), 1);
    cclose(twin);
    cclose(fd);
}

/* A big DMA_READ reply is received straight into the device's buffer, and only
 * when its head echoes the request; otherwise the device sees the error. */
static void test_dma_messages_big(void **st)
{
    int fd = twin_conn();
    int twin = track(R.fds[0]);
    map_by_message(fd, 0x200000, 0x10000);
    static uint8_t data[0x8000];
    for (int bad = 0; bad < 2; bad++) {
        for (int i = 0; i < 0x8000; i++)
            data[i] = (uint8_t)(i * 5 + bad);
        start_dma(fd, 0x200000, 0x208000, 0x8000);
        answer_dma_read(twin, 0x200000, bad ? 0x200001 : 0x200000, data, 0x8000);
        if (bad) {
            assert_int_equal(region_read32(fd, 0, 0x30), 0x80000000u | EINVAL);
            break;
        }
        answer_dma_write(twin, 0x208000, 0x8000, false);
        for (int i = 0; i < 0x8000; i++)
            assert_int_equal(D.payload[16 + i], (uint8_t)(i * 5) ^ 0x5a);
        assert_int_equal(region_read32(fd, 0, 0x30), 1);
    }
    cclose(twin);
    cclose(fd);
}

/* A big REGION_WRITE into shared memory that arrives while the device waits for a
 * DMA reply is queued like any command: its data lands only after the DMA command
 * completed, although it is of the kind that is received straight into memory.
 * (Without a twin socket: there the server reads the main socket while it waits.) */
static void test_big_write_waits_behind_dma(void **st)
{
    int fd = conn();
    uint8_t p[32] = { 0 };
    put32(p, 256);
    put32(p + 8, 2);
    assert_int_equal(xfer(fd, 9, GET_REGION_INFO, p, 32, NULL, 0, &R), 0);
    assert_int_equal(R.nfds, 1);
    uint8_t *mem = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, R.fds[0], (off_t)get64(R.payload + 24));
    assert_true(mem != MAP_FAILED);
    close(R.fds[0]);
    memset(mem, 0x5c, 65536);
    map_by_message(fd, 0x200000, 0x2000);
    start_dma(fd, 0x200000, 0x201000, 0x1000);
    assert_int_equal(raw_recv(fd, &D, 5000), 0);
    assert_int_equal(D.cmd, DMA_READ);
    /* the device is inside its DMA now: a 32 KiB write to BAR2 comes in */
    static uint8_t big[16 + 16 + 0x8000];
    uint8_t *bp = big + 16;
    put64(bp, 0);
    put32(bp + 8, 2);
    put32(bp + 12, 0x8000);
    memset(bp + 16, 0xab, 0x8000);
    size_t n = mk(big, 60, REGION_WRITE, 0, bp, 16 + 0x8000);
    assert_int_equal(raw_send(fd, big, n, NULL, 0), 0);
    /* the server has the whole write in hand (read off the socket), and still not applied it */
    wait_peer_read_all(fd);
    assert_int_equal(mem[0], 0x5c);
    assert_int_equal(mem[0x7fff], 0x5c);
    /* answer the DMA: the device finishes, then the write is applied and answered */
    put64(dma_rep + 16, 0x200000);
    put64(dma_rep + 24, 0x1000);
    n = mk(dma_rep, D.id, DMA_READ, 1, dma_rep + 16, 16 + 0x1000);
    assert_int_equal(raw_send(fd, dma_rep, n, NULL, 0), 0);
    answer_dma_write(fd, 0x201000, 0x1000, false);
    assert_int_equal(raw_recv(fd, &R, 5000), 0);
    assert_int_equal(R.id, 60);
    assert_int_equal(R.flags, 1);
    assert_int_equal(mem[0], 0xab);
    assert_int_equal(mem[0x7fff], 0xab);
    assert_int_equal(mem[0x8000], 0x5c);
    munmap(mem, 65536);
}

static void test_posted_writes_in_order(void **st)
{
    int fd = conn();
    uint8_t buf[4096];
    size_t off = 0;
    for (uint32_t i = 0; i < 50; i++) {
        uint8_t wp[20];
        put64(wp, 8);
        put32(wp + 8, 0);
        put32(wp + 12, 4);
        put32(wp + 16, i);
        off += mk(buf + off, (uint16_t)(100 + i), REGION_WRITE, 0x10, wp, 20);
    }
    assert_int_equal(raw_send(fd, buf, off, NULL, 0), 0);
    /* the first message after the burst is the reply to this read */
    assert_int_equal(region_read32(fd, 0, 8), 49);
    assert_int_equal(R.id, 5);
    cclose(fd);
}

static void test_large_write_in_pieces(void **st)
{
    int fd = conn();
    static uint8_t msg[16 + 16 + 65536];
    uint8_t *p = msg + 16;
    put64(p, 0);
    put32(p + 8, 2);
    put32(p + 12, 65536);
    for (int i = 0; i < 65536; i++)
        p[16 + i] = (uint8_t)(i * 13);
    size_t n = mk(msg, 60, REGION_WRITE, 0, p, 16 + 65536);
    /* dribble it out in odd-sized pieces, letting the server read each batch (so it really
     * sees the message arrive in parts) */
    for (size_t o = 0; o < n;) {
        size_t k = n - o < 1531 ? n - o : 1531;
        assert_int_equal(raw_send(fd, msg + o, k, NULL, 0), 0);
        o += k;
        if ((o / 1531) % 8 == 0)
            wait_peer_read_all(fd);
    }
    assert_int_equal(raw_recv(fd, &R, 5000), 0);
    assert_int_equal(R.id, 60);
    assert_int_equal(R.flags, 1);
    uint8_t rp[16];
    put64(rp, 0);
    put32(rp + 8, 2);
    put32(rp + 12, 65536);
    assert_int_equal(xfer(fd, 61, REGION_READ, rp, 16, NULL, 0, &R), 0);
    assert_int_equal(R.len, 16 + 65536);
    assert_memory_equal(R.payload + 16, p + 16, 65536);
    cclose(fd);
}

/* ---- malformed requests: each gets an error reply; the connection lives on ---- */

struct bad {
    const char *name;
    uint16_t cmd;
    uint32_t flags;
    uint8_t payload[64];
    size_t len;
    int nfds;       /* eventfds to attach */
    uint32_t want;  /* errno */
};

#define P(...) { __VA_ARGS__ }

static size_t le(uint8_t *p, const char *fmt, ...)
{
    /* fmt: sequence of 'h' (u16), 'w' (u32), 'q' (u64), 'b' (u8) */
    va_list ap;
    va_start(ap, fmt);
    size_t off = 0;
    for (const char *f = fmt; *f; f++) {
        uint64_t v = va_arg(ap, uint64_t);
        switch (*f) {
        case 'b': p[off++] = (uint8_t)v; break;
        case 'h': put16(p + off, (uint16_t)v); off += 2; break;
        case 'w': put32(p + off, (uint32_t)v); off += 4; break;
        case 'q': put64(p + off, v); off += 8; break;
        }
    }
    va_end(ap);
    return off;
}

#define U(x) ((uint64_t)(x))

static void run_bad(int fd, const char *name, uint16_t cmd, uint32_t flags, const uint8_t *pl, size_t len,
                    int nfds, uint32_t want)
{
    uint8_t buf[256];
    size_t n = mk(buf, 0x4242, cmd, flags, pl, len);
    int fds[4];
    for (int i = 0; i < nfds; i++)
        fds[i] = eventfd(0, EFD_CLOEXEC);
    int before = srv_fd_count(&S);
    assert_int_equal(raw_send(fd, buf, n, fds, nfds), 0);
    int err = raw_recv(fd, &R, 5000);
    if (err || !(R.flags & 0x20) || R.err != want) {
        fprintf(stderr, "case '%s': recv %d flags %#x errno %u (want %u)\n", name, err, R.flags, R.err, want);
        fail();
    }
    assert_int_equal(R.id, 0x4242);
    assert_int_equal(R.cmd, cmd);
    assert_int_equal(R.len, 0); /* an error reply is the header alone */
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    /* fds that came with a rejected message were closed */
    assert_int_equal(srv_wait_fd_count(&S, before), before);
    assert_serving(fd);
}

static void test_malformed_requests(void **st)
{
    int fd = conn();
    uint8_t p[64];
    size_t n;
    int cases = 0;
#define BAD(name, cmd, flags, nfds, want, fmt, ...) \
    do { n = le(p, fmt, __VA_ARGS__); run_bad(fd, name, cmd, flags, p, n, nfds, want); cases++; } while (0)
#define BAD0(name, cmd, flags, nfds, want) \
    do { run_bad(fd, name, cmd, flags, p, 0, nfds, want); cases++; } while (0)

    /* header */
    BAD0("unknown command 0", 0, 0, 0, ENOSYS);
    BAD0("removed command 14", 14, 0, 0, ENOSYS);
    BAD0("HANDOVER from the owner", 19, 0, 0, EACCES); /* ufio's own, the controller's only */
    BAD0("command 20", 20, 0, 0, ENOSYS);
    BAD0("command 0xffff", 0xffff, 0, 0, ENOSYS);
    BAD("reserved flag bits", GET_INFO, 0x100, 0, EINVAL, "wwww", U(16), U(0), U(0), U(0));
    BAD("error flag in a command", GET_INFO, 0x20, 0, EINVAL, "wwww", U(16), U(0), U(0), U(0));
    BAD("message type 2", GET_INFO, 0x2, 0, EINVAL, "wwww", U(16), U(0), U(0), U(0));
    BAD("fds with GET_INFO", GET_INFO, 0, 2, EINVAL, "wwww", U(16), U(0), U(0), U(0));
    BAD("second VERSION", VERSION, 0, 0, EINVAL, "hh", U(0), U(0));
    /* DMA_MAP / DMA_UNMAP */
    BAD("DMA_MAP short", DMA_MAP, 0, 0, EINVAL, "wwqq", U(32), U(3), U(0), U(0x1000));
    BAD("DMA_MAP argsz", DMA_MAP, 0, 0, EINVAL, "wwqqq", U(40), U(3), U(0), U(0x1000), U(0x1000));
    BAD("DMA_MAP flags", DMA_MAP, 0, 0, EINVAL, "wwqqq", U(32), U(0x10), U(0), U(0x1000), U(0x1000));
    BAD("DMA_MAP size 0", DMA_MAP, 0, 0, EINVAL, "wwqqq", U(32), U(3), U(0), U(0x1000), U(0));
    BAD("DMA_MAP wraps", DMA_MAP, 0, 0, EINVAL, "wwqqq", U(32), U(3), U(0), U(0xfffffffffffff000ull), U(0x2000));
    BAD("DMA_MAP unaligned", DMA_MAP, 0, 0, EINVAL, "wwqqq", U(32), U(3), U(0), U(0x1001), U(0x1000));
    BAD("DMA_MAP two fds", DMA_MAP, 0, 2, EINVAL, "wwqqq", U(32), U(3), U(0), U(0x1000), U(0x1000));
    BAD("DMA_MAP non-file fd", DMA_MAP, 0, 1, EINVAL, "wwqqq", U(32), U(3), U(0), U(0x1000), U(0x1000));
    BAD("DMA_UNMAP unknown", DMA_UNMAP, 0, 0, ENOENT, "wwqq", U(24), U(0), U(0x5000), U(0x1000));
    BAD("DMA_UNMAP short", DMA_UNMAP, 0, 0, EINVAL, "wwq", U(24), U(0), U(0x5000));
    BAD("DMA_UNMAP flags", DMA_UNMAP, 0, 0, EINVAL, "wwqq", U(24), U(4), U(0x5000), U(0x1000));
    BAD("DMA_UNMAP all with range", DMA_UNMAP, 0, 0, EINVAL, "wwqq", U(24), U(2), U(0x5000), U(0x1000));
    BAD("DMA_UNMAP dirty bitmap", DMA_UNMAP, 0, 0, ENOTSUP, "wwqq", U(24), U(1), U(0x5000), U(0x1000));
    /* device, region, irq info */
    BAD("GET_INFO argsz < 16", GET_INFO, 0, 0, EINVAL, "wwww", U(8), U(0), U(0), U(0));
    BAD("GET_INFO short", GET_INFO, 0, 0, EINVAL, "ww", U(16), U(0));
    BAD("REGION_INFO index 9", GET_REGION_INFO, 0, 0, EINVAL, "wwwwqq", U(32), U(0), U(9), U(0), U(0), U(0));
    BAD("REGION_INFO index huge", GET_REGION_INFO, 0, 0, EINVAL, "wwwwqq", U(32), U(0), U(0xffffffff), U(0), U(0), U(0));
    BAD("REGION_INFO argsz < 32", GET_REGION_INFO, 0, 0, EINVAL, "wwwwqq", U(16), U(0), U(0), U(0), U(0), U(0));
    BAD("REGION_INFO short", GET_REGION_INFO, 0, 0, EINVAL, "www", U(32), U(0), U(0));
    BAD("IO_FDS index 9", GET_IO_FDS, 0, 0, EINVAL, "wwww", U(16), U(0), U(9), U(0));
    BAD("IRQ_INFO index 5", GET_IRQ_INFO, 0, 0, EINVAL, "wwww", U(16), U(0), U(5), U(0));
    BAD("IRQ_INFO short", GET_IRQ_INFO, 0, 0, EINVAL, "ww", U(16), U(0));
    /* SET_IRQS */
    BAD("SET_IRQS index 5", SET_IRQS, 0, 0, EINVAL, "wwwww", U(20), U(0x21), U(5), U(0), U(1));
    BAD("SET_IRQS two data types", SET_IRQS, 0, 0, EINVAL, "wwwww", U(20), U(0x23), U(2), U(0), U(1));
    BAD("SET_IRQS two actions", SET_IRQS, 0, 0, EINVAL, "wwwww", U(20), U(0x31), U(2), U(0), U(1));
    BAD("SET_IRQS no action", SET_IRQS, 0, 0, EINVAL, "wwwww", U(20), U(0x01), U(2), U(0), U(1));
    BAD("SET_IRQS unknown flag", SET_IRQS, 0, 0, EINVAL, "wwwww", U(20), U(0x121), U(2), U(0), U(1));
    BAD("SET_IRQS argsz mismatch", SET_IRQS, 0, 0, EINVAL, "wwwww", U(24), U(0x21), U(2), U(0), U(1));
    BAD("SET_IRQS beyond vectors", SET_IRQS, 0, 0, EINVAL, "wwwww", U(20), U(0x21), U(2), U(3), U(2));
    BAD("SET_IRQS start overflow", SET_IRQS, 0, 0, EINVAL, "wwwww", U(20), U(0x21), U(2), U(0xffffffff), U(2));
    BAD("SET_IRQS fd count mismatch", SET_IRQS, 0, 1, EINVAL, "wwwww", U(20), U(0x24), U(2), U(0), U(2));
    BAD("SET_IRQS fds with DATA_NONE", SET_IRQS, 0, 1, EINVAL, "wwwww", U(20), U(0x21), U(2), U(0), U(1));
    BAD("SET_IRQS ERR with MASK", SET_IRQS, 0, 0, EINVAL, "wwwww", U(20), U(0x09), U(3), U(0), U(1));
    BAD("SET_IRQS REQ count 2", SET_IRQS, 0, 0, EINVAL, "wwwww", U(20), U(0x21), U(4), U(0), U(2));
    BAD("SET_IRQS count 0 with start", SET_IRQS, 0, 0, EINVAL, "wwwww", U(20), U(0x21), U(2), U(1), U(0));
    BAD("SET_IRQS bool short", SET_IRQS, 0, 0, EINVAL, "wwwwwb", U(21), U(0x22), U(2), U(0), U(2), U(1));
    BAD("SET_IRQS mask MSI-X", SET_IRQS, 0, 0, EINVAL, "wwwww", U(20), U(0x09), U(2), U(0), U(1));
    /* region access */
    BAD("READ past BAR0", REGION_READ, 0, 0, EINVAL, "qww", U(4096), U(0), U(4));
    BAD("READ straddles end", REGION_READ, 0, 0, EINVAL, "qww", U(4094), U(0), U(4));
    BAD("READ offset overflow", REGION_READ, 0, 0, EINVAL, "qww", U(0xfffffffffffffffcull), U(0), U(8));
    BAD("READ region 9", REGION_READ, 0, 0, EINVAL, "qww", U(0), U(9), U(4));
    BAD("READ absent BAR3", REGION_READ, 0, 0, EINVAL, "qww", U(0), U(3), U(4));
    BAD("READ count 0", REGION_READ, 0, 0, EINVAL, "qww", U(0), U(0), U(0));
    BAD("READ count > max", REGION_READ, 0, 0, E2BIG, "qww", U(0), U(2), U(2u << 20));
    BAD("READ with data", REGION_READ, 0, 0, EINVAL, "qwww", U(0), U(0), U(4), U(0));
    BAD("READ config past 4K", REGION_READ, 0, 0, EINVAL, "qww", U(4096), U(7), U(4));
    BAD("WRITE short data", REGION_WRITE, 0, 0, EINVAL, "qwwh", U(8), U(0), U(4), U(1));
    BAD("WRITE long data", REGION_WRITE, 0, 0, EINVAL, "qwwq", U(8), U(0), U(4), U(1));
    BAD("WRITE unaligned reg", REGION_WRITE, 0, 0, EINVAL, "qwww", U(9), U(0), U(4), U(1));
    BAD("WRITE to VGA", REGION_WRITE, 0, 0, EINVAL, "qwww", U(0), U(8), U(4), U(1));
    BAD("WRITE_MULTI zero", WRITE_MULTI, 0, 0, EINVAL, "q", U(0));
    BAD("WRITE_MULTI count 9", WRITE_MULTI, 0, 0, EINVAL, "qqwwq", U(1), U(8), U(0), U(9), U(0));
    BAD("WRITE_MULTI truncated", WRITE_MULTI, 0, 0, EINVAL, "qqww", U(1), U(8), U(0), U(4));
    /* reset, features, migration data */
    BAD("RESET with payload", RESET, 0, 0, EINVAL, "w", U(0));
    BAD("FEATURE GET|SET", FEATURE, 0, 0, EINVAL, "ww", U(16), U(0x30001));
    BAD("FEATURE no method", FEATURE, 0, 0, EINVAL, "ww", U(16), U(1));
    BAD("FEATURE unknown bits", FEATURE, 0, 0, EINVAL, "ww", U(16), U(0x80001));
    BAD("FEATURE short", FEATURE, 0, 0, EINVAL, "w", U(16));
    BAD("FEATURE unsupported", FEATURE, 0, 0, ENOTSUP, "ww", U(16), U(0x10000 | 0x55));
    BAD("MIG_DATA_READ not migrating", MIG_READ, 0, 0, EINVAL, "ww", U(72), U(64));
    BAD("MIG_DATA_WRITE not resuming", MIG_WRITE, 0, 0, EINVAL, "wwq", U(16), U(8), U(0));
    assert_true(cases >= 40);
    cclose(fd);
}

static void test_command_before_version(void **st)
{
    int fd = track(raw_connect(S.path));
    uint8_t p[16] = { 0 };
    put32(p, 16);
    assert_int_equal(xfer(fd, 5, GET_INFO, p, 16, NULL, 0, &R), 0);
    assert_int_equal(R.flags, 0x21);
    assert_int_equal(R.err, EINVAL);
    /* bad VERSIONs: error replies, still negotiable afterwards */
    uint8_t v[64];
    put16(v, 0);
    put16(v + 2, 0);
    assert_int_equal(xfer(fd, 6, VERSION, v, 2, NULL, 0, &R), 0);
    assert_int_equal(R.err, EINVAL);
    memcpy(v + 4, "{\"capabilities\":{}}", 19); /* no NUL */
    assert_int_equal(xfer(fd, 7, VERSION, v, 4 + 19, NULL, 0, &R), 0);
    assert_int_equal(R.err, EINVAL);
    assert_int_equal(raw_version(fd, "{\"capabilities\":[]}", &R), -EINVAL);
    assert_int_equal(raw_version(fd, "{\"capabilities\":{\"max_msg_fds\":\"8\"}}", &R), -EINVAL);
    assert_int_equal(raw_version(fd, "{\"capabilities\":", &R), -EINVAL);
    assert_int_equal(raw_version(fd, "{}", &R), 0);
    assert_serving(fd);
    cclose(fd);
}

static void test_version_major_mismatch_closes(void **st)
{
    int fd = track(raw_connect(S.path));
    uint8_t v[4];
    put16(v, 1);
    put16(v + 2, 0);
    assert_int_equal(xfer(fd, 8, VERSION, v, 4, NULL, 0, &R), 0);
    assert_int_equal(R.flags, 0x21);
    assert_int_equal(raw_recv(fd, &R, 2000), -ECONNRESET);
    cclose(fd);
    int fd2 = conn();
    assert_serving(fd2);
    cclose(fd2);
}

static void test_framing_errors_drop_connection(void **st)
{
    uint8_t buf[64];
    for (int variant = 0; variant < 2; variant++) {
        int fd = conn();
        size_t n = mk_size(buf, 9, GET_INFO, 0, variant ? 0x7fffffffu : 8, NULL, 0);
        assert_int_equal(raw_send(fd, buf, n, NULL, 0), 0);
        assert_int_equal(raw_recv(fd, &R, 2000), -ECONNRESET);
        cclose(fd);
        /* the server accepts the next client */
        int fd2 = conn();
        assert_serving(fd2);
        cclose(fd2);
    }
    assert_true(srv_alive(&S));
}

static void test_reply_from_client_ignored(void **st)
{
    int fd = conn();
    uint8_t buf[64];
    size_t n = mk(buf, 77, DMA_READ, 1, NULL, 0);
    assert_int_equal(raw_send(fd, buf, n, NULL, 0), 0);
    assert_serving(fd);
    cclose(fd);
}

static void test_disconnect_drops_dma_and_irqs(void **st)
{
    /* once it has noticed every earlier client leave, the server is back to its idle count */
    int base = idle_fds;
    assert_int_equal(srv_wait_fd_count(&S, base), base);
    int fd = conn();
    int mfd = memfd_create("g", MFD_CLOEXEC);
    assert_int_equal(ftruncate(mfd, 0x10000), 0);
    uint8_t p[32];
    put32(p, 32);
    put32(p + 4, 3);
    put64(p + 8, 0);
    put64(p + 16, 0x40000000);
    put64(p + 24, 0x10000);
    assert_int_equal(xfer(fd, 1, DMA_MAP, p, 32, &mfd, 1, &R), 0);
    close(mfd);
    int efd[4];
    for (int i = 0; i < 4; i++)
        efd[i] = eventfd(0, EFD_CLOEXEC);
    uint8_t s[20];
    put32(s, 20);
    put32(s + 4, 0x24);
    put32(s + 8, 2);
    put32(s + 12, 0);
    put32(s + 16, 4);
    assert_int_equal(xfer(fd, 2, SET_IRQS, s, 20, efd, 4, &R), 0);
    assert_int_equal(R.flags, 1);
    /* the connection, the eventfds and the mapping's fd are held (a handover
     * passes the mapping's fd on: docs/handover.md) */
    assert_int_equal(srv_fd_count(&S), base + 1 + 4 + 1);
    for (int i = 0; i < 4; i++)
        close(efd[i]);
    cclose(fd);
    /* the server notices, drops the client's eventfds and mappings */
    assert_int_equal(srv_wait_fd_count(&S, base), base);
    /* the same range can be mapped by the next client: the old mapping is gone */
    fd = conn();
    mfd = memfd_create("g", MFD_CLOEXEC);
    assert_int_equal(ftruncate(mfd, 0x10000), 0);
    assert_int_equal(xfer(fd, 3, DMA_MAP, p, 32, &mfd, 1, &R), 0);
    assert_int_equal(R.flags, 1);
    close(mfd);
    cclose(fd);
}


/* libvfio-user's client offers max_msg_fds 32: what it can receive, clamped, not refused. */
static void test_version_max_msg_fds_clamped(void **st)
{
    int fd = track(raw_connect(S.path));
    assert_true(fd >= 0);
    assert_int_equal(raw_version(fd, "{\"capabilities\":{\"max_msg_fds\":32}}", &R), 0);
    assert_int_equal(R.flags, 1); /* a reply, no error */
    assert_true(R.len > 4);
    R.payload[R.len - 1] = 0;
    /* the server answers with its own limit (the sample's 8) */
    assert_non_null(strstr((const char *)R.payload + 4, "\"max_msg_fds\":8"));
    assert_serving(fd);
    cclose(fd);
}

/* SET and PROBE replies of DEVICE_FEATURE are the request payload, byte for byte. */
static void test_feature_set_probe_echo(void **st)
{
    int fd = conn();
    uint8_t p[64];
    /* PROBE of MIGRATION with GET, argsz 48, 16 bytes of data the server ignores */
    put32(p, 48);
    put32(p + 4, 0x40000 | 0x10000 | 1);
    for (int i = 0; i < 16; i++)
        p[8 + i] = (uint8_t)(0xa0 + i);
    assert_int_equal(xfer(fd, 30, FEATURE, p, 24, NULL, 0, &R), 0);
    assert_int_equal(R.flags, 1);
    assert_int_equal(R.len, 24);
    assert_memory_equal(R.payload, p, 24);
    /* PROBE of DMA_LOGGING_START with SET */
    put32(p, 8);
    put32(p + 4, 0x40000 | 0x20000 | 6);
    assert_int_equal(xfer(fd, 31, FEATURE, p, 8, NULL, 0, &R), 0);
    assert_int_equal(R.len, 8);
    assert_memory_equal(R.payload, p, 8);
    /* start logging (page size 4096, all ranges), then STOP with argsz 64: echoed, argsz included */
    put32(p, 24);
    put32(p + 4, 0x20000 | 6);
    put64(p + 8, 4096);
    put32(p + 16, 0);
    put32(p + 20, 0);
    assert_int_equal(xfer(fd, 32, FEATURE, p, 24, NULL, 0, &R), 0);
    assert_int_equal(R.flags, 1);
    put32(p, 64);
    put32(p + 4, 0x20000 | 7);
    assert_int_equal(xfer(fd, 33, FEATURE, p, 8, NULL, 0, &R), 0);
    assert_int_equal(R.flags, 1);
    assert_int_equal(R.len, 8);
    assert_memory_equal(R.payload, p, 8);
    /* logging is off now: a second STOP is an error */
    assert_int_equal(xfer(fd, 34, FEATURE, p, 8, NULL, 0, &R), 0);
    assert_int_equal(R.flags, 0x21);
    assert_int_equal(R.err, EINVAL);
    cclose(fd);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s SERVER_BINARY\n", argv[0]);
        return 2;
    }
    server_bin = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_version_negotiation, teardown_conns),
        cmocka_unit_test_teardown(test_command_before_version, teardown_conns),
        cmocka_unit_test_teardown(test_version_major_mismatch_closes, teardown_conns),
        cmocka_unit_test_teardown(test_device_info_and_regions, teardown_conns),
        cmocka_unit_test_teardown(test_io_bar_widths, teardown_conns),
        cmocka_unit_test_teardown(test_irq_info, teardown_conns),
        cmocka_unit_test_teardown(test_msix_interrupt, teardown_conns),
        cmocka_unit_test_teardown(test_dma_mapped_memory, teardown_conns),
        cmocka_unit_test_teardown(test_dma_messages_twin_socket, teardown_conns),
        cmocka_unit_test_teardown(test_dma_messages_big, teardown_conns),
        cmocka_unit_test_teardown(test_big_write_waits_behind_dma, teardown_conns),
        cmocka_unit_test_teardown(test_posted_writes_in_order, teardown_conns),
        cmocka_unit_test_teardown(test_large_write_in_pieces, teardown_conns),
        cmocka_unit_test_teardown(test_malformed_requests, teardown_conns),
        cmocka_unit_test_teardown(test_framing_errors_drop_connection, teardown_conns),
        cmocka_unit_test_teardown(test_reply_from_client_ignored, teardown_conns),
        cmocka_unit_test_teardown(test_disconnect_drops_dma_and_irqs, teardown_conns),
        cmocka_unit_test_teardown(test_version_max_msg_fds_clamped, teardown_conns),
        cmocka_unit_test_teardown(test_feature_set_probe_echo, teardown_conns),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
