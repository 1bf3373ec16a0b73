/* The strict JSON reader (lib/proto/json.c): byte-exact acceptance and refusal, then the accessors. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/json.h"

static int parse_n(const void *p, size_t n, struct ufio_json *v, size_t *off)
{
    struct ufio_json tmp;
    return ufio_json_parse(p, n, UFIO_JSON_DEPTH_LIMIT, v ? v : &tmp, off);
}
static int parse(const char *s) { return parse_n(s, strlen(s), NULL, NULL); }

/* Checks each case; prints the case that differs so a failure names it. */
static void expect_all(const char *const *cases, size_t n, int want)
{
    for (size_t i = 0; i < n; i++) {
        int got = parse(cases[i]);
        if (got != want)
            fail_msg("case %zu '%s': got %d, want %d", i, cases[i], got, want);
    }
}
#define EXPECT_ALL(arr, want) expect_all(arr, sizeof(arr) / sizeof(arr[0]), want)

/* A string literal wrapped in quotes and parsed; its unescaped bytes in out. */
static int string_value(const char *body, char *out, size_t cap, size_t *len)
{
    char doc[256];
    snprintf(doc, sizeof(doc), "\"%s\"", body);
    struct ufio_json v;
    int err = parse_n(doc, strlen(doc), &v, NULL);
    if (err)
        return err;
    assert_int_equal(v.type, UFIO_JSON_STRING);
    *len = ufio_json_str(&v, out, cap);
    return 0;
}

static void test_values_and_spans(void **st)
{
    struct ufio_json v;
    assert_int_equal(parse_n(" \t\r\n{\"a\" : [ 1 , true ] }\n ", 27, &v, NULL), 0);
    assert_int_equal(v.type, UFIO_JSON_OBJECT);
    assert_int_equal(v.len, 21);
    assert_memory_equal(v.p, "{\"a\" : [ 1 , true ] }", 21);
    static const struct { const char *text; enum ufio_json_type t; } scalars[] = {
        { "null", UFIO_JSON_NULL }, { "true", UFIO_JSON_TRUE }, { "false", UFIO_JSON_FALSE },
        { "-1.5e3", UFIO_JSON_NUMBER }, { "\"\"", UFIO_JSON_STRING }, { "[]", UFIO_JSON_ARRAY },
        { "{}", UFIO_JSON_OBJECT },
    };
    for (size_t i = 0; i < sizeof(scalars) / sizeof(scalars[0]); i++) {
        assert_int_equal(parse_n(scalars[i].text, strlen(scalars[i].text), &v, NULL), 0);
        assert_int_equal(v.type, scalars[i].t);
        assert_int_equal(v.len, strlen(scalars[i].text));
    }
    assert_int_equal(ufio_json_parse(NULL, 0, 4, &v, NULL), -EINVAL);
}

static void test_structure_refused(void **st)
{
    static const char *const bad[] = {
        "", " ", "[", "]", "{", "}", "[1,]", "[,1]", "[1 2]", "{,}", "{\"a\"}", "{\"a\":}", "{\"a\" 1}",
        "{\"a\":1,}", "{1:2}", "{'a':1}", "{a:1}", "['a']", "tru", "nul", "fals", "True", "NULL", "[true false]",
        "truex", "[1]]", "[[1]", "{\"a\":1}}", "{\"a\":[}]", "[}", "/* c */{}", "{} // c", "{}#",
    };
    EXPECT_ALL(bad, -EINVAL);
}

static void test_trailing_and_whitespace(void **st)
{
    static const char *const bad[] = { "{} x", "{}{}", "1 2", "[] ,", "\"a\"\"b\"", "\f{}", "{}\f", "\v[]",
                                       "[\xc2\xa0]", "\xef\xbb\xbf{}", "{}\xef\xbb\xbf" };
    EXPECT_ALL(bad, -EINVAL);
    static const char *const good[] = { "{}  ", "\n\n[]\r\n", "[\t1\t]", "{ \"a\" \n:\r 1 \t}" };
    EXPECT_ALL(good, 0);
    /* a NUL is never part of a document: not after it, not inside it */
    size_t off = 99;
    assert_int_equal(parse_n("{}\0", 3, NULL, &off), -EINVAL);
    assert_int_equal(off, 2);
    assert_int_equal(parse_n("[\0]", 3, NULL, &off), -EINVAL);
    assert_int_equal(parse_n("\"a\0b\"", 5, NULL, &off), -EINVAL);
    assert_int_equal(off, 2);
    /* the length is what counts, not a NUL */
    assert_int_equal(parse_n("[1]xyz", 3, NULL, NULL), 0);
    assert_int_equal(parse_n("[1]", 2, NULL, NULL), -EINVAL);
}

static void test_error_offsets(void **st)
{
    size_t off = 0;
    assert_int_equal(parse_n("[1,x]", 5, NULL, &off), -EINVAL);
    assert_int_equal(off, 3);
    assert_int_equal(parse_n("{\"a\":1 \"b\"}", 11, NULL, &off), -EINVAL);
    assert_int_equal(off, 7);
    assert_int_equal(parse_n("\"ab\xff\"", 5, NULL, &off), -EINVAL);
    assert_int_equal(off, 3);
    assert_int_equal(parse_n("{} x", 4, NULL, &off), -EINVAL);
    assert_int_equal(off, 3);
}

static void test_nesting_limit(void **st)
{
    struct ufio_json v;
    size_t off = 0;
    char doc[300];
    for (unsigned depth = 1; depth <= 8; depth++) {
        /* depth arrays: accepted at max_depth == depth, -ELOOP at depth - 1, at the innermost '[' */
        memset(doc, '[', depth);
        memset(doc + depth, ']', depth);
        assert_int_equal(ufio_json_parse(doc, 2 * depth, depth, &v, NULL), 0);
        assert_int_equal(ufio_json_parse(doc, 2 * depth, depth - 1, &v, &off), -ELOOP);
        assert_int_equal(off, depth - 1);
    }
    /* objects count as well as arrays */
    assert_int_equal(ufio_json_parse("{\"a\":[{}]}", 10, 3, &v, NULL), 0);
    assert_int_equal(ufio_json_parse("{\"a\":[{}]}", 10, 2, &v, NULL), -ELOOP);
    /* depth 0: scalars only */
    assert_int_equal(ufio_json_parse("7", 1, 0, &v, NULL), 0);
    assert_int_equal(ufio_json_parse("[]", 2, 0, &v, NULL), -ELOOP);
    /* siblings do not add up: many containers side by side at depth 2 */
    assert_int_equal(ufio_json_parse("[[],[],{},[[]]]", 15, 3, &v, NULL), 0);
    /* a request above the library's limit is held to it */
    memset(doc, '[', 64);
    memset(doc + 64, ']', 64);
    assert_int_equal(ufio_json_parse(doc, 128, 1000, &v, NULL), 0);
    memset(doc, '[', 65);
    memset(doc + 65, ']', 65);
    assert_int_equal(ufio_json_parse(doc, 130, 1000, &v, &off), -ELOOP);
    assert_int_equal(off, 64);
    /* a megabyte of '[' ends at the limit, quickly and without recursion */
    size_t n = 1 << 20;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, '[', n);
    assert_int_equal(ufio_json_parse(big, n, UFIO_JSON_DEPTH_LIMIT, &v, &off), -ELOOP);
    assert_int_equal(off, UFIO_JSON_DEPTH_LIMIT);
    free(big);
}

static void test_escapes(void **st)
{
    static const struct { const char *in; const char *out; size_t n; } ok[] = {
        { "\\\"", "\"", 1 }, { "\\\\", "\\", 1 }, { "\\/", "/", 1 }, { "\\b", "\b", 1 }, { "\\f", "\f", 1 },
        { "\\n", "\n", 1 }, { "\\r", "\r", 1 }, { "\\t", "\t", 1 }, { "\\u0041", "A", 1 },
        { "\\u00e9", "\xc3\xa9", 2 }, { "\\u00E9", "\xc3\xa9", 2 }, { "\\u07ff", "\xdf\xbf", 2 },
        { "\\u0800", "\xe0\xa0\x80", 3 }, { "\\u20ac", "\xe2\x82\xac", 3 }, { "\\uffff", "\xef\xbf\xbf", 3 },
        { "\\ud83d\\ude00", "\xf0\x9f\x98\x80", 4 }, { "\\uD800\\uDC00", "\xf0\x90\x80\x80", 4 },
        { "\\udbff\\udfff", "\xf4\x8f\xbf\xbf", 4 }, { "\\u0000", "\0", 1 }, { "a\\u0000b", "a\0b", 3 },
        { "x\\ty\\u0041z", "x\tyAz", 5 }, { "", "", 0 },
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char out[16];
        size_t len = 0;
        int err = string_value(ok[i].in, out, sizeof(out), &len);
        if (err || len != ok[i].n || memcmp(out, ok[i].out, len) || out[len])
            fail_msg("escape case %zu '%s': err %d len %zu", i, ok[i].in, err, len);
    }
    static const char *const bad[] = {
        "\"\\a\"", "\"\\x41\"", "\"\\U0041\"", "\"\\'\"", "\"\\0\"", "\"\\u12\"", "\"\\u12G4\"", "\"\\u\"",
        "\"\\\"",                                       /* the escaped quote leaves it unterminated */
        "\"\\ud800\"", "\"\\ud800x\"", "\"\\ud800\\u0041\"", "\"\\ud800\\ud800\"", "\"\\udbff\\ue000\"",
        "\"\\udc00\"", "\"\\udfff\\ud800\"", "\"\\ud800\\\"", "\"\\ud800\\u", "\"\\ud800\\udc0\"",
        "\"\\ud800\\n\"",
    };
    EXPECT_ALL(bad, -EINVAL);
    /* a backslash as the very last byte */
    assert_int_equal(parse_n("\"\\", 2, NULL, NULL), -EINVAL);
}

static void test_control_characters(void **st)
{
    for (int c = 0; c < 0x20; c++) {
        char doc[4] = { '"', (char)c, '"', 0 };
        size_t off = 0;
        assert_int_equal(parse_n(doc, 3, NULL, &off), -EINVAL);
        assert_int_equal(off, 1);
    }
    assert_int_equal(parse("\"\x7f\""), 0); /* DEL is not a control character to RFC 8259 */
    assert_int_equal(parse("\" ~\""), 0);
}

static void test_utf8(void **st)
{
    static const char *const good[] = {
        "\"\xc2\x80\"", "\"\xdf\xbf\"", "\"\xe0\xa0\x80\"", "\"\xec\xbf\xbf\"", "\"\xed\x80\x80\"",
        "\"\xed\x9f\xbf\"", "\"\xee\x80\x80\"", "\"\xef\xbf\xbf\"", "\"\xf0\x90\x80\x80\"", "\"\xf3\xbf\xbf\xbf\"",
        "\"\xf4\x8f\xbf\xbf\"", "\"\xc3\xa9t\xc3\xa9\"",
    };
    EXPECT_ALL(good, 0);
    static const char *const bad[] = {
        /* stray continuation bytes */
        "\"\x80\"", "\"\xbf\"", "\"a\x80\"",
        /* overlongs */
        "\"\xc0\x80\"", "\"\xc0\xaf\"", "\"\xc1\xbf\"", "\"\xe0\x80\x80\"", "\"\xe0\x9f\xbf\"",
        "\"\xf0\x80\x80\x80\"", "\"\xf0\x8f\xbf\xbf\"",
        /* UTF-16 surrogates written as UTF-8 */
        "\"\xed\xa0\x80\"", "\"\xed\xbf\xbf\"", "\"\xed\xa0\xbd\xed\xb8\x80\"",
        /* beyond U+10FFFF, and bytes that never occur */
        "\"\xf4\x90\x80\x80\"", "\"\xf5\x80\x80\x80\"", "\"\xf7\xbf\xbf\xbf\"", "\"\xf8\x88\x80\x80\x80\"",
        "\"\xfe\"", "\"\xff\"",
        /* truncated sequences, at the quote and before ASCII */
        "\"\xc3\"", "\"\xc3" "A\"", "\"\xe2\x82\"", "\"\xe2" "A\xac\"", "\"\xf0\x9f\x98\"", "\"\xf0\x9f\x98" "A\"",
        /* a continuation byte where a second lead is expected */
        "\"\xe2\x82\xac\xac\"",
        /* non-ASCII outside strings */
        "[\xc3\xa9]", "{\"a\":1}\xc3\xa9",
    };
    EXPECT_ALL(bad, -EINVAL);
    /* a truncated sequence at the very end of the text, no closing quote */
    assert_int_equal(parse_n("\"\xf0\x9f", 3, NULL, NULL), -EINVAL);
}

static void test_numbers_grammar(void **st)
{
    static const char *const good[] = {
        "0", "-0", "1", "-1", "0.5", "-0.0", "1e5", "1E5", "1e+5", "1e-5", "1.25E-3", "10", "1e0",
        "123456789012345678901234567890", "0e0", "1e999999999", "1e-999999999", "1e000000000001",
    };
    EXPECT_ALL(good, 0);
    static const char *const bad[] = {
        "01", "-01", "00", "+1", ".5", "1.", "1.e5", "1e", "1e+", "1e-", "-", "--1", "0x10", "NaN", "Infinity",
        "-Infinity", "1e5.5", "1.5.5", "1,5", "0b1", "1_000", "- 1", "[01]", "[1.]",
    };
    EXPECT_ALL(bad, -EINVAL);
    static const char *const range[] = { "1e1000000000", "1e-1000000000", "-1E+99999999999999999999" };
    EXPECT_ALL(range, -ERANGE);
}

static int u64_of(const char *s, uint64_t *out)
{
    struct ufio_json v;
    assert_int_equal(parse_n(s, strlen(s), &v, NULL), 0);
    return ufio_json_u64(&v, out);
}

static void test_u64(void **st)
{
    uint64_t v = 7;
    assert_int_equal(u64_of("0", &v), 0);
    assert_true(v == 0);
    assert_int_equal(u64_of("-0", &v), 0);
    assert_true(v == 0);
    assert_int_equal(u64_of("4294967296", &v), 0);
    assert_true(v == 4294967296ull);
    assert_int_equal(u64_of("9223372036854775808", &v), 0);
    assert_true(v == 9223372036854775808ull);
    assert_int_equal(u64_of("18446744073709551615", &v), 0);
    assert_true(v == UINT64_MAX);
    v = 7;
    assert_int_equal(u64_of("18446744073709551616", &v), -ERANGE);
    assert_int_equal(u64_of("18446744073709551620", &v), -ERANGE);
    assert_int_equal(u64_of("99999999999999999999", &v), -ERANGE);
    assert_int_equal(u64_of("184467440737095516150", &v), -ERANGE);
    assert_true(v == 7); /* untouched on failure */
    assert_int_equal(u64_of("-1", &v), -EINVAL);
    assert_int_equal(u64_of("-18446744073709551616", &v), -EINVAL);
    assert_int_equal(u64_of("1e5", &v), -EINVAL);
    assert_int_equal(u64_of("1.0", &v), -EINVAL);
    assert_int_equal(u64_of("\"1\"", &v), -EINVAL);
    assert_int_equal(u64_of("true", &v), -EINVAL);
    assert_true(v == 7);
    struct ufio_json n;
    assert_int_equal(parse_n("-12345678901234567890123", 24, &n, NULL), 0);
    assert_true(ufio_json_is_integer(&n));
    assert_int_equal(parse_n("1E2", 3, &n, NULL), 0);
    assert_false(ufio_json_is_integer(&n));
}

static int cmp(const char *a, const char *b)
{
    struct ufio_json x, y;
    assert_int_equal(parse_n(a, strlen(a), &x, NULL), 0);
    assert_int_equal(parse_n(b, strlen(b), &y, NULL), 0);
    int r = ufio_json_num_cmp(&x, &y);
    return r < 0 ? -1 : r > 0;
}

static void test_number_compare(void **st)
{
    static const struct { const char *a, *b; int want; } cases[] = {
        { "1", "1.0", 0 }, { "1", "10e-1", 0 }, { "1", "0.1e1", 0 }, { "100000", "1e5", 0 }, { "-0", "0", 0 },
        { "0", "0e10", 0 }, { "-0.0", "0", 0 }, { "0.000", "-0e-5", 0 }, { "120", "1.2e2", 0 },
        { "2", "1.999999999999999999999", 1 }, { "-2", "-1", -1 }, { "-1", "1", -1 }, { "0", "-1e-999999999", 1 },
        { "1e-999999999", "0", 1 }, { "123456789012345678901", "123456789012345678900", 1 },
        { "0.001", "0.01", -1 }, { "-0.001", "-0.01", 1 }, { "1e999999999", "9e999999998", 1 },
        { "18446744073709551616", "18446744073709551615", 1 }, { "9.5", "10", -1 }, { "10", "9.99", 1 },
        { "1.10", "1.1", 0 }, { "0.5", "5e-1", 0 }, { "-5", "-5.0000000000000000001", 1 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int r = cmp(cases[i].a, cases[i].b), back = cmp(cases[i].b, cases[i].a);
        if (r != cases[i].want || back != -cases[i].want)
            fail_msg("compare %s with %s: %d / %d, want %d", cases[i].a, cases[i].b, r, back, cases[i].want);
    }
}

static void test_duplicate_keys(void **st)
{
    size_t off = 0;
    assert_int_equal(parse_n("{\"a\":1,\"a\":2}", 13, NULL, &off), -EEXIST);
    assert_int_equal(off, 7);
    static const char *const dup[] = {
        "{\"a\":1,\"a\":1}", "{\"a\":1,\"\\u0061\":2}", "{\"\\u00e9\":1,\"\xc3\xa9\":2}", "{\"\":1,\"\":2}",
        "{\"a\":1,\"b\":[{\"x\":1}],\"c\":{\"d\":{}},\"a\":0}", "{\"x\":{\"k\":1,\"j\":2,\"k\":3}}",
        "[{\"a\":[1,{\"b\":2,\"b\":2}]}]", "{\"\\/\":1,\"/\":1}",
    };
    EXPECT_ALL(dup, -EEXIST);
    static const char *const distinct[] = {
        "{\"a\":{\"a\":1}}", "{\"a\":1,\"b\":{\"a\":1}}", "{\"ab\":1,\"a\":1}", "{\"a\":1,\"ab\":1}",
        "{\"a\":1,\"A\":1}", "{\"a\\u0000\":1,\"a\":1}", "[{\"a\":1},{\"a\":1}]", "{\"\\\"\":1,\"\\\\\":1}",
        "{\"a\":\"a\",\"b\":\"a\"}",
    };
    EXPECT_ALL(distinct, 0);
}

static void test_member_limit(void **st)
{
    size_t cap = 16 * (UFIO_JSON_MAX_MEMBERS + 2);
    char *doc = malloc(cap);
    assert_non_null(doc);
    for (int extra = 0; extra <= 1; extra++) {
        size_t n = 0;
        doc[n++] = '{';
        for (int i = 0; i < UFIO_JSON_MAX_MEMBERS + extra; i++)
            n += (size_t)snprintf(doc + n, cap - n, "%s\"k%d\":%d", i ? "," : "", i, i);
        doc[n++] = '}';
        struct ufio_json v;
        assert_int_equal(parse_n(doc, n, &v, NULL), extra ? -E2BIG : 0);
        if (!extra)
            assert_int_equal(ufio_json_count(&v), UFIO_JSON_MAX_MEMBERS);
    }
    free(doc);
    /* arrays have no such limit */
    char *arr = malloc(4 * 100000 + 2);
    assert_non_null(arr);
    size_t n = 0;
    arr[n++] = '[';
    for (int i = 0; i < 100000; i++) {
        memcpy(arr + n, i ? ",1.5" : "1.5", i ? 4 : 3);
        n += i ? 4 : 3;
    }
    arr[n++] = ']';
    struct ufio_json v;
    assert_int_equal(parse_n(arr, n, &v, NULL), 0);
    assert_int_equal(ufio_json_count(&v), 100000);
    free(arr);
}

static void test_huge_string(void **st)
{
    size_t n = 1 << 20;
    char *s = malloc(n);
    assert_non_null(s);
    s[0] = '"';
    for (size_t i = 1; i + 1 < n; i += 2)
        memcpy(s + i, "\xc3\xa9", 2);
    s[n - 1] = '"';
    struct ufio_json v;
    assert_int_equal(parse_n(s, n, &v, NULL), 0);
    char head[5];
    assert_int_equal(ufio_json_str(&v, head, sizeof(head)), n - 2);
    assert_memory_equal(head, "\xc3\xa9\xc3\xa9", 5); /* truncated, NUL-terminated */
    s[n - 2] = '\xc3'; /* the last sequence cut by the quote */
    assert_int_equal(parse_n(s, n, &v, NULL), -EINVAL);
    free(s);
}

static void test_accessors(void **st)
{
    const char *doc = "{ \"name\" : \"x\\u0079z\", \"list\":[1, \"two\", [3], {\"four\":4}] ,\"e\":{}, \"n\":null}";
    struct ufio_json root, v, k, e;
    assert_int_equal(parse_n(doc, strlen(doc), &root, NULL), 0);
    assert_int_equal(ufio_json_count(&root), 4);
    assert_true(ufio_json_get(&root, "name", &v));
    assert_true(ufio_json_str_is(&v, "xyz"));
    assert_false(ufio_json_str_is(&v, "xy"));
    assert_false(ufio_json_str_is(&v, "xyzz"));
    char buf[8];
    assert_int_equal(ufio_json_str(&v, buf, sizeof(buf)), 3);
    assert_string_equal(buf, "xyz");
    assert_int_equal(ufio_json_str(&v, buf, 3), 3);
    assert_string_equal(buf, "xy");
    assert_int_equal(ufio_json_str(&v, buf, 0), 3);
    assert_false(ufio_json_get(&root, "nam", NULL));
    assert_false(ufio_json_get(&root, "four", NULL)); /* not a member of root */
    assert_false(ufio_json_get(&v, "name", NULL));    /* not an object */
    assert_true(ufio_json_get(&root, "n", &v));
    assert_int_equal(v.type, UFIO_JSON_NULL);
    assert_int_equal(ufio_json_str(&v, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    assert_true(ufio_json_get(&root, "e", &v));
    assert_int_equal(ufio_json_count(&v), 0);
    struct ufio_json_iter it;
    ufio_json_iter_init(&it, &v);
    assert_false(ufio_json_next(&it, &k, &e));
    /* elements in order, with exact spans */
    assert_true(ufio_json_get(&root, "list", &v));
    assert_int_equal(v.type, UFIO_JSON_ARRAY);
    static const char *const want[] = { "1", "\"two\"", "[3]", "{\"four\":4}" };
    ufio_json_iter_init(&it, &v);
    for (int i = 0; i < 4; i++) {
        assert_true(ufio_json_next(&it, NULL, &e));
        assert_int_equal(e.len, strlen(want[i]));
        assert_memory_equal(e.p, want[i], e.len);
    }
    assert_false(ufio_json_next(&it, NULL, &e));
    assert_false(ufio_json_next(&it, NULL, &e)); /* stays at the end */
    /* members in order */
    static const char *const keys[] = { "name", "list", "e", "n" };
    ufio_json_iter_init(&it, &root);
    for (int i = 0; i < 4; i++) {
        assert_true(ufio_json_next(&it, &k, &e));
        assert_true(ufio_json_str_is(&k, keys[i]));
    }
    assert_false(ufio_json_next(&it, &k, &e));
    /* scalars have nothing to iterate */
    assert_int_equal(ufio_json_count(&k), 0);
    ufio_json_iter_init(&it, &k);
    assert_false(ufio_json_next(&it, NULL, &e));
    /* a key with \u0000 matches no C string */
    assert_int_equal(parse_n("{\"a\\u0000\":1}", 13, &root, NULL), 0);
    assert_false(ufio_json_get(&root, "a", NULL));
}

static bool eq(const char *a, const char *b)
{
    struct ufio_json x, y;
    assert_int_equal(parse_n(a, strlen(a), &x, NULL), 0);
    assert_int_equal(parse_n(b, strlen(b), &y, NULL), 0);
    bool r = ufio_json_equal(&x, &y);
    assert_int_equal(r, ufio_json_equal(&y, &x));
    return r;
}

static void test_equal(void **st)
{
    assert_true(eq("{\"a\":1,\"b\":[true,null]}", "{ \"b\" : [ true , null ] , \"a\" : 1.0 }"));
    assert_true(eq("\"\\u0041\"", "\"A\""));
    assert_true(eq("[]", "[ ]"));
    assert_true(eq("{}", "{ }"));
    assert_true(eq("false", "false"));
    assert_false(eq("[1,2]", "[2,1]"));
    assert_false(eq("[1]", "[1,1]"));
    assert_false(eq("{\"a\":1}", "{\"a\":1,\"b\":2}"));
    assert_false(eq("{\"a\":1,\"c\":2}", "{\"a\":1,\"b\":2}"));
    assert_false(eq("{\"a\":{\"x\":1}}", "{\"a\":{\"x\":2}}"));
    assert_false(eq("1", "\"1\""));
    assert_false(eq("true", "false"));
    assert_false(eq("null", "false"));
    assert_false(eq("[]", "{}"));
    assert_false(eq("\"a\"", "\"a \""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_and_spans),
        cmocka_unit_test(test_structure_refused),
        cmocka_unit_test(test_trailing_and_whitespace),
        cmocka_unit_test(test_error_offsets),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_control_characters),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_numbers_grammar),
        cmocka_unit_test(test_u64),
        cmocka_unit_test(test_number_compare),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_member_limit),
        cmocka_unit_test(test_huge_string),
        cmocka_unit_test(test_accessors),
        cmocka_unit_test(test_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
