/* Facts from the virtio 1.x specification that ufio-virtio-blk needs. */
#ifndef UFIO_VIRTIO_BLK_VIRTIO_H
#define UFIO_VIRTIO_BLK_VIRTIO_H

#include <stdint.h>

#define VIRTIO_VENDOR 0x1af4
#define VIRTIO_DEV_BLK_MODERN 0x1042 /* 0x1040 + device type 2 */
#define VIRTIO_SUBSYS_ID 0x0040      /* non-transitional: 0x40 or higher */

enum {
    VIRTIO_PCI_CAP_COMMON_CFG = 1,
    VIRTIO_PCI_CAP_NOTIFY_CFG = 2,
    VIRTIO_PCI_CAP_ISR_CFG = 3,
    VIRTIO_PCI_CAP_DEVICE_CFG = 4,
    VIRTIO_PCI_CAP_PCI_CFG = 5,
};

/* virtio_pci_cfg_cap: offsets from the capability's start */
enum {
    PCI_CFG_BAR = 4,
    PCI_CFG_OFFSET = 8,
    PCI_CFG_LENGTH = 12,
    PCI_CFG_DATA = 16,
    PCI_CFG_END = 20,
};

enum {
    STATUS_ACKNOWLEDGE = 1,
    STATUS_DRIVER = 2,
    STATUS_DRIVER_OK = 4,
    STATUS_FEATURES_OK = 8,
    STATUS_NEEDS_RESET = 0x40,
    STATUS_FAILED = 0x80,
};

#define F_BLK_SEG_MAX (1ull << 2)
#define F_BLK_RO (1ull << 5)
#define F_BLK_BLK_SIZE (1ull << 6)
#define F_BLK_FLUSH (1ull << 9)
#define F_RING_INDIRECT_DESC (1ull << 28)
#define F_VERSION_1 (1ull << 32)

enum {
    BLK_T_IN = 0,
    BLK_T_OUT = 1,
    BLK_T_FLUSH = 4,
    BLK_T_GET_ID = 8,
};
enum { BLK_S_OK = 0, BLK_S_IOERR = 1, BLK_S_UNSUPP = 2 };
#define BLK_ID_BYTES 20
#define SECTOR 512u

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define NO_VECTOR 0xffff

/* Split-ring layouts, as they lie in guest memory (little-endian). */
struct vring_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
struct vring_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[];
};
struct vring_used_elem {
    uint32_t id;
    uint32_t len;
};
struct vring_used {
    uint16_t flags;
    uint16_t idx;
    struct vring_used_elem ring[];
};

/* Common configuration structure: offsets of its fields. */
enum {
    CC_DFSELECT = 0x00,
    CC_DF = 0x04,
    CC_GFSELECT = 0x08,
    CC_GF = 0x0c,
    CC_MSIX_CONFIG = 0x10,
    CC_NUM_QUEUES = 0x12,
    CC_STATUS = 0x14,
    CC_CFG_GENERATION = 0x15,
    CC_Q_SELECT = 0x16,
    CC_Q_SIZE = 0x18,
    CC_Q_MSIX_VECTOR = 0x1a,
    CC_Q_ENABLE = 0x1c,
    CC_Q_NOTIFY_OFF = 0x1e,
    CC_Q_DESC = 0x20,
    CC_Q_DRIVER = 0x28,
    CC_Q_DEVICE = 0x30,
    CC_SIZE = 0x38,
};

/* virtio_blk_config up to num_queues: capacity, size_max, seg_max, geometry,
 * blk_size, topology, writeback, num_queues. */
#define BLK_CFG_SIZE 0x24

#endif
