/*
 * Host VFIO backend: serves a host PCI device, opened through the kernel's
 * VFIO, as a libufio device (docs/vfio-pci.md). BARs become mmap areas on
 * the VFIO device fd, config space and SET_IRQS go to VFIO, the client's
 * DMA mappings go into the device's IOMMU domain, DEVICE_RESET is
 * VFIO_DEVICE_RESET, and migration comes from the driver's VFIO migration
 * v2 or from a vendor plugin (include/ufio/migration_plugin.h).
 *
 * The device must be bound to vfio-pci (or a variant driver) and be the
 * only device of its IOMMU group in use. The IOMMU backend is the
 * container/group API with the type1 IOMMU (IOMMUFD is not used yet).
 */
#ifndef UFIO_VFIO_HOST_H
#define UFIO_VFIO_HOST_H

#include <ufio/server.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ufio_vfio_host;

struct ufio_vfio_host_opts {
    size_t size;                    /* sizeof(struct ufio_vfio_host_opts) in the caller's build */
    /* Serve BARs through REGION_READ/WRITE only: the client is not handed
     * the VFIO device fd (which also carries the device's ioctls). */
    bool no_mmap;
    /* Vendor migration plugin (a shared object), or NULL. It replaces the
     * driver's own migration v2 when both exist. */
    const char *migration_plugin;
    /* No migration at all even when the driver offers it. */
    bool no_migration;
};

/*
 * Opens host device bdf ("0000:00:03.0" or "00:03.0") and builds the libufio
 * device that serves it (named name), ready for ufio_dev_listen()/attach_fd().
 * why (may be NULL) receives a reason on failure. -errno: the kernel's, or
 * -ENODEV (not bound to vfio-pci), -EBUSY (group not viable / in use),
 * -EPROTO / -EINVAL (the plugin refused or is malformed).
 */
UFIO_API int ufio_vfio_host_open(const char *bdf, const char *name, const struct ufio_vfio_host_opts *opts,
                                 struct ufio_vfio_host **out, char *why, size_t why_len);
UFIO_API struct ufio_dev *ufio_vfio_host_dev(struct ufio_vfio_host *h);
/* What the backend runs on: "vfio-migration-v2", the plugin's name, or "none". */
UFIO_API const char *ufio_vfio_host_migration(struct ufio_vfio_host *h);
/* Destroys the device, unmaps every DMA mapping, closes VFIO. */
UFIO_API void ufio_vfio_host_close(struct ufio_vfio_host *h);

#ifdef __cplusplus
}
#endif
#endif
