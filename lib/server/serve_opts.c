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
    const char *socket;     /* --socket-path; after ufio_serve_start() the path served */
    int fd;                 /* --fd, -1 = none */
    unsigned poll_us;
    int takeover_err;       /* what ufio_dev_takeover() returned in ufio_serve_start() */
};

UFIO_API struct ufio_serve_opts *ufio_serve_opts_new(void)
{
    struct ufio_serve_opts *o = calloc(1, sizeof(*o));
    if (o) {
        o->handshake_ms = -1;
        o->msg_ms = -1;
        o->fd = -1;
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
    case UFIO_SERVE_OPT_SOCKET:
        if (!arg || !*arg) {
            fprintf(stderr, "%s: --socket-path needs a path\n", prog);
            return -EINVAL;
        }
        o->socket = arg;
        return 1;
    case UFIO_SERVE_OPT_FD:
        if (parse_uint(arg, 65535, &v)) {
            fprintf(stderr, "%s: bad --fd value '%s'\n", prog, arg);
            return -EINVAL;
        }
        o->fd = (int)v;
        return 1;
    case UFIO_SERVE_OPT_POLL_US:
        if (parse_uint(arg, UFIO_MAX_POLL_US, &v)) {
            fprintf(stderr, "%s: bad --poll-us value '%s' (0..%d)\n", prog, arg, UFIO_MAX_POLL_US);
            return -EINVAL;
        }
        o->poll_us = (unsigned)v;
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

UFIO_API int ufio_serve_check(struct ufio_serve_opts *o, const char *default_path, const char *prog)
{
    if (o->fd >= 0 && (o->socket || o->takeover)) {
        fprintf(stderr, "%s: --fd excludes --socket-path and --takeover\n", prog);
        return -EINVAL;
    }
    if (o->takeover && o->socket && strcmp(o->takeover, o->socket)) {
        /* the new process serves the old one's sockets, at the old one's paths */
        fprintf(stderr, "%s: --takeover serves the running device's own socket; drop --socket-path\n", prog);
        return -EINVAL;
    }
    if (o->takeover)
        o->socket = o->takeover;
    else if (o->fd < 0 && !o->socket)
        o->socket = default_path;
    if (o->fd < 0 && !o->socket) {
        fprintf(stderr, "%s: --socket-path or --fd is required\n", prog);
        return -EINVAL;
    }
    return 0;
}

UFIO_API int ufio_serve_start(struct ufio_dev *dev, struct ufio_serve_opts *o, const char *default_path,
                              const char *prog)
{
    if (ufio_serve_check(o, default_path, prog))
        return -EINVAL;
    int err = ufio_dev_set_poll_budget(dev, o->poll_us);
    if (!err)
        err = ufio_serve_apply(dev, o, false);
    if (err) {
        fprintf(stderr, "%s: cannot set up the device: %s\n", prog, strerror(-err));
        return err;
    }
    if (o->fd >= 0)
        err = ufio_dev_attach_fd(dev, o->fd);
    else if (o->takeover)
        err = o->takeover_err = ufio_dev_takeover(dev, o->takeover, NULL);
    else
        err = ufio_dev_listen(dev, o->socket);
    if (err) {
        if (o->fd >= 0)
            fprintf(stderr, "%s: cannot serve fd %d: %s\n", prog, o->fd, strerror(-err));
        else if (o->takeover && err == -EPERM)
            fprintf(stderr, "%s: cannot take over %s: the devices are not compatible (the reasons above); "
                    "the old server goes on\n", prog, o->socket);
        else if (o->takeover && err == -EBUSY)
            fprintf(stderr, "%s: cannot take over %s: another controller holds the device; the old server "
                    "goes on\n", prog, o->socket);
        else
            fprintf(stderr, "%s: cannot %s %s: %s\n", prog, o->takeover ? "take over" : "listen on", o->socket,
                    strerror(-err));
        return err;
    }
    /* a takeover inherits the old process's management socket */
    if (o->fd < 0 && !o->takeover && (err = ufio_serve_apply(dev, o, true))) {
        const char *m = ufio_dev_mgmt_socket(dev);
        fprintf(stderr, "%s: cannot open the management socket%s%s: %s\n", prog, m ? " " : "", m ? m : "",
                strerror(-err));
        return err;
    }
    return 0;
}

UFIO_API int ufio_serve_exit_code(const struct ufio_serve_opts *o, int err)
{
    if (!err)
        return 0;
    if (o && o->takeover && o->takeover_err == err) {
        if (err == -EPERM)
            return 3; /* incompatible: nothing moved */
        if (err == -EBUSY || err == -ENOTCONN || err == -EAGAIN)
            return 4; /* refused before anything moved */
    }
    return 1;
}

UFIO_API const char *ufio_serve_socket(const struct ufio_serve_opts *o) { return o->fd >= 0 ? NULL : o->socket; }

UFIO_API int ufio_serve_fd(const struct ufio_serve_opts *o) { return o->fd; }
