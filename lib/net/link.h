/*
 * A byte link between the two migration agents: TCP, authenticated and
 * encrypted with TLS 1.3 (GnuTLS, X.509 both ways), or plain TCP when the
 * operator asked for --insecure.
 *
 * Certificates follow QEMU's tls-creds-x509 layout: DIR/ca.pem (the CA both
 * peers must be signed by), DIR/cert.pem and DIR/key.pem (this side's).
 * The connecting side checks the listener's certificate against the name it
 * connected to (or the pinned name); the listener checks the client's name
 * only when a name is pinned.
 *
 * After the TLS handshake both sides verify the peer themselves and tell each
 * other the verdict in one small record, so a refusal carries its reason to
 * both ends ("issuer unknown", "expired", "name mismatch") before anything
 * else is sent. Every wait is bounded by timeout_ms of no progress: a stalled
 * or cut link ends in -ETIMEDOUT, never in a wait for ever.
 *
 * Not thread-safe: one thread sends and one receives at a time (TLS allows a
 * sender and a receiver concurrently; this module uses that in the agents).
 */
#ifndef UFIO_NET_LINK_H
#define UFIO_NET_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define UFIO_LINK_MAX_REASON 512

struct ufio_link_cfg {
    const char *tls_dir;    /* DIR with ca.pem, cert.pem, key.pem; NULL only with insecure */
    const char *peer_name;  /* pin the peer's certificate name; NULL: see above */
    bool insecure;          /* plain TCP, no authentication */
    int timeout_ms;         /* no progress for this long: -ETIMEDOUT; default 10000 */
};

struct ufio_link;

/* Splits "tls://HOST:PORT" or "tcp://HOST:PORT" ([v6] accepted). *tls says
 * which. -EINVAL for anything else. */
int ufio_link_parse_url(const char *url, char *host, size_t hostcap, char *port, size_t portcap, bool *tls);

/* A listening TCP socket on host:port (SO_REUSEADDR). Returns the fd or -errno. */
int ufio_link_listen(const char *host, const char *port, char *err, size_t errlen);

/*
 * Accepts one connection on lfd (waiting up to accept_timeout_ms, < 0 for
 * ever), runs the handshake and the verdict exchange. -EACCES: the peer was
 * refused or refused us (reason in err); -ETIMEDOUT; -EPROTO a peer that does
 * not speak this protocol; -EPROTONOSUPPORT an agent of another protocol
 * version (both sides say which); another -errno.
 */
int ufio_link_accept(int lfd, const struct ufio_link_cfg *cfg, int accept_timeout_ms,
                     struct ufio_link **out, char *err, size_t errlen);
/* Connects (bounded by timeout_ms) and does the same as the client. */
int ufio_link_connect(const char *host, const char *port, const struct ufio_link_cfg *cfg,
                      struct ufio_link **out, char *err, size_t errlen);

/* Sends all of iov (batched into as few records and system calls as it can).
 * 0, -ETIMEDOUT, -ECONNRESET (peer gone), -EIO. */
int ufio_link_sendv(struct ufio_link *l, const struct iovec *iov, int iovcnt);
/* Receives exactly len bytes. 0, -ETIMEDOUT, -ECONNRESET (EOF or reset), -EIO. */
int ufio_link_recv(struct ufio_link *l, void *buf, size_t len);
/* Whether a receive would find bytes now (or the end of the connection). */
bool ufio_link_readable(struct ufio_link *l);
/* The peer's certificate subject (TLS) or address (plain). */
const char *ufio_link_peer(const struct ufio_link *l);
bool ufio_link_is_tls(const struct ufio_link *l);
/* The last transport error text (GnuTLS's), for messages. */
const char *ufio_link_error(const struct ufio_link *l);
/* Closes (sending a TLS close_notify when the link is healthy). NULL is a no-op. */
void ufio_link_close(struct ufio_link *l);
/* Changes the no-progress timeout of every later call. */
void ufio_link_set_timeout(struct ufio_link *l, int timeout_ms);
/* Shuts the socket down so a thread blocked in send/recv returns at once. */
void ufio_link_shutdown(struct ufio_link *l);

#endif
