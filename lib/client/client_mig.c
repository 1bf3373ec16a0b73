/* Client calls that drive migration and dirty logging over DEVICE_FEATURE. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ufio/client.h>
#include <ufio/migration.h>

#include "client/client_internal.h"
#include "proto/cursor.h"
#include "proto/proto.h"

static int feat_get(struct ufio_client *c, unsigned index, void *out, size_t want)
{
    size_t got = 0;
    int err = ufio_client_feature(c, UFIO_FEATURE_GET | index, NULL, 0, out, want, &got);
    if (!err && got != want)
        err = -EPROTO;
    return err;
}

UFIO_API int ufio_client_mig_flags(struct ufio_client *c, uint64_t *flags)
{
    uint8_t b[8];
    int err = feat_get(c, VFIO_DEVICE_FEATURE_MIGRATION, b, 8);
    if (!err)
        *flags = ufio_ld64(b);
    return err;
}

UFIO_API int ufio_client_mig_get_state(struct ufio_client *c, unsigned *state)
{
    uint8_t b[8];
    int err = feat_get(c, VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, b, 8);
    if (!err) {
        *state = ufio_ld32(b);
        if (*state >= UFIO_MIG_NUM_STATES)
            err = -EPROTO;
    }
    return err;
}

UFIO_API int ufio_client_mig_set_state(struct ufio_client *c, unsigned state, unsigned *reached)
{
    uint8_t in[8], out[8];
    const struct ufio_mig_state_data sd = { state, -1 };
    ufio_mig_state_encode(&sd, in, sizeof(in));
    size_t got = 0;
    int err = ufio_client_feature(c, UFIO_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, in, 8, out,
                                  sizeof(out), &got);
    struct ufio_mig_state_data now;
    if (!err && (ufio_mig_state_decode(out, got, &now) || now.state != state))
        err = -EPROTO;
    if (reached) {
        if (!err)
            *reached = state;
        else if (ufio_client_mig_get_state(c, reached))
            *reached = UFIO_MIG_ERROR;
    }
    return err;
}

UFIO_API int ufio_client_mig_precopy_info(struct ufio_client *c, uint64_t *initial, uint64_t *dirty)
{
    uint8_t b[16];
    int err = feat_get(c, UFIO_FEATURE_PRECOPY_INFO, b, 16);
    if (!err) {
        *initial = ufio_ld64(b);
        *dirty = ufio_ld64(b + 8);
    }
    return err;
}

UFIO_API int ufio_client_mig_stop_copy_size(struct ufio_client *c, uint64_t *bytes)
{
    uint8_t b[8];
    int err = feat_get(c, UFIO_FEATURE_MIG_DATA_SIZE, b, 8);
    if (!err)
        *bytes = ufio_ld64(b);
    return err;
}

UFIO_API int ufio_client_dirty_log_start(struct ufio_client *c, uint64_t page_size,
                                         const struct ufio_iova_range *ranges, uint32_t nranges)
{
    if (nranges > 1024)
        return -E2BIG;
    size_t len = 16 + (size_t)nranges * 16;
    uint8_t *in = malloc(len), *out = malloc(len);
    if (!in || !out) {
        free(in);
        free(out);
        return -ENOMEM;
    }
    /* struct ufio_iova_range is two u64s with a frozen layout: the codec's pairs */
    _Static_assert(sizeof(struct ufio_iova_range) == 16, "frozen layout");
    ufio_log_start_encode(page_size, (const uint64_t(*)[2])(const void *)ranges, nranges, in, len);
    size_t got = 0;
    int err = ufio_client_feature(c, UFIO_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, in, len, out,
                                  len, &got);
    if (!err && got >= 8 && ufio_ld64(out) != page_size)
        err = -EPROTO; /* a different page size would make our reports wrong */
    free(in);
    free(out);
    return err;
}

UFIO_API int ufio_client_dirty_log_stop(struct ufio_client *c)
{
    return ufio_client_feature(c, UFIO_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, NULL, 0, NULL, 0, NULL);
}

/* One DMA_LOGGING_REPORT whose bitmap (bytes of it) fits one reply. */
static int report_piece(struct ufio_client *c, uint64_t iova, uint64_t length, uint64_t page_size,
                        uint8_t *out, size_t bytes, uint64_t *bitmap)
{
    uint8_t in[24];
    const struct ufio_log_report lr = { iova, length, page_size };
    ufio_log_report_encode(&lr, in, sizeof(in));
    size_t got = 0;
    int err = ufio_client_feature(c, UFIO_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, in, 24, out,
                                  24 + bytes, &got);
    if (!err && (got != 24 + bytes || memcmp(out, in, 24)))
        err = -EPROTO;
    if (!err)
        memcpy(bitmap, out + 24, bytes);
    return err;
}

/*
 * A reply carries at most max_data_xfer_size after the feature header, so a
 * range whose bitmap is bigger is asked for in pieces of whole bitmap words
 * (64 pages), each bitmap landing at its word in the caller's.
 */
UFIO_API int ufio_client_dirty_log_report(struct ufio_client *c, uint64_t iova, uint64_t length,
                                          uint64_t page_size, uint64_t *bitmap)
{
    if (!page_size || !length || iova + length < iova)
        return -EINVAL;
    uint64_t pages = length / page_size + (length % page_size != 0);
    uint64_t xfer = cl_xfer_max(c);
    if (xfer < 24 + 8)
        return -EINVAL;
    uint64_t piece_words = (xfer - 24) / 8;
    if (piece_words > pages / 64 + 1)
        piece_words = pages / 64 + 1;
    uint8_t *out = malloc(24 + piece_words * 8);
    if (!out)
        return -ENOMEM;
    int err = 0;
    for (uint64_t word = 0; word * 64 < pages && !err; word += piece_words) {
        uint64_t first = word * 64, n = pages - first;
        if (n > piece_words * 64)
            n = piece_words * 64;
        uint64_t off = first * page_size, len = n * page_size;
        if (off + len > length)
            len = length - off; /* the last page may be partial, as the caller's range */
        err = report_piece(c, iova + off, len, page_size, out, (size_t)((n + 63) / 64 * 8), bitmap + word);
    }
    free(out);
    return err;
}
