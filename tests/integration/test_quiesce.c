/*
 * Asynchronous quiesce (server.h, "quiesce") with a device whose worker
 * thread holds a DMA in flight: the DMA_UNMAP, DEVICE_RESET, migration stop
 * or owner teardown that would break it waits, unanswered, until the worker
 * has finished and called ufio_dev_quiesced(); later requests follow in
 * order; observers are served meanwhile; a quiesce error fails the request.
 *
 * Every wait is on a condition (the worker's and callbacks' state under a
 * mutex, a reply on a socket) with a deadline that only bounds a failure.
 * "Not answered" is checked after a round trip on another session of the
 * same loop: the held request was handled (the quiesce was called) before
 * that round trip began, so an answer to it would already be in the socket.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <ufio/migration.h>
#include <ufio/server.h>

#include "harness.h"
#include "proto/proto.h"

#define IOVA 0x200000u
#define PAGE 4096u
#define HALF (PAGE / 2)

static struct rmsg R;

/* the device: a doorbell (BAR0 offset 0) hands the worker one DMA into the page at IOVA */
struct qdev {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ufio_dev *dev;
    uint8_t *job;        /* the worker's target; NULL: idle */
    bool in_flight;      /* first half written, the second waits for the gate */
    bool gate, quit;
    bool owe_quiesced;   /* quiesce said -EBUSY: the worker answers when done */
    int quiesce_err;     /* what the worker answers with */
    int force;           /* non-zero: what the quiesce callback returns (the test answers an -EBUSY) */
    unsigned quiesces, unmaps, resets, transitions, detaches, jobs_done;
    bool broke;          /* a callback that ends the quiesce ran with the DMA in flight, or
                            ufio_dev_quiesced() refused the worker */
    pthread_t worker, loop;
    char path[108], mgmt[120];
};

static struct qdev Q;

static void lock(void) { pthread_mutex_lock(&Q.mu); }
static void unlock(void) { pthread_cond_broadcast(&Q.cv); pthread_mutex_unlock(&Q.mu); }

/* Waits under the lock until cond holds; false after 5 s (a failure, not a pace). */
#define WAIT_FOR(cond)                                                                                 \
    ({                                                                                                 \
        struct timespec dl_;                                                                           \
        clock_gettime(CLOCK_REALTIME, &dl_);                                                           \
        dl_.tv_sec += 5;                                                                               \
        bool ok_ = true;                                                                               \
        pthread_mutex_lock(&Q.mu);                                                                     \
        while (!(cond) && ok_)                                                                         \
            ok_ = pthread_cond_timedwait(&Q.cv, &Q.mu, &dl_) == 0 || (cond);                           \
        ok_ = (cond);                                                                                  \
        pthread_mutex_unlock(&Q.mu);                                                                   \
        ok_;                                                                                           \
    })

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&Q.mu);
    for (;;) {
        while (!Q.job && !Q.quit)
            pthread_cond_wait(&Q.cv, &Q.mu);
        if (Q.quit)
            break;
        uint8_t *p = Q.job;
        pthread_mutex_unlock(&Q.mu);
        memset(p, 0xa5, HALF); /* the DMA is under way */
        pthread_mutex_lock(&Q.mu);
        Q.in_flight = true;
        pthread_cond_broadcast(&Q.cv);
        while (!Q.gate && !Q.quit)
            pthread_cond_wait(&Q.cv, &Q.mu);
        pthread_mutex_unlock(&Q.mu);
        memset(p + HALF, 0x5a, HALF); /* and done */
        pthread_mutex_lock(&Q.mu);
        Q.job = NULL;
        Q.in_flight = Q.gate = false;
        Q.jobs_done++;
        bool owe = Q.owe_quiesced;
        int err = Q.quiesce_err;
        Q.owe_quiesced = false;
        pthread_cond_broadcast(&Q.cv);
        pthread_mutex_unlock(&Q.mu);
        int r = owe ? ufio_dev_quiesced(Q.dev, err) : 0;
        pthread_mutex_lock(&Q.mu);
        if (r)
            Q.broke = true; /* (no cmocka assert off the test's thread) */
    }
    pthread_mutex_unlock(&Q.mu);
    return NULL;
}

static int doorbell(struct ufio_dev *dev, void *opaque, unsigned region, uint64_t off, void *buf, uint32_t len,
                    bool is_write)
{
    (void)opaque, (void)region;
    if (!is_write) {
        memset(buf, 0, len);
        return 0;
    }
    if (off != 0)
        return 0; /* a plain register */
    uint8_t *p = ufio_dev_dma_ptr(dev, IOVA, PAGE, true);
    if (!p)
        return -EFAULT;
    lock();
    int err = Q.job ? -EBUSY : 0;
    if (!err)
        Q.job = p;
    unlock();
    return err;
}

static int on_quiesce(struct ufio_dev *dev, void *opaque)
{
    (void)dev, (void)opaque;
    lock();
    Q.quiesces++;
    int r = Q.force;
    if (!r && Q.job) {
        Q.owe_quiesced = true;
        r = -EBUSY;
    }
    unlock();
    return r;
}

/* each of these ends a quiesce: the DMA must be over */
static void note(unsigned *count)
{
    lock();
    (*count)++;
    if (Q.job)
        Q.broke = true;
    unlock();
}
static void on_unmap(struct ufio_dev *d, void *o, uint64_t iova, uint64_t len) { (void)d, (void)o, (void)iova, (void)len; note(&Q.unmaps); }
static int on_reset(struct ufio_dev *d, void *o) { (void)d, (void)o; note(&Q.resets); return 0; }
static void on_detach(struct ufio_dev *d, void *o) { (void)d, (void)o; note(&Q.detaches); }
static int on_transition(struct ufio_dev *d, void *o, unsigned from, unsigned to)
{
    (void)d, (void)o, (void)from, (void)to;
    note(&Q.transitions);
    return 0;
}
static ssize_t on_save(struct ufio_dev *d, void *o, void *buf, size_t len) { (void)d, (void)o, (void)buf, (void)len; return 0; }
static int on_load(struct ufio_dev *d, void *o, const void *buf, size_t len, bool last)
{
    (void)d, (void)o, (void)buf, (void)len, (void)last;
    return 0;
}

static void *loop(void *arg) { return (void *)(intptr_t)ufio_dev_run(arg); }

static void start(bool with_quiesce)
{
    memset(&Q, 0, sizeof(Q));
    pthread_mutex_init(&Q.mu, NULL);
    pthread_cond_init(&Q.cv, NULL);
    static const struct ufio_pci_ids ids = { .vendor_id = 0x1234, .device_id = 0x51e5 };
    struct ufio_dev_ops ops = { .size = sizeof(ops), .dma_unmap = on_unmap, .reset = on_reset,
                                .detach = on_detach, .quiesce = with_quiesce ? on_quiesce : NULL };
    assert_int_equal(ufio_dev_create("quiesce-test", &ids, &ops, NULL, &Q.dev), 0);
    assert_int_equal(ufio_dev_add_bar(Q.dev, 0, 4096, UFIO_BAR_MEM32, doorbell, NULL), 0);
    struct ufio_mig_ops mo = { .size = sizeof(mo), .flags = UFIO_MIG_F_STOP_COPY, .transition = on_transition,
                               .save = on_save, .load = on_load };
    assert_int_equal(ufio_dev_setup_migration(Q.dev, &mo, NULL), 0);
    static unsigned seq;
    snprintf(Q.path, sizeof(Q.path), "/tmp/ufio-quiesce-%d-%u.sock", (int)getpid(), ++seq);
    assert_int_equal(ufio_dev_listen(Q.dev, Q.path), 0);
    assert_int_equal(ufio_dev_listen_mgmt(Q.dev, NULL), 0);
    snprintf(Q.mgmt, sizeof(Q.mgmt), "%s", ufio_dev_mgmt_socket(Q.dev));
    assert_int_equal(pthread_create(&Q.worker, NULL, worker, NULL), 0);
    assert_int_equal(pthread_create(&Q.loop, NULL, loop, Q.dev), 0);
}

static void finish(void)
{
    ufio_dev_stop(Q.dev);
    void *ret;
    pthread_join(Q.loop, &ret);
    assert_int_equal((intptr_t)ret, 0);
    lock();
    Q.quit = true;
    unlock();
    pthread_join(Q.worker, NULL);
    ufio_dev_destroy(Q.dev);
    pthread_cond_destroy(&Q.cv);
    pthread_mutex_destroy(&Q.mu);
}

static int connect_as(const char *path, const char *role)
{
    int fd = raw_connect(path);
    assert_true(fd >= 0);
    char json[128];
    if (role)
        snprintf(json, sizeof(json), "{\"capabilities\":{\"ufio_role\":\"%s\"}}", role);
    else
        snprintf(json, sizeof(json), "{\"capabilities\":{}}");
    assert_int_equal(raw_version(fd, json, &R), 0);
    return fd;
}

/* the client's page, mapped at IOVA */
static uint8_t *map_page(int owner, int *mfd)
{
    *mfd = memfd_create("quiesce-test", MFD_CLOEXEC);
    assert_true(*mfd >= 0);
    assert_int_equal(ftruncate(*mfd, PAGE), 0);
    uint8_t *g = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, *mfd, 0);
    assert_true(g != MAP_FAILED);
    uint8_t p[32];
    put32(p, 32);
    put32(p + 4, 3);
    put64(p + 8, 0);
    put64(p + 16, IOVA);
    put64(p + 24, PAGE);
    assert_int_equal(xfer(owner, 2, VFIO_USER_DMA_MAP, p, 32, mfd, 1, &R), 0);
    assert_int_equal(R.flags, 1);
    return g;
}

static size_t mk_region(uint8_t *buf, uint16_t id, unsigned region, bool write, uint32_t off, uint32_t val)
{
    uint8_t p[20];
    put64(p, off);
    put32(p + 8, region);
    put32(p + 12, 4);
    put32(p + 16, val);
    return mk(buf, id, write ? VFIO_USER_REGION_WRITE : VFIO_USER_REGION_READ, 0, p, write ? 20 : 16);
}

static size_t mk_unmap(uint8_t *buf, uint16_t id)
{
    uint8_t u[24];
    put32(u, 24);
    put32(u + 4, 0);
    put64(u + 8, IOVA);
    put64(u + 16, PAGE);
    return mk(buf, id, VFIO_USER_DMA_UNMAP, 0, u, 24);
}

static size_t mk_mig_state(uint8_t *buf, uint16_t id, unsigned state)
{
    uint8_t f[16];
    put32(f, 16);
    put32(f + 4, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE);
    put32(f + 8, state);
    put32(f + 12, (uint32_t)-1);
    return mk(buf, id, VFIO_USER_DEVICE_FEATURE, 0, f, 16);
}

static void send_buf(int fd, const uint8_t *b, size_t n) { assert_int_equal(raw_send(fd, b, n, NULL, 0), 0); }

/* The doorbell: the worker starts a DMA and stops half-way, at the gate. */
static void start_dma(int owner)
{
    uint8_t b[64];
    send_buf(owner, b, mk_region(b, 5, UFIO_PCI_BAR0_REGION, true, 0, 1));
    assert_int_equal(raw_recv(owner, &R, 5000), 0);
    assert_int_equal(R.flags & VFIO_USER_F_ERROR, 0);
    assert_true(WAIT_FOR(Q.in_flight));
}

static void open_gate(void)
{
    lock();
    Q.gate = true;
    unlock();
}

/* The observer is served (config space vendor id) while the other sessions wait. */
static void observer_round_trip(int obs)
{
    uint8_t b[64];
    send_buf(obs, b, mk_region(b, 77, UFIO_PCI_CONFIG_REGION, false, 0, 0));
    assert_int_equal(raw_recv(obs, &R, 5000), 0);
    assert_int_equal(R.id, 77);
    assert_int_equal(R.flags & VFIO_USER_F_ERROR, 0);
    assert_int_equal(get16(R.payload + 16), 0x1234);
}

static bool nothing_to_read(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, 0) == 0;
}

static void expect_reply(int fd, uint16_t id, uint32_t err)
{
    assert_int_equal(raw_recv(fd, &R, 5000), 0);
    assert_int_equal(R.id, id);
    if (err) {
        assert_int_equal(R.flags & VFIO_USER_F_ERROR, VFIO_USER_F_ERROR);
        assert_int_equal(R.err, err);
    } else {
        assert_int_equal(R.flags & VFIO_USER_F_ERROR, 0);
    }
}

/* Request id waits on the device's quiesce (its nq-th): the observer is served
 * meanwhile and the owner hears nothing; once the worker is let go, it is answered. */
static void held_until_worker_done(int owner, int obs, unsigned nq, uint16_t id)
{
    assert_true(WAIT_FOR(Q.quiesces == nq));
    observer_round_trip(obs);
    assert_true(nothing_to_read(owner));
    open_gate();
    expect_reply(owner, id, 0);
}

static void check_page(const uint8_t *g)
{
    for (unsigned i = 0; i < PAGE; i++)
        if (g[i] != (i < HALF ? 0xa5 : 0x5a))
            fail_msg("page byte %u is %#x", i, g[i]);
}

/* One test's connections and DMA page closed, its server stopped. */
static void end_test(int owner, int obs, uint8_t *g, int mfd)
{
    close(obs);
    close(owner);
    munmap(g, PAGE);
    close(mfd);
    finish();
}

/* DMA_UNMAP waits for the worker; the request after it is answered after it; observers go on. */
static void test_unmap_waits_for_the_worker(void **st)
{
    (void)st;
    start(true);
    int owner = connect_as(Q.path, NULL), obs = connect_as(Q.mgmt, "observer"), mfd;
    uint8_t *g = map_page(owner, &mfd);
    start_dma(owner);
    uint8_t b[128];
    size_t n = mk_unmap(b, 20);
    n += mk_region(b + n, 21, UFIO_PCI_CONFIG_REGION, false, 0, 0);
    send_buf(owner, b, n);
    assert_true(WAIT_FOR(Q.quiesces == 1));
    for (int i = 0; i < 3; i++)
        observer_round_trip(obs);
    assert_true(nothing_to_read(owner));
    lock();
    assert_int_equal(Q.unmaps, 0);
    unlock();
    open_gate();
    expect_reply(owner, 20, 0);
    assert_int_equal(R.len, 24); /* the unmap echoes its request */
    expect_reply(owner, 21, 0);
    assert_int_equal(get16(R.payload + 16), 0x1234);
    lock();
    assert_int_equal(Q.unmaps, 1);
    assert_int_equal(Q.jobs_done, 1);
    assert_false(Q.broke);
    unlock();
    check_page(g); /* the whole DMA landed before the mapping went */
    /* gone now: the doorbell finds no mapping */
    send_buf(owner, b, mk_region(b, 22, UFIO_PCI_BAR0_REGION, true, 0, 1));
    expect_reply(owner, 22, EFAULT);
    end_test(owner, obs, g, mfd);
}

/* The worker fails the quiesce: the unmap fails with its errno, the mapping stays. */
static void test_quiesce_error_fails_the_unmap(void **st)
{
    (void)st;
    start(true);
    int owner = connect_as(Q.path, NULL), mfd;
    uint8_t *g = map_page(owner, &mfd);
    lock();
    Q.quiesce_err = -EAGAIN;
    unlock();
    start_dma(owner);
    uint8_t b[128];
    send_buf(owner, b, mk_unmap(b, 30));
    assert_true(WAIT_FOR(Q.quiesces == 1));
    open_gate();
    expect_reply(owner, 30, EAGAIN);
    lock();
    assert_int_equal(Q.unmaps, 0);
    Q.quiesce_err = 0;
    unlock();
    /* still mapped: the device writes through it again, and a quiet unmap (0 at once) removes it */
    memset(g, 0, PAGE);
    start_dma(owner);
    open_gate();
    assert_true(WAIT_FOR(Q.jobs_done == 2));
    check_page(g);
    send_buf(owner, b, mk_unmap(b, 31));
    expect_reply(owner, 31, 0);
    lock();
    assert_int_equal(Q.quiesces, 2);
    assert_int_equal(Q.unmaps, 1);
    unlock();
    /* the session went on: a second unmap finds nothing and quiesces nothing */
    send_buf(owner, b, mk_unmap(b, 32));
    expect_reply(owner, 32, ENOENT);
    lock();
    assert_int_equal(Q.quiesces, 2);
    unlock();
    close(owner);
    munmap(g, PAGE);
    close(mfd);
    finish();
}

/*
 * A controller's stop waits for the worker; meanwhile the owner's state
 * requests are held (its queries answered), the observer served; then the
 * stop is answered, and the owner's held write when the device runs again.
 */
static void test_migration_stop_waits_for_the_worker(void **st)
{
    (void)st;
    start(true);
    int owner = connect_as(Q.path, NULL), obs = connect_as(Q.mgmt, "observer");
    int ctl = connect_as(Q.mgmt, "controller"), mfd;
    uint8_t *g = map_page(owner, &mfd);
    start_dma(owner);
    uint8_t b[128];
    send_buf(ctl, b, mk_mig_state(b, 40, UFIO_MIG_STOP));
    assert_true(WAIT_FOR(Q.quiesces == 1));
    /* the owner's query goes on, its write (a doorbell could start DMA) waits */
    uint8_t info[16] = { 16 };
    send_buf(owner, b, mk(b, 41, VFIO_USER_DEVICE_GET_INFO, 0, info, sizeof(info)));
    expect_reply(owner, 41, 0);
    send_buf(owner, b, mk_region(b, 42, UFIO_PCI_BAR0_REGION, true, 4, 7));
    observer_round_trip(obs);
    assert_true(nothing_to_read(ctl));
    assert_true(nothing_to_read(owner));
    lock();
    assert_int_equal(Q.transitions, 0);
    unlock();
    open_gate();
    expect_reply(ctl, 40, 0);
    assert_int_equal(get32(R.payload + 8), UFIO_MIG_STOP);
    lock();
    assert_int_equal(Q.transitions, 1);
    assert_false(Q.broke);
    unlock();
    check_page(g);
    /* stopped by the controller: the owner's write is held still */
    observer_round_trip(obs);
    assert_true(nothing_to_read(owner));
    /* back to RUNNING: no quiesce on the way up, and the write is answered */
    send_buf(ctl, b, mk_mig_state(b, 43, UFIO_MIG_RUNNING));
    expect_reply(ctl, 43, 0);
    expect_reply(owner, 42, 0);
    lock();
    assert_int_equal(Q.quiesces, 1);
    assert_int_equal(Q.transitions, 2);
    unlock();
    close(ctl);
    end_test(owner, obs, g, mfd);
}

/* A second operation that needs a quiesce waits for the first to end, then gets its own. */
static void test_one_quiesce_at_a_time(void **st)
{
    (void)st;
    start(true);
    int owner = connect_as(Q.path, NULL), ctl = connect_as(Q.mgmt, "controller"), mfd;
    uint8_t *g = map_page(owner, &mfd);
    start_dma(owner);
    uint8_t b[128];
    send_buf(owner, b, mk_unmap(b, 90));
    assert_true(WAIT_FOR(Q.quiesces == 1));
    send_buf(ctl, b, mk_mig_state(b, 91, UFIO_MIG_STOP));
    uint8_t info[16] = { 16 };
    send_buf(ctl, b, mk(b, 92, VFIO_USER_DEVICE_GET_INFO, 0, info, sizeof(info)));
    /* the controller's stop is held (and its query after it): nothing read past it */
    assert_true(nothing_to_read(owner));
    lock();
    assert_int_equal(Q.quiesces, 1);
    unlock();
    open_gate();
    expect_reply(owner, 90, 0);
    expect_reply(ctl, 91, 0);
    expect_reply(ctl, 92, 0);
    lock();
    assert_int_equal(Q.quiesces, 2); /* the stop's own, answered 0: the worker was idle */
    assert_int_equal(Q.unmaps, 1);
    assert_int_equal(Q.transitions, 1);
    assert_false(Q.broke);
    unlock();
    check_page(g);
    close(ctl);
    close(owner);
    munmap(g, PAGE);
    close(mfd);
    finish();
}

/* The owner's own migration (QEMU's) and an unmap-all wait the same way, in order. */
static void test_owner_stop_and_unmap_all(void **st)
{
    (void)st;
    start(true);
    int owner = connect_as(Q.path, NULL), obs = connect_as(Q.mgmt, "observer"), mfd;
    uint8_t *g = map_page(owner, &mfd);
    start_dma(owner);
    uint8_t b[128], info[16] = { 16 };
    size_t n = mk_mig_state(b, 100, UFIO_MIG_STOP);
    n += mk(b + n, 101, VFIO_USER_DEVICE_GET_INFO, 0, info, sizeof(info));
    send_buf(owner, b, n);
    assert_true(WAIT_FOR(Q.quiesces == 1));
    observer_round_trip(obs);
    assert_true(nothing_to_read(owner)); /* not even the query after the stop */
    open_gate();
    expect_reply(owner, 100, 0);
    expect_reply(owner, 101, 0);
    lock();
    assert_int_equal(Q.transitions, 1);
    assert_false(Q.broke);
    unlock();
    check_page(g);
    /* back to RUNNING, another DMA, then DMA_UNMAP with the ALL flag */
    send_buf(owner, b, mk_mig_state(b, 102, UFIO_MIG_RUNNING));
    expect_reply(owner, 102, 0);
    memset(g, 0, PAGE);
    start_dma(owner);
    uint8_t u[24];
    put32(u, 24);
    put32(u + 4, 2); /* VFIO_DMA_UNMAP_FLAG_ALL */
    put64(u + 8, 0);
    put64(u + 16, 0);
    send_buf(owner, b, mk(b, 103, VFIO_USER_DMA_UNMAP, 0, u, 24));
    held_until_worker_done(owner, obs, 2, 103);
    lock();
    assert_int_equal(Q.unmaps, 1);
    assert_false(Q.broke);
    unlock();
    check_page(g);
    end_test(owner, obs, g, mfd);
}

/* DEVICE_RESET waits as well, and the reset callback sees the DMA done. */
static void test_reset_waits_for_the_worker(void **st)
{
    (void)st;
    start(true);
    int owner = connect_as(Q.path, NULL), obs = connect_as(Q.mgmt, "observer"), mfd;
    uint8_t *g = map_page(owner, &mfd);
    start_dma(owner);
    uint8_t b[64];
    send_buf(owner, b, mk(b, 50, VFIO_USER_DEVICE_RESET, 0, NULL, 0));
    held_until_worker_done(owner, obs, 1, 50);
    lock();
    assert_int_equal(Q.resets, 1);
    assert_false(Q.broke);
    unlock();
    check_page(g);
    end_test(owner, obs, g, mfd);
}

/* An owner gone with a DMA in flight: its mappings stay until the worker is done; the next owner waits. */
static void test_owner_gone_waits_for_the_worker(void **st)
{
    (void)st;
    start(true);
    int owner = connect_as(Q.path, NULL), obs = connect_as(Q.mgmt, "observer"), mfd;
    uint8_t *g = map_page(owner, &mfd);
    start_dma(owner);
    close(owner);
    assert_true(WAIT_FOR(Q.quiesces == 1));
    observer_round_trip(obs);
    lock();
    assert_int_equal(Q.unmaps, 0);
    assert_int_equal(Q.detaches, 0);
    unlock();
    /* the next owner's VERSION waits for the place */
    int next = raw_connect(Q.path);
    assert_true(next >= 0);
    uint8_t p[64], b[128];
    put16(p, 0);
    put16(p + 2, 0);
    static const char json[] = "{\"capabilities\":{}}";
    memcpy(p + 4, json, sizeof(json));
    send_buf(next, b, mk(b, 1, VFIO_USER_VERSION, 0, p, 4 + sizeof(json)));
    /* (the loop may not have read it yet: this check cannot fail falsely, the reply below is the proof) */
    observer_round_trip(obs);
    assert_true(nothing_to_read(next));
    open_gate();
    expect_reply(next, 1, 0);
    lock();
    assert_int_equal(Q.unmaps, 1);
    assert_int_equal(Q.detaches, 1);
    assert_false(Q.broke);
    unlock();
    check_page(g);
    close(next);
    close(obs);
    munmap(g, PAGE);
    close(mfd);
    finish();
}

/* Reads the old process's status word of a HANDOVER (docs/handover.md). */
static uint32_t handover_status(int ctl)
{
    struct pollfd p = { .fd = ctl, .events = POLLIN };
    assert_int_equal(poll(&p, 1, 5000), 1);
    uint32_t st = 0;
    assert_int_equal(read(ctl, &st, sizeof(st)), (ssize_t)sizeof(st));
    return st;
}

/*
 * The handover quiesces too: a quiesce answered later from another thread
 * (here the test's) with an error refuses the handover with that errno, and
 * the device serves on; one refused at once by the callback likewise.
 */
static void test_handover_waits_for_the_quiesce(void **st)
{
    (void)st;
    start(true);
    int owner = connect_as(Q.path, NULL), obs = connect_as(Q.mgmt, "observer");
    int ctl = connect_as(Q.mgmt, "controller");
    uint8_t b[128];
    send_buf(ctl, b, mk_mig_state(b, 80, UFIO_MIG_STOP_COPY));
    expect_reply(ctl, 80, 0);
    lock();
    assert_int_equal(Q.quiesces, 1); /* idle: answered 0 at once */
    Q.force = -EBUSY;
    unlock();
    send_buf(ctl, b, mk(b, 81, UFIO_CMD_HANDOVER, VFIO_USER_F_NO_REPLY, NULL, 0));
    assert_true(WAIT_FOR(Q.quiesces == 2));
    observer_round_trip(obs);
    assert_true(nothing_to_read(ctl));
    assert_int_equal(ufio_dev_quiesced(Q.dev, -EIO), 0);
    assert_int_equal(handover_status(ctl), EIO);
    assert_int_equal(ufio_dev_quiesced(Q.dev, 0), -EINVAL); /* once per -EBUSY */
    lock();
    Q.force = -EPERM;
    unlock();
    send_buf(ctl, b, mk(b, 82, UFIO_CMD_HANDOVER, VFIO_USER_F_NO_REPLY, NULL, 0));
    assert_int_equal(handover_status(ctl), EPERM);
    lock();
    assert_int_equal(Q.quiesces, 3);
    Q.force = 0;
    unlock();
    /* the device serves on: back to RUNNING (no quiesce on the way up), the owner's write answered */
    send_buf(owner, b, mk_region(b, 83, UFIO_PCI_BAR0_REGION, true, 4, 1));
    send_buf(ctl, b, mk_mig_state(b, 84, UFIO_MIG_RUNNING));
    expect_reply(ctl, 84, 0);
    expect_reply(owner, 83, 0);
    lock();
    assert_int_equal(Q.quiesces, 3);
    unlock();
    close(ctl);
    close(obs);
    close(owner);
    finish();
}

/* Without the callback nothing waits: the unmap goes at once (the worker's DMA is the device's business). */
static void test_no_callback_nothing_waits(void **st)
{
    (void)st;
    start(false);
    int owner = connect_as(Q.path, NULL), mfd;
    uint8_t *g = map_page(owner, &mfd);
    uint8_t b[64];
    send_buf(owner, b, mk_unmap(b, 60));
    expect_reply(owner, 60, 0);
    lock();
    assert_int_equal(Q.unmaps, 1);
    assert_int_equal(Q.quiesces, 0);
    unlock();
    assert_int_equal(ufio_dev_quiesced(Q.dev, 0), -EINVAL);
    close(owner);
    munmap(g, PAGE);
    close(mfd);
    finish();
}

/* A quiesce answered 0 goes on at once; ufio_dev_quiesced() with nothing waiting is refused. */
static void test_quiet_device_goes_at_once(void **st)
{
    (void)st;
    start(true);
    int owner = connect_as(Q.path, NULL), mfd;
    uint8_t *g = map_page(owner, &mfd);
    assert_int_equal(ufio_dev_quiesced(Q.dev, 0), -EINVAL);
    uint8_t b[64];
    send_buf(owner, b, mk_unmap(b, 70));
    expect_reply(owner, 70, 0);
    lock();
    assert_int_equal(Q.quiesces, 1);
    assert_int_equal(Q.unmaps, 1);
    unlock();
    close(owner);
    munmap(g, PAGE);
    close(mfd);
    finish();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unmap_waits_for_the_worker),
        cmocka_unit_test(test_quiesce_error_fails_the_unmap),
        cmocka_unit_test(test_migration_stop_waits_for_the_worker),
        cmocka_unit_test(test_one_quiesce_at_a_time),
        cmocka_unit_test(test_owner_stop_and_unmap_all),
        cmocka_unit_test(test_reset_waits_for_the_worker),
        cmocka_unit_test(test_owner_gone_waits_for_the_worker),
        cmocka_unit_test(test_handover_waits_for_the_quiesce),
        cmocka_unit_test(test_no_callback_nothing_waits),
        cmocka_unit_test(test_quiet_device_goes_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
