/* VERSION: numbers, the JSON capabilities, and negotiation. */
#include "proto/proto.h"
#include "proto/json.h"

#include <stdio.h>
#include <string.h>

void ufio_caps_defaults(struct ufio_caps *c)
{
    memset(c, 0, sizeof(*c));
    c->max_msg_fds = UFIO_DEFAULT_MAX_MSG_FDS;
    c->max_data_xfer_size = UFIO_DEFAULT_MAX_DATA_XFER;
    c->max_dma_maps = UFIO_DEFAULT_MAX_DMA_MAPS;
    c->pgsizes = UFIO_DEFAULT_PGSIZES;
}

/*
 * A non-negative JSON integer, exactly (the reader does not saturate, so
 * UINT64_MAX is a value like any other).
 */
static int get_uint(const struct ufio_json *o, uint64_t max, uint64_t *out)
{
    uint64_t v;
    if (ufio_json_u64(o, &v) || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

/* A non-negative JSON integer of any size, limited to ceiling. */
static int get_uint_clamped(const struct ufio_json *o, uint64_t ceiling, uint64_t *out)
{
    uint64_t v;
    int err = ufio_json_u64(o, &v);
    if (err == -ERANGE)
        v = ceiling;
    else if (err)
        return -EINVAL;
    *out = v > ceiling ? ceiling : v;
    return 0;
}

static int get_bool(const struct ufio_json *o, bool *out)
{
    if (o->type != UFIO_JSON_TRUE && o->type != UFIO_JSON_FALSE)
        return -EINVAL;
    *out = o->type == UFIO_JSON_TRUE;
    return 0;
}

static int parse_caps_obj(const struct ufio_json *caps, struct ufio_caps *c)
{
    struct ufio_json v, m;
    uint64_t n;
    if (ufio_json_get(caps, "max_msg_fds", &v)) {
        /* what the peer can receive: more than we ever send is as good as our
         * ceiling (libvfio-user's client offers 32) */
        if (get_uint_clamped(&v, UFIO_MAX_MSG_FDS_LIMIT, &n))
            return -EINVAL;
        c->max_msg_fds = (uint32_t)n;
    }
    if (ufio_json_get(caps, "max_data_xfer_size", &v)) {
        /* what the peer accepts; we never use more than our own ceiling */
        if (get_uint_clamped(&v, UFIO_MAX_DATA_XFER_LIMIT, &n) || n == 0)
            return -EINVAL;
        c->max_data_xfer_size = n;
    }
    if (ufio_json_get(caps, "max_dma_maps", &v)) {
        if (get_uint(&v, UINT32_MAX, &n) || n == 0)
            return -EINVAL;
        c->max_dma_maps = (uint32_t)n;
    }
    if (ufio_json_get(caps, "pgsizes", &v)) {
        if (get_uint(&v, UINT64_MAX, &n) || n == 0)
            return -EINVAL;
        c->pgsizes = n;
    }
    if (ufio_json_get(caps, "migration", &v)) {
        /* legacy (migration v1): checked for shape, otherwise ignored */
        if (v.type != UFIO_JSON_OBJECT)
            return -EINVAL;
        c->has_migration = true;
        if (ufio_json_get(&v, "pgsize", &m)) {
            if (get_uint(&m, UINT64_MAX, &n))
                return -EINVAL;
            c->mig_pgsize = n;
        }
        if (ufio_json_get(&v, "max_bitmap_size", &m)) {
            if (get_uint(&m, UINT64_MAX, &n))
                return -EINVAL;
            c->mig_max_bitmap_size = n;
        }
    }
    if (ufio_json_get(caps, "twin_socket", &v)) {
        if (v.type != UFIO_JSON_OBJECT)
            return -EINVAL;
        if (ufio_json_get(&v, "supported", &m) && get_bool(&m, &c->twin_socket))
            return -EINVAL;
        if (ufio_json_get(&v, "fd_index", &m)) {
            if (get_uint(&m, UFIO_MAX_MSG_FDS_LIMIT, &n))
                return -EINVAL;
            c->has_twin_fd_index = true;
            c->twin_fd_index = (uint32_t)n;
        }
    }
    if (ufio_json_get(caps, "write_multiple", &v) && get_bool(&v, &c->write_multiple))
        return -EINVAL;
    if (ufio_json_get(caps, "ufio_role", &v)) {
        /* ufio's extension: the role a session asks for (docs/sessions.md) */
        static const char *const names[] = { "owner", "observer", "controller" };
        static const uint8_t roles[] = { UFIO_ROLE_OWNER, UFIO_ROLE_OBSERVER, UFIO_ROLE_CONTROLLER };
        size_t i;
        for (i = 0; i < 3; i++)
            if (v.type == UFIO_JSON_STRING && ufio_json_str_is(&v, names[i]))
                break;
        if (i == 3)
            return -EINVAL;
        c->role = roles[i];
    }
    /* ufio's: a taken role is refused at once instead of waited for (a takeover) */
    if (ufio_json_get(caps, "ufio_no_wait", &v) && get_bool(&v, &c->no_wait))
        return -EINVAL;
    if (ufio_json_get(caps, "ufio_handover", &v)) {
        uint64_t hv;
        if (get_uint(&v, 255, &hv))
            return -EINVAL;
        c->handover = (uint8_t)hv;
    }
    return 0;
}

const char *ufio_role_name(unsigned role)
{
    switch (role) {
    case UFIO_ROLE_OWNER: return "owner";
    case UFIO_ROLE_OBSERVER: return "observer";
    case UFIO_ROLE_CONTROLLER: return "controller";
    default: return "none";
    }
}

int ufio_caps_parse(const char *json, size_t len, struct ufio_caps *caps)
{
    ufio_caps_defaults(caps);
    if (len == 0 || json[len - 1] != '\0' || strlen(json) != len - 1)
        return -EINVAL;
    if (len > UFIO_MAX_VERSION_JSON)
        return -E2BIG;
    struct ufio_json root, caps_obj;
    if (ufio_json_parse(json, len - 1, UFIO_VERSION_JSON_DEPTH, &root, NULL) || root.type != UFIO_JSON_OBJECT)
        return -EINVAL;
    int err = 0;
    if (ufio_json_get(&root, "capabilities", &caps_obj))
        err = caps_obj.type == UFIO_JSON_OBJECT ? parse_caps_obj(&caps_obj, caps) : -EINVAL;
    if (err)
        ufio_caps_defaults(caps);
    return err;
}

ssize_t ufio_caps_emit(const struct ufio_caps *c, char *buf, size_t cap)
{
    char mig[128] = "", twin[96] = "", role[40] = "", ext[64] = "";
    if (c->role)
        snprintf(role, sizeof(role), ",\"ufio_role\":\"%s\"", ufio_role_name(c->role));
    if (c->handover)
        snprintf(ext, sizeof(ext), ",\"ufio_handover\":%u", (unsigned)c->handover);
    if (c->has_migration)
        snprintf(mig, sizeof(mig), ",\"migration\":{\"pgsize\":%llu,\"max_bitmap_size\":%llu}",
                 (unsigned long long)c->mig_pgsize, (unsigned long long)c->mig_max_bitmap_size);
    if (c->twin_socket) {
        if (c->has_twin_fd_index)
            snprintf(twin, sizeof(twin), ",\"twin_socket\":{\"supported\":true,\"fd_index\":%u}", c->twin_fd_index);
        else
            snprintf(twin, sizeof(twin), ",\"twin_socket\":{\"supported\":true}");
    }
    int n = snprintf(buf, cap,
                     "{\"capabilities\":{\"max_msg_fds\":%u,\"max_data_xfer_size\":%llu,"
                     "\"max_dma_maps\":%u,\"pgsizes\":%llu%s%s%s%s%s%s}}",
                     c->max_msg_fds, (unsigned long long)c->max_data_xfer_size, c->max_dma_maps,
                     (unsigned long long)c->pgsizes, mig, twin,
                     c->write_multiple ? ",\"write_multiple\":true" : "", role,
                     c->no_wait ? ",\"ufio_no_wait\":true" : "", ext);
    if (n < 0 || (size_t)n + 1 > cap)
        return -ENOSPC;
    return n + 1;
}

int ufio_version_decode(const void *payload, size_t len, struct ufio_version *v)
{
    struct ufio_rd r = ufio_rd_init(payload, len);
    memset(v, 0, sizeof(*v));
    ufio_caps_defaults(&v->caps);
    if (ufio_rd_u16(&r, &v->major) || ufio_rd_u16(&r, &v->minor))
        return -EINVAL;
    size_t left = ufio_rd_left(&r);
    if (!left)
        return 0;
    if (left > UFIO_MAX_VERSION_JSON)
        return -E2BIG;
    const void *json = NULL;
    ufio_rd_ptr(&r, &json, left);
    v->has_json = true;
    return ufio_caps_parse(json, left, &v->caps);
}

ssize_t ufio_version_encode(const struct ufio_version *v, void *buf, size_t cap)
{
    struct ufio_wr w = ufio_wr_init(buf, cap);
    ufio_wr_u16(&w, v->major);
    ufio_wr_u16(&w, v->minor);
    if (w.err)
        return w.err;
    if (!v->has_json)
        return (ssize_t)w.off;
    ssize_t n = ufio_caps_emit(&v->caps, (char *)buf + w.off, cap - w.off);
    return n < 0 ? n : (ssize_t)w.off + n;
}

int ufio_version_negotiate(const struct ufio_version *client, const struct ufio_version *server,
                           struct ufio_version *reply)
{
    if (client->major != server->major)
        return -ENOTSUP;
    memset(reply, 0, sizeof(*reply));
    reply->major = client->major;
    reply->minor = client->minor < server->minor ? client->minor : server->minor;
    reply->has_json = true;
    ufio_caps_defaults(&reply->caps);
    reply->caps.max_msg_fds = server->caps.max_msg_fds;
    reply->caps.max_data_xfer_size = server->caps.max_data_xfer_size;
    reply->caps.max_dma_maps = server->caps.max_dma_maps;
    reply->caps.pgsizes = server->caps.pgsizes;
    reply->caps.twin_socket = client->caps.twin_socket && server->caps.twin_socket;
    reply->caps.write_multiple = client->caps.write_multiple && server->caps.write_multiple;
    return 0;
}
