/*
 * The pass-through hooks (include/ufio/passthrough.h) without hardware: a
 * device in a thread of this process whose "hardware" is a memfd, our client
 * on the other end of a socketpair. mmap areas on the device's own fd at an
 * offset, config space and an IRQ index forwarded, DMA map/unmap hooks that
 * see the server's mapping and may refuse, the message counter.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/vfio.h>

#include <ufio/client.h>
#include <ufio/passthrough.h>
#include <ufio/server.h>

#define PG 4096u

static int hw = -1;            /* the device's fd: 3 pages, BAR0 is pages 1-2 */
static unsigned bar_calls, cfg_calls;
static uint8_t cfg[256];

static int bar_fn(struct ufio_dev *dev, void *opaque, unsigned region, uint64_t off, void *buf, uint32_t len,
                  bool is_write)
{
    bar_calls++;
    ssize_t n = is_write ? pwrite(hw, buf, len, (off_t)(PG + off)) : pread(hw, buf, len, (off_t)(PG + off));
    return n == (ssize_t)len ? 0 : -EIO;
}

static int cfg_fn(struct ufio_dev *dev, void *opaque, unsigned region, uint64_t off, void *buf, uint32_t len,
                  bool is_write)
{
    assert_int_equal(region, UFIO_PCI_CONFIG_REGION);
    cfg_calls++;
    if (off == 0x40)
        return -EACCES; /* what "the hardware" refuses */
    if (is_write)
        memcpy(cfg + off, buf, len);
    else
        memcpy(buf, cfg + off, len);
    return 0;
}

static struct {
    unsigned calls, index;
    uint32_t flags, start, count;
    size_t nfds;
} irq;

static int irq_fn(struct ufio_dev *dev, void *opaque, unsigned index, uint32_t flags, uint32_t start, uint32_t count,
                  const int *fds, size_t nfds, const uint8_t *bools)
{
    irq.calls++;
    irq.index = index;
    irq.flags = flags;
    irq.start = start;
    irq.count = count;
    irq.nfds = nfds;
    /* "the hardware" fires every vector it was given once */
    for (size_t i = 0; i < nfds; i++) {
        uint64_t one = 1;
        if (fds[i] >= 0)
            assert_int_equal(write(fds[i], &one, 8), 8);
    }
    return 0;
}

static struct {
    unsigned maps, unmaps;
    uint64_t refuse_iova;
    struct ufio_dma_mapping last, last_unmap;
} dma;

static int map_fn(struct ufio_dev *dev, void *opaque, const struct ufio_dma_mapping *m)
{
    if (m->iova == dma.refuse_iova)
        return -EPERM;
    dma.maps++;
    dma.last = *m;
    return 0;
}

static void unmap_fn(struct ufio_dev *dev, void *opaque, const struct ufio_dma_mapping *m)
{
    dma.unmaps++;
    dma.last_unmap = *m;
}

static struct ufio_dev *dev;
static struct ufio_client *c;
static pthread_t th;

static void *serve(void *arg)
{
    ufio_dev_run(arg);
    return NULL;
}

static int setup(void **st)
{
    hw = memfd_create("hw", MFD_CLOEXEC);
    assert_true(hw >= 0);
    assert_int_equal(ftruncate(hw, 3 * PG), 0);
    uint8_t page[PG];
    for (unsigned p = 0; p < 3; p++) {
        memset(page, 0xa0 + p, sizeof(page));
        assert_int_equal(pwrite(hw, page, PG, p * PG), PG);
    }
    for (unsigned i = 0; i < sizeof(cfg); i++)
        cfg[i] = (uint8_t)i;
    const struct ufio_pci_ids ids = { 0x1234, 0x11e8, 0, 0, 0xff0000, 1 };
    const struct ufio_dev_ops ops = { .size = sizeof(ops) };
    assert_int_equal(ufio_dev_create("pt", &ids, &ops, NULL, &dev), 0);
    assert_int_equal(ufio_dev_add_bar(dev, 0, 2 * PG, UFIO_BAR_MEM32, bar_fn, NULL), 0);
    assert_int_equal(ufio_dev_add_bar(dev, 2, 2 * PG, UFIO_BAR_MEM32, NULL, NULL), 0);
    /* bad areas: unaligned, past the BAR, an I/O or absent BAR, a negative fd */
    assert_int_equal(ufio_dev_add_mmap_area_fd(dev, 0, 1, PG, hw, PG), -EINVAL);
    assert_int_equal(ufio_dev_add_mmap_area_fd(dev, 0, PG, 2 * PG, hw, PG), -EINVAL);
    assert_int_equal(ufio_dev_add_mmap_area_fd(dev, 1, 0, PG, hw, PG), -EINVAL);
    assert_int_equal(ufio_dev_add_mmap_area_fd(dev, 0, 0, PG, -1, PG), -EINVAL);
    assert_int_equal(ufio_dev_add_mmap_area_fd(dev, 0, 0, 2 * PG, hw, PG), 0);
    /* one fd per region; no library memfd beside it, nor it beside one */
    assert_int_equal(ufio_dev_add_mmap_area(dev, 0, 0, PG, NULL), -EINVAL);
    void *mem;
    assert_int_equal(ufio_dev_add_mmap_area(dev, 2, 0, PG, &mem), 0);
    assert_int_equal(ufio_dev_add_mmap_area_fd(dev, 2, PG, PG, hw, 0), -EINVAL);
    assert_int_equal(ufio_dev_passthrough_config(dev, 100, cfg_fn, NULL), -EINVAL);
    assert_int_equal(ufio_dev_passthrough_config(dev, 256, cfg_fn, NULL), 0);
    assert_int_equal(ufio_dev_passthrough_irq(dev, UFIO_IRQ_ERR, 2, VFIO_IRQ_INFO_EVENTFD, irq_fn, NULL), -EINVAL);
    assert_int_equal(ufio_dev_passthrough_irq(dev, UFIO_IRQ_MSI, 2, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE,
                                              irq_fn, NULL), 0);
    assert_int_equal(ufio_dev_set_dma_hooks(dev, map_fn, NULL, NULL), -EINVAL);
    assert_int_equal(ufio_dev_set_dma_hooks(dev, map_fn, unmap_fn, NULL), 0);
    assert_int_equal(ufio_dev_set_resettable(dev, false), 0);
    dma.refuse_iova = 0x200000;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(ufio_dev_attach_fd(dev, sv[0]), 0);
    /* attached: the hooks are fixed */
    assert_int_equal(ufio_dev_passthrough_config(dev, 256, cfg_fn, NULL), -EBUSY);
    assert_int_equal(ufio_dev_set_dma_hooks(dev, map_fn, unmap_fn, NULL), -EBUSY);
    assert_int_equal(pthread_create(&th, NULL, serve, dev), 0);
    const struct ufio_client_opts o = { .size = sizeof(o), .no_twin_socket = true };
    assert_int_equal(ufio_client_attach_fd(sv[1], &o, &c), 0);
    return 0;
}

static int teardown(void **st)
{
    ufio_client_destroy(c);
    pthread_join(th, NULL); /* an --fd device stops when its client goes */
    ufio_dev_destroy(dev);
    close(hw);
    return 0;
}

static void test_mmap_on_device_fd(void **st)
{
    struct ufio_client_region_info ri = { .size = sizeof(ri) };
    assert_int_equal(ufio_client_region_info(c, 0, &ri), 0);
    assert_true(ri.flags & 4);
    assert_true(ri.fd >= 0);
    assert_int_equal(ri.offset, PG); /* the region's place in the device's fd */
    void *p;
    assert_int_equal(ufio_client_region_mmap(c, 0, 0, 2 * PG, &p), 0);
    uint8_t *b = p;
    assert_int_equal(b[0], 0xa1);
    assert_int_equal(b[PG], 0xa2);
    /* written through the client's mapping, seen by the hardware */
    unsigned before = bar_calls;
    b[5] = 0x55;
    uint8_t x;
    assert_int_equal(pread(hw, &x, 1, PG + 5), 1);
    assert_int_equal(x, 0x55);
    /* REGION_READ inside the area goes to the device's callback, not to library memory */
    uint8_t r[4];
    assert_int_equal(ufio_client_region_read(c, 0, 4, r, 4), 0);
    assert_int_equal(r[1], 0x55);
    assert_int_equal(bar_calls, before + 1);
    munmap(p, 2 * PG);
}

static void test_no_reset_advertised(void **st)
{
    struct ufio_client_device_info di = { .size = sizeof(di) };
    assert_int_equal(ufio_client_device_info(c, &di), 0);
    assert_int_equal(di.flags & 1, 0); /* VFIO_DEVICE_FLAGS_RESET */
    assert_int_equal(di.flags & 2, 2); /* still PCI */
}

static void test_config_forwarded(void **st)
{
    unsigned before = cfg_calls;
    uint8_t b[4];
    assert_int_equal(ufio_client_region_read(c, UFIO_PCI_CONFIG_REGION, 0, b, 4), 0);
    /* the device's bytes, not the ids the library was created with */
    assert_int_equal(b[0], 0);
    assert_int_equal(b[3], 3);
    uint8_t w[2] = { 0x77, 0x66 };
    assert_int_equal(ufio_client_region_write(c, UFIO_PCI_CONFIG_REGION, 4, w, 2), 0);
    assert_int_equal(cfg[4], 0x77);
    /* the hardware's refusal is the client's errno; past the size is refused before the device */
    assert_int_equal(ufio_client_region_read(c, UFIO_PCI_CONFIG_REGION, 0x40, b, 4), -EACCES);
    assert_int_equal(cfg_calls, before + 3);
}

static void test_irq_forwarded(void **st)
{
    struct ufio_client_irq_info ii = { .size = sizeof(ii) };
    assert_int_equal(ufio_client_irq_info(c, UFIO_IRQ_MSI, &ii), 0);
    assert_int_equal(ii.count, 2);
    int fds[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };
    assert_int_equal(ufio_client_irq_set_eventfds(c, UFIO_IRQ_MSI, 0, 2, fds), 0);
    assert_int_equal(irq.index, UFIO_IRQ_MSI);
    assert_int_equal(irq.count, 2);
    assert_int_equal(irq.nfds, 2);
    assert_int_equal(irq.flags, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER);
    /* what the hardware was given is the client's eventfd itself */
    assert_int_equal(ufio_client_irq_wait(fds[0], 1000), 1);
    assert_int_equal(ufio_client_irq_wait(fds[1], 1000), 1);
    unsigned calls = irq.calls;
    /* past the count: refused before the device */
    assert_int_equal(ufio_client_irq_set_eventfds(c, UFIO_IRQ_MSI, 1, 2, fds), -EINVAL);
    assert_int_equal(irq.calls, calls);
    assert_int_equal(ufio_client_irq_disable(c, UFIO_IRQ_MSI), 0);
    assert_int_equal(irq.calls, calls + 1);
    assert_int_equal(irq.count, 0);
    close(fds[0]);
    close(fds[1]);
}

static void test_dma_hooks(void **st)
{
    int mfd = memfd_create("guest", MFD_CLOEXEC);
    assert_int_equal(ftruncate(mfd, 4 * PG), 0);
    uint8_t *local = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    assert_true(local != MAP_FAILED);
    local[PG] = 0x42;
    unsigned maps = dma.maps;
    /* refused by the device: the client gets its errno, and nothing is recorded */
    assert_int_equal(ufio_client_dma_map(c, 0x200000, 2 * PG, UFIO_DMA_READ | UFIO_DMA_WRITE, local, mfd, 0), -EPERM);
    assert_int_equal(dma.maps, maps);
    dma.refuse_iova = 0;
    assert_int_equal(ufio_client_dma_map(c, 0x200000, 2 * PG, UFIO_DMA_READ | UFIO_DMA_WRITE, local, mfd, PG), 0);
    assert_int_equal(dma.maps, maps + 1);
    assert_int_equal(dma.last.iova, 0x200000);
    assert_int_equal(dma.last.size, 2 * PG);
    assert_int_equal(dma.last.prot, UFIO_DMA_MAP_READ | UFIO_DMA_MAP_WRITE);
    assert_non_null(dma.last.vaddr);
    assert_int_equal(((uint8_t *)dma.last.vaddr)[0], 0x42); /* the server's view of the client's page */
    /* fd-less memory reaches the hook without an address */
    assert_int_equal(ufio_client_dma_map(c, 0x300000, PG, UFIO_DMA_READ, local, -1, 0), 0);
    assert_null(dma.last.vaddr);
    unsigned unmaps = dma.unmaps;
    assert_int_equal(ufio_client_dma_unmap(c, 0x200000, 2 * PG), 0);
    assert_int_equal(dma.unmaps, unmaps + 1);
    assert_int_equal(dma.last_unmap.iova, 0x200000);
    assert_int_equal(dma.last_unmap.size, 2 * PG);
    /* a partial unmap is refused before the device */
    assert_int_equal(ufio_client_dma_unmap(c, 0x300000, PG / 2), -ENOENT);
    assert_int_equal(dma.unmaps, unmaps + 1);
    assert_int_equal(ufio_client_dma_unmap(c, 0x300000, PG), 0);
    assert_int_equal(dma.unmaps, unmaps + 2);
    munmap(local, 4 * PG);
    close(mfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mmap_on_device_fd),
        cmocka_unit_test(test_no_reset_advertised),
        cmocka_unit_test(test_config_forwarded),
        cmocka_unit_test(test_irq_forwarded),
        cmocka_unit_test(test_dma_hooks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
