/*
 * The client side: attach to a vfio-user server and describe its device —
 * what VERSION granted, the regions with their sparse mmap areas, the IRQs,
 * config space — then mmap an area.
 *
 *     ./client /tmp/dev.sock     # any vfio-user server
 *     ./client                   # against a small device of its own (self-check)
 *
 * Build: cc client.c $(pkg-config --cflags --libs ufio) -o client
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <ufio/client.h>
#include <ufio/server.h>

static int describe(struct ufio_client *c)
{
    struct ufio_client_caps caps = { .size = sizeof(caps) }; /* every info struct: set size first */
    ufio_client_get_caps(c, &caps);
    printf("vfio-user %u.%u, max_data_xfer_size %llu\n", caps.major, caps.minor,
           (unsigned long long)caps.max_data_xfer_size);
    struct ufio_client_device_info di = { .size = sizeof(di) };
    int err = ufio_client_device_info(c, &di);
    for (unsigned i = 0; !err && i < di.num_regions && i < UFIO_PCI_NUM_REGIONS; i++) {
        struct ufio_client_region_info ri = { .size = sizeof(ri) };
        if ((err = ufio_client_region_info(c, i, &ri)) || !ri.region_size)
            continue;
        printf("region %u: %#llx bytes%s\n", i, (unsigned long long)ri.region_size,
               ri.flags & 4 ? ", mmap-able" : "");
        struct ufio_client_area areas[16];
        int n = ufio_client_region_areas(c, i, areas, 16); /* returns the full count */
        for (int a = 0; a < n && a < 16; a++)
            printf("  mmap area %#llx + %#llx\n", (unsigned long long)areas[a].offset,
                   (unsigned long long)areas[a].size);
        if (n > 0) {
            void *p;
            if (!ufio_client_region_mmap(c, i, areas[0].offset, areas[0].size, &p)) {
                printf("  mapped the first area at %p\n", p);
                munmap(p, areas[0].size);
            }
        }
    }
    uint16_t ven_dev[2];
    if (!err)
        err = ufio_client_region_read(c, UFIO_PCI_CONFIG_REGION, 0, ven_dev, 4);
    if (!err)
        printf("config: vendor %04x device %04x\n", ven_dev[0], ven_dev[1]);
    return err;
}

static void *serve(void *dev) { ufio_dev_run(dev); return NULL; }

int main(int argc, char **argv)
{
    struct ufio_client *c;
    const struct ufio_client_opts opts = { .size = sizeof(opts), .timeout_ms = 2000 };
    if (argc > 1) {
        int err = ufio_client_connect(argv[1], &opts, &c);
        if (!err) {
            err = describe(c);
            ufio_client_destroy(c);
        }
        if (err)
            fprintf(stderr, "client: %s: %s\n", argv[1], strerror(-err));
        return err ? 1 : 0;
    }
    /* self-check: a device with a 64 KiB BAR2 whose second page is shared memory */
    static const struct ufio_pci_ids ids = { .vendor_id = 0x1234, .device_id = 0x0002 };
    struct ufio_dev *dev;
    void *mem;
    int sv[2];
    pthread_t th;
    if (ufio_dev_create("client-example", &ids, NULL, NULL, &dev) ||
        ufio_dev_add_bar(dev, 2, 0x10000, UFIO_BAR_MEM32, NULL, NULL) ||
        ufio_dev_add_mmap_area(dev, 2, 0x1000, 0x1000, &mem) ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) || ufio_dev_attach_fd(dev, sv[0]) ||
        pthread_create(&th, NULL, serve, dev))
        return 1;
    int err = ufio_client_attach_fd(sv[1], &opts, &c);
    if (!err) {
        err = describe(c);
        ufio_client_destroy(c);
    }
    pthread_join(th, NULL);
    ufio_dev_destroy(dev);
    printf("client: %s\n", err ? strerror(-err) : "ok");
    return err ? 1 : 0;
}
