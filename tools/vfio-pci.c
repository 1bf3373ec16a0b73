/*
 * ufio-vfio-pci: serves a host PCI device bound to vfio-pci over vfio-user
 * (docs/vfio-pci.md). The VMM touches BARs directly through mmap, interrupts
 * go from the kernel straight to its eventfds, its memory is mapped into the
 * device's IOMMU; this process answers config space, setup and migration.
 */
#include <ufio/migration.h>
#include <ufio/passthrough.h>
#include <ufio/server.h>
#include <ufio/serve_opts.h>
#include <ufio/vfio_host.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct ufio_dev *the_dev;
static volatile sig_atomic_t stats_req, quit_req;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        stats_req = 1;
    else
        quit_req = 1;
    if (the_dev)
        ufio_dev_stop(the_dev);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ufio-vfio-pci HOST_BDF (--socket-path=PATH | --fd=N) [--migration-plugin=PATH]\n"
            "                     [--no-mmap] [--no-migration] [--poll-us=N]\n"
            "                     [--mgmt-socket=PATH|none] [--allow-uid=UID] [-v]\n"
            "Serves host PCI device HOST_BDF (e.g. 0000:01:00.0), bound to vfio-pci, over vfio-user.\n"
            "  --migration-plugin=PATH  vendor migration plugin (shared object, ABI in\n"
            "                           <ufio/migration_plugin.h>); without it the driver's own\n"
            "                           VFIO migration v2 is forwarded when it has one\n"
            "  --no-mmap                BARs only through REGION_READ/WRITE (the client is not\n"
            "                           given the VFIO device fd)\n"
            "  --no-migration           offer no migration\n"
            UFIO_SERVE_USAGE
            "  -v, --verbose            log protocol activity to stderr\n"
            "  -h, --help               this text\n"
            "SIGUSR1 prints \"stats N: M messages\" (the commands handled so far); SIGTERM/SIGINT stop.\n");
}

int main(int argc, char **argv)
{
    bool verbose = false;
    struct ufio_vfio_host_opts o = { .size = sizeof(o) };
    static const struct option opts[] = {
        { "migration-plugin", required_argument, NULL, 'P' },
        { "no-mmap", no_argument, NULL, 'M' },
        { "no-migration", no_argument, NULL, 'N' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        UFIO_SERVE_LONGOPTS,
        { 0 },
    };
    /* static: reachable until exit on every early return, freed on the last */
    static struct ufio_serve_opts *so;
    so = ufio_serve_opts_new();
    if (!so) {
        fprintf(stderr, "ufio-vfio-pci: out of memory\n");
        return 1;
    }
    int c;
    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        int taken = ufio_serve_opt(so, c, optarg, "ufio-vfio-pci");
        if (taken < 0)
            return 2;
        if (taken)
            continue;
        switch (c) {
        case 'P': o.migration_plugin = optarg; break;
        case 'M': o.no_mmap = true; break;
        case 'N': o.no_migration = true; break;
        case 'v': verbose = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind + 1 != argc) {
        usage(stderr);
        return 2;
    }
    if (ufio_serve_check(so, NULL, "ufio-vfio-pci"))
        return 2;
    if (o.migration_plugin && o.no_migration) {
        fprintf(stderr, "ufio-vfio-pci: --migration-plugin and --no-migration exclude each other\n");
        return 2;
    }
    ufio_set_log(NULL, NULL, verbose ? UFIO_LOG_DEBUG : UFIO_LOG_INFO);
    signal(SIGPIPE, SIG_IGN);

    char why[256];
    struct ufio_vfio_host *h;
    if (ufio_serve_takeover(so)) {
        /* the new process would need the VFIO device itself, which the old one holds open */
        fprintf(stderr, "ufio-vfio-pci: --takeover is not supported for a pass-through device\n");
        return 2;
    }
    int err = ufio_vfio_host_open(argv[optind], "ufio-vfio-pci", &o, &h, why, sizeof(why));
    if (err) {
        fprintf(stderr, "ufio-vfio-pci: %s: %s\n", argv[optind], why[0] ? why : strerror(-err));
        return 1;
    }
    struct ufio_dev *dev = ufio_vfio_host_dev(h);
    if ((err = ufio_serve_start(dev, so, NULL, "ufio-vfio-pci"))) {
        ufio_vfio_host_close(h);
        return 1;
    }
    the_dev = dev;
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    if (ufio_serve_socket(so))
        printf("listening on %s", ufio_serve_socket(so));
    else
        printf("serving fd %d", ufio_serve_fd(so));
    printf(" (migration: %s)\n", ufio_vfio_host_migration(h));
    fflush(stdout);
    /* SIGUSR1 stops the loop only to print the message count, numbered so a
     * reader can wait for its own line */
    unsigned stats_seq = 0;
    for (;;) {
        err = ufio_dev_run(dev);
        if (err || quit_req)
            break;
        if (stats_req) {
            stats_req = 0;
            printf("stats %u: %llu messages\n", ++stats_seq, (unsigned long long)ufio_dev_msg_count(dev));
            fflush(stdout);
        }
    }
    the_dev = NULL;
    ufio_vfio_host_close(h);
    ufio_serve_opts_free(so);
    if (err) {
        fprintf(stderr, "ufio-vfio-pci: %s\n", strerror(-err));
        return 1;
    }
    return 0;
}
