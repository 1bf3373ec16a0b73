/* The compatibility matcher: a table of source/destination pairs with verdicts and reasons. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

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
        json_object *o = ufio_compat_parse(bad[i], err, sizeof(err));
        assert_null(o);
        assert_true(strlen(err) > 0);
    }
    assert_null(ufio_compat_parse(NULL, err, sizeof(err)));
    unsigned v[3];
    assert_int_equal(ufio_semver_parse("1.2.3", v), 0);
    assert_int_equal(v[2], 3);
    assert_int_equal(ufio_semver_parse("1.2.3.4", v), -EINVAL);
    assert_int_equal(ufio_semver_parse("1.2.x", v), -EINVAL);
    assert_int_equal(ufio_semver_parse("1.2.65536", v), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pairs),
        cmocka_unit_test(test_reasons_say_values),
        cmocka_unit_test(test_malformed_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
