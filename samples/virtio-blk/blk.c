/* ufio-virtio-blk: block requests (IN, OUT, FLUSH, GET_ID) and the backing file. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/fs.h>
#include <sys/ioctl.h>

#include <ufio/server.h>

#include "vblk.h"

/* ---- block requests ---------------------------------------------------------------- */

/* preadv/pwritev until done: short transfers happen on signals and at end of file. */
static int file_io(int fd, struct iovec *iov, int n, uint64_t pos, bool write)
{
    while (n > 0) {
        ssize_t got = write ? pwritev(fd, iov, n, (off_t)pos) : preadv(fd, iov, n, (off_t)pos);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -errno;
        if (got == 0)
            return -EIO; /* the file shrank under us */
        pos += (uint64_t)got;
        while (n > 0 && (size_t)got >= iov->iov_len) {
            got -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + got;
            iov->iov_len -= (size_t)got;
        }
    }
    return 0;
}

/* O_DIRECT needs aligned memory, lengths and offsets: requests from a guest's
 * page-sized buffers qualify; any other goes through the page cache (the
 * kernel keeps both views of the file coherent). */
static bool direct_ok(const struct iovec *iov, int n, uint64_t pos)
{
    if (pos % DIRECT_ALIGN)
        return false;
    for (int i = 0; i < n; i++)
        if ((uintptr_t)iov[i].iov_base % DIRECT_ALIGN || iov[i].iov_len % DIRECT_ALIGN)
            return false;
    return true;
}

static int disk_io(struct vblk *vb, struct iovec *iov, int n, uint64_t pos, bool write)
{
    if (vb->direct_fd >= 0 && direct_ok(iov, n, pos)) {
        struct iovec copy[IOV_MAX_REQ];
        memcpy(copy, iov, sizeof(*iov) * (size_t)n); /* file_io consumes its iovecs */
        int err = file_io(vb->direct_fd, copy, n, pos, write);
        vb->st.direct += err != -EINVAL;
        if (err != -EINVAL)
            return err;
        /* the file system wants a larger alignment: from now on, buffered */
        fprintf(stderr, PROG ": O_DIRECT refused (EINVAL); using the page cache\n");
        close(vb->direct_fd);
        vb->direct_fd = -1;
    }
    return file_io(vb->fd, iov, n, pos, write);
}

static bool sectors_ok(const struct vblk *vb, uint64_t sector, uint64_t bytes)
{
    return bytes % SECTOR == 0 && sector <= vb->capacity && bytes / SECTOR <= vb->capacity - sector;
}

/* IN and OUT: data between the chain and the file. Returns the status; *written
 * gets the data bytes put into the driver's buffers. */
static uint8_t blk_rw(struct vblk *vb, const struct chain *c, uint32_t type, uint64_t sector,
                      uint32_t *written)
{
    bool to_guest = type == BLK_T_IN;
    uint64_t len = to_guest ? c->in_len - 1 : c->out_len - 16;
    if (!to_guest && vb->readonly) {
        vlog(vb, "write to a read-only disk at sector %" PRIu64, sector);
        return BLK_S_IOERR;
    }
    if (!sectors_ok(vb, sector, len)) {
        vlog(vb, "%s of %" PRIu64 " bytes at sector %" PRIu64 " outside the disk or not whole sectors",
             to_guest ? "read" : "write", len, sector);
        return BLK_S_IOERR;
    }
    struct iovec iov[IOV_MAX_REQ];
    int n;
    int err = to_guest ? chain_iov(vb, c->in, c->n_in, true, 0, len, iov, &n)
                       : chain_iov(vb, c->out, c->n_out, false, 16, len, iov, &n);
    if (!err)
        err = disk_io(vb, iov, n, sector * SECTOR, !to_guest);
    if (err) {
        vlog(vb, "%s at sector %" PRIu64 ": %s", to_guest ? "read" : "write", sector, strerror(-err));
        return BLK_S_IOERR;
    }
    if (to_guest) {
        vb->st.bytes_read += len;
        /* the used ring's length field is 32 bits; a longer read is the driver's folly */
        *written = len < UINT32_MAX ? (uint32_t)len : UINT32_MAX - 1;
    } else {
        vb->st.bytes_written += len;
    }
    return BLK_S_OK;
}

static uint8_t blk_get_id(struct vblk *vb, const struct chain *c, uint32_t *written)
{
    uint64_t room = c->in_len - 1;
    size_t n = room < BLK_ID_BYTES ? (size_t)room : BLK_ID_BYTES;
    if (chain_copy_in(vb, c, 0, vb->serial, n))
        return BLK_S_IOERR;
    *written = (uint32_t)n;
    return BLK_S_OK;
}

static uint8_t blk_execute(struct vblk *vb, const struct chain *c, uint32_t *written)
{
    uint8_t hdr[16];
    if (c->out_len < sizeof(hdr) || chain_copy_out(vb, c, 0, hdr, sizeof(hdr))) {
        vlog(vb, "request header missing or not in mapped memory");
        return BLK_S_IOERR;
    }
    uint32_t type;
    uint64_t sector;
    memcpy(&type, hdr, 4);
    memcpy(&sector, hdr + 8, 8);
    type = le32toh(type);
    sector = le64toh(sector);
    switch (type) {
    case BLK_T_IN:
    case BLK_T_OUT:
        return blk_rw(vb, c, type, sector, written);
    case BLK_T_FLUSH:
        vb->st.flushes++;
        return fdatasync(vb->fd) ? BLK_S_IOERR : BLK_S_OK;
    case BLK_T_GET_ID:
        return blk_get_id(vb, c, written);
    default:
        vlog(vb, "unsupported request type %" PRIu32, type);
        return BLK_S_UNSUPP;
    }
}

/* The status is the last byte the chain lets the device write. */
static uint8_t *status_ptr(struct vblk *vb, const struct chain *c)
{
    for (unsigned i = c->n_in; i-- > 0;) {
        if (c->in[i].len)
            return ufio_dev_dma_ptr(vb->dev, c->in[i].addr + c->in[i].len - 1, 1, true);
    }
    return NULL;
}

/* One chain: gathers, executes, writes the status byte. Returns the bytes
 * written to the driver's buffers (for the used ring), or -1 if the chain is
 * malformed (the device then needs a reset). */
int64_t handle_chain(struct vblk *vb, const struct vq *q, uint16_t head)
{
    static struct chain c; /* large; one request at a time */
    const char *bad = chain_gather(vb, q, head, &c);
    if (!bad && c.in_len == 0)
        bad = "request without a status byte";
    uint8_t *status = NULL;
    if (!bad && !(status = status_ptr(vb, &c)))
        bad = "status byte not in mapped memory";
    if (bad) {
        needs_reset(vb, bad);
        return -1;
    }
    uint32_t written = 0;
    uint8_t s = blk_execute(vb, &c, &written);
    vb->st.requests++;
    vb->st.ioerr += s == BLK_S_IOERR;
    vb->st.unsupp += s == BLK_S_UNSUPP;
    *status = s;
    return (int64_t)written + 1;
}

/* ---- the backing file ------------------------------------------------------------------------------ */

int open_backing(struct vblk *vb)
{
    vb->fd = open(vb->path, (vb->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (vb->fd < 0)
        return -errno;
    struct stat st;
    if (fstat(vb->fd, &st) < 0)
        return -errno;
    uint64_t size = (uint64_t)st.st_size;
    if (S_ISBLK(st.st_mode)) {
        if (ioctl(vb->fd, BLKGETSIZE64, &size) < 0)
            return -errno;
    } else if (!S_ISREG(st.st_mode)) {
        return -EINVAL;
    }
    if (size % SECTOR)
        fprintf(stderr, PROG ": %s: the last %" PRIu64 " bytes are not a whole sector; ignored\n", vb->path,
                size % SECTOR);
    vb->capacity = size / SECTOR;
    if (!vb->capacity)
        return -EINVAL;
    if (vb->direct_fd == -2) {
        vb->direct_fd = open(vb->path, (vb->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_DIRECT);
        if (vb->direct_fd < 0)
            return -errno;
    }
    return 0;
}
