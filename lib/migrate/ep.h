/*
 * The engine's view of one end: typed calls over a struct ufio_mig_endpoint
 * (include/ufio/migrate.h), each a DEVICE_FEATURE or data message.
 */
#ifndef UFIO_MIGRATE_EP_H
#define UFIO_MIGRATE_EP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ufio/migrate.h>

struct mep {
    struct ufio_mig_endpoint *e;
    const char *who;    /* "source" / "destination" */
    bool owned;
    double quickest_ms; /* the quickest feature request so far (0: none yet): the end's latency */
};

int mep_flags(struct mep *m, uint64_t *flags);
int mep_get_state(struct mep *m, unsigned *state);
/* *reached (may be NULL): the state after the request, ERROR when unknown */
int mep_set_state(struct mep *m, unsigned state, unsigned *reached);
/* The compatibility descriptor; a device without ufio's descriptor feature
 * is described by the PCI ids in its config space. */
int mep_desc(struct mep *m, char *buf, size_t cap);
int mep_precopy_info(struct mep *m, uint64_t *initial, uint64_t *dirty);
int mep_stop_copy_size(struct mep *m, uint64_t *bytes);
/* the device's reason for its last refusal; "" when it gives none */
int mep_reason(struct mep *m, char *buf, size_t cap);
int mep_digest(struct mep *m, uint8_t *buf, size_t cap, size_t *len);
int mep_set_u64(struct mep *m, unsigned index, uint64_t v);
int mep_read(struct mep *m, void *buf, size_t len, size_t *got);
int mep_write(struct mep *m, const void *buf, size_t len);
int mep_reset(struct mep *m);
uint64_t mep_max_chunk(struct mep *m);
/* Waits until every write so far reached the device (ops->flush); 0 when the
 * endpoint's writes are synchronous (no flush). */
int mep_flush(struct mep *m);
void mep_close(struct mep *m);

#endif
