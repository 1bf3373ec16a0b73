/*
 * ufio-virtio-blk: a virtio 1.x (modern, non-transitional) PCI block device
 * served over vfio-user, backed by a file. The guest's own virtio_pci and
 * virtio_blk drivers bind to it.
 *
 * Layout (docs/virtio-blk.md):
 *   BAR1 (32-bit memory, 4 KiB): MSI-X table at 0x000, PBA at 0x800 (the library emulates both)
 *   BAR4 (64-bit memory, 16 KiB, trapped): common cfg 0x0000, ISR 0x1000,
 *        device cfg 0x2000, notify 0x3000 (notify_off_multiplier 4); also
 *        reachable through the PCI_CFG capability's window in config space
 *
 * Requests are processed synchronously when the driver writes the notify
 * register. Rings and buffers are reached through the memory the client maps
 * with DMA_MAP (ufio_dev_dma_ptr); data moves between the backing file and
 * guest memory with preadv/pwritev, no bounce buffer.
 *
 * Everything the driver supplies is hostile: a malformed ring or chain puts
 * the device in NEEDS_RESET (it stops processing until the driver resets it);
 * a bad request inside a well-formed chain is answered VIRTIO_BLK_S_IOERR or
 * VIRTIO_BLK_S_UNSUPP.
 */
#include <errno.h>
#include <getopt.h>

#include <ufio/serve_opts.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ufio/server.h>

#include "vblk.h"

static struct ufio_dev *the_dev;

void vlog(const struct vblk *vb, const char *fmt, ...)
{
    if (!vb->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- main ------------------------------------------------------------------------------------------- */

static void on_signal(int sig)
{
    (void)sig;
    if (the_dev)
        ufio_dev_stop(the_dev);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " --file=PATH [--socket-path=PATH | --fd=N] [--readonly] [--direct]\n"
            "                       [--serial=ID] [--poll-us=N] [--mgmt-socket=PATH|none] [--allow-uid=UID] [-v]\n"
            "Serves a virtio 1.x PCI block device (1af4:1042) backed by PATH over vfio-user\n"
            "(docs/virtio-blk.md), on " DEFAULT_SOCKET " unless told otherwise.\n"
            "  --file=PATH         backing file or block device (required; its size is the disk's)\n"
            "  --readonly          offer VIRTIO_BLK_F_RO; writes fail with IOERR\n"
            "  --direct            O_DIRECT to the file for page-aligned requests (others,\n"
            "                      and FLUSH, go through the page cache)\n"
            "  --serial=ID         the GET_ID string, at most 20 bytes (default ufio-virtio-blk)\n"
            UFIO_SERVE_USAGE
            "  -v, --verbose       log driver activity and protocol errors to stderr\n"
            "  -h, --help          this text\n"
            "Keeps serving across client reconnects until SIGTERM/SIGINT, then removes the socket.\n"
            "Migrates (STOP_COPY and PRE_COPY; the backing file must be the destination's too):\n"
            "see docs/virtio-blk.md \"Migration\".\n");
}

static void print_stats(const struct vblk *vb)
{
    fprintf(stderr,
            PROG ": %" PRIu64 " requests (%" PRIu64 " with O_DIRECT), %" PRIu64 " bytes read, %" PRIu64
                 " bytes written, %" PRIu64 " flushes, %" PRIu64 " IOERR, %" PRIu64 " UNSUPP\n",
            vb->st.requests, vb->st.direct, vb->st.bytes_read, vb->st.bytes_written, vb->st.flushes, vb->st.ioerr,
            vb->st.unsupp);
}

int main(int argc, char **argv)
{
    static struct vblk vb = { .fd = -1, .direct_fd = -1 };
    const char *serial = "ufio-virtio-blk";
    static const struct option opts[] = {
        { "file", required_argument, NULL, 'f' },
        { "readonly", no_argument, NULL, 'r' },
        { "direct", no_argument, NULL, 'd' },
        { "serial", required_argument, NULL, 'S' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        UFIO_SERVE_LONGOPTS,
        { 0 },
    };
    /* static: reachable until exit on every early return, freed on the last */
    static struct ufio_serve_opts *so;
    so = ufio_serve_opts_new();
    if (!so) {
        fprintf(stderr, PROG ": out of memory\n");
        return 1;
    }
    int c;
    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        int taken = ufio_serve_opt(so, c, optarg, PROG);
        if (taken < 0)
            return 2;
        if (taken)
            continue;
        switch (c) {
        case 'f': vb.path = optarg; break;
        case 'r': vb.readonly = true; break;
        case 'd': vb.direct_fd = -2; break; /* opened with the file */
        case 'S': serial = optarg; break;
        case 'v': vb.verbose = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || !vb.path) {
        if (!vb.path)
            fprintf(stderr, PROG ": --file is required\n");
        usage(stderr);
        return 2;
    }
    if (ufio_serve_check(so, DEFAULT_SOCKET, PROG))
        return 2;
    if (strlen(serial) > BLK_ID_BYTES) {
        fprintf(stderr, PROG ": --serial is longer than %d bytes\n", BLK_ID_BYTES);
        return 2;
    }
    memcpy(vb.serial, serial, strlen(serial)); /* zero-padded; unterminated at 20 bytes, as the spec says */
    if (vb.verbose)
        ufio_set_log(NULL, NULL, UFIO_LOG_DEBUG);

    int err = open_backing(&vb);
    if (err) {
        fprintf(stderr, PROG ": %s: %s\n", vb.path,
                err == -EINVAL ? "not a regular file or block device of at least 512 bytes" : strerror(-err));
        return 1;
    }
    vb.host_features = F_VERSION_1 | F_RING_INDIRECT_DESC | F_BLK_SEG_MAX | F_BLK_BLK_SIZE | F_BLK_FLUSH |
                       (vb.readonly ? F_BLK_RO : 0);
    vblk_reset(&vb);

    const struct ufio_pci_ids ids = {
        .vendor_id = VIRTIO_VENDOR, .device_id = VIRTIO_DEV_BLK_MODERN,
        .subsys_vendor_id = VIRTIO_VENDOR, .subsys_id = VIRTIO_SUBSYS_ID,
        .class_code = 0x018000, .revision = 1,
    };
    const struct ufio_dev_ops ops = { .size = sizeof(ops), .reset = vblk_dev_reset, .detach = vblk_detach,  };
    struct ufio_dev *dev = NULL;
    err = ufio_dev_create(PROG, &ids, &ops, &vb, &dev);
    if (!err)
        err = build(dev, &vb);
    if (!err)
        err = vblk_setup_migration(dev, &vb);
    if (err) {
        fprintf(stderr, PROG ": cannot build the device: %s\n", strerror(-err));
        ufio_dev_destroy(dev);
        close(vb.fd);
        return 1;
    }
    vb.dev = dev;
    if ((err = ufio_serve_start(dev, so, DEFAULT_SOCKET, PROG))) {
        ufio_dev_destroy(dev);
        close(vb.fd);
        return ufio_serve_exit_code(so, err);
    }
    the_dev = dev;
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (ufio_serve_socket(so))
        printf("listening on %s", ufio_serve_socket(so));
    else
        printf("serving fd %d", ufio_serve_fd(so));
    printf(" (%s, %" PRIu64 " sectors%s)\n", vb.path, vb.capacity, vb.readonly ? ", read-only" : "");
    fflush(stdout);

    err = ufio_dev_run(dev);
    the_dev = NULL;
    ufio_dev_destroy(dev);
    ufio_serve_opts_free(so);
    print_stats(&vb);
    close(vb.fd);
    if (vb.direct_fd >= 0)
        close(vb.direct_fd);
    if (err) {
        fprintf(stderr, PROG ": %s\n", strerror(-err));
        return 1;
    }
    return 0;
}
