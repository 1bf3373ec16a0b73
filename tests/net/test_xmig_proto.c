/*
 * The two-agent framing over a real (plain TCP, loopback) link: bounds on
 * every length, unknown types, the status decoder, truncation, URL parsing.
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
    assert_int_equal(ufio_xmig_send_status(p.a, XM_LOADED, -22, "bad\x01stream"), 0);
    assert_int_equal(ufio_xmig_sendv(p.a, XM_COMMIT, NULL, 0), 0);
    uint8_t buf[2048];
    uint32_t t, len;
    assert_int_equal(ufio_xmig_recv(p.b, &t, buf, sizeof(buf), &len), 0);
    assert_int_equal(t, XM_DATA);
    assert_int_equal(len, 1000);
    assert_memory_equal(buf, data, 1000);
    assert_int_equal(ufio_xmig_recv(p.b, &t, buf, sizeof(buf), &len), 0);
    assert_int_equal(t, XM_LOADED);
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
    head(h, XM_END, 8);
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
        cmocka_unit_test(test_urls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
