/* The compatibility matcher: a table of source/destination pairs with verdicts and reasons. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto/compat.h"

/* descriptors built from parts: version, type, extra pci fields, attributes, accepts */
static void desc(char *out, size_t n, const char *ver, const char *type, const char *ids, const char *attrs,
                 const char *accepts)
{
    snprintf(out, n,
             "{\"device_api\":\"vfio-pci\",\"type\":\"%s\",\"software_version\":\"%s\","
             "\"pci\":{%s}%s%s%s%s}",
             type, ver, ids ? ids : "\"vendor_id\":\"0x5546\",\"device_id\":1",
             attrs ? ",\"attributes\":" : "", attrs ? attrs : "", accepts ? ",\"accepts\":" : "",
             accepts ? accepts : "");
}

struct pair {
    const char *name;
    const char *sv, *st, *sids, *sattr;                 /* source */
    const char *dv, *dt, *dids, *dattr, *dacc;          /* destination */
    int compatible;                                     /* 1, 0, or -1 malformed */
    const char *reason;                                 /* a field that must be named */
};

#define ID_A "\"vendor_id\":\"0x5546\",\"device_id\":1"
#define ID_B "\"vendor_id\":\"0x5546\",\"device_id\":2"

static const struct pair pairs[] = {
    { "identical", "1.0.0", "t", 0, 0, "1.0.0", "t", 0, 0, 0, 1, 0 },
    { "patch upgrade", "1.0.0", "t", 0, 0, "1.0.7", "t", 0, 0, 0, 1, 0 },
    { "patch downgrade", "1.0.7", "t", 0, 0, "1.0.0", "t", 0, 0, 0, 1, 0 },
    { "minor upgrade", "1.2.3", "t", 0, 0, "1.4.0", "t", 0, 0, 0, 1, 0 },
    { "minor downgrade", "1.4.0", "t", 0, 0, "1.2.3", "t", 0, 0, 0, 0, "software_version" },
    { "major upgrade", "1.9.9", "t", 0, 0, "2.0.0", "t", 0, 0, 0, 0, "software_version" },
    { "major downgrade", "2.0.0", "t", 0, 0, "1.9.9", "t", 0, 0, 0, 0, "software_version" },
    { "zero major", "0.1.0", "t", 0, 0, "0.2.0", "t", 0, 0, 0, 1, 0 },
    { "min version met", "1.3.0", "t", 0, 0, "1.5.0", "t", 0, 0, "{\"software_version\":{\"min\":\"1.3.0\"}}", 1, 0 },
    { "below min version", "1.2.9", "t", 0, 0, "1.5.0", "t", 0, 0, "{\"software_version\":{\"min\":\"1.3.0\"}}", 0, "software_version" },
    { "different type", "1.0.0", "a", 0, 0, "1.0.0", "b", 0, 0, 0, 0, "type" },
    { "accepted type", "1.0.0", "old", 0, 0, "1.0.0", "new", 0, 0, "{\"types\":[\"old\"]}", 1, 0 },
    { "type not in list", "1.0.0", "other", 0, 0, "1.0.0", "new", 0, 0, "{\"types\":[\"old\"]}", 0, "type" },
    { "different device id", "1.0.0", "t", ID_B, 0, "1.0.0", "t", ID_A, 0, 0, 0, "pci.vendor_id:device_id" },
    { "accepted pci id", "1.0.0", "t", ID_B, 0, "1.0.0", "t", ID_A, 0, "{\"pci_ids\":[\"5546:0002\"]}", 1, 0 },
    { "subsystem differs", "1.0.0", "t", ID_A ",\"subsystem_id\":1", 0, "1.0.0", "t", ID_A ",\"subsystem_id\":2", 0, 0, 0, "pci.subsystem_id" },
    { "class differs", "1.0.0", "t", ID_A ",\"class_code\":\"0x010000\"", 0, "1.0.0", "t", ID_A ",\"class_code\":\"0x020000\"", 0, 0, 0, "pci.class_code" },
    { "hex vs decimal id", "1.0.0", "t", "\"vendor_id\":21830,\"device_id\":\"1\"", 0, "1.0.0", "t", ID_A, 0, 0, 1, 0 },
    { "attr equal", "1.0.0", "t", 0, "{\"q\":4}", "1.0.0", "t", 0, "{\"q\":4}", 0, 1, 0 },
    { "attr differs", "1.0.0", "t", 0, "{\"q\":4}", "1.0.0", "t", 0, "{\"q\":8}", 0, 0, "attributes.q" },
    { "attr in set", "1.0.0", "t", 0, "{\"q\":4}", "1.0.0", "t", 0, "{\"q\":8}", "{\"attributes\":{\"q\":[1,2,4,8]}}", 1, 0 },
    { "attr not in set", "1.0.0", "t", 0, "{\"q\":3}", "1.0.0", "t", 0, "{\"q\":8}", "{\"attributes\":{\"q\":[1,2,4,8]}}", 0, "attributes.q" },
    { "attr in range", "1.0.0", "t", 0, "{\"mem\":12}", "1.0.0", "t", 0, "{\"mem\":16}", "{\"attributes\":{\"mem\":{\"min\":1,\"max\":16}}}", 1, 0 },
    { "attr above range", "1.0.0", "t", 0, "{\"mem\":17}", "1.0.0", "t", 0, "{\"mem\":16}", "{\"attributes\":{\"mem\":{\"min\":1,\"max\":16}}}", 0, "attributes.mem" },
    { "attr string set", "1.0.0", "t", 0, "{\"m\":\"x\"}", "1.0.0", "t", 0, "{\"m\":\"y\"}", "{\"attributes\":{\"m\":[\"x\",\"y\"]}}", 1, 0 },
    { "attr missing in source", "1.0.0", "t", 0, 0, "1.0.0", "t", 0, "{\"q\":4}", 0, 0, "attributes.q" },
    { "attr unknown to destination", "1.0.0", "t", 0, "{\"q\":4}", "1.0.0", "t", 0, 0, 0, 0, "attributes.q" },
    { "several reasons", "2.0.0", "a", ID_B, "{\"q\":1}", "1.0.0", "b", ID_A, "{\"q\":2}", 0, 0, "type" },
    { "bad version string", "1.0", "t", 0, 0, "1.0.0", "t", 0, 0, 0, -1, 0 },
    { "leading zero version", "01.0.0", "t", 0, 0, "1.0.0", "t", 0, 0, 0, -1, 0 },
    { "missing vendor id", "1.0.0", "t", "\"device_id\":1", 0, "1.0.0", "t", 0, 0, 0, -1, 0 },
    { "id too large", "1.0.0", "t", "\"vendor_id\":65536,\"device_id\":1", 0, "1.0.0", "t", 0, 0, 0, -1, 0 },
    { "bad accepts range", "1.0.0", "t", 0, 0, "1.0.0", "t", 0, 0, "{\"attributes\":{\"q\":{\"min\":5,\"max\":1}}}", -1, 0 },
    { "bad pci_ids entry", "1.0.0", "t", 0, 0, "1.0.0", "t", 0, 0, "{\"pci_ids\":[\"zz\"]}", -1, 0 },
    { "attribute object value", "1.0.0", "t", 0, "{\"q\":{}}", "1.0.0", "t", 0, 0, 0, -1, 0 },
};

static void test_pairs(void **st)
{
    char s[2048], d[2048], err[256];
    size_t n = sizeof(pairs) / sizeof(pairs[0]);
    assert_true(n >= 30);
    for (size_t i = 0; i < n; i++) {
        const struct pair *p = &pairs[i];
        desc(s, sizeof(s), p->sv, p->st, p->sids, p->sattr, NULL);
        desc(d, sizeof(d), p->dv, p->dt, p->dids, p->dattr, p->dacc);
        struct ufio_compat_verdict v;
        int r = ufio_compat_check_json(s, d, &v, err, sizeof(err));
        if (p->compatible < 0) {
            if (r != -EINVAL)
                fail_msg("%s: expected a malformed-descriptor error", p->name);
            assert_true(strlen(err) > 0);
            continue;
        }
        if (r)
            fail_msg("%s: %s", p->name, err);
        if (v.compatible != (p->compatible == 1))
            fail_msg("%s: verdict %d", p->name, v.compatible);
        if (p->compatible) {
            assert_int_equal(v.n, 0);
        } else {
            bool named = false;
            for (unsigned k = 0; k < v.n; k++)
                named |= !strcmp(v.r[k].field, p->reason);
            if (!named)
                fail_msg("%s: no reason names %s", p->name, p->reason);
        }
    }
}

static void test_reasons_say_values(void **st)
{
    char s[1024], d[1024], err[128];
    desc(s, sizeof(s), "2.1.0", "a", ID_B, "{\"q\":3}", NULL);
    desc(d, sizeof(d), "1.0.0", "b", ID_A, "{\"q\":8}", "{\"attributes\":{\"q\":[1,2,4,8]}}");
    struct ufio_compat_verdict v;
    assert_int_equal(ufio_compat_check_json(s, d, &v, err, sizeof(err)), 0);
    assert_false(v.compatible);
    assert_int_equal(v.n, 4);
    char text[1024];
    ufio_compat_format(&v, text, sizeof(text));
    assert_non_null(strstr(text, "software_version: source 2.1.0"));
    assert_non_null(strstr(text, "type: source a, destination accepts b"));
    assert_non_null(strstr(text, "5546:0002"));
    assert_non_null(strstr(text, "[1,2,4,8]"));
}

static void test_malformed_text(void **st)
{
    static const char *bad[] = { "", "{", "[]", "null", "{\"device_api\":1}", "{} x",
                                 "{\"device_api\":\"vfio-pci\",\"type\":\"t\",\"software_version\":\"1.0.0\"}" };
    char err[128];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ufio_compat_desc d;
        assert_int_equal(ufio_compat_parse(bad[i], &d, err, sizeof(err)), -EINVAL);
        assert_true(strlen(err) > 0);
    }
    struct ufio_compat_desc d;
    assert_int_equal(ufio_compat_parse(NULL, &d, err, sizeof(err)), -EINVAL);
    unsigned v[3];
    assert_int_equal(ufio_semver_parse("1.2.3", v), 0);
    assert_int_equal(v[2], 3);
    assert_int_equal(ufio_semver_parse("1.2.3.4", v), -EINVAL);
    assert_int_equal(ufio_semver_parse("1.2.x", v), -EINVAL);
    assert_int_equal(ufio_semver_parse("1.2.65536", v), -EINVAL);
}

/* What the strict reader changes: refusals json-c let through, and exact values. */
static void test_strict_reader(void **st)
{
    char s[1024], d[1024], err[256];
    struct ufio_compat_verdict v;
    desc(d, sizeof(d), "1.0.0", "t", 0, "{\"q\":1,\"r\":2}", "{\"attributes\":{\"r\":{\"min\":1.5,\"max\":2.5}}}");
    /* a duplicate key is refused and named, with its offset */
    snprintf(s, sizeof(s), "{\"device_api\":\"vfio-pci\",\"type\":\"t\",\"type\":\"u\"}");
    assert_int_equal(ufio_compat_check_json(s, d, &v, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "source descriptor: descriptor is not valid JSON: duplicate key at byte 36"));
    /* invalid UTF-8, nesting beyond the limit */
    desc(s, sizeof(s), "1.0.0", "t\xc3", 0, 0, NULL);
    assert_int_equal(ufio_compat_check_json(s, d, &v, err, sizeof(err)), -EINVAL);
    char deep[128] = "{\"x\":";
    for (int i = 0; i < UFIO_COMPAT_JSON_DEPTH; i++)
        strcat(deep, "[");
    struct ufio_compat_desc cd;
    assert_int_equal(ufio_compat_parse(deep, &cd, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "nested too deeply"));
    /* a NUL escaped into the version string does not hide a suffix */
    desc(s, sizeof(s), "1.0.0\\u0000x", "t", 0, 0, NULL);
    assert_int_equal(ufio_compat_check_json(s, d, &v, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "MAJOR.MINOR.PATCH"));
    /* numbers by exact value: 1.0 is 1, 2 is inside [1.5, 2.5], 2.5000000000000000001 is not */
    desc(s, sizeof(s), "1.0.0", "\\u0074", 0, "{\"q\":1.0,\"r\":2}", NULL);
    assert_int_equal(ufio_compat_check_json(s, d, &v, err, sizeof(err)), 0);
    assert_true(v.compatible);
    desc(s, sizeof(s), "1.0.0", "t", 0, "{\"q\":1,\"r\":2.5000000000000000001}", NULL);
    assert_int_equal(ufio_compat_check_json(s, d, &v, err, sizeof(err)), 0);
    assert_false(v.compatible);
    assert_int_equal(v.n, 1);
    assert_string_equal(v.r[0].field, "attributes.r");
    assert_string_equal(v.r[0].source, "2.5000000000000000001");
    assert_string_equal(v.r[0].accepts, "{\"min\":1.5,\"max\":2.5}");
    /* decimal id strings are decimal ("010" is ten, not octal eight); hex needs 0x */
    desc(s, sizeof(s), "1.0.0", "t", "\"vendor_id\":\"0x5546\",\"device_id\":\"010\"", 0, NULL);
    desc(d, sizeof(d), "1.0.0", "t", "\"vendor_id\":21830,\"device_id\":\"0x000A\"", 0, NULL);
    assert_int_equal(ufio_compat_check_json(s, d, &v, err, sizeof(err)), 0);
    assert_true(v.compatible);
    static const char *const bad_ids[] = { "\"0x\"", "\" 1\"", "\"-1\"", "\"1a\"", "\"0x10000\"", "1.0", "-0.5",
                                           "\"0x00000000000000001\"", "\"\"", "true" };
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        char ids[96];
        snprintf(ids, sizeof(ids), "\"vendor_id\":%s,\"device_id\":1", bad_ids[i]);
        desc(s, sizeof(s), "1.0.0", "t", ids, 0, NULL);
        if (ufio_compat_parse(s, &cd, err, sizeof(err)) != -EINVAL)
            fail_msg("vendor_id %s accepted", bad_ids[i]);
        assert_non_null(strstr(err, "pci.vendor_id"));
    }
    /* accepts.pci_ids entries: 1..4 hex digits each side, nothing else */
    static const char *const pairs_ok[] = { "5546:0002", "1:2", "ABCD:ef01" };
    static const char *const pairs_bad[] = { "5546:", ":0002", "55466:0002", "5546:00022", "5546-0002",
                                             "5546:0002x", "0x55:0002", "5546:0002\\u0000" };
    for (int bad = 0; bad <= 1; bad++) {
        const char *const *list = bad ? pairs_bad : pairs_ok;
        size_t n = bad ? sizeof(pairs_bad) / sizeof(pairs_bad[0]) : sizeof(pairs_ok) / sizeof(pairs_ok[0]);
        for (size_t i = 0; i < n; i++) {
            char acc[96];
            snprintf(acc, sizeof(acc), "{\"pci_ids\":[\"%s\"]}", list[i]);
            desc(d, sizeof(d), "1.0.0", "t", 0, 0, acc);
            if (ufio_compat_parse(d, &cd, err, sizeof(err)) != (bad ? -EINVAL : 0))
                fail_msg("pci_ids entry %s: %s", list[i], bad ? "accepted" : err);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pairs),
        cmocka_unit_test(test_reasons_say_values),
        cmocka_unit_test(test_malformed_text),
        cmocka_unit_test(test_strict_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
