/*
 * fd bundles: a table message, then batches of fds over SCM_RIGHTS
 * (fdbundle.h). Blocking with an overall deadline, on a socket of any mode.
 */
#include "transport/fdbundle.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proto/cursor.h"

#define MSG_HEAD 8u
#define BATCH_BODY 8u

void ufio_fdb_init(struct ufio_fdb *b)
{
    memset(b, 0, sizeof(*b));
}

int ufio_fdb_add(struct ufio_fdb *b, uint32_t kind, uint32_t index, uint64_t a, uint64_t bb, uint64_t c, int fd)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 16;
        struct ufio_fdb_entry *e = realloc(b->e, cap * sizeof(*e));
        if (!e)
            return -ENOMEM;
        b->e = e;
        b->cap = cap;
    }
    b->e[b->n++] = (struct ufio_fdb_entry){ kind, index, a, bb, c, fd };
    return 0;
}

int ufio_fdb_take(struct ufio_fdb *b, size_t i)
{
    if (i >= b->n)
        return -1;
    int fd = b->e[i].fd;
    b->e[i].fd = -1;
    return fd;
}

long ufio_fdb_find(const struct ufio_fdb *b, uint32_t kind, uint32_t index, size_t from)
{
    for (size_t i = from; i < b->n; i++)
        if (b->e[i].kind == kind && (index == UINT32_MAX || b->e[i].index == index))
            return (long)i;
    return -1;
}

size_t ufio_fdb_nfds(const struct ufio_fdb *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++)
        n += b->e[i].fd >= 0;
    return n;
}

void ufio_fdb_forget(struct ufio_fdb *b)
{
    free(b->e);
    ufio_fdb_init(b);
}

void ufio_fdb_free(struct ufio_fdb *b)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->e[i].fd >= 0)
            close(b->e[i].fd);
    ufio_fdb_forget(b);
}

/* ---- deadlines ------------------------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Waits for events on sock until the deadline (-1: none). */
static int wait_for(int sock, short events, int64_t deadline)
{
    for (;;) {
        int left = -1;
        if (deadline >= 0) {
            int64_t d = deadline - now_ms();
            if (d <= 0)
                return -ETIMEDOUT;
            left = d > 1000000 ? 1000000 : (int)d;
        }
        struct pollfd p = { .fd = sock, .events = events };
        int r = poll(&p, 1, left);
        if (r > 0)
            return 0;
        if (r == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

/* ---- sending ---------------------------------------------------------------------- */

/* Sends all of buf, with fds (if any) on its first byte. */
static int send_all(int sock, const uint8_t *buf, size_t len, const int *fds, size_t nfds, int64_t deadline)
{
    size_t off = 0;
    while (off < len) {
        struct iovec iov = { (void *)(buf + off), len - off };
        union {
            char b[CMSG_SPACE(sizeof(int) * UFIO_FDB_BATCH)];
            struct cmsghdr align;
        } ctl;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (off == 0 && nfds) {
            memset(&ctl, 0, sizeof(ctl));
            mh.msg_control = ctl.b;
            mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
            struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
            memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
        }
        ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN)
            return -errno;
        int err = wait_for(sock, POLLOUT, deadline);
        if (err)
            return err;
    }
    return 0;
}

int ufio_fdb_send(int sock, const struct ufio_fdb *b, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    if (b->n > UFIO_FDB_MAX_ENTRIES)
        return -E2BIG;
    size_t body = 8 + b->n * UFIO_FDB_ENTRY_SIZE;
    uint8_t *t = malloc(MSG_HEAD + body);
    if (!t)
        return -ENOMEM;
    struct ufio_wr w = ufio_wr_init(t, MSG_HEAD + body);
    ufio_wr_u32(&w, UFIO_FDB_TABLE_MAGIC);
    ufio_wr_u32(&w, (uint32_t)body);
    ufio_wr_u32(&w, UFIO_FDB_VERSION);
    ufio_wr_u32(&w, (uint32_t)b->n);
    for (size_t i = 0; i < b->n; i++) {
        const struct ufio_fdb_entry *e = &b->e[i];
        ufio_wr_u32(&w, e->kind);
        ufio_wr_u32(&w, e->index);
        ufio_wr_u64(&w, e->a);
        ufio_wr_u64(&w, e->b);
        ufio_wr_u64(&w, e->c);
        ufio_wr_u32(&w, e->fd >= 0);
        ufio_wr_u32(&w, 0);
    }
    int err = send_all(sock, t, w.off, NULL, 0, deadline);
    free(t);
    /* batches: the fds in table order, UFIO_FDB_BATCH at a time */
    size_t i = 0;
    while (!err) {
        while (i < b->n && b->e[i].fd < 0)
            i++;
        if (i == b->n)
            break;
        int fds[UFIO_FDB_BATCH];
        size_t first = i, k = 0;
        for (; i < b->n && k < UFIO_FDB_BATCH; i++)
            if (b->e[i].fd >= 0)
                fds[k++] = b->e[i].fd;
        uint8_t m[MSG_HEAD + BATCH_BODY];
        struct ufio_wr mw = ufio_wr_init(m, sizeof(m));
        ufio_wr_u32(&mw, UFIO_FDB_BATCH_MAGIC);
        ufio_wr_u32(&mw, BATCH_BODY);
        ufio_wr_u32(&mw, (uint32_t)first);
        ufio_wr_u32(&mw, (uint32_t)k);
        err = send_all(sock, m, sizeof(m), fds, k, deadline);
    }
    return err;
}

/* ---- receiving -------------------------------------------------------------------- */

/* A received fd with nowhere to go is closed at once. */
static void keep_fds(struct cmsghdr *cm, int *got, size_t *ngot, size_t cap, bool *extra)
{
    size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const uint8_t *p = CMSG_DATA(cm);
    for (size_t j = 0; j < n; j++) {
        int fd;
        memcpy(&fd, p + j * sizeof(int), sizeof(int));
        if (*ngot < cap) {
            got[(*ngot)++] = fd;
        } else {
            close(fd);
            *extra = true;
        }
    }
}

/*
 * Reads exactly len bytes. fds arriving with them go to got[] (at most cap;
 * more set *extra and are closed); a truncated control message sets *extra.
 */
static int recv_all(int sock, uint8_t *buf, size_t len, int *got, size_t *ngot, size_t cap, bool *extra,
                    int64_t deadline)
{
    size_t off = 0;
    while (off < len) {
        struct iovec iov = { buf + off, len - off };
        union {
            char b[CMSG_SPACE(sizeof(int) * UFIO_FDB_BATCH)];
            struct cmsghdr align;
        } ctl;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b) };
        ssize_t n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n > 0 || (n == 0 && mh.msg_controllen)) {
            for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
                if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
                    keep_fds(cm, got, ngot, cap, extra);
            if (mh.msg_flags & MSG_CTRUNC)
                *extra = true;
        }
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n == 0)
            return -ECONNRESET;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int err = wait_for(sock, POLLIN, deadline);
        if (err)
            return err;
    }
    return 0;
}

static void close_all(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
}

static int recv_table(int sock, struct ufio_fdb *b, size_t max, int64_t deadline)
{
    uint8_t head[MSG_HEAD + 8];
    int stray[UFIO_FDB_BATCH];
    size_t nstray = 0;
    bool extra = false;
    int err = recv_all(sock, head, sizeof(head), stray, &nstray, UFIO_FDB_BATCH, &extra, deadline);
    close_all(stray, nstray); /* the table carries no fds */
    if (err)
        return err;
    struct ufio_rd r = ufio_rd_init(head, sizeof(head));
    uint32_t magic = 0, body = 0, version = 0, count = 0;
    ufio_rd_u32(&r, &magic);
    ufio_rd_u32(&r, &body);
    ufio_rd_u32(&r, &version);
    ufio_rd_u32(&r, &count);
    if (magic != UFIO_FDB_TABLE_MAGIC || version != UFIO_FDB_VERSION || nstray || extra)
        return -EPROTO;
    if (count > max)
        return -E2BIG;
    if (body != 8 + (uint64_t)count * UFIO_FDB_ENTRY_SIZE)
        return -EPROTO;
    size_t tlen = (size_t)count * UFIO_FDB_ENTRY_SIZE;
    uint8_t *t = malloc(tlen ? tlen : 1);
    if (!t)
        return -ENOMEM;
    err = recv_all(sock, t, tlen, stray, &nstray, UFIO_FDB_BATCH, &extra, deadline);
    close_all(stray, nstray);
    if (!err && (nstray || extra))
        err = -EPROTO;
    r = ufio_rd_init(t, tlen);
    for (uint32_t i = 0; !err && i < count; i++) {
        uint32_t kind = 0, index = 0, has = 0, rsvd = 0;
        uint64_t a = 0, bb = 0, c = 0;
        ufio_rd_u32(&r, &kind);
        ufio_rd_u32(&r, &index);
        ufio_rd_u64(&r, &a);
        ufio_rd_u64(&r, &bb);
        ufio_rd_u64(&r, &c);
        ufio_rd_u32(&r, &has);
        ufio_rd_u32(&r, &rsvd);
        if (has > 1 || rsvd || kind < UFIO_FDB_CONN || kind > UFIO_FDB_HELD || (kind == UFIO_FDB_DATA && has) ||
            (kind == UFIO_FDB_HELD && !has))
            err = -EPROTO;
        else
            /* -2 marks "an fd is due here"; a batch replaces it */
            err = ufio_fdb_add(b, kind, index, a, bb, c, has ? -2 : -1);
    }
    free(t);
    return err;
}

/* The next entry (from i) that awaits an fd, or b->n. */
static size_t next_due(const struct ufio_fdb *b, size_t i)
{
    while (i < b->n && b->e[i].fd != -2)
        i++;
    return i;
}

static int recv_batches(int sock, struct ufio_fdb *b, int64_t deadline)
{
    size_t i = next_due(b, 0);
    while (i < b->n) {
        uint8_t m[MSG_HEAD + BATCH_BODY];
        int got[UFIO_FDB_BATCH];
        size_t ngot = 0;
        bool extra = false;
        int err = recv_all(sock, m, sizeof(m), got, &ngot, UFIO_FDB_BATCH, &extra, deadline);
        struct ufio_rd r = ufio_rd_init(m, sizeof(m));
        uint32_t magic = 0, body = 0, first = 0, count = 0;
        ufio_rd_u32(&r, &magic);
        ufio_rd_u32(&r, &body);
        ufio_rd_u32(&r, &first);
        ufio_rd_u32(&r, &count);
        if (!err && (magic != UFIO_FDB_BATCH_MAGIC || body != BATCH_BODY || first != i || count == 0 ||
                     count > UFIO_FDB_BATCH || count != ngot || extra))
            err = -EPROTO;
        for (size_t k = 0; !err && k < ngot; k++) {
            if (i >= b->n) {
                err = -EPROTO; /* more fds than the table announced */
                break;
            }
            b->e[i].fd = got[k];
            got[k] = -1;
            i = next_due(b, i + 1);
        }
        for (size_t k = 0; k < ngot; k++)
            if (got[k] >= 0)
                close(got[k]);
        if (err)
            return err;
    }
    return 0;
}

int ufio_fdb_recv(int sock, struct ufio_fdb *b, size_t max_entries, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    ufio_fdb_init(b);
    if (!max_entries || max_entries > UFIO_FDB_MAX_ENTRIES)
        max_entries = UFIO_FDB_MAX_ENTRIES;
    int err = recv_table(sock, b, max_entries, deadline);
    if (!err)
        err = recv_batches(sock, b, deadline);
    if (err) {
        for (size_t i = 0; i < b->n; i++)
            if (b->e[i].fd < 0)
                b->e[i].fd = -1; /* still due: nothing to close */
        ufio_fdb_free(b);
    }
    return err;
}
