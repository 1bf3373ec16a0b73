/*
 * Sessions: one per connection to a device. A session owns its socket, its
 * twin socket, its read-ahead, what its peer negotiated, its role and the
 * server's own requests to its peer. The device model (dev_internal.h) is
 * shared by all sessions and never sees one; server/dispatch.c is where a
 * session's message becomes a call into the model, after the command table
 * (lib/proto/cmd.h) has said the role may send it.
 *
 * Roles (docs/sessions.md): one owner (the VMM, on the device socket), any
 * number of observers (read-only) and at most one migration controller (on
 * the management socket, usually).
 */
#ifndef UFIO_SERVER_SESSION_H
#define UFIO_SERVER_SESSION_H

#include <signal.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "server/dev_internal.h"

#define UFIO_MAX_SESSIONS 32
#define UFIO_MAX_ALLOW_UIDS 16

struct ufio_session {
    struct ufio_sessions *ss;
    struct ufio_dev *dev;
    struct ufio_session *next;
    unsigned id;              /* for log lines */
    bool on_mgmt;             /* came through the management socket */
    unsigned role;            /* UFIO_ROLE_*, 0 until VERSION */
    pid_t pid;                /* SO_PEERCRED at accept (-1 for --fd) */
    uid_t uid;
    struct ufio_conn conn;
    struct ufio_conn twin;
    bool has_twin;
    bool negotiated;
    struct ufio_caps peer;    /* the peer's capabilities */
    bool write_multiple;      /* negotiated */
    uint16_t next_msg_id;
    /* commands read while a reply of ours was awaited, or the owner's first
     * command held while a controller has the device stopped: handled in
     * order, before anything else is read */
    struct ufio_msg queued[UFIO_DEV_MAX_QUEUED];
    size_t nqueued;
    bool drop;                /* close after this step */
    const char *drop_why;
    bool awaiting_reply;      /* inside sess_send_request: commands are queued */
    struct {                  /* the reply sess_send_request may receive in place */
        uint16_t msg_id, cmd;
        uint8_t head[16];
        void *dst;            /* NULL: nothing expected */
        size_t len;
    } expect;
    struct ufio_conn_sink sink; /* big REGION_WRITEs straight into shared memory */
    uint64_t deadline_ns;     /* VERSION, or a message begun, must be in by then; 0 = none */
    bool readable;            /* epoll said so; cleared when a read finds nothing */
    bool held;                /* reading stopped: queued[0] waits for the device to run,
                                 or (a VERSION) for wait_role to be free */
    unsigned wait_role;
    bool armed;               /* in the epoll set with EPOLLIN */
    bool q_defer;             /* the handler just deferred its message for a quiesce */
    bool q_held;              /* held: queued[0] waits for a quiesce (quiesce.c) */
    bool q_teardown;          /* dropped owner whose mappings wait for a quiesce */
};

struct ufio_sessions {
    struct ufio_dev *dev;
    int epfd;
    int stop_efd;
    int listen_fd;            /* the device socket */
    int mgmt_fd;              /* the management socket, -1 = none */
    int reserve_fd;           /* spent to refuse a client when out of fds */
    char *sock_path;
    char *mgmt_path;
    bool fd_mode;             /* attached with --fd: no re-accept */
    bool stopping;
    /* set by ufio_dev_stop() beside its eventfd, from any thread or a signal handler:
     * a lock-free atomic is safe for both (sig_atomic_t is not, between threads) */
    atomic_int stop_req;
    bool in_run;              /* inside ufio_dev_run(): the owner's waits may block */
    unsigned poll_us;
    struct ufio_session *list;
    size_t n;
    struct ufio_session *owner;
    struct ufio_session *controller;
    struct ufio_session *mig_holder; /* moved the device out of RUNNING */
    struct ufio_session *log_holder; /* started dirty logging */
    struct ufio_session *rr;  /* where the next round of service starts */
    unsigned next_id;
    uid_t allow[UFIO_MAX_ALLOW_UIDS];
    size_t nallow;
    unsigned handshake_ms;    /* VERSION within this after accept */
    unsigned msg_ms;          /* a message begun completes within this */
    bool handed_over;         /* a takeover took everything: stop, unlink nothing */
    /* asynchronous quiesce (quiesce.c): one at a time */
    int q_efd;                /* ufio_dev_quiesced() wakes the loop; -1 without ops.quiesce */
    int q_word;               /* atomic: Q_IDLE, Q_WAIT, or Q_DONE + errno (quiesce.c) */
    struct ufio_session *q_by; /* whose operation waits (NULL: its session went away) */
    bool migrated_away;       /* a controller took the stream and left it in STOP (sess_migrated_away) */
};

/* session.c */
struct ufio_session *sess_new(struct ufio_sessions *ss, int fd, bool on_mgmt, pid_t pid, uid_t uid);
/* Closes the session and gives back what it held (the owner's mappings and
 * IRQ fds, dirty logging, a migration it started). */
void sess_free(struct ufio_session *s, const char *why);
/* Handles up to budget messages; returns how many. Sets s->drop on failure. */
int sess_serve(struct ufio_session *s, int budget);
/* Has the session something to handle without reading the socket? */
bool sess_pending(const struct ufio_session *s);
/* Must the session's held message still wait? */
bool sess_still_held(const struct ufio_session *s);
void sess_set_armed(struct ufio_session *s, bool on);
/* The owner's state-touching commands wait (a controller has the device stopped). */
bool sess_owner_hold(const struct ufio_sessions *ss);
/*
 * Sends a server->client request (DMA_READ/DMA_WRITE) to the session's peer
 * and waits for its reply, matched by msg_id and command. On the twin socket
 * nothing else can arrive; on the main socket, commands that arrive meanwhile
 * are queued and handled, in order, after the current one. dst: where the
 * data of a reply that echoes iov[0] (a 16-byte head) plus dst_len bytes may
 * be received directly (reply.sunk then says so); NULL: none.
 */
int sess_send_request(struct ufio_session *s, uint16_t cmd, const struct iovec *iov, int iovcnt, void *dst,
                      size_t dst_len, struct ufio_msg *reply);
/* After a session's message that may change the migration state (before: the state
 * it found): the migration holder, the owner hold and the migrated-away mark follow. */
void sess_mig_changed(struct ufio_sessions *ss, struct ufio_session *by, unsigned before);
/* The device's state went elsewhere: a controller moved it STOP_COPY -> STOP, and no
 * state change since. Requests that would change what was sent (UFIO_CMD_F_CHANGE) are
 * refused with ENODEV rather than answered and lost; reads are answered. */
bool sess_migrated_away(const struct ufio_sessions *ss);

/* quiesce.c (server.h, "quiesce"). A handler returns SESS_DEFER as it is
 * given it: its message is held and handled again once the device is quiesced. */
#define SESS_DEFER 1
int quiesce_init(struct ufio_sessions *ss);
void quiesce_fini(struct ufio_sessions *ss);
/* Before an operation that breaks DMA in flight: 0 (go on), SESS_DEFER or -errno (fail it). */
int sess_quiesce(struct ufio_session *s);
/* A dropped owner with DMA mappings: SESS_DEFER while they must stay, else 0 (free it). */
int sess_quiesce_teardown(struct ufio_session *s);
/* Must s's quiesce-held message still wait? */
bool sess_quiesce_holds(const struct ufio_session *s);
/* Is a quiesce of another session's operation pending (the owner's state requests wait)? */
bool sess_quiesce_owner_hold(const struct ufio_sessions *ss);
/* s goes away: a quiesce for it completes with no operation. */
void sess_quiesce_forget(struct ufio_session *s);
/* A message of s was handled (not deferred): a quiesce done for it that its
 * handler did not reach (the message failed validation this time) ends. */
void sess_quiesce_handled(struct ufio_session *s);
/* The eventfd woke the loop. */
void sess_quiesce_wake(struct ufio_sessions *ss);

/* dispatch.c: s becomes the owner (after VERSION, or adopted in a takeover) */
void sess_make_owner(struct ufio_session *s);
/* dev.c */
void dev_build(struct ufio_dev *dev);
void dev_owner_setup(struct ufio_sessions *ss, struct ufio_session *s);
/* takeover.c: the old process's side of HANDOVER, from controller s;
 * refuse: a negative errno to refuse it with (the device's quiesce failed), or 0 */
void takeover_give(struct ufio_session *s, int refuse);

/* dispatch.c */
void sess_handle_msg(struct ufio_session *s, struct ufio_msg *m);
/* Does the owner's command m wait while the device is held stopped? */
bool sess_msg_touches_state(const struct ufio_msg *m);
/* The conn sink's place(): where a big REGION_WRITE's data may go directly. */
void *sess_sink_place(void *opaque, const struct ufio_msg *m, const uint8_t *prefix, size_t body_len, size_t *keep);

#endif
