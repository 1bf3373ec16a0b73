/*
 * The command table: one row per vfio-user command and one per
 * DEVICE_FEATURE sub-format, saying what the wire allows (payload size
 * bounds, fds), who may send it (session roles) and when (migration states).
 * The server's dispatch and its sink pre-check walk these rows before any
 * decoder runs; the client validates every reply through them (sizes, fds,
 * the reply's decoder). Rows are indexed by command number. Nothing here
 * does I/O.
 */
#ifndef UFIO_PROTO_CMD_H
#define UFIO_PROTO_CMD_H

#include "proto/proto.h"

#define UFIO_ROLE_ANY (UFIO_ROLE_OWNER | UFIO_ROLE_OBSERVER | UFIO_ROLE_CONTROLLER)
#define UFIO_ROLE_MIGRATORS (UFIO_ROLE_OWNER | UFIO_ROLE_CONTROLLER)

/* Row flags. */
#define UFIO_CMD_F_STATE   0x1u /* touches device state: the owner's are held while a controller has it stopped */
#define UFIO_CMD_F_MIG     0x2u /* a migration request: EBUSY while another session holds the migration */
#define UFIO_CMD_F_CFG_OBS 0x4u /* an observer may send it for the config region only */
#define UFIO_CMD_F_S2C     0x8u /* sent by the server (DMA_READ/WRITE), never accepted as a command */
#define UFIO_CMD_F_CHANGE  0x10u /* changes state a migration carries: refused (ENODEV) on a device migrated away */

/* max_fds value: up to the negotiated max_msg_fds. */
#define UFIO_CMD_FDS_NEG 0xffu
/* max_len value: the request carries up to max_data_xfer_size bytes of data after min_len. */
#define UFIO_CMD_LEN_XFER UINT32_MAX

/* Bit per migration state (1u << UFIO_MIG_*); 0 in a row = any state. */
#define UFIO_MIG_BIT(s) (1u << (s))

struct ufio_cmd_desc {
    uint16_t cmd;
    const char *name;
    uint32_t min_len;     /* request payload bounds (bytes after the header) */
    uint32_t max_len;     /* or UFIO_CMD_LEN_XFER */
    uint8_t max_fds;      /* or UFIO_CMD_FDS_NEG */
    uint8_t roles;        /* UFIO_ROLE_* that may send it */
    uint8_t flags;        /* UFIO_CMD_F_* */
    uint32_t mig_states;  /* UFIO_MIG_BIT()s it is allowed in, 0 = any */
    uint32_t reply_min;   /* reply payload bounds for a success reply */
    uint32_t reply_max;   /* or UFIO_CMD_LEN_XFER */
    uint8_t reply_fds;    /* fds a success reply may carry */
    /*
     * The reply's layout, checked with lib/proto's decoder of it: payload
     * [0, len) as received, plus data_len bytes of data that went straight
     * to the caller's buffer. NULL: the bounds say it all. 0 or -EINVAL.
     */
    int (*reply_decode)(const uint8_t *payload, size_t len, uint64_t data_len);
};

/* The row of cmd (O(1)), or NULL for a number that is no command. */
const struct ufio_cmd_desc *ufio_cmd_desc(unsigned cmd);

/*
 * Checks a received command against its row: payload length (max_xfer for
 * LEN_XFER rows), fds (neg_fds for FDS_NEG rows), role. Returns 0, -ENOSYS
 * (no such command, or one only a server sends), -EINVAL (size, fds) or
 * -EACCES (the role may not send it).
 */
int ufio_cmd_check(const struct ufio_cmd_desc *d, unsigned role, size_t len, size_t nfds,
                   uint64_t max_xfer, size_t neg_fds);
/* The migration-state column: 0, or -EINVAL when not allowed in state. */
int ufio_cmd_state_ok(const struct ufio_cmd_desc *d, unsigned state);
/* A success reply's payload length against the row: 0 or -EINVAL. */
int ufio_cmd_reply_len_ok(const struct ufio_cmd_desc *d, size_t len, uint64_t max_xfer);
/*
 * A success reply against its row: the whole body (len + data_len) within
 * the bounds, at most reply_fds fds (fds_overflow: more came and were
 * dropped), and the row's reply decoder. 0, -ENOSYS (no row) or -EINVAL.
 */
int ufio_cmd_reply_check(const struct ufio_cmd_desc *d, const uint8_t *payload, size_t len, uint64_t data_len,
                         size_t nfds, bool fds_overflow, uint64_t max_xfer);

/* DEVICE_FEATURE sub-formats: roles per access, flags for SET/GET. */
struct ufio_feature_desc {
    uint16_t index;
    const char *name;
    uint8_t get_roles, set_roles, probe_roles; /* 0: that access does not exist */
    uint8_t flags;        /* UFIO_CMD_F_MIG when a GET/SET of it is a migration request */
    uint32_t set_len;     /* exact SET data length (0 = none checked here) */
};
/* The row of a feature index, or NULL when ufio does not know it. */
const struct ufio_feature_desc *ufio_feature_desc(unsigned index);
/*
 * Checks a DEVICE_FEATURE's flags (GET/SET/PROBE) against its row for role:
 * 0, -ENOTSUP (unknown feature), -EINVAL (an access it does not have, or
 * SET data of the wrong size) or -EACCES.
 */
int ufio_feature_check(const struct ufio_feature_desc *d, unsigned role, uint32_t flags, size_t data_len);

/* Iteration for tests and docs: the i-th row, NULL past the end. */
const struct ufio_cmd_desc *ufio_cmd_row(size_t i);
const struct ufio_feature_desc *ufio_feature_row(size_t i);

#endif
