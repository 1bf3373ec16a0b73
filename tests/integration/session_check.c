/*
 * session-check SOCKET: one whole session with ufio-sample, every answer
 * checked; exit 0 only if the device did all of it right. Used after an
 * injected failure (test_enomem.sh) to show the server still serves a full
 * session correctly, not only that it survived:
 *   - BAR0 SCRATCH written and read back; BAR2 (shared memory) written and
 *     read back through REGION_WRITE/READ;
 *   - MSI-X vector 0 on an eventfd: enabled, unmasked, raised, delivered;
 *   - DMA from a memfd-backed mapping (the server maps it) and from an fd-less
 *     one (served by DMA_READ/DMA_WRITE messages): status, checksum, every
 *     byte of the result, and the completion interrupt.
 * With -q, failures of the session's own calls are not reported (the client
 * itself may be under failure injection).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <ufio/client.h>
#include <ufio/migration.h>

static const char *what = "connect";
static int quiet;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            if (!quiet) {                                                                          \
                fprintf(stderr, "session-check: %s: ", what);                                      \
                fprintf(stderr, __VA_ARGS__);                                                      \
                fprintf(stderr, "\n");                                                             \
            }                                                                                      \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

static struct ufio_client *c;

static int wr(unsigned region, uint64_t off, uint32_t v)
{
    return ufio_client_region_write(c, region, off, &v, 4);
}

static int rd(unsigned region, uint64_t off, uint32_t *v)
{
    return ufio_client_region_read(c, region, off, v, 4);
}

/* One DMA of len bytes from src to dst; checks status, sum, every byte, and the interrupt. */
static int dma(uint64_t src, uint64_t dst, const uint8_t *src_mem, const uint8_t *dst_mem, uint32_t len, int efd)
{
    uint32_t sum = 0, v = 0;
    for (uint32_t i = 0; i < len; i++)
        sum += src_mem[i];
    int e = 0;
    if (!e) e = wr(0, 0x18, (uint32_t)src);
    if (!e) e = wr(0, 0x1c, (uint32_t)(src >> 32));
    if (!e) e = wr(0, 0x20, (uint32_t)dst);
    if (!e) e = wr(0, 0x24, (uint32_t)(dst >> 32));
    if (!e) e = wr(0, 0x28, len);
    if (!e) e = wr(0, 0x2c, 1);
    CHECK(!e, "programming the DMA: %s", strerror(-e));
    CHECK(!(e = rd(0, 0x30, &v)) && v == 1, "DMA_STATUS %#x (%s)", v, strerror(-e));
    CHECK(!(e = rd(0, 0x34, &v)) && v == sum, "DMA_SUM %#x, want %#x", v, sum);
    for (uint32_t i = 0; i < len; i++)
        CHECK(dst_mem[i] == (uint8_t)(src_mem[i] ^ 0x5a), "byte %u of the result is %#x, want %#x", i, dst_mem[i],
              (uint8_t)(src_mem[i] ^ 0x5a));
    CHECK(ufio_client_irq_wait(efd, 2000) > 0, "no completion interrupt");
    return 0;
}

static int run(const char *path)
{
    struct ufio_client_opts o = { .size = sizeof(o), .timeout_ms = 2000 };
    int e = ufio_client_connect(path, &o, &c);
    CHECK(!e, "%s", strerror(-e));
    /* the exercising session may leave the device migrated away (a migration back that failed
     * before it moved anything): it rests in STOP, refusing writes, until told to run */
    what = "migration state";
    unsigned st = 0;
    CHECK(!(e = ufio_client_mig_get_state(c, &st)), "%s", strerror(-e));
    if (st == UFIO_MIG_STOP)
        CHECK(!(e = ufio_client_mig_set_state(c, UFIO_MIG_RUNNING, NULL)), "STOP -> RUNNING: %s", strerror(-e));
    srandom((unsigned)time(NULL) ^ (unsigned)getpid());

    what = "BAR0 scratch";
    uint32_t v = (uint32_t)random() | 1, back = 0;
    CHECK(!(e = wr(0, 0x08, v)) && !(e = rd(0, 0x08, &back)) && back == v, "wrote %#x, read %#x (%s)", v, back,
          strerror(-e));
    CHECK(!(e = rd(0, 0x00, &back)) && back == 0x4f494655, "ID %#x", back);

    what = "BAR2 shared memory";
    static uint8_t pat[4096], got[4096];
    for (size_t i = 0; i < sizeof(pat); i++)
        pat[i] = (uint8_t)random();
    uint64_t off = (uint64_t)(random() % 15) * 4096;
    CHECK(!(e = ufio_client_region_write(c, 2, off, pat, sizeof(pat))), "write: %s", strerror(-e));
    CHECK(!(e = ufio_client_region_read(c, 2, off, got, sizeof(got))), "read: %s", strerror(-e));
    CHECK(!memcmp(pat, got, sizeof(pat)), "read back differs");

    what = "MSI-X interrupt";
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    CHECK(efd >= 0, "eventfd: %s", strerror(errno));
    CHECK(!(e = ufio_client_irq_set_eventfds(c, 2, 0, 1, &efd)), "SET_IRQS: %s", strerror(-e));
    uint8_t cfg[256];
    CHECK(!(e = ufio_client_region_read(c, 7, 0, cfg, sizeof(cfg))), "config: %s", strerror(-e));
    unsigned cap = cfg[0x34];
    for (int hops = 0; cap && cfg[cap] != 0x11 && hops < 48; hops++)
        cap = cfg[cap + 1];
    CHECK(cap && cfg[cap] == 0x11, "no MSI-X capability");
    uint32_t table = (uint32_t)cfg[cap + 4] | (uint32_t)cfg[cap + 5] << 8 | (uint32_t)cfg[cap + 6] << 16 |
                     (uint32_t)cfg[cap + 7] << 24;
    uint16_t ctl = 0x8000;
    CHECK(!(e = ufio_client_region_write(c, 7, cap + 2, &ctl, 2)), "enable: %s", strerror(-e));
    CHECK(!(e = wr(table & 7, (table & ~7u) + 12, 0)), "unmask: %s", strerror(-e));
    uint32_t before = 0, after = 0;
    CHECK(!(e = rd(0, 0x10, &before)), "IRQ_COUNT: %s", strerror(-e));
    CHECK(!(e = wr(0, 0x0c, 0)), "IRQ_RAISE: %s", strerror(-e));
    CHECK(ufio_client_irq_wait(efd, 2000) > 0, "vector 0 not delivered");
    CHECK(!(e = rd(0, 0x10, &after)) && after == before + 1, "IRQ_COUNT %u -> %u", before, after);

    what = "DMA through the server's own mapping (memfd)";
    size_t sz = 1 << 16;
    int mfd = memfd_create("session-check", MFD_CLOEXEC);
    CHECK(mfd >= 0 && ftruncate(mfd, (off_t)sz) == 0, "memfd: %s", strerror(errno));
    uint8_t *g = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    CHECK(g != MAP_FAILED, "mmap: %s", strerror(errno));
    for (size_t i = 0; i < sz; i++)
        g[i] = (uint8_t)random();
    CHECK(!(e = ufio_client_dma_map(c, 0x10000000, sz, UFIO_DMA_READ | UFIO_DMA_WRITE, g, mfd, 0)), "DMA_MAP: %s",
          strerror(-e));
    close(mfd);
    if (dma(0x10000000, 0x10008000, g, g + 0x8000, 0x4000, efd))
        return 1;

    what = "DMA by messages (no fd)";
    static uint8_t h[1 << 16];
    for (size_t i = 0; i < sizeof(h); i++)
        h[i] = (uint8_t)random();
    CHECK(!(e = ufio_client_dma_map(c, 0x20000000, sizeof(h), UFIO_DMA_READ | UFIO_DMA_WRITE, h, -1, 0)),
          "DMA_MAP: %s", strerror(-e));
    if (dma(0x20000000, 0x20004000, h, h + 0x4000, 0x3000, efd))
        return 1;

    what = "teardown";
    CHECK(!(e = ufio_client_dma_unmap(c, 0x10000000, sz)), "DMA_UNMAP: %s", strerror(-e));
    CHECK(!(e = ufio_client_dma_unmap(c, 0x20000000, sizeof(h))), "DMA_UNMAP: %s", strerror(-e));
    ctl = 0;
    CHECK(!(e = ufio_client_region_write(c, 7, cap + 2, &ctl, 2)), "disable: %s", strerror(-e));
    munmap(g, sz);
    close(efd);
    return 0;
}

int main(int argc, char **argv)
{
    int a = 1;
    if (a < argc && !strcmp(argv[a], "-q")) {
        quiet = 1;
        a++;
    }
    if (a != argc - 1) {
        fprintf(stderr, "usage: session-check [-q] SOCKET\n");
        return 2;
    }
    int r = run(argv[a]);
    ufio_client_destroy(c);
    return r;
}
