/* VERSION: numbers, the JSON capabilities, and negotiation. */
#include "proto/proto.h"

#include <json-c/json.h>
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
 * A non-negative JSON integer. json-c keeps integers as int64 or uint64 and
 * saturates what does not fit (99999999999999999999 reads as UINT64_MAX), so
 * UINT64_MAX itself is refused: it cannot be told apart from an overflow, and
 * no capability means anything at that value.
 */
static int get_uint(json_object *o, uint64_t max, uint64_t *out)
{
    if (!json_object_is_type(o, json_type_int) || json_object_get_int64(o) < 0)
        return -EINVAL;
    uint64_t v = json_object_get_uint64(o);
    if (v == UINT64_MAX || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

/* A non-negative JSON integer limited to ceiling; saturation is harmless here. */
static int get_uint_clamped(json_object *o, uint64_t ceiling, uint64_t *out)
{
    if (!json_object_is_type(o, json_type_int) || json_object_get_int64(o) < 0)
        return -EINVAL;
    uint64_t v = json_object_get_uint64(o);
    *out = v > ceiling ? ceiling : v;
    return 0;
}

static int parse_caps_obj(json_object *caps, struct ufio_caps *c)
{
    json_object *v;
    uint64_t n;
    if (json_object_object_get_ex(caps, "max_msg_fds", &v)) {
        if (get_uint(v, UFIO_MAX_MSG_FDS_LIMIT, &n))
            return -EINVAL;
        c->max_msg_fds = (uint32_t)n;
    }
    if (json_object_object_get_ex(caps, "max_data_xfer_size", &v)) {
        /* what the peer accepts; we never use more than our own ceiling */
        if (get_uint_clamped(v, UFIO_MAX_DATA_XFER_LIMIT, &n) || n == 0)
            return -EINVAL;
        c->max_data_xfer_size = n;
    }
    if (json_object_object_get_ex(caps, "max_dma_maps", &v)) {
        if (get_uint(v, UINT32_MAX, &n) || n == 0)
            return -EINVAL;
        c->max_dma_maps = (uint32_t)n;
    }
    if (json_object_object_get_ex(caps, "pgsizes", &v)) {
        if (get_uint(v, UINT64_MAX, &n) || n == 0)
            return -EINVAL;
        c->pgsizes = n;
    }
    if (json_object_object_get_ex(caps, "migration", &v)) {
        /* legacy (migration v1): checked for shape, otherwise ignored */
        if (!json_object_is_type(v, json_type_object))
            return -EINVAL;
        json_object *m;
        c->has_migration = true;
        if (json_object_object_get_ex(v, "pgsize", &m)) {
            if (get_uint(m, UINT64_MAX, &n))
                return -EINVAL;
            c->mig_pgsize = n;
        }
        if (json_object_object_get_ex(v, "max_bitmap_size", &m)) {
            if (get_uint(m, UINT64_MAX, &n))
                return -EINVAL;
            c->mig_max_bitmap_size = n;
        }
    }
    if (json_object_object_get_ex(caps, "twin_socket", &v)) {
        if (!json_object_is_type(v, json_type_object))
            return -EINVAL;
        json_object *m;
        if (json_object_object_get_ex(v, "supported", &m)) {
            if (!json_object_is_type(m, json_type_boolean))
                return -EINVAL;
            c->twin_socket = json_object_get_boolean(m);
        }
        if (json_object_object_get_ex(v, "fd_index", &m)) {
            if (get_uint(m, UFIO_MAX_MSG_FDS_LIMIT, &n))
                return -EINVAL;
            c->has_twin_fd_index = true;
            c->twin_fd_index = (uint32_t)n;
        }
    }
    if (json_object_object_get_ex(caps, "write_multiple", &v)) {
        if (!json_object_is_type(v, json_type_boolean))
            return -EINVAL;
        c->write_multiple = json_object_get_boolean(v);
    }
    return 0;
}

/*
 * What json-c's strict mode still lets through and RFC 8259 does not:
 * single-quoted strings and raw control characters inside a string.
 */
static bool rfc_strings(const char *s)
{
    bool in_str = false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (in_str) {
            if (ch < 0x20)
                return false;
            if (ch == '\\' && s[1])
                s++;
            else if (ch == '"')
                in_str = false;
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '\'') {
            return false;
        }
    }
    return true;
}

int ufio_caps_parse(const char *json, size_t len, struct ufio_caps *caps)
{
    ufio_caps_defaults(caps);
    if (len == 0 || json[len - 1] != '\0' || strlen(json) != len - 1)
        return -EINVAL;
    if (len > UFIO_MAX_VERSION_JSON)
        return -E2BIG;
    if (!rfc_strings(json))
        return -EINVAL;
    json_tokener *tok = json_tokener_new_ex(16);
    if (!tok)
        return -ENOMEM;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *root = json_tokener_parse_ex(tok, json, (int)(len - 1));
    int err = 0;
    if (!root || json_tokener_get_error(tok) != json_tokener_success ||
        json_tokener_get_parse_end(tok) != len - 1 || !json_object_is_type(root, json_type_object)) {
        err = -EINVAL;
    } else {
        json_object *caps_obj;
        if (json_object_object_get_ex(root, "capabilities", &caps_obj)) {
            if (!json_object_is_type(caps_obj, json_type_object))
                err = -EINVAL;
            else
                err = parse_caps_obj(caps_obj, caps);
        }
    }
    json_object_put(root);
    json_tokener_free(tok);
    if (err)
        ufio_caps_defaults(caps);
    return err;
}

ssize_t ufio_caps_emit(const struct ufio_caps *c, char *buf, size_t cap)
{
    char mig[128] = "", twin[96] = "";
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
                     "\"max_dma_maps\":%u,\"pgsizes\":%llu%s%s%s}}",
                     c->max_msg_fds, (unsigned long long)c->max_data_xfer_size, c->max_dma_maps,
                     (unsigned long long)c->pgsizes, mig, twin,
                     c->write_multiple ? ",\"write_multiple\":true" : "");
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
