/* The migration stream framing: writer helpers and an incremental reader. */
#include "proto/mig_stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto/cursor.h"

void ufio_mig_put_header(uint8_t out[UFIO_MIG_HDR_SIZE])
{
    memset(out, 0, UFIO_MIG_HDR_SIZE);
    memcpy(out, UFIO_MIG_MAGIC, 8);
    ufio_st16(out + 8, UFIO_MIG_STREAM_VERSION);
}

void ufio_mig_put_record(uint8_t out[UFIO_MIG_REC_HDR], uint16_t tag, uint16_t flags, uint32_t len, uint32_t crc)
{
    ufio_st16(out, tag);
    ufio_st16(out + 2, flags);
    ufio_st32(out + 4, len);
    ufio_st32(out + 8, crc);
}

void ufio_mig_frame(uint8_t out[UFIO_MIG_REC_HDR], uint16_t tag, uint16_t flags, const void *payload, uint32_t len)
{
    ufio_mig_put_record(out, tag, flags, len, ufio_crc32c(0, payload, len));
}

void ufio_mig_put_end(uint8_t out[UFIO_MIG_END_SIZE], uint64_t total, uint32_t crcs, uint32_t nrec)
{
    ufio_st64(out, total);
    ufio_st32(out + 8, crcs);
    ufio_st32(out + 12, nrec);
}

uint32_t ufio_mig_crc_chain(uint32_t chain, uint32_t record_crc)
{
    uint8_t b[4];
    ufio_st32(b, record_crc);
    return ufio_crc32c(chain, b, 4);
}

enum { ST_HDR, ST_REC_HDR, ST_REC_BODY, ST_DONE };

void ufio_mig_rx_init(struct ufio_mig_rx *rx, uint64_t max_record)
{
    memset(rx, 0, sizeof(*rx));
    rx->stage = ST_HDR;
    rx->max_record = max_record;
}

void ufio_mig_rx_reset(struct ufio_mig_rx *rx)
{
    struct ufio_mig_rx keep = *rx;
    free(rx->desc);
    free(rx->devcfg);
    free(rx->body);
    ufio_mig_rx_init(rx, keep.max_record);
    rx->max_total = keep.max_total;
    rx->on_data = keep.on_data;
    rx->on_desc = keep.on_desc;
    rx->arg = keep.arg;
}

void ufio_mig_rx_free(struct ufio_mig_rx *rx)
{
    ufio_mig_rx_reset(rx);
}

static int record_start(struct ufio_mig_rx *rx)
{
    rx->tag = ufio_ld16(rx->rec);
    rx->flags = ufio_ld16(rx->rec + 2);
    rx->len = ufio_ld32(rx->rec + 4);
    rx->rcrc = ufio_ld32(rx->rec + 8);
    rx->got = 0;
    if (rx->flags & ~UFIO_MIG_REC_OPTIONAL)
        return -EINVAL;
    if (!rx->desc_seen && rx->tag != UFIO_MIG_TAG_DESC)
        return -EINVAL; /* the descriptor must come before anything it vouches for */
    switch (rx->tag) {
    case UFIO_MIG_TAG_DESC:
        if (rx->desc_seen || rx->len == 0)
            return -EINVAL;
        if (rx->len > UFIO_MIG_MAX_DESC)
            return -E2BIG;
        break;
    case UFIO_MIG_TAG_DATA:
        if (rx->len > rx->max_record)
            return -E2BIG;
        if (rx->max_total && rx->total + rx->len > rx->max_total)
            return -E2BIG;
        break;
    case UFIO_MIG_TAG_END:
        if (rx->len != UFIO_MIG_END_SIZE)
            return -EINVAL;
        break;
    case UFIO_MIG_TAG_DEVCFG:
        if (rx->devcfg || rx->len == 0)
            return -EINVAL;
        if (rx->len > UFIO_MIG_MAX_DEVCFG)
            return -E2BIG;
        break;
    default:
        if (!(rx->flags & UFIO_MIG_REC_OPTIONAL))
            return -EINVAL;
        if (rx->len > rx->max_record)
            return -E2BIG;
    }
    rx->stage = ST_REC_BODY;
    return 0;
}

/* A whole record body p (its CRC not yet checked). */
static int record_end(struct ufio_mig_rx *rx, const uint8_t *p)
{
    rx->stage = ST_REC_HDR;
    rx->got = 0;
    if (ufio_crc32c(0, p, rx->len) != rx->rcrc)
        return -EBADMSG;
    switch (rx->tag) {
    case UFIO_MIG_TAG_DESC:
        if (p[rx->len - 1] != 0 || strlen((const char *)p) != rx->len - 1)
            return -EINVAL;
        if (!(rx->desc = malloc(rx->len)))
            return -ENOMEM;
        memcpy(rx->desc, p, rx->len);
        rx->desc_len = rx->len - 1;
        rx->desc_seen = true;
        return rx->on_desc ? rx->on_desc(rx->arg, rx->desc) : 0;
    case UFIO_MIG_TAG_DATA:
        rx->total += rx->len;
        rx->nrec++;
        rx->chain = ufio_mig_crc_chain(rx->chain, rx->rcrc);
        return rx->on_data ? rx->on_data(rx->arg, p, rx->len) : 0;
    case UFIO_MIG_TAG_DEVCFG:
        if (!(rx->devcfg = malloc(rx->len)))
            return -ENOMEM;
        memcpy(rx->devcfg, p, rx->len);
        rx->devcfg_len = rx->len;
        rx->chain = ufio_mig_crc_chain(rx->chain, rx->rcrc);
        return 0;
    case UFIO_MIG_TAG_END:
        if (ufio_ld64(p) != rx->total || ufio_ld32(p + 8) != rx->chain || ufio_ld32(p + 12) != rx->nrec)
            return -EBADMSG;
        rx->done = true;
        rx->stage = ST_DONE;
        return 0;
    default:
        return 0; /* an optional record we do not know */
    }
}

static int feed(struct ufio_mig_rx *rx, const uint8_t *p, size_t len)
{
    while (len) {
        size_t n;
        int err;
        switch (rx->stage) {
        case ST_HDR:
            n = UFIO_MIG_HDR_SIZE - rx->got;
            n = n < len ? n : len;
            memcpy(rx->hdr + rx->got, p, n);
            rx->got += n;
            if (rx->got == UFIO_MIG_HDR_SIZE) {
                if (memcmp(rx->hdr, UFIO_MIG_MAGIC, 8) || ufio_ld16(rx->hdr + 8) != UFIO_MIG_STREAM_VERSION ||
                    ufio_ld16(rx->hdr + 10) != 0)
                    return -EINVAL;
                rx->stage = ST_REC_HDR;
                rx->got = 0;
            }
            break;
        case ST_REC_HDR:
            n = UFIO_MIG_REC_HDR - rx->got;
            n = n < len ? n : len;
            memcpy(rx->rec + rx->got, p, n);
            rx->got += n;
            if (rx->got == UFIO_MIG_REC_HDR) {
                if ((err = record_start(rx)))
                    return err;
                if (rx->len == 0 && (err = record_end(rx, p)))
                    return err;
            }
            break;
        case ST_REC_BODY:
            if (rx->got == 0 && len - 0 >= rx->len) {
                /* the whole record is here: hand it on from the caller's buffer */
                n = rx->len;
                if ((err = record_end(rx, p)))
                    return err;
                break;
            }
            if (rx->body_cap < rx->len) {
                uint8_t *b = realloc(rx->body, rx->len);
                if (!b)
                    return -ENOMEM;
                rx->body = b;
                rx->body_cap = rx->len;
            }
            n = rx->len - rx->got;
            n = n < len ? n : len;
            memcpy(rx->body + rx->got, p, n);
            rx->got += n;
            if (rx->got == rx->len && (err = record_end(rx, rx->body)))
                return err;
            break;
        default:
            return -EINVAL; /* bytes after END */
        }
        p += n;
        len -= n;
    }
    return 0;
}

int ufio_mig_rx_feed(struct ufio_mig_rx *rx, const void *buf, size_t len)
{
    if (rx->err)
        return rx->err;
    int err = feed(rx, buf, len);
    if (err)
        rx->err = err;
    return err;
}
