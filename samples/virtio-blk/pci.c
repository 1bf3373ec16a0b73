/* ufio-virtio-blk: common configuration, the trapped BAR with the PCI_CFG window, and the PCI device. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <ufio/migration.h>
#include <ufio/server.h>

#include "vblk.h"

/* ---- common configuration ---------------------------------------------------------------- */

static struct vq *selected_vq(struct vblk *vb)
{
    return vb->queue_sel < NUM_QUEUES ? &vb->vq[vb->queue_sel] : NULL;
}

static void put_le(uint8_t *p, uint64_t v, unsigned size)
{
    for (unsigned i = 0; i < size; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned size)
{
    uint64_t v = 0;
    for (unsigned i = size; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

/* The structure as the driver would read it now. */
static void common_image(struct vblk *vb, uint8_t img[CC_SIZE])
{
    memset(img, 0, CC_SIZE);
    const struct vq *q = selected_vq(vb);
    put_le(img + CC_DFSELECT, vb->dfselect, 4);
    put_le(img + CC_DF, vb->dfselect < 2 ? (uint32_t)(vb->host_features >> (32 * vb->dfselect)) : 0, 4);
    put_le(img + CC_GFSELECT, vb->gfselect, 4);
    put_le(img + CC_GF, vb->gfselect < 2 ? (uint32_t)(vb->guest_features >> (32 * vb->gfselect)) : 0, 4);
    put_le(img + CC_MSIX_CONFIG, vb->msix_config, 2);
    put_le(img + CC_NUM_QUEUES, NUM_QUEUES, 2);
    img[CC_STATUS] = vb->status;
    img[CC_CFG_GENERATION] = vb->config_generation; /* the device config never changes; migrated */
    put_le(img + CC_Q_SELECT, vb->queue_sel, 2);
    if (!q)
        return; /* queue_size 0: no such queue */
    put_le(img + CC_Q_SIZE, q->size, 2);
    put_le(img + CC_Q_MSIX_VECTOR, q->msix_vector, 2);
    put_le(img + CC_Q_ENABLE, q->enabled, 2);
    put_le(img + CC_Q_NOTIFY_OFF, vb->queue_sel, 2);
    put_le(img + CC_Q_DESC, q->desc, 8);
    put_le(img + CC_Q_DRIVER, q->driver, 8);
    put_le(img + CC_Q_DEVICE, q->device, 8);
}

static bool features_acceptable(const struct vblk *vb)
{
    return (vb->guest_features & ~vb->host_features) == 0 && (vb->guest_features & F_VERSION_1);
}

static void status_write(struct vblk *vb, uint8_t v)
{
    if (v == 0) {
        vlog(vb, "reset by the driver");
        vblk_reset(vb);
        return;
    }
    if ((v & STATUS_FEATURES_OK) && !(vb->status & STATUS_FEATURES_OK) && !features_acceptable(vb)) {
        vlog(vb, "refusing features 0x%" PRIx64, vb->guest_features);
        v &= (uint8_t)~STATUS_FEATURES_OK; /* the driver reads it back and gives up */
    }
    if ((v & STATUS_DRIVER_OK) && !(vb->status & STATUS_DRIVER_OK))
        vlog(vb, "driver ready, features 0x%" PRIx64, vb->guest_features);
    vb->status = v | (vb->status & STATUS_NEEDS_RESET);
}

bool vblk_queue_valid(const struct vq *q)
{
    return q->size && q->size <= QUEUE_MAX && (q->size & (q->size - 1)) == 0 && q->desc % 16 == 0 &&
           q->driver % 2 == 0 && q->device % 4 == 0;
}

static void queue_enable(struct vblk *vb, struct vq *q)
{
    if (!vblk_queue_valid(q)) {
        needs_reset(vb, "queue enabled with a bad size or misaligned rings");
        return;
    }
    q->enabled = true;
    q->last_avail = q->used_idx = 0;
    vlog(vb, "queue %u: size %u desc 0x%" PRIx64 " driver 0x%" PRIx64 " device 0x%" PRIx64 " vector %u",
         vb->queue_sel, q->size, q->desc, q->driver, q->device, q->msix_vector);
}

static uint16_t vector_or_none(uint64_t v)
{
    return v < MSIX_VECTORS ? (uint16_t)v : NO_VECTOR;
}

static void set_u64_part(uint64_t *field, unsigned off, unsigned size, uint64_t v)
{
    uint8_t b[8];
    put_le(b, *field, 8);
    put_le(b + off, v, size);
    *field = get_le(b, 8);
}

/* A write of size bytes at byte off inside the field at field_off. */
static void common_field_write(struct vblk *vb, unsigned field_off, unsigned off, unsigned size, uint64_t v)
{
    struct vq *q = selected_vq(vb);
    /* a live queue's layout is fixed; the driver resets to change it */
    bool q_writable = q && !q->enabled;
    switch (field_off) {
    case CC_DFSELECT: vb->dfselect = (uint32_t)v; break;
    case CC_GFSELECT: vb->gfselect = (uint32_t)v; break;
    case CC_GF:
        if (vb->gfselect < 2 && !(vb->status & STATUS_FEATURES_OK)) {
            uint64_t mask = 0xffffffffull << (32 * vb->gfselect);
            vb->guest_features = (vb->guest_features & ~mask) | ((v & 0xffffffffull) << (32 * vb->gfselect));
        }
        break;
    case CC_MSIX_CONFIG: vb->msix_config = vector_or_none(v); break;
    case CC_STATUS: status_write(vb, (uint8_t)v); break;
    case CC_Q_SELECT: vb->queue_sel = (uint16_t)v; break;
    case CC_Q_SIZE: if (q_writable) q->size = (uint16_t)v; break;
    case CC_Q_MSIX_VECTOR: if (q) q->msix_vector = vector_or_none(v); break;
    case CC_Q_ENABLE: if (q_writable && v == 1) queue_enable(vb, q); break;
    case CC_Q_DESC: if (q_writable) set_u64_part(&q->desc, off, size, v); break;
    case CC_Q_DRIVER: if (q_writable) set_u64_part(&q->driver, off, size, v); break;
    case CC_Q_DEVICE: if (q_writable) set_u64_part(&q->device, off, size, v); break;
    default: break; /* read-only */
    }
}

static const uint8_t common_fields[][2] = {
    { CC_DFSELECT, 4 }, { CC_DF, 4 }, { CC_GFSELECT, 4 }, { CC_GF, 4 },
    { CC_MSIX_CONFIG, 2 }, { CC_NUM_QUEUES, 2 }, { CC_STATUS, 1 }, { CC_CFG_GENERATION, 1 },
    { CC_Q_SELECT, 2 }, { CC_Q_SIZE, 2 }, { CC_Q_MSIX_VECTOR, 2 }, { CC_Q_ENABLE, 2 },
    { CC_Q_NOTIFY_OFF, 2 }, { CC_Q_DESC, 8 }, { CC_Q_DRIVER, 8 }, { CC_Q_DEVICE, 8 },
};

/*
 * Drivers access each field with its own width (64-bit ones as two 32-bit
 * halves); a write of any other shape is applied field by field on the
 * bytes it covers, so nothing the driver does leaves a field half-decoded.
 */
static void common_write(struct vblk *vb, uint32_t off, const uint8_t *buf, uint32_t len)
{
    for (size_t i = 0; i < sizeof(common_fields) / sizeof(common_fields[0]); i++) {
        unsigned f = common_fields[i][0], fsize = common_fields[i][1];
        if (off >= f + fsize || off + len <= f)
            continue;
        unsigned start = off > f ? off - f : 0;
        unsigned end = off + len < f + fsize ? off + len - f : fsize;
        if (fsize == 8) {
            common_field_write(vb, f, start, end - start, get_le(buf + (f + start - off), end - start));
            continue;
        }
        uint8_t img[CC_SIZE];
        common_image(vb, img);
        memcpy(img + f + start, buf + (f + start - off), end - start);
        common_field_write(vb, f, 0, fsize, get_le(img + f, fsize));
    }
}

/* ---- the BAR ----------------------------------------------------------------------------------- */

static void devcfg_image(const struct vblk *vb, uint8_t img[BLK_CFG_SIZE])
{
    memset(img, 0, BLK_CFG_SIZE);
    put_le(img + 0x00, vb->capacity, 8);
    put_le(img + 0x0c, CHAIN_MAX - 2, 4); /* seg_max: header and status take two */
    put_le(img + 0x14, SECTOR, 4);       /* blk_size */
    put_le(img + 0x22, NUM_QUEUES, 2);
}

/* Reads of [off, off+len) from an image of img_len bytes; beyond it reads 0. */
static void read_image(const uint8_t *img, uint32_t img_len, uint64_t off, uint8_t *buf, uint32_t len)
{
    memset(buf, 0, len);
    if (off < img_len)
        memcpy(buf, img + off, len < img_len - off ? len : img_len - off);
}

/* Queues run only after a completed negotiation and before any failure. */
bool vblk_device_live(const struct vblk *vb)
{
    const uint8_t ready = STATUS_FEATURES_OK | STATUS_DRIVER_OK;
    return (vb->status & ready) == ready && !vb->broken;
}

/* An access to BAR4 (trapped, or through the PCI_CFG window). */
static int bar_access(struct vblk *vb, uint64_t off, uint8_t *b, uint32_t len, bool is_write)
{
    uint32_t page = (uint32_t)(off & ~0xfffull), in = (uint32_t)(off & 0xfff);
    if ((off & 0xfff) + len > 0x1000)
        return -EINVAL; /* no access spans two structures */
    switch (page) {
    case COMMON_OFF:
        if (is_write) {
            common_write(vb, in, b, len);
        } else {
            uint8_t img[CC_SIZE];
            common_image(vb, img);
            read_image(img, CC_SIZE, in, b, len);
        }
        return 0;
    case ISR_OFF:
        if (!is_write) {
            read_image(&vb->isr, 1, in, b, len);
            if (in == 0)
                vb->isr = 0; /* reading ISR acknowledges it */
        }
        return 0;
    case DEVCFG_OFF:
        if (!is_write) {
            uint8_t img[BLK_CFG_SIZE];
            devcfg_image(vb, img);
            read_image(img, BLK_CFG_SIZE, in, b, len);
        }
        return 0; /* nothing in it is writable without CONFIG_WCE */
    case NOTIFY_OFF:
        if (!is_write) {
            memset(b, 0, len);
        } else if (in % NOTIFY_MULT == 0 && in / NOTIFY_MULT < NUM_QUEUES) {
            unsigned qi = in / NOTIFY_MULT;
            unsigned st = ufio_dev_mig_state(vb->dev);
            if (st != UFIO_MIG_RUNNING && st != UFIO_MIG_PRE_COPY)
                vb->kicked |= 1u << qi; /* quiesced: served when the device runs again */
            else if (vblk_device_live(vb) && vb->vq[qi].enabled)
                vq_process(vb, qi);
        }
        return 0;
    default:
        if (!is_write)
            memset(b, 0, len);
        return 0;
    }
}

static int vblk_bar_access(struct ufio_dev *dev, void *opaque, unsigned region, uint64_t off, void *buf,
                           uint32_t len, bool is_write)
{
    return bar_access(opaque, off, buf, len, is_write);
}

/*
 * VIRTIO_PCI_CAP_PCI_CFG: a window into BAR4 through config space (firmware
 * uses it when it cannot reach the BAR). The driver sets bar, offset and
 * length, then reads or writes pci_cfg_data: those bytes are claimed from the
 * library (ufio_dev_claim_config), so a read is a real BAR read at that
 * moment (ISR read through the window acknowledges it, as through the BAR)
 * and a write a BAR write of `length` bytes. A window onto another BAR, a
 * length other than 1, 2 or 4 or a misaligned offset reads 0, writes nothing.
 */
static int pci_cfg_data(struct ufio_dev *dev, void *opaque, unsigned region, uint64_t off, void *buf,
                        uint32_t len, bool is_write)
{
    struct vblk *vb = opaque;
    uint32_t in = (uint32_t)(off - (vb->pci_cfg_cap + PCI_CFG_DATA));
    uint8_t f[PCI_CFG_DATA];
    if (ufio_dev_config_read(dev, vb->pci_cfg_cap, f, sizeof(f)))
        return -EIO;
    uint32_t where = (uint32_t)get_le(f + PCI_CFG_OFFSET, 4), n = (uint32_t)get_le(f + PCI_CFG_LENGTH, 4);
    bool usable = f[PCI_CFG_BAR] == VIRTIO_BAR && (n == 1 || n == 2 || n == 4) && where % n == 0 &&
                  where < VIRTIO_BAR_SIZE;
    if (is_write) {
        if (usable && in == 0 && len >= n)
            bar_access(vb, where, buf, n, true);
        return 0;
    }
    uint8_t data[4] = { 0 };
    if (usable)
        bar_access(vb, where, data, n, false);
    memcpy(buf, data + in, len);
    return 0;
}

/* ---- the PCI device ------------------------------------------------------------------------------ */

/* virtio_pci_cap body after the 3-byte vendor header: cfg_type, bar, id,
 * padding[2], offset, length (and notify_off_multiplier for NOTIFY). */
static int add_virtio_cap(struct ufio_dev *dev, uint8_t type, uint32_t offset, uint32_t length)
{
    uint8_t body[17] = { type, VIRTIO_BAR, 0, 0, 0 };
    put_le(body + 5, offset, 4);
    put_le(body + 9, length, 4);
    size_t len = 13;
    if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) {
        put_le(body + 13, NOTIFY_MULT, 4);
        len = 17;
    }
    return ufio_dev_add_cap_vendor(dev, body, len);
}

/* The body after id/next: cap_len, cfg_type, then bar, offset, length and
 * pci_cfg_data, which the driver writes. */
static int add_pci_cfg_cap(struct ufio_dev *dev)
{
    uint8_t body[PCI_CFG_END - 2] = { PCI_CFG_END, VIRTIO_PCI_CAP_PCI_CFG };
    uint8_t wmask[PCI_CFG_END - 2] = { 0 };
    wmask[PCI_CFG_BAR - 2] = 0xff;
    memset(wmask + PCI_CFG_OFFSET - 2, 0xff, PCI_CFG_END - PCI_CFG_OFFSET);
    return ufio_dev_add_cap(dev, 0x09, body, wmask, sizeof(body));
}

int build(struct ufio_dev *dev, struct vblk *vb)
{
    int err;
    if ((err = ufio_dev_add_bar(dev, MSIX_BAR, 4096, UFIO_BAR_MEM32, NULL, NULL)) ||
        (err = ufio_dev_add_bar(dev, VIRTIO_BAR, VIRTIO_BAR_SIZE, UFIO_BAR_MEM64, vblk_bar_access, vb)))
        return err;
    if ((err = ufio_dev_add_cap_msix(dev, MSIX_VECTORS, MSIX_BAR, 0x000, MSIX_BAR, 0x800)) < 0 ||
        (err = add_virtio_cap(dev, VIRTIO_PCI_CAP_COMMON_CFG, COMMON_OFF, CC_SIZE)) < 0 ||
        (err = add_virtio_cap(dev, VIRTIO_PCI_CAP_ISR_CFG, ISR_OFF, 1)) < 0 ||
        (err = add_virtio_cap(dev, VIRTIO_PCI_CAP_DEVICE_CFG, DEVCFG_OFF, BLK_CFG_SIZE)) < 0 ||
        (err = add_virtio_cap(dev, VIRTIO_PCI_CAP_NOTIFY_CFG, NOTIFY_OFF, NOTIFY_MULT * NUM_QUEUES)) < 0 ||
        (err = add_pci_cfg_cap(dev)) < 0)
        return err;
    vb->pci_cfg_cap = (uint32_t)err;
    if ((err = ufio_dev_claim_config(dev, vb->pci_cfg_cap + PCI_CFG_DATA, 4, pci_cfg_data, vb)))
        return err;
    if ((err = ufio_dev_add_cap_pcie(dev, 0)) < 0)
        return err;
    /* QEMU's vfio-pci wires up error and request notification when offered */
    if ((err = ufio_dev_setup_irq(dev, UFIO_IRQ_ERR, 1)))
        return err;
    return ufio_dev_setup_irq(dev, UFIO_IRQ_REQ, 1);
}

int vblk_dev_reset(struct ufio_dev *dev, void *opaque)
{
    vblk_reset(opaque);
    return 0;
}

/* The driver state belonged to the client that left (its rings were in its memory). */
void vblk_detach(struct ufio_dev *dev, void *opaque)
{
    vblk_reset(opaque);
}
