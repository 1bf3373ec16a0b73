/*
 * The MSI-X helper: a device names a BAR and the library chooses where the
 * table and PBA go, so nobody hand-computes offsets that must be aligned, fit
 * the BAR and stay clear of the device's registers and shared memory.
 */
#include "server/dev_internal.h"
#include "server/msix_layout.h"

#include <errno.h>

static uint64_t round_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

/* The end of the first area that [off, off+len) overlaps, or 0. */
static uint64_t area_hit(const struct ufio_sparse_area *areas, uint32_t nareas, uint64_t off, uint64_t len)
{
    for (uint32_t i = 0; i < nareas; i++)
        if (off < areas[i].offset + areas[i].size && areas[i].offset < off + len)
            return areas[i].offset + areas[i].size;
    return 0;
}

int msix_layout(unsigned nvec, uint64_t after, uint64_t bar_size, const struct ufio_sparse_area *areas,
                uint32_t nareas, uint32_t *table_off, uint32_t *pba_off, uint64_t *new_bar_size)
{
    if (nvec == 0 || nvec > 2048 || (bar_size == 0 && after != 0) || after > UINT32_MAX)
        return -EINVAL;
    uint64_t tlen = (uint64_t)nvec * 16, plen = (nvec + 63) / 64 * 8;
    uint64_t need = tlen + plen; /* tlen is a multiple of 16: the PBA is 8-byte aligned right after it */
    if (bar_size == 0) {
        uint64_t size = MSIX_LAYOUT_ALIGN;
        while (size < need)
            size *= 2;
        *table_off = 0;
        *pba_off = (uint32_t)tlen;
        *new_bar_size = size;
        return 0;
    }
    uint64_t t = round_up(after, MSIX_LAYOUT_ALIGN);
    for (uint64_t end; (end = area_hit(areas, nareas, t, need)) != 0;)
        t = round_up(end, MSIX_LAYOUT_ALIGN);
    if (!ufio_range_ok(t, need, bar_size) || t + need > UINT32_MAX)
        return -ENOSPC;
    *table_off = (uint32_t)t;
    *pba_off = (uint32_t)(t + tlen);
    *new_bar_size = bar_size;
    return 0;
}

UFIO_API int ufio_dev_add_msix(struct ufio_dev *dev, unsigned nvec, unsigned bar, uint64_t after,
                               uint32_t *table_offset, uint32_t *pba_offset)
{
    if (dev->built)
        return -EBUSY;
    if (bar >= 6)
        return -EINVAL;
    if (dev->msix.nvec)
        return -EEXIST;
    const struct ufio_region *r = &dev->regions[bar];
    if (r->size && (r->bar_flags & UFIO_BAR_IO))
        return -EINVAL; /* the table and PBA live in memory space */
    uint32_t t, p;
    uint64_t size;
    int err = msix_layout(nvec, after, r->size, r->areas, r->nr_areas, &t, &p, &size);
    if (err)
        return err;
    bool added = !r->size;
    if (added && (err = ufio_dev_add_bar(dev, bar, size, UFIO_BAR_MEM32, NULL, NULL)))
        return err;
    int off = ufio_dev_add_cap_msix(dev, nvec, bar, t, bar, p);
    if (off < 0) {
        if (added) { /* as if never added */
            pci_cfg_clear_bar32(&dev->cfg, bar);
            dev->regions[bar] = (struct ufio_region){ .memfd = -1 };
        }
        return off;
    }
    if (table_offset)
        *table_offset = t;
    if (pba_offset)
        *pba_offset = p;
    return off;
}
