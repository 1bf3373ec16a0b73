/* The command table (see cmd.h): what each command may be, and who may send it. */
#include "proto/cmd.h"

#include <ufio/migration.h>

#define XFER UFIO_CMD_LEN_XFER
#define NEG UFIO_CMD_FDS_NEG
#define OWN UFIO_ROLE_OWNER
#define ANY UFIO_ROLE_ANY
#define MIGR UFIO_ROLE_MIGRATORS
#define CHG UFIO_CMD_F_CHANGE
#define SAVING (UFIO_MIG_BIT(UFIO_MIG_PRE_COPY) | UFIO_MIG_BIT(UFIO_MIG_PRE_COPY_P2P) | UFIO_MIG_BIT(UFIO_MIG_STOP_COPY))

/*
 * Sizes are the request payload (after the 16-byte header). A decoder still
 * checks its own layout (argsz, flags, counts); these bounds come first so
 * that nothing is decoded, placed or allocated for a message no decoder
 * could accept. GET_INFO / GET_IRQ_INFO / GET_REGION_INFO accept a longer
 * argsz than they read (VFIO's "extensible" structs): up to max_xfer.
 */
static const struct ufio_cmd_desc rows[] = {
    { VFIO_USER_VERSION, "VERSION", 4, 4 + UFIO_MAX_VERSION_JSON, 0, ANY, 0, 0, 4, 4 + UFIO_MAX_VERSION_JSON },
    { VFIO_USER_DMA_MAP, "DMA_MAP", 32, 32, 1, OWN, UFIO_CMD_F_STATE, 0, 0, 0 },
    { VFIO_USER_DMA_UNMAP, "DMA_UNMAP", 24, 24, 0, OWN, UFIO_CMD_F_STATE, 0, 0, 24 }, /* QEMU: empty reply */
    { VFIO_USER_DEVICE_GET_INFO, "DEVICE_GET_INFO", 16, XFER, 0, ANY, 0, 0, 16, 16 },
    { VFIO_USER_DEVICE_GET_REGION_INFO, "DEVICE_GET_REGION_INFO", 32, XFER, 0, ANY, 0, 0, 32, XFER },
    { VFIO_USER_DEVICE_GET_REGION_IO_FDS, "DEVICE_GET_REGION_IO_FDS", 16, 16, 0, OWN, 0, 0, 16, XFER },
    { VFIO_USER_DEVICE_GET_IRQ_INFO, "DEVICE_GET_IRQ_INFO", 16, XFER, 0, ANY, 0, 0, 16, 16 },
    { VFIO_USER_DEVICE_SET_IRQS, "DEVICE_SET_IRQS", 20, XFER, NEG, OWN, UFIO_CMD_F_STATE | CHG, 0, 0, 0 },
    { VFIO_USER_REGION_READ, "REGION_READ", 16, 16, 0, ANY, UFIO_CMD_F_STATE | UFIO_CMD_F_CFG_OBS, 0, 16, XFER },
    { VFIO_USER_REGION_WRITE, "REGION_WRITE", 16, XFER, 0, OWN, UFIO_CMD_F_STATE | CHG, 0, 16, 16 },
    { VFIO_USER_DMA_READ, "DMA_READ", 16, 16, 0, 0, UFIO_CMD_F_S2C, 0, 16, XFER },
    { VFIO_USER_DMA_WRITE, "DMA_WRITE", 16, XFER, 0, 0, UFIO_CMD_F_S2C, 0, 0, 16 },
    { VFIO_USER_DEVICE_RESET, "DEVICE_RESET", 0, 0, 0, MIGR, UFIO_CMD_F_STATE | CHG, 0, 0, 0 }, /* a controller resets a half-loaded destination */
    { VFIO_USER_REGION_WRITE_MULTI, "REGION_WRITE_MULTI", 8 + UFIO_WRITE_MULTI_ENTRY,
      8 + UFIO_WRITE_MULTI_ENTRY * UFIO_WRITE_MULTI_MAX, 0, OWN, UFIO_CMD_F_STATE | CHG, 0, 8, 8 },
    { VFIO_USER_DEVICE_FEATURE, "DEVICE_FEATURE", 8, XFER, 0, ANY, 0, 0, 8, XFER },
    { VFIO_USER_MIG_DATA_READ, "MIG_DATA_READ", 8, 8, 0, MIGR, UFIO_CMD_F_MIG, SAVING, 8, XFER },
    { VFIO_USER_MIG_DATA_WRITE, "MIG_DATA_WRITE", 8, XFER, 0, MIGR, UFIO_CMD_F_MIG,
      UFIO_MIG_BIT(UFIO_MIG_RESUMING), 0, 0 },
    { UFIO_CMD_HANDOVER, "HANDOVER", 0, 0, 0, UFIO_ROLE_CONTROLLER, UFIO_CMD_F_MIG,
      UFIO_MIG_BIT(UFIO_MIG_STOP_COPY), 0, 0 },
};

#define NROWS (sizeof(rows) / sizeof(rows[0]))

const struct ufio_cmd_desc *ufio_cmd_desc(unsigned cmd)
{
    /* rows are in command order with one gap (14, DIRTY_PAGES of migration v1) */
    for (size_t i = 0; i < NROWS; i++)
        if (rows[i].cmd == cmd)
            return &rows[i];
    return NULL;
}

const struct ufio_cmd_desc *ufio_cmd_row(size_t i) { return i < NROWS ? &rows[i] : NULL; }

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
