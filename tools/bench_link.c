/*
 * ufio-bench-link: a raw bulk transfer over the migration link (lib/net), the
 * yardstick the cross-host migration's throughput is compared with: the same
 * TLS 1.3 session setup, the same 1 MiB sends, nothing else.
 *   ufio-bench-link --listen tls://ADDR:PORT --tls-dir DIR       (sink; one transfer)
 *   ufio-bench-link --to tls://HOST:PORT --tls-dir DIR --mib N   (source)
 * --insecure with tcp:// for plain TCP. Each side prints one JSON line:
 * bytes, seconds, MiB/s, CPU seconds and CPU seconds per GiB.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "net/link.h"

#define CHUNK (1u << 20)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void report(const char *side, uint64_t bytes, double secs, double cpu)
{
    double gib = bytes / 1073741824.0;
    printf("{\"side\":\"%s\",\"bytes\":%llu,\"seconds\":%.3f,\"mib_s\":%.1f,\"cpu_s\":%.3f,\"cpu_s_per_gib\":%.3f}\n",
           side, (unsigned long long)bytes, secs, secs > 0 ? bytes / 1048576.0 / secs : 0, cpu,
           gib > 0 ? cpu / gib : 0);
}

int main(int argc, char **argv)
{
    const char *listen_url = NULL, *to = NULL;
    struct ufio_link_cfg cfg = { .timeout_ms = 10000 };
    uint64_t mib = 1024;
    static const struct option lo[] = {
        { "listen", required_argument, NULL, 'L' }, { "to", required_argument, NULL, 't' },
        { "tls-dir", required_argument, NULL, 'D' }, { "insecure", no_argument, NULL, 'I' },
        { "mib", required_argument, NULL, 'm' }, { "help", no_argument, NULL, 'h' }, { 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'L': listen_url = optarg; break;
        case 't': to = optarg; break;
        case 'D': cfg.tls_dir = optarg; break;
        case 'I': cfg.insecure = true; break;
        case 'm': mib = strtoull(optarg, NULL, 10); break;
        case 'h':
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: ufio-bench-link --listen tls://ADDR:PORT --tls-dir DIR\n"
                    "       ufio-bench-link --to tls://HOST:PORT --tls-dir DIR [--mib N (1024)]\n"
                    "       (tcp:// with --insecure: plain TCP)\n");
            return c == 'h' ? 0 : 2;
        }
    }
    const char *url = listen_url ? listen_url : to;
    char host[256], port[16], err[1024];
    bool tls;
    if (!url || (listen_url && to) || ufio_link_parse_url(url, host, sizeof(host), port, sizeof(port), &tls) ||
        tls == cfg.insecure) {
        fprintf(stderr, "ufio-bench-link: need one of --listen/--to, tls:// (with --tls-dir) or tcp:// with --insecure\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    uint8_t *buf = malloc(CHUNK);
    if (!buf)
        return 1;
    memset(buf, 0xa5, CHUNK);
    struct ufio_link *l;
    int e;
    if (listen_url) {
        int lfd = ufio_link_listen(host, port, err, sizeof(err));
        if (lfd < 0) {
            fprintf(stderr, "ufio-bench-link: %s\n", err);
            return 1;
        }
        printf("{\"event\":\"listening\"}\n");
        fflush(stdout);
        if ((e = ufio_link_accept(lfd, &cfg, -1, &l, err, sizeof(err)))) {
            fprintf(stderr, "ufio-bench-link: %s\n", err);
            return 1;
        }
        close(lfd);
        uint64_t n, got = 0;
        if ((e = ufio_link_recv(l, &n, 8)))
            goto linkerr;
        double t0 = now_s(), c0 = cpu_s();
        while (got < n) {
            size_t k = n - got < CHUNK ? (size_t)(n - got) : CHUNK;
            if ((e = ufio_link_recv(l, buf, k)))
                goto linkerr;
            got += k;
        }
        uint8_t ack = 1;
        struct iovec iov = { &ack, 1 };
        ufio_link_sendv(l, &iov, 1);
        report("sink", got, now_s() - t0, cpu_s() - c0);
    } else {
        if ((e = ufio_link_connect(host, port, &cfg, &l, err, sizeof(err)))) {
            fprintf(stderr, "ufio-bench-link: %s\n", err);
            return 1;
        }
        uint64_t n = mib << 20;
        struct iovec iov = { &n, 8 };
        if ((e = ufio_link_sendv(l, &iov, 1)))
            goto linkerr;
        double t0 = now_s(), c0 = cpu_s();
        for (uint64_t sent = 0; sent < n; sent += CHUNK) {
            iov = (struct iovec){ buf, n - sent < CHUNK ? (size_t)(n - sent) : CHUNK };
            if ((e = ufio_link_sendv(l, &iov, 1)))
                goto linkerr;
        }
        uint8_t ack;
        if ((e = ufio_link_recv(l, &ack, 1)))
            goto linkerr;
        report("source", n, now_s() - t0, cpu_s() - c0);
    }
    ufio_link_close(l);
    free(buf);
    return 0;
linkerr:
    fprintf(stderr, "ufio-bench-link: %s (%s)\n", strerror(-e), ufio_link_error(l));
    return 1;
}
