/*
 * Integration-test harness: starts a device server as a real process and
 * speaks raw vfio-user bytes to it, independent of the library's own
 * encoders (so a bug shared by encoder and decoder cannot hide).
 */
#ifndef UFIO_TEST_HARNESS_H
#define UFIO_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct srv {
    pid_t pid;
    char path[108];
    int out_fd; /* the server's stdout */
};

/* Starts bin --socket-path=<tmp> [extra...] and waits for "listening on". */
int srv_start(struct srv *s, const char *bin, const char *const *extra);
/* The same on a given socket path. */
int srv_start_at(struct srv *s, const char *bin, const char *path, const char *const *extra);
/* SIGTERM, wait; returns the exit status (or -1) and checks the socket is gone. */
int srv_stop(struct srv *s);
/* Number of open fds of the server process. */
int srv_fd_count(const struct srv *s);
bool srv_alive(const struct srv *s);
/* Waits up to 2 s for the server's fd count to reach want (the server closes
 * a rejected message's fds just after sending its reply); returns the count. */
int srv_wait_fd_count(const struct srv *s, int want);

int raw_connect(const char *path);
/* Sends exactly len bytes, fds with the first byte. 0 or -errno. */
int raw_send(int fd, const void *buf, size_t len, const int *fds, int nfds);

struct rmsg {
    uint16_t id, cmd;
    uint32_t size, flags, err;
    uint8_t payload[1 << 21];
    size_t len;
    int fds[16];
    int nfds;
};
/* Receives one whole message; -ETIMEDOUT, -ECONNRESET on EOF. */
int raw_recv(int fd, struct rmsg *m, int timeout_ms);

/* Builds a message: header + payload. Returns total length. */
size_t mk(uint8_t *buf, uint16_t id, uint16_t cmd, uint32_t flags, const void *payload, size_t plen);
/* Like mk but with an arbitrary msg_size field (for framing tests). */
size_t mk_size(uint8_t *buf, uint16_t id, uint16_t cmd, uint32_t flags, uint32_t msg_size,
               const void *payload, size_t plen);

/* Sends a command and receives its reply (skipping nothing). */
int xfer(int fd, uint16_t id, uint16_t cmd, const void *payload, size_t plen,
         const int *fds, int nfds, struct rmsg *reply);
/* VERSION with the given JSON (NULL = none). Returns 0 or the error reply's errno (negative). */
int raw_version(int fd, const char *json, struct rmsg *reply);

/* little-endian (host order) builders */
static inline void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static inline void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static inline uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t get32(const uint8_t *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | p[i]; return v; }
static inline uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

#endif
