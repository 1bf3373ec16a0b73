/*
 * ufio-bench --migration: migration figures with a device whose state is
 * STATE bytes of pages that a thread keeps dirtying while the device runs.
 */
#include "bench_mig.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ufio/client.h>
#include <ufio/migrate.h>
#include <ufio/migration.h>
#include <ufio/server.h>

#define PG 4096u

struct mdev {
    uint8_t *state;
    size_t npages;
    uint8_t *dirty;         /* one byte per page: simple, atomic enough with relaxed ops */
    size_t cursor;          /* first-pass position */
    bool first_done;
    volatile bool running;
    unsigned dirty_per_ms;
    pthread_t dirtier;
    bool have_thread;
};

static struct mdev M;
static struct ufio_dev *D;

static void *dirtier(void *arg)
{
    (void)arg;
    unsigned seed = 1;
    while (M.running) {
        for (unsigned i = 0; i < M.dirty_per_ms; i++) {
            size_t p = (size_t)rand_r(&seed) % M.npages;
            M.state[p * PG + (seed & (PG - 1))]++;
            __atomic_store_n(&M.dirty[p], 1, __ATOMIC_RELAXED);
        }
        usleep(1000);
    }
    return NULL;
}

static void run_dirtier(bool on)
{
    if (on && !M.have_thread && M.dirty_per_ms) {
        M.running = true;
        M.have_thread = pthread_create(&M.dirtier, NULL, dirtier, NULL) == 0;
    } else if (!on && M.have_thread) {
        M.running = false;
        pthread_join(M.dirtier, NULL);
        M.have_thread = false;
    }
}

static int transition(struct ufio_dev *d, void *o, unsigned from, unsigned to)
{
    if (to == UFIO_MIG_STOP || to == UFIO_MIG_STOP_COPY)
        run_dirtier(false);
    if (to == UFIO_MIG_RUNNING || to == UFIO_MIG_PRE_COPY)
        run_dirtier(true);
    if ((from == UFIO_MIG_RUNNING && to == UFIO_MIG_PRE_COPY) || (from == UFIO_MIG_STOP && to == UFIO_MIG_STOP_COPY)) {
        M.cursor = 0;
        M.first_done = false;
        memset(M.dirty, 0, M.npages);
    }
    return 0;
}

/* records: u32 page index + the page */
static ssize_t save(struct ufio_dev *d, void *o, void *buf, size_t len)
{
    uint8_t *b = buf;
    size_t off = 0;
    bool stopped = ufio_dev_mig_state(d) == UFIO_MIG_STOP_COPY;
    while (off + 4 + PG <= len) {
        size_t p;
        if (!M.first_done) {
            if (M.cursor == M.npages) {
                M.first_done = true;
                M.cursor = 0;
                if (!stopped)
                    break; /* the initial pass is done; dirty pages come in later rounds */
                continue;
            }
            p = M.cursor++;
            __atomic_store_n(&M.dirty[p], 0, __ATOMIC_RELAXED);
        } else {
            while (M.cursor < M.npages && !__atomic_exchange_n(&M.dirty[M.cursor], 0, __ATOMIC_RELAXED))
                M.cursor++;
            if (M.cursor == M.npages) {
                M.cursor = 0; /* a round is over */
                break;
            }
            p = M.cursor++;
        }
        uint32_t idx = (uint32_t)p;
        memcpy(b + off, &idx, 4);
        memcpy(b + off + 4, M.state + p * PG, PG);
        off += 4 + PG;
    }
    return (ssize_t)off;
}

static int load(struct ufio_dev *d, void *o, const void *buf, size_t len, bool last)
{
    const uint8_t *b = buf;
    for (size_t off = 0; off + 4 + PG <= len; off += 4 + PG) {
        uint32_t idx;
        memcpy(&idx, b + off, 4);
        if (idx >= M.npages)
            return -EINVAL;
        memcpy(M.state + (size_t)idx * PG, b + off + 4, PG);
    }
    return len % (4 + PG) ? -EINVAL : 0;
}

static void estimate(struct ufio_dev *d, void *o, uint64_t *initial, uint64_t *dirty, uint64_t *stop_copy)
{
    size_t nd = 0;
    for (size_t p = 0; p < M.npages; p++)
        nd += M.dirty[p];
    *initial = M.first_done ? 0 : (uint64_t)(M.npages - M.cursor) * (4 + PG);
    *dirty = (uint64_t)nd * (4 + PG);
    *stop_copy = *initial + *dirty;
}

static void stop_dev(int s) { (void)s; ufio_dev_stop(D); }

static pid_t start_mig_device(const char *path, size_t bytes, unsigned dirty_per_ms)
{
    pid_t pid = fork();
    if (pid)
        return pid;
    M.npages = bytes / PG;
    M.state = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    M.dirty = calloc(M.npages, 1);
    M.dirty_per_ms = dirty_per_ms;
    if (M.state == MAP_FAILED || !M.dirty)
        _exit(1);
    for (size_t i = 0; i < bytes; i += PG)
        M.state[i] = (uint8_t)(i / PG);
    static const struct ufio_pci_ids ids = { 0x5546, 0x0003, 0x5546, 0x0003, 0xff0000, 1 };
    static const struct ufio_mig_ops ops = { .size = sizeof(ops), .flags = UFIO_MIG_F_STOP_COPY | UFIO_MIG_F_PRE_COPY,
                                             .transition = transition, .save = save, .load = load,
                                             .estimate = estimate };
    struct ufio_dev_limits l = { .size = sizeof(l) };
    if (ufio_dev_create("bench-mig", &ids, NULL, NULL, &D))
        _exit(1);
    ufio_dev_get_limits(D, &l);
    l.max_mig_stream = 8ull << 30;
    if (ufio_dev_set_limits(D, &l) || ufio_dev_add_bar(D, 0, 4096, 0, NULL, NULL) ||
        ufio_dev_setup_migration(D, &ops, NULL) || ufio_dev_listen(D, path))
        _exit(1);
    signal(SIGTERM, stop_dev);
    run_dirtier(true);
    ufio_dev_run(D);
    run_dirtier(false);
    ufio_dev_destroy(D);
    _exit(0);
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* ---- migration between two ufio-sample processes ---------------------------------- */

/* Starts SAMPLE --socket-path=path --state-mib=mib --dirty-rate=rate; waits for "listening on". */
static pid_t start_sample(const char *bin, const char *path, size_t mib, unsigned rate)
{
    int p[2];
    if (pipe(p))
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        char a[160], b[32], c[32];
        snprintf(a, sizeof(a), "--socket-path=%s", path);
        snprintf(b, sizeof(b), "--state-mib=%zu", mib);
        snprintf(c, sizeof(c), "--dirty-rate=%u", rate);
        dup2(p[1], 1);
        close(p[0]);
        execl(bin, bin, a, b, c, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char buf[256];
    size_t n = 0;
    ssize_t k;
    while (n < sizeof(buf) - 1 && (k = read(p[0], buf + n, sizeof(buf) - 1 - n)) > 0) {
        n += (size_t)k;
        buf[n] = 0;
        if (strstr(buf, "listening on"))
            break;
    }
    close(p[0]);
    if (!strstr(buf, "listening on")) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

/* Peak resident set of a process, MiB (VmHWM). */
static double peak_rss_mib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    double kb = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %lf kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb / 1024.0;
}

struct raw_arg {
    int fd;
    size_t bytes;
};

static void *raw_reader(void *p)
{
    struct raw_arg *a = p;
    static uint8_t buf[1 << 20];
    size_t got = 0;
    while (got < a->bytes) {
        ssize_t k = read(a->fd, buf, sizeof(buf));
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    return NULL;
}

/* The same bytes over a plain unix socket, 1 MiB writes: the transport's own rate (MiB/s). */
double bench_raw_bulk(size_t bytes)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
        return 0;
    static uint8_t buf[1 << 20];
    memset(buf, 0x5a, sizeof(buf));
    struct raw_arg a = { sv[1], bytes };
    pthread_t th;
    double t0 = now_us();
    pthread_create(&th, NULL, raw_reader, &a);
    for (size_t sent = 0; sent < bytes;) {
        ssize_t k = write(sv[0], buf, bytes - sent < sizeof(buf) ? bytes - sent : sizeof(buf));
        if (k <= 0)
            break;
        sent += (size_t)k;
    }
    pthread_join(th, NULL);
    double t = now_us() - t0;
    close(sv[0]);
    close(sv[1]);
    return bytes / 1048576.0 / (t / 1e6);
}

int bench_migration(const char *sample, size_t mib, unsigned dirty_per_ms, unsigned max_downtime_ms, double raw,
                    struct bench_mig_row *row)
{
    char a[108], b[108];
    snprintf(a, sizeof(a), "/tmp/ufio-bench-mig-a-%d.sock", getpid());
    snprintf(b, sizeof(b), "/tmp/ufio-bench-mig-b-%d.sock", getpid());
    memset(row, 0, sizeof(*row));
    pid_t pa = start_sample(sample, a, mib, dirty_per_ms), pb = pa > 0 ? start_sample(sample, b, mib, 0) : -1;
    if (pa < 0 || pb < 0) {
        fprintf(stderr, "ufio-bench: cannot start %s\n", sample);
        if (pa > 0) {
            kill(pa, SIGTERM);
            waitpid(pa, NULL, 0);
        }
        return -ENOENT;
    }
    static char err[UFIO_MIGRATE_ERROR_MAX];
    struct ufio_migrate_opts o = { .size = sizeof(o), .src_path = a, .dst_path = b,
                                   .max_downtime_ms = max_downtime_ms, .timeout_ms = 60000 };
    struct ufio_migrate_result r = { .size = sizeof(r), .error = err, .error_size = sizeof(err) };
    row->err = ufio_migrate(&o, &r);
    row->src_rss = peak_rss_mib(pa);
    row->dst_rss = peak_rss_mib(pb);
    kill(pa, SIGTERM);
    kill(pb, SIGTERM);
    waitpid(pa, NULL, 0);
    waitpid(pb, NULL, 0);
    row->mib = mib;
    row->rate = dirty_per_ms;
    row->budget = max_downtime_ms;
    row->downtime = r.downtime_ms;
    row->predicted = r.predicted_downtime_ms;
    row->total = r.total_ms;
    row->bytes = r.bytes;
    row->rounds = r.rounds;
    row->verified = r.verified;
    row->limit = r.dirty_limit;
    row->mib_s = r.total_ms > 0 ? r.bytes / 1048576.0 / (r.total_ms / 1e3) : 0;
    row->vs_raw = raw > 0 ? row->mib_s / raw : 0;
    snprintf(row->error, sizeof(row->error), "%s", row->err ? err : "");
    return 0;
}

/* DMA_LOGGING_REPORT over 64 GiB of sparse memfd-backed mappings. */
int bench_dirty_report(bench_add_fn add, const char *path_unused)
{
    (void)path_unused;
    char p[108];
    snprintf(p, sizeof(p), "/tmp/ufio-bench-log-%d.sock", getpid());
    pid_t pid = start_mig_device(p, 1 << 20, 0);
    usleep(300000);
    struct ufio_client *c;
    int err = ufio_client_connect(p, NULL, &c);
    if (err)
        goto out;
    int mfd = memfd_create("sparse", MFD_CLOEXEC);
    const uint64_t total = 64ull << 30, chunk = 16ull << 30;
    if (mfd < 0 || ftruncate(mfd, (off_t)total)) {
        err = -errno;
        goto out_c;
    }
    for (uint64_t off = 0; off < total && !err; off += chunk)
        err = ufio_client_dma_map(c, 0x10000000000ull + off, chunk, 3, NULL, mfd, off);
    if (!err)
        err = ufio_client_dirty_log_start(c, 4096, NULL, 0);
    if (err)
        goto out_m;
    /* one report call covers what fits a 1 MiB bitmap: 32 GiB at 4 KiB pages */
    static uint64_t bm[(1 << 20) / 8];
    double t0 = now_us();
    const uint64_t span = 32ull << 30;
    for (uint64_t off = 0; off < total && !err; off += span)
        err = ufio_client_dirty_log_report(c, 0x10000000000ull + off, span, 4096, bm);
    double t = now_us() - t0;
    if (!err)
        add("ms", t / 1e3, "DMA_LOGGING_REPORT over 64 GiB mapped (2 reports of 32 GiB, 4 KiB pages)");
    ufio_client_dirty_log_stop(c);
out_m:
    close(mfd);
out_c:
    ufio_client_destroy(c);
out:
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    if (err)
        fprintf(stderr, "ufio-bench: dirty report benchmark failed: %s\n", strerror(-err));
    return err;
}
