/*
 * Pass-through hooks of the libufio server: for a device whose registers,
 * interrupts and DMA belong to real hardware (a host device opened through
 * the kernel's VFIO) rather than to emulation in the server process.
 *
 * Each hook hands one part of the device model to the device program, which
 * forwards it to the hardware; everything else (negotiation, message
 * validation, the DMA table, migration) stays the library's. All hooks are
 * set before the device is attached (-EBUSY after), from the device's thread.
 */
#ifndef UFIO_PASSTHROUGH_H
#define UFIO_PASSTHROUGH_H

#include <ufio/migration.h>
#include <ufio/server.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Backs [offset, offset+size) of BAR `region` with the device's own fd at
 * fd_offset + offset (a VFIO device fd at the region's offset): the client
 * mmaps that fd and touches the hardware with no message per access. fd is
 * duplicated (the caller keeps its own). Every area of a region uses the
 * same fd and fd_offset (-EINVAL otherwise, and when mixed with
 * ufio_dev_add_mmap_area()). REGION_READ/WRITE inside the area still go to
 * the region's access callback. offset and size are page-aligned.
 * Handing the fd to the client gives it whatever that fd allows: for a VFIO
 * device fd, the device's ioctls too.
 */
UFIO_API int ufio_dev_add_mmap_area_fd(struct ufio_dev *dev, unsigned region, uint64_t offset,
                                       uint64_t size, int fd, uint64_t fd_offset);

/*
 * All of config space is the device's: every client access in [0, size)
 * goes to fn (region = UFIO_PCI_CONFIG_REGION), nothing is emulated or
 * stored by the library, and the library's MSI/MSI-X/INTx emulation is not
 * consulted. size is 256 or 4096.
 */
UFIO_API int ufio_dev_passthrough_config(struct ufio_dev *dev, uint32_t size,
                                         ufio_region_access_fn fn, void *opaque);

/*
 * SET_IRQS for one IRQ index, forwarded. The library advertises count
 * vectors with info_flags (VFIO_IRQ_INFO_*), decodes and bounds-checks each
 * request (start/count inside count, eventfds really eventfds), then calls
 * fn with the request's VFIO flags (data type | action), its range, and
 * either the eventfds (fds, nfds == count, -1 = de-assign; borrowed: the
 * library closes them after fn returns) or the bools (count bytes), or
 * neither (DATA_NONE). count == 0 with DATA_NONE|TRIGGER disables the index.
 * fn returns 0 or a negative errno for the client. When the client goes
 * away, fn is called with count 0 for every forwarded index.
 */
typedef int (*ufio_irq_set_fn)(struct ufio_dev *dev, void *opaque, unsigned index, uint32_t flags,
                               uint32_t start, uint32_t count, const int *fds, size_t nfds,
                               const uint8_t *bools);
UFIO_API int ufio_dev_passthrough_irq(struct ufio_dev *dev, unsigned index, uint32_t count,
                                      uint32_t info_flags, ufio_irq_set_fn fn, void *opaque);

/*
 * A DMA mapping the client made: vaddr is the server's own mapping of the
 * client's fd (NULL when the client gave no fd: such memory is reachable
 * only through DMA_READ/WRITE messages, never by hardware).
 */
#define UFIO_DMA_MAP_READ  0x1u
#define UFIO_DMA_MAP_WRITE 0x2u
struct ufio_dma_mapping {
    uint64_t iova;
    uint64_t size;
    uint32_t prot;  /* UFIO_DMA_MAP_READ | UFIO_DMA_MAP_WRITE: what the device may do */
    void *vaddr;
};
/*
 * map runs after the library validated and mmapped a DMA_MAP and before the
 * mapping is recorded: a negative errno refuses it (the library unmaps and
 * replies with it). unmap runs for every mapping map accepted, before its
 * memory goes away (DMA_UNMAP, client gone, destroy), with what map got.
 */
typedef int (*ufio_dma_map_fn)(struct ufio_dev *dev, void *opaque, const struct ufio_dma_mapping *m);
typedef void (*ufio_dma_unmap_fn)(struct ufio_dev *dev, void *opaque, const struct ufio_dma_mapping *m);
UFIO_API int ufio_dev_set_dma_hooks(struct ufio_dev *dev, ufio_dma_map_fn map, ufio_dma_unmap_fn unmap,
                                    void *opaque);

/*
 * Before each dirty-log report, the device is asked to mark what its
 * hardware wrote in [iova, iova+len) since the last call, with
 * ufio_dev_dma_mark_dirty() (the library sees only its own writes).
 */
typedef void (*ufio_dirty_sync_fn)(struct ufio_dev *dev, void *opaque, uint64_t iova, uint64_t len,
                                   uint64_t page_size);
UFIO_API int ufio_dev_set_dirty_sync(struct ufio_dev *dev, ufio_dirty_sync_fn fn, void *opaque);

/*
 * The hardware's own dirty tracking follows the client's: start runs when
 * the client starts DMA dirty logging (after the library set up its log),
 * with the page size and the client's DMA mappings at that moment; a
 * negative errno refuses the start (the library drops its log again and the
 * client gets the errno). Stop runs when logging ends (the client's stop,
 * the client gone), with no ranges.
 */
typedef int (*ufio_dirty_log_fn)(struct ufio_dev *dev, void *opaque, bool start, uint64_t page_size,
                                 const struct ufio_iova_range *ranges, uint32_t nranges);
UFIO_API int ufio_dev_set_dirty_log(struct ufio_dev *dev, ufio_dirty_log_fn fn, void *opaque);

/*
 * Whether DEVICE_GET_INFO advertises a reset (VFIO_DEVICE_FLAGS_RESET); the
 * default is yes. Hardware that cannot be reset says no, so a VMM does not
 * count on one (DEVICE_RESET still reaches ops->reset and its errno).
 */
UFIO_API int ufio_dev_set_resettable(struct ufio_dev *dev, bool resettable);

/*
 * Commands the device has handled since it was created, all clients
 * together: what proves that accesses through an mmap area (or interrupts
 * delivered by the kernel) reach no server at all.
 */
UFIO_API uint64_t ufio_dev_msg_count(struct ufio_dev *dev);

#ifdef __cplusplus
}
#endif
#endif
