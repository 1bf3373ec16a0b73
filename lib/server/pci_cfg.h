/*
 * PCI configuration space emulation (type-0 header + capabilities).
 *
 * Pure data structure: no I/O, no knowledge of vfio-user. Holds the bytes,
 * per-byte write masks and write-1-to-clear masks, BAR sizing, and the
 * capability list builder. The device model calls pci_cfg_write() for
 * client writes and inspects the result (command register, MSI/MSI-X
 * control) itself.
 */
#ifndef UFIO_SERVER_PCI_CFG_H
#define UFIO_SERVER_PCI_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCI_CFG_SIZE 256u
#define PCIE_CFG_SIZE 4096u

/* standard header offsets */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_REVISION_ID 0x08
#define PCI_CLASS_PROG 0x09
#define PCI_CACHE_LINE_SIZE 0x0c
#define PCI_LATENCY_TIMER 0x0d
#define PCI_HEADER_TYPE 0x0e
#define PCI_BIST 0x0f
#define PCI_BASE_ADDRESS_0 0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID 0x2e
#define PCI_ROM_ADDRESS 0x30
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d

#define PCI_COMMAND_IO 0x1
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4
#define PCI_COMMAND_SERR 0x100
#define PCI_COMMAND_INTX_DISABLE 0x400
#define PCI_STATUS_INTERRUPT 0x8
#define PCI_STATUS_CAP_LIST 0x10

#define PCI_CAP_ID_PM 0x01
#define PCI_CAP_ID_MSI 0x05
#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_EXP 0x10
#define PCI_CAP_ID_MSIX 0x11
#define PCI_EXT_CAP_ID_DSN 0x03

/* MSI capability layout (relative to the cap offset) */
#define PCI_MSI_FLAGS 2
#define PCI_MSI_FLAGS_ENABLE 0x1
#define PCI_MSI_FLAGS_QMASK 0xe   /* multiple message capable */
#define PCI_MSI_FLAGS_QSIZE 0x70  /* multiple message enable */
#define PCI_MSI_FLAGS_64BIT 0x80
#define PCI_MSI_FLAGS_MASKBIT 0x100
/* MSI-X capability layout */
#define PCI_MSIX_FLAGS 2
#define PCI_MSIX_FLAGS_QSIZE 0x7ff
#define PCI_MSIX_FLAGS_MASKALL 0x4000
#define PCI_MSIX_FLAGS_ENABLE 0x8000
#define PCI_MSIX_TABLE 4
#define PCI_MSIX_PBA 8

#define PCI_NUM_BARS 6
#define PCI_ROM_SLOT 6

/* BAR kinds (same values as UFIO_BAR_* in server.h) */
#define PCI_CFG_BAR_MEM32 0x0u
#define PCI_CFG_BAR_IO 0x1u
#define PCI_CFG_BAR_MEM64 0x2u
#define PCI_CFG_BAR_PREFETCH 0x4u

struct pci_cfg {
    uint32_t size;                  /* 256 or 4096 */
    uint8_t space[PCIE_CFG_SIZE];
    uint8_t init[PCIE_CFG_SIZE];    /* state restored by pci_cfg_reset() */
    uint8_t wmask[PCIE_CFG_SIZE];   /* bit = 1: the client may write it */
    uint8_t w1cmask[PCIE_CFG_SIZE]; /* bit = 1: writing 1 clears it */
    uint64_t bar_size[7];           /* 0..5 BARs, 6 ROM; 0 = absent */
    unsigned bar_flags[7];
    uint8_t last_cap;               /* offset of the last standard cap, 0 = none */
    uint8_t cap_end;                /* first free byte for the next standard cap */
    uint16_t last_ext_cap;          /* offset of last extended cap, 0 = none */
    uint16_t ext_end;               /* first free byte for the next extended cap */
    uint8_t msi_off, msix_off, pcie_off, pm_off; /* 0 = absent */
};

/* Type-0 header with ids, class, revision; command/status masks set. */
void pci_cfg_init(struct pci_cfg *c, uint16_t vendor, uint16_t device,
                  uint16_t subsys_vendor, uint16_t subsys, uint32_t class_code,
                  uint8_t revision);
/* 256 or 4096 (4096 is required before extended caps). -EINVAL otherwise
 * or when shrinking below what is in use. */
int pci_cfg_set_size(struct pci_cfg *c, uint32_t size);
void pci_cfg_set_intx_pin(struct pci_cfg *c, uint8_t pin);

/*
 * Declares BAR n (0..5) or the ROM (n = 6). Size a power of two (memory >= 16,
 * I/O >= 4, ROM >= 2048); a 64-bit BAR uses n and n+1 (n < 5, n+1 unused).
 * The BAR register's writable bits become ~(size-1) so sizing writes read back
 * the size; the type bits are read-only. -EINVAL / -EEXIST.
 */
int pci_cfg_set_bar(struct pci_cfg *c, unsigned n, uint64_t size, unsigned flags);
/* Undoes pci_cfg_set_bar() of a 32-bit BAR 0..5 (a builder that failed half-way). */
void pci_cfg_clear_bar32(struct pci_cfg *c, unsigned n);

/*
 * Appends a standard capability: id, then body (len bytes after the id/next
 * pair), wmask for the body (NULL = read-only). Links it into the list,
 * sets Status.CAP_LIST, 4-byte aligned. Returns the offset or -ENOSPC.
 */
int pci_cfg_add_cap(struct pci_cfg *c, uint8_t id, const void *body, const void *wmask, size_t len);
/* Builders over pci_cfg_add_cap with correct masks: */
int pci_cfg_add_pm(struct pci_cfg *c);
int pci_cfg_add_msi(struct pci_cfg *c, unsigned nvec, bool is64, bool maskable);
int pci_cfg_add_msix(struct pci_cfg *c, unsigned nvec, unsigned table_bar, uint32_t table_off,
                     unsigned pba_bar, uint32_t pba_off);
int pci_cfg_add_pcie(struct pci_cfg *c, uint8_t port_type); /* also sets size 4096 */
int pci_cfg_add_vendor(struct pci_cfg *c, const void *data, size_t len);
/* Extended capabilities start at 0x100. Returns offset or -errno. */
int pci_cfg_add_ext_cap(struct pci_cfg *c, uint16_t id, uint8_t version, const void *body,
                        const void *wmask, size_t len);
int pci_cfg_add_dsn(struct pci_cfg *c, uint64_t serial);

/* Finds a capability; returns offset or 0. Walks with loop protection. */
unsigned pci_cfg_find_cap(const struct pci_cfg *c, uint8_t id);
unsigned pci_cfg_find_ext_cap(const struct pci_cfg *c, uint16_t id);

/* Client access: offset/len bounds-checked against size (-EINVAL). Any
 * length 1..size is allowed (not only 1/2/4): it is byte-wise. */
int pci_cfg_read(const struct pci_cfg *c, uint32_t off, void *buf, uint32_t len);
int pci_cfg_write(struct pci_cfg *c, uint32_t off, const void *buf, uint32_t len);

/* Snapshot current bytes as the reset state (called once the device is built). */
void pci_cfg_commit(struct pci_cfg *c);
/* Back to the committed state (FLR / DEVICE_RESET semantics). */
void pci_cfg_reset(struct pci_cfg *c);

/* helpers */
static inline uint16_t pci_cfg_get16(const struct pci_cfg *c, unsigned off)
{ return (uint16_t)(c->space[off] | (c->space[off + 1] << 8)); }
static inline uint32_t pci_cfg_get32(const struct pci_cfg *c, unsigned off)
{ return (uint32_t)c->space[off] | ((uint32_t)c->space[off + 1] << 8) |
         ((uint32_t)c->space[off + 2] << 16) | ((uint32_t)c->space[off + 3] << 24); }

#endif
