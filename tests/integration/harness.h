/*
 * Integration-test harness: starts a device server as a real process and
 * speaks raw vfio-user bytes to it, independent of the library's own
 * encoders (so a bug shared by encoder and decoder cannot hide).
 */
#ifndef UFIO_TEST_HARNESS_H
#define UFIO_TEST_HARNESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct srv {
    pid_t pid;
    char path[108];
    int out_fd; /* the server's stdout */
};

/* Starts bin --socket-path=<tmp> [extra...] and waits for "listening on". The
 * server is registered as a child to kill if the test fails (t_kill_children). */
int srv_start(struct srv *s, const char *bin, const char *const *extra);
/* The same on a given socket path. */
int srv_start_at(struct srv *s, const char *bin, const char *path, const char *const *extra);
/* SIGTERM, wait; returns the exit status (or -1) and checks the socket is gone. */
int srv_stop(struct srv *s);
/* SIGKILL, reap, remove its socket files (a server that dies mid-test). */
void srv_kill(struct srv *s);
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

/* ---- processes a failed test must not leave running ----------------------
 * A cmocka assertion longjmps out of the test: the servers and tools it
 * started would run on after the test program exits. Every child the
 * harness starts is registered; T_TEST's teardown (t_kill_children) SIGKILLs
 * and reaps those the test started that still run, an atexit handler all of
 * them (a group setup's servers too). */
void t_child_add(pid_t pid);
void t_child_forget(pid_t pid);
int t_mark_children(void **state);
int t_kill_children(void **state);
#define T_TEST(f) cmocka_unit_test_setup_teardown(f, t_mark_children, t_kill_children)

/* ---- ufio clients on a device (harness_client.c; they assert) ----------- */
struct ufio_client;
/* role: UFIO_ROLE_DEFAULT (the owner, on the device socket), _OBSERVER_REQ, _CONTROLLER_REQ */
struct ufio_client *t_connect(const char *path, unsigned role);
struct ufio_client *t_owner(const struct srv *s);
void t_w32(struct ufio_client *c, unsigned region, uint64_t off, uint32_t v);
uint32_t t_r32(struct ufio_client *c, unsigned region, uint64_t off);
unsigned t_state(struct ufio_client *c);
/* Polls the migration state until it is want, for at most ms; returns the last read. */
unsigned t_wait_state(struct ufio_client *c, unsigned want, int ms);
/* ufio-sample's BAR0 DIGEST_LO/HI: a digest of its whole device state. */
uint64_t t_digest(struct ufio_client *c);
double t_now_ms(void);

/* An owner that keeps ufio-sample busy from a thread, as a VMM would: round after round it
 * writes a word of a window of BAR2 and reads it back (shadow: what was acknowledged), and
 * every 8th round runs a DMA (4 KiB of its memory, XORed into the next 4 KiB, vector 0
 * raised). It stops at its first error. A second t_busy on another device that has not
 * been started is a model: t_busy_replay gives it what the first one did, so both devices'
 * digests must be equal. */
#define T_BUSY_OFF 0x8000u /* in BAR2 */
#define T_BUSY_WIN 1024u
struct t_busy {
    struct ufio_client *c;
    pthread_t t;
    bool running;
    atomic_int stop;
    atomic_ulong rounds; /* done, every request acknowledged */
    atomic_ulong dmas;   /* DMA commands acknowledged (each raised the IRQ count) */
    atomic_ulong issued, answered; /* requests sent, replies had */
    atomic_int err;      /* the first error */
    atomic_int err_in_write;
    uint32_t shadow[T_BUSY_WIN / 4];
    uint8_t *mem;
    int mfd;
};
/* Maps its DMA memory and sets the DMA registers; shadow starts as the device's window. */
void t_busy_init(struct t_busy *b, struct ufio_client *owner);
/* Starts the thread and waits until it is under way. */
void t_busy_start(struct t_busy *b);
/* Waits until at least n rounds are done (or an error, or ms pass); returns the rounds. */
unsigned long t_busy_wait(struct t_busy *b, unsigned long n, int ms);
/* Waits until at least n requests were sent (or an error, or ms pass); returns the count. */
unsigned long t_busy_wait_issued(struct t_busy *b, unsigned long n, int ms);
/* Stops the thread; returns its error (0 if none). */
int t_busy_stop(struct t_busy *b);
/* Unmaps its memory (the owner's client stays). */
void t_busy_fini(struct t_busy *b);
/* model gets what b did: b's window, and as many DMAs. */
void t_busy_replay(const struct t_busy *b, struct t_busy *model);

#endif
