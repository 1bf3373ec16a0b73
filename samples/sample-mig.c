/*
 * ufio-sample's migration: its state is the registers, BAR2 (64 KiB, which
 * the client may write through its own mmap) and an optional extra state of
 * N MiB that a thread keeps dirtying while the device runs.
 *
 * Stream format (the device payload inside ufio's records), little-endian:
 *   REGS (2): u8 kind, the registers as 10 u32
 *   PAGE (3): u8 kind, u32 page number, 4096 bytes
 * Pages 0..15 are BAR2, 16.. the extra state. A page sent again supersedes
 * the earlier copy (load writes it in place), so precopy rounds re-send
 * dirty pages and the destination never accumulates them.
 *
 * Which pages to send: BAR2 pages that differ from what was sent (a copy is
 * kept, so writes through the client's mapping are caught), and extra pages
 * whose dirty flag is set (the dirtier sets it after each write). A save
 * session (save_start) marks everything to be sent again.
 *
 * The digest sums a 64-bit hash per page (hash_page()); the extra pages' hashes are
 * cached (computed as they are saved or loaded, recomputed when the dirtier
 * marked them stale), so digesting a stopped device costs little more than
 * the pages dirtied since its last save.
 */
#include "sample.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <ufio/server.h>

enum { REC_REGS = 2, REC_PAGE = 3 };
#define PAGE_REC (5 + PAGE)

/* Register state that migrates (fixed layout: the stream is little-endian u32s). */
struct regs {
    uint32_t scratch, io_scratch, irq_count;
    uint32_t dma_src_lo, dma_src_hi, dma_dst_lo, dma_dst_hi;
    uint32_t dma_len, dma_status, dma_sum;
};

struct sample_mig {
    uint8_t *big;            /* the extra state */
    size_t big_pages, npages;
    uint8_t *dirty;          /* per extra page: written since it was last saved */
    uint8_t *stale;          /* per extra page: hash[] is out of date */
    uint64_t *hash;
    uint8_t sent[RAM_SIZE];  /* BAR2 as the destination has it */
    bool forced[RAM_PAGES];  /* BAR2 pages to send whatever sent[] says */
    size_t cursor;           /* next page to look at in this pass */
    bool first_pass_done, regs_sent, loaded_regs;
    /* the dirtier */
    pthread_t th;
    bool have_th;
    int run;                 /* atomic */
    unsigned rate;           /* pages per ms asked for */
    uint64_t limit;          /* pages per second the client allows, 0 = none (atomic) */
};

static uint8_t *page_ptr(struct sample *s, size_t p)
{
    return p < RAM_PAGES ? s->ram + p * PAGE : s->mig->big + (p - RAM_PAGES) * PAGE;
}

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

static uint64_t hash_bytes(const uint8_t *p, size_t len, uint64_t seed)
{
    uint64_t a = seed ^ 0x9e3779b97f4a7c15ull, b = ~seed;
    for (size_t i = 0; i + 16 <= len; i += 16) {
        uint64_t x, y;
        memcpy(&x, p + i, 8);
        memcpy(&y, p + i + 8, 8);
        a = (a ^ x) * 0x100000001b3ull;
        b = (b ^ y) * 0x100000001b3ull;
    }
    return mix(a ^ mix(b) ^ len);
}

/*
 * A page's hash, on the migration path of both ends (every page saved or
 * loaded is hashed): each 8-byte word w is mixed with a key word of its own
 * position k as lo32(w ^ k) * hi32(w ^ k) + w, summed into lane (word index
 * mod 8), the eight lanes then mixed. With AVX2 the 32 x 32 -> 64-bit
 * products of four words are one instruction (vpmuludq): measured here 46
 * GiB/s against 14.5 for the multiply chain per word it replaced; the plain
 * C loop computes the same value where AVX2 is missing. Keys by position
 * make a word moved within a page change the hash; the added w keeps a zero
 * product from hiding its word.
 */
static uint64_t page_key[PAGE / 8];

static void page_key_init(void)
{
    uint64_t x = 0x2545f4914f6cdd1dull;
    for (size_t i = 0; i < PAGE / 8; i++) {
        x += 0x9e3779b97f4a7c15ull; /* splitmix64 */
        page_key[i] = mix(x);
    }
}

static uint64_t lanes_mix(const uint64_t acc[8], uint64_t seed)
{
    uint64_t h = seed;
    for (int l = 0; l < 8; l++)
        h = mix(h ^ acc[l]);
    return h;
}

/*
 * dst, when not NULL, receives a copy of the page: the copy and the hash are
 * one pass over the page (each word loaded once), which is what save and
 * load need, instead of a memcpy and then a hash reading the page again.
 */
#if defined(__x86_64__)
__attribute__((target("avx2"))) static uint64_t hash_page_avx2(uint8_t *dst, const uint8_t *p, uint64_t seed)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
    for (size_t i = 0; i < PAGE; i += 64) {
        __m256i w0 = _mm256_loadu_si256((const __m256i *)(const void *)(p + i));
        __m256i w1 = _mm256_loadu_si256((const __m256i *)(const void *)(p + i + 32));
        if (dst) {
            _mm256_storeu_si256((__m256i *)(void *)(dst + i), w0);
            _mm256_storeu_si256((__m256i *)(void *)(dst + i + 32), w1);
        }
        __m256i x0 = _mm256_xor_si256(w0, _mm256_loadu_si256((const __m256i *)(const void *)(page_key + i / 8)));
        __m256i x1 = _mm256_xor_si256(w1, _mm256_loadu_si256((const __m256i *)(const void *)(page_key + i / 8 + 4)));
        a0 = _mm256_add_epi64(a0, _mm256_add_epi64(_mm256_mul_epu32(x0, _mm256_srli_epi64(x0, 32)), w0));
        a1 = _mm256_add_epi64(a1, _mm256_add_epi64(_mm256_mul_epu32(x1, _mm256_srli_epi64(x1, 32)), w1));
    }
    uint64_t acc[8];
    _mm256_storeu_si256((__m256i *)(void *)acc, a0);
    _mm256_storeu_si256((__m256i *)(void *)(acc + 4), a1);
    return lanes_mix(acc, seed);
}
#endif

static uint64_t hash_page_copy(uint8_t *dst, const uint8_t *p, uint64_t seed)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2"))
        return hash_page_avx2(dst, p, seed);
#endif
    uint64_t acc[8] = { 0 };
    for (size_t i = 0; i < PAGE / 8; i++) {
        uint64_t w;
        memcpy(&w, p + 8 * i, 8);
        if (dst)
            memcpy(dst + 8 * i, &w, 8);
        uint64_t x = w ^ page_key[i];
        acc[i % 8] += (x & 0xffffffffu) * (x >> 32) + w;
    }
    return lanes_mix(acc, seed);
}

static uint64_t hash_page(const uint8_t *p, uint64_t seed)
{
    return hash_page_copy(NULL, p, seed);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the dirtier ------------------------------------------------------------- */

static void *dirtier(void *arg)
{
    struct sample_mig *m = arg;
    uint64_t seed = 88172645463325252ull, t0 = now_ns(), done = 0, last_lim = 0;
    while (__atomic_load_n(&m->run, __ATOMIC_ACQUIRE)) {
        struct timespec ms = { 0, 1000000 };
        nanosleep(&ms, NULL);
        double rate = m->rate; /* per ms */
        uint64_t lim = __atomic_load_n(&m->limit, __ATOMIC_RELAXED);
        if (lim != last_lim) {
            t0 = now_ns(); /* a new rate counts afresh */
            done = 0;
            last_lim = lim;
        }
        if (lim && lim / 1000.0 < rate)
            rate = lim / 1000.0;
        uint64_t due = (uint64_t)((now_ns() - t0) / 1e6 * rate);
        for (; done < due; done++) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            size_t p = seed % m->big_pages;
            m->big[p * PAGE + (seed >> 40) % PAGE]++;
            __atomic_store_n(&m->dirty[p], 1, __ATOMIC_RELEASE);
            __atomic_store_n(&m->stale[p], 1, __ATOMIC_RELEASE);
        }
    }
    return NULL;
}

static void dirtier_run(struct sample_mig *m, bool on)
{
    if (on && !m->have_th && m->rate && m->big_pages) {
        __atomic_store_n(&m->run, 1, __ATOMIC_RELEASE);
        m->have_th = pthread_create(&m->th, NULL, dirtier, m) == 0;
    } else if (!on && m->have_th) {
        __atomic_store_n(&m->run, 0, __ATOMIC_RELEASE);
        pthread_join(m->th, NULL);
        m->have_th = false;
    }
}

int sample_mig_init(struct sample *s, unsigned state_mib, unsigned dirty_rate)
{
    struct sample_mig *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    page_key_init();
    m->big_pages = (size_t)state_mib * (1u << 20) / PAGE;
    m->npages = RAM_PAGES + m->big_pages;
    m->rate = dirty_rate;
    if (m->big_pages) {
        m->big = mmap(NULL, m->big_pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        m->dirty = calloc(m->big_pages, 1);
        m->stale = malloc(m->big_pages);
        m->hash = malloc(m->big_pages * sizeof(*m->hash));
        if (m->big == MAP_FAILED || !m->dirty || !m->stale || !m->hash) {
            if (m->big != MAP_FAILED)
                munmap(m->big, m->big_pages * PAGE);
            free(m->dirty);
            free(m->stale);
            free(m->hash);
            free(m);
            return -ENOMEM;
        }
        memset(m->stale, 1, m->big_pages);
        memset(m->hash, 0xff, m->big_pages * sizeof(*m->hash)); /* resident now, not at the first load */
        for (size_t p = 0; p < m->big_pages; p++)
            memcpy(m->big + p * PAGE, &p, sizeof(p)); /* every page touched: the state is resident */
    }
    s->mig = m;
    dirtier_run(m, true); /* the device starts RUNNING */
    return 0;
}

void sample_mig_fini(struct sample *s)
{
    struct sample_mig *m = s->mig;
    if (!m)
        return;
    dirtier_run(m, false);
    if (m->big)
        munmap(m->big, m->big_pages * PAGE);
    free(m->dirty);
    free(m->stale);
    free(m->hash);
    free(m);
    s->mig = NULL;
}

/* ---- digest ---------------------------------------------------------------------- */

uint64_t sample_digest(struct sample *s)
{
    struct sample_mig *m = s->mig;
    struct regs r = { s->scratch, s->io_scratch, s->irq_count, (uint32_t)s->dma_src, (uint32_t)(s->dma_src >> 32),
                      (uint32_t)s->dma_dst, (uint32_t)(s->dma_dst >> 32), s->dma_len, s->dma_status, s->dma_sum };
    uint64_t d = hash_bytes((const uint8_t *)&r, sizeof(r), 1);
    for (size_t p = 0; p < m->npages; p++) {
        uint64_t h;
        if (p < RAM_PAGES) {
            h = hash_page(page_ptr(s, p), 2);
        } else {
            size_t i = p - RAM_PAGES;
            if (__atomic_exchange_n(&m->stale[i], 0, __ATOMIC_ACQ_REL))
                m->hash[i] = hash_page(page_ptr(s, p), 2);
            h = m->hash[i];
        }
        d += mix(h ^ (p * 0x9e3779b97f4a7c15ull)); /* order-free, so a cache per page works */
    }
    return d;
}

static int mig_digest(UFIO_UNUSED struct ufio_dev *dev, void *opaque, void *out, size_t cap)
{
    if (cap < 8)
        return -ENOSPC;
    uint64_t d = sample_digest(opaque);
    uint8_t *b = out;
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(d >> (8 * i));
    return 8;
}

/* ---- save / load ------------------------------------------------------------------ */

static int mig_save_start(UFIO_UNUSED struct ufio_dev *dev, void *opaque)
{
    struct sample *s = opaque;
    struct sample_mig *m = s->mig;
    if (s->mig_fail & MIG_FAIL_SAVE_START) {
        s->mig_fail = 0;
        return -EIO;
    }
    /* a new session: everything goes again, whatever an earlier one sent */
    for (unsigned p = 0; p < RAM_PAGES; p++)
        m->forced[p] = true;
    if (m->big_pages)
        memset(m->dirty, 1, m->big_pages);
    m->cursor = 0;
    m->first_pass_done = false;
    m->regs_sent = false;
    return 0;
}

static int mig_transition(UFIO_UNUSED struct ufio_dev *dev, void *opaque, unsigned from, unsigned to)
{
    struct sample *s = opaque;
    struct sample_mig *m = s->mig;
    if ((s->mig_fail & MIG_FAIL_ARC) && MIG_FAIL_FROM(s->mig_fail) == from && MIG_FAIL_TO(s->mig_fail) == to) {
        s->mig_fail = 0;
        return -EIO; /* injected: nothing changed */
    }
    if (to == UFIO_MIG_STOP_COPY) {
        m->cursor = 0; /* one pass over what is still dirty */
        m->regs_sent = false;
    }
    if (to == UFIO_MIG_RESUMING)
        m->loaded_regs = false;
    dirtier_run(m, to == UFIO_MIG_RUNNING || to == UFIO_MIG_PRE_COPY);
    return 0;
}

static bool page_needed(struct sample *s, size_t p)
{
    struct sample_mig *m = s->mig;
    if (p < RAM_PAGES) {
        if (!m->forced[p] && !memcmp(s->ram + p * PAGE, m->sent + p * PAGE, PAGE))
            return false;
        m->forced[p] = false;
        memcpy(m->sent + p * PAGE, s->ram + p * PAGE, PAGE);
        return true;
    }
    return __atomic_exchange_n(&m->dirty[p - RAM_PAGES], 0, __ATOMIC_ACQ_REL) != 0;
}

static ssize_t mig_save(struct ufio_dev *dev, void *opaque, void *out, size_t len)
{
    struct sample *s = opaque;
    struct sample_mig *m = s->mig;
    uint8_t *b = out;
    size_t off = 0;
    bool stopped = ufio_dev_mig_state(dev) == UFIO_MIG_STOP_COPY;
    if (stopped && (s->mig_fail & MIG_FAIL_SAVE_ETIME)) {
        s->mig_fail = 0;
        return -ETIME;
    }
    if (stopped && !m->regs_sent) {
        struct regs r = { s->scratch, s->io_scratch, s->irq_count, (uint32_t)s->dma_src,
                          (uint32_t)(s->dma_src >> 32), (uint32_t)s->dma_dst, (uint32_t)(s->dma_dst >> 32),
                          s->dma_len, s->dma_status, s->dma_sum };
        b[off++] = REC_REGS;
        memcpy(b + off, &r, sizeof(r));
        off += sizeof(r);
        m->regs_sent = true;
    }
    if (!stopped && m->cursor == m->npages) {
        m->cursor = 0; /* the pass ended on the previous call: this round is over */
        m->first_pass_done = true;
        return 0;
    }
    while (m->cursor < m->npages && off + PAGE_REC <= len) {
        size_t p = m->cursor++;
        if (!page_needed(s, p))
            continue;
        /* a full barrier before the copy: a write we miss sets stale again after it */
        if (p >= RAM_PAGES)
            __atomic_exchange_n(&m->stale[p - RAM_PAGES], 0, __ATOMIC_SEQ_CST);
        uint32_t idx = (uint32_t)p;
        b[off] = REC_PAGE;
        memcpy(b + off + 1, &idx, 4);
        if (p >= RAM_PAGES) /* what was copied; a write after it marks the page stale again */
            m->hash[p - RAM_PAGES] = hash_page_copy(b + off + 5, page_ptr(s, p), 2);
        else
            memcpy(b + off + 5, page_ptr(s, p), PAGE);
        off += PAGE_REC;
    }
    if (!stopped && off == 0 && m->cursor == m->npages) {
        m->cursor = 0;
        m->first_pass_done = true;
    }
    return (ssize_t)off;
}

static int mig_load(UFIO_UNUSED struct ufio_dev *dev, void *opaque, const void *in, size_t len, bool last)
{
    struct sample *s = opaque;
    struct sample_mig *m = s->mig;
    const uint8_t *b = in;
    size_t off = 0;
    /* each piece is what one mig_save() call produced, so items never straddle */
    while (off < len) {
        uint8_t kind = b[off];
        if (kind == REC_REGS && len - off >= 1 + sizeof(struct regs)) {
            struct regs r;
            memcpy(&r, b + off + 1, sizeof(r));
            s->scratch = r.scratch;
            s->io_scratch = r.io_scratch;
            s->irq_count = r.irq_count;
            s->dma_src = r.dma_src_lo | (uint64_t)r.dma_src_hi << 32;
            s->dma_dst = r.dma_dst_lo | (uint64_t)r.dma_dst_hi << 32;
            s->dma_len = r.dma_len;
            s->dma_status = r.dma_status;
            s->dma_sum = r.dma_sum;
            m->loaded_regs = true;
            off += 1 + sizeof(r);
        } else if (kind == REC_PAGE && len - off >= PAGE_REC) {
            uint32_t p;
            memcpy(&p, b + off + 1, 4);
            if (p >= m->npages)
                return -EINVAL;
            /* a later copy replaces an earlier one */
            if (p >= RAM_PAGES) {
                m->hash[p - RAM_PAGES] = hash_page_copy(page_ptr(s, p), b + off + 5, 2);
                m->stale[p - RAM_PAGES] = 0;
            } else {
                memcpy(page_ptr(s, p), b + off + 5, PAGE);
            }
            if (s->mig_fail & MIG_FAIL_CORRUPT_LOAD) {
                s->mig_fail = 0;
                page_ptr(s, p)[100] ^= 1; /* injected: the digest must catch this */
            }
            off += PAGE_REC;
        } else {
            return -EINVAL;
        }
    }
    if (last && !m->loaded_regs)
        return -EINVAL; /* a stream without the registers is not a whole device */
    return 0;
}

static size_t pages_needed(struct sample *s)
{
    struct sample_mig *m = s->mig;
    size_t n = 0;
    for (size_t p = 0; p < RAM_PAGES; p++)
        n += m->forced[p] || memcmp(s->ram + p * PAGE, m->sent + p * PAGE, PAGE) != 0;
    for (size_t p = 0; p < m->big_pages; p++)
        n += __atomic_load_n(&m->dirty[p], __ATOMIC_RELAXED);
    return n;
}

static void mig_estimate(struct ufio_dev *dev, void *opaque, uint64_t *initial, uint64_t *dirty,
                         uint64_t *stop_copy)
{
    struct sample *s = opaque;
    struct sample_mig *m = s->mig;
    uint64_t bytes = (uint64_t)pages_needed(s) * PAGE_REC;
    unsigned st = ufio_dev_mig_state(dev);
    bool saving = st == UFIO_MIG_PRE_COPY || st == UFIO_MIG_STOP_COPY;
    *initial = saving && !m->first_pass_done ? bytes : 0;
    *dirty = saving && m->first_pass_done ? bytes : 0;
    /* outside a session everything would go */
    *stop_copy = 1 + sizeof(struct regs) + (saving ? bytes : (uint64_t)m->npages * PAGE_REC);
}

static int mig_dirty_limit(UFIO_UNUSED struct ufio_dev *dev, void *opaque, uint64_t pages_per_sec)
{
    struct sample *s = opaque;
    __atomic_store_n(&s->mig->limit, pages_per_sec, __ATOMIC_RELAXED);
    return 0;
}

const struct ufio_mig_ops sample_mig_ops = {
    .size = sizeof(struct ufio_mig_ops),
    .flags = UFIO_MIG_F_STOP_COPY | UFIO_MIG_F_PRE_COPY,
    .transition = mig_transition,
    .save = mig_save,
    .load = mig_load,
    .estimate = mig_estimate,
    .save_start = mig_save_start,
    .digest = mig_digest,
    .dirty_limit = mig_dirty_limit,
};
