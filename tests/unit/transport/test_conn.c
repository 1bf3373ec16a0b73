/* Message framing over sockets (lib/transport): resumable reads, fds, limits, sockets. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
        cmocka_unit_test(test_send_to_dead_and_stuck_peer),
        cmocka_unit_test(test_sockets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
