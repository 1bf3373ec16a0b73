#include "client/client_internal.h"
#include "client/client_match.h"

#include <errno.h>
#include <string.h>

#include "proto/cmd.h"

int cl_peer_errno(uint32_t e)
{
    return (e == 0 || e > UFIO_MAX_ERRNO) ? -EPROTO : -(int)e;
}

/* A request's slot is its msg_id modulo n, so finding the request a reply answers is one look. */
int cl_pending_find(const struct cl_pending *pend, int n, uint16_t msg_id)
{
    int i = msg_id % n;
    return pend[i].used && !pend[i].done && pend[i].id == msg_id ? i : -1;
}

int cl_pending_alloc(struct cl_pending *pend, int n, uint16_t *next_id, uint16_t cmd)
{
    /* the id's own slot, or the next id's: a slot in use holds the only request with its id */
    for (int tries = 0; tries < n; tries++) {
        uint16_t id = (*next_id)++;
        int i = id % n;
        if (pend[i].used)
            continue;
        pend[i] = (struct cl_pending){ .used = true, .id = id, .cmd = cmd };
        ufio_msg_init(&pend[i].reply);
        return i;
    }
    return -EBUSY;
}

bool cl_reply_placeable(const struct cl_pending *p, const struct vfio_user_header *h, bool has_fds,
                        const uint8_t *prefix, size_t body_len, size_t *keep)
{
    if ((h->flags & VFIO_USER_F_ERROR) || has_fds || !p->dst || p->cmd != h->cmd)
        return false;
    if (p->cmd == VFIO_USER_MIG_DATA_READ) {
        /* argsz, size, then at most what we asked for */
        uint32_t size = ufio_ld32(prefix + 4);
        if (size > p->dst_len || body_len != 8 + (size_t)size)
            return false;
        *keep = 8;
        return true;
    }
    return body_len == 16 + p->dst_len && !memcmp(prefix, p->head, 16);
}

int cl_reply_verdict(const struct ufio_msg *m, uint16_t cmd, uint64_t max_xfer, bool want_payload)
{
    const struct vfio_user_header *h = &m->hdr;
    if (h->cmd != cmd)
        return -EPROTO;
    if (h->flags & VFIO_USER_F_ERROR)
        return cl_peer_errno(h->error_no);
    int err = ufio_cmd_reply_check(ufio_cmd_desc(cmd), m->payload, m->len, m->sunk, m->nfds, m->fds_overflow,
                                   max_xfer);
    if (err)
        return err == -ENOMEM ? err : -EPROTO;
    if (!want_payload && (m->len || m->sunk || m->nfds))
        return -EPROTO;
    return 0;
}
