/* Migration rows of ufio-bench. */
#ifndef UFIO_TOOLS_BENCH_MIG_H
#define UFIO_TOOLS_BENCH_MIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef void (*bench_add_fn)(const char *unit, double v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One migration between two ufio-sample processes (sample: its path), the source
 * with mib MiB of state dirtied at dirty_per_ms pages/ms. */
struct bench_mig_row {
    size_t mib;
    unsigned rate, budget, rounds;
    int err;                    /* ufio_migrate()'s result: 0, or -ETIME refused before stopping, ... */
    double downtime, predicted, total, mib_s, vs_raw, vs_raw2, src_rss, dst_rss;
    double cpu[3];              /* CPU seconds per GiB moved: source server, engine (this process), destination */
    uint64_t bytes, limit;
    bool verified;
    char error[1024];
};
/* The yardsticks: the same bytes over unix sockets in chunk-sized writes, one hop (writer ->
 * reader) and two (writer -> relay -> reader, the path a migration takes: source -> engine ->
 * destination), MiB/s, and CPU seconds per GiB of each thread. */
struct bench_raw_rates {
    double one_hop, one_hop_cpu;
    double two_hop, two_hop_cpu[3]; /* writer, relay, reader */
};
void bench_raw(size_t bytes, size_t chunk, struct bench_raw_rates *r);
int bench_migration(const char *sample, size_t mib, unsigned dirty_per_ms, unsigned max_downtime_ms,
                    const struct bench_raw_rates *raw, struct bench_mig_row *row);
int bench_dirty_report(bench_add_fn add, const char *unused);

#endif
