/*
 * Internal state of a server-side device. Split by concern across
 * dev.c (lifecycle, connection, run loop), dispatch.c (per-command
 * handlers), region.c (region access routing), irq.c (IRQs and MSI-X
 * emulation), dma.c (the client's DMA mappings) and feature.c (DEVICE_FEATURE
 * and migration hooks).
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
};

struct ufio_dma_table {
    struct ufio_dma_region *r;  /* sorted by iova, non-overlapping */
    size_t n, cap;
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

    /* connection */
    int listen_fd;
    int reserve_fd;         /* spent to refuse a client when out of fds */
    char *sock_path;
    bool fd_mode;           /* attached with --fd: no re-accept */
    int epfd;
    int stop_efd;
    bool stopping;
    volatile sig_atomic_t stop_req; /* set by ufio_dev_stop() beside its eventfd */
    bool in_run;            /* inside ufio_dev_run(): waits may block */
    struct ufio_conn conn;
    bool connected;
    bool negotiated;
    struct ufio_caps peer;  /* client's capabilities */
    bool write_multiple;    /* negotiated */
    struct ufio_conn twin;
    bool has_twin;
    uint16_t next_msg_id;
    struct ufio_msg queued[UFIO_DEV_MAX_QUEUED]; /* commands that arrived while
                                                    we waited for a DMA reply */
    size_t nqueued;
    bool drop_conn;         /* the connection must be closed after this step */
    bool awaiting_reply;    /* inside dev_send_request: commands are queued */
    struct {                /* the reply dev_send_request may receive in place */
        uint16_t msg_id, cmd;
        uint8_t head[16];
        void *dst;          /* NULL: nothing expected */
        size_t len;
    } expect;
    struct ufio_conn_sink sink; /* big REGION_WRITEs straight into shared memory */
    unsigned poll_us;       /* busy-poll budget after activity (0 = always sleep) */

    struct ufio_mig *mig;   /* NULL unless migration callbacks registered */
    char *compat_json;      /* compatibility descriptor (built from ids if unset) */
};

/* dev.c */
void dev_client_gone(struct ufio_dev *dev, const char *why);
/* dst: where the data of a reply that echoes iov[0] (a 16-byte head) plus
 * dst_len bytes may be received directly (reply.sunk then says so); NULL: none. */
int dev_send_request(struct ufio_dev *dev, uint16_t cmd, const struct iovec *iov, int iovcnt,
                     void *dst, size_t dst_len, struct ufio_msg *reply);

/* dispatch.c */
void dev_handle_msg(struct ufio_dev *dev, struct ufio_msg *m);
/* The conn sink's place(): where a big REGION_WRITE's data may go directly. */
void *dev_sink_place(void *opaque, const struct ufio_msg *m, const uint8_t *prefix, size_t body_len, size_t *keep);

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

/* dma.c */
int dma_map(struct ufio_dev *dev, const struct ufio_dma_map *m, int fd);
int dma_unmap(struct ufio_dev *dev, const struct ufio_dma_unmap *u);
void dma_unmap_all(struct ufio_dev *dev);
struct ufio_dma_region *dma_find(struct ufio_dev *dev, uint64_t iova);
void dma_mark_dirty(struct ufio_dev *dev, struct ufio_dma_region *r, uint64_t iova, uint64_t len);
int dma_log_start(struct ufio_dev *dev, uint64_t pgsize);
void dma_log_stop(struct ufio_dev *dev);
int dma_log_report(struct ufio_dev *dev, uint64_t iova, uint64_t len, uint64_t pgsize, uint64_t *bitmap);

/* feature.c / migration.c */
int dev_feature(struct ufio_dev *dev, const struct ufio_feature *f, struct ufio_reply *rep);
int dev_mig_data_read(struct ufio_dev *dev, const struct ufio_mig_data *req, struct ufio_reply *rep);
int dev_mig_data_write(struct ufio_dev *dev, const struct ufio_mig_data *req);
void dev_mig_reset(struct ufio_dev *dev);
/* The migration controller went away mid-migration: a saving device walks back to
 * RUNNING (its transitions called), a resuming one drops the stream and goes to
 * ERROR (load() saw part of it; a reset makes it usable). 0, or -EIO when the walk
 * failed (the state is forced to RUNNING). */
int dev_mig_abort(struct ufio_dev *dev);
void dev_mig_free(struct ufio_dev *dev);

#endif
