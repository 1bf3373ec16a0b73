/* The harness's ufio-client helpers (tests/integration/harness.h): they assert with cmocka. */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <ufio/client.h>
#include <ufio/migration.h>

#include "harness.h"

/* ---- ufio clients on a device ----------------------------------------------------- */

struct ufio_client *t_connect(const char *path, unsigned role)
{
    struct ufio_client_opts o = { .size = sizeof(o), .role = role };
    struct ufio_client *c = NULL;
    int err = ufio_client_connect(path, &o, &c);
    if (err)
        print_error("connect %s role %u: %s\n", path, role, strerror(-err));
    assert_int_equal(err, 0);
    return c;
}

struct ufio_client *t_owner(const struct srv *s)
{
    return t_connect(s->path, UFIO_ROLE_DEFAULT);
}

void t_w32(struct ufio_client *c, unsigned region, uint64_t off, uint32_t v)
{
    assert_int_equal(ufio_client_region_write(c, region, off, &v, 4), 0);
}

uint32_t t_r32(struct ufio_client *c, unsigned region, uint64_t off)
{
    uint32_t v = 0;
    assert_int_equal(ufio_client_region_read(c, region, off, &v, 4), 0);
    return v;
}

unsigned t_state(struct ufio_client *c)
{
    unsigned s = 99;
    assert_int_equal(ufio_client_mig_get_state(c, &s), 0);
    return s;
}

unsigned t_wait_state(struct ufio_client *c, unsigned want, int ms)
{
    double end = t_now_ms() + ms;
    unsigned s;
    while ((s = t_state(c)) != want && t_now_ms() < end)
        poll(NULL, 0, 1);
    return s;
}

uint64_t t_digest(struct ufio_client *c)
{
    uint32_t lo = t_r32(c, 0, 0x38); /* computes; HI is the other half of that one */
    return lo | (uint64_t)t_r32(c, 0, 0x3c) << 32;
}

double t_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- a busy owner ----------------------------------------------------------------- */

enum { DMA_SRC_LO = 0x18, DMA_SRC_HI = 0x1c, DMA_DST_LO = 0x20, DMA_DST_HI = 0x24, DMA_LEN = 0x28, DMA_CMD = 0x2c,
       DMA_STATUS = 0x30 };
#define BUSY_IOVA 0x10000000ull
#define BUSY_MEM 8192u

void t_busy_init(struct t_busy *b, struct ufio_client *owner)
{
    memset(b, 0, sizeof(*b));
    b->c = owner;
    b->mfd = memfd_create("t_busy", MFD_CLOEXEC);
    assert_true(b->mfd >= 0);
    assert_int_equal(ftruncate(b->mfd, BUSY_MEM), 0);
    b->mem = mmap(NULL, BUSY_MEM, PROT_READ | PROT_WRITE, MAP_SHARED, b->mfd, 0);
    assert_true(b->mem != MAP_FAILED);
    for (unsigned i = 0; i < BUSY_MEM / 2; i++)
        b->mem[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(ufio_client_dma_map(owner, BUSY_IOVA, BUSY_MEM, UFIO_DMA_READ | UFIO_DMA_WRITE, b->mem, b->mfd, 0),
                     0);
    t_w32(owner, 0, DMA_SRC_LO, (uint32_t)BUSY_IOVA);
    t_w32(owner, 0, DMA_SRC_HI, (uint32_t)(BUSY_IOVA >> 32));
    t_w32(owner, 0, DMA_DST_LO, (uint32_t)(BUSY_IOVA + BUSY_MEM / 2));
    t_w32(owner, 0, DMA_DST_HI, (uint32_t)(BUSY_IOVA >> 32));
    t_w32(owner, 0, DMA_LEN, BUSY_MEM / 2);
    assert_int_equal(ufio_client_region_read(owner, 2, T_BUSY_OFF, b->shadow, sizeof(b->shadow)), 0);
}

/* One DMA command and its status; *in_write: the command's write was what failed. */
static int busy_dma(struct t_busy *b, bool *in_write)
{
    uint32_t one = 1, status = 0;
    *in_write = true;
    atomic_fetch_add(&b->issued, 1);
    int err = ufio_client_region_write(b->c, 0, DMA_CMD, &one, 4);
    atomic_fetch_add(&b->answered, 1);
    if (err)
        return err;
    atomic_fetch_add(&b->dmas, 1);
    *in_write = false;
    atomic_fetch_add(&b->issued, 1);
    err = ufio_client_region_read(b->c, 0, DMA_STATUS, &status, 4);
    atomic_fetch_add(&b->answered, 1);
    return err ? err : status == 1 ? 0 : -EIO;
}

static void *busy_fn(void *arg)
{
    struct t_busy *b = arg;
    while (!atomic_load(&b->stop)) {
        unsigned long n = atomic_load(&b->rounds);
        unsigned i = (unsigned)(n % (T_BUSY_WIN / 4));
        uint32_t v = (uint32_t)n * 2654435761u ^ 0xa5a5a5a5u, back = 0;
        bool in_write = true;
        atomic_fetch_add(&b->issued, 1);
        int err = ufio_client_region_write(b->c, 2, T_BUSY_OFF + 4 * i, &v, 4);
        atomic_fetch_add(&b->answered, 1);
        if (!err) {
            b->shadow[i] = v;
            in_write = false;
            atomic_fetch_add(&b->issued, 1);
            err = ufio_client_region_read(b->c, 2, T_BUSY_OFF + 4 * i, &back, 4);
            atomic_fetch_add(&b->answered, 1);
            if (!err && back != v)
                err = -EIO;
        }
        if (!err && n % 8 == 7)
            err = busy_dma(b, &in_write);
        if (err) {
            atomic_store(&b->err_in_write, in_write);
            atomic_store(&b->err, err);
            break;
        }
        atomic_fetch_add(&b->rounds, 1);
    }
    return NULL;
}

void t_busy_start(struct t_busy *b)
{
    atomic_store(&b->stop, 0);
    atomic_store(&b->err, 0);
    atomic_store(&b->err_in_write, 0);
    assert_int_equal(pthread_create(&b->t, NULL, busy_fn, b), 0);
    b->running = true;
    unsigned long n0 = atomic_load(&b->rounds);
    assert_true(t_busy_wait(b, n0 + 10, 5000) >= n0 + 10);
}

unsigned long t_busy_wait_issued(struct t_busy *b, unsigned long n, int ms)
{
    double end = t_now_ms() + ms;
    unsigned long r;
    while ((r = atomic_load(&b->issued)) < n && !atomic_load(&b->err) && t_now_ms() < end)
        sched_yield();
    return r;
}

unsigned long t_busy_wait(struct t_busy *b, unsigned long n, int ms)
{
    double end = t_now_ms() + ms;
    unsigned long r;
    while ((r = atomic_load(&b->rounds)) < n && !atomic_load(&b->err) && t_now_ms() < end)
        sched_yield();
    return r;
}

int t_busy_stop(struct t_busy *b)
{
    if (b->running) {
        atomic_store(&b->stop, 1);
        pthread_join(b->t, NULL);
        b->running = false;
    }
    return atomic_load(&b->err);
}

void t_busy_fini(struct t_busy *b)
{
    t_busy_stop(b);
    munmap(b->mem, BUSY_MEM);
    close(b->mfd);
}

void t_busy_replay(const struct t_busy *b, struct t_busy *model)
{
    assert_int_equal(ufio_client_region_write(model->c, 2, T_BUSY_OFF, b->shadow, sizeof(b->shadow)), 0);
    memcpy(model->shadow, b->shadow, sizeof(model->shadow));
    while (atomic_load(&model->dmas) < atomic_load(&b->dmas))
    {
        bool in_write;
        assert_int_equal(busy_dma(model, &in_write), 0);
    }
}
