/*
 * ufio-virtio-blk: live migration (and so handover) of the device's own state.
 *
 * Requests run synchronously inside the notify write, so between two
 * messages no request is in flight: when a state change arrives, every
 * request taken from the ring has been finished and answered in the used
 * ring. Quiescing is therefore only "take no new request": while the device
 * is not RUNNING (or PRE_COPY) a notify is remembered, not served, and the
 * queues are looked at again when it runs again (on the source after a
 * failed migration, on the destination after the load).
 *
 * The library carries config space and the MSI-X table. The device's record
 * (one save() piece, in STOP_COPY; PRE_COPY has nothing to send) is a
 * little-endian byte string with a magic and a version; load() checks every
 * field against what this instance can be before it changes anything.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <ufio/migration.h>
#include <ufio/server.h>

#include "vblk.h"

#define REC_MAGIC 0x4b4c4256u /* "VBLK" */
#define REC_VERSION 1u
#define REC_HEAD 54u
#define REC_QUEUE 33u
#define REC_SIZE (REC_HEAD + NUM_QUEUES * REC_QUEUE)
/* the state format; docs/virtio-blk.md "Migration" */
#define STATE_VERSION "1.0.0"

/* ---- bytes in, bytes out ------------------------------------------------------------- */

struct wr {
    uint8_t *p;
    size_t off;
};

static void w_le(struct wr *w, uint64_t v, unsigned size)
{
    for (unsigned i = 0; i < size; i++)
        w->p[w->off++] = (uint8_t)(v >> (8 * i));
}

/* A bounds-checked reader: a short record leaves ok false, never reads past len. */
struct rd {
    const uint8_t *p;
    size_t len, off;
    bool ok;
};

static uint64_t r_le(struct rd *r, unsigned size)
{
    if (!r->ok || r->len - r->off < size) {
        r->ok = false;
        return 0;
    }
    uint64_t v = 0;
    for (unsigned i = size; i-- > 0;)
        v = v << 8 | r->p[r->off + i];
    r->off += size;
    return v;
}

/* ---- save ----------------------------------------------------------------------------- */

static size_t encode(const struct vblk *vb, uint8_t *buf)
{
    struct wr w = { buf, 0 };
    w_le(&w, REC_MAGIC, 4);
    w_le(&w, REC_VERSION, 4);
    w_le(&w, vb->host_features, 8);
    w_le(&w, vb->capacity, 8);
    w_le(&w, vb->guest_features, 8);
    w_le(&w, vb->dfselect, 4);
    w_le(&w, vb->gfselect, 4);
    w_le(&w, vb->msix_config, 2);
    w_le(&w, vb->status, 1);
    w_le(&w, vb->isr, 1);
    w_le(&w, vb->queue_sel, 2);
    w_le(&w, vb->broken, 1);
    w_le(&w, vb->config_generation, 1);
    w_le(&w, vb->kicked, 4);
    w_le(&w, NUM_QUEUES, 2);
    for (unsigned i = 0; i < NUM_QUEUES; i++) {
        const struct vq *q = &vb->vq[i];
        w_le(&w, q->size, 2);
        w_le(&w, q->msix_vector, 2);
        w_le(&w, q->enabled, 1);
        w_le(&w, q->desc, 8);
        w_le(&w, q->driver, 8);
        w_le(&w, q->device, 8);
        w_le(&w, q->last_avail, 2);
        w_le(&w, q->used_idx, 2);
    }
    return w.off;
}

static ssize_t vblk_mig_save(struct ufio_dev *dev, void *opaque, void *buf, size_t len)
{
    struct vblk *vb = opaque;
    if (ufio_dev_mig_state(dev) != UFIO_MIG_STOP_COPY || vb->mig_saved)
        return 0; /* nothing to precopy; in STOP_COPY one record, then done */
    if (len < REC_SIZE)
        return -ENOSPC;
    vb->mig_saved = true;
    return (ssize_t)encode(vb, buf);
}

static void vblk_mig_estimate(struct ufio_dev *dev, void *opaque, uint64_t *initial, uint64_t *dirty,
                              uint64_t *stop_copy)
{
    *initial = *dirty = 0;
    *stop_copy = REC_SIZE;
}

/* ---- load ----------------------------------------------------------------------------- */

static bool vector_ok(uint64_t v)
{
    return v < MSIX_VECTORS || v == NO_VECTOR;
}

/* Decodes a record into *out (a copy of the live state); NULL or why it is refused. */
static const char *decode(const struct vblk *vb, const uint8_t *buf, size_t len, struct vblk *out)
{
    struct rd r = { buf, len, 0, true };
    if (r_le(&r, 4) != REC_MAGIC || !r.ok)
        return "not a virtio-blk record";
    if (r_le(&r, 4) != REC_VERSION)
        return "unknown record version";
    uint64_t host = r_le(&r, 8), cap = r_le(&r, 8);
    out->guest_features = r_le(&r, 8);
    out->dfselect = (uint32_t)r_le(&r, 4);
    out->gfselect = (uint32_t)r_le(&r, 4);
    uint64_t msix_config = r_le(&r, 2);
    out->status = (uint8_t)r_le(&r, 1);
    out->isr = (uint8_t)r_le(&r, 1);
    out->queue_sel = (uint16_t)r_le(&r, 2);
    uint64_t broken = r_le(&r, 1);
    out->config_generation = (uint8_t)r_le(&r, 1);
    uint64_t kicked = r_le(&r, 4);
    uint64_t nq = r_le(&r, 2);
    if (!r.ok)
        return "record truncated";
    /* the compatibility descriptor already matched these; a record that disagrees is corrupt */
    if (host != vb->host_features)
        return "device features differ";
    if (cap != vb->capacity)
        return "disk capacity differs";
    if (nq != NUM_QUEUES)
        return "number of queues differs";
    if (out->guest_features & ~host)
        return "driver features the device does not offer";
    if (!vector_ok(msix_config))
        return "config vector out of range";
    if (broken > 1)
        return "bad needs-reset flag";
    if (kicked >> NUM_QUEUES)
        return "pending notify for a queue that does not exist";
    out->msix_config = (uint16_t)msix_config;
    out->broken = broken;
    out->kicked = (uint32_t)kicked;
    for (unsigned i = 0; i < NUM_QUEUES; i++) {
        struct vq *q = &out->vq[i];
        q->size = (uint16_t)r_le(&r, 2);
        uint64_t vec = r_le(&r, 2), en = r_le(&r, 1);
        q->desc = r_le(&r, 8);
        q->driver = r_le(&r, 8);
        q->device = r_le(&r, 8);
        q->last_avail = (uint16_t)r_le(&r, 2);
        q->used_idx = (uint16_t)r_le(&r, 2);
        if (!r.ok)
            return "record truncated";
        if (!vector_ok(vec) || en > 1)
            return "bad queue vector or enable flag";
        q->msix_vector = (uint16_t)vec;
        q->enabled = en;
        if (q->enabled && !vblk_queue_valid(q))
            return "enabled queue with a bad size or misaligned rings";
        if (q->size > QUEUE_MAX)
            return "queue larger than the device allows";
    }
    if (r.off != len)
        return "trailing bytes after the record";
    return NULL;
}

static int vblk_mig_load(struct ufio_dev *dev, void *opaque, const void *buf, size_t len, bool last)
{
    struct vblk *vb = opaque;
    if (len) {
        struct vblk next = *vb;
        const char *bad = vb->mig_loaded ? "two device records" : decode(vb, buf, len, &next);
        if (bad) {
            fprintf(stderr, PROG ": migration stream refused: %s\n", bad);
            return -EINVAL;
        }
        *vb = next;
        vb->mig_loaded = true;
    }
    if (last && !vb->mig_loaded) {
        fprintf(stderr, PROG ": migration stream refused: no device record\n");
        return -EINVAL;
    }
    return 0;
}

/* ---- the state machine ------------------------------------------------------------------ */

static bool runs(unsigned state)
{
    return state == UFIO_MIG_RUNNING || state == UFIO_MIG_PRE_COPY;
}

static int vblk_mig_transition(struct ufio_dev *dev, void *opaque, unsigned from, unsigned to)
{
    struct vblk *vb = opaque;
    if (to == UFIO_MIG_STOP_COPY || to == UFIO_MIG_PRE_COPY)
        vb->mig_saved = false;
    if (to == UFIO_MIG_RESUMING)
        vb->mig_loaded = false;
    if (!runs(from) && runs(to)) {
        vlog(vb, "running again (%s -> %s)", ufio_mig_state_name(from), ufio_mig_state_name(to));
        vblk_kick_all(vb);
    } else if (runs(from) && !runs(to)) {
        vlog(vb, "quiesced (%s -> %s)", ufio_mig_state_name(from), ufio_mig_state_name(to));
    }
    return 0;
}

/* ---- setup ------------------------------------------------------------------------------ */

int vblk_setup_migration(struct ufio_dev *dev, struct vblk *vb)
{
    static const struct ufio_mig_ops ops = {
        .size = sizeof(struct ufio_mig_ops),
        .flags = UFIO_MIG_F_STOP_COPY | UFIO_MIG_F_PRE_COPY,
        .transition = vblk_mig_transition,
        .save = vblk_mig_save,
        .load = vblk_mig_load,
        .estimate = vblk_mig_estimate,
    };
    int err = ufio_dev_setup_migration(dev, &ops, vb);
    if (err)
        return err;
    /* what must match for a stream to load: the state format, the disk's size and
     * mode, and the feature set the driver may have negotiated from */
    char desc[768];
    snprintf(desc, sizeof(desc),
             "{\"device_api\":\"vfio-pci\",\"type\":\"" PROG "\",\"software_version\":\"" STATE_VERSION "\","
             "\"pci\":{\"vendor_id\":\"0x%04x\",\"device_id\":\"0x%04x\",\"subsystem_vendor_id\":\"0x%04x\","
             "\"subsystem_id\":\"0x%04x\",\"class_code\":\"0x018000\",\"revision\":1},"
             "\"attributes\":{\"capacity_sectors\":%" PRIu64 ",\"readonly\":%s,\"features\":%" PRIu64
             ",\"num_queues\":%u,\"queue_max\":%u}}",
             VIRTIO_VENDOR, VIRTIO_DEV_BLK_MODERN, VIRTIO_VENDOR, VIRTIO_SUBSYS_ID, vb->capacity,
             vb->readonly ? "true" : "false", vb->host_features, NUM_QUEUES, QUEUE_MAX);
    return ufio_dev_set_compat(dev, desc);
}
