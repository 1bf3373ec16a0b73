/*
 * The two-agent framing over a real (plain TCP, loopback) link: bounds on
 * every length, unknown types, the decoders of each message (short, long and
 * malformed payloads refused), truncation, an agent of the old protocol
 * version refused by name, URL parsing.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/xmig.h"

struct pair {
    struct ufio_link *a, *b;
};

static char port_str[16];

static void *acceptor(void *arg)
{
    int lfd = *(int *)arg;
    struct ufio_link_cfg cfg = { .insecure = true, .timeout_ms = 2000 };
    struct ufio_link *l = NULL;
    char err[256];
    ufio_link_accept(lfd, &cfg, 5000, &l, err, sizeof(err));
    return l;
}

static void make_pair(struct pair *p)
{
    char err[256];
    int lfd = ufio_link_listen("127.0.0.1", "0", err, sizeof(err));
    assert_true(lfd >= 0);
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
    snprintf(port_str, sizeof(port_str), "%u", ntohs(sin.sin_port));
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, acceptor, &lfd), 0);
    struct ufio_link_cfg cfg = { .insecure = true, .timeout_ms = 2000 };
    assert_int_equal(ufio_link_connect("127.0.0.1", port_str, &cfg, &p->a, err, sizeof(err)), 0);
    void *b;
    pthread_join(t, &b);
    p->b = b;
    assert_non_null(p->b);
    close(lfd);
}

static void free_pair(struct pair *p)
{
    ufio_link_close(p->a);
    ufio_link_close(p->b);
}

/* raw bytes on the link, as a hostile peer would send them */
static void send_raw(struct ufio_link *l, const void *b, size_t n)
{
    struct iovec iov = { (void *)b, n };
    assert_int_equal(ufio_link_sendv(l, &iov, 1), 0);
}

static void head(uint8_t h[XM_HDR], uint32_t type, uint32_t len)
{
    uint32_t t = htole32(type), n = htole32(len);
    memcpy(h, &t, 4);
    memcpy(h + 4, &n, 4);
}

static void test_roundtrip(void **state)
{
    struct pair p;
    make_pair(&p);
    uint8_t data[1000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)i;
    struct iovec iov[2] = { { data, 600 }, { data + 600, 400 } };
    assert_int_equal(ufio_xmig_sendv(p.a, XM_DATA, iov, 2), 0);
    assert_int_equal(ufio_xmig_send_status(p.a, XM_DATA_ERR, -22, "bad\x01stream"), 0);
    assert_int_equal(ufio_xmig_sendv(p.a, XM_COMMIT, NULL, 0), 0);
    uint8_t buf[2048];
    uint32_t t, len;
    assert_int_equal(ufio_xmig_recv(p.b, &t, buf, sizeof(buf), &len), 0);
    assert_int_equal(t, XM_DATA);
    assert_int_equal(len, 1000);
    assert_memory_equal(buf, data, 1000);
    assert_int_equal(ufio_xmig_recv(p.b, &t, buf, sizeof(buf), &len), 0);
    assert_int_equal(t, XM_DATA_ERR);
    int32_t st;
    char reason[64];
    assert_int_equal(ufio_xmig_parse_status(buf, len, &st, reason, sizeof(reason)), 0);
    assert_int_equal(st, -22);
    assert_string_equal(reason, "bad?stream"); /* control bytes from the peer are not printed */
    assert_int_equal(ufio_xmig_recv(p.b, &t, buf, sizeof(buf), &len), 0);
    assert_int_equal(t, XM_COMMIT);
    assert_int_equal(len, 0);
    free_pair(&p);
}

static void test_bounds(void **state)
{
    uint8_t h[XM_HDR];
    uint32_t t, len;
    head(h, XM_DATA, XM_MAX_DATA);
    assert_int_equal(ufio_xmig_parse_head(h, &t, &len), 0);
    head(h, XM_DATA, XM_MAX_DATA + 1);
    assert_int_equal(ufio_xmig_parse_head(h, &t, &len), -EPROTO);
    head(h, XM_COMMIT, 1);
    assert_int_equal(ufio_xmig_parse_head(h, &t, &len), -EPROTO);
    head(h, XM_PROGRESS, 33);
    assert_int_equal(ufio_xmig_parse_head(h, &t, &len), -EPROTO);
    head(h, XM_RESET, 1);
    assert_int_equal(ufio_xmig_parse_head(h, &t, &len), -EPROTO);
    head(h, XM_FLUSH, 9);
    assert_int_equal(ufio_xmig_parse_head(h, &t, &len), -EPROTO);
    head(h, XM_CONFIG, 13);
    assert_int_equal(ufio_xmig_parse_head(h, &t, &len), -EPROTO);
    head(h, XM_FEATURE, 8 + XM_MAX_FEATURE_IN + 1);
    assert_int_equal(ufio_xmig_parse_head(h, &t, &len), -EPROTO);
    head(h, XM_REPLY, 4 + XM_MAX_REPLY);
    assert_int_equal(ufio_xmig_parse_head(h, &t, &len), 0);
    head(h, XM_REPLY, 4 + XM_MAX_REPLY + 1);
    assert_int_equal(ufio_xmig_parse_head(h, &t, &len), -EPROTO);
    head(h, XM_CLOSE, 4 + XM_MAX_REASON + 1);
    assert_int_equal(ufio_xmig_parse_head(h, &t, &len), -EPROTO);
    head(h, 0, 0);
    assert_int_equal(ufio_xmig_parse_head(h, &t, &len), -EPROTO);
    head(h, XM_MAX_TYPE + 1, 0);
    assert_int_equal(ufio_xmig_parse_head(h, &t, &len), -EPROTO);
    head(h, 0xffffffffu, 0xffffffffu);
    assert_int_equal(ufio_xmig_parse_head(h, &t, &len), -EPROTO);
    /* the sender refuses to frame what the receiver would refuse */
    struct pair p;
    make_pair(&p);
    static uint8_t big[XM_MAX_DATA + 1];
    struct iovec iov = { big, sizeof(big) };
    assert_int_equal(ufio_xmig_sendv(p.a, XM_DATA, &iov, 1), -EINVAL);
    /* a message larger than the receiver's buffer is refused, not truncated */
    head(h, XM_DATA, 100);
    send_raw(p.a, h, sizeof(h));
    uint8_t buf[64];
    assert_int_equal(ufio_xmig_recv(p.b, &t, buf, sizeof(buf), &len), -EPROTO);
    free_pair(&p);
    int32_t st;
    char reason[8];
    assert_int_equal(ufio_xmig_parse_status(buf, 3, &st, reason, sizeof(reason)), -EPROTO);
    uint8_t s[20] = { 1, 0, 0, 0, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i' };
    assert_int_equal(ufio_xmig_parse_status(s, 13, &st, reason, sizeof(reason)), 0);
    assert_string_equal(reason, "abcdefg"); /* cut to the caller's buffer */
}

static void test_truncated_and_timeout(void **state)
{
    struct pair p;
    make_pair(&p);
    uint8_t h[XM_HDR], buf[64];
    uint32_t t, len;
    head(h, XM_FLUSH, 8);
    send_raw(p.a, h, sizeof(h));
    send_raw(p.a, "abc", 3);
    /* 5 bytes missing and the peer silent: the wait ends at the link timeout */
    ufio_link_set_timeout(p.b, 200);
    assert_int_equal(ufio_xmig_recv(p.b, &t, buf, sizeof(buf), &len), -ETIMEDOUT);
    ufio_link_close(p.a);
    p.a = NULL;
    /* and a peer that goes away mid-message is a reset, not a hang */
    ufio_link_set_timeout(p.b, 5000);
    assert_int_equal(ufio_xmig_recv(p.b, &t, buf, sizeof(buf), &len), -ECONNRESET);
    free_pair(&p);
}


static void put32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, 4);
}

/* FEATURE: u32 flags, u32 out cap, input; every bound checked */
static void test_feature_frames(void **state)
{
    uint8_t b[8 + XM_MAX_FEATURE_IN + 8] = { 0 };
    uint32_t flags, cap, n;
    const uint8_t *in;
    put32(b, 0x10002);
    put32(b + 4, 8);
    put32(b + 8, 0xabcd);
    assert_int_equal(ufio_xmig_parse_feature(b, 12, &flags, &cap, &in, &n), 0);
    assert_int_equal(flags, 0x10002);
    assert_int_equal(cap, 8);
    assert_int_equal(n, 4);
    assert_ptr_equal(in, b + 8);
    assert_int_equal(ufio_xmig_parse_feature(b, 8, &flags, &cap, &in, &n), 0);
    assert_int_equal(n, 0);
    for (uint32_t short_len = 0; short_len < 8; short_len++) /* no room for flags and cap */
        assert_int_equal(ufio_xmig_parse_feature(b, short_len, &flags, &cap, &in, &n), -EPROTO);
    assert_int_equal(ufio_xmig_parse_feature(b, 8 + XM_MAX_FEATURE_IN + 1, &flags, &cap, &in, &n), -EPROTO);
    put32(b + 4, XM_MAX_REPLY + 1); /* an answer bigger than any REPLY may carry */
    assert_int_equal(ufio_xmig_parse_feature(b, 12, &flags, &cap, &in, &n), -EPROTO);
}

/* CONFIG: exactly u64 offset + u32 length, 1..4096 bytes */
static void test_config_frames(void **state)
{
    uint8_t b[16] = { 0 };
    uint64_t off;
    uint32_t n;
    b[0] = 0x30;
    put32(b + 8, 16);
    assert_int_equal(ufio_xmig_parse_config(b, 12, &off, &n), 0);
    assert_int_equal(off, 0x30);
    assert_int_equal(n, 16);
    assert_int_equal(ufio_xmig_parse_config(b, 11, &off, &n), -EPROTO);
    assert_int_equal(ufio_xmig_parse_config(b, 13, &off, &n), -EPROTO);
    put32(b + 8, 0);
    assert_int_equal(ufio_xmig_parse_config(b, 12, &off, &n), -EPROTO);
    put32(b + 8, XM_MAX_CONFIG + 1);
    assert_int_equal(ufio_xmig_parse_config(b, 12, &off, &n), -EPROTO);
    put32(b + 8, 4);
    b[4] = 1; /* offset 2^32 + 0x30: beyond any config space */
    assert_int_equal(ufio_xmig_parse_config(b, 12, &off, &n), -EPROTO);
}

/* REPLY: status 0 with bytes, or -errno alone; FLUSH exactly 8; codes 0..9 */
static void test_reply_and_codes(void **state)
{
    uint8_t b[16] = { 0 };
    int32_t st;
    const uint8_t *d;
    uint32_t n;
    memcpy(b + 4, "answ", 4);
    assert_int_equal(ufio_xmig_parse_reply(b, 8, &st, &d, &n), 0);
    assert_int_equal(st, 0);
    assert_int_equal(n, 4);
    assert_memory_equal(d, "answ", 4);
    assert_int_equal(ufio_xmig_parse_reply(b, 3, &st, &d, &n), -EPROTO);
    put32(b, (uint32_t)-EIO);
    assert_int_equal(ufio_xmig_parse_reply(b, 4, &st, &d, &n), 0);
    assert_int_equal(st, -EIO);
    assert_int_equal(ufio_xmig_parse_reply(b, 8, &st, &d, &n), -EPROTO); /* bytes with an error */
    put32(b, 1);
    assert_int_equal(ufio_xmig_parse_reply(b, 4, &st, &d, &n), -EPROTO); /* a positive status */
    put32(b, (uint32_t)-5000);
    assert_int_equal(ufio_xmig_parse_reply(b, 4, &st, &d, &n), -EPROTO); /* not an errno */
    uint64_t v;
    assert_int_equal(ufio_xmig_parse_u64(b, 8, &v), 0);
    assert_int_equal(ufio_xmig_parse_u64(b, 7, &v), -EPROTO);
    assert_int_equal(ufio_xmig_parse_u64(b, 9, &v), -EPROTO);
    int code;
    char reason[32];
    put32(b, 8);
    memcpy(b + 4, "doubt", 5);
    assert_int_equal(ufio_xmig_parse_code(b, 9, &code, reason, sizeof(reason)), 0);
    assert_int_equal(code, 8);
    assert_string_equal(reason, "doubt");
    put32(b, UFIO_XMIG_NUM_CODES);
    assert_int_equal(ufio_xmig_parse_code(b, 9, &code, reason, sizeof(reason)), -EPROTO);
    put32(b, (uint32_t)-1);
    assert_int_equal(ufio_xmig_parse_code(b, 9, &code, reason, sizeof(reason)), -EPROTO);
    assert_int_equal(ufio_xmig_parse_code(b, 2, &code, reason, sizeof(reason)), -EPROTO);
    struct ufio_xmig_progress pr;
    uint8_t pb[33] = { 0 };
    assert_int_equal(ufio_xmig_parse_progress(pb, 32, &pr), 0);
    assert_int_equal(ufio_xmig_parse_progress(pb, 31, &pr), -EPROTO);
    assert_int_equal(ufio_xmig_parse_progress(pb, 33, &pr), -EPROTO);
}

struct accepted {
    int lfd, rc;
    char err[512];
};

static void *accept_one(void *arg)
{
    struct accepted *a = arg;
    struct ufio_link_cfg cfg = { .insecure = true, .timeout_ms = 2000 };
    struct ufio_link *l = NULL;
    a->rc = ufio_link_accept(a->lfd, &cfg, 5000, &l, a->err, sizeof(a->err));
    ufio_link_close(l);
    return NULL;
}

/* An agent of link protocol 1 (the agents' own loop) is refused by name, before any message. */
static void test_old_peer_refused(void **state)
{
    char err[256];
    struct accepted a = { 0 };
    a.lfd = ufio_link_listen("127.0.0.1", "0", err, sizeof(err));
    assert_true(a.lfd >= 0);
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    assert_int_equal(getsockname(a.lfd, (struct sockaddr *)&sin, &sl), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, accept_one, &a), 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    uint8_t old[16] = { 'U', 'F', 'I', 'O', 'L', 'N', 'K', '1' }; /* verdict 0, no reason */
    assert_int_equal(send(fd, old, sizeof(old), 0), (ssize_t)sizeof(old));
    uint8_t mine[16];
    assert_int_equal(recv(fd, mine, sizeof(mine), MSG_WAITALL), (ssize_t)sizeof(mine));
    assert_memory_equal(mine, "UFIOLNK2", 8); /* what the old agent reads: not its version */
    pthread_join(t, NULL);
    assert_int_equal(a.rc, -EPROTONOSUPPORT);
    assert_non_null(strstr(a.err, "version 1"));
    assert_non_null(strstr(a.err, "version 2"));
    close(fd);
    close(a.lfd);
}

static void test_urls(void **state)
{
    char h[64], port[8];
    bool tls;
    assert_int_equal(ufio_link_parse_url("tls://10.0.0.1:4444", h, sizeof(h), port, sizeof(port), &tls), 0);
    assert_string_equal(h, "10.0.0.1");
    assert_string_equal(port, "4444");
    assert_true(tls);
    assert_int_equal(ufio_link_parse_url("tcp://[fd00::2]:1", h, sizeof(h), port, sizeof(port), &tls), 0);
    assert_string_equal(h, "fd00::2");
    assert_false(tls);
    const char *bad[] = { "10.0.0.1:4444", "tls://host", "tls://:44", "tls://h:0", "tls://h:65536", "tls://h:4x",
                          "tls://[::1]44", "udp://h:1", "tls://h:" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ufio_link_parse_url(bad[i], h, sizeof(h), port, sizeof(port), &tls), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_truncated_and_timeout),
        cmocka_unit_test(test_feature_frames),
        cmocka_unit_test(test_config_frames),
        cmocka_unit_test(test_reply_and_codes),
        cmocka_unit_test(test_old_peer_refused),
        cmocka_unit_test(test_urls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
