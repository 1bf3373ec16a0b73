/*
 * Client connection, negotiation, and the request/reply engine.
 *
 * Replies are matched by msg_id. Threads waiting for replies take turns as
 * the single reader ("leader/follower"): the reader polls the main socket and
 * the twin socket, files replies into their pending slots, serves the
 * server's DMA_READ/DMA_WRITE requests, and wakes the others.
 */
#include "client/client_internal.h"
#include "client/client_match.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t cl_max_msg(const struct ufio_client *c)
{
    return VFIO_USER_HDR_SIZE + 64 + (size_t)c->opts.max_data_xfer_size + 4096;
}

/* ---- negotiation ------------------------------------------------------------ */

/*
 * The sink's place(): a reply that is exactly what a waiting cl_call_into()
 * expects (its head echoed, the data length it asked for, no fds) goes
 * straight into the caller's buffer. c->lock is held (we are in drain()).
 */
static void *cl_place_dma(struct ufio_client *c, int which, const struct ufio_msg *m, const uint8_t *prefix,
                          size_t body_len);

static void *cl_sink_place_twin(void *opaque, const struct ufio_msg *m, const uint8_t *prefix, size_t body_len,
                                size_t *keep)
{
    return cl_place_dma(opaque, 1, m, prefix, body_len);
}

static void *cl_sink_place(void *opaque, const struct ufio_msg *m, const uint8_t *prefix, size_t body_len,
                           size_t *keep)
{
    struct ufio_client *c = opaque;
    const struct vfio_user_header *h = &m->hdr;
    if (!ufio_hdr_is_reply(h))
        return cl_place_dma(c, 0, m, prefix, body_len);
    int i = cl_pending_find(c->pend, CL_MAX_PENDING, h->msg_id);
    if (i < 0 || !cl_reply_placeable(&c->pend[i], h, m->nfds || m->fds_overflow, prefix, body_len, keep))
        return NULL;
    c->pend[i].placing = true;
    return c->pend[i].dst;
}

int cl_negotiate(struct ufio_client *c, int fd)
{
    ufio_conn_init(&c->conn, fd, cl_max_msg(c), c->opts.max_msg_fds);
    c->loan_back = false; /* a loan of the old connection is void */
    c->conn.send_timeout_ms = c->opts.timeout_ms;
    c->sink = (struct ufio_conn_sink){ .prefix = 16, .place = cl_sink_place, .opaque = c };
    c->conn.sink = &c->sink;
    struct ufio_version v = { .major = UFIO_PROTO_MAJOR, .minor = UFIO_PROTO_MINOR, .has_json = true };
    ufio_caps_defaults(&v.caps);
    v.caps.max_msg_fds = c->opts.max_msg_fds;
    v.caps.max_data_xfer_size = c->opts.max_data_xfer_size;
    v.caps.twin_socket = !c->opts.no_twin_socket;
    v.caps.write_multiple = true;
    v.caps.role = (uint8_t)c->opts.role; /* enum ufio_role values are the wire's role bits */
    v.caps.no_wait = c->no_wait;
    v.caps.handover = c->handover;
    uint8_t buf[1024];
    ssize_t n = ufio_version_encode(&v, buf, sizeof(buf));
    if (n < 0)
        goto fail_n;
    struct vfio_user_header h = { .msg_id = 0, .cmd = VFIO_USER_VERSION, .flags = VFIO_USER_F_TYPE_COMMAND };
    struct iovec iov = { buf, (size_t)n };
    int err = ufio_conn_send(&c->conn, &h, &iov, 1, NULL, 0);
    if (err)
        goto fail;
    struct ufio_msg m;
    ufio_msg_init(&m);
    err = ufio_conn_recv_wait(&c->conn, &m, c->opts.timeout_ms);
    if (err)
        goto fail;
    struct ufio_version rv;
    memset(&rv, 0, sizeof(rv));
    if (!ufio_hdr_is_reply(&m.hdr) || m.hdr.msg_id != 0) {
        err = -EPROTO;
    } else if ((err = cl_reply_verdict(&m, VFIO_USER_VERSION, c->opts.max_data_xfer_size, true)) == 0 &&
               (err = ufio_version_decode(m.payload, m.len, &rv)) == 0) {
        if (rv.major != v.major || rv.minor > v.minor)
            err = -EPROTO; /* the spec: same major, minor at most ours */
        else if (v.caps.role && rv.caps.role && rv.caps.role != v.caps.role)
            err = -EACCES; /* a ufio server granted another role (one that ignores the key echoes none) */
    }
    int twin = -1;
    if (!err && rv.caps.twin_socket) {
        /* a twin socket must come with a valid fd_index, and only if we asked */
        if (!v.caps.twin_socket || !rv.caps.has_twin_fd_index || rv.caps.twin_fd_index >= m.nfds)
            err = -EPROTO;
        else
            twin = ufio_msg_take_fd(&m, rv.caps.twin_fd_index);
    }
    if (!err && m.nfds > (twin >= 0 ? 1u : 0u))
        err = -EPROTO;
    ufio_msg_release(&m);
    if (err) {
        if (twin >= 0)
            close(twin);
        goto fail;
    }
    if (twin >= 0) {
        ufio_set_nonblock(twin, true);
        ufio_conn_init(&c->twin, twin, cl_max_msg(c), 0);
        c->twin.send_timeout_ms = c->opts.timeout_ms;
        c->twin_sink = (struct ufio_conn_sink){ .prefix = 16, .place = cl_sink_place_twin, .opaque = c };
        c->twin.sink = &c->twin_sink;
        c->has_twin = true;
    }
    c->caps = (struct ufio_client_caps){
        .size = sizeof(c->caps),
        .major = rv.major, .minor = rv.minor,
        .max_msg_fds = rv.caps.max_msg_fds,
        .max_data_xfer_size = rv.caps.max_data_xfer_size,
        .max_dma_maps = rv.caps.max_dma_maps,
        .pgsizes = rv.caps.pgsizes,
        .twin_socket = twin >= 0,
        .write_multiple = rv.caps.write_multiple,
    };
    /* read_turn() may wait in recvmsg on the main socket (CL_WAIT_MS at a time),
     * unless the server shares our one CPU: then poll() is the cheaper wait */
    if (!ufio_sock_peer_on_my_cpu(c->conn.fd) && ufio_conn_set_blocking(&c->conn, CL_WAIT_MS))
        UFIO_WARN("client", "socket stays non-blocking: replies are waited for in poll()");
    /* small replies are decoded where they were read (cl_call_into's take) */
    ufio_conn_lend(&c->conn, true);
    c->connected = true;
    return 0;
fail_n:
    err = (int)n;
fail:
    ufio_conn_close(&c->conn);
    return err;
}

void cl_disconnect(struct ufio_client *c)
{
    if (!c->connected)
        return;
    c->connected = false;
    /* shutdown, not close: another thread may still be polling these fds */
    shutdown(c->conn.fd, SHUT_RDWR);
    if (c->has_twin)
        shutdown(c->twin.fd, SHUT_RDWR);
    pthread_cond_broadcast(&c->cond);
}

/* ---- serving the server's DMA requests ---------------------------------------- */

static struct cl_dma *dma_lookup(struct ufio_client *c, uint64_t addr, uint64_t count, uint32_t need)
{
    for (size_t i = 0; i < c->ndma; i++) {
        struct cl_dma *d = &c->dma[i];
        if (addr >= d->iova && ufio_range_ok(addr - d->iova, count, d->size))
            return (d->prot & need) && d->local ? d : NULL;
    }
    return NULL;
}

/*
 * A big DMA_WRITE from the server is received straight into the registered
 * memory it names, when it is one the handler would accept (no fds, the
 * data length its head says, inside one writable mapping). c->lock is held.
 */
static void *cl_place_dma(struct ufio_client *c, int which, const struct ufio_msg *m, const uint8_t *prefix,
                          size_t body_len)
{
    struct ufio_dma_access a;
    if (m->hdr.cmd != VFIO_USER_DMA_WRITE || (m->hdr.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_COMMAND ||
        (m->hdr.flags & ~VFIO_USER_F_KNOWN) || m->nfds || m->fds_overflow ||
        ufio_dma_read_req_decode(prefix, 16, c->opts.max_data_xfer_size, &a) || a.count != body_len - 16)
        return NULL;
    struct cl_dma *d = dma_lookup(c, a.addr, a.count, UFIO_DMA_WRITE);
    if (!d)
        return NULL;
    c->placing[which].iova = a.addr;
    c->placing[which].len = a.count;
    c->placing[which].on = true;
    return d->local + (a.addr - d->iova);
}

void cl_dma_forget(struct ufio_client *c, uint64_t iova, uint64_t size)
{
    struct ufio_conn *conns[2] = { &c->conn, &c->twin };
    for (int i = 0; i < 2; i++) {
        if (c->placing[i].on && c->placing[i].iova < iova + size && iova < c->placing[i].iova + c->placing[i].len) {
            ufio_conn_sink_divert(conns[i]);
            c->placing[i].on = false;
        }
    }
}

static void serve_dma(struct ufio_client *c, struct ufio_conn *conn, struct ufio_msg *m)
{
    struct ufio_dma_access a;
    int err;
    uint8_t head[16];
    struct iovec iov[2];
    int iovcnt = 0;
    bool is_read = m->hdr.cmd == VFIO_USER_DMA_READ;
    bool placed = m->sunk != 0;
    if (m->nfds || (m->hdr.cmd != VFIO_USER_DMA_READ && m->hdr.cmd != VFIO_USER_DMA_WRITE)) {
        err = m->nfds ? -EINVAL : -ENOSYS;
    } else if (placed) {
        /* cl_place_dma() checked it and put the data in place, unless an unmap got in between */
        err = m->sink_dropped || m->hdr.cmd != VFIO_USER_DMA_WRITE ? -EFAULT
            : ufio_dma_read_req_decode(m->payload, m->len, c->opts.max_data_xfer_size, &a);
        if (!err && a.count != m->sunk)
            err = -EINVAL;
        if (!err) {
            ssize_t hl = ufio_dma_write_reply_encode(&a, head, sizeof(head));
            iov[0] = (struct iovec){ head, (size_t)hl };
            iovcnt = 1;
            pthread_mutex_lock(&c->lock); /* the send below unlocks, as for the other paths */
        }
    } else {
        err = is_read ? ufio_dma_read_req_decode(m->payload, m->len, c->opts.max_data_xfer_size, &a)
                      : ufio_dma_write_req_decode(m->payload, m->len, c->opts.max_data_xfer_size, &a);
    }
    if (!err && !placed) {
        /* the table can change under a concurrent unmap: look up and copy under the lock */
        pthread_mutex_lock(&c->lock);
        struct cl_dma *d = dma_lookup(c, a.addr, a.count, is_read ? UFIO_DMA_READ : UFIO_DMA_WRITE);
        if (!d) {
            err = -EFAULT;
        } else if (is_read) {
            ssize_t hl = ufio_dma_access_head_encode(&a, head, sizeof(head));
            iov[0] = (struct iovec){ head, (size_t)hl };
            iov[1] = (struct iovec){ d->local + (a.addr - d->iova), (size_t)a.count };
            iovcnt = 2;
        } else {
            memcpy(d->local + (a.addr - d->iova), a.data, (size_t)a.count);
            ssize_t hl = ufio_dma_write_reply_encode(&a, head, sizeof(head));
            iov[0] = (struct iovec){ head, (size_t)hl };
            iovcnt = 1;
        }
        if (err)
            pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_lock(&c->send_lock);
    if (err) {
        ufio_conn_send_error(conn, &m->hdr, err);
    } else {
        struct vfio_user_header h = { .msg_id = m->hdr.msg_id, .cmd = m->hdr.cmd, .flags = VFIO_USER_F_TYPE_REPLY };
        ufio_conn_send(conn, &h, iov, iovcnt, NULL, 0);
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_unlock(&c->send_lock);
}

/* Files one message from the main socket; called by the reader with c->lock held. */
static void dispatch(struct ufio_client *c, struct ufio_conn *conn, struct ufio_msg *m)
{
    if (ufio_hdr_is_reply(&m->hdr) && conn == &c->conn) {
        int i = cl_pending_find(c->pend, CL_MAX_PENDING, m->hdr.msg_id);
        if (i >= 0) {
            struct cl_pending *p = &c->pend[i];
            /* only a reply taken under the lock may stay lent; the others own their bytes */
            if (m->lent && !p->lend && (p->err = ufio_msg_own(conn, m)))
                ufio_conn_recycle(conn, m);
            p->reply = *m;
            ufio_msg_init(m);
            p->done = true;
            p->placing = false;
            pthread_cond_broadcast(&c->cond);
            return;
        }
        UFIO_WARN("client", "reply msg_id %u (%s) matches no request: dropped", m->hdr.msg_id,
                  ufio_cmd_name(m->hdr.cmd));
        ufio_conn_recycle(conn, m);
        return;
    }
    if ((m->hdr.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_COMMAND) {
        ufio_conn_recycle(conn, m);
        return;
    }
    /* a lent request stays put while it is served unlocked: reads go behind it */
    pthread_mutex_unlock(&c->lock);
    serve_dma(c, conn, m);
    pthread_mutex_lock(&c->lock);
    ufio_conn_recycle(conn, m);
}

/* Reads whatever is ready on one connection; c->lock held. -ENOTCONN if it died. */
static int drain(struct ufio_client *c, struct ufio_conn *conn)
{
    for (int i = 0; i < 64; i++) {
        struct ufio_msg m;
        ufio_msg_init(&m);
        int r = ufio_conn_recv(conn, &m);
        if (r == 1)
            c->placing[conn == &c->twin].on = false; /* whatever was placed is complete */
        if (r == 0)
            return 0;
        if (r < 0) {
            UFIO_WARN("client", "connection lost: %s", strerror(-r));
            cl_disconnect(c);
            return -ENOTCONN;
        }
        bool reply = ufio_hdr_is_reply(&m.hdr);
        dispatch(c, conn, &m);
        /* a reply ends a turn: its waiter can go on; poll() is level-triggered,
         * but messages already read ahead must be handled before anyone sleeps */
        if (!c->connected)
            return 0;
        if (reply && !ufio_conn_ready(conn))
            return 0;
    }
    return 0;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
}

/* A message already read ahead on either socket: no poll() may sleep on it. */
static bool conn_ready(struct ufio_client *c)
{
    return ufio_conn_ready(&c->conn) || (c->has_twin && ufio_conn_ready(&c->twin));
}

/* Non-blocking check of both sockets: true if a message was dispatched. */
static bool try_read(struct ufio_client *c, int *err)
{
    struct pollfd p[2] = { { .fd = c->conn.fd, .events = POLLIN } };
    int n = 1;
    if (c->has_twin)
        p[n++] = (struct pollfd){ .fd = c->twin.fd, .events = POLLIN };
    if (poll(p, (nfds_t)n, 0) <= 0 && !conn_ready(c))
        return false;
    if (ufio_conn_ready(&c->conn))
        p[0].revents |= POLLIN;
    if (n > 1 && ufio_conn_ready(&c->twin))
        p[1].revents |= POLLIN;
    if (p[0].revents)
        *err = drain(c, &c->conn);
    if (!*err && n > 1 && p[1].revents && c->connected)
        *err = drain(c, &c->twin);
    return true;
}

/* Registered memory without an fd: the server can only reach it by asking us. */
static bool may_be_asked(const struct ufio_client *c)
{
    for (size_t i = 0; i < c->ndma; i++)
        if (c->dma[i].fd < 0)
            return true;
    return false;
}

/* One turn as the reader: wait up to ms for input and dispatch it. lock held on entry/exit. */
static int read_turn(struct ufio_client *c, int ms)
{
    if (c->opts.poll_us && ms > 0) {
        /* spin first: the reply to a short request usually comes within the budget */
        uint64_t until = now_us() + c->opts.poll_us;
        int err = 0;
        c->reader_active = true;
        while (now_us() < until) {
            pthread_mutex_unlock(&c->lock);
            sched_yield(); /* lets a server on this same CPU run; cheap when alone */
            pthread_mutex_lock(&c->lock);
            if (try_read(c, &err))
                break;
        }
        c->reader_active = false;
        if (err || !c->connected)
            return err;
        for (int i = 0; i < CL_MAX_PENDING; i++)
            if (c->pend[i].used && c->pend[i].done) {
                pthread_cond_broadcast(&c->cond);
                return 0;
            }
    }
    struct pollfd p[2] = { { .fd = c->conn.fd, .events = POLLIN } };
    int n = 1;
    if (c->has_twin)
        p[n++] = (struct pollfd){ .fd = c->twin.fd, .events = POLLIN };
    c->reader_active = true;
    int r;
    if (conn_ready(c)) {
        r = poll(p, (nfds_t)n, 0);
        if (r < 0)
            r = 0;
        if (ufio_conn_ready(&c->conn))
            p[0].revents |= POLLIN;
        if (n > 1 && ufio_conn_ready(&c->twin))
            p[1].revents |= POLLIN;
        r++;
    } else if (ms > 0 && c->conn.fd_blocking && !c->conn.in_body && !(c->has_twin && may_be_asked(c))) {
        /*
         * Nothing can come on the twin socket (no memory the server must ask
         * us for): wait in recvmsg on the main one, which costs less than a
         * poll() and then a recvmsg. The wait only fills the read-ahead
         * buffer; messages are parsed below, under the lock. A server that
         * asks anyway is answered when the wait times out (CL_WAIT_MS).
         */
        c->filling = true;
        pthread_mutex_unlock(&c->lock);
        int fr = ufio_conn_fill_wait(&c->conn);
        pthread_mutex_lock(&c->lock);
        c->filling = false;
        if (c->loan_back) {
            struct ufio_msg loan;
            ufio_msg_init(&loan);
            loan.lent = true;
            ufio_conn_recycle(&c->conn, &loan);
            c->loan_back = false;
        }
        /* after a timeout both are looked at, main first: a reply that came just
         * before the twin socket closed is still delivered */
        r = 1;
        p[0].revents = POLLIN;
        if (n > 1)
            p[1].revents = fr ? 0 : POLLIN;
    } else {
        /* nothing can come on the twin socket (see above): poll the main one
         * alone, cheaper; a server that asks anyway is answered on the timeout */
        nfds_t np = n > 1 && !may_be_asked(c) ? 1 : (nfds_t)n;
        pthread_mutex_unlock(&c->lock);
        r = poll(p, np, ms);
        pthread_mutex_lock(&c->lock);
        if (np < (nfds_t)n && r == 0) {
            p[1].revents = POLLIN;
            r = 1;
        }
    }
    int err = 0;
    if (r > 0 && c->connected) {
        if (p[0].revents)
            err = drain(c, &c->conn);
        if (!err && n > 1 && p[1].revents && c->connected)
            err = drain(c, &c->twin);
    }
    c->reader_active = false;
    pthread_cond_broadcast(&c->cond);
    return err;
}

static int slot_alloc(struct ufio_client *c, uint16_t cmd)
{
    return cl_pending_alloc(c->pend, CL_MAX_PENDING, &c->next_id, cmd);
}

static int cl_call_locked_wait(struct ufio_client *c, int slot, struct ufio_msg *reply)
{
    int64_t deadline = now_ms() + c->opts.timeout_ms;
    struct cl_pending *p = &c->pend[slot];
    int err = 0;
    while (!p->done) {
        if (!c->connected) {
            err = -ENOTCONN;
            break;
        }
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            err = -ETIMEDOUT;
            break;
        }
        if (!c->reader_active) {
            err = read_turn(c, left > 100 ? 100 : (int)left);
            if (err && !p->done)
                break;
            err = 0;
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 20 * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&c->cond, &c->lock, &ts);
        }
    }
    if (p->done) {
        *reply = p->reply;
        err = p->err;
    } else if (p->placing) {
        /* the reader is filling our buffer: the rest of that reply is dropped */
        ufio_conn_sink_divert(&c->conn);
    }
    p->used = false;
    p->dst = NULL;
    p->placing = false;
    return err;
}

struct cl_reply_to {
    struct ufio_msg *reply; /* handed over, owning its bytes */
    cl_take_fn take;        /* or taken under the lock (see cl_call_into) */
    void *arg;
};

static int cl_call_ex(struct ufio_client *c, uint16_t cmd, const struct iovec *iov, int iovcnt,
                      const int *fds, size_t nfds, const uint8_t *head, void *dst, size_t dst_len,
                      const struct cl_reply_to *to);

int cl_call(struct ufio_client *c, uint16_t cmd, const struct iovec *iov, int iovcnt,
            const int *fds, size_t nfds, struct ufio_msg *reply)
{
    struct cl_reply_to to = { .reply = reply };
    return cl_call_ex(c, cmd, iov, iovcnt, fds, nfds, NULL, NULL, 0, &to);
}

int cl_call_into(struct ufio_client *c, uint16_t cmd, const struct iovec *iov, int iovcnt,
                 const uint8_t head[16], void *dst, size_t dst_len, cl_take_fn take, void *arg)
{
    struct cl_reply_to to = { .take = take, .arg = arg };
    return cl_call_ex(c, cmd, iov, iovcnt, NULL, 0, head, dst, dst_len, &to);
}

/* Sends a command; its reply is waited for by call_finish(slot). */
static int call_start(struct ufio_client *c, uint16_t cmd, const struct iovec *iov, int iovcnt, const int *fds,
                      size_t nfds, const uint8_t *head, void *dst, size_t dst_len, bool lend, int *slot_out)
{
    if (cmd != VFIO_USER_REGION_WRITE_MULTI) {
        int err = cl_flush_posted(c);
        if (err)
            return err;
    }
    pthread_mutex_lock(&c->lock);
    if (!c->connected) {
        pthread_mutex_unlock(&c->lock);
        return -ENOTCONN;
    }
    int slot = slot_alloc(c, cmd);
    if (slot < 0) {
        pthread_mutex_unlock(&c->lock);
        return slot;
    }
    uint16_t id = c->pend[slot].id;
    c->pend[slot].lend = lend;
    if (dst && dst_len) {
        c->pend[slot].dst = dst;
        c->pend[slot].dst_len = dst_len;
        memcpy(c->pend[slot].head, head, 16);
    }
    pthread_mutex_unlock(&c->lock);

    struct vfio_user_header h = { .msg_id = id, .cmd = cmd, .flags = VFIO_USER_F_TYPE_COMMAND };
    pthread_mutex_lock(&c->send_lock);
    int err = ufio_conn_send(&c->conn, &h, iov, iovcnt, fds, nfds);
    pthread_mutex_unlock(&c->send_lock);
    if (err) {
        pthread_mutex_lock(&c->lock);
        c->pend[slot].used = false;
        c->pend[slot].dst = NULL;
        if (err == -EPIPE || err == -ECONNRESET || err == -ENOTCONN)
            cl_disconnect(c);
        bool connected = c->connected;
        pthread_mutex_unlock(&c->lock);
        return connected ? err : -ENOTCONN;
    }
    *slot_out = slot;
    return 0;
}

static int call_finish(struct ufio_client *c, uint16_t cmd, int slot, const struct cl_reply_to *to)
{
    pthread_mutex_lock(&c->lock);
    struct ufio_msg m;
    ufio_msg_init(&m);
    int err = cl_call_locked_wait(c, slot, &m);
    /* every reply through its command's row: sizes, fds, decoder */
    bool want = to && (to->reply || to->take);
    if (!err)
        err = cl_reply_verdict(&m, cmd, c->opts.max_data_xfer_size, want);
    if (!err && to && to->take)
        err = to->take(to->arg, &m);
    if (err || !to || !to->reply) {
        /* under the same lock: a lent reply is given back before anyone reads on,
         * or by the reader filling the buffer unlocked right now */
        if (m.lent && c->filling) {
            m.lent = false;
            m.payload = NULL;
            c->loan_back = true;
            ufio_msg_release(&m);
        } else if (c->conn.fd >= 0) {
            ufio_conn_recycle(&c->conn, &m);
        } else {
            ufio_msg_release(&m);
        }
        pthread_mutex_unlock(&c->lock);
        return err;
    }
    pthread_mutex_unlock(&c->lock);
    *to->reply = m; /* its slot did not lend: it owns its bytes */
    return 0;
}

static int cl_call_ex(struct ufio_client *c, uint16_t cmd, const struct iovec *iov, int iovcnt,
                      const int *fds, size_t nfds, const uint8_t *head, void *dst, size_t dst_len,
                      const struct cl_reply_to *to)
{
    int slot;
    int err = call_start(c, cmd, iov, iovcnt, fds, nfds, head, dst, dst_len, to && to->take, &slot);
    return err ? err : call_finish(c, cmd, slot, to);
}

int cl_call_start(struct ufio_client *c, uint16_t cmd, const struct iovec *iov, int iovcnt, int *slot)
{
    return call_start(c, cmd, iov, iovcnt, NULL, 0, NULL, NULL, 0, false, slot);
}

int cl_call_finish(struct ufio_client *c, uint16_t cmd, int slot)
{
    return call_finish(c, cmd, slot, NULL);
}

int cl_send_posted(struct ufio_client *c, uint16_t cmd, const struct iovec *iov, int iovcnt)
{
    pthread_mutex_lock(&c->lock);
    bool ok = c->connected;
    uint16_t id = c->next_id++;
    pthread_mutex_unlock(&c->lock);
    if (!ok)
        return -ENOTCONN;
    struct vfio_user_header h = { .msg_id = id, .cmd = cmd,
                                  .flags = VFIO_USER_F_TYPE_COMMAND | VFIO_USER_F_NO_REPLY };
    pthread_mutex_lock(&c->send_lock);
    int err = ufio_conn_send(&c->conn, &h, iov, iovcnt, NULL, 0);
    pthread_mutex_unlock(&c->send_lock);
    if (err == -EPIPE || err == -ECONNRESET) {
        pthread_mutex_lock(&c->lock);
        cl_disconnect(c);
        pthread_mutex_unlock(&c->lock);
        return -ENOTCONN;
    }
    return err;
}

void cl_release(struct ufio_client *c, struct ufio_msg *m)
{
    pthread_mutex_lock(&c->lock);
    if (c->conn.fd >= 0)
        ufio_conn_recycle(&c->conn, m);
    else
        ufio_msg_release(m);
    pthread_mutex_unlock(&c->lock);
}

int cl_flush_posted(struct ufio_client *c)
{
    if (!__atomic_load_n(&c->posted, __ATOMIC_ACQUIRE))
        return 0;
    pthread_mutex_lock(&c->post_lock);
    int err = 0;
    if (c->npost) {
        uint8_t *buf = malloc(8 + UFIO_WRITE_MULTI_ENTRY * c->npost);
        if (!buf) {
            err = -ENOMEM;
        } else {
            ssize_t n = ufio_write_multi_encode(c->post, c->npost, buf, 8 + UFIO_WRITE_MULTI_ENTRY * c->npost);
            if (n < 0) {
                err = (int)n;
            } else {
                struct iovec iov = { buf, (size_t)n };
                err = cl_send_posted(c, VFIO_USER_REGION_WRITE_MULTI, &iov, 1);
            }
            free(buf);
        }
        c->npost = 0;
        __atomic_store_n(&c->posted, false, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&c->post_lock);
    return err;
}

UFIO_API int ufio_client_process(struct ufio_client *c)
{
    pthread_mutex_lock(&c->lock);
    int err = 0;
    if (!c->connected)
        err = -ENOTCONN;
    else if (!c->reader_active)
        err = read_turn(c, 0);
    pthread_mutex_unlock(&c->lock);
    return err;
}

UFIO_API int ufio_client_get_poll_fd(struct ufio_client *c)
{
    return c->has_twin ? c->twin.fd : c->conn.fd;
}

UFIO_API bool ufio_client_connected(struct ufio_client *c)
{
    pthread_mutex_lock(&c->lock);
    bool r = c->connected;
    pthread_mutex_unlock(&c->lock);
    return r;
}
