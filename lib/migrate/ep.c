/* Typed endpoint calls for the engine (ep.h). */
#include "migrate/ep.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <ufio/client.h>
#include <ufio/migration.h>

#include "proto/compat.h"
#include "proto/cursor.h"
#include "proto/proto.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int feat(struct mep *m, uint32_t flags, const void *in, size_t in_len, void *out, size_t cap, size_t *got)
{
    size_t n = 0;
    double t0 = now_ms();
    int err = m->e->ops->feature(m->e->priv, flags, in, in_len, out, cap, &n);
    double t = now_ms() - t0;
    if (!err && (m->quickest_ms == 0 || t < m->quickest_ms))
        m->quickest_ms = t > 0 ? t : 1e-6;
    if (got)
        *got = n;
    return err;
}

static int get_exact(struct mep *m, unsigned index, void *out, size_t want)
{
    size_t got = 0;
    int err = feat(m, UFIO_FEATURE_GET | index, NULL, 0, out, want, &got);
    return !err && got != want ? -EPROTO : err;
}

int mep_flags(struct mep *m, uint64_t *flags)
{
    uint8_t b[8];
    int err = get_exact(m, VFIO_DEVICE_FEATURE_MIGRATION, b, 8);
    if (!err)
        *flags = ufio_ld64(b);
    return err;
}

int mep_get_state(struct mep *m, unsigned *state)
{
    uint8_t b[8];
    int err = get_exact(m, VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, b, 8);
    if (!err) {
        *state = ufio_ld32(b);
        if (*state >= UFIO_MIG_NUM_STATES)
            err = -EPROTO;
    }
    return err;
}

static int set_direct(struct mep *m, unsigned state)
{
    uint8_t in[8], out[8];
    ufio_st32(in, state);
    ufio_st32(in + 4, 0xffffffffu);
    size_t got = 0;
    int err = feat(m, UFIO_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, in, 8, out, sizeof(out), &got);
    if (!err && (got != 8 || ufio_ld32(out) != state))
        err = -EPROTO;
    return err;
}

/* A server that takes only direct arcs (libvfio-user): walk the kernel's path arc by arc. */
static int set_by_arcs(struct mep *m, unsigned state)
{
    uint64_t flags;
    unsigned cur, path[UFIO_MIG_NUM_STATES];
    size_t len;
    int err = mep_flags(m, &flags);
    if (!err)
        err = mep_get_state(m, &cur);
    if (!err)
        err = ufio_mig_path(flags, cur, state, path, &len);
    if (!err && len <= 1)
        return -EINVAL; /* the direct request was this one arc: its refusal stands */
    for (size_t i = 0; !err && i < len; i++)
        err = set_direct(m, path[i]);
    return err;
}

int mep_set_state(struct mep *m, unsigned state, unsigned *reached)
{
    int err = set_direct(m, state);
    if (err == -EINVAL && set_by_arcs(m, state) == 0)
        err = 0;
    if (reached) {
        if (!err)
            *reached = state;
        else if (mep_get_state(m, reached))
            *reached = UFIO_MIG_ERROR;
    }
    return err;
}

/* What a device without a descriptor is: its PCI ids at version 0.0.0. */
static int desc_from_ids(struct mep *m, char *buf, size_t cap)
{
    if (!m->e->ops->config_read)
        return -ENOTSUP;
    uint8_t c[0x30];
    int err = m->e->ops->config_read(m->e->priv, 0, c, sizeof(c));
    if (err)
        return err;
    return ufio_compat_from_pci_ids(c, sizeof(c), buf, cap);
}

int mep_desc(struct mep *m, char *buf, size_t cap)
{
    size_t got = 0;
    int err = feat(m, UFIO_FEATURE_GET | UFIO_FEATURE_COMPAT_DESC, NULL, 0, buf, cap - 1, &got);
    if (err == -ENOTSUP || err == -EINVAL)
        return desc_from_ids(m, buf, cap);
    if (err)
        return err;
    if (!got || buf[got - 1] != 0)
        return -EPROTO;
    return 0;
}

int mep_precopy_info(struct mep *m, uint64_t *initial, uint64_t *dirty)
{
    uint8_t b[16];
    int err = get_exact(m, UFIO_FEATURE_PRECOPY_INFO, b, 16);
    if (!err) {
        *initial = ufio_ld64(b);
        *dirty = ufio_ld64(b + 8);
    }
    return err;
}

int mep_stop_copy_size(struct mep *m, uint64_t *bytes)
{
    uint8_t b[8];
    int err = get_exact(m, UFIO_FEATURE_MIG_DATA_SIZE, b, 8);
    if (!err)
        *bytes = ufio_ld64(b);
    return err;
}

int mep_reason(struct mep *m, char *buf, size_t cap)
{
    size_t got = 0;
    buf[0] = 0;
    int err = feat(m, UFIO_FEATURE_GET | UFIO_FEATURE_MIG_REASON, NULL, 0, buf, cap - 1, &got);
    if (err)
        return err;
    buf[got < cap ? got : cap - 1] = 0;
    return 0;
}

int mep_digest(struct mep *m, uint8_t *buf, size_t cap, size_t *len)
{
    return feat(m, UFIO_FEATURE_GET | UFIO_FEATURE_DIGEST, NULL, 0, buf, cap, len);
}

int mep_set_u64(struct mep *m, unsigned index, uint64_t v)
{
    uint8_t b[8];
    ufio_st64(b, v);
    return feat(m, UFIO_FEATURE_SET | index, b, 8, NULL, 0, NULL);
}

int mep_read(struct mep *m, void *buf, size_t len, size_t *got)
{
    return m->e->ops->data_read(m->e->priv, buf, len, got);
}

int mep_write(struct mep *m, const void *buf, size_t len)
{
    return m->e->ops->data_write(m->e->priv, buf, len);
}

int mep_reset(struct mep *m)
{
    return m->e->ops->reset ? m->e->ops->reset(m->e->priv) : -ENOTSUP;
}

uint64_t mep_max_chunk(struct mep *m)
{
    return m->e->ops->max_chunk ? m->e->ops->max_chunk(m->e->priv) : 0;
}

int mep_flush(struct mep *m)
{
    const struct ufio_mig_endpoint_ops *o = m->e->ops;
    if (o->size < offsetof(struct ufio_mig_endpoint_ops, flush) + sizeof(o->flush) || !o->flush)
        return 0;
    return o->flush(m->e->priv);
}

void mep_close(struct mep *m)
{
    if (m->e && m->owned)
        ufio_mig_endpoint_destroy(m->e);
    m->e = NULL;
}
