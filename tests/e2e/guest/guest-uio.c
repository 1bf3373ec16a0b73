/*
 * INTx to guest userspace through uio_pci_generic: its handler masks the
 * line (command register INTx-disable) when the device's status register
 * shows an interrupt; userspace unmasks it by clearing that bit through the
 * config file (this kernel's uio_pci_generic has no irqcontrol, so a write
 * to /dev/uioN fails with ENOSYS). Registers are reached by mmap of the
 * sysfs resource0 file (iomem=relaxed).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest.h"

#define PCI_COMMAND_INTX_DISABLE 0x400

struct uio {
    int fd, cfg_fd;
    volatile uint32_t *bar0;
};

/* Set and clear bits of the command register through the config file. */
static int update_command(int cfg_fd, uint16_t set, uint16_t clear)
{
    uint16_t cmd;
    if (pread(cfg_fd, &cmd, 2, 4) != 2)
        return -EIO;
    cmd = (uint16_t)((cmd | set) & ~clear);
    return pwrite(cfg_fd, &cmd, 2, 4) == 2 ? 0 : -EIO;
}

static int uio_wr(void *ctx, uint32_t reg, uint32_t val)
{
    struct uio *u = ctx;
    u->bar0[reg / 4] = val;
    return 0;
}

static uint32_t uio_rd(void *ctx, uint32_t reg)
{
    struct uio *u = ctx;
    return u->bar0[reg / 4];
}

static long uio_wait(void *ctx)
{
    struct uio *u = ctx;
    uint32_t count;
    long n = poll_wait(u->fd, &count, sizeof(count));
    /* Unmask again for the next interrupt. */
    if (n > 0) {
        int err = update_command(u->cfg_fd, 0, PCI_COMMAND_INTX_DISABLE);
        if (err)
            return err;
    }
    return n;
}

static int open_uio(const struct guest_dev *d)
{
    char path[sizeof(d->sysfs) + 16];
    snprintf(path, sizeof(path), "%s/uio", d->sysfs);
    DIR *dir = opendir(path);
    if (!dir)
        return -errno;
    int fd = -ENOENT;
    struct dirent *e;
    while ((e = readdir(dir)))
        if (!strncmp(e->d_name, "uio", 3)) {
            char dev[64];
            snprintf(dev, sizeof(dev), "/dev/%.32s", e->d_name);
            fd = open(dev, O_RDWR | O_CLOEXEC);
            if (fd < 0)
                fd = -errno;
            break;
        }
    closedir(dir);
    return fd;
}

void check_uio(const struct guest_dev *d, bool dma)
{
    struct uio u = { .fd = -1, .cfg_fd = -1, .bar0 = MAP_FAILED };
    const struct dev_io io = { .tag = "intx", .ctx = &u, .rd = uio_rd, .wr = uio_wr,
                               .wait_irq = uio_wait };
    int err = bind_driver(d, "uio_pci_generic");
    if (!check(!err, "uio-bind", "%s", err ? strerror(-err) : "uio_pci_generic"))
        return;
    u.fd = open_uio(d);
    if (!check(u.fd >= 0, "uio-open", "%s", u.fd >= 0 ? "" : strerror(-u.fd)))
        return;

    char path[sizeof(d->sysfs) + 16];
    snprintf(path, sizeof(path), "%s/resource0", d->sysfs);
    int bar_fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
    if (bar_fd >= 0) {
        u.bar0 = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, bar_fd, 0);
        close(bar_fd);
    }
    if (!check(u.bar0 != MAP_FAILED, "uio-bar0-mmap", "%s", u.bar0 != MAP_FAILED ? "" : strerror(errno)))
        goto out;
    snprintf(path, sizeof(path), "%s/config", d->sysfs);
    u.cfg_fd = open(path, O_RDWR | O_CLOEXEC);
    /* memory space + bus master on, INTx unmasked */
    err = u.cfg_fd < 0 ? -errno : update_command(u.cfg_fd, 0x6, PCI_COMMAND_INTX_DISABLE);
    if (!check(!err, "uio-command", "%s", err ? strerror(-err) : "bus master on, INTx unmasked"))
        goto out;

    check_irq_raise(&io);
    if (dma) {
        uint8_t *buf = dma_buffer_alloc();
        uint64_t src = 0, dst = 0;
        err = buf ? phys_addr(buf, &src) : -ENOMEM;
        if (!err)
            err = phys_addr(buf + DMA_LEN, &dst);
        if (check(!err, "intx-dma-phys-addr", "%s", err ? strerror(-err) : "no IOMMU: bus = physical"))
            check_dma_xor(&io, buf, src, dst);
        dma_buffer_free(buf);
    }
out:
    if (u.bar0 != MAP_FAILED)
        munmap((void *)u.bar0, 4096);
    if (u.cfg_fd >= 0)
        close(u.cfg_fd);
    close(u.fd);
}
