/* Message framing over sockets (lib/transport): resumable reads, fds, limits, sockets. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "transport/transport.h"

static int nfds_open(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n++;
    closedir(d);
    return n;
}

static void raw_send_fds(int fd, const void *buf, size_t len, const int *fds, int n)
{
    struct iovec iov = { (void *)buf, len };
    union { char b[CMSG_SPACE(sizeof(int) * 32)]; struct cmsghdr a; } cm;
    memset(&cm, 0, sizeof(cm));
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (n) {
        mh.msg_control = cm.b;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
    }
    assert_int_equal(sendmsg(fd, &mh, 0), (ssize_t)len);
}

static void hdr(uint8_t *b, uint16_t id, uint16_t cmd, uint32_t size, uint32_t flags)
{
    struct vfio_user_header h = { .msg_id = id, .cmd = cmd, .msg_size = size, .flags = flags };
    ufio_hdr_encode(b, &h);
}

static void test_roundtrip_bytes(void **st)
{
    int sv[2];
    assert_int_equal(ufio_sock_pair(sv), 0);
    struct ufio_conn a, b;
    ufio_conn_init(&a, sv[0], 4096, 4);
    ufio_conn_init(&b, sv[1], 4096, 4);
    struct vfio_user_header h = { .msg_id = 0x1234, .cmd = 9, .flags = 0 };
    uint8_t p1[3] = { 1, 2, 3 }, p2[2] = { 4, 5 };
    struct iovec iov[2] = { { p1, 3 }, { p2, 2 } };
    assert_int_equal(ufio_conn_send(&a, &h, iov, 2, NULL, 0), 0);
    assert_int_equal(h.msg_size, 21);
    uint8_t raw[21];
    assert_int_equal(read(sv[1], raw, sizeof(raw)), 21);
    static const uint8_t want[21] = { 0x34, 0x12, 9, 0, 21, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5 };
    assert_memory_equal(raw, want, 21);
    /* error reply: header only, flags reply|error, errno positive */
    assert_int_equal(ufio_conn_send_error(&a, &h, -EINVAL), 0);
    struct ufio_msg m;
    ufio_msg_init(&m);
    assert_int_equal(ufio_conn_recv_wait(&b, &m, 1000), 0);
    assert_int_equal(m.hdr.flags, 0x21);
    assert_int_equal(m.hdr.error_no, EINVAL);
    assert_int_equal(m.len, 0);
    ufio_msg_release(&m);
    ufio_conn_close(&a);
    ufio_conn_close(&b);
}

static void test_fragmented_big_body(void **st)
{
    int sv[2];
    assert_int_equal(ufio_sock_pair(sv), 0);
    struct ufio_conn b;
    ufio_conn_init(&b, sv[1], 2 << 20, 4);
    size_t len = 16 + (1 << 20);
    uint8_t *msg = malloc(len);
    hdr(msg, 7, 10, (uint32_t)len, 0);
    for (size_t i = 16; i < len; i++)
        msg[i] = (uint8_t)(i * 31);
    struct ufio_msg m;
    ufio_msg_init(&m);
    ufio_set_nonblock(sv[0], false);
    int partial = 0;
    /* header byte by byte, then the body in odd pieces: never blocks, reassembles */
    for (size_t off = 0; off < len;) {
        size_t k = off < 16 ? 1 : (len - off < 9973 ? len - off : 9973);
        assert_int_equal(write(sv[0], msg + off, k), (ssize_t)k);
        off += k;
        int r = ufio_conn_recv(&b, &m);
        if (off < len) {
            assert_int_equal(r, 0);
            partial++;
        } else {
            assert_int_equal(r, 1);
        }
    }
    assert_true(partial > 100);
    assert_int_equal(m.len, 1 << 20);
    assert_memory_equal(m.payload, msg + 16, 1 << 20);
    ufio_conn_recycle(&b, &m);
    assert_non_null(b.spare); /* the big buffer is kept for the next one */
    free(msg);
    close(sv[0]);
    ufio_conn_close(&b);
}

static void test_fds_attribution_and_limits(void **st)
{
    int base = nfds_open();
    int sv[2];
    assert_int_equal(ufio_sock_pair(sv), 0);
    struct ufio_conn b;
    ufio_conn_init(&b, sv[1], 4096, 2);
    uint8_t m1[20], m2[16];
    hdr(m1, 1, 2, 20, 0);
    memset(m1 + 16, 0, 4);
    hdr(m2, 2, 4, 16, 0);
    int e[3] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };
    raw_send_fds(sv[0], m1, 20, e, 1);
    raw_send_fds(sv[0], m2, 16, e + 1, 2);
    struct ufio_msg m;
    ufio_msg_init(&m);
    assert_int_equal(ufio_conn_recv(&b, &m), 1);
    assert_int_equal(m.hdr.msg_id, 1);
    assert_int_equal(m.nfds, 1);
    int kept = ufio_msg_take_fd(&m, 0);
    assert_true(kept >= 0);
    assert_int_equal(ufio_msg_take_fd(&m, 0), -1);
    ufio_msg_release(&m);
    assert_int_equal(ufio_conn_recv(&b, &m), 1);
    assert_int_equal(m.hdr.msg_id, 2);
    assert_int_equal(m.nfds, 2);
    assert_false(m.fds_overflow);
    ufio_msg_release(&m);
    close(kept);
    /* more fds than allowed: extras closed, message flagged */
    raw_send_fds(sv[0], m2, 16, e, 3);
    assert_int_equal(ufio_conn_recv(&b, &m), 1);
    assert_true(m.fds_overflow);
    assert_int_equal(m.nfds, 2);
    ufio_msg_release(&m);
    for (int i = 0; i < 3; i++)
        close(e[i]);
    close(sv[0]);
    ufio_conn_close(&b);
    assert_int_equal(nfds_open(), base);
}

static void test_framing_errors(void **st)
{
    int base = nfds_open();
    for (int v = 0; v < 4; v++) {
        int sv[2];
        assert_int_equal(ufio_sock_pair(sv), 0);
        struct ufio_conn b;
        ufio_conn_init(&b, sv[1], 4096, 4);
        uint8_t buf[64];
        int e = eventfd(0, EFD_CLOEXEC);
        struct ufio_msg m;
        ufio_msg_init(&m);
        if (v == 0) { /* below the header size */
            hdr(buf, 1, 4, 15, 0);
            raw_send_fds(sv[0], buf, 16, &e, 1);
            assert_int_equal(ufio_conn_recv(&b, &m), -EPROTO);
        } else if (v == 1) { /* above the limit: refused before allocating */
            hdr(buf, 1, 4, 4097, 0);
            raw_send_fds(sv[0], buf, 16, &e, 1);
            assert_int_equal(ufio_conn_recv(&b, &m), -EPROTO);
        } else if (v == 2) { /* EOF in the header */
            raw_send_fds(sv[0], buf, 7, &e, 1);
            close(sv[0]);
            sv[0] = -1;
            assert_int_equal(ufio_conn_recv(&b, &m), 0 - ECONNRESET);
        } else { /* EOF in the body, fds with the header */
            hdr(buf, 1, 4, 40, 0);
            raw_send_fds(sv[0], buf, 20, &e, 1);
            close(sv[0]);
            sv[0] = -1;
            assert_int_equal(ufio_conn_recv(&b, &m), -ECONNRESET);
        }
        close(e);
        if (sv[0] >= 0)
            close(sv[0]);
        ufio_conn_close(&b);
        assert_int_equal(nfds_open(), base);
    }
}

/* Several messages in one segment: one recvmsg, then the rest from the read-ahead. */
static void test_read_ahead(void **st)
{
    int sv[2];
    assert_int_equal(ufio_sock_pair(sv), 0);
    struct ufio_conn b;
    ufio_conn_init(&b, sv[1], 1 << 20, 4);
    uint8_t buf[16 + 20 + 16 + 40000];
    hdr(buf, 1, 2, 16, 0);
    hdr(buf + 16, 2, 3, 20, 0);
    memcpy(buf + 32, "abcd", 4);
    hdr(buf + 36, 3, 10, 16 + 40000, 0);
    for (size_t i = 52; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 7);
    ufio_set_nonblock(sv[0], false);
    /* the two small ones and the start of the big one arrive together */
    assert_int_equal(write(sv[0], buf, 36 + 100), 36 + 100);
    struct ufio_msg m;
    ufio_msg_init(&m);
    assert_false(ufio_conn_ready(&b));
    assert_int_equal(ufio_conn_recv(&b, &m), 1);
    assert_int_equal(m.hdr.msg_id, 1);
    assert_int_equal(m.len, 0);
    assert_true(ufio_conn_ready(&b)); /* the second is whole in the buffer */
    assert_int_equal(ufio_conn_recv(&b, &m), 1);
    assert_int_equal(m.hdr.msg_id, 2);
    assert_int_equal(m.len, 4);
    assert_memory_equal(m.payload, "abcd", 4);
    ufio_msg_release(&m);
    assert_false(ufio_conn_ready(&b)); /* only part of the third */
    assert_int_equal(ufio_conn_recv(&b, &m), 0);
    assert_int_equal(write(sv[0], buf + 136, sizeof(buf) - 136), (ssize_t)(sizeof(buf) - 136));
    int r;
    while ((r = ufio_conn_recv(&b, &m)) == 0)
        ;
    assert_int_equal(r, 1);
    assert_int_equal(m.hdr.msg_id, 3);
    assert_int_equal(m.len, 40000);
    assert_memory_equal(m.payload, buf + 52, 40000);
    ufio_msg_release(&m);
    assert_false(ufio_conn_ready(&b));
    /* a bad header already read ahead is ready too: its error comes without a read */
    uint8_t two[32];
    hdr(two, 4, 2, 16, 0);
    hdr(two + 16, 5, 2, 8, 0);
    assert_int_equal(write(sv[0], two, 32), 32);
    assert_int_equal(ufio_conn_recv(&b, &m), 1);
    assert_true(ufio_conn_ready(&b));
    assert_int_equal(ufio_conn_recv(&b, &m), -EPROTO);
    close(sv[0]);
    ufio_conn_close(&b);
}

/* Queued messages with and without fds, read ahead: each keeps exactly its own. */
static void test_read_ahead_fds(void **st)
{
    int base = nfds_open();
    int sv[2];
    assert_int_equal(ufio_sock_pair(sv), 0);
    struct ufio_conn b;
    ufio_conn_init(&b, sv[1], 1 << 20, 4);
    uint8_t m16[16], m24[24];
    hdr(m16, 0, 2, 16, 0);
    hdr(m24, 0, 2, 24, 0);
    memset(m24 + 16, 0x33, 8);
    int e[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };
    /* pattern of fd counts per message, all queued before the first recv */
    static const int pattern[] = { 0, 1, 0, 0, 2, 2, 0, 1, 1, 0 };
    const int n = (int)(sizeof(pattern) / sizeof(pattern[0]));
    for (int i = 0; i < n; i++) {
        uint8_t *msg = i % 2 ? m24 : m16;
        size_t len = i % 2 ? 24 : 16;
        msg[0] = (uint8_t)i;
        raw_send_fds(sv[0], msg, len, e, pattern[i]);
    }
    for (int i = 0; i < n; i++) {
        struct ufio_msg m;
        ufio_msg_init(&m);
        int r;
        while ((r = ufio_conn_recv(&b, &m)) == 0)
            ;
        assert_int_equal(r, 1);
        assert_int_equal(m.hdr.msg_id, i);
        assert_int_equal(m.len, i % 2 ? 8 : 0);
        assert_int_equal(m.nfds, pattern[i]);
        assert_false(m.fds_overflow);
        ufio_msg_release(&m);
    }
    /* a body of many segments whose fds come with its first byte */
    size_t big = 16 + 200000;
    uint8_t *msg = calloc(1, big);
    hdr(msg, 77, 10, (uint32_t)big, 0);
    raw_send_fds(sv[0], m16, 16, NULL, 0);
    raw_send_fds(sv[0], msg, 1, e, 2);
    ufio_set_nonblock(sv[0], false);
    assert_int_equal(write(sv[0], msg + 1, big - 1), (ssize_t)(big - 1));
    struct ufio_msg m;
    ufio_msg_init(&m);
    int r;
    while ((r = ufio_conn_recv(&b, &m)) == 0)
        ;
    assert_int_equal(m.nfds, 0);
    ufio_msg_release(&m);
    while ((r = ufio_conn_recv(&b, &m)) == 0)
        ;
    assert_int_equal(r, 1);
    assert_int_equal(m.hdr.msg_id, 77);
    assert_int_equal(m.nfds, 2);
    assert_int_equal(m.len, 200000);
    ufio_msg_release(&m);
    free(msg);
    close(e[0]);
    close(e[1]);
    close(sv[0]);
    ufio_conn_close(&b);
    assert_int_equal(nfds_open(), base);
}

static uint8_t sink_mem[1 << 20];
static int sink_calls;

static void *sink_place(void *opaque, const struct ufio_msg *m, const uint8_t *prefix, size_t body_len, size_t *keep)
{
    sink_calls++;
    assert_int_equal(body_len, 16 + 300000);
    if (m->hdr.msg_id == 2)
        return NULL; /* this one takes the normal path */
    uint64_t off;
    memcpy(&off, prefix, 8);
    return sink_mem + off;
}

/* A sink takes a big body straight into place; diverted, the rest is dropped. */
static void test_sink(void **st)
{
    int sv[2];
    assert_int_equal(ufio_sock_pair(sv), 0);
    struct ufio_conn b;
    ufio_conn_init(&b, sv[1], 1 << 20, 4);
    static const struct ufio_conn_sink sink = { .prefix = 16, .place = sink_place };
    b.sink = &sink;
    size_t len = 16 + 16 + 300000;
    uint8_t *msg = malloc(len);
    hdr(msg, 1, 9, (uint32_t)len, 0);
    uint64_t off = 4096;
    memcpy(msg + 16, &off, 8);
    memset(msg + 24, 0xee, 8);
    for (size_t i = 32; i < len; i++)
        msg[i] = (uint8_t)(i * 13);
    ufio_set_nonblock(sv[0], false);
    struct ufio_msg m;
    ufio_msg_init(&m);
    for (uint16_t id = 1; id <= 3; id++) {
        msg[0] = (uint8_t)id;
        memset(sink_mem, 0, sizeof(sink_mem));
        size_t sent = 0;
        int r = 0;
        while (sent < len) { /* in pieces, so the body really is read in several steps */
            size_t k = len - sent < 50000 ? len - sent : 50000;
            assert_int_equal(write(sv[0], msg + sent, k), (ssize_t)k);
            sent += k;
            while ((r = ufio_conn_recv(&b, &m)) == 0 && sent == len)
                ;
            if (id == 3 && sent > 100000 && b.in_body)
                ufio_conn_sink_divert(&b); /* the owner gave up: the rest is read and dropped */
            if (r)
                break;
        }
        assert_int_equal(r, 1);
        assert_int_equal(m.hdr.msg_id, id);
        if (id == 2) {
            assert_int_equal(m.sunk, 0);
            assert_int_equal(m.len, len - 16);
            assert_memory_equal(m.payload, msg + 16, len - 16);
        } else {
            assert_int_equal(m.len, 16);
            assert_int_equal(m.sunk, 300000);
            assert_memory_equal(m.payload, msg + 16, 16);
            if (id == 1)
                assert_memory_equal(sink_mem + 4096, msg + 32, 300000);
            else
                assert_memory_not_equal(sink_mem + 4096 + 250000, msg + 32 + 250000, 50000);
        }
        ufio_msg_release(&m);
    }
    assert_int_equal(sink_calls, 3);
    /* the stream is still in step afterwards */
    hdr(msg, 9, 2, 16, 0);
    assert_int_equal(write(sv[0], msg, 16), 16);
    assert_int_equal(ufio_conn_recv(&b, &m), 1);
    assert_int_equal(m.hdr.msg_id, 9);
    free(msg);
    close(sv[0]);
    ufio_conn_close(&b);
}

/* Placement: both ends pinned to one CPU (here: one process, both ends of a pair). */
/* ---- in-place receive (ufio_conn_lend) ---------------------------------------- */

static bool in_rx(const struct ufio_conn *c, const uint8_t *p)
{
    return p >= c->rx && p < c->rx + sizeof(c->rx);
}

/* A message of len bytes (header included), body bytes seeded by id. */
static uint8_t *make_msg(uint16_t id, size_t len)
{
    uint8_t *b = malloc(len);
    hdr(b, id, 2, (uint32_t)len, 0);
    for (size_t i = 16; i < len; i++)
        b[i] = (uint8_t)(i * 13 + id);
    return b;
}

static void recv_one(struct ufio_conn *c, struct ufio_msg *m)
{
    int r;
    while ((r = ufio_conn_recv(c, m)) == 0)
        ;
    assert_int_equal(r, 1);
}

/* Whole small messages come lent; a second one while the first is lent is copied. */
static void test_lend_in_place(void **st)
{
    int sv[2];
    assert_int_equal(ufio_sock_pair(sv), 0);
    struct ufio_conn b;
    ufio_conn_init(&b, sv[1], 1 << 20, 4);
    ufio_conn_lend(&b, true);
    uint8_t *m1 = make_msg(1, 40), *m2 = make_msg(2, 56), *m3 = make_msg(3, 24);
    ufio_set_nonblock(sv[0], false);
    assert_int_equal(write(sv[0], m1, 40), 40);
    assert_int_equal(write(sv[0], m2, 56), 56);
    struct ufio_msg a, c;
    ufio_msg_init(&a);
    ufio_msg_init(&c);
    recv_one(&b, &a);
    assert_true(a.lent);
    assert_true(in_rx(&b, a.payload));
    assert_int_equal(a.len, 24);
    assert_memory_equal(a.payload, m1 + 16, 24);
    a.payload[0] ^= 0xff; /* the receiver may write into it (handlers do) */
    recv_one(&b, &c);
    assert_int_equal(c.hdr.msg_id, 2);
    assert_false(c.lent); /* one loan at a time */
    assert_false(in_rx(&b, c.payload));
    assert_memory_equal(c.payload, m2 + 16, 40);
    ufio_conn_recycle(&b, &c);
    /* a read while the first is lent (as for a reply awaited in its handler) goes behind it */
    assert_int_equal(write(sv[0], m3, 24), 24);
    assert_int_equal(ufio_conn_recv_wait(&b, &c, 1000), 0);
    assert_false(c.lent);
    assert_memory_equal(c.payload, m3 + 16, 8);
    ufio_msg_release(&c);
    assert_int_equal(a.payload[0], (uint8_t)(m1[16] ^ 0xff));
    assert_memory_equal(a.payload + 1, m1 + 17, 23);
    ufio_conn_recycle(&b, &a);
    assert_null(a.payload);
    assert_int_equal(b.rx_base, 0);
    /* given back: the next one is lent again, from the start of the buffer */
    assert_int_equal(write(sv[0], m2, 56), 56);
    recv_one(&b, &a);
    assert_true(a.lent);
    assert_ptr_equal(a.payload, b.rx + 16);
    ufio_conn_recycle(&b, &a);
    /* without lending (the client's way) nothing is lent */
    ufio_conn_lend(&b, false);
    assert_int_equal(write(sv[0], m2, 56), 56);
    recv_one(&b, &a);
    assert_false(a.lent);
    assert_memory_equal(a.payload, m2 + 16, 40);
    ufio_msg_release(&a);
    free(m1);
    free(m2);
    free(m3);
    close(sv[0]);
    ufio_conn_close(&b);
}

/* A message split across reads is lent once whole; a split one behind a loan is still right. */
static void test_lend_split(void **st)
{
    int sv[2];
    assert_int_equal(ufio_sock_pair(sv), 0);
    struct ufio_conn b;
    ufio_conn_init(&b, sv[1], 1 << 20, 4);
    ufio_conn_lend(&b, true);
    size_t l1 = 3000, l2 = UFIO_CONN_RX_CAP - 100;
    uint8_t *m1 = make_msg(1, l1), *m2 = make_msg(2, l2);
    ufio_set_nonblock(sv[0], false);
    struct ufio_msg a, c;
    ufio_msg_init(&a);
    ufio_msg_init(&c);
    for (size_t off = 0; off < l1;) {
        size_t k = off < 16 ? 5 : 997;
        if (k > l1 - off)
            k = l1 - off;
        assert_int_equal(write(sv[0], m1 + off, k), (ssize_t)k);
        off += k;
        int r = ufio_conn_recv(&b, &a);
        assert_int_equal(r, off < l1 ? 0 : 1);
    }
    assert_true(a.lent);
    assert_memory_equal(a.payload, m1 + 16, l1 - 16);
    /* the next one does not fit behind the loan: it gets a payload of its own, in pieces */
    assert_int_equal(write(sv[0], m2, 20), 20);
    assert_int_equal(ufio_conn_recv(&b, &c), 0);
    assert_int_equal(write(sv[0], m2 + 20, l2 - 20), (ssize_t)(l2 - 20));
    assert_int_equal(ufio_conn_recv_wait(&b, &c, 1000), 0);
    assert_false(c.lent);
    assert_int_equal(c.len, l2 - 16);
    assert_memory_equal(c.payload, m2 + 16, l2 - 16);
    assert_memory_equal(a.payload, m1 + 16, l1 - 16); /* the loan untouched */
    ufio_msg_release(&c);
    ufio_conn_recycle(&b, &a);
    free(m1);
    free(m2);
    close(sv[0]);
    ufio_conn_close(&b);
}

/* A message exactly as big as the read-ahead buffer is lent; one behind it waits its turn. */
static void test_lend_fills_buffer(void **st)
{
    int sv[2];
    assert_int_equal(ufio_sock_pair(sv), 0);
    struct ufio_conn b;
    ufio_conn_init(&b, sv[1], 1 << 20, 4);
    ufio_conn_lend(&b, true);
    size_t big = UFIO_CONN_RX_CAP;
    uint8_t *m1 = make_msg(1, big), *m2 = make_msg(2, 48), *m3 = make_msg(3, big);
    ufio_set_nonblock(sv[0], false);
    assert_int_equal(write(sv[0], m1, big), (ssize_t)big);
    assert_int_equal(write(sv[0], m2, 48), 48);
    struct ufio_msg a, c;
    ufio_msg_init(&a);
    ufio_msg_init(&c);
    recv_one(&b, &a);
    assert_true(a.lent);
    assert_ptr_equal(a.payload, b.rx + 16);
    assert_memory_equal(a.payload, m1 + 16, big - 16);
    /* the 48 bytes came into the spare room behind it */
    assert_int_equal(ufio_conn_recv_wait(&b, &c, 1000), 0);
    assert_int_equal(c.hdr.msg_id, 2);
    assert_false(c.lent);
    assert_memory_equal(c.payload, m2 + 16, 32);
    ufio_msg_release(&c);
    /* a full-size one behind the loan has no room there: received on its own */
    ufio_set_nonblock(sv[0], true);
    assert_int_equal(write(sv[0], m3, big), (ssize_t)big);
    assert_int_equal(ufio_conn_recv_wait(&b, &c, 1000), 0);
    assert_int_equal(c.hdr.msg_id, 3);
    assert_false(c.lent);
    assert_memory_equal(c.payload, m3 + 16, big - 16);
    assert_memory_equal(a.payload, m1 + 16, big - 16);
    ufio_msg_release(&c);
    ufio_conn_recycle(&b, &a);
    assert_int_equal(b.rx_base, 0);
    free(m1);
    free(m2);
    free(m3);
    close(sv[0]);
    ufio_conn_close(&b);
}

/* A lent message owns the fds that came with it; giving it back closes them. */
static void test_lend_fds(void **st)
{
    int base = nfds_open();
    int sv[2];
    assert_int_equal(ufio_sock_pair(sv), 0);
    struct ufio_conn b;
    ufio_conn_init(&b, sv[1], 4096, 4);
    ufio_conn_lend(&b, true);
    int e[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };
    uint8_t *m1 = make_msg(1, 48), *m2 = make_msg(2, 32);
    raw_send_fds(sv[0], m1, 48, e, 2);
    raw_send_fds(sv[0], m2, 32, NULL, 0);
    close(e[0]);
    close(e[1]);
    struct ufio_msg a, c;
    ufio_msg_init(&a);
    ufio_msg_init(&c);
    recv_one(&b, &a);
    assert_true(a.lent);
    assert_int_equal(a.nfds, 2);
    uint64_t one = 1;
    assert_int_equal(write(a.fds[0], &one, 8), 8); /* a live eventfd */
    recv_one(&b, &c);
    assert_int_equal(c.nfds, 0);
    ufio_msg_release(&c);
    int kept = ufio_msg_take_fd(&a, 1);
    assert_true(kept >= 0);
    ufio_conn_recycle(&b, &a); /* closes fd 0, not the one taken */
    assert_int_equal(nfds_open(), base + 3);
    close(kept);
    free(m1);
    free(m2);
    close(sv[0]);
    ufio_conn_close(&b);
    assert_int_equal(nfds_open(), base);
}

/* A held message takes a copy (ufio_msg_own): the buffer lends the next, order is the caller's. */
static void test_lend_held_then_released(void **st)
{
    int sv[2];
    assert_int_equal(ufio_sock_pair(sv), 0);
    struct ufio_conn b;
    ufio_conn_init(&b, sv[1], 1 << 20, 4);
    ufio_conn_lend(&b, true);
    uint8_t *m[4];
    ufio_set_nonblock(sv[0], false);
    for (int i = 0; i < 4; i++) {
        m[i] = make_msg((uint16_t)(10 + i), 24 + 8 * (size_t)i);
        assert_int_equal(write(sv[0], m[i], 24 + 8 * (size_t)i), (ssize_t)(24 + 8 * i));
    }
    struct ufio_msg held, x;
    ufio_msg_init(&held);
    ufio_msg_init(&x);
    recv_one(&b, &held);
    assert_true(held.lent);
    assert_int_equal(ufio_msg_own(&b, &held), 0);
    assert_false(held.lent);
    assert_false(in_rx(&b, held.payload));
    assert_int_equal(ufio_msg_own(&b, &held), 0); /* owning twice is a no-op */
    /* what comes after is read in order, each lent in turn, while the held one keeps its bytes */
    for (int i = 1; i < 4; i++) {
        recv_one(&b, &x);
        assert_int_equal(x.hdr.msg_id, 10 + i);
        assert_true(x.lent);
        assert_memory_equal(x.payload, m[i] + 16, 8 + 8 * (size_t)i);
        memset(x.payload, 0xee, x.len); /* a handler scribbling on its own bytes */
        ufio_conn_recycle(&b, &x);
    }
    assert_int_equal(held.hdr.msg_id, 10);
    assert_memory_equal(held.payload, m[0] + 16, 8);
    ufio_conn_recycle(&b, &held);
    for (int i = 0; i < 4; i++)
        free(m[i]);
    close(sv[0]);
    ufio_conn_close(&b);
}

static void test_peer_on_my_cpu(void **st)
{
    cpu_set_t saved, one;
    assert_int_equal(sched_getaffinity(0, sizeof(saved), &saved), 0);
    int sv[2];
    assert_int_equal(ufio_sock_pair(sv), 0);
    CPU_ZERO(&one);
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &saved)) {
            CPU_SET(i, &one);
            break;
        }
    assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
    assert_true(ufio_sock_peer_on_my_cpu(sv[0]));
    assert_int_equal(sched_setaffinity(0, sizeof(saved), &saved), 0);
    assert_int_equal(ufio_sock_peer_on_my_cpu(sv[0]), CPU_COUNT(&saved) == 1);
    assert_false(ufio_sock_peer_on_my_cpu(-1));
    close(sv[0]);
    close(sv[1]);
}

struct late_writer {
    int fd;
    const uint8_t *buf;
    size_t len;
    int delay_ms;
};

static void *write_late(void *arg)
{
    struct late_writer *w = arg;
    usleep((useconds_t)w->delay_ms * 1000);
    size_t half = w->len / 2;
    assert_int_equal(write(w->fd, w->buf, half), (ssize_t)half);
    usleep((useconds_t)w->delay_ms * 1000);
    assert_int_equal(write(w->fd, w->buf + half, w->len - half), (ssize_t)(w->len - half));
    return NULL;
}

/* Blocking waits: fill_wait sleeps in recvmsg until bytes come (or its timeout), and
 * with block_body the rest of a big body is awaited in the kernel in one call. */
static void test_blocking_waits(void **st)
{
    int base = nfds_open();
    int sv[2];
    assert_int_equal(ufio_sock_pair(sv), 0);
    struct ufio_conn b;
    ufio_conn_init(&b, sv[1], 1 << 20, 4);
    assert_int_equal(ufio_conn_fill_wait(&b), 1); /* not blocking: nothing to wait for here */
    assert_int_equal(ufio_conn_set_blocking(&b, 50), 0);
    /* nothing comes: back after the timeout with 0 */
    assert_int_equal(ufio_conn_fill_wait(&b), 0);
    /* a message with an fd: the wait stores it, recv parses it */
    uint8_t m[24];
    hdr(m, 5, 2, 24, 0);
    memset(m + 16, 0x44, 8);
    int e = eventfd(0, EFD_CLOEXEC);
    raw_send_fds(sv[0], m, 24, &e, 1);
    close(e);
    assert_int_equal(ufio_conn_fill_wait(&b), 1);
    assert_true(ufio_conn_ready(&b));
    assert_int_equal(ufio_conn_fill_wait(&b), 1); /* a whole message waits: returns at once */
    struct ufio_msg msg;
    ufio_msg_init(&msg);
    assert_int_equal(ufio_conn_recv(&b, &msg), 1);
    assert_int_equal(msg.hdr.msg_id, 5);
    assert_int_equal(msg.nfds, 1);
    ufio_msg_release(&msg);
    /* a big body sent in two halves 30 ms apart: one recv call gets all of it */
    size_t len = 16 + 200000;
    uint8_t *big = malloc(len);
    hdr(big, 6, 9, (uint32_t)len, 0);
    for (size_t i = 16; i < len; i++)
        big[i] = (uint8_t)(i * 3);
    b.block_body = true;
    ufio_set_nonblock(sv[0], false);
    struct late_writer w = { sv[0], big, len, 30 };
    pthread_t th;
    pthread_create(&th, NULL, write_late, &w);
    assert_int_equal(ufio_conn_fill_wait(&b), 1);
    int r, calls = 0;
    while ((r = ufio_conn_recv(&b, &msg)) == 0)
        calls++;
    assert_int_equal(r, 1);
    assert_true(calls <= 1); /* the header and part of the body, then the rest in one wait */
    assert_int_equal(msg.len, 200000);
    assert_memory_equal(msg.payload, big + 16, 200000);
    ufio_msg_release(&msg);
    pthread_join(th, NULL);
    free(big);
    /* EOF while waiting */
    close(sv[0]);
    assert_int_equal(ufio_conn_fill_wait(&b), -ECONNRESET);
    ufio_conn_close(&b);
    assert_int_equal(nfds_open(), base);
}

static void test_send_to_dead_and_stuck_peer(void **st)
{
    int sv[2];
    assert_int_equal(ufio_sock_pair(sv), 0);
    struct ufio_conn a;
    ufio_conn_init(&a, sv[0], 1 << 20, 4);
    a.send_timeout_ms = 100;
    static uint8_t big[8 << 20];
    struct vfio_user_header h = { .cmd = 10 };
    struct iovec iov = { big, sizeof(big) };
    /* nobody reads: partial progress, then a timeout, not a hang */
    assert_int_equal(ufio_conn_send(&a, &h, &iov, 1, NULL, 0), -ETIMEDOUT);
    close(sv[1]);
    iov.iov_len = 16;
    int r = ufio_conn_send(&a, &h, &iov, 1, NULL, 0);
    assert_true(r == -EPIPE || r == -ECONNRESET); /* and no SIGPIPE killed us */
    ufio_conn_close(&a);
}

static void test_sockets(void **st)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/ufio-unit-%d.sock", getpid());
    unlink(path);
    int l1, l2, c;
    assert_int_equal(ufio_sock_listen(path, &l1), 0);
    assert_int_equal(ufio_sock_listen(path, &l2), -EADDRINUSE); /* a live listener */
    /* the liveness probe shows up at the live listener as a connection already closed */
    assert_int_equal(ufio_sock_accept(l1, &c), 0);
    char ch;
    assert_int_equal(read(c, &ch, 1), 0);
    close(c);
    assert_int_equal(ufio_sock_accept(l1, &c), -EAGAIN);
    assert_int_equal(ufio_sock_connect(path, 1000, &c), 0);
    int s;
    assert_int_equal(ufio_sock_accept(l1, &s), 0);
    close(s);
    close(c);
    close(l1); /* stale now: replaced by the next listen */
    assert_int_equal(ufio_sock_listen(path, &l2), 0);
    close(l2);
    unlink(path);
    assert_int_equal(ufio_sock_connect(path, 50, &c), -ETIMEDOUT);
    int f = open(path, O_CREAT | O_WRONLY, 0600);
    close(f);
    assert_int_equal(ufio_sock_listen(path, &l2), -EEXIST); /* never removes a regular file */
    unlink(path);
    char longp[200];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = 0;
    assert_int_equal(ufio_sock_listen(longp, &l2), -ENAMETOOLONG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_bytes),
        cmocka_unit_test(test_fragmented_big_body),
        cmocka_unit_test(test_fds_attribution_and_limits),
        cmocka_unit_test(test_framing_errors),
        cmocka_unit_test(test_read_ahead),
        cmocka_unit_test(test_read_ahead_fds),
        cmocka_unit_test(test_sink),
        cmocka_unit_test(test_lend_in_place),
        cmocka_unit_test(test_lend_split),
        cmocka_unit_test(test_lend_fills_buffer),
        cmocka_unit_test(test_lend_fds),
        cmocka_unit_test(test_lend_held_then_released),
        cmocka_unit_test(test_peer_on_my_cpu),
        cmocka_unit_test(test_blocking_waits),
        cmocka_unit_test(test_send_to_dead_and_stuck_peer),
        cmocka_unit_test(test_sockets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
