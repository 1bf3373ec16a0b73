/*
 * The owner's DMA mappings: a table (dma_tree.c) of non-overlapping ranges, each
 * either mmap'd from the fd the client passed or served by DMA_READ/DMA_WRITE
 * messages; bounds-checked translation; dirty-page logging of device writes.
 */
#include "server/dev_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

#define DMA_PAGE 4096u
/* Dirty bitmaps are sized from mapping sizes the client chose: cap their sum
 * (256 MiB of bitmap covers 8 TiB at 4 KiB pages). */
#define DMA_LOG_MAX_BITMAP (256ull << 20)

static size_t dirty_words(uint64_t size, uint64_t pgsize)
{
    uint64_t pages = size / pgsize + (size % pgsize != 0);
    return (size_t)((pages + 63) / 64);
}

struct sum_ctx {
    uint64_t pgsize, sum;
};

static bool add_log_bytes(struct ufio_dma_region *r, void *opaque)
{
    struct sum_ctx *c = opaque;
    c->sum += dirty_words(r->size, c->pgsize) * 8;
    return true;
}

static uint64_t log_bytes(const struct ufio_dma_table *t, uint64_t pgsize)
{
    struct sum_ctx c = { pgsize, 0 };
    dma_tree_walk(t, 0, UINT64_MAX, add_log_bytes, &c);
    return c.sum;
}

static int region_log_alloc(struct ufio_dma_region *r, uint64_t pgsize)
{
    free(r->dirty);
    r->dirty = NULL;
    if (dirty_words(r->size, pgsize) * 8 > DMA_LOG_MAX_BITMAP)
        return -E2BIG;
    r->dirty = calloc(dirty_words(r->size, pgsize), sizeof(uint64_t));
    return r->dirty ? 0 : -ENOMEM;
}

static void region_release(struct ufio_dev *dev, struct ufio_dma_region *r)
{
    pt_dma_unmap(dev, r);
    if (dev->ops.dma_unmap)
        dev->ops.dma_unmap(dev, dev->opaque, r->iova, r->size);
    if (r->map_base)
        munmap(r->map_base, r->map_len);
    free(r->dirty);
    if (r->fd >= 0)
        close(r->fd);
}

struct ufio_dma_region *dma_find(struct ufio_dev *dev, uint64_t iova)
{
    struct ufio_dma_region *r = dma_tree_lower_bound(&dev->dma, iova);
    return r && r->iova <= iova ? r : NULL;
}

int dma_map(struct ufio_dev *dev, const struct ufio_dma_map *m, int fd)
{
    struct ufio_dma_table *t = &dev->dma;
    /* the decoder checked size > 0 and no wrap-around */
    if ((m->addr | m->size) % DMA_PAGE)
        return -EINVAL;
    if (t->n >= dev->lim.max_dma_maps)
        return -ENOSPC;
    struct ufio_dma_region *next = dma_tree_lower_bound(t, m->addr);
    if (next && next->iova < m->addr + m->size)
        return -EEXIST;

    struct ufio_dma_region r = { .iova = m->addr, .size = m->size, .prot = m->flags, .fd = -1,
                                 .offset = m->offset };
    if (fd >= 0) {
        /* Mapping past the end of the file would turn an access into SIGBUS. */
        struct stat st;
        if (fstat(fd, &st) < 0)
            return -errno;
        if (!S_ISREG(st.st_mode) || st.st_size < 0 || !ufio_range_ok(m->offset, m->size, (uint64_t)st.st_size))
            return -EINVAL;
        long pg = sysconf(_SC_PAGESIZE);
        uint64_t delta = m->offset % (uint64_t)pg;
        int prot = ((m->flags & VFIO_USER_F_DMA_REGION_READ) ? PROT_READ : 0) |
                   ((m->flags & VFIO_USER_F_DMA_REGION_WRITE) ? PROT_WRITE : 0);
        size_t len = (size_t)(m->size + delta);
        void *p = mmap(NULL, len, prot ? prot : PROT_NONE, MAP_SHARED, fd, (off_t)(m->offset - delta));
        if (p == MAP_FAILED)
            return -errno;
        r.map_base = p;
        r.map_len = len;
        r.mem = (uint8_t *)p + delta;
        r.fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (r.fd < 0) {
            munmap(p, len);
            return -errno;
        }
    }
    if (t->logging && (log_bytes(t, t->log_pgsize) + dirty_words(r.size, t->log_pgsize) * 8 > DMA_LOG_MAX_BITMAP ||
                       region_log_alloc(&r, t->log_pgsize))) {
        if (r.map_base)
            munmap(r.map_base, r.map_len);
        if (r.fd >= 0)
            close(r.fd);
        return -E2BIG;
    }
    /* a pass-through device maps it into its IOMMU; undone in region_release() */
    int perr = pt_dma_map(dev, &r);
    if (perr) {
        if (r.map_base)
            munmap(r.map_base, r.map_len);
        free(r.dirty);
        if (r.fd >= 0)
            close(r.fd);
        return perr;
    }
    if (dma_tree_insert(t, &r)) {
        pt_dma_unmap(dev, &r);
        if (r.map_base)
            munmap(r.map_base, r.map_len);
        free(r.dirty);
        if (r.fd >= 0)
            close(r.fd);
        return -ENOMEM;
    }
    if (dev->ops.dma_map)
        dev->ops.dma_map(dev, dev->opaque, r.iova, r.size, r.prot);
    return 0;
}

int dma_unmap(struct ufio_dev *dev, const struct ufio_dma_unmap *u)
{
    if (u->flags & VFIO_DMA_UNMAP_FLAG_ALL) {
        dma_unmap_all(dev);
        return 0;
    }
    struct ufio_dma_table *t = &dev->dma;
    struct ufio_dma_region *r = dma_tree_lower_bound(t, u->addr);
    if (!r || r->iova != u->addr || r->size != u->size)
        return -ENOENT; /* the spec allows no partial unmaps */
    region_release(dev, r);
    dma_tree_remove(t, r);
    return 0;
}

int dma_unmap_find(struct ufio_dev *dev, const struct ufio_dma_unmap *u)
{
    if (u->flags & VFIO_DMA_UNMAP_FLAG_ALL)
        return (int)(dev->dma.n > INT32_MAX ? INT32_MAX : dev->dma.n);
    struct ufio_dma_region *r = dma_tree_lower_bound(&dev->dma, u->addr);
    return r && r->iova == u->addr && r->size == u->size ? 1 : -ENOENT;
}

static void release_cb(struct ufio_dma_region *r, void *opaque)
{
    region_release(opaque, r);
}

void dma_unmap_all(struct ufio_dev *dev)
{
    dma_tree_clear(&dev->dma, release_cb, dev);
}

void dma_mark_dirty(struct ufio_dev *dev, struct ufio_dma_region *r, uint64_t iova, uint64_t len)
{
    if (!dev->dma.logging || !r->dirty || len == 0)
        return;
    uint64_t pg = dev->dma.log_pgsize;
    uint64_t first = (iova - r->iova) / pg, last = (iova - r->iova + len - 1) / pg;
    for (uint64_t p = first; p <= last; p++)
        __atomic_fetch_or(&r->dirty[p / 64], 1ull << (p % 64), __ATOMIC_RELAXED);
}

UFIO_API void ufio_dev_dma_mark_dirty(struct ufio_dev *dev, uint64_t iova, size_t len)
{
    while (len) {
        struct ufio_dma_region *r = dma_tree_lower_bound(&dev->dma, iova);
        if (!r)
            return;
        if (r->iova > iova) {
            /* a hole: nothing to mark there, but the mappings after it may have been written */
            if (r->iova - iova >= len)
                return;
            len -= r->iova - iova;
            iova = r->iova;
        }
        uint64_t n = r->iova + r->size - iova;
        if (n > len)
            n = len;
        dma_mark_dirty(dev, r, iova, n);
        iova += n;
        len -= n;
    }
}

UFIO_API void *ufio_dev_dma_ptr(struct ufio_dev *dev, uint64_t iova, size_t len, bool write)
{
    struct ufio_dma_region *r = dma_find(dev, iova);
    uint32_t need = write ? VFIO_USER_F_DMA_REGION_WRITE : VFIO_USER_F_DMA_REGION_READ;
    if (!r || !r->mem || !(r->prot & need) || !ufio_range_ok(iova - r->iova, len, r->size))
        return NULL;
    if (write)
        dma_mark_dirty(dev, r, iova, len);
    return r->mem + (iova - r->iova);
}

/* One DMA_READ or DMA_WRITE message exchange for a piece within one region. */
static int dma_msg(struct ufio_dev *dev, bool write, uint64_t iova, void *buf, uint64_t n)
{
    struct ufio_dma_access a = { .addr = iova, .count = n };
    uint8_t head[16];
    ssize_t hl = ufio_dma_access_head_encode(&a, head, sizeof(head));
    if (hl < 0)
        return (int)hl;
    struct iovec iov[2] = { { head, (size_t)hl }, { buf, (size_t)n } };
    struct ufio_msg reply;
    /* a DMA_READ reply's data is received straight into buf */
    if (!dev->request)
        return -ENOTCONN;
    int err = dev->request(dev->request_opaque, write ? VFIO_USER_DMA_WRITE : VFIO_USER_DMA_READ, iov,
                           write ? 2 : 1, write ? NULL : buf, (size_t)n, &reply);
    if (err)
        return err;
    if (reply.hdr.flags & VFIO_USER_F_ERROR) {
        err = reply.hdr.error_no && reply.hdr.error_no <= UFIO_MAX_ERRNO ? -(int)reply.hdr.error_no : -EIO;
    } else if (write) {
        err = ufio_dma_write_reply_decode(reply.payload, reply.len, &a);
    } else if (reply.sunk) {
        err = reply.sunk == n && reply.len == 16 && !memcmp(reply.payload, head, 16) ? 0 : -EINVAL;
    } else {
        struct ufio_dma_access got;
        err = ufio_dma_read_reply_decode(reply.payload, reply.len, &a, &got);
        if (!err)
            memcpy(buf, got.data, (size_t)n);
    }
    if (reply.nfds)
        err = err ? err : -EINVAL;
    ufio_msg_release(&reply);
    return err;
}

static int dma_rw(struct ufio_dev *dev, uint64_t iova, uint8_t *buf, size_t len, bool write)
{
    if (!dev->request)
        return -ENOTCONN; /* no owner: nobody's memory to reach */
    uint32_t need = write ? VFIO_USER_F_DMA_REGION_WRITE : VFIO_USER_F_DMA_REGION_READ;
    uint64_t xfer = dev->peer_xfer;
    if (xfer > dev->lim.max_data_xfer_size)
        xfer = dev->lim.max_data_xfer_size;
    /* check the whole range first so a failure leaves nothing half-done */
    for (uint64_t a = iova, left = len; left;) {
        struct ufio_dma_region *r = dma_find(dev, a);
        if (!r || !(r->prot & need))
            return -EFAULT;
        uint64_t n = r->iova + r->size - a;
        if (n >= left)
            break;
        left -= n;
        a += n;
    }
    while (len) {
        struct ufio_dma_region *r = dma_find(dev, iova);
        if (!r)
            return -EFAULT; /* unmapped under us by a queued command? cannot happen: queue waits */
        uint64_t n = r->iova + r->size - iova;
        if (n > len)
            n = len;
        if (r->mem) {
            if (write)
                memcpy(r->mem + (iova - r->iova), buf, (size_t)n);
            else
                memcpy(buf, r->mem + (iova - r->iova), (size_t)n);
        } else {
            for (uint64_t done = 0; done < n;) {
                uint64_t piece = n - done < xfer ? n - done : xfer;
                int err = dma_msg(dev, write, iova + done, buf + done, piece);
                if (err)
                    return err;
                done += piece;
            }
        }
        if (write)
            dma_mark_dirty(dev, r, iova, n);
        iova += n;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

UFIO_API int ufio_dev_dma_read(struct ufio_dev *dev, uint64_t iova, void *buf, size_t len)
{
    return dma_rw(dev, iova, buf, len, false);
}

UFIO_API int ufio_dev_dma_write(struct ufio_dev *dev, uint64_t iova, const void *buf, size_t len)
{
    return dma_rw(dev, iova, (uint8_t *)buf, len, true);
}

/* ---- dirty logging (DMA_LOGGING_START/STOP/REPORT) ----------------------- */

/* sum_ctx.sum counts failures here */
static bool alloc_cb(struct ufio_dma_region *r, void *opaque)
{
    struct sum_ctx *c = opaque;
    if (region_log_alloc(r, c->pgsize)) {
        c->sum++;
        return false;
    }
    return true;
}

static bool free_cb(struct ufio_dma_region *r, void *opaque)
{
    free(r->dirty);
    r->dirty = NULL;
    return true;
}

int dma_log_start(struct ufio_dev *dev, uint64_t pgsize)
{
    struct ufio_dma_table *t = &dev->dma;
    if (t->logging)
        return -EBUSY;
    if (log_bytes(t, pgsize) > DMA_LOG_MAX_BITMAP)
        return -E2BIG;
    struct sum_ctx c = { pgsize, 0 };
    dma_tree_walk(t, 0, UINT64_MAX, alloc_cb, &c);
    if (c.sum) {
        dma_tree_walk(t, 0, UINT64_MAX, free_cb, NULL);
        return -ENOMEM;
    }
    t->log_pgsize = pgsize;
    t->logging = true;
    int err = pt_dirty_log(dev, true, pgsize);
    if (err) {
        /* the hardware cannot track: no log at all, and no stop for a start it refused */
        t->log_pgsize = 0;
        dma_log_stop(dev);
    }
    return err;
}

void dma_log_stop(struct ufio_dev *dev)
{
    struct ufio_dma_table *t = &dev->dma;
    if (t->logging && t->log_pgsize)
        (void)pt_dirty_log(dev, false, t->log_pgsize);
    dma_tree_walk(t, 0, UINT64_MAX, free_cb, NULL);
    t->logging = false;
}

/*
 * Fills bitmap (zeroed by the caller, ceil(len/pgsize/64) words) for
 * [iova, iova+len) at the report's page size and clears the logged pages
 * that lie wholly inside the range (a page straddling the edge stays dirty:
 * reporting it again later is safe, losing it is not).
 */
struct report_ctx {
    uint64_t lp, iova, end, pgsize;
    uint64_t *bitmap;
};

static bool report_cb(struct ufio_dma_region *r, void *opaque)
{
    const struct report_ctx *c = opaque;
    uint64_t lp = c->lp, iova = c->iova, end = c->end, pgsize = c->pgsize;
    uint64_t *bitmap = c->bitmap;
    if (!r->dirty)
        return true;
    uint64_t lo = r->iova > iova ? r->iova : iova;
    uint64_t hi = r->iova + r->size < end ? r->iova + r->size : end;
    /* pages [first, stop) touch [lo, hi); counted in pages so that skipping ahead cannot wrap an address */
    uint64_t span = hi - r->iova, stop = span / lp + (span % lp != 0);
    for (uint64_t p = (lo - r->iova) / lp; p < stop; p++) {
        uint64_t *w = &r->dirty[p / 64], bit = 1ull << (p % 64);
        uint64_t word = __atomic_load_n(w, __ATOMIC_RELAXED);
        if (!word) {
            p |= 63; /* a clean word: its other pages too (a peer can ask about terabytes) */
            continue;
        }
        if (!(word & bit))
            continue;
        uint64_t a = r->iova + p * lp, b = a + lp;
        if (a >= iova && b <= end)
            __atomic_fetch_and(w, ~bit, __ATOMIC_RELAXED);
        if (a < lo)
            a = lo;
        if (b > hi)
            b = hi;
        for (uint64_t k = (a - iova) / pgsize; k <= (b - 1 - iova) / pgsize; k++)
            bitmap[k / 64] |= 1ull << (k % 64);
    }
    return true;
}

int dma_log_report(struct ufio_dev *dev, uint64_t iova, uint64_t len, uint64_t pgsize, uint64_t *bitmap)
{
    struct ufio_dma_table *t = &dev->dma;
    if (!t->logging)
        return -EINVAL;
    pt_dirty_sync(dev, iova, len, t->log_pgsize);
    struct report_ctx c = { t->log_pgsize, iova, iova + len, pgsize, bitmap };
    dma_tree_walk(t, iova, iova + len, report_cb, &c);
    return 0;
}
