/*
 * The client's handling of what a server sends: a valid VERSION reply, then
 * the input as the bytes that follow (replies, server-initiated DMA_READ /
 * DMA_WRITE requests, garbage), then EOF; the first byte picks the call made.
 * Every reply goes through cl_call()'s check against its command-table row
 * (lib/proto/cmd.c: bounds, fds, the row's decoder), as in the shipped client.
 *
 * One client lives for the whole process: between inputs its connection is
 * closed and everything an input can leave behind (pending replies, DMA
 * registrations, region fds and sizes, IRQ fds, posted writes, caps, the
 * next msg_id) is put back, then it negotiates again from the same cached
 * VERSION reply. So an input's outcome does not depend on earlier inputs;
 * UFIO_FUZZ_TRACE=1 prints a digest of what the client sent and returned per
 * input (checked by tests/fuzz/check-determinism.sh).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <ufio/client.h>
#include <ufio/migration.h>

#include "client/client_internal.h"
#include "proto/proto.h"

static struct ufio_client *cl;
static uint8_t version_reply[128];
static size_t version_reply_len;
static bool tracing;

static void discard_log(void *opaque, enum ufio_log_level level, const char *msg) {}
static uint64_t digest;

static void mix(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        digest = (digest ^ b[i]) * 0x100000001b3ull;
}

static void new_pair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv))
        abort();
}

/* Everything of a client that outlives its connection, back to how attach left it. */
static void reset_client(struct ufio_client *c)
{
    ufio_conn_close(&c->conn);
    if (c->has_twin)
        ufio_conn_close(&c->twin);
    c->has_twin = false;
    c->connected = false;
    c->reader_active = false;
    for (int i = 0; i < UFIO_PCI_NUM_REGIONS; i++) {
        if (c->region_fd[i] >= 0)
            close(c->region_fd[i]);
        c->region_fd[i] = -1;
        c->region_known[i] = false;
        c->region_size[i] = 0;
    }
    for (int i = 0; i < CL_MAX_PENDING; i++)
        if (c->pend[i].used && c->pend[i].done)
            ufio_msg_release(&c->pend[i].reply);
    memset(c->pend, 0, sizeof(c->pend));
    for (size_t i = 0; i < c->ndma; i++)
        if (c->dma[i].fd >= 0)
            close(c->dma[i].fd);
    c->ndma = 0;
    for (int i = 0; i < UFIO_IRQ_NUM; i++) {
        for (uint32_t j = 0; j < c->irq[i].count; j++)
            if (c->irq[i].fds[j] >= 0)
                close(c->irq[i].fds[j]);
        free(c->irq[i].fds);
        c->irq[i].fds = NULL;
        c->irq[i].count = 0;
    }
    c->npost = 0;
    memset(&c->caps, 0, sizeof(c->caps));
    c->next_id = 0;
}

static void setup(void)
{
    static const char json[] = "{\"capabilities\":{\"max_msg_fds\":8,\"write_multiple\":true}}";
    size_t n = 16 + 4 + sizeof(json);
    struct vfio_user_header h = { .msg_id = 0, .cmd = VFIO_USER_VERSION, .msg_size = (uint32_t)n, .flags = 1 };
    ufio_hdr_encode(version_reply, &h);
    memset(version_reply + 16, 0, 4); /* major 0, minor 0 */
    memcpy(version_reply + 20, json, sizeof(json));
    version_reply_len = n;
    tracing = getenv("UFIO_FUZZ_TRACE") != NULL;
    /* messages are still formatted (that code sees peer values too), just not written */
    ufio_set_log(discard_log, NULL, UFIO_LOG_WARN);
    int sv[2];
    new_pair(sv);
    if (write(sv[1], version_reply, n) != (ssize_t)n)
        abort();
    struct ufio_client_opts o = { .size = sizeof(o), .timeout_ms = 50, .no_twin_socket = true };
    if (ufio_client_attach_fd(sv[0], &o, &cl))
        abort();
    reset_client(cl);
    close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 200000)
        return 0;
    if (!cl)
        setup();
    digest = 0xcbf29ce484222325ull;
    int sv[2];
    new_pair(sv);
    /* the VERSION reply and then the input; what does not fit the socket buffer is cut */
    struct iovec iov[2] = { { version_reply, version_reply_len }, { (void *)(data + 1), size - 1 } };
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
    ssize_t sent = sendmsg(sv[1], &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    size_t off = sent > (ssize_t)version_reply_len ? (size_t)sent - version_reply_len + 1 : 1;
    while (sent >= (ssize_t)version_reply_len && off < size) {
        ssize_t n = send(sv[1], data + off, size - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    shutdown(sv[1], SHUT_WR);
    int r[3] = { 0, 0, 0 };
    r[0] = cl_negotiate(cl, sv[0]);
    if (r[0] == 0) {
        struct ufio_client *c = cl;
        static uint8_t local[8192];
        r[1] = ufio_client_dma_map(c, 0x1000, sizeof(local), UFIO_DMA_READ | UFIO_DMA_WRITE, local, -1, 0);
        static uint8_t buf[4096];
        size_t got;
        switch (data[0] % 8) {
        case 0: { struct ufio_client_device_info di = { .size = sizeof(di) }; r[2] = ufio_client_device_info(c, &di); break; }
        case 1: { static struct ufio_client_region_info ri = { .size = sizeof(ri) }; r[2] = ufio_client_region_info(c, 2, &ri); break; }
        case 2: { struct ufio_client_irq_info ii = { .size = sizeof(ii) }; r[2] = ufio_client_irq_info(c, 2, &ii); break; }
        case 3: r[2] = ufio_client_region_read(c, 0, 0, buf, sizeof(buf)); break;
        case 4: r[2] = ufio_client_feature(c, UFIO_FEATURE_GET | 2, NULL, 0, buf, sizeof(buf), &got); break;
        case 5: r[2] = ufio_client_mig_data_read(c, buf, sizeof(buf), &got); break;
        case 6: { uint64_t bm[4]; r[2] = ufio_client_dirty_log_report(c, 0, 1 << 20, 4096, bm); break; }
        default: r[2] = ufio_client_process(c); break;
        }
    }
    if (tracing) {
        mix(r, sizeof(r));
        uint8_t out[4096];
        ssize_t n;
        while ((n = recv(sv[1], out, sizeof(out), MSG_DONTWAIT)) > 0)
            mix(out, (size_t)n);
        fprintf(stderr, "client_reply digest %016llx\n", (unsigned long long)digest);
    }
    reset_client(cl);
    close(sv[1]);
    return 0;
}
