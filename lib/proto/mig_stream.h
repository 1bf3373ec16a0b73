/*
 * Framing of the migration byte stream that ufio adds around the device's
 * opaque payload (version 2):
 *
 *   header  : magic "UFIOMIG\0" (8), version u16 (2), flags u16 (0), reserved u32
 *   records : tag u16, flags u16 (bit 0: optional), len u32, crc u32 (CRC-32C of
 *             the len payload bytes that follow), then the payload
 *     DESC (1)   the source's compatibility descriptor, NUL-terminated JSON (first record)
 *     DATA (2)   a piece of the device payload: what one save() produced
 *     DEVCFG (4) state the library emulates for the device: config space, MSI-X
 *     END  (3)   DATA payload bytes u64, CRC-32C over the crc fields of every DATA
 *                and DEVCFG record in order u32, number of DATA records u32
 *   A reader skips unknown optional records and refuses unknown mandatory ones.
 *
 * The reader is incremental and streaming: bytes arrive in any chunking; a
 * record is handed on (on_data) as soon as it is whole and its CRC is right,
 * straight from the caller's buffer when the record lies inside one feed, so
 * what the reader holds is one record at most (max_record bytes). END checks
 * that no record was lost, added or reordered.
 */
#ifndef UFIO_PROTO_MIG_STREAM_H
#define UFIO_PROTO_MIG_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/crc32c.h"

#define UFIO_MIG_MAGIC "UFIOMIG"
#define UFIO_MIG_STREAM_VERSION 2
#define UFIO_MIG_HDR_SIZE 16
#define UFIO_MIG_REC_HDR 12
#define UFIO_MIG_REC_OPTIONAL 0x1
#define UFIO_MIG_TAG_DESC 1
#define UFIO_MIG_TAG_DATA 2
#define UFIO_MIG_TAG_END 3
#define UFIO_MIG_TAG_DEVCFG 4  /* library-owned device state (config space, MSI-X) */
#define UFIO_MIG_MAX_DEVCFG (64u * 1024)
#define UFIO_MIG_END_SIZE 16
#define UFIO_MIG_MAX_DESC 65536
/* the largest DATA record a reader accepts by default */
#define UFIO_MIG_MAX_RECORD (16u << 20)


void ufio_mig_put_header(uint8_t out[UFIO_MIG_HDR_SIZE]);
/* A record header for len payload bytes whose CRC-32C is crc. */
void ufio_mig_put_record(uint8_t out[UFIO_MIG_REC_HDR], uint16_t tag, uint16_t flags, uint32_t len, uint32_t crc);
/* The same, computing the CRC of payload. */
void ufio_mig_frame(uint8_t out[UFIO_MIG_REC_HDR], uint16_t tag, uint16_t flags, const void *payload, uint32_t len);
/* END's payload; crcs = CRC-32C over the little-endian crc fields of the DATA
 * and DEVCFG records in order (ufio_mig_crc_chain builds it). */
void ufio_mig_put_end(uint8_t out[UFIO_MIG_END_SIZE], uint64_t total, uint32_t crcs, uint32_t nrec);
uint32_t ufio_mig_crc_chain(uint32_t chain, uint32_t record_crc);

struct ufio_mig_rx {
    int stage;              /* internal */
    uint8_t hdr[UFIO_MIG_HDR_SIZE];
    size_t got;             /* bytes of the current header / record part */
    uint16_t tag, flags;
    uint32_t len, rcrc;     /* the current record */
    uint8_t rec[UFIO_MIG_REC_HDR];
    uint8_t end[UFIO_MIG_END_SIZE];
    uint8_t *body;          /* the current record when it spans feeds */
    size_t body_cap;
    char *desc;             /* the DESC record, NUL-terminated, once seen */
    size_t desc_len;
    bool desc_seen;
    uint8_t *devcfg;        /* the DEVCFG record, once seen */
    size_t devcfg_len;
    uint64_t total;         /* DATA payload bytes so far */
    uint32_t nrec;          /* DATA records so far */
    uint32_t chain;         /* ufio_mig_crc_chain of the record CRCs so far */
    uint64_t max_record;    /* refuse DATA records above this */
    uint64_t max_total;     /* refuse streams whose payload exceeds this (0 = no limit) */
    bool done;              /* END seen and verified */
    int err;                /* sticky: the first error */
    /* called with each verified DATA record, in order; its error stops the stream */
    int (*on_data)(void *arg, const uint8_t *p, size_t len);
    /* called once the descriptor is in (desc/desc_len set), before any DATA */
    int (*on_desc)(void *arg, const char *desc);
    void *arg;
};

void ufio_mig_rx_init(struct ufio_mig_rx *rx, uint64_t max_record);
/* Frees what the reader holds and starts it over (callbacks and limits kept). */
void ufio_mig_rx_reset(struct ufio_mig_rx *rx);
void ufio_mig_rx_free(struct ufio_mig_rx *rx);
/*
 * Feeds the next bytes. Returns 0, or (and from then on, the same): -EINVAL
 * malformed framing (bad magic, version, unknown mandatory record, DESC not
 * first, a second DESC/DEVCFG, bytes after END), -E2BIG a record or the
 * payload above its bound, -EBADMSG a record's CRC or END's totals do not
 * match, -ENOMEM, or what a callback returned.
 */
int ufio_mig_rx_feed(struct ufio_mig_rx *rx, const void *buf, size_t len);

#endif
