/*
 * A host PCI device behind VFIO (container/group, type1 IOMMU), served as a
 * libufio device through the pass-through hooks. What the client sends has
 * already been validated by the library (offsets inside the region sizes we
 * advertised, IRQ ranges inside the counts VFIO gave, DMA ranges inside the
 * client's fd); the kernel checks again and its errno goes to the client.
 */
#include <ufio/migration.h>
#include <ufio/passthrough.h>
#include <ufio/vfio_host.h>

#include "vfio/vfio_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/abi.h"
#include "common/log.h"

#define HOST_MAX_SCRATCH (16u << 20)
/* REGION_INFO with its capability chain (sparse areas, types) */
#define REGION_INFO_BUF 4096u

struct host_region {
    uint64_t size, offset;  /* in the device fd */
    uint32_t flags;
};

struct ufio_vfio_host {
    char bdf[32];
    char name[64];
    int container, group, device;
    struct vfio_device_info info;
    struct host_region regions[VFIO_PCI_NUM_REGIONS];
    struct vfio_irq_info irqs[VFIO_PCI_NUM_IRQS];
    uint16_t vendor_id, device_id;
    struct ufio_dev *dev;
    /* the plugin's DMA buffer */
    void *scratch;
    size_t scratch_len;
    uint64_t scratch_iova;
    /* migration */
    struct mp_binding mp;
    struct mig_kernel mk;
    bool has_mig;
    struct ufio_mp_host mp_host;
};

static int why_set(char *why, size_t len, int err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int why_set(char *why, size_t len, int err, const char *fmt, ...)
{
    if (why && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, len, fmt, ap);
        va_end(ap);
    }
    return err;
}

/* ---- opening through the group ----------------------------------------------- */

static int canonical_bdf(const char *in, char *out, size_t len)
{
    unsigned dom = 0, bus, slot, fn;
    char tail;
    if (sscanf(in, "%x:%x:%x.%x%c", &dom, &bus, &slot, &fn, &tail) == 4 ||
        (dom = 0, sscanf(in, "%x:%x.%x%c", &bus, &slot, &fn, &tail) == 3)) {
        if (dom > 0xffff || bus > 0xff || slot > 0x1f || fn > 7)
            return -EINVAL;
        snprintf(out, len, "%04x:%02x:%02x.%x", dom, bus, slot, fn);
        return 0;
    }
    return -EINVAL;
}

static int open_group(struct ufio_vfio_host *h, char *why, size_t why_len)
{
    char path[PATH_MAX + 64], link[PATH_MAX];
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", h->bdf);
    ssize_t n = readlink(path, link, sizeof(link) - 1);
    if (n < 0)
        return why_set(why, why_len, errno == ENOENT ? -ENODEV : -errno, "%s: no driver bound (bind it to vfio-pci)",
                       h->bdf);
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", h->bdf);
    n = readlink(path, link, sizeof(link) - 1);
    if (n < 0)
        return why_set(why, why_len, -errno, "%s: no IOMMU group (%s)", h->bdf, strerror(errno));
    link[n] = 0;
    const char *nr = strrchr(link, '/');
    nr = nr ? nr + 1 : link;

    h->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
    if (h->container < 0)
        return why_set(why, why_len, -errno, "/dev/vfio/vfio: %s", strerror(errno));
    if (ioctl(h->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION)
        return why_set(why, why_len, -EPROTO, "unknown VFIO API version");
    if (ioctl(h->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) <= 0)
        return why_set(why, why_len, -ENOTSUP, "the kernel has no type1v2 IOMMU for VFIO");
    snprintf(path, sizeof(path), "/dev/vfio/%s", nr);
    h->group = open(path, O_RDWR | O_CLOEXEC);
    if (h->group < 0)
        return why_set(why, why_len, -errno, "%s: %s", path, strerror(errno));
    struct vfio_group_status st = { .argsz = sizeof(st) };
    if (ioctl(h->group, VFIO_GROUP_GET_STATUS, &st) < 0)
        return why_set(why, why_len, -errno, "group status: %s", strerror(errno));
    if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE))
        return why_set(why, why_len, -EBUSY, "IOMMU group %s is not viable (bind all its devices to vfio-pci)", nr);
    if (ioctl(h->group, VFIO_GROUP_SET_CONTAINER, &h->container) < 0)
        return why_set(why, why_len, -errno, "group set container: %s", strerror(errno));
    if (ioctl(h->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0)
        return why_set(why, why_len, -errno, "set type1v2 IOMMU: %s", strerror(errno));
    h->device = ioctl(h->group, VFIO_GROUP_GET_DEVICE_FD, h->bdf);
    if (h->device < 0)
        return why_set(why, why_len, -errno, "%s: get device fd: %s", h->bdf, strerror(errno));
    h->info.argsz = sizeof(h->info);
    if (ioctl(h->device, VFIO_DEVICE_GET_INFO, &h->info) < 0)
        return why_set(why, why_len, -errno, "device info: %s", strerror(errno));
    if (!(h->info.flags & VFIO_DEVICE_FLAGS_PCI) || h->info.num_regions < VFIO_PCI_CONFIG_REGION_INDEX + 1)
        return why_set(why, why_len, -ENODEV, "%s is not a VFIO PCI device", h->bdf);
    return 0;
}

/* ---- regions ----------------------------------------------------------------------- */

static int host_rw(struct ufio_vfio_host *h, unsigned region, uint64_t off, void *buf, uint32_t len, bool wr)
{
    const struct host_region *r = &h->regions[region];
    if (region >= VFIO_PCI_NUM_REGIONS || !r->size || off > r->size || len > r->size - off)
        return -EINVAL;
    if (!(r->flags & (wr ? VFIO_REGION_INFO_FLAG_WRITE : VFIO_REGION_INFO_FLAG_READ)))
        return -EPERM;
    ssize_t n = wr ? pwrite(h->device, buf, len, (off_t)(r->offset + off))
                   : pread(h->device, buf, len, (off_t)(r->offset + off));
    if (n < 0)
        return -errno;
    return (size_t)n == len ? 0 : -EIO;
}

static int region_fn(struct ufio_dev *dev, void *opaque, unsigned region, uint64_t offset, void *buf, uint32_t len,
                     bool is_write)
{
    /* ufio's config region index is VFIO's */
    return host_rw(opaque, region, offset, buf, len, is_write);
}

/* The sparse mmap areas VFIO allows for a region (none when mmap is not allowed). */
static int add_areas(struct ufio_vfio_host *h, unsigned index, const struct vfio_region_info *ri, size_t argsz)
{
    long pg = sysconf(_SC_PAGESIZE);
    if (!(ri->flags & VFIO_REGION_INFO_FLAG_MMAP))
        return 0;
    if (!(ri->flags & VFIO_REGION_INFO_FLAG_CAPS))
        return ri->size % (uint64_t)pg ? 0 : ufio_dev_add_mmap_area_fd(h->dev, index, 0, ri->size, h->device,
                                                                        ri->offset);
    if (!ri->cap_offset)
        return 0; /* capabilities that did not fit: no mmap rather than a guess at the areas */
    if (argsz > REGION_INFO_BUF)
        return 0; /* the same: the chain was cut */
    /* walk the capability chain, bounded by argsz and a hop count */
    const uint8_t *base = (const uint8_t *)ri;
    uint32_t off = ri->cap_offset;
    for (int hops = 0; off && hops < 16; hops++) {
        if (off + sizeof(struct vfio_info_cap_header) > argsz)
            return -EIO;
        const struct vfio_info_cap_header *c = (const void *)(base + off);
        if (c->id == VFIO_REGION_INFO_CAP_SPARSE_MMAP) {
            const struct vfio_region_info_cap_sparse_mmap *s = (const void *)c;
            if (off + sizeof(*s) > argsz || off + sizeof(*s) + (uint64_t)s->nr_areas * sizeof(s->areas[0]) > argsz)
                return -EIO;
            for (uint32_t i = 0; i < s->nr_areas; i++) {
                uint64_t o = s->areas[i].offset, sz = s->areas[i].size;
                if (!sz || (o | sz) % (uint64_t)pg)
                    continue; /* the kernel's areas are page-aligned; skip anything else */
                int err = ufio_dev_add_mmap_area_fd(h->dev, index, o, sz, h->device, ri->offset);
                if (err && err != -ENOSPC)
                    return err;
            }
            return 0;
        }
        off = c->next;
    }
    return 0; /* MMAP with caps but no sparse list: VFIO means the whole region */
}

static int bar_flags(struct ufio_vfio_host *h, unsigned bar, unsigned *flags)
{
    uint32_t v;
    int err = host_rw(h, VFIO_PCI_CONFIG_REGION_INDEX, 0x10 + 4 * bar, &v, 4, false);
    if (err)
        return err;
    if (v & 1) {
        *flags = UFIO_BAR_IO;
        return 0;
    }
    *flags = ((v & 6) == 4 ? UFIO_BAR_MEM64 : UFIO_BAR_MEM32) | ((v & 8) ? UFIO_BAR_PREFETCH : 0);
    return 0;
}

static int setup_regions(struct ufio_vfio_host *h, bool no_mmap, char *why, size_t why_len)
{
    for (unsigned i = 0; i < VFIO_PCI_NUM_REGIONS && i < h->info.num_regions; i++) {
        union {
            struct vfio_region_info ri;
            uint8_t raw[REGION_INFO_BUF];
        } u;
        memset(&u, 0, sizeof(u));
        u.ri.argsz = sizeof(u);
        u.ri.index = i;
        if (ioctl(h->device, VFIO_DEVICE_GET_REGION_INFO, &u.ri) < 0) {
            if (errno == EINVAL)
                continue; /* no such region on this device */
            return why_set(why, why_len, -errno, "region %u info: %s", i, strerror(errno));
        }
        size_t argsz = u.ri.argsz; /* above sizeof(u): the kernel had more to say than fitted */
        h->regions[i] = (struct host_region){ .size = u.ri.size, .offset = u.ri.offset, .flags = u.ri.flags };
        if (!u.ri.size || i == VFIO_PCI_CONFIG_REGION_INDEX || i == VFIO_PCI_VGA_REGION_INDEX)
            continue;
        int err;
        if (i == VFIO_PCI_ROM_REGION_INDEX) {
            err = ufio_dev_add_rom(h->dev, u.ri.size, region_fn, h);
        } else {
            unsigned fl;
            err = bar_flags(h, i, &fl);
            if (!err)
                err = ufio_dev_add_bar(h->dev, i, u.ri.size, fl, region_fn, h);
            if (!err && !no_mmap && !(fl & UFIO_BAR_IO))
                err = add_areas(h, i, &u.ri, argsz);
        }
        if (err)
            return why_set(why, why_len, err, "region %u (%llu bytes): %s", i, (unsigned long long)u.ri.size,
                           strerror(-err));
    }
    uint64_t cfg = h->regions[VFIO_PCI_CONFIG_REGION_INDEX].size;
    uint32_t cfg_size = cfg >= 4096 ? 4096 : 256;
    int err = ufio_dev_passthrough_config(h->dev, cfg_size, region_fn, h);
    if (err)
        return why_set(why, why_len, err, "config space: %s", strerror(-err));
    return 0;
}

/* ---- interrupts ------------------------------------------------------------------- */

static int irq_fn(struct ufio_dev *dev, void *opaque, unsigned index, uint32_t flags, uint32_t start, uint32_t count,
                  const int *fds, size_t nfds, const uint8_t *bools)
{
    struct ufio_vfio_host *h = opaque;
    size_t data = nfds ? nfds * sizeof(int32_t) : bools ? count : 0;
    struct vfio_irq_set *s = calloc(1, sizeof(*s) + data);
    if (!s)
        return -ENOMEM;
    s->argsz = (uint32_t)(sizeof(*s) + data);
    s->flags = flags;
    s->index = index;
    s->start = start;
    s->count = count;
    if (nfds) {
        for (size_t i = 0; i < nfds; i++) {
            int32_t fd = fds[i];
            memcpy(s->data + i * sizeof(fd), &fd, sizeof(fd));
        }
    } else if (bools) {
        memcpy(s->data, bools, count);
    }
    int err = ioctl(h->device, VFIO_DEVICE_SET_IRQS, s) < 0 ? -errno : 0;
    free(s);
    if (err)
        UFIO_DBG(h->name, "SET_IRQS index %u start %u count %u flags %#x: %s", index, start, count, flags,
                 strerror(-err));
    return err;
}

static int setup_irqs(struct ufio_vfio_host *h, char *why, size_t why_len)
{
    int err = ufio_dev_set_intx_pin(h->dev, 0); /* the library's default INTx is not this device's */
    for (unsigned i = 0; !err && i < VFIO_PCI_NUM_IRQS && i < h->info.num_irqs; i++) {
        struct vfio_irq_info *ii = &h->irqs[i];
        ii->argsz = sizeof(*ii);
        ii->index = i;
        if (ioctl(h->device, VFIO_DEVICE_GET_IRQ_INFO, ii) < 0) {
            if (errno == EINVAL) {
                ii->count = 0; /* vfio-pci has ERR only for PCIe functions */
                continue;
            }
            return why_set(why, why_len, -errno, "IRQ %u info: %s", i, strerror(errno));
        }
        if (ii->count)
            err = ufio_dev_passthrough_irq(h->dev, i, ii->count, ii->flags, irq_fn, h);
    }
    if (err)
        return why_set(why, why_len, err, "IRQs: %s", strerror(-err));
    return 0;
}

/* ---- DMA ------------------------------------------------------------------------------ */

static bool overlaps_scratch(const struct ufio_vfio_host *h, uint64_t iova, uint64_t size)
{
    return h->scratch && iova < h->scratch_iova + h->scratch_len && h->scratch_iova < iova + size;
}

static int iommu_map(struct ufio_vfio_host *h, uint64_t iova, uint64_t size, uint32_t prot, void *vaddr)
{
    struct vfio_iommu_type1_dma_map m = {
        .argsz = sizeof(m),
        .flags = ((prot & UFIO_DMA_MAP_READ) ? VFIO_DMA_MAP_FLAG_READ : 0) |
                 ((prot & UFIO_DMA_MAP_WRITE) ? VFIO_DMA_MAP_FLAG_WRITE : 0),
        .vaddr = (uint64_t)(uintptr_t)vaddr,
        .iova = iova,
        .size = size,
    };
    return ioctl(h->container, VFIO_IOMMU_MAP_DMA, &m) < 0 ? -errno : 0;
}

static int dma_map_fn(struct ufio_dev *dev, void *opaque, const struct ufio_dma_mapping *m)
{
    struct ufio_vfio_host *h = opaque;
    if (!m->vaddr)
        return -EINVAL; /* memory without an fd cannot be reached by hardware */
    if (overlaps_scratch(h, m->iova, m->size))
        return -EEXIST;
    int err = iommu_map(h, m->iova, m->size, m->prot, m->vaddr);
    if (err)
        UFIO_WARN(h->name, "IOMMU map of iova %#llx + %#llx refused: %s", (unsigned long long)m->iova,
                  (unsigned long long)m->size, strerror(-err));
    return err;
}

static void dma_unmap_fn(struct ufio_dev *dev, void *opaque, const struct ufio_dma_mapping *m)
{
    struct ufio_vfio_host *h = opaque;
    struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u), .iova = m->iova, .size = m->size };
    if (ioctl(h->container, VFIO_IOMMU_UNMAP_DMA, &u) < 0 || u.size != m->size)
        UFIO_ERR(h->name, "IOMMU unmap of iova %#llx + %#llx: %s (unmapped %#llx)", (unsigned long long)m->iova,
                 (unsigned long long)m->size, strerror(errno), (unsigned long long)u.size);
}

/* ---- reset, client going away ----------------------------------------------------------- */

static int reset_fn(struct ufio_dev *dev, void *opaque)
{
    struct ufio_vfio_host *h = opaque;
    if (!(h->info.flags & VFIO_DEVICE_FLAGS_RESET))
        return -ENOTTY;
    return ioctl(h->device, VFIO_DEVICE_RESET) < 0 ? -errno : 0;
}

/* ---- services for the plugin ---------------------------------------------------------- */

static int svc_read(void *ctx, unsigned region, uint64_t off, void *buf, uint32_t len)
{
    return host_rw(ctx, region, off, buf, len, false);
}

static int svc_write(void *ctx, unsigned region, uint64_t off, const void *buf, uint32_t len)
{
    return host_rw(ctx, region, off, (void *)buf, len, true);
}

static int svc_dma_alloc(void *ctx, size_t size, uint64_t limit, void **vaddr, uint64_t *iova)
{
    struct ufio_vfio_host *h = ctx;
    long pg = sysconf(_SC_PAGESIZE);
    if (h->scratch)
        return -EBUSY;
    if (!size || size % (size_t)pg || size > HOST_MAX_SCRATCH || (limit && limit < size))
        return -EINVAL;
    /* the top of the device's reach: clients map low IOVAs first */
    uint64_t top = limit ? limit : (1ull << 39);
    uint64_t at = (top - size) & ~((uint64_t)pg - 1);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    int err = iommu_map(h, at, size, UFIO_DMA_MAP_READ | UFIO_DMA_MAP_WRITE, p);
    if (err) {
        munmap(p, size);
        return err;
    }
    h->scratch = p;
    h->scratch_len = size;
    h->scratch_iova = at;
    *vaddr = p;
    *iova = at;
    UFIO_INFO(h->name, "plugin DMA buffer: %zu bytes at iova %#llx", size, (unsigned long long)at);
    return 0;
}

static void svc_log(void *ctx, int level, const char *msg)
{
    struct ufio_vfio_host *h = ctx;
    enum ufio_log_level l = level <= 0 ? UFIO_LOG_ERR : level == 1 ? UFIO_LOG_WARN : level == 2 ? UFIO_LOG_INFO
                                                                                                : UFIO_LOG_DEBUG;
    ufio_log(l, h->mp.p.name ? h->mp.p.name : h->name, "%s", msg);
}

static void scratch_free(struct ufio_vfio_host *h)
{
    if (!h->scratch)
        return;
    struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u), .iova = h->scratch_iova, .size = h->scratch_len };
    (void)ioctl(h->container, VFIO_IOMMU_UNMAP_DMA, &u);
    munmap(h->scratch, h->scratch_len);
    h->scratch = NULL;
}

/* ---- migration ------------------------------------------------------------------------ */

static int setup_migration(struct ufio_vfio_host *h, const struct ufio_vfio_host_opts *o, char *why, size_t why_len)
{
    int err;
    if (o->no_migration)
        return 0;
    if (o->migration_plugin) {
        err = mp_load(&h->mp, o->migration_plugin, why, why_len);
        if (err)
            return err;
        h->mp_host = (struct ufio_mp_host){
            .abi_version = UFIO_MP_ABI_VERSION,
            .size = sizeof(h->mp_host),
            .ctx = h,
            .bdf = h->bdf,
            .vendor_id = h->vendor_id,
            .device_id = h->device_id,
            .region_read = svc_read,
            .region_write = svc_write,
            .dma_alloc = svc_dma_alloc,
            .log = svc_log,
        };
        if (h->mp.p.init) {
            err = mp_errno(h->mp.p.init(&h->mp_host, &h->mp.state));
            if (err)
                return why_set(why, why_len, err, "plugin %s: init failed: %s", h->mp.p.name ? h->mp.p.name : "",
                               strerror(-err));
        }
        h->mp.inited = true;
    } else {
        err = mig_kernel_probe(&h->mk, h->device, NULL, NULL, NULL, NULL);
        if (err)
            return 0; /* the driver cannot migrate and no plugin was given: serve without migration */
        err = mp_bind(&h->mp, mig_kernel_plugin(), why, why_len);
        if (err)
            return err;
        h->mp.p.flags = h->mk.flags;
        h->mp.state = &h->mk;
        h->mp.inited = true;
    }
    h->mp.dev = h->dev;
    if (h->mp.p.compat_json && (err = ufio_dev_set_compat(h->dev, h->mp.p.compat_json)))
        return why_set(why, why_len, err, "plugin compatibility descriptor refused: %s", strerror(-err));
    struct ufio_mig_ops ops;
    mp_mig_ops(&h->mp, &ops);
    err = ufio_dev_setup_migration(h->dev, &ops, &h->mp);
    if (!err && h->mp.p.dirty_pages)
        err = ufio_dev_set_dirty_sync(h->dev, mp_dirty_sync, &h->mp);
    if (!err && h->mp.p.dirty_log)
        err = ufio_dev_set_dirty_log(h->dev, mp_dirty_log, &h->mp);
    if (err)
        return why_set(why, why_len, err, "migration: %s", strerror(-err));
    h->has_mig = true;
    return 0;
}

/* ---- the whole ------------------------------------------------------------------------ */

UFIO_API int ufio_vfio_host_open(const char *bdf, const char *name, const struct ufio_vfio_host_opts *opts,
                                 struct ufio_vfio_host **out, char *why, size_t why_len)
{
    struct ufio_vfio_host_opts o = { .size = sizeof(o) };
    if (opts) {
        int aerr = abi_struct_in(&o, sizeof(o), opts);
        if (aerr)
            return why_set(why, why_len, aerr, "options struct of a size this library does not take");
    }
    if (why && why_len)
        why[0] = 0;
    struct ufio_vfio_host *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->container = h->group = h->device = -1;
    snprintf(h->name, sizeof(h->name), "%s", name ? name : "ufio-vfio-pci");
    int err = canonical_bdf(bdf, h->bdf, sizeof(h->bdf));
    if (err) {
        why_set(why, why_len, err, "'%s' is not a PCI address (DDDD:BB:SS.F)", bdf);
        goto fail;
    }
    if ((err = open_group(h, why, why_len)))
        goto fail;
    struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
    if (ioctl(h->device, VFIO_DEVICE_GET_REGION_INFO, &cfg) < 0) {
        err = why_set(why, why_len, -errno, "config region: %s", strerror(errno));
        goto fail;
    }
    h->regions[VFIO_PCI_CONFIG_REGION_INDEX] = (struct host_region){ cfg.size, cfg.offset, cfg.flags };
    uint8_t hdr[0x30];
    if ((err = host_rw(h, VFIO_PCI_CONFIG_REGION_INDEX, 0, hdr, sizeof(hdr), false))) {
        why_set(why, why_len, err, "config space: %s", strerror(-err));
        goto fail;
    }
    h->vendor_id = (uint16_t)(hdr[0] | hdr[1] << 8);
    h->device_id = (uint16_t)(hdr[2] | hdr[3] << 8);
    /* the library's copy of the ids only names the device in the default compatibility descriptor */
    const struct ufio_pci_ids ids = {
        .vendor_id = h->vendor_id,
        .device_id = h->device_id,
        .subsys_vendor_id = (uint16_t)(hdr[0x2c] | hdr[0x2d] << 8),
        .subsys_id = (uint16_t)(hdr[0x2e] | hdr[0x2f] << 8),
        .class_code = (uint32_t)(hdr[9] | hdr[10] << 8 | hdr[11] << 16),
        .revision = hdr[8],
    };
    const struct ufio_dev_ops ops = { .size = sizeof(ops), .reset = reset_fn };
    if ((err = ufio_dev_create(h->name, &ids, &ops, h, &h->dev))) {
        why_set(why, why_len, err, "device: %s", strerror(-err));
        goto fail;
    }
    if ((err = setup_regions(h, o.no_mmap, why, why_len)) || (err = setup_irqs(h, why, why_len)))
        goto fail;
    if ((err = ufio_dev_set_resettable(h->dev, h->info.flags & VFIO_DEVICE_FLAGS_RESET))) {
        why_set(why, why_len, err, "reset flag: %s", strerror(-err));
        goto fail;
    }
    if ((err = ufio_dev_set_dma_hooks(h->dev, dma_map_fn, dma_unmap_fn, h))) {
        why_set(why, why_len, err, "DMA hooks: %s", strerror(-err));
        goto fail;
    }
    if ((err = setup_migration(h, &o, why, why_len)))
        goto fail;
    UFIO_INFO(h->name, "%s [%04x:%04x]: %u regions, %u IRQ indices, reset %s, migration %s", h->bdf, h->vendor_id,
              h->device_id, h->info.num_regions, h->info.num_irqs,
              (h->info.flags & VFIO_DEVICE_FLAGS_RESET) ? "yes" : "no", ufio_vfio_host_migration(h));
    *out = h;
    return 0;
fail:
    ufio_vfio_host_close(h);
    return err;
}

UFIO_API struct ufio_dev *ufio_vfio_host_dev(struct ufio_vfio_host *h)
{
    return h->dev;
}

UFIO_API const char *ufio_vfio_host_migration(struct ufio_vfio_host *h)
{
    if (!h->has_mig)
        return "none";
    return h->mp.p.name ? h->mp.p.name : "plugin";
}

UFIO_API void ufio_vfio_host_close(struct ufio_vfio_host *h)
{
    if (!h)
        return;
    /* the device first: it unmaps the client's DMA and drops its IRQs through our hooks */
    ufio_dev_destroy(h->dev);
    h->dev = NULL;
    mp_unload(&h->mp);
    scratch_free(h);
    if (h->device >= 0)
        close(h->device);
    if (h->group >= 0)
        close(h->group);
    if (h->container >= 0)
        close(h->container);
    free(h);
}
