/*
 * The client library against the real sample server process, and against a
 * fake server that misbehaves.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <ufio/client.h>
#include <ufio/server.h>

#include "harness.h"

static const char *server_bin;

static int self_fd_count(void)
{
    struct srv me = { .pid = getpid() };
    return srv_fd_count(&me);
}

static struct ufio_client *attach(struct srv *s)
{
    struct ufio_client *c;
    assert_int_equal(ufio_client_connect(s->path, NULL, &c), 0);
    return c;
}

static void test_info_and_regions(void **st)
{
    struct srv s;
    assert_int_equal(srv_start(&s, server_bin, NULL), 0);
    struct ufio_client *c = attach(&s);
    struct ufio_client_caps caps = { .size = sizeof(caps) };
    ufio_client_get_caps(c, &caps);
    assert_int_equal(caps.major, 0);
    assert_true(caps.twin_socket);
    assert_true(caps.write_multiple);
    assert_int_equal(caps.max_data_xfer_size, 1 << 20);
    struct ufio_client_device_info di = { .size = sizeof(di) };
    assert_int_equal(ufio_client_device_info(c, &di), 0);
    assert_int_equal(di.num_regions, 9);
    assert_int_equal(di.flags, 3);
    struct ufio_client_region_info ri = { .size = sizeof(ri) };
    assert_int_equal(ufio_client_region_info(c, 2, &ri), 0);
    assert_int_equal(ri.region_size, 65536);
    assert_int_equal(ri.nr_areas, 1);
    assert_true(ri.fd >= 0);
    uint8_t *mem;
    assert_int_equal(ufio_client_region_mmap(c, 2, 0, 65536, (void **)&mem), 0);
    assert_int_equal(mem[77], 77);
    /* a large read across the BAR, compared with the mapping */
    static uint8_t buf[65536];
    assert_int_equal(ufio_client_region_read(c, 2, 0, buf, sizeof(buf)), 0);
    assert_memory_equal(buf, mem, sizeof(buf));
    memset(buf, 0xa5, sizeof(buf));
    assert_int_equal(ufio_client_region_write(c, 2, 0, buf, sizeof(buf)), 0);
    assert_int_equal(mem[65535], 0xa5);
    munmap(mem, 65536);
    /* a client that accepts only 4 KiB per message splits a 64 KiB write in 16 */
    struct ufio_client_opts small = { .size = sizeof(small), .max_data_xfer_size = 4096 };
    struct ufio_client *c2;
    ufio_client_destroy(c);
    assert_int_equal(ufio_client_connect(s.path, &small, &c2), 0);
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 11 + 3);
    assert_int_equal(ufio_client_region_write(c2, 2, 0, buf, sizeof(buf)), 0);
    static uint8_t back[65536];
    assert_int_equal(ufio_client_region_read(c2, 2, 0, back, sizeof(back)), 0);
    assert_memory_equal(back, buf, sizeof(buf));
    ufio_client_destroy(c2);
    c = attach(&s);
    assert_int_equal(ufio_client_region_info(c, 2, &ri), 0);
    /* beyond the region: refused locally */
    assert_int_equal(ufio_client_region_read(c, 2, 65536, buf, 4), -EINVAL);
    /* a server-side refusal comes back as its errno */
    uint32_t v = 0;
    assert_int_equal(ufio_client_region_read(c, 0, 2, &v, 4), -EINVAL);
    assert_int_equal(ufio_client_region_read(c, 0, 0, &v, 4), 0);
    assert_int_equal(v, 0x4f494655);
    /* posted writes are applied in order, batched as WRITE_MULTI */
    for (uint32_t i = 0; i < 500; i++)
        assert_int_equal(ufio_client_region_write_posted(c, 0, 8, &i, 4), 0);
    assert_int_equal(ufio_client_region_read(c, 0, 8, &v, 4), 0);
    assert_int_equal(v, 499);
    struct ufio_client_irq_info ii = { .size = sizeof(ii) };
    assert_int_equal(ufio_client_irq_info(c, 2, &ii), 0);
    assert_int_equal(ii.count, 4);
    assert_int_equal(ufio_client_reset(c), 0);
    uint8_t out[64];
    size_t olen;
    assert_int_equal(ufio_client_feature(c, UFIO_FEATURE_GET | 0x55, NULL, 0, out, sizeof(out), &olen), -ENOTSUP);
    ufio_client_destroy(c);
    assert_int_equal(srv_stop(&s), 0);
}

static void regw(struct ufio_client *c, uint64_t off, uint32_t v)
{
    assert_int_equal(ufio_client_region_write(c, 0, off, &v, 4), 0);
}

static uint32_t regr(struct ufio_client *c, uint64_t off)
{
    uint32_t v;
    assert_int_equal(ufio_client_region_read(c, 0, off, &v, 4), 0);
    return v;
}

static void enable_msix(struct ufio_client *c, int efd)
{
    assert_int_equal(ufio_client_irq_set_eventfds(c, 2, 0, 1, &efd), 0);
    uint8_t cfg[256];
    assert_int_equal(ufio_client_region_read(c, 7, 0, cfg, sizeof(cfg)), 0);
    unsigned off = cfg[0x34];
    while (off && cfg[off] != 0x11)
        off = cfg[off + 1];
    assert_true(off);
    uint16_t ctl = 0x8000;
    assert_int_equal(ufio_client_region_write(c, 7, off + 2, &ctl, 2), 0);
    uint32_t unmask = 0;
    assert_int_equal(ufio_client_region_write(c, 4, 12, &unmask, 4), 0);
}

static void run_dma(struct ufio_client *c, uint64_t src, uint64_t dst, uint32_t len)
{
    regw(c, 0x18, (uint32_t)src);
    regw(c, 0x1c, (uint32_t)(src >> 32));
    regw(c, 0x20, (uint32_t)dst);
    regw(c, 0x24, (uint32_t)(dst >> 32));
    regw(c, 0x28, len);
    regw(c, 0x2c, 1);
}

/* DMA through mapped memory and through messages (twin socket), with MSI-X. */
static void test_dma_and_interrupts(void **st)
{
    struct srv s;
    assert_int_equal(srv_start(&s, server_bin, NULL), 0);
    struct ufio_client *c = attach(&s);
    int mfd = memfd_create("guest", MFD_CLOEXEC);
    assert_int_equal(ftruncate(mfd, 1 << 20), 0);
    uint8_t *g = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    for (int i = 0; i < 8192; i++)
        g[i] = (uint8_t)(i ^ 0x33);
    assert_int_equal(ufio_client_dma_map(c, 0x10000000, 1 << 20, UFIO_DMA_READ | UFIO_DMA_WRITE, g, mfd, 0), 0);
    static uint8_t plain[1 << 16]; /* no fd: the server must ask us by message */
    for (size_t i = 0; i < sizeof(plain); i++)
        plain[i] = (uint8_t)(i * 5);
    assert_int_equal(ufio_client_dma_map(c, 0x20000000, sizeof(plain), UFIO_DMA_READ | UFIO_DMA_WRITE, plain, -1, 0), 0);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    enable_msix(c, efd);

    run_dma(c, 0x10000000, 0x10080000, 8192);
    assert_int_equal(regr(c, 0x30), 1);
    for (int i = 0; i < 8192; i++)
        assert_int_equal(g[0x80000 + i], (uint8_t)(i ^ 0x33) ^ 0x5a);
    assert_true(ufio_client_irq_wait(efd, 2000) > 0);

    /* message-based: source in fd-less memory, destination in the other half */
    run_dma(c, 0x20000000, 0x20008000, 0x8000);
    assert_int_equal(regr(c, 0x30), 1);
    for (int i = 0; i < 0x8000; i++)
        assert_int_equal(plain[0x8000 + i], (uint8_t)(i * 5) ^ 0x5a);
    assert_true(ufio_client_irq_wait(efd, 2000) > 0);
    /* DMA outside what we mapped is refused by us and reported by the device */
    run_dma(c, 0x30000000, 0x20008000, 16);
    assert_int_equal(regr(c, 0x30), 0x80000000u | EFAULT);

    assert_int_equal(ufio_client_dma_unmap(c, 0x20000000, sizeof(plain)), 0);
    assert_int_equal(ufio_client_dma_unmap(c, 0x20000000, sizeof(plain)), -ENOENT);
    ufio_client_destroy(c);
    close(efd);
    munmap(g, 1 << 20);
    close(mfd);
    assert_int_equal(srv_stop(&s), 0);
}

struct thr {
    struct ufio_client *c;
    int id;
    int errors;
};

static void *hammer(void *arg)
{
    struct thr *t = arg;
    uint8_t buf[256];
    for (int i = 0; i < 300; i++) {
        uint32_t off = (uint32_t)t->id * 4096;
        memset(buf, t->id + i, sizeof(buf));
        if (ufio_client_region_write(t->c, 2, off, buf, sizeof(buf)))
            t->errors++;
        uint8_t back[256];
        if (ufio_client_region_read(t->c, 2, off, back, sizeof(back)) || memcmp(buf, back, sizeof(buf)))
            t->errors++;
    }
    return NULL;
}

static void test_many_threads(void **st)
{
    struct srv s;
    assert_int_equal(srv_start(&s, server_bin, NULL), 0);
    struct ufio_client *c = attach(&s);
    pthread_t th[8];
    struct thr t[8];
    for (int i = 0; i < 8; i++) {
        t[i] = (struct thr){ c, i, 0 };
        pthread_create(&th[i], NULL, hammer, &t[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].errors, 0);
    }
    ufio_client_destroy(c);
    assert_int_equal(srv_stop(&s), 0);
}

/* The server is killed and restarted under a connected client. */
static void test_reconnect_after_server_restart(void **st)
{
    struct srv s;
    assert_int_equal(srv_start(&s, server_bin, NULL), 0);
    struct ufio_client *c = attach(&s);
    int mfd = memfd_create("guest", MFD_CLOEXEC);
    assert_int_equal(ftruncate(mfd, 1 << 16), 0);
    uint8_t *g = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    assert_int_equal(ufio_client_dma_map(c, 0x1000000, 1 << 16, 3, g, mfd, 0), 0);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    enable_msix(c, efd);

    kill(s.pid, SIGKILL);
    waitpid(s.pid, NULL, 0);
    s.pid = 0;
    close(s.out_fd);
    uint32_t v;
    assert_int_equal(ufio_client_region_read(c, 0, 0, &v, 4), -ENOTCONN);
    assert_false(ufio_client_connected(c));

    /* a new server process on the same path */
    const char *path_copy = strdup(s.path);
    struct srv s2;
    assert_int_equal(srv_start_at(&s2, server_bin, path_copy, NULL), 0);
    assert_int_equal(ufio_client_reconnect(c, 2000), 0);
    assert_true(ufio_client_connected(c));
    assert_int_equal(regr(c, 0), 0x4f494655);
    /* the DMA mapping and the MSI-X eventfd were re-established by the client */
    for (int i = 0; i < 4096; i++)
        g[i] = (uint8_t)i;
    /* MSI-X enable is device (config) state, which died with the old process */
    uint8_t cfg[256];
    assert_int_equal(ufio_client_region_read(c, 7, 0, cfg, sizeof(cfg)), 0);
    unsigned off = cfg[0x34];
    while (off && cfg[off] != 0x11)
        off = cfg[off + 1];
    uint16_t ctl = 0x8000;
    assert_int_equal(ufio_client_region_write(c, 7, off + 2, &ctl, 2), 0);
    uint32_t unmask = 0;
    assert_int_equal(ufio_client_region_write(c, 4, 12, &unmask, 4), 0);
    run_dma(c, 0x1000000, 0x1008000, 4096);
    assert_int_equal(regr(c, 0x30), 1);
    assert_int_equal(g[0x8000 + 10], 10 ^ 0x5a);
    assert_true(ufio_client_irq_wait(efd, 2000) > 0);
    ufio_client_destroy(c);
    close(efd);
    munmap(g, 1 << 16);
    close(mfd);
    free((void *)path_copy);
    assert_int_equal(srv_stop(&s2), 0);
}

/* ---- reconnect finds another device at the path ----------------------------------- */

static _Atomic unsigned impostor_maps;
static char refusal[1024];

static void impostor_dma_map(struct ufio_dev *dev, void *opaque, uint64_t iova, uint64_t len, uint32_t prot)
{
    impostor_maps++;
}

static int impostor_cfg(struct ufio_dev *dev, void *opaque, unsigned region, uint64_t off, void *buf, uint32_t len,
                        bool is_write)
{
    return 0;
}

static void keep_refusal(void *opaque, enum ufio_log_level level, const char *msg)
{
    if (strstr(msg, "refused"))
        snprintf(refusal, sizeof(refusal), "%s", msg);
}

static void *impostor_run(void *arg)
{
    ufio_dev_run(arg);
    return NULL;
}

static void kill_server(struct srv *s)
{
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
    close(s->out_fd);
}

/* The client was attached to ufio-sample; whatever else now serves the path (a device with other
 * ids, the sample with another descriptor) is refused with the reason, gets none of the client's
 * DMA mappings or eventfds, and the client can still come back to the right device afterwards. */
static void test_reconnect_refuses_another_device(void **st)
{
    struct srv s;
    assert_int_equal(srv_start(&s, server_bin, NULL), 0);
    char *path = strdup(s.path);
    struct ufio_client *c = attach(&s);
    int mfd = memfd_create("guest", MFD_CLOEXEC);
    assert_int_equal(ftruncate(mfd, 1 << 16), 0);
    uint8_t *g = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    assert_int_equal(ufio_client_dma_map(c, 0x1000000, 1 << 16, 3, g, mfd, 0), 0);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    enable_msix(c, efd);
    kill_server(&s);
    ufio_set_log(keep_refusal, NULL, UFIO_LOG_WARN);

    /* 1. another device (its own ids) listening on the same path, in this process */
    static const struct ufio_pci_ids other = { 0x5546, 0x0002, 0x5546, 0x0001, 0xff0000, 1 };
    const struct ufio_dev_ops ops = { .size = sizeof(ops), .dma_map = impostor_dma_map };
    struct ufio_dev *dev;
    assert_int_equal(ufio_dev_create("impostor", &other, &ops, NULL, &dev), 0);
    assert_int_equal(ufio_dev_add_bar(dev, 0, 4096, UFIO_BAR_MEM32, impostor_cfg, NULL), 0);
    assert_true(ufio_dev_add_msix(dev, 4, 4, 0, NULL, NULL) >= 0);
    assert_int_equal(ufio_dev_listen(dev, path), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, impostor_run, dev), 0);
    refusal[0] = 0;
    assert_int_equal(ufio_client_reconnect(c, 2000), -ENODEV);
    assert_non_null(strstr(refusal, "device_id 0x0001 -> 0x0002"));
    assert_non_null(strstr(refusal, "compatibility descriptor differs")); /* the sample's vs one made of ids */
    assert_int_equal(impostor_maps, 0); /* the guest's memory never reached it */
    assert_false(ufio_client_connected(c));
    uint32_t v;
    assert_int_equal(ufio_client_region_read(c, 0, 0, &v, 4), -ENOTCONN);
    ufio_dev_stop(dev);
    pthread_join(th, NULL);
    ufio_dev_destroy(dev);

    /* 2. the sample itself, but another software version: same ids, another descriptor */
    const char *newer[] = { "--sw-version=2.0.0", NULL };
    struct srv s2;
    assert_int_equal(srv_start_at(&s2, server_bin, path, newer), 0);
    refusal[0] = 0;
    assert_int_equal(ufio_client_reconnect(c, 2000), -ENODEV);
    assert_null(strstr(refusal, "device_id"));
    assert_non_null(strstr(refusal, "\"software_version\":\"1.0.0\""));
    assert_non_null(strstr(refusal, "\"software_version\":\"2.0.0\""));
    assert_false(ufio_client_connected(c));
    kill_server(&s2);
    ufio_set_log(NULL, NULL, UFIO_LOG_WARN);

    /* 3. the same device again: accepted, mappings and eventfds restored (DMA and an MSI-X interrupt work) */
    struct srv s3;
    assert_int_equal(srv_start_at(&s3, server_bin, path, NULL), 0);
    assert_int_equal(ufio_client_reconnect(c, 2000), 0);
    assert_true(ufio_client_connected(c));
    for (int i = 0; i < 4096; i++)
        g[i] = (uint8_t)(i * 7);
    /* MSI-X enable is config state, gone with the old process; the eventfd is the client's to restore */
    uint8_t cfg[256];
    assert_int_equal(ufio_client_region_read(c, 7, 0, cfg, sizeof(cfg)), 0);
    unsigned off = cfg[0x34];
    while (off && cfg[off] != 0x11)
        off = cfg[off + 1];
    uint16_t ctl = 0x8000;
    assert_int_equal(ufio_client_region_write(c, 7, off + 2, &ctl, 2), 0);
    uint32_t unmask = 0;
    assert_int_equal(ufio_client_region_write(c, 4, 12, &unmask, 4), 0);
    run_dma(c, 0x1000000, 0x1008000, 4096);
    assert_int_equal(regr(c, 0x30), 1);
    for (int i = 0; i < 4096; i++)
        assert_int_equal(g[0x8000 + i], (uint8_t)(i * 7) ^ 0x5a);
    assert_true(ufio_client_irq_wait(efd, 2000) > 0);
    ufio_client_destroy(c);
    close(efd);
    munmap(g, 1 << 16);
    close(mfd);
    free(path);
    assert_int_equal(srv_stop(&s3), 0);
}

/* ---- a fake server that misbehaves ------------------------------------------------ */

enum fake_mode { FAKE_SILENT, FAKE_WRONG_ID, FAKE_SHORT, FAKE_FDS, FAKE_DIE, FAKE_BIG_ERRNO, FAKE_BAD_MINOR,
                 FAKE_OVERSIZED };

struct fake {
    int fd;
    enum fake_mode mode;
};

static struct rmsg FR;

static void *fake_server(void *arg)
{
    struct fake *f = arg;
    /* VERSION */
    if (raw_recv(f->fd, &FR, 5000))
        return NULL;
    uint8_t rep[256];
    uint8_t v[64];
    put16(v, 0);
    put16(v + 2, f->mode == FAKE_BAD_MINOR ? 9 : 0);
    const char *j = "{\"capabilities\":{\"max_msg_fds\":8}}";
    memcpy(v + 4, j, strlen(j) + 1);
    size_t n = mk(rep, FR.id, 1, 1, v, 4 + strlen(j) + 1);
    raw_send(f->fd, rep, n, NULL, 0);
    for (;;) {
        if (raw_recv(f->fd, &FR, 5000))
            return NULL;
        uint8_t p[32] = { 0 };
        int efds[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };
        switch (f->mode) {
        case FAKE_SILENT:
            break;
        case FAKE_WRONG_ID:
            put32(p, 16);
            n = mk(rep, (uint16_t)(FR.id + 1), FR.cmd, 1, p, 16);
            raw_send(f->fd, rep, n, NULL, 0);
            break;
        case FAKE_SHORT:
            n = mk(rep, FR.id, FR.cmd, 1, p, 8);
            raw_send(f->fd, rep, n, NULL, 0);
            break;
        case FAKE_FDS:
            put32(p, 16);
            put32(p + 8, 9);
            put32(p + 12, 5);
            n = mk(rep, FR.id, FR.cmd, 1, p, 16);
            raw_send(f->fd, rep, n, efds, 2);
            break;
        case FAKE_DIE:
            /* half a reply, then gone */
            n = mk_size(rep, FR.id, FR.cmd, 1, 32, p, 4);
            raw_send(f->fd, rep, n, NULL, 0);
            close(efds[0]);
            close(efds[1]);
            close(f->fd);
            return NULL;
        case FAKE_BIG_ERRNO:
            n = mk(rep, FR.id, FR.cmd, 0x21, NULL, 0);
            put32(rep + 12, 100000);
            raw_send(f->fd, rep, n, NULL, 0);
            break;
        case FAKE_BAD_MINOR:
            break;
        case FAKE_OVERSIZED:
            /* a reply claiming 1 GiB: framing is broken, the client must drop the connection */
            n = mk_size(rep, FR.id, FR.cmd, 1, 1u << 30, p, 16);
            raw_send(f->fd, rep, n, NULL, 0);
            break;
        }
        close(efds[0]);
        close(efds[1]);
    }
}

static void test_misbehaving_server(void **st)
{
    static const struct { enum fake_mode mode; int want; } cases[] = {
        { FAKE_SILENT, -ETIMEDOUT },
        { FAKE_WRONG_ID, -ETIMEDOUT },
        { FAKE_SHORT, -EPROTO }, /* shorter than the command table says a reply is */
        { FAKE_FDS, -EPROTO },
        { FAKE_DIE, -ENOTCONN },
        { FAKE_BIG_ERRNO, -EPROTO },
        { FAKE_OVERSIZED, -ENOTCONN },
    };
    int base = self_fd_count();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        struct fake f = { sv[1], cases[i].mode };
        pthread_t th;
        pthread_create(&th, NULL, fake_server, &f);
        struct ufio_client_opts o = { .size = sizeof(o), .timeout_ms = 300, .no_twin_socket = true };
        struct ufio_client *c;
        assert_int_equal(ufio_client_attach_fd(sv[0], &o, &c), 0);
        struct ufio_client_device_info di = { .size = sizeof(di) };
        int err = ufio_client_device_info(c, &di);
        if (err != cases[i].want)
            fprintf(stderr, "mode %d: got %d want %d\n", cases[i].mode, err, cases[i].want);
        assert_int_equal(err, cases[i].want);
        ufio_client_destroy(c);
        shutdown(sv[1], SHUT_RDWR);
        pthread_join(th, NULL);
        if (cases[i].mode != FAKE_DIE)
            close(sv[1]);
    }
    /* a reply minor above ours is refused at connect */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct fake f = { sv[1], FAKE_BAD_MINOR };
    pthread_t th;
    pthread_create(&th, NULL, fake_server, &f);
    struct ufio_client *c;
    struct ufio_client_opts o = { .size = sizeof(o), .timeout_ms = 300 };
    assert_int_equal(ufio_client_attach_fd(sv[0], &o, &c), -EPROTO);
    shutdown(sv[1], SHUT_RDWR);
    pthread_join(th, NULL);
    close(sv[1]);
    /* every fd the fake sent was closed */
    assert_int_equal(self_fd_count(), base);
}

/* A one-shot go signal from the test thread to a fake server thread (a handshake, not a pause). */
static int go_pipe[2] = { -1, -1 };

static void go_open(void)
{
    assert_int_equal(pipe2(go_pipe, O_CLOEXEC), 0);
}

static void go_signal(void)
{
    assert_int_equal(write(go_pipe[1], "g", 1), 1);
}

/* In the fake server: waits up to 5 s for go_signal(); false on timeout. */
static bool go_wait(void)
{
    struct pollfd p = { .fd = go_pipe[0], .events = POLLIN };
    char c;
    return poll(&p, 1, 5000) == 1 && read(go_pipe[0], &c, 1) == 1;
}

static void go_close(void)
{
    close(go_pipe[0]);
    close(go_pipe[1]);
    go_pipe[0] = go_pipe[1] = -1;
}

/* ---- big REGION_READ replies received straight into the caller's buffer ---------- */

static void *bigread_server(void *arg)
{
    int fd = *(int *)arg;
    static struct rmsg R;
    if (raw_recv(fd, &R, 5000))
        return NULL;
    uint8_t v[64];
    put16(v, 0);
    put16(v + 2, 0);
    const char *j = "{\"capabilities\":{\"max_msg_fds\":8}}";
    memcpy(v + 4, j, strlen(j) + 1);
    static uint8_t rep[16 + 16 + 65536];
    size_t n = mk(rep, R.id, 1, 1, v, 4 + strlen(j) + 1);
    raw_send(fd, rep, n, NULL, 0);
    for (int step = 0; step < 3; step++) {
        if (raw_recv(fd, &R, 5000) || R.cmd != 9 || R.len != 16)
            return NULL;
        uint32_t count = get32(R.payload + 12);
        uint8_t body[16 + 65536];
        memcpy(body, R.payload, 16);
        memset(body + 16, 0x11 * (step + 1), count);
        if (step == 0)
            put64(body, get64(R.payload) + 4096); /* a head that is not the echo of the request */
        n = mk(rep, R.id, 9, 1, body, 16 + count);
        if (step == 1) {
            /* part of the reply; the rest only once the client has given up on it */
            raw_send(fd, rep, 20000, NULL, 0);
            if (!go_wait())
                return NULL;
            raw_send(fd, rep + 20000, n - 20000, NULL, 0);
        } else {
            raw_send(fd, rep, n, NULL, 0);
        }
    }
    return NULL;
}

static void test_big_read_replies(void **st)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    go_open();
    pthread_t th;
    pthread_create(&th, NULL, bigread_server, &sv[1]);
    struct ufio_client_opts o = { .size = sizeof(o), .timeout_ms = 1000, .no_twin_socket = true };
    struct ufio_client *c;
    assert_int_equal(ufio_client_attach_fd(sv[0], &o, &c), 0);
    static uint8_t buf[65536], zero[65536];
    /* a reply whose head does not echo the request never reaches the buffer */
    assert_int_equal(ufio_client_region_read(c, 2, 0, buf, sizeof(buf)), -EINVAL);
    assert_memory_equal(buf, zero, sizeof(buf));
    /* a reply cut short by our timeout: what arrives later is dropped, not written */
    assert_int_equal(ufio_client_region_read(c, 2, 0, buf, sizeof(buf)), -ETIMEDOUT);
    go_signal(); /* now the rest of that reply arrives */
    uint32_t v = 0;
    assert_int_equal(ufio_client_region_read(c, 2, 0, &v, 4), 0); /* reads past the rest of it */
    assert_int_equal(v, 0x33333333);
    assert_int_equal(buf[0], 0x22);
    assert_memory_equal(buf + 32768, zero, 32768);
    assert_true(ufio_client_connected(c));
    ufio_client_destroy(c);
    pthread_join(th, NULL);
    close(sv[1]);
    go_close();
}

/* ---- an unmap while a DMA_WRITE is being received into that memory ---------------- */

struct unmap_race {
    int fd;              /* the fake server's main socket */
    int twin_err;        /* the error the client answered the DMA_WRITE with */
    int step;            /* how far the script got */
    int got_cmd;
    int twin;            /* our end of the twin socket, closed by the test at the end */
};

static void *unmap_race_server(void *arg)
{
    struct unmap_race *u = arg;
    static struct rmsg R;
    static uint8_t rep[16 + 16 + 65536];
    int tw[2];
    if (raw_recv(u->fd, &R, 5000) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, tw))
        return NULL;
    uint8_t v[128];
    put16(v, 0);
    put16(v + 2, 0);
    const char *j = "{\"capabilities\":{\"max_msg_fds\":8,\"twin_socket\":{\"supported\":true,\"fd_index\":0}}}";
    memcpy(v + 4, j, strlen(j) + 1);
    size_t n = mk(rep, R.id, 1, 1, v, 4 + strlen(j) + 1);
    raw_send(u->fd, rep, n, &tw[1], 1);
    close(tw[1]);
    int twin = tw[0];
    u->twin = twin;
    if (raw_recv(u->fd, &R, 5000) || R.cmd != 2) /* DMA_MAP */
        goto out;
    n = mk(rep, R.id, 2, 1, NULL, 0);
    raw_send(u->fd, rep, n, NULL, 0);
    if (raw_recv(u->fd, &R, 5000) || R.cmd != 9) /* the REGION_READ whose reader will serve us */
        goto out;
    uint16_t read_id = R.id;
    /* a 64 KiB DMA_WRITE into the fd-less memory, first part only */
    uint8_t *b = rep + 16;
    put64(b, 0x30000000);
    put64(b + 8, 65536);
    memset(b + 16, 0xee, 65536);
    n = mk(rep, 500, 12 /* DMA_WRITE */, 0, b, 16 + 65536);
    raw_send(twin, rep, 20000, NULL, 0);
    u->step = 1;
    int rr0 = raw_recv(u->fd, &R, 5000);
    u->got_cmd = rr0 ? rr0 : R.cmd;
    if (rr0 || R.cmd != 3) /* the unmap, meanwhile */
        goto out;
    u->step = 2;
    uint8_t um[16];
    memcpy(um, rep, 16); /* keep the DMA_WRITE's header */
    size_t dn = n;
    n = mk(v, R.id, 3, 1, NULL, 0);
    raw_send(u->fd, v, n, NULL, 0);
    if (!go_wait()) /* the test's unmap returned: the client has forgotten the memory */
        goto out;
    memcpy(rep, um, 16);
    raw_send(twin, rep + 20000, dn - 20000, NULL, 0);
    if (!raw_recv(twin, &R, 5000) && R.cmd == 12 && R.id == 500)
        u->twin_err = (R.flags & 0x20) ? (int)R.err : 0;
    uint32_t word = 0x12345678;
    uint8_t rr[20];
    put64(rr, 0);
    put32(rr + 8, 0);
    put32(rr + 12, 4);
    memcpy(rr + 16, &word, 4);
    n = mk(rep, read_id, 9, 1, rr, 20);
    raw_send(u->fd, rep, n, NULL, 0);
    u->step = 3;
out:
    return NULL;
}

struct reader_arg {
    struct ufio_client *c;
    uint32_t v;
    int err;
};

static void *read_one(void *arg)
{
    struct reader_arg *a = arg;
    a->err = ufio_client_region_read(a->c, 0, 0, &a->v, 4);
    return NULL;
}

static void test_unmap_during_dma_write(void **st)
{
    int base = self_fd_count();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct unmap_race u = { .fd = sv[1], .twin_err = -1, .twin = -1 };
    go_open();
    pthread_t srv;
    pthread_create(&srv, NULL, unmap_race_server, &u);
    struct ufio_client_opts o = { .size = sizeof(o), .timeout_ms = 3000 };
    struct ufio_client *c;
    assert_int_equal(ufio_client_attach_fd(sv[0], &o, &c), 0);
    static uint8_t mem[65536]; /* no fd: the server must write it by message */
    assert_int_equal(ufio_client_dma_map(c, 0x30000000, sizeof(mem), UFIO_DMA_WRITE, mem, -1, 0), 0);
    struct reader_arg ra = { .c = c, .err = 1 };
    pthread_t rd;
    pthread_create(&rd, NULL, read_one, &ra);
    /* wait until the reader is receiving the DMA_WRITE into mem, then take mem back */
    volatile uint8_t *first = mem;
    for (int i = 0; i < 3000 && *first != 0xee; i++)
        usleep(1000);
    assert_int_equal(*first, 0xee);
    assert_int_equal(ufio_client_dma_unmap(c, 0x30000000, sizeof(mem)), 0);
    go_signal();
    pthread_join(rd, NULL);
    pthread_join(srv, NULL);
    if (ra.err)
        fprintf(stderr, "fake server stopped at step %d (got cmd %d)\n", u.step, u.got_cmd);
    assert_int_equal(ra.err, 0);
    assert_int_equal(ra.v, 0x12345678);
    /* what came before the unmap is in mem; nothing after it was written */
    assert_int_equal(mem[1000], 0xee);
    assert_int_equal(mem[30000], 0);
    assert_int_equal(mem[65535], 0);
    assert_int_equal(u.twin_err, EFAULT); /* and the server was told */
    ufio_client_destroy(c);
    close(u.twin);
    close(sv[1]);
    go_close();
    assert_int_equal(self_fd_count(), base);
}

/* The server side vanishes at every byte of its answers: the client errors cleanly. */
struct cutter {
    int fd;
    size_t cut;
};

static void *cut_server(void *arg)
{
    struct cutter *k = arg;
    static uint8_t out[512];
    size_t n = 0;
    static struct rmsg M;
    if (raw_recv(k->fd, &M, 2000))
        goto done;
    uint8_t v[64] = { 0 };
    const char *j = "{\"capabilities\":{\"max_msg_fds\":8}}";
    memcpy(v + 4, j, strlen(j) + 1);
    n += mk(out, M.id, 1, 1, v, 4 + strlen(j) + 1);
    size_t first = n;
    uint8_t info[16];
    put32(info, 16); put32(info + 4, 3); put32(info + 8, 9); put32(info + 12, 5);
    n += mk(out + n, 0, 4, 1, info, 16);
    size_t upto = k->cut < first ? k->cut : first;
    raw_send(k->fd, out, upto, NULL, 0);
    if (k->cut > first && raw_recv(k->fd, &M, 2000) == 0) {
        put16(out + first, M.id);
        raw_send(k->fd, out + first, k->cut - first, NULL, 0);
    }
done:
    close(k->fd);
    return NULL;
}

static void test_server_vanishes_at_every_byte(void **st)
{
    int base = self_fd_count();
    size_t total = 16 + 4 + strlen("{\"capabilities\":{\"max_msg_fds\":8}}") + 1 + 16 + 16;
    for (size_t cut = 0; cut <= total; cut++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        struct cutter k = { sv[1], cut };
        pthread_t th;
        pthread_create(&th, NULL, cut_server, &k);
        struct ufio_client_opts o = { .size = sizeof(o), .timeout_ms = 2000, .no_twin_socket = true };
        struct ufio_client *c;
        int err = ufio_client_attach_fd(sv[0], &o, &c);
        if (err == 0) {
            struct ufio_client_device_info di = { .size = sizeof(di) };
            err = ufio_client_device_info(c, &di);
            if (cut == total)
                assert_int_equal(err, 0); /* the whole conversation: it works */
            else
                assert_int_equal(err, -ENOTCONN);
            ufio_client_destroy(c);
        } else {
            assert_true(cut < total);
            assert_true(err == -ECONNRESET || err == -ENOTCONN || err == -EPROTO || err == -EPIPE);
        }
        pthread_join(th, NULL);
    }
    assert_int_equal(self_fd_count(), base);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s SERVER_BINARY\n", argv[0]);
        return 2;
    }
    server_bin = argv[1];
    signal(SIGPIPE, SIG_DFL); /* the library must never raise it */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info_and_regions),
        cmocka_unit_test(test_dma_and_interrupts),
        cmocka_unit_test(test_many_threads),
        cmocka_unit_test(test_reconnect_after_server_restart),
        cmocka_unit_test(test_reconnect_refuses_another_device),
        cmocka_unit_test(test_misbehaving_server),
        cmocka_unit_test(test_big_read_replies),
        cmocka_unit_test(test_unmap_during_dma_write),
        cmocka_unit_test(test_server_vanishes_at_every_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
