/* ufio-virtio-blk: resets and interrupts, guest memory, descriptor chains, the virtqueue. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <ufio/server.h>

#include "vblk.h"

/* ---- reset and interrupts ------------------------------------------------------ */

static void vq_reset(struct vq *q)
{
    *q = (struct vq){ .size = QUEUE_MAX, .msix_vector = NO_VECTOR };
}

void vblk_reset(struct vblk *vb)
{
    vb->guest_features = 0;
    vb->dfselect = vb->gfselect = 0;
    vb->msix_config = NO_VECTOR;
    vb->status = 0;
    vb->isr = 0;
    vb->queue_sel = 0;
    vb->broken = false;
    vb->kicked = 0;
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
void needs_reset(struct vblk *vb, const char *why)
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
const char *chain_gather(struct vblk *vb, const struct vq *q, uint16_t head, struct chain *c)
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
int chain_iov(struct vblk *vb, const struct seg *segs, unsigned n, bool write, uint64_t off,
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

int chain_copy_out(struct vblk *vb, const struct chain *c, uint64_t off, void *buf, size_t len)
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

int chain_copy_in(struct vblk *vb, const struct chain *c, uint64_t off, const void *buf, size_t len)
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

void vq_process(struct vblk *vb, unsigned qi)
{
    struct vq *q = &vb->vq[qi];
    struct rings r;
    if (!rings_map(vb, q, &r)) {
        needs_reset(vb, "rings not in mapped memory");
        return;
    }
    bool completed = false;
    /* At most one queue's worth per notify, so a migration state change (the
     * next message) never waits behind a driver that keeps the ring full: every
     * entry published after that is followed by its own notify. */
    unsigned budget = q->size;
    while (budget) {
        uint16_t avail_idx = le16toh(__atomic_load_n(&r.avail->idx, __ATOMIC_ACQUIRE));
        if ((uint16_t)(avail_idx - q->last_avail) > q->size) {
            needs_reset(vb, "available index ran more than a queue ahead");
            return;
        }
        if (avail_idx == q->last_avail)
            break;
        while (q->last_avail != avail_idx && budget) {
            budget--;
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

/* The device runs again after a stop (a failed migration's source, or a
 * destination that loaded): entries the driver published meanwhile are served
 * now, notified or not. */
void vblk_kick_all(struct vblk *vb)
{
    vb->kicked = 0;
    if (!vblk_device_live(vb))
        return;
    for (unsigned i = 0; i < NUM_QUEUES; i++)
        if (vb->vq[i].enabled)
            vq_process(vb, i);
}
