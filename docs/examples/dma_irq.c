/*
 * DMA and interrupts: the client lends the device a page of its memory
 * (shared through a memfd, so the device maps it directly); writing the
 * device's doorbell makes the device write into that page and raise INTx,
 * which reaches the client as an eventfd.
 *
 * Build: cc dma_irq.c $(pkg-config --cflags --libs ufio) -o dma_irq
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ufio/client.h>
#include <ufio/server.h>

#define IOVA 0x100000u

/* BAR0 offset 0: the doorbell; the value written is the IOVA to fill. */
static int doorbell(struct ufio_dev *dev, UFIO_UNUSED void *opaque, UFIO_UNUSED unsigned region,
                    UFIO_UNUSED uint64_t off, void *buf, uint32_t len, bool is_write)
{
    if (!is_write) {
        memset(buf, 0, len);
        return 0;
    }
    uint64_t iova = 0;
    memcpy(&iova, buf, len < 8 ? len : 8);
    static const char msg[] = "written by the device";
    int err = ufio_dev_dma_write(dev, iova, msg, sizeof(msg)); /* -EFAULT outside the client's maps */
    if (err)
        return err;
    ufio_dev_irq_trigger(dev, UFIO_IRQ_INTX, 0); /* 0 signalled, 1 left pending */
    return 0;
}

static void *serve(void *dev) { ufio_dev_run(dev); return NULL; }

int main(void)
{
    static const struct ufio_pci_ids ids = { .vendor_id = 0x1234, .device_id = 0x0003 };
    struct ufio_dev *dev;
    int sv[2];
    pthread_t th;
    if (ufio_dev_create("dma-example", &ids, NULL, NULL, &dev) ||
        ufio_dev_add_bar(dev, 0, 4096, UFIO_BAR_MEM32, doorbell, NULL) ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) || ufio_dev_attach_fd(dev, sv[0]) ||
        pthread_create(&th, NULL, serve, dev))
        return 1;

    struct ufio_client *c;
    int err = ufio_client_attach_fd(sv[1], NULL, &c);
    if (err)
        return 1;
    /* the page the device may write, and an eventfd for INTx */
    int mfd = memfd_create("dma-example", MFD_CLOEXEC);
    char *page = mfd >= 0 && ftruncate(mfd, 4096) == 0
                     ? mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0) : MAP_FAILED;
    int efd = eventfd(0, EFD_CLOEXEC);
    if (page == MAP_FAILED || efd < 0)
        return 1;
    err = ufio_client_dma_map(c, IOVA, 4096, UFIO_DMA_READ | UFIO_DMA_WRITE, page, mfd, 0);
    if (!err)
        err = ufio_client_irq_set_eventfds(c, UFIO_IRQ_INTX, 0, 1, &efd);
    uint64_t iova = IOVA;
    if (!err)
        err = ufio_client_region_write(c, UFIO_PCI_BAR0_REGION, 0, &iova, 8);
    int fired = err ? 0 : ufio_client_irq_wait(efd, 2000);
    bool ok = !err && fired > 0 && strcmp(page, "written by the device") == 0;
    printf("dma_irq: interrupt %s, page holds \"%s\": %s\n", fired > 0 ? "received" : "missing", page,
           ok ? "ok" : "FAILED");
    ufio_client_destroy(c);
    pthread_join(th, NULL);
    ufio_dev_destroy(dev);
    close(efd);
    munmap(page, 4096);
    close(mfd);
    return ok ? 0 : 1;
}
