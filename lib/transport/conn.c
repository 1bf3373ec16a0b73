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
    m->nfds = 0;
    m->fds_overflow = false;
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
    c->hdr_got = 0;
    c->in_body = false;
    c->body_got = 0;
    c->spare = NULL;
    c->spare_cap = 0;
    ufio_msg_init(&c->cur);
}

#define SPARE_MIN (64u * 1024)

void ufio_conn_recycle(struct ufio_conn *c, struct ufio_msg *m)
{
    if (m->payload && m->len >= SPARE_MIN && m->len > c->spare_cap) {
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

static void conn_reset_rx(struct ufio_conn *c)
{
    ufio_msg_release(&c->cur);
    c->hdr_got = 0;
    c->in_body = false;
    c->body_got = 0;
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

/* Keeps the fds that came with these bytes; extras and truncation mark the message. */
static void collect_fds(struct ufio_conn *c, struct msghdr *mh)
{
    if (mh->msg_flags & MSG_CTRUNC)
        c->cur.fds_overflow = true;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (c->cur.nfds < c->max_fds) {
                c->cur.fds[c->cur.nfds++] = fd;
            } else {
                close(fd);
                c->cur.fds_overflow = true;
            }
        }
    }
}

/* One recvmsg of at most len bytes: >0 bytes, 0 would block, <0 error. */
static ssize_t conn_read(struct ufio_conn *c, void *buf, size_t len)
{
    union {
        char b[CMSG_SPACE(sizeof(int) * UFIO_TRANSPORT_MAX_FDS)];
        struct cmsghdr align;
    } cm;
    struct iovec iov = { buf, len };
    for (;;) {
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
                             .msg_controllen = sizeof(cm.b) };
        ssize_t n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -errno;
        }
        collect_fds(c, &mh);
        if (n == 0)
            return -ECONNRESET;
        return n;
    }
}

int ufio_conn_recv(struct ufio_conn *c, struct ufio_msg *out)
{
    if (c->fd < 0)
        return -ENOTCONN;
    for (;;) {
        if (!c->in_body) {
            ssize_t n = conn_read(c, c->hdr_buf + c->hdr_got, VFIO_USER_HDR_SIZE - c->hdr_got);
            if (n <= 0) {
                if (n < 0)
                    conn_reset_rx(c);
                return (int)n;
            }
            c->hdr_got += (size_t)n;
            if (c->hdr_got < VFIO_USER_HDR_SIZE)
                continue;
            struct vfio_user_header *h = &c->cur.hdr;
            h->msg_id = ufio_ld16(c->hdr_buf);
            h->cmd = ufio_ld16(c->hdr_buf + 2);
            h->msg_size = ufio_ld32(c->hdr_buf + 4);
            h->flags = ufio_ld32(c->hdr_buf + 8);
            h->error_no = ufio_ld32(c->hdr_buf + 12);
            /* bound first, then allocate */
            if (h->msg_size < VFIO_USER_HDR_SIZE || h->msg_size > c->max_msg_size) {
                conn_reset_rx(c);
                return -EPROTO;
            }
            c->cur.len = h->msg_size - VFIO_USER_HDR_SIZE;
            if (c->cur.len) {
                c->cur.payload = payload_alloc(c, c->cur.len);
                if (!c->cur.payload) {
                    conn_reset_rx(c);
                    return -ENOMEM;
                }
            }
            c->in_body = true;
            c->body_got = 0;
        }
        if (c->body_got < c->cur.len) {
            ssize_t n = conn_read(c, c->cur.payload + c->body_got, c->cur.len - c->body_got);
            if (n <= 0) {
                if (n < 0)
                    conn_reset_rx(c);
                return (int)n;
            }
            c->body_got += (size_t)n;
            if (c->body_got < c->cur.len)
                continue;
        }
        *out = c->cur;
        ufio_msg_init(&c->cur);
        c->hdr_got = 0;
        c->in_body = false;
        c->body_got = 0;
        return 1;
    }
}

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
        int r = ufio_conn_recv(c, out);
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
