/*
 * PCI configuration space: bytes, write masks, RW1C masks, BAR sizing and
 * the capability list builders.
 */
#include "server/pci_cfg.h"

#include <errno.h>
#include <string.h>

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }

static bool is_pow2(uint64_t v) { return v && !(v & (v - 1)); }

void pci_cfg_init(struct pci_cfg *c, uint16_t vendor, uint16_t device,
                  uint16_t subsys_vendor, uint16_t subsys, uint32_t class_code,
                  uint8_t revision)
{
    memset(c, 0, sizeof(*c));
    c->size = PCI_CFG_SIZE;
    put16(c->space + PCI_VENDOR_ID, vendor);
    put16(c->space + PCI_DEVICE_ID, device);
    c->space[PCI_REVISION_ID] = revision;
    c->space[PCI_CLASS_PROG] = (uint8_t)class_code;
    c->space[PCI_CLASS_PROG + 1] = (uint8_t)(class_code >> 8);
    c->space[PCI_CLASS_PROG + 2] = (uint8_t)(class_code >> 16);
    put16(c->space + PCI_SUBSYSTEM_VENDOR_ID, subsys_vendor);
    put16(c->space + PCI_SUBSYSTEM_ID, subsys);
    c->space[PCI_HEADER_TYPE] = 0;
    /* command: I/O, memory, bus master, parity, SERR, INTx disable */
    put16(c->wmask + PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | 0x40 |
                                      PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
    /* status error bits are write-1-to-clear */
    put16(c->w1cmask + PCI_STATUS, 0xf900);
    c->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
    c->wmask[PCI_LATENCY_TIMER] = 0xff;
    c->wmask[PCI_INTERRUPT_LINE] = 0xff;
    c->space[PCI_INTERRUPT_PIN] = 1;
    c->cap_end = 0x40;
    c->ext_end = 0x100;
}

int pci_cfg_set_size(struct pci_cfg *c, uint32_t size)
{
    if (size != PCI_CFG_SIZE && size != PCIE_CFG_SIZE)
        return -EINVAL;
    if (size < c->size && c->last_ext_cap)
        return -EINVAL;
    c->size = size;
    return 0;
}

void pci_cfg_set_intx_pin(struct pci_cfg *c, uint8_t pin)
{
    c->space[PCI_INTERRUPT_PIN] = pin;
    c->wmask[PCI_INTERRUPT_LINE] = pin ? 0xff : 0;
}

int pci_cfg_set_bar(struct pci_cfg *c, unsigned n, uint64_t size, unsigned flags)
{
    if (n > PCI_ROM_SLOT || !is_pow2(size))
        return -EINVAL;
    if (c->bar_size[n] || c->bar_flags[n] == 0xffffffffu)
        return -EEXIST;
    if (n == PCI_ROM_SLOT) {
        if (size < 2048 || size > (1u << 31))
            return -EINVAL;
        put32(c->wmask + PCI_ROM_ADDRESS, (uint32_t)~(size - 1) | 1u);
        c->wmask[PCI_ROM_ADDRESS] &= 0x01; /* bits 10:1 reserved */
        c->wmask[PCI_ROM_ADDRESS + 1] &= 0xf8;
        c->bar_size[n] = size;
        c->bar_flags[n] = 0;
        return 0;
    }
    unsigned off = PCI_BASE_ADDRESS_0 + 4 * n;
    uint32_t type;
    if (flags & PCI_CFG_BAR_IO) {
        if (size < 4 || size > 256 || (flags & ~PCI_CFG_BAR_IO))
            return -EINVAL;
        type = 1;
        put32(c->wmask + off, (uint32_t)~(size - 1) & ~3u);
    } else {
        if (size < 16)
            return -EINVAL;
        bool is64 = flags & PCI_CFG_BAR_MEM64;
        if (is64 && (n >= 5 || c->bar_size[n + 1]))
            return -EINVAL;
        if (!is64 && size > (1ull << 31))
            return -EINVAL;
        type = (is64 ? 0x4u : 0) | ((flags & PCI_CFG_BAR_PREFETCH) ? 0x8u : 0);
        put32(c->wmask + off, (uint32_t)~(size - 1) & ~0xfu);
        if (is64) {
            put32(c->wmask + off + 4, (uint32_t)~((size - 1) >> 32));
            c->bar_flags[n + 1] = 0xffffffffu; /* slot taken by the upper half */
        }
    }
    put32(c->space + off, type);
    c->bar_size[n] = size;
    c->bar_flags[n] = flags;
    return 0;
}

void pci_cfg_clear_bar32(struct pci_cfg *c, unsigned n)
{
    unsigned off = PCI_BASE_ADDRESS_0 + 4 * n;
    put32(c->space + off, 0);
    put32(c->wmask + off, 0);
    c->bar_size[n] = 0;
    c->bar_flags[n] = 0;
}

int pci_cfg_add_cap(struct pci_cfg *c, uint8_t id, const void *body, const void *wmask, size_t len)
{
    unsigned off = (c->cap_end + 3u) & ~3u;
    if (off + 2 + len > PCI_CFG_SIZE || len > 254)
        return -ENOSPC;
    c->space[off] = id;
    c->space[off + 1] = 0;
    if (len)
        memcpy(c->space + off + 2, body, len);
    if (wmask)
        memcpy(c->wmask + off + 2, wmask, len);
    if (c->last_cap)
        c->space[c->last_cap + 1] = (uint8_t)off;
    else
        c->space[PCI_CAPABILITY_LIST] = (uint8_t)off;
    c->space[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
    c->last_cap = (uint8_t)off;
    /* 0xff marks "full": the next add rounds up to 0x100 and fails */
    c->cap_end = (uint8_t)(off + 2 + len >= PCI_CFG_SIZE ? 0xff : off + 2 + len);
    return (int)off;
}

int pci_cfg_add_pm(struct pci_cfg *c)
{
    uint8_t body[6] = { 0 }, wm[6] = { 0 };
    put16(body, 0x0003);        /* PMC: version 3 */
    put16(body + 2, 0x0008);    /* PMCSR: no soft reset */
    wm[2] = 0x03;               /* power state */
    int off = pci_cfg_add_cap(c, PCI_CAP_ID_PM, body, wm, sizeof(body));
    if (off >= 0) {
        c->w1cmask[off + 5] = 0x80; /* PME_Status */
        c->pm_off = (uint8_t)off;
    }
    return off;
}

int pci_cfg_add_msi(struct pci_cfg *c, unsigned nvec, bool is64, bool maskable)
{
    unsigned log2 = 0;
    while ((1u << log2) < nvec)
        log2++;
    if (nvec == 0 || nvec > 32 || (1u << log2) != nvec)
        return -EINVAL;
    if (c->msi_off)
        return -EEXIST;
    uint8_t body[22] = { 0 }, wm[22] = { 0 };
    uint16_t ctl = (uint16_t)(log2 << 1) | (is64 ? PCI_MSI_FLAGS_64BIT : 0) |
                   (maskable ? PCI_MSI_FLAGS_MASKBIT : 0);
    put16(body, ctl);
    put16(wm, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
    /* offsets below are relative to the cap start; body starts at +2 */
    put32(wm + 2, 0xfffffffcu);              /* address low */
    unsigned data = 8;
    if (is64) {
        put32(wm + 6, 0xffffffffu);          /* address high */
        data = 12;
    }
    put16(wm + data - 2, 0xffff);            /* message data */
    size_t len = data + 2 - 2;               /* through message data */
    if (maskable) {
        unsigned mask = data + 4;            /* data is 16 bits, padded to 32 */
        put32(wm + mask - 2, nvec == 32 ? 0xffffffffu : (1u << nvec) - 1);
        len = mask + 8 - 2;                  /* mask + pending */
    }
    int off = pci_cfg_add_cap(c, PCI_CAP_ID_MSI, body, wm, len);
    if (off >= 0)
        c->msi_off = (uint8_t)off;
    return off;
}

int pci_cfg_add_msix(struct pci_cfg *c, unsigned nvec, unsigned table_bar, uint32_t table_off,
                     unsigned pba_bar, uint32_t pba_off)
{
    if (nvec == 0 || nvec > 2048 || table_bar >= PCI_NUM_BARS || pba_bar >= PCI_NUM_BARS ||
        (table_off & 7) || (pba_off & 7))
        return -EINVAL;
    if (c->msix_off)
        return -EEXIST;
    uint64_t tlen = (uint64_t)nvec * 16, plen = ((nvec + 63) / 64) * 8;
    if (c->bar_size[table_bar] && (uint64_t)table_off + tlen > c->bar_size[table_bar])
        return -EINVAL;
    if (c->bar_size[pba_bar] && (uint64_t)pba_off + plen > c->bar_size[pba_bar])
        return -EINVAL;
    if (table_bar == pba_bar && table_off < pba_off + plen && pba_off < table_off + tlen)
        return -EINVAL;
    uint8_t body[10] = { 0 }, wm[10] = { 0 };
    put16(body, (uint16_t)(nvec - 1));
    put32(body + 2, table_off | table_bar);
    put32(body + 6, pba_off | pba_bar);
    put16(wm, PCI_MSIX_FLAGS_MASKALL | PCI_MSIX_FLAGS_ENABLE);
    int off = pci_cfg_add_cap(c, PCI_CAP_ID_MSIX, body, wm, sizeof(body));
    if (off >= 0)
        c->msix_off = (uint8_t)off;
    return off;
}

int pci_cfg_add_pcie(struct pci_cfg *c, uint8_t port_type)
{
    if (c->pcie_off)
        return -EEXIST;
    uint8_t body[58] = { 0 }, wm[58] = { 0 };
    /* offsets in the PCIe capability minus the 2-byte id/next header */
    put16(body + 0, (uint16_t)(0x0002 | (port_type & 0xf) << 4));   /* +2 PCIe caps, v2 */
    put32(body + 2, 0x00008000);            /* +4 device caps: RBER, max payload 128 */
    put16(wm + 6, 0x7cff);                  /* +8 device control: report enables, RO, MPS, ext tag, no-snoop, MRRS */
    put16(body + 6, 0x2810);                /* MRRS 512, relaxed ordering, no-snoop */
    put32(body + 10, 0x00000011);           /* +12 link caps: x1, 2.5 GT/s */
    put16(body + 16, 0x0011);               /* +18 link status: x1, 2.5 GT/s */
    put32(body + 34, 0x00000000);           /* +36 device caps 2 */
    put16(wm + 38, 0x040f);                 /* +40 device control 2: completion timeout, LTR */
    put32(body + 42, 0x00000002);           /* +44 link caps 2: 2.5 GT/s supported */
    put16(body + 46, 0x0001);               /* +48 link control 2: target 2.5 GT/s */
    int err = pci_cfg_set_size(c, PCIE_CFG_SIZE);
    if (err)
        return err;
    int off = pci_cfg_add_cap(c, PCI_CAP_ID_EXP, body, wm, sizeof(body));
    if (off >= 0) {
        c->w1cmask[off + 10] = 0x0f;        /* device status error bits */
        c->pcie_off = (uint8_t)off;
    }
    return off;
}

int pci_cfg_add_vendor(struct pci_cfg *c, const void *data, size_t len)
{
    uint8_t body[254];
    if (len > 252)
        return -EINVAL;
    body[0] = (uint8_t)(3 + len);
    if (len)
        memcpy(body + 1, data, len);
    return pci_cfg_add_cap(c, PCI_CAP_ID_VNDR, body, NULL, len + 1);
}

int pci_cfg_add_ext_cap(struct pci_cfg *c, uint16_t id, uint8_t version, const void *body,
                        const void *wmask, size_t len)
{
    if (c->size != PCIE_CFG_SIZE || version > 0xf)
        return -EINVAL;
    unsigned off = (c->ext_end + 3u) & ~3u;
    if (off + 4 + len > PCIE_CFG_SIZE)
        return -ENOSPC;
    put32(c->space + off, (uint32_t)id | (uint32_t)version << 16);
    if (len)
        memcpy(c->space + off + 4, body, len);
    if (wmask)
        memcpy(c->wmask + off + 4, wmask, len);
    if (c->last_ext_cap) {
        uint32_t h = pci_cfg_get32(c, c->last_ext_cap);
        put32(c->space + c->last_ext_cap, (h & 0xfffffu) | (uint32_t)off << 20);
    }
    c->last_ext_cap = (uint16_t)off;
    c->ext_end = (uint16_t)(off + 4 + len);
    return (int)off;
}

int pci_cfg_add_dsn(struct pci_cfg *c, uint64_t serial)
{
    uint8_t body[8];
    put32(body, (uint32_t)serial);
    put32(body + 4, (uint32_t)(serial >> 32));
    return pci_cfg_add_ext_cap(c, PCI_EXT_CAP_ID_DSN, 1, body, NULL, sizeof(body));
}

unsigned pci_cfg_find_cap(const struct pci_cfg *c, uint8_t id)
{
    if (!(c->space[PCI_STATUS] & PCI_STATUS_CAP_LIST))
        return 0;
    unsigned off = c->space[PCI_CAPABILITY_LIST] & ~3u;
    for (int hops = 0; off >= 0x40 && hops < 48; hops++) {
        if (c->space[off] == id)
            return off;
        off = c->space[off + 1] & ~3u;
    }
    return 0;
}

unsigned pci_cfg_find_ext_cap(const struct pci_cfg *c, uint16_t id)
{
    if (c->size != PCIE_CFG_SIZE)
        return 0;
    unsigned off = 0x100;
    for (int hops = 0; off >= 0x100 && off < PCIE_CFG_SIZE && hops < 960; hops++) {
        uint32_t h = pci_cfg_get32(c, off);
        if (!h)
            return 0;
        if ((h & 0xffff) == id)
            return off;
        off = (h >> 20) & ~3u;
    }
    return 0;
}

int pci_cfg_read(const struct pci_cfg *c, uint32_t off, void *buf, uint32_t len)
{
    if (len == 0 || off > c->size || len > c->size - off)
        return -EINVAL;
    memcpy(buf, c->space + off, len);
    return 0;
}

int pci_cfg_write(struct pci_cfg *c, uint32_t off, const void *buf, uint32_t len)
{
    if (len == 0 || off > c->size || len > c->size - off)
        return -EINVAL;
    const uint8_t *v = buf;
    for (uint32_t i = 0; i < len; i++) {
        uint32_t o = off + i;
        uint8_t w = c->wmask[o], w1c = c->w1cmask[o];
        c->space[o] = (uint8_t)((c->space[o] & ~w) | (v[i] & w));
        c->space[o] &= (uint8_t)~(v[i] & w1c);
    }
    return 0;
}

void pci_cfg_commit(struct pci_cfg *c)
{
    memcpy(c->init, c->space, sizeof(c->space));
}

void pci_cfg_reset(struct pci_cfg *c)
{
    memcpy(c->space, c->init, sizeof(c->space));
}
