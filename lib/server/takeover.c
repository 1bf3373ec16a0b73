/*
 * Live handover (docs/handover.md): a new server process takes a running
 * device from an old one under its owner. The new one is the old one's
 * migration controller: the stream carries the device's state (its
 * descriptor first, so an incompatible device is refused before the old one
 * stops), then HANDOVER makes the old one pass, by SCM_RIGHTS, every fd the
 * device holds for its owner plus the owner's bytes not yet handled. Until
 * the new process acknowledges, the old one owns everything: any failure
 * drops the controller session, and the sessions layer puts the device back
 * to RUNNING and answers the held requests.
 *
 * After HANDOVER, on the management connection, raw (not vfio-user):
 *   old -> new: u32 status (0 or an errno), then, if 0, the fd bundle
 *               (transport/fdbundle.h) and u32 length + the owner's bytes
 *   new -> old: u32 TAKEOVER_ACK once the new process serves
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/client_internal.h"
#include "common/log.h"
#include "server/compat.h"
#include "server/session.h"
#include "transport/fdbundle.h"

#define TAKEOVER_ACK 0x4b434148u /* "HACK" */
#define BLOB_MAX UFIO_CONN_RX_CAP
/* The handover protocol this library speaks, announced in the controller's
 * VERSION ("ufio_handover"): 2 = the held messages' fds come in the bundle
 * (UFIO_FDB_HELD); an old process that only knows 1 (or none) refuses a
 * held message with fds (EAGAIN) as before. */
#define HANDOVER_PROTO 2u

static uint64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* All of len bytes, within timeout_ms: 0, -ETIMEDOUT, -ECONNRESET or -errno. */
static int io_all(int fd, void *buf, size_t len, bool wr, int timeout_ms)
{
    uint8_t *p = buf;
    uint64_t end = ms_now() + (uint64_t)timeout_ms;
    while (len) {
        ssize_t n = wr ? send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT) : recv(fd, p, len, MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == 0)
            return -ECONNRESET;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return errno == EPIPE ? -ECONNRESET : -errno;
        uint64_t now = ms_now();
        if (now >= end)
            return -ETIMEDOUT;
        struct pollfd pfd = { .fd = fd, .events = wr ? POLLOUT : POLLIN };
        if (poll(&pfd, 1, (int)(end - now)) < 0 && errno != EINTR)
            return -errno;
    }
    return 0;
}

/* ---- the old process ---------------------------------------------------------------- */

/* UFIO_TAKEOVER_OLD_FAIL_AT=fds: the old process dies as it would pass the fds, for the tests. */
static void old_fail_at(const char *step)
{
    const char *e = getenv("UFIO_TAKEOVER_OLD_FAIL_AT");
    if (e && !strcmp(e, step)) {
        fprintf(stderr, "takeover: UFIO_TAKEOVER_OLD_FAIL_AT=%s: exiting\n", step);
        _exit(9);
    }
}

struct dma_walk {
    struct ufio_fdb *b;
    int err;
};

static bool add_dma(struct ufio_dma_region *r, void *opaque)
{
    struct dma_walk *w = opaque;
    w->err = ufio_fdb_add(w->b, UFIO_FDB_DMA, r->prot, r->iova, r->size, r->offset, r->fd);
    return !w->err;
}

/*
 * The owner's commands not yet handled, as bytes: held ones re-encoded, then
 * the read-ahead; *nheld and *held_len say how many of them are held messages.
 * With fd_ok (the new process speaks HANDOVER_PROTO 2) a held message's fds
 * go into the bundle; fds in the read-ahead itself still refuse (EAGAIN).
 */
static int owner_bytes(const struct ufio_session *o, bool fd_ok, uint8_t *out, size_t cap, size_t *len,
                       size_t *nheld, size_t *held_len)
{
    size_t n = 0;
    if (o->awaiting_reply || o->conn.in_body || o->conn.rx_pend.n || o->conn.rx_pend.overflow ||
        o->conn.cur.nfds)
        return -EAGAIN;
    for (size_t i = 0; i < o->nqueued; i++) {
        const struct ufio_msg *m = &o->queued[i];
        if ((m->nfds && !fd_ok) || m->fds_overflow || m->sunk)
            return -EAGAIN;
        if (n + VFIO_USER_HDR_SIZE + m->len > cap)
            return -E2BIG;
        ufio_hdr_encode(out + n, &m->hdr);
        n += VFIO_USER_HDR_SIZE;
        if (m->len)
            memcpy(out + n, m->payload, m->len);
        n += m->len;
    }
    *nheld = o->nqueued;
    *held_len = n;
    size_t ra = o->conn.rx_len - o->conn.rx_off;
    if (n + ra > cap)
        return -E2BIG;
    memcpy(out + n, o->conn.rx + o->conn.rx_off, ra);
    *len = n + ra;
    return 0;
}

static int build_bundle(struct ufio_sessions *ss, struct ufio_fdb *b, size_t nheld, size_t held_len)
{
    struct ufio_dev *dev = ss->dev;
    struct ufio_session *o = ss->owner;
    int err = ufio_fdb_add(b, UFIO_FDB_CONN, 0, 0, 0, 0, o->conn.fd);
    if (!err && o->has_twin)
        err = ufio_fdb_add(b, UFIO_FDB_TWIN, 0, 0, 0, 0, o->twin.fd);
    if (!err)
        err = ufio_fdb_add(b, UFIO_FDB_DATA, 0, o->peer.max_data_xfer_size, o->peer.max_msg_fds,
                           (o->write_multiple ? 1u : 0u) | (o->peer.twin_socket ? 2u : 0u), -1);
    if (!err)
        err = ufio_fdb_add(b, UFIO_FDB_DATA, 1, o->next_msg_id, o->peer.max_dma_maps, o->peer.pgsizes, -1);
    if (!err && nheld)
        err = ufio_fdb_add(b, UFIO_FDB_DATA, 2, nheld, held_len, 0, -1);
    /* the held messages' fds, message by message, in their order */
    for (size_t i = 0; !err && i < nheld; i++)
        for (size_t k = 0; !err && k < o->queued[i].nfds; k++)
            err = ufio_fdb_add(b, UFIO_FDB_HELD, (uint32_t)i, k, 0, 0, o->queued[i].fds[k]);
    struct dma_walk w = { b, 0 };
    if (!err) {
        dma_tree_walk(&dev->dma, 0, UINT64_MAX, add_dma, &w);
        err = w.err;
    }
    for (unsigned i = 0; !err && i < UFIO_IRQ_NUM; i++)
        for (uint32_t v = 0; !err && v < dev->irqs[i].count; v++) {
            const struct ufio_irq_vec *x = &dev->irqs[i].v[v];
            if (x->efd >= 0 || x->masked || x->pending)
                err = ufio_fdb_add(b, UFIO_FDB_IRQ, i, v, x->masked, x->pending, x->efd);
        }
    for (unsigned i = 0; !err && i < UFIO_PCI_NUM_REGIONS; i++)
        if (dev->regions[i].memfd >= 0)
            err = ufio_fdb_add(b, UFIO_FDB_REGION, i, 0, dev->regions[i].size, 0, dev->regions[i].memfd);
    if (!err && ss->listen_fd >= 0)
        err = ufio_fdb_add(b, UFIO_FDB_LISTEN, 0, 0, 0, 0, ss->listen_fd);
    if (!err && ss->mgmt_fd >= 0)
        err = ufio_fdb_add(b, UFIO_FDB_LISTEN, 1, 0, 0, 0, ss->mgmt_fd);
    return err;
}

/* The new process has everything: this one lets go without touching what it passed. */
static void give_up_all(struct ufio_sessions *ss, struct ufio_session *ctl)
{
    struct ufio_dev *dev = ss->dev;
    struct ufio_session *o = ss->owner;
    /* STOP is where a migrated source rests: the controller leaving does not run it again */
    dev_mig_set_state(dev, UFIO_MIG_STOP);
    epoll_ctl(ss->epfd, EPOLL_CTL_DEL, o->conn.fd, NULL);
    o->drop = true;
    o->drop_why = "handed over";
    ctl->drop = true;
    ctl->drop_why = "handover done";
    /* the paths now belong to the new process: never unlinked here */
    free(ss->sock_path);
    ss->sock_path = NULL;
    free(ss->mgmt_path);
    ss->mgmt_path = NULL;
    ss->handed_over = true;
    ufio_dev_stop(dev);
}

void takeover_give(struct ufio_session *s, int refuse)
{
    struct ufio_sessions *ss = s->ss;
    struct ufio_dev *dev = s->dev;
    int tmo = dev->lim.reply_timeout_ms > 0 ? (int)dev->lim.reply_timeout_ms : 3000;
    if (tmo > 3000)
        tmo = 3000; /* the owner's held request is the clock: QEMU waits 5 s */
    static uint8_t blob[BLOB_MAX];
    size_t blen = 0, nheld = 0, held_len = 0;
    int err = refuse;
    if (!err && !ss->owner)
        err = -ENOTCONN;
    else if (!err && ss->mig_holder != s)
        err = -EPERM;
    else if (!err && ss->fd_mode)
        err = -ENOTSUP;
    if (!err)
        err = owner_bytes(ss->owner, s->peer.handover >= 2, blob, sizeof(blob), &blen, &nheld, &held_len);
    struct ufio_fdb b;
    ufio_fdb_init(&b);
    if (!err)
        err = build_bundle(ss, &b, nheld, held_len);
    uint32_t st = (uint32_t)-err;
    int ioerr = io_all(s->conn.fd, &st, sizeof(st), true, tmo);
    if (err || ioerr) {
        UFIO_WARN(dev->name, "handover refused: %s", strerror(err ? -err : -ioerr));
        ufio_fdb_forget(&b);
        if (ioerr)
            s->drop = true;
        return;
    }
    uint32_t bl = (uint32_t)blen;
    old_fail_at("fds");
    err = ufio_fdb_send(s->conn.fd, &b, tmo);
    ufio_fdb_forget(&b);
    if (!err)
        err = io_all(s->conn.fd, &bl, sizeof(bl), true, tmo);
    if (!err && blen)
        err = io_all(s->conn.fd, blob, blen, true, tmo);
    uint32_t ack = 0;
    if (!err)
        err = io_all(s->conn.fd, &ack, sizeof(ack), false, tmo);
    if (!err && ack != TAKEOVER_ACK)
        err = -EPROTO;
    if (err) {
        /* everything is still ours: the controller goes, the device runs again */
        UFIO_WARN(dev->name, "handover failed before the new process acknowledged (%s): serving on",
                  strerror(-err));
        s->drop = true;
        s->drop_why = "handover failed";
        return;
    }
    UFIO_INFO(dev->name, "handed over to pid %d", (int)s->pid);
    give_up_all(ss, s);
}

/* ---- the new process ---------------------------------------------------------------- */

/* The stream buffer, reachable from here while a fault test may _exit()
 * (a leak checker would otherwise count it as lost). */
static uint8_t *volatile stream_buf; /* volatile: a store nothing reads is kept */

/* UFIO_TAKEOVER_FAIL_AT=STEP: die at that step, for the fault tests. */
static void fail_at(const char *step)
{
    const char *e = getenv("UFIO_TAKEOVER_FAIL_AT");
    if (e && !strcmp(e, step)) {
        fprintf(stderr, "takeover: UFIO_TAKEOVER_FAIL_AT=%s: exiting\n", step);
        _exit(9);
    }
}

/* UFIO_TAKEOVER_WAIT_AT=STEP: at that step, say so on stderr and wait for a
 * byte (or EOF) on stdin, for the tests that act in the middle of a handover. */
static void wait_at(const char *step)
{
    const char *e = getenv("UFIO_TAKEOVER_WAIT_AT");
    if (e && !strcmp(e, step)) {
        fprintf(stderr, "takeover: UFIO_TAKEOVER_WAIT_AT=%s: waiting\n", step);
        fflush(stderr);
        char c;
        while (read(0, &c, 1) < 0 && errno == EINTR)
            ;
    }
}

/* Reads the stream the old process has now and feeds it to ours (RESUMING). */
static int pump(struct ufio_dev *dev, struct ufio_client *c, uint8_t *buf, size_t cap, uint64_t *bytes)
{
    for (;;) {
        size_t got = 0;
        int err = ufio_client_mig_data_read(c, buf, cap, &got);
        if (err)
            return err;
        if (!got)
            return 0;
        struct ufio_mig_data d = { .argsz = 8, .size = (uint32_t)got, .data = buf };
        err = dev_mig_data_write(dev, &d);
        if (err)
            return err;
        *bytes += got;
        if (got < cap)
            return 0;
    }
}

static int adopt_listener(struct ufio_sessions *ss, int fd, int *slot, char **path_slot, const char *path)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = slot };
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    if (ufio_set_nonblock(fd, true) || epoll_ctl(ss->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        free(copy);
        return -errno;
    }
    *slot = fd;
    *path_slot = copy;
    return 0;
}

/* Installs the bundle's memory and interrupts into dev. */
static int adopt_device(struct ufio_dev *dev, struct ufio_fdb *b)
{
    for (size_t i = 0; i < b->n; i++) {
        struct ufio_fdb_entry *e = &b->e[i];
        if (e->kind == UFIO_FDB_REGION) {
            struct ufio_region *r = e->index < UFIO_PCI_NUM_REGIONS ? &dev->regions[e->index] : NULL;
            struct stat st;
            if (!r || r->memfd < 0 || !r->mem || e->fd < 0 || e->b != r->size || fstat(e->fd, &st) < 0 ||
                (uint64_t)st.st_size < r->size) {
                UFIO_WARN(dev->name, "takeover: region %u does not match ours", e->index);
                return -EPROTO;
            }
            /* the VMM has this memory mapped: it must be the device's, at the same address */
            if (mmap(r->mem, r->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, e->fd, 0) == MAP_FAILED)
                return -errno;
            close(r->memfd);
            r->memfd = ufio_fdb_take(b, i);
        } else if (e->kind == UFIO_FDB_DMA) {
            struct ufio_dma_map m = { .argsz = 32, .flags = e->index, .offset = e->c, .addr = e->a, .size = e->b };
            int err = dma_map(dev, &m, e->fd);
            if (err) {
                UFIO_WARN(dev->name, "takeover: DMA mapping 0x%llx+0x%llx: %s", (unsigned long long)e->a,
                          (unsigned long long)e->b, strerror(-err));
                return err;
            }
            close(ufio_fdb_take(b, i)); /* dma_map keeps its own */
        } else if (e->kind == UFIO_FDB_IRQ) {
            if (e->index >= UFIO_IRQ_NUM || e->a >= dev->irqs[e->index].count)
                return -EPROTO;
            struct ufio_irq_vec *v = &dev->irqs[e->index].v[e->a];
            if (v->efd >= 0)
                close(v->efd);
            v->efd = ufio_fdb_take(b, i);
            v->masked = e->b != 0;
            v->pending = e->c != 0;
        }
    }
    return 0;
}

/*
 * The old process's held messages (blob[0, held_len), nheld of them) become
 * the owner session's queue, each with its fds from the bundle (UFIO_FDB_HELD,
 * in order), so they are served first, as they would have been there.
 */
static int adopt_held(struct ufio_session *s, struct ufio_fdb *b, const uint8_t *blob, size_t held_len,
                      size_t nheld)
{
    if (nheld > UFIO_DEV_MAX_QUEUED)
        return -EPROTO;
    size_t off = 0;
    for (size_t i = 0; i < nheld; i++) {
        struct ufio_msg *m = &s->queued[s->nqueued];
        ufio_msg_init(m);
        if (held_len - off < VFIO_USER_HDR_SIZE ||
            ufio_hdr_decode(blob + off, VFIO_USER_HDR_SIZE, held_len - off, &m->hdr) == -EPROTO)
            return -EPROTO;
        size_t body = m->hdr.msg_size - VFIO_USER_HDR_SIZE;
        if (body) {
            m->payload = malloc(body);
            if (!m->payload)
                return -ENOMEM;
            memcpy(m->payload, blob + off + VFIO_USER_HDR_SIZE, body);
        }
        m->len = body;
        s->nqueued++; /* from here the session owns it (and closes its fds on any error) */
        off += m->hdr.msg_size;
    }
    if (off != held_len)
        return -EPROTO;
    for (size_t i = 0; i < b->n; i++) {
        const struct ufio_fdb_entry *e = &b->e[i];
        if (e->kind != UFIO_FDB_HELD)
            continue;
        struct ufio_msg *m = e->index < nheld ? &s->queued[e->index] : NULL;
        /* in order: the k-th fd of a message is its k-th entry */
        if (!m || e->fd < 0 || e->a != m->nfds || m->nfds >= UFIO_TRANSPORT_MAX_FDS)
            return -EPROTO;
        m->fds[m->nfds++] = ufio_fdb_take(b, i);
    }
    return 0;
}

/* The owner's session, as the old process had it. */
static int adopt_owner(struct ufio_dev *dev, struct ufio_fdb *b, const uint8_t *blob, size_t blen)
{
    struct ufio_sessions *ss = dev->ss;
    long ci = ufio_fdb_find(b, UFIO_FDB_CONN, 0, 0);
    long ti = ufio_fdb_find(b, UFIO_FDB_TWIN, 0, 0);
    long d0 = ufio_fdb_find(b, UFIO_FDB_DATA, 0, 0);
    long d1 = ufio_fdb_find(b, UFIO_FDB_DATA, 1, 0);
    long d2 = ufio_fdb_find(b, UFIO_FDB_DATA, 2, 0);
    size_t nheld = d2 >= 0 ? (size_t)b->e[d2].a : 0, held_len = d2 >= 0 ? (size_t)b->e[d2].b : 0;
    if (ci < 0 || d0 < 0 || d1 < 0 || b->e[ci].fd < 0 || (ti >= 0 && b->e[ti].fd < 0) || blen > UFIO_CONN_RX_CAP ||
        held_len > blen || (d2 < 0 && ufio_fdb_find(b, UFIO_FDB_HELD, UINT32_MAX, 0) >= 0))
        return -EPROTO;
    int fd = b->e[ci].fd;
    struct ucred cr = { .pid = -1 };
    socklen_t crl = sizeof(cr);
    if (ufio_set_nonblock(fd, true) || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) < 0)
        return -errno;
    struct ufio_session *s = sess_new(ss, fd, false, cr.pid, cr.uid);
    if (!s)
        return -ENOMEM;
    ufio_fdb_take(b, (size_t)ci);
    const struct ufio_fdb_entry *e0 = &b->e[d0], *e1 = &b->e[d1];
    s->peer.max_data_xfer_size = e0->a;
    s->peer.max_msg_fds = (uint32_t)e0->b;
    s->write_multiple = e0->c & 1u;
    s->peer.twin_socket = (e0->c & 2u) != 0;
    s->next_msg_id = (uint16_t)e1->a;
    s->peer.max_dma_maps = (uint32_t)e1->b;
    s->peer.pgsizes = e1->c;
    if (ti >= 0) {
        ufio_conn_init(&s->twin, ufio_fdb_take(b, (size_t)ti),
                       VFIO_USER_HDR_SIZE + 16 + (size_t)dev->lim.max_data_xfer_size, 0);
        s->twin.send_timeout_ms = dev->lim.reply_timeout_ms;
        s->twin.sink = &s->sink;
        s->has_twin = true;
    }
    int err = adopt_held(s, b, blob, held_len, nheld);
    if (err) {
        sess_free(s, "taken over with malformed held messages");
        return err;
    }
    memcpy(s->conn.rx, blob + held_len, blen - held_len);
    s->conn.rx_off = 0;
    s->conn.rx_len = blen - held_len;
    s->negotiated = true;
    s->role = UFIO_ROLE_OWNER;
    s->deadline_ns = 0;
    sess_make_owner(s);
    dev_owner_setup(ss, s);
    UFIO_INFO(dev->name, "session %u: the owner (pid %d), taken over with %zu bytes not yet handled (%zu held "
              "messages)", s->id, (int)cr.pid, blen, nheld);
    return 0;
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static int take_fds(struct ufio_dev *dev, int sock, const char *old_path, const char *mgmt_path, int tmo,
                    double *recv_ms)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct ufio_sessions *ss = dev->ss;
    uint32_t st = 0;
    int err = io_all(sock, &st, sizeof(st), false, tmo);
    if (err)
        return err;
    if (st) {
        UFIO_WARN(dev->name, "takeover: the old server refused the handover: %s", strerror((int)st));
        return -(int)st;
    }
    struct ufio_fdb b;
    err = ufio_fdb_recv(sock, &b, 0, tmo);
    if (err)
        return err;
    static uint8_t blob[BLOB_MAX];
    uint32_t blen = 0;
    err = io_all(sock, &blen, sizeof(blen), false, tmo);
    if (!err && blen > sizeof(blob))
        err = -EPROTO;
    if (!err && blen)
        err = io_all(sock, blob, blen, false, tmo);
    *recv_ms = ms_since(&t0);
    if (!err)
        err = adopt_device(dev, &b);
    /* the stream's device state goes in now that the device has its memory */
    if (!err)
        err = dev_mig_set_state(dev, UFIO_MIG_STOP);
    if (!err)
        err = dev_mig_set_state(dev, UFIO_MIG_RUNNING);
    long li = ufio_fdb_find(&b, UFIO_FDB_LISTEN, 0, 0);
    long mi = ufio_fdb_find(&b, UFIO_FDB_LISTEN, 1, 0);
    if (!err && li >= 0 && b.e[li].fd >= 0) {
        err = adopt_listener(ss, b.e[li].fd, &ss->listen_fd, &ss->sock_path, old_path);
        if (!err)
            ufio_fdb_take(&b, (size_t)li);
    }
    if (!err && mi >= 0 && b.e[mi].fd >= 0) {
        err = adopt_listener(ss, b.e[mi].fd, &ss->mgmt_fd, &ss->mgmt_path, mgmt_path);
        if (!err)
            ufio_fdb_take(&b, (size_t)mi);
    }
    if (!err)
        err = adopt_owner(dev, &b, blob, blen);
    ufio_fdb_free(&b); /* every fd passed and not installed */
    return err;
}

UFIO_API int ufio_dev_takeover(struct ufio_dev *dev, const char *old_path, const struct ufio_takeover_opts *opts)
{
    struct ufio_takeover_opts o = { .size = sizeof(o), .timeout_ms = 3000 };
    if (!dev || !old_path)
        return -EINVAL;
    if (opts) {
        if (opts->size < sizeof(size_t) || opts->size > 4096)
            return -EINVAL;
        memcpy(&o, opts, opts->size < sizeof(o) ? opts->size : sizeof(o));
        if (o.timeout_ms <= 0)
            o.timeout_ms = 3000;
    }
    struct ufio_sessions *ss = dev->ss;
    if (!dev->mig || ss->listen_fd >= 0 || ss->mgmt_fd >= 0 || ss->n || ss->fd_mode)
        return -EINVAL;
    char mgmt[4096];
    int err = ufio_mgmt_path(old_path, mgmt, sizeof(mgmt));
    if (err)
        return err;
    dev_build(dev);
    struct timespec t0, tq;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double t_conn = 0, t_pre = 0, t_stream = 0, t_recv = 0, t_adopt = 0;
    struct ufio_client_opts co = { .size = sizeof(co), .timeout_ms = o.timeout_ms, .no_twin_socket = true,
                                   .role = UFIO_ROLE_CONTROLLER_REQ };
    struct ufio_client *c = NULL;
    /* no wait for the controller's place: a takeover while another controller
     * (or takeover) is attached is refused at once (docs/handover.md) */
    err = cl_connect_ext(mgmt, &co, true, HANDOVER_PROTO, &c);
    if (err == -EBUSY) {
        UFIO_WARN(dev->name, "takeover: refused: another controller holds the device %s (a migration or another "
                             "takeover): the old server goes on", old_path);
        return err;
    }
    if (err) {
        UFIO_WARN(dev->name, "takeover: cannot reach %s as migration controller: %s", mgmt, strerror(-err));
        return err == -EPERM ? -EACCES : err; /* -EPERM means incompatible here */
    }
    /* compatibility before anything moves (the stream's first record says the
     * same again): the old one never stops for a device that cannot take it */
    if (c->ident.desc) {
        char reason[512];
        if (dev_compat_check(dev, c->ident.desc, reason, sizeof(reason))) {
            UFIO_WARN(dev->name, "takeover: refused: this device is not compatible with the one running at %s: %s; "
                                 "the old server goes on", old_path, reason);
            ufio_client_destroy(c);
            return -EPERM;
        }
    }
    size_t cap = 1u << 20;
    uint8_t *buf = malloc(cap);
    stream_buf = buf;
    uint64_t bytes = 0, flags = 0;
    unsigned reached = 0;
    t_conn = ms_since(&t0);
    err = buf ? dev_mig_set_state(dev, UFIO_MIG_RESUMING) : -ENOMEM;
    if (!err)
        err = ufio_client_mig_flags(c, &flags);
    /* the old one serves on while the first part of the stream (its descriptor
     * first: checked on arrival) comes over */
    if (!err && (flags & UFIO_MIG_F_PRE_COPY) && !o.no_precopy) {
        err = ufio_client_mig_set_state(c, UFIO_MIG_PRE_COPY, &reached);
        if (!err)
            err = pump(dev, c, buf, cap, &bytes);
        fail_at("precopy");
        wait_at("precopy");
    }
    t_pre = ms_since(&t0) - t_conn;
    /* the owner's requests are held from here until ours serve them */
    clock_gettime(CLOCK_MONOTONIC, &tq);
    if (!err)
        err = ufio_client_mig_set_state(c, UFIO_MIG_STOP_COPY, &reached);
    if (!err)
        wait_at("stop-copy"); /* the old one stopped, its stream not read yet */
    if (!err)
        err = pump(dev, c, buf, cap, &bytes);
    t_stream = ms_since(&tq);
    if (!err) {
        fail_at("stream");
        wait_at("stream");
    }
    free(buf);
    stream_buf = NULL;
    if (err) {
        UFIO_WARN(dev->name, "takeover: the device state did not come over (%s): the old server goes on",
                  strerror(-err));
        ufio_client_destroy(c);
        dev_mig_abandon(dev);
        /* -EPERM is kept for an incompatible device (as ufio_migrate() says it) */
        return err == -EPERM ? -EACCES : err;
    }
    int sock = c->conn.fd;
    err = cl_send_posted(c, UFIO_CMD_HANDOVER, NULL, 0);
    if (!err)
        err = take_fds(dev, sock, old_path, mgmt, o.timeout_ms, &t_recv);
    if (!err) {
        fail_at("before-ack");
        wait_at("before-ack");
    }
    if (err) {
        if (err == -ECONNRESET || err == -EPIPE)
            UFIO_ERR(dev->name, "takeover: the old server died during the handover: the device's state and "
                                "its owner's connection are lost, nothing can be saved");
        else
            UFIO_WARN(dev->name, "takeover failed: %s", strerror(-err));
        ufio_client_destroy(c);
        return err == -EPERM ? -EACCES : err;
    }
    t_adopt = ms_since(&tq) - t_stream - t_recv;
    uint32_t ack = TAKEOVER_ACK;
    err = io_all(sock, &ack, sizeof(ack), true, o.timeout_ms);
    double t_quiesced = ms_since(&tq);
    ufio_client_destroy(c);
    if (err) {
        UFIO_WARN(dev->name, "takeover: the acknowledgement did not get through (%s)", strerror(-err));
        return err;
    }
    UFIO_INFO(dev->name, "took over %s (%llu stream bytes)", old_path, (unsigned long long)bytes);
    /* one line for ufio-bench --handover: where the time goes */
    UFIO_INFO(dev->name,
              "takeover timing: connect %.3f ms, precopy %.3f ms, quiesced %.3f ms (stop-copy stream %.3f, "
              "fds %.3f, load and adopt %.3f)",
              t_conn, t_pre, t_quiesced, t_stream, t_recv, t_adopt);
    return 0;
}
