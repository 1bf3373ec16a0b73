/*
 * The migration plugin ABI, driven from the library side: a device whose
 * migration is a vendor plugin bound through lib/vfio's binding (the same
 * code ufio-vfio-pci uses), and a fake plugin whose every answer comes from
 * the input: transitions that fail with errnos or garbage, save() lengths
 * past the buffer or negative non-errnos, failing loads, wild estimates and
 * dirty bitmaps. The rest of the input is a client's migration traffic
 * (state changes, MIG_DATA reads and writes, size and precopy queries, dirty
 * logging). Whatever the plugin does, the server must neither crash nor
 * leave the state machine outside its states; ASan/UBSan watch the rest.
 * The descriptor checks (mp_bind) get a fuzzed descriptor per input too.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ufio/migration.h>
#include <ufio/passthrough.h>
#include <ufio/server.h>

#include "proto/proto.h"
#include "server/dev_internal.h"
#include "server/session.h"
#include "vfio/vfio_internal.h"

/* ---- the fake plugin: answers from the input --------------------------------- */

static const uint8_t *beh;
static size_t beh_len, beh_off;

static uint8_t next(void)
{
    return beh_off < beh_len ? beh[beh_off++] : 0;
}

static int f_transition(void *s, unsigned from, unsigned to)
{
    static const int r[] = { 0, 0, 0, -EBUSY, -EIO, 7, INT_MIN, -4096 };
    return r[next() % 8];
}

static ssize_t f_save(void *s, void *buf, size_t len)
{
    uint8_t b = next();
    ssize_t n;
    switch (b % 8) {
    case 0: n = 0; break;
    case 1: n = (ssize_t)(len < b ? len : b); break;
    case 2: n = (ssize_t)len; break;
    case 3: n = (ssize_t)len + 1; break;   /* past the buffer (claimed only) */
    case 4: n = -EAGAIN; break;
    case 5: n = -5000; break;
    case 6: n = SSIZE_MAX; break;
    default: n = (ssize_t)(len < 4096 ? len : 4096); break;
    }
    /* a plugin may only write inside the buffer; that part of the contract is not fuzzable */
    if (n > 0)
        memset(buf, b, (size_t)n < len ? (size_t)n : len);
    return n;
}

static int f_load(void *s, const void *buf, size_t len, bool last)
{
    static const int r[] = { 0, 0, 0, -EINVAL, -EPROTO, 1, -100000, 0 };
    return r[next() % 8];
}

static void f_estimate(void *s, uint64_t *initial, uint64_t *dirty, uint64_t *stop_copy)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | next();
    *initial = v;
    *dirty = ~v;
    *stop_copy = v >> (next() % 64);
}

static int f_dirty(void *s, uint64_t iova, uint64_t len, uint64_t page_size, uint64_t *bitmap)
{
    uint64_t pages = len / page_size + (len % page_size != 0);
    uint64_t words = (pages + 63) / 64;
    for (uint64_t i = 0; i < words && i < 4; i++)
        bitmap[i] = (uint64_t)next() * 0x0101010101010101ull;
    return next() % 4 == 3 ? -EIO : 0;
}

static int f_dirty_log(void *s, bool start, uint64_t page_size, const uint64_t *ranges, uint32_t nranges)
{
    for (uint32_t i = 0; i < nranges; i++)
        if (ranges[2 * i + 1] == 0)
            abort(); /* the host never hands an empty range */
    static const int r[] = { 0, 0, -EOPNOTSUPP, 3 };
    return r[next() % 4];
}

static const struct ufio_migration_plugin fake = {
    .abi_version = UFIO_MP_ABI_VERSION,
    .size = sizeof(struct ufio_migration_plugin),
    .name = "fuzz-plugin",
    .flags = UFIO_MIG_F_STOP_COPY | UFIO_MIG_F_P2P | UFIO_MIG_F_PRE_COPY,
    .transition = f_transition,
    .save = f_save,
    .load = f_load,
    .estimate = f_estimate,
    .dirty_pages = f_dirty,
    .dirty_log = f_dirty_log,
};

/* ---- the device and its client connection -------------------------------------- */

static struct ufio_dev *dev;
static struct mp_binding binding;
static int mfd = -1;
#define GUEST_SIZE (1u << 16)

static void discard_log(void *opaque, enum ufio_log_level level, const char *msg) {}

static void setup(void)
{
    static const struct ufio_pci_ids ids = { 0x1234, 0x11e8, 0x1af4, 0x1100, 0xff0000, 0x10 };
    char why[128];
    if (mp_bind(&binding, &fake, why, sizeof(why)) || ufio_dev_create("fuzz-plugin", &ids, NULL, NULL, &dev))
        abort();
    binding.inited = true;
    binding.dev = dev;
    struct ufio_mig_ops ops;
    mp_mig_ops(&binding, &ops);
    struct ufio_dev_limits l = { .size = sizeof(l) };
    ufio_dev_get_limits(dev, &l);
    l.max_data_xfer_size = 65536;
    if (ufio_dev_set_limits(dev, &l) || ufio_dev_setup_migration(dev, &ops, &binding) ||
        ufio_dev_set_dirty_sync(dev, mp_dirty_sync, &binding) || ufio_dev_set_dirty_log(dev, mp_dirty_log, &binding))
        abort();
    mfd = memfd_create("guest", MFD_CLOEXEC);
    if (mfd < 0 || ftruncate(mfd, GUEST_SIZE))
        abort();
    ufio_set_log(discard_log, NULL, UFIO_LOG_WARN);
}

static void send_msg(int fd, uint16_t cmd, const void *p, size_t len, int pass_fd)
{
    static uint8_t buf[16 + 70000];
    struct vfio_user_header h = { .msg_id = 1, .cmd = cmd, .msg_size = (uint32_t)(16 + len) };
    ufio_hdr_encode(buf, &h);
    memcpy(buf + 16, p, len);
    struct iovec iov = { buf, 16 + len };
    union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr a; } cm;
    memset(&cm, 0, sizeof(cm));
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (pass_fd >= 0) {
        mh.msg_control = cm.b;
        mh.msg_controllen = sizeof(cm.b);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0)
        abort();
    ufio_dev_run_once(dev);
    /* the replies are not checked here: only that the server survives with a defined state */
    static uint8_t sink[1 << 18];
    while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
        ;
}

static void feature(int fd, uint32_t flags, const void *data, size_t len, uint32_t argsz_extra)
{
    uint8_t p[8 + 64];
    ufio_st32(p, (uint32_t)(8 + len + argsz_extra));
    ufio_st32(p + 4, flags);
    memcpy(p + 8, data, len);
    send_msg(fd, VFIO_USER_DEVICE_FEATURE, p, 8 + len, -1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    if (!dev)
        setup();
    /* the descriptor checks, on a descriptor built from the first bytes */
    struct ufio_migration_plugin d = fake;
    d.abi_version = (uint32_t)data[0] << 14;
    d.size = (uint32_t)data[1] * 2;
    d.flags = data[0] & 0x0f;
    struct mp_binding scratch;
    char why[128];
    (void)mp_bind(&scratch, &d, why, sizeof(why));

    /* the behaviour script is the input's second half, the traffic its first */
    size_t ops_len = size / 2;
    beh = data + ops_len;
    beh_len = size - ops_len;
    beh_off = 0;

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) || ufio_dev_attach_fd(dev, sv[0]))
        abort();
    static const char json[] = "{\"capabilities\":{\"max_msg_fds\":8}}";
    uint8_t v[4 + sizeof(json)] = { 0, 0, 2, 0 };
    memcpy(v + 4, json, sizeof(json));
    send_msg(sv[1], VFIO_USER_VERSION, v, sizeof(v), -1);
    uint8_t m[32];
    struct ufio_dma_map dm = { .argsz = 32, .flags = 3, .offset = 0, .addr = 0x10000, .size = GUEST_SIZE };
    ufio_dma_map_encode(&dm, m, sizeof(m));
    send_msg(sv[1], VFIO_USER_DMA_MAP, m, 32, mfd);

    const uint8_t *p = data;
    size_t left = ops_len;
    while (left) {
        uint8_t op = *p++;
        left--;
        uint8_t a = left ? *p : 0, b = left > 1 ? p[1] : 0;
        uint8_t buf[64];
        switch (op % 8) {
        case 0: { /* SET MIG_DEVICE_STATE */
            ufio_st32(buf, a % 9);
            ufio_st32(buf + 4, 0xffffffffu);
            feature(sv[1], VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, buf, 8, 0);
            break;
        }
        case 1: { /* MIG_DATA_READ */
            uint8_t r[8];
            ufio_st32(r, 8);
            ufio_st32(r + 4, (uint32_t)a << 8 | b);
            send_msg(sv[1], VFIO_USER_MIG_DATA_READ, r, 8, -1);
            break;
        }
        case 2: { /* MIG_DATA_WRITE of the bytes after the length byte */
            size_t n = left ? (a < left - 1 ? a : left - 1) : 0;
            static uint8_t w[8 + 256];
            ufio_st32(w, (uint32_t)(8 + n));
            ufio_st32(w + 4, (uint32_t)n);
            memcpy(w + 8, p + 1, n);
            send_msg(sv[1], VFIO_USER_MIG_DATA_WRITE, w, 8 + n, -1);
            break;
        }
        case 3:
            feature(sv[1], VFIO_DEVICE_FEATURE_GET | UFIO_FEATURE_MIG_DATA_SIZE, buf, 0, 8);
            break;
        case 4:
            feature(sv[1], VFIO_DEVICE_FEATURE_GET | UFIO_FEATURE_PRECOPY_INFO, buf, 0, 16);
            break;
        case 5: { /* DMA_LOGGING_START over the mapping */
            ufio_st64(buf, 4096);
            ufio_st32(buf + 8, 1);
            ufio_st32(buf + 12, 0);
            ufio_st64(buf + 16, 0x10000);
            ufio_st64(buf + 24, GUEST_SIZE);
            feature(sv[1], VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, buf, 32, 0);
            break;
        }
        case 6: { /* DMA_LOGGING_REPORT, part of the mapping or past it */
            ufio_st64(buf, 0x10000 + (uint64_t)(a % 32) * 4096);
            ufio_st64(buf + 8, (uint64_t)(b % 64 + 1) * 4096);
            ufio_st64(buf + 16, 4096);
            feature(sv[1], VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, buf, 24, 64);
            break;
        }
        default:
            feature(sv[1], VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, buf, 0, 8);
            break;
        }
        if (ufio_dev_mig_state(dev) >= UFIO_MIG_NUM_STATES)
            abort(); /* a plugin must not be able to put the state machine outside its states */
        size_t skip = op % 8 == 2 ? (left ? 1 + (a < left - 1 ? a : left - 1) : 0) : (left > 1 ? 2 : left);
        p += skip;
        left -= skip;
    }
    close(sv[1]);
    /* back to a fresh device for the next input */
    while (dev->ss->list) /* the session, its DMA mappings and IRQ fds */
        sess_free(dev->ss->list, "next input");
    dev_mig_reset(dev);
    dma_log_stop(dev);
    return 0;
}
