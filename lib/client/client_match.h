/*
 * The client's pure decisions about replies, apart from sockets and locks so
 * they can be unit-tested: which pending request a reply answers, whether a
 * big reply may be received straight into the caller's buffer, what a reply
 * means for its caller, and how msg_ids are handed out.
 */
#ifndef UFIO_CLIENT_MATCH_H
#define UFIO_CLIENT_MATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

struct cl_pending;

/* The errno an error reply carries, as -errno; -EPROTO for 0 or a value no errno has. */
int cl_peer_errno(uint32_t error_no);

/* The slot of the request still waiting for msg_id, or -1: one look, slot = msg_id % n. */
int cl_pending_find(const struct cl_pending *pend, int n, uint16_t msg_id);

/*
 * A free slot for a new request of cmd: the slot msg_id % n of the next msg_id
 * whose slot is free (*next_id advances past it; ids wrap; n divides 65536, so
 * an id keeps its slot across the wrap and no waiting request shares it). The
 * slot's other fields are cleared. -EBUSY when every slot is taken.
 */
int cl_pending_alloc(struct cl_pending *pend, int n, uint16_t *next_id, uint16_t cmd);

/*
 * May reply h, whose body is body_len bytes starting with prefix (16 bytes
 * read ahead), go straight into pending request p's buffer? Only an exact
 * answer: same cmd, no error, no fds; REGION_READ echoes the request's head
 * and carries exactly dst_len bytes; MIG_DATA_READ (argsz, size) carries size
 * <= dst_len bytes (*keep = 8: the head stays in the message). false means the
 * reply is received normally and validated by its caller.
 */
bool cl_reply_placeable(const struct cl_pending *p, const struct vfio_user_header *h, bool has_fds,
                        const uint8_t *prefix, size_t body_len, size_t *keep);

/*
 * What reply m to cmd means for cl_call(): 0, the server's -errno for an error
 * reply, -EPROTO for a reply to another command, or for a success reply its
 * row of the command table (lib/proto/cmd.h) refuses: too short, too long,
 * more fds than the command's reply carries, or a layout its decoder rejects
 * (max_xfer bounds the data of XFER rows); -EPROTO too when want_payload is
 * false and it carries a payload or fds. -ENOMEM if checking needed memory.
 * The caller releases m either way (closing its fds).
 */
struct ufio_msg;
int cl_reply_verdict(const struct ufio_msg *m, uint16_t cmd, uint64_t max_xfer, bool want_payload);

#endif
