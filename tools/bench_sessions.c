/*
 * ufio-bench --sessions and --dma-maps: what sharing a device costs its
 * owner, and what the DMA table costs at 100,000 mappings.
 */
#include "bench_sessions.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ufio/client.h>
#include <ufio/server.h>

#define ROUNDS 5
#ifndef RAWC_POLL
#define RAWC_POLL 1
#endif
#define LOOKUP_MAPS 0x40  /* BAR0: write N = how many mappings the lookups spread over */
#define LOOKUP_RUN 0x44   /* BAR0: write K = do K lookups now */
#define LOOKUP_NS 0x48    /* BAR0: read ns per lookup of the last run (x1000) */
#define MAP_STRIDE 8192u  /* mapping i is [i * 8 KiB, + 4 KiB) */

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void pin(int cpu)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    if (cpu < 0) {
        for (int i = 0; i < CPU_SETSIZE; i++)
            CPU_SET(i, &s);
    } else {
        CPU_SET(cpu, &s);
    }
    sched_setaffinity(0, sizeof(s), &s);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return v[n / 2];
}

/* ---- the device ------------------------------------------------------------ */

static struct ufio_dev *sdev;
static uint32_t lookup_maps, lookup_milli_ns;

static int bar0(struct ufio_dev *dev, void *o, unsigned r, uint64_t off, void *buf, uint32_t len, bool w)
{
    uint32_t v = 0;
    if (len != 4) {
        memset(buf, 0, len);
        return 0;
    }
    if (!w) {
        v = off == LOOKUP_NS ? lookup_milli_ns : off == LOOKUP_MAPS ? lookup_maps : 0;
        memcpy(buf, &v, 4);
        return 0;
    }
    memcpy(&v, buf, 4);
    if (off == LOOKUP_MAPS) {
        lookup_maps = v;
    } else if (off == LOOKUP_RUN && lookup_maps) {
        /* what a device pays to translate an address it was given */
        uint64_t x = 88172645463325252ull, found = 0;
        double t0 = now_us();
        for (uint32_t i = 0; i < v; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            uint64_t iova = (x % lookup_maps) * MAP_STRIDE + (x >> 40) % 4096;
            /* fd-less mappings: the lookup finds the range, the pointer is NULL */
            found += ufio_dev_dma_ptr(dev, iova, 1, false) == NULL;
        }
        double us = now_us() - t0;
        lookup_milli_ns = (uint32_t)(us * 1e6 / v);
        (void)found;
    }
    return 0;
}

static void stop_dev(int s) { (void)s; ufio_dev_stop(sdev); }

static pid_t start_device(const char *path, int cpu, uint32_t max_maps)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    pin(cpu);
    static const struct ufio_pci_ids ids = { 0x5546, 0x0003, 0x5546, 0x0003, 0xff0000, 1 };
    struct ufio_dev_limits l = { .size = sizeof(l) };
    if (ufio_dev_create("bench-sessions", &ids, NULL, NULL, &sdev) || ufio_dev_get_limits(sdev, &l))
        _exit(1);
    l.max_dma_maps = max_maps;
    if (ufio_dev_set_limits(sdev, &l) || ufio_dev_add_bar(sdev, 0, 4096, 0, bar0, NULL) ||
        ufio_dev_listen(sdev, path) || ufio_dev_listen_mgmt(sdev, NULL))
        _exit(1);
    signal(SIGTERM, stop_dev);
    ufio_dev_run(sdev);
    ufio_dev_destroy(sdev);
    _exit(0);
}

static void stop_device(pid_t pid)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

static struct ufio_client *connect_role(const char *path, unsigned role)
{
    struct ufio_client_opts o = { .size = sizeof(o), .role = role, .timeout_ms = 10000 };
    struct ufio_client *c = NULL;
    for (int i = 0; i < 100 && ufio_client_connect(path, &o, &c); i++)
        usleep(20000); /* the device process is starting: not a test, a tool */
    return c;
}

/* ---- raw floor: a socketpair ping-pong of REGION_READ's shape ----------------- */

struct raw_peer {
    pid_t pid;
    int fd;
};

static int raw_start(struct raw_peer *rp, int scpu)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
        return -1;
    rp->pid = fork();
    if (rp->pid == 0) {
        pin(scpu);
        close(sv[0]);
        char b[64];
        for (;;) {
            for (size_t got = 0; got < 32;) {
                ssize_t n = read(sv[1], b, 32 - got);
                if (n <= 0)
                    _exit(0);
                got += (size_t)n;
            }
            if (write(sv[1], b, 36) != 36)
                _exit(0);
        }
    }
    close(sv[1]);
    rp->fd = sv[0];
    return 0;
}

static void raw_stop(struct raw_peer *rp)
{
    close(rp->fd);
    kill(rp->pid, SIGTERM);
    waitpid(rp->pid, NULL, 0);
}

static double raw_batch(struct raw_peer *rp, int iters)
{
    char b[64] = { 0 };
    double t0 = now_us();
    for (int i = 0; i < iters; i++) {
        if (write(rp->fd, b, 32) != 32)
            return -1;
        for (size_t got = 0; got < 36;) {
            ssize_t n = read(rp->fd, b, 36 - got);
            if (n <= 0)
                return -1;
            got += (size_t)n;
        }
    }
    return (now_us() - t0) / iters;
}

/*
 * A minimal client of the ufio server: the VERSION handshake by hand, then
 * REGION_READs as write + blocking read on the owner connection of a second
 * device process. It measures the server's small-message path on its own,
 * beside the raw floor, without the client library's work.
 */
static int read_full(int fd, uint8_t *b, size_t len)
{
    for (size_t got = 0; got < len;) {
        ssize_t n = read(fd, b + got, len - got);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

static int rawc_connect(const char *path)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    /* VERSION 0.2, no JSON: msg_id 0, cmd 1, size 20 */
    static const uint8_t ver[20] = { 0, 0, 1, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0 };
    for (int i = 0; i < 100; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0)
            return -1;
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
            uint8_t r[16], b[1024];
            uint32_t size, flags;
            if (write(fd, ver, sizeof(ver)) != (ssize_t)sizeof(ver) || read_full(fd, r, 16))
                goto bad;
            memcpy(&size, r + 4, 4);
            memcpy(&flags, r + 8, 4);
            if (size < 16 || size - 16 > sizeof(b) || (flags & 0x20) || read_full(fd, b, size - 16))
                goto bad; /* the reply's body (whatever caps it carries) is not looked at */
            return fd;
        bad:
            close(fd);
            return -1;
        }
        close(fd);
        usleep(20000); /* the device process is starting: not a test, a tool */
    }
    return -1;
}

static double rawc_batch(int fd, int iters)
{
    /* REGION_READ (cmd 9), 32 bytes: offset 0x20, region 0, count 4; the reply is 36 */
    uint8_t m[32] = { 0, 0, 9, 0, 32, 0, 0, 0 }, r[64];
    m[16] = 0x20;
    m[28] = 4;
    double t0 = now_us();
    for (int i = 0; i < iters; i++) {
        uint16_t id = (uint16_t)(i + 1);
        memcpy(m, &id, 2);
        if (write(fd, m, 32) != 32)
            return -1;
        struct pollfd pf = { .fd = fd, .events = POLLIN };
        if ((RAWC_POLL && poll(&pf, 1, -1) != 1) || read_full(fd, r, 36))
            return -1;
        uint32_t flags;
        memcpy(&flags, r + 8, 4);
        if (memcmp(r, m, 2) || (flags & 0x20))
            return -1;
    }
    return (now_us() - t0) / iters;
}

static double owner_batch(struct ufio_client *c, int iters)
{
    uint32_t x;
    double t0 = now_us();
    for (int i = 0; i < iters; i++)
        if (ufio_client_region_read(c, 0, 0x20, &x, 4))
            return -1;
    return (now_us() - t0) / iters;
}

static double minimum(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

/*
 * Medians of ROUNDS batches each, raw and owner alternating, so load hits
 * both alike; and the fastest batch of each (on a shared machine the least
 * disturbed one: the figure to compare against the raw floor).
 */
static void owner_vs_raw(struct ufio_client *c, struct raw_peer *rp, int rawc, int iters, double *owner,
                         double *raw, double *owner_min, double *raw_min, double *rc_min)
{
    double o[ROUNDS], r[ROUNDS], q[ROUNDS];
    int per = iters / ROUNDS > 10 ? iters / ROUNDS : 10;
    for (int i = 0; i < ROUNDS; i++) {
        r[i] = raw_batch(rp, per);
        o[i] = owner_batch(c, per);
        q[i] = rawc >= 0 ? rawc_batch(rawc, per) : 0;
    }
    *owner_min = minimum(o, ROUNDS);
    *raw_min = minimum(r, ROUNDS);
    if (rc_min)
        *rc_min = minimum(q, ROUNDS);
    *owner = median(o, ROUNDS);
    *raw = median(r, ROUNDS);
}

/* An observer reading config space as fast as it can until the pipe closes; reports its count. */
static pid_t start_flood(const char *path, int stop_fd, int count_fd, int parent_end)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    close(parent_end); /* or the stop pipe never reads EOF */
    struct ufio_client *c = connect_role(path, UFIO_ROLE_OBSERVER_REQ);
    if (!c)
        _exit(1);
    uint64_t n = 0;
    uint8_t b[4];
    struct pollfd p = { .fd = stop_fd, .events = POLLIN };
    for (;;) {
        if (ufio_client_region_read(c, UFIO_PCI_CONFIG_REGION, 0, b, 4))
            break;
        if (n == 0 && write(count_fd, "r", 1) != 1) /* under way */
            _exit(1);
        if (++n % 256 == 0 && poll(&p, 1, 0) != 0)
            break;
    }
    if (write(count_fd, &n, sizeof(n)) != sizeof(n))
        _exit(1);
    ufio_client_destroy(c);
    _exit(0);
}

int bench_sessions(bench_add_fn add, int iters)
{
    char path[108];
    char path2[108];
    snprintf(path, sizeof(path), "/tmp/ufio-bench-sess-%d.sock", getpid());
    snprintf(path2, sizeof(path2), "/tmp/ufio-bench-sess-%d-raw.sock", getpid());
    int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
    struct { const char *name; int scpu, ccpu; } place[2] = { { "same CPU", 0, 0 }, { "cross CPU", 0, 1 } };
    for (int p = 0; p < (ncpu > 1 ? 2 : 1); p++) {
        pid_t dev = start_device(path, place[p].scpu, 1024);
        pin(place[p].ccpu);
        struct ufio_client *c = connect_role(path, UFIO_ROLE_DEFAULT);
        if (!c) {
            stop_device(dev);
            return -1;
        }
        struct raw_peer rp;
        if (raw_start(&rp, place[p].scpu))
            return -1;
        pid_t dev2 = start_device(path2, place[p].scpu, 1024);
        int rawc = rawc_connect(path2);
        if (rawc < 0 || rawc_batch(rawc, iters / 10 + 1) < 0) {
            fprintf(stderr, "ufio-bench: the raw client cannot reach its device\n");
            return -1;
        }
        double alone, raw, flooded, raw2, alone_min, raw_min, fl_min, raw2_min, rc_min;
        owner_batch(c, iters / 10 + 1); /* warm up */
        owner_vs_raw(c, &rp, rawc, iters, &alone, &raw, &alone_min, &raw_min, &rc_min);
        close(rawc);
        stop_device(dev2);
        add("us", raw, "raw socketpair ping-pong, %s", place[p].name);
        add("us", alone, "owner REGION_READ 4 B alone, %s", place[p].name);
        add("x", alone / raw, "owner alone / raw, %s", place[p].name);
        add("x", alone_min / raw_min, "owner alone / raw, fastest batches (%.2f / %.2f us), %s", alone_min, raw_min,
            place[p].name);
        add("x", rc_min / raw_min, "raw client -> ufio server / raw, fastest (%.2f / %.2f us), %s", rc_min,
            raw_min, place[p].name);
        add("x", alone_min / rc_min, "owner (ufio client) / raw client, fastest, %s", place[p].name);
        int stop[2], cnt[2];
        if (pipe(stop) || pipe(cnt))
            return -1;
        pid_t fl = start_flood(path, stop[0], cnt[1], stop[1]);
        char ready = 0;
        if (read(cnt[0], &ready, 1) != 1) /* the flood's first read is answered */
            return -1;
        double t0 = now_us();
        owner_vs_raw(c, &rp, -1, iters, &flooded, &raw2, &fl_min, &raw2_min, NULL); /* the medians are the figures here */
        close(stop[1]);
        uint64_t n = 0;
        if (read(cnt[0], &n, sizeof(n)) != sizeof(n))
            n = 0;
        double secs = (now_us() - t0) / 1e6;
        waitpid(fl, NULL, 0);
        close(stop[0]);
        close(cnt[0]);
        close(cnt[1]);
        add("us", flooded, "owner REGION_READ 4 B, observer flooding, %s", place[p].name);
        add("x", flooded / alone, "owner with flood / owner alone, %s", place[p].name);
        add("x", flooded / raw2, "owner with flood / raw at the same time, %s", place[p].name);
        raw_stop(&rp);
        add("k/s", n / secs / 1000, "observer's config reads meanwhile, %s", place[p].name);
        ufio_client_destroy(c);
        stop_device(dev);
        pin(-1);
    }
    return 0;
}

/* ---- DMA table at scale -------------------------------------------------------------- */

/*
 * The owner speaks raw bytes here (DMA_MAP, DMA_UNMAP, BAR0 accesses): the
 * client library's own table of mappings would be measured too otherwise.
 */
static int raw_fd;

static int raw_xfer(uint16_t cmd, const uint8_t *payload, size_t len, uint8_t *reply, size_t reply_cap)
{
    uint8_t m[64];
    uint32_t size = (uint32_t)(16 + len), zero = 0;
    static uint16_t id;
    id++;
    memcpy(m, &id, 2);
    memcpy(m + 2, &cmd, 2);
    memcpy(m + 4, &size, 4);
    memcpy(m + 8, &zero, 4);
    memcpy(m + 12, &zero, 4);
    memcpy(m + 16, payload, len);
    if (write(raw_fd, m, size) != (ssize_t)size)
        return -EIO;
    uint8_t r[128];
    size_t got = 0, want = 16;
    while (got < want) {
        ssize_t n = read(raw_fd, r + got, want - got);
        if (n <= 0)
            return -EIO;
        got += (size_t)n;
        if (got == 16) {
            uint32_t rsize;
            memcpy(&rsize, r + 4, 4);
            if (rsize < 16 || rsize > sizeof(r))
                return -EPROTO;
            want = rsize;
        }
    }
    uint32_t rflags;
    memcpy(&rflags, r + 8, 4);
    if (rflags & 0x20)
        return -EIO;
    if (reply)
        memcpy(reply, r + 16, want - 16 < reply_cap ? want - 16 : reply_cap);
    return 0;
}

static int raw_map(uint64_t iova, bool unmap)
{
    uint8_t p[32];
    uint32_t argsz = unmap ? 24 : 32, flags = unmap ? 0 : 3;
    uint64_t off = 0, size = 4096;
    memcpy(p, &argsz, 4);
    memcpy(p + 4, &flags, 4);
    if (unmap) {
        memcpy(p + 8, &iova, 8);
        memcpy(p + 16, &size, 8);
        return raw_xfer(3, p, 24, NULL, 0);
    }
    memcpy(p + 8, &off, 8);
    memcpy(p + 16, &iova, 8);
    memcpy(p + 24, &size, 8);
    return raw_xfer(2, p, 32, NULL, 0);
}

/* A 4-byte BAR0 access. */
static int raw_bar0(bool write, uint64_t off, uint32_t *v)
{
    uint8_t p[20], r[20];
    uint32_t region = 0, count = 4;
    memcpy(p, &off, 8);
    memcpy(p + 8, &region, 4);
    memcpy(p + 12, &count, 4);
    memcpy(p + 16, v, 4);
    int err = raw_xfer(write ? 10 : 9, p, write ? 20 : 16, r, sizeof(r));
    if (!err && !write)
        memcpy(v, r + 16, 4);
    return err;
}

int bench_dma_maps(bench_add_fn add, unsigned total)
{
    char path[108];
    snprintf(path, sizeof(path), "/tmp/ufio-bench-dma-%d.sock", getpid());
    pid_t dev = start_device(path, 0, total + 16);
    struct ufio_client *probe = connect_role(path, UFIO_ROLE_OBSERVER_REQ); /* up and serving */
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    raw_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    uint8_t v[4] = { 0, 0, 2, 0 };
    if (!probe || raw_fd < 0 || connect(raw_fd, (struct sockaddr *)&a, sizeof(a)) || raw_xfer(1, v, 4, NULL, 0)) {
        fprintf(stderr, "ufio-bench: cannot reach the DMA bench device\n");
        stop_device(dev);
        return -1;
    }
    ufio_client_destroy(probe);
    int err = 0;
    double t_first = 0, t_last = 0;
    for (unsigned i = 0; i < total && !err; i++) {
        double t0 = now_us();
        err = raw_map((uint64_t)i * MAP_STRIDE, false);
        double dt = now_us() - t0;
        if (i < 1000)
            t_first += dt;
        else if (i >= total - 1000)
            t_last += dt;
    }
    if (!err) {
        add("us", t_first / 1000, "DMA_MAP round trip, mappings 0..999");
        add("us", t_last / 1000, "DMA_MAP round trip, mappings %u..%u", total - 1000, total - 1);
    }
    /* random lookups spread over the first 1,000 mappings (cache-warm), then over all */
    uint32_t spread[2] = { 1000, total };
    for (int i = 0; i < 2 && !err; i++) {
        uint32_t n = spread[i], k = 1000000, milli = 0;
        if (!(err = raw_bar0(true, LOOKUP_MAPS, &n)) && !(err = raw_bar0(true, LOOKUP_RUN, &k)) &&
            !(err = raw_bar0(false, LOOKUP_NS, &milli)))
            add("ns", milli / 1000.0, "lookup (ufio_dev_dma_ptr), table of %u, spread over %u", total, n);
    }
    /* unmaps from the middle of the table, then a raw round trip of the same size for scale */
    double t_un = 0;
    unsigned nun = 0;
    for (unsigned i = total / 2; i < total && nun < 1000 && !err; i++, nun++) {
        double t0 = now_us();
        err = raw_map((uint64_t)i * MAP_STRIDE, true);
        t_un += now_us() - t0;
    }
    if (!err)
        add("us", t_un / nun, "DMA_UNMAP round trip among %u mappings", total);
    if (err)
        fprintf(stderr, "ufio-bench: DMA table bench failed: %s\n", strerror(-err));
    close(raw_fd);
    stop_device(dev);
    return err;
}
