/*
 * The identity of the device a client is attached to: its PCI ids and its
 * compatibility descriptor. Recorded on connect; a reconnect that finds another
 * device at the path is refused before any DMA mapping or eventfd reaches it.
 */
#ifndef UFIO_CLIENT_IDENTITY_H
#define UFIO_CLIENT_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

struct cl_identity {
    uint16_t vendor_id, device_id, subsys_vendor_id, subsys_id;
    uint32_t class_code; /* 24 bits */
    uint8_t revision;
    char *desc;          /* compatibility descriptor (malloc'd), NULL when the server has none */
    size_t desc_len;
};

struct ufio_client;

/* Reads the identity of the device now served: 0 or -errno (a server without
 * descriptors is not an error: desc = NULL). */
int cl_identity_read(struct ufio_client *c, struct cl_identity *id);
/* Fills the ids from config space bytes 0x00..0x2f. */
void cl_identity_from_config(struct cl_identity *id, const uint8_t cfg[0x30]);
/*
 * Is `now` the device `was`? 0 if so; -ENODEV if not, with the reason in
 * why (always NUL-terminated): every id that changed, old and new, then
 * whether the descriptor appeared, disappeared or changed (and where).
 */
int cl_identity_compare(const struct cl_identity *was, const struct cl_identity *now, char *why, size_t why_len);
void cl_identity_free(struct cl_identity *id);

#endif
