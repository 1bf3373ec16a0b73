/*
 * "swl": the sample device's continuous workload, for the handover test
 * (run.sh --workload N --sample): the guest drives ufio-sample through
 * vfio-pci while the host replaces the server process inside the windows it
 * marks (guest-window.c). Every step, each access timed:
 *   - SCRATCH written and read back (trapped BAR0 accesses);
 *   - IRQ_RAISE=3: vector 3's eventfd fires once, vector 0's stays quiet;
 *   - DMA_CMD=1 with source, destination and length programmed once at the
 *     start (so they must survive every handover): the completion interrupt
 *     (once), DMA_STATUS, DMA_SUM, and the destination = source XOR 0x5a;
 *   - IRQ_COUNT equal to the interrupts this program caused;
 *   - a word of BAR2's first half written (mmap'd: no message), another one
 *     checked, and one word of its second half checked.
 * BAR2's second half is written once before the first window and never
 * again; after "stop" all of BAR2 is compared with what was written, the
 * first interrupt after each window (the new process's) must have arrived,
 * and the kernel log must have no new line about errors, faults or resets.
 */
#include <errno.h>
#include <linux/vfio.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest.h"

#define SWL_IOVA 0x50000000ull
#define BAR2_LEN 65536u
#define BAR2_WORDS (BAR2_LEN / 4)
#define ROLL_WORDS (BAR2_WORDS / 2) /* the first half: written all along */

struct swl {
    struct vfio v;
    volatile uint32_t *bar2;
    uint8_t *dma; /* DMA_LEN source bytes, then DMA_LEN destination bytes, at SWL_IOVA */
    uint32_t rolling[ROLL_WORDS];
    uint32_t irq_expected, scratch;
    uint64_t steps, irqs, dmas, errors, after_window_irqs;
    char first_error[200];
    struct win win;
    uint64_t rng;
};

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint32_t next_rand(struct swl *s)
{
    s->rng = mix(s->rng);
    return (uint32_t)(s->rng >> 16);
}

/* The word written once at BAR2 word i of the second half. */
static uint32_t frozen_word(uint32_t i)
{
    return (uint32_t)mix(0xb2b2b2b2ull ^ i);
}

__attribute__((format(printf, 2, 3))) static void swl_error(struct swl *s, const char *fmt, ...);
static void swl_error(struct swl *s, const char *fmt, ...)
{
    if (!s->errors++) {
        va_list ap;
        va_start(ap, fmt);
        int n = snprintf(s->first_error, sizeof(s->first_error), "step %llu%s: ", (unsigned long long)s->steps,
                         s->win.in_window ? " (in a window)" : "");
        vsnprintf(s->first_error + n, sizeof(s->first_error) - (size_t)n, fmt, ap);
        va_end(ap);
    }
}

static bool t_wr(struct swl *s, uint32_t reg, uint32_t val)
{
    double t0 = now_us();
    ssize_t n = pwrite(s->v.device, &val, 4, (off_t)(s->v.bar0_off + reg));
    win_record(&s->win, now_us() - t0);
    if (n != 4)
        swl_error(s, "BAR0 write at 0x%x: %s", reg, n < 0 ? strerror(errno) : "short");
    return n == 4;
}

static bool t_rd(struct swl *s, uint32_t reg, uint32_t *val)
{
    double t0 = now_us();
    ssize_t n = pread(s->v.device, val, 4, (off_t)(s->v.bar0_off + reg));
    win_record(&s->win, now_us() - t0);
    if (n != 4)
        swl_error(s, "BAR0 read at 0x%x: %s", reg, n < 0 ? strerror(errno) : "short");
    return n == 4;
}

/* Waits for one interrupt on efd: its count (1 unless it fired more than once), 0 on timeout. */
static uint64_t wait_efd(int efd)
{
    struct pollfd p = { .fd = efd, .events = POLLIN };
    uint64_t count = 0;
    if (poll(&p, 1, IRQ_TIMEOUT_MS) != 1 || read(efd, &count, sizeof(count)) != sizeof(count))
        return 0;
    return count;
}

static bool efd_quiet(int efd)
{
    uint64_t count;
    return read(efd, &count, sizeof(count)) < 0 && errno == EAGAIN;
}

/* Writes reg = val and waits for the interrupt on efd, timed as one I/O. */
static bool raise_and_wait(struct swl *s, uint32_t reg, uint32_t val, int efd, const char *what)
{
    double t0 = now_us();
    ssize_t n = pwrite(s->v.device, &val, 4, (off_t)(s->v.bar0_off + reg));
    uint64_t count = n == 4 ? wait_efd(efd) : 0;
    win_record(&s->win, now_us() - t0);
    if (n != 4) {
        swl_error(s, "%s: BAR0 write at 0x%x: %s", what, reg, n < 0 ? strerror(errno) : "short");
        return false;
    }
    s->irq_expected++;
    if (count != 1) {
        if (count)
            swl_error(s, "%s: the interrupt fired %llu times", what, (unsigned long long)count);
        else
            swl_error(s, "%s: no interrupt within %d ms", what, IRQ_TIMEOUT_MS);
        return false;
    }
    s->irqs++;
    return true;
}

static void step_scratch(struct swl *s)
{
    uint32_t v = next_rand(s), got = 0;
    if (!t_wr(s, REG_SCRATCH, v))
        return;
    s->scratch = v;
    if (t_rd(s, REG_SCRATCH, &got) && got != v)
        swl_error(s, "SCRATCH reads 0x%08x, 0x%08x written", got, v);
}

static void step_irq(struct swl *s)
{
    bool ok = raise_and_wait(s, REG_IRQ_RAISE, 3, s->v.efd3, "IRQ_RAISE=3");
    if (ok && !efd_quiet(s->v.efd))
        swl_error(s, "IRQ_RAISE=3 signalled vector 0 too");
    /* the first interrupt after a window's end: raised by the process that took over */
    if (s->win.just_ended) {
        s->win.just_ended = false;
        if (ok)
            s->after_window_irqs++;
    }
}

static void step_dma(struct swl *s)
{
    uint8_t *src = s->dma;
    volatile uint8_t *dst = s->dma + DMA_LEN;
    uint32_t sum = 0, seed = next_rand(s);
    for (uint32_t i = 0; i < DMA_LEN; i += 4) {
        uint32_t w = (uint32_t)mix(seed ^ (uint64_t)i << 32);
        memcpy(src + i, &w, 4);
        sum += (w & 0xff) + (w >> 8 & 0xff) + (w >> 16 & 0xff) + (w >> 24);
    }
    memset((void *)dst, 0, DMA_LEN);
    if (!raise_and_wait(s, REG_DMA_CMD, 1, s->v.efd, "DMA"))
        return;
    uint32_t status = 0, dev_sum = 0;
    if (t_rd(s, REG_DMA_STATUS, &status) && status != 1)
        swl_error(s, "DMA_STATUS 0x%08x", status);
    if (t_rd(s, REG_DMA_SUM, &dev_sum) && dev_sum != sum)
        swl_error(s, "DMA_SUM 0x%08x, expected 0x%08x", dev_sum, sum);
    for (uint32_t i = 0; i < DMA_LEN; i++)
        if (dst[i] != (src[i] ^ 0x5a)) {
            swl_error(s, "DMA destination byte %u is 0x%02x, want 0x%02x", i, dst[i], src[i] ^ 0x5a);
            return;
        }
    s->dmas++;
}

static void step_bar2(struct swl *s)
{
    uint32_t i = next_rand(s) % ROLL_WORDS, v = next_rand(s);
    s->bar2[i] = v;
    s->rolling[i] = v;
    uint32_t r = next_rand(s) % ROLL_WORDS, f = ROLL_WORDS + next_rand(s) % (BAR2_WORDS - ROLL_WORDS);
    uint32_t got = s->bar2[r];
    if (got != s->rolling[r])
        swl_error(s, "BAR2 word %u is 0x%08x, 0x%08x written", r, got, s->rolling[r]);
    got = s->bar2[f];
    if (got != frozen_word(f))
        swl_error(s, "BAR2 word %u (written before the windows) is 0x%08x, want 0x%08x", f, got, frozen_word(f));
}

static void swl_step(struct swl *s)
{
    step_scratch(s);
    step_irq(s);
    step_dma(s);
    uint32_t count = 0;
    if (t_rd(s, REG_IRQ_COUNT, &count) && count != s->irq_expected)
        swl_error(s, "IRQ_COUNT %u, %u interrupts raised", count, s->irq_expected);
    step_bar2(s);
    s->steps++;
    win_step_done(&s->win);
}

static int map_bar2(struct swl *s)
{
    struct vfio_region_info r = { .argsz = sizeof(r), .index = VFIO_PCI_BAR2_REGION_INDEX };
    if (ioctl(s->v.device, VFIO_DEVICE_GET_REGION_INFO, &r) < 0)
        return -errno;
    if (!(r.flags & VFIO_REGION_INFO_FLAG_MMAP) || r.size != BAR2_LEN)
        return -ENOTSUP;
    void *p = mmap(NULL, BAR2_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, s->v.device, (off_t)r.offset);
    if (p == MAP_FAILED)
        return -errno;
    s->bar2 = p;
    return 0;
}

static int map_dma(struct swl *s)
{
    s->dma = dma_buffer_alloc();
    if (!s->dma)
        return -ENOMEM;
    struct vfio_iommu_type1_dma_map map = {
        .argsz = sizeof(map),
        .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
        .vaddr = (uintptr_t)s->dma, .iova = SWL_IOVA, .size = 2 * DMA_LEN,
    };
    if (ioctl(s->v.container, VFIO_IOMMU_MAP_DMA, &map) < 0)
        return -errno;
    /* programmed once: the registers must come through every handover */
    const uint64_t src = SWL_IOVA, dst = SWL_IOVA + DMA_LEN;
    return vfio_wr(&s->v, REG_DMA_SRC_LO, (uint32_t)src) || vfio_wr(&s->v, REG_DMA_SRC_HI, (uint32_t)(src >> 32)) ||
                   vfio_wr(&s->v, REG_DMA_DST_LO, (uint32_t)dst) ||
                   vfio_wr(&s->v, REG_DMA_DST_HI, (uint32_t)(dst >> 32)) || vfio_wr(&s->v, REG_DMA_LEN, DMA_LEN)
               ? -EIO
               : 0;
}

/* vfio-pci, MSI-X vectors 0 and 3, BAR2 mapped, the DMA buffer mapped and programmed. */
static bool swl_setup(struct swl *s, const struct guest_dev *d)
{
    int err = bind_driver(d, "vfio-pci");
    if (!check(!err, "swl-vfio-bind", "%s", err ? strerror(-err) : "vfio-pci"))
        return false;
    err = vfio_open_dev(d, &s->v);
    if (!err && s->v.noiommu)
        err = -ENOTSUP; /* run.sh gives this mode the emulated IOMMU */
    if (!check(!err, "swl-vfio-open", "%s", err ? strerror(-err) : "type1 IOMMU"))
        return false;
    err = vfio_enable_bus_master(&s->v);
    if (!err) {
        s->v.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        s->v.efd3 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        err = s->v.efd < 0 || s->v.efd3 < 0 ? -errno : vfio_set_msix(&s->v, true);
    }
    if (!check(!err, "swl-msix-enable", "%s", err ? strerror(-err) : "vectors 0 and 3 -> eventfds"))
        return false;
    err = map_bar2(s);
    if (!check(!err, "swl-bar2-mmap", "%s", err ? strerror(-err) : "64 KiB"))
        return false;
    err = map_dma(s);
    if (!check(!err, "swl-dma-setup", "%s", err ? strerror(-err) : "4 KiB -> 4 KiB at IOVA 0x50000000"))
        return false;
    uint32_t bad = BAR2_WORDS;
    for (uint32_t i = 0; i < BAR2_WORDS && bad == BAR2_WORDS; i++) {
        uint32_t b = i * 4 & 0xff;
        if (s->bar2[i] != (b | (b + 1) << 8 | (b + 2) << 16 | (uint32_t)(b + 3) << 24))
            bad = i;
    }
    check(bad == BAR2_WORDS, "swl-bar2-initial", "%s", bad == BAR2_WORDS ? "byte i = i & 0xff" : "differs");
    for (uint32_t i = 0; i < BAR2_WORDS; i++)
        s->bar2[i] = i < ROLL_WORDS ? (s->rolling[i] = (uint32_t)mix(i)) : frozen_word(i);
    uint32_t count = vfio_rd(&s->v, REG_IRQ_COUNT);
    s->irq_expected = count;
    return true;
}

static void swl_final_checks(struct swl *s)
{
    check(s->errors == 0, "swl-io", "%llu steps: %llu interrupts, %llu DMAs verified, %llu errors%s%s",
          (unsigned long long)s->steps, (unsigned long long)s->irqs, (unsigned long long)s->dmas,
          (unsigned long long)s->errors, s->errors ? ": " : "", s->first_error);
    check(s->win.windows > 0 && s->after_window_irqs == s->win.windows, "swl-irq-after-each-window",
          "%llu of %u windows followed by an MSI-X interrupt that arrived", (unsigned long long)s->after_window_irqs,
          s->win.windows);
    uint32_t count = vfio_rd(&s->v, REG_IRQ_COUNT), scratch = vfio_rd(&s->v, REG_SCRATCH);
    check(count == s->irq_expected, "swl-irq-count", "IRQ_COUNT %u, %u raised", count, s->irq_expected);
    check(scratch == s->scratch, "swl-scratch", "0x%08x, last written 0x%08x", scratch, s->scratch);
    uint32_t frozen_bad = 0, rolling_bad = 0, first = BAR2_WORDS;
    for (uint32_t i = 0; i < BAR2_WORDS; i++) {
        bool ok = s->bar2[i] == (i < ROLL_WORDS ? s->rolling[i] : frozen_word(i));
        if (!ok && first == BAR2_WORDS)
            first = i;
        if (!ok)
            *(i < ROLL_WORDS ? &rolling_bad : &frozen_bad) += 1;
    }
    check(frozen_bad == 0, "swl-bar2-written-before-windows", "32 KiB, %u words differ", frozen_bad);
    check(rolling_bad == 0, "swl-bar2-written-during-windows", "32 KiB, %u words differ (first %u)", rolling_bad,
          first);
}

int swl_main(void)
{
    static struct guest_dev dev;
    static struct swl s;
    s.v = (struct vfio){ .container = -1, .group = -1, .device = -1, .efd = -1, .efd3 = -1 };
    s.rng = 0x5a11;
    note("ufio guest test: the sample device's workload under handovers");
    int err = find_device(&dev);
    if (!check(!err, "device-present", "%s", err ? strerror(-err) : dev.name))
        return verdict("device not found");
    err = win_open(&s.win);
    check(!err, "swl-console-input", "/dev/ttyS0: %s", err ? strerror(-err) : "open");
    if (!swl_setup(&s, &dev)) {
        vfio_close(&s.v);
        return verdict("cannot set up the device");
    }
    unsigned trouble_before = kernel_log_trouble(~0u);
    for (int i = 0; i < 32; i++)
        swl_step(&s);
    note("wv running (sample: scratch, MSI-X vector 3, 4 KiB DMA, BAR2)");
    double t0 = now_us();
    while (win_poll(&s.win))
        swl_step(&s);
    win_finish(&s.win);
    note("swl: %llu steps in %.1f s", (unsigned long long)s.steps, (now_us() - t0) / 1e6);
    swl_final_checks(&s);
    unsigned trouble = kernel_log_trouble(trouble_before);
    check(trouble == trouble_before, "swl-kernel-log", "%u new lines about errors, faults or resets",
          trouble - trouble_before);
    win_report(&s.win);
    vfio_set_msix(&s.v, false);
    struct vfio_iommu_type1_dma_unmap unmap = { .argsz = sizeof(unmap), .iova = SWL_IOVA, .size = 2 * DMA_LEN };
    ioctl(s.v.container, VFIO_IOMMU_UNMAP_DMA, &unmap);
    munmap((void *)s.bar2, BAR2_LEN);
    vfio_close(&s.v);
    dma_buffer_free(s.dma);
    win_close(&s.win);
    return verdict(NULL);
}
