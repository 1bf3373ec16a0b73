/*
 * The server's handling of incoming bytes: a device with every feature (trapped
 * and mmap'd BARs, MSI/MSI-X, DMA through mapped memory and by message,
 * migration) negotiated and with a DMA mapping, then fed the input as raw
 * socket bytes, optionally with eventfds attached (count from the first byte).
 *
 * The device is built once per process: building it per input cost most of
 * the time. Between inputs the client is dropped and everything an input can
 * change is put back (config space, IRQ and MSI-X state, migration state and
 * dirty logging, BAR and guest memory, the server's request ids, this file's
 * own device registers), so an input's outcome does not depend on the ones
 * before it. UFIO_FUZZ_TRACE=1 prints a digest of every byte the server sent
 * per input, which is how that is checked (tests/fuzz/check-determinism.sh).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ufio/migration.h>
#include <ufio/server.h>

#include "proto/proto.h"
#include "server/session.h"
#include "transport/transport.h"

static uint8_t regs[64];

static int bar0(struct ufio_dev *dev, void *opaque, unsigned region, uint64_t off, void *buf, uint32_t len,
                bool is_write)
{
    if (off + len > sizeof(regs))
        return -EINVAL;
    if (!is_write) {
        memcpy(buf, regs + off, len);
        return 0;
    }
    memcpy(regs + off, buf, len);
    uint64_t a;
    memcpy(&a, regs, 8);
    uint8_t tmp[256];
    if (off == 16) { /* a doorbell: DMA both ways, raise an interrupt */
        if (ufio_dev_dma_read(dev, a, tmp, sizeof(tmp)) == 0)
            ufio_dev_dma_write(dev, a + 4096, tmp, sizeof(tmp));
        ufio_dev_irq_trigger(dev, UFIO_IRQ_MSIX, regs[17] & 3);
        void *p = ufio_dev_dma_ptr(dev, a, 64, true);
        if (p)
            memset(p, 1, 64);
    }
    return 0;
}

static int st_calls;
static ssize_t save(struct ufio_dev *dev, void *o, void *buf, size_t len)
{
    if (st_calls++ % 2)
        return 0;
    memset(buf, 7, len < 100 ? len : 100);
    return len < 100 ? (ssize_t)len : 100;
}
static int load(struct ufio_dev *dev, void *o, const void *buf, size_t len, bool last) { return 0; }
static int transition(struct ufio_dev *dev, void *o, unsigned from, unsigned to) { return 0; }

static struct ufio_dev *make_dev(void)
{
    static const struct ufio_pci_ids ids = { 0x5546, 0x0001, 0x5546, 0x0001, 0xff0000, 1 };
    struct ufio_dev *dev;
    if (ufio_dev_create("fuzz", &ids, NULL, NULL, &dev))
        abort();
    void *ram;
    struct ufio_dev_limits l = { .size = sizeof(l) };
    ufio_dev_get_limits(dev, &l);
    l.reply_timeout_ms = 1;
    l.max_data_xfer_size = 65536;
    static const struct ufio_mig_ops mig = { .size = sizeof(mig), .flags = UFIO_MIG_F_STOP_COPY | UFIO_MIG_F_PRE_COPY,
                                             .transition = transition, .save = save, .load = load };
    if (ufio_dev_add_bar(dev, 0, 4096, UFIO_BAR_MEM32, bar0, NULL) ||
        ufio_dev_add_bar(dev, 1, 256, UFIO_BAR_IO, bar0, NULL) ||
        ufio_dev_add_bar(dev, 2, 8192, UFIO_BAR_MEM64 | UFIO_BAR_PREFETCH, NULL, NULL) ||
        ufio_dev_add_bar(dev, 4, 4096, UFIO_BAR_MEM32, NULL, NULL) ||
        ufio_dev_add_mmap_area(dev, 2, 4096, 4096, &ram) || ufio_dev_add_cap_pm(dev) < 0 ||
        ufio_dev_add_cap_msi(dev, 4, UFIO_MSI_64BIT | UFIO_MSI_MASKABLE) < 0 ||
        ufio_dev_add_cap_msix(dev, 4, 4, 0, 4, 0x800) < 0 || ufio_dev_add_cap_pcie(dev, 0) < 0 ||
        ufio_dev_add_ext_cap_dsn(dev, 42) < 0 || ufio_dev_setup_irq(dev, UFIO_IRQ_ERR, 1) ||
        ufio_dev_set_limits(dev, &l) || ufio_dev_setup_migration(dev, &mig, NULL))
        abort();
    return dev;
}

static uint64_t trace_digest; /* FNV-1a of what the server sent, with UFIO_FUZZ_TRACE */
static bool tracing;

static void discard_log(void *opaque, enum ufio_log_level level, const char *msg) {}

/*
 * Reads what the server sent. With all, until the socket is empty; without,
 * one read that frees the server's way (a short read means the socket was
 * empty or the next bytes carry fds: either way the rest can wait), saving
 * the read that would only say EAGAIN.
 */
static void drain_some(int fd, bool all)
{
    static uint8_t buf[1 << 18];
    union { char b[CMSG_SPACE(sizeof(int) * 16)]; struct cmsghdr a; } cm;
    for (;;) {
        struct iovec iov = { buf, sizeof(buf) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof(cm.b) };
        ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n <= 0)
            return;
        if (tracing)
            for (ssize_t i = 0; i < n; i++)
                trace_digest = (trace_digest ^ buf[i]) * 0x100000001b3ull;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
            if (c->cmsg_type == SCM_RIGHTS)
                for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                    int f;
                    memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                    close(f);
                }
        if (!all && (size_t)n < sizeof(buf))
            return;
    }
}

static void drain(int fd) { drain_some(fd, true); }

static struct ufio_dev *dev;
static int mfd = -1;
static uint8_t *guest; /* the harness's view of the guest memory behind mfd */
#define GUEST_SIZE (1u << 16)
static uint8_t version_msg[128], map_msg[2][48];
static size_t version_len;

static size_t encode_msg(uint8_t *buf, uint16_t cmd, const void *p, size_t len)
{
    struct vfio_user_header h = { .msg_id = 1, .cmd = cmd, .msg_size = (uint32_t)(16 + len) };
    ufio_hdr_encode(buf, &h);
    memcpy(buf + 16, p, len);
    return 16 + len;
}

/* Once per process: the device, the guest memory, and the negotiation bytes. */
static void setup(void)
{
    dev = make_dev();
    mfd = memfd_create("guest", MFD_CLOEXEC);
    if (mfd < 0 || ftruncate(mfd, GUEST_SIZE))
        abort();
    guest = mmap(NULL, GUEST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (guest == MAP_FAILED)
        abort();
    /* no twin socket: server->client DMA requests go on this socket */
    static const char json[] = "{\"capabilities\":{\"max_msg_fds\":8,\"write_multiple\":true}}";
    uint8_t v[4 + sizeof(json)] = { 0, 0, 2, 0 };
    memcpy(v + 4, json, sizeof(json));
    version_len = encode_msg(version_msg, VFIO_USER_VERSION, v, sizeof(v));
    /* one fd-backed and one message-served DMA range */
    uint8_t m[32];
    struct ufio_dma_map dm = { .argsz = 32, .flags = 3, .offset = 0, .addr = 0x10000, .size = GUEST_SIZE };
    ufio_dma_map_encode(&dm, m, sizeof(m));
    encode_msg(map_msg[0], VFIO_USER_DMA_MAP, m, 32);
    dm.addr = 0x100000;
    dm.size = 0x2000;
    ufio_dma_map_encode(&dm, m, sizeof(m));
    encode_msg(map_msg[1], VFIO_USER_DMA_MAP, m, 32);
    tracing = getenv("UFIO_FUZZ_TRACE") != NULL;
    /* messages are still formatted (that code sees peer values too), just not written */
    ufio_set_log(discard_log, NULL, UFIO_LOG_WARN);
}

/* Everything an input may have changed, back to how setup() left it. */
static void reset_device(void)
{
    while (dev->ss->list) /* DMA mappings, IRQ fds, queued commands */
        sess_free(dev->ss->list, "next input");
    pci_cfg_reset(&dev->cfg);
    irq_reset(dev);
    dev_mig_reset(dev);
    dma_log_stop(dev);
    for (unsigned i = 0; i < UFIO_PCI_NUM_REGIONS; i++) {
        struct ufio_region *r = &dev->regions[i];
        if (r->mem)
            memset(r->mem, 0, r->size);
    }
    memset(guest, 0, GUEST_SIZE);
    memset(regs, 0, sizeof(regs));
    st_calls = 0;
}

static void send_raw(int fd, const void *buf, size_t len, int mfd_to_pass)
{
    struct iovec iov = { (void *)buf, len };
    union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr a; } cm;
    memset(&cm, 0, sizeof(cm));
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (mfd_to_pass >= 0) {
        mh.msg_control = cm.b;
        mh.msg_controllen = sizeof(cm.b);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &mfd_to_pass, sizeof(int));
    }
    if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0)
        abort();
}

/* Bytes the server has not read yet: its socket's queue. */
static int unread(int fd)
{
    int n = 0;
    return ioctl(fd, FIONREAD, &n) == 0 ? n : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (!dev)
        setup();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        abort();
    if (ufio_dev_attach_fd(dev, sv[0]))
        abort();
    trace_digest = 0xcbf29ce484222325ull;
    send_raw(sv[1], version_msg, version_len, -1);
    ufio_dev_run_once(dev);
    send_raw(sv[1], map_msg[0], sizeof(map_msg[0]), mfd);
    ufio_dev_run_once(dev);
    send_raw(sv[1], map_msg[1], sizeof(map_msg[1]), -1);
    ufio_dev_run_once(dev);
    drain_some(sv[1], false);

    int nfds = data[0] & 3;
    int fds[3];
    for (int i = 0; i < nfds; i++)
        fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    const uint8_t *p = data + 1;
    size_t left = size - 1;
    bool first = true;
    while (left) {
        struct iovec iov = { (void *)p, left };
        union { char b[CMSG_SPACE(sizeof(int) * 3)]; struct cmsghdr a; } cm;
        memset(&cm, 0, sizeof(cm));
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (first && nfds) {
            mh.msg_control = cm.b;
            mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
            struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
            memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
        }
        ssize_t n = sendmsg(sv[1], &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0) {
            ufio_dev_run_once(dev); /* socket full: let the server consume */
            drain_some(sv[1], false);
            if (n < 0 && errno != EAGAIN)
                break;
            continue;
        }
        first = false;
        p += n;
        left -= (size_t)n;
    }
    /* one step per message while the server has bytes to read (each step reads one command) */
    for (int i = 0; i < 64 && dev->ss->list && (unread(sv[0]) || dev->ss->list->nqueued); i++) {
        ufio_dev_run_once(dev);
        drain_some(sv[1], false);
    }
    drain(sv[1]);
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    reset_device();
    close(sv[1]);
    if (tracing)
        fprintf(stderr, "server_msg digest %016llx\n", (unsigned long long)trace_digest);
    return 0;
}
