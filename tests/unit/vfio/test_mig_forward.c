/*
 * lib/vfio's migration forwarding, without hardware: a fake VFIO driver
 * behind the ioctl layer plays a variant driver with migration v2, and a
 * real libufio server (on a thread) and client drive it: every arc becomes
 * one MIG_DEVICE_STATE SET, the data fd carries the driver's bytes both ways
 * (framed and verified by ufio in between), MIG_DATA_SIZE answers the
 * stop-copy estimate, and a refused arc leaves the state where VFIO says.
 * Also the plugin binding's checks of a misbehaving plugin.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include <ufio/client.h>
#include <ufio/migration.h>
#include <ufio/passthrough.h>
#include <ufio/server.h>

#include "vfio/vfio_internal.h"

/* ---- the fake driver --------------------------------------------------------- */

struct fake {
    uint64_t mig_flags;
    unsigned state;
    unsigned arcs[32];
    unsigned narcs;
    int refuse_to;              /* a state SET to it fails with -EBUSY; -1 none */
    uint8_t payload[3000];      /* what the "device" saves */
    int resume_rd;              /* our end of the resuming data fd */
    uint8_t got[8192];
    size_t got_len;
    int fd_closes;
    /* dirty tracking */
    int log_refuse;             /* errno for DMA_LOGGING_START, 0 = accept */
    bool logging;
    uint64_t log_pgsize, log_iova, log_len;
    uint32_t log_nranges;
    unsigned reports;
};

static int fake_ioctl(void *ctx, int fd, unsigned long req, void *arg)
{
    struct fake *f = ctx;
    if (req != VFIO_DEVICE_FEATURE)
        return -ENOTTY;
    struct vfio_device_feature *df = arg;
    unsigned index = df->flags & VFIO_DEVICE_FEATURE_MASK;
    if (index == VFIO_DEVICE_FEATURE_MIGRATION && (df->flags & VFIO_DEVICE_FEATURE_GET)) {
        memcpy(df->data, &f->mig_flags, 8);
        return 0;
    }
    if (index == UFIO_VFIO_FEATURE_MIG_DATA_SIZE && (df->flags & VFIO_DEVICE_FEATURE_GET)) {
        uint64_t n = sizeof(f->payload);
        memcpy(df->data, &n, 8);
        return 0;
    }
    if (index == VFIO_DEVICE_FEATURE_DMA_LOGGING_START && (df->flags & VFIO_DEVICE_FEATURE_SET)) {
        if (f->log_refuse)
            return -f->log_refuse;
        struct vfio_device_feature_dma_logging_control c;
        memcpy(&c, df->data, sizeof(c));
        const struct vfio_device_feature_dma_logging_range *r = (const void *)(uintptr_t)c.ranges;
        f->log_pgsize = c.page_size;
        f->log_nranges = c.num_ranges;
        f->log_iova = r[0].iova;
        f->log_len = r[0].length;
        f->logging = true;
        return 0;
    }
    if (index == VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP && (df->flags & VFIO_DEVICE_FEATURE_SET)) {
        f->logging = false;
        return 0;
    }
    if (index == VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT && (df->flags & VFIO_DEVICE_FEATURE_GET)) {
        if (!f->logging)
            return -EINVAL;
        struct vfio_device_feature_dma_logging_report r;
        memcpy(&r, df->data, sizeof(r));
        f->reports++;
        ((uint64_t *)(uintptr_t)r.bitmap)[0] |= 2; /* the device wrote the range's second page */
        return 0;
    }
    if (index == VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE && (df->flags & VFIO_DEVICE_FEATURE_SET)) {
        struct vfio_device_feature_mig_state st;
        memcpy(&st, df->data, sizeof(st));
        if ((int)st.device_state == f->refuse_to)
            return -EBUSY;
        f->arcs[f->narcs++ % 32] = st.device_state;
        st.data_fd = -1;
        int p[2];
        if (st.device_state == UFIO_MIG_STOP_COPY) {
            /* the device's whole state, then EOF: the end of STOP_COPY */
            assert_int_equal(pipe(p), 0);
            assert_int_equal(write(p[1], f->payload, sizeof(f->payload)), sizeof(f->payload));
            close(p[1]);
            st.data_fd = p[0];
        } else if (st.device_state == UFIO_MIG_RESUMING) {
            /* non-blocking: the write end is open until the next arc returns */
            assert_int_equal(pipe2(p, O_NONBLOCK), 0);
            f->resume_rd = p[0];
            st.data_fd = p[1];
        } else if (f->state == UFIO_MIG_RESUMING && f->resume_rd >= 0) {
            /* leaving RESUMING: the driver has everything that was written */
            ssize_t n;
            while ((n = read(f->resume_rd, f->got + f->got_len, sizeof(f->got) - f->got_len)) > 0)
                f->got_len += (size_t)n;
            close(f->resume_rd);
            f->resume_rd = -1;
        }
        f->state = st.device_state;
        memcpy(df->data, &st, sizeof(st));
        return 0;
    }
    return -ENOTTY;
}

static int fake_close(void *ctx, int fd)
{
    struct fake *f = ctx;
    f->fd_closes++;
    return close(fd);
}

/* ---- a server with the forwarding, on its own thread ------------------------------- */

struct side {
    struct fake fake;
    struct mig_kernel mk;
    struct mp_binding b;
    struct ufio_dev *dev;
    pthread_t th;
    char path[108];
    struct ufio_client *c;
};

static void *run(void *arg)
{
    ufio_dev_run(((struct side *)arg)->dev);
    return NULL;
}

static void side_start(struct side *s, const char *tag)
{
    memset(s, 0, sizeof(*s));
    s->fake.mig_flags = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P;
    s->fake.state = UFIO_MIG_RUNNING;
    s->fake.refuse_to = -1;
    s->fake.resume_rd = -1;
    for (size_t i = 0; i < sizeof(s->fake.payload); i++)
        s->fake.payload[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(mig_kernel_probe(&s->mk, 99, fake_ioctl, NULL, fake_close, &s->fake), 0);
    assert_int_equal(s->mk.flags, UFIO_MIG_F_STOP_COPY | UFIO_MIG_F_P2P);
    char why[128];
    assert_int_equal(mp_bind(&s->b, mig_kernel_plugin(), why, sizeof(why)), 0);
    s->b.p.flags = s->mk.flags;
    s->b.state = &s->mk;
    s->b.inited = true;
    const struct ufio_pci_ids ids = { 0x1234, 0x5678, 0x1234, 0x5678, 0xff0000, 1 };
    /* one name for both ends: it is the device type the compatibility check compares */
    assert_int_equal(ufio_dev_create("fwd", &ids, NULL, NULL, &s->dev), 0);
    struct ufio_mig_ops ops;
    mp_mig_ops(&s->b, &ops);
    assert_int_equal(ufio_dev_setup_migration(s->dev, &ops, &s->b), 0);
    assert_int_equal(ufio_dev_set_dirty_sync(s->dev, mp_dirty_sync, &s->b), 0);
    assert_int_equal(ufio_dev_set_dirty_log(s->dev, mp_dirty_log, &s->b), 0);
    snprintf(s->path, sizeof(s->path), "/tmp/ufio-vfio-pci-unit-%s-%d.sock", tag, (int)getpid());
    assert_int_equal(ufio_dev_listen(s->dev, s->path), 0);
    assert_int_equal(pthread_create(&s->th, NULL, run, s), 0);
    assert_int_equal(ufio_client_connect(s->path, NULL, &s->c), 0);
}

static void side_stop(struct side *s)
{
    ufio_client_destroy(s->c);
    ufio_dev_stop(s->dev);
    pthread_join(s->th, NULL);
    ufio_dev_destroy(s->dev);
    mp_unload(&s->b);
}

static void test_forwarding(void **st)
{
    static struct side src, dst;
    side_start(&src, "src");
    side_start(&dst, "dst");
    uint64_t flags;
    assert_int_equal(ufio_client_mig_flags(src.c, &flags), 0);
    assert_int_equal(flags, UFIO_MIG_F_STOP_COPY | UFIO_MIG_F_P2P);

    /* RUNNING -> STOP_COPY is two arcs through RUNNING_P2P and STOP: three SETs */
    assert_int_equal(ufio_client_mig_set_state(src.c, UFIO_MIG_STOP_COPY, NULL), 0);
    assert_int_equal(src.fake.narcs, 3);
    assert_int_equal(src.fake.arcs[0], UFIO_MIG_RUNNING_P2P);
    assert_int_equal(src.fake.arcs[1], UFIO_MIG_STOP);
    assert_int_equal(src.fake.arcs[2], UFIO_MIG_STOP_COPY);
    uint64_t est = 0;
    assert_int_equal(ufio_client_mig_stop_copy_size(src.c, &est), 0);
    /* the driver's MIG_DATA_SIZE, plus ufio's framing */
    assert_true(est >= sizeof(src.fake.payload) && est < sizeof(src.fake.payload) + 4096);

    static uint8_t stream[65536];
    size_t len = 0, got;
    do {
        assert_int_equal(ufio_client_mig_data_read(src.c, stream + len, 1000, &got), 0);
        len += got;
    } while (got == 1000 && len + 1000 <= sizeof(stream));
    assert_true(len > sizeof(src.fake.payload)); /* the driver's bytes, framed */

    assert_int_equal(ufio_client_mig_set_state(dst.c, UFIO_MIG_STOP, NULL), 0);
    assert_int_equal(ufio_client_mig_set_state(dst.c, UFIO_MIG_RESUMING, NULL), 0);
    for (size_t off = 0; off < len; off += 777)
        assert_int_equal(ufio_client_mig_data_write(dst.c, stream + off, len - off < 777 ? len - off : 777), 0);
    assert_int_equal(ufio_client_mig_set_state(dst.c, UFIO_MIG_STOP, NULL), 0);
    /* the driver received exactly what the source driver produced */
    assert_int_equal(dst.fake.got_len, sizeof(src.fake.payload));
    assert_memory_equal(dst.fake.got, src.fake.payload, sizeof(src.fake.payload));
    assert_int_equal(dst.fake.state, UFIO_MIG_STOP);

    /* leaving STOP_COPY closes the saving data fd */
    int closes = src.fake.fd_closes;
    assert_int_equal(ufio_client_mig_set_state(src.c, UFIO_MIG_STOP, NULL), 0);
    assert_int_equal(src.fake.fd_closes, closes + 1);

    /* the driver refuses STOP -> RUNNING_P2P: the client gets its errno, the device stays in STOP */
    src.fake.refuse_to = UFIO_MIG_RUNNING_P2P;
    unsigned reached = 99;
    assert_int_equal(ufio_client_mig_set_state(src.c, UFIO_MIG_RUNNING, &reached), -EBUSY);
    assert_int_equal(reached, UFIO_MIG_STOP);
    assert_int_equal(src.fake.state, UFIO_MIG_STOP);
    src.fake.refuse_to = -1;
    assert_int_equal(ufio_client_mig_set_state(src.c, UFIO_MIG_RUNNING, NULL), 0);
    assert_int_equal(src.fake.state, UFIO_MIG_RUNNING);
    side_stop(&src);
    side_stop(&dst);
}

/* DMA logging: START with the client's mappings, REPORT merged into ufio's log, STOP. */
static void test_dirty_logging(void **st)
{
    static struct side s;
    side_start(&s, "log");
    int mfd = memfd_create("guest", 0);
    assert_int_equal(ftruncate(mfd, 16 * 4096), 0);
    void *local = mmap(NULL, 16 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    assert_true(local != MAP_FAILED);
    assert_int_equal(ufio_client_dma_map(s.c, 0x10000, 16 * 4096, UFIO_DMA_READ | UFIO_DMA_WRITE, local, mfd, 0), 0);

    s.fake.log_refuse = EOPNOTSUPP;
    assert_int_equal(ufio_client_dirty_log_start(s.c, 4096, NULL, 0), -EOPNOTSUPP);
    uint64_t bm[1] = { 0 };
    /* refused: no log on ufio's side either */
    assert_int_equal(ufio_client_dirty_log_report(s.c, 0x10000, 16 * 4096, 4096, bm), -EINVAL);

    s.fake.log_refuse = 0;
    assert_int_equal(ufio_client_dirty_log_start(s.c, 4096, NULL, 0), 0);
    assert_true(s.fake.logging);
    assert_int_equal(s.fake.log_pgsize, 4096);
    assert_int_equal(s.fake.log_nranges, 1);
    assert_int_equal(s.fake.log_iova, 0x10000);
    assert_int_equal(s.fake.log_len, 16 * 4096);
    assert_int_equal(ufio_client_dirty_log_report(s.c, 0x10000, 16 * 4096, 4096, bm), 0);
    assert_int_equal(s.fake.reports, 1);
    assert_int_equal(bm[0], 2); /* what the hardware reported, and nothing else */
    bm[0] = 0;
    /* a report of the second half: the driver's page 1 of that range is page 9 of the mapping */
    assert_int_equal(ufio_client_dirty_log_report(s.c, 0x10000 + 8 * 4096, 8 * 4096, 4096, bm), 0);
    assert_int_equal(bm[0], 2);
    assert_int_equal(ufio_client_dirty_log_stop(s.c), 0);
    assert_false(s.fake.logging);
    munmap(local, 16 * 4096);
    close(mfd);
    side_stop(&s);
}

static void test_probe_without_migration(void **st)
{
    struct fake f = { .mig_flags = 0, .refuse_to = -1, .resume_rd = -1 };
    struct mig_kernel k;
    /* a driver with the feature but without STOP_COPY cannot be offered */
    assert_int_equal(mig_kernel_probe(&k, 99, fake_ioctl, NULL, fake_close, &f), -ENOTSUP);
}

/* ---- the plugin binding ----------------------------------------------------------- */

static ssize_t bad_len;
static int nop_transition(void *s, unsigned a, unsigned b) { return 0; }
static ssize_t bad_save(void *s, void *buf, size_t len) { return bad_len; }
static int nop_load(void *s, const void *b, size_t l, bool last) { return 0; }
static int weird_transition(void *s, unsigned a, unsigned b) { return 12345; }

static void test_binding_checks(void **st)
{
    struct mp_binding b;
    char why[160];
    struct ufio_migration_plugin p = {
        .abi_version = UFIO_MP_ABI_VERSION, .size = sizeof(p), .name = "t", .flags = UFIO_MIG_F_STOP_COPY,
        .transition = nop_transition, .save = bad_save, .load = nop_load,
    };
    assert_int_equal(mp_bind(&b, &p, why, sizeof(why)), 0);
    assert_int_equal(mp_bind(&b, NULL, why, sizeof(why)), -EPROTO);
    struct ufio_migration_plugin q = p;
    q.abi_version = (2u << 16);
    assert_int_equal(mp_bind(&b, &q, why, sizeof(why)), -EPROTO);
    q = p;
    q.abi_version = UFIO_MP_ABI_VERSION + 7; /* a newer minor loads */
    assert_int_equal(mp_bind(&b, &q, why, sizeof(why)), 0);
    q = p;
    q.size = 16;
    assert_int_equal(mp_bind(&b, &q, why, sizeof(why)), -EPROTO);
    q = p;
    q.flags = UFIO_MIG_F_PRE_COPY;
    assert_int_equal(mp_bind(&b, &q, why, sizeof(why)), -EINVAL);
    q = p;
    q.flags |= 0x100;
    assert_int_equal(mp_bind(&b, &q, why, sizeof(why)), -EINVAL);
    q = p;
    q.load = NULL;
    assert_int_equal(mp_bind(&b, &q, why, sizeof(why)), -EINVAL);
    /* a plugin whose size ends before estimate: estimate and dirty_pages are NULL even if set */
    q = p;
    q.size = offsetof(struct ufio_migration_plugin, estimate);
    q.dirty_pages = (void *)1;
    assert_int_equal(mp_bind(&b, &q, why, sizeof(why)), 0);
    assert_null(b.p.dirty_pages);

    assert_int_equal(mp_errno(0), 0);
    assert_int_equal(mp_errno(-EAGAIN), -EAGAIN);
    assert_int_equal(mp_errno(7), -EIO);
    assert_int_equal(mp_errno(-5000), -EIO);

    /* save(): lengths past the buffer void the stream for good; errnos pass */
    assert_int_equal(mp_bind(&b, &p, why, sizeof(why)), 0);
    struct ufio_mig_ops ops;
    mp_mig_ops(&b, &ops);
    uint8_t buf[64];
    bad_len = 64;
    assert_int_equal(ops.save(NULL, &b, buf, sizeof(buf)), 64);
    bad_len = -EAGAIN;
    assert_int_equal(ops.save(NULL, &b, buf, sizeof(buf)), -EAGAIN);
    bad_len = 65;
    assert_int_equal(ops.save(NULL, &b, buf, sizeof(buf)), -EIO);
    bad_len = 10;
    assert_int_equal(ops.save(NULL, &b, buf, sizeof(buf)), -EIO); /* still void */
    assert_int_equal(ops.transition(NULL, &b, UFIO_MIG_STOP_COPY, UFIO_MIG_STOP), 0);
    assert_int_equal(ops.save(NULL, &b, buf, sizeof(buf)), 10); /* a new stream */
    p.transition = weird_transition;
    assert_int_equal(mp_bind(&b, &p, why, sizeof(why)), 0);
    mp_mig_ops(&b, &ops);
    assert_int_equal(ops.transition(NULL, &b, UFIO_MIG_RUNNING, UFIO_MIG_STOP), -EIO);
}

/* Loading shared objects: the edu plugin, a file that is none, a library without the entry point. */
static const char *edu_so, *lib_so;

static void test_loading(void **st)
{
    if (!edu_so)
        skip();
    struct mp_binding b = { 0 };
    char why[256];
    assert_int_equal(mp_load(&b, edu_so, why, sizeof(why)), 0);
    assert_string_equal(b.p.name, "edu");
    assert_int_equal(b.p.flags, UFIO_MIG_F_STOP_COPY);
    assert_non_null(b.p.init);
    assert_null(b.p.dirty_pages);
    /* its init refuses a device that is not an edu, before touching it */
    struct ufio_mp_host h = { .abi_version = UFIO_MP_ABI_VERSION, .size = sizeof(h), .vendor_id = 0x8086,
                              .device_id = 0x1234, .region_read = (void *)1, .region_write = (void *)1,
                              .dma_alloc = (void *)1 };
    void *state = NULL;
    assert_int_equal(b.p.init(&h, &state), -ENODEV);
    mp_unload(&b);
    assert_int_equal(mp_load(&b, "/nonexistent/plugin.so", why, sizeof(why)), -ENOENT);
    assert_int_equal(mp_load(&b, lib_so, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, UFIO_MIGRATION_PLUGIN_SYMBOL));
}

int main(int argc, char **argv)
{
    edu_so = argc > 1 ? argv[1] : NULL;
    lib_so = argc > 2 ? argv[2] : NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forwarding),
        cmocka_unit_test(test_dirty_logging),
        cmocka_unit_test(test_probe_without_migration),
        cmocka_unit_test(test_binding_checks),
        cmocka_unit_test(test_loading),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
