/*
 * Interrupt and DMA checks, independent of the driver that gives guest
 * userspace the interrupt (see struct dev_io).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest.h"

long poll_wait(int fd, void *count, size_t count_len)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int n = poll(&p, 1, IRQ_TIMEOUT_MS);
    if (n <= 0)
        return n < 0 ? -errno : 0;
    ssize_t r = read(fd, count, count_len);
    if (r < 0)
        return -errno;
    return (size_t)r == count_len ? 1 : -EIO;
}

static void name_of(char *out, size_t len, const struct dev_io *io, const char *what)
{
    snprintf(out, len, "%s-%s", io->tag, what);
}

void check_irq_raise(const struct dev_io *io)
{
    char name[48];
    uint32_t before = io->rd(io->ctx, REG_IRQ_COUNT);
    int err = io->wr(io->ctx, REG_IRQ_RAISE, 0);
    long n = err ? err : io->wait_irq(io->ctx);
    name_of(name, sizeof(name), io, "irq");
    if (n > 0)
        check(true, name, "IRQ_RAISE=0 delivered");
    else if (n == 0)
        check(false, name, "no interrupt within %d ms of IRQ_RAISE=0", IRQ_TIMEOUT_MS);
    else
        check(false, name, "%s", strerror((int)-n));
    uint32_t after = io->rd(io->ctx, REG_IRQ_COUNT);
    name_of(name, sizeof(name), io, "irq-count");
    check(after == before + 1, name, "IRQ_COUNT %u -> %u", before, after);
}

uint8_t *dma_buffer_alloc(void)
{
    void *p = mmap(NULL, 2 * DMA_LEN, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED | MAP_POPULATE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void dma_buffer_free(uint8_t *buf)
{
    if (buf)
        munmap(buf, 2 * DMA_LEN);
}

int phys_addr(const void *p, uint64_t *out)
{
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    long page = sysconf(_SC_PAGESIZE);
    uint64_t entry = 0;
    ssize_t n = pread(fd, &entry, sizeof(entry), (off_t)((uintptr_t)p / (uintptr_t)page * 8));
    close(fd);
    if (n != sizeof(entry))
        return -EIO;
    uint64_t pfn = entry & ((1ull << 55) - 1);
    if (!(entry >> 63) || !pfn) /* not present, or PFN hidden (no CAP_SYS_ADMIN) */
        return -EPERM;
    *out = pfn * (uint64_t)page + (uintptr_t)p % (uintptr_t)page;
    return 0;
}

void check_dma_xor(const struct dev_io *io, uint8_t *buf, uint64_t src_bus, uint64_t dst_bus)
{
    char name[48];
    uint8_t *src = buf;
    volatile uint8_t *dst = buf + DMA_LEN;
    uint32_t sum = 0;
    for (uint32_t i = 0; i < DMA_LEN; i++) {
        src[i] = (uint8_t)(i * 13 + 7);
        sum += src[i];
        dst[i] = 0;
    }
    int err;
    if ((err = io->wr(io->ctx, REG_DMA_SRC_LO, (uint32_t)src_bus)) ||
        (err = io->wr(io->ctx, REG_DMA_SRC_HI, (uint32_t)(src_bus >> 32))) ||
        (err = io->wr(io->ctx, REG_DMA_DST_LO, (uint32_t)dst_bus)) ||
        (err = io->wr(io->ctx, REG_DMA_DST_HI, (uint32_t)(dst_bus >> 32))) ||
        (err = io->wr(io->ctx, REG_DMA_LEN, DMA_LEN)) || (err = io->wr(io->ctx, REG_DMA_CMD, 1))) {
        name_of(name, sizeof(name), io, "dma-program");
        check(false, name, "%s", strerror(-err));
        return;
    }
    long n = io->wait_irq(io->ctx);
    name_of(name, sizeof(name), io, "dma-irq");
    if (n > 0)
        check(true, name, "completion interrupt (src 0x%llx dst 0x%llx)", (unsigned long long)src_bus,
              (unsigned long long)dst_bus);
    else
        check(false, name, "no completion interrupt within %d ms", IRQ_TIMEOUT_MS);

    uint32_t status = io->rd(io->ctx, REG_DMA_STATUS), dev_sum = io->rd(io->ctx, REG_DMA_SUM);
    name_of(name, sizeof(name), io, "dma-status");
    check(status == 1, name, "0x%08x", status);
    size_t bad = DMA_LEN;
    for (size_t i = 0; i < DMA_LEN; i++)
        if (dst[i] != (src[i] ^ 0x5a)) {
            bad = i;
            break;
        }
    name_of(name, sizeof(name), io, "dma-data");
    if (bad == DMA_LEN)
        check(true, name, "%u bytes = source XOR 0x5a", DMA_LEN);
    else
        check(false, name, "byte %zu is 0x%02x, want 0x%02x", bad, dst[bad], src[bad] ^ 0x5a);
    name_of(name, sizeof(name), io, "dma-sum");
    check(dev_sum == sum, name, "device 0x%08x, expected 0x%08x", dev_sum, sum);
}
