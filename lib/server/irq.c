/*
 * Interrupts: the client's eventfds per vector, INTx auto-masking, MSI
 * masking from config space, and MSI-X table/PBA emulation.
 */
#include "server/dev_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

int irq_init_index(struct ufio_dev *dev, unsigned index, uint32_t count, uint32_t info_flags)
{
    struct ufio_irq_index *x = &dev->irqs[index];
    struct ufio_irq_vec *v = NULL;
    if (count) {
        v = calloc(count, sizeof(*v));
        if (!v)
            return -ENOMEM;
        for (uint32_t i = 0; i < count; i++)
            v[i].efd = -1;
    }
    for (uint32_t i = 0; i < x->count; i++)
        if (x->v[i].efd >= 0)
            close(x->v[i].efd);
    free(x->v);
    x->v = v;
    x->count = count;
    x->info_flags = count ? info_flags : 0;
    return 0;
}

void irq_free_all(struct ufio_dev *dev)
{
    for (unsigned i = 0; i < UFIO_IRQ_NUM; i++)
        irq_init_index(dev, i, 0, 0);
    free(dev->msix.table);
    dev->msix.table = NULL;
}

void irq_drop_client_fds(struct ufio_dev *dev)
{
    pt_irq_drop(dev);
    dev->msix.table_used = false;
    for (unsigned i = 0; i < UFIO_IRQ_NUM; i++) {
        struct ufio_irq_index *x = &dev->irqs[i];
        for (uint32_t j = 0; j < x->count; j++) {
            if (x->v[j].efd >= 0)
                close(x->v[j].efd);
            x->v[j].efd = -1;
        }
    }
}

/* ---- signalling ------------------------------------------------------- */

static int signal_vec(struct ufio_irq_vec *v)
{
    if (v->efd < 0)
        return -ENOENT;
    uint64_t one = 1;
    if (write(v->efd, &one, sizeof(one)) != sizeof(one))
        return errno == EAGAIN ? 0 : -errno; /* a saturated counter already signals */
    return 0;
}

static uint16_t msix_ctrl(const struct ufio_dev *dev)
{
    return pci_cfg_get16(&dev->cfg, dev->cfg.msix_off + PCI_MSIX_FLAGS);
}

static bool msix_enabled(const struct ufio_dev *dev)
{
    return dev->msix.nvec && (msix_ctrl(dev) & PCI_MSIX_FLAGS_ENABLE);
}

/*
 * QEMU emulates the MSI-X table itself and never forwards table accesses: it
 * masks a vector by swapping the eventfd. So the per-vector mask bits of our
 * table count only once the client has written the table (a client that
 * leaves the table to us, as ours does); the function mask always counts.
 */
static bool msix_vec_masked(const struct ufio_dev *dev, unsigned v)
{
    if (msix_ctrl(dev) & PCI_MSIX_FLAGS_MASKALL)
        return true;
    return dev->msix.table_used && (dev->msix.table[v * 16 + 12] & 1);
}

static uint16_t msi_ctrl(const struct ufio_dev *dev)
{
    return pci_cfg_get16(&dev->cfg, dev->cfg.msi_off + PCI_MSI_FLAGS);
}

static bool msi_enabled(const struct ufio_dev *dev)
{
    return dev->cfg.msi_off && (msi_ctrl(dev) & PCI_MSI_FLAGS_ENABLE);
}

/* offset of the MSI mask register, 0 if the capability has none */
static unsigned msi_mask_off(const struct ufio_dev *dev)
{
    uint16_t c = msi_ctrl(dev);
    if (!(c & PCI_MSI_FLAGS_MASKBIT))
        return 0;
    return dev->cfg.msi_off + ((c & PCI_MSI_FLAGS_64BIT) ? 16 : 12);
}

static void msi_set_pending(struct ufio_dev *dev, unsigned v, bool on)
{
    unsigned m = msi_mask_off(dev);
    if (!m)
        return;
    uint32_t p = pci_cfg_get32(&dev->cfg, m + 4);
    p = on ? p | (1u << v) : p & ~(1u << v);
    for (int i = 0; i < 4; i++)
        dev->cfg.space[m + 4 + i] = (uint8_t)(p >> (8 * i));
}

UFIO_API int ufio_dev_irq_mode(struct ufio_dev *dev)
{
    if (msix_enabled(dev))
        return UFIO_IRQ_MSIX;
    if (msi_enabled(dev))
        return UFIO_IRQ_MSI;
    if (dev->irqs[UFIO_IRQ_INTX].count)
        return UFIO_IRQ_INTX;
    return -1;
}

static int intx_deliver(struct ufio_dev *dev, struct ufio_irq_vec *v)
{
    uint16_t cmd = pci_cfg_get16(&dev->cfg, PCI_COMMAND);
    dev->cfg.space[PCI_STATUS] |= PCI_STATUS_INTERRUPT;
    if ((cmd & PCI_COMMAND_INTX_DISABLE) || v->masked || v->efd < 0) {
        v->pending = true;
        return v->efd < 0 && !v->masked && !(cmd & PCI_COMMAND_INTX_DISABLE) ? -ENOENT : 1;
    }
    v->pending = false;
    v->masked = true; /* INTx is auto-masked until the client unmasks it */
    return signal_vec(v);
}

UFIO_API int ufio_dev_irq_trigger(struct ufio_dev *dev, unsigned index, uint32_t vector)
{
    if (index >= UFIO_IRQ_NUM || vector >= dev->irqs[index].count)
        return -EINVAL;
    struct ufio_irq_vec *v = &dev->irqs[index].v[vector];
    switch (index) {
    case UFIO_IRQ_MSIX:
        if (!msix_enabled(dev))
            return -EAGAIN;
        if (msix_vec_masked(dev, vector)) {
            v->pending = true;
            return 1;
        }
        v->pending = false;
        return signal_vec(v);
    case UFIO_IRQ_MSI: {
        if (!msi_enabled(dev))
            return -EAGAIN;
        unsigned nen = 1u << ((msi_ctrl(dev) & PCI_MSI_FLAGS_QSIZE) >> 4);
        if (vector >= nen)
            return -EINVAL;
        unsigned m = msi_mask_off(dev);
        if (m && (pci_cfg_get32(&dev->cfg, m) & (1u << vector))) {
            v->pending = true;
            msi_set_pending(dev, vector, true);
            return 1;
        }
        v->pending = false;
        return signal_vec(v);
    }
    case UFIO_IRQ_INTX:
        return intx_deliver(dev, v);
    default:
        return signal_vec(v);
    }
}

/* Delivers MSI/MSI-X interrupts left pending once their mask is lifted. */
static void deliver_unmasked(struct ufio_dev *dev)
{
    struct ufio_irq_index *x = &dev->irqs[UFIO_IRQ_MSIX];
    if (msix_enabled(dev)) {
        for (unsigned i = 0; i < x->count; i++)
            if (x->v[i].pending && !msix_vec_masked(dev, i)) {
                x->v[i].pending = false;
                signal_vec(&x->v[i]);
            }
    }
    x = &dev->irqs[UFIO_IRQ_MSI];
    unsigned m = msi_mask_off(dev);
    if (msi_enabled(dev) && m) {
        uint32_t mask = pci_cfg_get32(&dev->cfg, m);
        for (unsigned i = 0; i < x->count; i++)
            if (x->v[i].pending && !(mask & (1u << i))) {
                x->v[i].pending = false;
                msi_set_pending(dev, i, false);
                signal_vec(&x->v[i]);
            }
    }
}

void irq_cfg_written(struct ufio_dev *dev, uint32_t off, uint32_t len)
{
    (void)off;
    (void)len;
    deliver_unmasked(dev);
    /* INTx re-enabled in the command register: deliver a pending one */
    struct ufio_irq_index *x = &dev->irqs[UFIO_IRQ_INTX];
    if (x->count && x->v[0].pending &&
        !(pci_cfg_get16(&dev->cfg, PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE) && !x->v[0].masked)
        intx_deliver(dev, &x->v[0]);
}

void irq_reset(struct ufio_dev *dev)
{
    for (unsigned i = 0; i < UFIO_IRQ_NUM; i++)
        for (uint32_t j = 0; j < dev->irqs[i].count; j++) {
            dev->irqs[i].v[j].masked = false;
            dev->irqs[i].v[j].pending = false;
        }
    if (dev->msix.nvec) {
        dev->msix.table_used = false;
        memset(dev->msix.table, 0, (size_t)dev->msix.nvec * 16);
        for (unsigned v = 0; v < dev->msix.nvec; v++)
            dev->msix.table[v * 16 + 12] = 1;
    }
}

/* ---- MSI-X table and PBA ------------------------------------------------ */

/*
 * Whether [off, ...) of a BAR starts inside the MSI-X table or PBA; *extent
 * gets the bytes left in that structure from off.
 */
bool msix_claims(struct ufio_dev *dev, unsigned bar, uint64_t off, uint64_t *extent)
{
    const struct ufio_msix *x = &dev->msix;
    if (!x->nvec)
        return false;
    uint64_t tlen = (uint64_t)x->nvec * 16, plen = ((x->nvec + 63) / 64) * 8;
    if (bar == x->table_bar && off >= x->table_off && off - x->table_off < tlen) {
        *extent = tlen - (off - x->table_off);
        return true;
    }
    if (bar == x->pba_bar && off >= x->pba_off && off - x->pba_off < plen) {
        *extent = plen - (off - x->pba_off);
        return true;
    }
    return false;
}

int msix_access(struct ufio_dev *dev, unsigned bar, uint64_t off, void *buf, uint32_t len, bool is_write)
{
    struct ufio_msix *x = &dev->msix;
    uint64_t tlen = (uint64_t)x->nvec * 16;
    if (bar == x->table_bar && off >= x->table_off && off - x->table_off < tlen) {
        uint64_t t = off - x->table_off;
        if (!ufio_range_ok(t, len, tlen))
            return -EINVAL;
        if (!is_write) {
            memcpy(buf, x->table + t, len);
            return 0;
        }
        x->table_used = true;
        /* bits 31:1 of vector control are reserved: keep them zero */
        const uint8_t *src = buf;
        for (uint32_t i = 0; i < len; i++) {
            uint64_t b = t + i;
            uint8_t val = src[i];
            if (b % 16 == 12)
                val &= 1;
            else if (b % 16 > 12)
                val = 0;
            x->table[b] = val;
        }
        deliver_unmasked(dev);
        return 0;
    }
    /* PBA: read-only pending bits */
    uint64_t p = off - x->pba_off, plen = ((x->nvec + 63) / 64) * 8;
    if (!ufio_range_ok(p, len, plen))
        return -EINVAL;
    if (is_write)
        return 0; /* writes to the PBA are ignored, as the spec says for read-only bits */
    uint8_t *dst = buf;
    struct ufio_irq_index *ix = &dev->irqs[UFIO_IRQ_MSIX];
    for (uint32_t i = 0; i < len; i++) {
        uint8_t byte = 0;
        for (unsigned bit = 0; bit < 8; bit++) {
            uint64_t vec = (p + i) * 8 + bit;
            if (vec < ix->count && ix->v[vec].pending)
                byte |= (uint8_t)(1u << bit);
        }
        dst[i] = byte;
    }
    return 0;
}

/* ---- SET_IRQS ------------------------------------------------------------ */

/* An eventfd is all we (or the hardware, for a pass-through device) will
 * signal; anything else from the client is refused. */
bool irq_is_eventfd(int fd)
{
    char path[64], target[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n <= 0)
        return false;
    target[n] = 0;
    return strcmp(target, "anon_inode:[eventfd]") == 0;
}

int irq_set(struct ufio_dev *dev, const struct ufio_irq_set *s, struct ufio_msg *m)
{
    struct ufio_irq_index *x = &dev->irqs[s->index];
    uint32_t data = s->flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
    uint32_t action = s->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;

    if (s->count == 0) {
        /* decoder guarantees TRIGGER + DATA_NONE + start 0: disable the index */
        for (uint32_t i = 0; i < x->count; i++) {
            if (x->v[i].efd >= 0)
                close(x->v[i].efd);
            x->v[i].efd = -1;
        }
        return 0;
    }
    if (x->count == 0 || s->start >= x->count || s->count > x->count - s->start)
        return -EINVAL;
    if (action != VFIO_IRQ_SET_ACTION_TRIGGER && !(x->info_flags & VFIO_IRQ_INFO_MASKABLE))
        return -EINVAL;

    if (data == VFIO_IRQ_SET_DATA_EVENTFD) {
        if (action != VFIO_IRQ_SET_ACTION_TRIGGER)
            return -ENOTSUP; /* (un)mask eventfds (irqfd-style) are not implemented */
        for (size_t i = 0; i < m->nfds; i++)
            if (!irq_is_eventfd(m->fds[i]))
                return -EINVAL;
        for (uint32_t i = 0; i < s->count; i++) {
            struct ufio_irq_vec *v = &x->v[s->start + i];
            if (v->efd >= 0)
                close(v->efd);
            v->efd = m->nfds ? ufio_msg_take_fd(m, i) : -1;
        }
        /* an interrupt raised before the fd existed is delivered now if allowed */
        if (m->nfds) {
            deliver_unmasked(dev);
        }
        return 0;
    }

    for (uint32_t i = 0; i < s->count; i++) {
        if (data == VFIO_IRQ_SET_DATA_BOOL && !s->bools[i])
            continue;
        struct ufio_irq_vec *v = &x->v[s->start + i];
        switch (action) {
        case VFIO_IRQ_SET_ACTION_TRIGGER:
            /* loopback: the client asks us to fire the vector */
            signal_vec(v);
            break;
        case VFIO_IRQ_SET_ACTION_MASK:
            v->masked = true;
            break;
        case VFIO_IRQ_SET_ACTION_UNMASK:
            v->masked = false;
            if (v->pending && s->index == UFIO_IRQ_INTX)
                intx_deliver(dev, v);
            break;
        }
    }
    return 0;
}
