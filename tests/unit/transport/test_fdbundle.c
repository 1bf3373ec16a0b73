/*
 * fd bundles: many fds (far more than one message carries) arrive with their
 * table, each one the same open file as the sender's; every malformed,
 * short, overfull, truncated or stalled bundle fails with every fd that
 * arrived closed (counted in /proc/self/fd).
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/cursor.h"
#include "transport/fdbundle.h"

static int fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static bool same_file(int a, int b)
{
    struct stat sa, sb;
    assert_int_equal(fstat(a, &sa), 0);
    assert_int_equal(fstat(b, &sb), 0);
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

struct sender {
    int sock;
    const struct ufio_fdb *b;
    int err;
};

static void *send_thread(void *p)
{
    struct sender *s = p;
    s->err = ufio_fdb_send(s->sock, s->b, 5000);
    return NULL;
}

/* n entries: memfds for DMA, eventfds for IRQs, a socket, and fd-less data. */
static void make_bundle(struct ufio_fdb *b, size_t n)
{
    ufio_fdb_init(b);
    for (size_t i = 0; i < n; i++) {
        int fd;
        switch (i % 4) {
        case 0:
            fd = memfd_create("dma", MFD_CLOEXEC);
            assert_true(fd >= 0);
            assert_int_equal(ufio_fdb_add(b, UFIO_FDB_DMA, 3, 0x100000 * i, 4096, i, fd), 0);
            break;
        case 1:
            fd = eventfd(0, EFD_CLOEXEC);
            assert_true(fd >= 0);
            assert_int_equal(ufio_fdb_add(b, UFIO_FDB_IRQ, 4, i, 0, 0, fd), 0);
            break;
        case 2:
            assert_int_equal(ufio_fdb_add(b, UFIO_FDB_DATA, 0, i, ~(uint64_t)i, 7, -1), 0);
            break;
        default: {
            int sp[2];
            assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
            close(sp[1]);
            assert_int_equal(ufio_fdb_add(b, UFIO_FDB_CONN, (uint32_t)i, 0, 0, 0, sp[0]), 0);
            break;
        }
        }
    }
}

static void close_sent(struct ufio_fdb *b)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->e[i].fd >= 0)
            close(b->e[i].fd);
    ufio_fdb_forget(b);
}

static void roundtrip(size_t n)
{
    int base = fd_count();
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    struct ufio_fdb out, in;
    make_bundle(&out, n);
    struct sender s = { sp[0], &out, -1 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, send_thread, &s), 0);
    assert_int_equal(ufio_fdb_recv(sp[1], &in, 0, 5000), 0);
    pthread_join(t, NULL);
    assert_int_equal(s.err, 0);
    assert_int_equal(in.n, n);
    size_t with_fd = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(in.e[i].kind, out.e[i].kind);
        assert_int_equal(in.e[i].index, out.e[i].index);
        assert_int_equal(in.e[i].a, out.e[i].a);
        assert_int_equal(in.e[i].b, out.e[i].b);
        assert_int_equal(in.e[i].c, out.e[i].c);
        assert_int_equal(in.e[i].fd >= 0, out.e[i].fd >= 0);
        if (out.e[i].fd >= 0) {
            assert_int_not_equal(in.e[i].fd, out.e[i].fd);
            assert_true(same_file(in.e[i].fd, out.e[i].fd));
            with_fd++;
        }
    }
    assert_int_equal(ufio_fdb_nfds(&in), with_fd);
    /* one taken fd stays open after free; the rest are closed */
    long k = ufio_fdb_find(&in, UFIO_FDB_IRQ, UINT32_MAX, 0);
    assert_true(n < 2 || k >= 0);
    int kept = k >= 0 ? ufio_fdb_take(&in, (size_t)k) : -1;
    assert_true(k < 0 || kept >= 0);
    if (k >= 0)
        assert_int_equal(ufio_fdb_take(&in, (size_t)k), -1);
    ufio_fdb_free(&in);
    close_sent(&out);
    close(sp[0]);
    close(sp[1]);
    assert_int_equal(fd_count(), base + (kept >= 0));
    if (kept >= 0)
        close(kept);
    assert_int_equal(fd_count(), base);
}

static void test_few(void **st)
{
    roundtrip(3);
}

/* 1000 entries, 750 fds: 47 batches */
static void test_many(void **st)
{
    roundtrip(1000);
}

static void test_empty(void **st)
{
    roundtrip(0);
}

/* ---- hostile senders ------------------------------------------------------------- */

static void put_msg(int sock, uint32_t magic, const void *body, uint32_t len, const int *fds, size_t nfds)
{
    uint8_t buf[8 + 4096];
    assert_true(len <= 4096);
    ufio_st32(buf, magic);
    ufio_st32(buf + 4, len);
    memcpy(buf + 8, body, len);
    struct iovec iov = { buf, 8 + len };
    char ctl[CMSG_SPACE(sizeof(int) * 32)];
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds) {
        memset(ctl, 0, sizeof(ctl));
        mh.msg_control = ctl;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    assert_int_equal(sendmsg(sock, &mh, MSG_NOSIGNAL), (ssize_t)(8 + len));
}

/* A table of n entries, all with an fd (kind IRQ), or with one changed field. */
static void put_table(int sock, uint32_t n, uint32_t version, uint32_t kind, uint32_t has, uint32_t body_delta)
{
    uint8_t body[8 + 64 * UFIO_FDB_ENTRY_SIZE] = { 0 };
    assert_true(n <= 64);
    ufio_st32(body, version);
    ufio_st32(body + 4, n);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *e = body + 8 + i * UFIO_FDB_ENTRY_SIZE;
        ufio_st32(e, kind);
        ufio_st32(e + 32, has);
    }
    put_msg(sock, UFIO_FDB_TABLE_MAGIC, body, 8 + n * UFIO_FDB_ENTRY_SIZE + body_delta, NULL, 0);
}

static void put_batch(int sock, uint32_t first, uint32_t count, size_t nfds)
{
    int fds[32];
    assert_true(nfds <= 32);
    for (size_t i = 0; i < nfds; i++) {
        fds[i] = eventfd(0, EFD_CLOEXEC);
        assert_true(fds[i] >= 0);
    }
    uint8_t body[8];
    ufio_st32(body, first);
    ufio_st32(body + 4, count);
    put_msg(sock, UFIO_FDB_BATCH_MAGIC, body, 8, fds, nfds);
    for (size_t i = 0; i < nfds; i++)
        close(fds[i]); /* in flight now, or dropped with the socket */
}

enum bad {
    BAD_MAGIC_VERSION, BAD_KIND, BAD_NEXT_KIND, BAD_HAS, BAD_DATA_FD, BAD_HELD_NO_FD, BAD_BODY_LEN, TOO_MANY_ENTRIES,
    FEWER_FDS, MORE_FDS, WRONG_FIRST, ZERO_COUNT, EXTRA_BATCH_FDS_OVER_LIMIT, TRUNCATED, STALLED, FDS_ON_TABLE,
    NBAD
};

static int hostile(enum bad which, int sock)
{
    switch (which) {
    case BAD_MAGIC_VERSION: put_table(sock, 2, 9, UFIO_FDB_IRQ, 1, 0); break;
    case BAD_KIND: put_table(sock, 2, 1, 99, 1, 0); break;
    case BAD_HAS: put_table(sock, 2, 1, UFIO_FDB_IRQ, 2, 0); break;
    case BAD_NEXT_KIND: put_table(sock, 2, 1, UFIO_FDB_HELD + 1, 1, 0); break;
    case BAD_DATA_FD: put_table(sock, 2, 1, UFIO_FDB_DATA, 1, 0); break;
    case BAD_HELD_NO_FD: put_table(sock, 2, 1, UFIO_FDB_HELD, 0, 0); break; /* a held message's fd, without one */
    case BAD_BODY_LEN: put_table(sock, 2, 1, UFIO_FDB_IRQ, 1, 4); break;
    case TOO_MANY_ENTRIES: put_table(sock, 20, 1, UFIO_FDB_IRQ, 1, 0); break;
    case FEWER_FDS:
        put_table(sock, 4, 1, UFIO_FDB_IRQ, 1, 0);
        put_batch(sock, 0, 4, 3);
        break;
    case MORE_FDS:
        put_table(sock, 4, 1, UFIO_FDB_IRQ, 1, 0);
        put_batch(sock, 0, 5, 5);
        break;
    case WRONG_FIRST:
        put_table(sock, 4, 1, UFIO_FDB_IRQ, 1, 0);
        put_batch(sock, 0, 2, 2);
        put_batch(sock, 3, 2, 2);
        break;
    case ZERO_COUNT:
        put_table(sock, 4, 1, UFIO_FDB_IRQ, 1, 0);
        put_batch(sock, 0, 0, 0);
        break;
    case EXTRA_BATCH_FDS_OVER_LIMIT:
        put_table(sock, 16, 1, UFIO_FDB_IRQ, 1, 0);
        put_batch(sock, 0, 16, 24);
        break;
    case TRUNCATED:
        put_table(sock, 8, 1, UFIO_FDB_IRQ, 1, 0);
        put_batch(sock, 0, 4, 4);
        return -ECONNRESET; /* and the sender goes away */
    case STALLED:
        put_table(sock, 8, 1, UFIO_FDB_IRQ, 1, 0);
        put_batch(sock, 0, 4, 4);
        return -ETIMEDOUT;
    case FDS_ON_TABLE: {
        int e = eventfd(0, EFD_CLOEXEC);
        uint8_t body[8] = { 1, 0, 0, 0, 0, 0, 0, 0 };
        put_msg(sock, UFIO_FDB_TABLE_MAGIC, body, 8, &e, 1);
        close(e);
        break;
    }
    default: break;
    }
    return which == TOO_MANY_ENTRIES ? -E2BIG : -EPROTO;
}

static void test_hostile(void **st)
{
    for (int w = 0; w < NBAD; w++) {
        int base = fd_count();
        int sp[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        int want = hostile((enum bad)w, sp[0]);
        if (w != STALLED)
            shutdown(sp[0], SHUT_WR);
        struct ufio_fdb in;
        int err = ufio_fdb_recv(sp[1], &in, 16, w == STALLED ? 200 : 5000);
        if (err != want)
            fail_msg("case %d: %d, want %d", w, err, want);
        assert_int_equal(in.n, 0);
        assert_null(in.e);
        close(sp[0]);
        close(sp[1]);
        if (fd_count() != base)
            fail_msg("case %d: %d fds left open", w, fd_count() - base);
    }
}

/* The sender gives up when nobody reads (a full socket) at its deadline. */
static void test_send_timeout(void **st)
{
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    int small = 4096;
    setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    struct ufio_fdb b;
    ufio_fdb_init(&b);
    for (int i = 0; i < 2000; i++)
        assert_int_equal(ufio_fdb_add(&b, UFIO_FDB_DATA, 0, 0, 0, 0, -1), 0);
    assert_int_equal(ufio_fdb_send(sp[0], &b, 100), -ETIMEDOUT);
    ufio_fdb_forget(&b);
    close(sp[0]);
    close(sp[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_few),
        cmocka_unit_test(test_many),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_send_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
