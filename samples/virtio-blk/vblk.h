/*
 * ufio-virtio-blk: a virtio 1.x (modern, non-transitional) PCI block device
 * served over vfio-user, backed by a file (docs/virtio-blk.md). Shared state
 * and the calls between its parts:
 *   queue.c  resets, interrupts, guest memory, descriptor chains, the virtqueue
 *   blk.c    block requests and the backing file
 *   pci.c    common configuration, the BAR, the PCI device
 *   mig.c    migration: quiesce, save and load of the device's own state
 *   main.c   options, logging, the run loop
 */
#ifndef UFIO_VIRTIO_BLK_VBLK_H
#define UFIO_VIRTIO_BLK_VBLK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <ufio/server.h>

#include "virtio.h"

#define DEFAULT_SOCKET "/tmp/ufio-virtio-blk.sock"
#define PROG "ufio-virtio-blk"

/* ---- this device's layout and limits ------------------------------------------ */

#define VIRTIO_BAR 4
#define VIRTIO_BAR_SIZE 0x4000u
#define COMMON_OFF 0x0000u
#define ISR_OFF 0x1000u
#define DEVCFG_OFF 0x2000u
#define NOTIFY_OFF 0x3000u
#define NOTIFY_MULT 4u
#define MSIX_BAR 1
#define NUM_QUEUES 1
#define MSIX_VECTORS (NUM_QUEUES + 1) /* config change + one per queue */
#define QUEUE_MAX 256
/* Longest chain, direct or in an indirect table: the spec bounds a chain by
 * the queue size. Also bounds the iovecs of one request. */
#define CHAIN_MAX QUEUE_MAX
#define IOV_MAX_REQ 1024
#define DMA_PAGE 4096u
#define DIRECT_ALIGN 4096u

/* ---- device state ------------------------------------------------------------- */

struct vq {
    uint16_t size;
    uint16_t msix_vector;
    bool enabled;
    uint64_t desc, driver, device;
    uint16_t last_avail; /* next avail entry to take */
    uint16_t used_idx;   /* our copy of used->idx */
};

struct stats {
    uint64_t requests, direct, bytes_read, bytes_written, flushes, ioerr, unsupp;
};

struct vblk {
    struct ufio_dev *dev;
    int fd;
    int direct_fd; /* the same file with O_DIRECT (--direct), or -1 */
    const char *path;
    uint64_t capacity; /* in 512-byte sectors */
    bool readonly;
    bool verbose;
    char serial[BLK_ID_BYTES];

    uint64_t host_features;
    uint64_t guest_features;
    uint32_t dfselect, gfselect;
    uint16_t msix_config;
    uint8_t status;
    uint8_t isr;
    uint16_t queue_sel;
    struct vq vq[NUM_QUEUES];
    bool broken; /* NEEDS_RESET: no processing until the driver resets */
    uint32_t pci_cfg_cap; /* config offset of the PCI_CFG capability */
    uint8_t config_generation;
    /* migration: queues notified while the device was stopped (bit per queue),
     * served when it runs again; whether this save/resume session has its record */
    uint32_t kicked;
    bool mig_saved, mig_loaded;
    struct stats st;
};

/* ---- descriptor chains ------------------------------------------------------------ */

struct seg {
    uint64_t addr;
    uint32_t len;
};

/* A chain split into its device-readable part (out) and its device-writable part (in). */
struct chain {
    struct seg out[CHAIN_MAX], in[CHAIN_MAX];
    unsigned n_out, n_in;
    uint64_t out_len, in_len;
};

/* main.c */
void vlog(const struct vblk *vb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* queue.c */
void vblk_reset(struct vblk *vb);
void needs_reset(struct vblk *vb, const char *why);
const char *chain_gather(struct vblk *vb, const struct vq *q, uint16_t head, struct chain *c);
int chain_iov(struct vblk *vb, const struct seg *segs, unsigned n, bool write, uint64_t off,
                     uint64_t len, struct iovec *iov, int *niov);
int chain_copy_out(struct vblk *vb, const struct chain *c, uint64_t off, void *buf, size_t len);
int chain_copy_in(struct vblk *vb, const struct chain *c, uint64_t off, const void *buf, size_t len);
void vq_process(struct vblk *vb, unsigned qi);
void vblk_kick_all(struct vblk *vb);

/* blk.c */
int64_t handle_chain(struct vblk *vb, const struct vq *q, uint16_t head);
int open_backing(struct vblk *vb);

/* pci.c */
int build(struct ufio_dev *dev, struct vblk *vb);
int vblk_dev_reset(struct ufio_dev *dev, void *opaque);
void vblk_detach(struct ufio_dev *dev, void *opaque);
bool vblk_queue_valid(const struct vq *q);
bool vblk_device_live(const struct vblk *vb);

/* mig.c */
int vblk_setup_migration(struct ufio_dev *dev, struct vblk *vb);

#endif
