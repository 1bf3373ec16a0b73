/*
 * ufio-bench: what ufio costs, next to what the machine allows.
 *
 * It starts a benchmark device (a ufio server in a child process) unless
 * --socket names one, and measures with the client library:
 *   - 4-byte REGION_READ / REGION_WRITE round trips, client and server on the
 *     same CPU and on different CPUs, polling off and on;
 *   - REGION_WRITE / REGION_READ throughput at 4 KiB, 64 KiB and the
 *     negotiated max_data_xfer_size, to a shared-memory BAR (no staging copy
 *     on either side) and, at the largest size, to a BAR whose callback copies;
 *   - device DMA through DMA_READ/DMA_WRITE messages and through mapped memory;
 *   - raw socketpair exchanges of the same shapes and placements: the floor;
 *   - CPU used by an idle device with polling on, once its budget expired.
 * Each figure is the median of ROUNDS batches that alternate with the raw
 * batches of the same shape, so a noisy machine skews both alike; the
 * "vs raw" column is ufio / raw.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include <ufio/client.h>
#include <ufio/server.h>

#include "bench_mig.h"
#include "bench_handover.h"
#include "bench_sessions.h"

#define BIG_BAR (16u << 20)

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void pin(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    sched_setaffinity(0, sizeof(s), &s);
}

/* ---- the benchmark device ---------------------------------------------------------- */

/*
 * BAR0: 4-byte registers (latency, and DMA control). BAR2: shared memory (an
 * mmap area), which REGION_READ/WRITE reach without a staging copy. BAR4: the
 * same size behind a callback that copies, as a device with trapped memory
 * would.
 */
static uint8_t *big;        /* BAR4 backing */
static uint8_t dma_buf[BIG_BAR];
static uint64_t dma_addr;
static uint32_t dma_len;

static int bar0(struct ufio_dev *dev, void *o, unsigned r, uint64_t off, void *buf, uint32_t len, bool w)
{
    uint32_t v = 0;
    if (len != 4)
        return -EINVAL;
    if (!w) {
        v = (uint32_t)off;
        memcpy(buf, &v, 4);
        return 0;
    }
    memcpy(&v, buf, 4);
    if (off == 0)
        dma_addr = (dma_addr & ~0xffffffffull) | v;
    else if (off == 4)
        dma_addr = (dma_addr & 0xffffffffull) | (uint64_t)v << 32;
    else if (off == 8)
        dma_len = v < BIG_BAR ? v : BIG_BAR;
    else if (off == 12)
        return ufio_dev_dma_read(dev, dma_addr, dma_buf, dma_len);
    else if (off == 16)
        return ufio_dev_dma_write(dev, dma_addr, dma_buf, dma_len);
    return 0;
}

static int bar4(struct ufio_dev *dev, void *o, unsigned r, uint64_t off, void *buf, uint32_t len, bool w)
{
    if (w)
        memcpy(big + off, buf, len);
    else
        memcpy(buf, big + off, len);
    return 0;
}

static struct ufio_dev *bench_dev;
static void stop_dev(int s) { (void)s; ufio_dev_stop(bench_dev); }

static pid_t start_device(const char *path, int cpu, unsigned poll_us)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    pin(cpu);
    big = malloc(BIG_BAR);
    static const struct ufio_pci_ids ids = { 0x5546, 0x0002, 0x5546, 0x0002, 0xff0000, 1 };
    struct ufio_dev_limits l = { .size = sizeof(l) };
    void *shm;
    if (!big || ufio_dev_create("bench", &ids, NULL, NULL, &bench_dev))
        _exit(1);
    ufio_dev_get_limits(bench_dev, &l);
    l.max_data_xfer_size = 1u << 20;
    if (ufio_dev_set_limits(bench_dev, &l) || ufio_dev_add_bar(bench_dev, 0, 4096, 0, bar0, NULL) ||
        ufio_dev_add_bar(bench_dev, 2, BIG_BAR, 0, NULL, NULL) ||
        ufio_dev_add_mmap_area(bench_dev, 2, 0, BIG_BAR, &shm) ||
        ufio_dev_add_bar(bench_dev, 4, BIG_BAR, 0, bar4, NULL) || ufio_dev_set_poll_budget(bench_dev, poll_us) ||
        ufio_dev_listen(bench_dev, path))
        _exit(1);
    signal(SIGTERM, stop_dev);
    ufio_dev_run(bench_dev);
    ufio_dev_destroy(bench_dev);
    _exit(0);
}

static void stop_device(pid_t pid)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

static double cpu_seconds(pid_t pid)
{
    char p[64], buf[1024];
    snprintf(p, sizeof(p), "/proc/%d/stat", pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *s = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (!s || sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* ---- raw socketpair floor -------------------------------------------------------------- */

/*
 * A peer process that reads req bytes and answers rep bytes, forever: the
 * least any request/reply exchange of that shape over this socket can cost.
 * It stays up so its batches interleave with ufio's in one time window,
 * and noise from the rest of the machine hits both alike.
 */
struct raw_peer {
    pid_t pid;
    int fd;
    size_t req, rep;
    bool poll_waits; /* both sides wait in poll() then read, not in read() */
};

static uint8_t raw_buf[(1 << 20) + 64];

static void wait_in(int fd, bool poll_first)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll_first)
        poll(&p, 1, -1);
}

static void raw_start_ex(struct raw_peer *rp, int scpu, size_t req, size_t rep, bool poll_waits)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
        exit(1);
    rp->req = req;
    rp->rep = rep;
    rp->poll_waits = poll_waits;
    rp->pid = fork();
    if (rp->pid == 0) {
        pin(scpu);
        close(sv[0]);
        for (;;) {
            for (size_t got = 0; got < req;) {
                wait_in(sv[1], poll_waits);
                ssize_t n = read(sv[1], raw_buf, req - got);
                if (n <= 0)
                    _exit(0);
                got += (size_t)n;
            }
            for (size_t sent = 0; sent < rep;) {
                ssize_t n = write(sv[1], raw_buf, rep - sent);
                if (n <= 0)
                    _exit(0);
                sent += (size_t)n;
            }
        }
    }
    close(sv[1]);
    rp->fd = sv[0];
}

static void raw_start(struct raw_peer *rp, int scpu, size_t req, size_t rep)
{
    raw_start_ex(rp, scpu, req, rep, false);
}

static void raw_stop(struct raw_peer *rp)
{
    close(rp->fd);
    kill(rp->pid, SIGTERM); /* a later peer may hold our socket too: EOF alone is not enough */
    waitpid(rp->pid, NULL, 0);
}

/* Microseconds per exchange, over iters exchanges. */
static double raw_batch(struct raw_peer *rp, int iters)
{
    double t0 = now_us();
    for (int i = 0; i < iters; i++) {
        for (size_t sent = 0; sent < rp->req;) {
            ssize_t n = write(rp->fd, raw_buf, rp->req - sent);
            if (n <= 0)
                exit(1);
            sent += (size_t)n;
        }
        for (size_t got = 0; got < rp->rep;) {
            wait_in(rp->fd, rp->poll_waits);
            ssize_t n = read(rp->fd, raw_buf, rp->rep - got);
            if (n <= 0)
                exit(1);
            got += (size_t)n;
        }
    }
    return (now_us() - t0) / iters;
}

/* ---- measurements ------------------------------------------------------------------- */

struct row {
    char name[96];
    double value;
    const char *unit;
    double raw;     /* the raw socketpair figure of the same shape, 0 = none */
};
static struct row rows[80];
static int nrows;

static void add(const char *unit, double v, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add(const char *unit, double v, const char *fmt, ...)
{
    if (nrows == (int)(sizeof(rows) / sizeof(rows[0])))
        return;
    struct row *r = &rows[nrows++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->name, sizeof(r->name), fmt, ap);
    va_end(ap);
    r->value = v;
    r->unit = unit;
    r->raw = 0;
}

static void against_raw(double raw) { rows[nrows - 1].raw = raw; }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void check(int err, const char *what)
{
    if (err) {
        fprintf(stderr, "ufio-bench: %s failed: %s\n", what, strerror(-err));
        exit(1);
    }
}

/* Microseconds per 4-byte access to BAR0. */
static double rtt(struct ufio_client *c, bool write, int iters)
{
    uint32_t v = 1;
    double t0 = now_us();
    for (int i = 0; i < iters; i++)
        check(write ? ufio_client_region_write(c, 0, 0x20, &v, 4) : ufio_client_region_read(c, 0, 0x20, &v, 4),
              "request");
    return (now_us() - t0) / iters;
}

/* Microseconds per transfer of size bytes to or from a region. */
static double xfer_batch(struct ufio_client *c, unsigned region, bool write, size_t size, int iters)
{
    static uint8_t buf[1 << 20];
    double t0 = now_us();
    for (int i = 0; i < iters; i++)
        check(write ? ufio_client_region_write(c, region, 0, buf, size) : ufio_client_region_read(c, region, 0, buf, size),
              "transfer");
    return (now_us() - t0) / iters;
}

static double mibps(size_t size, double us) { return size / us * 1e6 / 1048576.0; }

static double dma_rate(struct ufio_client *c, uint64_t iova, uint32_t len, bool dev_writes, double seconds)
{
    uint32_t v[3] = { (uint32_t)iova, (uint32_t)(iova >> 32), len };
    for (int i = 0; i < 3; i++)
        ufio_client_region_write(c, 0, (uint64_t)i * 4, &v[i], 4);
    double t0 = now_us(), t;
    uint64_t bytes = 0;
    uint32_t one = 1;
    do {
        check(ufio_client_region_write(c, 0, dev_writes ? 16 : 12, &one, 4), "DMA");
        bytes += len;
        t = now_us();
    } while (t - t0 < seconds * 1e6);
    return bytes / ((t - t0) / 1e6) / 1048576.0;
}

#define ROUNDS 5

struct place {
    const char *name;
    int scpu, ccpu;
};

/*
 * 4-byte REGION_READ and REGION_WRITE round trips, in ROUNDS batches that
 * alternate with batches of the raw ping-pong of the same shape (32 bytes
 * out, 36 back: a REGION_READ's request and reply); medians are reported.
 */
static void latency_rows(struct ufio_client *c, const struct place *pl, bool polling, unsigned poll_us, int iters)
{
    struct raw_peer rp, rpp;
    double raw[ROUNDS], rawp[ROUNDS], rd[ROUNDS], wr[ROUNDS];
    int per = iters / ROUNDS > 10 ? iters / ROUNDS : 10;
    if (!polling) {
        raw_start(&rp, pl->scpu, 32, 36);
        raw_start_ex(&rpp, pl->scpu, 32, 36, true);
    }
    rtt(c, false, per / 10 + 1); /* warm up */
    for (int r = 0; r < ROUNDS; r++) {
        if (!polling) {
            raw[r] = raw_batch(&rp, per);
            rawp[r] = raw_batch(&rpp, per);
        }
        rd[r] = rtt(c, false, per);
        wr[r] = rtt(c, true, per);
    }
    double rawm = 0;
    if (!polling) {
        rawm = median(raw, ROUNDS);
        raw_stop(&rp);
        raw_stop(&rpp);
        add("us", rawm, "raw socketpair ping-pong, %s", pl->name);
        /* what waiting in poll() before each read costs, raw: why ufio waits in recvmsg */
        add("us", median(rawp, ROUNDS), "raw ping-pong waiting in poll() first, %s", pl->name);
        against_raw(rawm);
    }
    char mode[32];
    snprintf(mode, sizeof(mode), polling ? "polling on (%u us)" : "polling off", poll_us);
    add("us", median(rd, ROUNDS), "REGION_READ 4 B, %s, %s", pl->name, mode);
    against_raw(rawm);
    add("us", median(wr, ROUNDS), "REGION_WRITE 4 B, %s, %s", pl->name, mode);
    against_raw(rawm);
}

/*
 * Bulk rows for one size: REGION_WRITE and REGION_READ of BAR2 (shared
 * memory) next to raw transfers of the same shape (size + 32 bytes one way,
 * 32 the other), alternating; at the largest size also BAR4, whose callback
 * copies. Each batch lasts about seconds / ROUNDS.
 */
static void bulk_rows(struct ufio_client *c, const struct place *pl, size_t size, bool trapped_too, double seconds)
{
    struct raw_peer rw, rr;
    raw_start(&rw, pl->scpu, size + 32, 32);
    raw_start(&rr, pl->scpu, 32, size + 32);
    double t1 = raw_batch(&rw, 3) + xfer_batch(c, 2, true, size, 3);
    int per = (int)(seconds / ROUNDS * 1e6 / (t1 / 2 > 1 ? t1 / 2 : 1));
    if (per < 3)
        per = 3;
    double w[ROUNDS], r[ROUNDS], raww[ROUNDS], rawr[ROUNDS], tw[ROUNDS], tr[ROUNDS];
    for (int i = 0; i < ROUNDS; i++) {
        raww[i] = raw_batch(&rw, per);
        w[i] = xfer_batch(c, 2, true, size, per);
        rawr[i] = raw_batch(&rr, per);
        r[i] = xfer_batch(c, 2, false, size, per);
        if (trapped_too) {
            tw[i] = xfer_batch(c, 4, true, size, per);
            tr[i] = xfer_batch(c, 4, false, size, per);
        }
    }
    raw_stop(&rw);
    raw_stop(&rr);
    double rw_m = mibps(size, median(raww, ROUNDS)), rr_m = mibps(size, median(rawr, ROUNDS));
    add("MiB/s", rw_m, "raw socketpair bulk %zu B out, %s", size, pl->name);
    add("MiB/s", mibps(size, median(w, ROUNDS)), "REGION_WRITE %zu B, shared-memory BAR, %s", size, pl->name);
    against_raw(rw_m);
    add("MiB/s", rr_m, "raw socketpair bulk %zu B back, %s", size, pl->name);
    add("MiB/s", mibps(size, median(r, ROUNDS)), "REGION_READ %zu B, shared-memory BAR, %s", size, pl->name);
    against_raw(rr_m);
    if (trapped_too) {
        add("MiB/s", mibps(size, median(tw, ROUNDS)), "REGION_WRITE %zu B, copying callback BAR, %s", size, pl->name);
        against_raw(rw_m);
        add("MiB/s", mibps(size, median(tr, ROUNDS)), "REGION_READ %zu B, copying callback BAR, %s", size, pl->name);
        against_raw(rr_m);
    }
}

static void dma_rows(struct ufio_client *c, const struct place *pl, double secs)
{
    /* device DMA: 1 MiB by messages (fd-less mapping) and through mapped memory */
    static uint8_t plain[1 << 20];
    int mfd = memfd_create("bench", MFD_CLOEXEC);
    if (mfd < 0 || ftruncate(mfd, 1 << 20))
        exit(1);
    void *mem = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (mem == MAP_FAILED)
        exit(1);
    check(ufio_client_dma_map(c, 0x100000000ull, 1 << 20, 3, plain, -1, 0), "DMA_MAP");
    check(ufio_client_dma_map(c, 0x200000000ull, 1 << 20, 3, mem, mfd, 0), "DMA_MAP");
    add("MiB/s", dma_rate(c, 0x100000000ull, 1 << 20, false, secs), "DMA_READ by message 1 MiB, %s", pl->name);
    add("MiB/s", dma_rate(c, 0x100000000ull, 1 << 20, true, secs), "DMA_WRITE by message 1 MiB, %s", pl->name);
    add("MiB/s", dma_rate(c, 0x200000000ull, 1 << 20, false, secs), "DMA read, mapped memory 1 MiB, %s", pl->name);
    add("MiB/s", dma_rate(c, 0x200000000ull, 1 << 20, true, secs), "DMA write, mapped memory 1 MiB, %s", pl->name);
    ufio_client_dma_unmap(c, 0x100000000ull, 1 << 20);
    ufio_client_dma_unmap(c, 0x200000000ull, 1 << 20);
    munmap(mem, 1 << 20);
    close(mfd);
}

/*
 * How long to poll: for each budget, the cross-CPU 4-byte REGION_READ
 * latency when the client pauses `gap` µs between accesses (a guest doing
 * work between trapped accesses), and the device's CPU use meanwhile. A
 * budget pays off once it covers the gap; beyond that it only burns CPU.
 */
static void poll_sweep(const char *path, double seconds)
{
    static const unsigned budgets[] = { 0, 10, 20, 50, 100, 200 };
    static const unsigned gaps[] = { 0, 20, 100 };
    for (size_t b = 0; b < sizeof(budgets) / sizeof(budgets[0]); b++) {
        pid_t pid = start_device(path, 0, budgets[b]);
        pin(1);
        struct ufio_client_opts o = { .size = sizeof(o), .poll_us = budgets[b] };
        struct ufio_client *c;
        if (ufio_client_connect(path, &o, &c)) {
            fprintf(stderr, "ufio-bench: cannot reach the bench device\n");
            stop_device(pid);
            exit(1);
        }
        rtt(c, false, 20);
        for (size_t g = 0; g < sizeof(gaps) / sizeof(gaps[0]); g++) {
            double c0 = cpu_seconds(pid), t0 = now_us(), busy = 0, t;
            uint32_t v;
            long n = 0;
            do {
                double a = now_us();
                check(ufio_client_region_read(c, 0, 0x20, &v, 4), "request");
                busy += now_us() - a;
                n++;
                for (double until = now_us() + gaps[g]; now_us() < until;)
                    ; /* the client is busy elsewhere, not asleep */
                t = now_us();
            } while (t - t0 < seconds * 1e6);
            double wall = (t - t0) / 1e6;
            add("us", busy / (double)n, "REGION_READ 4 B, cross CPU, budget %u us, %u us between accesses",
                budgets[b], gaps[g]);
            add("% CPU", (cpu_seconds(pid) - c0) / wall * 100.0, "  device CPU, budget %u us, %u us between accesses",
                budgets[b], gaps[g]);
        }
        ufio_client_destroy(c);
        stop_device(pid);
        pin(-1);
    }
}

/* "256,1024" -> values; returns the count (at most cap) */
static size_t parse_list(const char *s, unsigned long *v, size_t cap)
{
    size_t n = 0;
    while (*s && n < cap) {
        char *end;
        v[n++] = strtoul(s, &end, 10);
        s = *end == ',' ? end + 1 : end;
        if (end == s && *s)
            break;
    }
    return n;
}

/* The migration table (markdown), one row per size x rate x budget. */
static void migration_table(const char *sample, const char *sizes, const char *rates, const char *budgets)
{
    unsigned long sz[8], rt[8], bg[8];
    size_t nsz = parse_list(sizes, sz, 8), nrt = parse_list(rates, rt, 8), nbg = parse_list(budgets, bg, 8);
    /* the chunk a migration between two ufio-samples moves: their max_data_xfer_size (1 MiB) */
    const size_t chunk = 1u << 20;
    printf("| state | dirty pages/ms | budget ms | result | downtime ms | predicted ms | total ms | MiB moved | "
           "rounds | dirty limit pages/s | MiB/s | raw 1-hop MiB/s | vs 1-hop | raw 2-hop MiB/s | vs 2-hop | "
           "CPU s/GiB src / engine / dst | src peak RSS MiB | dst peak RSS MiB |\n"
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    fflush(stdout);
    struct bench_raw_rates raws[8];
    for (size_t i = 0; i < nsz; i++) {
        struct bench_raw_rates *raw = &raws[i];
        bench_raw((size_t)sz[i] << 20, chunk, raw);
        for (size_t j = 0; j < nrt; j++)
            for (size_t k = 0; k < nbg; k++) {
                struct bench_mig_row r;
                if (bench_migration(sample, sz[i], (unsigned)rt[j], (unsigned)bg[k], raw, &r))
                    continue;
                const char *res = r.err == 0 ? (r.verified ? "migrated, verified" : "migrated")
                                : r.err == -ETIME && strstr(r.error, "could not finish")
                                    ? "stop-copy past its deadline: source runs again"
                                : r.err == -ETIME ? "refused before stopping (source kept running)" : "failed";
                printf("| %zu MiB | %lu | %lu | %s | %.1f | %.1f | %.0f | %.0f | %u | %llu | %.0f | %.0f | %.2f | %.0f | "
                       "%.2f | %.2f / %.2f / %.2f | %.0f | %.0f |\n",
                       r.mib, rt[j], bg[k], res, r.downtime, r.predicted, r.total, r.bytes / 1048576.0, r.rounds,
                       (unsigned long long)r.limit, r.mib_s, raw->one_hop, r.vs_raw, raw->two_hop, r.vs_raw2,
                       r.cpu[0], r.cpu[1], r.cpu[2], r.src_rss, r.dst_rss);
                if (r.err && r.err != -ETIME)
                    fprintf(stderr, "ufio-bench: %zu MiB, %lu pages/ms, %lu ms: %s\n", r.mib, rt[j], bg[k], r.error);
                fflush(stdout);
            }
    }
    /* what the transfer alone costs, for the CPU column above */
    printf("\n| raw transfer (%zu KiB writes, unix sockets) | MiB/s | CPU s/GiB |\n|---|---|---|\n", chunk >> 10);
    for (size_t i = 0; i < nsz; i++) {
        const struct bench_raw_rates *raw = &raws[i];
        printf("| %lu MiB, 1 hop (writer -> reader) | %.0f | %.2f (both ends) |\n", sz[i], raw->one_hop,
               raw->one_hop_cpu);
        printf("| %lu MiB, 2 hops (writer -> relay -> reader) | %.0f | %.2f / %.2f / %.2f |\n", sz[i],
               raw->two_hop, raw->two_hop_cpu[0], raw->two_hop_cpu[1], raw->two_hop_cpu[2]);
    }
    fflush(stdout);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: ufio-bench [--socket PATH | --poll-sweep | --migration --sample PATH | --sessions |\n"
               "                   --dma-maps[=N] | --handover=SERVER [--rounds N]] [--iters N] [--seconds S]\n"
               "                  [--poll-us N] [--json]\n"
               "Measures ufio's request latency, bulk throughput, DMA and idle CPU, next to a raw\n"
               "socketpair in the same CPU placements and shapes (medians of 5 interleaved\n"
               "batches; 'vs raw' = ufio / raw). Without --socket it starts its own device.\n"
               "  --socket PATH   measure an existing server (latency rows only; needs BAR0)\n"
               "  --iters N       round trips per latency row (default 20000)\n"
               "  --seconds S     time per throughput row, all rounds (default 0.5)\n"
               "  --poll-us N     polling budget for the 'polling on' rows (default 50)\n"
               "  --poll-sweep    polling budget rows instead: latency and device CPU per\n"
               "                  budget (0..200 us) with 0/20/100 us between accesses\n"
               "                  (--seconds per cell)\n"
               "  --migration     a migration table instead: for every state size, dirty rate and\n"
               "                  downtime budget, ufio-migrate's engine between two ufio-sample\n"
               "                  processes (--sample PATH) beside a raw socket transfer of the same\n"
               "                  bytes: downtime (or refused), total, bytes, throughput, peak RSS of\n"
               "                  both ends; then a dirty-log report over 64 GiB of mapped memory\n"
               "  --sample PATH   the ufio-sample binary (--migration)\n"
               "  --sizes LIST    state sizes in MiB (default 256,1024)\n"
               "  --rates LIST    pages dirtied per ms while running (default 4,100)\n"
               "  --budgets LIST  downtime budgets in ms (default 50,100,300)\n"
               "  --sessions      session rows instead: the owner's 4-byte round trip alone and\n"
               "                  with an observer flooding config reads beside it, next to raw\n"
               "  --dma-maps[=N]  DMA table rows instead: DMA_MAP/DMA_UNMAP round trips and\n"
               "                  lookups with N mappings (default 100000, at least 2000)\n"
               "  --handover=SERVER  handover rows instead: SERVER (ufio-sample, say) replaced by\n"
               "                  SERVER --takeover under an owner reading BAR0 back to back, --rounds\n"
               "                  times (default 20): the owner's stall (median, max), the new\n"
               "                  process's time per step\n"
               "  --rounds N      handovers for --handover (1..64)\n"
               "  --json          print the rows as JSON\n");
}

int main(int argc, char **argv)
{
    int status = 0; /* 1 when a row could not be measured */
    const char *ext = NULL;
    int iters = 20000;
    double secs = 0.5;
    unsigned poll_us = 50;
    bool json = false, mig = false, sweep = false, sessions = false;
    unsigned dma_maps = 0, rounds = 20;
    const char *handover = NULL;
    const char *sample = NULL, *mig_sizes = "256,1024", *rates = "4,100", *budgets = "50,100,300";
    static const struct option lo[] = { { "socket", required_argument, NULL, 's' },
                                        { "migration", no_argument, NULL, 'm' },
                                        { "poll-sweep", no_argument, NULL, 'P' },
                                        { "sessions", no_argument, NULL, 'X' },
                                        { "dma-maps", optional_argument, NULL, 'D' },
                                        { "handover", required_argument, NULL, 'H' },
                                        { "rounds", required_argument, NULL, 'R' },
                                        { "iters", required_argument, NULL, 'i' },
                                        { "seconds", required_argument, NULL, 'S' },
                                        { "poll-us", required_argument, NULL, 'p' },
                                        { "json", no_argument, NULL, 'j' },
                                        { "sample", required_argument, NULL, 'x' },
                                        { "sizes", required_argument, NULL, 'z' },
                                        { "rates", required_argument, NULL, 'r' },
                                        { "budgets", required_argument, NULL, 'b' },
                                        { "help", no_argument, NULL, 'h' }, { 0 } };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 's': ext = optarg; break;
        case 'i': iters = atoi(optarg); break;
        case 'S': secs = atof(optarg); break;
        case 'p': poll_us = (unsigned)atoi(optarg); break;
        case 'j': json = true; break;
        case 'm': mig = true; break;
        case 'P': sweep = true; break;
        case 'X': sessions = true; break;
        case 'H': handover = optarg; break;
        case 'R': rounds = (unsigned)atoi(optarg); break;
        case 'D': dma_maps = optarg ? (unsigned)atoi(optarg) : 100000; break;
        case 'x': sample = optarg; break;
        case 'z': mig_sizes = optarg; break;
        case 'r': rates = optarg; break;
        case 'b': budgets = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
    char path[108];
    snprintf(path, sizeof(path), "/tmp/ufio-bench-%d.sock", getpid());

    if (handover) {
        if (bench_handover(add, handover, rounds))
            return 1;
    } else if (sessions || dma_maps) {
        if (sessions && bench_sessions(add, iters))
            return 1;
        if (dma_maps >= 2000 && bench_dma_maps(add, dma_maps))
            return 1;
    } else if (sweep && ncpu > 1) {
        poll_sweep(path, secs);
    } else if (sweep) {
        fprintf(stderr, "ufio-bench: --poll-sweep needs two CPUs\n");
        return 1;
    } else if (mig) {
        if (!sample) {
            fprintf(stderr, "ufio-bench: --migration needs --sample PATH (the ufio-sample binary)\n");
            return 2;
        }
        migration_table(sample, mig_sizes, rates, budgets);
        if (bench_dirty_report(add, NULL))
            status = 1; /* the rest is still printed; the failure is said above */
    } else if (ext) {
        struct ufio_client *c;
        if (ufio_client_connect(ext, NULL, &c)) {
            fprintf(stderr, "ufio-bench: cannot connect to %s\n", ext);
            return 1;
        }
        add("us", rtt(c, false, iters), "REGION_READ 4 B round trip (external server)");
        ufio_client_destroy(c);
    } else {
        static const struct place place[] = { { "same CPU", 0, 0 }, { "cross CPU", 0, 1 } };
        int np = ncpu > 1 ? 2 : 1;
        for (int p = 0; p < np; p++) {
            for (int polling = 0; polling < 2; polling++) {
                pid_t pid = start_device(path, place[p].scpu, polling ? poll_us : 0);
                pin(place[p].ccpu);
                struct ufio_client_opts o = { .size = sizeof(o), .poll_us = polling ? poll_us : 0 };
                struct ufio_client *c;
                if (ufio_client_connect(path, &o, &c)) {
                    fprintf(stderr, "ufio-bench: cannot reach the bench device\n");
                    stop_device(pid);
                    return 1;
                }
                latency_rows(c, &place[p], polling, poll_us, iters);
                if (!polling) {
                    struct ufio_client_caps caps = { .size = sizeof(caps) };
                    ufio_client_get_caps(c, &caps);
                    size_t sizes[3] = { 4096, 65536, (size_t)caps.max_data_xfer_size };
                    for (int s = 0; s < 3; s++)
                        bulk_rows(c, &place[p], sizes[s], s == 2, secs);
                    dma_rows(c, &place[p], secs);
                } else if (p == np - 1) {
                    /* idle CPU once the polling budget has expired */
                    usleep(200000);
                    double c0 = cpu_seconds(pid), t0 = now_us();
                    sleep(2);
                    double used = (cpu_seconds(pid) - c0) / ((now_us() - t0) / 1e6) * 100.0;
                    add("% CPU", used, "idle device, polling on (%u us budget)", poll_us);
                }
                ufio_client_destroy(c);
                stop_device(pid);
                pin(-1);
            }
        }
    }
    if (json) {
        json_object *a = json_object_new_array();
        for (int i = 0; i < nrows; i++) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "name", json_object_new_string(rows[i].name));
            json_object_object_add(o, "value", json_object_new_double(rows[i].value));
            json_object_object_add(o, "unit", json_object_new_string(rows[i].unit));
            if (rows[i].raw > 0) {
                /* latency: ufio / raw (lower is better); throughput: ufio / raw (higher is better) */
                json_object_object_add(o, "raw", json_object_new_double(rows[i].raw));
                json_object_object_add(o, "vs_raw", json_object_new_double(rows[i].value / rows[i].raw));
            }
            json_object_array_add(a, o);
        }
        printf("%s\n", json_object_to_json_string_ext(a, JSON_C_TO_STRING_PRETTY));
        json_object_put(a);
    } else {
        printf("%-58s %14s %8s\n", "workload", "result", "vs raw");
        for (int i = 0; i < nrows; i++) {
            printf("%-58s %9.2f %-5s", rows[i].name, rows[i].value, rows[i].unit);
            if (rows[i].raw > 0)
                printf(" %7.2fx", rows[i].value / rows[i].raw);
            printf("\n");
        }
    }
    return status;
}
