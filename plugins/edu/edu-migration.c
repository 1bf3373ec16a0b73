/*
 * Migration plugin for QEMU's educational PCI device ("edu", 1234:11e8),
 * an example of <ufio/migration_plugin.h> (docs/vfio-pci.md).
 *
 * The device has no migration interface of its own, so the plugin rebuilds
 * its state through its ordinary registers:
 *   - liveness (0x04) stores the complement of what is written;
 *   - the factorial register (0x08) can only be written with an input and
 *     then holds input! (mod 2^32): any value it can hold is n! mod 2^32 for
 *     some n <= 34, so the plugin writes that n (with the interrupt-on-
 *     completion bit off, so restoring raises nothing);
 *   - the 4 KiB DMA buffer at device address 0x40000 is not visible in the
 *     BAR: it goes out and back in through the device's own DMA engine and a
 *     buffer the host maps into the device's IOMMU below the 28-bit DMA mask;
 *   - the DMA command register keeps its last command minus the run bit
 *     and takes no write without it: one more DMA with the saved bits puts
 *     it back (on the source too, after the buffer went out);
 *   - interrupt status is restored by raising the saved bits (0x60), which
 *     signals the interrupt on the destination as the source had it pending.
 * STOP waits for a running factorial or DMA to finish (bounded), so the
 * state saved is quiescent. The image is versioned and checked on load.
 */
#include <ufio/migration.h>
#include <ufio/migration_plugin.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EDU_ID        0x00
#define EDU_LIVENESS  0x04
#define EDU_FACT      0x08
#define EDU_STATUS    0x20
#define EDU_IRQ_STAT  0x24
#define EDU_IRQ_RAISE 0x60
#define EDU_IRQ_ACK   0x64
#define EDU_DMA_SRC   0x80
#define EDU_DMA_DST   0x88
#define EDU_DMA_CNT   0x90
#define EDU_DMA_CMD   0x98

#define EDU_STATUS_COMPUTING 0x01u
#define EDU_STATUS_IRQFACT   0x80u
#define EDU_DMA_RUN          0x1u
#define EDU_DMA_TO_PCI       0x2u
#define EDU_DMA_IRQ          0x4u
#define EDU_BUF_ADDR         0x40000u
#define EDU_BUF_SIZE         4096u
#define EDU_DMA_LIMIT        (1ull << 28) /* the device's default dma_mask + 1 */
#define EDU_WAIT_MS          3000          /* its DMA runs 100 ms after the command */

#define IMAGE_MAGIC   0x31554445u /* "EDU1" */
#define IMAGE_VERSION 1u
#define IMAGE_HEAD    (4 * 10)
#define IMAGE_SIZE    (IMAGE_HEAD + EDU_BUF_SIZE)

struct edu {
    const struct ufio_mp_host *h;
    uint8_t *dma;           /* the host's DMA buffer */
    uint64_t dma_iova;
    uint8_t image[IMAGE_SIZE];
    size_t image_len, image_off;
    bool have_image;
    uint8_t rx[IMAGE_SIZE];
    size_t rx_len;
    bool rx_overflow;
};

static void say(struct edu *e, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(struct edu *e, int level, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (e->h->log)
        e->h->log(e->h->ctx, level, msg);
}

static int rd(struct edu *e, uint32_t reg, uint32_t *v)
{
    return e->h->region_read(e->h->ctx, 0, reg, v, 4);
}

static int wr(struct edu *e, uint32_t reg, uint32_t v)
{
    return e->h->region_write(e->h->ctx, 0, reg, &v, 4);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Polls reg until (value & mask) == 0: the device offers no completion event to wait on here. */
static int wait_clear(struct edu *e, uint32_t reg, uint32_t mask)
{
    uint64_t deadline = now_ms() + EDU_WAIT_MS;
    for (;;) {
        uint32_t v;
        int err = rd(e, reg, &v);
        if (err)
            return err;
        if (!(v & mask))
            return 0;
        if (now_ms() > deadline)
            return -ETIMEDOUT;
        struct timespec pause = { 0, 200000 };
        nanosleep(&pause, NULL);
    }
}

/* The PCI command register, through config space (VFIO region 7). */
static int cmd_get(struct edu *e, uint16_t *v)
{
    return e->h->region_read(e->h->ctx, 7, 4, v, 2);
}

static int cmd_set(struct edu *e, uint16_t v)
{
    return e->h->region_write(e->h->ctx, 7, 4, &v, 2);
}

static int edu_dma_run(struct edu *e, bool to_host, uint32_t irq_bit);

/* One DMA of the whole buffer between the device and the host's buffer, with
 * bus mastering on for it (the client may not have enabled it yet). */
static int edu_dma(struct edu *e, bool to_host, uint32_t irq_bit)
{
    uint16_t cmd;
    int err = cmd_get(e, &cmd);
    if (err)
        return err;
    if (!(cmd & 0x4) && (err = cmd_set(e, cmd | 0x4)))
        return err;
    err = edu_dma_run(e, to_host, irq_bit);
    if (!(cmd & 0x4)) {
        int err2 = cmd_set(e, cmd);
        err = err ? err : err2;
    }
    return err;
}

static int edu_dma_run(struct edu *e, bool to_host, uint32_t irq_bit)
{
    int err;
    uint64_t src = to_host ? EDU_BUF_ADDR : e->dma_iova, dst = to_host ? e->dma_iova : EDU_BUF_ADDR;
    if ((err = wr(e, EDU_DMA_SRC, (uint32_t)src)) || (err = wr(e, EDU_DMA_DST, (uint32_t)dst)) ||
        (err = wr(e, EDU_DMA_CNT, EDU_BUF_SIZE)) ||
        (err = wr(e, EDU_DMA_CMD, EDU_DMA_RUN | (to_host ? EDU_DMA_TO_PCI : 0) | irq_bit)))
        return err;
    return wait_clear(e, EDU_DMA_CMD, EDU_DMA_RUN);
}

/*
 * The command register takes writes only with the run bit, and keeps what
 * was written minus that bit once the transfer is done: the saved direction
 * and interrupt bits come back by running one more whole-buffer DMA with
 * them. The host buffer holds the device buffer's bytes whenever this runs,
 * so either direction leaves the data as it is. Its completion interrupt
 * (when the saved command asked for one) is acknowledged unless the saved
 * interrupt status had that bit anyway.
 */
static int put_back_cmd(struct edu *e, uint32_t cmd, uint32_t irq_status)
{
    uint32_t irq_bit = cmd & EDU_DMA_IRQ;
    int err = edu_dma(e, cmd & EDU_DMA_TO_PCI, irq_bit);
    if (!err && irq_bit && !(irq_status & 0x100))
        err = wr(e, EDU_IRQ_ACK, 0x100);
    return err;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

enum { I_MAGIC, I_VERSION, I_LIVE, I_FACT, I_STATUS, I_IRQ, I_SRC, I_DST, I_CNT, I_CMD };

static int snapshot(struct edu *e)
{
    static const uint32_t regs[] = { EDU_LIVENESS, EDU_FACT, EDU_STATUS, EDU_IRQ_STAT,
                                     EDU_DMA_SRC, EDU_DMA_DST, EDU_DMA_CNT, EDU_DMA_CMD };
    uint32_t v[8];
    int err;
    for (unsigned i = 0; i < 8; i++)
        if ((err = rd(e, regs[i], &v[i])))
            return err;
    put32(e->image + 4 * I_MAGIC, IMAGE_MAGIC);
    put32(e->image + 4 * I_VERSION, IMAGE_VERSION);
    for (unsigned i = 0; i < 8; i++)
        put32(e->image + 4 * (I_LIVE + i), v[i]);
    put32(e->image + 4 * I_STATUS, v[2] & EDU_STATUS_IRQFACT);
    /* the buffer leaves through the device's DMA engine; the DMA registers are put back after */
    if ((err = edu_dma(e, true, 0)))
        return err;
    memcpy(e->image + IMAGE_HEAD, e->dma, EDU_BUF_SIZE);
    if ((err = put_back_cmd(e, v[7], v[3])) || (err = wr(e, EDU_DMA_SRC, v[4])) || (err = wr(e, EDU_DMA_DST, v[5])) ||
        (err = wr(e, EDU_DMA_CNT, v[6])))
        return err;
    e->image_len = IMAGE_SIZE;
    e->image_off = 0;
    e->have_image = true;
    return 0;
}

/* The n whose n! (mod 2^32) the factorial register holds, or -1. */
static int fact_input(uint32_t value)
{
    uint32_t f = 1;
    for (int n = 0; n <= 34; n++) {
        if (n)
            f *= (uint32_t)n;
        if (f == value)
            return n;
    }
    return -1;
}

static int restore(struct edu *e)
{
    const uint8_t *im = e->rx;
    if (e->rx_overflow || e->rx_len != IMAGE_SIZE || get32(im + 4 * I_MAGIC) != IMAGE_MAGIC) {
        say(e, 0, "state image of %zu bytes is not an edu image", e->rx_len);
        return -EINVAL;
    }
    if (get32(im + 4 * I_VERSION) != IMAGE_VERSION) {
        say(e, 0, "state image version %u, this plugin reads %u", get32(im + 4 * I_VERSION), IMAGE_VERSION);
        return -EPROTO;
    }
    uint32_t fact = get32(im + 4 * I_FACT);
    int n = fact_input(fact);
    if (n < 0) {
        say(e, 0, "factorial value %#x is no n! mod 2^32", fact);
        return -EINVAL;
    }
    int err;
    /* no interrupt from the factorial we compute to restore it */
    if ((err = wr(e, EDU_STATUS, 0)) || (err = wait_clear(e, EDU_STATUS, EDU_STATUS_COMPUTING)) ||
        (err = wr(e, EDU_FACT, (uint32_t)n)) || (err = wait_clear(e, EDU_STATUS, EDU_STATUS_COMPUTING)))
        return err;
    memcpy(e->dma, im + IMAGE_HEAD, EDU_BUF_SIZE);
    if ((err = wait_clear(e, EDU_DMA_CMD, EDU_DMA_RUN)) || (err = edu_dma(e, false, 0)) ||
        (err = put_back_cmd(e, get32(im + 4 * I_CMD), 0)))
        return err;
    if ((err = wr(e, EDU_DMA_SRC, get32(im + 4 * I_SRC))) || (err = wr(e, EDU_DMA_DST, get32(im + 4 * I_DST))) ||
        (err = wr(e, EDU_DMA_CNT, get32(im + 4 * I_CNT))) ||
        (err = wr(e, EDU_LIVENESS, ~get32(im + 4 * I_LIVE))) ||
        (err = wr(e, EDU_STATUS, get32(im + 4 * I_STATUS) & EDU_STATUS_IRQFACT)) ||
        (err = wr(e, EDU_IRQ_ACK, 0xffffffffu)))
        return err;
    uint32_t irq = get32(im + 4 * I_IRQ);
    if (irq && (err = wr(e, EDU_IRQ_RAISE, irq)))
        return err;
    say(e, 2, "state restored (factorial %u! = %#x, irq status %#x)", n, fact, irq);
    return 0;
}

/* ---- the ABI ------------------------------------------------------------------- */

static int edu_init(const struct ufio_mp_host *h, void **state)
{
    if (h->size < sizeof(struct ufio_mp_host) || !h->region_read || !h->region_write || !h->dma_alloc)
        return -EPROTO;
    if (h->vendor_id != 0x1234 || h->device_id != 0x11e8)
        return -ENODEV;
    struct edu *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->h = h;
    uint32_t id;
    int err = rd(e, EDU_ID, &id);
    if (!err && (id & 0xff) != 0xed)
        err = -ENODEV;
    void *buf = NULL;
    if (!err)
        err = h->dma_alloc(h->ctx, EDU_BUF_SIZE, EDU_DMA_LIMIT, &buf, &e->dma_iova);
    if (err) {
        free(e);
        return err;
    }
    e->dma = buf;
    say(e, 2, "edu %s, id %#x", h->bdf, id);
    *state = e;
    return 0;
}

static void edu_fini(void *state)
{
    free(state);
}

static int edu_transition(void *state, unsigned from, unsigned to)
{
    struct edu *e = state;
    int err = 0;
    if (from == UFIO_MIG_RUNNING && to == UFIO_MIG_STOP) {
        /* quiesce: what is in flight finishes before the state is read */
        if (!(err = wait_clear(e, EDU_STATUS, EDU_STATUS_COMPUTING)))
            err = wait_clear(e, EDU_DMA_CMD, EDU_DMA_RUN);
    } else if (to == UFIO_MIG_STOP_COPY) {
        err = snapshot(e);
    } else if (from == UFIO_MIG_STOP_COPY) {
        e->have_image = false;
    } else if (to == UFIO_MIG_RESUMING) {
        e->rx_len = 0;
        e->rx_overflow = false;
    }
    return err;
}

static ssize_t edu_save(void *state, void *buf, size_t len)
{
    struct edu *e = state;
    if (!e->have_image)
        return -EINVAL;
    size_t n = e->image_len - e->image_off;
    if (n > len)
        n = len;
    memcpy(buf, e->image + e->image_off, n);
    e->image_off += n;
    return (ssize_t)n;
}

static int edu_load(void *state, const void *buf, size_t len, bool last)
{
    struct edu *e = state;
    if (len > sizeof(e->rx) - e->rx_len)
        e->rx_overflow = true;
    else if (len)
        memcpy(e->rx + e->rx_len, buf, len), e->rx_len += len;
    return last ? restore(e) : 0;
}

static void edu_estimate(void *state, uint64_t *initial, uint64_t *dirty, uint64_t *stop_copy)
{
    *stop_copy = IMAGE_SIZE;
}

static const struct ufio_migration_plugin edu_plugin = {
    .abi_version = UFIO_MP_ABI_VERSION,
    .size = sizeof(struct ufio_migration_plugin),
    .name = "edu",
    .flags = UFIO_MIG_F_STOP_COPY,
    .init = edu_init,
    .fini = edu_fini,
    .transition = edu_transition,
    .save = edu_save,
    .load = edu_load,
    .estimate = edu_estimate,
    /* the device writes only where the client pointed its DMA: no dirty tracking of its own */
};

__attribute__((visibility("default"))) const struct ufio_migration_plugin *ufio_migration_plugin_v1(uint32_t host_abi);
__attribute__((visibility("default"))) const struct ufio_migration_plugin *ufio_migration_plugin_v1(uint32_t host_abi)
{
    return host_abi >> 16 == UFIO_MP_ABI_MAJOR ? &edu_plugin : NULL;
}
