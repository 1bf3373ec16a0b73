/*
 * ufio-bench: what ufio costs, next to what the machine allows.
 *
 * It starts a benchmark device (a ufio server in a child process) unless
 * --socket names one, and measures with the client library:
 *   - 4-byte REGION_READ / REGION_WRITE round trips, client and server on the
 *     same CPU and on different CPUs, polling off and on;
 *   - REGION_WRITE / REGION_READ throughput at 4 KiB, 64 KiB and the
 *     negotiated max_data_xfer_size;
 *   - device DMA through DMA_READ/DMA_WRITE messages and through mapped memory;
 *   - the same placements over a raw socketpair (ping-pong and bulk): the floor;
 *   - CPU used by an idle device with polling on, once its budget expired.
 */
#include <errno.h>
#include <getopt.h>
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

static uint8_t *big;        /* BAR2 backing for trapped bulk access */
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

static int bar2(struct ufio_dev *dev, void *o, unsigned r, uint64_t off, void *buf, uint32_t len, bool w)
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
    struct ufio_dev_limits l;
    if (!big || ufio_dev_create("bench", &ids, NULL, NULL, &bench_dev))
        _exit(1);
    ufio_dev_get_limits(bench_dev, &l);
    l.max_data_xfer_size = 1u << 20;
    if (ufio_dev_set_limits(bench_dev, &l) || ufio_dev_add_bar(bench_dev, 0, 4096, 0, bar0, NULL) ||
        ufio_dev_add_bar(bench_dev, 2, BIG_BAR, 0, bar2, NULL) || ufio_dev_set_poll_budget(bench_dev, poll_us) ||
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

static double raw_pingpong(int scpu, int ccpu, int iters, size_t req, size_t rep)
{
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pid_t pid = fork();
    static uint8_t buf[1 << 21];
    if (pid == 0) {
        pin(scpu);
        close(sv[0]);
        for (;;) {
            size_t got = 0;
            while (got < req) {
                ssize_t n = read(sv[1], buf, req - got);
                if (n <= 0)
                    _exit(0);
                got += (size_t)n;
            }
            size_t sent = 0;
            while (sent < rep) {
                ssize_t n = write(sv[1], buf, rep - sent);
                if (n <= 0)
                    _exit(0);
                sent += (size_t)n;
            }
        }
    }
    pin(ccpu);
    close(sv[1]);
    double t0 = 0;
    for (int i = -iters / 10; i < iters; i++) {
        if (i == 0)
            t0 = now_us();
        size_t sent = 0;
        while (sent < req)
            sent += (size_t)write(sv[0], buf, req - sent);
        size_t got = 0;
        while (got < rep)
            got += (size_t)read(sv[0], buf, rep - got);
    }
    double per = (now_us() - t0) / iters;
    close(sv[0]);
    waitpid(pid, NULL, 0);
    pin(-1);
    return per;
}

/* ---- measurements ------------------------------------------------------------------- */

struct row {
    char name[96];
    double value;
    const char *unit;
};
static struct row rows[64];
static int nrows;

static void add(const char *unit, double v, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add(const char *unit, double v, const char *fmt, ...)
{
    struct row *r = &rows[nrows++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->name, sizeof(r->name), fmt, ap);
    va_end(ap);
    r->value = v;
    r->unit = unit;
}

static double rtt(struct ufio_client *c, bool write, int iters)
{
    uint32_t v = 1;
    double t0 = 0;
    for (int i = -iters / 10; i < iters; i++) {
        if (i == 0)
            t0 = now_us();
        int err = write ? ufio_client_region_write(c, 0, 0x20, &v, 4) : ufio_client_region_read(c, 0, 0x20, &v, 4);
        if (err) {
            fprintf(stderr, "ufio-bench: request failed: %s\n", strerror(-err));
            exit(1);
        }
    }
    return (now_us() - t0) / iters;
}

static double throughput(struct ufio_client *c, bool write, size_t size, double seconds)
{
    static uint8_t buf[BIG_BAR];
    double t0 = now_us(), t;
    uint64_t bytes = 0;
    do {
        int err = write ? ufio_client_region_write(c, 2, 0, buf, size) : ufio_client_region_read(c, 2, 0, buf, size);
        if (err) {
            fprintf(stderr, "ufio-bench: transfer failed: %s\n", strerror(-err));
            exit(1);
        }
        bytes += size;
        t = now_us();
    } while (t - t0 < seconds * 1e6);
    return bytes / ((t - t0) / 1e6) / 1048576.0;
}

static double raw_bulk(int scpu, int ccpu, size_t size, double seconds)
{
    /* same shape as a REGION_WRITE: size bytes out, a 16-byte answer back */
    int iters = 1;
    double per = raw_pingpong(scpu, ccpu, iters, size, 16);
    iters = (int)(seconds * 1e6 / (per > 1 ? per : 1));
    if (iters < 5)
        iters = 5;
    per = raw_pingpong(scpu, ccpu, iters, size, 16);
    return size / per * 1e6 / 1048576.0;
}

static double dma_rate(struct ufio_client *c, uint64_t iova, uint32_t len, bool dev_writes, double seconds)
{
    uint32_t v[3] = { (uint32_t)iova, (uint32_t)(iova >> 32), len };
    for (int i = 0; i < 3; i++)
        ufio_client_region_write(c, 0, (uint64_t)i * 4, &v[i], 4);
    double t0 = now_us(), t;
    uint64_t bytes = 0;
    uint32_t one = 1;
    do {
        int err = ufio_client_region_write(c, 0, dev_writes ? 16 : 12, &one, 4);
        if (err) {
            fprintf(stderr, "ufio-bench: DMA failed: %s\n", strerror(-err));
            exit(1);
        }
        bytes += len;
        t = now_us();
    } while (t - t0 < seconds * 1e6);
    return bytes / ((t - t0) / 1e6) / 1048576.0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: ufio-bench [--socket PATH] [--iters N] [--seconds S] [--poll-us N] [--json]\n"
               "Measures ufio's request latency, bulk throughput, DMA and idle CPU, next to a raw\n"
               "socketpair in the same CPU placements. Without --socket it starts its own device.\n"
               "  --socket PATH   measure an existing server (latency rows only; needs BAR0)\n"
               "  --iters N       round trips per latency row (default 20000)\n"
               "  --seconds S     duration of each throughput row (default 0.5)\n"
               "  --poll-us N     polling budget for the 'polling on' rows (default 50)\n"
               "  --migration     migration rows instead: 256 MiB / 1 GiB of state dirtied while\n"
               "                  running (downtime, total, throughput), and a dirty-log report\n"
               "                  over 64 GiB of mapped memory\n"
               "  --json          print the rows as JSON\n");
}

int main(int argc, char **argv)
{
    const char *ext = NULL;
    int iters = 20000;
    double secs = 0.5;
    unsigned poll_us = 50;
    bool json = false, mig = false;
    static const struct option lo[] = { { "socket", required_argument, NULL, 's' },
                                        { "migration", no_argument, NULL, 'm' },
                                        { "iters", required_argument, NULL, 'i' },
                                        { "seconds", required_argument, NULL, 'S' },
                                        { "poll-us", required_argument, NULL, 'p' },
                                        { "json", no_argument, NULL, 'j' },
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
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
    char path[108];
    snprintf(path, sizeof(path), "/tmp/ufio-bench-%d.sock", getpid());

    if (mig) {
        /* state sizes from the issue: 256 MiB and 1 GiB, 4 pages (16 KiB) dirtied per ms while running */
        bench_migration(add, 256, 4, 300);
        bench_migration(add, 1024, 4, 300);
        bench_migration(add, 256, 0, 300);
        bench_dirty_report(add, NULL);
    } else if (ext) {
        struct ufio_client *c;
        if (ufio_client_connect(ext, NULL, &c)) {
            fprintf(stderr, "ufio-bench: cannot connect to %s\n", ext);
            return 1;
        }
        add("us", rtt(c, false, iters), "REGION_READ 4 B round trip (external server)");
        ufio_client_destroy(c);
    } else {
        struct { const char *name; int scpu, ccpu; } place[] = { { "same CPU", 0, 0 }, { "cross CPU", 0, 1 } };
        int np = ncpu > 1 ? 2 : 1;
        for (int p = 0; p < np; p++) {
            add("us", raw_pingpong(place[p].scpu, place[p].ccpu, iters, 32, 20), "raw socketpair ping-pong, %s",
                place[p].name);
            for (int polling = 0; polling < 2; polling++) {
                pid_t pid = start_device(path, place[p].scpu, polling ? poll_us : 0);
                pin(place[p].ccpu);
                struct ufio_client_opts o = { .poll_us = polling ? poll_us : 0 };
                struct ufio_client *c;
                if (ufio_client_connect(path, &o, &c)) {
                    fprintf(stderr, "ufio-bench: cannot reach the bench device\n");
                    stop_device(pid);
                    return 1;
                }
                add("us", rtt(c, false, iters), "REGION_READ 4 B, %s, polling %s", place[p].name, polling ? "on" : "off");
                add("us", rtt(c, true, iters), "REGION_WRITE 4 B, %s, polling %s", place[p].name, polling ? "on" : "off");
                if (!polling) {
                    struct ufio_client_caps caps;
                    ufio_client_get_caps(c, &caps);
                    size_t sizes[3] = { 4096, 65536, (size_t)caps.max_data_xfer_size };
                    for (int s = 0; s < 3; s++) {
                        add("MiB/s", throughput(c, true, sizes[s], secs), "REGION_WRITE %zu B, %s", sizes[s], place[p].name);
                        add("MiB/s", throughput(c, false, sizes[s], secs), "REGION_READ %zu B, %s", sizes[s], place[p].name);
                        add("MiB/s", raw_bulk(place[p].scpu, place[p].ccpu, sizes[s], secs), "raw socketpair bulk %zu B, %s",
                            sizes[s], place[p].name);
                    }
                    /* device DMA: 1 MiB by messages (fd-less mapping) and through mapped memory */
                    static uint8_t plain[1 << 20];
                    int mfd = memfd_create("bench", MFD_CLOEXEC);
                    if (mfd < 0 || ftruncate(mfd, 1 << 20))
                        return 1;
                    void *mem = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
                    ufio_client_dma_map(c, 0x100000000ull, 1 << 20, 3, plain, -1, 0);
                    ufio_client_dma_map(c, 0x200000000ull, 1 << 20, 3, mem, mfd, 0);
                    add("MiB/s", dma_rate(c, 0x100000000ull, 1 << 20, false, secs), "DMA_READ by message 1 MiB, %s", place[p].name);
                    add("MiB/s", dma_rate(c, 0x100000000ull, 1 << 20, true, secs), "DMA_WRITE by message 1 MiB, %s", place[p].name);
                    add("MiB/s", dma_rate(c, 0x200000000ull, 1 << 20, false, secs), "DMA read, mapped memory 1 MiB, %s", place[p].name);
                    add("MiB/s", dma_rate(c, 0x200000000ull, 1 << 20, true, secs), "DMA write, mapped memory 1 MiB, %s", place[p].name);
                    munmap(mem, 1 << 20);
                    close(mfd);
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
            json_object_array_add(a, o);
        }
        printf("%s\n", json_object_to_json_string_ext(a, JSON_C_TO_STRING_PRETTY));
        json_object_put(a);
    } else {
        printf("%-58s %12s\n", "workload", "result");
        for (int i = 0; i < nrows; i++)
            printf("%-58s %9.2f %s\n", rows[i].name, rows[i].value, rows[i].unit);
    }
    return 0;
}
