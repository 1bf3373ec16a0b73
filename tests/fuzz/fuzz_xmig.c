/* The two-agent messages (protocol version 2) as the destination or source
 * agent reads them: a sequence of frames, each head bounded and each payload
 * decoded by type; a decoder that accepts must have kept its bounds. */
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
        uint64_t a;
        uint32_t f, cap, n;
        const uint8_t *q;
        struct ufio_xmig_progress pr;
        int32_t st;
        int code;
        char reason[XM_MAX_REASON + 1];
        switch (t) {
        case XM_FEATURE:
            if (ufio_xmig_parse_feature(p, len, &f, &cap, &q, &n) == 0 &&
                (cap > XM_MAX_REPLY || n > XM_MAX_FEATURE_IN || q + n > p + len))
                __builtin_trap();
            break;
        case XM_CONFIG:
            if (ufio_xmig_parse_config(p, len, &a, &n) == 0 && (!n || n > XM_MAX_CONFIG))
                __builtin_trap();
            break;
        case XM_REPLY:
            if (ufio_xmig_parse_reply(p, len, &st, &q, &n) == 0 && (st > 0 || (st && n) || q + n > p + len))
                __builtin_trap();
            break;
        case XM_PROGRESS: ufio_xmig_parse_progress(p, len, &pr); break;
        case XM_FLUSH: ufio_xmig_parse_u64(p, len, &a); break;
        case XM_DATA_ERR:
            if (ufio_xmig_parse_status(p, len, &st, reason, sizeof(reason)) == 0 && strlen(reason) > XM_MAX_REASON)
                __builtin_trap();
            break;
        case XM_CLOSE: case XM_DONE: case XM_ABORT:
            if (ufio_xmig_parse_code(p, len, &code, reason, sizeof(reason)) == 0 &&
                (code < 0 || code >= UFIO_XMIG_NUM_CODES || strlen(reason) > XM_MAX_REASON))
                __builtin_trap();
            break;
        default: break;
        }
        off += len;
    }
    return 0;
}
