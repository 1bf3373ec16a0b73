/*
 * DEVICE_FEATURE and migration data for the device side: the migration
 * state machine walk, the framed save/resume stream, dirty-page logging,
 * and ufio's extensions (precopy info, compatibility descriptor).
 */
#include "server/dev_internal.h"
#include "server/callback.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/abi.h"
#include "common/log.h"
#include "proto/mig_stream.h"
#include "server/compat.h"

/* what save() is asked for at least, and at most, per record */
#define SAVE_MIN (64u * 1024)
#define SAVE_MAX (16u << 20)

struct ufio_mig {
    struct ufio_mig_ops ops;
    void *opaque;
    unsigned state;
    /* saving session: framed bytes produced but not yet read. Records are
     * produced only to fill the read being answered, so this holds one read's
     * worth (plus at most one SAVE_MIN record and the closing records). */
    uint8_t *out;
    size_t out_len, out_off, out_cap;
    bool saving, end_sent;
    /* read-ahead (dev_mig_read_ahead): the size of the last full read, which
     * the next one is framed for while the client receives this one; the
     * round ended (save() had nothing more in PRE_COPY) while doing so; an
     * error it met, for the next read to report */
    size_t ahead_want;
    bool round_end;
    int ahead_err;
    uint64_t total;
    uint32_t chain, nrec;
    /* STOP_COPY deadline: the time it may take (ms, 0 = none), and when it ends */
    uint64_t deadline_ms;
    uint64_t deadline_at_ns;
    bool dirty_limited;     /* a DIRTY_RATE_LIMIT is in force: an abandoned migration lifts it */
    /* resuming session */
    bool resuming;
    uint32_t loaded;        /* DATA records handed to load() */
    struct ufio_mig_rx rx;
    struct ufio_dev *dev;
    char reason[256];       /* why the last request was refused (UFIO_FEATURE_MIG_REASON) */
    char rx_reason[256];    /* why the stream being resumed was refused */
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void refuse(struct ufio_dev *dev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void refuse(struct ufio_dev *dev, const char *fmt, ...)
{
    struct ufio_mig *m = dev->mig;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->reason, sizeof(m->reason), fmt, ap);
    va_end(ap);
    UFIO_WARN(dev->name, "migration: %s", m->reason);
}

static int rx_data(void *arg, const uint8_t *p, size_t len);
static int rx_desc(void *arg, const char *desc);

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
    m->dev = dev;
    ufio_mig_rx_init(&m->rx, UFIO_MIG_MAX_RECORD);
    m->rx.on_data = rx_data;
    m->rx.on_desc = rx_desc;
    m->rx.arg = m;
    dev->mig = m;
    return 0;
}

UFIO_API unsigned ufio_dev_mig_state(struct ufio_dev *dev)
{
    return dev->mig ? dev->mig->state : UFIO_MIG_RUNNING;
}

UFIO_API int64_t ufio_dev_mig_time_left_ms(struct ufio_dev *dev)
{
    struct ufio_mig *m = dev->mig;
    if (!m || m->state != UFIO_MIG_STOP_COPY || !m->deadline_at_ns)
        return -1;
    uint64_t now = mono_ns();
    return now >= m->deadline_at_ns ? 0 : (int64_t)((m->deadline_at_ns - now) / 1000000u);
}

static void save_end(struct ufio_mig *m)
{
    free(m->out);
    m->out = NULL;
    m->out_len = m->out_off = m->out_cap = 0;
    m->saving = m->end_sent = false;
    m->ahead_want = 0;
    m->round_end = false;
    m->ahead_err = 0;
}

static void resume_end(struct ufio_mig *m)
{
    ufio_mig_rx_reset(&m->rx);
    m->resuming = false;
    m->loaded = 0;
}

void dev_mig_free(struct ufio_dev *dev)
{
    if (!dev->mig)
        return;
    save_end(dev->mig);
    resume_end(dev->mig);
    ufio_mig_rx_free(&dev->mig->rx);
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
    m->deadline_ms = m->deadline_at_ns = 0;
    m->state = UFIO_MIG_RUNNING; /* reset returns the device to RUNNING, as the kernel does */
}

/* ---- library-owned state ---------------------------------------------------------- */

/*
 * The DEVCFG record: config space (4 KiB or 256 B), the MSI-X table and its
 * use flag, then every interrupt index's vector count and each vector's
 * (vfio-level) mask and pending bit. Eventfds are the client's: not state.
 */
static size_t devcfg_size(struct ufio_dev *dev)
{
    size_t n = 4 + dev->cfg.size + 4 + (size_t)dev->msix.nvec * 16 + 1 + 4;
    for (unsigned i = 0; i < UFIO_IRQ_NUM; i++)
        n += 4 + 2 * (size_t)dev->irqs[i].count;
    return n;
}

static int devcfg_write(struct ufio_dev *dev, uint8_t *p, size_t len)
{
    struct ufio_wr w = ufio_wr_init(p, len);
    ufio_wr_u32(&w, dev->cfg.size);
    ufio_wr_bytes(&w, dev->cfg.space, dev->cfg.size);
    ufio_wr_u32(&w, dev->msix.nvec);
    ufio_wr_bytes(&w, dev->msix.table, (size_t)dev->msix.nvec * 16);
    uint8_t used = dev->msix.table_used;
    ufio_wr_bytes(&w, &used, 1);
    ufio_wr_u32(&w, UFIO_IRQ_NUM);
    for (unsigned i = 0; i < UFIO_IRQ_NUM; i++) {
        ufio_wr_u32(&w, dev->irqs[i].count);
        for (uint32_t k = 0; k < dev->irqs[i].count; k++) {
            uint8_t b[2] = { dev->irqs[i].v[k].masked, dev->irqs[i].v[k].pending };
            ufio_wr_bytes(&w, b, 2);
        }
    }
    return w.err;
}

/* Checks the DEVCFG record fits this device; applies it when apply. */
static int devcfg_load(struct ufio_dev *dev, const uint8_t *p, size_t len, bool apply)
{
    struct ufio_rd r = ufio_rd_init(p, len);
    uint32_t size, nvec, nidx;
    const void *space = NULL, *table = NULL;
    uint8_t used = 0;
    if (ufio_rd_u32(&r, &size) || size != dev->cfg.size || ufio_rd_ptr(&r, &space, size) ||
        ufio_rd_u32(&r, &nvec) || nvec != dev->msix.nvec || ufio_rd_ptr(&r, &table, (size_t)nvec * 16) ||
        ufio_rd_bytes(&r, &used, 1) || ufio_rd_u32(&r, &nidx) || nidx != UFIO_IRQ_NUM)
        return -EINVAL;
    const uint8_t *vec[UFIO_IRQ_NUM];
    for (unsigned i = 0; i < UFIO_IRQ_NUM; i++) {
        uint32_t count;
        const void *v = NULL;
        if (ufio_rd_u32(&r, &count) || count != dev->irqs[i].count || ufio_rd_ptr(&r, &v, 2 * (size_t)count))
            return -EINVAL;
        vec[i] = v;
    }
    if (ufio_rd_left(&r))
        return -EINVAL;
    if (!apply)
        return 0;
    memcpy(dev->cfg.space, space, size);
    if (nvec)
        memcpy(dev->msix.table, table, (size_t)nvec * 16);
    dev->msix.table_used = used;
    for (unsigned i = 0; i < UFIO_IRQ_NUM; i++)
        for (uint32_t k = 0; k < dev->irqs[i].count; k++) {
            dev->irqs[i].v[k].masked = vec[i][2 * k] != 0;
            dev->irqs[i].v[k].pending = vec[i][2 * k + 1] != 0;
        }
    return 0;
}

/* ---- the saving stream ---------------------------------------------------------- */

static int out_reserve(struct ufio_mig *m, size_t cap)
{
    if (cap <= m->out_cap)
        return 0;
    uint8_t *p = realloc(m->out, cap);
    if (!p)
        return -ENOMEM;
    m->out = p;
    m->out_cap = cap;
    return 0;
}

/* The first bytes of a session: header and descriptor. Allocates; nothing else changes. */
static int save_prepare(struct ufio_dev *dev, uint8_t **buf, size_t *len)
{
    const char *desc = dev_compat_json(dev);
    size_t dl = strlen(desc) + 1;
    size_t n = UFIO_MIG_HDR_SIZE + UFIO_MIG_REC_HDR + dl;
    uint8_t *p = malloc(n);
    if (!p)
        return -ENOMEM;
    ufio_mig_put_header(p);
    memcpy(p + UFIO_MIG_HDR_SIZE + UFIO_MIG_REC_HDR, desc, dl);
    ufio_mig_frame(p + UFIO_MIG_HDR_SIZE, UFIO_MIG_TAG_DESC, 0, desc, (uint32_t)dl);
    *buf = p;
    *len = n;
    return 0;
}

static void save_commit(struct ufio_mig *m, uint8_t *buf, size_t len)
{
    save_end(m);
    m->out = buf;
    m->out_len = m->out_cap = len;
    m->saving = true;
    m->total = 0;
    m->chain = m->nrec = 0;
}

/* DEVCFG then END: the stream is complete. */
static int save_close(struct ufio_dev *dev)
{
    struct ufio_mig *m = dev->mig;
    size_t dl = devcfg_size(dev);
    if (dl > UFIO_MIG_MAX_DEVCFG)
        return -E2BIG;
    int err = out_reserve(m, m->out_len + 2 * UFIO_MIG_REC_HDR + dl + UFIO_MIG_END_SIZE);
    if (err)
        return err;
    uint8_t *rec = m->out + m->out_len;
    if ((err = devcfg_write(dev, rec + UFIO_MIG_REC_HDR, dl)))
        return err;
    uint32_t crc = ufio_crc32c(0, rec + UFIO_MIG_REC_HDR, dl);
    ufio_mig_put_record(rec, UFIO_MIG_TAG_DEVCFG, 0, (uint32_t)dl, crc);
    m->chain = ufio_mig_crc_chain(m->chain, crc);
    rec += UFIO_MIG_REC_HDR + dl;
    ufio_mig_put_end(rec + UFIO_MIG_REC_HDR, m->total, m->chain, m->nrec);
    ufio_mig_frame(rec, UFIO_MIG_TAG_END, 0, rec + UFIO_MIG_REC_HDR, UFIO_MIG_END_SIZE);
    m->out_len += 2 * UFIO_MIG_REC_HDR + dl + UFIO_MIG_END_SIZE;
    m->end_sent = true;
    return 0;
}

/*
 * Frames records until `want` bytes are pending, the device has nothing
 * more for now (PRE_COPY: returns 1), or the stream is complete (STOP_COPY).
 * save() is asked for what fills the read, at least SAVE_MIN: a read smaller
 * than that leaves the rest of one record here for the next read.
 */
static int save_produce(struct ufio_dev *dev, size_t want)
{
    struct ufio_mig *m = dev->mig;
    while (m->out_len < want && !m->end_sent) {
        size_t room = want - m->out_len;
        size_t ask = room > UFIO_MIG_REC_HDR + SAVE_MIN ? room - UFIO_MIG_REC_HDR : SAVE_MIN;
        if (ask > SAVE_MAX)
            ask = SAVE_MAX;
        int err = out_reserve(m, m->out_len + UFIO_MIG_REC_HDR + ask);
        if (err)
            return err;
        uint8_t *rec = m->out + m->out_len;
        ssize_t n = m->ops.save(dev, m->opaque, rec + UFIO_MIG_REC_HDR, ask);
        if (n < 0)
            return (int)n;
        if ((size_t)n > ask)
            return -EIO;
        if (n == 0) {
            if (m->state != UFIO_MIG_STOP_COPY)
                return 1; /* PRE_COPY: nothing more for now */
            return save_close(dev);
        }
        uint32_t crc = ufio_crc32c(0, rec + UFIO_MIG_REC_HDR, (size_t)n);
        ufio_mig_put_record(rec, UFIO_MIG_TAG_DATA, 0, (uint32_t)n, crc);
        m->chain = ufio_mig_crc_chain(m->chain, crc);
        m->total += (uint64_t)n;
        m->nrec++;
        m->out_len += UFIO_MIG_REC_HDR + (size_t)n;
    }
    return 0;
}

static int set_state(struct ufio_dev *dev, unsigned target);

/* Out of time in STOP_COPY (or the device says so): back to RUNNING, as promised. */
static int save_give_up(struct ufio_dev *dev, const char *why)
{
    struct ufio_mig *m = dev->mig;
    uint64_t ms = m->deadline_ms;
    int err = set_state(dev, UFIO_MIG_RUNNING);
    refuse(dev, "stop-copy could not finish within %llu ms (%s); the device %s", (unsigned long long)ms, why,
           err ? "could not be put back to RUNNING" : "runs again");
    return -ETIME;
}

int dev_mig_data_read(struct ufio_dev *dev, const struct ufio_mig_data *req, struct ufio_reply *rep)
{
    struct ufio_mig *m = dev->mig;
    if (!m)
        return -EINVAL;
    m->reason[0] = 0;
    if (!m->saving ||
        (m->state != UFIO_MIG_PRE_COPY && m->state != UFIO_MIG_PRE_COPY_P2P && m->state != UFIO_MIG_STOP_COPY)) {
        refuse(dev, "MIG_DATA_READ in %s: data is read in PRE_COPY or STOP_COPY", ufio_mig_state_name(m->state));
        return -EINVAL;
    }
    if (m->state == UFIO_MIG_STOP_COPY && !m->end_sent && m->deadline_at_ns && mono_ns() > m->deadline_at_ns)
        return save_give_up(dev, "deadline passed");
    int err = m->ahead_err;
    m->ahead_err = 0;
    size_t avail = m->out_len - m->out_off;
    if (!err && avail < req->size && !m->end_sent && !m->round_end) {
        /* what the previous reply left (less than one record) moves to the front */
        memmove(m->out, m->out + m->out_off, avail);
        m->out_len = avail;
        m->out_off = 0;
        err = save_produce(dev, req->size);
        avail = m->out_len;
    }
    if (err == -ETIME)
        return save_give_up(dev, "the device said so");
    if (err < 0) {
        refuse(dev, "the device could not produce its state: %s", strerror(-err));
        return err;
    }
    size_t n = avail < req->size ? avail : req->size;
    struct ufio_mig_data d = { .argsz = (uint32_t)(8 + n), .size = (uint32_t)n };
    ssize_t hl = ufio_mig_data_head_encode(&d, rep->head, sizeof(rep->head));
    if (hl < 0)
        return (int)hl;
    rep->head_len = (size_t)hl;
    /* the bytes stay in m->out until the reply is sent: the next read only moves them */
    rep->iov[0] = (struct iovec){ m->out + m->out_off, n };
    rep->iovcnt = n ? 1 : 0;
    m->out_off += n;
    /* a short reply ends the round (or the stream): nothing is framed ahead of the next */
    if (n < req->size)
        m->round_end = false;
    m->ahead_want = n == req->size && !m->end_sent ? req->size : 0;
    return 0;
}

/*
 * After a full MIG_DATA_READ reply went out: frames the next read's worth
 * now, while the client receives this one and sends its next request, so
 * save() and the CRCs are off the round trip (the source holds two reads'
 * worth at most). A PRE_COPY round that ends meanwhile is remembered: the
 * next read gets what is left of it, short, as it would have. Errors wait
 * for the next read to report them.
 */
void dev_mig_read_ahead(struct ufio_dev *dev)
{
    struct ufio_mig *m = dev->mig;
    if (!m || !m->saving || !m->ahead_want || m->end_sent || m->round_end || m->ahead_err ||
        (m->state != UFIO_MIG_PRE_COPY && m->state != UFIO_MIG_PRE_COPY_P2P && m->state != UFIO_MIG_STOP_COPY))
        return;
    size_t avail = m->out_len - m->out_off;
    if (avail >= m->ahead_want)
        return;
    memmove(m->out, m->out + m->out_off, avail);
    m->out_len = avail;
    m->out_off = 0;
    int err = save_produce(dev, m->ahead_want);
    if (err == 1)
        m->round_end = true;
    else if (err < 0)
        m->ahead_err = err;
}

/* ---- the resuming stream ------------------------------------------------------------ */

static int rx_desc(void *arg, const char *desc)
{
    struct ufio_mig *m = arg;
    char reason[200];
    int err = dev_compat_check(m->dev, desc, reason, sizeof(reason));
    if (err)
        refuse(m->dev, "the stream's descriptor does not fit this device: %s", reason);
    return err;
}

/* A verified DATA record: the device loads it now. */
static int rx_data(void *arg, const uint8_t *p, size_t len)
{
    struct ufio_mig *m = arg;
    int err = dev_cb_result(m->dev->name, "migration load", m->ops.load(m->dev, m->opaque, p, len, false), 0);
    if (err) {
        refuse(m->dev, "the device refused record %u of the stream (%zu bytes): %s", m->loaded + 1, len,
               strerror(-err));
        return err;
    }
    m->loaded++;
    return 0;
}

int dev_mig_data_write(struct ufio_dev *dev, const struct ufio_mig_data *req)
{
    struct ufio_mig *m = dev->mig;
    if (!m)
        return -EINVAL;
    if (m->state != UFIO_MIG_RESUMING || !m->resuming) {
        refuse(dev, "MIG_DATA_WRITE in %s: data is written in RESUMING", ufio_mig_state_name(m->state));
        return -EINVAL;
    }
    int was = m->rx.err;
    if (!was)
        m->reason[0] = 0;
    int err = ufio_mig_rx_feed(&m->rx, req->data, req->size);
    if (err && !was && !m->reason[0]) {
        const char *what = err == -EBADMSG ? "a record or the end record does not match its checksum"
                         : err == -E2BIG   ? "a record is larger than this destination accepts"
                         : err == -ENOMEM  ? "out of memory"
                                           : "malformed framing (magic, version, record order or tag)";
        refuse(dev, "migration stream rejected after %llu payload bytes: %s", (unsigned long long)m->rx.total,
               what);
    }
    if (err && !was)
        memcpy(m->rx_reason, m->reason, sizeof(m->reason));
    return err;
}

/* RESUMING -> STOP, before the device's transition: was the stream whole and right? */
static int resume_check(struct ufio_dev *dev)
{
    struct ufio_mig *m = dev->mig;
    if (m->rx.err) {
        refuse(dev, "%s", m->rx_reason);
        return m->rx.err;
    }
    if (!m->rx.done) {
        refuse(dev, "migration stream incomplete: %llu payload bytes in %u records and no end record",
               (unsigned long long)m->rx.total, m->rx.nrec);
        return -EINVAL;
    }
    if (!m->rx.devcfg || devcfg_load(dev, m->rx.devcfg, m->rx.devcfg_len, false)) {
        refuse(dev, "migration stream: the device configuration record is missing or does not fit");
        return -EINVAL;
    }
    int err = dev_cb_result(dev->name, "migration load", m->ops.load(dev, m->opaque, NULL, 0, true), 0);
    if (err) {
        refuse(dev, "the device found its state incomplete: %s", strerror(-err));
        return err;
    }
    return 0;
}

/* ---- the state machine walk ---------------------------------------------------------- */

static bool saving_state(unsigned s)
{
    return s == UFIO_MIG_STOP_COPY || s == UFIO_MIG_PRE_COPY || s == UFIO_MIG_PRE_COPY_P2P;
}

/*
 * One arc, with the step contract: everything that can fail (the library's
 * allocations, the stream checks, the device's save_start and transition)
 * happens before anything is committed, so a failed arc leaves the device
 * (by its own contract) and the library in `from`. The one exception is the
 * kernel's: a stream found invalid when leaving RESUMING puts the device in
 * ERROR, because load() has seen part of it.
 */
static int arc(struct ufio_dev *dev, unsigned from, unsigned to)
{
    struct ufio_mig *m = dev->mig;
    int err;
    bool session = !saving_state(from) && saving_state(to);
    uint8_t *head = NULL;
    size_t head_len = 0;
    if (from == UFIO_MIG_RESUMING && to == UFIO_MIG_STOP && (err = resume_check(dev))) {
        resume_end(m);
        m->state = UFIO_MIG_ERROR;
        return err;
    }
    if (session && (err = save_prepare(dev, &head, &head_len)))
        return err;
    if (session && m->ops.save_start &&
        (err = dev_cb_result(dev->name, "migration save_start", m->ops.save_start(dev, m->opaque), 0))) {
        free(head);
        refuse(dev, "the device could not start a save session: %s", strerror(-err));
        return err;
    }
    if (m->ops.transition &&
        (err = dev_cb_result(dev->name, "migration transition", m->ops.transition(dev, m->opaque, from, to), 0))) {
        free(head);
        refuse(dev, "the device failed the arc %s -> %s: %s", ufio_mig_state_name(from), ufio_mig_state_name(to),
               strerror(-err));
        return err;
    }
    /* commit: nothing below fails */
    if (session)
        save_commit(m, head, head_len);
    else if (saving_state(from) && !saving_state(to)) {
        save_end(m);
        m->deadline_ms = m->deadline_at_ns = 0; /* a deadline is for one session */
    }
    if (to == UFIO_MIG_STOP_COPY) {
        m->deadline_at_ns = m->deadline_ms ? mono_ns() + m->deadline_ms * 1000000u : 0;
        m->round_end = false; /* a PRE_COPY round's end says nothing in STOP_COPY: its reads go on */
    }
    if (from == UFIO_MIG_RESUMING && to == UFIO_MIG_STOP)
        devcfg_load(dev, m->rx.devcfg, m->rx.devcfg_len, true);
    if (to == UFIO_MIG_RESUMING) {
        resume_end(m);
        m->rx.max_record = dev->lim.max_data_xfer_size > UFIO_MIG_MAX_RECORD ? dev->lim.max_data_xfer_size
                                                                             : UFIO_MIG_MAX_RECORD;
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
    if (err) {
        refuse(dev, "no way from %s to %s for this device", ufio_mig_state_name(m->state),
               target < UFIO_MIG_NUM_STATES ? ufio_mig_state_name(target) : "an unknown state");
        return err;
    }
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

static bool running_state(unsigned s)
{
    return s == UFIO_MIG_RUNNING || s == UFIO_MIG_PRE_COPY || s == UFIO_MIG_RUNNING_P2P ||
           s == UFIO_MIG_PRE_COPY_P2P;
}

bool dev_mig_stops(struct ufio_dev *dev, const struct ufio_feature *f)
{
    struct ufio_mig *m = dev->mig;
    struct ufio_mig_state_data sd;
    unsigned path[UFIO_MIG_NUM_STATES];
    size_t len;
    if (!m || ufio_mig_state_decode(f->data, f->data_len, &sd))
        return false;
    return running_state(m->state) && !running_state(sd.state) &&
           ufio_mig_path(m->ops.flags, m->state, sd.state, path, &len) == 0;
}

int dev_mig_set_state(struct ufio_dev *dev, unsigned target)
{
    return dev->mig ? set_state(dev, target) : -ENOTSUP;
}

/*
 * The session that moved the device out of RUNNING went away (lib/server/session.c): as the
 * kernel does when the device file closes, a saving device walks back to RUNNING through its
 * transitions. A resuming one drops its stream; with records already loaded (streaming load)
 * it goes to ERROR instead, so it never runs on part of a state: a reset makes it usable.
 */
void dev_mig_abandon(struct ufio_dev *dev)
{
    struct ufio_mig *m = dev->mig;
    if (!m || m->state == UFIO_MIG_RUNNING || m->state == UFIO_MIG_ERROR)
        return;
    if (m->dirty_limited) {
        /* asked for by the controller that went away (the engine lifts it itself on a rollback) */
        m->dirty_limited = false;
        dev_cb_result(dev->name, "migration dirty_limit", m->ops.dirty_limit(dev, m->opaque, 0), 0);
    }
    unsigned from = m->state;
    if (m->state == UFIO_MIG_RESUMING) {
        bool partial = m->loaded > 0;
        resume_end(m);
        if (partial) {
            m->state = UFIO_MIG_ERROR;
            UFIO_INFO(dev->name, "migration abandoned in RESUMING with part of a stream loaded: ERROR until reset");
            return;
        }
        m->state = UFIO_MIG_STOP;
    }
    if (set_state(dev, UFIO_MIG_RUNNING) != 0) {
        dev_mig_reset(dev);
        if (m->ops.transition)
            m->ops.transition(dev, m->opaque, from, UFIO_MIG_RUNNING);
    }
    save_end(m);
    resume_end(m);
    m->deadline_ms = m->deadline_at_ns = 0;
    UFIO_INFO(dev->name, "migration abandoned in %s: device RUNNING again", ufio_mig_state_name(from));
}

/* The digest of the whole state: u32 flags, CRC-32C of the library's state
 * (as a DEVCFG record would carry it) u32, then the device's own digest. */
static int digest(struct ufio_dev *dev, uint8_t *out, size_t cap, size_t *len)
{
    struct ufio_mig *m = dev->mig;
    if (m->state != UFIO_MIG_STOP && m->state != UFIO_MIG_STOP_COPY) {
        refuse(dev, "digest in %s: the state is digested only while the device is stopped",
               ufio_mig_state_name(m->state));
        return -EBUSY;
    }
    size_t dl = devcfg_size(dev);
    uint8_t *b = malloc(dl);
    if (!b)
        return -ENOMEM;
    int err = devcfg_write(dev, b, dl);
    uint32_t crc = ufio_crc32c(0, b, dl);
    free(b);
    if (err)
        return err;
    uint32_t flags = 0;
    size_t n = 8;
    if (m->ops.digest) {
        int k = m->ops.digest(dev, m->opaque, out + 8, cap - 8);
        if (k < 0) {
            refuse(dev, "the device could not digest its state: %s", strerror(-k));
            return k;
        }
        if ((size_t)k > cap - 8)
            return -EIO;
        flags |= UFIO_DIGEST_F_DEVICE;
        n += (size_t)k;
    }
    ufio_st32(out, flags);
    ufio_st32(out + 4, crc);
    *len = n;
    return 0;
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
    struct ufio_log_start ls;
    int err = ufio_log_start_decode(f->data, f->data_len, &ls); /* lib/proto: the client's codec too */
    if (err)
        return err;
    uint64_t pgsize = ls.page_size;
    uint32_t nranges = ls.nranges;
    /* num_ranges 0 means "everything" (the spec); either way every mapping is
     * logged, which is a superset of what was asked for */
    err = dma_log_start(dev, pgsize);
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
    struct ufio_log_report lr;
    int err = ufio_log_report_decode(f->data, f->data_len, &lr);
    if (err)
        return err;
    uint64_t bytes = ufio_log_bitmap_bytes(&lr);
    if (bytes > dev->lim.max_data_xfer_size)
        return -E2BIG;
    if ((uint64_t)f->argsz < 8 + 24 + bytes)
        return -EINVAL;
    uint8_t *buf = calloc(1, 24 + bytes);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, f->data, 24);
    err = dma_log_report(dev, lr.iova, lr.length, lr.page_size, (uint64_t *)(void *)(buf + 24));
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
            struct ufio_mig_state_data sd;
            int err = ufio_mig_state_decode(f->data, f->data_len, &sd);
            if (err)
                return err;
            m->reason[0] = 0;
            err = set_state(dev, sd.state);
            if (err)
                return err;
        }
        const struct ufio_mig_state_data now = { m->state, -1 }; /* no data fd in vfio-user */
        ufio_mig_state_encode(&now, buf, sizeof(buf));
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
                             (stop_copy / SAVE_MIN + 1) * UFIO_MIG_REC_HDR + UFIO_MIG_REC_HDR + devcfg_size(dev) +
                             UFIO_MIG_REC_HDR + UFIO_MIG_END_SIZE;
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
    case UFIO_FEATURE_DIGEST: {
        if (!m)
            return -ENOTSUP;
        if (set)
            return -EINVAL;
        if (probe)
            return feature_reply(rep, f, NULL, 0, true);
        uint8_t d[8 + UFIO_DIGEST_MAX];
        size_t n = 0;
        int err = digest(dev, d, sizeof(d), &n);
        if (err)
            return err;
        return feature_reply(rep, f, d, n, true);
    }
    case UFIO_FEATURE_MIG_REASON:
        if (!m)
            return -ENOTSUP;
        if (set)
            return -EINVAL;
        if (probe)
            return feature_reply(rep, f, NULL, 0, true);
        return feature_reply(rep, f, m->reason, strlen(m->reason) + 1, true);
    case UFIO_FEATURE_STOP_COPY_DEADLINE:
    case UFIO_FEATURE_DIRTY_RATE_LIMIT: {
        if (!m || (index == UFIO_FEATURE_DIRTY_RATE_LIMIT && !m->ops.dirty_limit))
            return -ENOTSUP;
        if (get)
            return -EINVAL;
        if (probe)
            return feature_reply(rep, f, NULL, 0, true);
        struct ufio_rd r = ufio_rd_init(f->data, f->data_len);
        uint64_t v;
        if (ufio_rd_u64(&r, &v) || ufio_rd_left(&r))
            return -EINVAL;
        if (index == UFIO_FEATURE_STOP_COPY_DEADLINE) {
            if (v > 3600u * 1000u)
                return -EINVAL;
            m->deadline_ms = v;
            if (m->state == UFIO_MIG_STOP_COPY)
                m->deadline_at_ns = v ? mono_ns() + v * 1000000u : 0;
        } else {
            int err = dev_cb_result(dev->name, "migration dirty_limit", m->ops.dirty_limit(dev, m->opaque, v), 0);
            if (err)
                return err;
            m->dirty_limited = v != 0;
        }
        return feature_reply(rep, f, NULL, 0, true);
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
