/*
 * Command-line options every program built on libufio's server offers, the
 * same way (docs/sessions.md):
 *
 *   --socket-path=PATH         listen on PATH (default: the program's own)
 *   --fd=N                     serve an already-connected socket instead
 *   --poll-us=N                busy-poll up to N µs after each message
 *   --mgmt-socket=PATH|none    management socket (default: the device socket
 *                              path + ".mgmt"; "none": no management socket)
 *   --allow-uid=UID            let this uid connect too (repeatable; the
 *                              server's own uid and root always may)
 *   --handshake-timeout-ms=N   close a connection that has not sent VERSION
 *                              within N ms (default 5000; 0 = never)
 *   --msg-timeout-ms=N         close a session whose message begun is not
 *                              complete within N ms (default 5000; 0 = never)
 *   --takeover=SOCKET          take the device served at SOCKET over from its
 *                              running server (ufio_dev_takeover()) instead of
 *                              listening: see ufio_serve_takeover()
 *
 * Use: ufio_serve_opts_new(), put UFIO_SERVE_LONGOPTS in the getopt_long
 * table, hand every option getopt returns to ufio_serve_opt() first (1 = it
 * was one of these), ufio_serve_check() after the last option, build the
 * device, then ufio_serve_start() serves it as
 * the options say (socket, fd or takeover, management socket and limits);
 * print UFIO_SERVE_USAGE in --help, and ufio_serve_opts_free() at the end.
 * ufio_serve_apply() is the lower-level step for a program that attaches the
 * device itself.
 */
#ifndef UFIO_SERVE_OPTS_H
#define UFIO_SERVE_OPTS_H

#include <getopt.h>
#include <sys/types.h>

#include <ufio/server.h>

#ifdef __cplusplus
extern "C" {
#endif

/* getopt values, above any character a program uses */
#define UFIO_SERVE_OPT_MGMT 0x4d01
#define UFIO_SERVE_OPT_ALLOW_UID 0x4d02
#define UFIO_SERVE_OPT_HANDSHAKE 0x4d03
#define UFIO_SERVE_OPT_MSG_TIMEOUT 0x4d04
#define UFIO_SERVE_OPT_TAKEOVER 0x4d05
#define UFIO_SERVE_OPT_SOCKET 0x4d06
#define UFIO_SERVE_OPT_FD 0x4d07
#define UFIO_SERVE_OPT_POLL_US 0x4d08

#define UFIO_SERVE_LONGOPTS                                                       \
    { "socket-path", required_argument, NULL, UFIO_SERVE_OPT_SOCKET },            \
    { "fd", required_argument, NULL, UFIO_SERVE_OPT_FD },                         \
    { "poll-us", required_argument, NULL, UFIO_SERVE_OPT_POLL_US },               \
    { "mgmt-socket", required_argument, NULL, UFIO_SERVE_OPT_MGMT },              \
    { "allow-uid", required_argument, NULL, UFIO_SERVE_OPT_ALLOW_UID },           \
    { "handshake-timeout-ms", required_argument, NULL, UFIO_SERVE_OPT_HANDSHAKE }, \
    { "msg-timeout-ms", required_argument, NULL, UFIO_SERVE_OPT_MSG_TIMEOUT },    \
    { "takeover", required_argument, NULL, UFIO_SERVE_OPT_TAKEOVER }

#define UFIO_SERVE_USAGE                                                                       \
    "  --socket-path=PATH  listen on PATH\n"                                                   \
    "  --fd=N              serve an already-connected socket (exits when it closes)\n"        \
    "  --poll-us=N         busy-poll up to N microseconds after each message before\n"        \
    "                      sleeping (default 0: always sleep)\n"                             \
    "  --mgmt-socket=PATH  management socket for observers and the migration controller\n"    \
    "                      (default: the socket path + \".mgmt\", mode 0600; \"none\": off)\n"  \
    "  --allow-uid=UID     let UID connect too (repeatable; own uid and root always may)\n"    \
    "  --handshake-timeout-ms=N  drop a connection without VERSION after N ms (default 5000)\n" \
    "  --msg-timeout-ms=N  drop a session stalled mid-message for N ms (default 5000)\n"    \
    "  --takeover=SOCKET   take the running device at SOCKET over from its server process\n"   \
    "                      (live handover: same owner, same paths; the old one exits)\n"

#define UFIO_SERVE_MAX_UIDS 16

/* Opaque (it can grow without an ABI change). */
struct ufio_serve_opts;

/* Options at their defaults; NULL when out of memory. */
UFIO_API struct ufio_serve_opts *ufio_serve_opts_new(void);
/* NULL is a no-op. */
UFIO_API void ufio_serve_opts_free(struct ufio_serve_opts *o);
/*
 * Takes one getopt result: 1 when it was one of these options (applied to o),
 * 0 when it is the program's own, -EINVAL for a bad value (a message went to
 * stderr, prefixed with prog).
 */
UFIO_API int ufio_serve_opt(struct ufio_serve_opts *o, int opt, const char *arg, const char *prog);
/*
 * Applies o to dev. Before listening (listening = false): the allow-list and
 * the time limits. After ufio_dev_listen() (listening = true): opens the
 * management socket unless it is off. Returns 0 or a negative errno.
 */
UFIO_API int ufio_serve_apply(struct ufio_dev *dev, const struct ufio_serve_opts *o, bool listening);
/*
 * The --takeover SOCKET, or NULL. A program given one calls
 * ufio_dev_takeover(dev, SOCKET, NULL) in place of ufio_dev_listen() and
 * skips ufio_serve_apply(..., true): the sockets come from the old process.
 */
UFIO_API const char *ufio_serve_takeover(const struct ufio_serve_opts *o);
/*
 * Checks that the options agree (--fd excludes --socket-path and --takeover;
 * without default_path one of --socket-path and --fd is required), saying
 * what is wrong on stderr, prefixed with prog: -EINVAL, a usage error. Call it
 * after parsing, before building the device; ufio_serve_start() calls it too.
 */
UFIO_API int ufio_serve_check(struct ufio_serve_opts *o, const char *default_path, const char *prog);
/*
 * Serves dev as the options say: sets the polling budget and the limits,
 * then attaches --fd, takes over (--takeover) or listens on --socket-path
 * (default_path when none was given; NULL: one of --socket-path and --fd is
 * required), and opens the management socket when listening. Says what went
 * wrong on stderr, prefixed with prog. Returns 0 or the failing step's
 * negative errno (-EINVAL too when ufio_serve_check() fails).
 */
UFIO_API int ufio_serve_start(struct ufio_dev *dev, struct ufio_serve_opts *o, const char *default_path,
                              const char *prog);
/*
 * The exit status for a program whose ufio_serve_start() returned err, as in
 * ufio-migrate's table (docs/cross-host.md): 0 for 0; for a --takeover that
 * failed, 3 when the devices are not compatible (-EPERM) and 4 when the old
 * server refused before anything moved (-EBUSY another controller holds the
 * device, -ENOTCONN no owner, -EAGAIN the owner mid-message: try again); 1
 * for anything else. The old server serves on in all these cases.
 */
UFIO_API int ufio_serve_exit_code(const struct ufio_serve_opts *o, int err);
/* After ufio_serve_start(): the socket path served, or NULL when serving --fd. */
UFIO_API const char *ufio_serve_socket(const struct ufio_serve_opts *o);
/* The --fd given, or -1. */
UFIO_API int ufio_serve_fd(const struct ufio_serve_opts *o);

#ifdef __cplusplus
}
#endif
#endif
