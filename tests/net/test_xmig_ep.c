/*
 * The destination as an engine endpoint over the link (lib/net/xmig_ep.c),
 * against a scripted destination agent on a loopback link: the wire messages
 * each call sends, DATA unanswered and a refusal seen at the next write and
 * at FLUSH, one PROGRESS ahead of each pass, RUNNING sent as COMMIT only
 * after the hook stopped the source (and nothing sent when it refuses),
 * CLOSE/DONE carrying both codes, a lost link or a malformed answer failing
 * every later call.
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <ufio/client.h>
#include <ufio/migration.h>

#include "net/xmig.h"
#include "proto/proto.h"

struct pair {
    struct ufio_link *a, *b; /* a: the endpoint's side, b: the scripted destination */
};

static void *acceptor(void *arg)
{
    int lfd = *(int *)arg;
    struct ufio_link_cfg cfg = { .insecure = true, .timeout_ms = 3000 };
    struct ufio_link *l = NULL;
    char err[256];
    ufio_link_accept(lfd, &cfg, 5000, &l, err, sizeof(err));
    return l;
}

static void make_pair(struct pair *p)
{
    char err[256], port[16];
    int lfd = ufio_link_listen("127.0.0.1", "0", err, sizeof(err));
    assert_true(lfd >= 0);
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
    snprintf(port, sizeof(port), "%u", ntohs(sin.sin_port));
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, acceptor, &lfd), 0);
    struct ufio_link_cfg cfg = { .insecure = true, .timeout_ms = 3000 };
    assert_int_equal(ufio_link_connect("127.0.0.1", port, &cfg, &p->a, err, sizeof(err)), 0);
    void *b;
    pthread_join(t, &b);
    p->b = b;
    assert_non_null(p->b);
    close(lfd);
}

/* ---- the scripted destination: runs in its own thread, records what it saw ---- */

struct peer {
    struct ufio_link *l;
    void (*script)(struct peer *);
    pthread_t t;
    uint8_t *buf;
    /* what the script saw, checked by the test after the join */
    uint32_t types[16];
    uint32_t lens[16];
    unsigned n;
    uint64_t flushed;      /* the last FLUSH's byte count */
    uint32_t flags, cap;   /* the last FEATURE's */
    uint8_t in[16];
    int close_code;
    bool bad;              /* a check inside the script failed */
};

static uint32_t next(struct peer *p)
{
    uint32_t t = 0, len = 0;
    if (ufio_xmig_recv(p->l, &t, p->buf, XM_MAX_DATA, &len)) {
        p->bad = true;
        return 0;
    }
    if (p->n < 16)
        p->types[p->n] = t, p->lens[p->n] = len, p->n++;
    if (t == XM_FLUSH && ufio_xmig_parse_u64(p->buf, len, &p->flushed))
        p->bad = true;
    if (t == XM_FEATURE) {
        const uint8_t *in;
        uint32_t n;
        if (ufio_xmig_parse_feature(p->buf, len, &p->flags, &p->cap, &in, &n) || n > sizeof(p->in))
            p->bad = true;
        else
            memcpy(p->in, in, n);
    }
    if (t == XM_CLOSE) {
        char reason[64];
        if (ufio_xmig_parse_code(p->buf, len, &p->close_code, reason, sizeof(reason)))
            p->bad = true;
    }
    return t;
}

static void answer(struct peer *p, int32_t st, const void *data, uint32_t n)
{
    uint32_t s = htole32((uint32_t)st);
    struct iovec iov[2] = { { &s, 4 }, { (void *)data, n } };
    if (ufio_xmig_sendv(p->l, XM_REPLY, iov, n ? 2 : 1))
        p->bad = true;
}

static void *peer_main(void *arg)
{
    struct peer *p = arg;
    p->script(p);
    return NULL;
}

static void peer_start(struct peer *p, struct ufio_link *l, void (*script)(struct peer *))
{
    memset(p, 0, sizeof(*p));
    p->l = l;
    p->script = script;
    p->buf = malloc(XM_MAX_DATA);
    assert_non_null(p->buf);
    assert_int_equal(pthread_create(&p->t, NULL, peer_main, p), 0);
}

static void peer_join(struct peer *p)
{
    pthread_join(p->t, NULL);
    free(p->buf);
    assert_false(p->bad);
}

/* the endpoint's side: a hook that records and answers as told */
static int commit_calls, commit_answer;
static int before_commit(void *opaque)
{
    (void)opaque;
    commit_calls++;
    return commit_answer;
}
static int passes;
static void pass_start(void *opaque, struct ufio_xmig_progress *p)
{
    (void)opaque;
    passes++;
    p->phase = XMIG_PRECOPY;
    p->round = (uint32_t)passes;
}

static struct ufio_mig_endpoint *new_ep(struct pair *p)
{
    struct ufio_xmig_ep_hooks h = { .pass_start = pass_start, .before_commit = before_commit };
    struct ufio_mig_endpoint *ep = NULL;
    assert_int_equal(ufio_xmig_ep_new(p->a, &h, "test", &ep), 0);
    commit_calls = commit_answer = passes = 0;
    return ep;
}

static int feature(struct ufio_mig_endpoint *ep, uint32_t flags, const void *in, size_t in_len, void *out,
                   size_t cap, size_t *got)
{
    return ep->ops->feature(ep->priv, flags, in, in_len, out, cap, got);
}

/* ---- feature requests ---- */

static void script_features(struct peer *p)
{
    if (next(p) != XM_FEATURE)
        p->bad = true;
    answer(p, 0, "\x06\0\0\0\0\0\0\0", 8);
    if (next(p) != XM_FEATURE)
        p->bad = true;
    answer(p, -ENOTSUP, NULL, 0);
}

static void test_feature_requests(void **state)
{
    struct pair pr;
    make_pair(&pr);
    struct peer p;
    peer_start(&p, pr.b, script_features);
    struct ufio_mig_endpoint *ep = new_ep(&pr);
    uint8_t out[8];
    size_t got = 0;
    assert_int_equal(feature(ep, UFIO_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0, out, 8, &got), 0);
    assert_int_equal(got, 8);
    assert_int_equal(out[0], 6);
    uint8_t in[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    assert_int_equal(feature(ep, UFIO_FEATURE_SET | UFIO_FEATURE_DIRTY_RATE_LIMIT, in, 8, NULL, 0, NULL), -ENOTSUP);
    peer_join(&p);
    /* the second request on the wire: its flags, cap and input as given */
    assert_int_equal(p.flags, UFIO_FEATURE_SET | UFIO_FEATURE_DIRTY_RATE_LIMIT);
    assert_int_equal(p.cap, 0);
    assert_memory_equal(p.in, in, 8);
    ufio_mig_endpoint_destroy(ep);
    ufio_link_close(pr.a);
    ufio_link_close(pr.b);
}

/* ---- data: unanswered, a refusal seen at the next write and at FLUSH ---- */

static volatile int refused_sent;

static void script_data(struct peer *p)
{
    /* pass 1: PROGRESS, DATA, DATA, FLUSH */
    for (int i = 0; i < 3; i++)
        next(p);
    next(p);
    answer(p, 0, NULL, 0);
    /* pass 2: PROGRESS, DATA: refused */
    next(p);
    next(p);
    if (ufio_xmig_send_status(p->l, XM_DATA_ERR, -EIO, "the device refused it"))
        p->bad = true;
    __atomic_store_n(&refused_sent, 1, __ATOMIC_SEQ_CST);
    /* no more DATA after the refusal: the FLUSH comes next */
    next(p);
    answer(p, -EIO, NULL, 0);
}

static void test_data_unanswered_refusal_async(void **state)
{
    struct pair pr;
    make_pair(&pr);
    struct peer p;
    refused_sent = 0;
    peer_start(&p, pr.b, script_data);
    struct ufio_mig_endpoint *ep = new_ep(&pr);
    static uint8_t chunk[XM_MAX_DATA + 100]; /* above one DATA: split in two */
    memset(chunk, 0xa5, sizeof(chunk));
    assert_int_equal(ep->ops->data_write(ep->priv, chunk, sizeof(chunk)), 0);
    assert_int_equal(ep->ops->flush(ep->priv), 0);
    assert_int_equal(ep->ops->data_write(ep->priv, chunk, 100), 0);
    /* wait (bounded) until the refusal reached our side of the link */
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (__atomic_load_n(&refused_sent, __ATOMIC_SEQ_CST) && ufio_link_readable(pr.a))
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        assert_true(now.tv_sec - t0.tv_sec < 5);
        sched_yield();
    }
    assert_int_equal(ep->ops->data_write(ep->priv, chunk, 100), -EIO); /* not sent */
    assert_int_equal(ep->ops->flush(ep->priv), -EIO);
    peer_join(&p);
    const uint32_t want[] = { XM_PROGRESS, XM_DATA, XM_DATA, XM_FLUSH, XM_PROGRESS, XM_DATA, XM_FLUSH };
    assert_int_equal(p.n, 7);
    for (unsigned i = 0; i < 7; i++)
        assert_int_equal(p.types[i], want[i]);
    assert_int_equal(p.lens[1], XM_MAX_DATA);
    assert_int_equal(p.lens[2], 100);
    assert_int_equal(p.flushed, sizeof(chunk) + 100); /* the count the destination checks */
    assert_int_equal(passes, 2);
    assert_int_equal(ufio_xmig_ep_bytes(ep), sizeof(chunk) + 100);
    assert_true(ufio_xmig_ep_rate(ep) > 0); /* a pass of 4 MiB or more was measured */
    ufio_mig_endpoint_destroy(ep);
    ufio_link_close(pr.a);
    ufio_link_close(pr.b);
}

/* ---- the commit ---- */

static void script_commit(struct peer *p)
{
    /* the refused commit sent nothing: the next message is the GET */
    if (next(p) != XM_FEATURE)
        p->bad = true;
    answer(p, 0, "\x01\0\0\0\0\0\0\0", 8);
    if (next(p) != XM_COMMIT)
        p->bad = true;
    answer(p, 0, "\x02\0\0\0\xff\xff\xff\xff", 8);
    if (next(p) != XM_CLOSE)
        p->bad = true;
    if (ufio_xmig_send_status(p->l, XM_DONE, 0, NULL))
        p->bad = true;
}

static void test_commit_after_hook(void **state)
{
    struct pair pr;
    make_pair(&pr);
    struct peer p;
    peer_start(&p, pr.b, script_commit);
    struct ufio_mig_endpoint *ep = new_ep(&pr);
    uint8_t run[8] = { UFIO_MIG_RUNNING, 0, 0, 0, 0xff, 0xff, 0xff, 0xff }, out[8];
    size_t got = 0;
    commit_answer = -ECANCELED;
    assert_int_equal(feature(ep, UFIO_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, run, 8, out, 8, &got),
                     -ECANCELED);
    assert_int_equal(commit_calls, 1);
    assert_int_equal(feature(ep, UFIO_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, NULL, 0, out, 8, &got), 0);
    commit_answer = 0;
    assert_int_equal(feature(ep, UFIO_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, run, 8, out, 8, &got), 0);
    assert_int_equal(commit_calls, 2);
    assert_int_equal(got, 8);
    assert_int_equal(out[0], UFIO_MIG_RUNNING);
    int peer_code = 7;
    char why[64];
    assert_int_equal(ufio_xmig_ep_close(ep, 0, NULL, &peer_code, why, sizeof(why)), 0);
    assert_int_equal(peer_code, 0);
    peer_join(&p);
    assert_int_equal(p.n, 3);
    assert_int_equal(p.close_code, 0);
    ufio_mig_endpoint_destroy(ep);
    ufio_link_close(pr.a);
    ufio_link_close(pr.b);
}

/* ---- failures ---- */

static void script_hang_up(struct peer *p)
{
    next(p);
    ufio_link_close(p->l);
}

static void test_link_lost(void **state)
{
    struct pair pr;
    make_pair(&pr);
    struct peer p;
    peer_start(&p, pr.b, script_hang_up);
    struct ufio_mig_endpoint *ep = new_ep(&pr);
    uint8_t out[64];
    size_t got = 0;
    assert_int_equal(feature(ep, UFIO_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, NULL, 0, out, 8, &got),
                     -ECONNRESET);
    peer_join(&p);
    /* every later call fails at once; the reason for the refusal is the link's */
    assert_int_equal(ep->ops->data_write(ep->priv, out, 8), -ECONNRESET);
    assert_int_equal(ep->ops->reset(ep->priv), -ECONNRESET);
    assert_int_equal(feature(ep, UFIO_FEATURE_GET | UFIO_FEATURE_MIG_REASON, NULL, 0, out, sizeof(out), &got), 0);
    assert_non_null(strstr((char *)out, "link lost"));
    const char *why;
    assert_int_equal(ufio_xmig_ep_link_error(ep, &why), -ECONNRESET);
    int pc;
    assert_int_equal(ufio_xmig_ep_close(ep, 6, "x", &pc, (char *)out, sizeof(out)), -ECONNRESET);
    assert_int_equal(pc, -1);
    ufio_mig_endpoint_destroy(ep);
    ufio_link_close(pr.a);
}

static void script_bad_reply(struct peer *p)
{
    next(p);
    answer(p, 5, NULL, 0); /* a positive status is no errno */
}

static void test_malformed_reply(void **state)
{
    struct pair pr;
    make_pair(&pr);
    struct peer p;
    peer_start(&p, pr.b, script_bad_reply);
    struct ufio_mig_endpoint *ep = new_ep(&pr);
    uint8_t out[8];
    size_t got;
    assert_int_equal(feature(ep, UFIO_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0, out, 8, &got), -EPROTO);
    assert_int_equal(ep->ops->reset(ep->priv), -EPROTO); /* broken: not sent */
    peer_join(&p);
    ufio_mig_endpoint_destroy(ep);
    ufio_link_close(pr.a);
    ufio_link_close(pr.b);
}

static void script_abort(struct peer *p)
{
    next(p);
    if (ufio_xmig_send_status(p->l, XM_ABORT, UFIO_XMIG_FAILED, "its device is gone"))
        p->bad = true;
}

static void test_abort(void **state)
{
    struct pair pr;
    make_pair(&pr);
    struct peer p;
    peer_start(&p, pr.b, script_abort);
    struct ufio_mig_endpoint *ep = new_ep(&pr);
    assert_int_equal(ep->ops->reset(ep->priv), -ECONNABORTED);
    peer_join(&p);
    assert_int_equal(ufio_xmig_ep_abort_code(ep), UFIO_XMIG_FAILED);
    const char *why;
    ufio_xmig_ep_link_error(ep, &why);
    assert_non_null(strstr(why, "its device is gone"));
    ufio_mig_endpoint_destroy(ep);
    ufio_link_close(pr.a);
    ufio_link_close(pr.b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_feature_requests),
        cmocka_unit_test(test_data_unanswered_refusal_async),
        cmocka_unit_test(test_commit_after_hook),
        cmocka_unit_test(test_link_lost),
        cmocka_unit_test(test_malformed_reply),
        cmocka_unit_test(test_abort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
