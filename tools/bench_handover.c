/*
 * ufio-bench --handover=SERVER: the stall a busy owner sees when its device
 * server is replaced by `SERVER --takeover` (docs/handover.md). A thread of
 * the owner does back-to-back 4-byte BAR0 reads; each of the handovers is a
 * window from the new process's start to the old one's exit. The stall of a
 * handover is the longest read inside its window (the owner's request held
 * from the quiesce until the new process serves it); the new process's own
 * "takeover timing" line (UFIO_LOG=info) says where the time goes.
 */
#include "bench_handover.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ufio/client.h>

#define MAX_ROUNDS 64

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

/* Starts bin with args; *err_fd is its stderr (or -1); waits for "listening on" on stdout. */
static pid_t start(const char *bin, const char *arg, int *err_fd)
{
    int out[2], er[2];
    if (pipe2(out, O_CLOEXEC) || pipe2(er, O_CLOEXEC))
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(er[1], 2);
        setenv("UFIO_LOG", "info", 1);
        execl(bin, bin, arg, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(er[1]);
    char buf[1024];
    size_t got = 0;
    for (;;) {
        struct pollfd p = { .fd = out[0], .events = POLLIN };
        if (poll(&p, 1, 10000) <= 0)
            break;
        ssize_t n = read(out[0], buf + got, sizeof(buf) - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = 0;
        if (strstr(buf, "listening on")) {
            close(out[0]);
            *err_fd = er[0];
            return pid;
        }
    }
    close(out[0]);
    close(er[0]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

struct owner {
    struct ufio_client *c;
    atomic_int window;        /* 1..rounds inside a handover, 0 outside */
    atomic_int stop;
    double max_in[MAX_ROUNDS + 1];
    double max_out;
    unsigned long errors, reads;
};

static void *reader(void *arg)
{
    struct owner *o = arg;
    while (!atomic_load(&o->stop)) {
        int w = atomic_load(&o->window);
        uint32_t v;
        double t0 = now_us();
        int err = ufio_client_region_read(o->c, UFIO_PCI_BAR0_REGION, 0, &v, 4);
        double dt = now_us() - t0;
        /* a read that began or ended in a window counts for it */
        int w2 = atomic_load(&o->window);
        int in = w ? w : w2;
        if (err)
            o->errors++;
        o->reads++;
        if (in) {
            if (dt > o->max_in[in])
                o->max_in[in] = dt;
        } else if (dt > o->max_out) {
            o->max_out = dt;
        }
    }
    return NULL;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The new process's "takeover timing" line, summed into acc[6]. */
static void take_timing(int fd, double *acc)
{
    char buf[4096];
    size_t got = 0;
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 2000) <= 0)
            return;
        ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (n <= 0)
            return;
        got += (size_t)n;
        buf[got] = 0;
        const char *l = strstr(buf, "takeover timing:");
        if (l && strchr(l, '\n')) {
            double v[6];
            if (sscanf(l, "takeover timing: connect %lf ms, precopy %lf ms, quiesced %lf ms (stop-copy stream %lf, "
                          "fds %lf, load and adopt %lf)",
                       &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) == 6)
                for (int i = 0; i < 6; i++)
                    acc[i] += v[i];
            return;
        }
        if (got == sizeof(buf) - 1)
            got = 0;
    }
}

int bench_handover(bench_add_fn add, const char *server_bin, unsigned rounds)
{
    if (rounds < 1 || rounds > MAX_ROUNDS)
        rounds = 20;
    char path[108], sockarg[160], tkarg[160];
    snprintf(path, sizeof(path), "/tmp/ufio-bench-handover-%d.sock", (int)getpid());
    snprintf(sockarg, sizeof(sockarg), "--socket-path=%s", path);
    snprintf(tkarg, sizeof(tkarg), "--takeover=%s", path);
    unlink(path);
    int efd = -1;
    pid_t cur = start(server_bin, sockarg, &efd);
    if (cur < 0) {
        fprintf(stderr, "ufio-bench: cannot start %s\n", server_bin);
        return 1;
    }
    close(efd);
    static struct owner o;
    if (ufio_client_connect(path, NULL, &o.c)) {
        fprintf(stderr, "ufio-bench: cannot reach %s\n", path);
        kill(cur, SIGTERM);
        waitpid(cur, NULL, 0);
        return 1;
    }
    pthread_t th;
    pthread_create(&th, NULL, reader, &o);
    double total[MAX_ROUNDS], timing[6] = { 0 };
    unsigned done = 0;
    int rc = 0;
    for (unsigned r = 1; r <= rounds; r++) {
        usleep(20000); /* let the owner run outside a window too */
        atomic_store(&o.window, (int)r);
        double t0 = now_us();
        pid_t next = start(server_bin, tkarg, &efd);
        if (next < 0) {
            atomic_store(&o.window, 0);
            fprintf(stderr, "ufio-bench: handover %u failed\n", r);
            rc = 1;
            break;
        }
        int st = 0;
        waitpid(cur, &st, 0);
        total[r - 1] = (now_us() - t0) / 1e3;
        atomic_store(&o.window, 0);
        take_timing(efd, timing);
        close(efd);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) {
            fprintf(stderr, "ufio-bench: old server did not exit 0 after handover %u\n", r);
            rc = 1;
        }
        cur = next;
        done++;
    }
    usleep(20000);
    atomic_store(&o.stop, 1);
    pthread_join(th, NULL);
    ufio_client_destroy(o.c);
    kill(cur, SIGTERM);
    waitpid(cur, NULL, 0);
    if (!done)
        return 1;
    double stall[MAX_ROUNDS];
    for (unsigned i = 0; i < done; i++)
        stall[i] = o.max_in[i + 1] / 1e3;
    qsort(stall, done, sizeof(double), cmp_d);
    qsort(total, done, sizeof(double), cmp_d);
    add("ms", stall[done / 2], "handover stall seen by the owner, median of %u (longest BAR0 read)", done);
    add("ms", stall[done - 1], "handover stall seen by the owner, max of %u", done);
    add("ms", o.max_out / 1e3, "longest BAR0 read outside handovers");
    add("ms", total[done / 2], "handover wall time, median (new process exec to old process exit)");
    static const char *const names[6] = { "connect", "precopy (owner served)", "quiesced (STOP_COPY to ack)",
                                          "  of which stop-copy stream", "  of which fds received",
                                          "  of which load and adopt" };
    for (int i = 0; i < 6; i++)
        add("ms", timing[i] / done, "new process, mean per handover: %s", names[i]);
    if (o.errors) {
        fprintf(stderr, "ufio-bench: %lu of %lu owner reads failed\n", o.errors, o.reads);
        rc = 1;
    }
    return rc;
}
