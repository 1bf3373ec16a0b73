/*
 * Whole vfio-user messages over a non-blocking stream socket.
 */
#include "transport/transport.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONN_MAX_IOV 64

void ufio_msg_init(struct ufio_msg *m)
{
    memset(&m->hdr, 0, sizeof(m->hdr));
    m->payload = NULL;
    m->len = 0;
    m->lent = false;
    m->nfds = 0;
    m->fds_overflow = false;
    m->sunk = 0;
    m->sink_dropped = false;
    for (size_t i = 0; i < UFIO_TRANSPORT_MAX_FDS; i++)
        m->fds[i] = -1;
}

void ufio_msg_close_fds(struct ufio_msg *m)
{
    for (size_t i = 0; i < m->nfds; i++) {
        if (m->fds[i] >= 0)
            close(m->fds[i]);
        m->fds[i] = -1;
    }
}

void ufio_msg_release(struct ufio_msg *m)
{
    ufio_msg_close_fds(m);
    if (!m->lent)
        free(m->payload);
    ufio_msg_init(m);
}

int ufio_msg_take_fd(struct ufio_msg *m, size_t i)
{
    if (i >= m->nfds)
        return -1;
    int fd = m->fds[i];
    m->fds[i] = -1;
    return fd;
}

void ufio_conn_init(struct ufio_conn *c, int fd, size_t max_msg_size, size_t max_fds)
{
    c->fd = fd;
    c->max_msg_size = max_msg_size;
    c->max_fds = max_fds > UFIO_TRANSPORT_MAX_FDS ? UFIO_TRANSPORT_MAX_FDS : max_fds;
    c->send_timeout_ms = 5000;
    c->sink = NULL;
    c->fd_blocking = false;
    c->block_body = false;
    c->rx_off = 0;
    c->rx_len = 0;
    c->rx_base = 0;
    c->lend = false;
    c->rx_pend.n = 0;
    c->rx_pend.overflow = false;
    c->in_body = false;
    c->body_dst = NULL;
    c->body_got = 0;
    c->body_want = 0;
    c->spare = NULL;
    c->spare_cap = 0;
    ufio_msg_init(&c->cur);
}

#define SPARE_MIN (64u * 1024)

void ufio_conn_lend(struct ufio_conn *c, bool on) { c->lend = on; }

/* The lent bytes are free again: with nothing unparsed the buffer restarts at 0. */
static void conn_unlend(struct ufio_conn *c)
{
    c->rx_base = 0;
    if (c->rx_off == c->rx_len)
        c->rx_off = c->rx_len = 0;
}

int ufio_msg_own(struct ufio_conn *c, struct ufio_msg *m)
{
    if (!m->lent)
        return 0;
    uint8_t *p = malloc(m->len);
    if (!p)
        return -ENOMEM;
    memcpy(p, m->payload, m->len);
    m->payload = p;
    m->lent = false;
    conn_unlend(c);
    return 0;
}

void ufio_conn_recycle(struct ufio_conn *c, struct ufio_msg *m)
{
    if (m->lent) {
        m->payload = NULL;
        m->lent = false;
        conn_unlend(c);
    } else if (m->payload && m->len >= SPARE_MIN && m->len > c->spare_cap) {
        free(c->spare);
        c->spare = m->payload;
        c->spare_cap = m->len;
        m->payload = NULL;
    }
    ufio_msg_release(m);
}

static uint8_t *payload_alloc(struct ufio_conn *c, size_t len)
{
    if (len >= SPARE_MIN && c->spare && c->spare_cap >= len) {
        uint8_t *p = c->spare;
        c->spare = NULL;
        c->spare_cap = 0;
        return p;
    }
    return malloc(len);
}

static void pend_close(struct ufio_rx_fds *p)
{
    for (size_t i = 0; i < p->n; i++)
        close(p->fds[i]);
    p->n = 0;
    p->overflow = false;
}

static void conn_reset_rx(struct ufio_conn *c)
{
    ufio_msg_release(&c->cur);
    pend_close(&c->rx_pend);
    c->rx_off = 0;
    c->rx_len = 0;
    c->rx_base = 0;
    c->in_body = false;
    c->body_dst = NULL;
    c->body_got = 0;
    c->body_want = 0;
}

void ufio_conn_close(struct ufio_conn *c)
{
    conn_reset_rx(c);
    free(c->spare);
    c->spare = NULL;
    c->spare_cap = 0;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Gives a message fds, closing (and flagging) those beyond max_fds. */
static void give_fds(struct ufio_conn *c, struct ufio_msg *m, struct ufio_rx_fds *p)
{
    for (size_t i = 0; i < p->n; i++) {
        if (m->nfds < c->max_fds) {
            m->fds[m->nfds++] = p->fds[i];
        } else {
            close(p->fds[i]);
            m->fds_overflow = true;
        }
    }
    if (p->overflow)
        m->fds_overflow = true;
    p->n = 0;
    p->overflow = false;
}

/* Keeps the fds that came with one read in c->rx_pend (it is empty before). */
static void collect_fds(struct ufio_conn *c, struct msghdr *mh)
{
    struct ufio_rx_fds *p = &c->rx_pend;
    if (mh->msg_flags & MSG_CTRUNC)
        p->overflow = true;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (p->n < UFIO_TRANSPORT_MAX_FDS) {
                p->fds[p->n++] = fd;
            } else {
                close(fd);
                p->overflow = true;
            }
        }
    }
}

/* One recvmsg of at most len bytes: >0 bytes, 0 would block (or timed out,
 * or a signal came), <0 error. flags: MSG_DONTWAIT, or 0 / MSG_WAITALL to
 * wait on a blocking fd. */
static ssize_t conn_read_flags(struct ufio_conn *c, void *buf, size_t len, int flags)
{
    union {
        char b[CMSG_SPACE(sizeof(int) * UFIO_TRANSPORT_MAX_FDS)];
        struct cmsghdr align;
    } cm;
    struct iovec iov = { buf, len };
    for (;;) {
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
                             .msg_controllen = sizeof(cm.b) };
        ssize_t n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC | flags);
        if (n < 0) {
            if (errno == EINTR && (flags & MSG_DONTWAIT))
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return 0; /* a waiting caller gets to look at why it was woken */
            return -errno;
        }
        collect_fds(c, &mh);
        if (n == 0)
            return -ECONNRESET;
        return n;
    }
}

int ufio_conn_set_blocking(struct ufio_conn *c, int timeout_ms)
{
    struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
    if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
        return -errno;
    int err = ufio_set_nonblock(c->fd, false);
    if (err)
        return err;
    c->fd_blocking = true;
    return 0;
}

bool ufio_conn_ready(const struct ufio_conn *c)
{
    if (c->fd < 0 || c->in_body || c->rx_len - c->rx_off < VFIO_USER_HDR_SIZE)
        return false;
    uint32_t size = ufio_ld32(c->rx + c->rx_off + 4);
    return size < VFIO_USER_HDR_SIZE || size > c->max_msg_size || size <= c->rx_len - c->rx_off;
}

void ufio_conn_sink_divert(struct ufio_conn *c)
{
    if (c->in_body && c->cur.sunk) {
        c->body_dst = NULL;
        c->cur.sink_dropped = true;
    }
}

static void deliver(struct ufio_conn *c, struct ufio_msg *out)
{
    *out = c->cur;
    ufio_msg_init(&c->cur);
    c->in_body = false;
    c->body_dst = NULL;
    c->body_got = 0;
    c->body_want = 0;
}

/*
 * The message at rx_off is whole in rx: it becomes cur's payload, lent in
 * place when the caller asked for that, nothing else is lent and the spare
 * room stays free behind it; copied otherwise. The fds of the last read are
 * its own if it holds that read's last byte.
 */
static int take_buffered(struct ufio_conn *c, uint32_t size, bool lend)
{
    size_t body = size - VFIO_USER_HDR_SIZE;
    size_t end = c->rx_off + size;
    if (body && lend && c->lend && !c->rx_base && end <= sizeof(c->rx) - UFIO_CONN_RX_SPARE) {
        c->cur.payload = c->rx + c->rx_off + VFIO_USER_HDR_SIZE;
        c->cur.lent = true;
        c->rx_base = end;
    } else if (body) {
        c->cur.payload = malloc(body);
        if (!c->cur.payload)
            return -ENOMEM;
        memcpy(c->cur.payload, c->rx + c->rx_off + VFIO_USER_HDR_SIZE, body);
    }
    c->cur.len = body;
    if (c->rx_pend.n || c->rx_pend.overflow) {
        if (c->rx_pend.last < c->rx_off + size)
            give_fds(c, &c->cur, &c->rx_pend);
    }
    c->rx_off = end;
    if (c->rx_off == c->rx_len)
        c->rx_off = c->rx_len = c->rx_base;
    return 0;
}

/*
 * cur is bigger than rx: its body goes to a sink or a payload of its own,
 * starting with the bytes rx already has; the rest is read with exact
 * lengths. Returns 0, 1 when more prefix bytes are needed first, or -ENOMEM.
 */
static int start_direct(struct ufio_conn *c, uint32_t size)
{
    size_t body = size - VFIO_USER_HDR_SIZE;
    size_t have = c->rx_len - c->rx_off - VFIO_USER_HDR_SIZE;
    const uint8_t *src = c->rx + c->rx_off + VFIO_USER_HDR_SIZE;
    /* rx holds only this message's bytes, so the last read's fds are its own */
    give_fds(c, &c->cur, &c->rx_pend);
    const struct ufio_conn_sink *s = c->sink;
    if (s && s->prefix < body) {
        if (have < s->prefix)
            return 1;
        size_t keep = s->prefix;
        uint8_t *dst = s->place(s->opaque, &c->cur, src, body, &keep);
        if (dst && keep <= s->prefix) {
            c->cur.payload = keep ? malloc(keep) : NULL;
            if (keep && !c->cur.payload)
                return -ENOMEM;
            memcpy(c->cur.payload, src, keep);
            c->cur.len = keep;
            c->cur.sunk = body - keep;
            memcpy(dst, src + keep, have - keep);
            c->body_dst = dst;
            c->body_got = have - keep;
            c->body_want = body - keep;
            goto direct;
        }
    }
    c->cur.payload = payload_alloc(c, body);
    if (!c->cur.payload)
        return -ENOMEM;
    c->cur.len = body;
    memcpy(c->cur.payload, src, have);
    c->body_dst = c->cur.payload;
    c->body_got = have;
    c->body_want = body;
direct:
    c->in_body = true;
    c->rx_off = c->rx_len = c->rx_base;
    return 0;
}

/* Reads the rest of a direct body: 1 when complete, 0 would block, <0 error. */
static int read_direct(struct ufio_conn *c)
{
    /* the peer is sending this body now: waiting for all of it in the kernel
     * saves a wake-up per segment (one wait per call, bounded by the timeout) */
    int flags = c->fd_blocking && c->block_body ? MSG_WAITALL : MSG_DONTWAIT;
    while (c->body_got < c->body_want) {
        size_t want = c->body_want - c->body_got;
        uint8_t *dst;
        if (c->body_dst) {
            dst = c->body_dst + c->body_got;
        } else { /* diverted: rx past any lent bytes is free while a direct body is read */
            dst = c->rx + c->rx_base;
            if (want > sizeof(c->rx) - c->rx_base)
                want = sizeof(c->rx) - c->rx_base;
        }
        ssize_t n = conn_read_flags(c, dst, want, flags);
        flags = MSG_DONTWAIT; /* one wait per call: the caller's loop decides about more */
        give_fds(c, &c->cur, &c->rx_pend);
        if (n <= 0)
            return (int)n;
        c->body_got += (size_t)n;
    }
    return 1;
}

/*
 * One read into the free end of rx. Only an incomplete first message is in
 * rx then, so fds of earlier reads are its own; the fds of this read belong
 * to whichever message holds its last byte (rx_pend.last). flags as for
 * conn_read_flags(). >0 bytes, 0 nothing (would block, timeout), <0 error.
 */
static ssize_t fill_rx(struct ufio_conn *c, int flags)
{
    give_fds(c, &c->cur, &c->rx_pend);
    if (c->rx_off > c->rx_base) { /* compaction stops short of a lent message */
        memmove(c->rx + c->rx_base, c->rx + c->rx_off, c->rx_len - c->rx_off);
        c->rx_len -= c->rx_off - c->rx_base;
        c->rx_off = c->rx_base;
    }
    ssize_t n = conn_read_flags(c, c->rx + c->rx_len, sizeof(c->rx) - c->rx_len, flags);
    if (n <= 0) {
        give_fds(c, &c->cur, &c->rx_pend);
        return n;
    }
    c->rx_len += (size_t)n;
    c->rx_pend.last = c->rx_len - 1;
    return n;
}

int ufio_conn_fill_wait(struct ufio_conn *c)
{
    if (c->fd < 0)
        return -ENOTCONN;
    if (!c->fd_blocking || c->in_body || ufio_conn_ready(c) || c->rx_len - c->rx_off == sizeof(c->rx) - c->rx_base)
        return 1; /* nothing to wait for here: let ufio_conn_recv() look */
    ssize_t n = fill_rx(c, 0);
    return n > 0 ? 1 : (int)n;
}

static int conn_recv(struct ufio_conn *c, struct ufio_msg *out, bool lend)
{
    if (c->fd < 0)
        return -ENOTCONN;
    for (;;) {
        int r;
        if (c->in_body) {
            r = read_direct(c);
            if (r < 0)
                conn_reset_rx(c);
            if (r == 1)
                deliver(c, out);
            return r;
        }
        size_t avail = c->rx_len - c->rx_off;
        if (avail >= VFIO_USER_HDR_SIZE) {
            struct vfio_user_header *h = &c->cur.hdr;
            /* lib/proto's decoder, the one the fuzzers run: bound first, then allocate.
             * A bad flag (-EINVAL) still frames: the message is delivered and answered. */
            if (ufio_hdr_decode(c->rx + c->rx_off, VFIO_USER_HDR_SIZE, c->max_msg_size, h) == -EPROTO) {
                conn_reset_rx(c);
                return -EPROTO;
            }
            /* whole in the buffer, and not too big for read-ahead: the buffer's
             * spare room (kept for a lent message) does not make a body that a
             * sink takes into one that is read ahead */
            if (avail >= h->msg_size && h->msg_size <= UFIO_CONN_RX_CAP) {
                r = take_buffered(c, h->msg_size, lend);
                if (r < 0) {
                    conn_reset_rx(c);
                    return r;
                }
                deliver(c, out);
                return 1;
            }
            /* too big for read-ahead, or for what a lent message leaves of it */
            if (h->msg_size > UFIO_CONN_RX_CAP || h->msg_size > sizeof(c->rx) - c->rx_base) {
                r = start_direct(c, h->msg_size);
                if (r < 0) {
                    conn_reset_rx(c);
                    return r;
                }
                if (r == 0)
                    continue;
            }
        }
        ssize_t n = fill_rx(c, MSG_DONTWAIT);
        if (n <= 0) {
            if (n < 0)
                conn_reset_rx(c);
            return (int)n;
        }
    }
}

int ufio_conn_recv(struct ufio_conn *c, struct ufio_msg *out) { return conn_recv(c, out, true); }

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int t = -1;
        if (deadline >= 0) {
            int64_t left = deadline - now_ms();
            if (left <= 0)
                return -ETIMEDOUT;
            t = left > INT_MAX ? INT_MAX : (int)left;
        }
        struct pollfd p = { .fd = fd, .events = events };
        int r = poll(&p, 1, t);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -ETIMEDOUT;
        return 0;
    }
}

int ufio_conn_recv_wait(struct ufio_conn *c, struct ufio_msg *out, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    for (;;) {
        int r = conn_recv(c, out, false); /* a reply awaited inside a handler: it may be lending */
        if (r != 0)
            return r < 0 ? r : 0;
        r = wait_fd(c->fd, POLLIN, deadline);
        if (r)
            return r;
    }
}

int ufio_conn_send(struct ufio_conn *c, struct vfio_user_header *hdr,
                   const struct iovec *iov, int iovcnt, const int *fds, size_t nfds)
{
    if (c->fd < 0)
        return -ENOTCONN;
    if (iovcnt < 0 || iovcnt > CONN_MAX_IOV - 1 || nfds > UFIO_TRANSPORT_MAX_FDS)
        return -EINVAL;
    struct iovec v[CONN_MAX_IOV];
    uint8_t hb[VFIO_USER_HDR_SIZE];
    uint64_t total = VFIO_USER_HDR_SIZE;
    v[0].iov_base = hb;
    v[0].iov_len = sizeof(hb);
    int nv = 1;
    for (int i = 0; i < iovcnt; i++) {
        if (!iov[i].iov_len)
            continue;
        v[nv++] = iov[i];
        total += iov[i].iov_len;
    }
    if (total > UINT32_MAX)
        return -EMSGSIZE;
    hdr->msg_size = (uint32_t)total;
    ufio_st16(hb, hdr->msg_id);
    ufio_st16(hb + 2, hdr->cmd);
    ufio_st32(hb + 4, hdr->msg_size);
    ufio_st32(hb + 8, hdr->flags);
    ufio_st32(hb + 12, hdr->error_no);

    union {
        char b[CMSG_SPACE(sizeof(int) * UFIO_TRANSPORT_MAX_FDS)];
        struct cmsghdr align;
    } cm;
    int64_t deadline = c->send_timeout_ms < 0 ? -1 : now_ms() + c->send_timeout_ms;
    struct iovec *cur = v;
    bool fds_sent = nfds == 0;
    while (nv > 0) {
        struct msghdr mh = { .msg_iov = cur, .msg_iovlen = (size_t)nv };
        if (!fds_sent) {
            memset(cm.b, 0, sizeof(cm.b)); /* no uninitialised padding on the wire */
            mh.msg_control = cm.b;
            mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
            struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
            h->cmsg_level = SOL_SOCKET;
            h->cmsg_type = SCM_RIGHTS;
            h->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
            memcpy(CMSG_DATA(h), fds, sizeof(int) * nfds);
        }
        ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                int r = wait_fd(c->fd, POLLOUT, deadline);
                if (r)
                    return r;
                continue;
            }
            return -errno;
        }
        fds_sent = true;
        /* advance through the iovecs without copying the payload */
        size_t left = (size_t)n;
        while (nv > 0 && left >= cur->iov_len) {
            left -= cur->iov_len;
            cur++;
            nv--;
        }
        if (nv > 0) {
            cur->iov_base = (uint8_t *)cur->iov_base + left;
            cur->iov_len -= left;
        }
    }
    return 0;
}

int ufio_conn_send_error(struct ufio_conn *c, const struct vfio_user_header *req, int err)
{
    struct vfio_user_header h = {
        .msg_id = req->msg_id,
        .cmd = req->cmd,
        .flags = VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR,
        .error_no = (uint32_t)(err < 0 ? -err : err),
    };
    return ufio_conn_send(c, &h, NULL, 0, NULL, 0);
}

int ufio_conn_send_reply(struct ufio_conn *c, const struct vfio_user_header *req,
                         const void *payload, size_t len, const int *fds, size_t nfds)
{
    struct vfio_user_header h = {
        .msg_id = req->msg_id,
        .cmd = req->cmd,
        .flags = VFIO_USER_F_TYPE_REPLY,
    };
    struct iovec iov = { (void *)payload, len };
    return ufio_conn_send(c, &h, &iov, len ? 1 : 0, fds, nfds);
}
