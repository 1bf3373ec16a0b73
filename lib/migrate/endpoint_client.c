/* The migration endpoint over a local vfio-user connection (a ufio client). */
#include <errno.h>
#include <stdlib.h>

#include <ufio/client.h>
#include <ufio/migrate.h>

#include "client/client_internal.h"

struct ep_client {
    struct ufio_mig_endpoint ep;
    struct ufio_client *c;
    bool own;
};

static int c_feature(void *p, uint32_t flags, const void *in, size_t in_len, void *out, size_t cap, size_t *got)
{
    return ufio_client_feature(((struct ep_client *)p)->c, flags, in, in_len, out, cap, got);
}

static int c_read(void *p, void *buf, size_t len, size_t *got)
{
    return ufio_client_mig_data_read(((struct ep_client *)p)->c, buf, len, got);
}

static int c_write(void *p, const void *buf, size_t len)
{
    return ufio_client_mig_data_write(((struct ep_client *)p)->c, buf, len);
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
        ufio_client_destroy(e->c);
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
