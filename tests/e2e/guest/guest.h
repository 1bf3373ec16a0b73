/*
 * The guest side of the real-guest test: a static program run by the
 * initramfs /init inside a Linux guest of QEMU, attached to ufio-sample
 * through vfio-user-pci. It reports one console line per check, which
 * tests/e2e/run.sh reads back from the serial log.
 */
#ifndef UFIO_E2E_GUEST_H
#define UFIO_E2E_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Overridable so the driver paths can be tried on another device. */
#ifndef SAMPLE_VENDOR
#define SAMPLE_VENDOR 0x5546
#endif
#ifndef SAMPLE_DEVICE
#define SAMPLE_DEVICE 0x0001
#endif
#define SAMPLE_CLASS 0xff0000u
#define SAMPLE_REVISION 0x01u
#define SAMPLE_ID 0x4f494655u /* "UFIO" */
#define SAMPLE_DSN 0x0123456789abcdefull

/* BAR0 register offsets (docs/sample-device.md). */
enum {
    REG_ID = 0x00,
    REG_VERSION = 0x04,
    REG_SCRATCH = 0x08,
    REG_IRQ_RAISE = 0x0c,
    REG_IRQ_COUNT = 0x10,
    REG_DMA_SRC_LO = 0x18,
    REG_DMA_SRC_HI = 0x1c,
    REG_DMA_DST_LO = 0x20,
    REG_DMA_DST_HI = 0x24,
    REG_DMA_LEN = 0x28,
    REG_DMA_CMD = 0x2c,
    REG_DMA_STATUS = 0x30,
    REG_DMA_SUM = 0x34,
};

/* The device found under /sys/bus/pci/devices. */
struct guest_dev {
    char name[64];    /* "0000:00:03.0" */
    char sysfs[128];  /* "/sys/bus/pci/devices/0000:00:03.0" */
    uint8_t cfg[4096];
    size_t cfg_len;   /* bytes the config file gave (256 without MMCONFIG) */
};

/* Report one check; returns ok so callers can chain. */
bool check(bool ok, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Report a diagnostic line that is not a check. */
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* guest-pci.c: checks that need no driver (sysfs, config file, resourceN). */
int find_device(struct guest_dev *d);
void check_identity(struct guest_dev *d);
void check_capabilities(const struct guest_dev *d);
void check_bars(const struct guest_dev *d);

/*
 * How a driver path reaches the device: BAR0 registers and the wait for an
 * interrupt, so that the interrupt and DMA checks are written once and run
 * through vfio-pci (MSI-X) and uio_pci_generic (INTx) alike.
 */
struct dev_io {
    const char *tag; /* check-name prefix: "msix", "intx" */
    void *ctx;
    uint32_t (*rd)(void *ctx, uint32_t reg);
    int (*wr)(void *ctx, uint32_t reg, uint32_t val);
    long (*wait_irq)(void *ctx); /* interrupts seen, 0 on timeout, or -errno */
};

#define IRQ_TIMEOUT_MS 5000
#define DMA_LEN 4096u

/* guest-irq-dma.c */
void check_irq_raise(const struct dev_io *io);
/* buf holds DMA_LEN source bytes then DMA_LEN destination bytes. */
void check_dma_xor(const struct dev_io *io, uint8_t *buf, uint64_t src_bus, uint64_t dst_bus);
/* A locked, populated 2 * DMA_LEN buffer, or NULL. */
uint8_t *dma_buffer_alloc(void);
void dma_buffer_free(uint8_t *buf);
/* Guest physical address of p (the bus address when there is no IOMMU). */
int phys_addr(const void *p, uint64_t *out);
long poll_wait(int fd, void *count, size_t count_len);

/* guest-vfio.c: MSI-X and DMA through vfio-pci (type1 behind the emulated
 * IOMMU, or no-IOMMU mode when the kernel has it). Returns true if the
 * device was bound to vfio-pci (and must be unbound before another driver). */
bool check_vfio(const struct guest_dev *d, bool *iommu);

/* The vfio-pci pieces the sample workload (guest-swl.c) shares. */
#define MSIX_VECTORS 4
struct vfio {
    int container, group, device, efd, efd3; /* efd: MSI-X vector 0, efd3: vector 3 */
    bool noiommu;
    uint64_t bar0_off, cfg_off;
};
int vfio_open_dev(const struct guest_dev *d, struct vfio *v);
int vfio_enable_bus_master(const struct vfio *v);
/* Vector 0 and vector 3 on efd and efd3 (1 and 2 none); on = false disables MSI-X. */
int vfio_set_msix(const struct vfio *v, bool on);
int vfio_wr(void *ctx, uint32_t reg, uint32_t val);
uint32_t vfio_rd(void *ctx, uint32_t reg);
void vfio_close(struct vfio *v);

/* guest-uio.c: INTx (and DMA when there is no IOMMU) through uio_pci_generic. */
void check_uio(const struct guest_dev *d, bool dma);
int bind_driver(const struct guest_dev *d, const char *driver);

/* The final PASS/FAIL line (FAIL with fatal when given); the exit status. */
int verdict(const char *fatal);
/* guest-vblk.c: "vblk MODE ..." (the virtio-blk test). */
int vblk_main(int argc, char **argv);
/* guest-window.c: the host's windows over a continuous workload (the
 * handover tests), and the workload's I/O latency inside and outside them. */
#define WIN_SETTLE 64u /* I/Os outside a window before its end is acknowledged */
struct win {
    int fd; /* the console's input (/dev/ttyS0) */
    char line[128];
    size_t len;
    bool in_window;
    bool just_ended; /* set at "mark end"; the workload clears it */
    unsigned windows, settle, window_no;
    /* latency in µs: over the whole run, inside the windows and outside */
    double max_in, max_out, sum_out;
    uint64_t n_in, n_out;
    /* the current window, the current stretch outside, the stretch before the window */
    double cur_max_in, seg_max_out, prev_max_out;
    uint64_t cur_n_in, seg_n_out, prev_n_out;
};
double now_us(void);
int win_open(struct win *w);
void win_close(struct win *w);
/* Handles the host's commands waiting on the console; false on "stop". */
bool win_poll(struct win *w);
void win_record(struct win *w, double us);
/* After each step of the workload: acknowledges a window's end when due. */
void win_step_done(struct win *w);
void win_finish(struct win *w);
/* "# wv latency-us outside max ... windows N max ..." */
void win_report(const struct win *w);
/* Lines of the kernel log that mean the device or its driver had trouble;
 * those after the first `quiet` ones are printed. */
unsigned kernel_log_trouble(unsigned quiet);

/* guest-swl.c: the sample device's continuous workload under handovers
 * ("swl"): BAR0 registers, MSI-X, DMA and BAR2 through vfio-pci. */
int swl_main(void);

/* guest-wv.c: the continuous write-and-verify workload on an open O_DIRECT
 * disk ("vblk workload"), and the host's check of the image it leaves. */
int wv_run(int fd, uint64_t disk_bytes);
int wv_check_image(const char *path);

/* Small helpers shared by both files. */
int read_sysfs_ulong(const char *dir, const char *file, unsigned long *out);
int write_file(const char *path, const char *text);

#endif
