/* Internal state of a client connection (lib/client). */
#ifndef UFIO_CLIENT_INTERNAL_H
#define UFIO_CLIENT_INTERNAL_H

#include <pthread.h>

#include <ufio/client.h>

#include "client/client_identity.h"
#include "proto/proto.h"
#include "transport/transport.h"

#define CL_MAX_PENDING 64
/* longest wait in recvmsg before the reader looks at timeouts and the twin socket */
#define CL_WAIT_MS 20

struct cl_pending {
    bool used;
    bool done;
    uint16_t id;
    uint16_t cmd;
    struct ufio_msg reply;
    /* a big reply whose body after head[16] may go straight to dst */
    uint8_t *dst;
    size_t dst_len;
    uint8_t head[16];
    bool placing;   /* the reader is receiving into dst right now */
    bool lend;      /* its reply may stay lent in the read-ahead: it is taken under c->lock */
    int err;        /* the reply could not be kept (-ENOMEM) */
};

struct cl_dma {
    uint64_t iova, size;
    uint32_t prot;
    uint8_t *local;
    int fd;         /* our dup, -1 if none */
    uint64_t fd_off;
};

struct cl_irq {
    uint32_t count;
    int *fds;       /* dups of the caller's eventfds, -1 = none */
};

struct ufio_client {
    char *path;
    struct ufio_client_opts opts;
    pthread_mutex_t lock;       /* everything below except the send side */
    pthread_cond_t cond;
    pthread_mutex_t send_lock;  /* whole-message sends on either socket */
    struct ufio_conn conn;
    struct ufio_conn_sink sink; /* big replies into the waiting caller's buffer */
    struct ufio_conn_sink twin_sink;
    struct {                    /* a DMA_WRITE being received into registered memory */
        uint64_t iova, len;
        bool on;
    } placing[2];               /* [0] main, [1] twin */
    struct ufio_conn twin;
    bool has_twin;
    bool connected;
    bool reader_active;         /* one thread at a time reads and dispatches */
    /* the reader fills conn's read-ahead without c->lock (read_turn): a lent
     * reply taken meanwhile is given back by the reader once it relocks */
    bool filling;
    bool loan_back;
    struct ufio_client_caps caps;
    uint16_t next_id;
    struct cl_pending pend[CL_MAX_PENDING];
    struct cl_dma *dma;
    size_t ndma, dma_cap;
    struct cl_irq irq[UFIO_IRQ_NUM];
    uint64_t region_size[UFIO_PCI_NUM_REGIONS];
    bool region_known[UFIO_PCI_NUM_REGIONS];
    int region_fd[UFIO_PCI_NUM_REGIONS];
    /* posted small writes waiting to go as one REGION_WRITE_MULTI */
    pthread_mutex_t post_lock;
    struct ufio_write_multi_entry *post;
    size_t npost;
    /* npost != 0, read without post_lock (__atomic): a call with nothing
     * posted skips the lock; a thread always sees its own posts */
    bool posted;
    /* the device first attached by path: a reconnect must find the same one */
    struct cl_identity ident;
    /* library-internal VERSION extras (the takeover's controller): ufio_no_wait, ufio_handover */
    bool no_wait;
    uint8_t handover;
};

/* client_io.c */
/* Before registered memory goes away: a DMA_WRITE being received into it drops the rest. */
void cl_dma_forget(struct ufio_client *c, uint64_t iova, uint64_t size);
int cl_negotiate(struct ufio_client *c, int fd);
/* client.c: ufio_client_connect() with the VERSION extras above (docs/handover.md) */
int cl_connect_ext(const char *path, const struct ufio_client_opts *opts, bool no_wait, uint8_t handover,
                   struct ufio_client **out);
void cl_disconnect(struct ufio_client *c);
/*
 * Sends a command and waits for its reply (validated: same cmd, not an
 * error; an error reply becomes its errno). The caller releases *reply.
 * With reply == NULL the reply must have an empty payload and no fds.
 */
int cl_call(struct ufio_client *c, uint16_t cmd, const struct iovec *iov, int iovcnt,
            const int *fds, size_t nfds, struct ufio_msg *reply);
/*
 * cl_call() for a reply made of a head and data that may be received
 * straight into dst: REGION_READ (head[16] echoed, then exactly dst_len
 * bytes; the reply comes with len 16 and sunk = dst_len) or MIG_DATA_READ
 * (argsz and size, then at most dst_len bytes: len 8, sunk = size). Else it
 * is a normal reply. Either way take(arg, reply) checks the head and copies
 * the data out: it runs with c->lock held, after the command-table verdict,
 * on a small reply still in the read-ahead buffer where it was read (no
 * malloc, no copy), so it must not call back into the client.
 */
typedef int (*cl_take_fn)(void *arg, const struct ufio_msg *reply);
int cl_call_into(struct ufio_client *c, uint16_t cmd, const struct iovec *iov, int iovcnt,
                 const uint8_t head[16], void *dst, size_t dst_len, cl_take_fn take, void *arg);
/*
 * cl_call() in two halves, for a command whose reply has an empty payload:
 * send it (*slot is its pending slot), then wait for its reply. Another
 * call may go in between (replies are matched by msg_id), so a sender can
 * keep one request in flight while the peer works on the one before.
 */
int cl_call_start(struct ufio_client *c, uint16_t cmd, const struct iovec *iov, int iovcnt, int *slot);
int cl_call_finish(struct ufio_client *c, uint16_t cmd, int slot);
/* client.c: what one data message may carry (both ends' max_data_xfer_size); one
 * MIG_DATA_WRITE of at most that, its reply left to cl_call_finish() */
uint64_t cl_xfer_max(struct ufio_client *c);
int cl_mig_write_start(struct ufio_client *c, const void *buf, size_t len, int *slot);
int cl_send_posted(struct ufio_client *c, uint16_t cmd, const struct iovec *iov, int iovcnt);
int cl_flush_posted(struct ufio_client *c);
/* Releases a reply, keeping a large payload buffer for the next large reply. */
void cl_release(struct ufio_client *c, struct ufio_msg *m);

#endif
