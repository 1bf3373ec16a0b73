/*
 * ufio: vfio-user server and client library — definitions common to both.
 *
 * Conventions (every header):
 *  - functions that can fail return 0 (or a non-negative count) on success
 *    and a negative errno on failure; the same errno travels in error replies;
 *  - objects are opaque; create/destroy pairs, destroy(NULL) is a no-op;
 *  - the library owns no threads and no event loop: each object exposes a
 *    pollable fd and a non-blocking step call, plus a blocking convenience;
 *  - every struct the caller passes that may grow (ops, options, info)
 *    starts with `size_t size`, which the caller sets to sizeof the struct;
 *    the library reads and writes only that many bytes, treats members the
 *    caller's build did not know as zero, and returns -EINVAL for a size
 *    that does not cover `size` itself and -E2BIG when members this library
 *    does not know are non-zero (docs/abi.md).
 */
#ifndef UFIO_UFIO_H
#define UFIO_UFIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UFIO_API __attribute__((visibility("default")))

/* The version of the headers a caller is built with (docs/abi.md: the
 * soname's number is UFIO_VERSION_MAJOR). */
#define UFIO_VERSION_MAJOR 1
#define UFIO_VERSION_MINOR 0
#define UFIO_VERSION_PATCH 0
#define UFIO_VERSION_STRING "1.0.0"
/* One number that orders versions: 0x010000 for 1.0.0. */
#define UFIO_VERSION_NUM(major, minor, patch) (((major) << 16) | ((minor) << 8) | (patch))
#define UFIO_VERSION UFIO_VERSION_NUM(UFIO_VERSION_MAJOR, UFIO_VERSION_MINOR, UFIO_VERSION_PATCH)

/* The version of the library actually running (which may be newer than the
 * headers the caller was built with): UFIO_VERSION's encoding, and as text. */
UFIO_API unsigned ufio_version(void);
UFIO_API const char *ufio_version_string(void);

/*
 * Marks a callback parameter the device does not use, so -Wextra
 * (-Wunused-parameter) stays quiet without a (void) cast per parameter.
 * It goes before the parameter:
 *     static int my_reset(UFIO_UNUSED struct ufio_dev *dev, void *opaque);
 * Callbacks keep their full signatures on purpose: a device that needs the
 * device handle or the region index later need not change its prototype.
 */
#if defined(__cplusplus) && __cplusplus >= 201703L
#define UFIO_UNUSED [[maybe_unused]]
#else
#define UFIO_UNUSED __attribute__((unused))
#endif

/* vfio PCI region indices */
enum ufio_pci_region {
    UFIO_PCI_BAR0_REGION = 0,
    UFIO_PCI_BAR1_REGION,
    UFIO_PCI_BAR2_REGION,
    UFIO_PCI_BAR3_REGION,
    UFIO_PCI_BAR4_REGION,
    UFIO_PCI_BAR5_REGION,
    UFIO_PCI_ROM_REGION,
    UFIO_PCI_CONFIG_REGION,
    UFIO_PCI_VGA_REGION,
    UFIO_PCI_NUM_REGIONS,
};

/* vfio PCI IRQ indices */
enum ufio_pci_irq {
    UFIO_IRQ_INTX = 0,
    UFIO_IRQ_MSI,
    UFIO_IRQ_MSIX,
    UFIO_IRQ_ERR,
    UFIO_IRQ_REQ,
    UFIO_IRQ_NUM,
};

enum ufio_log_level {
    UFIO_LOG_ERR = 0,
    UFIO_LOG_WARN,
    UFIO_LOG_INFO,
    UFIO_LOG_DEBUG,
};

/*
 * Log sink for the whole library. Messages name the device (or client) and
 * the msg_id they concern. The default sink writes WARN and above to stderr.
 * fn == NULL restores the default.
 */
/*
 * Sessions (docs/sessions.md). A device serves one owner (the VMM, on the
 * device socket), any number of observers (read-only) and at most one
 * migration controller; the last two usually come through the device's
 * management socket.
 */
enum ufio_role {
    UFIO_ROLE_DEFAULT = 0, /* owner on the device socket, observer on the management socket */
    UFIO_ROLE_OWNER_REQ = 1,
    UFIO_ROLE_OBSERVER_REQ = 2,
    UFIO_ROLE_CONTROLLER_REQ = 4,
};

/*
 * The management socket path derived from a device socket path, the default
 * of every ufio program and the first place the tools look: the device path
 * with ".mgmt" appended. -ENAMETOOLONG when it does not fit cap or a socket
 * address.
 */
UFIO_API int ufio_mgmt_path(const char *sock_path, char *buf, size_t cap);

typedef void (*ufio_log_fn)(void *opaque, enum ufio_log_level level, const char *msg);
UFIO_API void ufio_set_log(ufio_log_fn fn, void *opaque, enum ufio_log_level max_level);

/* Name of a vfio-user command number ("REGION_READ"), "?" if unknown. */
UFIO_API const char *ufio_cmd_str(unsigned cmd);

#ifdef __cplusplus
}
#endif
#endif
