/*
 * Asynchronous quiesce (server.h, "quiesce"): before an operation that would
 * break DMA in flight on the device's own threads, the device is asked to
 * quiesce; when it answers -EBUSY the message that needs it is held, with
 * its session's later ones, by the sessions layer's hold, until
 * ufio_dev_quiesced() (any thread) wakes the loop through an eventfd.
 *
 * One word, changed atomically, says where the quiesce is: the loop thread
 * moves it IDLE -> WAIT before calling ops.quiesce and back to IDLE when the
 * operation goes on; ufio_dev_quiesced() moves it WAIT -> DONE + errno. All
 * else here (q_by, the sessions) is the loop thread's alone.
 */
#include "server/session.h"
#include "server/callback.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"

enum { Q_IDLE = 0, Q_WAIT = 1, Q_DONE = 2 /* + errno */ };

static int q_load(const struct ufio_sessions *ss) { return __atomic_load_n(&ss->q_word, __ATOMIC_SEQ_CST); }
static void q_store(struct ufio_sessions *ss, int w) { __atomic_store_n(&ss->q_word, w, __ATOMIC_SEQ_CST); }

int quiesce_init(struct ufio_sessions *ss)
{
    ss->q_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ss->q_efd < 0)
        return -errno;
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &ss->q_efd };
    if (epoll_ctl(ss->epfd, EPOLL_CTL_ADD, ss->q_efd, &ev) < 0)
        return -errno;
    return 0;
}

void quiesce_fini(struct ufio_sessions *ss)
{
    if (ss->q_efd >= 0)
        close(ss->q_efd);
    ss->q_efd = -1;
}

/* The operation goes on (or is given up): the quiesce ends with it. */
static int q_end(struct ufio_sessions *ss, int w)
{
    q_store(ss, Q_IDLE);
    ss->q_by = NULL;
    return w >= Q_DONE ? -(w - Q_DONE) : 0;
}

static int q_defer(struct ufio_session *s)
{
    s->q_defer = true;
    return SESS_DEFER;
}

int sess_quiesce(struct ufio_session *s)
{
    struct ufio_sessions *ss = s->ss;
    struct ufio_dev *dev = s->dev;
    if (!dev->ops.quiesce || ss->q_efd < 0)
        return 0;
    int w = q_load(ss);
    if (w != Q_IDLE) {
        /* another operation's quiesce: this one asks for its own after it */
        if (ss->q_by != s || w == Q_WAIT)
            return q_defer(s);
        return q_end(ss, w);
    }
    ss->q_by = s;
    q_store(ss, Q_WAIT); /* before the call: the device may answer from another thread at once */
    int r = dev->ops.quiesce(dev, dev->opaque);
    if (r == -EBUSY) {
        w = q_load(ss);
        if (w == Q_WAIT) {
            UFIO_DBG(dev->name, "session %u: waits for the device to quiesce", s->id);
            return q_defer(s);
        }
        return q_end(ss, w); /* ufio_dev_quiesced() came first */
    }
    q_end(ss, Q_IDLE);
    return dev_cb_result(dev->name, "quiesce", r, 0);
}

int sess_quiesce_teardown(struct ufio_session *s)
{
    struct ufio_sessions *ss = s->ss;
    struct ufio_dev *dev = s->dev;
    if (s != ss->owner || !s->negotiated || ss->handed_over || !dev->dma.n)
        return 0;
    int r = sess_quiesce(s);
    s->q_defer = false;
    if (r == SESS_DEFER) {
        if (!s->q_teardown) {
            /* kept only for its mappings: nothing more is read, no deadline runs */
            s->q_teardown = true;
            s->held = true;
            s->deadline_ns = 0;
            if (s->conn.fd >= 0)
                epoll_ctl(ss->epfd, EPOLL_CTL_DEL, s->conn.fd, NULL);
            UFIO_INFO(dev->name, "session %u: its DMA mappings stay until the device has quiesced", s->id);
        }
        return SESS_DEFER;
    }
    if (r)
        UFIO_WARN(dev->name, "session %u: the device failed to quiesce (%s); its mappings go anyway: the client is gone",
                  s->id, strerror(-r));
    return 0;
}

bool sess_quiesce_holds(const struct ufio_session *s)
{
    const struct ufio_sessions *ss = s->ss;
    int w = q_load(ss);
    return ss->q_by == s ? w == Q_WAIT : w != Q_IDLE;
}

bool sess_quiesce_owner_hold(const struct ufio_sessions *ss)
{
    return ss->q_efd >= 0 && ss->q_by != ss->owner && q_load(ss) != Q_IDLE;
}

void sess_quiesce_forget(struct ufio_session *s)
{
    struct ufio_sessions *ss = s->ss;
    if (ss->q_by != s)
        return;
    ss->q_by = NULL;
    if (q_load(ss) >= Q_DONE)
        q_end(ss, Q_IDLE);
}

void sess_quiesce_handled(struct ufio_session *s)
{
    struct ufio_sessions *ss = s->ss;
    if (ss->q_by == s && q_load(ss) >= Q_DONE)
        q_end(ss, Q_IDLE);
}

void sess_quiesce_wake(struct ufio_sessions *ss)
{
    uint64_t n;
    while (read(ss->q_efd, &n, sizeof(n)) == sizeof(n))
        ;
    /* nobody is left to go on: the quiesce ends here */
    if (!ss->q_by && q_load(ss) >= Q_DONE)
        q_end(ss, Q_IDLE);
}

UFIO_API int ufio_dev_quiesced(struct ufio_dev *dev, int err)
{
    if (!dev || dev->ss->q_efd < 0)
        return -EINVAL;
    struct ufio_sessions *ss = dev->ss;
    if (err > 0 || err < -4095) {
        UFIO_WARN(dev->name, "ufio_dev_quiesced(%d): neither 0 nor a negative errno, taken as EIO", err);
        err = -EIO;
    }
    int want = Q_WAIT;
    if (!__atomic_compare_exchange_n(&ss->q_word, &want, Q_DONE - err, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        return -EINVAL;
    uint64_t one = 1;
    ssize_t r = write(ss->q_efd, &one, sizeof(one));
    (void)r; /* only a full counter fails, and that wakes the loop too */
    return 0;
}
