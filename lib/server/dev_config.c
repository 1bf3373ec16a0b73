/*
 * Describing a device: config space, capabilities, BARs, mmap areas, IRQs.
 * All of these are set up before the device is attached to a socket.
 */
#include "server/dev_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static bool is_pow2(uint64_t v) { return v && !(v & (v - 1)); }

UFIO_API int ufio_dev_set_config_size(struct ufio_dev *dev, uint32_t size)
{
    if (dev->built)
        return -EBUSY;
    int err = pci_cfg_set_size(&dev->cfg, size);
    if (!err)
        dev->regions[UFIO_PCI_CONFIG_REGION].size = dev->cfg.size;
    return err;
}

UFIO_API int ufio_dev_set_intx_pin(struct ufio_dev *dev, uint8_t pin)
{
    if (dev->built)
        return -EBUSY;
    if (pin > 4)
        return -EINVAL;
    pci_cfg_set_intx_pin(&dev->cfg, pin);
    return irq_init_index(dev, UFIO_IRQ_INTX, pin ? 1 : 0,
                          VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED);
}

UFIO_API int ufio_dev_add_cap_pm(struct ufio_dev *dev)
{
    return dev->built ? -EBUSY : pci_cfg_add_pm(&dev->cfg);
}

UFIO_API int ufio_dev_add_cap_msi(struct ufio_dev *dev, unsigned nvec, unsigned flags)
{
    if (dev->built)
        return -EBUSY;
    if (flags & ~(UFIO_MSI_64BIT | UFIO_MSI_MASKABLE))
        return -EINVAL;
    if (dev->cfg.msi_off)
        return -EEXIST;
    int off = pci_cfg_add_msi(&dev->cfg, nvec, flags & UFIO_MSI_64BIT, flags & UFIO_MSI_MASKABLE);
    if (off < 0)
        return off;
    int err = irq_init_index(dev, UFIO_IRQ_MSI, nvec, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE);
    return err ? err : off;
}

static bool bar_is_mem(struct ufio_dev *dev, unsigned bar)
{
    return bar < 6 && dev->regions[bar].size && !(dev->regions[bar].bar_flags & UFIO_BAR_IO);
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

static bool area_overlaps(struct ufio_dev *dev, unsigned bar, uint64_t off, uint64_t len)
{
    const struct ufio_region *r = &dev->regions[bar];
    for (uint32_t i = 0; i < r->nr_areas; i++)
        if (overlaps(off, len, r->areas[i].offset, r->areas[i].size))
            return true;
    return false;
}

UFIO_API int ufio_dev_add_cap_msix(struct ufio_dev *dev, unsigned nvec, unsigned table_bar,
                                   uint32_t table_offset, unsigned pba_bar, uint32_t pba_offset)
{
    if (dev->built)
        return -EBUSY;
    if (dev->msix.nvec)
        return -EEXIST;
    if (nvec == 0 || nvec > 2048 || !bar_is_mem(dev, table_bar) || !bar_is_mem(dev, pba_bar))
        return -EINVAL;
    uint64_t tlen = (uint64_t)nvec * 16, plen = ((nvec + 63) / 64) * 8;
    if (!ufio_range_ok(table_offset, tlen, dev->regions[table_bar].size) ||
        !ufio_range_ok(pba_offset, plen, dev->regions[pba_bar].size) ||
        (table_bar == pba_bar && overlaps(table_offset, tlen, pba_offset, plen)) ||
        area_overlaps(dev, table_bar, table_offset, tlen) ||
        area_overlaps(dev, pba_bar, pba_offset, plen))
        return -EINVAL;
    int off = pci_cfg_add_msix(&dev->cfg, nvec, table_bar, table_offset, pba_bar, pba_offset);
    if (off < 0)
        return off;
    uint8_t *table = calloc(nvec, 16);
    if (!table)
        return -ENOMEM;
    /* every vector starts masked (vector control bit 0), as after reset */
    for (unsigned v = 0; v < nvec; v++)
        table[v * 16 + 12] = 1;
    dev->msix = (struct ufio_msix){ .nvec = nvec, .table_bar = table_bar, .pba_bar = pba_bar,
                                    .table_off = table_offset, .pba_off = pba_offset, .table = table };
    int err = irq_init_index(dev, UFIO_IRQ_MSIX, nvec, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE);
    return err ? err : off;
}

UFIO_API int ufio_dev_add_cap_pcie(struct ufio_dev *dev, uint8_t port_type)
{
    if (dev->built)
        return -EBUSY;
    int off = pci_cfg_add_pcie(&dev->cfg, port_type);
    if (off >= 0)
        dev->regions[UFIO_PCI_CONFIG_REGION].size = dev->cfg.size;
    return off;
}

UFIO_API int ufio_dev_add_cap_vendor(struct ufio_dev *dev, const void *data, size_t len)
{
    return dev->built ? -EBUSY : pci_cfg_add_vendor(&dev->cfg, data, len);
}

UFIO_API int ufio_dev_add_cap(struct ufio_dev *dev, uint8_t id, const void *body,
                              const void *wmask, size_t len)
{
    /* MSI and MSI-X need the library's interrupt emulation: use their builders */
    if (id == PCI_CAP_ID_MSI || id == PCI_CAP_ID_MSIX)
        return -EINVAL;
    return dev->built ? -EBUSY : pci_cfg_add_cap(&dev->cfg, id, body, wmask, len);
}

UFIO_API int ufio_dev_add_ext_cap_dsn(struct ufio_dev *dev, uint64_t serial)
{
    return dev->built ? -EBUSY : pci_cfg_add_dsn(&dev->cfg, serial);
}

UFIO_API int ufio_dev_add_ext_cap(struct ufio_dev *dev, uint16_t id, uint8_t version,
                                  const void *body, size_t len)
{
    return dev->built ? -EBUSY : pci_cfg_add_ext_cap(&dev->cfg, id, version, body, NULL, len);
}

UFIO_API int ufio_dev_config_read(struct ufio_dev *dev, uint32_t offset, void *buf, uint32_t len)
{
    return pci_cfg_read(&dev->cfg, offset, buf, len);
}

static bool spans_overlap(uint32_t a, uint32_t alen, uint32_t b, uint32_t blen)
{
    return a < b + blen && b < a + alen;
}

UFIO_API int ufio_dev_claim_config(struct ufio_dev *dev, uint32_t offset, uint32_t len,
                                   ufio_region_access_fn fn, void *opaque)
{
    if (dev->built)
        return -EBUSY;
    if (!fn || !len || offset < 0x40 || !ufio_range_ok(offset, len, PCIE_CFG_SIZE))
        return -EINVAL;
    /* the capabilities whose bytes the library itself interprets */
    uint32_t msi_len = 0;
    if (dev->cfg.msi_off) {
        uint16_t fl = (uint16_t)(dev->cfg.space[dev->cfg.msi_off + PCI_MSI_FLAGS] |
                                 dev->cfg.space[dev->cfg.msi_off + PCI_MSI_FLAGS + 1] << 8);
        msi_len = 10 + (fl & PCI_MSI_FLAGS_64BIT ? 4 : 0) + (fl & PCI_MSI_FLAGS_MASKBIT ? 10 : 0);
    }
    const struct { uint32_t off, len; } owned[] = {
        { dev->cfg.pm_off, 8 }, { dev->cfg.msi_off, msi_len }, { dev->cfg.msix_off, 12 }, { dev->cfg.pcie_off, 60 },
    };
    for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
        if (owned[i].off && spans_overlap(offset, len, owned[i].off, owned[i].len))
            return -EINVAL;
    for (unsigned i = 0; i < dev->ncfg_claims; i++)
        if (spans_overlap(offset, len, dev->cfg_claims[i].offset, dev->cfg_claims[i].len))
            return -EINVAL;
    if (dev->ncfg_claims == UFIO_DEV_MAX_CFG_CLAIMS)
        return -ENOSPC;
    dev->cfg_claims[dev->ncfg_claims++] = (struct ufio_cfg_claim){ offset, len, fn, opaque };
    return 0;
}

UFIO_API int ufio_dev_config_write_raw(struct ufio_dev *dev, uint32_t offset, const void *buf,
                                       uint32_t len)
{
    if (len == 0 || !ufio_range_ok(offset, len, dev->cfg.size))
        return -EINVAL;
    memcpy(dev->cfg.space + offset, buf, len);
    return 0;
}

static int add_region(struct ufio_dev *dev, unsigned index, uint64_t size, unsigned flags,
                      uint32_t info_flags, ufio_region_access_fn fn, void *opaque)
{
    int err = pci_cfg_set_bar(&dev->cfg, index, size, flags);
    if (err)
        return err;
    struct ufio_region *r = &dev->regions[index];
    r->size = size;
    r->bar_flags = flags;
    r->info_flags = info_flags;
    r->fn = fn;
    r->opaque = opaque;
    return 0;
}

UFIO_API int ufio_dev_add_bar(struct ufio_dev *dev, unsigned bar, uint64_t size, unsigned flags,
                              ufio_region_access_fn fn, void *opaque)
{
    if (dev->built)
        return -EBUSY;
    if (bar >= 6 || !is_pow2(size) || (flags & ~(UFIO_BAR_IO | UFIO_BAR_MEM64 | UFIO_BAR_PREFETCH)))
        return -EINVAL;
    if ((flags & UFIO_BAR_IO) && (flags & (UFIO_BAR_MEM64 | UFIO_BAR_PREFETCH)))
        return -EINVAL;
    if (dev->regions[bar].size)
        return -EEXIST;
    return add_region(dev, bar, size, flags, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE,
                      fn, opaque);
}

UFIO_API int ufio_dev_add_rom(struct ufio_dev *dev, uint64_t size, ufio_region_access_fn fn, void *opaque)
{
    if (dev->built)
        return -EBUSY;
    if (!is_pow2(size))
        return -EINVAL;
    if (dev->regions[UFIO_PCI_ROM_REGION].size)
        return -EEXIST;
    return add_region(dev, UFIO_PCI_ROM_REGION, size, 0, VFIO_REGION_INFO_FLAG_READ, fn, opaque);
}

UFIO_API int ufio_dev_add_mmap_area(struct ufio_dev *dev, unsigned region, uint64_t offset,
                                    uint64_t size, void **mem)
{
    if (dev->built)
        return -EBUSY;
    long pg = sysconf(_SC_PAGESIZE);
    if (region >= 6 || !bar_is_mem(dev, region) || size == 0 || (offset | size) % (uint64_t)pg)
        return -EINVAL;
    struct ufio_region *r = &dev->regions[region];
    if (!ufio_range_ok(offset, size, r->size) || area_overlaps(dev, region, offset, size))
        return -EINVAL;
    if (r->nr_areas == UFIO_DEV_MAX_AREAS)
        return -ENOSPC;
    if (pt_region_ext_fd(dev, region))
        return -EINVAL; /* backed by the device's fd (ufio_dev_add_mmap_area_fd) */
    if (dev->msix.nvec &&
        ((dev->msix.table_bar == region &&
          overlaps(offset, size, dev->msix.table_off, (uint64_t)dev->msix.nvec * 16)) ||
         (dev->msix.pba_bar == region &&
          overlaps(offset, size, dev->msix.pba_off, ((dev->msix.nvec + 63) / 64) * 8))))
        return -EINVAL;
    if (r->memfd < 0) {
        int fd = memfd_create(dev->name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
            return -errno;
        if (ftruncate(fd, (off_t)r->size) < 0) {
            int err = -errno;
            close(fd);
            return err;
        }
        /* the client must not be able to shrink it under our mapping */
        (void)fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
        void *p = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            int err = -errno;
            close(fd);
            return err;
        }
        r->memfd = fd;
        r->mem = p;
    }
    r->areas[r->nr_areas++] = (struct ufio_sparse_area){ .offset = offset, .size = size };
    r->info_flags |= VFIO_REGION_INFO_FLAG_MMAP;
    if (mem)
        *mem = r->mem + offset;
    return 0;
}

UFIO_API int ufio_dev_setup_irq(struct ufio_dev *dev, unsigned index, uint32_t count)
{
    if (dev->built)
        return -EBUSY;
    if ((index != UFIO_IRQ_ERR && index != UFIO_IRQ_REQ) || count > 1)
        return -EINVAL;
    return irq_init_index(dev, index, count, VFIO_IRQ_INFO_EVENTFD);
}
