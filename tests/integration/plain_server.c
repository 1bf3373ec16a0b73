/*
 * A vfio-user server that behaves as libvfio-user's samples do, written
 * against the spec with raw bytes (no ufio server code): no ufio extensions
 * (every DEVICE_FEATURE but MIGRATION and MIG_DEVICE_STATE is EINVAL, as
 * libvfio-user answers), no stream framing, and MIG_DATA_READ replies padded
 * up to the size asked for (argsz and size say what is data), as
 * libvfio-user's handle_mig_data_read() sends them.
 *
 * The device: config space (ids 0x4e58:0x0001), BAR2 = 64 KiB of state
 * read and written with REGION_READ / REGION_WRITE. Its migration data is
 * items of u32 offset, u32 length (4096), then the bytes: PRE_COPY sends the
 * state once and then nothing ("no more now"), STOP_COPY sends it all again;
 * a later item supersedes an earlier one.
 *
 * usage: plain_server [--socket-path=]SOCKET   (prints "listening on SOCKET", serves clients
 * one after another until SIGTERM)
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

enum { C_VERSION = 1, C_DEVICE_GET_INFO = 4, C_REGION_INFO = 5, C_REGION_READ = 9, C_REGION_WRITE = 10,
       C_RESET = 13, C_FEATURE = 16, C_MIG_READ = 17, C_MIG_WRITE = 18 };
enum { S_STOP = 1, S_RUNNING = 2, S_STOP_COPY = 3, S_RESUMING = 4, S_PRE_COPY = 6 };
#define RAM 65536u
#define PG 4096u
#define ITEM (8 + PG)
#define PASS ((RAM / PG) * ITEM)

static uint8_t cfg[256], ram[RAM];
static unsigned state = S_RUNNING;
static size_t pos;              /* position in the current pass's byte stream */
static bool pass_sent;          /* PRE_COPY: the state went once */
static uint8_t carry[ITEM];     /* destination: the item being received */
static size_t carried;
static volatile sig_atomic_t quit;
static const char *sock_path;

/* the harness's reads retry on EINTR: leave from the handler (unlink and _exit are safe there) */
static void on_term(int s)
{
    (void)s;
    unlink(sock_path);
    _exit(0);
}

/* Byte i of a pass: the items in page order. */
static uint8_t pass_byte(size_t i)
{
    size_t item = i / ITEM, at = i % ITEM;
    uint32_t off = (uint32_t)(item * PG);
    if (at < 4)
        return (uint8_t)(off >> (8 * at));
    if (at < 8)
        return (uint8_t)(PG >> (8 * (at - 4)));
    return ram[off + at - 8];
}

static void take(const uint8_t *p, size_t n)
{
    while (n) {
        size_t k = ITEM - carried < n ? ITEM - carried : n;
        memcpy(carry + carried, p, k);
        carried += k;
        p += k;
        n -= k;
        if (carried == ITEM) {
            uint32_t off = get32(carry), len = get32(carry + 4);
            if (len == PG && off <= RAM - PG)
                memcpy(ram + off, carry + 8, PG);
            carried = 0;
        }
    }
}

static void reply(int fd, const struct rmsg *m, const void *body, size_t len, int err)
{
    static uint8_t out[(1 << 21) + 64];
    size_t n = mk_size(out, m->id, m->cmd, err ? 0x21 : 0x1, (uint32_t)(16 + (err ? 0 : len)), err ? NULL : body,
                       err ? 0 : len);
    if (err)
        put32(out + 12, (uint32_t)err);
    raw_send(fd, out, n, NULL, 0);
}

static void serve_one(int fd, struct rmsg *m)
{
    static uint8_t b[(1 << 21)];
    const uint8_t *p = m->payload;
    switch (m->cmd) {
    case C_VERSION: {
        const char caps[] = "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":1048576,"
                            "\"migration\":{\"pgsize\":4096}}}";
        put16(b, 0);
        put16(b + 2, 1);
        memcpy(b + 4, caps, sizeof(caps));
        reply(fd, m, b, 4 + sizeof(caps), 0);
        return;
    }
    case C_DEVICE_GET_INFO:
        put32(b, 16);
        put32(b + 4, 0x3); /* PCI, reset */
        put32(b + 8, 9);
        put32(b + 12, 5);
        reply(fd, m, b, 16, 0);
        return;
    case C_REGION_INFO: {
        uint32_t idx = m->len >= 12 ? get32(p + 8) : 99;
        memset(b, 0, 32);
        put32(b, 32);
        put32(b + 8, idx);
        if (idx == 7 || idx == 2) {
            put32(b + 4, 0x3); /* read, write */
            put64(b + 16, idx == 7 ? sizeof(cfg) : RAM);
        }
        reply(fd, m, b, 32, idx < 9 ? 0 : EINVAL);
        return;
    }
    case C_REGION_READ:
    case C_REGION_WRITE: {
        if (m->len < 16) {
            reply(fd, m, NULL, 0, EINVAL);
            return;
        }
        uint64_t off = get64(p);
        uint32_t region = get32(p + 8), count = get32(p + 12);
        uint8_t *mem = region == 7 ? cfg : region == 2 ? ram : NULL;
        size_t size = region == 7 ? sizeof(cfg) : RAM;
        if (!mem || off > size || count > size - off ||
            (m->cmd == C_REGION_WRITE && m->len != 16 + (size_t)count)) {
            reply(fd, m, NULL, 0, EINVAL);
            return;
        }
        memcpy(b, p, 16);
        if (m->cmd == C_REGION_WRITE) {
            if (region == 2)
                memcpy(mem + off, p + 16, count);
            reply(fd, m, b, 16, 0);
        } else {
            memcpy(b + 16, mem + off, count);
            reply(fd, m, b, 16 + count, 0);
        }
        return;
    }
    case C_RESET:
        state = S_RUNNING;
        carried = 0;
        reply(fd, m, NULL, 0, 0);
        return;
    case C_FEATURE: {
        if (m->len < 8) {
            reply(fd, m, NULL, 0, EINVAL);
            return;
        }
        uint32_t flags = get32(p + 4), index = flags & 0xffff;
        bool get = flags & 0x10000, set = flags & 0x20000;
        put32(b + 4, flags);
        if (index == 1 && get) { /* MIGRATION: STOP_COPY | PRE_COPY */
            put32(b, 16);
            put64(b + 8, 0x5);
            reply(fd, m, b, 16, 0);
        } else if (index == 2 && (get || (set && m->len >= 16))) { /* MIG_DEVICE_STATE */
            if (set) {
                unsigned want = get32(p + 8);
                if (want != S_STOP && want != S_RUNNING && want != S_STOP_COPY && want != S_RESUMING &&
                    want != S_PRE_COPY) {
                    reply(fd, m, NULL, 0, EINVAL);
                    return;
                }
                if ((want == S_PRE_COPY || want == S_STOP_COPY) && state != want) {
                    pos = 0; /* a pass starts: everything goes */
                    pass_sent = false;
                }
                if (want == S_RESUMING)
                    carried = 0;
                state = want;
            }
            put32(b, 16);
            put32(b + 8, state);
            put32(b + 12, 0xffffffffu);
            reply(fd, m, b, 16, 0);
        } else {
            reply(fd, m, NULL, 0, EINVAL); /* libvfio-user: unsupported feature */
        }
        return;
    }
    case C_MIG_READ: {
        if (m->len < 8 || (state != S_PRE_COPY && state != S_STOP_COPY)) {
            reply(fd, m, NULL, 0, EINVAL);
            return;
        }
        uint32_t want = get32(p + 4);
        if (want > (1u << 20)) {
            reply(fd, m, NULL, 0, EINVAL);
            return;
        }
        size_t n = 0;
        if (!(state == S_PRE_COPY && pass_sent)) {
            while (n < want && pos < PASS)
                b[8 + n++] = pass_byte(pos++);
            if (pos == PASS && state == S_PRE_COPY)
                pass_sent = true;
        }
        memset(b + 8 + n, 0, want - n); /* padded to what was asked */
        put32(b, (uint32_t)(8 + n));
        put32(b + 4, (uint32_t)n);
        reply(fd, m, b, 8 + want, 0);
        return;
    }
    case C_MIG_WRITE: {
        if (m->len < 8 || state != S_RESUMING || get32(p + 4) != m->len - 8) {
            reply(fd, m, NULL, 0, EINVAL);
            return;
        }
        take(p + 8, m->len - 8);
        reply(fd, m, NULL, 0, 0); /* no payload, as libvfio-user */
        return;
    }
    default:
        reply(fd, m, NULL, 0, EINVAL);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    const char *path = strncmp(argv[1], "--socket-path=", 14) ? argv[1] : argv[1] + 14;
    sock_path = path;
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = { .sa_handler = on_term };
    sigaction(SIGTERM, &sa, NULL);
    put16(cfg, 0x4e58);
    put16(cfg + 2, 0x0001);
    cfg[8] = 2;          /* revision */
    cfg[11] = 0xff;      /* class */
    put16(cfg + 0x2c, 0x4e58);
    put16(cfg + 0x2e, 0x0002);
    for (size_t i = 0; i < RAM; i++)
        ram[i] = (uint8_t)(i ^ (i >> 8));
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    unlink(path);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 4))
        return 1;
    printf("listening on %s\n", path);
    fflush(stdout);
    static struct rmsg m;
    while (!quit) {
        int fd = accept(l, NULL, NULL);
        if (fd < 0)
            continue;
        while (!quit && raw_recv(fd, &m, 3600 * 1000) == 0) {
            for (int i = 0; i < m.nfds; i++)
                close(m.fds[i]);
            serve_one(fd, &m);
        }
        close(fd);
    }
    unlink(path);
    return 0;
}
