/*
 * Interrupts and DMA from guest userspace. The guest has no IOMMU, so the
 * device is bound to vfio-pci in no-IOMMU mode (the initramfs loads vfio with
 * enable_unsafe_noiommu_mode=1): that is the one stock driver that lets
 * userspace enable MSI-X and receive a vector on an eventfd. Without an
 * IOMMU, bus addresses are guest physical addresses, which /proc/self/pagemap
 * gives us for a locked page.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest.h"

#define IRQ_TIMEOUT_MS 5000
#define DMA_LEN 4096u

struct vfio {
    int container, group, device, efd;
    uint64_t bar0_off, cfg_off;
};

static int bind_vfio_pci(const struct guest_dev *d)
{
    char path[sizeof(d->sysfs) + 32];
    if (access("/sys/bus/pci/drivers/vfio-pci", F_OK))
        return -ENOENT; /* module not loaded: the init log says why */
    snprintf(path, sizeof(path), "%s/driver_override", d->sysfs);
    int err = write_file(path, "vfio-pci");
    if (!err)
        err = write_file("/sys/bus/pci/drivers_probe", d->name);
    if (err)
        return err;
    snprintf(path, sizeof(path), "%s/driver/module", d->sysfs);
    char link[256];
    ssize_t n = readlink(path, link, sizeof(link) - 1);
    if (n < 0)
        return -ENODEV;
    link[n] = 0;
    return strstr(link, "vfio_pci") ? 0 : -ENODEV;
}

static int open_vfio(const struct guest_dev *d, struct vfio *v)
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
    if (ioctl(v->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION ||
        ioctl(v->container, VFIO_CHECK_EXTENSION, VFIO_NOIOMMU_IOMMU) != 1)
        return -EOPNOTSUPP;
    snprintf(path, sizeof(path), "/dev/vfio/noiommu-%s", group_nr);
    v->group = open(path, O_RDWR | O_CLOEXEC);
    if (v->group < 0)
        return -errno;
    struct vfio_group_status status = { .argsz = sizeof(status) };
    if (ioctl(v->group, VFIO_GROUP_GET_STATUS, &status) < 0)
        return -errno;
    if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE))
        return -EBUSY;
    if (ioctl(v->group, VFIO_GROUP_SET_CONTAINER, &v->container) < 0 ||
        ioctl(v->container, VFIO_SET_IOMMU, VFIO_NOIOMMU_IOMMU) < 0)
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

static int reg_write(const struct vfio *v, uint32_t reg, uint32_t val)
{
    ssize_t n = pwrite(v->device, &val, 4, (off_t)(v->bar0_off + reg));
    return n == 4 ? 0 : n < 0 ? -errno : -EIO;
}

static uint32_t reg_read(const struct vfio *v, uint32_t reg)
{
    uint32_t val = 0xffffffffu;
    if (pread(v->device, &val, 4, (off_t)(v->bar0_off + reg)) != 4)
        return 0xffffffffu;
    return val;
}

static int enable_bus_master(const struct vfio *v)
{
    uint16_t cmd;
    if (pread(v->device, &cmd, 2, (off_t)(v->cfg_off + 4)) != 2)
        return -EIO;
    cmd |= 0x6; /* memory space + bus master */
    return pwrite(v->device, &cmd, 2, (off_t)(v->cfg_off + 4)) == 2 ? 0 : -EIO;
}

static int set_msix_eventfd(const struct vfio *v, int efd)
{
    char buf[sizeof(struct vfio_irq_set) + sizeof(int32_t)];
    struct vfio_irq_set *set = (struct vfio_irq_set *)buf;
    set->argsz = efd >= 0 ? sizeof(buf) : sizeof(*set);
    set->flags = (efd >= 0 ? VFIO_IRQ_SET_DATA_EVENTFD : VFIO_IRQ_SET_DATA_NONE) |
                 VFIO_IRQ_SET_ACTION_TRIGGER;
    set->index = VFIO_PCI_MSIX_IRQ_INDEX;
    set->start = 0;
    set->count = efd >= 0 ? 1 : 0;
    int32_t fd32 = efd;
    memcpy(set->data, &fd32, sizeof(fd32));
    return ioctl(v->device, VFIO_DEVICE_SET_IRQS, set) < 0 ? -errno : 0;
}

/* Returns the number of interrupts seen, 0 on timeout, or a negative errno. */
static long wait_irq(int efd)
{
    struct pollfd p = { .fd = efd, .events = POLLIN };
    int n = poll(&p, 1, IRQ_TIMEOUT_MS);
    if (n <= 0)
        return n < 0 ? -errno : 0;
    uint64_t count;
    if (read(efd, &count, sizeof(count)) != sizeof(count))
        return -EIO;
    return (long)count;
}

static int phys_addr(const void *p, uint64_t *out)
{
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    long page = sysconf(_SC_PAGESIZE);
    uint64_t entry = 0;
    ssize_t n = pread(fd, &entry, sizeof(entry), (off_t)((uintptr_t)p / (uintptr_t)page * 8));
    close(fd);
    if (n != sizeof(entry))
        return -EIO;
    uint64_t pfn = entry & ((1ull << 55) - 1);
    if (!(entry >> 63) || !pfn) /* not present, or PFN hidden (no CAP_SYS_ADMIN) */
        return -EPERM;
    *out = pfn * (uint64_t)page + (uintptr_t)p % (uintptr_t)page;
    return 0;
}

static void check_irq(const struct vfio *v)
{
    uint32_t before = reg_read(v, REG_IRQ_COUNT);
    int err = reg_write(v, REG_IRQ_RAISE, 0);
    long n = err ? err : wait_irq(v->efd);
    if (n > 0)
        check(true, "msix-irq", "vector 0 delivered (count %ld)", n);
    else if (n == 0)
        check(false, "msix-irq", "no interrupt within %d ms", IRQ_TIMEOUT_MS);
    else
        check(false, "msix-irq", "%s", strerror((int)-n));
    uint32_t after = reg_read(v, REG_IRQ_COUNT);
    check(after == before + 1, "irq-count", "%u -> %u", before, after);
}

static void check_dma(const struct vfio *v)
{
    uint8_t *src = mmap(NULL, 2 * DMA_LEN, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED | MAP_POPULATE, -1, 0);
    if (!check(src != MAP_FAILED, "dma-buffer", "%s", src == MAP_FAILED ? strerror(errno) : ""))
        return;
    uint8_t *dst = src + DMA_LEN;
    uint32_t sum = 0;
    for (uint32_t i = 0; i < DMA_LEN; i++) {
        src[i] = (uint8_t)(i * 13 + 7);
        sum += src[i];
        dst[i] = 0;
    }
    uint64_t src_pa, dst_pa;
    int err = phys_addr(src, &src_pa);
    if (!err)
        err = phys_addr(dst, &dst_pa);
    if (err) {
        check(false, "dma-phys-addr", "%s", strerror(-err));
        goto out;
    }
    check(true, "dma-phys-addr", "src 0x%llx dst 0x%llx", (unsigned long long)src_pa,
          (unsigned long long)dst_pa);

    if ((err = reg_write(v, REG_DMA_SRC_LO, (uint32_t)src_pa)) ||
        (err = reg_write(v, REG_DMA_SRC_HI, (uint32_t)(src_pa >> 32))) ||
        (err = reg_write(v, REG_DMA_DST_LO, (uint32_t)dst_pa)) ||
        (err = reg_write(v, REG_DMA_DST_HI, (uint32_t)(dst_pa >> 32))) ||
        (err = reg_write(v, REG_DMA_LEN, DMA_LEN)) || (err = reg_write(v, REG_DMA_CMD, 1))) {
        check(false, "dma-program", "%s", strerror(-err));
        goto out;
    }
    long n = wait_irq(v->efd);
    if (n > 0)
        check(true, "dma-irq", "completion interrupt");
    else
        check(false, "dma-irq", "no completion interrupt within %d ms", IRQ_TIMEOUT_MS);
    uint32_t status = reg_read(v, REG_DMA_STATUS), dev_sum = reg_read(v, REG_DMA_SUM);
    check(status == 1, "dma-status", "0x%08x", status);
    size_t bad = DMA_LEN;
    for (size_t i = 0; i < DMA_LEN; i++)
        if (((volatile uint8_t *)dst)[i] != (src[i] ^ 0x5a)) {
            bad = i;
            break;
        }
    if (bad == DMA_LEN)
        check(true, "dma-data", "%u bytes = src ^ 0x5a", DMA_LEN);
    else
        check(false, "dma-data", "byte %zu is 0x%02x, want 0x%02x", bad, dst[bad], src[bad] ^ 0x5a);
    check(dev_sum == sum, "dma-sum", "device 0x%08x, expected 0x%08x", dev_sum, sum);
out:
    munmap(src, 2 * DMA_LEN);
}

void check_irq_and_dma(const struct guest_dev *d)
{
    struct vfio v = { .container = -1, .group = -1, .device = -1, .efd = -1 };
    int err = bind_vfio_pci(d);
    if (!check(!err, "vfio-bind", "%s", err ? strerror(-err) : "vfio-pci (no-IOMMU mode)"))
        return;
    err = open_vfio(d, &v);
    if (!check(!err, "vfio-open", "%s", err ? strerror(-err) : ""))
        goto out;

    struct vfio_irq_info msix = { .argsz = sizeof(msix), .index = VFIO_PCI_MSIX_IRQ_INDEX };
    err = ioctl(v.device, VFIO_DEVICE_GET_IRQ_INFO, &msix) < 0 ? -errno : 0;
    check(!err && msix.count == 4, "vfio-msix-count", "%u", err ? 0 : msix.count);

    if (!check(!enable_bus_master(&v), "bus-master", NULL))
        goto out;
    v.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    err = v.efd < 0 ? -errno : set_msix_eventfd(&v, v.efd);
    if (!check(!err, "msix-enable", "%s", err ? strerror(-err) : "vector 0 -> eventfd"))
        goto out;

    check_irq(&v);
    check_dma(&v);
    set_msix_eventfd(&v, -1);
out:
    if (v.efd >= 0)
        close(v.efd);
    if (v.device >= 0)
        close(v.device);
    if (v.group >= 0)
        close(v.group);
    if (v.container >= 0)
        close(v.container);
}
