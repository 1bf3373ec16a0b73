/*
 * ufio-guest-test: the program the e2e initramfs runs inside the guest.
 * Output protocol, one line each on the console:
 *   UFIO-E2E: ok <check> [detail]       UFIO-E2E: not ok <check> <why>
 *   UFIO-E2E: # <note>
 *   UFIO-E2E: PASS                      UFIO-E2E: FAIL <reason>   (exactly one, last)
 * "ufio-guest-test vblk ..." runs the virtio-blk checks instead (guest-vblk.c),
 * "ufio-guest-test swl" the sample device's workload under handovers (guest-swl.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest.h"

static unsigned n_ok, n_fail;
static char first_failure[160];

static void vreport(const char *prefix, const char *name, const char *fmt, va_list ap)
{
    char detail[256] = "";
    if (fmt)
        vsnprintf(detail, sizeof(detail), fmt, ap);
    printf("UFIO-E2E: %s%s%s%s\n", prefix, name, detail[0] ? " " : "", detail);
    fflush(stdout);
}

bool check(bool ok, const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(ok ? "ok " : "not ok ", name, fmt, ap);
    va_end(ap);
    if (ok) {
        n_ok++;
    } else {
        if (!n_fail)
            snprintf(first_failure, sizeof(first_failure), "%s", name);
        n_fail++;
    }
    return ok;
}

void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport("#", "", fmt, ap);
    va_end(ap);
}

int read_sysfs_ulong(const char *dir, const char *file, unsigned long *out)
{
    char path[256], buf[64];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    int err = n < 0 ? -errno : 0;
    close(fd);
    if (err)
        return err;
    buf[n] = 0;
    char *end;
    errno = 0;
    *out = strtoul(buf, &end, 0);
    if (errno || end == buf)
        return -EINVAL;
    return 0;
}

int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int err = n < 0 ? -errno : (size_t)n != len ? -EIO : 0;
    if (close(fd) < 0 && !err)
        err = -errno;
    return err;
}

int verdict(const char *fatal)
{
    note("%u checks passed, %u failed", n_ok, n_fail);
    if (fatal)
        printf("UFIO-E2E: FAIL %s\n", fatal);
    else if (n_fail)
        printf("UFIO-E2E: FAIL %u check(s) failed, first: %s\n", n_fail, first_failure);
    else
        printf("UFIO-E2E: PASS\n");
    fflush(stdout);
    return fatal || n_fail ? 1 : 0;
}

int main(int argc, char **argv)
{
    static struct guest_dev dev;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && !strcmp(argv[1], "vblk"))
        return vblk_main(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "swl"))
        return swl_main();
    note("ufio guest test starting");

    int err = find_device(&dev);
    if (err) {
        check(false, "device-present", "no %04x:%04x under /sys/bus/pci/devices (%s)",
              SAMPLE_VENDOR, SAMPLE_DEVICE, strerror(-err));
        printf("UFIO-E2E: FAIL device not found\n");
        fflush(stdout);
        return 1;
    }
    check(true, "device-present", "%s", dev.name);

    check_identity(&dev);
    check_capabilities(&dev);
    check_bars(&dev);
    /* MSI-X and DMA through vfio-pci; then INTx through uio_pci_generic,
     * which also does the DMA when there is no IOMMU for vfio to use. */
    bool iommu = false;
    bool vfio_done = check_vfio(&dev, &iommu);
    check_uio(&dev, !iommu && !vfio_done);

    return verdict(NULL);
}
