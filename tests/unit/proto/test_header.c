/* The 16-byte message header and command names (lib/proto/header.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <ufio/ufio.h>

#include "proto/proto.h"

/* msg_id 0x1234, cmd 9, msg_size 20, flags reply|no-reply, error_no 0 */
static const uint8_t good[16] = { 0x34, 0x12, 0x09, 0x00, 0x14, 0x00, 0x00, 0x00,
                                  0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 };

static void test_decode_fields(void **st)
{
    (void)st;
    struct vfio_user_header h;
    assert_int_equal(ufio_hdr_decode(good, 16, 4096, &h), 0);
    assert_int_equal(h.msg_id, 0x1234);
    assert_int_equal(h.cmd, 9);
    assert_int_equal(h.msg_size, 20);
    assert_int_equal(h.flags, 0x11);
    assert_int_equal(h.error_no, 0);
    assert_true(ufio_hdr_is_reply(&h));

    /* an error reply: every field at a distinct value */
    const uint8_t err[16] = { 0xff, 0xff, 0x12, 0x00, 0x10, 0x00, 0x00, 0x00,
                              0x21, 0x00, 0x00, 0x00, 0x5f, 0x00, 0x00, 0x00 };
    assert_int_equal(ufio_hdr_decode(err, 16, 16, &h), 0);
    assert_int_equal(h.msg_id, 0xffff);
    assert_int_equal(h.cmd, VFIO_USER_MIG_DATA_WRITE);
    assert_int_equal(h.msg_size, 16);
    assert_int_equal(h.flags, VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR);
    assert_int_equal(h.error_no, 95);

    /* a command is not a reply; bytes after the header are not the decoder's business */
    uint8_t cmd[20] = { 1, 0, 1, 0, 0x14, 0, 0, 0 };
    assert_int_equal(ufio_hdr_decode(cmd, sizeof(cmd), 4096, &h), 0);
    assert_false(ufio_hdr_is_reply(&h));
    assert_int_equal(h.cmd, VFIO_USER_VERSION);
}

static void test_encode_bytes(void **st)
{
    (void)st;
    struct vfio_user_header h = { .msg_id = 0x1234, .cmd = 9, .msg_size = 20, .flags = 0x11, .error_no = 0 };
    uint8_t out[18];
    memset(out, 0xaa, sizeof(out));
    ufio_hdr_encode(out, &h);
    assert_memory_equal(out, good, 16);
    assert_int_equal(out[16], 0xaa); /* writes exactly 16 bytes */
    h = (struct vfio_user_header){ .msg_id = 0xbeef, .cmd = 0x0102, .msg_size = 0x11223344,
                                   .flags = 0x21, .error_no = 0x55667788 };
    const uint8_t want[16] = { 0xef, 0xbe, 0x02, 0x01, 0x44, 0x33, 0x22, 0x11,
                               0x21, 0x00, 0x00, 0x00, 0x88, 0x77, 0x66, 0x55 };
    ufio_hdr_encode(out, &h);
    assert_memory_equal(out, want, 16);
    struct vfio_user_header back;
    assert_int_equal(ufio_hdr_decode(out, 16, UINT32_MAX, &back), 0);
    assert_memory_equal(&back, &h, sizeof(h));
}

static void test_framing_errors(void **st)
{
    (void)st;
    struct vfio_user_header h;
    for (size_t n = 0; n < 16; n++)
        assert_int_equal(ufio_hdr_decode(good, n, 4096, &h), -EPROTO);
    uint8_t b[16];
    memcpy(b, good, 16);
    static const uint32_t bad_sizes[] = { 0, 1, 15, 4097, 0x80000000u, UINT32_MAX };
    for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
        memcpy(b + 4, &bad_sizes[i], 4);
        assert_int_equal(ufio_hdr_decode(b, 16, 4096, &h), -EPROTO);
    }
    uint32_t edge = 4096;
    memcpy(b + 4, &edge, 4);
    assert_int_equal(ufio_hdr_decode(b, 16, 4096, &h), 0);
    edge = 16;
    memcpy(b + 4, &edge, 4);
    assert_int_equal(ufio_hdr_decode(b, 16, 4096, &h), 0);
    /* framing beats flags: a bad size with bad flags is still a framing error */
    b[4] = 3;
    b[8] = 0x0f;
    assert_int_equal(ufio_hdr_decode(b, 16, 4096, &h), -EPROTO);
}

static void test_flags(void **st)
{
    (void)st;
    struct vfio_user_header h;
    uint8_t b[16];
    memcpy(b, good, 16);
    static const uint32_t ok[] = { 0x00, 0x01, 0x10, 0x11, 0x20, 0x21, 0x30, 0x31 };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        memcpy(b + 8, &ok[i], 4);
        assert_int_equal(ufio_hdr_decode(b, 16, 4096, &h), 0);
        assert_int_equal(h.flags, ok[i]);
    }
    for (uint32_t type = 2; type <= 0xf; type++) {
        memcpy(b + 8, &type, 4);
        assert_int_equal(ufio_hdr_decode(b, 16, 4096, &h), -EINVAL);
    }
    for (unsigned bit = 6; bit < 32; bit++) {
        uint32_t f = 1u << bit;
        memcpy(b + 8, &f, 4);
        assert_int_equal(ufio_hdr_decode(b, 16, 4096, &h), -EINVAL);
        f |= VFIO_USER_F_TYPE_REPLY;
        memcpy(b + 8, &f, 4);
        assert_int_equal(ufio_hdr_decode(b, 16, 4096, &h), -EINVAL);
    }
}

static void test_cmd_names(void **st)
{
    (void)st;
    static const char *const want[] = {
        "?", "VERSION", "DMA_MAP", "DMA_UNMAP", "DEVICE_GET_INFO", "DEVICE_GET_REGION_INFO",
        "DEVICE_GET_REGION_IO_FDS", "DEVICE_GET_IRQ_INFO", "DEVICE_SET_IRQS", "REGION_READ",
        "REGION_WRITE", "DMA_READ", "DMA_WRITE", "DEVICE_RESET", "?", "REGION_WRITE_MULTI",
        "DEVICE_FEATURE", "MIG_DATA_READ", "MIG_DATA_WRITE", "HANDOVER", "?",
    };
    for (unsigned c = 0; c < sizeof(want) / sizeof(want[0]); c++) {
        assert_string_equal(ufio_cmd_name(c), want[c]);
        assert_ptr_equal(ufio_cmd_str(c), ufio_cmd_name(c));
    }
    assert_string_equal(ufio_cmd_name(0xffff), "?");
    assert_string_equal(ufio_cmd_name(UINT32_MAX), "?");
    assert_string_equal(ufio_cmd_str(UINT32_MAX), "?");
}

int main(void)
{
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    return 77; /* the hand-written byte arrays are little-endian */
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_fields),
        cmocka_unit_test(test_encode_bytes),
        cmocka_unit_test(test_framing_errors),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_cmd_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
