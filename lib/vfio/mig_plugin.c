/*
 * The migration plugin binding: a vendor's struct ufio_migration_plugin
 * behind libufio's struct ufio_mig_ops. The plugin is loaded code and cannot
 * be isolated, but nothing it returns is trusted: errnos are normalised,
 * lengths checked against the buffer, and a save() that breaks the rules
 * voids the stream (every later save fails) instead of sending garbage.
 */
#include "vfio/vfio_internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define MP_MIN_SIZE offsetof(struct ufio_migration_plugin, estimate)

int mp_errno(long v)
{
    if (v == 0)
        return 0;
    if (v < 0 && v >= -4095)
        return (int)v;
    return -EIO; /* positive, or no errno at all */
}

int mp_bind(struct mp_binding *b, const struct ufio_migration_plugin *p, char *why, size_t why_len)
{
    memset(&b->p, 0, sizeof(b->p));
    b->state = NULL;
    b->inited = false;
    b->save_failed = false;
    if (!p) {
        snprintf(why, why_len, "the plugin refused this host (ABI %u.%u)", UFIO_MP_ABI_MAJOR, UFIO_MP_ABI_MINOR);
        return -EPROTO;
    }
    if (p->abi_version >> 16 != UFIO_MP_ABI_MAJOR) {
        snprintf(why, why_len, "plugin ABI %u.%u, host %u.%u", p->abi_version >> 16, p->abi_version & 0xffff,
                 UFIO_MP_ABI_MAJOR, UFIO_MP_ABI_MINOR);
        return -EPROTO;
    }
    if (p->size < MP_MIN_SIZE) {
        snprintf(why, why_len, "plugin descriptor of %u bytes, at least %zu needed", p->size, (size_t)MP_MIN_SIZE);
        return -EPROTO;
    }
    /* only what the plugin's size covers exists; the rest stays NULL/0 */
    memcpy(&b->p, p, p->size < sizeof(b->p) ? p->size : sizeof(b->p));
    b->p.size = sizeof(b->p);
    uint64_t known = UFIO_MIG_F_STOP_COPY | UFIO_MIG_F_P2P | UFIO_MIG_F_PRE_COPY;
    if (!(b->p.flags & UFIO_MIG_F_STOP_COPY) || (b->p.flags & ~known)) {
        snprintf(why, why_len, "plugin migration flags %#llx (STOP_COPY required, only P2P and PRE_COPY besides)",
                 (unsigned long long)b->p.flags);
        return -EINVAL;
    }
    if (!b->p.transition || !b->p.save || !b->p.load) {
        snprintf(why, why_len, "plugin lacks transition, save or load");
        return -EINVAL;
    }
    return 0;
}

static const char *mp_name(const struct mp_binding *b)
{
    return b->p.name ? b->p.name : "plugin";
}

static int mp_transition(struct ufio_dev *dev, void *opaque, unsigned from, unsigned to)
{
    struct mp_binding *b = opaque;
    int err = mp_errno(b->p.transition(b->state, from, to));
    if (err)
        UFIO_WARN(mp_name(b), "%s -> %s failed: %s", ufio_mig_state_name(from), ufio_mig_state_name(to),
                  strerror(-err));
    /* a new saving phase starts a new stream */
    if (!err && (to == UFIO_MIG_STOP || to == UFIO_MIG_RUNNING || to == UFIO_MIG_RESUMING))
        b->save_failed = false;
    return err;
}

static ssize_t mp_save(struct ufio_dev *dev, void *opaque, void *buf, size_t len)
{
    struct mp_binding *b = opaque;
    if (b->save_failed)
        return -EIO;
    ssize_t n = b->p.save(b->state, buf, len);
    if (n >= 0 && (size_t)n <= len)
        return n;
    int err = n < 0 ? mp_errno(n) : -EIO;
    if (n > (ssize_t)len || n < -4095) {
        UFIO_WARN(mp_name(b), "save() returned %zd for a %zu-byte buffer: stream void", n, len);
        b->save_failed = true;
    }
    return err;
}

static int mp_load_piece(struct ufio_dev *dev, void *opaque, const void *buf, size_t len, bool last)
{
    struct mp_binding *b = opaque;
    return mp_errno(b->p.load(b->state, buf, len, last));
}

static void mp_estimate(struct ufio_dev *dev, void *opaque, uint64_t *initial, uint64_t *dirty, uint64_t *stop_copy)
{
    struct mp_binding *b = opaque;
    uint64_t i = 0, d = 0, s = 0;
    if (b->p.estimate)
        b->p.estimate(b->state, &i, &d, &s);
    *initial = i;
    *dirty = d;
    *stop_copy = s;
}

void mp_mig_ops(const struct mp_binding *b, struct ufio_mig_ops *ops)
{
    memset(ops, 0, sizeof(*ops));
    ops->size = sizeof(*ops);
    ops->flags = b->p.flags;
    ops->transition = mp_transition;
    ops->save = mp_save;
    ops->load = mp_load_piece;
    ops->estimate = mp_estimate;
}

/* At most this much bitmap per dirty_pages call (covers 8 GiB at 4 KiB pages). */
#define MP_DIRTY_CHUNK_WORDS 32768u

void mp_dirty_sync(struct ufio_dev *dev, void *opaque, uint64_t iova, uint64_t len, uint64_t page_size)
{
    struct mp_binding *b = opaque;
    if (!b->p.dirty_pages || !page_size || !len)
        return;
    static uint64_t bm[MP_DIRTY_CHUNK_WORDS];
    uint64_t span = (uint64_t)MP_DIRTY_CHUNK_WORDS * 64 * page_size;
    while (len) {
        uint64_t n = len < span ? len : span;
        uint64_t pages = n / page_size + (n % page_size != 0);
        memset(bm, 0, (size_t)((pages + 63) / 64) * 8);
        int err = mp_errno(b->p.dirty_pages(b->state, iova, n, page_size, bm));
        if (err) {
            /* unknown is dirty: a migration must not lose writes */
            ufio_dev_dma_mark_dirty(dev, iova, (size_t)n);
        } else {
            for (uint64_t p = 0; p < pages; p++)
                if (bm[p / 64] & (1ull << (p % 64)))
                    ufio_dev_dma_mark_dirty(dev, iova + p * page_size, (size_t)page_size);
        }
        iova += n;
        len -= n;
    }
}

int mp_dirty_log(struct ufio_dev *dev, void *opaque, bool start, uint64_t page_size,
                 const struct ufio_iova_range *ranges, uint32_t nranges)
{
    struct mp_binding *b = opaque;
    if (!b->p.dirty_log)
        return 0;
    uint64_t *flat = NULL;
    if (start && nranges) {
        flat = calloc(nranges, 2 * sizeof(uint64_t));
        if (!flat)
            return -ENOMEM;
        for (uint32_t i = 0; i < nranges; i++) {
            flat[2 * i] = ranges[i].iova;
            flat[2 * i + 1] = ranges[i].length;
        }
    }
    int err = mp_errno(b->p.dirty_log(b->state, start, page_size, flat, start ? nranges : 0));
    free(flat);
    if (err && start)
        UFIO_WARN(mp_name(b), "dirty logging refused: %s", strerror(-err));
    return start ? err : 0;
}

int mp_load(struct mp_binding *b, const char *path, char *why, size_t why_len)
{
    b->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!b->dl) {
        snprintf(why, why_len, "%s", dlerror());
        return -ENOENT;
    }
    ufio_migration_plugin_entry_fn entry;
    void *sym = dlsym(b->dl, UFIO_MIGRATION_PLUGIN_SYMBOL);
    memcpy(&entry, &sym, sizeof(entry)); /* ISO C has no object-to-function cast */
    if (!entry) {
        snprintf(why, why_len, "%s exports no %s", path, UFIO_MIGRATION_PLUGIN_SYMBOL);
        dlclose(b->dl);
        b->dl = NULL;
        return -EINVAL;
    }
    int err = mp_bind(b, entry(UFIO_MP_ABI_VERSION), why, why_len);
    if (err) {
        dlclose(b->dl);
        b->dl = NULL;
    }
    return err;
}

void mp_unload(struct mp_binding *b)
{
    if (b->inited && b->p.fini)
        b->p.fini(b->state);
    b->inited = false;
    if (b->dl)
        dlclose(b->dl);
    b->dl = NULL;
}
