/*
 * DEVICE_FEATURE and migration data for the device side: the migration
 * state machine walk, the framed save/resume stream, dirty-page logging,
 * and ufio's extensions (precopy info, compatibility descriptor).
 */
#include "server/dev_internal.h"
#include "server/callback.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/abi.h"
#include "common/log.h"
#include "proto/mig_stream.h"
#include "server/compat.h"

#define MIG_CHUNK (64u * 1024)
#define MIG_MAX_STATE (1ull << 30)

struct ufio_mig {
    struct ufio_mig_ops ops;
    void *opaque;
    unsigned state;
    /* saving session: bytes produced but not yet read */
    uint8_t *out;
    size_t out_len, out_off, out_cap;
    bool saving, end_sent;
    uint32_t crc;
    uint64_t total;
    /* resuming session */
    bool resuming;
    uint64_t max_stream;
    bool desc_checked;
    int rx_err;
    struct ufio_mig_rx rx;
};

UFIO_API int ufio_dev_setup_migration(struct ufio_dev *dev, const struct ufio_mig_ops *ops, void *opaque)
{
    if (dev->built || dev->mig)
        return -EBUSY;
    if (!ops)
        return -EINVAL;
    struct ufio_mig_ops known;
    int err = abi_struct_in(&known, sizeof(known), ops);
    if (err)
        return err;
    ops = &known;
    if (!ops->save || !ops->load || !(ops->flags & UFIO_MIG_F_STOP_COPY) ||
        (ops->flags & ~(uint64_t)(UFIO_MIG_F_STOP_COPY | UFIO_MIG_F_P2P | UFIO_MIG_F_PRE_COPY)))
        return -EINVAL;
    struct ufio_mig *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->ops = known;
    m->opaque = opaque;
    m->state = UFIO_MIG_RUNNING;
    m->max_stream = MIG_MAX_STATE;
    ufio_mig_rx_init(&m->rx, MIG_MAX_STATE);
    dev->mig = m;
    return 0;
}

UFIO_API unsigned ufio_dev_mig_state(struct ufio_dev *dev)
{
    return dev->mig ? dev->mig->state : UFIO_MIG_RUNNING;
}

static void save_end(struct ufio_mig *m)
{
    free(m->out);
    m->out = NULL;
    m->out_len = m->out_off = m->out_cap = 0;
    m->saving = m->end_sent = false;
}

static void resume_end(struct ufio_mig *m)
{
    ufio_mig_rx_free(&m->rx);
    m->rx.max_data = m->max_stream;
    m->resuming = false;
    m->desc_checked = false;
    m->rx_err = 0;
}

void dev_mig_free(struct ufio_dev *dev)
{
    if (!dev->mig)
        return;
    save_end(dev->mig);
    resume_end(dev->mig);
    free(dev->mig);
    dev->mig = NULL;
}

void dev_mig_reset(struct ufio_dev *dev)
{
    struct ufio_mig *m = dev->mig;
    if (!m)
        return;
    save_end(m);
    resume_end(m);
    m->state = UFIO_MIG_RUNNING; /* reset returns the device to RUNNING, as the kernel does */
}

static int set_state(struct ufio_dev *dev, unsigned target);

void dev_mig_abandon(struct ufio_dev *dev)
{
    struct ufio_mig *m = dev->mig;
    if (!m || m->state == UFIO_MIG_RUNNING)
        return;
    unsigned from = m->state;
    if (m->state == UFIO_MIG_RESUMING) {
        /* an unfinished stream is dropped, never loaded: the device keeps its state */
        resume_end(m);
        m->state = UFIO_MIG_STOP;
    }
    if (m->state == UFIO_MIG_ERROR || set_state(dev, UFIO_MIG_RUNNING) != 0) {
        dev_mig_reset(dev);
        if (m->ops.transition)
            m->ops.transition(dev, m->opaque, from, UFIO_MIG_RUNNING);
    }
    save_end(m);
    resume_end(m);
    UFIO_INFO(dev->name, "migration abandoned in %s: device RUNNING again", ufio_mig_state_name(from));
}

/* ---- the saving stream ---------------------------------------------------------- */

static int out_reserve(struct ufio_mig *m, size_t n)
{
    if (m->out_off && m->out_off == m->out_len)
        m->out_off = m->out_len = 0;
    if (m->out_len + n <= m->out_cap)
        return 0;
    size_t cap = m->out_cap ? m->out_cap : 2 * MIG_CHUNK;
    while (cap < m->out_len + n)
        cap *= 2;
    uint8_t *p = realloc(m->out, cap);
    if (!p)
        return -ENOMEM;
    m->out = p;
    m->out_cap = cap;
    return 0;
}

static int out_put(struct ufio_mig *m, const void *p, size_t n)
{
    int err = out_reserve(m, n);
    if (!err) {
        memcpy(m->out + m->out_len, p, n);
        m->out_len += n;
    }
    return err;
}

static int save_begin(struct ufio_dev *dev)
{
    struct ufio_mig *m = dev->mig;
    save_end(m);
    m->saving = true;
    m->crc = 0;
    m->total = 0;
    uint8_t h[UFIO_MIG_HDR_SIZE], r[UFIO_MIG_REC_HDR];
    ufio_mig_put_header(h);
    const char *desc = dev_compat_json(dev);
    size_t dl = strlen(desc) + 1;
    ufio_mig_put_record(r, UFIO_MIG_TAG_DESC, 0, (uint32_t)dl);
    int err = out_put(m, h, sizeof(h));
    if (!err)
        err = out_put(m, r, sizeof(r));
    if (!err)
        err = out_put(m, desc, dl);
    return err;
}

/*
 * Library-owned state goes last, when the device is stopped: config space
 * (4 KiB or 256 B), then the MSI-X table, its use flag and the pending bits.
 */
static int save_devcfg(struct ufio_dev *dev)
{
    struct ufio_mig *m = dev->mig;
    size_t nvec = dev->msix.nvec;
    size_t len = 4 + dev->cfg.size + 4 + nvec * 16 + 1 + nvec;
    uint8_t r[UFIO_MIG_REC_HDR];
    ufio_mig_put_record(r, UFIO_MIG_TAG_DEVCFG, 0, (uint32_t)len);
    int err = out_put(m, r, sizeof(r));
    if (!err)
        err = out_reserve(m, len);
    if (err)
        return err;
    struct ufio_wr w = ufio_wr_init(m->out + m->out_len, len);
    ufio_wr_u32(&w, dev->cfg.size);
    ufio_wr_bytes(&w, dev->cfg.space, dev->cfg.size);
    ufio_wr_u32(&w, (uint32_t)nvec);
    ufio_wr_bytes(&w, dev->msix.table, nvec * 16);
    uint8_t used = dev->msix.table_used;
    ufio_wr_bytes(&w, &used, 1);
    for (size_t i = 0; i < nvec; i++) {
        uint8_t p = dev->irqs[UFIO_IRQ_MSIX].v[i].pending;
        ufio_wr_bytes(&w, &p, 1);
    }
    if (w.err)
        return w.err;
    m->crc = ufio_crc32c(m->crc, m->out + m->out_len, len);
    m->out_len += len;
    return 0;
}

/* Checks the DEVCFG record fits this device before anything is applied. */
static int load_devcfg(struct ufio_dev *dev, bool apply)
{
    struct ufio_mig *m = dev->mig;
    if (!m->rx.devcfg)
        return -EINVAL;
    struct ufio_rd r = ufio_rd_init(m->rx.devcfg, m->rx.devcfg_len);
    uint32_t size, nvec;
    const void *space = NULL, *table = NULL, *pend = NULL;
    uint8_t used = 0;
    if (ufio_rd_u32(&r, &size) || size != dev->cfg.size || ufio_rd_ptr(&r, &space, size) ||
        ufio_rd_u32(&r, &nvec) || nvec != dev->msix.nvec || ufio_rd_ptr(&r, &table, (size_t)nvec * 16) ||
        ufio_rd_bytes(&r, &used, 1) || ufio_rd_ptr(&r, &pend, nvec) || ufio_rd_left(&r))
        return -EINVAL;
    if (!apply)
        return 0;
    memcpy(dev->cfg.space, space, size);
    if (nvec)
        memcpy(dev->msix.table, table, (size_t)nvec * 16);
    dev->msix.table_used = used;
    for (uint32_t i = 0; i < nvec; i++)
        dev->irqs[UFIO_IRQ_MSIX].v[i].pending = ((const uint8_t *)pend)[i];
    return 0;
}

/* Produces records until `want` bytes are pending or the device has nothing more now. */
static int save_produce(struct ufio_dev *dev, size_t want)
{
    struct ufio_mig *m = dev->mig;
    while (m->out_len - m->out_off < want && !m->end_sent) {
        int err = out_reserve(m, UFIO_MIG_REC_HDR + MIG_CHUNK);
        if (err)
            return err;
        uint8_t *rec = m->out + m->out_len;
        ssize_t n = m->ops.save(dev, m->opaque, rec + UFIO_MIG_REC_HDR, MIG_CHUNK);
        if (n < 0)
            return (int)n;
        if (n > (ssize_t)MIG_CHUNK)
            return -EIO;
        if (n == 0) {
            if (m->state != UFIO_MIG_STOP_COPY)
                break; /* PRE_COPY: nothing more for now */
            uint8_t r[UFIO_MIG_REC_HDR], e[UFIO_MIG_END_SIZE];
            if ((err = save_devcfg(dev)))
                return err;
            ufio_mig_put_record(r, UFIO_MIG_TAG_END, 0, UFIO_MIG_END_SIZE);
            ufio_mig_put_end(e, m->total, m->crc);
            if ((err = out_put(m, r, sizeof(r))) || (err = out_put(m, e, sizeof(e))))
                return err;
            m->end_sent = true;
            break;
        }
        ufio_mig_put_record(rec, UFIO_MIG_TAG_DATA, 0, (uint32_t)n);
        m->crc = ufio_crc32c(m->crc, rec + UFIO_MIG_REC_HDR, (size_t)n);
        m->total += (uint64_t)n;
        m->out_len += UFIO_MIG_REC_HDR + (size_t)n;
    }
    return 0;
}

int dev_mig_data_read(struct ufio_dev *dev, const struct ufio_mig_data *req, struct ufio_reply *rep)
{
    struct ufio_mig *m = dev->mig;
    if (!m || !m->saving ||
        (m->state != UFIO_MIG_PRE_COPY && m->state != UFIO_MIG_PRE_COPY_P2P && m->state != UFIO_MIG_STOP_COPY))
        return -EINVAL;
    int err = save_produce(dev, req->size);
    if (err)
        return err;
    size_t n = m->out_len - m->out_off;
    if (n > req->size)
        n = req->size;
    struct ufio_mig_data d = { .argsz = (uint32_t)(8 + n), .size = (uint32_t)n };
    ssize_t hl = ufio_mig_data_head_encode(&d, rep->head, sizeof(rep->head));
    if (hl < 0)
        return (int)hl;
    rep->head_len = (size_t)hl;
    /* the bytes stay in m->out until the reply is sent: the next read only advances */
    rep->iov[0] = (struct iovec){ m->out + m->out_off, n };
    rep->iovcnt = n ? 1 : 0;
    m->out_off += n;
    return 0;
}

/* ---- the resuming stream ------------------------------------------------------------ */

int dev_mig_data_write(struct ufio_dev *dev, const struct ufio_mig_data *req)
{
    struct ufio_mig *m = dev->mig;
    if (!m || m->state != UFIO_MIG_RESUMING || !m->resuming)
        return -EINVAL;
    if (m->rx_err)
        return m->rx_err;
    int err = ufio_mig_rx_feed(&m->rx, req->data, req->size);
    if (!err && m->rx.desc_seen && !m->desc_checked) {
        char reason[256];
        err = dev_compat_check(dev, m->rx.desc, reason, sizeof(reason));
        if (err)
            UFIO_WARN(dev->name, "migration stream refused: %s", reason);
        m->desc_checked = true;
    }
    if (err) {
        if (err == -EBADMSG || err == -EINVAL)
            UFIO_WARN(dev->name, "migration stream rejected: %s", strerror(-err));
        m->rx_err = err;
    }
    return err;
}

/* RESUMING -> STOP: the stream must be complete and verified before the device loads it. */
static int resume_finish(struct ufio_dev *dev)
{
    struct ufio_mig *m = dev->mig;
    if (m->rx_err)
        return m->rx_err;
    if (!m->rx.done) {
        UFIO_WARN(dev->name, "migration stream incomplete (%zu payload bytes, no end record)", m->rx.data_len);
        return -EINVAL;
    }
    if (load_devcfg(dev, false)) {
        UFIO_WARN(dev->name, "migration stream: device configuration record missing or does not fit");
        return -EINVAL;
    }
    /* one load() per record: each piece is exactly what one save() produced */
    size_t off = 0;
    for (size_t i = 0; i < m->rx.nrec; i++) {
        size_t n = m->rx.rec_len[i];
        int err = dev_cb_result(dev->name, "migration load",
                                m->ops.load(dev, m->opaque, m->rx.data + off, n, i + 1 == m->rx.nrec), 0);
        if (err)
            return err;
        off += n;
    }
    if (m->rx.nrec == 0) {
        int err = dev_cb_result(dev->name, "migration load", m->ops.load(dev, m->opaque, NULL, 0, true), 0);
        if (err)
            return err;
    }
    return load_devcfg(dev, true);
}

/* ---- the state machine walk ---------------------------------------------------------- */

static bool saving_state(unsigned s)
{
    return s == UFIO_MIG_STOP_COPY || s == UFIO_MIG_PRE_COPY || s == UFIO_MIG_PRE_COPY_P2P;
}

static int arc(struct ufio_dev *dev, unsigned from, unsigned to)
{
    struct ufio_mig *m = dev->mig;
    int err;
    if (from == UFIO_MIG_RESUMING && to == UFIO_MIG_STOP) {
        err = resume_finish(dev);
        if (err) {
            /* nothing valid was loaded: the device needs a reset */
            resume_end(m);
            m->state = UFIO_MIG_ERROR;
            return err;
        }
    }
    if (m->ops.transition) {
        err = dev_cb_result(dev->name, "migration transition", m->ops.transition(dev, m->opaque, from, to), 0);
        if (err)
            return err;
    }
    if (!saving_state(from) && saving_state(to)) {
        err = save_begin(dev);
        if (err)
            return err;
    } else if (saving_state(from) && !saving_state(to)) {
        save_end(m);
    }
    if (to == UFIO_MIG_RESUMING) {
        m->max_stream = dev->lim.max_mig_stream;
        resume_end(m);
        m->resuming = true;
    } else if (from == UFIO_MIG_RESUMING) {
        resume_end(m);
    }
    m->state = to;
    return 0;
}

static int set_state(struct ufio_dev *dev, unsigned target)
{
    struct ufio_mig *m = dev->mig;
    unsigned path[UFIO_MIG_NUM_STATES];
    size_t len;
    int err = ufio_mig_path(m->ops.flags, m->state, target, path, &len);
    if (err)
        return err;
    for (size_t i = 0; i < len; i++) {
        unsigned from = m->state;
        err = arc(dev, from, path[i]);
        if (err) {
            UFIO_WARN(dev->name, "migration arc %s -> %s failed: %s; now %s", ufio_mig_state_name(from),
                      ufio_mig_state_name(path[i]), strerror(-err), ufio_mig_state_name(m->state));
            return err;
        }
        UFIO_DBG(dev->name, "migration state %s", ufio_mig_state_name(m->state));
    }
    return 0;
}

int dev_mig_set_state(struct ufio_dev *dev, unsigned target)
{
    return dev->mig ? set_state(dev, target) : -ENOTSUP;
}

/* ---- DEVICE_FEATURE ------------------------------------------------------------------ */

/* A GET reply: argsz, flags, then data; the client's argsz must hold it all. */
static int feature_reply(struct ufio_reply *rep, const struct ufio_feature *f, const void *data, size_t len,
                         bool copy)
{
    if ((uint64_t)f->argsz < 8 + (uint64_t)len)
        return -EINVAL;
    ssize_t hl = ufio_feature_head_encode((uint32_t)(8 + len), f->flags, rep->head, sizeof(rep->head));
    if (hl < 0)
        return (int)hl;
    rep->head_len = (size_t)hl;
    if (copy && len && len <= sizeof(rep->head) - rep->head_len) {
        memcpy(rep->head + rep->head_len, data, len);
        rep->head_len += len;
    } else if (len) {
        rep->iov[0] = (struct iovec){ (void *)data, len };
        rep->iovcnt = 1;
    }
    return 0;
}

/* SET and PROBE replies echo the request's payload (argsz, flags, data), as the spec says. */
static int feature_echo(struct ufio_reply *rep, const struct ufio_feature *f)
{
    ssize_t hl = ufio_feature_head_encode(f->argsz, f->flags, rep->head, sizeof(rep->head));
    if (hl < 0)
        return (int)hl;
    rep->head_len = (size_t)hl;
    if (f->data_len) {
        rep->iov[0] = (struct iovec){ (void *)f->data, f->data_len }; /* the request outlives the reply */
        rep->iovcnt = 1;
    }
    return 0;
}

static int feature_logging_start(struct ufio_dev *dev, const struct ufio_feature *f, bool probe,
                                 struct ufio_reply *rep)
{
    if (probe)
        return feature_echo(rep, f);
    struct ufio_rd r = ufio_rd_init(f->data, f->data_len);
    uint64_t pgsize;
    uint32_t nranges, rsvd;
    if (ufio_rd_u64(&r, &pgsize) || ufio_rd_u32(&r, &nranges) || ufio_rd_u32(&r, &rsvd))
        return -EINVAL;
    if (pgsize < 4096 || (pgsize & (pgsize - 1)) || pgsize > (1ull << 30))
        return -EINVAL;
    if (nranges > 1024)
        return -E2BIG;
    if (ufio_rd_left(&r) != (size_t)nranges * 16)
        return -EINVAL;
    /* ranges: aligned, no overflow, no overlap (sorted check is O(n^2) on <= 1024) */
    uint64_t iova[1024], len[1024];
    for (uint32_t i = 0; i < nranges; i++) {
        ufio_rd_u64(&r, &iova[i]);
        ufio_rd_u64(&r, &len[i]);
        if (!len[i] || (iova[i] | len[i]) % pgsize)
            return -EINVAL;
        if (iova[i] + len[i] < iova[i])
            return -EOVERFLOW;
        for (uint32_t j = 0; j < i; j++)
            if (iova[i] < iova[j] + len[j] && iova[j] < iova[i] + len[i])
                return -EINVAL;
    }
    /* num_ranges 0 means "everything" (the spec); either way every mapping is
     * logged, which is a superset of what was asked for */
    int err = dma_log_start(dev, pgsize);
    if (err)
        return err;
    uint8_t out[16];
    struct ufio_wr w = ufio_wr_init(out, sizeof(out));
    ufio_wr_u64(&w, pgsize);
    ufio_wr_u32(&w, nranges);
    ufio_wr_u32(&w, 0);
    /* the reply echoes the control data with the page size in use */
    if ((uint64_t)f->argsz < 8 + f->data_len)
        return feature_reply(rep, f, out, 16, true);
    err = feature_reply(rep, f, out, 16, true);
    if (!err && f->data_len > 16) {
        rep->iov[0] = (struct iovec){ (void *)(f->data + 16), f->data_len - 16 };
        rep->iovcnt = 1;
        ufio_st32(rep->head, (uint32_t)(8 + f->data_len));
    }
    return err;
}

static int feature_logging_report(struct ufio_dev *dev, const struct ufio_feature *f, struct ufio_reply *rep)
{
    struct ufio_rd r = ufio_rd_init(f->data, f->data_len);
    uint64_t iova, length, pgsize;
    if (ufio_rd_u64(&r, &iova) || ufio_rd_u64(&r, &length) || ufio_rd_u64(&r, &pgsize))
        return -EINVAL;
    if (pgsize < 4096 || (pgsize & (pgsize - 1)) || !length || iova + length < iova)
        return -EINVAL;
    uint64_t pages = length / pgsize + (length % pgsize != 0);
    uint64_t bytes = (pages + 63) / 64 * 8;
    if (bytes > dev->lim.max_data_xfer_size)
        return -E2BIG;
    if ((uint64_t)f->argsz < 8 + 24 + bytes)
        return -EINVAL;
    uint8_t *buf = calloc(1, 24 + bytes);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, f->data, 24);
    int err = dma_log_report(dev, iova, length, pgsize, (uint64_t *)(void *)(buf + 24));
    if (err) {
        free(buf);
        return err;
    }
    rep->heap = buf;
    return feature_reply(rep, f, buf, 24 + bytes, false);
}

int dev_feature(struct ufio_dev *dev, const struct ufio_feature *f, struct ufio_reply *rep)
{
    struct ufio_mig *m = dev->mig;
    unsigned index = f->flags & VFIO_DEVICE_FEATURE_MASK;
    bool get = f->flags & VFIO_DEVICE_FEATURE_GET, set = f->flags & VFIO_DEVICE_FEATURE_SET;
    bool probe = f->flags & VFIO_DEVICE_FEATURE_PROBE;
    uint8_t buf[16];
    switch (index) {
    case VFIO_DEVICE_FEATURE_MIGRATION:
        if (!m)
            return -ENOTSUP;
        if (set)
            return -EINVAL;
        if (probe)
            return feature_echo(rep, f);
        ufio_st64(buf, m->ops.flags);
        return feature_reply(rep, f, buf, 8, true);
    case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE: {
        if (!m)
            return -ENOTSUP;
        if (probe)
            return feature_echo(rep, f);
        if (set) {
            struct ufio_rd r = ufio_rd_init(f->data, f->data_len);
            uint32_t st, fd;
            if (ufio_rd_u32(&r, &st) || ufio_rd_u32(&r, &fd))
                return -EINVAL;
            int err = set_state(dev, st);
            if (err)
                return err;
        }
        ufio_st32(buf, m->state);
        ufio_st32(buf + 4, 0xffffffffu); /* no data fd in vfio-user */
        return feature_reply(rep, f, buf, 8, true);
    }
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_START:
        if (get)
            return -EINVAL;
        return feature_logging_start(dev, f, probe, rep);
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP:
        if (get)
            return -EINVAL;
        if (!probe) {
            if (!dev->dma.logging)
                return -EINVAL;
            dma_log_stop(dev);
        }
        return feature_echo(rep, f);
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT:
        if (set)
            return -EINVAL;
        if (probe)
            return feature_echo(rep, f);
        return feature_logging_report(dev, f, rep);
    case UFIO_FEATURE_MIG_DATA_SIZE:
    case UFIO_FEATURE_PRECOPY_INFO: {
        if (!m)
            return -ENOTSUP;
        if (set)
            return -EINVAL;
        if (probe)
            return feature_echo(rep, f);
        uint64_t initial = 0, dirty = 0, stop_copy = 0;
        if (m->ops.estimate)
            m->ops.estimate(dev, m->opaque, &initial, &dirty, &stop_copy);
        if (index == UFIO_FEATURE_MIG_DATA_SIZE) {
            /* plus our framing: header, descriptor, record headers, end record */
            uint64_t frame = UFIO_MIG_HDR_SIZE + UFIO_MIG_REC_HDR + strlen(dev_compat_json(dev)) + 1 +
                             (stop_copy / MIG_CHUNK + 1) * UFIO_MIG_REC_HDR + UFIO_MIG_REC_HDR + UFIO_MIG_END_SIZE;
            ufio_st64(buf, stop_copy + frame);
            return feature_reply(rep, f, buf, 8, true);
        }
        if (m->state != UFIO_MIG_PRE_COPY && m->state != UFIO_MIG_PRE_COPY_P2P)
            return -EINVAL;
        /* bytes produced but not yet read count as still to send */
        ufio_st64(buf, initial + (m->out_len - m->out_off));
        ufio_st64(buf + 8, dirty);
        return feature_reply(rep, f, buf, 16, true);
    }
    case UFIO_FEATURE_COMPAT_DESC: {
        if (set)
            return -EINVAL;
        if (probe)
            return feature_echo(rep, f);
        const char *d = dev_compat_json(dev);
        return feature_reply(rep, f, d, strlen(d) + 1, false);
    }
    default:
        return -ENOTSUP;
    }
}
