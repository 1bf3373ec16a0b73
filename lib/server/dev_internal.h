/*
 * The device model of a server-side device: config space, regions, IRQs,
 * the owner's DMA mappings, migration and dirty logging. It knows nothing of
 * connections: server/session.h holds those (one session per connection,
 * with roles), server/dispatch.c turns a session's messages into calls of
 * the functions below. Split by concern: region.c (region access routing),
 * irq.c (IRQs and MSI-X emulation), dma.c (DMA mappings), migration.c
 * (DEVICE_FEATURE and the migration stream), dev_config.c (building).
 */
#ifndef UFIO_SERVER_DEV_INTERNAL_H
#define UFIO_SERVER_DEV_INTERNAL_H

#include <signal.h>

#include <ufio/server.h>
#include <ufio/migration.h>

#include "proto/proto.h"
#include "server/pci_cfg.h"
#include "transport/transport.h"

#define UFIO_DEV_MAX_AREAS 8
#define UFIO_DEV_MAX_CFG_CLAIMS 8

/* Config-space range whose accesses go to the device (ufio_dev_claim_config). */
struct ufio_cfg_claim {
    uint32_t offset, len;
    ufio_region_access_fn fn;
    void *opaque;
};
#define UFIO_DEV_MAX_QUEUED 64

struct ufio_region {
    uint64_t size;          /* 0 = absent */
    uint32_t info_flags;    /* VFIO_REGION_INFO_FLAG_* without CAPS */
    unsigned bar_flags;
    ufio_region_access_fn fn;
    void *opaque;
    int memfd;              /* -1 unless the region has mmap areas */
    uint8_t *mem;           /* device mapping of the whole memfd */
    uint32_t nr_areas;
    struct ufio_sparse_area areas[UFIO_DEV_MAX_AREAS];
};

struct ufio_irq_vec {
    int efd;        /* client's eventfd, -1 = none */
    bool masked;    /* vfio-level mask (INTx) */
    bool pending;   /* raised while masked / without an fd */
};

struct ufio_irq_index {
    uint32_t count;
    uint32_t info_flags;
    struct ufio_irq_vec *v;
};

struct ufio_msix {
    unsigned nvec;          /* 0 = no MSI-X */
    unsigned table_bar, pba_bar;
    uint32_t table_off, pba_off;
    uint8_t *table;         /* nvec * 16 bytes */
    bool table_used;        /* the client reads/writes our table (QEMU does not) */
};

struct ufio_dma_region {
    uint64_t iova;
    uint64_t size;
    uint32_t prot;          /* VFIO_USER_F_DMA_REGION_READ | _WRITE */
    uint8_t *mem;           /* NULL: served through DMA_READ/DMA_WRITE messages */
    void *map_base;         /* page-aligned mmap base (may precede mem) */
    size_t map_len;
    uint64_t *dirty;        /* dirty bitmap at log_pgsize, when logging */
    int fd;                 /* our dup of the client's fd (-1: none): a handover passes it on */
    uint64_t offset;        /* the mapping's offset in fd */
};

struct dma_node;                /* server/dma_tree.c */

struct ufio_dma_table {
    struct dma_node *root;      /* AVL tree by iova, ranges do not overlap */
    size_t n;
    bool logging;
    uint64_t log_pgsize;
};

/* Reply under construction: a small head plus borrowed or owned data. */
struct ufio_reply {
    uint8_t head[512];
    size_t head_len;
    struct iovec iov[4];
    int iovcnt;             /* extra data after head */
    int fds[UFIO_TRANSPORT_MAX_FDS];
    size_t nfds;            /* fds sent but still owned by the device */
    bool close_fds;         /* ...unless set: then they are closed after sending */
    void *heap;             /* freed after sending */
};

struct ufio_mig;            /* server/migration.c */
struct ufio_session;        /* server/session.h: one per connection */
struct ufio_passthrough;    /* server/passthrough.c */

/*
 * A server-to-client request (DMA_READ/DMA_WRITE) for the device model: the
 * session layer fills this in for the owner (the model never sees a
 * connection). dst as for sess_send_request().
 */
typedef int (*dev_request_fn)(void *opaque, uint16_t cmd, const struct iovec *iov, int iovcnt, void *dst,
                              size_t dst_len, struct ufio_msg *reply);

/* The device model: shared by every session, knows none of them. */
struct ufio_dev {
    char name[64];
    struct ufio_dev_ops ops;
    void *opaque;
    struct ufio_dev_limits lim;
    struct pci_cfg cfg;
    struct ufio_region regions[UFIO_PCI_NUM_REGIONS];
    struct ufio_cfg_claim cfg_claims[UFIO_DEV_MAX_CFG_CLAIMS];
    unsigned ncfg_claims;
    struct ufio_irq_index irqs[UFIO_IRQ_NUM];
    struct ufio_msix msix;
    struct ufio_dma_table dma;
    bool built;             /* config committed at first attach */
    struct ufio_mig *mig;   /* NULL unless migration callbacks registered */
    char *compat_json;      /* compatibility descriptor (built from ids if unset) */

    /* the owner's side of DMA: requests to it and its transfer limit (0 = none) */
    dev_request_fn request;
    void *request_opaque;
    uint64_t peer_xfer;

    /* the sessions (server/session.c, server/dev.c) */
    struct ufio_sessions *ss;
    struct ufio_passthrough *pt; /* NULL unless pass-through hooks are set */
    uint64_t msgs_handled;  /* commands dispatched (ufio_dev_msg_count) */
};

/* region.c */
int region_access(struct ufio_dev *dev, unsigned index, uint64_t off, void *buf,
                  uint32_t len, bool is_write);
/* For reads entirely inside an mmap area: a pointer to the bytes, else NULL. */
const uint8_t *region_direct(struct ufio_dev *dev, unsigned index, uint64_t off, uint32_t len);
/* The same for writes (NULL if the region is read-only). */
uint8_t *region_direct_write(struct ufio_dev *dev, unsigned index, uint64_t off, uint32_t len);
void region_free_all(struct ufio_dev *dev);

/* irq.c */
int irq_init_index(struct ufio_dev *dev, unsigned index, uint32_t count, uint32_t info_flags);
int irq_set(struct ufio_dev *dev, const struct ufio_irq_set *s, struct ufio_msg *m);
void irq_drop_client_fds(struct ufio_dev *dev);
void irq_reset(struct ufio_dev *dev);
void irq_cfg_written(struct ufio_dev *dev, uint32_t off, uint32_t len);
bool msix_claims(struct ufio_dev *dev, unsigned bar, uint64_t off, uint64_t *extent);
int msix_access(struct ufio_dev *dev, unsigned bar, uint64_t off, void *buf, uint32_t len, bool is_write);
void irq_free_all(struct ufio_dev *dev);
/* fd is an eventfd (checked through /proc/self/fd) */
bool irq_is_eventfd(int fd);

/* dma_tree.c: O(log n) map, unmap, lookup */
/* The region holding iova, else the first one above it, else NULL. */
struct ufio_dma_region *dma_tree_lower_bound(const struct ufio_dma_table *t, uint64_t iova);
int dma_tree_insert(struct ufio_dma_table *t, const struct ufio_dma_region *r);
/* r must be in t; it is freed. */
void dma_tree_remove(struct ufio_dma_table *t, struct ufio_dma_region *r);
/* Calls fn on every region meeting [from, to), in iova order, until it returns false. */
void dma_tree_walk(const struct ufio_dma_table *t, uint64_t from, uint64_t to,
                   bool (*fn)(struct ufio_dma_region *r, void *opaque), void *opaque);
/* For tests: the tree's height (0 when empty). */
int dma_tree_height(const struct ufio_dma_table *t);
/* Calls fn on every region, then frees them all. */
void dma_tree_clear(struct ufio_dma_table *t, void (*fn)(struct ufio_dma_region *r, void *opaque), void *opaque);

/* dma.c */
int dma_map(struct ufio_dev *dev, const struct ufio_dma_map *m, int fd);
int dma_unmap(struct ufio_dev *dev, const struct ufio_dma_unmap *u);
/* What dma_unmap() would remove: the number of mappings (0 or more), or -ENOENT. */
int dma_unmap_find(struct ufio_dev *dev, const struct ufio_dma_unmap *u);
void dma_unmap_all(struct ufio_dev *dev);
struct ufio_dma_region *dma_find(struct ufio_dev *dev, uint64_t iova);
void dma_mark_dirty(struct ufio_dev *dev, struct ufio_dma_region *r, uint64_t iova, uint64_t len);
int dma_log_start(struct ufio_dev *dev, uint64_t pgsize);
/* DMA_LOGGING_STOP, or its session gone: bitmaps freed. */
void dma_log_stop(struct ufio_dev *dev);
int dma_log_report(struct ufio_dev *dev, uint64_t iova, uint64_t len, uint64_t pgsize, uint64_t *bitmap);

/* feature.c / migration.c */
int dev_feature(struct ufio_dev *dev, const struct ufio_feature *f, struct ufio_reply *rep);
int dev_mig_data_read(struct ufio_dev *dev, const struct ufio_mig_data *req, struct ufio_reply *rep);
int dev_mig_data_write(struct ufio_dev *dev, const struct ufio_mig_data *req);
/* After a MIG_DATA_READ reply was sent, nothing else waiting: frame the next read's worth now. */
void dev_mig_read_ahead(struct ufio_dev *dev);
void dev_mig_reset(struct ufio_dev *dev);
/*
 * The session that moved the device out of RUNNING went away: as the kernel
 * does when the device file closes, the device returns to RUNNING (through
 * the device's transitions where there is a path; an unfinished RESUMING
 * stream is dropped, not loaded) and the stream buffers are freed.
 */
void dev_mig_abandon(struct ufio_dev *dev);
void dev_mig_free(struct ufio_dev *dev);
/* Would this MIG_DEVICE_STATE SET take the device from a running state
 * (RUNNING, PRE_COPY, their P2P states) to a stopped one by a valid path? */
bool dev_mig_stops(struct ufio_dev *dev, const struct ufio_feature *f);
/* In-process walk to target (a takeover loads its stream this way). */
int dev_mig_set_state(struct ufio_dev *dev, unsigned target);

/* passthrough.c: each pt_* returns false / does nothing without its hook */
void pt_free(struct ufio_dev *dev);
uint64_t pt_region_fd_offset(const struct ufio_dev *dev, unsigned region);
bool pt_region_ext_fd(const struct ufio_dev *dev, unsigned region);
bool pt_config(struct ufio_dev *dev, uint64_t off, void *buf, uint32_t len, bool is_write, int *err);
bool pt_irq_set(struct ufio_dev *dev, const struct ufio_irq_set *s, struct ufio_msg *m, int *err);
void pt_irq_drop(struct ufio_dev *dev);
int pt_dma_map(struct ufio_dev *dev, const struct ufio_dma_region *r);
void pt_dma_unmap(struct ufio_dev *dev, const struct ufio_dma_region *r);
void pt_dirty_sync(struct ufio_dev *dev, uint64_t iova, uint64_t len, uint64_t pgsize);
int pt_dirty_log(struct ufio_dev *dev, bool start, uint64_t pgsize);
bool pt_resettable(const struct ufio_dev *dev);

#endif
