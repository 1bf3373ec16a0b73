/*
 * Message dispatch for the device side. Validation happens in layers before
 * any handler runs: transport limits (size, fd count) -> header flags ->
 * negotiation state -> per-command fd allowance -> the wire decoder (sizes,
 * argsz, flags, overflow) -> the handler's device-specific checks.
 */
#include "server/session.h"
#include "server/callback.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "proto/cmd.h"
#include "transport/transport.h"

typedef int (*handler_fn)(struct ufio_session *s, struct ufio_msg *m, struct ufio_reply *rep);

static int rep_len(struct ufio_reply *rep, ssize_t len)
{
    if (len < 0)
        return (int)len;
    rep->head_len = (size_t)len;
    return 0;
}

static void rep_data(struct ufio_reply *rep, const void *p, size_t len)
{
    rep->iov[rep->iovcnt].iov_base = (void *)p;
    rep->iov[rep->iovcnt].iov_len = len;
    rep->iovcnt++;
}

/* ---- VERSION ------------------------------------------------------------ */

/*
 * The role a session gets: what it asked for (ufio_role in VERSION), else
 * owner on the device socket and observer on the management socket. The
 * owner comes only through the device socket; one owner and one controller
 * at a time (-EBUSY for a second).
 */
static int grant_role(struct ufio_session *s, unsigned asked)
{
    struct ufio_sessions *ss = s->ss;
    unsigned role = asked ? asked : s->on_mgmt ? UFIO_ROLE_OBSERVER : UFIO_ROLE_OWNER;
    if (role == UFIO_ROLE_OWNER && s->on_mgmt)
        return -EPERM;
    if ((role == UFIO_ROLE_OWNER && ss->owner) || (role == UFIO_ROLE_CONTROLLER && ss->controller))
        return -EBUSY;
    return (int)role;
}

static int owner_request(void *opaque, uint16_t cmd, const struct iovec *iov, int iovcnt, void *dst, size_t dst_len,
                         struct ufio_msg *reply)
{
    return sess_send_request(opaque, cmd, iov, iovcnt, dst, dst_len, reply);
}

void sess_make_owner(struct ufio_session *s)
{
    struct ufio_dev *dev = s->dev;
    s->ss->owner = s;
    dev->request = owner_request;
    dev->request_opaque = s;
    dev->peer_xfer = s->peer.max_data_xfer_size;
}

static int h_handover(struct ufio_session *s, struct ufio_msg *m, struct ufio_reply *rep)
{
    (void)rep;
    /* the answer is the status word and the bundle, written by takeover_give() */
    if (!(m->hdr.flags & VFIO_USER_F_NO_REPLY))
        return -EINVAL;
    /* the mappings and the device go to another process: nothing in flight may touch them */
    int err = sess_quiesce(s);
    if (err == SESS_DEFER)
        return err;
    takeover_give(s, err);
    return 0;
}

static int h_version(struct ufio_session *s, struct ufio_msg *m, struct ufio_reply *rep)
{
    struct ufio_dev *dev = s->dev;
    struct ufio_sessions *ss = s->ss;
    if (s->negotiated)
        return -EINVAL;
    struct ufio_version cv, sv = { .major = UFIO_PROTO_MAJOR, .minor = UFIO_PROTO_MINOR }, rv;
    int err = ufio_version_decode(m->payload, m->len, &cv);
    if (err)
        return err;
    ufio_caps_defaults(&sv.caps);
    sv.caps.max_msg_fds = dev->lim.max_msg_fds;
    sv.caps.max_data_xfer_size = dev->lim.max_data_xfer_size;
    sv.caps.max_dma_maps = dev->lim.max_dma_maps;
    sv.caps.pgsizes = 4096;
    sv.caps.twin_socket = dev->lim.twin_socket;
    sv.caps.write_multiple = dev->lim.write_multiple;
    sv.has_json = true;
    err = ufio_version_negotiate(&cv, &sv, &rv);
    int role = err ? err : grant_role(s, cv.caps.role);
    if (role < 0) {
        s->drop = true; /* the spec: a server that can't do the major closes; a refused role too */
        s->drop_why = role == -EBUSY ? "role taken" : "version refused";
        if (role == -EBUSY)
            UFIO_INFO(dev->name, "session %u: %s refused, one is attached", s->id,
                      ufio_role_name(cv.caps.role ? cv.caps.role : UFIO_ROLE_OWNER));
        return role;
    }
    /* DMA_READ/WRITE go only to the owner: nobody else needs a twin */
    if (role != UFIO_ROLE_OWNER)
        rv.caps.twin_socket = false;
    int pair[2];
    if (rv.caps.twin_socket && ufio_sock_pair(pair) != 0) {
        /* the twin socket is optional: without fds to spare, go on without it */
        UFIO_WARN(dev->name, "no twin socket: %s", strerror(errno));
        rv.caps.twin_socket = false;
    }
    if (rv.caps.twin_socket) {
        ufio_conn_init(&s->twin, pair[0], VFIO_USER_HDR_SIZE + 16 + (size_t)dev->lim.max_data_xfer_size, 0);
        s->twin.send_timeout_ms = dev->lim.reply_timeout_ms;
        s->twin.sink = &s->sink;
        s->has_twin = true;
        rv.caps.has_twin_fd_index = true;
        rv.caps.twin_fd_index = 0;
        rep->fds[0] = pair[1];
        rep->nfds = 1;
        rep->close_fds = true; /* the client's end: ours no more once sent */
    }
    rv.caps.role = cv.caps.role ? (uint8_t)role : 0; /* echoed only to a peer that asked */
    ssize_t n = ufio_version_encode(&rv, rep->head, sizeof(rep->head));
    if (n < 0)
        return (int)n;
    rep->head_len = (size_t)n;
    s->peer = cv.caps;
    s->write_multiple = rv.caps.write_multiple;
    s->negotiated = true;
    s->role = (unsigned)role;
    s->deadline_ns = 0;
    if (role == UFIO_ROLE_OWNER) {
        sess_make_owner(s);
    } else if (role == UFIO_ROLE_CONTROLLER) {
        ss->controller = s;
    }
    if (role != UFIO_ROLE_OWNER) {
        /* a stalled observer must not stall the loop long: its reply waits are short */
        s->conn.send_timeout_ms = role == UFIO_ROLE_CONTROLLER ? 1000 : 100;
    }
    UFIO_INFO(dev->name, "session %u: negotiated version %u.%u as %s%s", s->id, rv.major, rv.minor,
              ufio_role_name((unsigned)role), s->has_twin ? " with twin socket" : "");
    return 0;
}

/* ---- DMA ------------------------------------------------------------------ */

static int h_dma_map(struct ufio_session *s, struct ufio_msg *m, struct ufio_reply *rep)
{
    struct ufio_dev *dev = s->dev;
    struct ufio_dma_map dm;
    int err = ufio_dma_map_decode(m->payload, m->len, &dm);
    if (err)
        return err;
    int fd = m->nfds ? m->fds[0] : -1;
    /* the mapping outlives the fd: it is closed with the message either way */
    return dma_map(dev, &dm, fd);
}

static int h_dma_unmap(struct ufio_session *s, struct ufio_msg *m, struct ufio_reply *rep)
{
    struct ufio_dev *dev = s->dev;
    struct ufio_dma_unmap du;
    int err = ufio_dma_unmap_decode(m->payload, m->len, &du);
    /* only for a mapping that goes: a refused unmap breaks nothing */
    if (!err && dev->ops.quiesce && dma_unmap_find(dev, &du) > 0)
        err = sess_quiesce(s);
    if (!err)
        err = dma_unmap(dev, &du);
    if (err)
        return err;
    ssize_t n = ufio_dma_unmap_encode(&du, rep->head, sizeof(rep->head));
    if (n < 0)
        return (int)n;
    rep->head_len = (size_t)n;
    return 0;
}

/* ---- device info ---------------------------------------------------------- */

static int h_get_info(struct ufio_session *s, struct ufio_msg *m, struct ufio_reply *rep)
{
    struct ufio_device_info in;
    int err = ufio_device_info_decode(m->payload, m->len, &in);
    if (err)
        return err;
    struct ufio_device_info out = {
        .argsz = 16,
        .flags = (pt_resettable(s->dev) ? VFIO_DEVICE_FLAGS_RESET : 0) | VFIO_DEVICE_FLAGS_PCI,
        .num_regions = UFIO_PCI_NUM_REGIONS,
        .num_irqs = UFIO_IRQ_NUM,
    };
    return rep_len(rep, ufio_device_info_encode(&out, rep->head, sizeof(rep->head)));
}

static int h_region_info(struct ufio_session *s, struct ufio_msg *m, struct ufio_reply *rep)
{
    struct ufio_dev *dev = s->dev;
    uint32_t argsz, index;
    int err = ufio_region_info_req_decode(m->payload, m->len, &argsz, &index);
    if (err)
        return err;
    if (index >= UFIO_PCI_NUM_REGIONS)
        return -EINVAL;
    const struct ufio_region *r = &dev->regions[index];
    struct ufio_region_info ri;
    memset(&ri, 0, sizeof(ri));
    ri.index = index;
    ri.size = r->size;
    ri.flags = r->size ? r->info_flags : 0;
    /* the layout is for anyone to see; the memory only for the owner */
    bool mmap_ok = s->role == UFIO_ROLE_OWNER;
    ri.offset = pt_region_fd_offset(dev, index);
    if (r->memfd >= 0) {
        ri.nr_areas = r->nr_areas;
        memcpy(ri.areas, r->areas, r->nr_areas * sizeof(r->areas[0]));
    }
    ssize_t n = ufio_region_info_encode(&ri, argsz, rep->head, sizeof(rep->head));
    if (n < 0)
        return (int)n;
    rep->head_len = (size_t)n;
    /* The fd goes only with the complete answer; a too-small argsz gets a retry hint. */
    if (r->memfd >= 0 && mmap_ok && (size_t)n > UFIO_REGION_INFO_SIZE) {
        rep->fds[0] = r->memfd;
        rep->nfds = 1;
    }
    return 0;
}

static int h_io_fds(struct ufio_session *s, struct ufio_msg *m, struct ufio_reply *rep)
{
    uint32_t argsz, index;
    int err = ufio_io_fds_req_decode(m->payload, m->len, &argsz, &index);
    if (err)
        return err;
    if (index >= UFIO_PCI_NUM_REGIONS)
        return -EINVAL;
    /* No device offers ioeventfds yet: a valid, empty answer. */
    struct ufio_io_fds f;
    memset(&f, 0, sizeof(f));
    f.index = index;
    ssize_t n = ufio_io_fds_encode(&f, argsz, rep->head, sizeof(rep->head));
    if (n < 0)
        return (int)n;
    rep->head_len = (size_t)n;
    return 0;
}

static int h_irq_info(struct ufio_session *s, struct ufio_msg *m, struct ufio_reply *rep)
{
    struct ufio_dev *dev = s->dev;
    struct ufio_irq_info in;
    int err = ufio_irq_info_decode(m->payload, m->len, &in);
    if (err)
        return err;
    if (in.index >= UFIO_IRQ_NUM)
        return -EINVAL;
    struct ufio_irq_info out = {
        .argsz = 16,
        .flags = dev->irqs[in.index].info_flags,
        .index = in.index,
        .count = dev->irqs[in.index].count,
    };
    return rep_len(rep, ufio_irq_info_encode(&out, rep->head, sizeof(rep->head)));
}

static int h_set_irqs(struct ufio_session *s, struct ufio_msg *m, struct ufio_reply *rep)
{
    struct ufio_irq_set is;
    int err = ufio_irq_set_decode(m->payload, m->len, m->nfds, &is);
    if (err)
        return err;
    if (pt_irq_set(s->dev, &is, m, &err))
        return err;
    return irq_set(s->dev, &is, m);
}

/* ---- region access -------------------------------------------------------- */

static int h_region_read(struct ufio_session *s, struct ufio_msg *m, struct ufio_reply *rep)
{
    struct ufio_dev *dev = s->dev;
    struct ufio_region_access a;
    int err = ufio_region_read_req_decode(m->payload, m->len, dev->lim.max_data_xfer_size, &a);
    if (err)
        return err;
    if (a.count == 0)
        return -EINVAL;
    /* a BAR read can have side effects (a FIFO, a clear-on-read status); the
     * MSI-X table and PBA the library emulates have none, and inspectors
     * (ufio-lspci -vvv) show them */
    uint64_t extent;
    if (s->role != UFIO_ROLE_OWNER && a.region != UFIO_PCI_CONFIG_REGION &&
        !(a.region < UFIO_PCI_ROM_REGION && msix_claims(dev, a.region, a.offset, &extent) && a.count <= extent))
        return -EACCES;
    const uint8_t *direct = region_direct(dev, a.region, a.offset, a.count);
    if (direct) {
        rep_data(rep, direct, a.count); /* straight from shared memory, no staging copy */
    } else {
        uint8_t *buf = a.count <= sizeof(rep->head) - 16 ? rep->head + 16 : malloc(a.count);
        if (!buf)
            return -ENOMEM;
        if (buf != rep->head + 16)
            rep->heap = buf;
        err = region_access(dev, a.region, a.offset, buf, a.count, false);
        if (err)
            return err;
        if (buf == rep->head + 16)
            rep->head_len = 16 + a.count;
        else
            rep_data(rep, buf, a.count);
    }
    a.data = NULL;
    ssize_t n = ufio_region_access_head_encode(&a, rep->head, 16);
    if (n < 0)
        return (int)n;
    if (rep->head_len < 16)
        rep->head_len = 16;
    return 0;
}

static int h_region_write(struct ufio_session *s, struct ufio_msg *m, struct ufio_reply *rep)
{
    struct ufio_dev *dev = s->dev;
    struct ufio_region_access a;
    int err;
    if (m->sunk) {
        /* dev_sink_place() checked it all and the data is in place already */
        err = ufio_region_write_head_decode(m->payload, m->len, m->sunk, dev->lim.max_data_xfer_size, &a);
        if (err)
            return err;
    } else {
        err = ufio_region_write_req_decode(m->payload, m->len, dev->lim.max_data_xfer_size, &a);
        if (err)
            return err;
        if (a.count == 0)
            return -EINVAL;
        /* handlers may write into buf; the payload is ours for this message */
        err = region_access(dev, a.region, a.offset, (void *)a.data, a.count, true);
        if (err)
            return err;
    }
    ssize_t n = ufio_region_access_head_encode(&a, rep->head, sizeof(rep->head));
    if (n < 0)
        return (int)n;
    rep->head_len = (size_t)n;
    return 0;
}

static int h_write_multi(struct ufio_session *s, struct ufio_msg *m, struct ufio_reply *rep)
{
    struct ufio_dev *dev = s->dev;
    if (!s->write_multiple)
        return -EINVAL;
    struct ufio_write_multi_entry *e = malloc(UFIO_WRITE_MULTI_MAX * sizeof(*e));
    if (!e)
        return -ENOMEM;
    uint64_t n;
    int err = ufio_write_multi_decode(m->payload, m->len, &n, e);
    for (uint64_t i = 0; !err && i < n; i++)
        err = region_access(dev, e[i].region, e[i].offset, e[i].data, e[i].count, true);
    free(e);
    if (err)
        return err;
    struct ufio_wr w = ufio_wr_init(rep->head, sizeof(rep->head));
    ufio_wr_u64(&w, n);
    rep->head_len = w.off;
    return 0;
}

/* ---- reset, features, migration data -------------------------------------- */

static int h_reset(struct ufio_session *s, struct ufio_msg *m, struct ufio_reply *rep)
{
    struct ufio_dev *dev = s->dev;
    if (m->len != 0)
        return -EINVAL;
    int err = sess_quiesce(s);
    if (err)
        return err;
    unsigned before = ufio_dev_mig_state(dev);
    pci_cfg_reset(&dev->cfg);
    irq_reset(dev);
    dev_mig_reset(dev);
    sess_mig_changed(s->ss, s, before);
    if (dev->ops.reset)
        return dev_cb_result(dev->name, "reset", dev->ops.reset(dev, dev->opaque), 0);
    return 0;
}

/* Another session holds the migration (moved the device out of RUNNING, or logs its DMA). */
static int mig_busy(const struct ufio_session *s)
{
    const struct ufio_sessions *ss = s->ss;
    if ((ss->mig_holder && ss->mig_holder != s) || (ss->log_holder && ss->log_holder != s))
        return -EBUSY;
    return 0;
}

static int h_feature(struct ufio_session *s, struct ufio_msg *m, struct ufio_reply *rep)
{
    struct ufio_dev *dev = s->dev;
    struct ufio_feature f;
    int err = ufio_feature_decode(m->payload, m->len, &f);
    if (err)
        return err;
    unsigned index = f.flags & VFIO_DEVICE_FEATURE_MASK;
    const struct ufio_feature_desc *fd = ufio_feature_desc(index);
    err = ufio_feature_check(fd, s->role, f.flags, f.data_len);
    if (err)
        return err;
    bool probe = f.flags & VFIO_DEVICE_FEATURE_PROBE, set = f.flags & VFIO_DEVICE_FEATURE_SET;
    /* a SET, or a GET only migrators may make (it changes state: a report clears bits) */
    if ((fd->flags & UFIO_CMD_F_MIG) && !probe && (set || fd->get_roles != UFIO_ROLE_ANY)) {
        err = mig_busy(s);
        if (err)
            return err;
    }
    if (dev->ops.quiesce && index == VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE && set && !probe &&
        dev_mig_stops(dev, &f)) {
        err = sess_quiesce(s);
        if (err)
            return err;
    }
    unsigned before = ufio_dev_mig_state(dev);
    err = dev_feature(dev, &f, rep);
    sess_mig_changed(s->ss, s, before);
    return err;
}

static int h_mig_read(struct ufio_session *s, struct ufio_msg *m, struct ufio_reply *rep)
{
    struct ufio_dev *dev = s->dev;
    struct ufio_mig_data d;
    int err = ufio_mig_read_req_decode(m->payload, m->len, dev->lim.max_data_xfer_size, &d);
    if (err)
        return err;
    return dev_mig_data_read(dev, &d, rep);
}

static int h_mig_write(struct ufio_session *s, struct ufio_msg *m, struct ufio_reply *rep)
{
    struct ufio_dev *dev = s->dev;
    struct ufio_mig_data d;
    int err = ufio_mig_write_req_decode(m->payload, m->len, dev->lim.max_data_xfer_size, &d);
    if (err)
        return err;
    err = dev_mig_data_write(dev, &d);
    if (err)
        return err;
    return 0;
}

/* ---- the table ------------------------------------------------------------ */

/* What each command does here; what it may be and who may send it is lib/proto's table. */
static const handler_fn handlers[VFIO_USER_MAX_CMD] = {
    [VFIO_USER_VERSION] = h_version,
    [VFIO_USER_DMA_MAP] = h_dma_map,
    [VFIO_USER_DMA_UNMAP] = h_dma_unmap,
    [VFIO_USER_DEVICE_GET_INFO] = h_get_info,
    [VFIO_USER_DEVICE_GET_REGION_INFO] = h_region_info,
    [VFIO_USER_DEVICE_GET_REGION_IO_FDS] = h_io_fds,
    [VFIO_USER_DEVICE_GET_IRQ_INFO] = h_irq_info,
    [VFIO_USER_DEVICE_SET_IRQS] = h_set_irqs,
    [VFIO_USER_REGION_READ] = h_region_read,
    [VFIO_USER_REGION_WRITE] = h_region_write,
    [VFIO_USER_DEVICE_RESET] = h_reset,
    [VFIO_USER_REGION_WRITE_MULTI] = h_write_multi,
    [VFIO_USER_DEVICE_FEATURE] = h_feature,
    [VFIO_USER_MIG_DATA_READ] = h_mig_read,
    [VFIO_USER_MIG_DATA_WRITE] = h_mig_write,
    [UFIO_CMD_HANDOVER] = h_handover,
};

/*
 * Checks in order: header flags, fd overflow, the command exists, VERSION
 * first, then the table row: sizes, fds, role (-EACCES), the migration
 * states it is allowed in, and -EBUSY for a migration request while another
 * session holds the migration. len is the whole body (sunk bytes included).
 */
static int validate(struct ufio_session *s, const struct ufio_msg *m, size_t len)
{
    const struct vfio_user_header *h = &m->hdr;
    if ((h->flags & ~VFIO_USER_F_KNOWN) || (h->flags & VFIO_USER_F_ERROR))
        return -EINVAL;
    if (m->fds_overflow)
        return -EINVAL;
    const struct ufio_cmd_desc *d = ufio_cmd_desc(h->cmd);
    if (!d || h->cmd >= VFIO_USER_MAX_CMD || !handlers[h->cmd])
        return -ENOSYS;
    if (!s->negotiated && h->cmd != VFIO_USER_VERSION)
        return -EINVAL;
    unsigned role = s->negotiated ? s->role : UFIO_ROLE_ANY;
    int err = ufio_cmd_check(d, role, len, m->nfds, s->dev->lim.max_data_xfer_size, s->dev->lim.max_msg_fds);
    if (!err && s->dev->mig)
        err = ufio_cmd_state_ok(d, ufio_dev_mig_state(s->dev));
    if (!err && (d->flags & UFIO_CMD_F_MIG))
        err = mig_busy(s);
    /* a write answered here after the stream was taken would be lost: the device lives elsewhere */
    if (!err && (d->flags & UFIO_CMD_F_CHANGE) && sess_migrated_away(s->ss))
        err = -ENODEV;
    return err;
}

bool sess_msg_touches_state(const struct ufio_msg *m)
{
    const struct ufio_cmd_desc *d = ufio_cmd_desc(m->hdr.cmd);
    return d && (d->flags & UFIO_CMD_F_STATE) && !ufio_hdr_is_reply(&m->hdr);
}

/*
 * A big REGION_WRITE into shared memory (an mmap area) is received straight
 * into that memory rather than staged and copied. Only a message the
 * handler would accept qualifies, and only when it is next in line: while
 * commands wait in the queue (a DMA reply is awaited, or the device is held
 * stopped) nothing is placed, so writes still land in order.
 */
void *sess_sink_place(void *opaque, const struct ufio_msg *m, const uint8_t *prefix, size_t body_len, size_t *keep)
{
    struct ufio_session *s = opaque;
    const struct vfio_user_header *h = &m->hdr;
    if (s->expect.dst && ufio_hdr_is_reply(h)) {
        /* the reply to our DMA_READ, if it echoes the request exactly */
        bool ok = h->msg_id == s->expect.msg_id && h->cmd == s->expect.cmd && !(h->flags & VFIO_USER_F_ERROR) &&
                  !m->nfds && !m->fds_overflow && body_len == 16 + s->expect.len &&
                  !memcmp(prefix, s->expect.head, 16);
        return ok ? s->expect.dst : NULL;
    }
    if (h->cmd != VFIO_USER_REGION_WRITE || (h->flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_COMMAND ||
        s->awaiting_reply || s->nqueued || s->held || (s == s->ss->owner && sess_owner_hold(s->ss)) ||
        validate(s, m, body_len))
        return NULL;
    struct ufio_region_access a;
    if (ufio_region_write_head_decode(prefix, 16, body_len - 16, s->dev->lim.max_data_xfer_size, &a) || !a.count)
        return NULL;
    return region_direct_write(s->dev, a.region, a.offset, a.count);
}

void sess_handle_msg(struct ufio_session *s, struct ufio_msg *m)
{
    const struct vfio_user_header *h = &m->hdr;
    if ((h->flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_REPLY) {
        /* no request of ours is outstanding outside sess_send_request */
        UFIO_WARN(s->dev->name, "session %u: unexpected reply msg_id %u cmd %u dropped", s->id, h->msg_id, h->cmd);
        return;
    }
    s->dev->msgs_handled++;
    struct ufio_reply rep;
    rep.head_len = 0;
    rep.iovcnt = 0;
    rep.nfds = 0;
    rep.heap = NULL;
    rep.close_fds = false;
    int err = (h->flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_COMMAND ? validate(s, m, m->len + m->sunk)
                                                                            : -EINVAL;
    if (!err && m->sunk && h->cmd != VFIO_USER_REGION_WRITE)
        err = -EINVAL; /* cannot happen: only REGION_WRITE is ever placed */
    if (!err)
        err = handlers[h->cmd](s, m, &rep);
    if (err == SESS_DEFER) {
        s->dev->msgs_handled--; /* it is handled when the device has quiesced */
        return;
    }
    sess_quiesce_handled(s);
    if (err) {
        UFIO_DBG(s->dev->name, "session %u: msg_id %u %s: error %d (%s)", s->id, h->msg_id, ufio_cmd_name(h->cmd),
                 -err, strerror(-err));
        if (!(h->flags & VFIO_USER_F_NO_REPLY) && ufio_conn_send_error(&s->conn, h, err) < 0)
            s->drop = true;
    } else if (!(h->flags & VFIO_USER_F_NO_REPLY)) {
        struct iovec iov[5];
        int n = 0;
        if (rep.head_len)
            iov[n++] = (struct iovec){ rep.head, rep.head_len };
        for (int i = 0; i < rep.iovcnt; i++)
            iov[n++] = rep.iov[i];
        struct vfio_user_header rh = {
            .msg_id = h->msg_id,
            .cmd = h->cmd,
            .flags = VFIO_USER_F_TYPE_REPLY,
        };
        if (ufio_conn_send(&s->conn, &rh, iov, n, rep.fds, rep.nfds) < 0)
            s->drop = true;
        /* the migration data just sent is the kernel's: frame the next while the client reads it,
         * unless another message waits (it is not made to wait behind save()) */
        if (h->cmd == VFIO_USER_MIG_DATA_READ && !s->drop && !s->nqueued && !ufio_conn_ready(&s->conn))
            dev_mig_read_ahead(s->dev);
    }
    if (s->drop && !s->drop_why)
        s->drop_why = "protocol error";
    if (rep.close_fds)
        for (size_t i = 0; i < rep.nfds; i++)
            close(rep.fds[i]); /* sent (the client has them) or the send failed: ours to close */
    free(rep.heap);
}
