/*
 * Device lifecycle, the listening sockets (device and management), who may
 * connect (SO_PEERCRED), and the run loop that serves every session in turn.
 */
#include "server/session.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "common/abi.h"
#include "common/log.h"

/* messages one session may have handled per turn before the next is served */
#define DEV_MSGS_PER_TURN 16
/* rounds over read-ahead messages per step (each round bounded as above) */
#define DEV_ROUNDS_PER_STEP 8
/* receive timeout of the owner's socket (SO_RCVTIMEO): the longest sleep in
 * recvmsg before the run loop looks at its other sockets */
#define DEV_WAIT_MS 1
/* the owner is "hot" this long after its last message: the loop sleeps in
 * recvmsg on its socket (the cheapest wake-up); then in epoll_wait over all */
#define DEV_HOT_NS 5000000u
/* while the loop serves or sleeps without epoll_wait, the listeners, the
 * other sessions and the stop eventfd are looked at this often at least */
#define DEV_LOOK_NS 200000u

UFIO_API int ufio_dev_create(const char *name, const struct ufio_pci_ids *ids,
                             const struct ufio_dev_ops *ops, void *opaque,
                             struct ufio_dev **out)
{
    if (!ids || !out)
        return -EINVAL;
    struct ufio_dev_ops known = { .size = sizeof(known) };
    if (ops) {
        int err = abi_struct_in(&known, sizeof(known), ops);
        if (err)
            return err;
    }
    struct ufio_dev *dev = calloc(1, sizeof(*dev));
    if (!dev)
        return -ENOMEM;
    snprintf(dev->name, sizeof(dev->name), "%s", name ? name : "ufio-dev");
    dev->ops = known;
    dev->opaque = opaque;
    dev->lim = (struct ufio_dev_limits){
        .size = sizeof(dev->lim),
        .max_msg_fds = 8,
        .max_data_xfer_size = UFIO_DEFAULT_MAX_DATA_XFER,
        .max_dma_maps = UFIO_DEFAULT_MAX_DMA_MAPS,
        .twin_socket = true,
        .write_multiple = true,
        .reply_timeout_ms = 5000,
        .max_mig_stream = 1ull << 30,
        .handshake_timeout_ms = 5000,
        .msg_timeout_ms = 5000,
    };
    pci_cfg_init(&dev->cfg, ids->vendor_id, ids->device_id, ids->subsys_vendor_id,
                 ids->subsys_id, ids->class_code, ids->revision);
    for (unsigned i = 0; i < UFIO_PCI_NUM_REGIONS; i++)
        dev->regions[i].memfd = -1;
    dev->regions[UFIO_PCI_CONFIG_REGION].size = dev->cfg.size;
    dev->regions[UFIO_PCI_CONFIG_REGION].info_flags = VFIO_REGION_INFO_FLAG_READ |
                                                      VFIO_REGION_INFO_FLAG_WRITE;
    int err = 0;
    struct ufio_sessions *ss = calloc(1, sizeof(*ss));
    if (!ss) {
        free(dev);
        return -ENOMEM;
    }
    dev->ss = ss;
    ss->dev = dev;
    ss->listen_fd = -1;
    ss->mgmt_fd = -1;
    ss->q_efd = -1;
    ss->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ss->epfd = epoll_create1(EPOLL_CLOEXEC);
    ss->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    ss->handshake_ms = dev->lim.handshake_timeout_ms;
    ss->msg_ms = dev->lim.msg_timeout_ms;
    /* default allow-list: ourselves and root */
    ss->allow[ss->nallow++] = geteuid();
    if (geteuid() != 0)
        ss->allow[ss->nallow++] = 0;
    if (ss->epfd < 0 || ss->stop_efd < 0) {
        err = -errno;
        goto fail;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &ss->stop_efd };
    if (epoll_ctl(ss->epfd, EPOLL_CTL_ADD, ss->stop_efd, &ev) < 0) {
        err = -errno;
        goto fail;
    }
    /* only a device that quiesces has the eventfd its threads wake the loop with */
    if (known.quiesce && (err = quiesce_init(ss)) != 0)
        goto fail;
    /* INTx pin A by default, as most PCI functions have */
    err = irq_init_index(dev, UFIO_IRQ_INTX, 1,
                         VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED);
    if (err)
        goto fail;
    *out = dev;
    return 0;
fail:
    ufio_dev_destroy(dev);
    return err;
}

UFIO_API void ufio_dev_destroy(struct ufio_dev *dev)
{
    if (!dev)
        return;
    struct ufio_sessions *ss = dev->ss;
    if (ss) {
        while (ss->list)
            sess_free(ss->list, "device destroyed");
        ufio_dev_unlink_socket(dev);
        if (ss->listen_fd >= 0)
            close(ss->listen_fd);
        if (ss->mgmt_fd >= 0)
            close(ss->mgmt_fd);
        if (ss->epfd >= 0)
            close(ss->epfd);
        if (ss->stop_efd >= 0)
            close(ss->stop_efd);
        quiesce_fini(ss);
        if (ss->reserve_fd >= 0)
            close(ss->reserve_fd);
        free(ss);
    }
    dma_unmap_all(dev);
    dev_mig_free(dev);
    free(dev->compat_json);
    irq_free_all(dev);
    region_free_all(dev);
    pt_free(dev);
    free(dev);
}

UFIO_API void *ufio_dev_opaque(struct ufio_dev *dev) { return dev->opaque; }
UFIO_API const char *ufio_dev_name(struct ufio_dev *dev) { return dev->name; }

UFIO_API int ufio_dev_get_limits(struct ufio_dev *dev, struct ufio_dev_limits *l)
{
    int err = abi_check_out(l);
    if (!err)
        abi_struct_out(l, &dev->lim, sizeof(dev->lim));
    return err;
}

UFIO_API int ufio_dev_set_limits(struct ufio_dev *dev, const struct ufio_dev_limits *user)
{
    if (!user)
        return -EINVAL;
    struct ufio_dev_limits in;
    int err = abi_struct_in(&in, sizeof(in), user);
    if (err)
        return err;
    /* limits the caller's build did not know keep their current value */
    struct ufio_dev_limits merged = dev->lim;
    size_t n = abi_user_size(user);
    memcpy(&merged, user, n < sizeof(merged) ? n : sizeof(merged));
    merged.size = sizeof(merged);
    const struct ufio_dev_limits *l = &merged;
    if (l->max_msg_fds > UFIO_MAX_MSG_FDS_LIMIT || l->max_data_xfer_size < 4096 ||
        l->max_data_xfer_size > UFIO_MAX_DATA_XFER_LIMIT || l->max_dma_maps == 0 ||
        l->reply_timeout_ms == 0 || l->max_mig_stream < (1u << 20) || l->handshake_timeout_ms < 0 ||
        l->msg_timeout_ms < 0)
        return -EINVAL;
    if (dev->ss->n)
        return -EBUSY;
    dev->lim = *l;
    dev->ss->handshake_ms = (unsigned)l->handshake_timeout_ms;
    dev->ss->msg_ms = (unsigned)l->msg_timeout_ms;
    return 0;
}

/* ---- who may connect --------------------------------------------------- */

UFIO_API int ufio_dev_allow_uid(struct ufio_dev *dev, uid_t uid)
{
    struct ufio_sessions *ss = dev->ss;
    for (size_t i = 0; i < ss->nallow; i++)
        if (ss->allow[i] == uid)
            return 0;
    if (ss->nallow == UFIO_MAX_ALLOW_UIDS)
        return -ENOSPC;
    ss->allow[ss->nallow++] = uid;
    return 0;
}

static bool uid_allowed(const struct ufio_sessions *ss, uid_t uid)
{
    for (size_t i = 0; i < ss->nallow; i++)
        if (ss->allow[i] == uid)
            return true;
    return false;
}

/* ---- listening ----------------------------------------------------------- */

void dev_build(struct ufio_dev *dev)
{
    if (dev->built)
        return;
    pci_cfg_commit(&dev->cfg);
    dev->regions[UFIO_PCI_CONFIG_REGION].size = dev->cfg.size;
    dev->built = true;
}

static int listen_at(struct ufio_sessions *ss, const char *path, int *fd_out, char **path_out, mode_t mode)
{
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    int fd;
    int err = ufio_sock_listen(path, &fd);
    if (!err && mode && chmod(path, mode) < 0)
        err = -errno;
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = fd_out };
    if (!err && epoll_ctl(ss->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        err = -errno;
    if (err) {
        if (fd >= 0 && err != -EADDRINUSE && err != -EEXIST) {
            close(fd);
            unlink(path);
        }
        free(copy);
        return err;
    }
    *fd_out = fd;
    *path_out = copy;
    return 0;
}

UFIO_API int ufio_dev_listen(struct ufio_dev *dev, const char *path)
{
    struct ufio_sessions *ss = dev->ss;
    if (!path || ss->listen_fd >= 0 || ss->fd_mode)
        return -EINVAL;
    int err = listen_at(ss, path, &ss->listen_fd, &ss->sock_path, 0);
    if (!err)
        dev_build(dev);
    return err;
}

UFIO_API int ufio_dev_listen_mgmt(struct ufio_dev *dev, const char *path)
{
    struct ufio_sessions *ss = dev->ss;
    char derived[4096];
    if (ss->mgmt_fd >= 0)
        return -EINVAL;
    if (!path) {
        if (!ss->sock_path)
            return -EINVAL;
        int err = ufio_mgmt_path(ss->sock_path, derived, sizeof(derived));
        if (err)
            return err;
        path = derived;
    }
    /* 0600 before anyone can connect: created under a umask that leaves only us */
    mode_t old = umask(0177);
    int err = listen_at(ss, path, &ss->mgmt_fd, &ss->mgmt_path, 0600);
    umask(old);
    if (!err)
        dev_build(dev);
    return err;
}

UFIO_API const char *ufio_dev_mgmt_socket(struct ufio_dev *dev) { return dev->ss->mgmt_path; }

UFIO_API int ufio_dev_attach_fd(struct ufio_dev *dev, int fd)
{
    struct ufio_sessions *ss = dev->ss;
    if (fd < 0 || ss->n || ss->listen_fd >= 0)
        return -EINVAL;
    int err = ufio_set_nonblock(fd, true);
    if (err)
        return err;
    dev_build(dev);
    /* the fd was given to us by whoever started us: it is trusted as the owner's */
    if (!sess_new(ss, fd, false, -1, 0))
        return -ENOMEM;
    ss->fd_mode = true;
    return 0;
}

UFIO_API void ufio_dev_unlink_socket(struct ufio_dev *dev)
{
    if (!dev)
        return;
    struct ufio_sessions *ss = dev->ss;
    if (ss->sock_path) {
        unlink(ss->sock_path);
        free(ss->sock_path);
        ss->sock_path = NULL;
    }
    if (ss->mgmt_path) {
        unlink(ss->mgmt_path);
        free(ss->mgmt_path);
        ss->mgmt_path = NULL;
    }
}

UFIO_API int ufio_dev_get_poll_fd(struct ufio_dev *dev) { return dev->ss->epfd; }
UFIO_API bool ufio_dev_client_connected(struct ufio_dev *dev) { return dev->ss->owner != NULL; }
UFIO_API unsigned ufio_dev_session_count(struct ufio_dev *dev) { return (unsigned)dev->ss->n; }

/*
 * Out of fds, accept() fails and the pending connection keeps the listener
 * readable: the loop would spin. A reserved fd is given up to accept and
 * drop that client (it sees EOF), then taken back.
 */
static void dev_accept(struct ufio_sessions *ss, int lfd, bool mgmt)
{
    struct ufio_dev *dev = ss->dev;
    for (int i = 0; i < 8; i++) {
        int fd;
        int err = ufio_sock_accept(lfd, &fd);
        if (err == -EMFILE || err == -ENFILE) {
            if (ss->reserve_fd >= 0) {
                close(ss->reserve_fd);
                ss->reserve_fd = -1;
                if (ufio_sock_accept(lfd, &fd) == 0)
                    close(fd);
                ss->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                UFIO_WARN(dev->name, "out of file descriptors: refused a client");
            }
            return;
        }
        if (err)
            return;
        struct ucred cr;
        socklen_t crl = sizeof(cr);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) < 0) {
            UFIO_WARN(dev->name, "refused a peer: SO_PEERCRED: %s", strerror(errno));
            close(fd);
            continue;
        }
        if (!uid_allowed(ss, cr.uid)) {
            UFIO_WARN(dev->name, "refused a peer on the %s socket: pid %d uid %u is not allowed",
                      mgmt ? "management" : "device", (int)cr.pid, (unsigned)cr.uid);
            close(fd);
            continue;
        }
        if (ss->n >= UFIO_MAX_SESSIONS) {
            UFIO_WARN(dev->name, "refused pid %d uid %u: %u sessions already", (int)cr.pid, (unsigned)cr.uid,
                      UFIO_MAX_SESSIONS);
            close(fd);
            continue;
        }
        if (!sess_new(ss, fd, mgmt, cr.pid, cr.uid))
            close(fd);
    }
}

/* After VERSION made s the owner: how the run loop may wait for it. */
void dev_owner_setup(struct ufio_sessions *ss, struct ufio_session *s)
{
    struct ufio_dev *dev = ss->dev;
    /* ufio_dev_run() sleeps in recvmsg on this socket while the owner is
     * alone and busy (see there), unless it shares our one CPU: then epoll is
     * cheaper */
    if (ufio_sock_peer_on_my_cpu(s->conn.fd))
        UFIO_DBG(dev->name, "owner pinned to our CPU: the run loop waits in epoll");
    else if (ufio_conn_set_blocking(&s->conn, DEV_WAIT_MS))
        UFIO_WARN(dev->name, "socket stays non-blocking: the run loop waits in epoll");
    if (dev->ops.attach)
        dev->ops.attach(dev, dev->opaque);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Takes what epoll has: stop requests, new connections, readable sessions. */
static int dev_poll(struct ufio_sessions *ss, int timeout_ms)
{
    struct epoll_event ev[16];
    int n = epoll_wait(ss->epfd, ev, 16, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        void *p = ev[i].data.ptr;
        if (p == &ss->stop_efd) {
            uint64_t junk;
            if (read(ss->stop_efd, &junk, sizeof(junk)) == sizeof(junk))
                ss->stopping = true; /* a stop_req hint left behind finds the eventfd empty */
        } else if (p == &ss->listen_fd) {
            dev_accept(ss, ss->listen_fd, false);
        } else if (p == &ss->mgmt_fd) {
            dev_accept(ss, ss->mgmt_fd, true);
        } else if (p == &ss->q_efd) {
            sess_quiesce_wake(ss);
        } else {
            struct ufio_session *s = p;
            s->readable = true;
            /* a held session is out of EPOLLIN, but a hang-up is reported
             * anyway: nobody is left to answer, and epoll would spin on it */
            if (s->held && (ev[i].events & (EPOLLHUP | EPOLLERR)) && !s->drop) {
                s->drop = true;
                s->drop_why = "disconnected while held";
            }
        }
    }
    return n;
}

/* Something to do without waiting for the sockets? */
static bool dev_buffered(const struct ufio_sessions *ss)
{
    for (const struct ufio_session *s = ss->list; s; s = s->next) {
        if (s->q_teardown)
            continue; /* the quiesce's eventfd wakes the loop for it */
        if (s->drop || (s->held && !sess_still_held(s)))
            return true;
        if (!s->held && (s->nqueued || ufio_conn_ready(&s->conn)))
            return true;
    }
    return false;
}

/* Closes sessions that must go: dropped, or past their deadline. */
static void dev_reap(struct ufio_sessions *ss, uint64_t now)
{
    for (struct ufio_session *s = ss->list, *next; s; s = next) {
        next = s->next;
        if (!s->drop && s->deadline_ns && now >= s->deadline_ns) {
            s->drop = true;
            s->drop_why = s->negotiated ? "a message begun was not completed in time" : "no VERSION in time";
            if (s->held && s->nqueued) {
                /* a would-be owner that waited all that time: say why it is refused */
                ufio_conn_send_error(&s->conn, &s->queued[0].hdr, -EBUSY);
                s->drop_why = "an owner is attached";
            }
        }
        /* a dropped owner's mappings wait for the device to quiesce */
        if (s->drop && sess_quiesce_teardown(s) != SESS_DEFER)
            sess_free(s, s->drop_why ? s->drop_why : "protocol error");
    }
}

/*
 * One round over the sessions, starting where the last one stopped: each
 * with something to do gets up to DEV_MSGS_PER_TURN messages, so a session
 * flooding requests delays the others by at most that many.
 */
static int dev_round(struct ufio_sessions *ss, bool buffered_only)
{
    int handled = 0;
    size_t n = ss->n;
    struct ufio_session *s = ss->rr ? ss->rr : ss->list;
    for (size_t i = 0; i < n && s; i++) {
        struct ufio_session *next = s->next ? s->next : ss->list;
        bool go = buffered_only ? (s->held ? !sess_still_held(s) : (s->nqueued || ufio_conn_ready(&s->conn)))
                                : sess_pending(s);
        if (go && !s->drop) {
            struct ufio_session *owner_before = ss->owner;
            bool was_negotiated = s->negotiated;
            handled += sess_serve(s, DEV_MSGS_PER_TURN);
            if (!was_negotiated && s->negotiated && ss->owner == s && owner_before != s)
                dev_owner_setup(ss, s);
        }
        s = next;
    }
    ss->rr = s;
    return handled;
}

/* Returns the number of messages handled (>= 0) or a negative errno. */
static int dev_step(struct ufio_dev *dev)
{
    struct ufio_sessions *ss = dev->ss;
    bool alone = ss->n == 1 && ss->owner;
    if (ss->owner)
        ss->owner->conn.block_body = ss->in_run && alone;
    int handled = dev_round(ss, false);
    /* a caller's poll() on our fd would sleep on messages already read ahead */
    for (int r = 0; r < DEV_ROUNDS_PER_STEP && dev_buffered(ss); r++) {
        dev_reap(ss, now_ns());
        handled += dev_round(ss, true);
    }
    dev_reap(ss, now_ns());
    if (ss->fd_mode && !ss->n)
        return -ENOTCONN;
    return handled;
}

UFIO_API int ufio_dev_run_once(struct ufio_dev *dev)
{
    int r = dev_poll(dev->ss, 0);
    if (r < 0)
        return r;
    r = dev_step(dev);
    return r < 0 ? r : 0;
}

UFIO_API int ufio_dev_set_poll_budget(struct ufio_dev *dev, unsigned usec)
{
    if (usec > UFIO_MAX_POLL_US)
        return -EINVAL;
    dev->ss->poll_us = usec;
    return 0;
}

/*
 * Takes a stop request made while the loop slept somewhere other than epoll.
 * The eventfd's count is the request; stop_req only says "look at it", so a
 * hint left over from a request that epoll already took (or one set before
 * its eventfd write) can never stop a later ufio_dev_run() that nobody asked
 * to stop.
 */
static bool dev_stop_requested(struct ufio_sessions *ss)
{
    if (!atomic_exchange(&ss->stop_req, 0))
        return false;
    uint64_t junk;
    if (read(ss->stop_efd, &junk, sizeof(junk)) != sizeof(junk))
        return false; /* taken by dev_poll already: it set stopping */
    ss->stopping = true;
    return true;
}

/* epoll_wait's timeout: until the nearest session deadline, -1 = none. */
static int dev_wait_ms(const struct ufio_sessions *ss)
{
    uint64_t first = 0;
    for (const struct ufio_session *s = ss->list; s; s = s->next)
        if (s->deadline_ns && (!first || s->deadline_ns < first))
            first = s->deadline_ns;
    if (!first)
        return -1;
    uint64_t now = now_ns();
    if (first <= now)
        return 0;
    uint64_t ms = (first - now + 999999) / 1000000;
    return ms > 60000 ? 60000 : (int)ms;
}

/*
 * The loop sleeps, except that after handling a message it keeps polling the
 * sockets for up to poll_us: back-to-back accesses then find the server awake
 * instead of paying a scheduler wake-up each (tens of µs across CPUs), while
 * an idle device goes back to sleep once the budget is spent.
 *
 * It sleeps in epoll_wait over every socket at once (the owner's, the
 * listeners, the other sessions, the stop and quiesce eventfds), so a
 * connection to the management socket (a takeover, ufio-lspci) is taken at
 * once. Two exceptions while the owner is the only session: if it has sent
 * something in the last DEV_HOT_NS and runs on another CPU, the loop sleeps in
 * recvmsg on the owner's socket (a wake-up there costs ~5 µs less than
 * epoll_wait's across CPUs, see ufio_conn_set_blocking) for at most
 * DEV_WAIT_MS at a time, and every DEV_LOOK_NS while the owner keeps it busy
 * it looks at the rest without sleeping (a connection under a busy owner
 * waits about 1 ms); otherwise it sleeps in poll() with no timeout on the
 * owner's socket, the eventfds and the listeners, which arms no timer per
 * request (the cost that matters when the owner shares our CPU).
 */
UFIO_API int ufio_dev_run(struct ufio_dev *dev)
{
    struct ufio_sessions *ss = dev->ss;
    ss->stopping = false;
    ss->in_run = true;
    int ret = 0;
    uint64_t spin_until = 0, next_look = 0, hot_until = 0;
    while (!ss->stopping && !dev_stop_requested(ss)) {
        struct ufio_session *o = ss->owner;
        bool alone = o && ss->n == 1 && !o->held && !o->deadline_ns;
        bool busy = dev_buffered(ss);
        uint64_t now = now_ns();
        bool spin = ss->poll_us && now < spin_until;
        bool looked = false;
        int r = 0;
        if (!busy && !spin) {
            if (alone && now < hot_until && o->conn.fd_blocking && !o->conn.in_body) {
                ufio_conn_fill_wait(&o->conn); /* errors surface in the session's recv */
                o->readable = true;
                if (dev_stop_requested(ss))
                    break;
            } else if (alone && !o->conn.in_body) {
                /* The owner shares our one CPU: poll() on its socket, the stop
                 * eventfd and the listeners costs less than epoll_wait, and with
                 * no timeout (the owner alone has no deadline) no timer is armed
                 * and cancelled per request, which a VM pays dearly for. */
                struct pollfd p[5] = { { .fd = o->conn.fd, .events = POLLIN }, { .fd = ss->stop_efd, .events = POLLIN },
                                       { .fd = ss->listen_fd, .events = POLLIN }, { .fd = ss->mgmt_fd, .events = POLLIN },
                                       { .fd = ss->q_efd, .events = POLLIN } };
                if (poll(p, 5, -1) > 0) { /* negative fds (no listener, no quiesce) are skipped */
                    if (p[0].revents)
                        o->readable = true;
                    if (p[1].revents || p[2].revents || p[3].revents || p[4].revents)
                        next_look = 0; /* stop, accept or take the quiesce now: below */
                }
                if (dev_stop_requested(ss))
                    break;
            } else {
                r = dev_poll(ss, dev_wait_ms(ss));
                looked = true;
            }
        } else if (alone) {
            o->readable = true; /* spinning on the owner: its recv looks */
        } else if (!busy) {
            r = dev_poll(ss, 0);
            looked = true;
        }
        now = now_ns();
        if (looked) {
            next_look = now + DEV_LOOK_NS;
        } else if (r >= 0 && now >= next_look) {
            next_look = now + DEV_LOOK_NS;
            r = dev_poll(ss, 0);
        }
        if (r < 0) {
            ret = r;
            break;
        }
        if (ss->stopping)
            break;
        r = dev_step(dev);
        if (r < 0) {
            ret = r == -ENOTCONN ? 0 : r;
            break;
        }
        if (r > 0 && alone)
            hot_until = now_ns() + DEV_HOT_NS;
        if (r > 0 && ss->poll_us)
            spin_until = now_ns() + (uint64_t)ss->poll_us * 1000u;
        else if (r == 0 && ss->poll_us)
            sched_yield(); /* a client on this same CPU must get to run to answer */
    }
    ss->in_run = false;
    if (ss->owner)
        ss->owner->conn.block_body = false;
    return ret;
}

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "ufio_dev_stop() needs a lock-free atomic int for signal handlers");

UFIO_API void ufio_dev_stop(struct ufio_dev *dev)
{
    struct ufio_sessions *ss = dev->ss;
    /* the eventfd first: whoever sees the hint finds the request there */
    uint64_t one = 1;
    ssize_t r = write(ss->stop_efd, &one, sizeof(one));
    (void)r;
    atomic_store(&ss->stop_req, 1);
}
