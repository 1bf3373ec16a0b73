/*
 * CRC-32C (Castagnoli, reflected, as iSCSI and the migration stream use it).
 * crc is the value of the bytes so far (0 to start), so a buffer may be
 * checksummed in pieces: crc32c(crc32c(0, a), b) == crc32c(0, a || b).
 */
#ifndef UFIO_PROTO_CRC32C_H
#define UFIO_PROTO_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The fastest this CPU has: on x86-64 with AVX-512 VPCLMULQDQ, folding 512
 * bits at a time by carry-less multiplication; with SSE4.2, three
 * interleaved streams of the crc32 instruction; elsewhere the portable
 * table. */
uint32_t ufio_crc32c(uint32_t crc, const void *buf, size_t len);
/* One byte at a time through a table: the reference, and the fallback. */
uint32_t ufio_crc32c_portable(uint32_t crc, const void *buf, size_t len);
/* The crc32 instruction in one stream (x86-64 with SSE4.2 only; else the
 * portable one): what the three-stream version is measured against. */
uint32_t ufio_crc32c_1stream(uint32_t crc, const void *buf, size_t len);

/* The three-stream crc32 instruction alone (else the portable one). */
uint32_t ufio_crc32c_3stream(uint32_t crc, const void *buf, size_t len);
/* Folding by PCLMUL (wide: by VPCLMULQDQ on 512 bits where the CPU has it);
 * short buffers and CPUs without PCLMUL go to the three streams. */
uint32_t ufio_crc32c_clmul(uint32_t crc, const void *buf, size_t len, bool wide);

#endif
