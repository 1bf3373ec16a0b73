/*
 * The virtio-blk part of the real-guest test: the guest's own virtio_pci and
 * virtio_blk drivers run the device (ufio-virtio-blk through vfio-user-pci,
 * or QEMU's built-in virtio-blk-pci for comparison); this program checks
 * what the drivers made of it and moves data through the block device with
 * O_DIRECT, so every byte crosses the device.
 *
 *   ufio-guest-test vblk write   DISK_BYTES SERIAL   first boot: identity, write + read back, bench
 *   ufio-guest-test vblk verify  DISK_BYTES SERIAL   second boot: the first boot's data is there; bench
 *   ufio-guest-test vblk builtin DISK_BYTES SERIAL   QEMU's virtio-blk on the same file: data + bench
 * (the bench rewrites its area with the same data, so the image stays predictable)
 *   ufio-guest-test vblk expect  DISK_BYTES          (on the host) the disk image a write boot leaves
 *   ufio-guest-test vblk workload DISK_BYTES SERIAL  write-and-verify until the host says stop (guest-wv.c)
 *   ufio-guest-test vblk wvcheck IMAGE               (on the host) the image matches its manifest
 *
 * Disk layout: a pattern area at PATTERN_OFF, a bench area at BENCH_OFF; the
 * rest stays as the host created it (zeros).
 */
#define _GNU_SOURCE /* O_DIRECT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "guest.h"

#define VIRTIO_VENDOR 0x1af4
#define VIRTIO_BLK_MODERN 0x1042
#define VIRTIO_BLK_TRANSITIONAL 0x1001

#define MiB (1024u * 1024u)
#define PATTERN_OFF 0ull
#define PATTERN_LEN (4ull * MiB)
#define BENCH_OFF (8ull * MiB)
#define BENCH_LEN (16ull * MiB)
#define BENCH_BLOCK MiB
#define BENCH_PASSES 4 /* over the area, so the figure is not one 20 ms sample */
#define DISK_MIN (BENCH_OFF + BENCH_LEN)

struct vblk_dev {
    char name[64];
    char sysfs[128];
    uint8_t cfg[256];
    unsigned long device;
    char virtio[32]; /* "virtio0" */
    char disk[32];   /* "vda" */
};

/* ---- data: deterministic, so the host can recompute the image ---------------- */

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Pattern area: every 8-byte word is a function of its disk offset. */
static void fill_pattern(uint8_t *buf, uint64_t disk_off, size_t len)
{
    for (size_t i = 0; i < len; i += 8) {
        uint64_t w = mix64((disk_off + i) ^ 0x5eedull);
        memcpy(buf + i, &w, 8);
    }
}

/* Bench area: one block's template repeated, each block stamped with its
 * offset so a misplaced block is caught. */
static void fill_bench(uint8_t *buf, uint64_t disk_off, size_t len)
{
    for (size_t i = 0; i < len; i += 8) {
        uint64_t o = disk_off + i;
        uint64_t w = o % BENCH_BLOCK == 0 ? o : mix64((o % BENCH_BLOCK) ^ 0xbe7cull);
        memcpy(buf + i, &w, 8);
    }
}

static uint8_t *aligned_alloc_or_null(size_t len)
{
    void *p = NULL;
    return posix_memalign(&p, 4096, len) ? NULL : p;
}

/* ---- finding the device and what the drivers made of it ------------------------ */

static bool read_text(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0)
        return false;
    buf[n] = 0;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = 0;
    return true;
}

static bool link_base(const char *path, char *buf, size_t cap)
{
    char target[256];
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n < 0)
        return false;
    target[n] = 0;
    const char *b = strrchr(target, '/');
    b = b ? b + 1 : target;
    size_t len = strlen(b);
    if (len >= cap)
        return false;
    memcpy(buf, b, len + 1);
    return true;
}

/* The first entry of dir whose name starts with prefix. */
static bool find_entry(const char *dir, const char *prefix, char *out, size_t cap)
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        if (!strncmp(e->d_name, prefix, strlen(prefix)) && strlen(e->d_name) < cap) {
            snprintf(out, cap, "%s", e->d_name);
            found = true;
        }
    }
    closedir(d);
    return found;
}

static int find_virtio_blk(struct vblk_dev *v)
{
    DIR *dir = opendir("/sys/bus/pci/devices");
    if (!dir)
        return -errno;
    int err = -ENODEV;
    struct dirent *e;
    while (err && (e = readdir(dir))) {
        if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof(v->name))
            continue;
        char path[sizeof(v->sysfs)];
        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s", e->d_name);
        unsigned long vendor, device;
        if (read_sysfs_ulong(path, "vendor", &vendor) || read_sysfs_ulong(path, "device", &device))
            continue;
        if (vendor == VIRTIO_VENDOR && (device == VIRTIO_BLK_MODERN || device == VIRTIO_BLK_TRANSITIONAL)) {
            snprintf(v->name, sizeof(v->name), "%s", e->d_name);
            snprintf(v->sysfs, sizeof(v->sysfs), "%s", path);
            v->device = device;
            err = 0;
        }
    }
    closedir(dir);
    if (err)
        return err;
    char path[sizeof(v->sysfs) + 16];
    snprintf(path, sizeof(path), "%s/config", v->sysfs);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = pread(fd, v->cfg, sizeof(v->cfg), 0);
    close(fd);
    return n == (ssize_t)sizeof(v->cfg) ? 0 : -EIO;
}

/* The block device appears once virtio_blk has probed (and read the partition table). */
static bool wait_for_disk(struct vblk_dev *v, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        char dir[sizeof(v->sysfs) + 48];
        if (find_entry(v->sysfs, "virtio", v->virtio, sizeof(v->virtio))) {
            snprintf(dir, sizeof(dir), "%s/%s/block", v->sysfs, v->virtio);
            if (find_entry(dir, "vd", v->disk, sizeof(v->disk))) {
                char dev[64];
                snprintf(dev, sizeof(dev), "/dev/%s", v->disk);
                if (access(dev, R_OK) == 0)
                    return true;
            }
        }
        usleep(100 * 1000);
    }
    return false;
}

static uint16_t cfg16(const struct vblk_dev *v, unsigned off)
{
    return (uint16_t)(v->cfg[off] | v->cfg[off + 1] << 8);
}

static uint32_t cfg32(const struct vblk_dev *v, unsigned off)
{
    return cfg16(v, off) | (uint32_t)cfg16(v, off + 2) << 16;
}

/* ---- the lspci-like view -------------------------------------------------------------- */

static const char *virtio_cap_name(uint8_t type)
{
    static const char *const names[] = { "?", "CommonCfg", "Notify", "ISR", "DeviceCfg", "PCICfg", "SharedMemory", "Vendor" };
    return type < sizeof(names) / sizeof(names[0]) ? names[type] : "?";
}

static void print_caps(const struct vblk_dev *v)
{
    unsigned off = v->cfg[0x34] & ~3u;
    for (int hops = 0; off >= 0x40 && off < 0xff && hops < 48; hops++) {
        uint8_t id = v->cfg[off];
        if (id == 0x11) {
            uint16_t ctl = cfg16(v, off + 2);
            uint32_t t = cfg32(v, off + 4), p = cfg32(v, off + 8);
            note("lspci   Capabilities: [%02x] MSI-X: Enable%c Count=%u Masked%c Vector table: BAR=%u offset=%08x PBA: BAR=%u offset=%08x",
                 off, ctl & 0x8000 ? '+' : '-', (ctl & 0x7ff) + 1, ctl & 0x4000 ? '+' : '-', t & 7, t & ~7u, p & 7, p & ~7u);
        } else if (id == 0x09 && v->cfg[off + 2] >= 16) {
            uint8_t type = v->cfg[off + 3];
            char extra[48] = "";
            if (type == 2 && v->cfg[off + 2] >= 20)
                snprintf(extra, sizeof(extra), " multiplier=%08x", cfg32(v, off + 16));
            note("lspci   Capabilities: [%02x] Vendor Specific Information: VirtIO: %s BAR=%u offset=%08x size=%08x%s",
                 off, virtio_cap_name(type), v->cfg[off + 4], cfg32(v, off + 8), cfg32(v, off + 12), extra);
        } else if (id == 0x10) {
            note("lspci   Capabilities: [%02x] Express (v%u) %s", off, v->cfg[off + 2] & 0xf,
                 (v->cfg[off + 2] >> 4) == 0 ? "Endpoint" : "(other port type)");
        } else if (id == 0x05) {
            note("lspci   Capabilities: [%02x] MSI: Enable%c", off, cfg16(v, off + 2) & 1 ? '+' : '-');
        } else if (id == 0x01) {
            note("lspci   Capabilities: [%02x] Power Management version %u", off, cfg16(v, off + 2) & 7);
        } else {
            note("lspci   Capabilities: [%02x] id %02x", off, id);
        }
        off = v->cfg[off + 1] & ~3u;
    }
}

static void print_resources(const struct vblk_dev *v)
{
    char path[sizeof(v->sysfs) + 16];
    snprintf(path, sizeof(path), "%s/resource", v->sysfs);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    unsigned long long start, end, flags;
    for (int bar = 0; bar < 6 && fscanf(f, "%llx %llx %llx", &start, &end, &flags) == 3; bar++) {
        if (!end)
            continue;
        note("lspci   Region %d: Memory at %llx (%s, %sprefetchable) [size=%lluK]", bar, start,
             flags & 0x100000 ? "64-bit" : "32-bit", flags & 0x2000 ? "" : "non-", (end - start + 1) / 1024);
    }
    fclose(f);
}

static void print_interrupts(const struct vblk_dev *v)
{
    FILE *f = fopen("/proc/interrupts", "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof(line), f)) {
        if (strstr(line, v->virtio)) {
            line[strcspn(line, "\n")] = 0;
            char *p = line;
            while (*p == ' ')
                p++;
            note("lspci   Interrupt: %s", p);
        }
    }
    fclose(f);
}

static void print_lspci_view(const struct vblk_dev *v)
{
    char drv[64] = "none", vdrv[64] = "none", path[sizeof(v->sysfs) + 64];
    snprintf(path, sizeof(path), "%s/driver", v->sysfs);
    link_base(path, drv, sizeof(drv));
    snprintf(path, sizeof(path), "%s/%s/driver", v->sysfs, v->virtio);
    link_base(path, vdrv, sizeof(vdrv));
    note("lspci %s Mass storage controller [%02x%02x]: Red Hat, Inc. Virtio %s block device [%04x:%04x] (rev %02x)",
         v->name, v->cfg[0x0b], v->cfg[0x0a], v->device == VIRTIO_BLK_MODERN ? "1.0" : "(transitional)",
         cfg16(v, 0), cfg16(v, 2), v->cfg[8]);
    note("lspci   Subsystem: [%04x:%04x], prog-if %02x, header type %02x, status %04x, command %04x",
         cfg16(v, 0x2c), cfg16(v, 0x2e), v->cfg[9], v->cfg[0x0e], cfg16(v, 6), cfg16(v, 4));
    print_resources(v);
    print_caps(v);
    note("lspci   Kernel driver in use: %s; %s: driver %s, disk %s", drv, v->virtio, vdrv, v->disk);
    print_interrupts(v);
}

/* ---- checks --------------------------------------------------------------------------- */

/* Walks the capability list for the virtio structures the driver needs. */
static void check_ufio_identity(const struct vblk_dev *v)
{
    check(v->device == VIRTIO_BLK_MODERN, "vblk-device-id", "%04lx", v->device);
    unsigned long class = 0, rev = 0, svendor = 0, sdevice = 0;
    int err = read_sysfs_ulong(v->sysfs, "class", &class);
    check(!err && class == 0x018000, "vblk-class", "0x%06lx", class);
    err = read_sysfs_ulong(v->sysfs, "revision", &rev);
    check(!err && rev == 1, "vblk-revision", "%lu", rev);
    err = read_sysfs_ulong(v->sysfs, "subsystem_vendor", &svendor);
    check(!err && svendor == VIRTIO_VENDOR, "vblk-subsys-vendor", "0x%04lx", svendor);
    err = read_sysfs_ulong(v->sysfs, "subsystem_device", &sdevice);
    check(!err && sdevice >= 0x40, "vblk-subsys-device", "0x%04lx (>= 0x40)", sdevice);
    unsigned seen = 0, msix = 0;
    unsigned off = v->cfg[0x34] & ~3u;
    for (int hops = 0; off >= 0x40 && off < 0xff && hops < 48; hops++) {
        if (v->cfg[off] == 0x09 && v->cfg[off + 2] >= 16 && v->cfg[off + 3] >= 1 && v->cfg[off + 3] <= 5)
            seen |= 1u << v->cfg[off + 3];
        if (v->cfg[off] == 0x11)
            msix = (cfg16(v, off + 2) & 0x7ff) + 1;
        off = v->cfg[off + 1] & ~3u;
    }
    check(seen == 0x3e, "vblk-virtio-caps", "common, notify, ISR, device and PCI cfg (mask 0x%x)", seen);
    check(msix == 2, "vblk-msix-cap", "%u vectors", msix);
}

static void check_binding(const struct vblk_dev *v, uint64_t disk_bytes, const char *serial)
{
    char buf[128] = "", path[sizeof(v->sysfs) + 64];
    snprintf(path, sizeof(path), "%s/driver", v->sysfs);
    check(link_base(path, buf, sizeof(buf)) && !strcmp(buf, "virtio-pci"), "vblk-bound-virtio-pci", "%s", buf);
    snprintf(path, sizeof(path), "%s/%s/driver", v->sysfs, v->virtio);
    buf[0] = 0;
    check(link_base(path, buf, sizeof(buf)) && !strcmp(buf, "virtio_blk"), "vblk-bound-virtio-blk", "%s as %s", buf, v->disk);
    snprintf(path, sizeof(path), "/sys/block/%s", v->disk);
    unsigned long sectors = 0;
    int err = read_sysfs_ulong(path, "size", &sectors);
    check(!err && sectors * 512 == disk_bytes, "vblk-capacity", "%lu sectors", sectors);
    /* reading the serial makes virtio_blk send a GET_ID request */
    snprintf(path, sizeof(path), "/sys/block/%s/serial", v->disk);
    buf[0] = 0;
    check(read_text(path, buf, sizeof(buf)) && !strcmp(buf, serial), "vblk-serial-get-id", "'%s'", buf);
    FILE *f = fopen("/proc/interrupts", "r");
    bool msix = false;
    char line[256];
    while (f && fgets(line, sizeof(line), f))
        msix |= strstr(line, v->virtio) && strstr(line, "req.0") && strstr(line, "MSI");
    if (f)
        fclose(f);
    check(msix, "vblk-msix-in-use", "%s-req.0 on an MSI-X vector", v->virtio);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* O_DIRECT transfer of len bytes at off in blocks; seconds taken, or -1. */
static double direct_io(int fd, uint8_t *buf, uint64_t off, uint64_t len, bool write)
{
    double t0 = now_s();
    for (uint64_t done = 0; done < len; done += BENCH_BLOCK) {
        size_t n = len - done < BENCH_BLOCK ? (size_t)(len - done) : BENCH_BLOCK;
        ssize_t got = write ? pwrite(fd, buf + done, n, (off_t)(off + done)) : pread(fd, buf + done, n, (off_t)(off + done));
        if (got != (ssize_t)n) {
            note("%s at %llu: %s", write ? "pwrite" : "pread", (unsigned long long)(off + done),
                 got < 0 ? strerror(errno) : "short");
            return -1;
        }
    }
    return now_s() - t0;
}

/* First differing offset, or -1 when equal. */
static long long first_diff(const uint8_t *a, const uint8_t *b, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (a[i] != b[i])
            return (long long)i;
    return -1;
}

static void check_data(int fd, const char *mode, const char *who)
{
    uint8_t *want = aligned_alloc_or_null(PATTERN_LEN), *got = aligned_alloc_or_null(PATTERN_LEN);
    if (!check(want && got, "vblk-buffers", NULL))
        goto out;
    fill_pattern(want, PATTERN_OFF, PATTERN_LEN);
    if (!strcmp(mode, "write")) {
        check(direct_io(fd, want, PATTERN_OFF, PATTERN_LEN, true) >= 0, "vblk-write-pattern", "4 MiB, O_DIRECT");
        /* fsync of a block device sends a FLUSH to a device with VIRTIO_BLK_F_FLUSH */
        check(fsync(fd) == 0, "vblk-flush", "fsync: %s", strerror(errno));
    }
    memset(got, 0, PATTERN_LEN);
    bool rd = direct_io(fd, got, PATTERN_OFF, PATTERN_LEN, false) >= 0;
    long long d = rd ? first_diff(want, got, PATTERN_LEN) : 0;
    const char *name = !strcmp(mode, "write") ? "vblk-read-back" : "vblk-read-previous-boot";
    if (d < 0)
        check(rd, name, "4 MiB via %s, equal", who);
    else
        check(false, name, "4 MiB via %s: %s at %lld", who, rd ? "first difference" : "read failed", d);
out:
    free(want);
    free(got);
}

/* BENCH_PASSES sequential passes over the bench area; seconds, or -1. */
static double bench_passes(int fd, uint8_t *buf, bool write)
{
    double total = 0;
    for (int i = 0; i < BENCH_PASSES; i++) {
        double t = direct_io(fd, buf, BENCH_OFF, BENCH_LEN, write);
        if (t < 0)
            return -1;
        total += t;
    }
    return total;
}

/* Sequential O_DIRECT throughput over the bench area, verified afterwards. */
static void bench(int fd, const char *who)
{
    uint8_t *want = aligned_alloc_or_null(BENCH_LEN), *got = aligned_alloc_or_null(BENCH_LEN);
    const double mib = (double)BENCH_LEN * BENCH_PASSES / MiB;
    if (!check(want && got, "vblk-bench-buffers", NULL))
        goto out;
    fill_bench(want, BENCH_OFF, BENCH_LEN);
    /* the same data every time, so the disk image stays predictable */
    double t = bench_passes(fd, want, true);
    if (check(t > 0 && fsync(fd) == 0, "vblk-bench-write", "%.0f MiB in 1 MiB O_DIRECT writes: %.3f s", mib, t))
        note("bench %s seq-write %.1f MiB/s", who, mib / t);
    memset(got, 0, BENCH_LEN);
    t = bench_passes(fd, got, false);
    long long d = t > 0 ? first_diff(want, got, BENCH_LEN) : 0;
    if (check(t > 0 && d < 0, "vblk-bench-read", "%.0f MiB in 1 MiB O_DIRECT reads: %.3f s, data %s", mib, t,
              d < 0 ? "verified" : "DIFFERS"))
        note("bench %s seq-read %.1f MiB/s", who, mib / t);
out:
    free(want);
    free(got);
}

/* On the host: the disk image a write boot leaves, to stdout. */
static int write_expected(uint64_t disk_bytes)
{
    static uint8_t buf[MiB];
    for (uint64_t off = 0; off < disk_bytes; off += sizeof(buf)) {
        size_t n = disk_bytes - off < sizeof(buf) ? (size_t)(disk_bytes - off) : sizeof(buf);
        memset(buf, 0, n);
        if (off - PATTERN_OFF < PATTERN_LEN)
            fill_pattern(buf, off, n);
        else if (off - BENCH_OFF < BENCH_LEN)
            fill_bench(buf, off, n);
        if (fwrite(buf, 1, n, stdout) != n)
            return 1;
    }
    return fflush(stdout) ? 1 : 0;
}

int vblk_main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *mode = argv[0];
    if (!strcmp(mode, "wvcheck"))
        return wv_check_image(argv[1]);
    uint64_t disk_bytes = strtoull(argv[1], NULL, 0);
    if (disk_bytes < DISK_MIN || disk_bytes % MiB)
        return 2;
    if (!strcmp(mode, "expect"))
        return write_expected(disk_bytes);
    bool workload = !strcmp(mode, "workload");
    if (argc < 3 || (strcmp(mode, "write") && strcmp(mode, "verify") && strcmp(mode, "builtin") && !workload))
        return 2;
    const char *serial = argv[2];
    bool ufio = strcmp(mode, "builtin") != 0;
    const char *who = ufio ? "ufio-virtio-blk" : "qemu-virtio-blk";

    note("virtio-blk guest test (%s) starting", mode);
    static struct vblk_dev v;
    int err = find_virtio_blk(&v);
    if (!check(!err, "vblk-device-present", "%s", err ? strerror(-err) : v.name))
        return verdict("virtio-blk device not found");
    bool disk = wait_for_disk(&v, 10000);
    print_lspci_view(&v);
    if (ufio)
        check_ufio_identity(&v);
    if (!check(disk, "vblk-disk-present", "/dev/%s", disk ? v.disk : "?"))
        return verdict("no block device");
    check_binding(&v, disk_bytes, serial);

    char dev[64];
    snprintf(dev, sizeof(dev), "/dev/%s", v.disk);
    int fd = open(dev, O_RDWR | O_DIRECT | O_CLOEXEC);
    if (!check(fd >= 0, "vblk-open-direct", "%s: %s", dev, fd < 0 ? strerror(errno) : "O_DIRECT"))
        return verdict("cannot open the disk");
    if (workload)
        return wv_run(fd, disk_bytes);
    check_data(fd, mode, who);
    bench(fd, who);
    close(fd);
    note("interrupts after the test:");
    print_interrupts(&v);
    return verdict(NULL);
}
