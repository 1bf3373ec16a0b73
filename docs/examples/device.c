/*
 * The smallest useful device: one memory BAR with a scratch register, served
 * over vfio-user. With a socket path it serves VMMs until interrupted:
 *
 *     ./device /tmp/dev.sock          # then: ufio-lspci /tmp/dev.sock
 *
 * Without one it checks itself: serves one session to a client of its own
 * over a socketpair and exits 0 if the register works.
 *
 * Build: cc device.c $(pkg-config --cflags --libs ufio) -o device
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <ufio/client.h>
#include <ufio/server.h>

static uint32_t scratch;
static struct ufio_dev *the_dev;

/* BAR0: offset 0 is a 32-bit read/write register; the rest reads as zero.
 * UFIO_UNUSED: the parameters it does not need, quiet under -Wextra. */
static int bar0_access(UFIO_UNUSED struct ufio_dev *dev, UFIO_UNUSED void *opaque, UFIO_UNUSED unsigned region,
                       uint64_t off, void *buf, uint32_t len, bool is_write)
{
    if (off != 0 || len != 4) {
        if (!is_write)
            memset(buf, 0, len);
        return 0;
    }
    if (is_write)
        memcpy(&scratch, buf, 4);
    else
        memcpy(buf, &scratch, 4);
    return 0;
}

static void on_signal(UFIO_UNUSED int sig) { ufio_dev_stop(the_dev); }
static void *serve(void *dev) { ufio_dev_run(dev); return NULL; }

int main(int argc, char **argv)
{
    static const struct ufio_pci_ids ids = {
        .vendor_id = 0x1234, .device_id = 0x0001, .class_code = 0xff0000,
    };
    const struct ufio_dev_ops ops = { .size = sizeof(ops) }; /* no callbacks needed */
    int err = ufio_dev_create("example", &ids, &ops, NULL, &the_dev);
    if (!err)
        err = ufio_dev_add_bar(the_dev, 0, 4096, UFIO_BAR_MEM32, bar0_access, NULL);
    if (err) {
        fprintf(stderr, "device: %s\n", strerror(-err));
        return 1;
    }
    if (argc > 1) {
        if ((err = ufio_dev_listen(the_dev, argv[1]))) {
            fprintf(stderr, "device: %s: %s\n", argv[1], strerror(-err));
            return 1;
        }
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        printf("listening on %s\n", argv[1]);
        fflush(stdout);
        err = ufio_dev_run(the_dev);
        ufio_dev_destroy(the_dev);
        return err ? 1 : 0;
    }

    /* self-check: our own client on the other end of a socketpair */
    int sv[2];
    pthread_t th;
    struct ufio_client *c;
    uint32_t v = 0xc0ffee;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) || ufio_dev_attach_fd(the_dev, sv[0]) ||
        pthread_create(&th, NULL, serve, the_dev))
        return 1;
    err = ufio_client_attach_fd(sv[1], NULL, &c);
    if (!err)
        err = ufio_client_region_write(c, UFIO_PCI_BAR0_REGION, 0, &v, 4);
    v = 0;
    if (!err)
        err = ufio_client_region_read(c, UFIO_PCI_BAR0_REGION, 0, &v, 4);
    if (!err)
        ufio_client_destroy(c);
    pthread_join(th, NULL); /* ufio_dev_run returns when an fd client leaves */
    ufio_dev_destroy(the_dev);
    printf("device: scratch register %s (libufio %s)\n", !err && v == 0xc0ffee ? "ok" : "FAILED",
           ufio_version_string());
    return !err && v == 0xc0ffee ? 0 : 1;
}
