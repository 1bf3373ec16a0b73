/*
 * ufio-lspci: show a vfio-user device the way lspci shows a PCI device, with
 * lspci's levels of detail (-v, -vv, -vvv), plus the vfio-user facts
 * (regions, mmap areas, IRQs, negotiated caps).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <ufio/client.h>
#include <ufio/migration.h>

static uint8_t cfg[4096];
static uint32_t cfg_size = 256;

static uint16_t c16(unsigned o) { return (uint16_t)(cfg[o] | cfg[o + 1] << 8); }
static uint32_t c32(unsigned o) { return (uint32_t)c16(o) | (uint32_t)c16(o + 2) << 16; }

static const char *class_name(uint8_t base, uint8_t sub)
{
    static const struct { uint8_t b, s; const char *n; } t[] = {
        { 0x01, 0x00, "SCSI storage controller" }, { 0x01, 0x06, "SATA controller" },
        { 0x01, 0x08, "Non-Volatile memory controller" }, { 0x01, 0x80, "Mass storage controller" },
        { 0x02, 0x00, "Ethernet controller" }, { 0x02, 0x80, "Network controller" },
        { 0x03, 0x00, "VGA compatible controller" }, { 0x04, 0x01, "Multimedia audio controller" },
        { 0x05, 0x00, "RAM memory" }, { 0x06, 0x00, "Host bridge" }, { 0x06, 0x04, "PCI bridge" },
        { 0x08, 0x80, "System peripheral" }, { 0x0c, 0x03, "USB controller" },
        { 0x12, 0x00, "Processing accelerators" }, { 0xff, 0x00, "Unassigned class" },
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (t[i].b == base && t[i].s == sub)
            return t[i].n;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (t[i].b == base)
            return t[i].n;
    return "Class";
}

static const char *cap_name(uint8_t id)
{
    switch (id) {
    case 0x01: return "Power Management";
    case 0x05: return "MSI";
    case 0x09: return "Vendor Specific Information";
    case 0x10: return "Express";
    case 0x11: return "MSI-X";
    default: return "Capability";
    }
}

static const char *ext_cap_name(uint16_t id)
{
    switch (id) {
    case 0x01: return "Advanced Error Reporting";
    case 0x03: return "Device Serial Number";
    case 0x0b: return "Vendor Specific Information";
    case 0x10: return "Single Root I/O Virtualization (SR-IOV)";
    default: return "Extended Capability";
    }
}

/* Virtio 1.x devices (vendor 0x1af4, device 0x1000..0x107f) describe their
 * structures in vendor capabilities: cfg_type at +3, bar +4, offset +8, length
 * +12, and for Notify the queue notify multiplier at +16 (virtio spec 4.1.4). */
static bool is_virtio(void)
{
    return c16(0) == 0x1af4 && c16(2) >= 0x1000 && c16(2) <= 0x107f;
}

static const char *virtio_cap_name(uint8_t type)
{
    switch (type) {
    case 1: return "CommonCfg";
    case 2: return "Notify";
    case 3: return "ISR";
    case 4: return "DeviceCfg";
    case 5: return "PCICfg";
    case 8: return "SharedMemory";
    case 9: return "Vendor";
    default: return "<unknown>";
    }
}

/* A vendor capability at off that is a virtio structure (long enough to hold one). */
static bool virtio_cap_at(unsigned off)
{
    return is_virtio() && cfg[off + 2] >= 16 && off + 16 <= 256;
}

static void size_str(uint64_t s, char *buf, size_t n)
{
    static const char *u[] = { "", "K", "M", "G", "T" };
    int i = 0;
    while (s >= 1024 && !(s % 1024) && i < 4) {
        s /= 1024;
        i++;
    }
    snprintf(buf, n, "%llu%s", (unsigned long long)s, u[i]);
}

static void hexdump(unsigned len)
{
    for (unsigned o = 0; o < len; o += 16) {
        printf("%02x:", o);
        for (unsigned i = 0; i < 16; i++)
            printf(" %02x", cfg[o + i]);
        printf("\n");
    }
}

static void print_pm(unsigned off, int verbose)
{
    uint16_t pmc = c16(off + 2), st = c16(off + 4);
    printf(" version %u\n", pmc & 7);
    if (verbose < 2)
        return;
    static const unsigned aux_ma[] = { 0, 55, 100, 160, 220, 270, 320, 375 };
    printf("\t\tFlags: PMEClk%c DSI%c D1%c D2%c AuxCurrent=%umA PME(D0%c,D1%c,D2%c,D3hot%c,D3cold%c)\n",
           pmc & 0x8 ? '+' : '-', pmc & 0x20 ? '+' : '-', pmc & 0x200 ? '+' : '-', pmc & 0x400 ? '+' : '-',
           aux_ma[(pmc >> 6) & 7], pmc & 0x800 ? '+' : '-', pmc & 0x1000 ? '+' : '-', pmc & 0x2000 ? '+' : '-',
           pmc & 0x4000 ? '+' : '-', pmc & 0x8000 ? '+' : '-');
    printf("\t\tStatus: D%u NoSoftRst%c PME-Enable%c DSel=%u DScale=%u PME%c\n", st & 3, st & 0x8 ? '+' : '-',
           st & 0x100 ? '+' : '-', (st >> 9) & 0xf, (st >> 13) & 3, st & 0x8000 ? '+' : '-');
}

static void print_msi(unsigned off, int verbose)
{
    uint16_t ctl = c16(off + 2);
    bool is64 = ctl & 0x80, mask = ctl & 0x100;
    printf(": Enable%c Count=%u/%u Maskable%c 64bit%c\n", ctl & 1 ? '+' : '-', 1u << ((ctl >> 4) & 7),
           1u << ((ctl >> 1) & 7), mask ? '+' : '-', is64 ? '+' : '-');
    if (verbose < 2)
        return;
    unsigned data = off + (is64 ? 12 : 8);
    if (is64)
        printf("\t\tAddress: %08x%08x  Data: %04x\n", c32(off + 8), c32(off + 4), c16(data));
    else
        printf("\t\tAddress: %08x  Data: %04x\n", c32(off + 4), c16(data));
    if (mask)
        printf("\t\tMasking: %08x  Pending: %08x\n", c32(data + 4), c32(data + 8));
}

static void print_express(unsigned off, int verbose)
{
    static const char *types[] = { "Endpoint", "Legacy Endpoint", "", "", "Root Port",
                                   "Upstream Port", "Downstream Port", "PCI-Express to PCI/PCI-X Bridge",
                                   "PCI/PCI-X to PCI-Express Bridge", "Root Complex Integrated Endpoint",
                                   "Root Complex Event Collector" };
    unsigned t = (c16(off + 2) >> 4) & 0xf;
    printf(" (v%u) %s, MSI %02x\n", c16(off + 2) & 0xf, t < 11 ? types[t] : "Unknown", (c16(off + 2) >> 9) & 0x1f);
    if (verbose < 2)
        return;
    uint32_t devcap = c32(off + 4), lnkcap = c32(off + 12);
    uint16_t devctl = c16(off + 8), devsta = c16(off + 10), lnksta = c16(off + 18);
    static const char *speed[] = { "unknown", "2.5GT/s", "5GT/s", "8GT/s", "16GT/s", "32GT/s", "64GT/s" };
    printf("\t\tDevCap:\tMaxPayload %u bytes, PhantFunc %u, FLReset%c\n", 128u << (devcap & 7), (devcap >> 3) & 3,
           devcap & (1u << 28) ? '+' : '-');
    printf("\t\tDevCtl:\tCorrErr%c NonFatalErr%c FatalErr%c UnsupReq%c\n", devctl & 1 ? '+' : '-',
           devctl & 2 ? '+' : '-', devctl & 4 ? '+' : '-', devctl & 8 ? '+' : '-');
    printf("\t\t\tMaxPayload %u bytes, MaxReadReq %u bytes\n", 128u << ((devctl >> 5) & 7),
           128u << ((devctl >> 12) & 7));
    printf("\t\tDevSta:\tCorrErr%c NonFatalErr%c FatalErr%c UnsupReq%c AuxPwr%c TransPend%c\n",
           devsta & 1 ? '+' : '-', devsta & 2 ? '+' : '-', devsta & 4 ? '+' : '-', devsta & 8 ? '+' : '-',
           devsta & 0x10 ? '+' : '-', devsta & 0x20 ? '+' : '-');
    printf("\t\tLnkCap:\tPort #%u, Speed %s, Width x%u\n", lnkcap >> 24,
           (lnkcap & 0xf) < 7 ? speed[lnkcap & 0xf] : "unknown", (lnkcap >> 4) & 0x3f);
    printf("\t\tLnkSta:\tSpeed %s, Width x%u\n", (lnksta & 0xf) < 7 ? speed[lnksta & 0xf] : "unknown",
           (lnksta >> 4) & 0x3f);
}

static void print_vendor(unsigned off, int verbose)
{
    printf(": ");
    if (!virtio_cap_at(off)) {
        printf("Len=%02x <?>\n", cfg[off + 2]);
        return;
    }
    uint8_t type = cfg[off + 3];
    printf("VirtIO: %s\n", virtio_cap_name(type));
    if (verbose < 2)
        return;
    printf("\t\tBAR=%u offset=%08x size=%08x", cfg[off + 4], c32(off + 8), c32(off + 12));
    if (type == 2 && cfg[off + 2] >= 20)
        printf(" multiplier=%08x", c32(off + 16));
    printf("\n");
}

/* -vvv: the MSI-X table and PBA as the device holds them (read from the BAR). */
static void print_msix_table(struct ufio_client *c, unsigned off)
{
    unsigned n = (c16(off + 2) & 0x7ff) + 1, shown = n > 64 ? 64 : n;
    uint32_t t = c32(off + 4), p = c32(off + 8);
    for (unsigned v = 0; v < shown; v++) {
        uint32_t e[4];
        if (ufio_client_region_read(c, t & 7, (t & ~7u) + 16ull * v, e, 16)) {
            printf("\t\tVector %u: <unreadable>\n", v);
            return;
        }
        printf("\t\tVector %3u: Address %08x%08x Data %08x Masked%c\n", v, e[1], e[0], e[2], e[3] & 1 ? '+' : '-');
    }
    if (shown < n)
        printf("\t\t(%u more vectors)\n", n - shown);
    uint64_t pba;
    if (!ufio_client_region_read(c, p & 7, p & ~7u, &pba, 8))
        printf("\t\tPending: %016llx%s\n", (unsigned long long)pba, n > 64 ? " (vectors 0..63)" : "");
}

static void print_caps_text(struct ufio_client *c, int verbose)
{
    if (!(c16(6) & 0x10))
        return;
    unsigned off = cfg[0x34] & ~3u;
    for (int hops = 0; off >= 0x40 && off < 256 && hops < 48; hops++) {
        uint8_t id = cfg[off];
        printf("\tCapabilities: [%02x] %s", off, cap_name(id));
        switch (id) {
        case 0x01:
            print_pm(off, verbose);
            break;
        case 0x05:
            print_msi(off, verbose);
            break;
        case 0x10:
            print_express(off, verbose);
            break;
        case 0x11: {
            uint16_t ctl = c16(off + 2);
            printf(": Enable%c Count=%u Masked%c\n", ctl & 0x8000 ? '+' : '-', (ctl & 0x7ff) + 1,
                   ctl & 0x4000 ? '+' : '-');
            printf("\t\tVector table: BAR=%u offset=%08x\n", c32(off + 4) & 7, c32(off + 4) & ~7u);
            printf("\t\tPBA: BAR=%u offset=%08x\n", c32(off + 8) & 7, c32(off + 8) & ~7u);
            if (verbose >= 3)
                print_msix_table(c, off);
            break;
        }
        case 0x09:
            print_vendor(off, verbose);
            break;
        default:
            printf(" [%02x]\n", id);
        }
        off = cfg[off + 1] & ~3u;
    }
    if (cfg_size < 4096)
        return;
    off = 0x100;
    for (int hops = 0; off >= 0x100 && off < 4096 && hops < 960; hops++) {
        uint32_t h = c32(off);
        if (!h || h == 0xffffffff)
            break;
        printf("\tCapabilities: [%03x v%u] %s", off, (h >> 16) & 0xf, ext_cap_name(h & 0xffff));
        if ((h & 0xffff) == 3 && off + 12 <= 4096) {
            printf(" ");
            for (int i = 7; i >= 0; i--)
                printf("%02x%s", cfg[off + 4 + i], i ? "-" : "");
        }
        printf("\n");
        off = (h >> 20) & ~3u;
    }
}

static json_object *caps_json(void)
{
    json_object *a = json_object_new_array();
    if (c16(6) & 0x10) {
        unsigned off = cfg[0x34] & ~3u;
        for (int hops = 0; off >= 0x40 && off < 256 && hops < 48; hops++) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "offset", json_object_new_int((int)off));
            json_object_object_add(o, "id", json_object_new_int(cfg[off]));
            json_object_object_add(o, "name", json_object_new_string(cap_name(cfg[off])));
            if (cfg[off] == 0x09 && virtio_cap_at(off)) {
                json_object *v = json_object_new_object();
                json_object_object_add(v, "type", json_object_new_string(virtio_cap_name(cfg[off + 3])));
                json_object_object_add(v, "bar", json_object_new_int(cfg[off + 4]));
                json_object_object_add(v, "offset", json_object_new_int64(c32(off + 8)));
                json_object_object_add(v, "length", json_object_new_int64(c32(off + 12)));
                if (cfg[off + 3] == 2 && cfg[off + 2] >= 20)
                    json_object_object_add(v, "notify_off_multiplier", json_object_new_int64(c32(off + 16)));
                json_object_object_add(o, "virtio", v);
            }
            if (cfg[off] == 0x11)
                json_object_object_add(o, "table_size", json_object_new_int((c16(off + 2) & 0x7ff) + 1));
            if (cfg[off] == 0x05)
                json_object_object_add(o, "vectors", json_object_new_int(1 << ((c16(off + 2) >> 1) & 7)));
            json_object_array_add(a, o);
            off = cfg[off + 1] & ~3u;
        }
    }
    if (cfg_size == 4096) {
        unsigned off = 0x100;
        for (int hops = 0; off >= 0x100 && off < 4096 && hops < 960; hops++) {
            uint32_t h = c32(off);
            if (!h || h == 0xffffffff)
                break;
            json_object *o = json_object_new_object();
            json_object_object_add(o, "offset", json_object_new_int((int)off));
            json_object_object_add(o, "ext_id", json_object_new_int((int)(h & 0xffff)));
            json_object_object_add(o, "name", json_object_new_string(ext_cap_name(h & 0xffff)));
            if ((h & 0xffff) == 3) {
                char s[24];
                snprintf(s, sizeof(s), "%08x%08x", c32(off + 8), c32(off + 4));
                json_object_object_add(o, "serial", json_object_new_string(s));
            }
            json_object_array_add(a, o);
            off = (h >> 20) & ~3u;
        }
    }
    return a;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: ufio-lspci [-v | -vv | -vvv] [-x | -xxx | -xxxx] [--json] [--timeout MS] SOCKET\n"
               "Shows the vfio-user device at SOCKET as lspci shows a PCI device, plus vfio-user details.\n"
               "  (none)    one line: class, ids, revision (as plain `lspci`)\n"
               "  -v        verbose, as `lspci -v`: subsystem, BARs, capabilities by name (virtio\n"
               "            structures as \"VirtIO: CommonCfg\"...), and the vfio-user regions, mmap\n"
               "            areas, IRQs and negotiated caps\n"
               "  -vv       more, as `lspci -vv`: Control/Status registers, capability contents (PM,\n"
               "            MSI address/data, Express, virtio BAR/offset/size/multiplier)\n"
               "  -vvv      everything: also the MSI-X table and PBA as the device holds them, and\n"
               "            the device's compatibility descriptor\n"
               "  -x        hex dump of the standard part of config space (64 bytes)\n"
               "  -xxx      hex dump of the whole conventional config space (256 bytes)\n"
               "  -xxxx     hex dump of the extended config space (4096 bytes)\n"
               "            (dumps are in the format `lspci -F FILE` reads)\n"
               "  --json    machine-readable output (everything -vv shows)\n"
               "  --timeout connect/reply timeout in ms (default 5000)\n");
}

static void print_control_status(void)
{
    uint16_t cmd = c16(4), st = c16(6);
#define F(v, bit) ((v) & (bit) ? '+' : '-')
    printf("\tControl: I/O%c Mem%c BusMaster%c SpecCycle%c MemWINV%c VGASnoop%c ParErr%c Stepping%c SERR%c "
           "FastB2B%c DisINTx%c\n",
           F(cmd, 1), F(cmd, 2), F(cmd, 4), F(cmd, 8), F(cmd, 0x10), F(cmd, 0x20), F(cmd, 0x40), F(cmd, 0x80),
           F(cmd, 0x100), F(cmd, 0x200), F(cmd, 0x400));
    static const char *devsel[] = { "fast", "medium", "slow", "??" };
    printf("\tStatus: Cap%c 66MHz%c UDF%c FastB2B%c ParErr%c DEVSEL=%s >TAbort%c <TAbort%c <MAbort%c >SERR%c "
           "<PERR%c INTx%c\n",
           F(st, 0x10), F(st, 0x20), F(st, 0x40), F(st, 0x80), F(st, 0x100), devsel[(st >> 9) & 3], F(st, 0x800),
           F(st, 0x1000), F(st, 0x2000), F(st, 0x4000), F(st, 0x8000), F(st, 0x8));
#undef F
    if (cfg[0x3d])
        printf("\tInterrupt: pin %c (vfio-user: delivered by eventfd)\n", 'A' + (cfg[0x3d] - 1) % 4);
}

/* -vvv: the descriptor the device gives migration tools (docs/compatibility.md). */
static void print_compat(struct ufio_client *c)
{
    char *buf = malloc(65537);
    size_t got = 0;
    if (buf && !ufio_client_feature(c, UFIO_FEATURE_GET | UFIO_FEATURE_COMPAT_DESC, NULL, 0, buf, 65536, &got) && got) {
        buf[got] = 0;
        printf("\tvfio-user: compatibility descriptor %s\n", buf);
    } else {
        printf("\tvfio-user: no compatibility descriptor\n");
    }
    free(buf);
}

int main(int argc, char **argv)
{
    int xlevel = 0, verbose = 0, json = 0, timeout = 5000;
    static const struct option opts[] = {
        { "json", no_argument, NULL, 'j' },
        { "timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "vxh", opts, NULL)) != -1) {
        switch (ch) {
        case 'v': verbose++; break;
        case 'x': xlevel++; break;
        case 'j': json = 1; break;
        case 't': timeout = atoi(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    const char *path = argv[optind];
    struct ufio_client_opts o = { .size = sizeof(o), .timeout_ms = timeout, .role = UFIO_ROLE_OBSERVER_REQ };
    struct ufio_client *c;
    int err = ufio_client_connect(path, &o, &c);
    if (err) {
        fprintf(stderr, "ufio-lspci: %s: %s\n", path, strerror(-err));
        return 1;
    }
    struct ufio_client_device_info di = { .size = sizeof(di) };
    struct ufio_client_region_info ri[UFIO_PCI_NUM_REGIONS];
    struct ufio_client_irq_info ii[UFIO_IRQ_NUM];
    /* sparse mmap areas per region, as many as we print */
    static struct ufio_client_area mm[UFIO_PCI_NUM_REGIONS][64];
    uint32_t nmm[UFIO_PCI_NUM_REGIONS] = { 0 };
    for (unsigned i = 0; i < UFIO_PCI_NUM_REGIONS; i++)
        ri[i] = (struct ufio_client_region_info){ .size = sizeof(ri[i]) };
    for (unsigned i = 0; i < UFIO_IRQ_NUM; i++)
        ii[i] = (struct ufio_client_irq_info){ .size = sizeof(ii[i]) };
    err = ufio_client_device_info(c, &di);
    for (unsigned i = 0; !err && i < UFIO_PCI_NUM_REGIONS && i < di.num_regions; i++) {
        err = ufio_client_region_info(c, i, &ri[i]);
        int n = err ? err : ri[i].nr_areas ? ufio_client_region_areas(c, i, mm[i], 64) : 0;
        err = n < 0 ? n : 0;
        nmm[i] = n > 64 ? 64 : (uint32_t)(n > 0 ? n : 0);
    }
    for (unsigned i = 0; !err && i < UFIO_IRQ_NUM && i < di.num_irqs; i++)
        err = ufio_client_irq_info(c, i, &ii[i]);
    if (!err) {
        cfg_size = ri[UFIO_PCI_CONFIG_REGION].region_size >= 4096 ? 4096 : 256;
        err = ufio_client_region_read(c, UFIO_PCI_CONFIG_REGION, 0, cfg, cfg_size);
    }
    if (err) {
        fprintf(stderr, "ufio-lspci: %s: %s\n", path, strerror(-err));
        ufio_client_destroy(c);
        return 1;
    }
    struct ufio_client_caps caps = { .size = sizeof(caps) };
    ufio_client_get_caps(c, &caps);

    if (xlevel && !json) {
        /* exactly the layout pciutils' dump reader (lspci -F) accepts */
        printf("00:00.0 %s [%02x%02x]: Device %04x:%04x", class_name(cfg[0xb], cfg[0xa]), cfg[0xb],
               cfg[0xa], c16(0), c16(2));
        if (cfg[8])
            printf(" (rev %02x)", cfg[8]);
        printf("\n");
        hexdump(xlevel >= 4 ? cfg_size : xlevel >= 3 ? 256 : 64);
        printf("\n");
        ufio_client_destroy(c);
        return 0;
    }
    if (json) {
        json_object *root = json_object_new_object();
        char s[16];
        snprintf(s, sizeof(s), "%04x", c16(0));
        json_object_object_add(root, "vendor_id", json_object_new_string(s));
        snprintf(s, sizeof(s), "%04x", c16(2));
        json_object_object_add(root, "device_id", json_object_new_string(s));
        snprintf(s, sizeof(s), "%04x", c16(0x2c));
        json_object_object_add(root, "subsystem_vendor_id", json_object_new_string(s));
        snprintf(s, sizeof(s), "%04x", c16(0x2e));
        json_object_object_add(root, "subsystem_id", json_object_new_string(s));
        snprintf(s, sizeof(s), "%06x", c32(8) >> 8);
        json_object_object_add(root, "class", json_object_new_string(s));
        json_object_object_add(root, "revision", json_object_new_int(cfg[8]));
        json_object_object_add(root, "capabilities", caps_json());
        json_object *regs = json_object_new_array();
        for (unsigned i = 0; i < UFIO_PCI_NUM_REGIONS && i < di.num_regions; i++) {
            json_object *r = json_object_new_object();
            json_object_object_add(r, "index", json_object_new_int((int)i));
            json_object_object_add(r, "size", json_object_new_int64((int64_t)ri[i].region_size));
            json_object_object_add(r, "flags", json_object_new_int((int)ri[i].flags));
            if (i < 6 && ri[i].region_size)
                json_object_object_add(r, "type", json_object_new_string(
                    (cfg[0x10 + 4 * i] & 1) ? "io" : (cfg[0x10 + 4 * i] & 4) ? "mem64" : "mem32"));
            json_object *areas = json_object_new_array();
            for (uint32_t a = 0; a < nmm[i]; a++) {
                json_object *ao = json_object_new_object();
                json_object_object_add(ao, "offset", json_object_new_int64((int64_t)mm[i][a].offset));
                json_object_object_add(ao, "size", json_object_new_int64((int64_t)mm[i][a].size));
                json_object_array_add(areas, ao);
            }
            json_object_object_add(r, "mmap_areas", areas);
            json_object_array_add(regs, r);
        }
        json_object_object_add(root, "regions", regs);
        json_object *irqs = json_object_new_array();
        for (unsigned i = 0; i < UFIO_IRQ_NUM && i < di.num_irqs; i++) {
            json_object *q = json_object_new_object();
            json_object_object_add(q, "index", json_object_new_int((int)i));
            json_object_object_add(q, "count", json_object_new_int((int)ii[i].count));
            json_object_object_add(q, "flags", json_object_new_int((int)ii[i].flags));
            json_object_array_add(irqs, q);
        }
        json_object_object_add(root, "irqs", irqs);
        json_object *neg = json_object_new_object();
        snprintf(s, sizeof(s), "%u.%u", caps.major, caps.minor);
        json_object_object_add(neg, "version", json_object_new_string(s));
        json_object_object_add(neg, "max_msg_fds", json_object_new_int((int)caps.max_msg_fds));
        json_object_object_add(neg, "max_data_xfer_size", json_object_new_int64((int64_t)caps.max_data_xfer_size));
        json_object_object_add(neg, "max_dma_maps", json_object_new_int64(caps.max_dma_maps));
        json_object_object_add(neg, "pgsizes", json_object_new_int64((int64_t)caps.pgsizes));
        json_object_object_add(neg, "twin_socket", json_object_new_boolean(caps.twin_socket));
        json_object_object_add(neg, "write_multiple", json_object_new_boolean(caps.write_multiple));
        json_object_object_add(root, "negotiated", neg);
        printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
        json_object_put(root);
        ufio_client_destroy(c);
        return 0;
    }

    printf("%s: %s [%02x%02x]: Device %04x:%04x", path, class_name(cfg[0xb], cfg[0xa]), cfg[0xb],
           cfg[0xa], c16(0), c16(2));
    if (cfg[8])
        printf(" (rev %02x)", cfg[8]);
    if (cfg[9])
        printf(" (prog-if %02x)", cfg[9]);
    printf("\n");
    if (!verbose) {
        ufio_client_destroy(c);
        return 0;
    }
    printf("\tSubsystem: Device %04x:%04x\n", c16(0x2c), c16(0x2e));
    if (verbose >= 2) {
        print_control_status();
    } else {
        uint16_t cmd = c16(4);
        printf("\tFlags: %sfast devsel", cmd & 4 ? "bus master, " : "");
        if (cfg[0x3d])
            printf(", IRQ pin %c", 'A' + cfg[0x3d] - 1);
        printf("\n");
    }
    for (unsigned i = 0; i < 6; i++) {
        if (!ri[i].region_size)
            continue;
        char sz[16];
        size_str(ri[i].region_size, sz, sizeof(sz));
        uint32_t bar = c32(0x10 + 4 * i);
        if (bar & 1)
            printf("\tI/O ports at <unassigned> [size=%s]", sz);
        else
            printf("\tMemory at <unassigned> (%s-bit, %sprefetchable) [size=%s]", bar & 4 ? "64" : "32",
                   bar & 8 ? "" : "non-", sz);
        if (ri[i].flags & 4)
            printf(" [mmap]");
        printf("\n");
    }
    if (ri[UFIO_PCI_ROM_REGION].region_size) {
        char sz[16];
        size_str(ri[UFIO_PCI_ROM_REGION].region_size, sz, sizeof(sz));
        printf("\tExpansion ROM at <unassigned> [disabled] [size=%s]\n", sz);
    }
    print_caps_text(c, verbose);
    printf("\tvfio-user: version %u.%u, max_data_xfer_size %llu, max_msg_fds %u, max_dma_maps %u, "
           "twin socket %s, write multiple %s\n",
           caps.major, caps.minor, (unsigned long long)caps.max_data_xfer_size, caps.max_msg_fds,
           caps.max_dma_maps, caps.twin_socket ? "yes" : "no", caps.write_multiple ? "yes" : "no");
    printf("\tvfio-user: device flags %s%s, %u regions, %u IRQ indices\n", di.flags & 1 ? "reset " : "",
           di.flags & 2 ? "pci" : "", di.num_regions, di.num_irqs);
    static const char *rnames[] = { "BAR0", "BAR1", "BAR2", "BAR3", "BAR4", "BAR5", "ROM", "CONFIG", "VGA" };
    for (unsigned i = 0; i < UFIO_PCI_NUM_REGIONS && i < di.num_regions; i++) {
        if (!ri[i].region_size)
            continue;
        printf("\tRegion %u (%s): size %#llx, %s%s%s\n", i, rnames[i], (unsigned long long)ri[i].region_size,
               ri[i].flags & 1 ? "read " : "", ri[i].flags & 2 ? "write " : "", ri[i].flags & 4 ? "mmap" : "");
        for (uint32_t a = 0; a < nmm[i]; a++)
            printf("\t\tmmap area: offset %#llx size %#llx\n", (unsigned long long)mm[i][a].offset,
                   (unsigned long long)mm[i][a].size);
    }
    static const char *inames[] = { "INTx", "MSI", "MSI-X", "ERR", "REQ" };
    for (unsigned i = 0; i < UFIO_IRQ_NUM && i < di.num_irqs; i++)
        printf("\tIRQ %s: count %u%s%s%s\n", inames[i], ii[i].count, ii[i].flags & 1 ? " eventfd" : "",
               ii[i].flags & 2 ? " maskable" : "", ii[i].flags & 4 ? " automasked" : "");
    if (verbose >= 3)
        print_compat(c);
    printf("\n");
    ufio_client_destroy(c);
    return 0;
}
