/*
 * The device author's side of the API, as a device in a thread of this process
 * with our client on a socketpair: what a callback's return value means on the
 * wire (0 or the full byte count succeed; short counts, stray positives and
 * non-errnos become EIO with a warning; a negative errno travels as it is), and
 * the MSI-X helper's layout seen through the client. Built with
 * -Wunused-parameter: the callbacks ignore parameters through UFIO_UNUSED.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include <ufio/client.h>
#include <ufio/server.h>

/* BAR0 registers: what the callback returns for an access at each offset */
enum { AT_ZERO = 0x00, AT_LEN = 0x10, AT_SHORT = 0x20, AT_ERRNO = 0x30, AT_LONG = 0x40, AT_NOERRNO = 0x50 };

static unsigned bar_calls;
static uint8_t last_write[4];
static int reset_ret;

static int bar0(UFIO_UNUSED struct ufio_dev *dev, UFIO_UNUSED void *opaque, UFIO_UNUSED unsigned region,
                uint64_t off, void *buf, uint32_t len, bool is_write)
{
    bar_calls++;
    if (is_write)
        memcpy(last_write, buf, len < 4 ? len : 4);
    else
        memset(buf, 0xa0 + (int)(off >> 4), len);
    switch (off & ~0xfull) {
    case AT_ZERO: return 0;
    case AT_LEN: return (int)len;
    case AT_SHORT: return (int)len - 1;
    case AT_ERRNO: return -EPERM;
    case AT_LONG: return (int)len + 4;
    case AT_NOERRNO: return -100000;
    default: return 0;
    }
}

static int reset_cb(UFIO_UNUSED struct ufio_dev *dev, UFIO_UNUSED void *opaque)
{
    return reset_ret;
}

static int claim_len(UFIO_UNUSED struct ufio_dev *dev, UFIO_UNUSED void *opaque, UFIO_UNUSED unsigned region,
                     UFIO_UNUSED uint64_t off, void *buf, uint32_t len, bool is_write)
{
    if (!is_write)
        memset(buf, 0x77, len);
    return (int)len;
}

static unsigned warnings;
static char last_warning[512];

static void capture_log(UFIO_UNUSED void *opaque, enum ufio_log_level level, const char *msg)
{
    if (level == UFIO_LOG_WARN) {
        warnings++;
        strncpy(last_warning, msg, sizeof(last_warning) - 1);
    }
}

struct rig {
    struct ufio_dev *dev;
    struct ufio_client *c;
    pthread_t th;
};

static void *serve(void *arg)
{
    ufio_dev_run(arg);
    return NULL;
}

static void rig_start(struct rig *r)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(ufio_dev_attach_fd(r->dev, sv[0]), 0);
    assert_int_equal(pthread_create(&r->th, NULL, serve, r->dev), 0);
    assert_int_equal(ufio_client_attach_fd(sv[1], NULL, &r->c), 0);
}

static void rig_stop(struct rig *r)
{
    ufio_client_destroy(r->c);
    ufio_dev_stop(r->dev);
    pthread_join(r->th, NULL);
    ufio_dev_destroy(r->dev);
}

static void test_callback_returns(UFIO_UNUSED void **st)
{
    static const struct ufio_pci_ids ids = { 0x5546, 0x00a1, 0x5546, 0x00a1, 0xff0000, 1 };
    const struct ufio_dev_ops ops = { .size = sizeof(ops), .reset = reset_cb };
    struct rig r;
    assert_int_equal(ufio_dev_create("api", &ids, &ops, NULL, &r.dev), 0);
    assert_int_equal(ufio_dev_add_bar(r.dev, 0, 4096, UFIO_BAR_MEM32, bar0, NULL), 0);
    uint8_t vbody[9] = { 0 };
    int vnd = ufio_dev_add_cap_vendor(r.dev, vbody, sizeof(vbody));
    assert_true(vnd >= 0x40);
    assert_int_equal(ufio_dev_claim_config(r.dev, (uint32_t)vnd + 4, 4, claim_len, NULL), 0);
    rig_start(&r);
    ufio_set_log(capture_log, NULL, UFIO_LOG_WARN);

    uint8_t b[4];
    static const uint8_t w[4] = { 1, 2, 3, 4 };
    /* success: 0, or the full count (libvfio-user's convention), for reads and writes */
    assert_int_equal(ufio_client_region_read(r.c, 0, AT_ZERO, b, 4), 0);
    assert_int_equal(b[0], 0xa0);
    assert_int_equal(ufio_client_region_read(r.c, 0, AT_LEN, b, 4), 0);
    assert_int_equal(b[3], 0xa1);
    assert_int_equal(ufio_client_region_write(r.c, 0, AT_LEN, w, 4), 0);
    assert_memory_equal(last_write, w, 4);
    assert_int_equal(ufio_client_region_read(r.c, 0, AT_LEN, b, 1), 0); /* len 1 returns 1 */
    assert_int_equal(warnings, 0);
    /* a claimed config range whose callback returns its count */
    assert_int_equal(ufio_client_region_read(r.c, UFIO_PCI_CONFIG_REGION, (uint64_t)vnd + 4, b, 4), 0);
    assert_int_equal(b[2], 0x77);
    assert_int_equal(warnings, 0);
    /* a negative errno reaches the client as it is, without a warning */
    assert_int_equal(ufio_client_region_read(r.c, 0, AT_ERRNO, b, 4), -EPERM);
    assert_int_equal(ufio_client_region_write(r.c, 0, AT_ERRNO, w, 4), -EPERM);
    assert_int_equal(warnings, 0);
    /* a short count is an error, EIO on the wire, and the log says which callback and what it returned */
    assert_int_equal(ufio_client_region_read(r.c, 0, AT_SHORT, b, 4), -EIO);
    assert_int_equal(warnings, 1);
    assert_non_null(strstr(last_warning, "region access callback returned 3 for a 4-byte access"));
    assert_int_equal(ufio_client_region_write(r.c, 0, AT_SHORT, w, 2), -EIO);
    /* longer than asked, and a negative value that is no errno: EIO too */
    assert_int_equal(ufio_client_region_read(r.c, 0, AT_LONG, b, 4), -EIO);
    assert_int_equal(ufio_client_region_read(r.c, 0, AT_NOERRNO, b, 4), -EIO);
    /* the log is rate-limited (1st, 2nd, 4th...): four faults, three lines */
    assert_int_equal(warnings, 3);
    /* a callback without a count: a positive value is EIO, an errno passes through */
    reset_ret = 1;
    assert_int_equal(ufio_client_reset(r.c), -EIO);
    reset_ret = -EBUSY;
    assert_int_equal(ufio_client_reset(r.c), -EBUSY);
    reset_ret = 0;
    assert_int_equal(ufio_client_reset(r.c), 0);
    /* the device still serves */
    assert_int_equal(ufio_client_region_read(r.c, 0, AT_ZERO, b, 4), 0);
    ufio_set_log(NULL, NULL, UFIO_LOG_WARN);
    rig_stop(&r);
}

static unsigned bar2_calls;

static int bar2(UFIO_UNUSED struct ufio_dev *dev, UFIO_UNUSED void *opaque, UFIO_UNUSED unsigned region,
                UFIO_UNUSED uint64_t off, void *buf, uint32_t len, bool is_write)
{
    bar2_calls++;
    if (!is_write)
        memset(buf, 0x5b, len);
    return 0;
}

static uint32_t cfg32(struct ufio_client *c, uint64_t off)
{
    uint32_t v = 0;
    assert_int_equal(ufio_client_region_read(c, UFIO_PCI_CONFIG_REGION, off, &v, 4), 0);
    return v;
}

/* The helper places table and PBA after the device's registers and around its shared memory, and the
 * library emulates them there (the device's callback never sees those accesses). */
static void test_msix_helper_existing_bar(UFIO_UNUSED void **st)
{
    static const struct ufio_pci_ids ids = { 0x5546, 0x00a2, 0x5546, 0x00a2, 0xff0000, 1 };
    struct rig r;
    assert_int_equal(ufio_dev_create("msix", &ids, NULL, NULL, &r.dev), 0);
    assert_int_equal(ufio_dev_add_bar(r.dev, 2, 16384, UFIO_BAR_MEM32, bar2, NULL), 0);
    void *mem;
    assert_int_equal(ufio_dev_add_mmap_area(r.dev, 2, 4096, 4096, &mem), 0);
    uint32_t t = 0, p = 0;
    /* 0x100 bytes of registers at the start, shared memory at 0x1000..0x2000: the table goes to 0x2000 */
    int cap = ufio_dev_add_msix(r.dev, 8, 2, 0x100, &t, &p);
    assert_true(cap >= 0x40);
    assert_int_equal(t, 0x2000);
    assert_int_equal(p, 0x2000 + 8 * 16);
    assert_int_equal(ufio_dev_add_msix(r.dev, 8, 2, 0x100, NULL, NULL), -EEXIST);
    rig_start(&r);

    /* what a guest's driver reads in config space */
    uint32_t ctl = cfg32(r.c, (uint64_t)cap);
    assert_int_equal(ctl & 0xff, 0x11);
    assert_int_equal((ctl >> 16) & 0x7ff, 7);
    assert_int_equal(cfg32(r.c, (uint64_t)cap + 4), 0x2000 | 2);
    assert_int_equal(cfg32(r.c, (uint64_t)cap + 8), 0x2080 | 2);
    /* the table is the library's: an entry written reads back, vector control starts masked */
    bar2_calls = 0;
    uint32_t e[4] = { 0xfee00000u, 0, 0x4041, 0 }, back[4];
    assert_int_equal(ufio_client_region_read(r.c, 2, 0x2000 + 3 * 16, back, 16), 0);
    assert_int_equal(back[3], 1);
    assert_int_equal(ufio_client_region_write(r.c, 2, 0x2000 + 3 * 16, e, 16), 0);
    assert_int_equal(ufio_client_region_read(r.c, 2, 0x2000 + 3 * 16, back, 16), 0);
    assert_memory_equal(back, e, 16);
    uint64_t pba = ~0ull;
    assert_int_equal(ufio_client_region_read(r.c, 2, 0x2080, &pba, 8), 0);
    assert_int_equal(pba, 0);
    assert_int_equal(bar2_calls, 0);
    /* the registers before it are still the device's */
    uint32_t reg = 0;
    assert_int_equal(ufio_client_region_read(r.c, 2, 0x0fc, &reg, 4), 0);
    assert_int_equal(reg, 0x5b5b5b5b);
    assert_int_equal(bar2_calls, 1);
    rig_stop(&r);
}

/* A BAR the helper adds: sized to fit, table at 0; refusals leave the device as it was. */
static void test_msix_helper_new_bar(UFIO_UNUSED void **st)
{
    static const struct ufio_pci_ids ids = { 0x5546, 0x00a3, 0x5546, 0x00a3, 0xff0000, 1 };
    struct rig r;
    assert_int_equal(ufio_dev_create("msix-bar", &ids, NULL, NULL, &r.dev), 0);
    assert_int_equal(ufio_dev_add_bar(r.dev, 1, 256, UFIO_BAR_IO, NULL, NULL), 0);
    assert_int_equal(ufio_dev_add_msix(r.dev, 4, 1, 0, NULL, NULL), -EINVAL);   /* an I/O BAR */
    assert_int_equal(ufio_dev_add_msix(r.dev, 4, 4, 16, NULL, NULL), -EINVAL);  /* content in a new BAR */
    assert_int_equal(ufio_dev_add_msix(r.dev, 0, 4, 0, NULL, NULL), -EINVAL);
    assert_int_equal(ufio_dev_add_msix(r.dev, 4, 6, 0, NULL, NULL), -EINVAL);
    uint32_t t = 1, p = 1;
    int cap = ufio_dev_add_msix(r.dev, 300, 4, 0, &t, &p);
    assert_true(cap >= 0x40);
    assert_int_equal(t, 0);
    assert_int_equal(p, 300 * 16);
    rig_start(&r);
    struct ufio_client_region_info ri = { .size = sizeof(ri) };
    assert_int_equal(ufio_client_region_info(r.c, 4, &ri), 0);
    assert_int_equal(ri.region_size, 8192); /* 4800 + 40 bytes: the next power of two */
    assert_int_equal(ri.flags & 3, 3);
    assert_int_equal(cfg32(r.c, (uint64_t)cap + 8), (300 * 16) | 4);
    /* the BAR register sizes as a 32-bit memory BAR of 8 KiB */
    uint32_t all = 0xffffffffu;
    assert_int_equal(ufio_client_region_write(r.c, UFIO_PCI_CONFIG_REGION, 0x20, &all, 4), 0);
    assert_int_equal(cfg32(r.c, 0x20), 0xffffe000u);
    rig_stop(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_callback_returns),
        cmocka_unit_test(test_msix_helper_existing_bar),
        cmocka_unit_test(test_msix_helper_new_bar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
