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
    double downtime, predicted, total, mib_s, vs_raw, src_rss, dst_rss;
    uint64_t bytes, limit;
    bool verified;
    char error[1024];
};
int bench_migration(const char *sample, size_t mib, unsigned dirty_per_ms, unsigned max_downtime_ms, double raw,
                    struct bench_mig_row *row);
/* bytes over a unix socketpair in 1 MiB writes, MiB/s */
double bench_raw_bulk(size_t bytes);
int bench_dirty_report(bench_add_fn add, const char *unused);

#endif
