/*
 * The transport's receive side against an oracle: the input describes up to
 * 8 messages (command, flags, fd count, body size, whether a sink takes the
 * body and whether its owner gives up half-way) and how the byte stream is
 * cut into sendmsg calls. Each message's fds go with its first byte, as the
 * spec says. Whatever the cuts, read-ahead and sinks must deliver exactly
 * the messages that were sent, each with exactly its own fds, and no fd may
 * be left open afterwards.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport/transport.h"

#define MAX_MSGS 8
#define MAX_BODY (96u * 1024)

struct spec {
    uint16_t cmd;
    uint32_t flags;
    size_t nfds, body;
    bool sink, divert;
    size_t keep;
};

static struct spec specs[MAX_MSGS];
static uint8_t *stream;                /* all messages, back to back */
static size_t starts[MAX_MSGS + 1];    /* where each message begins in stream */
static uint8_t sink_buf[MAX_BODY];
static int cur_msg;                    /* the message the receiver is on */

/* Bodies are windows into one fixed pattern (a prime period, so they differ by message). */
static uint8_t pattern[MAX_BODY + 256];

static const uint8_t *body_of(size_t msg)
{
    if (!pattern[1])
        for (size_t i = 0; i < sizeof(pattern); i++)
            pattern[i] = (uint8_t)(i * 131 + (i >> 9) + 1);
    return pattern + (msg * 37) % 251;
}

static void *place(void *opaque, const struct ufio_msg *m, const uint8_t *prefix, size_t body_len, size_t *keep)
{
    const struct spec *s = &specs[m->hdr.msg_id % MAX_MSGS];
    if (!s->sink || body_len != s->body)
        return NULL;
    if (memcmp(prefix, stream + starts[m->hdr.msg_id] + 16, 16))
        abort(); /* the prefix it is shown is the message's own */
    *keep = s->keep;
    memset(sink_buf, 0, body_len);
    return sink_buf;
}

/* The lowest free fd number: if it moved after an input, that input leaked an fd. */
static int lowest_free_fd(void)
{
    int fd = dup(0);
    if (fd >= 0)
        close(fd);
    return fd;
}

/* Checks one delivered message against what was sent. */
static void verify(const struct ufio_msg *m, size_t max_fds)
{
    int i = cur_msg++;
    const struct spec *s = &specs[i];
    if (m->hdr.msg_id != i || m->hdr.cmd != s->cmd || m->hdr.flags != s->flags || m->hdr.msg_size != 16 + s->body)
        abort();
    size_t want_fds = s->nfds < max_fds ? s->nfds : max_fds;
    if (m->nfds != want_fds || m->fds_overflow != (s->nfds > max_fds))
        abort();
    const uint8_t *body = stream + starts[i] + 16;
    if (m->sunk) {
        if (!s->sink || m->len != s->keep || m->len + m->sunk != s->body || memcmp(m->payload, body, m->len))
            abort();
        if (!m->sink_dropped && memcmp(sink_buf, body + m->len, m->sunk))
            abort();
        if (m->sink_dropped && !s->divert)
            abort();
    } else if (m->len != s->body || (s->body && memcmp(m->payload, body, s->body)) ||
               (s->sink && s->body > UFIO_CONN_RX_CAP - 16)) {
        abort(); /* a body too big for read-ahead that a sink would take must have gone there */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    if (size < 1)
        return 0;
    int nmsg = data[pos++] % MAX_MSGS + 1;
    size_t total = 0;
    for (int i = 0; i < nmsg; i++) {
        uint8_t b[6] = { 0 };
        for (int k = 0; k < 6; k++)
            b[k] = pos < size ? data[pos++] : 0;
        struct spec *s = &specs[i];
        s->cmd = b[0];
        s->flags = b[1];
        s->nfds = b[2] % 4;
        s->sink = b[2] & 0x10;
        s->divert = b[2] & 0x20;
        s->keep = b[2] & 0x40 ? 8 : 16;
        size_t body = (size_t)(b[3] | b[4] << 8);
        if (b[5] & 1)
            body += 32768; /* up to 96 KiB: bodies beyond the read-ahead buffer */
        s->body = body > MAX_BODY ? MAX_BODY : body;
        starts[i] = total;
        total += 16 + s->body;
    }
    starts[nmsg] = total;
    int base = lowest_free_fd();
    stream = malloc(total);
    if (!stream)
        return 0;
    for (int i = 0; i < nmsg; i++) {
        struct vfio_user_header h = { .msg_id = (uint16_t)i, .cmd = specs[i].cmd, .flags = specs[i].flags,
                                      .msg_size = (uint32_t)(16 + specs[i].body) };
        ufio_hdr_encode(stream + starts[i], &h);
        memcpy(stream + starts[i] + 16, body_of((size_t)i), specs[i].body);
    }
    int sv[2];
    if (ufio_sock_pair(sv)) {
        free(stream);
        return 0;
    }
    struct ufio_conn c;
    const size_t max_fds = 2;
    ufio_conn_init(&c, sv[1], 16 + MAX_BODY, max_fds);
    static const struct ufio_conn_sink sink = { .prefix = 16, .place = place };
    c.sink = &sink;
    /* inputs with bit 1 of their size set receive in place (as the server does); a lent message
     * is kept across the next receive, whose bytes must go behind it */
    bool lend = (size >> 1) & 1;
    ufio_conn_lend(&c, lend);
    struct ufio_msg held;
    ufio_msg_init(&held);
    static uint8_t held_copy[16 + MAX_BODY];
    cur_msg = 0;
    size_t sent = 0;
    int next_fds_msg = 0; /* the next message whose first byte (and fds) is still to go */
    while (cur_msg < nmsg) {
        if (sent < total) {
            /* the next cut, never past the next message's first byte with fds */
            /* exact below 2048 bytes (where framing edges are), coarse above */
            size_t v = pos + 1 < size ? (size_t)(data[pos] | data[pos + 1] << 8) : SIZE_MAX;
            size_t cut = v == SIZE_MAX ? total : v < 2048 ? v + 1 : (v - 2047) * 32;
            pos += 2;
            if (cut > total - sent)
                cut = total - sent;
            int fds[4];
            size_t nf = 0;
            if (next_fds_msg < nmsg && starts[next_fds_msg] == sent) {
                for (size_t k = 0; k < specs[next_fds_msg].nfds; k++)
                    fds[nf++] = eventfd(0, EFD_CLOEXEC);
                next_fds_msg++;
            }
            if (next_fds_msg < nmsg && sent + cut > starts[next_fds_msg])
                cut = starts[next_fds_msg] - sent;
            struct iovec iov = { stream + sent, cut };
            union { char b[CMSG_SPACE(sizeof(int) * 4)]; struct cmsghdr a; } cm;
            memset(&cm, 0, sizeof(cm));
            struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
            if (nf) {
                mh.msg_control = cm.b;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * nf);
                struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
                h->cmsg_level = SOL_SOCKET;
                h->cmsg_type = SCM_RIGHTS;
                h->cmsg_len = CMSG_LEN(sizeof(int) * nf);
                memcpy(CMSG_DATA(h), fds, sizeof(int) * nf);
            }
            ssize_t n = sendmsg(sv[0], &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
            for (size_t k = 0; k < nf; k++)
                close(fds[k]); /* the receiver has its own copies now */
            if (n > 0)
                sent += (size_t)n;
            else if (nf)
                next_fds_msg--; /* the socket is full: this message's fds go with its next try */
        }
        for (;;) {
            if (cur_msg < nmsg && specs[cur_msg].divert && c.in_body && c.cur.sunk)
                ufio_conn_sink_divert(&c);
            struct ufio_msg m;
            ufio_msg_init(&m);
            int r = ufio_conn_recv(&c, &m);
            if (r < 0)
                abort(); /* well-formed input never breaks framing */
            if (r == 0)
                break;
            verify(&m, max_fds);
            if (held.lent && memcmp(held.payload, held_copy, held.len))
                abort(); /* a read moved or overwrote lent bytes */
            ufio_conn_recycle(&c, &held);
            if (m.lent) {
                held = m;
                memcpy(held_copy, m.payload, m.len);
            } else {
                ufio_conn_recycle(&c, &m);
            }
        }
        if (sent == total && cur_msg < nmsg && !ufio_conn_ready(&c) && !c.in_body && c.rx_len == c.rx_off)
            abort(); /* everything was sent, nothing is buffered, yet messages are missing */
    }
    if (ufio_conn_ready(&c))
        abort();
    ufio_conn_recycle(&c, &held);
    ufio_conn_close(&c);
    close(sv[0]);
    free(stream);
    if (lowest_free_fd() != base)
        abort();
    return 0;
}
