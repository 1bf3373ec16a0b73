/*
 * The vendor migration plugin ABI of ufio-vfio-pci (docs/vfio-pci.md).
 *
 * A plugin is a shared object holding a host PCI device's migration agent:
 * how to stop it, read its state out and put it back. ufio-vfio-pci loads it
 * with --migration-plugin=PATH (dlopen), serves the device over vfio-user,
 * and maps the plugin onto libufio's migration (struct ufio_mig_ops), so the
 * state machine, the framed and checksummed stream, the compatibility check
 * and the migration engine are ufio's; the plugin sees only its device.
 *
 * The plugin exports one symbol, UFIO_MIGRATION_PLUGIN_SYMBOL, a function
 * the server calls once with its ABI version; it returns its descriptor
 * (static storage, valid until dlclose) or NULL to refuse that host.
 *
 * Versioning: abi_version is major << 16 | minor. A host loads plugins of
 * its major with any minor; the size fields let either side grow its struct
 * at the end (a member exists only when size covers it; members a plugin's
 * size does not cover are treated as NULL/0). Neither side keeps the other's
 * pointers after fini/unload.
 *
 * Containment (the host's side): every return value is checked. An errno
 * outside -4095..-1 becomes -EIO; save() lengths above the buffer, or a
 * negative length that is no errno, are -EIO and the save fails; a failed
 * transition leaves the device in the arc's starting state, as VFIO's
 * rules say a failed arc does, and the client sees the errno. A plugin that
 * crashes takes the server process down with it: it is loaded code.
 * Calls come from the server's one device thread, never concurrently.
 */
#ifndef UFIO_MIGRATION_PLUGIN_H
#define UFIO_MIGRATION_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UFIO_MP_ABI_MAJOR 1u
#define UFIO_MP_ABI_MINOR 0u
#define UFIO_MP_ABI_VERSION ((UFIO_MP_ABI_MAJOR << 16) | UFIO_MP_ABI_MINOR)
#define UFIO_MIGRATION_PLUGIN_SYMBOL "ufio_migration_plugin_v1"

/* What the server offers the plugin: its device, and a DMA buffer. */
struct ufio_mp_host {
    uint32_t abi_version;       /* the host's UFIO_MP_ABI_VERSION */
    uint32_t size;              /* sizeof(struct ufio_mp_host) of the host */
    void *ctx;                  /* pass back as the first argument below */
    const char *bdf;            /* "0000:00:03.0" */
    uint16_t vendor_id, device_id;
    /* Access to a region of the device (VFIO region index: 0-5 BARs, 6
     * ROM, 7 config space); 0 or -errno. Bounds-checked by the host. */
    int (*region_read)(void *ctx, unsigned region, uint64_t offset, void *buf, uint32_t len);
    int (*region_write)(void *ctx, unsigned region, uint64_t offset, const void *buf, uint32_t len);
    /* A buffer the device can reach by DMA: size bytes (page multiple, at
     * most 16 MiB) mapped into the device's IOMMU at an IOVA below
     * iova_limit (the device's DMA mask + 1; 0 = no limit). At most one per
     * plugin, freed by the host after fini. The client cannot map over it. */
    int (*dma_alloc)(void *ctx, size_t size, uint64_t iova_limit, void **vaddr, uint64_t *iova);
    /* A line for the server's log (level: 0 error, 1 warning, 2 info, 3 debug). */
    void (*log)(void *ctx, int level, const char *msg);
};

/* The plugin's descriptor. Migration states are enum ufio_mig_state's values. */
struct ufio_migration_plugin {
    uint32_t abi_version;       /* the UFIO_MP_ABI_VERSION the plugin was built with */
    uint32_t size;              /* sizeof(struct ufio_migration_plugin) of the plugin */
    const char *name;           /* for logs */
    uint64_t flags;             /* UFIO_MIG_F_* (STOP_COPY required; P2P, PRE_COPY optional) */
    /* Compatibility descriptor (JSON, docs/compatibility.md), or NULL: the
     * device's PCI ids at software_version 0.0.0. */
    const char *compat_json;
    /* Binds to the device; *state is passed to every call. 0 or -errno (the
     * server then exits). The device is running and its client not yet attached. */
    int (*init)(const struct ufio_mp_host *host, void **state);
    void (*fini)(void *state);
    /* One direct arc of VFIO's migration state machine; 0 or -errno, and on
     * error the device must still be in `from`. */
    int (*transition)(void *state, unsigned from, unsigned to);
    /* Next bytes of device state (PRE_COPY, STOP_COPY): the count (<= len);
     * 0 in STOP_COPY = complete, 0 in PRE_COPY = nothing more for now. */
    ssize_t (*save)(void *state, void *buf, size_t len);
    /* The verified stream on the destination, one call per save() piece
     * (same boundaries); last on the final one. 0 or -errno. */
    int (*load)(void *state, const void *buf, size_t len, bool last);
    /* Bytes still to send in PRE_COPY (initial, dirty) and in STOP_COPY. May be NULL. */
    void (*estimate)(void *state, uint64_t *initial, uint64_t *dirty, uint64_t *stop_copy);
    /* Pages of [iova, iova+len) the device wrote since the last call, as a
     * bitmap of ceil(len / page_size / 64) words (bit k = page k, zeroed by
     * the host). May be NULL: then only DMA the server itself did is logged,
     * and the hardware's writes are not (say so in the plugin's docs). */
    int (*dirty_pages)(void *state, uint64_t iova, uint64_t len, uint64_t page_size, uint64_t *bitmap);
    /* The client started (start, with the page size and the DMA ranges
     * mapped then: nranges pairs of iova, length) or stopped dirty logging.
     * A negative errno refuses the start. May be NULL (nothing to set up). */
    int (*dirty_log)(void *state, bool start, uint64_t page_size, const uint64_t *ranges, uint32_t nranges);
};

typedef const struct ufio_migration_plugin *(*ufio_migration_plugin_entry_fn)(uint32_t host_abi_version);

#ifdef __cplusplus
}
#endif
#endif
