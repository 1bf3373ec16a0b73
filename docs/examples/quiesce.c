/*
 * Asynchronous quiesce: the device does its DMA on a worker thread, through
 * a pointer into the client's memory. Before the client's DMA_UNMAP takes
 * that memory away, the library asks the device to quiesce; the device says
 * -EBUSY, the worker finishes its copy and calls ufio_dev_quiesced(), and
 * only then is the memory unmapped and the unmap answered.
 *
 * Here the worker stops half-way and finishes only once the quiesce was
 * asked for, so the unmap is sure to find a DMA in flight.
 *
 * Build: cc quiesce.c $(pkg-config --cflags --libs ufio) -o quiesce
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ufio/client.h>
#include <ufio/server.h>

#define IOVA 0x100000u
#define LEN 4096u

struct worker {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ufio_dev *dev;
    char *dst;         /* the DMA in flight (NULL: none) */
    bool quiescing;    /* quiesce said -EBUSY: call ufio_dev_quiesced() when done */
    bool quit;
    bool unmapped_too_early;
};

static struct worker W = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void *work(UFIO_UNUSED void *arg)
{
    pthread_mutex_lock(&W.mu);
    while (!W.quit) {
        if (!W.dst) {
            pthread_cond_wait(&W.cv, &W.mu);
            continue;
        }
        char *dst = W.dst;
        pthread_mutex_unlock(&W.mu);
        memset(dst, 'a', LEN / 2);
        pthread_mutex_lock(&W.mu);
        while (!W.quiescing && !W.quit) /* a real device would not wait: this one makes sure */
            pthread_cond_wait(&W.cv, &W.mu);
        pthread_mutex_unlock(&W.mu);
        memset(dst + LEN / 2, 'b', LEN / 2 - 1); /* what was in flight completes */
        pthread_mutex_lock(&W.mu);
        W.dst = NULL;
        bool owe = W.quiescing;
        W.quiescing = false;
        pthread_mutex_unlock(&W.mu);
        if (owe)
            ufio_dev_quiesced(W.dev, 0); /* from this thread: the loop wakes up */
        pthread_mutex_lock(&W.mu);
    }
    pthread_mutex_unlock(&W.mu);
    return NULL;
}

/* The doorbell (BAR0): start a DMA into the client's page. */
static int doorbell(struct ufio_dev *dev, UFIO_UNUSED void *opaque, UFIO_UNUSED unsigned region,
                    UFIO_UNUSED uint64_t off, void *buf, uint32_t len, bool is_write)
{
    if (!is_write) {
        memset(buf, 0, len);
        return 0;
    }
    char *p = ufio_dev_dma_ptr(dev, IOVA, LEN, true); /* on the loop's thread; used on the worker's */
    if (!p)
        return -EFAULT;
    pthread_mutex_lock(&W.mu);
    W.dst = p;
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
    return 0;
}

static int quiesce(UFIO_UNUSED struct ufio_dev *dev, UFIO_UNUSED void *opaque)
{
    pthread_mutex_lock(&W.mu);
    int r = 0;
    if (W.dst) {
        W.quiescing = true; /* no new DMA from now on; the worker answers */
        pthread_cond_broadcast(&W.cv);
        r = -EBUSY;
    }
    pthread_mutex_unlock(&W.mu);
    return r;
}

static void dma_unmap(UFIO_UNUSED struct ufio_dev *dev, UFIO_UNUSED void *opaque, UFIO_UNUSED uint64_t iova,
                      UFIO_UNUSED uint64_t len)
{
    pthread_mutex_lock(&W.mu);
    W.unmapped_too_early |= W.dst != NULL;
    pthread_mutex_unlock(&W.mu);
}

static void *serve(void *dev) { ufio_dev_run(dev); return NULL; }

int main(void)
{
    static const struct ufio_pci_ids ids = { .vendor_id = 0x1234, .device_id = 0x0006 };
    const struct ufio_dev_ops ops = { .size = sizeof(ops), .quiesce = quiesce, .dma_unmap = dma_unmap };
    int sv[2];
    pthread_t loop, worker;
    if (ufio_dev_create("quiesce-example", &ids, &ops, NULL, &W.dev) ||
        ufio_dev_add_bar(W.dev, 0, 4096, UFIO_BAR_MEM32, doorbell, NULL) ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) || ufio_dev_attach_fd(W.dev, sv[0]) ||
        pthread_create(&worker, NULL, work, NULL) || pthread_create(&loop, NULL, serve, W.dev))
        return 1;

    struct ufio_client *c;
    if (ufio_client_attach_fd(sv[1], NULL, &c))
        return 1;
    int mfd = memfd_create("quiesce-example", MFD_CLOEXEC);
    char *page = mfd >= 0 && ftruncate(mfd, LEN) == 0
                     ? mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0) : MAP_FAILED;
    if (page == MAP_FAILED)
        return 1;
    uint32_t go = 1;
    int err = ufio_client_dma_map(c, IOVA, LEN, UFIO_DMA_READ | UFIO_DMA_WRITE, page, mfd, 0);
    if (!err)
        err = ufio_client_region_write(c, UFIO_PCI_BAR0_REGION, 0, &go, 4);
    /* answered only after the worker's copy is complete */
    if (!err)
        err = ufio_client_dma_unmap(c, IOVA, LEN);
    bool whole = page[0] == 'a' && page[LEN / 2] == 'b' && strlen(page) == LEN - 1;
    bool ok = !err && whole && !W.unmapped_too_early;
    printf("quiesce: unmap %s, the worker's DMA %s before it: %s\n", err ? strerror(-err) : "answered",
           whole ? "completed" : "NOT completed", ok ? "ok" : "FAILED");

    ufio_client_destroy(c);
    pthread_join(loop, NULL);
    pthread_mutex_lock(&W.mu);
    W.quit = true;
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
    pthread_join(worker, NULL);
    ufio_dev_destroy(W.dev);
    munmap(page, LEN);
    close(mfd);
    return ok ? 0 : 1;
}
