/* VERSION payloads and the JSON capabilities (lib/proto/version.c, header.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"

static int parse(const char *json, struct ufio_caps *c)
{
    return ufio_caps_parse(json, strlen(json) + 1, c);
}

static void test_defaults(void **st)
{
    struct ufio_caps c;
    assert_int_equal(parse("{}", &c), 0);
    assert_int_equal(c.max_msg_fds, 1);
    assert_int_equal(c.max_data_xfer_size, 1048576);
    assert_int_equal(c.max_dma_maps, 65535);
    assert_int_equal(c.pgsizes, 4096);
    assert_false(c.twin_socket);
    assert_false(c.write_multiple);
}

static void test_all_keys(void **st)
{
    struct ufio_caps c;
    assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":16,\"max_data_xfer_size\":65536,"
                           "\"max_dma_maps\":10,\"pgsizes\":12288,\"migration\":{\"pgsize\":4096,"
                           "\"max_bitmap_size\":268435456},\"twin_socket\":{\"supported\":true,\"fd_index\":0},"
                           "\"write_multiple\":true,\"future_key\":{\"x\":[1,2,3]}}}", &c), 0);
    assert_int_equal(c.max_msg_fds, 16);
    assert_int_equal(c.max_data_xfer_size, 65536);
    assert_int_equal(c.max_dma_maps, 10);
    assert_int_equal(c.pgsizes, 12288);
    assert_true(c.has_migration);
    assert_int_equal(c.mig_pgsize, 4096);
    assert_int_equal(c.mig_max_bitmap_size, 268435456);
    assert_true(c.twin_socket);
    assert_true(c.has_twin_fd_index);
    assert_int_equal(c.twin_fd_index, 0);
    assert_true(c.write_multiple);
    /* a huge max_data_xfer_size is clamped to what we would ever use */
    assert_int_equal(parse("{\"capabilities\":{\"max_data_xfer_size\":1099511627776}}", &c), 0);
    assert_int_equal(c.max_data_xfer_size, UFIO_MAX_DATA_XFER_LIMIT);
}

static void test_malformed(void **st)
{
    static const char *bad[] = {
        "", "{", "[]", "null", "42", "{\"capabilities\":[]}", "{\"capabilities\":1}",
        "{\"capabilities\":{\"max_msg_fds\":17}}", "{\"capabilities\":{\"max_msg_fds\":-1}}",
        "{\"capabilities\":{\"max_msg_fds\":\"8\"}}", "{\"capabilities\":{\"max_msg_fds\":1.5}}",
        "{\"capabilities\":{\"max_data_xfer_size\":0}}", "{\"capabilities\":{\"pgsizes\":0}}",
        "{\"capabilities\":{\"max_dma_maps\":0}}", "{\"capabilities\":{\"max_dma_maps\":4294967296}}",
        "{\"capabilities\":{\"twin_socket\":true}}", "{\"capabilities\":{\"twin_socket\":{\"supported\":1}}}",
        "{\"capabilities\":{\"twin_socket\":{\"fd_index\":99}}}", "{\"capabilities\":{\"write_multiple\":1}}",
        "{\"capabilities\":{\"migration\":[]}}", "{\"capabilities\":{\"migration\":{\"pgsize\":-4}}}",
        "{} trailing", "{}{}", "{'capabilities':{}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ufio_caps c;
        int err = parse(bad[i], &c);
        if (err != -EINVAL)
            print_error("case %zu '%s' gave %d\n", i, bad[i], err);
        assert_int_equal(err, -EINVAL);
        assert_int_equal(c.max_msg_fds, 1); /* left at defaults */
    }
    struct ufio_caps c;
    /* not NUL-terminated, NUL inside, too long */
    assert_int_equal(ufio_caps_parse("{}", 2, &c), -EINVAL);
    assert_int_equal(ufio_caps_parse("{}\0{}", 6, &c), -EINVAL);
    static char big[UFIO_MAX_VERSION_JSON + 16];
    memset(big, ' ', sizeof(big));
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    big[sizeof(big) - 1] = 0;
    assert_int_equal(ufio_caps_parse(big, sizeof(big), &c), -E2BIG);
}

static void test_version_payload(void **st)
{
    struct ufio_version v;
    const uint8_t p[] = { 0, 0, 2, 0 };
    assert_int_equal(ufio_version_decode(p, 4, &v), 0);
    assert_int_equal(v.major, 0);
    assert_int_equal(v.minor, 2);
    assert_false(v.has_json);
    for (size_t n = 0; n < 4; n++)
        assert_int_equal(ufio_version_decode(p, n, &v), -EINVAL);
    uint8_t q[64] = { 1, 0, 3, 0 };
    memcpy(q + 4, "{\"capabilities\":{\"max_msg_fds\":4}}", 35);
    assert_int_equal(ufio_version_decode(q, 4 + 35, &v), 0);
    assert_int_equal(v.major, 1);
    assert_int_equal(v.minor, 3);
    assert_int_equal(v.caps.max_msg_fds, 4);
    assert_int_equal(ufio_version_decode(q, 4 + 34, &v), -EINVAL); /* NUL cut off */
}

static void test_encode_roundtrip_and_bytes(void **st)
{
    struct ufio_version v = { .major = 0, .minor = 2, .has_json = true };
    ufio_caps_defaults(&v.caps);
    v.caps.max_msg_fds = 8;
    v.caps.twin_socket = true;
    v.caps.has_twin_fd_index = true;
    v.caps.twin_fd_index = 0;
    v.caps.write_multiple = true;
    uint8_t buf[512];
    ssize_t n = ufio_version_encode(&v, buf, sizeof(buf));
    assert_true(n > 4);
    assert_int_equal(buf[0], 0);
    assert_int_equal(buf[2], 2);
    assert_int_equal(buf[n - 1], 0);
    assert_string_equal((char *)buf + 4,
                        "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":1048576,"
                        "\"max_dma_maps\":65535,\"pgsizes\":4096,\"twin_socket\":{\"supported\":true,"
                        "\"fd_index\":0},\"write_multiple\":true}}");
    struct ufio_version back;
    assert_int_equal(ufio_version_decode(buf, (size_t)n, &back), 0);
    assert_int_equal(back.caps.max_msg_fds, 8);
    assert_true(back.caps.twin_socket);
    assert_true(back.caps.write_multiple);
    assert_int_equal(ufio_version_encode(&v, buf, 20), -ENOSPC);
}

static void test_negotiate(void **st)
{
    struct ufio_version cl = { .major = 0, .minor = 0 }, sv = { .major = 0, .minor = 2 }, r;
    ufio_caps_defaults(&cl.caps);
    ufio_caps_defaults(&sv.caps);
    cl.caps.twin_socket = true;
    sv.caps.max_msg_fds = 8;
    sv.caps.write_multiple = true;
    assert_int_equal(ufio_version_negotiate(&cl, &sv, &r), 0);
    assert_int_equal(r.minor, 0); /* the lower of the two: QEMU proposes 0.0 */
    assert_int_equal(r.caps.max_msg_fds, 8);
    assert_false(r.caps.twin_socket); /* server did not offer it */
    assert_false(r.caps.write_multiple); /* client did not */
    cl.minor = 9;
    sv.caps.twin_socket = true;
    assert_int_equal(ufio_version_negotiate(&cl, &sv, &r), 0);
    assert_int_equal(r.minor, 2);
    assert_true(r.caps.twin_socket);
    cl.major = 1;
    assert_int_equal(ufio_version_negotiate(&cl, &sv, &r), -ENOTSUP);
}

static void test_header(void **st)
{
    uint8_t b[16] = { 0x34, 0x12, 9, 0, 20, 0, 0, 0, 0x11, 0, 0, 0, 0, 0, 0, 0 };
    struct vfio_user_header h;
    assert_int_equal(ufio_hdr_decode(b, 16, 4096, &h), 0);
    assert_int_equal(h.msg_id, 0x1234);
    assert_int_equal(h.cmd, 9);
    assert_int_equal(h.msg_size, 20);
    assert_int_equal(h.flags, 0x11);
    uint8_t out[16];
    ufio_hdr_encode(out, &h);
    assert_memory_equal(out, b, 16);
    for (size_t n = 0; n < 16; n++)
        assert_int_equal(ufio_hdr_decode(b, n, 4096, &h), -EPROTO);
    b[4] = 15;
    assert_int_equal(ufio_hdr_decode(b, 16, 4096, &h), -EPROTO);
    b[4] = 0;
    b[5] = 0x20; /* 8192 > max */
    assert_int_equal(ufio_hdr_decode(b, 16, 4096, &h), -EPROTO);
    b[5] = 0;
    b[4] = 16;
    b[8] = 0x2; /* type 2 */
    assert_int_equal(ufio_hdr_decode(b, 16, 4096, &h), -EINVAL);
    b[8] = 0x40; /* reserved bit */
    assert_int_equal(ufio_hdr_decode(b, 16, 4096, &h), -EINVAL);
    assert_string_equal(ufio_cmd_name(15), "REGION_WRITE_MULTI");
    assert_string_equal(ufio_cmd_name(14), "?");
    assert_string_equal(ufio_cmd_name(999), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_all_keys),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_version_payload),
        cmocka_unit_test(test_encode_roundtrip_and_bytes),
        cmocka_unit_test(test_negotiate),
        cmocka_unit_test(test_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
