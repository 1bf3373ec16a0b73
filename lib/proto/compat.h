/*
 * Migration compatibility descriptors: what a device is, what it accepts,
 * and the matcher that decides whether a source's state can be loaded by a
 * destination. Pure: JSON text in, verdict and reasons out. Rules in
 * docs/compatibility.md.
 */
#ifndef UFIO_PROTO_COMPAT_H
#define UFIO_PROTO_COMPAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/json.h"

/* The largest descriptor accepted, and how deeply its JSON may nest. */
#define UFIO_COMPAT_MAX_DESC 65536
#define UFIO_COMPAT_JSON_DEPTH 32

/* A checked descriptor: spans into the caller's text, which must outlive it. */
struct ufio_compat_desc {
    struct ufio_json root;
};

#define UFIO_COMPAT_MAX_REASONS 32

struct ufio_compat_reason {
    char field[64];
    char source[128];   /* the source's value */
    char accepts[160];  /* what the destination accepts */
};

struct ufio_compat_verdict {
    bool compatible;
    unsigned n;
    struct ufio_compat_reason r[UFIO_COMPAT_MAX_REASONS];
};

/*
 * Parses (with the strict reader, proto/json.h: nothing allocated) and
 * validates a descriptor. 0, or -EINVAL with a message in err: not JSON (with
 * the reader's reason and byte offset), not an object, a missing or ill-typed
 * mandatory field (device_api, type, software_version, pci ids), a
 * software_version that is not MAJOR.MINOR.PATCH, a malformed accepts rule.
 */
int ufio_compat_parse(const char *json, struct ufio_compat_desc *d, char *err, size_t errlen);

/* Can dst load a stream from src? Both already parsed. */
void ufio_compat_match(const struct ufio_compat_desc *src, const struct ufio_compat_desc *dst,
                       struct ufio_compat_verdict *v);

/* Convenience on text: -EINVAL (message in err) if either descriptor is malformed. */
int ufio_compat_check_json(const char *src, const char *dst, struct ufio_compat_verdict *v,
                           char *err, size_t errlen);

/* One line per reason: "field: source X, destination accepts Y". */
size_t ufio_compat_format(const struct ufio_compat_verdict *v, char *buf, size_t cap);

/* The descriptor of a device that gives none (a server without ufio's
 * extensions), from the first 0x30 bytes of its config space: type
 * "pci-VVVV:DDDD", software_version 0.0.0, its ids. -ENODEV for no device. */
int ufio_compat_from_pci_ids(const uint8_t *cfg, size_t len, char *buf, size_t cap);

/* Parses "MAJOR.MINOR.PATCH" (each 0..65535). */
int ufio_semver_parse(const char *s, unsigned v[3]);

#endif
