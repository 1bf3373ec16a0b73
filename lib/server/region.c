/*
 * Region access routing: config space, BAR/ROM callbacks, shared-memory mmap
 * areas, and the MSI-X table/PBA. An access that spans several kinds of
 * backing is split into pieces, each handled by its owner.
 */
#include "server/dev_internal.h"
#include "server/callback.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void region_free_all(struct ufio_dev *dev)
{
    for (unsigned i = 0; i < UFIO_PCI_NUM_REGIONS; i++) {
        struct ufio_region *r = &dev->regions[i];
        if (r->mem)
            munmap(r->mem, r->size);
        if (r->memfd >= 0)
            close(r->memfd);
        r->mem = NULL;
        r->memfd = -1;
    }
}

/* Is off inside an mmap area? *extent = bytes left in that area. */
static bool area_at(const struct ufio_region *r, uint64_t off, uint64_t *extent)
{
    for (uint32_t i = 0; i < r->nr_areas; i++) {
        const struct ufio_sparse_area *a = &r->areas[i];
        if (off >= a->offset && off - a->offset < a->size) {
            *extent = a->size - (off - a->offset);
            return true;
        }
    }
    return false;
}

/* Bytes from off to the next special range (area or MSI-X structure). */
static uint64_t plain_extent(struct ufio_dev *dev, unsigned index, uint64_t off, uint64_t len)
{
    const struct ufio_region *r = &dev->regions[index];
    uint64_t end = off + len;
    for (uint32_t i = 0; i < r->nr_areas; i++)
        if (r->areas[i].offset > off && r->areas[i].offset < end)
            end = r->areas[i].offset;
    const struct ufio_msix *x = &dev->msix;
    if (x->nvec) {
        if (x->table_bar == index && x->table_off > off && x->table_off < end)
            end = x->table_off;
        if (x->pba_bar == index && x->pba_off > off && x->pba_off < end)
            end = x->pba_off;
    }
    return end - off;
}

const uint8_t *region_direct(struct ufio_dev *dev, unsigned index, uint64_t off, uint32_t len)
{
    if (index >= 6)
        return NULL;
    const struct ufio_region *r = &dev->regions[index];
    uint64_t extent;
    if (r->mem && ufio_range_ok(off, len, r->size) && area_at(r, off, &extent) && extent >= len)
        return r->mem + off;
    return NULL;
}

uint8_t *region_direct_write(struct ufio_dev *dev, unsigned index, uint64_t off, uint32_t len)
{
    if (index >= 6 || !(dev->regions[index].info_flags & VFIO_REGION_INFO_FLAG_WRITE))
        return NULL;
    return (uint8_t *)region_direct(dev, index, off, len);
}

/* The claim holding off, or NULL; *extent = bytes from off to the claim's end or the next claim. */
static const struct ufio_cfg_claim *claim_at(const struct ufio_dev *dev, uint64_t off, uint64_t len, uint64_t *extent)
{
    uint64_t end = off + len;
    for (unsigned i = 0; i < dev->ncfg_claims; i++) {
        const struct ufio_cfg_claim *c = &dev->cfg_claims[i];
        if (off >= c->offset && off < (uint64_t)c->offset + c->len) {
            *extent = (uint64_t)c->offset + c->len - off;
            return c;
        }
        if (c->offset > off && c->offset < end)
            end = c->offset;
    }
    *extent = end - off;
    return NULL;
}

static int config_plain(struct ufio_dev *dev, uint64_t off, void *buf, uint32_t len, bool is_write)
{
    if (!is_write)
        return pci_cfg_read(&dev->cfg, (uint32_t)off, buf, len);
    int err = pci_cfg_write(&dev->cfg, (uint32_t)off, buf, len);
    if (err)
        return err;
    irq_cfg_written(dev, (uint32_t)off, len);
    if (dev->ops.cfg_write)
        dev->ops.cfg_write(dev, dev->opaque, (uint32_t)off, len);
    return 0;
}

/*
 * One piece of an access, at most len bytes from off, all with one owner:
 * does it and says in *done how many bytes that was.
 */
typedef int (*piece_fn)(struct ufio_dev *dev, unsigned index, uint64_t off, uint8_t *p, uint32_t len,
                        bool is_write, uint32_t *done);

/* An access that spans several owners is split between them, in order. */
static int split_access(struct ufio_dev *dev, unsigned index, uint64_t off, uint8_t *p, uint32_t len,
                        bool is_write, piece_fn piece)
{
    while (len) {
        uint32_t n = 0;
        int err = piece(dev, index, off, p, len, is_write, &n);
        if (err)
            return err;
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

/* Config space: claimed ranges go to the device, the rest is the library's. */
static int config_piece(struct ufio_dev *dev, unsigned index, uint64_t off, uint8_t *p, uint32_t len,
                        bool is_write, uint32_t *done)
{
    uint64_t extent;
    const struct ufio_cfg_claim *c = claim_at(dev, off, len, &extent);
    *done = extent < len ? (uint32_t)extent : len;
    if (!c)
        return config_plain(dev, off, p, *done, is_write);
    int ret = c->fn(dev, c->opaque, UFIO_PCI_CONFIG_REGION, off, p, *done, is_write);
    return dev_cb_result(dev->name, "config claim", ret, *done);
}

/* A BAR or the ROM: shared memory, the emulated MSI-X table/PBA, or the device's callback. */
static int bar_piece(struct ufio_dev *dev, unsigned index, uint64_t off, uint8_t *p, uint32_t len,
                     bool is_write, uint32_t *done)
{
    struct ufio_region *r = &dev->regions[index];
    uint64_t extent;
    if (r->mem && area_at(r, off, &extent)) {
        *done = extent < len ? (uint32_t)extent : len;
        if (is_write)
            memcpy(r->mem + off, p, *done);
        else
            memcpy(p, r->mem + off, *done);
        return 0;
    }
    if (msix_claims(dev, index, off, &extent)) {
        *done = extent < len ? (uint32_t)extent : len;
        return msix_access(dev, index, off, p, *done, is_write);
    }
    *done = (uint32_t)plain_extent(dev, index, off, len);
    if (r->fn)
        return dev_cb_result(dev->name, "region access", r->fn(dev, r->opaque, index, off, p, *done, is_write), *done);
    if (!is_write)
        memset(p, 0, *done);
    return 0;
}

int region_access(struct ufio_dev *dev, unsigned index, uint64_t off, void *buf,
                  uint32_t len, bool is_write)
{
    if (index >= UFIO_PCI_NUM_REGIONS || len == 0)
        return -EINVAL;
    if (index == UFIO_PCI_CONFIG_REGION) {
        if (!ufio_range_ok(off, len, dev->cfg.size))
            return -EINVAL;
        if (!dev->ncfg_claims)
            return config_plain(dev, off, buf, len, is_write);
        return split_access(dev, index, off, buf, len, is_write, config_piece);
    }
    struct ufio_region *r = &dev->regions[index];
    if (!r->size || !ufio_range_ok(off, len, r->size))
        return -EINVAL;
    if (is_write && !(r->info_flags & VFIO_REGION_INFO_FLAG_WRITE))
        return -EPERM;
    return split_access(dev, index, off, buf, len, is_write, bar_piece);
}
