/* Session and DMA-table rows of ufio-bench. */
#ifndef UFIO_TOOLS_BENCH_SESSIONS_H
#define UFIO_TOOLS_BENCH_SESSIONS_H

#include "bench_mig.h"

/* Owner 4-byte round trip alone and with an observer flooding, beside raw. */
int bench_sessions(bench_add_fn add, int iters);
/* DMA_MAP / DMA_UNMAP / lookup cost with total mappings. */
int bench_dma_maps(bench_add_fn add, unsigned total);

#endif
