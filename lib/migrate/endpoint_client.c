/* The migration endpoint over a local vfio-user connection (a ufio client). */
#include <errno.h>
#include <stdlib.h>

#include <ufio/client.h>
#include <ufio/migrate.h>

#include "client/client_internal.h"
#include "proto/proto.h"

struct ep_client {
    struct ufio_mig_endpoint ep;
    struct ufio_client *c;
    bool own;
    int inflight; /* the pending slot of a MIG_DATA_WRITE not yet confirmed, -1: none */
};

/* Waits for the reply to the write in flight, if any: its result. */
static int settle(struct ep_client *e)
{
    if (e->inflight < 0)
        return 0;
    int slot = e->inflight;
    e->inflight = -1;
    return cl_call_finish(e->c, VFIO_USER_MIG_DATA_WRITE, slot);
}

static int c_feature(void *p, uint32_t flags, const void *in, size_t in_len, void *out, size_t cap, size_t *got)
{
    return ufio_client_feature(((struct ep_client *)p)->c, flags, in, in_len, out, cap, got);
}

static int c_read(void *p, void *buf, size_t len, size_t *got)
{
    return ufio_client_mig_data_read(((struct ep_client *)p)->c, buf, len, got);
}

/*
 * Writes run one ahead: a write returns once its data is sent and the
 * write before it is confirmed, so the destination finds the next chunk
 * waiting in its socket when it has verified and loaded one, instead of
 * idling for a round trip per chunk. The server handles them in order; an
 * error is reported by the next write or by flush (the engine flushes at
 * the end of every pass, before it looks at anything else).
 */
static int c_write(void *p, const void *buf, size_t len)
{
    struct ep_client *e = p;
    const uint8_t *b = buf;
    uint64_t chunk = cl_xfer_max(e->c);
    do {
        size_t n = len < chunk ? len : (size_t)chunk;
        int slot;
        int err = cl_mig_write_start(e->c, b, n, &slot);
        int prev = settle(e);
        if (!err)
            e->inflight = slot;
        if (prev || err) {
            if (!err)
                settle(e); /* the first error is the one to report */
            return prev ? prev : err;
        }
        b += n;
        len -= n;
    } while (len);
    return 0;
}

static int c_flush(void *p)
{
    return settle(p);
}

static int c_config_read(void *p, uint64_t off, void *buf, size_t len)
{
    return ufio_client_region_read(((struct ep_client *)p)->c, 7 /* VFIO_PCI_CONFIG_REGION_INDEX */, off, buf,
                                   len);
}

static int c_reset(void *p)
{
    return ufio_client_reset(((struct ep_client *)p)->c);
}

static uint64_t c_max_chunk(void *p)
{
    /* what one MIG_DATA_READ can return: the client caps a request at both limits */
    struct ufio_client *c = ((struct ep_client *)p)->c;
    uint64_t m = c->caps.max_data_xfer_size;
    return m > c->opts.max_data_xfer_size ? c->opts.max_data_xfer_size : m;
}

static void c_destroy(void *p)
{
    struct ep_client *e = p;
    if (e->own)
        ufio_client_destroy(e->c); /* a write still in flight goes with it */
    else
        settle(e); /* the caller's client keeps no request of ours pending */
    free(e);
}

static const struct ufio_mig_endpoint_ops client_ops = {
    .size = sizeof(struct ufio_mig_endpoint_ops),
    .feature = c_feature,
    .data_read = c_read,
    .data_write = c_write,
    .config_read = c_config_read,
    .reset = c_reset,
    .max_chunk = c_max_chunk,
    .destroy = c_destroy,
    .flush = c_flush,
};

UFIO_API int ufio_mig_endpoint_client(struct ufio_client *c, bool own, struct ufio_mig_endpoint **out)
{
    if (!c || !out)
        return -EINVAL;
    struct ep_client *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->c = c;
    e->own = own;
    e->inflight = -1;
    e->ep.size = sizeof(e->ep);
    e->ep.ops = &client_ops;
    e->ep.priv = e;
    *out = &e->ep;
    return 0;
}

UFIO_API void ufio_mig_endpoint_destroy(struct ufio_mig_endpoint *ep)
{
    if (ep && ep->ops && ep->ops->destroy)
        ep->ops->destroy(ep->priv);
}
