/* The two-agent messages as the destination or source agent reads them: a
 * sequence of frames, each head bounded and each payload decoded by type. */
#include <stdint.h>
#include <string.h>

#include "net/xmig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (size - off >= XM_HDR) {
        uint32_t t, len;
        if (ufio_xmig_parse_head(data + off, &t, &len))
            return 0;
        off += XM_HDR;
        if (len > size - off)
            return 0;
        const uint8_t *p = data + off;
        uint64_t a, b;
        struct ufio_xmig_progress pr;
        int32_t st;
        char reason[XM_MAX_REASON + 1];
        switch (t) {
        case XM_BEGIN: ufio_xmig_parse_begin(p, len, &a, &b); break;
        case XM_PROGRESS: ufio_xmig_parse_progress(p, len, &pr); break;
        case XM_END: ufio_xmig_parse_end(p, len, &a); break;
        case XM_LOADED: case XM_DONE: case XM_ABORT:
            if (ufio_xmig_parse_status(p, len, &st, reason, sizeof(reason)) == 0 && strlen(reason) > XM_MAX_REASON)
                __builtin_trap();
            break;
        default: break;
        }
        off += len;
    }
    return 0;
}
