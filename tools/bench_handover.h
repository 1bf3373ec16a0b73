/* Handover rows of ufio-bench (--handover=SERVER). */
#ifndef UFIO_TOOLS_BENCH_HANDOVER_H
#define UFIO_TOOLS_BENCH_HANDOVER_H

#include "bench_mig.h"

/* rounds handovers of SERVER (a ufio server program taking --takeover) under a busy owner. */
int bench_handover(bench_add_fn add, const char *server_bin, unsigned rounds);

#endif
