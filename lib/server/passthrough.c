/*
 * Pass-through hooks (include/ufio/passthrough.h): config space, IRQ
 * indices, DMA mappings and mmap areas handed to a device program that
 * forwards them to real hardware. The library keeps validating what the
 * client sends; only the last step (what the hardware does) is the device's.
 */
#include "server/dev_internal.h"

#include <ufio/passthrough.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

struct ufio_passthrough {
    ufio_region_access_fn cfg_fn;
    void *cfg_opaque;
    ufio_irq_set_fn irq_fn[UFIO_IRQ_NUM];
    void *irq_opaque[UFIO_IRQ_NUM];
    bool ext_fd[UFIO_PCI_NUM_REGIONS];   /* mmap areas backed by the device's fd */
    uint64_t fd_offset[UFIO_PCI_NUM_REGIONS];
    ufio_dma_map_fn dma_map;
    ufio_dma_unmap_fn dma_unmap;
    void *dma_opaque;
    ufio_dirty_sync_fn dirty_sync;
    void *dirty_opaque;
    ufio_dirty_log_fn dirty_log;
    void *dirty_log_opaque;
    bool no_reset;
};

static struct ufio_passthrough *pt_get(struct ufio_dev *dev)
{
    if (!dev->pt)
        dev->pt = calloc(1, sizeof(*dev->pt));
    return dev->pt;
}

void pt_free(struct ufio_dev *dev)
{
    free(dev->pt);
    dev->pt = NULL;
}

/* ---- mmap areas on the device's fd ------------------------------------------ */

UFIO_API int ufio_dev_add_mmap_area_fd(struct ufio_dev *dev, unsigned region, uint64_t offset,
                                       uint64_t size, int fd, uint64_t fd_offset)
{
    if (dev->built)
        return -EBUSY;
    long pg = sysconf(_SC_PAGESIZE);
    if (region >= 6 || fd < 0 || size == 0 || (offset | size | fd_offset) % (uint64_t)pg)
        return -EINVAL;
    struct ufio_region *r = &dev->regions[region];
    if (!r->size || (r->bar_flags & UFIO_BAR_IO) || !ufio_range_ok(offset, size, r->size) ||
        fd_offset + r->size < fd_offset)
        return -EINVAL;
    for (uint32_t i = 0; i < r->nr_areas; i++)
        if (offset < r->areas[i].offset + r->areas[i].size && r->areas[i].offset < offset + size)
            return -EINVAL;
    if (r->nr_areas == UFIO_DEV_MAX_AREAS)
        return -ENOSPC;
    struct ufio_passthrough *pt = pt_get(dev);
    if (!pt)
        return -ENOMEM;
    if (r->memfd >= 0 && (!pt->ext_fd[region] || pt->fd_offset[region] != fd_offset))
        return -EINVAL; /* one fd and one base per region: REGION_INFO carries one of each */
    if (r->memfd < 0) {
        int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (dup < 0)
            return -errno;
        r->memfd = dup;
        pt->ext_fd[region] = true;
        pt->fd_offset[region] = fd_offset;
    }
    r->areas[r->nr_areas++] = (struct ufio_sparse_area){ .offset = offset, .size = size };
    r->info_flags |= VFIO_REGION_INFO_FLAG_MMAP;
    return 0;
}

uint64_t pt_region_fd_offset(const struct ufio_dev *dev, unsigned region)
{
    return dev->pt && region < UFIO_PCI_NUM_REGIONS && dev->pt->ext_fd[region] ? dev->pt->fd_offset[region] : 0;
}

bool pt_region_ext_fd(const struct ufio_dev *dev, unsigned region)
{
    return dev->pt && region < UFIO_PCI_NUM_REGIONS && dev->pt->ext_fd[region];
}

/* ---- config space ------------------------------------------------------------ */

UFIO_API int ufio_dev_passthrough_config(struct ufio_dev *dev, uint32_t size, ufio_region_access_fn fn,
                                         void *opaque)
{
    if (dev->built)
        return -EBUSY;
    if (!fn || (size != 256 && size != 4096))
        return -EINVAL;
    int err = ufio_dev_set_config_size(dev, size);
    if (err)
        return err;
    struct ufio_passthrough *pt = pt_get(dev);
    if (!pt)
        return -ENOMEM;
    pt->cfg_fn = fn;
    pt->cfg_opaque = opaque;
    return 0;
}

bool pt_config(struct ufio_dev *dev, uint64_t off, void *buf, uint32_t len, bool is_write, int *err)
{
    if (!dev->pt || !dev->pt->cfg_fn)
        return false;
    *err = dev->pt->cfg_fn(dev, dev->pt->cfg_opaque, UFIO_PCI_CONFIG_REGION, off, buf, len, is_write);
    return true;
}

/* ---- interrupts ------------------------------------------------------------- */

UFIO_API int ufio_dev_passthrough_irq(struct ufio_dev *dev, unsigned index, uint32_t count,
                                      uint32_t info_flags, ufio_irq_set_fn fn, void *opaque)
{
    if (dev->built)
        return -EBUSY;
    if (index >= UFIO_IRQ_NUM || !fn || count > 2048 ||
        ((index == UFIO_IRQ_ERR || index == UFIO_IRQ_REQ) && count > 1))
        return -EINVAL;
    struct ufio_passthrough *pt = pt_get(dev);
    if (!pt)
        return -ENOMEM;
    int err = irq_init_index(dev, index, count, info_flags);
    if (err)
        return err;
    pt->irq_fn[index] = fn;
    pt->irq_opaque[index] = opaque;
    return 0;
}

bool pt_irq_set(struct ufio_dev *dev, const struct ufio_irq_set *s, struct ufio_msg *m, int *err)
{
    if (!dev->pt || !dev->pt->irq_fn[s->index])
        return false;
    const struct ufio_irq_index *x = &dev->irqs[s->index];
    uint32_t data = s->flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
    uint32_t action = s->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
    *err = -EINVAL;
    if (s->count && (x->count == 0 || s->start >= x->count || s->count > x->count - s->start))
        return true;
    if (s->count && action != VFIO_IRQ_SET_ACTION_TRIGGER && !(x->info_flags & VFIO_IRQ_INFO_MASKABLE))
        return true;
    int fds[UFIO_TRANSPORT_MAX_FDS];
    size_t nfds = 0;
    if (data == VFIO_IRQ_SET_DATA_EVENTFD) {
        /* the decoder matched the fd count to count */
        if (s->count > UFIO_TRANSPORT_MAX_FDS)
            return true;
        for (size_t i = 0; i < m->nfds; i++)
            if (!irq_is_eventfd(m->fds[i]))
                return true;
        for (uint32_t i = 0; i < s->count; i++)
            fds[i] = m->nfds ? m->fds[i] : -1;
        nfds = s->count;
    }
    *err = dev->pt->irq_fn[s->index](dev, dev->pt->irq_opaque[s->index], s->index, s->flags, s->start, s->count,
                                     nfds ? fds : NULL, nfds, data == VFIO_IRQ_SET_DATA_BOOL ? s->bools : NULL);
    return true;
}

void pt_irq_drop(struct ufio_dev *dev)
{
    if (!dev->pt)
        return;
    for (unsigned i = 0; i < UFIO_IRQ_NUM; i++)
        if (dev->pt->irq_fn[i] && dev->irqs[i].count)
            dev->pt->irq_fn[i](dev, dev->pt->irq_opaque[i], i,
                               VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, NULL, 0, NULL);
}

/* ---- DMA ----------------------------------------------------------------------- */

UFIO_API int ufio_dev_set_dma_hooks(struct ufio_dev *dev, ufio_dma_map_fn map, ufio_dma_unmap_fn unmap,
                                    void *opaque)
{
    if (dev->built)
        return -EBUSY;
    if (!map != !unmap)
        return -EINVAL; /* what map accepted, unmap must undo */
    struct ufio_passthrough *pt = pt_get(dev);
    if (!pt)
        return -ENOMEM;
    pt->dma_map = map;
    pt->dma_unmap = unmap;
    pt->dma_opaque = opaque;
    return 0;
}

static struct ufio_dma_mapping pt_mapping(const struct ufio_dma_region *r)
{
    return (struct ufio_dma_mapping){ .iova = r->iova, .size = r->size, .prot = r->prot, .vaddr = r->mem };
}

int pt_dma_map(struct ufio_dev *dev, const struct ufio_dma_region *r)
{
    if (!dev->pt || !dev->pt->dma_map)
        return 0;
    struct ufio_dma_mapping mm = pt_mapping(r);
    return dev->pt->dma_map(dev, dev->pt->dma_opaque, &mm);
}

void pt_dma_unmap(struct ufio_dev *dev, const struct ufio_dma_region *r)
{
    if (!dev->pt || !dev->pt->dma_unmap)
        return;
    struct ufio_dma_mapping mm = pt_mapping(r);
    dev->pt->dma_unmap(dev, dev->pt->dma_opaque, &mm);
}

UFIO_API int ufio_dev_set_dirty_sync(struct ufio_dev *dev, ufio_dirty_sync_fn fn, void *opaque)
{
    if (dev->built)
        return -EBUSY;
    struct ufio_passthrough *pt = pt_get(dev);
    if (!pt)
        return -ENOMEM;
    pt->dirty_sync = fn;
    pt->dirty_opaque = opaque;
    return 0;
}

void pt_dirty_sync(struct ufio_dev *dev, uint64_t iova, uint64_t len, uint64_t pgsize)
{
    if (dev->pt && dev->pt->dirty_sync)
        dev->pt->dirty_sync(dev, dev->pt->dirty_opaque, iova, len, pgsize);
}

UFIO_API uint64_t ufio_dev_msg_count(struct ufio_dev *dev)
{
    return dev->msgs_handled;
}

UFIO_API int ufio_dev_set_dirty_log(struct ufio_dev *dev, ufio_dirty_log_fn fn, void *opaque)
{
    if (dev->built)
        return -EBUSY;
    struct ufio_passthrough *pt = pt_get(dev);
    if (!pt)
        return -ENOMEM;
    pt->dirty_log = fn;
    pt->dirty_log_opaque = opaque;
    return 0;
}

struct range_ctx {
    struct ufio_iova_range *r;
    size_t n, cap;
};

static bool add_range(struct ufio_dma_region *reg, void *opaque)
{
    struct range_ctx *c = opaque;
    if (c->n == c->cap)
        return false;
    c->r[c->n++] = (struct ufio_iova_range){ reg->iova, reg->size };
    return true;
}

int pt_dirty_log(struct ufio_dev *dev, bool start, uint64_t pgsize)
{
    if (!dev->pt || !dev->pt->dirty_log)
        return 0;
    if (!start)
        return dev->pt->dirty_log(dev, dev->pt->dirty_log_opaque, false, pgsize, NULL, 0);
    const struct ufio_dma_table *t = &dev->dma;
    struct ufio_iova_range *r = calloc(t->n ? t->n : 1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    struct range_ctx c = { r, 0, t->n };
    dma_tree_walk(t, 0, UINT64_MAX, add_range, &c);
    int err = dev->pt->dirty_log(dev, dev->pt->dirty_log_opaque, true, pgsize, r, (uint32_t)c.n);
    free(r);
    return err;
}

UFIO_API int ufio_dev_set_resettable(struct ufio_dev *dev, bool resettable)
{
    if (dev->built)
        return -EBUSY;
    struct ufio_passthrough *pt = pt_get(dev);
    if (!pt)
        return -ENOMEM;
    pt->no_reset = !resettable;
    return 0;
}

bool pt_resettable(const struct ufio_dev *dev)
{
    return !dev->pt || !dev->pt->no_reset;
}
