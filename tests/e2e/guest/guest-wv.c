/*
 * The guest's continuous write-and-verify workload on /dev/vda (the handover
 * test): O_DIRECT writes of runs of 4 KiB blocks, each block self-describing
 * (magic, block number, generation, checksum of the rest), each write
 * followed by the read-back and check of another block already written; per
 * I/O latency kept as the maximum inside the windows the host marks and
 * outside them. At the end every block is read and checked against the
 * generation the guest last wrote there, the kernel log is searched for I/O
 * errors and resets, and a manifest (every block's generation) is written to
 * the disk's first blocks so the host can check the image on its own
 * ("vblk wvcheck IMAGE").
 *
 * The host marks windows on the serial console (guest-window.c); the
 * workload announces "# wv running" once the first I/Os went through.
 */
#define _GNU_SOURCE /* O_DIRECT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest.h"

#define WV_BLOCK 4096u
#define WV_RUN_MAX 16u   /* blocks per write */
#define WV_MAGIC 0x3130565734464955ull /* "UFI4WV01" */
#define WV_MANIFEST_MAGIC 0x3130464e4d565755ull
#define WV_HDR 32u
/* blocks [0, manifest_blocks) hold the manifest; the workload uses the rest */

static uint64_t wv_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* FNV-1a over 64-bit words: cheap and order-sensitive. */
static uint64_t wv_sum(const uint8_t *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
    }
    return h;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Block b at generation gen (0: never written; the host made it zeros). */
static void wv_fill(uint8_t *p, uint64_t b, uint32_t gen)
{
    if (!gen) {
        memset(p, 0, WV_BLOCK);
        return;
    }
    for (size_t i = WV_HDR; i < WV_BLOCK; i += 8)
        put_u64(p + i, wv_mix(b << 32 ^ (uint64_t)gen << 12 ^ i));
    put_u64(p, WV_MAGIC);
    put_u64(p + 8, b);
    put_u64(p + 16, gen);
    put_u64(p + 24, wv_sum(p + WV_HDR, WV_BLOCK - WV_HDR));
}

/* NULL if p is block b at generation gen, else what is wrong. */
static const char *wv_check_block(const uint8_t *p, uint64_t b, uint32_t gen)
{
    if (!gen) {
        for (size_t i = 0; i < WV_BLOCK; i++)
            if (p[i])
                return "never written, not zero";
        return NULL;
    }
    if (get_u64(p) != WV_MAGIC)
        return "no block header";
    if (get_u64(p + 8) != b)
        return "another block's data (misplaced write)";
    if (get_u64(p + 24) != wv_sum(p + WV_HDR, WV_BLOCK - WV_HDR))
        return "checksum mismatch (torn or corrupted)";
    if (get_u64(p + 16) != gen)
        return get_u64(p + 16) < gen ? "an older generation (lost write)" : "a newer generation than written";
    return NULL;
}

static size_t manifest_blocks(uint64_t nblocks)
{
    return (size_t)((WV_HDR + nblocks * 4 + WV_BLOCK - 1) / WV_BLOCK);
}

/* ---- the workload ------------------------------------------------------------------- */

struct wv {
    int fd;
    uint64_t nblocks, first; /* blocks of the disk; the first the workload uses */
    uint32_t *gen;
    uint8_t *buf, *rbuf;
    uint64_t writes, reads, bytes, errors, bad_reads;
    char first_error[160];
    struct win win;
    uint64_t rng;
};

static void wv_error(struct wv *w, const char *fmt, unsigned long long a, const char *what)
{
    if (!w->errors++)
        snprintf(w->first_error, sizeof(w->first_error), fmt, a, what);
}

static uint64_t next_rand(struct wv *w)
{
    w->rng = wv_mix(w->rng);
    return w->rng;
}

static bool timed_io(struct wv *w, uint8_t *p, uint64_t block, size_t nblk, bool write)
{
    double t0 = now_us();
    size_t len = nblk * WV_BLOCK;
    off_t off = (off_t)(block * WV_BLOCK);
    ssize_t n = write ? pwrite(w->fd, p, len, off) : pread(w->fd, p, len, off);
    win_record(&w->win, now_us() - t0);
    if (n != (ssize_t)len) {
        wv_error(w, "%s at block %llu: %s", (unsigned long long)block,
                 n < 0 ? strerror(errno) : "short transfer");
        return false;
    }
    w->bytes += len;
    return true;
}

/* One step: a run of blocks written, then one written block read back and checked. */
static void wv_step(struct wv *w)
{
    uint64_t span = w->nblocks - w->first;
    uint64_t b = w->first + next_rand(w) % span;
    size_t run = 1 + (size_t)(next_rand(w) % WV_RUN_MAX);
    if (b + run > w->nblocks)
        run = (size_t)(w->nblocks - b);
    for (size_t i = 0; i < run; i++)
        wv_fill(w->buf + i * WV_BLOCK, b + i, w->gen[b + i] + 1);
    if (timed_io(w, w->buf, b, run, true)) {
        for (size_t i = 0; i < run; i++)
            w->gen[b + i]++;
        w->writes++;
    }
    /* a block written earlier (or just now, when nothing else was) */
    uint64_t r = w->first + next_rand(w) % span;
    for (int tries = 0; tries < 8 && !w->gen[r]; tries++)
        r = w->first + next_rand(w) % span;
    if (timed_io(w, w->rbuf, r, 1, false)) {
        w->reads++;
        const char *bad = wv_check_block(w->rbuf, r, w->gen[r]);
        if (bad) {
            w->bad_reads++;
            wv_error(w, "read-back of block %llu: %s", (unsigned long long)r, bad);
        }
    }
    win_step_done(&w->win);
}

/* Every block against its generation. Returns the blocks that differ. */
static uint64_t wv_verify_all(struct wv *w, char *why, size_t cap)
{
    uint64_t bad = 0;
    const size_t chunk = WV_RUN_MAX;
    for (uint64_t b = w->first; b < w->nblocks; b += chunk) {
        size_t n = w->nblocks - b < chunk ? (size_t)(w->nblocks - b) : chunk;
        ssize_t got = pread(w->fd, w->rbuf, n * WV_BLOCK, (off_t)(b * WV_BLOCK));
        if (got != (ssize_t)(n * WV_BLOCK)) {
            if (!bad)
                snprintf(why, cap, "read at block %llu failed", (unsigned long long)b);
            bad += n;
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            const char *e = wv_check_block(w->rbuf + i * WV_BLOCK, b + i, w->gen[b + i]);
            if (e && !bad++)
                snprintf(why, cap, "block %llu: %s", (unsigned long long)(b + i), e);
        }
    }
    return bad;
}

/* The manifest: magic, block count, first block, CRC-ish sum, then u32 generations. */
static bool wv_write_manifest(struct wv *w)
{
    size_t mb = manifest_blocks(w->nblocks);
    uint8_t *m = NULL;
    if (posix_memalign((void **)&m, 4096, mb * WV_BLOCK))
        return false;
    memset(m, 0, mb * WV_BLOCK);
    memcpy(m + WV_HDR, w->gen, w->nblocks * 4);
    put_u64(m, WV_MANIFEST_MAGIC);
    put_u64(m + 8, w->nblocks);
    put_u64(m + 16, w->first);
    put_u64(m + 24, wv_sum(m + WV_HDR, mb * WV_BLOCK - WV_HDR));
    bool ok = pwrite(w->fd, m, mb * WV_BLOCK, 0) == (ssize_t)(mb * WV_BLOCK) && fsync(w->fd) == 0;
    free(m);
    return ok;
}

int wv_run(int fd, uint64_t disk_bytes)
{
    static struct wv w;
    memset(&w, 0, sizeof(w));
    w.fd = fd;
    w.nblocks = disk_bytes / WV_BLOCK;
    w.first = manifest_blocks(w.nblocks);
    w.rng = 0x5eed;
    w.gen = calloc((size_t)w.nblocks, 4);
    if (posix_memalign((void **)&w.buf, 4096, WV_RUN_MAX * WV_BLOCK) ||
        posix_memalign((void **)&w.rbuf, 4096, WV_RUN_MAX * WV_BLOCK) || !w.gen)
        return verdict("workload buffers");
    int cerr = win_open(&w.win);
    check(!cerr, "wv-console-input", "/dev/ttyS0: %s", cerr ? strerror(-cerr) : "open");
    unsigned trouble_before = kernel_log_trouble(~0u);
    for (int i = 0; i < 32; i++)
        wv_step(&w);
    note("wv running (%llu blocks of 4 KiB, manifest %llu blocks)", (unsigned long long)w.nblocks,
         (unsigned long long)w.first);
    double t0 = now_us();
    while (win_poll(&w.win))
        wv_step(&w);
    win_finish(&w.win);
    double secs = (now_us() - t0) / 1e6;
    check(w.errors == 0, "wv-io", "%llu writes, %llu reads, %.1f MiB in %.1f s, %llu errors%s%s",
          (unsigned long long)w.writes, (unsigned long long)w.reads, (double)w.bytes / (1 << 20), secs,
          (unsigned long long)w.errors, w.errors ? ": " : "", w.first_error);
    check(w.bad_reads == 0 && w.reads > 0, "wv-read-back", "%llu read-backs verified, %llu wrong",
          (unsigned long long)(w.reads - w.bad_reads), (unsigned long long)w.bad_reads);
    check(fsync(fd) == 0, "wv-flush", "fsync");
    char why[160] = "";
    uint64_t bad = wv_verify_all(&w, why, sizeof(why));
    uint64_t written = 0;
    for (uint64_t b = w.first; b < w.nblocks; b++)
        written += w.gen[b] != 0;
    check(bad == 0, "wv-final-verify", "%llu blocks (%llu written at least once), %llu differ%s%s",
          (unsigned long long)(w.nblocks - w.first), (unsigned long long)written, (unsigned long long)bad,
          bad ? ": " : "", why);
    check(wv_write_manifest(&w), "wv-manifest", "%llu generations at block 0", (unsigned long long)w.nblocks);
    unsigned trouble = kernel_log_trouble(trouble_before);
    check(trouble == trouble_before, "wv-kernel-log", "%u lines about I/O errors, resets or timeouts",
          trouble - trouble_before);
    win_report(&w.win);
    free(w.gen);
    free(w.buf);
    free(w.rbuf);
    win_close(&w.win);
    return verdict(NULL);
}

/* On the host: the image matches its manifest, block by block. 0 if so. */
int wv_check_image(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "wvcheck: %s: %s\n", path, strerror(errno));
        return 1;
    }
    uint8_t head[WV_HDR], *blk = malloc(WV_BLOCK);
    int rc = 1;
    uint8_t *m = NULL;
    if (!blk || pread(fd, head, WV_HDR, 0) != WV_HDR || get_u64(head) != WV_MANIFEST_MAGIC) {
        fprintf(stderr, "wvcheck: no manifest at block 0\n");
        goto out;
    }
    uint64_t nblocks = get_u64(head + 8), first = get_u64(head + 16);
    size_t mb = manifest_blocks(nblocks);
    if (nblocks > (1u << 24) || first != mb || !(m = malloc(mb * WV_BLOCK)) ||
        pread(fd, m, mb * WV_BLOCK, 0) != (ssize_t)(mb * WV_BLOCK) ||
        get_u64(m + 24) != wv_sum(m + WV_HDR, mb * WV_BLOCK - WV_HDR)) {
        fprintf(stderr, "wvcheck: manifest damaged\n");
        goto out;
    }
    uint64_t bad = 0, written = 0;
    for (uint64_t b = first; b < nblocks; b++) {
        uint32_t gen;
        memcpy(&gen, m + WV_HDR + b * 4, 4);
        written += gen != 0;
        const char *e = pread(fd, blk, WV_BLOCK, (off_t)(b * WV_BLOCK)) == WV_BLOCK ? wv_check_block(blk, b, gen)
                                                                                     : "unreadable";
        if (e && bad++ < 5)
            fprintf(stderr, "wvcheck: block %llu (generation %u): %s\n", (unsigned long long)b, gen, e);
    }
    fprintf(stderr, "wvcheck: %llu blocks, %llu written, %llu differ\n", (unsigned long long)(nblocks - first),
            (unsigned long long)written, (unsigned long long)bad);
    rc = bad ? 1 : 0;
out:
    free(m);
    free(blk);
    close(fd);
    return rc;
}
