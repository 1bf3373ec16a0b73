/* Config space emulation: masks, RW1C, BAR sizing, capability layouts. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "server/pci_cfg.h"

static struct pci_cfg C;

static uint32_t rd32(unsigned off) { uint32_t v = 0; assert_int_equal(pci_cfg_read(&C, off, &v, 4), 0); return v; }
static uint16_t rd16(unsigned off) { uint16_t v = 0; assert_int_equal(pci_cfg_read(&C, off, &v, 2), 0); return v; }
static void wr32(unsigned off, uint32_t v) { assert_int_equal(pci_cfg_write(&C, off, &v, 4), 0); }
static void wr16(unsigned off, uint16_t v) { assert_int_equal(pci_cfg_write(&C, off, &v, 2), 0); }

static int setup(void **st)
{
    pci_cfg_init(&C, 0x5546, 0x0001, 0x1234, 0x5678, 0xff0102, 7);
    return 0;
}

static void test_header(void **st)
{
    assert_int_equal(rd32(0), 0x00015546);
    assert_int_equal(rd32(8), 0xff010207);
    assert_int_equal(rd32(0x2c), 0x56781234);
    assert_int_equal(C.space[PCI_HEADER_TYPE], 0);
    assert_int_equal(C.space[PCI_INTERRUPT_PIN], 1);
    /* ids are read-only */
    wr32(0, 0xffffffff);
    assert_int_equal(rd32(0), 0x00015546);
}

static void test_command_and_status(void **st)
{
    wr16(PCI_COMMAND, 0xffff);
    assert_int_equal(rd16(PCI_COMMAND), 0x0547);
    /* the device sets error bits; the client clears them by writing 1 */
    C.space[PCI_STATUS + 1] = 0xf9;
    wr16(PCI_STATUS, 0x0000);
    assert_int_equal(rd16(PCI_STATUS) & 0xf900, 0xf900);
    wr16(PCI_STATUS, 0x0100);
    assert_int_equal(rd16(PCI_STATUS) & 0xf900, 0xf800);
    wr16(PCI_STATUS, 0xffff);
    assert_int_equal(rd16(PCI_STATUS) & 0xf900, 0);
    wr32(PCI_INTERRUPT_LINE, 0xffffffff);
    assert_int_equal(C.space[PCI_INTERRUPT_LINE], 0xff);
    assert_int_equal(C.space[PCI_INTERRUPT_PIN], 1);
}

static void test_bar_sizing(void **st)
{
    assert_int_equal(pci_cfg_set_bar(&C, 0, 4096, PCI_CFG_BAR_MEM32), 0);
    assert_int_equal(pci_cfg_set_bar(&C, 1, 256, PCI_CFG_BAR_IO), 0);
    assert_int_equal(pci_cfg_set_bar(&C, 2, 1ull << 32, PCI_CFG_BAR_MEM64 | PCI_CFG_BAR_PREFETCH), 0);
    assert_int_equal(pci_cfg_set_bar(&C, 3, 4096, 0), -EEXIST); /* upper half of BAR2 */
    assert_int_equal(pci_cfg_set_bar(&C, 4, 0x3000, 0), -EINVAL);
    assert_int_equal(pci_cfg_set_bar(&C, 6, 8192, 0), 0);
    for (unsigned i = 0; i < 6; i++)
        wr32(0x10 + 4 * i, 0xffffffff);
    wr32(0x30, 0xffffffff);
    assert_int_equal(rd32(0x10), 0xfffff000);
    assert_int_equal(rd32(0x14), 0xffffff01);
    assert_int_equal(rd32(0x18), 0x0000000c);
    assert_int_equal(rd32(0x1c), 0xffffffff);
    assert_int_equal(rd32(0x20), 0); /* absent */
    assert_int_equal(rd32(0x30), 0xffffe001);
    wr32(0x10, 0xfebc1234);
    assert_int_equal(rd32(0x10), 0xfebc1000);
}

static void test_caps(void **st)
{
    assert_int_equal(pci_cfg_add_pm(&C), 0x40);
    int msi = pci_cfg_add_msi(&C, 4, true, true);
    assert_int_equal(msi, 0x48);
    assert_int_equal(pci_cfg_add_msi(&C, 4, true, true), -EEXIST);
    assert_int_equal(pci_cfg_set_bar(&C, 4, 4096, 0), 0);
    int msix = pci_cfg_add_msix(&C, 4, 4, 0, 4, 0x800);
    assert_true(msix > msi);
    assert_int_equal(msix % 4, 0);
    int exp = pci_cfg_add_pcie(&C, 0);
    assert_true(exp > msix);
    assert_int_equal(C.size, 4096);
    int v = pci_cfg_add_vendor(&C, "ufio", 4);
    /* the list: 0x34 -> PM -> MSI -> MSI-X -> PCIe -> vendor -> end */
    assert_true(rd16(PCI_STATUS) & PCI_STATUS_CAP_LIST);
    static const uint8_t ids[] = { 1, 5, 0x11, 0x10, 9 };
    unsigned off = C.space[PCI_CAPABILITY_LIST];
    for (unsigned i = 0; i < 5; i++) {
        assert_int_equal(C.space[off], ids[i]);
        off = C.space[off + 1];
    }
    assert_int_equal(off, 0);
    assert_int_equal(pci_cfg_find_cap(&C, 0x11), (unsigned)msix);
    assert_int_equal(C.space[v + 2], 7);
    assert_memory_equal(C.space + v + 3, "ufio", 4);
    /* MSI: 64-bit, maskable, 4 vectors capable; only enable + MME writable */
    assert_int_equal(rd16(msi + 2), 0x0184);
    wr16(msi + 2, 0xffff);
    assert_int_equal(rd16(msi + 2), 0x01f5);
    wr32(msi + 4, 0xffffffff);
    assert_int_equal(rd32(msi + 4), 0xfffffffc);
    wr32(msi + 16, 0xffffffff);
    assert_int_equal(rd32(msi + 16), 0xf);
    wr32(msi + 20, 0xffffffff);
    assert_int_equal(rd32(msi + 20), 0); /* pending is read-only */
    /* MSI-X: table size read-only, enable and function mask writable */
    assert_int_equal(rd16(msix + 2), 3);
    wr16(msix + 2, 0xffff);
    assert_int_equal(rd16(msix + 2), 0xc003);
    assert_int_equal(rd32(msix + 4), 4);
    assert_int_equal(rd32(msix + 8), 0x804);
    /* PCIe: v2 endpoint */
    assert_int_equal(rd16(exp + 2), 0x0002);
    /* DSN at 0x100 */
    assert_int_equal(pci_cfg_add_dsn(&C, 0x0123456789abcdefull), 0x100);
    assert_int_equal(rd32(0x100), 0x00010003);
    assert_int_equal(rd32(0x104), 0x89abcdef);
    assert_int_equal(rd32(0x108), 0x01234567);
    assert_int_equal(pci_cfg_find_ext_cap(&C, 3), 0x100);
    int e2 = pci_cfg_add_ext_cap(&C, 0x0b, 1, "abcd", NULL, 4);
    assert_int_equal(e2, 0x10c);
    assert_int_equal(rd32(0x100) >> 20, 0x10c);
    assert_int_equal(pci_cfg_find_ext_cap(&C, 0x0b), 0x10c);
}

static void test_bad_args(void **st)
{
    uint32_t v;
    assert_int_equal(pci_cfg_read(&C, 256, &v, 4), -EINVAL);
    assert_int_equal(pci_cfg_read(&C, 254, &v, 4), -EINVAL);
    assert_int_equal(pci_cfg_read(&C, 0xfffffffe, &v, 4), -EINVAL);
    assert_int_equal(pci_cfg_write(&C, 0, &v, 0), -EINVAL);
    assert_int_equal(pci_cfg_add_dsn(&C, 1), -EINVAL); /* 256-byte space */
    assert_int_equal(pci_cfg_add_msi(&C, 3, false, false), -EINVAL);
    assert_int_equal(pci_cfg_add_msix(&C, 0, 0, 0, 0, 0), -EINVAL);
    assert_int_equal(pci_cfg_add_msix(&C, 4, 6, 0, 0, 0), -EINVAL);
    assert_int_equal(pci_cfg_set_size(&C, 512), -EINVAL);
    /* fill the standard space until it runs out */
    uint8_t body[60] = { 0 };
    int n = 0;
    while (pci_cfg_add_cap(&C, 0x09, body, NULL, sizeof(body)) > 0)
        n++;
    assert_int_equal(n, 3);
    assert_int_equal(pci_cfg_add_cap(&C, 0x09, body, NULL, sizeof(body)), -ENOSPC);
}

static void test_reset(void **st)
{
    assert_int_equal(pci_cfg_set_bar(&C, 0, 4096, 0), 0);
    pci_cfg_commit(&C);
    wr16(PCI_COMMAND, 0x0006);
    wr32(0x10, 0xfe000000);
    pci_cfg_reset(&C);
    assert_int_equal(rd16(PCI_COMMAND), 0);
    assert_int_equal(rd32(0x10), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_header, setup),
        cmocka_unit_test_setup(test_command_and_status, setup),
        cmocka_unit_test_setup(test_bar_sizing, setup),
        cmocka_unit_test_setup(test_caps, setup),
        cmocka_unit_test_setup(test_bad_args, setup),
        cmocka_unit_test_setup(test_reset, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
