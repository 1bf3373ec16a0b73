/* Every per-command decoder of the wire layer; the first byte picks one. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>

#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    uint8_t out[4096];
    switch (data[0] % 16) {
    case 0: { struct vfio_user_header h; ufio_hdr_decode(p, n, 1 << 20, &h); break; }
    case 1: { struct ufio_dma_map m; if (!ufio_dma_map_decode(p, n, &m)) ufio_dma_map_encode(&m, out, sizeof(out)); break; }
    case 2: { struct ufio_dma_unmap u; if (!ufio_dma_unmap_decode(p, n, &u)) ufio_dma_unmap_encode(&u, out, sizeof(out)); break; }
    case 3: { struct ufio_device_info i; ufio_device_info_decode(p, n, &i); break; }
    case 4: {
        struct ufio_region_info *ri = malloc(sizeof(*ri));
        if (ri && !ufio_region_info_decode(p, n, ri))
            ufio_region_info_encode(ri, 4096, out, sizeof(out));
        free(ri);
        break;
    }
    case 5: { struct ufio_io_fds *f = malloc(sizeof(*f)); if (f) ufio_io_fds_decode(p, n, 4, f); free(f); break; }
    case 6: { struct ufio_irq_info i; ufio_irq_info_decode(p, n, &i); break; }
    case 7: { struct ufio_irq_set s; ufio_irq_set_decode(p, n, data[0] >> 4, &s); break; }
    case 8: { struct ufio_region_access a; ufio_region_read_req_decode(p, n, 1 << 20, &a); ufio_region_write_req_decode(p, n, 1 << 20, &a); break; }
    case 9: {
        struct ufio_region_access a = { 0 }, got;
        if (n >= 16) { a.offset = ufio_ld64(p); a.region = ufio_ld32(p + 8); a.count = ufio_ld32(p + 12); }
        ufio_region_read_reply_decode(p, n, &a, &got);
        ufio_region_write_reply_decode(p, n, &a);
        break;
    }
    case 10: { struct ufio_dma_access a; ufio_dma_read_req_decode(p, n, 1 << 20, &a); ufio_dma_write_req_decode(p, n, 1 << 20, &a); break; }
    case 11: {
        struct ufio_dma_access w = { .addr = 0x1000, .count = 8 }, got;
        ufio_dma_read_reply_decode(p, n, &w, &got);
        ufio_dma_write_reply_decode(p, n, &w);
        break;
    }
    case 12: {
        struct ufio_write_multi_entry *e = malloc(UFIO_WRITE_MULTI_MAX * sizeof(*e));
        uint64_t cnt;
        if (e && !ufio_write_multi_decode(p, n, &cnt, e))
            ufio_write_multi_encode(e, cnt, out, sizeof(out));
        free(e);
        break;
    }
    case 13: { struct ufio_feature f; ufio_feature_decode(p, n, &f); break; }
    case 14: { struct ufio_mig_data m; ufio_mig_read_req_decode(p, n, 1 << 20, &m); ufio_mig_write_req_decode(p, n, 1 << 20, &m); ufio_mig_read_reply_decode(p, n, 4096, &m); break; }
    default: { uint32_t a, i; ufio_region_info_req_decode(p, n, &a, &i); ufio_io_fds_req_decode(p, n, &a, &i); break; }
    }
    return 0;
}
