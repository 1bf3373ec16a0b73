/* The command table (see cmd.h): what each command may be, and who may send it. */
#include "proto/cmd.h"

#include <stdlib.h>

#include <ufio/migration.h>

#include "proto/cursor.h"

#define XFER UFIO_CMD_LEN_XFER
#define NEG UFIO_CMD_FDS_NEG
#define OWN UFIO_ROLE_OWNER
#define ANY UFIO_ROLE_ANY
#define MIGR UFIO_ROLE_MIGRATORS
#define CHG UFIO_CMD_F_CHANGE
#define SAVING (UFIO_MIG_BIT(UFIO_MIG_PRE_COPY) | UFIO_MIG_BIT(UFIO_MIG_PRE_COPY_P2P) | UFIO_MIG_BIT(UFIO_MIG_STOP_COPY))

/* ---- reply decoders: the layout of each success reply, by lib/proto's decoders ---- */

static int rd_version(const uint8_t *p, size_t len, uint64_t data_len)
{
    struct ufio_version v;
    return data_len ? -EINVAL : ufio_version_decode(p, len, &v);
}

static int rd_unmap(const uint8_t *p, size_t len, uint64_t data_len)
{
    struct ufio_dma_unmap u;
    return data_len ? -EINVAL : len ? ufio_dma_unmap_decode(p, len, &u) : 0; /* QEMU: empty */
}

static int rd_device_info(const uint8_t *p, size_t len, uint64_t data_len)
{
    struct ufio_device_info i;
    return data_len ? -EINVAL : ufio_device_info_decode(p, len, &i);
}

static int rd_region_info(const uint8_t *p, size_t len, uint64_t data_len)
{
    struct ufio_region_info *ri = malloc(sizeof(*ri)); /* 1 KiB of areas: not on a reader's stack */
    if (!ri)
        return -ENOMEM;
    int err = data_len ? -EINVAL : ufio_region_info_decode(p, len, ri);
    free(ri);
    return err;
}

static int rd_io_fds(const uint8_t *p, size_t len, uint64_t data_len)
{
    /* the fds themselves are the caller's to match: only the head's layout here */
    struct ufio_rd r = ufio_rd_init(p, len);
    uint32_t argsz, flags, index, count;
    if (data_len || ufio_rd_u32(&r, &argsz) || ufio_rd_u32(&r, &flags) || ufio_rd_u32(&r, &index) ||
        ufio_rd_u32(&r, &count))
        return -EINVAL;
    return 0;
}

static int rd_irq_info(const uint8_t *p, size_t len, uint64_t data_len)
{
    struct ufio_irq_info i;
    return data_len ? -EINVAL : ufio_irq_info_decode(p, len, &i);
}

/* REGION_READ reply: offset, region, count, then count bytes (here, or placed in the caller's buffer) */
static int rd_region_read(const uint8_t *p, size_t len, uint64_t data_len)
{
    struct ufio_rd r = ufio_rd_init(p, len);
    uint64_t off;
    uint32_t region, count;
    if (ufio_rd_u64(&r, &off) || ufio_rd_u32(&r, &region) || ufio_rd_u32(&r, &count))
        return -EINVAL;
    return ufio_rd_left(&r) + data_len == count ? 0 : -EINVAL;
}

/* DMA_READ reply: addr, count (u64), then count bytes */
static int rd_dma_read(const uint8_t *p, size_t len, uint64_t data_len)
{
    struct ufio_rd r = ufio_rd_init(p, len);
    uint64_t addr, count;
    if (ufio_rd_u64(&r, &addr) || ufio_rd_u64(&r, &count))
        return -EINVAL;
    return ufio_rd_left(&r) + data_len == count ? 0 : -EINVAL;
}

static int rd_feature(const uint8_t *p, size_t len, uint64_t data_len)
{
    struct ufio_feature f;
    return data_len ? -EINVAL : ufio_feature_decode(p, len, &f);
}

/* argsz, size, then size bytes of data; libvfio-user pads the body up to what was asked */
static int rd_mig_read(const uint8_t *p, size_t len, uint64_t data_len)
{
    struct ufio_rd r = ufio_rd_init(p, len);
    uint32_t argsz, size;
    if (ufio_rd_u32(&r, &argsz) || ufio_rd_u32(&r, &size))
        return -EINVAL;
    return size <= ufio_rd_left(&r) + data_len ? 0 : -EINVAL;
}

/*
 * Sizes are the request payload (after the 16-byte header). A decoder still
 * checks its own layout (argsz, flags, counts); these bounds come first so
 * that nothing is decoded, placed or allocated for a message no decoder
 * could accept. GET_INFO / GET_IRQ_INFO / GET_REGION_INFO accept a longer
 * argsz than they read (VFIO's "extensible" structs): up to max_xfer.
 * Replies: bounds, fds (VERSION: the twin socket; REGION_INFO: the mmap fd;
 * IO_FDS: its ioeventfds) and decoder.
 */
#define ROW(c, ...) [c] = { c, __VA_ARGS__ }
static const struct ufio_cmd_desc rows[VFIO_USER_MAX_CMD] = {
    ROW(VFIO_USER_VERSION, "VERSION", 4, 4 + UFIO_MAX_VERSION_JSON, 0, ANY, 0, 0, 4, 4 + UFIO_MAX_VERSION_JSON, 1,
        rd_version),
    ROW(VFIO_USER_DMA_MAP, "DMA_MAP", 32, 32, 1, OWN, UFIO_CMD_F_STATE, 0, 0, 0, 0, NULL),
    ROW(VFIO_USER_DMA_UNMAP, "DMA_UNMAP", 24, 24, 0, OWN, UFIO_CMD_F_STATE, 0, 0, 24, 0, rd_unmap),
    ROW(VFIO_USER_DEVICE_GET_INFO, "DEVICE_GET_INFO", 16, XFER, 0, ANY, 0, 0, 16, 16, 0, rd_device_info),
    ROW(VFIO_USER_DEVICE_GET_REGION_INFO, "DEVICE_GET_REGION_INFO", 32, XFER, 0, ANY, 0, 0, 32, XFER, 1,
        rd_region_info),
    ROW(VFIO_USER_DEVICE_GET_REGION_IO_FDS, "DEVICE_GET_REGION_IO_FDS", 16, 16, 0, OWN, 0, 0, 16, XFER, 16,
        rd_io_fds),
    ROW(VFIO_USER_DEVICE_GET_IRQ_INFO, "DEVICE_GET_IRQ_INFO", 16, XFER, 0, ANY, 0, 0, 16, 16, 0, rd_irq_info),
    ROW(VFIO_USER_DEVICE_SET_IRQS, "DEVICE_SET_IRQS", 20, XFER, NEG, OWN, UFIO_CMD_F_STATE | CHG, 0, 0, 0, 0, NULL),
    ROW(VFIO_USER_REGION_READ, "REGION_READ", 16, 16, 0, ANY, UFIO_CMD_F_STATE | UFIO_CMD_F_CFG_OBS, 0, 16, XFER, 0,
        rd_region_read),
    ROW(VFIO_USER_REGION_WRITE, "REGION_WRITE", 16, XFER, 0, OWN, UFIO_CMD_F_STATE | CHG, 0, 16, 16, 0, NULL),
    ROW(VFIO_USER_DMA_READ, "DMA_READ", 16, 16, 0, 0, UFIO_CMD_F_S2C, 0, 16, XFER, 0, rd_dma_read),
    ROW(VFIO_USER_DMA_WRITE, "DMA_WRITE", 16, XFER, 0, 0, UFIO_CMD_F_S2C, 0, 0, 16, 0, NULL),
    /* a controller resets a half-loaded destination */
    ROW(VFIO_USER_DEVICE_RESET, "DEVICE_RESET", 0, 0, 0, MIGR, UFIO_CMD_F_STATE | CHG, 0, 0, 0, 0, NULL),
    ROW(VFIO_USER_REGION_WRITE_MULTI, "REGION_WRITE_MULTI", 8 + UFIO_WRITE_MULTI_ENTRY,
        8 + UFIO_WRITE_MULTI_ENTRY * UFIO_WRITE_MULTI_MAX, 0, OWN, UFIO_CMD_F_STATE | CHG, 0, 8, 8, 0, NULL),
    ROW(VFIO_USER_DEVICE_FEATURE, "DEVICE_FEATURE", 8, XFER, 0, ANY, 0, 0, 8, XFER, 0, rd_feature),
    ROW(VFIO_USER_MIG_DATA_READ, "MIG_DATA_READ", 8, 8, 0, MIGR, UFIO_CMD_F_MIG, SAVING, 8, XFER, 0, rd_mig_read),
    ROW(VFIO_USER_MIG_DATA_WRITE, "MIG_DATA_WRITE", 8, XFER, 0, MIGR, UFIO_CMD_F_MIG, UFIO_MIG_BIT(UFIO_MIG_RESUMING),
        0, 0, 0, NULL),
    ROW(UFIO_CMD_HANDOVER, "HANDOVER", 0, 0, 0, UFIO_ROLE_CONTROLLER, UFIO_CMD_F_MIG,
        UFIO_MIG_BIT(UFIO_MIG_STOP_COPY), 0, 0, 0, NULL),
};

const struct ufio_cmd_desc *ufio_cmd_desc(unsigned cmd)
{
    /* 14 (DIRTY_PAGES of migration v1) is a gap: its row has no name */
    return cmd < VFIO_USER_MAX_CMD && rows[cmd].name ? &rows[cmd] : NULL;
}

const struct ufio_cmd_desc *ufio_cmd_row(size_t i)
{
    for (size_t c = 0; c < VFIO_USER_MAX_CMD; c++)
        if (rows[c].name && i-- == 0)
            return &rows[c];
    return NULL;
}

static bool len_ok(uint32_t min, uint32_t max, size_t len, uint64_t max_xfer)
{
    if (len < min)
        return false;
    if (max == XFER)
        return len - min <= max_xfer;
    return len <= max;
}

int ufio_cmd_check(const struct ufio_cmd_desc *d, unsigned role, size_t len, size_t nfds, uint64_t max_xfer,
                   size_t neg_fds)
{
    if (!d || (d->flags & UFIO_CMD_F_S2C))
        return -ENOSYS;
    size_t max_fds = d->max_fds == NEG ? neg_fds : d->max_fds;
    if (nfds > max_fds || !len_ok(d->min_len, d->max_len, len, max_xfer))
        return -EINVAL;
    if (!(d->roles & role))
        return -EACCES;
    return 0;
}

int ufio_cmd_state_ok(const struct ufio_cmd_desc *d, unsigned state)
{
    if (!d->mig_states)
        return 0;
    return state < 32 && (d->mig_states & UFIO_MIG_BIT(state)) ? 0 : -EINVAL;
}

int ufio_cmd_reply_len_ok(const struct ufio_cmd_desc *d, size_t len, uint64_t max_xfer)
{
    return len_ok(d->reply_min, d->reply_max, len, max_xfer) ? 0 : -EINVAL;
}

int ufio_cmd_reply_check(const struct ufio_cmd_desc *d, const uint8_t *payload, size_t len, uint64_t data_len,
                         size_t nfds, bool fds_overflow, uint64_t max_xfer)
{
    if (!d)
        return -ENOSYS;
    if (fds_overflow || nfds > d->reply_fds || len + data_len < len ||
        !len_ok(d->reply_min, d->reply_max, len + data_len, max_xfer))
        return -EINVAL;
    return d->reply_decode ? d->reply_decode(payload, len, data_len) : 0;
}

/* ---- DEVICE_FEATURE sub-formats ------------------------------------------ */

static const struct ufio_feature_desc features[] = {
    { VFIO_DEVICE_FEATURE_MIGRATION, "MIGRATION", ANY, 0, ANY, 0, 0 },
    { VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, "MIG_DEVICE_STATE", ANY, MIGR, ANY, UFIO_CMD_F_MIG, 8 },
    { VFIO_DEVICE_FEATURE_DMA_LOGGING_START, "DMA_LOGGING_START", 0, MIGR, MIGR, UFIO_CMD_F_MIG, 0 },
    { VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, "DMA_LOGGING_STOP", 0, MIGR, MIGR, UFIO_CMD_F_MIG, 0 },
    { VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, "DMA_LOGGING_REPORT", MIGR, 0, MIGR, UFIO_CMD_F_MIG, 0 },
    { UFIO_FEATURE_MIG_DATA_SIZE, "MIG_DATA_SIZE", ANY, 0, ANY, 0, 0 },
    { UFIO_FEATURE_PRECOPY_INFO, "PRECOPY_INFO", ANY, 0, ANY, 0, 0 },
    { UFIO_FEATURE_COMPAT_DESC, "COMPAT_DESC", ANY, 0, ANY, 0, 0 },
    { UFIO_FEATURE_DIGEST, "DIGEST", ANY, 0, ANY, 0, 0 },
    { UFIO_FEATURE_MIG_REASON, "MIG_REASON", ANY, 0, ANY, 0, 0 },
    { UFIO_FEATURE_STOP_COPY_DEADLINE, "STOP_COPY_DEADLINE", 0, MIGR, MIGR, UFIO_CMD_F_MIG, 8 },
    { UFIO_FEATURE_DIRTY_RATE_LIMIT, "DIRTY_RATE_LIMIT", 0, MIGR, MIGR, UFIO_CMD_F_MIG, 8 },
};

#define NFEAT (sizeof(features) / sizeof(features[0]))

const struct ufio_feature_desc *ufio_feature_desc(unsigned index)
{
    for (size_t i = 0; i < NFEAT; i++)
        if (features[i].index == index)
            return &features[i];
    return NULL;
}

const struct ufio_feature_desc *ufio_feature_row(size_t i) { return i < NFEAT ? &features[i] : NULL; }

int ufio_feature_check(const struct ufio_feature_desc *d, unsigned role, uint32_t flags, size_t data_len)
{
    if (!d)
        return -ENOTSUP;
    uint8_t roles;
    if (flags & VFIO_DEVICE_FEATURE_PROBE)
        roles = d->probe_roles;
    else if (flags & VFIO_DEVICE_FEATURE_SET)
        roles = d->set_roles;
    else if (flags & VFIO_DEVICE_FEATURE_GET)
        roles = d->get_roles;
    else
        return -EINVAL;
    /* a probe asks whether GET/SET it names exist */
    if ((flags & VFIO_DEVICE_FEATURE_PROBE) && (((flags & VFIO_DEVICE_FEATURE_GET) && !d->get_roles) ||
                                                ((flags & VFIO_DEVICE_FEATURE_SET) && !d->set_roles)))
        return -EINVAL;
    if (!roles)
        return -EINVAL;
    if (!(roles & role))
        return -EACCES;
    if (!(flags & VFIO_DEVICE_FEATURE_PROBE) && (flags & VFIO_DEVICE_FEATURE_SET) && d->set_len &&
        data_len != d->set_len)
        return -EINVAL;
    return 0;
}
