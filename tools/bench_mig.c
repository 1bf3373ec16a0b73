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
#include <dirent.h>
#include <sys/mman.h>
#include <sys/resource.h>
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

/* CPU seconds (user + system) of every thread of a process so far: /proc/PID/task/N/schedstat's
 * first field is the thread's time on a CPU in ns, exact where /proc/PID/stat counts ticks. */
static double proc_cpu_s(pid_t pid)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    double ns = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[384];
        snprintf(path, sizeof(path), "%s/%s/schedstat", dir, e->d_name);
        FILE *f = fopen(path, "r");
        unsigned long long t;
        if (f && fscanf(f, "%llu", &t) == 1)
            ns += (double)t;
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    return ns / 1e9;
}

static double rusage_s(int who)
{
    struct rusage u;
    if (getrusage(who, &u))
        return 0;
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

/* A unix socketpair with the send buffer ufio's vfio-user sockets get (lib/transport/sock.c):
 * the yardstick runs on the same socket settings as the migration. */
static int raw_pair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        return -errno;
    int sb = 4 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
    return 0;
}

/* One hop of the raw transfer: reads chunks from in (if >= 0) and writes them to out (if >= 0);
 * the writer alone makes the bytes up, the reader alone drops them. */
struct raw_hop {
    int in, out;
    size_t bytes, chunk;
    uint8_t *buf;
    double cpu_s; /* this thread's CPU time */
    int err;
};

static void *raw_hop_run(void *p)
{
    struct raw_hop *h = p;
    size_t done = 0;
    while (done < h->bytes && !h->err) {
        size_t want = h->bytes - done < h->chunk ? h->bytes - done : h->chunk, have = want;
        if (h->in >= 0) {
            ssize_t k = read(h->in, h->buf, want); /* a relay forwards what it got, as a pump does */
            if (k <= 0) {
                h->err = k < 0 ? -errno : -ECONNRESET;
                break;
            }
            have = (size_t)k;
        }
        for (size_t off = 0; h->out >= 0 && off < have;) {
            ssize_t k = write(h->out, h->buf + off, have - off);
            if (k <= 0) {
                h->err = -errno;
                break;
            }
            off += (size_t)k;
        }
        done += have;
    }
    h->cpu_s = rusage_s(RUSAGE_THREAD);
    return NULL;
}

/*
 * bytes over unix sockets in chunk-sized writes, one hop (writer -> reader) or two (writer ->
 * relay -> reader, as a migration crosses source -> engine -> destination), each hop a thread
 * of its own. The rate in MiB/s; cpu[] each thread's CPU seconds (writer, relay, reader).
 */
static double raw_run(size_t bytes, size_t chunk, bool relay, double cpu[3])
{
    int a[2], b[2] = { -1, -1 };
    if (raw_pair(a) || (relay && raw_pair(b)))
        return 0;
    struct raw_hop h[3] = {
        { .in = -1, .out = a[0], .bytes = bytes, .chunk = chunk },
        { .in = a[1], .out = b[0], .bytes = bytes, .chunk = chunk },
        { .in = relay ? b[1] : a[1], .out = -1, .bytes = bytes, .chunk = chunk },
    };
    pthread_t th[3];
    bool started[3] = { false };
    double rate = 0;
    for (int i = 0; i < 3; i++)
        if (!(h[i].buf = malloc(chunk)))
            goto out;
    memset(h[0].buf, 0x5a, chunk);
    memset(h[1].buf, 0, chunk); /* resident before the clock starts, as the engine's buffers are */
    memset(h[2].buf, 0, chunk);
    double t0 = now_us();
    for (int i = 0; i < 3; i++)
        if (i != 1 || relay)
            started[i] = pthread_create(&th[i], NULL, raw_hop_run, &h[i]) == 0;
    for (int i = 0; i < 3; i++)
        if (started[i])
            pthread_join(th[i], NULL);
    double t = now_us() - t0;
    if (started[0] && started[2] && (started[1] || !relay) && !h[0].err && !h[1].err && !h[2].err)
        rate = bytes / 1048576.0 / (t / 1e6);
    for (int i = 0; i < 3; i++)
        cpu[i] = h[i].cpu_s;
out:
    for (int i = 0; i < 3; i++)
        free(h[i].buf);
    close(a[0]);
    close(a[1]);
    if (relay) {
        close(b[0]);
        close(b[1]);
    }
    return rate;
}

void bench_raw(size_t bytes, size_t chunk, struct bench_raw_rates *r)
{
    memset(r, 0, sizeof(*r));
    double cpu[3];
    double gib = bytes / 1073741824.0;
    r->one_hop = raw_run(bytes, chunk, false, cpu);
    r->one_hop_cpu = (cpu[0] + cpu[2]) / gib;
    r->two_hop = raw_run(bytes, chunk, true, cpu);
    for (int i = 0; i < 3; i++)
        r->two_hop_cpu[i] = cpu[i] / gib;
}

int bench_migration(const char *sample, size_t mib, unsigned dirty_per_ms, unsigned max_downtime_ms,
                    const struct bench_raw_rates *raw, struct bench_mig_row *row)
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
    double c0[3] = { proc_cpu_s(pa), rusage_s(RUSAGE_SELF), proc_cpu_s(pb) };
    row->err = ufio_migrate(&o, &r);
    double c1[3] = { proc_cpu_s(pa), rusage_s(RUSAGE_SELF), proc_cpu_s(pb) };
    for (int i = 0; i < 3; i++)
        row->cpu[i] = r.bytes ? (c1[i] - c0[i]) / (r.bytes / 1073741824.0) : 0;
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
    row->vs_raw = raw->one_hop > 0 ? row->mib_s / raw->one_hop : 0;
    row->vs_raw2 = raw->two_hop > 0 ? row->mib_s / raw->two_hop : 0;
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
