/* Two-agent message framing (xmig.h): every length bounded before it is read. */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "net/xmig.h"
#include "proto/compat.h"
#include "proto/cursor.h"

static const char *phase_names[] = { "connect", "check", "precopy", "stop-copy", "load", "commit", "done", "aborted" };

const char *ufio_xmig_phase_name(enum ufio_xmig_phase p)
{
    return (unsigned)p < sizeof(phase_names) / sizeof(phase_names[0]) ? phase_names[p] : "?";
}

static const char *code_names[UFIO_XMIG_NUM_CODES] = {
    "migrated", "failed", "usage", "incompatible", "refused", "interrupted", "link-lost", "budget", "in-doubt",
    "source-lost",
};

const char *ufio_xmig_code_name(int code)
{
    return code >= 0 && code < UFIO_XMIG_NUM_CODES ? code_names[code] : "?";
}

/* The engine's outcome as the exit status of ufio-migrate, on one host and across hosts. */
/* -ETIME: never stopped, or stop-copy past its deadline: the source runs again.
 * A failed rollback is reported as a warning (engine.c roll_back). */
int ufio_xmig_code_of(int err, const char *warning)
{
    switch (err) {
    case 0: return UFIO_XMIG_OK;
    case -EPERM: return UFIO_XMIG_INCOMPATIBLE;
    case -ECANCELED: return UFIO_XMIG_INTERRUPTED;
    case -EALREADY: case -EBUSY: return UFIO_XMIG_REFUSED;
    case -ETIME: return UFIO_XMIG_BUDGET;
    case -EINPROGRESS: return UFIO_XMIG_IN_DOUBT;
    default: break;
    }
    if (warning && strstr(warning, "could not be put back to RUNNING"))
        return UFIO_XMIG_SOURCE_LOST;
    if (err == -ECONNRESET || err == -EPIPE || err == -ENOTCONN || err == -ETIMEDOUT || err == -ESHUTDOWN)
        return UFIO_XMIG_LINK;
    return UFIO_XMIG_FAILED;
}

long ufio_xmig_max_len(uint32_t type)
{
    switch (type) {
    case XM_FEATURE: return 8 + XM_MAX_FEATURE_IN;
    case XM_CONFIG: return 12;
    case XM_RESET: case XM_COMMIT: return 0;
    case XM_DATA: return XM_MAX_DATA;
    case XM_FLUSH: return 8;
    case XM_PROGRESS: return 32;
    case XM_REPLY: return 4 + XM_MAX_REPLY;
    case XM_CLOSE: case XM_DATA_ERR: case XM_DONE: case XM_ABORT: return 4 + XM_MAX_REASON;
    default: return -1;
    }
}

int ufio_xmig_parse_head(const uint8_t head[XM_HDR], uint32_t *type, uint32_t *len)
{
    struct ufio_rd rd = ufio_rd_init(head, XM_HDR);
    uint32_t t, n;
    if (ufio_rd_u32(&rd, &t) || ufio_rd_u32(&rd, &n))
        return -EPROTO;
    t = le32toh(t), n = le32toh(n);
    long max = ufio_xmig_max_len(t);
    if (max < 0 || n > (uint64_t)max)
        return -EPROTO;
    *type = t, *len = n;
    return 0;
}

void ufio_xmig_put_head(uint8_t head[XM_HDR], uint32_t type, uint32_t len)
{
    ufio_st32(head, htole32(type));
    ufio_st32(head + 4, htole32(len));
}

int ufio_xmig_sendv(struct ufio_link *l, uint32_t type, const struct iovec *iov, int iovcnt)
{
    struct iovec v[8];
    if (iovcnt > 7)
        return -EINVAL;
    uint64_t n = 0;
    for (int i = 0; i < iovcnt; i++)
        n += iov[i].iov_len;
    long max = ufio_xmig_max_len(type);
    if (max < 0 || n > (uint64_t)max)
        return -EINVAL;
    uint8_t head[XM_HDR];
    struct ufio_wr w = ufio_wr_init(head, sizeof(head));
    ufio_wr_u32(&w, htole32(type));
    ufio_wr_u32(&w, htole32((uint32_t)n));
    v[0] = (struct iovec){ head, sizeof(head) };
    if (iovcnt)
        memcpy(v + 1, iov, sizeof(*iov) * (size_t)iovcnt);
    return ufio_link_sendv(l, v, iovcnt + 1);
}

int ufio_xmig_send_status(struct ufio_link *l, uint32_t type, int32_t status, const char *reason)
{
    uint32_t s = htole32((uint32_t)status);
    size_t rl = reason ? strnlen(reason, XM_MAX_REASON) : 0;
    struct iovec iov[2] = { { &s, 4 }, { (void *)reason, rl } };
    return ufio_xmig_sendv(l, type, iov, rl ? 2 : 1);
}

int ufio_xmig_recv(struct ufio_link *l, uint32_t *type, void *buf, size_t cap, uint32_t *len)
{
    uint8_t head[XM_HDR];
    int e = ufio_link_recv(l, head, sizeof(head));
    if (e)
        return e;
    if ((e = ufio_xmig_parse_head(head, type, len)))
        return e;
    if (*len > cap)
        return -EPROTO;
    return *len ? ufio_link_recv(l, buf, *len) : 0;
}

int ufio_xmig_parse_status(const uint8_t *buf, uint32_t len, int32_t *status, char *reason, size_t cap)
{
    struct ufio_rd rd = ufio_rd_init(buf, len);
    uint32_t s;
    if (ufio_rd_u32(&rd, &s) || !cap)
        return -EPROTO;
    *status = (int32_t)le32toh(s);
    size_t n = ufio_rd_left(&rd);
    if (n >= cap)
        n = cap - 1;
    const void *p = NULL;
    if (ufio_rd_ptr(&rd, &p, n))
        return -EPROTO;
    memcpy(reason, p, n);
    reason[n] = 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)reason[i] < 0x20 && reason[i] != '\n')
            reason[i] = '?';
    return 0;
}

int ufio_xmig_parse_code(const uint8_t *buf, uint32_t len, int *code, char *reason, size_t cap)
{
    int32_t c;
    if (ufio_xmig_parse_status(buf, len, &c, reason, cap) || c < 0 || c >= UFIO_XMIG_NUM_CODES)
        return -EPROTO;
    *code = c;
    return 0;
}

int ufio_xmig_parse_feature(const uint8_t *buf, uint32_t len, uint32_t *flags, uint32_t *out_cap,
                            const uint8_t **in, uint32_t *in_len)
{
    struct ufio_rd rd = ufio_rd_init(buf, len);
    const void *p = NULL;
    if (len < 8 || len > 8 + XM_MAX_FEATURE_IN || ufio_rd_u32(&rd, flags) || ufio_rd_u32(&rd, out_cap))
        return -EPROTO;
    *flags = le32toh(*flags), *out_cap = le32toh(*out_cap);
    *in_len = (uint32_t)ufio_rd_left(&rd);
    if (*out_cap > XM_MAX_REPLY || ufio_rd_ptr(&rd, &p, *in_len))
        return -EPROTO;
    *in = p;
    return 0;
}

int ufio_xmig_parse_config(const uint8_t *buf, uint32_t len, uint64_t *offset, uint32_t *n)
{
    struct ufio_rd rd = ufio_rd_init(buf, len);
    if (len != 12 || ufio_rd_u64(&rd, offset) || ufio_rd_u32(&rd, n))
        return -EPROTO;
    *offset = le64toh(*offset), *n = le32toh(*n);
    return *n && *n <= XM_MAX_CONFIG && *offset <= UINT32_MAX ? 0 : -EPROTO;
}

int ufio_xmig_parse_reply(const uint8_t *buf, uint32_t len, int32_t *status, const uint8_t **data,
                          uint32_t *data_len)
{
    struct ufio_rd rd = ufio_rd_init(buf, len);
    uint32_t s;
    const void *p = NULL;
    if (len > 4 + XM_MAX_REPLY || ufio_rd_u32(&rd, &s))
        return -EPROTO;
    *status = (int32_t)le32toh(s);
    *data_len = (uint32_t)ufio_rd_left(&rd);
    if (*status > 0 || *status < -4095 || (*status && *data_len) || ufio_rd_ptr(&rd, &p, *data_len))
        return -EPROTO;
    *data = p;
    return 0;
}

int ufio_xmig_parse_progress(const uint8_t *buf, uint32_t len, struct ufio_xmig_progress *p)
{
    struct ufio_rd rd = ufio_rd_init(buf, len);
    if (len != 32 || ufio_rd_u32(&rd, &p->phase) || ufio_rd_u32(&rd, &p->round) || ufio_rd_u64(&rd, &p->bytes) ||
        ufio_rd_u64(&rd, &p->left) || ufio_rd_u64(&rd, &p->rate_bps))
        return -EPROTO;
    p->phase = le32toh(p->phase), p->round = le32toh(p->round);
    p->bytes = le64toh(p->bytes), p->left = le64toh(p->left), p->rate_bps = le64toh(p->rate_bps);
    return 0;
}

int ufio_xmig_parse_u64(const uint8_t *buf, uint32_t len, uint64_t *v)
{
    struct ufio_rd rd = ufio_rd_init(buf, len);
    if (len != 8 || ufio_rd_u64(&rd, v))
        return -EPROTO;
    *v = le64toh(*v);
    return 0;
}
