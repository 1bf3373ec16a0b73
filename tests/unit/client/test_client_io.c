/*
 * lib/client's request/reply engine against a scripted server: every command
 * the client sends has its reply validated through the command table
 * (lib/proto/cmd.c). Per command: the well-formed reply is accepted, one a
 * byte short of the row's shortest, one past its longest and one with an fd more than
 * the reply may carry are refused with EPROTO, and the fds that came with
 * a refused reply are closed.
 */
#include <errno.h>
#include <dirent.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <ufio/client.h>

#include "proto/cmd.h"
#include "proto/cursor.h"
#include "proto/proto.h"

#define XFER 4096

enum mode { VALID, SHORT, LONG, EXTRA_FD, PADDED };

struct fake {
    int fd;
    enum mode mode;
    sem_t replied; /* posted once a reply is sent and the server's own fd copies are closed */
};

static int fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static int read_all(int fd, void *b, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, (uint8_t *)b + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static void send_msg(int fd, uint16_t id, uint16_t cmd, const uint8_t *p, size_t len, size_t nfds)
{
    uint8_t h[16];
    struct vfio_user_header hd = { .msg_id = id, .cmd = cmd, .msg_size = (uint32_t)(16 + len),
                                   .flags = VFIO_USER_F_TYPE_REPLY };
    ufio_hdr_encode(h, &hd);
    struct iovec iov[2] = { { h, 16 }, { (void *)p, len } };
    union { char b[CMSG_SPACE(sizeof(int) * 4)]; struct cmsghdr a; } cm;
    memset(&cm, 0, sizeof(cm));
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
    int fds[4];
    for (size_t i = 0; i < nfds; i++)
        fds[i] = eventfd(0, EFD_CLOEXEC);
    if (nfds) {
        mh.msg_control = cm.b;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    if (sendmsg(fd, &mh, MSG_NOSIGNAL) != (ssize_t)(16 + len))
        abort();
    for (size_t i = 0; i < nfds; i++)
        close(fds[i]);
}

/* The well-formed success reply to request q of cmd: its length in r. */
static size_t valid_reply(uint16_t cmd, const uint8_t *q, size_t ql, uint8_t *r, size_t cap)
{
    memset(r, 0, cap);
    switch (cmd) {
    case VFIO_USER_DEVICE_GET_INFO: {
        struct ufio_device_info i = { .argsz = 16, .num_regions = 9, .num_irqs = 5 };
        return (size_t)ufio_device_info_encode(&i, r, cap);
    }
    case VFIO_USER_DEVICE_GET_REGION_INFO: {
        static struct ufio_region_info ri;
        memset(&ri, 0, sizeof(ri));
        ri.index = ufio_ld32(q + 8);
        ri.size = 4096;
        ri.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
        return (size_t)ufio_region_info_encode(&ri, ufio_ld32(q), r, cap);
    }
    case VFIO_USER_DEVICE_GET_IRQ_INFO: {
        struct ufio_irq_info i = { .argsz = 16, .index = ufio_ld32(q + 8), .count = 1 };
        return (size_t)ufio_irq_info_encode(&i, r, cap);
    }
    case VFIO_USER_REGION_READ:
        memcpy(r, q, 16);
        return 16 + ufio_ld32(q + 12);
    case VFIO_USER_REGION_WRITE:
        memcpy(r, q, 16);
        return 16;
    case VFIO_USER_DMA_UNMAP:
        memcpy(r, q, 24);
        return 24;
    case VFIO_USER_DEVICE_FEATURE:
        memcpy(r, q, 8);
        return 16; /* 8 bytes of data */
    case VFIO_USER_MIG_DATA_READ:
        memcpy(r, q, 4);
        ufio_st32(r + 4, 4);
        return 12;
    default: /* DMA_MAP, SET_IRQS, RESET, MIG_DATA_WRITE: empty */
        (void)ql;
        return 0;
    }
}

static void *fake_server(void *arg)
{
    struct fake *f = arg;
    static uint8_t q[65536], r[2 * XFER + 256];
    for (;;) {
        uint8_t h[16];
        if (read_all(f->fd, h, 16))
            return NULL;
        struct vfio_user_header hd;
        if (ufio_hdr_decode(h, 16, sizeof(q), &hd) || read_all(f->fd, q, hd.msg_size - 16u))
            return NULL;
        size_t ql = hd.msg_size - 16u, n = valid_reply(hd.cmd, q, ql, r, sizeof(r));
        const struct ufio_cmd_desc *d = ufio_cmd_desc(hd.cmd);
        size_t nfds = 0;
        switch (f->mode) {
        case VALID:
            break;
        case SHORT: /* one byte short of the row's shortest reply */
            n = d->reply_min - 1u;
            break;
        case LONG: /* one byte past the row's longest reply */
            n = (d->reply_max == UFIO_CMD_LEN_XFER ? d->reply_min + XFER : d->reply_max) + 1;
            break;
        case EXTRA_FD:
            nfds = d->reply_fds + 1u;
            break;
        case PADDED:
            n += 12; /* as libvfio-user pads MIG_DATA_READ up to what was asked */
            break;
        }
        send_msg(f->fd, hd.msg_id, hd.cmd, r, n, nfds);
        sem_post(&f->replied);
    }
}

static const char version_json[] = "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":4096}}";

static struct ufio_client *start(struct fake *f, pthread_t *th)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uint8_t v[128];
    memset(v, 0, 4);
    memcpy(v + 4, version_json, sizeof(version_json));
    send_msg(sv[1], 0, VFIO_USER_VERSION, v, 4 + sizeof(version_json), 0);
    f->fd = sv[1];
    sem_init(&f->replied, 0, 0);
    struct ufio_client_opts o = { .size = sizeof(o), .timeout_ms = 2000, .no_twin_socket = true,
                                  .max_data_xfer_size = XFER };
    struct ufio_client *c = NULL;
    assert_int_equal(ufio_client_attach_fd(sv[0], &o, &c), 0);
    uint8_t skip[512];
    /* the VERSION request the client sent: not answered again */
    uint8_t h[16];
    assert_int_equal(read_all(sv[1], h, 16), 0);
    assert_int_equal(read_all(sv[1], skip, ufio_ld32(h + 4) - 16u), 0);
    pthread_create(th, NULL, fake_server, f);
    return c;
}

static void stop(struct ufio_client *c, struct fake *f, pthread_t th)
{
    ufio_client_destroy(c);
    pthread_join(th, NULL);
    close(f->fd);
    sem_destroy(&f->replied);
}

/* One client call per command; returns its result. */
static int call(struct ufio_client *c, uint16_t cmd, int k)
{
    static uint8_t local[4096], buf[64];
    size_t got;
    switch (cmd) {
    case VFIO_USER_DEVICE_GET_INFO: {
        struct ufio_client_device_info di = { .size = sizeof(di) };
        return ufio_client_device_info(c, &di);
    }
    case VFIO_USER_DEVICE_GET_REGION_INFO: {
        struct ufio_client_region_info ri = { .size = sizeof(ri) };
        return ufio_client_region_info(c, 2, &ri);
    }
    case VFIO_USER_DEVICE_GET_IRQ_INFO: {
        struct ufio_client_irq_info ii = { .size = sizeof(ii) };
        return ufio_client_irq_info(c, 2, &ii);
    }
    case VFIO_USER_REGION_READ:
        return ufio_client_region_read(c, 0, 0, buf, 4);
    case VFIO_USER_REGION_WRITE:
        return ufio_client_region_write(c, 0, 0, buf, 4);
    case VFIO_USER_DMA_MAP:
        return ufio_client_dma_map(c, 0x100000ull * (uint64_t)(k + 1), sizeof(local), UFIO_DMA_READ, local, -1, 0);
    case VFIO_USER_DMA_UNMAP:
        return ufio_client_dma_unmap(c, 0x100000ull * (uint64_t)(k + 1), sizeof(local));
    case VFIO_USER_DEVICE_SET_IRQS:
        return ufio_client_irq_disable(c, 0);
    case VFIO_USER_DEVICE_RESET:
        return ufio_client_reset(c);
    case VFIO_USER_DEVICE_FEATURE:
        return ufio_client_feature(c, UFIO_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0, buf, 8, &got);
    case VFIO_USER_MIG_DATA_READ: {
        int err = ufio_client_mig_data_read(c, buf, sizeof(buf), &got);
        return err ? err : got == 4 ? 0 : -ERANGE;
    }
    case VFIO_USER_MIG_DATA_WRITE:
        return ufio_client_mig_data_write(c, buf, 4);
    }
    return -ENOSYS;
}

static const uint16_t cmds[] = {
    VFIO_USER_DMA_MAP,        VFIO_USER_DMA_UNMAP,      VFIO_USER_DEVICE_GET_INFO,
    VFIO_USER_DEVICE_GET_REGION_INFO, VFIO_USER_DEVICE_GET_IRQ_INFO, VFIO_USER_DEVICE_SET_IRQS,
    VFIO_USER_REGION_READ,    VFIO_USER_REGION_WRITE,   VFIO_USER_DEVICE_RESET,
    VFIO_USER_DEVICE_FEATURE, VFIO_USER_MIG_DATA_READ,  VFIO_USER_MIG_DATA_WRITE,
};

static void test_every_row(void **st)
{
    static const enum mode modes[] = { VALID, SHORT, LONG, EXTRA_FD };
    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        struct fake f = { .mode = modes[m] };
        pthread_t th;
        struct ufio_client *c = start(&f, &th);
        for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
            const struct ufio_cmd_desc *d = ufio_cmd_desc(cmds[i]);
            if (modes[m] == SHORT && d->reply_min == 0)
                continue; /* nothing shorter than nothing */
            int before = fd_count();
            int err = call(c, cmds[i], (int)i);
            sem_wait(&f.replied); /* the server's copies of any fds are closed by now */
            int want = modes[m] == VALID ? 0 : -EPROTO;
            if (err != want)
                fprintf(stderr, "%s, mode %zu: got %d want %d\n", d->name, m, err, want);
            assert_int_equal(err, want);
            /* whatever came with a refused reply is closed; nothing stays behind */
            assert_int_equal(fd_count(), before);
            assert_true(ufio_client_connected(c));
        }
        stop(c, &f, th);
    }
}

/* libvfio-user pads a MIG_DATA_READ reply up to what was asked: size says what is data. */
static void test_padded_mig_read(void **st)
{
    struct fake f = { .mode = PADDED };
    pthread_t th;
    struct ufio_client *c = start(&f, &th);
    assert_int_equal(call(c, VFIO_USER_MIG_DATA_READ, 0), 0);
    sem_wait(&f.replied);
    stop(c, &f, th);
}

/* A VERSION reply goes through its row too: an fd beyond the twin socket's is refused and closed. */
static void test_version_reply(void **st)
{
    int before = fd_count();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uint8_t v[128];
    memset(v, 0, 4);
    memcpy(v + 4, version_json, sizeof(version_json));
    send_msg(sv[1], 0, VFIO_USER_VERSION, v, 4 + sizeof(version_json), 2);
    struct ufio_client_opts o = { .size = sizeof(o), .timeout_ms = 2000, .no_twin_socket = true };
    struct ufio_client *c = NULL;
    assert_int_equal(ufio_client_attach_fd(sv[0], &o, &c), -EPROTO);
    close(sv[1]);
    assert_int_equal(fd_count(), before); /* sv[0] and both fds closed */
    /* and one too short (no JSON, no version) */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    send_msg(sv[1], 0, VFIO_USER_VERSION, v, 3, 0);
    assert_int_equal(ufio_client_attach_fd(sv[0], &o, &c), -EPROTO);
    close(sv[1]);
    assert_int_equal(fd_count(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_row),
        cmocka_unit_test(test_padded_mig_read),
        cmocka_unit_test(test_version_reply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
