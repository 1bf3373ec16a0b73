/* lib/client's pure reply logic: msg_id matching, slot and id allocation, direct placement, reply verdicts. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "client/client_internal.h"
#include "client/client_match.h"

static struct cl_pending P[CL_MAX_PENDING];

static int setup(void **st)
{
    memset(P, 0, sizeof(P));
    return 0;
}

static void test_peer_errno(void **st)
{
    assert_int_equal(cl_peer_errno(EINVAL), -EINVAL);
    assert_int_equal(cl_peer_errno(1), -EPERM);
    assert_int_equal(cl_peer_errno(4095), -4095);
    /* an error reply without an errno, or one no errno has, is the server's protocol error */
    assert_int_equal(cl_peer_errno(0), -EPROTO);
    assert_int_equal(cl_peer_errno(4096), -EPROTO);
    assert_int_equal(cl_peer_errno(UINT32_MAX), -EPROTO);
}

/* A reply belongs to the waiting request with its msg_id (in slot msg_id % n): not to a finished one, not to a free slot. */
static void test_find_by_msg_id(void **st)
{
    assert_int_equal(cl_pending_find(P, CL_MAX_PENDING, 0), -1); /* all free, ids all 0 */
    P[7] = (struct cl_pending){ .used = true, .id = 7 };
    P[9] = (struct cl_pending){ .used = true, .id = 9, .done = true };
    P[10] = (struct cl_pending){ .used = false, .id = 10 };
    P[11] = (struct cl_pending){ .used = true, .id = 11 + CL_MAX_PENDING };
    assert_int_equal(cl_pending_find(P, CL_MAX_PENDING, 7), 7);
    assert_int_equal(cl_pending_find(P, CL_MAX_PENDING, 7 + CL_MAX_PENDING), -1); /* same slot, other id */
    assert_int_equal(cl_pending_find(P, CL_MAX_PENDING, 9), -1);  /* has its reply already */
    assert_int_equal(cl_pending_find(P, CL_MAX_PENDING, 10), -1); /* free */
    assert_int_equal(cl_pending_find(P, CL_MAX_PENDING, 11 + CL_MAX_PENDING), 11);
    assert_int_equal(cl_pending_find(P, CL_MAX_PENDING, 8), -1);
    /* with n = 8 slots: id 11 + 64 would live in slot 3, and slot 11 is not looked at */
    assert_int_equal(cl_pending_find(P, 8, 11 + CL_MAX_PENDING), -1);
    P[7].id = 15;
    assert_int_equal(cl_pending_find(P, 8, 15), 7);
}

/* Ids go up and wrap, skip ids whose slot still waits, and allocation fails only when every slot is taken. */
static void test_alloc_ids(void **st)
{
    uint16_t next = 65534;
    int a = cl_pending_alloc(P, CL_MAX_PENDING, &next, VFIO_USER_REGION_READ);
    assert_int_equal(a, 65534 % CL_MAX_PENDING);
    assert_int_equal(P[a].id, 65534);
    assert_true(P[a].used && !P[a].done && P[a].cmd == VFIO_USER_REGION_READ && P[a].dst == NULL);
    assert_int_equal(cl_pending_alloc(P, CL_MAX_PENDING, &next, 1), CL_MAX_PENDING - 1);
    assert_int_equal(P[CL_MAX_PENDING - 1].id, 65535);
    assert_int_equal(cl_pending_alloc(P, CL_MAX_PENDING, &next, 1), 0);
    assert_int_equal(P[0].id, 0); /* wrapped */
    /* an id whose slot still waits is skipped: 1 is free, CL_MAX_PENDING + 1 is not */
    next = CL_MAX_PENDING - 2; /* slot 62: taken by 65534 */
    assert_int_equal(cl_pending_alloc(P, CL_MAX_PENDING, &next, 1), 1);
    assert_int_equal(P[1].id, CL_MAX_PENDING + 1); /* 62, 63 (65535's), 64 (0's) skipped */
    assert_int_equal(next, CL_MAX_PENDING + 2);
    /* a reused slot starts clean */
    P[1].done = true;
    P[1].placing = true;
    P[1].used = false;
    next = 1;
    assert_int_equal(cl_pending_alloc(P, CL_MAX_PENDING, &next, 2), 1);
    assert_int_equal(P[1].id, 1);
    assert_false(P[1].done || P[1].placing);
    /* fill every slot: then -EBUSY, and no two waiting requests share an id */
    int n = 0;
    while (cl_pending_alloc(P, CL_MAX_PENDING, &next, 2) >= 0)
        n++;
    assert_int_equal(n, CL_MAX_PENDING - 4);
    assert_int_equal(cl_pending_alloc(P, CL_MAX_PENDING, &next, 2), -EBUSY);
    for (int i = 0; i < CL_MAX_PENDING; i++) {
        assert_true(P[i].used);
        assert_int_equal(P[i].id % CL_MAX_PENDING, i);
        for (int j = i + 1; j < CL_MAX_PENDING; j++)
            assert_int_not_equal(P[i].id, P[j].id);
    }
}

static struct vfio_user_header hdr(uint16_t cmd, uint32_t flags)
{
    return (struct vfio_user_header){ .msg_id = 1, .cmd = cmd, .flags = VFIO_USER_F_TYPE_REPLY | flags };
}

/* Only an exact answer goes straight into the caller's buffer. */
static void test_placeable(void **st)
{
    uint8_t dst[64];
    struct cl_pending p = { .used = true, .id = 1, .cmd = VFIO_USER_REGION_READ, .dst = dst, .dst_len = 64 };
    for (int i = 0; i < 16; i++)
        p.head[i] = (uint8_t)i;
    uint8_t prefix[16];
    memcpy(prefix, p.head, 16);
    size_t keep = 99;
    struct vfio_user_header h = hdr(VFIO_USER_REGION_READ, 0);
    assert_true(cl_reply_placeable(&p, &h, false, prefix, 16 + 64, &keep));
    assert_int_equal(keep, 99); /* REGION_READ keeps nothing of the head in the buffer */
    assert_false(cl_reply_placeable(&p, &h, false, prefix, 16 + 63, &keep)); /* short */
    assert_false(cl_reply_placeable(&p, &h, false, prefix, 16 + 65, &keep)); /* long */
    assert_false(cl_reply_placeable(&p, &h, true, prefix, 16 + 64, &keep));  /* with fds */
    prefix[9] ^= 1;                                                        /* another region or offset */
    assert_false(cl_reply_placeable(&p, &h, false, prefix, 16 + 64, &keep));
    prefix[9] ^= 1;
    struct vfio_user_header e = hdr(VFIO_USER_REGION_READ, VFIO_USER_F_ERROR);
    assert_false(cl_reply_placeable(&p, &e, false, prefix, 16 + 64, &keep));
    struct vfio_user_header other = hdr(VFIO_USER_REGION_WRITE, 0);
    assert_false(cl_reply_placeable(&p, &other, false, prefix, 16 + 64, &keep));
    p.dst = NULL; /* a request that did not offer a buffer */
    assert_false(cl_reply_placeable(&p, &h, false, prefix, 16 + 64, &keep));

    /* MIG_DATA_READ: argsz and size, then size <= what was asked */
    struct cl_pending m = { .used = true, .id = 1, .cmd = VFIO_USER_MIG_DATA_READ, .dst = dst, .dst_len = 64 };
    struct vfio_user_header mh = hdr(VFIO_USER_MIG_DATA_READ, 0);
    uint8_t mp[16] = { 0 };
    ufio_st32(mp, 8 + 64);
    ufio_st32(mp + 4, 40);
    keep = 0;
    assert_true(cl_reply_placeable(&m, &mh, false, mp, 8 + 40, &keep));
    assert_int_equal(keep, 8);
    assert_false(cl_reply_placeable(&m, &mh, false, mp, 8 + 41, &keep)); /* size and body disagree */
    ufio_st32(mp + 4, 65);
    assert_false(cl_reply_placeable(&m, &mh, false, mp, 8 + 65, &keep)); /* more than asked */
}

static struct ufio_msg reply_msg(uint16_t cmd, uint32_t flags, uint8_t *payload, size_t len, size_t nfds)
{
    struct ufio_msg m;
    ufio_msg_init(&m);
    m.hdr = hdr(cmd, flags);
    m.payload = payload;
    m.len = len;
    m.nfds = nfds; /* the fds themselves are not looked at */
    return m;
}

static void test_verdict(void **st)
{
    struct ufio_msg ok = reply_msg(VFIO_USER_DEVICE_RESET, 0, NULL, 0, 0);
    assert_int_equal(cl_reply_verdict(&ok, VFIO_USER_DEVICE_RESET, 4096, false), 0);
    uint8_t four[4] = { 0 };
    struct ufio_msg pl = reply_msg(VFIO_USER_DEVICE_RESET, 0, four, 4, 0);
    assert_int_equal(cl_reply_verdict(&pl, VFIO_USER_DEVICE_RESET, 4096, false), -EPROTO); /* payload where none belongs */
    assert_int_equal(cl_reply_verdict(&pl, VFIO_USER_DEVICE_RESET, 4096, true), -EPROTO);  /* ...whoever asks: the table */
    struct ufio_msg fd = reply_msg(VFIO_USER_DEVICE_RESET, 0, NULL, 0, 1);
    assert_int_equal(cl_reply_verdict(&fd, VFIO_USER_DEVICE_RESET, 4096, true), -EPROTO);  /* an fd too */
    assert_int_equal(cl_reply_verdict(&ok, VFIO_USER_REGION_READ, 4096, false), -EPROTO);  /* another command */
    struct ufio_msg err = reply_msg(VFIO_USER_DEVICE_RESET, VFIO_USER_F_ERROR, NULL, 0, 0);
    err.hdr.error_no = EBUSY;
    assert_int_equal(cl_reply_verdict(&err, VFIO_USER_DEVICE_RESET, 4096, false), -EBUSY);
    assert_int_equal(cl_reply_verdict(&err, VFIO_USER_DEVICE_RESET, 4096, true), -EBUSY);
    err.hdr.error_no = 0;
    assert_int_equal(cl_reply_verdict(&err, VFIO_USER_DEVICE_RESET, 4096, false), -EPROTO);
    /* the command is checked before the error: an error for another command is a protocol error */
    err.hdr.error_no = EBUSY;
    assert_int_equal(cl_reply_verdict(&err, VFIO_USER_REGION_WRITE, 4096, false), -EPROTO);
    /* a row's decoder: a REGION_READ reply whose count is not what follows */
    uint8_t rr[16 + 4] = { 0 };
    rr[12] = 4;
    struct ufio_msg rd = reply_msg(VFIO_USER_REGION_READ, 0, rr, 20, 0);
    assert_int_equal(cl_reply_verdict(&rd, VFIO_USER_REGION_READ, 4096, true), 0);
    rr[12] = 5;
    assert_int_equal(cl_reply_verdict(&rd, VFIO_USER_REGION_READ, 4096, true), -EPROTO);
    /* data placed in the caller's buffer counts as the reply's */
    rd.len = 16;
    rd.sunk = 5;
    assert_int_equal(cl_reply_verdict(&rd, VFIO_USER_REGION_READ, 4096, true), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peer_errno),
        cmocka_unit_test_setup(test_find_by_msg_id, setup),
        cmocka_unit_test_setup(test_alloc_ids, setup),
        cmocka_unit_test(test_placeable),
        cmocka_unit_test(test_verdict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
