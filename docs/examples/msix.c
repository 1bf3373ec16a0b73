/*
 * MSI-X without hand-computed offsets: ufio_dev_add_msix() puts the table
 * and PBA in BAR0 after the device's own registers; the client finds them in
 * the capability, enables MSI-X, unmasks a vector, and gets the interrupt
 * the device raises when its doorbell is written. The register callback
 * returns the byte count (0 works as well), and ignores the parameters it
 * does not need with UFIO_UNUSED, so it builds quietly with -Wextra.
 *
 * Build: cc -Wall -Wextra msix.c $(pkg-config --cflags --libs ufio) -o msix
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <ufio/client.h>
#include <ufio/server.h>

/* BAR0 0x00: doorbell, the value written is the vector to raise; 0x00..0xff are ours */
static int regs(struct ufio_dev *dev, UFIO_UNUSED void *opaque, UFIO_UNUSED unsigned region, uint64_t off,
                void *buf, uint32_t len, bool is_write)
{
    if (!is_write) {
        memset(buf, 0, len);
        return (int)len;
    }
    uint32_t vector = 0;
    memcpy(&vector, buf, len < 4 ? len : 4);
    if (off == 0)
        ufio_dev_irq_trigger(dev, UFIO_IRQ_MSIX, vector); /* 1 = left pending (masked) */
    return (int)len; /* the whole access done, as a libvfio-user callback would say */
}

static void *serve(void *dev) { ufio_dev_run(dev); return NULL; }

int main(void)
{
    static const struct ufio_pci_ids ids = { .vendor_id = 0x1234, .device_id = 0x0005 };
    struct ufio_dev *dev;
    uint32_t table = 0, pba = 0;
    int sv[2];
    pthread_t th;
    if (ufio_dev_create("msix-example", &ids, NULL, NULL, &dev) ||
        ufio_dev_add_bar(dev, 0, 8192, UFIO_BAR_MEM32, regs, NULL) ||
        ufio_dev_add_msix(dev, 4, 0, 0x100, &table, &pba) < 0 || /* after our 0x100 bytes of registers */
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) || ufio_dev_attach_fd(dev, sv[0]) ||
        pthread_create(&th, NULL, serve, dev))
        return 1;
    printf("msix: table at BAR0+%#x, PBA at BAR0+%#x\n", table, pba);

    struct ufio_client *c;
    if (ufio_client_attach_fd(sv[1], NULL, &c))
        return 1;
    int efd = eventfd(0, EFD_CLOEXEC);
    int err = ufio_client_irq_set_eventfds(c, UFIO_IRQ_MSIX, 1, 1, &efd);
    /* what a driver does: find the capability, read where the table is, enable, unmask vector 1 */
    uint8_t cfg[256];
    if (!err)
        err = ufio_client_region_read(c, UFIO_PCI_CONFIG_REGION, 0, cfg, sizeof(cfg));
    unsigned cap = err ? 0 : cfg[0x34];
    while (cap && cfg[cap] != 0x11)
        cap = cfg[cap + 1];
    uint32_t tbl = 0;
    if (cap)
        memcpy(&tbl, cfg + cap + 4, 4); /* BIR in bits 2:0, offset above */
    uint16_t ctl = 0x8000;             /* MSI-X enable */
    uint32_t unmask = 0, vector = 1;
    if (!err && cap)
        err = ufio_client_region_write(c, UFIO_PCI_CONFIG_REGION, cap + 2, &ctl, 2);
    if (!err && cap)
        err = ufio_client_region_write(c, tbl & 7, (tbl & ~7u) + 16 * 1 + 12, &unmask, 4);
    if (!err)
        err = ufio_client_region_write(c, UFIO_PCI_BAR0_REGION, 0, &vector, 4);
    int fired = err ? 0 : ufio_client_irq_wait(efd, 2000);
    bool ok = cap && (tbl & ~7u) == table && fired > 0;
    printf("msix: vector 1 %s: %s\n", fired > 0 ? "delivered" : "missing", ok ? "ok" : "FAILED");
    ufio_client_destroy(c);
    pthread_join(th, NULL);
    ufio_dev_destroy(dev);
    return ok ? 0 : 1;
}
