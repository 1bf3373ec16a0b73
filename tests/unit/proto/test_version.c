/* VERSION payloads, the JSON capabilities and negotiation (lib/proto/version.c). */
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
        "{\"capabilities\":{\"ufio_role\":\"king\"}}", "{\"capabilities\":{\"max_msg_fds\":-1}}",
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

static void test_numbers(void **st)
{
    (void)st;
    struct ufio_caps c;
    /* u64 values above INT64_MAX arrive exactly */
    assert_int_equal(parse("{\"capabilities\":{\"pgsizes\":18446744073709547520}}", &c), 0);
    assert_true(c.pgsizes == 0xfffffffffffff000ull);
    assert_int_equal(parse("{\"capabilities\":{\"migration\":{\"max_bitmap_size\":9223372036854775808}}}", &c), 0);
    assert_true(c.mig_max_bitmap_size == 0x8000000000000000ull);
    /* beyond u64 is refused; UINT64_MAX itself is exact (the reader never saturates) */
    assert_int_equal(parse("{\"capabilities\":{\"pgsizes\":99999999999999999999}}", &c), -EINVAL);
    assert_int_equal(parse("{\"capabilities\":{\"pgsizes\":18446744073709551616}}", &c), -EINVAL);
    assert_int_equal(parse("{\"capabilities\":{\"pgsizes\":18446744073709551615}}", &c), 0);
    assert_true(c.pgsizes == UINT64_MAX);
    assert_int_equal(parse("{\"capabilities\":{\"migration\":{\"pgsize\":18446744073709551616}}}", &c), -EINVAL);
    assert_int_equal(parse("{\"capabilities\":{\"pgsizes\":-9223372036854775809}}", &c), -EINVAL);
    /* max_data_xfer_size: clamped whatever its size, 0 refused */
    assert_int_equal(parse("{\"capabilities\":{\"max_data_xfer_size\":99999999999999999999}}", &c), 0);
    assert_int_equal(c.max_data_xfer_size, UFIO_MAX_DATA_XFER_LIMIT);
    assert_int_equal(parse("{\"capabilities\":{\"max_data_xfer_size\":67108865}}", &c), 0);
    assert_int_equal(c.max_data_xfer_size, UFIO_MAX_DATA_XFER_LIMIT);
    assert_int_equal(parse("{\"capabilities\":{\"max_data_xfer_size\":67108864}}", &c), 0);
    assert_int_equal(c.max_data_xfer_size, 67108864);
    assert_int_equal(parse("{\"capabilities\":{\"max_data_xfer_size\":1}}", &c), 0);
    assert_int_equal(c.max_data_xfer_size, 1);
    assert_int_equal(parse("{\"capabilities\":{\"max_data_xfer_size\":-1}}", &c), -EINVAL);
    /* max_msg_fds: 0..16 inclusive */
    assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":0}}", &c), 0);
    assert_int_equal(c.max_msg_fds, 0);
    assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":16}}", &c), 0);
    assert_int_equal(c.max_msg_fds, 16);
    /* above 16: what the peer can receive, so as good as 16 (libvfio-user offers 32) */
    assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":17}}", &c), 0);
    assert_int_equal(c.max_msg_fds, 16);
    assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":32}}", &c), 0);
    assert_int_equal(c.max_msg_fds, 16);
    assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":99999999999999999999999}}", &c), 0);
    assert_int_equal(c.max_msg_fds, 16);
    /* ufio_role: the three names, nothing else */
    assert_int_equal(parse("{\"capabilities\":{\"ufio_role\":\"observer\"}}", &c), 0);
    assert_int_equal(c.role, UFIO_ROLE_OBSERVER);
    assert_int_equal(parse("{\"capabilities\":{\"ufio_role\":\"controller\"}}", &c), 0);
    assert_int_equal(c.role, UFIO_ROLE_CONTROLLER);
    assert_int_equal(parse("{\"capabilities\":{\"ufio_role\":\"owner\"}}", &c), 0);
    assert_int_equal(c.role, UFIO_ROLE_OWNER);
    assert_int_equal(parse("{\"capabilities\":{\"ufio_role\":1}}", &c), -EINVAL);
    /* ufio_no_wait: a boolean; ufio_handover: 0..255 */
    assert_int_equal(parse("{\"capabilities\":{\"ufio_no_wait\":true}}", &c), 0);
    assert_true(c.no_wait);
    assert_int_equal(parse("{\"capabilities\":{\"ufio_no_wait\":false}}", &c), 0);
    assert_false(c.no_wait);
    assert_int_equal(parse("{\"capabilities\":{\"ufio_no_wait\":1}}", &c), -EINVAL);
    assert_int_equal(parse("{\"capabilities\":{\"ufio_handover\":255}}", &c), 0);
    assert_int_equal(c.handover, 255);
    assert_int_equal(parse("{\"capabilities\":{\"ufio_handover\":256}}", &c), -EINVAL);
    assert_int_equal(parse("{\"capabilities\":{\"ufio_handover\":\"2\"}}", &c), -EINVAL);
    assert_int_equal(parse("{\"capabilities\":{}}", &c), 0);
    assert_int_equal(c.role, 0);
    assert_int_equal(parse("{\"capabilities\":{\"max_dma_maps\":4294967295}}", &c), 0);
    assert_int_equal(c.max_dma_maps, UINT32_MAX);
    /* -0 is zero, not negative */
    assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":-0}}", &c), 0);
    assert_int_equal(c.max_msg_fds, 0);
}

static void test_not_rfc_json(void **st)
{
    (void)st;
    static const char *bad[] = {
        "{\"capabilities\":{\"max_msg_fds\":0x10}}", "{\"capabilities\":{\"max_msg_fds\":010}}",
        "{\"capabilities\":{\"max_msg_fds\":+1}}", "{\"capabilities\":{\"max_msg_fds\":1e1}}",
        "{\"capabilities\":{\"max_msg_fds\":NaN}}", "{\"capabilities\":{\"max_msg_fds\":Infinity}}",
        "{\"capabilities\":{},}", "{\"capabilities\":{\"x\":[1,]}}", "/* c */{}", "{} // c",
        "{\"capabilities\":{\"write_multiple\":TRUE}}", "{\"capabilities\":{\"write_multiple\":tru}}",
        "{capabilities:{}}", "{\"x\":'y'}", "{\"x\":\"a\x01b\"}", "{\"x\":\"tab\there\"}",
        "{\"x\":\"\xff\"}", "{\"x\":\"\xc3\"}", "{\"x\":\"\\q\"}", "{\"x\":\"unterminated}",
        "\x01{}", "{}\x01",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ufio_caps c;
        int err = parse(bad[i], &c);
        if (err != -EINVAL)
            print_error("case %zu gave %d\n", i, err);
        assert_int_equal(err, -EINVAL);
    }
    /* what RFC 8259 does allow */
    static const char *good[] = {
        " {} ", "\t{\n\"capabilities\" : {\r\n}\n}\n", "{\"x\":\"it's \\\"q\\\" \\\\ \\u00e9 \\n\"}",
        "{\"x\":\"\xc3\xa9\"}", "{\"x\":null,\"y\":[true,false,1.5e3,-2],\"capabilities\":{\"z\":{}}}",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct ufio_caps c;
        int err = parse(good[i], &c);
        if (err)
            print_error("good case %zu gave %d\n", i, err);
        assert_int_equal(err, 0);
        assert_int_equal(c.max_msg_fds, UFIO_DEFAULT_MAX_MSG_FDS);
    }
}

static void test_shapes(void **st)
{
    (void)st;
    struct ufio_caps c;
    /* keys at the top level other than capabilities are not capabilities */
    assert_int_equal(parse("{\"max_msg_fds\":8}", &c), 0);
    assert_int_equal(c.max_msg_fds, 1);
    /* twin_socket without "supported" is not support; supported:false stays off */
    assert_int_equal(parse("{\"capabilities\":{\"twin_socket\":{}}}", &c), 0);
    assert_false(c.twin_socket);
    assert_int_equal(parse("{\"capabilities\":{\"twin_socket\":{\"supported\":false}}}", &c), 0);
    assert_false(c.twin_socket);
    assert_false(c.has_twin_fd_index);
    assert_int_equal(parse("{\"capabilities\":{\"twin_socket\":{\"supported\":true,\"fd_index\":16}}}", &c), 0);
    assert_true(c.twin_socket);
    assert_int_equal(c.twin_fd_index, 16);
    assert_int_equal(parse("{\"capabilities\":{\"twin_socket\":{\"supported\":true,\"fd_index\":\"0\"}}}", &c),
                     -EINVAL);
    assert_int_equal(parse("{\"capabilities\":{\"twin_socket\":null}}", &c), -EINVAL);
    assert_int_equal(parse("{\"capabilities\":{\"write_multiple\":false}}", &c), 0);
    assert_false(c.write_multiple);
    assert_int_equal(parse("{\"capabilities\":{\"write_multiple\":\"true\"}}", &c), -EINVAL);
    assert_int_equal(parse("{\"capabilities\":{\"migration\":{}}}", &c), 0);
    assert_true(c.has_migration);
    assert_int_equal(c.mig_pgsize, 0);
    assert_int_equal(parse("{\"capabilities\":{\"migration\":{\"pgsize\":4096}}}", &c), 0);
    assert_int_equal(c.mig_pgsize, 4096);
    assert_int_equal(parse("{\"capabilities\":{\"migration\":{\"pgsize\":true}}}", &c), -EINVAL);
    assert_int_equal(parse("{\"capabilities\":{\"migration\":{\"max_bitmap_size\":\"1\"}}}", &c), -EINVAL);
    assert_int_equal(parse("{\"capabilities\":{\"pgsizes\":4096.0}}", &c), -EINVAL);
    assert_int_equal(parse("{\"capabilities\":{\"max_dma_maps\":[1]}}", &c), -EINVAL);
    assert_int_equal(parse("{\"capabilities\":{\"max_data_xfer_size\":null}}", &c), -EINVAL);
    assert_int_equal(parse("{\"capabilities\":null}", &c), -EINVAL);
    assert_int_equal(parse("{\"capabilities\":\"x\"}", &c), -EINVAL);
    assert_int_equal(parse("\"capabilities\"", &c), -EINVAL);
    assert_int_equal(parse("true", &c), -EINVAL);
    /* unknown keys of any type are skipped, known ones next to them still count */
    assert_int_equal(parse("{\"v\":1,\"capabilities\":{\"a\":null,\"b\":\"s\",\"c\":[{}],\"d\":-5,"
                           "\"max_msg_fds\":3,\"e\":1.25}}", &c), 0);
    assert_int_equal(c.max_msg_fds, 3);
    /* an error anywhere leaves every field at its default */
    assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":3,\"pgsizes\":8192,\"write_multiple\":1}}", &c),
                     -EINVAL);
    assert_int_equal(c.max_msg_fds, 1);
    assert_int_equal(c.pgsizes, 4096);
    /* the same key twice is refused, even spelt differently, at any level */
    assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":2,\"max_msg_fds\":3}}", &c), -EINVAL);
    assert_int_equal(c.max_msg_fds, 1);
    assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":2,\"max_msg_\\u0066ds\":3}}", &c), -EINVAL);
    assert_int_equal(parse("{\"capabilities\":{},\"capabilities\":{\"max_msg_fds\":3}}", &c), -EINVAL);
    assert_int_equal(parse("{\"x\":{\"a\":1,\"a\":1}}", &c), -EINVAL);
    assert_int_equal(parse("{\"x\":{\"a\":1},\"y\":{\"a\":1}}", &c), 0); /* same key, other objects */
    /* nesting deeper than UFIO_VERSION_JSON_DEPTH is refused, not a crash */
    char deep[128] = "{\"x\":";
    for (int i = 0; i < 40; i++)
        strcat(deep, "[");
    for (int i = 0; i < 40; i++)
        strcat(deep, "]");
    strcat(deep, "}");
    assert_int_equal(parse(deep, &c), -EINVAL);
    /* exactly the limit is fine: the object and 15 arrays */
    strcpy(deep, "{\"x\":");
    for (int i = 0; i < UFIO_VERSION_JSON_DEPTH - 1; i++)
        strcat(deep, "[");
    for (int i = 0; i < UFIO_VERSION_JSON_DEPTH - 1; i++)
        strcat(deep, "]");
    strcat(deep, "}");
    assert_int_equal(parse(deep, &c), 0);
    deep[5] = 0;
    strcat(deep, "[");
    for (int i = 0; i < UFIO_VERSION_JSON_DEPTH - 1; i++)
        strcat(deep, "[");
    for (int i = 0; i < UFIO_VERSION_JSON_DEPTH; i++)
        strcat(deep, "]");
    strcat(deep, "}");
    assert_int_equal(parse(deep, &c), -EINVAL);
}

static void test_length_rules(void **st)
{
    (void)st;
    struct ufio_caps c;
    assert_int_equal(ufio_caps_parse("", 0, &c), -EINVAL);
    assert_int_equal(ufio_caps_parse("", 1, &c), -EINVAL); /* just the NUL */
    assert_int_equal(ufio_caps_parse("{}\0\0", 4, &c), -EINVAL);
    assert_int_equal(ufio_caps_parse("{}\0x", 4, &c), -EINVAL);
    assert_int_equal(ufio_caps_parse("{}", 3, &c), 0);
    /* exactly UFIO_MAX_VERSION_JSON with the NUL is fine; one more is -E2BIG */
    static char big[UFIO_MAX_VERSION_JSON + 1];
    memset(big, ' ', sizeof(big));
    big[0] = '{';
    big[UFIO_MAX_VERSION_JSON - 2] = '}';
    big[UFIO_MAX_VERSION_JSON - 1] = 0;
    assert_int_equal(ufio_caps_parse(big, UFIO_MAX_VERSION_JSON, &c), 0);
    big[UFIO_MAX_VERSION_JSON - 2] = ' ';
    big[UFIO_MAX_VERSION_JSON - 1] = '}';
    big[UFIO_MAX_VERSION_JSON] = 0;
    assert_int_equal(ufio_caps_parse(big, UFIO_MAX_VERSION_JSON + 1, &c), -E2BIG);
}

static void test_version_payload_rules(void **st)
{
    (void)st;
    struct ufio_version v;
    /* major 0x0102, minor 0x0304, JSON "{}" + NUL */
    const uint8_t p[] = { 0x02, 0x01, 0x04, 0x03, '{', '}', 0 };
    assert_int_equal(ufio_version_decode(p, sizeof(p), &v), 0);
    assert_int_equal(v.major, 0x0102);
    assert_int_equal(v.minor, 0x0304);
    assert_true(v.has_json);
    assert_int_equal(v.caps.max_msg_fds, UFIO_DEFAULT_MAX_MSG_FDS);
    assert_int_equal(v.caps.pgsizes, UFIO_DEFAULT_PGSIZES);
    assert_int_equal(ufio_version_decode(p, 5, &v), -EINVAL);   /* "{" without NUL */
    assert_int_equal(ufio_version_decode(p, 6, &v), -EINVAL);   /* "{}" without NUL */
    const uint8_t trailing[] = { 0, 0, 0, 0, '{', '}', 0, 'x' };
    assert_int_equal(ufio_version_decode(trailing, sizeof(trailing), &v), -EINVAL);
    const uint8_t only_nul[] = { 0, 0, 0, 0, 0 };
    assert_int_equal(ufio_version_decode(only_nul, sizeof(only_nul), &v), -EINVAL);
    static uint8_t big[4 + UFIO_MAX_VERSION_JSON + 1];
    memset(big, ' ', sizeof(big));
    big[4] = '{';
    big[sizeof(big) - 2] = '}';
    big[sizeof(big) - 1] = 0;
    assert_int_equal(ufio_version_decode(big, sizeof(big), &v), -E2BIG);
    big[5] = '{';
    big[4] = ' ';
    assert_int_equal(ufio_version_decode(big + 1, sizeof(big) - 1, &v), 0); /* 4 + 4096: fits */
    /* a failed decode leaves caps at defaults */
    const char *j = "{\"capabilities\":{\"max_msg_fds\":-7}}";
    uint8_t q[64] = { 0, 0, 2, 0 };
    memcpy(q + 4, j, strlen(j) + 1);
    assert_int_equal(ufio_version_decode(q, 4 + strlen(j) + 1, &v), -EINVAL);
    assert_int_equal(v.caps.max_msg_fds, 1);
}

static void test_encode_bytes(void **st)
{
    (void)st;
    /* no JSON: just the two numbers */
    struct ufio_version v = { .major = 0x0102, .minor = 0x0304 };
    ufio_caps_defaults(&v.caps);
    uint8_t buf[512];
    assert_int_equal(ufio_version_encode(&v, buf, sizeof(buf)), 4);
    const uint8_t want4[] = { 0x02, 0x01, 0x04, 0x03 };
    assert_memory_equal(buf, want4, 4);
    assert_int_equal(ufio_version_encode(&v, buf, 3), -ENOSPC);
    /* defaults */
    v.has_json = true;
    static const char defaults[] = "{\"capabilities\":{\"max_msg_fds\":1,\"max_data_xfer_size\":1048576,"
                                   "\"max_dma_maps\":65535,\"pgsizes\":4096}}";
    ssize_t n = ufio_version_encode(&v, buf, sizeof(buf));
    assert_int_equal(n, 4 + sizeof(defaults));
    assert_memory_equal(buf, want4, 4);
    assert_memory_equal(buf + 4, defaults, sizeof(defaults)); /* NUL included */
    for (size_t cap = 0; cap < (size_t)n; cap++)
        assert_int_equal(ufio_version_encode(&v, buf, cap), -ENOSPC);
    assert_int_equal(ufio_version_encode(&v, buf, (size_t)n), n);
    /* every optional key */
    v.caps.has_migration = true;
    v.caps.mig_pgsize = 4096;
    v.caps.mig_max_bitmap_size = 1ull << 40;
    v.caps.twin_socket = true;
    v.caps.write_multiple = true;
    v.caps.pgsizes = 0xfffffffffffff000ull;
    char text[512];
    ssize_t tn = ufio_caps_emit(&v.caps, text, sizeof(text));
    assert_int_equal(tn, (ssize_t)strlen(text) + 1);
    assert_string_equal(text, "{\"capabilities\":{\"max_msg_fds\":1,\"max_data_xfer_size\":1048576,"
                              "\"max_dma_maps\":65535,\"pgsizes\":18446744073709547520,"
                              "\"migration\":{\"pgsize\":4096,\"max_bitmap_size\":1099511627776},"
                              "\"twin_socket\":{\"supported\":true},\"write_multiple\":true}}");
    /* fd_index without twin_socket is not emitted */
    v.caps.twin_socket = false;
    v.caps.has_twin_fd_index = true;
    v.caps.twin_fd_index = 3;
    assert_true(ufio_caps_emit(&v.caps, text, sizeof(text)) > 0);
    assert_null(strstr(text, "twin_socket"));
    assert_int_equal(ufio_caps_emit(&v.caps, text, 10), -ENOSPC);
    /* ufio's takeover keys, after the role, only when set */
    assert_null(strstr(text, "ufio_no_wait"));
    assert_null(strstr(text, "ufio_handover"));
    v.caps.role = UFIO_ROLE_CONTROLLER;
    v.caps.no_wait = true;
    v.caps.handover = 2;
    assert_true(ufio_caps_emit(&v.caps, text, sizeof(text)) > 0);
    assert_non_null(strstr(text, ",\"ufio_role\":\"controller\",\"ufio_no_wait\":true,\"ufio_handover\":2}}"));
    struct ufio_caps back;
    assert_int_equal(ufio_caps_parse(text, strlen(text) + 1, &back), 0);
    assert_true(back.no_wait);
    assert_int_equal(back.handover, 2);
    assert_int_equal(back.role, UFIO_ROLE_CONTROLLER);
}

static void caps_equal(const struct ufio_caps *a, const struct ufio_caps *b)
{
    assert_int_equal(a->max_msg_fds, b->max_msg_fds);
    assert_true(a->max_data_xfer_size == b->max_data_xfer_size);
    assert_int_equal(a->max_dma_maps, b->max_dma_maps);
    assert_true(a->pgsizes == b->pgsizes);
    assert_int_equal(a->has_migration, b->has_migration);
    assert_true(a->mig_pgsize == b->mig_pgsize);
    assert_true(a->mig_max_bitmap_size == b->mig_max_bitmap_size);
    assert_int_equal(a->twin_socket, b->twin_socket);
    assert_int_equal(a->has_twin_fd_index, b->has_twin_fd_index);
    assert_int_equal(a->twin_fd_index, b->twin_fd_index);
    assert_int_equal(a->write_multiple, b->write_multiple);
}

static void test_roundtrips(void **st)
{
    (void)st;
    struct ufio_caps in[6];
    for (int i = 0; i < 6; i++)
        ufio_caps_defaults(&in[i]);
    in[1].max_msg_fds = 0;
    in[1].max_data_xfer_size = 1;
    in[1].max_dma_maps = 1;
    in[1].pgsizes = 1;
    in[2].max_msg_fds = UFIO_MAX_MSG_FDS_LIMIT;
    in[2].max_data_xfer_size = UFIO_MAX_DATA_XFER_LIMIT;
    in[2].max_dma_maps = UINT32_MAX;
    in[2].pgsizes = UINT64_MAX;
    in[3].has_migration = true;
    in[3].mig_pgsize = 4096;
    in[3].mig_max_bitmap_size = 256u << 20;
    in[4].twin_socket = true;
    in[4].has_twin_fd_index = true;
    in[4].twin_fd_index = 0;
    in[5].twin_socket = true;
    in[5].write_multiple = true;
    for (int i = 0; i < 6; i++) {
        struct ufio_version v = { .major = 0, .minor = (uint16_t)i, .has_json = true, .caps = in[i] }, back;
        uint8_t buf[512];
        ssize_t n = ufio_version_encode(&v, buf, sizeof(buf));
        assert_true(n > 4);
        assert_int_equal(ufio_version_decode(buf, (size_t)n, &back), 0);
        assert_int_equal(back.minor, i);
        assert_true(back.has_json);
        caps_equal(&back.caps, &in[i]);
    }
}

static void test_negotiate_fields(void **st)
{
    (void)st;
    struct ufio_version cl = { .major = 0, .minor = 2, .has_json = true }, sv = { .major = 0, .minor = 1 }, r;
    ufio_caps_defaults(&cl.caps);
    ufio_caps_defaults(&sv.caps);
    cl.caps.max_msg_fds = 16;
    cl.caps.max_data_xfer_size = 4096;
    cl.caps.has_migration = true;
    cl.caps.mig_pgsize = 4096;
    cl.caps.twin_socket = true;
    cl.caps.has_twin_fd_index = true;
    cl.caps.twin_fd_index = 2;
    cl.caps.write_multiple = true;
    sv.caps.max_msg_fds = 4;
    sv.caps.max_data_xfer_size = 1u << 22;
    sv.caps.max_dma_maps = 7;
    sv.caps.pgsizes = 0x201000;
    sv.caps.has_migration = true;
    sv.caps.twin_socket = true;
    sv.caps.write_multiple = true;
    memset(&r, 0xa5, sizeof(r));
    assert_int_equal(ufio_version_negotiate(&cl, &sv, &r), 0);
    assert_int_equal(r.major, 0);
    assert_int_equal(r.minor, 1);
    assert_true(r.has_json);
    assert_int_equal(r.caps.max_msg_fds, 4);           /* the server's, not the client's */
    assert_int_equal(r.caps.max_data_xfer_size, 1u << 22);
    assert_int_equal(r.caps.max_dma_maps, 7);
    assert_int_equal(r.caps.pgsizes, 0x201000);
    assert_false(r.caps.has_migration);                /* never echoed */
    assert_int_equal(r.caps.mig_pgsize, 0);
    assert_true(r.caps.twin_socket);
    assert_false(r.caps.has_twin_fd_index);            /* the caller fills it in */
    assert_true(r.caps.write_multiple);
    sv.caps.write_multiple = false;
    assert_int_equal(ufio_version_negotiate(&cl, &sv, &r), 0);
    assert_false(r.caps.write_multiple);
    cl.caps.twin_socket = false;
    assert_int_equal(ufio_version_negotiate(&cl, &sv, &r), 0);
    assert_false(r.caps.twin_socket);
    /* equal minors; the major must match exactly, both ways */
    sv.minor = 2;
    assert_int_equal(ufio_version_negotiate(&cl, &sv, &r), 0);
    assert_int_equal(r.minor, 2);
    sv.major = 1;
    assert_int_equal(ufio_version_negotiate(&cl, &sv, &r), -ENOTSUP);
    cl.major = 2;
    assert_int_equal(ufio_version_negotiate(&cl, &sv, &r), -ENOTSUP);
    /* the reply encodes to JSON the client can parse */
    cl.major = sv.major = 0;
    cl.caps.twin_socket = true;
    sv.caps.twin_socket = true;
    assert_int_equal(ufio_version_negotiate(&cl, &sv, &r), 0);
    r.caps.has_twin_fd_index = true;
    r.caps.twin_fd_index = 0;
    uint8_t buf[512];
    struct ufio_version back;
    ssize_t n = ufio_version_encode(&r, buf, sizeof(buf));
    assert_true(n > 4);
    assert_int_equal(ufio_version_decode(buf, (size_t)n, &back), 0);
    caps_equal(&back.caps, &r.caps);
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
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_not_rfc_json),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_length_rules),
        cmocka_unit_test(test_version_payload_rules),
        cmocka_unit_test(test_encode_bytes),
        cmocka_unit_test(test_roundtrips),
        cmocka_unit_test(test_negotiate_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
