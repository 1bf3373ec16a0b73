/*
 * Checks that reach the device without any driver: sysfs attributes, the
 * config file (the guest kernel's config accessors, i.e. QEMU's emulation
 * of the config space the server advertises) and the resourceN files
 * (BAR accesses; memory BARs need the kernel booted with iomem=relaxed).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest.h"

#define PCI_CAP_PM 0x01
#define PCI_CAP_MSI 0x05
#define PCI_CAP_VENDOR 0x09
#define PCI_CAP_PCIE 0x10
#define PCI_CAP_MSIX 0x11
#define PCI_EXT_CAP_DSN 0x0003

#define IORESOURCE_IO 0x100ul
#define IORESOURCE_MEM 0x200ul
#define IORESOURCE_MEM_64 0x100000ul

static uint16_t cfg16(const struct guest_dev *d, size_t off)
{
    return off + 2 <= d->cfg_len ? (uint16_t)(d->cfg[off] | d->cfg[off + 1] << 8) : 0xffff;
}

static uint32_t cfg32(const struct guest_dev *d, size_t off)
{
    return off + 4 <= d->cfg_len ? (uint32_t)cfg16(d, off) | (uint32_t)cfg16(d, off + 2) << 16
                                 : 0xffffffffu;
}

int find_device(struct guest_dev *d)
{
    DIR *dir = opendir("/sys/bus/pci/devices");
    if (!dir)
        return -errno;
    int err = -ENODEV;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof(d->name))
            continue;
        char path[sizeof(d->sysfs)];
        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s", e->d_name);
        unsigned long vendor, device;
        if (read_sysfs_ulong(path, "vendor", &vendor) || read_sysfs_ulong(path, "device", &device))
            continue;
        if (vendor == SAMPLE_VENDOR && device == SAMPLE_DEVICE) {
            snprintf(d->name, sizeof(d->name), "%s", e->d_name);
            snprintf(d->sysfs, sizeof(d->sysfs), "%s", path);
            err = 0;
            break;
        }
    }
    closedir(dir);
    if (err)
        return err;

    char path[sizeof(d->sysfs) + 16];
    snprintf(path, sizeof(path), "%s/config", d->sysfs);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = pread(fd, d->cfg, sizeof(d->cfg), 0);
    err = n < 0 ? -errno : 0;
    close(fd);
    d->cfg_len = n > 0 ? (size_t)n : 0;
    return err;
}

void check_identity(struct guest_dev *d)
{
    static const struct { const char *file, *check; unsigned long want; int width; } attrs[] = {
        { "class", "sysfs-class", SAMPLE_CLASS, 6 },
        { "revision", "sysfs-revision", SAMPLE_REVISION, 2 },
        { "subsystem_vendor", "sysfs-subsystem-vendor", SAMPLE_VENDOR, 4 },
        { "subsystem_device", "sysfs-subsystem-device", SAMPLE_DEVICE, 4 },
    };
    for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
        unsigned long v = 0;
        int err = read_sysfs_ulong(d->sysfs, attrs[i].file, &v);
        if (err)
            check(false, attrs[i].check, "%s", strerror(-err));
        else
            check(v == attrs[i].want, attrs[i].check, "0x%0*lx", attrs[i].width, v);
    }

    check(d->cfg_len == 4096, "config-size", "%zu bytes (PCIe extended space reachable)", d->cfg_len);
    check(cfg16(d, 0x00) == SAMPLE_VENDOR && cfg16(d, 0x02) == SAMPLE_DEVICE, "config-ids",
          "%04x:%04x", cfg16(d, 0x00), cfg16(d, 0x02));
    uint32_t class_rev = cfg32(d, 0x08);
    check(class_rev == (SAMPLE_CLASS << 8 | SAMPLE_REVISION), "config-class-revision", "0x%08x",
          class_rev);
    check((d->cfg[0x0e] & 0x7f) == 0, "config-header-type", "0x%02x", d->cfg[0x0e]);
    check(cfg16(d, 0x2c) == SAMPLE_VENDOR && cfg16(d, 0x2e) == SAMPLE_DEVICE, "config-subsystem",
          "%04x:%04x", cfg16(d, 0x2c), cfg16(d, 0x2e));
    check(cfg16(d, 0x06) & 0x10, "config-status-cap-list", "status 0x%04x", cfg16(d, 0x06));
    check(d->cfg[0x3d] == 1, "config-interrupt-pin", "%u (1 = INTA)", d->cfg[0x3d]);
}

static void check_cap_bodies(const struct guest_dev *d, uint8_t id, size_t p)
{
    uint16_t ctl = cfg16(d, p + 2);
    switch (id) {
    case PCI_CAP_MSI:
        check((ctl & 0x0e) == 0 && (ctl & 0x80) && (ctl & 0x100), "cap-msi-flags",
              "control 0x%04x (1 vector, 64-bit, per-vector mask)", ctl);
        break;
    case PCI_CAP_MSIX: {
        uint32_t table = cfg32(d, p + 4), pba = cfg32(d, p + 8);
        check((ctl & 0x7ff) + 1 == 4, "cap-msix-table-size", "%u", (ctl & 0x7ff) + 1);
        check(table == 4 && pba == (0x40 | 4), "cap-msix-location",
              "table BIR %u off 0x%x, PBA BIR %u off 0x%x", table & 7, table & ~7u, pba & 7, pba & ~7u);
        break;
    }
    case PCI_CAP_PCIE:
        check((ctl & 0xf) == 2 && ((ctl >> 4) & 0xf) == 0, "cap-pcie-endpoint",
              "version %u type %u", ctl & 0xf, (ctl >> 4) & 0xf);
        break;
    case PCI_CAP_VENDOR: {
        uint8_t len = d->cfg[p + 2];
        bool body = len >= 7 && p + len <= 256 && !memcmp(&d->cfg[p + 3], "ufio", 4);
        check(body, "cap-vendor-body", "length %u, body %.4s", len,
              p + 7 <= 256 ? (const char *)&d->cfg[p + 3] : "?");
        break;
    }
    default:
        break;
    }
}

void check_capabilities(const struct guest_dev *d)
{
    static const struct { uint8_t id; const char *name; } want[] = {
        { PCI_CAP_PM, "cap-pm" }, { PCI_CAP_MSI, "cap-msi" }, { PCI_CAP_MSIX, "cap-msix" },
        { PCI_CAP_PCIE, "cap-pcie" }, { PCI_CAP_VENDOR, "cap-vendor" },
    };
    size_t found[sizeof(want) / sizeof(want[0])] = { 0 };
    char list[256] = "";
    size_t used = 0;
    bool well_formed = true;

    /* 48 = the most 4-byte-aligned capabilities that fit after the header. */
    uint8_t p = d->cfg[0x34] & 0xfc;
    for (int n = 0; p && n < 48; n++) {
        if (p < 0x40) {
            well_formed = false;
            break;
        }
        uint8_t id = d->cfg[p];
        used += (size_t)snprintf(list + used, used < sizeof(list) ? sizeof(list) - used : 0,
                                 "%s0x%02x@0x%02x", used ? " " : "", id, p);
        if (used >= sizeof(list))
            used = sizeof(list) - 1;
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
            if (want[i].id == id && !found[i])
                found[i] = p;
        p = d->cfg[p + 1] & 0xfc;
    }
    if (p)
        well_formed = false;
    check(well_formed, "cap-list-walk", "%s", list);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        check(found[i] != 0, want[i].name, "at 0x%02zx", found[i]);
        if (found[i])
            check_cap_bodies(d, want[i].id, found[i]);
    }

    if (d->cfg_len < 4096) {
        check(false, "ext-cap-dsn", "extended config space not readable");
        return;
    }
    bool dsn = false;
    uint64_t serial = 0;
    size_t e = 0x100;
    for (int n = 0; e >= 0x100 && e + 4 <= d->cfg_len && n < 960; n++) {
        uint32_t hdr = cfg32(d, e);
        if (hdr == 0 || hdr == 0xffffffffu)
            break;
        if ((hdr & 0xffff) == PCI_EXT_CAP_DSN && e + 12 <= d->cfg_len) {
            serial = cfg32(d, e + 4) | (uint64_t)cfg32(d, e + 8) << 32;
            dsn = true;
            break;
        }
        e = (hdr >> 20) & 0xffc;
        if (!e)
            break;
    }
    check(dsn && serial == SAMPLE_DSN, "ext-cap-dsn", "serial 0x%016llx", (unsigned long long)serial);
}

/* The sysfs "resource" file: one "start end flags" line per BAR. */
static void check_bar_layout(const struct guest_dev *d)
{
    static const struct { unsigned long size, type; } want[6] = {
        { 4096, IORESOURCE_MEM }, { 256, IORESOURCE_IO }, { 65536, IORESOURCE_MEM },
        { 0, 0 }, { 4096, IORESOURCE_MEM }, { 0, 0 },
    };
    char path[sizeof(d->sysfs) + 16], desc[160] = "";
    snprintf(path, sizeof(path), "%s/resource", d->sysfs);
    FILE *f = fopen(path, "re");
    bool ok = f != NULL;
    size_t used = 0;
    for (int bar = 0; ok && bar < 6; bar++) {
        unsigned long long start, end, flags;
        if (fscanf(f, "%llx %llx %llx", &start, &end, &flags) != 3) {
            ok = false;
            break;
        }
        unsigned long long size = flags ? end - start + 1 : 0;
        unsigned long type = (unsigned long)flags & (IORESOURCE_IO | IORESOURCE_MEM);
        if (size != want[bar].size || type != want[bar].type || (flags & IORESOURCE_MEM_64))
            ok = false;
        if (size && used < sizeof(desc))
            used += (size_t)snprintf(desc + used, sizeof(desc) - used, "%sBAR%d %s %llu", used ? ", " : "",
                                     bar, type == IORESOURCE_IO ? "io" : "mem32", size);
    }
    if (f)
        fclose(f);
    check(ok, "bar-layout", "%s", desc);
}

static volatile uint32_t *map_bar(const struct guest_dev *d, int bar, size_t size, int *fd_out)
{
    char path[sizeof(d->sysfs) + 16];
    snprintf(path, sizeof(path), "%s/resource%d", d->sysfs, bar);
    int fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int err = errno;
        close(fd);
        errno = err;
        return NULL;
    }
    *fd_out = fd;
    return p;
}

static void check_bar0(const struct guest_dev *d)
{
    int fd;
    volatile uint32_t *r = map_bar(d, 0, 4096, &fd);
    if (!check(r != NULL, "bar0-mmap", "%s", r ? "" : strerror(errno)))
        return;
    uint32_t id = r[REG_ID / 4], ver = r[REG_VERSION / 4];
    check(id == SAMPLE_ID, "bar0-id", "0x%08x", id);
    check(ver == 1, "bar0-version", "%u", ver);
    r[REG_SCRATCH / 4] = 0xdeadbeef;
    uint32_t s1 = r[REG_SCRATCH / 4];
    r[REG_SCRATCH / 4] = 0x12345678;
    uint32_t s2 = r[REG_SCRATCH / 4];
    check(s1 == 0xdeadbeef && s2 == 0x12345678, "bar0-scratch", "read back 0x%08x, 0x%08x", s1, s2);
    /* 0x80: past every register (0x38-0x44 are the digest and migration test registers) */
    uint32_t unused = r[0x80 / 4];
    r[0x80 / 4] = 0xffffffff;
    uint32_t unused2 = r[0x80 / 4];
    check(unused == 0 && unused2 == 0, "bar0-unassigned-reads-zero", "0x%08x, 0x%08x after write",
          unused, unused2);
    munmap((void *)r, 4096);
    close(fd);
}

static void check_bar1_io(const struct guest_dev *d)
{
    char path[sizeof(d->sysfs) + 16];
    snprintf(path, sizeof(path), "%s/resource1", d->sysfs);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (!check(fd >= 0, "bar1-open", "%s", fd >= 0 ? "" : strerror(errno)))
        return;
    uint32_t id = 0, w = 0xa5a5c3c3, back = 0;
    ssize_t n = pread(fd, &id, 4, 0);
    check(n == 4 && id == SAMPLE_ID, "bar1-io-id", "0x%08x (%zd)", id, n);
    ssize_t nw = pwrite(fd, &w, 4, 4);
    n = pread(fd, &back, 4, 4);
    check(nw == 4 && n == 4 && back == w, "bar1-io-scratch", "read back 0x%08x", back);
    /* sysfs turns a 1- or 2-byte pread into inb/inw: real drivers' byte-wide port I/O */
    uint8_t idb[4] = { 0 };
    bool bytes_ok = true;
    for (unsigned i = 0; i < 4; i++)
        bytes_ok = pread(fd, &idb[i], 1, i) == 1 && bytes_ok;
    check(bytes_ok && !memcmp(idb, "UFIO", 4), "bar1-io-inb", "%02x %02x %02x %02x", idb[0], idb[1], idb[2],
          idb[3]);
    uint16_t hw = 0x5aa5, hw_back = 0;
    nw = pwrite(fd, &hw, 2, 6);
    n = pread(fd, &hw_back, 2, 6);
    uint32_t whole = 0;
    ssize_t n4 = pread(fd, &whole, 4, 4);
    check(nw == 2 && n == 2 && hw_back == hw && n4 == 4 && whole == ((w & 0xffff) | 0x5aa50000u), "bar1-io-outw",
          "read back 0x%04x, dword 0x%08x", hw_back, whole);
    close(fd);
}

static void check_bar2_ram(const struct guest_dev *d)
{
    int fd;
    volatile uint32_t *r = map_bar(d, 2, 65536, &fd);
    if (!check(r != NULL, "bar2-mmap", "%s", r ? "" : strerror(errno)))
        return;
    volatile uint8_t *b = (volatile uint8_t *)r;
    size_t bad = 65536;
    for (size_t i = 0; i < 65536; i++)
        if (b[i] != (uint8_t)i) {
            bad = i;
            break;
        }
    if (bad == 65536)
        check(true, "bar2-initial-pattern", "byte i = i & 0xff");
    else
        check(false, "bar2-initial-pattern", "byte %zu = 0x%02x", bad, b[bad]);

    for (size_t i = 0; i < 65536 / 4; i++)
        r[i] = (uint32_t)(i * 2654435761u);
    bad = 65536;
    for (size_t i = 0; i < 65536 / 4; i++)
        if (r[i] != (uint32_t)(i * 2654435761u)) {
            bad = i * 4;
            break;
        }
    if (bad == 65536)
        check(true, "bar2-write-read", "64 KiB");
    else
        check(false, "bar2-write-read", "mismatch at byte %zu", bad);
    /* Leave the initial pattern so a rerun against the same server passes. */
    for (size_t i = 0; i < 65536; i++)
        b[i] = (uint8_t)i;
    munmap((void *)r, 65536);
    close(fd);
}

void check_bars(const struct guest_dev *d)
{
    check_bar_layout(d);
    check_bar0(d);
    check_bar1_io(d);
    check_bar2_ram(d);
}
