/*
 * The second client the cross-host tests verify with: it fills the sample's
 * state before a migration and reads it back, from outside, after one.
 *   xmig_peek fill SOCK SEED    BAR2 gets a pattern from SEED, SCRATCH = SEED
 *   xmig_peek digest SOCK       prints "state=S scratch=X bar2=FNV64 size=N dev=DIGEST"
 * (dev: the sample's own digest of registers, BAR2 and its extra state)
 *   xmig_peek state SOCK        prints "state=S", read as a migration controller: unlike an
 *                               owner's read, it leaves a stopped device stopped when it goes
 *   xmig_peek inject SOCK BITS  writes the sample's fault register (REG_MIG_FAIL, one-shot:
 *                               0x40000 = the next page loaded gets one byte wrong)
 *   xmig_peek own SOCK READYFILE   the owner, busy: writes 1, 2, 3... to SCRATCH until
 *                               SIGTERM, then prints "writes=N last=V" (V: the last
 *                               write the device answered); READYFILE appears after
 *                               the first write
 * Each attaches as the owner (only an owner may read BARs): digest and fill
 * run when no VMM is attached.
 * Exit 0, or 1 with the reason on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ufio/client.h>
#include <ufio/migration.h>

#define BAR0 0
#define BAR2 2
#define REG_SCRATCH 0x08
#define REG_DIGEST_LO 0x38 /* the sample's digest of its whole state (0 on samples without it) */
#define REG_DIGEST_HI 0x3c
#define REG_MIG_FAIL 0x40
#define CHUNK (1u << 20)

static int die(const char *what, int e)
{
    fprintf(stderr, "xmig_peek: %s: %s\n", what, strerror(-e));
    return 1;
}

static uint64_t next(uint64_t *x)
{
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    return *x;
}

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

/* The owner's workload: each write is answered only while the device runs
 * (held during stop-copy), so the last answered one is in the migrated state. */
static int own(struct ufio_client *c, const char *ready)
{
    uint32_t n = 0, last = 0;
    unsigned long writes = 0;
    while (!stop) {
        n++;
        if (ufio_client_region_write(c, BAR0, REG_SCRATCH, &n, 4) == 0) {
            last = n;
            if (writes++ == 0)
                close(open(ready, O_CREAT | O_WRONLY, 0600));
        }
    }
    printf("writes=%lu last=0x%08x\n", writes, last);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 ||
        (strcmp(argv[1], "fill") && strcmp(argv[1], "digest") && strcmp(argv[1], "own") && strcmp(argv[1], "inject") &&
         strcmp(argv[1], "state")) ||
        (strcmp(argv[1], "digest") && strcmp(argv[1], "state") && argc < 4)) {
        fprintf(stderr, "usage: xmig_peek fill SOCK SEED | digest SOCK | state SOCK | inject SOCK BITS | own SOCK "
                        "READYFILE\n");
        return 2;
    }
    if (!strcmp(argv[1], "state")) {
        struct ufio_client_opts cco = { .size = sizeof(cco), .timeout_ms = 10000, .role = UFIO_ROLE_CONTROLLER_REQ };
        struct ufio_client *cc;
        unsigned st = 0;
        int err = ufio_client_connect(argv[2], &cco, &cc);
        if (err)
            return die(argv[2], err);
        err = ufio_client_mig_get_state(cc, &st);
        ufio_client_destroy(cc);
        if (err)
            return die("state", err);
        printf("state=%s\n", ufio_mig_state_name(st));
        return 0;
    }
    struct ufio_client *c;
    bool owning = !strcmp(argv[1], "own");
    struct ufio_client_opts co = { .size = sizeof(co), .timeout_ms = owning ? 1000 : 10000,
                                   .role = UFIO_ROLE_OWNER_REQ };
    if (!strcmp(argv[1], "own")) {
        struct sigaction sa = { .sa_handler = on_term };
        sigaction(SIGTERM, &sa, NULL);
    }
    int e = ufio_client_connect(argv[2], &co, &c);
    if (e)
        return die(argv[2], e);
    struct ufio_client_region_info ri = { .size = sizeof(ri) };
    if ((e = ufio_client_region_info(c, BAR2, &ri)))
        return die("BAR2 info", e);
    uint8_t *buf = malloc(CHUNK);
    if (!buf)
        return die("malloc", -ENOMEM);
    int rc = 0;
    if (!strcmp(argv[1], "own")) {
        rc = own(c, argv[3]);
    } else if (!strcmp(argv[1], "inject")) {
        uint32_t bits = (uint32_t)strtoul(argv[3], NULL, 0), back = 0;
        if ((e = ufio_client_region_write(c, BAR0, REG_MIG_FAIL, &bits, 4)) ||
            (e = ufio_client_region_read(c, BAR0, REG_MIG_FAIL, &back, 4)))
            rc = die("inject", e);
        else if (back != bits)
            rc = die("inject: the register did not keep the value", -EIO);
    } else if (!strcmp(argv[1], "fill")) {
        uint64_t seed = strtoull(argv[3], NULL, 0), x = seed | 1;
        uint32_t s32 = (uint32_t)seed;
        for (uint64_t off = 0; off < ri.region_size && !e; off += CHUNK) {
            size_t n = ri.region_size - off < CHUNK ? (size_t)(ri.region_size - off) : CHUNK;
            for (size_t i = 0; i + 8 <= n; i += 8) {
                uint64_t v = next(&x);
                memcpy(buf + i, &v, 8);
            }
            e = ufio_client_region_write(c, BAR2, off, buf, n);
        }
        if (!e)
            e = ufio_client_region_write(c, BAR0, REG_SCRATCH, &s32, 4);
        if (e)
            rc = die("fill", e);
    } else {
        uint64_t h = 0xcbf29ce484222325ull;
        for (uint64_t off = 0; off < ri.region_size && !e; off += CHUNK) {
            size_t n = ri.region_size - off < CHUNK ? (size_t)(ri.region_size - off) : CHUNK;
            if (!(e = ufio_client_region_read(c, BAR2, off, buf, n)))
                for (size_t i = 0; i < n; i++)
                    h = (h ^ buf[i]) * 0x100000001b3ull;
        }
        uint32_t scratch = 0, lo = 0, hi = 0;
        unsigned st = 0;
        if (!e)
            e = ufio_client_region_read(c, BAR0, REG_SCRATCH, &scratch, 4);
        /* LO latches the digest, HI reads the latched upper half */
        if (!e)
            e = ufio_client_region_read(c, BAR0, REG_DIGEST_LO, &lo, 4);
        if (!e)
            e = ufio_client_region_read(c, BAR0, REG_DIGEST_HI, &hi, 4);
        if (!e)
            e = ufio_client_mig_get_state(c, &st);
        if (e)
            rc = die("digest", e);
        else
            printf("state=%s scratch=0x%08x bar2=%016" PRIx64 " size=%" PRIu64 " dev=%08x%08x\n",
                   ufio_mig_state_name(st), scratch, h, ri.region_size, hi, lo);
    }
    free(buf);
    ufio_client_destroy(c);
    return rc;
}
