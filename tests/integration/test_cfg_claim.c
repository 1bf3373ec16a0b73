/*
 * Config-space ranges a device claims (ufio_dev_claim_config): a device in a
 * thread of this process, our client on the other end of a socketpair.
 * Claimed bytes are computed by the device when read, writes reach it
 * unmasked, accesses that straddle a claim are split, and the claims that
 * would let a device break what the library emulates are refused. And the run
 * loop's sleep in recvmsg still sees a stop from another thread.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <ufio/client.h>
#include <ufio/server.h>

static uint32_t reads, writes;
static uint8_t written[8];
static uint64_t last_off;
static uint32_t last_len;

static int claimed(struct ufio_dev *dev, void *opaque, unsigned region, uint64_t off, void *buf, uint32_t len,
                   bool is_write)
{
    assert_int_equal(region, UFIO_PCI_CONFIG_REGION);
    assert_ptr_equal(opaque, &reads);
    last_off = off;
    last_len = len;
    if (is_write) {
        writes++;
        memcpy(written, buf, len < 8 ? len : 8);
        return 0;
    }
    reads++;
    for (uint32_t i = 0; i < len; i++)
        ((uint8_t *)buf)[i] = (uint8_t)(reads + i); /* a value that exists only when read */
    return 0;
}

static int refuse(struct ufio_dev *dev, void *opaque, unsigned region, uint64_t off, void *buf, uint32_t len,
                  bool is_write)
{
    return -EACCES;
}

static void *serve(void *arg)
{
    ufio_dev_run(arg);
    return NULL;
}

static void test_claims(void **st)
{
    static const struct ufio_pci_ids ids = { 0x5546, 0x00c1, 0x5546, 0x00c1, 0xff0000, 1 };
    struct ufio_dev *dev;
    assert_int_equal(ufio_dev_create("claim", &ids, NULL, NULL, &dev), 0);
    int msi = ufio_dev_add_cap_msi(dev, 1, UFIO_MSI_64BIT);
    assert_true(msi >= 0x40);
    uint8_t body[13] = { 0 };
    int vnd = ufio_dev_add_cap_vendor(dev, body, sizeof(body));
    assert_true(vnd > msi);
    /* what a claim may not cover */
    assert_int_equal(ufio_dev_claim_config(dev, 0x3c, 8, claimed, &reads), -EINVAL);       /* header */
    assert_int_equal(ufio_dev_claim_config(dev, (uint32_t)msi + 2, 2, claimed, &reads), -EINVAL); /* MSI */
    assert_int_equal(ufio_dev_claim_config(dev, (uint32_t)vnd + 4, 0, claimed, &reads), -EINVAL);
    assert_int_equal(ufio_dev_claim_config(dev, (uint32_t)vnd + 4, 8, NULL, NULL), -EINVAL);
    assert_int_equal(ufio_dev_claim_config(dev, 4090, 8, claimed, &reads), -EINVAL);
    assert_int_equal(ufio_dev_claim_config(dev, (uint32_t)vnd + 4, 8, claimed, &reads), 0);
    assert_int_equal(ufio_dev_claim_config(dev, (uint32_t)vnd + 10, 4, claimed, &reads), -EINVAL); /* overlap */
    assert_int_equal(ufio_dev_claim_config(dev, (uint32_t)vnd + 12, 2, refuse, NULL), 0);
    for (uint32_t i = 0; i < 6; i++)
        assert_int_equal(ufio_dev_claim_config(dev, 0xe0 + 2 * i, 2, claimed, &reads), 0);
    assert_int_equal(ufio_dev_claim_config(dev, 0xf0, 2, claimed, &reads), -ENOSPC);

    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(ufio_dev_attach_fd(dev, sv[0]), 0);
    assert_int_equal(ufio_dev_claim_config(dev, 0xf0, 2, claimed, &reads), -EBUSY);
    pthread_t th;
    pthread_create(&th, NULL, serve, dev);
    struct ufio_client *c;
    assert_int_equal(ufio_client_attach_fd(sv[1], NULL, &c), 0);

    const unsigned cfg = UFIO_PCI_CONFIG_REGION;
    uint8_t b[16];
    /* computed on every read */
    assert_int_equal(ufio_client_region_read(c, cfg, (uint64_t)vnd + 4, b, 4), 0);
    assert_int_equal(b[0], 1);
    assert_int_equal(ufio_client_region_read(c, cfg, (uint64_t)vnd + 4, b, 4), 0);
    assert_int_equal(b[0], 2);
    assert_int_equal(b[3], 5);
    /* a read across the cap header and the claim: the header from the library, the rest from the device */
    assert_int_equal(ufio_client_region_read(c, cfg, (uint64_t)vnd, b, 8), 0);
    assert_int_equal(b[0], 0x09);          /* vendor-specific id */
    assert_int_equal(b[2], 3 + 13);        /* its length */
    assert_int_equal(b[4], 3);             /* third read of the claim, first byte */
    assert_int_equal(last_off, (uint64_t)vnd + 4);
    assert_int_equal(last_len, 4);
    /* writes reach the device as they are: no write mask */
    static const uint8_t w[4] = { 0xde, 0xad, 0xbe, 0xef };
    assert_int_equal(ufio_client_region_write(c, cfg, (uint64_t)vnd + 6, w, 4), 0);
    assert_int_equal(writes, 1);
    assert_memory_equal(written, w, 4);
    assert_int_equal(last_off, (uint64_t)vnd + 6);
    /* a device's error goes back to the client; a straddling access fails as a whole */
    assert_int_equal(ufio_client_region_read(c, cfg, (uint64_t)vnd + 12, b, 2), -EACCES);
    assert_int_equal(ufio_client_region_read(c, cfg, (uint64_t)vnd + 10, b, 4), -EACCES);
    /* the rest of config space is the library's as before */
    uint16_t cmd = 0x0006;
    assert_int_equal(ufio_client_region_write(c, cfg, 4, &cmd, 2), 0);
    assert_int_equal(ufio_client_region_read(c, cfg, 4, &cmd, 2), 0);
    assert_int_equal(cmd & 0x6, 0x6);
    uint32_t id;
    assert_int_equal(ufio_client_region_read(c, cfg, 0, &id, 4), 0);
    assert_int_equal(id, 0x00c15546);

    ufio_client_destroy(c);
    ufio_dev_stop(dev);
    pthread_join(th, NULL);
    ufio_dev_destroy(dev);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct runner {
    struct ufio_dev *dev;
    int ret;
    double returned_at;
    _Atomic pid_t tid;
};

static void *run_and_time(void *arg)
{
    struct runner *r = arg;
    r->tid = (pid_t)syscall(SYS_gettid);
    r->ret = ufio_dev_run(r->dev);
    r->returned_at = now_ms();
    return NULL;
}

/* Waits (up to 5 s) until thread tid is blocked in recvmsg (or, were the loop to choose it, a
 * poll-family wait): the kernel says which syscall a sleeping thread is in. */
static bool asleep_in_wait(pid_t tid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
    for (int i = 0; i < 5000; i++) {
        FILE *f = fopen(path, "r");
        long nr = -1;
        if (f) {
            if (fscanf(f, "%ld", &nr) != 1)
                nr = -1;
            fclose(f);
        }
        if (nr == SYS_recvmsg || nr == SYS_ppoll || nr == SYS_epoll_pwait
#ifdef SYS_poll
            || nr == SYS_poll || nr == SYS_epoll_wait
#endif
        )
            return true;
        struct pollfd none = { .fd = -1 };
        poll(&none, 1, 1);
    }
    return false;
}

/* ufio_dev_run() sleeps in recvmsg while a client is attached: a stop from another
 * thread is still seen (within the 100 ms the wait lasts), requests are still served
 * at once, and the loop can be run again afterwards. */
static void test_stop_while_waiting_in_recvmsg(void **st)
{
    static const struct ufio_pci_ids ids = { 0x5546, 0x00c2, 0x5546, 0x00c2, 0xff0000, 1 };
    struct ufio_dev *dev;
    assert_int_equal(ufio_dev_create("stop", &ids, NULL, NULL, &dev), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(ufio_dev_attach_fd(dev, sv[0]), 0);
    double slow = getenv("UFIO_INSTRUMENTED") ? 10 : 1; /* valgrind, sanitizers */
    for (int round = 0; round < 2; round++) {
        struct runner r = { .dev = dev, .ret = -1 };
        pthread_t th;
        pthread_create(&th, NULL, run_and_time, &r);
        static struct ufio_client *c;
        if (round == 0)
            assert_int_equal(ufio_client_attach_fd(sv[1], NULL, &c), 0);
        uint32_t id;
        double t0 = now_ms();
        assert_int_equal(ufio_client_region_read(c, UFIO_PCI_CONFIG_REGION, 0, &id, 4), 0);
        assert_int_equal(id, 0x00c25546);
        assert_true(now_ms() - t0 < 50 * slow); /* served at once, not at the end of a wait */
        assert_true(asleep_in_wait(r.tid)); /* the loop is asleep in recvmsg again */
        double asked = now_ms();
        ufio_dev_stop(dev);
        pthread_join(th, NULL);
        assert_int_equal(r.ret, 0);
        assert_true(r.returned_at - asked < 300 * slow);
        if (round == 1)
            ufio_client_destroy(c);
    }
    ufio_dev_destroy(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_claims),
                                        cmocka_unit_test(test_stop_while_waiting_in_recvmsg) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
