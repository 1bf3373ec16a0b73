/* The 16-byte message header and command names. */
#include "proto/proto.h"

#include <ufio/ufio.h>

int ufio_hdr_decode(const void *buf, size_t len, size_t max_size, struct vfio_user_header *h)
{
    struct ufio_rd r = ufio_rd_init(buf, len);
    if (ufio_rd_u16(&r, &h->msg_id) || ufio_rd_u16(&r, &h->cmd) || ufio_rd_u32(&r, &h->msg_size) ||
        ufio_rd_u32(&r, &h->flags) || ufio_rd_u32(&r, &h->error_no))
        return -EPROTO;
    if (h->msg_size < VFIO_USER_HDR_SIZE || h->msg_size > max_size)
        return -EPROTO;
    if ((h->flags & ~VFIO_USER_F_KNOWN) || (h->flags & VFIO_USER_F_TYPE_MASK) > VFIO_USER_F_TYPE_REPLY)
        return -EINVAL;
    return 0;
}

void ufio_hdr_encode(void *buf, const struct vfio_user_header *h)
{
    uint8_t *p = buf;
    ufio_st16(p, h->msg_id);
    ufio_st16(p + 2, h->cmd);
    ufio_st32(p + 4, h->msg_size);
    ufio_st32(p + 8, h->flags);
    ufio_st32(p + 12, h->error_no);
}

const char *ufio_cmd_name(unsigned cmd)
{
    static const char *const names[VFIO_USER_MAX_CMD] = {
        [VFIO_USER_VERSION] = "VERSION",
        [VFIO_USER_DMA_MAP] = "DMA_MAP",
        [VFIO_USER_DMA_UNMAP] = "DMA_UNMAP",
        [VFIO_USER_DEVICE_GET_INFO] = "DEVICE_GET_INFO",
        [VFIO_USER_DEVICE_GET_REGION_INFO] = "DEVICE_GET_REGION_INFO",
        [VFIO_USER_DEVICE_GET_REGION_IO_FDS] = "DEVICE_GET_REGION_IO_FDS",
        [VFIO_USER_DEVICE_GET_IRQ_INFO] = "DEVICE_GET_IRQ_INFO",
        [VFIO_USER_DEVICE_SET_IRQS] = "DEVICE_SET_IRQS",
        [VFIO_USER_REGION_READ] = "REGION_READ",
        [VFIO_USER_REGION_WRITE] = "REGION_WRITE",
        [VFIO_USER_DMA_READ] = "DMA_READ",
        [VFIO_USER_DMA_WRITE] = "DMA_WRITE",
        [VFIO_USER_DEVICE_RESET] = "DEVICE_RESET",
        [VFIO_USER_REGION_WRITE_MULTI] = "REGION_WRITE_MULTI",
        [VFIO_USER_DEVICE_FEATURE] = "DEVICE_FEATURE",
        [VFIO_USER_MIG_DATA_READ] = "MIG_DATA_READ",
        [VFIO_USER_MIG_DATA_WRITE] = "MIG_DATA_WRITE",
        [UFIO_CMD_HANDOVER] = "HANDOVER",
    };
    return cmd < VFIO_USER_MAX_CMD && names[cmd] ? names[cmd] : "?";
}

UFIO_API const char *ufio_cmd_str(unsigned cmd)
{
    return ufio_cmd_name(cmd);
}
