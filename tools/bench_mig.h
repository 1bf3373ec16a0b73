/* Migration rows of ufio-bench. */
#ifndef UFIO_TOOLS_BENCH_MIG_H
#define UFIO_TOOLS_BENCH_MIG_H

#include <stddef.h>

typedef void (*bench_add_fn)(const char *unit, double v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

int bench_migration(bench_add_fn add, size_t mib, unsigned dirty_per_ms, unsigned max_downtime_ms);
int bench_dirty_report(bench_add_fn add, const char *unused);

#endif
