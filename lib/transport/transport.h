/*
 * Message framing over a stream socket.
 *
 * A connection reads whole vfio-user messages with their SCM_RIGHTS fds from
 * a non-blocking socket, resuming wherever the kernel split the bytes. Small
 * messages are read ahead into a per-connection buffer, so one recvmsg
 * usually brings a header and its body (and perhaps the next messages); a
 * body too big for that buffer is read with exact lengths straight into its
 * payload (or into memory a sink names, see below).
 *
 * Which message owns the fds of a read: Linux never lets one recvmsg run past
 * a segment that carried fds, so the fds of a read belong to the message
 * holding the last byte that read returned. A peer that attaches each
 * message's fds to its first byte (as the spec says) gets them attributed
 * exactly; any other placement still gives every fd to exactly one message.
 *
 * Sends are whole messages (header + iovec payload + fds); a send that meets
 * a full socket waits for POLLOUT up to send_timeout_ms, then fails with
 * -ETIMEDOUT.
 *
 * Ownership: every fd that arrives is owned by the struct ufio_msg it arrived
 * with. Whoever keeps one calls ufio_msg_take_fd(); ufio_msg_release() closes
 * the rest. No fd is ever leaked on an error path, including MSG_CTRUNC.
 *
 * Threading: a struct ufio_conn is not thread-safe; callers serialise.
 */
#ifndef UFIO_TRANSPORT_H
#define UFIO_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "proto/proto.h"

/* Upper bound on fds in one message, whatever the peer negotiated. */
#define UFIO_TRANSPORT_MAX_FDS 16

struct ufio_msg {
    struct vfio_user_header hdr;
    uint8_t *payload;   /* hdr.msg_size - 16 bytes (NULL when 0): malloc'd, or lent */
    size_t len;         /* payload length */
    bool lent;          /* payload points into its connection's read-ahead (see ufio_conn_lend) */
    int fds[UFIO_TRANSPORT_MAX_FDS];
    size_t nfds;
    bool fds_overflow;  /* more fds arrived than max_fds (extras already closed) */
    size_t sunk;        /* body bytes after payload[0..len) that went to a sink */
    bool sink_dropped;  /* ...or were dropped there, after ufio_conn_sink_divert() */
};

void ufio_msg_init(struct ufio_msg *m);
/* Closes every fd still owned and frees the payload (a lent one is only
 * forgotten: give it back with ufio_conn_recycle()); m is reinitialised. */
void ufio_msg_release(struct ufio_msg *m);
/* Takes ownership of fd i (returns it, or -1 if i is out of range/taken). */
int ufio_msg_take_fd(struct ufio_msg *m, size_t i);
/* Closes all fds the message still owns (e.g. when rejecting it). */
void ufio_msg_close_fds(struct ufio_msg *m);

/* Messages up to this size (header included) are read ahead in one piece. */
#define UFIO_CONN_RX_CAP 16384
/*
 * Room the read-ahead buffer keeps beyond UFIO_CONN_RX_CAP, and always keeps
 * free after a lent message: a read made while a message is lent (a command
 * that arrives while its handler waits for a DMA reply) needs space for at
 * least a header and a sink's prefix without touching the lent bytes.
 */
#define UFIO_CONN_RX_SPARE 64

/* fds that came with a read, owned by the message holding byte `last` of rx */
struct ufio_rx_fds {
    int fds[UFIO_TRANSPORT_MAX_FDS];
    size_t n;
    bool overflow;
    size_t last;
};

/*
 * A sink lets the receiver place a big body where it is wanted (device
 * memory, a caller's buffer) instead of a staging payload. Once the header
 * and `prefix` body bytes are in, place() may return where body bytes
 * [*keep, len) go (exactly len - *keep bytes; *keep comes in as prefix and
 * may be lowered), or NULL for the normal path. The message is then
 * delivered with payload = its first *keep body bytes, len = *keep and
 * sunk = the rest. place() sees the message's fds so far.
 */
struct ufio_conn_sink {
    size_t prefix;
    void *(*place)(void *opaque, const struct ufio_msg *m, const uint8_t *prefix, size_t body_len, size_t *keep);
    void *opaque;
};

struct ufio_conn {
    int fd;
    size_t max_msg_size;   /* whole message incl. header */
    size_t max_fds;        /* <= UFIO_TRANSPORT_MAX_FDS */
    int send_timeout_ms;   /* -1 waits forever */
    const struct ufio_conn_sink *sink; /* NULL: none */
    bool fd_blocking;      /* ufio_conn_set_blocking() made the fd blocking */
    bool block_body;       /* the rest of a big body is awaited in the recvmsg */
    /* receive state, kept across calls: rx[rx_off, rx_len) is unparsed; the
     * first message there is cur (its fds so far in cur). rx[0, rx_base)
     * holds a lent message (rx_base 0: none), never moved or overwritten. */
    uint8_t rx[UFIO_CONN_RX_CAP + UFIO_CONN_RX_SPARE];
    size_t rx_off, rx_len;
    size_t rx_base;
    bool lend;             /* ufio_conn_lend(): whole small messages are lent, not copied */
    struct ufio_rx_fds rx_pend;
    bool in_body;          /* cur's body is being read straight into place */
    uint8_t *body_dst;     /* where the rest of cur's body goes */
    size_t body_got, body_want;
    struct ufio_msg cur;
    /* a payload buffer handed back by ufio_conn_recycle(), reused for the
     * next large message: a fresh multi-MiB malloc is an mmap plus a page
     * fault per 4 KiB each time */
    uint8_t *spare;
    size_t spare_cap;
};

void ufio_conn_init(struct ufio_conn *c, int fd, size_t max_msg_size, size_t max_fds);
/* Releases a message received on c (closing its fds), keeping its payload
 * buffer for reuse by the next large message, or giving back a lent one. */
void ufio_conn_recycle(struct ufio_conn *c, struct ufio_msg *m);

/*
 * In-place receive: with on, ufio_conn_recv() delivers a message whose
 * header and body are whole in the read-ahead buffer with m->lent set and
 * m->payload pointing into that buffer: no malloc, no copy. At most one
 * message is lent at a time (the next one is copied as before), and only
 * while UFIO_CONN_RX_SPARE bytes stay free behind it; large or split
 * messages are received into a payload of their own as before.
 * The lent bytes stay put, and are the receiver's to write into, until
 * ufio_conn_recycle(c, m) or ufio_msg_own(c, m): reads meanwhile (e.g.
 * ufio_conn_recv_wait() for a reply, which never lends) go behind them.
 * A message kept past its handling (queued, held) must own its bytes.
 */
void ufio_conn_lend(struct ufio_conn *c, bool on);
/* Gives m a malloc'd copy of a lent payload and ends the loan: 0 or -ENOMEM
 * (m is then unchanged, still lent). A no-op for a message that owns its bytes. */
int ufio_msg_own(struct ufio_conn *c, struct ufio_msg *m);

/* Drops any half-read message (closing its fds) and closes the socket. */
void ufio_conn_close(struct ufio_conn *c);

/*
 * Reads what is available without blocking. Returns 1 and moves a whole
 * message into *out (caller releases it), 0 when more bytes are needed,
 * -ECONNRESET on EOF (or EOF mid-message), -EPROTO when the header breaks
 * framing (msg_size < 16 or > max_msg_size; the connection must be closed),
 * -ENOMEM, or another -errno from recvmsg.
 * A header with bad flags is still delivered (the caller answers it).
 * With ufio_conn_lend(c, true) the message may come lent (see there).
 */
int ufio_conn_recv(struct ufio_conn *c, struct ufio_msg *out);

/*
 * True when the next ufio_conn_recv() answers from bytes already read (a
 * whole message, or a framing error): callers that sleep on the fd must not
 * sleep then, since the socket itself may be empty.
 */
bool ufio_conn_ready(const struct ufio_conn *c);

/* Part of a message has arrived and the rest not yet (a peer stalled mid-message?). */
static inline bool ufio_conn_partial(const struct ufio_conn *c)
{
    return c->fd >= 0 && (c->in_body || c->rx_len > c->rx_off);
}

/*
 * Waiting in a blocking recvmsg costs less than poll/epoll_wait followed by
 * a recvmsg (measured: ~5 µs per wake-up on each side across CPUs in a VM,
 * and far more for bodies that arrive in many segments). This puts the fd in
 * blocking mode with a receive timeout of timeout_ms; every other call of
 * this transport still passes MSG_DONTWAIT, so nothing else changes. Then:
 *  - ufio_conn_fill_wait() sleeps in recvmsg until bytes come (or the
 *    timeout, or a signal) and only stores them in the read-ahead buffer: it
 *    touches nothing but the receive state, so a caller may run it without
 *    its own locks while ufio_conn_recv() parses under them. Call it only
 *    when !ufio_conn_ready() and !c->in_body. Returns 1 (bytes came), 0
 *    (timeout or EINTR), -ECONNRESET (EOF) or another -errno.
 *  - with c->block_body set, ufio_conn_recv() waits for the rest of a big
 *    body in one recvmsg(MSG_WAITALL), at most the timeout per call.
 */
int ufio_conn_set_blocking(struct ufio_conn *c, int timeout_ms);
int ufio_conn_fill_wait(struct ufio_conn *c);

/*
 * The sink of the message being read cannot take the rest any more (its
 * owner gave up): the remaining bytes are read and dropped, and the message
 * is delivered with sunk set as usual.
 */
void ufio_conn_sink_divert(struct ufio_conn *c);

/*
 * Blocking receive with a timeout (ms, -1 = forever) built on the above:
 * 0 with a whole message in *out, -ETIMEDOUT when nothing complete arrived in
 * time, or the errors of ufio_conn_recv().
 */
int ufio_conn_recv_wait(struct ufio_conn *c, struct ufio_msg *out, int timeout_ms);

/*
 * Sends one message: fills hdr->msg_size from the iovecs, writes header and
 * payload with the fds attached to the first byte, MSG_NOSIGNAL. nfds <=
 * UFIO_TRANSPORT_MAX_FDS. Returns 0, -EPIPE/-ECONNRESET when the peer is
 * gone, -ETIMEDOUT, -EINVAL.
 */
int ufio_conn_send(struct ufio_conn *c, struct vfio_user_header *hdr,
                   const struct iovec *iov, int iovcnt, const int *fds, size_t nfds);

/* Convenience: header-only error reply / reply with one flat payload. */
int ufio_conn_send_error(struct ufio_conn *c, const struct vfio_user_header *req, int err);
int ufio_conn_send_reply(struct ufio_conn *c, const struct vfio_user_header *req,
                         const void *payload, size_t len, const int *fds, size_t nfds);

/* ---- sockets --------------------------------------------------------- */

/*
 * Creates a listening UNIX socket at path (non-blocking, CLOEXEC). A stale
 * socket file nobody listens on is replaced; a live one is -EADDRINUSE (found
 * by connecting to it: the live server sees a connection that closes at once).
 * A path that exists and is not a socket is never removed: -EEXIST.
 */
int ufio_sock_listen(const char *path, int *out_fd);
/* Non-blocking accept: -EAGAIN when nobody waits. Result is non-blocking. */
int ufio_sock_accept(int lfd, int *out_fd);
/* Connects to path, retrying until timeout_ms (for a server still starting). */
int ufio_sock_connect(const char *path, int timeout_ms, int *out_fd);
/* A connected pair, both non-blocking and CLOEXEC. */
int ufio_sock_pair(int fds[2]);
int ufio_set_nonblock(int fd, bool on);
/* The peer of a connected socket and we are pinned to the same one CPU. */
bool ufio_sock_peer_on_my_cpu(int fd);

#endif
