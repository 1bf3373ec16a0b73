/* Where ufio_dev_add_msix() puts an MSI-X table and PBA (pure arithmetic, unit-tested). */
#ifndef UFIO_SERVER_MSIX_LAYOUT_H
#define UFIO_SERVER_MSIX_LAYOUT_H

#include <stdint.h>

#include "proto/proto.h"

#define MSIX_LAYOUT_ALIGN 4096u /* the table starts a page: no host page holds it with other registers */

/*
 * nvec vectors (1..2048). bar_size 0: a BAR the helper adds; it gets the
 * smallest power-of-two size of at least 4 KiB holding the table at 0 and the
 * PBA after it (after must be 0: nothing else would be in it). Otherwise the
 * BAR exists with that size: the table goes to the first 4 KiB boundary at or
 * after `after` where table and PBA miss every one of the nareas mmap areas.
 * The PBA follows the table at once (8-byte aligned, as the spec requires;
 * the spec lets both share a page). 0, -EINVAL (bad nvec, after with a new
 * BAR), -ENOSPC (no room in the BAR).
 */
int msix_layout(unsigned nvec, uint64_t after, uint64_t bar_size, const struct ufio_sparse_area *areas,
                uint32_t nareas, uint32_t *table_off, uint32_t *pba_off, uint64_t *new_bar_size);

#endif
