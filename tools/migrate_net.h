/* The cross-host modes of ufio-migrate (migrate_net.c). */
#ifndef UFIO_TOOLS_MIGRATE_NET_H
#define UFIO_TOOLS_MIGRATE_NET_H

#include <stdbool.h>

#include <ufio/migrate.h>

#include "net/link.h"

struct net_args {
    struct ufio_link_cfg link;
    const struct ufio_migrate_opts *mig;  /* the engine's options as parsed (the source agent runs it) */
    bool json, quiet, keep;
    int dev_timeout_ms;
    int accept_timeout_ms;   /* --accept-timeout: < 0 waits for ever */
    const char *pause_at;    /* --test-pause-at PHASE, or NULL */
};

int net_send(const char *src, const char *url, struct net_args *a);
int net_listen(const char *url, const char *dst, struct net_args *a);
int net_recover(const char *path, int timeout_ms);

#endif
