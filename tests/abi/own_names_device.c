/*
 * A device program that defines, for its own use, functions whose names the
 * library uses internally (dma_map, irq_set, region_access, dev_handle_msg,
 * cl_call). Linked statically against the installed libufio.a (and, built a
 * second time, against libufio.so), it must link without "multiple
 * definition", its calls must reach its own functions, and the library must
 * still work: a client session against the device, in this process.
 * Uses only the public headers.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <ufio/client.h>
#include <ufio/server.h>

/* the program's own functions with the library's internal names */
int dma_map(int x);
int irq_set(int x);
int region_access(int x);
int dev_handle_msg(int x);
int cl_call(int x);
int dma_map(int x) { return x + 1; }
int irq_set(int x) { return x + 2; }
int region_access(int x) { return x + 3; }
int dev_handle_msg(int x) { return x + 4; }
int cl_call(int x) { return x + 5; }

static int bar_access(struct ufio_dev *dev, void *opaque, unsigned region, uint64_t off, void *buf,
                      uint32_t len, bool is_write)
{
    if (!is_write)
        memset(buf, 0x5a, len);
    return 0;
}

static void *serve(void *arg)
{
    ufio_dev_run(arg);
    return NULL;
}

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "own_names_device: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            return 1;                                                                  \
        }                                                                              \
    } while (0)

int main(void)
{
    CHECK(dma_map(0) + irq_set(0) + region_access(0) + dev_handle_msg(0) + cl_call(0) == 15);
    CHECK(ufio_version() >= UFIO_VERSION_NUM(1, 0, 0));

    static const struct ufio_pci_ids ids = { 0x5546, 0x00ae, 0x5546, 0x00ae, 0xff0000, 1 };
    const struct ufio_dev_ops ops = { .size = sizeof(ops) };
    struct ufio_dev *dev;
    CHECK(ufio_dev_create("own-names", &ids, &ops, NULL, &dev) == 0);
    CHECK(ufio_dev_add_bar(dev, 0, 4096, UFIO_BAR_MEM32, bar_access, NULL) == 0);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    CHECK(ufio_dev_attach_fd(dev, sv[0]) == 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, serve, dev) == 0);
    struct ufio_client *c;
    CHECK(ufio_client_attach_fd(sv[1], NULL, &c) == 0);
    uint16_t vendor = 0;
    CHECK(ufio_client_region_read(c, UFIO_PCI_CONFIG_REGION, 0, &vendor, 2) == 0);
    CHECK(vendor == 0x5546);
    uint8_t b[4];
    CHECK(ufio_client_region_read(c, 0, 16, b, 4) == 0);
    CHECK(b[0] == 0x5a && b[3] == 0x5a);
    ufio_client_destroy(c);
    pthread_join(th, NULL);
    ufio_dev_destroy(dev);
    printf("own_names_device: ok\n");
    return 0;
}
