/*
 * ufio-virtio-blk: a virtio 1.x (modern, non-transitional) PCI block device
 * served over vfio-user, backed by a file. The guest's own virtio_pci and
 * virtio_blk drivers bind to it.
 *
 * Layout (docs/virtio-blk.md):
 *   BAR1 (32-bit memory, 4 KiB): MSI-X table at 0x000, PBA at 0x800 (the library emulates both)
 *   BAR4 (64-bit memory, 16 KiB, trapped): common cfg 0x0000, ISR 0x1000,
 *        device cfg 0x2000, notify 0x3000 (notify_off_multiplier 4); also
 *        reachable through the PCI_CFG capability's window in config space
 *
 * Requests are processed synchronously when the driver writes the notify
 * register. Rings and buffers are reached through the memory the client maps
 * with DMA_MAP (ufio_dev_dma_ptr); data moves between the backing file and
 * guest memory with preadv/pwritev, no bounce buffer.
 *
 * Everything the driver supplies is hostile: a malformed ring or chain puts
 * the device in NEEDS_RESET (it stops processing until the driver resets it);
 * a bad request inside a well-formed chain is answered VIRTIO_BLK_S_IOERR or
 * VIRTIO_BLK_S_UNSUPP.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/fs.h>
#include <sys/ioctl.h>

#include <ufio/server.h>

#define DEFAULT_SOCKET "/tmp/ufio-virtio-blk.sock"
#define PROG "ufio-virtio-blk"

/* ---- facts from the virtio 1.x specification -------------------------------- */

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
    struct stats st;
};

static struct ufio_dev *the_dev;

static void vlog(const struct vblk *vb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vlog(const struct vblk *vb, const char *fmt, ...)
{
    if (!vb->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- reset and interrupts ------------------------------------------------------ */

static void vq_reset(struct vq *q)
{
    *q = (struct vq){ .size = QUEUE_MAX, .msix_vector = NO_VECTOR };
}

static void vblk_reset(struct vblk *vb)
{
    vb->guest_features = 0;
    vb->dfselect = vb->gfselect = 0;
    vb->msix_config = NO_VECTOR;
    vb->status = 0;
    vb->isr = 0;
    vb->queue_sel = 0;
    vb->broken = false;
    for (unsigned i = 0; i < NUM_QUEUES; i++)
        vq_reset(&vb->vq[i]);
}

/* isr_bit: 1 for a used-buffer notification, 2 for a configuration change. */
static void notify_driver(struct vblk *vb, uint16_t vector, uint8_t isr_bit)
{
    int mode = ufio_dev_irq_mode(vb->dev);
    if (mode == UFIO_IRQ_MSIX) {
        if (vector != NO_VECTOR)
            ufio_dev_irq_trigger(vb->dev, UFIO_IRQ_MSIX, vector);
        return;
    }
    /* without MSI-X the driver learns the reason from ISR */
    vb->isr |= isr_bit;
    if (mode == UFIO_IRQ_INTX)
        ufio_dev_irq_trigger(vb->dev, UFIO_IRQ_INTX, 0);
}

/* A broken driver (or a hostile one): stop and tell it to reset us. */
static void needs_reset(struct vblk *vb, const char *why)
{
    if (vb->broken)
        return;
    fprintf(stderr, PROG ": device needs reset: %s\n", why);
    vb->broken = true;
    vb->status |= STATUS_NEEDS_RESET;
    if (vb->status & STATUS_DRIVER_OK)
        notify_driver(vb, vb->msix_config, 2);
}

/* ---- guest memory -------------------------------------------------------------- */

/* Appends host iovecs for guest range [addr, addr+len) to iov. A range that
 * is not inside one DMA mapping (it spans two, or a hole) is translated page
 * by page until the rest fits one mapping, or a page is not mapped. */
static int map_range(struct vblk *vb, uint64_t addr, uint64_t len, bool write, struct iovec *iov,
                     int *niov)
{
    if (addr + len < addr)
        return -EFAULT;
    while (len) {
        uint64_t step = len;
        void *p = ufio_dev_dma_ptr(vb->dev, addr, step, write);
        if (!p) {
            step = DMA_PAGE - addr % DMA_PAGE;
            if (step > len)
                step = len;
            p = ufio_dev_dma_ptr(vb->dev, addr, step, write);
            if (!p)
                return -EFAULT;
        }
        if (*niov > 0 && (uint8_t *)iov[*niov - 1].iov_base + iov[*niov - 1].iov_len == p) {
            iov[*niov - 1].iov_len += step;
        } else {
            if (*niov >= IOV_MAX_REQ)
                return -E2BIG;
            iov[(*niov)++] = (struct iovec){ p, step };
        }
        addr += step;
        len -= step;
    }
    return 0;
}

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

/* A little-endian field of guest memory, read byte by byte: an indirect
 * table may sit at any address the driver likes. */
static uint64_t guest_le(const volatile uint8_t *p, unsigned size)
{
    uint64_t v = 0;
    for (unsigned i = size; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

/* One descriptor, copied out of guest memory once so the driver cannot change
 * it between our check and our use. */
static struct vring_desc desc_load(const volatile uint8_t *table, unsigned i)
{
    const volatile uint8_t *p = table + 16 * i;
    return (struct vring_desc){
        .addr = guest_le(p, 8),
        .len = (uint32_t)guest_le(p + 8, 4),
        .flags = (uint16_t)guest_le(p + 12, 2),
        .next = (uint16_t)guest_le(p + 14, 2),
    };
}

/* Follows the chain from head; NULL on success, else why it is malformed. */
static const char *chain_gather(struct vblk *vb, const struct vq *q, uint16_t head, struct chain *c)
{
    const volatile uint8_t *table = ufio_dev_dma_ptr(vb->dev, q->desc, 16ull * q->size, false);
    unsigned table_size = q->size, idx = head, count = 0;
    bool indirect = false;
    c->n_out = c->n_in = 0;
    c->out_len = c->in_len = 0;
    if (!table)
        return "descriptor table not in mapped memory";
    for (;;) {
        if (idx >= table_size)
            return "descriptor index out of range";
        struct vring_desc d = desc_load(table, idx);
        if (d.flags & VRING_DESC_F_INDIRECT) {
            /* only the head may point to a table, never inside one, never with NEXT */
            if (!(vb->guest_features & F_RING_INDIRECT_DESC) || indirect || count ||
                (d.flags & VRING_DESC_F_NEXT))
                return "misplaced indirect descriptor";
            if (d.len == 0 || d.len % 16 || d.len / 16 > CHAIN_MAX)
                return "bad indirect table length";
            table = ufio_dev_dma_ptr(vb->dev, d.addr, d.len, false);
            if (!table)
                return "indirect table not in mapped memory";
            table_size = d.len / 16;
            indirect = true;
            idx = 0;
            continue;
        }
        /* a loop shows up as a chain longer than any table allows */
        if (++count > CHAIN_MAX)
            return "descriptor chain too long (loop?)";
        if (d.flags & VRING_DESC_F_WRITE) {
            c->in[c->n_in++] = (struct seg){ d.addr, d.len };
            c->in_len += d.len;
        } else {
            if (c->n_in)
                return "device-readable descriptor after a writable one";
            c->out[c->n_out++] = (struct seg){ d.addr, d.len };
            c->out_len += d.len;
        }
        if (!(d.flags & VRING_DESC_F_NEXT))
            return NULL;
        idx = d.next;
    }
}

/* iovecs for bytes [off, off+len) of one side of a chain. */
static int chain_iov(struct vblk *vb, const struct seg *segs, unsigned n, bool write, uint64_t off,
                     uint64_t len, struct iovec *iov, int *niov)
{
    *niov = 0;
    for (unsigned i = 0; i < n && len; i++) {
        if (off >= segs[i].len) {
            off -= segs[i].len;
            continue;
        }
        uint64_t piece = segs[i].len - off;
        if (piece > len)
            piece = len;
        int err = map_range(vb, segs[i].addr + off, piece, write, iov, niov);
        if (err)
            return err;
        off = 0;
        len -= piece;
    }
    return len ? -EFAULT : 0;
}

static int chain_copy_out(struct vblk *vb, const struct chain *c, uint64_t off, void *buf, size_t len)
{
    struct iovec iov[IOV_MAX_REQ];
    int n;
    int err = chain_iov(vb, c->out, c->n_out, false, off, len, iov, &n);
    for (int i = 0; !err && i < n; i++) {
        memcpy(buf, iov[i].iov_base, iov[i].iov_len);
        buf = (uint8_t *)buf + iov[i].iov_len;
    }
    return err;
}

static int chain_copy_in(struct vblk *vb, const struct chain *c, uint64_t off, const void *buf, size_t len)
{
    struct iovec iov[IOV_MAX_REQ];
    int n;
    int err = chain_iov(vb, c->in, c->n_in, true, off, len, iov, &n);
    for (int i = 0; !err && i < n; i++) {
        memcpy(iov[i].iov_base, buf, iov[i].iov_len);
        buf = (const uint8_t *)buf + iov[i].iov_len;
    }
    return err;
}

/* ---- block requests ---------------------------------------------------------------- */

/* preadv/pwritev until done: short transfers happen on signals and at end of file. */
static int file_io(int fd, struct iovec *iov, int n, uint64_t pos, bool write)
{
    while (n > 0) {
        ssize_t got = write ? pwritev(fd, iov, n, (off_t)pos) : preadv(fd, iov, n, (off_t)pos);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -errno;
        if (got == 0)
            return -EIO; /* the file shrank under us */
        pos += (uint64_t)got;
        while (n > 0 && (size_t)got >= iov->iov_len) {
            got -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + got;
            iov->iov_len -= (size_t)got;
        }
    }
    return 0;
}

/* O_DIRECT needs aligned memory, lengths and offsets: requests from a guest's
 * page-sized buffers qualify; any other goes through the page cache (the
 * kernel keeps both views of the file coherent). */
static bool direct_ok(const struct iovec *iov, int n, uint64_t pos)
{
    if (pos % DIRECT_ALIGN)
        return false;
    for (int i = 0; i < n; i++)
        if ((uintptr_t)iov[i].iov_base % DIRECT_ALIGN || iov[i].iov_len % DIRECT_ALIGN)
            return false;
    return true;
}

static int disk_io(struct vblk *vb, struct iovec *iov, int n, uint64_t pos, bool write)
{
    if (vb->direct_fd >= 0 && direct_ok(iov, n, pos)) {
        struct iovec copy[IOV_MAX_REQ];
        memcpy(copy, iov, sizeof(*iov) * (size_t)n); /* file_io consumes its iovecs */
        int err = file_io(vb->direct_fd, copy, n, pos, write);
        vb->st.direct += err != -EINVAL;
        if (err != -EINVAL)
            return err;
        /* the file system wants a larger alignment: from now on, buffered */
        fprintf(stderr, PROG ": O_DIRECT refused (EINVAL); using the page cache\n");
        close(vb->direct_fd);
        vb->direct_fd = -1;
    }
    return file_io(vb->fd, iov, n, pos, write);
}

static bool sectors_ok(const struct vblk *vb, uint64_t sector, uint64_t bytes)
{
    return bytes % SECTOR == 0 && sector <= vb->capacity && bytes / SECTOR <= vb->capacity - sector;
}

/* IN and OUT: data between the chain and the file. Returns the status; *written
 * gets the data bytes put into the driver's buffers. */
static uint8_t blk_rw(struct vblk *vb, const struct chain *c, uint32_t type, uint64_t sector,
                      uint32_t *written)
{
    bool to_guest = type == BLK_T_IN;
    uint64_t len = to_guest ? c->in_len - 1 : c->out_len - 16;
    if (!to_guest && vb->readonly) {
        vlog(vb, "write to a read-only disk at sector %" PRIu64, sector);
        return BLK_S_IOERR;
    }
    if (!sectors_ok(vb, sector, len)) {
        vlog(vb, "%s of %" PRIu64 " bytes at sector %" PRIu64 " outside the disk or not whole sectors",
             to_guest ? "read" : "write", len, sector);
        return BLK_S_IOERR;
    }
    struct iovec iov[IOV_MAX_REQ];
    int n;
    int err = to_guest ? chain_iov(vb, c->in, c->n_in, true, 0, len, iov, &n)
                       : chain_iov(vb, c->out, c->n_out, false, 16, len, iov, &n);
    if (!err)
        err = disk_io(vb, iov, n, sector * SECTOR, !to_guest);
    if (err) {
        vlog(vb, "%s at sector %" PRIu64 ": %s", to_guest ? "read" : "write", sector, strerror(-err));
        return BLK_S_IOERR;
    }
    if (to_guest) {
        vb->st.bytes_read += len;
        /* the used ring's length field is 32 bits; a longer read is the driver's folly */
        *written = len < UINT32_MAX ? (uint32_t)len : UINT32_MAX - 1;
    } else {
        vb->st.bytes_written += len;
    }
    return BLK_S_OK;
}

static uint8_t blk_get_id(struct vblk *vb, const struct chain *c, uint32_t *written)
{
    uint64_t room = c->in_len - 1;
    size_t n = room < BLK_ID_BYTES ? (size_t)room : BLK_ID_BYTES;
    if (chain_copy_in(vb, c, 0, vb->serial, n))
        return BLK_S_IOERR;
    *written = (uint32_t)n;
    return BLK_S_OK;
}

static uint8_t blk_execute(struct vblk *vb, const struct chain *c, uint32_t *written)
{
    uint8_t hdr[16];
    if (c->out_len < sizeof(hdr) || chain_copy_out(vb, c, 0, hdr, sizeof(hdr))) {
        vlog(vb, "request header missing or not in mapped memory");
        return BLK_S_IOERR;
    }
    uint32_t type;
    uint64_t sector;
    memcpy(&type, hdr, 4);
    memcpy(&sector, hdr + 8, 8);
    type = le32toh(type);
    sector = le64toh(sector);
    switch (type) {
    case BLK_T_IN:
    case BLK_T_OUT:
        return blk_rw(vb, c, type, sector, written);
    case BLK_T_FLUSH:
        vb->st.flushes++;
        return fdatasync(vb->fd) ? BLK_S_IOERR : BLK_S_OK;
    case BLK_T_GET_ID:
        return blk_get_id(vb, c, written);
    default:
        vlog(vb, "unsupported request type %" PRIu32, type);
        return BLK_S_UNSUPP;
    }
}

/* The status is the last byte the chain lets the device write. */
static uint8_t *status_ptr(struct vblk *vb, const struct chain *c)
{
    for (unsigned i = c->n_in; i-- > 0;) {
        if (c->in[i].len)
            return ufio_dev_dma_ptr(vb->dev, c->in[i].addr + c->in[i].len - 1, 1, true);
    }
    return NULL;
}

/* One chain: gathers, executes, writes the status byte. Returns the bytes
 * written to the driver's buffers (for the used ring), or -1 if the chain is
 * malformed (the device then needs a reset). */
static int64_t handle_chain(struct vblk *vb, const struct vq *q, uint16_t head)
{
    static struct chain c; /* large; one request at a time */
    const char *bad = chain_gather(vb, q, head, &c);
    if (!bad && c.in_len == 0)
        bad = "request without a status byte";
    uint8_t *status = NULL;
    if (!bad && !(status = status_ptr(vb, &c)))
        bad = "status byte not in mapped memory";
    if (bad) {
        needs_reset(vb, bad);
        return -1;
    }
    uint32_t written = 0;
    uint8_t s = blk_execute(vb, &c, &written);
    vb->st.requests++;
    vb->st.ioerr += s == BLK_S_IOERR;
    vb->st.unsupp += s == BLK_S_UNSUPP;
    *status = s;
    return (int64_t)written + 1;
}

/* ---- virtqueue processing ----------------------------------------------------------- */

struct rings {
    volatile struct vring_avail *avail;
    volatile struct vring_used *used;
};

static bool rings_map(struct vblk *vb, const struct vq *q, struct rings *r)
{
    r->avail = ufio_dev_dma_ptr(vb->dev, q->driver, 6 + 2ull * q->size, false);
    r->used = ufio_dev_dma_ptr(vb->dev, q->device, 6 + 8ull * q->size, true);
    return r->avail && r->used;
}

static void vq_process(struct vblk *vb, unsigned qi)
{
    struct vq *q = &vb->vq[qi];
    struct rings r;
    if (!rings_map(vb, q, &r)) {
        needs_reset(vb, "rings not in mapped memory");
        return;
    }
    bool completed = false;
    for (;;) {
        uint16_t avail_idx = le16toh(__atomic_load_n(&r.avail->idx, __ATOMIC_ACQUIRE));
        if ((uint16_t)(avail_idx - q->last_avail) > q->size) {
            needs_reset(vb, "available index ran more than a queue ahead");
            return;
        }
        if (avail_idx == q->last_avail)
            break;
        while (q->last_avail != avail_idx) {
            uint16_t head = le16toh(r.avail->ring[q->last_avail % q->size]);
            q->last_avail++;
            int64_t written = handle_chain(vb, q, head);
            if (written < 0)
                return;
            volatile struct vring_used_elem *e = &r.used->ring[q->used_idx % q->size];
            e->id = htole32(head);
            e->len = htole32((uint32_t)written);
            q->used_idx++;
            /* the element must be visible before the index that publishes it */
            __atomic_store_n(&r.used->idx, htole16(q->used_idx), __ATOMIC_RELEASE);
            completed = true;
        }
    }
    if (!completed)
        return;
    /* order our used->idx store before reading the driver's interrupt wish */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!(le16toh(r.avail->flags) & VRING_AVAIL_F_NO_INTERRUPT))
        notify_driver(vb, q->msix_vector, 1);
}

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
    img[CC_CFG_GENERATION] = 0; /* the device config never changes */
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

static bool queue_valid(const struct vq *q)
{
    return q->size && q->size <= QUEUE_MAX && (q->size & (q->size - 1)) == 0 && q->desc % 16 == 0 &&
           q->driver % 2 == 0 && q->device % 4 == 0;
}

static void queue_enable(struct vblk *vb, struct vq *q)
{
    if (!queue_valid(q)) {
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
static bool device_live(const struct vblk *vb)
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
            if (device_live(vb) && vb->vq[qi].enabled)
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

static int build(struct ufio_dev *dev, struct vblk *vb)
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

static int vblk_dev_reset(struct ufio_dev *dev, void *opaque)
{
    vblk_reset(opaque);
    return 0;
}

/* The driver state belonged to the client that left (its rings were in its memory). */
static void vblk_detach(struct ufio_dev *dev, void *opaque)
{
    vblk_reset(opaque);
}

/* ---- the backing file ------------------------------------------------------------------------------ */

static int open_backing(struct vblk *vb)
{
    vb->fd = open(vb->path, (vb->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (vb->fd < 0)
        return -errno;
    struct stat st;
    if (fstat(vb->fd, &st) < 0)
        return -errno;
    uint64_t size = (uint64_t)st.st_size;
    if (S_ISBLK(st.st_mode)) {
        if (ioctl(vb->fd, BLKGETSIZE64, &size) < 0)
            return -errno;
    } else if (!S_ISREG(st.st_mode)) {
        return -EINVAL;
    }
    if (size % SECTOR)
        fprintf(stderr, PROG ": %s: the last %" PRIu64 " bytes are not a whole sector; ignored\n", vb->path,
                size % SECTOR);
    vb->capacity = size / SECTOR;
    if (!vb->capacity)
        return -EINVAL;
    if (vb->direct_fd == -2) {
        vb->direct_fd = open(vb->path, (vb->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_DIRECT);
        if (vb->direct_fd < 0)
            return -errno;
    }
    return 0;
}

/* ---- main ------------------------------------------------------------------------------------------- */

static void on_signal(int sig)
{
    (void)sig;
    if (the_dev)
        ufio_dev_stop(the_dev);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " --file=PATH [--socket-path=PATH] [--readonly] [--direct] [--serial=ID]\n"
            "                       [--poll-us=N] [-v]\n"
            "Serves a virtio 1.x PCI block device (1af4:1042) backed by PATH over vfio-user\n"
            "(docs/virtio-blk.md).\n"
            "  --file=PATH         backing file or block device (required; its size is the disk's)\n"
            "  --socket-path=PATH  listen on PATH (default " DEFAULT_SOCKET ")\n"
            "  --readonly          offer VIRTIO_BLK_F_RO; writes fail with IOERR\n"
            "  --direct            O_DIRECT to the file for page-aligned requests (others,\n"
            "                      and FLUSH, go through the page cache)\n"
            "  --serial=ID         the GET_ID string, at most 20 bytes (default ufio-virtio-blk)\n"
            "  --poll-us=N         busy-poll up to N microseconds after each message before\n"
            "                      sleeping (default 0: always sleep)\n"
            "  -v, --verbose       log driver activity and protocol errors to stderr\n"
            "  -h, --help          this text\n"
            "Keeps serving across client reconnects until SIGTERM/SIGINT, then removes the socket.\n");
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v > max || s[0] == '-')
        return -EINVAL;
    *out = v;
    return 0;
}

static void print_stats(const struct vblk *vb)
{
    fprintf(stderr,
            PROG ": %" PRIu64 " requests (%" PRIu64 " with O_DIRECT), %" PRIu64 " bytes read, %" PRIu64
                 " bytes written, %" PRIu64 " flushes, %" PRIu64 " IOERR, %" PRIu64 " UNSUPP\n",
            vb->st.requests, vb->st.direct, vb->st.bytes_read, vb->st.bytes_written, vb->st.flushes, vb->st.ioerr,
            vb->st.unsupp);
}

int main(int argc, char **argv)
{
    static struct vblk vb = { .fd = -1, .direct_fd = -1 };
    const char *sock = DEFAULT_SOCKET, *serial = "ufio-virtio-blk";
    unsigned long poll_us = 0;
    static const struct option opts[] = {
        { "socket-path", required_argument, NULL, 's' },
        { "file", required_argument, NULL, 'f' },
        { "readonly", no_argument, NULL, 'r' },
        { "direct", no_argument, NULL, 'd' },
        { "serial", required_argument, NULL, 'S' },
        { "poll-us", required_argument, NULL, 'p' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (c) {
        case 's': sock = optarg; break;
        case 'f': vb.path = optarg; break;
        case 'r': vb.readonly = true; break;
        case 'd': vb.direct_fd = -2; break; /* opened with the file */
        case 'S': serial = optarg; break;
        case 'p':
            if (parse_uint(optarg, UFIO_MAX_POLL_US, &poll_us)) {
                fprintf(stderr, PROG ": bad --poll-us value '%s'\n", optarg);
                return 2;
            }
            break;
        case 'v': vb.verbose = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || !vb.path) {
        if (!vb.path)
            fprintf(stderr, PROG ": --file is required\n");
        usage(stderr);
        return 2;
    }
    if (strlen(serial) > BLK_ID_BYTES) {
        fprintf(stderr, PROG ": --serial is longer than %d bytes\n", BLK_ID_BYTES);
        return 2;
    }
    memcpy(vb.serial, serial, strlen(serial)); /* zero-padded; unterminated at 20 bytes, as the spec says */
    if (vb.verbose)
        ufio_set_log(NULL, NULL, UFIO_LOG_DEBUG);

    int err = open_backing(&vb);
    if (err) {
        fprintf(stderr, PROG ": %s: %s\n", vb.path,
                err == -EINVAL ? "not a regular file or block device of at least 512 bytes" : strerror(-err));
        return 1;
    }
    vb.host_features = F_VERSION_1 | F_RING_INDIRECT_DESC | F_BLK_SEG_MAX | F_BLK_BLK_SIZE | F_BLK_FLUSH |
                       (vb.readonly ? F_BLK_RO : 0);
    vblk_reset(&vb);

    const struct ufio_pci_ids ids = {
        .vendor_id = VIRTIO_VENDOR, .device_id = VIRTIO_DEV_BLK_MODERN,
        .subsys_vendor_id = VIRTIO_VENDOR, .subsys_id = VIRTIO_SUBSYS_ID,
        .class_code = 0x018000, .revision = 1,
    };
    const struct ufio_dev_ops ops = { .reset = vblk_dev_reset, .detach = vblk_detach,  };
    struct ufio_dev *dev = NULL;
    err = ufio_dev_create(PROG, &ids, &ops, &vb, &dev);
    if (!err)
        err = build(dev, &vb);
    if (!err)
        err = ufio_dev_set_poll_budget(dev, (unsigned)poll_us);
    if (err) {
        fprintf(stderr, PROG ": cannot build the device: %s\n", strerror(-err));
        ufio_dev_destroy(dev);
        close(vb.fd);
        return 1;
    }
    vb.dev = dev;
    err = ufio_dev_listen(dev, sock);
    if (err) {
        fprintf(stderr, PROG ": cannot listen on %s: %s\n", sock, strerror(-err));
        ufio_dev_destroy(dev);
        close(vb.fd);
        return 1;
    }
    the_dev = dev;
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    printf("listening on %s (%s, %" PRIu64 " sectors%s)\n", sock, vb.path, vb.capacity,
           vb.readonly ? ", read-only" : "");
    fflush(stdout);

    err = ufio_dev_run(dev);
    the_dev = NULL;
    ufio_dev_destroy(dev);
    print_stats(&vb);
    close(vb.fd);
    if (vb.direct_fd >= 0)
        close(vb.direct_fd);
    if (err) {
        fprintf(stderr, PROG ": %s\n", strerror(-err));
        return 1;
    }
    return 0;
}
