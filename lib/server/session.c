/*
 * A session per connection: its life, its service turn, and the server's own
 * requests to its peer.
 */
#include "server/session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "proto/cmd.h"

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void sess_set_armed(struct ufio_session *s, bool on)
{
    if (s->armed == on || s->conn.fd < 0)
        return;
    struct epoll_event ev = { .events = on ? EPOLLIN : 0, .data.ptr = s };
    if (epoll_ctl(s->ss->epfd, EPOLL_CTL_MOD, s->conn.fd, &ev) == 0)
        s->armed = on;
}

struct ufio_session *sess_new(struct ufio_sessions *ss, int fd, bool on_mgmt, pid_t pid, uid_t uid)
{
    struct ufio_session *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    struct ufio_dev *dev = ss->dev;
    s->ss = ss;
    s->dev = dev;
    s->id = ++ss->next_id;
    s->on_mgmt = on_mgmt;
    s->pid = pid;
    s->uid = uid;
    /* the largest legal message: a REGION_WRITE of max_data_xfer_size */
    ufio_conn_init(&s->conn, fd, VFIO_USER_HDR_SIZE + 16 + (size_t)dev->lim.max_data_xfer_size + 4096,
                   dev->lim.max_msg_fds);
    s->conn.send_timeout_ms = dev->lim.reply_timeout_ms;
    s->twin.fd = -1;
    s->sink = (struct ufio_conn_sink){ .prefix = 16, .place = sess_sink_place, .opaque = s };
    s->conn.sink = &s->sink;
    /* small commands are decoded where they were read: no malloc, no copy */
    ufio_conn_lend(&s->conn, true);
    ufio_caps_defaults(&s->peer);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = s };
    if (epoll_ctl(ss->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        free(s);
        return NULL;
    }
    s->armed = true;
    s->readable = true;
    if (ss->handshake_ms)
        s->deadline_ns = mono_ns() + (uint64_t)ss->handshake_ms * 1000000u;
    s->next = ss->list;
    ss->list = s;
    ss->n++;
    if (pid >= 0)
        UFIO_INFO(dev->name, "session %u: connected on the %s socket (pid %d, uid %u)", s->id,
                  on_mgmt ? "management" : "device", (int)pid, (unsigned)uid);
    else
        UFIO_INFO(dev->name, "session %u: connected", s->id);
    return s;
}

void sess_free(struct ufio_session *s, const char *why)
{
    struct ufio_sessions *ss = s->ss;
    struct ufio_dev *dev = s->dev;
    UFIO_INFO(dev->name, "session %u (%s) gone: %s", s->id, ufio_role_name(s->role), why);
    sess_quiesce_forget(s);
    if (s->conn.fd >= 0)
        epoll_ctl(ss->epfd, EPOLL_CTL_DEL, s->conn.fd, NULL);
    ufio_conn_close(&s->conn);
    if (s->has_twin)
        ufio_conn_close(&s->twin);
    for (size_t i = 0; i < s->nqueued; i++)
        ufio_msg_release(&s->queued[i]);
    s->nqueued = 0;
    /* what the session started ends with it, as when a device file closes */
    if (ss->log_holder == s) {
        dma_log_stop(dev);
        ss->log_holder = NULL;
    }
    if (ss->controller == s)
        ss->controller = NULL;
    if (ss->owner == s) {
        /* the spec: drop the client's DMA mappings and IRQ fds, keep device state */
        dev->request = NULL;
        dev->request_opaque = NULL;
        dev->peer_xfer = 0;
        dma_unmap_all(dev);
        irq_drop_client_fds(dev);
        ss->owner = NULL;
        if (s->negotiated && dev->ops.detach)
            dev->ops.detach(dev, dev->opaque);
    }
    /* After the owner's memory is gone: a device that runs again must not
     * find the rings of a guest that now lives on elsewhere (a migrated
     * source whose VMM disconnects would otherwise serve stale requests into
     * memory the destination owns), as the kernel closes the container first. */
    if (ss->mig_holder == s) {
        ss->mig_holder = NULL;
        /* STOP is where a migrated source rests: a controller that finished
         * leaves it there (running it again would give the device two lives).
         * Anything in between, or the owner's own migration, goes back to
         * RUNNING as the kernel does when the device file closes. */
        if (s->role != UFIO_ROLE_CONTROLLER || ufio_dev_mig_state(dev) != UFIO_MIG_STOP)
            dev_mig_abandon(dev);
    }
    for (struct ufio_session **p = &ss->list; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    if (ss->rr == s)
        ss->rr = s->next;
    ss->n--;
    free(s);
}

bool sess_owner_hold(const struct ufio_sessions *ss)
{
    /* a DMA_MAP or a doorbell now could start what the device is finishing */
    if (sess_quiesce_owner_hold(ss))
        return true;
    if (!ss->controller || ss->mig_holder != ss->controller)
        return false;
    unsigned st = ufio_dev_mig_state(ss->dev);
    /* the P2P states still take MMIO (the kernel's uAPI): only a stopped device holds */
    return st != UFIO_MIG_RUNNING && st != UFIO_MIG_PRE_COPY && st != UFIO_MIG_RUNNING_P2P &&
           st != UFIO_MIG_PRE_COPY_P2P;
}

void sess_mig_changed(struct ufio_sessions *ss, struct ufio_session *by, unsigned before)
{
    unsigned now = ufio_dev_mig_state(ss->dev);
    if (now != before)
        ss->migrated_away = before == UFIO_MIG_STOP_COPY && now == UFIO_MIG_STOP && by->role == UFIO_ROLE_CONTROLLER;
    /* the session that moved it holds it: not one that only looked (a GET of the state by
     * an observer, or an owner's, must not become the holder whose leaving runs the device) */
    if (now == UFIO_MIG_RUNNING)
        ss->mig_holder = NULL;
    else if (!ss->mig_holder && now != before)
        ss->mig_holder = by;
    if (!ss->dev->dma.logging)
        ss->log_holder = NULL;
    else if (!ss->log_holder)
        ss->log_holder = by;
}

/*
 * A VERSION asking for the owner's or the controller's place while it is
 * taken waits for it to be free (its holder may be closing right now: a VMM
 * or a migration tool that reconnects must not be refused), until the
 * handshake deadline; then -EBUSY. Returns the role waited for, or 0;
 * *no_wait: the VERSION said "ufio_no_wait" (a takeover), so it is refused
 * at once instead.
 */
static unsigned role_to_wait_for(const struct ufio_session *s, const struct ufio_msg *m, bool *no_wait)
{
    if (s->negotiated || m->hdr.cmd != VFIO_USER_VERSION || ufio_hdr_is_reply(&m->hdr))
        return 0;
    struct ufio_version v;
    if (ufio_version_decode(m->payload, m->len, &v))
        return 0; /* the handler answers it */
    unsigned role = v.caps.role ? v.caps.role : s->on_mgmt ? UFIO_ROLE_OBSERVER : UFIO_ROLE_OWNER;
    *no_wait = v.caps.no_wait;
    if (role == UFIO_ROLE_OWNER && s->ss->owner && !s->on_mgmt)
        return role;
    if (role == UFIO_ROLE_CONTROLLER && s->ss->controller)
        return role;
    return 0;
}

bool sess_migrated_away(const struct ufio_sessions *ss)
{
    return ss->migrated_away && ufio_dev_mig_state(ss->dev) == UFIO_MIG_STOP;
}

bool sess_still_held(const struct ufio_session *s)
{
    if (!s->negotiated)
        return (s->wait_role == UFIO_ROLE_OWNER ? s->ss->owner : s->ss->controller) != NULL;
    if (s->q_held)
        return sess_quiesce_holds(s);
    return sess_owner_hold(s->ss);
}

bool sess_pending(const struct ufio_session *s)
{
    if (s->drop)
        return true;
    if (s->held)
        return !sess_still_held(s);
    return s->nqueued || s->readable || ufio_conn_ready(&s->conn);
}

/* A held message waits past this turn: it must own its bytes (false: no memory). */
static bool queue_push_front(struct ufio_session *s, struct ufio_msg *m)
{
    if (ufio_msg_own(&s->conn, m)) {
        ufio_conn_recycle(&s->conn, m);
        return false;
    }
    /* room: it came out of the queue or the queue was empty */
    memmove(&s->queued[1], &s->queued[0], s->nqueued * sizeof(*m));
    s->queued[0] = *m;
    s->nqueued++;
    return true;
}

static void queue_pop(struct ufio_session *s, struct ufio_msg *m)
{
    *m = s->queued[0];
    memmove(&s->queued[0], &s->queued[1], (s->nqueued - 1) * sizeof(*m));
    s->nqueued--;
}

static void set_drop(struct ufio_session *s, const char *why)
{
    if (!s->drop) {
        s->drop = true;
        s->drop_why = why;
    }
}

int sess_serve(struct ufio_session *s, int budget)
{
    struct ufio_sessions *ss = s->ss;
    int handled = 0;
    while (handled < budget && !s->drop) {
        if (s->held) {
            if (sess_still_held(s))
                break;
            s->held = false;
            s->q_held = false;
            s->readable = true;
            sess_set_armed(s, true);
            UFIO_DBG(s->dev->name, "session %u: device running again, held requests go on", s->id);
        }
        struct ufio_msg m;
        ufio_msg_init(&m);
        bool from_queue = s->nqueued > 0;
        if (from_queue) {
            queue_pop(s, &m);
        } else {
            int r = ufio_conn_recv(&s->conn, &m);
            if (r == 0) {
                s->readable = false;
                if (s->negotiated && ss->msg_ms) {
                    if (!ufio_conn_partial(&s->conn))
                        s->deadline_ns = 0;
                    else if (!s->deadline_ns)
                        s->deadline_ns = mono_ns() + (uint64_t)ss->msg_ms * 1000000u;
                }
                break;
            }
            if (r < 0) {
                set_drop(s, r == -ECONNRESET ? "disconnected" : r == -EPROTO ? "framing error" : "receive error");
                break;
            }
            if (s->negotiated)
                s->deadline_ns = 0;
        }
        bool no_wait = false;
        if (!s->negotiated && (s->wait_role = role_to_wait_for(s, &m, &no_wait)) != 0 && no_wait) {
            ufio_conn_send_error(&s->conn, &m.hdr, -EBUSY);
            ufio_msg_release(&m);
            set_drop(s, s->wait_role == UFIO_ROLE_OWNER ? "an owner is attached (no wait asked)"
                                                        : "another controller holds the device (no wait asked)");
            break;
        }
        if (!s->negotiated && s->wait_role) {
            if (!queue_push_front(s, &m)) {
                set_drop(s, "out of memory");
                break;
            }
            s->held = true;
            sess_set_armed(s, false);
            UFIO_DBG(s->dev->name, "session %u: waits for the %s to go", s->id, ufio_role_name(s->wait_role));
            break;
        }
        if (s == ss->owner && sess_msg_touches_state(&m) && sess_owner_hold(ss)) {
            if (!queue_push_front(s, &m)) {
                set_drop(s, "out of memory");
                break;
            }
            s->held = true;
            sess_set_armed(s, false); /* nothing after it is read: order is kept */
            UFIO_DBG(s->dev->name, "session %u: %s held while the device is stopped", s->id,
                     ufio_cmd_name(m.hdr.cmd));
            break;
        }
        bool posted = m.hdr.flags & VFIO_USER_F_NO_REPLY;
        sess_handle_msg(s, &m);
        if (s->q_defer) {
            /* the device quiesces: this message is handled again when it is done */
            s->q_defer = false;
            if (s->nqueued >= UFIO_DEV_MAX_QUEUED) {
                ufio_msg_release(&m);
                set_drop(s, "too many commands queued during a quiesce");
                break;
            }
            if (!queue_push_front(s, &m)) {
                set_drop(s, "out of memory");
                break;
            }
            s->held = true;
            s->q_held = true;
            sess_set_armed(s, false); /* nothing after it is read: order is kept */
            break;
        }
        if (s->conn.fd >= 0)
            ufio_conn_recycle(&s->conn, &m);
        else
            ufio_msg_release(&m);
        handled++;
        /* After a request that was answered the peer usually waits: go back
         * to the wait rather than pay a recvmsg that finds nothing. Posted
         * writes come in bursts: keep reading. */
        if (!posted && !s->nqueued && !ufio_conn_ready(&s->conn)) {
            s->readable = false;
            break;
        }
    }
    return handled;
}

/* ---- the server's own requests ------------------------------------------- */

static int sess_wait_reply(struct ufio_session *s, struct ufio_conn *c, const struct vfio_user_header *h,
                           struct ufio_msg *reply)
{
    struct ufio_dev *dev = s->dev;
    for (;;) {
        struct ufio_msg m;
        ufio_msg_init(&m);
        int err = ufio_conn_recv_wait(c, &m, dev->lim.reply_timeout_ms);
        if (err < 0) {
            UFIO_WARN(dev->name, "no reply to %s msg_id %u: %s", ufio_cmd_name(h->cmd), h->msg_id, strerror(-err));
            set_drop(s, "no reply to a DMA request");
            return err == -ETIMEDOUT ? -ETIMEDOUT : -ENOTCONN;
        }
        if (ufio_hdr_is_reply(&m.hdr) && m.hdr.msg_id == h->msg_id && m.hdr.cmd == h->cmd) {
            *reply = m;
            return 0;
        }
        if (c == &s->conn && !ufio_hdr_is_reply(&m.hdr) && s->nqueued < UFIO_DEV_MAX_QUEUED) {
            s->queued[s->nqueued++] = m;
            continue;
        }
        UFIO_WARN(dev->name, "unexpected %s msg_id %u while waiting for a DMA reply", ufio_cmd_name(m.hdr.cmd),
                  m.hdr.msg_id);
        ufio_msg_release(&m);
        if (c == &s->conn && s->nqueued >= UFIO_DEV_MAX_QUEUED) {
            set_drop(s, "too many commands while a DMA reply was awaited");
            return -ENOBUFS;
        }
    }
}

int sess_send_request(struct ufio_session *s, uint16_t cmd, const struct iovec *iov, int iovcnt, void *dst,
                      size_t dst_len, struct ufio_msg *reply)
{
    if (!s->negotiated || s->drop)
        return -ENOTCONN;
    struct ufio_conn *c = s->has_twin ? &s->twin : &s->conn;
    struct vfio_user_header h = {
        .msg_id = s->next_msg_id++,
        .cmd = cmd,
        .flags = VFIO_USER_F_TYPE_COMMAND,
    };
    int err = ufio_conn_send(c, &h, iov, iovcnt, NULL, 0);
    if (err) {
        set_drop(s, "send failed");
        return err;
    }
    /* commands read meanwhile are queued: none may touch device memory early */
    s->awaiting_reply = true;
    if (dst && dst_len && iovcnt > 0 && iov[0].iov_len == 16) {
        s->expect.msg_id = h.msg_id;
        s->expect.cmd = cmd;
        memcpy(s->expect.head, iov[0].iov_base, 16);
        s->expect.dst = dst;
        s->expect.len = dst_len;
    }
    err = sess_wait_reply(s, c, &h, reply);
    if (err && c->in_body && c->cur.sunk)
        ufio_conn_sink_divert(c); /* dst belongs to our caller, who is leaving */
    s->expect.dst = NULL;
    s->awaiting_reply = false;
    return err;
}
