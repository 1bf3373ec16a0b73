/*
 * Device lifecycle, the client connection and the run loop.
 */
#include "server/dev_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "common/abi.h"
#include "common/log.h"

#define DEV_MSGS_PER_STEP 64
/* longest sleep in recvmsg before ufio_dev_run() looks for a stop request */
#define DEV_WAIT_MS 100

static size_t dev_max_msg(const struct ufio_dev *dev)
{
    /* the largest legal message: a REGION_WRITE of max_data_xfer_size */
    return VFIO_USER_HDR_SIZE + 16 + (size_t)dev->lim.max_data_xfer_size + 4096;
}

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
        .max_dma_maps = 1024,
        .twin_socket = true,
        .write_multiple = true,
        .reply_timeout_ms = 5000,
        .max_mig_stream = 1ull << 30,
    };
    pci_cfg_init(&dev->cfg, ids->vendor_id, ids->device_id, ids->subsys_vendor_id,
                 ids->subsys_id, ids->class_code, ids->revision);
    for (unsigned i = 0; i < UFIO_PCI_NUM_REGIONS; i++)
        dev->regions[i].memfd = -1;
    dev->regions[UFIO_PCI_CONFIG_REGION].size = dev->cfg.size;
    dev->regions[UFIO_PCI_CONFIG_REGION].info_flags = VFIO_REGION_INFO_FLAG_READ |
                                                      VFIO_REGION_INFO_FLAG_WRITE;
    dev->listen_fd = -1;
    dev->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    dev->conn.fd = -1;
    dev->twin.fd = -1;
    dev->epfd = epoll_create1(EPOLL_CLOEXEC);
    dev->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int err = 0;
    if (dev->epfd < 0 || dev->stop_efd < 0) {
        err = -errno;
        goto fail;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 0 };
    if (epoll_ctl(dev->epfd, EPOLL_CTL_ADD, dev->stop_efd, &ev) < 0) {
        err = -errno;
        goto fail;
    }
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
    if (dev->connected)
        dev_client_gone(dev, "device destroyed");
    ufio_dev_unlink_socket(dev);
    if (dev->listen_fd >= 0)
        close(dev->listen_fd);
    dma_unmap_all(dev);
    free(dev->dma.r);
    dev_mig_free(dev);
    free(dev->compat_json);
    irq_free_all(dev);
    region_free_all(dev);
    if (dev->epfd >= 0)
        close(dev->epfd);
    if (dev->stop_efd >= 0)
        close(dev->stop_efd);
    if (dev->reserve_fd >= 0)
        close(dev->reserve_fd);
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
        l->reply_timeout_ms == 0 || l->max_mig_stream < (1u << 20))
        return -EINVAL;
    if (dev->connected)
        return -EBUSY;
    dev->lim = *l;
    return 0;
}

/* ---- connection ------------------------------------------------------ */

static int ep_set(struct ufio_dev *dev, int fd, int op, uint32_t tag)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = tag };
    if (epoll_ctl(dev->epfd, op, fd, op == EPOLL_CTL_DEL ? NULL : &ev) < 0)
        return -errno;
    return 0;
}

static void dev_build(struct ufio_dev *dev)
{
    if (dev->built)
        return;
    pci_cfg_commit(&dev->cfg);
    dev->regions[UFIO_PCI_CONFIG_REGION].size = dev->cfg.size;
    dev->built = true;
}

static int dev_take_conn(struct ufio_dev *dev, int fd)
{
    ufio_conn_init(&dev->conn, fd, dev_max_msg(dev), dev->lim.max_msg_fds);
    dev->conn.send_timeout_ms = dev->lim.reply_timeout_ms;
    /* ufio_dev_run() sleeps in recvmsg on this socket (see there), unless the
     * client shares our one CPU: then epoll is the cheaper wait */
    if (ufio_sock_peer_on_my_cpu(fd))
        UFIO_DBG(dev->name, "client pinned to our CPU: the run loop waits in epoll");
    else if (ufio_conn_set_blocking(&dev->conn, DEV_WAIT_MS))
        UFIO_WARN(dev->name, "socket stays non-blocking: the run loop waits in epoll");
    dev->conn.block_body = dev->in_run;
    dev->sink = (struct ufio_conn_sink){ .prefix = 16, .place = dev_sink_place, .opaque = dev };
    dev->conn.sink = &dev->sink;
    int err = ep_set(dev, fd, EPOLL_CTL_ADD, 2);
    if (err) {
        ufio_conn_close(&dev->conn);
        return err;
    }
    dev->connected = true;
    dev->negotiated = false;
    dev->drop_conn = false;
    ufio_caps_defaults(&dev->peer);
    if (dev->listen_fd >= 0)
        ep_set(dev, dev->listen_fd, EPOLL_CTL_DEL, 1); /* one client at a time */
    UFIO_INFO(dev->name, "client connected");
    return 0;
}

void dev_client_gone(struct ufio_dev *dev, const char *why)
{
    if (!dev->connected)
        return;
    UFIO_INFO(dev->name, "client gone: %s", why);
    ep_set(dev, dev->conn.fd, EPOLL_CTL_DEL, 2);
    ufio_conn_close(&dev->conn);
    if (dev->has_twin) {
        ufio_conn_close(&dev->twin);
        dev->has_twin = false;
    }
    for (size_t i = 0; i < dev->nqueued; i++)
        ufio_msg_release(&dev->queued[i]);
    dev->nqueued = 0;
    /* The spec: drop the client's DMA mappings and IRQ fds, keep device state.
     * Dirty logging is the client's too (the kernel stops it when the device fd
     * closes): the next client starts without it. */
    dma_log_stop(dev);
    dma_unmap_all(dev);
    irq_drop_client_fds(dev);
    bool was_negotiated = dev->negotiated;
    dev->connected = false;
    dev->negotiated = false;
    if (was_negotiated && dev->ops.detach)
        dev->ops.detach(dev, dev->opaque);
    if (dev->listen_fd >= 0)
        ep_set(dev, dev->listen_fd, EPOLL_CTL_ADD, 1);
}

UFIO_API int ufio_dev_listen(struct ufio_dev *dev, const char *path)
{
    if (!path || dev->listen_fd >= 0 || dev->connected)
        return -EINVAL;
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    int fd;
    int err = ufio_sock_listen(path, &fd);
    if (err) {
        free(copy);
        return err;
    }
    err = ep_set(dev, fd, EPOLL_CTL_ADD, 1);
    if (err) {
        close(fd);
        unlink(path);
        free(copy);
        return err;
    }
    dev_build(dev);
    dev->listen_fd = fd;
    dev->sock_path = copy;
    return 0;
}

UFIO_API int ufio_dev_attach_fd(struct ufio_dev *dev, int fd)
{
    if (fd < 0 || dev->connected || dev->listen_fd >= 0)
        return -EINVAL;
    int err = ufio_set_nonblock(fd, true);
    if (err)
        return err;
    dev_build(dev);
    dev->fd_mode = true;
    return dev_take_conn(dev, fd);
}

UFIO_API void ufio_dev_unlink_socket(struct ufio_dev *dev)
{
    if (dev && dev->sock_path) {
        unlink(dev->sock_path);
        free(dev->sock_path);
        dev->sock_path = NULL;
    }
}

UFIO_API int ufio_dev_get_poll_fd(struct ufio_dev *dev) { return dev->epfd; }
UFIO_API bool ufio_dev_client_connected(struct ufio_dev *dev) { return dev->connected; }

static int dev_wait_reply(struct ufio_dev *dev, struct ufio_conn *c, const struct vfio_user_header *req,
                          struct ufio_msg *reply);

/*
 * Sends a server->client request (DMA_READ/DMA_WRITE) and waits for its
 * reply, matched by msg_id and command. On the twin socket nothing else can
 * arrive; on the main socket, client commands that arrive meanwhile are
 * queued and handled, in order, after the current one.
 */
int dev_send_request(struct ufio_dev *dev, uint16_t cmd, const struct iovec *iov, int iovcnt,
                     void *dst, size_t dst_len, struct ufio_msg *reply)
{
    if (!dev->connected || !dev->negotiated)
        return -ENOTCONN;
    struct ufio_conn *c = dev->has_twin ? &dev->twin : &dev->conn;
    struct vfio_user_header h = {
        .msg_id = dev->next_msg_id++,
        .cmd = cmd,
        .flags = VFIO_USER_F_TYPE_COMMAND,
    };
    int err = ufio_conn_send(c, &h, iov, iovcnt, NULL, 0);
    if (err) {
        dev->drop_conn = true;
        return err;
    }
    /* commands read meanwhile are queued: none may touch device memory early */
    dev->awaiting_reply = true;
    if (dst && dst_len && iovcnt > 0 && iov[0].iov_len == 16) {
        dev->expect.msg_id = h.msg_id;
        dev->expect.cmd = cmd;
        memcpy(dev->expect.head, iov[0].iov_base, 16);
        dev->expect.dst = dst;
        dev->expect.len = dst_len;
    }
    err = dev_wait_reply(dev, c, &h, reply);
    if (err && c->in_body && c->cur.sunk)
        ufio_conn_sink_divert(c); /* dst belongs to our caller, who is leaving */
    dev->expect.dst = NULL;
    dev->awaiting_reply = false;
    return err;
}

static int dev_wait_reply(struct ufio_dev *dev, struct ufio_conn *c, const struct vfio_user_header *req,
                          struct ufio_msg *reply)
{
    uint16_t cmd = req->cmd;
    const struct vfio_user_header h = *req;
    int err;
    for (;;) {
        struct ufio_msg m;
        ufio_msg_init(&m);
        err = ufio_conn_recv_wait(c, &m, dev->lim.reply_timeout_ms);
        if (err < 0) {
            UFIO_WARN(dev->name, "no reply to %s msg_id %u: %s", ufio_cmd_name(cmd), h.msg_id,
                      strerror(-err));
            dev->drop_conn = true;
            return err == -ETIMEDOUT ? -ETIMEDOUT : -ENOTCONN;
        }
        if (ufio_hdr_is_reply(&m.hdr) && m.hdr.msg_id == h.msg_id && m.hdr.cmd == cmd) {
            *reply = m;
            return 0;
        }
        if (c == &dev->conn && !ufio_hdr_is_reply(&m.hdr) && dev->nqueued < UFIO_DEV_MAX_QUEUED) {
            dev->queued[dev->nqueued++] = m;
            continue;
        }
        UFIO_WARN(dev->name, "unexpected %s msg_id %u while waiting for a DMA reply",
                  ufio_cmd_name(m.hdr.cmd), m.hdr.msg_id);
        ufio_msg_release(&m);
        if (c == &dev->conn && dev->nqueued >= UFIO_DEV_MAX_QUEUED) {
            dev->drop_conn = true;
            return -ENOBUFS;
        }
    }
}

/*
 * Out of fds, accept() fails and the pending connection keeps the listener
 * readable: the loop would spin. A reserved fd is given up to accept and
 * drop that client (it sees EOF), then taken back.
 */
static void dev_try_accept(struct ufio_dev *dev)
{
    int fd;
    int err = ufio_sock_accept(dev->listen_fd, &fd);
    if (err == 0) {
        if (dev_take_conn(dev, fd) != 0)
            close(fd);
        return;
    }
    if ((err == -EMFILE || err == -ENFILE) && dev->reserve_fd >= 0) {
        close(dev->reserve_fd);
        dev->reserve_fd = -1;
        if (ufio_sock_accept(dev->listen_fd, &fd) == 0)
            close(fd);
        dev->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        UFIO_WARN(dev->name, "out of file descriptors: refused a client");
    }
}

static void dev_handle_one(struct ufio_dev *dev, struct ufio_msg *m)
{
    dev_handle_msg(dev, m);
    if (dev->connected)
        ufio_conn_recycle(&dev->conn, m);
    else
        ufio_msg_release(m);
}

/* Runs the commands that were queued during a DMA wait, oldest first. */
static void dev_drain_queue(struct ufio_dev *dev)
{
    while (dev->connected && dev->nqueued && !dev->drop_conn) {
        struct ufio_msg m = dev->queued[0];
        memmove(&dev->queued[0], &dev->queued[1], (dev->nqueued - 1) * sizeof(m));
        dev->nqueued--;
        dev_handle_one(dev, &m);
    }
}

/* Returns the number of messages handled (>= 0) or a negative errno. */
static int dev_step(struct ufio_dev *dev)
{
    int handled = 0;
    if (!dev->connected) {
        if (dev->listen_fd >= 0)
            dev_try_accept(dev);
        else if (dev->fd_mode)
            return -ENOTCONN;
        if (!dev->connected)
            return 0;
        handled++;
    }
    for (int i = 0; i < DEV_MSGS_PER_STEP && dev->connected; i++) {
        dev_drain_queue(dev);
        if (dev->drop_conn) {
            dev_client_gone(dev, "protocol error");
            break;
        }
        struct ufio_msg m;
        ufio_msg_init(&m);
        int r = ufio_conn_recv(&dev->conn, &m);
        if (r == 0)
            break;
        if (r < 0) {
            dev_client_gone(dev, r == -ECONNRESET ? "disconnected" : strerror(-r));
            break;
        }
        bool posted = m.hdr.flags & VFIO_USER_F_NO_REPLY;
        dev_handle_one(dev, &m);
        handled++;
        if (dev->drop_conn)
            dev_client_gone(dev, "protocol error");
        /* After a request that was answered the client usually waits: go back
         * to epoll rather than pay a recvmsg that finds nothing. Posted writes
         * come in bursts: keep reading. (epoll is level-triggered, so nothing
         * left in the socket is missed.) */
        if (!posted && !dev->nqueued && !ufio_conn_ready(&dev->conn))
            break;
    }
    /* a caller's poll() on our fd would sleep on messages already read ahead */
    while (dev->connected && !dev->drop_conn && ufio_conn_ready(&dev->conn)) {
        struct ufio_msg m;
        ufio_msg_init(&m);
        int r = ufio_conn_recv(&dev->conn, &m);
        if (r <= 0) {
            if (r < 0)
                dev_client_gone(dev, strerror(-r));
            break;
        }
        dev_handle_one(dev, &m);
        handled++;
        dev_drain_queue(dev);
        if (dev->drop_conn)
            dev_client_gone(dev, "protocol error");
    }
    if (dev->fd_mode && !dev->connected)
        return -ENOTCONN;
    return handled;
}

UFIO_API int ufio_dev_run_once(struct ufio_dev *dev)
{
    int r = dev_step(dev);
    return r < 0 ? r : 0;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

UFIO_API int ufio_dev_set_poll_budget(struct ufio_dev *dev, unsigned usec)
{
    if (usec > UFIO_MAX_POLL_US)
        return -EINVAL;
    dev->poll_us = usec;
    return 0;
}

/* Takes a stop request made while the loop slept somewhere other than epoll. */
static bool dev_stop_requested(struct ufio_dev *dev)
{
    if (!dev->stop_req)
        return false;
    uint64_t junk;
    ssize_t r = read(dev->stop_efd, &junk, sizeof(junk)); /* or the next run stops at once */
    (void)r;
    dev->stop_req = 0;
    dev->stopping = true;
    return true;
}

/*
 * The loop sleeps, except that after handling a message it keeps polling the
 * socket for up to poll_us: back-to-back accesses then find the server awake
 * instead of paying a scheduler wake-up each (tens of µs across CPUs), while
 * an idle device goes back to sleep once the budget is spent.
 *
 * With a client attached it sleeps in recvmsg on the client's socket (a
 * wake-up there costs less than epoll_wait's; see ufio_conn_set_blocking),
 * for at most DEV_WAIT_MS at a time so that a ufio_dev_stop() from another
 * thread is seen (one from a signal handler interrupts the wait at once).
 * Without a client, or with a big body half-read, it sleeps in epoll_wait.
 */
UFIO_API int ufio_dev_run(struct ufio_dev *dev)
{
    dev->stopping = false;
    dev->in_run = true;
    dev->conn.block_body = dev->connected;
    int ret = 0;
    uint64_t spin_until = 0;
    while (!dev->stopping && !dev_stop_requested(dev)) {
        if (!dev->poll_us || now_ns() >= spin_until) {
            if (dev->connected && dev->conn.fd_blocking && !dev->nqueued && !dev->conn.in_body &&
                !ufio_conn_ready(&dev->conn)) {
                ufio_conn_fill_wait(&dev->conn); /* errors surface in dev_step's recv */
                if (dev_stop_requested(dev))
                    break;
                goto step;
            }
            struct epoll_event ev[4];
            int n = epoll_wait(dev->epfd, ev, 4, -1);
            if (n < 0 && errno != EINTR)
                return -errno;
            for (int i = 0; i < n; i++) {
                uint64_t junk;
                if (ev[i].data.u32 == 0 && read(dev->stop_efd, &junk, sizeof(junk)) == sizeof(junk)) {
                    dev->stopping = true;
                    dev->stop_req = 0;
                }
            }
            if (dev->stopping)
                break;
        }
    step:;
        int r = dev_step(dev);
        if (r < 0) {
            ret = r == -ENOTCONN ? 0 : r;
            break;
        }
        if (r > 0 && dev->poll_us)
            spin_until = now_ns() + (uint64_t)dev->poll_us * 1000u;
        else if (r == 0 && dev->poll_us)
            sched_yield(); /* a client on this same CPU must get to run to answer */
    }
    dev->in_run = false;
    dev->conn.block_body = false;
    return ret;
}

UFIO_API void ufio_dev_stop(struct ufio_dev *dev)
{
    dev->stop_req = 1;
    uint64_t one = 1;
    ssize_t r = write(dev->stop_efd, &one, sizeof(one));
    (void)r;
}
