/*
 * MSI-X without offsets computed by hand: ufio_dev_add_msix() lays the table
 * and PBA out in a BAR; the client finds them through the capability, as a
 * guest driver would, enables MSI-X, unmasks vector 1 and gets it as an
 * eventfd when the device raises it.
 *
 * Build: cc msix.c $(pkg-config --cflags --libs ufio) -o msix
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ufio/client.h>
#include <ufio/server.h>

/* BAR0 offset 0: writing N raises MSI-X vector N (UFIO_UNUSED: no warning
 * for the parameters a callback does not need, even with -Wextra) */
static int doorbell(struct ufio_dev *dev, UFIO_UNUSED void *opaque, UFIO_UNUSED unsigned region,
                    uint64_t off, void *buf, uint32_t len, bool is_write)
{
    uint32_t v = 0;
    if (!is_write) {
        memset(buf, 0, len);
        return 0;
    }
    if (off != 0 || len != 4)
        return -EINVAL;
    memcpy(&v, buf, 4);
    int r = ufio_dev_irq_trigger(dev, UFIO_IRQ_MSIX, v); /* 1: masked, left pending */
    return r < 0 ? r : 0;
}

static void *serve(void *dev) { ufio_dev_run(dev); return NULL; }

/* The client's side: the MSI-X capability's config offset, walking the list. */
static int find_msix(struct ufio_client *c)
{
    uint8_t ptr = 0, hdr[2];
    if (ufio_client_region_read(c, UFIO_PCI_CONFIG_REGION, 0x34, &ptr, 1))
        return -1;
    for (int hops = 0; ptr >= 0x40 && hops < 48; hops++, ptr = hdr[1]) {
        if (ufio_client_region_read(c, UFIO_PCI_CONFIG_REGION, ptr, hdr, 2))
            return -1;
        if (hdr[0] == 0x11) /* MSI-X */
            return ptr;
    }
    return -1;
}

int main(void)
{
    static const struct ufio_pci_ids ids = { .vendor_id = 0x1234, .device_id = 0x0005 };
    struct ufio_dev *dev;
    uint32_t table_off, pba_off;
    int sv[2];
    pthread_t th;
    /* BAR0: registers (the doorbell) in the first 4 KiB, MSI-X after them */
    if (ufio_dev_create("msix-example", &ids, NULL, NULL, &dev) ||
        ufio_dev_add_bar(dev, 0, 16384, UFIO_BAR_MEM32, doorbell, NULL) ||
        ufio_dev_add_msix(dev, 4, 0, 0x1000, &table_off, &pba_off) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) || ufio_dev_attach_fd(dev, sv[0]) ||
        pthread_create(&th, NULL, serve, dev))
        return 1;
    printf("msix: table at BAR0 + %#x, PBA at BAR0 + %#x\n", table_off, pba_off);

    struct ufio_client *c;
    if (ufio_client_attach_fd(sv[1], NULL, &c))
        return 1;
    int cap = find_msix(c), err = cap < 0 ? -1 : 0;
    uint32_t table = 0;
    uint16_t ctl = 0;
    int efd = eventfd(0, EFD_CLOEXEC);
    if (!err)
        err = ufio_client_region_read(c, UFIO_PCI_CONFIG_REGION, (uint64_t)cap + 4, &table, 4);
    uint64_t entry1 = (table & ~7u) + 16; /* vector 1's entry; BIR (table & 7) is 0 here */
    uint32_t unmask = 0;
    if (!err) /* enable MSI-X in the capability's message control */
        err = ufio_client_region_read(c, UFIO_PCI_CONFIG_REGION, (uint64_t)cap + 2, &ctl, 2);
    ctl |= 0x8000;
    if (!err)
        err = ufio_client_region_write(c, UFIO_PCI_CONFIG_REGION, (uint64_t)cap + 2, &ctl, 2);
    if (!err)
        err = ufio_client_irq_set_eventfds(c, UFIO_IRQ_MSIX, 1, 1, &efd);
    /* vectors start masked: clear vector 1's mask bit (the library honours the
     * per-vector bits once a client writes the table, as a guest driver does;
     * QEMU keeps the table to itself and masks by removing the eventfd) */
    if (!err)
        err = ufio_client_region_write(c, table & 7, entry1 + 12, &unmask, 4);
    uint32_t vec = 1;
    if (!err)
        err = ufio_client_region_write(c, UFIO_PCI_BAR0_REGION, 0, &vec, 4);
    int fired = err ? 0 : ufio_client_irq_wait(efd, 2000);
    printf("msix: vector 1 %s: %s\n", fired > 0 ? "received" : "missing", fired > 0 ? "ok" : "FAILED");
    ufio_client_destroy(c);
    pthread_join(th, NULL);
    ufio_dev_destroy(dev);
    close(efd);
    return fired > 0 ? 0 : 1;
}
