/*
 * Framing of the migration byte stream that ufio adds around the device's
 * opaque payload:
 *
 *   header  : magic "UFIOMIG\0" (8), version u16 (1), flags u16 (0), reserved u32
 *   records : tag u16, flags u16 (bit 0: optional), len u32, then len bytes
 *     DESC (1)  the source's compatibility descriptor, NUL-terminated JSON (first record)
 *     DATA (2)  a piece of the device payload
 *     DEVCFG (4) state the library emulates for the device: config space, MSI-X
 *     END  (3)  total payload bytes u64, CRC-32C of DATA and DEVCFG payloads u32, reserved u32
 *   A reader skips unknown optional records and refuses unknown mandatory ones.
 *
 * The reader is incremental: bytes arrive in any chunking. It buffers the
 * payload (bounded) so the device loads nothing until END has verified it.
 */
#ifndef UFIO_PROTO_MIG_STREAM_H
#define UFIO_PROTO_MIG_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define UFIO_MIG_MAGIC "UFIOMIG"
#define UFIO_MIG_STREAM_VERSION 1
#define UFIO_MIG_HDR_SIZE 16
#define UFIO_MIG_REC_HDR 8
#define UFIO_MIG_REC_OPTIONAL 0x1
#define UFIO_MIG_TAG_DESC 1
#define UFIO_MIG_TAG_DATA 2
#define UFIO_MIG_TAG_END 3
#define UFIO_MIG_TAG_DEVCFG 4  /* library-owned device state (config space, MSI-X) */
#define UFIO_MIG_MAX_DEVCFG (64u * 1024)
#define UFIO_MIG_END_SIZE 16
#define UFIO_MIG_MAX_DESC 65536
#define UFIO_MIG_MAX_RECORD (16u << 20)

uint32_t ufio_crc32c(uint32_t crc, const void *buf, size_t len);

void ufio_mig_put_header(uint8_t out[UFIO_MIG_HDR_SIZE]);
void ufio_mig_put_record(uint8_t out[UFIO_MIG_REC_HDR], uint16_t tag, uint16_t flags, uint32_t len);
void ufio_mig_put_end(uint8_t out[UFIO_MIG_END_SIZE], uint64_t total, uint32_t crc);

struct ufio_mig_rx {
    int stage;              /* internal */
    uint8_t hdr[UFIO_MIG_HDR_SIZE];
    size_t got;             /* bytes of the current header / record part */
    uint16_t tag, flags;
    uint32_t len;
    uint8_t rec[UFIO_MIG_END_SIZE];
    char *desc;             /* the DESC record, NUL-terminated, once seen */
    size_t desc_len;
    bool desc_seen;
    uint8_t *devcfg;        /* the DEVCFG record, once seen */
    size_t devcfg_len;
    uint8_t *data;          /* the payload so far */
    size_t data_len, data_cap;
    uint32_t *rec_len;      /* length of each DATA record, in order */
    size_t nrec, rec_cap;
    uint64_t max_data;      /* refuse streams whose payload exceeds this */
    uint32_t crc;
    bool done;              /* END seen and verified */
};

void ufio_mig_rx_init(struct ufio_mig_rx *rx, uint64_t max_data);
void ufio_mig_rx_free(struct ufio_mig_rx *rx);
/*
 * Feeds the next bytes. Returns 0, or: -EINVAL malformed framing (bad magic,
 * version, unknown mandatory record, DESC not first, bytes after END),
 * -E2BIG a record or the payload above its bound, -EBADMSG END's length or
 * CRC does not match the payload, -ENOMEM.
 */
int ufio_mig_rx_feed(struct ufio_mig_rx *rx, const void *buf, size_t len);

#endif
