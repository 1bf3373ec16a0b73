/*
 * MSI-X and DMA from guest userspace through vfio-pci, the one stock driver
 * that lets userspace enable MSI-X and receive a vector on an eventfd.
 * vfio needs an IOMMU group: run.sh gives the guest QEMU's emulated Intel
 * IOMMU, so the type1 backend maps our buffer at an IOVA of our choosing
 * (and QEMU forwards that mapping to the server with DMA_MAP). A kernel
 * built with VFIO_NOIOMMU (Debian's sid kernel is not) also works without
 * one: bus addresses are then guest physical addresses from pagemap.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "guest.h"

#define DMA_IOVA 0x40000000ull


int bind_driver(const struct guest_dev *d, const char *driver)
{
    char path[sizeof(d->sysfs) + 32], link[128];
    snprintf(path, sizeof(path), "/sys/bus/pci/drivers/%s", driver);
    if (access(path, F_OK))
        return -ENOENT; /* module not loaded: the init log says why */
    snprintf(path, sizeof(path), "%s/driver", d->sysfs);
    if (!access(path, F_OK)) {
        snprintf(path, sizeof(path), "%s/driver/unbind", d->sysfs);
        int err = write_file(path, d->name);
        if (err)
            return err;
    }
    snprintf(path, sizeof(path), "%s/driver_override", d->sysfs);
    int err = write_file(path, driver);
    if (!err)
        err = write_file("/sys/bus/pci/drivers_probe", d->name);
    if (err)
        return err;
    snprintf(path, sizeof(path), "%s/driver", d->sysfs);
    ssize_t n = readlink(path, link, sizeof(link) - 1);
    if (n < 0)
        return -ENODEV; /* the driver's probe refused the device: see dmesg */
    link[n] = 0;
    const char *bound = strrchr(link, '/');
    return bound && !strcmp(bound + 1, driver) ? 0 : -EBUSY;
}

int vfio_open_dev(const struct guest_dev *d, struct vfio *v)
{
    char path[sizeof(d->sysfs) + 32], link[96];
    snprintf(path, sizeof(path), "%s/iommu_group", d->sysfs);
    ssize_t n = readlink(path, link, sizeof(link) - 1);
    if (n < 0)
        return -errno;
    link[n] = 0;
    const char *group_nr = strrchr(link, '/');
    group_nr = group_nr ? group_nr + 1 : link;

    v->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
    if (v->container < 0)
        return -errno;
    if (ioctl(v->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION)
        return -EOPNOTSUPP;
    snprintf(path, sizeof(path), "/dev/vfio/%s", group_nr);
    v->group = open(path, O_RDWR | O_CLOEXEC);
    if (v->group < 0) {
        snprintf(path, sizeof(path), "/dev/vfio/noiommu-%s", group_nr);
        v->group = open(path, O_RDWR | O_CLOEXEC);
        if (v->group < 0)
            return -errno;
        v->noiommu = true;
    }
    struct vfio_group_status status = { .argsz = sizeof(status) };
    if (ioctl(v->group, VFIO_GROUP_GET_STATUS, &status) < 0)
        return -errno;
    if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE))
        return -EBUSY;
    int type = v->noiommu ? VFIO_NOIOMMU_IOMMU : VFIO_TYPE1v2_IOMMU;
    if (ioctl(v->group, VFIO_GROUP_SET_CONTAINER, &v->container) < 0 ||
        ioctl(v->container, VFIO_SET_IOMMU, type) < 0)
        return -errno;
    v->device = ioctl(v->group, VFIO_GROUP_GET_DEVICE_FD, d->name);
    if (v->device < 0)
        return -errno;

    struct vfio_region_info bar0 = { .argsz = sizeof(bar0), .index = VFIO_PCI_BAR0_REGION_INDEX };
    struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
    if (ioctl(v->device, VFIO_DEVICE_GET_REGION_INFO, &bar0) < 0 ||
        ioctl(v->device, VFIO_DEVICE_GET_REGION_INFO, &cfg) < 0)
        return -errno;
    v->bar0_off = bar0.offset;
    v->cfg_off = cfg.offset;
    return 0;
}

int vfio_wr(void *ctx, uint32_t reg, uint32_t val)
{
    const struct vfio *v = ctx;
    ssize_t n = pwrite(v->device, &val, 4, (off_t)(v->bar0_off + reg));
    return n == 4 ? 0 : n < 0 ? -errno : -EIO;
}

uint32_t vfio_rd(void *ctx, uint32_t reg)
{
    const struct vfio *v = ctx;
    uint32_t val;
    if (pread(v->device, &val, 4, (off_t)(v->bar0_off + reg)) != 4)
        return 0xffffffffu;
    return val;
}

static long vfio_wait(void *ctx)
{
    const struct vfio *v = ctx;
    uint64_t count;
    return poll_wait(v->efd, &count, sizeof(count));
}

int vfio_enable_bus_master(const struct vfio *v)
{
    uint16_t cmd;
    if (pread(v->device, &cmd, 2, (off_t)(v->cfg_off + 4)) != 2)
        return -EIO;
    cmd |= 0x6; /* memory space + bus master */
    return pwrite(v->device, &cmd, 2, (off_t)(v->cfg_off + 4)) == 2 ? 0 : -EIO;
}

/* Vector 0 and vector 3 get eventfds (1 and 2 none); on = false disables MSI-X. */
int vfio_set_msix(const struct vfio *v, bool on)
{
    char buf[sizeof(struct vfio_irq_set) + MSIX_VECTORS * sizeof(int32_t)];
    struct vfio_irq_set *set = (struct vfio_irq_set *)buf;
    set->argsz = on ? sizeof(buf) : sizeof(*set);
    set->flags = (on ? VFIO_IRQ_SET_DATA_EVENTFD : VFIO_IRQ_SET_DATA_NONE) |
                 VFIO_IRQ_SET_ACTION_TRIGGER;
    set->index = VFIO_PCI_MSIX_IRQ_INDEX;
    set->start = 0;
    set->count = on ? MSIX_VECTORS : 0;
    const int32_t fds[MSIX_VECTORS] = { v->efd, -1, -1, v->efd3 };
    memcpy(set->data, fds, sizeof(fds));
    return ioctl(v->device, VFIO_DEVICE_SET_IRQS, set) < 0 ? -errno : 0;
}

/* IRQ_RAISE=N must signal vector N, and only it. */
static void check_vector3(const struct vfio *v)
{
    uint64_t count;
    int err = vfio_wr((void *)v, REG_IRQ_RAISE, 3);
    long n = err ? err : poll_wait(v->efd3, &count, sizeof(count));
    bool vec0_quiet = read(v->efd, &count, sizeof(count)) < 0 && errno == EAGAIN;
    if (n > 0)
        check(vec0_quiet, "msix-irq-vector3", "%s", vec0_quiet ? "IRQ_RAISE=3 delivered on vector 3 only"
                                                               : "vector 0 fired too");
    else
        check(false, "msix-irq-vector3", "no interrupt on vector 3 within %d ms", IRQ_TIMEOUT_MS);
}

static void vfio_dma(struct vfio *v, const struct dev_io *io)
{
    uint8_t *buf = dma_buffer_alloc();
    if (!check(buf != NULL, "msix-dma-buffer", "%s", buf ? "" : strerror(errno)))
        return;
    uint64_t src, dst;
    int err = 0;
    if (v->noiommu) {
        err = phys_addr(buf, &src);
        if (!err)
            err = phys_addr(buf + DMA_LEN, &dst);
    } else {
        struct vfio_iommu_type1_dma_map map = {
            .argsz = sizeof(map),
            .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
            .vaddr = (uintptr_t)buf, .iova = DMA_IOVA, .size = 2 * DMA_LEN,
        };
        err = ioctl(v->container, VFIO_IOMMU_MAP_DMA, &map) < 0 ? -errno : 0;
        src = DMA_IOVA;
        dst = DMA_IOVA + DMA_LEN;
    }
    if (check(!err, "msix-dma-map", "%s", err ? strerror(-err) : v->noiommu ? "physical" : "IOVA"))
        check_dma_xor(io, buf, src, dst);
    if (!err && !v->noiommu) {
        struct vfio_iommu_type1_dma_unmap unmap = {
            .argsz = sizeof(unmap), .iova = DMA_IOVA, .size = 2 * DMA_LEN,
        };
        ioctl(v->container, VFIO_IOMMU_UNMAP_DMA, &unmap);
    }
    dma_buffer_free(buf);
}

bool check_vfio(const struct guest_dev *d, bool *iommu)
{
    struct vfio v = { .container = -1, .group = -1, .device = -1, .efd = -1, .efd3 = -1 };
    const struct dev_io io = { .tag = "msix", .ctx = &v, .rd = vfio_rd, .wr = vfio_wr,
                               .wait_irq = vfio_wait };
    char path[sizeof(d->sysfs) + 16];
    snprintf(path, sizeof(path), "%s/iommu_group", d->sysfs);
    *iommu = !access(path, F_OK);
    if (!*iommu && access("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode", F_OK)) {
        /* Only with run.sh --no-viommu: nothing can hand MSI-X to userspace. */
        note("skip vfio: no IOMMU and this kernel lacks VFIO_NOIOMMU; MSI-X not checked");
        return false;
    }

    int err = bind_driver(d, "vfio-pci");
    if (!check(!err, "vfio-bind", "%s", err ? strerror(-err) : "vfio-pci"))
        return false;
    err = vfio_open_dev(d, &v);
    if (!check(!err, "vfio-open", "%s", err ? strerror(-err) : v.noiommu ? "no-IOMMU mode" : "type1 IOMMU"))
        goto out;

    struct vfio_irq_info msix = { .argsz = sizeof(msix), .index = VFIO_PCI_MSIX_IRQ_INDEX };
    err = ioctl(v.device, VFIO_DEVICE_GET_IRQ_INFO, &msix) < 0 ? -errno : 0;
    check(!err && msix.count == 4, "vfio-msix-count", "%u", err ? 0 : msix.count);

    if (!check(!vfio_enable_bus_master(&v), "vfio-bus-master", NULL))
        goto out;
    v.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    v.efd3 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    err = v.efd < 0 || v.efd3 < 0 ? -errno : vfio_set_msix(&v, true);
    if (!check(!err, "msix-enable", "%s", err ? strerror(-err) : "vectors 0 and 3 -> eventfds"))
        goto out;

    check_irq_raise(&io);
    check_vector3(&v);
    vfio_dma(&v, &io);
    vfio_set_msix(&v, false);
out:
    vfio_close(&v);
    return true;
}

void vfio_close(struct vfio *v)
{
    int *fds[] = { &v->efd, &v->efd3, &v->device, &v->group, &v->container };
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
}
