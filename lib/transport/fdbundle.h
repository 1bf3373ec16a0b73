/*
 * Passing many fds at once, with a table that says what each one is.
 *
 * A handover moves every fd a device server holds for its client (the
 * connection, twin socket, DMA memory, IRQ eventfds, region memfds, the
 * listening sockets) to another process. That is more fds than one message
 * may carry, so a bundle goes over a UNIX stream socket as one table message
 * (every entry: kind, index, three kind-specific numbers, whether an fd goes
 * with it) followed by batch messages of at most UFIO_FDB_BATCH fds each,
 * attached to the batch's first byte, in table order. The receiver checks
 * the table and that every batch brings exactly the fds it announces; on
 * any mismatch it closes every fd it got and fails.
 *
 * Ownership: a received bundle owns its fds. ufio_fdb_take() hands one over;
 * ufio_fdb_free() closes every fd not taken, so an fd that arrived and was
 * not used is always closed. A sent bundle's fds stay the sender's.
 *
 * Wire (host byte order, little-endian on every supported host):
 *   message = u32 magic, u32 body length, body
 *   table   = magic UFIO_FDB_TABLE_MAGIC; body: u32 version (1), u32 count,
 *             count x { u32 kind, u32 index, u64 a, u64 b, u64 c, u32 has_fd, u32 0 }
 *   batch   = magic UFIO_FDB_BATCH_MAGIC; body: u32 first entry, u32 fd count
 */
#ifndef UFIO_TRANSPORT_FDBUNDLE_H
#define UFIO_TRANSPORT_FDBUNDLE_H

#include <stddef.h>
#include <stdint.h>

#define UFIO_FDB_TABLE_MAGIC 0x54424446u /* "FDBT" */
#define UFIO_FDB_BATCH_MAGIC 0x42424446u /* "FDBB" */
#define UFIO_FDB_VERSION 1u
#define UFIO_FDB_ENTRY_SIZE 40u
/* fds per batch message: the transport's own per-message limit */
#define UFIO_FDB_BATCH 16u
/* the most entries a receiver accepts unless told fewer */
#define UFIO_FDB_MAX_ENTRIES 4096u

/* What an entry is (the bundle itself does not interpret it). */
enum ufio_fdb_kind {
    UFIO_FDB_CONN = 1,    /* the client's connection */
    UFIO_FDB_TWIN = 2,    /* its twin socket */
    UFIO_FDB_LISTEN = 3,  /* a listening socket; index 0 device, 1 management */
    UFIO_FDB_DMA = 4,     /* a = iova, b = size, c = fd offset; index = prot */
    UFIO_FDB_IRQ = 5,     /* index = IRQ index, a = vector */
    UFIO_FDB_REGION = 6,  /* index = region, a = offset, b = size */
    UFIO_FDB_DATA = 7,    /* no fd; a, b, c carry numbers */
    UFIO_FDB_HELD = 8,    /* an fd of a held message: index = the message's place, a = the fd's */
};

struct ufio_fdb_entry {
    uint32_t kind, index;
    uint64_t a, b, c;
    int fd; /* -1: no fd with this entry (or taken) */
};

struct ufio_fdb {
    struct ufio_fdb_entry *e;
    size_t n, cap;
};

void ufio_fdb_init(struct ufio_fdb *b);
/* Appends an entry (fd may be -1). The bundle does not own a sender's fds. 0 or -ENOMEM. */
int ufio_fdb_add(struct ufio_fdb *b, uint32_t kind, uint32_t index, uint64_t a, uint64_t bb, uint64_t c, int fd);
/* Sends table and batches; blocks up to timeout_ms in all (-1 forever). 0, -ETIMEDOUT, -errno. */
int ufio_fdb_send(int sock, const struct ufio_fdb *b, int timeout_ms);
/*
 * Receives a bundle of at most max_entries (0: UFIO_FDB_MAX_ENTRIES) into *b
 * (initialised here). 0, or -EPROTO (malformed table or batch, fds missing,
 * extra or truncated), -E2BIG, -ETIMEDOUT, -ECONNRESET, -ENOMEM, -errno: then
 * *b is empty and every fd that arrived is closed.
 */
int ufio_fdb_recv(int sock, struct ufio_fdb *b, size_t max_entries, int timeout_ms);
/* Entry i's fd, now the caller's (-1 if none or already taken). */
int ufio_fdb_take(struct ufio_fdb *b, size_t i);
/* The first entry of kind (and index, unless index is UINT32_MAX) from `from`, or -1. */
long ufio_fdb_find(const struct ufio_fdb *b, uint32_t kind, uint32_t index, size_t from);
/* How many fds the bundle still owns. */
size_t ufio_fdb_nfds(const struct ufio_fdb *b);
/* Closes every fd still owned (received bundles) and frees the table. */
void ufio_fdb_free(struct ufio_fdb *b);
/* Frees the table without closing anything (a sender's bundle). */
void ufio_fdb_forget(struct ufio_fdb *b);

#endif
