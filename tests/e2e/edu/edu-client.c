/*
 * The guest side of the vfio-pci e2e test (tests/e2e/run.sh --vfio-pci):
 * runs inside the Linux guest, where two QEMU edu devices are bound to
 * vfio-pci and each served by ufio-vfio-pci; drives them over vfio-user
 * with ufio's client and reports one "UFIO-E2E:" line per check.
 *
 *   edu-client test SOCK1 PID1 LOG1 SOCK2 PID2 LOG2 PLUGIN_NAME
 *   edu-client bench SOCK1
 *
 * PIDn/LOGn: the server's pid and stdout file, for its message counter
 * (SIGUSR1 makes it print "stats N: M messages").
 */
#include <ufio/client.h>
#include <ufio/migrate.h>
#include <ufio/migration.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define EDU_ID        0x00
#define EDU_LIVENESS  0x04
#define EDU_FACT      0x08
#define EDU_STATUS    0x20
#define EDU_IRQ_STAT  0x24
#define EDU_IRQ_RAISE 0x60
#define EDU_IRQ_ACK   0x64
#define EDU_DMA_SRC   0x80
#define EDU_DMA_DST   0x88
#define EDU_DMA_CNT   0x90
#define EDU_DMA_CMD   0x98
#define EDU_BUF       0x40000u
#define BUF_LEN       4096u
#define IOVA          0x100000ull  /* below the edu's 28-bit DMA mask */
#define IRQ_MSI       1

static int passed, failed;

static bool check(bool ok, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool check(bool ok, const char *name, const char *fmt, ...)
{
    char detail[256] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof(detail), fmt, ap);
        va_end(ap);
    }
    printf("UFIO-E2E: %s %s%s%s\n", ok ? "ok" : "not ok", name, detail[0] ? " - " : "", detail);
    fflush(stdout);
    ok ? passed++ : failed++;
    return ok;
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("UFIO-E2E: # ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- one served edu ------------------------------------------------------------- */

struct edu {
    const char *sock;
    pid_t pid;
    const char *log;
    unsigned stats_seq;
    struct ufio_client *c;
    volatile uint32_t *bar;     /* the first page of BAR0, mmapped */
    int efd;                    /* MSI eventfd */
    int memfd;                  /* two pages of client memory the device may DMA */
    uint8_t *mem;
};

static uint32_t mrd(struct edu *e, uint32_t reg) { return e->bar[reg / 4]; }
static void mwr(struct edu *e, uint32_t reg, uint32_t v) { e->bar[reg / 4] = v; }

static int rrd(struct edu *e, uint32_t reg, uint32_t *v)
{
    return ufio_client_region_read(e->c, 0, reg, v, 4);
}

static int rwr(struct edu *e, uint32_t reg, uint32_t v)
{
    return ufio_client_region_write(e->c, 0, reg, &v, 4);
}

/* Asks the server for its message count and waits for the numbered answer. */
static long server_msgs(struct edu *e)
{
    unsigned seq = ++e->stats_seq;
    if (kill(e->pid, SIGUSR1))
        return -errno;
    char want[32];
    snprintf(want, sizeof(want), "stats %u: ", seq);
    double deadline = now_s() + 5;
    while (now_s() < deadline) {
        FILE *f = fopen(e->log, "r");
        char line[256];
        while (f && fgets(line, sizeof(line), f))
            if (!strncmp(line, want, strlen(want))) {
                fclose(f);
                return strtol(line + strlen(want), NULL, 10);
            }
        if (f)
            fclose(f);
        struct timespec pause = { 0, 2000000 };
        nanosleep(&pause, NULL);
    }
    return -ETIMEDOUT;
}

static int edu_attach(struct edu *e)
{
    struct ufio_client_opts o = { .size = sizeof(o), .timeout_ms = 10000 };
    int err = ufio_client_connect(e->sock, &o, &e->c);
    if (err)
        return err;
    void *p;
    if ((err = ufio_client_region_mmap(e->c, 0, 0, 4096, &p)))
        return err;
    e->bar = p;
    /* memory decoding and bus mastering, as a driver enables them: the edu's
     * DMA and MSI writes go nowhere without bus mastering */
    uint16_t cmd;
    if ((err = ufio_client_region_read(e->c, UFIO_PCI_CONFIG_REGION, 4, &cmd, 2)))
        return err;
    cmd |= 0x6;
    if ((err = ufio_client_region_write(e->c, UFIO_PCI_CONFIG_REGION, 4, &cmd, 2)))
        return err;
    e->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (e->efd < 0)
        return -errno;
    if ((err = ufio_client_irq_set_eventfds(e->c, IRQ_MSI, 0, 1, &e->efd)))
        return err;
    e->memfd = memfd_create("edu-dma", MFD_CLOEXEC);
    if (e->memfd < 0 || ftruncate(e->memfd, 2 * BUF_LEN))
        return -errno;
    e->mem = mmap(NULL, 2 * BUF_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, e->memfd, 0);
    if (e->mem == MAP_FAILED)
        return -errno;
    return ufio_client_dma_map(e->c, IOVA, 2 * BUF_LEN, UFIO_DMA_READ | UFIO_DMA_WRITE, e->mem, e->memfd, 0);
}

static void edu_detach(struct edu *e)
{
    if (e->bar)
        munmap((void *)e->bar, 4096);
    if (e->mem && e->mem != MAP_FAILED)
        munmap(e->mem, 2 * BUF_LEN);
    if (e->memfd >= 0)
        close(e->memfd);
    if (e->efd >= 0)
        close(e->efd);
    ufio_client_destroy(e->c);
    e->c = NULL;
    e->bar = NULL;
    e->mem = NULL;
    e->memfd = e->efd = -1;
}

static void drain(int efd)
{
    uint64_t v;
    while (read(efd, &v, sizeof(v)) == sizeof(v))
        ;
}

/* One DMA through the edu engine, waiting for its completion interrupt. */
static int edu_dma(struct edu *e, uint64_t src, uint64_t dst, bool to_ram)
{
    drain(e->efd);
    mwr(e, EDU_DMA_SRC, (uint32_t)src);
    mwr(e, EDU_DMA_DST, (uint32_t)dst);
    mwr(e, EDU_DMA_CNT, BUF_LEN);
    mwr(e, EDU_DMA_CMD, 0x1 | (to_ram ? 0x2 : 0) | 0x4);
    int n = ufio_client_irq_wait(e->efd, 5000);
    mwr(e, EDU_IRQ_ACK, 0x100);
    if (n <= 0)
        return n ? n : -ETIMEDOUT;
    return (mrd(e, EDU_DMA_CMD) & 1) ? -EBUSY : 0;
}

static void fill(uint8_t *p, uint32_t seed)
{
    for (uint32_t i = 0; i < BUF_LEN; i++)
        p[i] = (uint8_t)((i * 2654435761u + seed) >> 13);
}

/* ---- checks ------------------------------------------------------------------------- */

static void check_identity(struct edu *e, const char *tag)
{
    char name[64];
    uint8_t cfg[4];
    int err = ufio_client_region_read(e->c, UFIO_PCI_CONFIG_REGION, 0, cfg, 4);
    snprintf(name, sizeof(name), "%s-config-ids", tag);
    check(!err && cfg[0] == 0x34 && cfg[1] == 0x12 && cfg[2] == 0xe8 && cfg[3] == 0x11, name,
          "err %d, %02x%02x:%02x%02x", err, cfg[1], cfg[0], cfg[3], cfg[2]);
    uint32_t id = 0;
    err = rrd(e, EDU_ID, &id);
    snprintf(name, sizeof(name), "%s-id-register", tag);
    check(!err && (id & 0xff) == 0xed && mrd(e, EDU_ID) == id, name, "REGION_READ %#x (err %d), mmap %#x", id, err,
          mrd(e, EDU_ID));
    struct ufio_client_region_info ri = { .size = sizeof(ri) };
    err = ufio_client_region_info(e->c, 0, &ri);
    snprintf(name, sizeof(name), "%s-bar0-mmap-area", tag);
    check(!err && ri.region_size == 1u << 20 && (ri.flags & 4) && ri.fd >= 0, name, "size %#" PRIx64 " flags %#x fd %d",
          ri.region_size, ri.flags, ri.fd);
}

static void check_liveness(struct edu *e)
{
    mwr(e, EDU_LIVENESS, 0x12345678);
    uint32_t via_msg = 0;
    int err = rrd(e, EDU_LIVENESS, &via_msg);
    check(mrd(e, EDU_LIVENESS) == ~0x12345678u && !err && via_msg == ~0x12345678u, "edu1-liveness",
          "mmap %#x, REGION_READ %#x", mrd(e, EDU_LIVENESS), via_msg);
}

static void check_no_messages(struct edu *e)
{
    long before = server_msgs(e);
    uint32_t x = 0;
    for (uint32_t i = 0; i < 5000; i++) {
        mwr(e, EDU_LIVENESS, i);
        x |= mrd(e, EDU_LIVENESS) ^ ~i;
    }
    long after = server_msgs(e);
    check(before >= 0 && after == before && x == 0, "bar-mmap-no-messages",
          "5000 writes + 5000 reads through the mmap: server messages %ld -> %ld, mismatches %#x", before, after, x);
    /* the counter counts: the same through messages moves it by exactly that many */
    for (int i = 0; i < 16; i++)
        rrd(e, EDU_LIVENESS, &x);
    long ctl = server_msgs(e);
    check(ctl == after + 16, "message-counter-counts", "16 REGION_READs: %ld -> %ld", after, ctl);
}

static void check_factorial(struct edu *e)
{
    drain(e->efd);
    mwr(e, EDU_STATUS, 0x80); /* interrupt when done */
    mwr(e, EDU_FACT, 10);
    int n = ufio_client_irq_wait(e->efd, 5000);
    uint32_t fact = mrd(e, EDU_FACT), irq = mrd(e, EDU_IRQ_STAT);
    mwr(e, EDU_IRQ_ACK, irq);
    check(n > 0 && fact == 3628800 && (irq & 1), "edu1-factorial-msi", "eventfd %d, 10! = %u, irq status %#x", n, fact,
          irq);
}

static void check_dma(struct edu *e, uint32_t seed, const char *tag)
{
    char name[64];
    fill(e->mem, seed);
    memset(e->mem + BUF_LEN, 0, BUF_LEN);
    int err = edu_dma(e, IOVA, EDU_BUF, false);
    int err2 = err ? err : edu_dma(e, EDU_BUF, IOVA + BUF_LEN, true);
    snprintf(name, sizeof(name), "%s-dma-roundtrip", tag);
    check(!err && !err2 && !memcmp(e->mem, e->mem + BUF_LEN, BUF_LEN), name,
          "client memory -> edu buffer -> client memory: %d %d, %s", err, err2,
          memcmp(e->mem, e->mem + BUF_LEN, BUF_LEN) ? "differs" : "same");
}

/* Bad input through the client API: refused, and nothing left mapped (the same IOVA maps cleanly after). */
static void check_bad_dma(struct edu *e)
{
    uint64_t iova = 0x400000;
    int err = ufio_client_dma_map(e->c, iova, 2 * BUF_LEN, UFIO_DMA_READ | UFIO_DMA_WRITE, e->mem, e->memfd, BUF_LEN);
    int ok_after = ufio_client_dma_map(e->c, iova, 2 * BUF_LEN, UFIO_DMA_READ | UFIO_DMA_WRITE, e->mem, e->memfd, 0);
    int unmap = ufio_client_dma_unmap(e->c, iova, 2 * BUF_LEN);
    check(err < 0 && !ok_after && !unmap, "bad-dma-map-outside-fd",
          "map past the memfd's end: %d; the same IOVA then maps (%d) and unmaps (%d)", err, ok_after, unmap);
    err = ufio_client_dma_map(e->c, iova, 2 * BUF_LEN, UFIO_DMA_READ | UFIO_DMA_WRITE, e->mem, -1, 0);
    ok_after = ufio_client_dma_map(e->c, iova, 2 * BUF_LEN, UFIO_DMA_READ | UFIO_DMA_WRITE, e->mem, e->memfd, 0);
    unmap = ufio_client_dma_unmap(e->c, iova, 2 * BUF_LEN);
    check(err < 0 && !ok_after && !unmap, "bad-dma-map-without-fd",
          "fd-less memory for hardware: %d; the same IOVA then maps (%d) and unmaps (%d)", err, ok_after, unmap);
}

/* Bad input as raw messages (our client refuses to send them): error replies, server still serving. */
static void check_bad_raw(const char *sock)
{
    int fd = raw_connect(sock);
    static struct rmsg r;
    if (!check(fd >= 0 && raw_version(fd, "{\"capabilities\":{\"max_msg_fds\":8}}", &r) == 0, "raw-connect",
               "fd %d", fd))
        return;
    uint8_t p[64];
    /* REGION_READ past BAR0's 1 MiB, and one straddling its end */
    put64(p, 1u << 20);
    put32(p + 8, 0);
    put32(p + 12, 4);
    int e1 = xfer(fd, 10, 9, p, 16, NULL, 0, &r);
    bool rej1 = !e1 && (r.flags & 0x20) && r.err == EINVAL;
    put64(p, (1u << 20) - 4);
    put32(p + 12, 8);
    int e2 = xfer(fd, 11, 9, p, 16, NULL, 0, &r);
    bool rej2 = !e2 && (r.flags & 0x20) && r.err == EINVAL;
    check(rej1 && rej2, "bad-region-offset-past-bar", "offset 1 MiB: %s; 1 MiB - 4 + 8: %s",
          rej1 ? "EINVAL" : "not refused", rej2 ? "EINVAL" : "not refused");
    /* SET_IRQS on MSI-X, which the edu lacks, and on MSI vector 1 (it has one) */
    int efd = eventfd(0, EFD_CLOEXEC);
    put32(p, 24);
    put32(p + 4, 0x4 | 0x20); /* DATA_EVENTFD | ACTION_TRIGGER */
    put32(p + 8, 2);
    put32(p + 12, 0);
    put32(p + 16, 1);
    int e3 = xfer(fd, 12, 8, p, 20, &efd, 1, &r);
    bool rej3 = !e3 && (r.flags & 0x20) && r.err == EINVAL;
    put32(p + 8, 1);
    put32(p + 12, 1);
    int e4 = xfer(fd, 13, 8, p, 20, &efd, 1, &r);
    bool rej4 = !e4 && (r.flags & 0x20) && r.err == EINVAL;
    close(efd);
    check(rej3 && rej4, "bad-irq-index", "MSI-X (count 0): %s; MSI vector 1 of 1: %s", rej3 ? "EINVAL" : "not refused",
          rej4 ? "EINVAL" : "not refused");
    /* DMA_MAP of a range past the end of the fd sent with it */
    int mfd = memfd_create("bad", MFD_CLOEXEC);
    bool rej5 = false;
    if (mfd >= 0 && !ftruncate(mfd, 4096)) {
        put32(p, 32);
        put32(p + 4, 3);
        put64(p + 8, 4096);   /* offset: the fd's end */
        put64(p + 16, 0x800000);
        put64(p + 24, 4096);
        int e5 = xfer(fd, 14, 2, p, 32, &mfd, 1, &r);
        rej5 = !e5 && (r.flags & 0x20) && r.err != 0;
        /* nothing mapped: a DMA_UNMAP of it finds nothing */
        put32(p, 24);
        put32(p + 4, 0);
        put64(p + 8, 0x800000);
        put64(p + 16, 4096);
        int e6 = xfer(fd, 15, 3, p, 24, NULL, 0, &r);
        rej5 = rej5 && !e6 && (r.flags & 0x20) && r.err == ENOENT;
    }
    if (mfd >= 0)
        close(mfd);
    check(rej5, "bad-raw-dma-map-outside-fd", "refused and DMA_UNMAP finds nothing: %s", rej5 ? "yes" : "no");
    close(fd);
}

/* ---- migration ------------------------------------------------------------------- */

struct edu_state {
    uint32_t live, fact, status, irq, src, dst, cnt, cmd;
    uint8_t buf[BUF_LEN];
};

/* Read from outside: registers through REGION_READ, the buffer by DMA into client memory. */
static int read_state(struct edu *e, struct edu_state *s)
{
    int err = 0;
    err = err ? err : rrd(e, EDU_LIVENESS, &s->live);
    err = err ? err : rrd(e, EDU_FACT, &s->fact);
    err = err ? err : rrd(e, EDU_STATUS, &s->status);
    err = err ? err : rrd(e, EDU_IRQ_STAT, &s->irq);
    err = err ? err : rrd(e, EDU_DMA_SRC, &s->src);
    err = err ? err : rrd(e, EDU_DMA_DST, &s->dst);
    err = err ? err : rrd(e, EDU_DMA_CNT, &s->cnt);
    err = err ? err : rrd(e, EDU_DMA_CMD, &s->cmd);
    if (err)
        return err;
    /* the buffer read-out changes the DMA registers: put them back */
    memset(e->mem + BUF_LEN, 0, BUF_LEN);
    drain(e->efd);
    mwr(e, EDU_DMA_SRC, EDU_BUF);
    mwr(e, EDU_DMA_DST, (uint32_t)(IOVA + BUF_LEN));
    mwr(e, EDU_DMA_CNT, BUF_LEN);
    mwr(e, EDU_DMA_CMD, 0x3);
    double deadline = now_s() + 5;
    while ((mrd(e, EDU_DMA_CMD) & 1) && now_s() < deadline)
        ;
    if (mrd(e, EDU_DMA_CMD) & 1)
        return -ETIMEDOUT;
    memcpy(s->buf, e->mem + BUF_LEN, BUF_LEN);
    /* the command register takes writes only with the run bit and keeps the
     * rest: one more DMA with the saved bits puts it back, in a direction
     * that changes no data (client memory holds the buffer's bytes now) */
    bool to_ram = s->cmd & 0x2;
    mwr(e, EDU_DMA_SRC, to_ram ? EDU_BUF : (uint32_t)(IOVA + BUF_LEN));
    mwr(e, EDU_DMA_DST, to_ram ? (uint32_t)(IOVA + BUF_LEN) : EDU_BUF);
    mwr(e, EDU_DMA_CMD, 0x1 | (s->cmd & 0x6));
    deadline = now_s() + 5;
    while ((mrd(e, EDU_DMA_CMD) & 1) && now_s() < deadline)
        ;
    if ((s->cmd & 0x4) && !(s->irq & 0x100))
        mwr(e, EDU_IRQ_ACK, 0x100);
    err = err ? err : rwr(e, EDU_DMA_SRC, s->src);
    err = err ? err : rwr(e, EDU_DMA_DST, s->dst);
    err = err ? err : rwr(e, EDU_DMA_CNT, s->cnt);
    uint32_t cmd = 0;
    err = err ? err : rrd(e, EDU_DMA_CMD, &cmd);
    return err ? err : cmd == s->cmd ? 0 : -EIO;
}

static void show(const char *who, const struct edu_state *s)
{
    note("%s: liveness %#x fact %#x status %#x irq %#x dma %#x->%#x cnt %#x cmd %#x buf[0..3] %02x%02x%02x%02x", who,
         s->live, s->fact, s->status, s->irq, s->src, s->dst, s->cnt, s->cmd, s->buf[0], s->buf[1], s->buf[2],
         s->buf[3]);
}

/* Leaves a distinctive state in e: liveness, a factorial, pending irq bits, the buffer, DMA registers. */
static int make_state(struct edu *e, uint32_t live, uint32_t n, uint32_t irq_bits, uint32_t seed)
{
    fill(e->mem, seed);
    int err = edu_dma(e, IOVA, EDU_BUF, false);
    if (err)
        return err;
    mwr(e, EDU_STATUS, 0);
    mwr(e, EDU_FACT, n);
    double deadline = now_s() + 5;
    while ((mrd(e, EDU_STATUS) & 1) && now_s() < deadline)
        ;
    mwr(e, EDU_LIVENESS, live);
    mwr(e, EDU_STATUS, 0x80);
    mwr(e, EDU_IRQ_ACK, 0xffffffff);
    mwr(e, EDU_IRQ_RAISE, irq_bits);
    mwr(e, EDU_DMA_SRC, 0x1230000 + seed);
    mwr(e, EDU_DMA_DST, 0x40000 + 0x10 * (seed & 0xff));
    mwr(e, EDU_DMA_CNT, 0x100 + seed % 0x100);
    mwr(e, EDU_DMA_CMD, 0x4);
    return 0;
}

static void check_migration(struct edu *e1, struct edu *e2, const char *plugin)
{
    static struct edu_state s1, s2, after;
    int err = make_state(e1, 0xcafef00d, 12, 0x40, 7);
    if (!err)
        err = make_state(e2, 0x1, 3, 0, 99);
    if (!err)
        err = read_state(e1, &s1);
    if (!err)
        err = read_state(e2, &s2);
    if (!check(!err && memcmp(&s1, &s2, sizeof(s1)), "migration-states-differ", "err %d", err))
        return;
    show("edu1 before", &s1);
    show("edu2 before", &s2);
    uint64_t flags = 0;
    err = ufio_client_mig_flags(e1->c, &flags);
    check(!err && (flags & UFIO_MIG_F_STOP_COPY), "migration-offered", "plugin %s: flags %#" PRIx64 " (err %d)",
          plugin, flags, err);
    /* the engine is the client of both ends now */
    edu_detach(e1);
    edu_detach(e2);
    struct ufio_migrate_opts mo = { .size = sizeof(mo), .src_path = e1->sock, .dst_path = e2->sock, .no_precopy = true,
                                    .timeout_ms = 10000 };
    static struct ufio_migrate_result res;
    res.size = sizeof(res);
    err = ufio_migrate(&mo, &res);
    check(!err && res.compatible, "migration-engine", "err %d (%s), %" PRIu64 " bytes, downtime %.1f ms", err,
          res.error, res.bytes, res.downtime_ms);
    err = edu_attach(e2);
    if (!check(!err, "migration-reattach-destination", "err %d", err))
        return;
    err = read_state(e2, &after);
    show("edu2 after", &after);
    check(!err && after.live == s1.live && after.fact == s1.fact && (after.status & 0x80) == (s1.status & 0x80) &&
              after.irq == s1.irq,
          "migration-registers", "liveness %#x/%#x fact %#x/%#x irq %#x/%#x", after.live, s1.live, after.fact, s1.fact,
          after.irq, s1.irq);
    check(!err && after.src == s1.src && after.dst == s1.dst && after.cnt == s1.cnt && after.cmd == s1.cmd,
          "migration-dma-registers", "src %#x/%#x dst %#x/%#x cnt %#x/%#x cmd %#x/%#x", after.src, s1.src, after.dst,
          s1.dst, after.cnt, s1.cnt, after.cmd, s1.cmd);
    check(!err && !memcmp(after.buf, s1.buf, BUF_LEN), "migration-dma-buffer", "%s",
          memcmp(after.buf, s1.buf, BUF_LEN) ? "differs" : "4096 bytes equal");
    /* the destination keeps working */
    mwr(e2, EDU_IRQ_ACK, 0xffffffff);
    check_dma(e2, 1234, "edu2-after-migration");
}

static int run_test(char **argv)
{
    struct edu e1 = { .sock = argv[0], .pid = atoi(argv[1]), .log = argv[2], .efd = -1, .memfd = -1 };
    struct edu e2 = { .sock = argv[3], .pid = atoi(argv[4]), .log = argv[5], .efd = -1, .memfd = -1 };
    int err = edu_attach(&e1);
    if (!check(!err, "edu1-attach", "err %d", err))
        return 1;
    err = edu_attach(&e2);
    if (!check(!err, "edu2-attach", "err %d", err))
        return 1;
    check_identity(&e1, "edu1");
    check_identity(&e2, "edu2");
    check_liveness(&e1);
    check_no_messages(&e1);
    check_factorial(&e1);
    check_dma(&e1, 1, "edu1");
    check_bad_dma(&e1);
    /* DEVICE_RESET is VFIO_DEVICE_RESET: the guest kernel has no reset method for an edu on
     * the root bus, and its errno is the client's */
    struct ufio_client_device_info di = { .size = sizeof(di) };
    int ierr = ufio_client_device_info(e1.c, &di);
    int rerr = ufio_client_reset(e1.c);
    check(!ierr && !(di.flags & 1) && rerr == -ENOTTY, "reset-is-the-kernels",
          "GET_INFO flags %#x (no reset advertised), DEVICE_RESET: %d (%s)", di.flags, rerr, strerror(-rerr));
    check_migration(&e1, &e2, argv[6]);
    if (e1.c)
        edu_detach(&e1); /* one client at a time: the raw connection is next */
    if (e2.c)
        edu_detach(&e2);
    /* on the running device: edu #1 was migrated away and refuses state changes (ENODEV)
     * whatever their arguments */
    check_bad_raw(e2.sock);
    printf("UFIO-E2E: %s\n", failed ? "FAIL" : "PASS");
    printf("UFIO-E2E: # %d passed, %d failed\n", passed, failed);
    fflush(stdout);
    return failed ? 1 : 0;
}

/* ---- benchmark: not a test; figures for docs/vfio-pci.md ------------------------------ */

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int run_bench(const char *sock)
{
    struct edu e = { .sock = sock, .efd = -1, .memfd = -1 };
    int err = edu_attach(&e);
    if (err) {
        note("bench: attach failed: %d", err);
        return 1;
    }
    enum { N_MMAP = 20000, N_MSG = 1000, N_IRQ = 100 };
    uint32_t sink = 0;
    double t0 = now_s();
    for (int i = 0; i < N_MMAP; i++)
        sink += mrd(&e, EDU_ID);
    double t_mmap = (now_s() - t0) / N_MMAP;
    t0 = now_s();
    for (int i = 0; i < N_MSG; i++) {
        uint32_t v;
        rrd(&e, EDU_ID, &v);
        sink += v;
    }
    double t_msg = (now_s() - t0) / N_MSG;
    static double lat[N_IRQ];
    int got = 0;
    for (int i = 0; i < N_IRQ; i++) {
        drain(e.efd);
        double s = now_s();
        mwr(&e, EDU_IRQ_RAISE, 0x8);
        int n = ufio_client_irq_wait(e.efd, 2000);
        double d = now_s() - s;
        mwr(&e, EDU_IRQ_ACK, 0x8);
        if (n <= 0)
            break; /* no interrupts: nothing to measure */
        lat[got++] = d;
    }
    qsort(lat, (size_t)got, sizeof(lat[0]), cmp_d);
    note("bench bar-read-mmap %.2f us/read (%d reads of the ID register)", t_mmap * 1e6, N_MMAP);
    note("bench bar-read-region-read %.2f us/read (%d REGION_READ messages)", t_msg * 1e6, N_MSG);
    if (got)
        note("bench irq-latency median %.1f us, p90 %.1f us, min %.1f us (%d of %d MSIs: raise register write -> "
             "client eventfd)",
             lat[got / 2] * 1e6, lat[got * 9 / 10] * 1e6, lat[0] * 1e6, got, N_IRQ);
    note("bench (checksum %u; guest under TCG: figures are emulation-bound)", sink);
    edu_detach(&e);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc == 9 && !strcmp(argv[1], "test"))
        return run_test(argv + 2);
    if (argc == 3 && !strcmp(argv[1], "bench"))
        return run_bench(argv[2]);
    fprintf(stderr, "usage: edu-client test SOCK1 PID1 LOG1 SOCK2 PID2 LOG2 PLUGIN | edu-client bench SOCK\n");
    return 2;
}
