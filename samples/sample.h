/* ufio-sample: what the device model (sample-dev.c) and its migration (sample-mig.c) share. */
#ifndef UFIO_SAMPLE_H
#define UFIO_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ufio/migration.h>

#define DMA_MAX (64u * 1024)
#define RAM_SIZE (64u * 1024)
#define PAGE 4096u
#define RAM_PAGES (RAM_SIZE / PAGE)

struct sample_mig;

struct sample {
    uint32_t scratch, io_scratch, irq_count;
    uint64_t dma_src, dma_dst;
    uint32_t dma_len, dma_status, dma_sum;
    uint8_t buf[DMA_MAX];
    uint8_t *ram;            /* BAR2, which the client may mmap */
    struct sample_mig *mig;  /* the rest of the migratable state */
    uint32_t mig_fail;       /* REG_MIG_FAIL: a fault to inject, one-shot */
    uint64_t digest_latch;   /* REG_DIGEST_HI reads this */
};

/* REG_MIG_FAIL bits: fail the next transition FROM -> TO, or the next save_start */
#define MIG_FAIL_FROM(v) ((v) & 0xffu)
#define MIG_FAIL_TO(v) (((v) >> 8) & 0xffu)
#define MIG_FAIL_ARC 0x10000u
#define MIG_FAIL_SAVE_START 0x20000u
#define MIG_FAIL_CORRUPT_LOAD 0x40000u /* the next page loaded gets one byte wrong */
#define MIG_FAIL_SAVE_ETIME 0x80000u   /* the next save() in STOP_COPY says it cannot finish in time */

/* The extra state: state_mib MiB of pages that a thread dirties at
 * dirty_rate pages per ms while the device runs. */
int sample_mig_init(struct sample *s, unsigned state_mib, unsigned dirty_rate);
void sample_mig_fini(struct sample *s);
/* A digest of the whole device state (registers, BAR2, the extra state). */
uint64_t sample_digest(struct sample *s);
extern const struct ufio_mig_ops sample_mig_ops;

#endif
