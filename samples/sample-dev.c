/*
 * ufio-sample: a small PCI device served over vfio-user.
 *
 * It shows every part of the server API: a config space with PM, MSI,
 * MSI-X, PCIe, vendor-specific and DSN capabilities; a trapped register BAR
 * that raises interrupts and performs DMA; an I/O BAR; a BAR of shared
 * memory the client may mmap; and the MSI-X table in its own BAR (placed by
 * ufio_dev_add_msix()).
 * The register map is in docs/sample-device.md.
 */
#include <errno.h>
#include <getopt.h>

#include <ufio/serve_opts.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ufio/migration.h>
#include <ufio/server.h>

#include "sample.h"

#define DEFAULT_SOCKET "/tmp/ufio-sample.sock"
#define SAMPLE_ID 0x4f494655u /* "UFIO" */

enum {
    REG_ID = 0x00,
    REG_VERSION = 0x04,
    REG_SCRATCH = 0x08,
    REG_IRQ_RAISE = 0x0c,
    REG_IRQ_COUNT = 0x10,
    REG_DMA_SRC_LO = 0x18,
    REG_DMA_SRC_HI = 0x1c,
    REG_DMA_DST_LO = 0x20,
    REG_DMA_DST_HI = 0x24,
    REG_DMA_LEN = 0x28,
    REG_DMA_CMD = 0x2c,
    REG_DMA_STATUS = 0x30,
    REG_DMA_SUM = 0x34,
    REG_DIGEST_LO = 0x38,
    REG_DIGEST_HI = 0x3c,
    REG_MIG_FAIL = 0x40,
    REG_STATE_MIB = 0x44,
};

static unsigned state_mib, dirty_rate;
static struct ufio_dev *the_dev;

static void raise_irq(struct ufio_dev *dev, struct sample *s, uint32_t vector)
{
    int mode = ufio_dev_irq_mode(dev);
    if (mode < 0)
        return;
    if (mode != UFIO_IRQ_MSIX)
        vector = 0;
    if (ufio_dev_irq_trigger(dev, (unsigned)mode, vector) >= 0)
        s->irq_count++;
}

static void do_dma(struct ufio_dev *dev, struct sample *s)
{
    if (s->dma_len == 0 || s->dma_len > DMA_MAX) {
        s->dma_status = 0x80000000u | EINVAL;
        return;
    }
    int err = ufio_dev_dma_read(dev, s->dma_src, s->buf, s->dma_len);
    uint32_t sum = 0;
    for (uint32_t i = 0; !err && i < s->dma_len; i++) {
        sum += s->buf[i];
        s->buf[i] ^= 0x5a;
    }
    if (!err)
        err = ufio_dev_dma_write(dev, s->dma_dst, s->buf, s->dma_len);
    s->dma_sum = sum;
    s->dma_status = err ? 0x80000000u | (uint32_t)-err : 1;
    raise_irq(dev, s, 0);
}

static int bar0_access(struct ufio_dev *dev, void *opaque, UFIO_UNUSED unsigned region, uint64_t off,
                       void *buf, uint32_t len, bool is_write)
{
    struct sample *s = opaque;
    if (len != 4 || off % 4)
        return -EINVAL;
    uint32_t v = 0;
    if (is_write) {
        memcpy(&v, buf, 4);
        switch (off) {
        case REG_SCRATCH: s->scratch = v; break;
        case REG_IRQ_RAISE: raise_irq(dev, s, v); break;
        case REG_DMA_SRC_LO: s->dma_src = (s->dma_src & ~0xffffffffull) | v; break;
        case REG_DMA_SRC_HI: s->dma_src = (s->dma_src & 0xffffffffull) | (uint64_t)v << 32; break;
        case REG_DMA_DST_LO: s->dma_dst = (s->dma_dst & ~0xffffffffull) | v; break;
        case REG_DMA_DST_HI: s->dma_dst = (s->dma_dst & 0xffffffffull) | (uint64_t)v << 32; break;
        case REG_DMA_LEN: s->dma_len = v; break;
        case REG_DMA_CMD: if (v == 1) do_dma(dev, s); break;
        case REG_MIG_FAIL: s->mig_fail = v; break;
        default: break;
        }
        return 0;
    }
    switch (off) {
    case REG_ID: v = SAMPLE_ID; break;
    case REG_VERSION: v = 1; break;
    case REG_SCRATCH: v = s->scratch; break;
    case REG_IRQ_COUNT: v = s->irq_count; break;
    case REG_DMA_SRC_LO: v = (uint32_t)s->dma_src; break;
    case REG_DMA_SRC_HI: v = (uint32_t)(s->dma_src >> 32); break;
    case REG_DMA_DST_LO: v = (uint32_t)s->dma_dst; break;
    case REG_DMA_DST_HI: v = (uint32_t)(s->dma_dst >> 32); break;
    case REG_DMA_LEN: v = s->dma_len; break;
    case REG_DMA_STATUS: v = s->dma_status; break;
    case REG_DMA_SUM: v = s->dma_sum; break;
    case REG_DIGEST_LO:
        s->digest_latch = sample_digest(s);
        v = (uint32_t)s->digest_latch;
        break;
    case REG_DIGEST_HI: v = (uint32_t)(s->digest_latch >> 32); break;
    case REG_MIG_FAIL: v = s->mig_fail; break;
    case REG_STATE_MIB: v = state_mib; break;
    default: break;
    }
    memcpy(buf, &v, 4);
    return 0;
}

/*
 * The I/O BAR takes 1-, 2- and 4-byte accesses, naturally aligned, as port I/O
 * from a real driver does (inb/inw/inl); a narrow write changes only its bytes.
 */
static int bar1_io_access(UFIO_UNUSED struct ufio_dev *dev, void *opaque, UFIO_UNUSED unsigned region,
                          uint64_t off, void *buf, uint32_t len, bool is_write)
{
    struct sample *s = opaque;
    if ((len != 1 && len != 2 && len != 4) || off % len)
        return -EINVAL;
    uint8_t *b = buf;
    unsigned first = (unsigned)(off % 4);
    uint64_t reg = off - first;
    if (is_write) {
        for (unsigned i = 0; reg == 4 && i < len; i++) {
            unsigned shift = (first + i) * 8;
            s->io_scratch = (s->io_scratch & ~(0xffu << shift)) | (uint32_t)b[i] << shift;
        }
        return 0;
    }
    uint32_t v = reg == 0 ? SAMPLE_ID : reg == 4 ? s->io_scratch : 0;
    for (unsigned i = 0; i < len; i++)
        b[i] = (uint8_t)(v >> ((first + i) * 8)); /* registers are little-endian */
    return 0;
}

static int sample_reset(UFIO_UNUSED struct ufio_dev *dev, void *opaque)
{
    struct sample *s = opaque;
    s->dma_status = 0;
    s->dma_len = 0;
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    if (the_dev)
        ufio_dev_stop(the_dev);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ufio-sample [--socket-path=PATH | --fd=N] [--poll-us=N] [--sw-version=X.Y.Z]\n"
            "                   [--compat-file=FILE] [--state-mib=N] [--dirty-rate=PAGES_PER_MS]\n"
            "                   [--mgmt-socket=PATH|none] [--allow-uid=UID] [-v]\n"
            "Serves the ufio sample PCI device over vfio-user (register map: docs/sample-device.md)\n"
            "on " DEFAULT_SOCKET " unless told otherwise.\n"
            "  --sw-version=X.Y.Z  software version in the migration descriptor (default 1.0.0)\n"
            "  --compat-file=FILE  use this JSON compatibility descriptor instead\n"
            "  --state-mib=N       N MiB of extra device state that migrates (default 0)\n"
            "  --dirty-rate=N      a thread writes N pages/ms of that state while the device runs\n"
            "                      (default 0; the client may cap it during migration)\n"
            UFIO_SERVE_USAGE
            "  -v, --verbose       log protocol activity to stderr\n"
            "  -h, --help          this text\n"
            "Keeps serving across client reconnects until SIGTERM/SIGINT, then removes the socket.\n");
}

static const char *compat_json;
static char compat_buf[1024];

/* The sample's compatibility descriptor (docs/compatibility.md). */
static int make_compat(const char *version, const char *file)
{
    if (file) {
        FILE *f = fopen(file, "r");
        if (!f)
            return -errno;
        size_t n = fread(compat_buf, 1, sizeof(compat_buf) - 1, f);
        fclose(f);
        compat_buf[n] = 0;
    } else {
        snprintf(compat_buf, sizeof(compat_buf),
                 "{\"device_api\":\"vfio-pci\",\"type\":\"ufio-sample\",\"software_version\":\"%s\","
                 "\"pci\":{\"vendor_id\":\"0x5546\",\"device_id\":\"0x0001\",\"subsystem_vendor_id\":\"0x5546\","
                 "\"subsystem_id\":\"0x0001\",\"class_code\":\"0xff0000\",\"revision\":1},"
                 "\"attributes\":{\"ram_kib\":64,\"msix_vectors\":4,\"state_mib\":%u}}",
                 version, state_mib);
    }
    compat_json = compat_buf;
    return 0;
}

static int build(struct ufio_dev *dev, struct sample *s)
{
    static const uint8_t vendor_body[] = { 'u', 'f', 'i', 'o' };
    void *ram;
    int err;
    if ((err = ufio_dev_add_bar(dev, 0, 4096, UFIO_BAR_MEM32, bar0_access, s)) ||
        (err = ufio_dev_add_bar(dev, 1, 256, UFIO_BAR_IO, bar1_io_access, s)) ||
        (err = ufio_dev_add_bar(dev, 2, 64 * 1024, UFIO_BAR_MEM32, NULL, NULL)) ||
        (err = ufio_dev_add_mmap_area(dev, 2, 0, 64 * 1024, &ram)))
        return err;
    s->ram = ram;
    for (unsigned i = 0; i < 64 * 1024; i++)
        s->ram[i] = (uint8_t)i;
    if ((err = ufio_dev_add_cap_pm(dev)) < 0 ||
        (err = ufio_dev_add_cap_msi(dev, 1, UFIO_MSI_64BIT | UFIO_MSI_MASKABLE)) < 0 ||
        (err = ufio_dev_add_msix(dev, 4, 4, 0, NULL, NULL)) < 0 || /* BAR4 of its own, laid out by the library */
        (err = ufio_dev_add_cap_pcie(dev, 0)) < 0 ||
        (err = ufio_dev_add_cap_vendor(dev, vendor_body, sizeof(vendor_body))) < 0 ||
        (err = ufio_dev_add_ext_cap_dsn(dev, 0x0123456789abcdefull)) < 0)
        return err;
    if ((err = ufio_dev_setup_irq(dev, UFIO_IRQ_ERR, 1)) || (err = ufio_dev_setup_irq(dev, UFIO_IRQ_REQ, 1)))
        return err;
    if ((err = sample_mig_init(s, state_mib, dirty_rate)) ||
        (err = ufio_dev_setup_migration(dev, &sample_mig_ops, s)))
        return err;
    return ufio_dev_set_compat(dev, compat_json);
}

int main(int argc, char **argv)
{
    bool verbose = false;
    const char *sw_version = "1.0.0", *compat_file = NULL;
    static const struct option opts[] = {
        { "sw-version", required_argument, NULL, 'V' },
        { "compat-file", required_argument, NULL, 'C' },
        { "state-mib", required_argument, NULL, 'M' },
        { "dirty-rate", required_argument, NULL, 'D' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        UFIO_SERVE_LONGOPTS,
        { 0 },
    };
    /* static: reachable until exit on every early return, freed on the last */
    static struct ufio_serve_opts *so;
    so = ufio_serve_opts_new();
    if (!so) {
        fprintf(stderr, "ufio-sample: out of memory\n");
        return 1;
    }
    int c;
    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        int taken = ufio_serve_opt(so, c, optarg, "ufio-sample");
        if (taken < 0)
            return 2;
        if (taken)
            continue;
        switch (c) {
        case 'M':
        case 'D': {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (!*optarg || *end || optarg[0] == '-' || v > (c == 'M' ? 65536ul : 1000000ul)) {
                fprintf(stderr, "ufio-sample: bad --%s value '%s'\n", c == 'M' ? "state-mib" : "dirty-rate", optarg);
                return 2;
            }
            *(c == 'M' ? &state_mib : &dirty_rate) = (unsigned)v;
            break;
        }
        case 'v': verbose = true; break;
        case 'V': sw_version = optarg; break;
        case 'C': compat_file = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (ufio_serve_check(so, DEFAULT_SOCKET, "ufio-sample"))
        return 2;
    if (verbose)
        ufio_set_log(NULL, NULL, UFIO_LOG_DEBUG);

    if (make_compat(sw_version, compat_file)) {
        fprintf(stderr, "ufio-sample: cannot read %s\n", compat_file);
        return 2;
    }
    static struct sample s;
    const struct ufio_pci_ids ids = {
        .vendor_id = 0x5546, .device_id = 0x0001,
        .subsys_vendor_id = 0x5546, .subsys_id = 0x0001,
        .class_code = 0xff0000, .revision = 1,
    };
    const struct ufio_dev_ops ops = { .size = sizeof(ops), .reset = sample_reset };
    struct ufio_dev *dev;
    int err = ufio_dev_create("ufio-sample", &ids, &ops, &s, &dev);
    if (!err)
        err = build(dev, &s);
    if (err) {
        fprintf(stderr, "ufio-sample: cannot build the device: %s\n", strerror(-err));
        ufio_dev_destroy(dev);
        sample_mig_fini(&s);
        return 1;
    }
    if ((err = ufio_serve_start(dev, so, DEFAULT_SOCKET, "ufio-sample"))) {
        ufio_dev_destroy(dev);
        sample_mig_fini(&s);
        return ufio_serve_exit_code(so, err);
    }
    the_dev = dev;
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (ufio_serve_socket(so))
        printf("listening on %s\n", ufio_serve_socket(so));
    else
        printf("serving fd %d\n", ufio_serve_fd(so));
    fflush(stdout);

    err = ufio_dev_run(dev);
    the_dev = NULL;
    ufio_dev_destroy(dev);
    sample_mig_fini(&s);
    ufio_serve_opts_free(so);
    if (err) {
        fprintf(stderr, "ufio-sample: %s\n", strerror(-err));
        return 1;
    }
    return 0;
}
