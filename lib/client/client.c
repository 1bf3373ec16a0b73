/*
 * Client API: lifecycle, device description, region access, DMA, IRQs,
 * features, reconnect.
 */
#include "client/client_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/abi.h"
#include "common/log.h"

static int opts_defaults(struct ufio_client_opts *o, const struct ufio_client_opts *in)
{
    *o = (struct ufio_client_opts){ .size = sizeof(*o) };
    if (in) {
        int err = abi_struct_in(o, sizeof(*o), in);
        if (err)
            return err;
    }
    if (o->timeout_ms <= 0)
        o->timeout_ms = 5000;
    if (o->max_data_xfer_size == 0)
        o->max_data_xfer_size = UFIO_DEFAULT_MAX_DATA_XFER;
    if (o->max_data_xfer_size > UFIO_MAX_DATA_XFER_LIMIT)
        o->max_data_xfer_size = UFIO_MAX_DATA_XFER_LIMIT;
    if (o->max_msg_fds == 0 || o->max_msg_fds > UFIO_MAX_MSG_FDS_LIMIT)
        o->max_msg_fds = UFIO_MAX_MSG_FDS_LIMIT;
    if (o->role != UFIO_ROLE_OWNER_REQ && o->role != UFIO_ROLE_OBSERVER_REQ && o->role != UFIO_ROLE_CONTROLLER_REQ)
        o->role = UFIO_ROLE_DEFAULT;
    return 0;
}

/*
 * Where a session in role goes: an observer or controller tries the device's
 * management socket (PATH.mgmt) first, and the device socket itself when
 * there is none (a server without one, or one that predates it).
 */
static int connect_for_role(struct ufio_client *c, const char *path, int *fd)
{
    if (c->opts.role == UFIO_ROLE_OBSERVER_REQ || c->opts.role == UFIO_ROLE_CONTROLLER_REQ) {
        char mp[4096];
        struct stat st;
        if (ufio_mgmt_path(path, mp, sizeof(mp)) == 0 && stat(mp, &st) == 0 && S_ISSOCK(st.st_mode) &&
            ufio_sock_connect(mp, 0, fd) == 0) {
            char *p = strdup(mp);
            if (!p) {
                close(*fd);
                return -ENOMEM;
            }
            free(c->path);
            c->path = p; /* a reconnect goes the same way */
            return 0;
        }
    }
    return ufio_sock_connect(path, c->opts.timeout_ms, fd);
}

static struct ufio_client *client_alloc(const struct ufio_client_opts *opts, int *err)
{
    struct ufio_client *c = calloc(1, sizeof(*c));
    *err = -ENOMEM;
    if (!c)
        return NULL;
    *err = opts_defaults(&c->opts, opts);
    if (*err) {
        free(c);
        return NULL;
    }
    *err = -ENOMEM;
    c->post = calloc(UFIO_WRITE_MULTI_MAX, sizeof(*c->post));
    if (!c->post) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->send_lock, NULL);
    pthread_mutex_init(&c->post_lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->conn.fd = -1;
    c->twin.fd = -1;
    for (int i = 0; i < UFIO_PCI_NUM_REGIONS; i++)
        c->region_fd[i] = -1;
    return c;
}

UFIO_API int ufio_client_attach_fd(int fd, const struct ufio_client_opts *opts, struct ufio_client **out)
{
    int err;
    struct ufio_client *c = client_alloc(opts, &err);
    if (!c) {
        close(fd); /* taken over, whatever happens */
        return err;
    }
    err = ufio_set_nonblock(fd, true);
    if (!err)
        err = cl_negotiate(c, fd);
    else
        close(fd);
    if (err) {
        ufio_client_destroy(c);
        return err;
    }
    *out = c;
    return 0;
}

int cl_connect_ext(const char *path, const struct ufio_client_opts *opts, bool no_wait, uint8_t handover,
                   struct ufio_client **out)
{
    int fd, err;
    struct ufio_client *c = client_alloc(opts, &err);
    if (!c)
        return err;
    c->no_wait = no_wait;
    c->handover = handover;
    c->path = strdup(path);
    err = c->path ? connect_for_role(c, path, &fd) : -ENOMEM;
    if (!err)
        err = cl_negotiate(c, fd);
    if (!err)
        err = cl_identity_read(c, &c->ident);
    if (err) {
        ufio_client_destroy(c);
        return err;
    }
    *out = c;
    return 0;
}

UFIO_API int ufio_client_connect(const char *path, const struct ufio_client_opts *opts,
                                 struct ufio_client **out)
{
    return cl_connect_ext(path, opts, false, 0, out);
}

static void close_conns(struct ufio_client *c)
{
    ufio_conn_close(&c->conn);
    if (c->has_twin)
        ufio_conn_close(&c->twin);
    c->has_twin = false;
    for (int i = 0; i < UFIO_PCI_NUM_REGIONS; i++) {
        if (c->region_fd[i] >= 0)
            close(c->region_fd[i]);
        c->region_fd[i] = -1;
        c->region_known[i] = false;
    }
    for (int i = 0; i < CL_MAX_PENDING; i++)
        if (c->pend[i].used && c->pend[i].done)
            ufio_msg_release(&c->pend[i].reply);
}

UFIO_API void ufio_client_destroy(struct ufio_client *c)
{
    if (!c)
        return;
    close_conns(c);
    for (size_t i = 0; i < c->ndma; i++)
        if (c->dma[i].fd >= 0)
            close(c->dma[i].fd);
    free(c->dma);
    for (int i = 0; i < UFIO_IRQ_NUM; i++) {
        for (uint32_t j = 0; j < c->irq[i].count; j++)
            if (c->irq[i].fds[j] >= 0)
                close(c->irq[i].fds[j]);
        free(c->irq[i].fds);
    }
    free(c->post);
    free(c->path);
    cl_identity_free(&c->ident);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->send_lock);
    pthread_mutex_destroy(&c->post_lock);
    pthread_cond_destroy(&c->cond);
    free(c);
}

UFIO_API int ufio_client_get_caps(struct ufio_client *c, struct ufio_client_caps *caps)
{
    int err = abi_check_out(caps);
    if (!err)
        abi_struct_out(caps, &c->caps, sizeof(c->caps));
    return err;
}

/* ---- device description ---------------------------------------------------------- */

UFIO_API int ufio_client_device_info(struct ufio_client *c, struct ufio_client_device_info *info)
{
    if (abi_check_out(info))
        return -EINVAL;
    uint8_t req[16];
    struct ufio_device_info di = { .argsz = 16 };
    ssize_t n = ufio_device_info_encode(&di, req, sizeof(req));
    struct iovec iov = { req, (size_t)n };
    struct ufio_msg m;
    int err = cl_call(c, VFIO_USER_DEVICE_GET_INFO, &iov, 1, NULL, 0, &m);
    if (err)
        return err;
    err = ufio_device_info_decode(m.payload, m.len, &di); /* sizes and fds: cl_call's table check */
    if (!err && (di.num_regions > 1024 || di.num_irqs > 1024))
        err = -EPROTO;
    ufio_msg_release(&m);
    if (!err) {
        struct ufio_client_device_info out = { sizeof(out), di.flags, di.num_regions, di.num_irqs };
        abi_struct_out(info, &out, sizeof(out));
    }
    return err;
}

/*
 * REGION_INFO for index into *d (the protocol's view, areas included); caches
 * the region's size and mmap fd. *fd gets that fd (owned by the client) or -1.
 */
static int region_query(struct ufio_client *c, unsigned index, struct ufio_region_info *d, int *fd)
{
    uint32_t argsz = UFIO_REGION_INFO_SIZE + 8 + 8 + 16 * UFIO_MAX_SPARSE_AREAS + 16;
    for (int attempt = 0; attempt < 2; attempt++) {
        uint8_t req[32];
        ssize_t n = ufio_region_info_req_encode(argsz, index, req, sizeof(req));
        if (n < 0)
            return (int)n;
        struct iovec iov = { req, (size_t)n };
        struct ufio_msg m;
        int err = cl_call(c, VFIO_USER_DEVICE_GET_REGION_INFO, &iov, 1, NULL, 0, &m);
        if (err)
            return err;
        err = ufio_region_info_decode(m.payload, m.len, d);
        if (!err && d->index != index)
            err = -EPROTO;
        if (!err && d->argsz > m.len) {
            /* the answer did not fit: retry once with the size the server needs */
            uint32_t need = d->argsz;
            ufio_msg_release(&m);
            if (attempt || need > 65536)
                return -EPROTO;
            argsz = need;
            continue;
        }
        bool mmap_flag = !err && (d->flags & VFIO_REGION_INFO_FLAG_MMAP);
        if (!err && m.nfds && !mmap_flag) /* the table allows one fd: only for an mmap-able region */
            err = -EPROTO;
        if (!err) {
            *fd = -1;
            pthread_mutex_lock(&c->lock);
            if (index < UFIO_PCI_NUM_REGIONS) {
                c->region_size[index] = d->size;
                c->region_known[index] = true;
                if (m.nfds) {
                    if (c->region_fd[index] >= 0)
                        close(c->region_fd[index]);
                    c->region_fd[index] = ufio_msg_take_fd(&m, 0);
                }
                *fd = c->region_fd[index];
            }
            pthread_mutex_unlock(&c->lock);
        }
        ufio_msg_release(&m);
        return err;
    }
    return -EPROTO;
}

UFIO_API int ufio_client_region_info(struct ufio_client *c, unsigned index, struct ufio_client_region_info *ri)
{
    if (abi_check_out(ri))
        return -EINVAL;
    struct ufio_region_info *d = malloc(sizeof(*d));
    if (!d)
        return -ENOMEM;
    int fd = -1;
    int err = region_query(c, index, d, &fd);
    if (!err) {
        struct ufio_client_region_info out = {
            .size = sizeof(out),
            .index = index,
            .flags = d->flags,
            .region_size = d->size,
            .offset = d->offset,
            .fd = fd,
            .nr_areas = d->nr_areas,
            .has_type = d->has_type,
            .type = d->type,
            .subtype = d->subtype,
        };
        abi_struct_out(ri, &out, sizeof(out));
    }
    free(d);
    return err;
}

UFIO_API int ufio_client_region_areas(struct ufio_client *c, unsigned index,
                                      struct ufio_client_area *areas, uint32_t max)
{
    if (max && !areas)
        return -EINVAL;
    struct ufio_region_info *d = malloc(sizeof(*d));
    if (!d)
        return -ENOMEM;
    int fd;
    int err = region_query(c, index, d, &fd);
    if (!err) {
        for (uint32_t i = 0; i < d->nr_areas && i < max; i++)
            areas[i] = (struct ufio_client_area){ d->areas[i].offset, d->areas[i].size };
        err = (int)d->nr_areas;
    }
    free(d);
    return err;
}

UFIO_API int ufio_client_irq_info(struct ufio_client *c, unsigned index, struct ufio_client_irq_info *ii)
{
    if (abi_check_out(ii))
        return -EINVAL;
    uint8_t req[16];
    struct ufio_irq_info in = { .argsz = 16, .index = index };
    ssize_t n = ufio_irq_info_encode(&in, req, sizeof(req));
    struct iovec iov = { req, (size_t)n };
    struct ufio_msg m;
    int err = cl_call(c, VFIO_USER_DEVICE_GET_IRQ_INFO, &iov, 1, NULL, 0, &m);
    if (err)
        return err;
    struct ufio_irq_info out;
    err = ufio_irq_info_decode(m.payload, m.len, &out);
    if (!err && (out.index != index || out.count > 2048))
        err = -EPROTO;
    ufio_msg_release(&m);
    if (!err) {
        struct ufio_client_irq_info o = { sizeof(o), out.flags, out.count };
        abi_struct_out(ii, &o, sizeof(o));
    }
    return err;
}

/* ---- region access ----------------------------------------------------------------- */

static int check_region(struct ufio_client *c, unsigned region, uint64_t off, size_t len)
{
    if (region >= UFIO_PCI_NUM_REGIONS)
        return 0; /* device-specific regions: the server checks */
    pthread_mutex_lock(&c->lock);
    bool bad = c->region_known[region] && !ufio_range_ok(off, len, c->region_size[region]);
    pthread_mutex_unlock(&c->lock);
    return bad ? -EINVAL : 0;
}

static uint64_t xfer_max(struct ufio_client *c)
{
    uint64_t m = c->caps.max_data_xfer_size;
    return m > c->opts.max_data_xfer_size ? c->opts.max_data_xfer_size : m;
}

struct region_take {
    struct ufio_region_access a;
    uint8_t head[16];
    uint8_t *dst;
};

/* c->lock held (see cl_call_into): checks the echoed head, copies the data out */
static int region_take(void *arg, const struct ufio_msg *m)
{
    struct region_take *t = arg;
    if (m->sunk)
        return m->sunk != t->a.count || m->len != 16 || memcmp(m->payload, t->head, 16) ? -EPROTO : 0;
    struct ufio_region_access got;
    int err = ufio_region_read_reply_decode(m->payload, m->len, &t->a, &got);
    if (!err)
        memcpy(t->dst, got.data, t->a.count);
    return err;
}

UFIO_API int ufio_client_region_read(struct ufio_client *c, unsigned region, uint64_t offset,
                                     void *buf, size_t len)
{
    int err = check_region(c, region, offset, len);
    if (err || len == 0)
        return err;
    uint8_t *p = buf;
    uint64_t chunk = xfer_max(c);
    while (len) {
        uint32_t n = (uint32_t)(len < chunk ? len : chunk);
        struct region_take t = { .a = { .offset = offset, .region = region, .count = n }, .dst = p };
        ufio_region_access_head_encode(&t.a, t.head, sizeof(t.head));
        struct iovec iov = { t.head, 16 };
        /* a big reply is received straight into the caller's buffer */
        err = cl_call_into(c, VFIO_USER_REGION_READ, &iov, 1, t.head, p, n, region_take, &t);
        if (err)
            return err;
        p += n;
        offset += n;
        len -= n;
    }
    return 0;
}

UFIO_API int ufio_client_region_write(struct ufio_client *c, unsigned region, uint64_t offset,
                                      const void *buf, size_t len)
{
    int err = check_region(c, region, offset, len);
    if (err || len == 0)
        return err;
    const uint8_t *p = buf;
    uint64_t chunk = xfer_max(c);
    while (len) {
        uint32_t n = (uint32_t)(len < chunk ? len : chunk);
        struct ufio_region_access a = { .offset = offset, .region = region, .count = n };
        uint8_t head[16];
        ufio_region_access_head_encode(&a, head, sizeof(head));
        /* payload goes out straight from the caller's buffer */
        struct iovec iov[2] = { { head, 16 }, { (void *)p, n } };
        struct ufio_msg m;
        err = cl_call(c, VFIO_USER_REGION_WRITE, iov, 2, NULL, 0, &m);
        if (err)
            return err;
        err = ufio_region_write_reply_decode(m.payload, m.len, &a);
        ufio_msg_release(&m);
        if (err)
            return err;
        p += n;
        offset += n;
        len -= n;
    }
    return 0;
}

UFIO_API int ufio_client_flush(struct ufio_client *c)
{
    return cl_flush_posted(c);
}

UFIO_API int ufio_client_region_write_posted(struct ufio_client *c, unsigned region, uint64_t offset,
                                             const void *buf, size_t len)
{
    int err = check_region(c, region, offset, len);
    if (err || len == 0)
        return err;
    if (c->caps.write_multiple && len <= 8) {
        pthread_mutex_lock(&c->post_lock);
        struct ufio_write_multi_entry *e = &c->post[c->npost++];
        __atomic_store_n(&c->posted, true, __ATOMIC_RELEASE);
        memset(e, 0, sizeof(*e));
        e->offset = offset;
        e->region = region;
        e->count = (uint32_t)len;
        memcpy(e->data, buf, len);
        bool full = c->npost == UFIO_WRITE_MULTI_MAX;
        pthread_mutex_unlock(&c->post_lock);
        return full ? cl_flush_posted(c) : 0;
    }
    err = cl_flush_posted(c);
    const uint8_t *p = buf;
    uint64_t chunk = xfer_max(c);
    while (!err && len) {
        uint32_t n = (uint32_t)(len < chunk ? len : chunk);
        struct ufio_region_access a = { .offset = offset, .region = region, .count = n };
        uint8_t head[16];
        ufio_region_access_head_encode(&a, head, sizeof(head));
        struct iovec iov[2] = { { head, 16 }, { (void *)p, n } };
        err = cl_send_posted(c, VFIO_USER_REGION_WRITE, iov, 2);
        p += n;
        offset += n;
        len -= n;
    }
    return err;
}

UFIO_API int ufio_client_region_mmap(struct ufio_client *c, unsigned region, uint64_t offset,
                                     size_t len, void **ptr)
{
    struct ufio_region_info *ri = malloc(sizeof(*ri));
    if (!ri)
        return -ENOMEM;
    int fd = -1;
    int err = region_query(c, region, ri, &fd);
    if (!err && (!(ri->flags & VFIO_REGION_INFO_FLAG_MMAP) || fd < 0))
        err = -ENOTSUP;
    if (!err) {
        bool inside = false;
        if (ri->nr_areas == 0)
            inside = ufio_range_ok(offset, len, ri->size);
        for (uint32_t i = 0; i < ri->nr_areas; i++)
            if (offset >= ri->areas[i].offset &&
                ufio_range_ok(offset - ri->areas[i].offset, len, ri->areas[i].size))
                inside = true;
        if (!inside || len == 0 || offset % 4096)
            err = -EINVAL;
    }
    if (!err) {
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)(ri->offset + offset));
        if (p == MAP_FAILED)
            err = -errno;
        else
            *ptr = p;
    }
    free(ri);
    return err;
}

/* ---- DMA ------------------------------------------------------------------------- */

static int send_dma_map(struct ufio_client *c, const struct cl_dma *d)
{
    struct ufio_dma_map dm = { .argsz = 32, .flags = d->prot, .offset = d->fd >= 0 ? d->fd_off : 0,
                               .addr = d->iova, .size = d->size };
    uint8_t req[32];
    ssize_t n = ufio_dma_map_encode(&dm, req, sizeof(req));
    if (n < 0)
        return (int)n;
    struct iovec iov = { req, (size_t)n };
    return cl_call(c, VFIO_USER_DMA_MAP, &iov, 1, d->fd >= 0 ? &d->fd : NULL, d->fd >= 0 ? 1 : 0, NULL);
}

UFIO_API int ufio_client_dma_map(struct ufio_client *c, uint64_t iova, uint64_t size, uint32_t prot,
                                 void *local, int fd, uint64_t fd_offset)
{
    if (size == 0 || iova + size < iova || (prot & ~(UFIO_DMA_READ | UFIO_DMA_WRITE)))
        return -EINVAL;
    struct cl_dma d = { .iova = iova, .size = size, .prot = prot, .local = local, .fd = -1, .fd_off = fd_offset };
    if (fd >= 0) {
        d.fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (d.fd < 0)
            return -errno;
    }
    pthread_mutex_lock(&c->lock);
    int err = 0;
    if (c->ndma == c->dma_cap) {
        size_t ncap = c->dma_cap ? c->dma_cap * 2 : 16;
        void *nd = realloc(c->dma, ncap * sizeof(*c->dma));
        if (!nd)
            err = -ENOMEM;
        else {
            c->dma = nd;
            c->dma_cap = ncap;
        }
    }
    if (!err)
        c->dma[c->ndma++] = d; /* visible before the server can ask for it */
    pthread_mutex_unlock(&c->lock);
    if (!err)
        err = send_dma_map(c, &d);
    if (err) {
        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < c->ndma; i++)
            if (c->dma[i].iova == iova && c->dma[i].size == size && c->dma[i].fd == d.fd) {
                c->dma[i] = c->dma[--c->ndma];
                break;
            }
        pthread_mutex_unlock(&c->lock);
        if (d.fd >= 0)
            close(d.fd);
    }
    return err;
}

UFIO_API int ufio_client_dma_unmap(struct ufio_client *c, uint64_t iova, uint64_t size)
{
    struct ufio_dma_unmap u = { .argsz = 24, .addr = iova, .size = size };
    uint8_t req[24];
    ssize_t n = ufio_dma_unmap_encode(&u, req, sizeof(req));
    if (n < 0)
        return (int)n;
    struct iovec iov = { req, (size_t)n };
    struct ufio_msg m;
    int err = cl_call(c, VFIO_USER_DMA_UNMAP, &iov, 1, NULL, 0, &m);
    if (!err) {
        struct ufio_dma_unmap got;
        if (m.len && (ufio_dma_unmap_decode(m.payload, m.len, &got) || got.addr != iova || got.size != size))
            err = -EPROTO;
        ufio_msg_release(&m);
    }
    /* the server dropped it (or is gone): forget our side either way unless it refused */
    if (!err || err == -ENOTCONN) {
        pthread_mutex_lock(&c->lock);
        cl_dma_forget(c, iova, size);
        for (size_t i = 0; i < c->ndma; i++)
            if (c->dma[i].iova == iova && c->dma[i].size == size) {
                if (c->dma[i].fd >= 0)
                    close(c->dma[i].fd);
                c->dma[i] = c->dma[--c->ndma];
                break;
            }
        pthread_mutex_unlock(&c->lock);
    }
    return err;
}

/* ---- interrupts --------------------------------------------------------------------- */

static int send_set_irqs(struct ufio_client *c, unsigned index, uint32_t flags, uint32_t start,
                         uint32_t count, const int *fds, size_t nfds)
{
    struct ufio_irq_set s = { .argsz = 20, .flags = flags, .index = index, .start = start, .count = count };
    uint8_t req[20];
    ssize_t n = ufio_irq_set_encode(&s, req, sizeof(req));
    if (n < 0)
        return (int)n;
    struct iovec iov = { req, (size_t)n };
    return cl_call(c, VFIO_USER_DEVICE_SET_IRQS, &iov, 1, fds, nfds, NULL);
}

static int irq_remember(struct ufio_client *c, unsigned index, uint32_t start, uint32_t count, const int *fds)
{
    struct cl_irq *x = &c->irq[index];
    if (start + count > x->count) {
        int *nf = realloc(x->fds, (start + count) * sizeof(int));
        if (!nf)
            return -ENOMEM;
        for (uint32_t i = x->count; i < start + count; i++)
            nf[i] = -1;
        x->fds = nf;
        x->count = start + count;
    }
    for (uint32_t i = 0; i < count; i++) {
        if (x->fds[start + i] >= 0)
            close(x->fds[start + i]);
        x->fds[start + i] = fds ? fcntl(fds[i], F_DUPFD_CLOEXEC, 3) : -1;
    }
    return 0;
}

UFIO_API int ufio_client_irq_set_eventfds(struct ufio_client *c, unsigned index, uint32_t start,
                                          uint32_t count, const int *fds)
{
    if (index >= UFIO_IRQ_NUM || count == 0 || count > 2048 || start > 2048)
        return -EINVAL;
    uint32_t maxfds = c->caps.max_msg_fds ? c->caps.max_msg_fds : 1;
    int err = 0;
    /* the server takes at most max_msg_fds per message: send in batches */
    for (uint32_t done = 0; !err && done < count;) {
        uint32_t n = count - done;
        if (fds && n > maxfds)
            n = maxfds;
        err = send_set_irqs(c, index, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                            start + done, n, fds ? fds + done : NULL, fds ? n : 0);
        done += n;
    }
    if (!err) {
        pthread_mutex_lock(&c->lock);
        err = irq_remember(c, index, start, count, fds);
        pthread_mutex_unlock(&c->lock);
    }
    return err;
}

UFIO_API int ufio_client_irq_disable(struct ufio_client *c, unsigned index)
{
    if (index >= UFIO_IRQ_NUM)
        return -EINVAL;
    int err = send_set_irqs(c, index, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, NULL, 0);
    if (!err) {
        pthread_mutex_lock(&c->lock);
        irq_remember(c, index, 0, c->irq[index].count, NULL);
        pthread_mutex_unlock(&c->lock);
    }
    return err;
}

UFIO_API int ufio_client_irq_action(struct ufio_client *c, unsigned index, uint32_t start,
                                    uint32_t count, uint32_t action)
{
    if (action != UFIO_IRQ_ACTION_MASK && action != UFIO_IRQ_ACTION_UNMASK && action != UFIO_IRQ_ACTION_TRIGGER)
        return -EINVAL;
    return send_set_irqs(c, index, VFIO_IRQ_SET_DATA_NONE | action, start, count, NULL, 0);
}

UFIO_API int ufio_client_irq_wait(int efd, int timeout_ms)
{
    struct pollfd p = { .fd = efd, .events = POLLIN };
    int r = poll(&p, 1, timeout_ms);
    if (r < 0)
        return -errno;
    if (r == 0)
        return 0;
    uint64_t v;
    if (read(efd, &v, sizeof(v)) != sizeof(v))
        return errno == EAGAIN ? 0 : -errno;
    return v > 0x7fffffff ? 0x7fffffff : (int)v;
}

/* ---- reset, features, migration data ------------------------------------------------ */

UFIO_API int ufio_client_reset(struct ufio_client *c)
{
    return cl_call(c, VFIO_USER_DEVICE_RESET, NULL, 0, NULL, 0, NULL);
}

UFIO_API int ufio_client_feature(struct ufio_client *c, uint32_t flags, const void *in, size_t in_len,
                                 void *out, size_t out_cap, size_t *out_len)
{
    if (in_len > 65536 || out_cap > UINT32_MAX - 8)
        return -EINVAL;
    uint8_t head[8];
    uint32_t argsz = (uint32_t)(8 + (out_cap > in_len ? out_cap : in_len));
    ssize_t n = ufio_feature_head_encode(argsz, flags, head, sizeof(head));
    if (n < 0)
        return (int)n;
    struct iovec iov[2] = { { head, 8 }, { (void *)in, in_len } };
    struct ufio_msg m;
    int err = cl_call(c, VFIO_USER_DEVICE_FEATURE, iov, in_len ? 2 : 1, NULL, 0, &m);
    if (err)
        return err;
    struct ufio_feature f;
    err = ufio_feature_decode(m.payload, m.len, &f);
    if (!err && f.data_len > out_cap)
        err = -EPROTO;
    if (!err) {
        if (f.data_len)
            memcpy(out, f.data, f.data_len);
        if (out_len)
            *out_len = f.data_len;
    }
    ufio_msg_release(&m);
    return err;
}

struct mig_take {
    uint8_t *buf;
    uint32_t len, got;
};

/* c->lock held (see cl_call_into) */
static int mig_take(void *arg, const struct ufio_msg *m)
{
    struct mig_take *t = arg;
    if (m->sunk) {
        /* padded up to what was asked (libvfio-user does so): size says what is data */
        if (m->len != 8 || ufio_ld32(m->payload + 4) > m->sunk)
            return -EPROTO;
        t->got = ufio_ld32(m->payload + 4);
        return 0;
    }
    struct ufio_mig_data d;
    int err = ufio_mig_read_reply_decode(m->payload, m->len, t->len, &d);
    if (err)
        return err;
    if (d.size)
        memcpy(t->buf, d.data, d.size);
    t->got = d.size;
    return 0;
}

UFIO_API int ufio_client_mig_data_read(struct ufio_client *c, void *buf, size_t len, size_t *got)
{
    uint64_t chunk = xfer_max(c);
    if (len > chunk)
        len = (size_t)chunk;
    struct ufio_mig_data req = { .argsz = (uint32_t)(8 + len), .size = (uint32_t)len };
    uint8_t head[8];
    ssize_t n = ufio_mig_data_head_encode(&req, head, sizeof(head));
    if (n < 0)
        return (int)n;
    struct iovec iov = { head, 8 };
    uint8_t none[16] = { 0 };
    struct mig_take t = { .buf = buf, .len = (uint32_t)len };
    /* a big reply is received straight into buf */
    int err = cl_call_into(c, VFIO_USER_MIG_DATA_READ, &iov, 1, none, buf, len, mig_take, &t);
    if (!err)
        *got = t.got;
    return err;
}

uint64_t cl_xfer_max(struct ufio_client *c)
{
    return xfer_max(c);
}

int cl_mig_write_start(struct ufio_client *c, const void *buf, size_t len, int *slot)
{
    struct ufio_mig_data req = { .argsz = (uint32_t)(8 + len), .size = (uint32_t)len };
    uint8_t head[8];
    ufio_mig_data_head_encode(&req, head, sizeof(head));
    /* header and data in one sendmsg, the data straight from the caller's buffer */
    struct iovec iov[2] = { { head, 8 }, { (void *)buf, len } };
    return cl_call_start(c, VFIO_USER_MIG_DATA_WRITE, iov, len ? 2 : 1, slot);
}

UFIO_API int ufio_client_mig_data_write(struct ufio_client *c, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint64_t chunk = xfer_max(c);
    do {
        size_t n = len < chunk ? len : (size_t)chunk;
        int slot;
        int err = cl_mig_write_start(c, p, n, &slot);
        if (!err)
            err = cl_call_finish(c, VFIO_USER_MIG_DATA_WRITE, slot);
        if (err)
            return err;
        p += n;
        len -= n;
    } while (len);
    return 0;
}

/* ---- reconnect ---------------------------------------------------------------------- */

UFIO_API int ufio_client_reconnect(struct ufio_client *c, int timeout_ms)
{
    if (!c->path)
        return -ENOTSUP;
    pthread_mutex_lock(&c->lock);
    if (c->reader_active || c->connected) {
        /* someone still talks to the old connection; make them fail first */
        cl_disconnect(c);
        while (c->reader_active)
            pthread_cond_wait(&c->cond, &c->lock);
    }
    close_conns(c);
    pthread_mutex_unlock(&c->lock);
    int fd;
    int err = ufio_sock_connect(c->path, timeout_ms, &fd);
    if (err)
        return err;
    pthread_mutex_lock(&c->lock);
    err = cl_negotiate(c, fd);
    pthread_mutex_unlock(&c->lock);
    if (err)
        return err;
    /* another device at the path gets none of the guest's memory or eventfds */
    struct cl_identity now;
    err = cl_identity_read(c, &now);
    char why[512];
    if (!err && (err = cl_identity_compare(&c->ident, &now, why, sizeof(why))) != 0)
        UFIO_WARN("client", "reconnect to %s refused: not the device attached before: %s", c->path, why);
    cl_identity_free(&now);
    if (err) {
        pthread_mutex_lock(&c->lock);
        cl_disconnect(c);
        while (c->reader_active)
            pthread_cond_wait(&c->cond, &c->lock);
        close_conns(c);
        pthread_mutex_unlock(&c->lock);
        return err;
    }
    /* restore the mappings and eventfds the device had from us */
    pthread_mutex_lock(&c->lock);
    size_t nd = c->ndma;
    struct cl_dma *copy = nd ? malloc(nd * sizeof(*copy)) : NULL;
    if (nd && copy)
        memcpy(copy, c->dma, nd * sizeof(*copy));
    pthread_mutex_unlock(&c->lock);
    if (nd && !copy)
        return -ENOMEM;
    for (size_t i = 0; !err && i < nd; i++)
        err = send_dma_map(c, &copy[i]);
    free(copy);
    for (unsigned idx = 0; !err && idx < UFIO_IRQ_NUM; idx++) {
        for (uint32_t v = 0; !err && v < c->irq[idx].count; v++) {
            int efd = c->irq[idx].fds[v];
            if (efd >= 0)
                err = send_set_irqs(c, idx, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                                    v, 1, &efd, 1);
        }
    }
    if (err)
        UFIO_WARN("client", "reconnect: restoring state failed: %s", strerror(-err));
    return err;
}
