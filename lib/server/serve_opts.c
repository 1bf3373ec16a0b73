/* The options every ufio server program shares (include/ufio/serve_opts.h). */
#include <ufio/serve_opts.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ufio_serve_opts {
    const char *mgmt_path;  /* NULL = the default; "none" = off */
    uid_t allow[UFIO_SERVE_MAX_UIDS];
    unsigned nallow;
    int handshake_ms;       /* -1 = the library's default */
    int msg_ms;             /* -1 = the library's default */
    const char *takeover;   /* --takeover SOCKET, NULL = none */
};

UFIO_API struct ufio_serve_opts *ufio_serve_opts_new(void)
{
    struct ufio_serve_opts *o = calloc(1, sizeof(*o));
    if (o) {
        o->handshake_ms = -1;
        o->msg_ms = -1;
    }
    return o;
}

UFIO_API void ufio_serve_opts_free(struct ufio_serve_opts *o)
{
    free(o);
}

static int parse_uint(const char *arg, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(arg, &end, 10);
    if (!*arg || *end || errno || v > max || arg[0] == '-')
        return -EINVAL;
    *out = v;
    return 0;
}

UFIO_API int ufio_serve_opt(struct ufio_serve_opts *o, int opt, const char *arg, const char *prog)
{
    unsigned long v;
    switch (opt) {
    case UFIO_SERVE_OPT_MGMT:
        if (!arg || !*arg) {
            fprintf(stderr, "%s: --mgmt-socket needs a path or \"none\"\n", prog);
            return -EINVAL;
        }
        o->mgmt_path = arg;
        return 1;
    case UFIO_SERVE_OPT_ALLOW_UID:
        if (parse_uint(arg, (uid_t)-2, &v)) {
            fprintf(stderr, "%s: bad --allow-uid value '%s'\n", prog, arg);
            return -EINVAL;
        }
        if (o->nallow == UFIO_SERVE_MAX_UIDS) {
            fprintf(stderr, "%s: at most %d --allow-uid\n", prog, UFIO_SERVE_MAX_UIDS);
            return -EINVAL;
        }
        o->allow[o->nallow++] = (uid_t)v;
        return 1;
    case UFIO_SERVE_OPT_HANDSHAKE:
    case UFIO_SERVE_OPT_MSG_TIMEOUT:
        if (parse_uint(arg, 3600000, &v)) {
            fprintf(stderr, "%s: bad --%s value '%s'\n", prog,
                    opt == UFIO_SERVE_OPT_HANDSHAKE ? "handshake-timeout-ms" : "msg-timeout-ms", arg);
            return -EINVAL;
        }
        if (opt == UFIO_SERVE_OPT_HANDSHAKE)
            o->handshake_ms = (int)v;
        else
            o->msg_ms = (int)v;
        return 1;
    case UFIO_SERVE_OPT_TAKEOVER:
        if (!arg || !*arg) {
            fprintf(stderr, "%s: --takeover needs the running device's socket path\n", prog);
            return -EINVAL;
        }
        o->takeover = arg;
        return 1;
    default:
        return 0;
    }
}

UFIO_API int ufio_serve_apply(struct ufio_dev *dev, const struct ufio_serve_opts *o, bool listening)
{
    if (listening) {
        if (o->mgmt_path && !strcmp(o->mgmt_path, "none"))
            return 0;
        return ufio_dev_listen_mgmt(dev, o->mgmt_path);
    }
    for (unsigned i = 0; i < o->nallow; i++) {
        int err = ufio_dev_allow_uid(dev, o->allow[i]);
        if (err)
            return err;
    }
    if (o->handshake_ms >= 0 || o->msg_ms >= 0) {
        struct ufio_dev_limits l = { .size = sizeof(l) };
        int err = ufio_dev_get_limits(dev, &l);
        if (err)
            return err;
        if (o->handshake_ms >= 0)
            l.handshake_timeout_ms = o->handshake_ms;
        if (o->msg_ms >= 0)
            l.msg_timeout_ms = o->msg_ms;
        return ufio_dev_set_limits(dev, &l);
    }
    return 0;
}

UFIO_API const char *ufio_serve_takeover(const struct ufio_serve_opts *o) { return o ? o->takeover : NULL; }
