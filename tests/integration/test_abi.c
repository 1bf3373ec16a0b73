/*
 * The size-carrying structs (docs/abi.md), from the caller's side: a caller
 * built against an older, shorter struct than this library's keeps working
 * and the library reads and writes nothing past the caller's size; a caller
 * built against a newer, longer struct is refused when it sets members this
 * library does not know (-E2BIG) and served when they are zero.
 *
 * "Older struct" is made here the way a real old build would present it: the
 * same bytes up to the caller's size, followed by bytes the caller never
 * meant as members. Those bytes hold traps (a callback that records being
 * called, canaries), so a library that ignored the size fails the test.
 * A device in a thread of this process; our client over a socketpair.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <ufio/client.h>
#include <ufio/migrate.h>
#include <ufio/migration.h>
#include <ufio/server.h>

static const char *project_version;

static const struct ufio_pci_ids ids = { 0x5546, 0x00ab, 0x5546, 0x00ab, 0xff0000, 1 };

static int resets, attaches, trapped;

static int on_reset(struct ufio_dev *dev, void *opaque) { resets++; return 0; }
static void on_attach(struct ufio_dev *dev, void *opaque) { attaches++; }
static void trap(struct ufio_dev *dev, void *opaque) { trapped++; }
static void trap_map(struct ufio_dev *dev, void *opaque, uint64_t iova, uint64_t len, uint32_t prot) { trapped++; }
static void trap_unmap(struct ufio_dev *dev, void *opaque, uint64_t iova, uint64_t len) { trapped++; }
static void trap_cfg(struct ufio_dev *dev, void *opaque, uint32_t off, uint32_t len) { trapped++; }
static int trap_quiesce(struct ufio_dev *dev, void *opaque) { trapped++; return 0; }
static void trap_est(struct ufio_dev *dev, void *opaque, uint64_t *a, uint64_t *b, uint64_t *c) { trapped++; }

static void *serve(void *arg)
{
    ufio_dev_run(arg); /* returns when the --fd style client goes away */
    return NULL;
}

/* A device with the given ops, served in a thread; one client session that
 * resets the device and leaves. Returns once the device saw the client go. */
static void one_session(const struct ufio_dev_ops *ops)
{
    struct ufio_dev *dev;
    assert_int_equal(ufio_dev_create("abi", &ids, ops, NULL, &dev), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(ufio_dev_attach_fd(dev, sv[0]), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, serve, dev), 0);
    struct ufio_client *c;
    assert_int_equal(ufio_client_attach_fd(sv[1], NULL, &c), 0);
    assert_int_equal(ufio_client_reset(c), 0);
    ufio_client_destroy(c);
    pthread_join(th, NULL); /* the device has handled the disconnect (detach) */
    ufio_dev_destroy(dev);
}

/* Today's ops struct cut before detach: what a device built before detach
 * existed passes. The bytes after it hold a trap. */
static void test_dev_ops_older_caller(void **st)
{
    struct ufio_dev_ops buf = { .reset = on_reset, .attach = on_attach, .detach = trap };
    buf.size = offsetof(struct ufio_dev_ops, detach);
    resets = attaches = trapped = 0;
    one_session(&buf);
    assert_int_equal(resets, 1);
    assert_int_equal(attaches, 1);
    assert_int_equal(trapped, 0); /* beyond the caller's size: never read */

    /* the control: the same bytes with the full size do reach detach */
    buf.size = sizeof(buf);
    resets = attaches = trapped = 0;
    one_session(&buf);
    assert_int_equal(resets, 1);
    assert_int_equal(trapped, 1);

    /* an old build that knew only reset: the rest is all traps */
    struct ufio_dev_ops only_reset = { .reset = on_reset, .dma_map = trap_map, .dma_unmap = trap_unmap,
                                       .cfg_write = trap_cfg, .attach = trap, .detach = trap };
    only_reset.size = offsetof(struct ufio_dev_ops, dma_map);
    resets = attaches = trapped = 0;
    one_session(&only_reset);
    assert_int_equal(resets, 1);
    assert_int_equal(trapped, 0);
}

/* A device built before quiesce was added (its ops end at detach): the reset
 * quiesces nothing, the trap past its size is never called; the full size reaches it. */
static void test_dev_ops_before_quiesce(void **st)
{
    struct ufio_dev_ops buf = { .reset = on_reset, .quiesce = trap_quiesce };
    buf.size = offsetof(struct ufio_dev_ops, quiesce);
    resets = trapped = 0;
    one_session(&buf);
    assert_int_equal(resets, 1);
    assert_int_equal(trapped, 0);
    buf.size = sizeof(buf);
    resets = trapped = 0;
    one_session(&buf);
    assert_int_equal(resets, 1);
    assert_int_equal(trapped, 1); /* DEVICE_RESET asked it first */
}

/* A caller built against a newer header with one more callback. */
struct dev_ops_next {
    struct ufio_dev_ops today;
    void (*added_later)(struct ufio_dev *dev, void *opaque);
};

static void test_dev_ops_newer_caller(void **st)
{
    struct ufio_dev *dev;
    struct dev_ops_next n = { .today = { .reset = on_reset } };
    n.today.size = sizeof(n);
    /* the member this library does not know is unset: fine */
    resets = 0;
    one_session(&n.today);
    assert_int_equal(resets, 1);
    /* set: this library cannot honour it and says so */
    n.added_later = trap;
    assert_int_equal(ufio_dev_create("abi", &ids, &n.today, NULL, &dev), -E2BIG);
    /* a size that does not even cover `size` */
    struct ufio_dev_ops zero = { .reset = on_reset };
    assert_int_equal(ufio_dev_create("abi", &ids, &zero, NULL, &dev), -EINVAL);
    zero.size = sizeof(size_t) - 1;
    assert_int_equal(ufio_dev_create("abi", &ids, &zero, NULL, &dev), -EINVAL);
    /* only `size`: a device with no callbacks */
    zero.size = sizeof(size_t);
    assert_int_equal(ufio_dev_create("abi", &ids, &zero, NULL, &dev), 0);
    ufio_dev_destroy(dev);
}

static ssize_t mig_save(struct ufio_dev *dev, void *opaque, void *buf, size_t len) { return 0; }
static int mig_load(struct ufio_dev *dev, void *opaque, const void *buf, size_t len, bool last) { return 0; }

static void test_mig_ops(void **st)
{
    struct ufio_dev *dev;
    assert_int_equal(ufio_dev_create("abi", &ids, NULL, NULL, &dev), 0);
    /* estimate (the last member) beyond an older caller's size: a trap there is not read */
    struct ufio_mig_ops m = { .flags = UFIO_MIG_F_STOP_COPY, .save = mig_save, .load = mig_load,
                              .estimate = trap_est };
    m.size = 0;
    assert_int_equal(ufio_dev_setup_migration(dev, &m, NULL), -EINVAL);
    /* an older caller whose build ends before load: load reads as NULL, which is refused */
    m.size = offsetof(struct ufio_mig_ops, load);
    assert_int_equal(ufio_dev_setup_migration(dev, &m, NULL), -EINVAL);
    struct { struct ufio_mig_ops today; uint64_t more; } next = { .today = m, .more = 1 };
    next.today.size = sizeof(next);
    assert_int_equal(ufio_dev_setup_migration(dev, &next.today, NULL), -E2BIG);
    m.size = offsetof(struct ufio_mig_ops, estimate);
    assert_int_equal(ufio_dev_setup_migration(dev, &m, NULL), 0);
    ufio_dev_destroy(dev);
}

static void test_limits(void **st)
{
    struct ufio_dev *dev;
    assert_int_equal(ufio_dev_create("abi", &ids, NULL, NULL, &dev), 0);
    struct ufio_dev_limits l = { .size = sizeof(l) };
    assert_int_equal(ufio_dev_get_limits(dev, &l), 0);
    assert_int_equal(l.max_dma_maps, 65535);
    assert_int_equal(l.max_mig_stream, 1ull << 30);
    l.max_mig_stream = 2ull << 30;
    assert_int_equal(ufio_dev_set_limits(dev, &l), 0);

    /* an older caller that knew nothing past reply_timeout_ms: its get writes
     * nothing further (canary), its set keeps max_mig_stream as it is */
    union { struct ufio_dev_limits l; uint8_t raw[sizeof(struct ufio_dev_limits)]; } old;
    memset(&old, 0xa5, sizeof(old));
    old.l.size = offsetof(struct ufio_dev_limits, max_mig_stream);
    assert_int_equal(ufio_dev_get_limits(dev, &old.l), 0);
    assert_int_equal(old.l.size, offsetof(struct ufio_dev_limits, max_mig_stream));
    assert_int_equal(old.l.max_dma_maps, 65535);
    for (size_t i = offsetof(struct ufio_dev_limits, max_mig_stream); i < sizeof(old); i++)
        assert_int_equal(old.raw[i], 0xa5);
    old.l.max_dma_maps = 77;
    assert_int_equal(ufio_dev_set_limits(dev, &old.l), 0); /* the 0xa5 bytes are not read */
    assert_int_equal(ufio_dev_get_limits(dev, &l), 0);
    assert_int_equal(l.max_dma_maps, 77);
    assert_int_equal(l.max_mig_stream, 2ull << 30);

    /* a newer caller: get leaves its extra member alone, set refuses it non-zero */
    struct { struct ufio_dev_limits l; uint64_t more; } next;
    memset(&next, 0xa5, sizeof(next));
    next.l.size = sizeof(next);
    assert_int_equal(ufio_dev_get_limits(dev, &next.l), 0);
    assert_int_equal(next.more, 0xa5a5a5a5a5a5a5a5ull);
    assert_int_equal(next.l.max_dma_maps, 77);
    next.more = 0;
    assert_int_equal(ufio_dev_set_limits(dev, &next.l), 0);
    next.more = 5;
    assert_int_equal(ufio_dev_set_limits(dev, &next.l), -E2BIG);
    l.size = 0;
    assert_int_equal(ufio_dev_get_limits(dev, &l), -EINVAL);
    assert_int_equal(ufio_dev_set_limits(dev, &l), -EINVAL);
    /* a size nobody set (stack garbage): refused before anything is read or written past it */
    l.size = (size_t)-1 / 2;
    assert_int_equal(ufio_dev_get_limits(dev, &l), -EINVAL);
    assert_int_equal(ufio_dev_set_limits(dev, &l), -EINVAL);
    struct ufio_dev *d2;
    struct ufio_dev_ops huge = { .size = 4097 };
    assert_int_equal(ufio_dev_create("abi", &ids, &huge, NULL, &d2), -EINVAL);
    ufio_dev_destroy(dev);
}

/* Client side: options in, caps/info out, areas through the accessor. */
static void test_client_structs(void **st)
{
    struct ufio_dev *dev;
    assert_int_equal(ufio_dev_create("abi", &ids, NULL, NULL, &dev), 0);
    assert_int_equal(ufio_dev_add_bar(dev, 2, 0x10000, UFIO_BAR_MEM32, NULL, NULL), 0);
    void *mem;
    assert_int_equal(ufio_dev_add_mmap_area(dev, 2, 0x1000, 0x2000, &mem), 0);
    assert_int_equal(ufio_dev_add_mmap_area(dev, 2, 0x8000, 0x1000, &mem), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);

    /* options from a newer build with an unknown option set: refused, fd closed */
    struct { struct ufio_client_opts o; uint64_t more; } next = { .o = { .timeout_ms = 1000 }, .more = 1 };
    next.o.size = sizeof(next);
    struct ufio_client *c;
    int probe = dup(sv[1]);
    assert_int_equal(ufio_client_attach_fd(sv[1], &next.o, &c), -E2BIG);
    assert_int_equal(fcntl(sv[1], F_GETFD), -1); /* taken over and closed */
    close(probe);
    close(sv[0]);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(ufio_dev_attach_fd(dev, sv[0]), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, serve, dev), 0);
    /* an older build's options that end before max_data_xfer_size; the bytes
     * after hold a tiny max_data_xfer_size that must not be taken */
    struct ufio_client_opts o = { .timeout_ms = 2000, .max_data_xfer_size = 4096 };
    o.size = offsetof(struct ufio_client_opts, max_data_xfer_size);
    assert_int_equal(ufio_client_attach_fd(sv[1], &o, &c), 0);

    union { struct ufio_client_caps c; uint8_t raw[sizeof(struct ufio_client_caps)]; } caps;
    memset(&caps, 0xa5, sizeof(caps));
    caps.c.size = offsetof(struct ufio_client_caps, pgsizes);
    assert_int_equal(ufio_client_get_caps(c, &caps.c), 0);
    assert_int_equal(caps.c.max_data_xfer_size, 1u << 20); /* the default, not 4096 */
    assert_int_equal(caps.c.major, 0);
    for (size_t i = offsetof(struct ufio_client_caps, pgsizes); i < sizeof(caps); i++)
        assert_int_equal(caps.raw[i], 0xa5);
    caps.c.size = 0;
    assert_int_equal(ufio_client_get_caps(c, &caps.c), -EINVAL);

    struct { struct ufio_client_region_info ri; uint64_t more; } ri;
    memset(&ri, 0xa5, sizeof(ri));
    ri.ri.size = sizeof(ri);
    assert_int_equal(ufio_client_region_info(c, 2, &ri.ri), 0);
    assert_int_equal(ri.ri.region_size, 0x10000);
    assert_int_equal(ri.ri.nr_areas, 2);
    assert_int_equal(ri.more, 0xa5a5a5a5a5a5a5a5ull); /* a newer caller's member: not written */
    struct ufio_client_area areas[3];
    memset(areas, 0xa5, sizeof(areas));
    assert_int_equal(ufio_client_region_areas(c, 2, NULL, 0), 2);
    assert_int_equal(ufio_client_region_areas(c, 2, NULL, 1), -EINVAL);
    assert_int_equal(ufio_client_region_areas(c, 2, areas, 1), 2); /* the count, one filled */
    assert_int_equal(areas[0].offset, 0x1000);
    assert_int_equal(areas[0].size, 0x2000);
    assert_int_equal(areas[1].offset, 0xa5a5a5a5a5a5a5a5ull);
    assert_int_equal(ufio_client_region_areas(c, 2, areas, 3), 2);
    assert_int_equal(areas[1].offset, 0x8000);
    assert_int_equal(areas[1].size, 0x1000);
    assert_int_equal(areas[2].offset, 0xa5a5a5a5a5a5a5a5ull);

    struct ufio_client_device_info di = { .size = 0 };
    assert_int_equal(ufio_client_device_info(c, &di), -EINVAL);
    di.size = sizeof(di);
    assert_int_equal(ufio_client_device_info(c, &di), 0);
    assert_int_equal(di.num_regions, UFIO_PCI_NUM_REGIONS);
    struct ufio_client_irq_info ii = { .size = offsetof(struct ufio_client_irq_info, count), .count = 0x5a5a };
    assert_int_equal(ufio_client_irq_info(c, UFIO_IRQ_INTX, &ii), 0);
    assert_int_equal(ii.flags & 1, 1);
    assert_int_equal(ii.count, 0x5a5a); /* past the caller's size */

    ufio_client_destroy(c);
    pthread_join(th, NULL);
    ufio_dev_destroy(dev);
}

static void test_migrate_result(void **st)
{
    char err[8];
    struct ufio_migrate_opts o = { .size = sizeof(o), .src_path = "/nonexistent/ufio-release-abi-src",
                                   .dst_path = "/nonexistent/ufio-release-abi-dst", .timeout_ms = 50 };
    struct ufio_migrate_result r = { .size = sizeof(r), .error = err, .error_size = sizeof(err) };
    assert_true(ufio_migrate(&o, &r) < 0);
    assert_ptr_equal(r.error, err);
    assert_int_equal(strlen(err), sizeof(err) - 1); /* truncated, terminated */
    assert_memory_equal(err, "source ", 7);
    /* no buffer: the call still reports by its return value */
    struct ufio_migrate_result quiet = { .size = sizeof(quiet) };
    assert_true(ufio_migrate(&o, &quiet) < 0);
    assert_null(quiet.error);
    o.size = 0;
    assert_int_equal(ufio_migrate(&o, &r), -EINVAL);
    o.size = sizeof(o);
    r.size = 0;
    assert_int_equal(ufio_migrate(&o, &r), -EINVAL);
}

static void test_version(void **st)
{
    assert_int_equal(ufio_version(), UFIO_VERSION);
    assert_int_equal(UFIO_VERSION, UFIO_VERSION_NUM(UFIO_VERSION_MAJOR, UFIO_VERSION_MINOR, UFIO_VERSION_PATCH));
    assert_string_equal(ufio_version_string(), UFIO_VERSION_STRING);
    /* the header, the library and meson's project version agree */
    assert_string_equal(ufio_version_string(), project_version);
}

int main(int argc, char **argv)
{
    project_version = argc > 1 ? argv[1] : "?";
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dev_ops_older_caller),
        cmocka_unit_test(test_dev_ops_before_quiesce),
        cmocka_unit_test(test_dev_ops_newer_caller),
        cmocka_unit_test(test_mig_ops),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_client_structs),
        cmocka_unit_test(test_migrate_result),
        cmocka_unit_test(test_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
