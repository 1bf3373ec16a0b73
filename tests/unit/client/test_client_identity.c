/* What a reconnect compares: the ids from config space and the descriptor, and the reason it gives. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "client/client_identity.h"

static void test_ids_from_config(void **st)
{
    uint8_t cfg[0x30] = { 0 };
    cfg[0x00] = 0x46; cfg[0x01] = 0x55;             /* vendor 0x5546 */
    cfg[0x02] = 0x01; cfg[0x03] = 0x10;             /* device 0x1001 */
    cfg[0x08] = 0x07;                               /* revision */
    cfg[0x09] = 0x02; cfg[0x0a] = 0x01; cfg[0x0b] = 0xff; /* prog-if, subclass, base class */
    cfg[0x2c] = 0x34; cfg[0x2d] = 0x12;
    cfg[0x2e] = 0x78; cfg[0x2f] = 0x56;
    struct cl_identity id = { 0 };
    cl_identity_from_config(&id, cfg);
    assert_int_equal(id.vendor_id, 0x5546);
    assert_int_equal(id.device_id, 0x1001);
    assert_int_equal(id.revision, 7);
    assert_int_equal(id.class_code, 0xff0102);
    assert_int_equal(id.subsys_vendor_id, 0x1234);
    assert_int_equal(id.subsys_id, 0x5678);
}

static struct cl_identity mk(uint16_t dev, const char *desc)
{
    return (struct cl_identity){ .vendor_id = 0x5546, .device_id = dev, .subsys_vendor_id = 0x5546, .subsys_id = 1,
                                 .class_code = 0xff0000, .revision = 1, .desc = (char *)desc,
                                 .desc_len = desc ? strlen(desc) : 0 };
}

static void test_same_device(void **st)
{
    char why[256] = "x";
    struct cl_identity a = mk(1, "{\"type\":\"s\"}"), b = mk(1, "{\"type\":\"s\"}");
    assert_int_equal(cl_identity_compare(&a, &b, why, sizeof(why)), 0);
    assert_string_equal(why, "");
    struct cl_identity n1 = mk(1, NULL), n2 = mk(1, NULL); /* a server without descriptors, both times */
    assert_int_equal(cl_identity_compare(&n1, &n2, why, sizeof(why)), 0);
}

static void test_every_id_and_the_reason(void **st)
{
    char why[512];
    struct cl_identity a = mk(1, NULL), b = mk(2, NULL);
    b.vendor_id = 0x1af4;
    b.subsys_vendor_id = 0x1af4;
    b.subsys_id = 2;
    b.class_code = 0x010000;
    b.revision = 0;
    assert_int_equal(cl_identity_compare(&a, &b, why, sizeof(why)), -ENODEV);
    assert_string_equal(why, "vendor_id 0x5546 -> 0x1af4; device_id 0x0001 -> 0x0002; subsys_vendor_id 0x5546 -> "
                             "0x1af4; subsys_id 0x0001 -> 0x0002; class_code 0xff0000 -> 0x010000; revision 0x01 -> "
                             "0x00");
    /* each field alone is enough */
    struct cl_identity r = mk(1, NULL);
    r.revision = 2;
    assert_int_equal(cl_identity_compare(&a, &r, why, sizeof(why)), -ENODEV);
    assert_string_equal(why, "revision 0x01 -> 0x02");
}

static void test_descriptor(void **st)
{
    char why[512];
    struct cl_identity a = mk(1, "{\"type\":\"ufio-sample\",\"software_version\":\"1.0.0\"}");
    struct cl_identity b = mk(1, "{\"type\":\"ufio-sample\",\"software_version\":\"2.0.0\"}");
    assert_int_equal(cl_identity_compare(&a, &b, why, sizeof(why)), -ENODEV);
    assert_non_null(strstr(why, "differs from byte 42"));
    assert_non_null(strstr(why, "\"1.0.0\"}"));
    assert_non_null(strstr(why, "\"2.0.0\"}"));
    /* a longer descriptor with the same start differs too */
    struct cl_identity c = mk(1, "{\"type\":\"ufio-sample\",\"software_version\":\"1.0.0\"} ");
    assert_int_equal(cl_identity_compare(&a, &c, why, sizeof(why)), -ENODEV);
    struct cl_identity none = mk(1, NULL);
    assert_int_equal(cl_identity_compare(&a, &none, why, sizeof(why)), -ENODEV);
    assert_non_null(strstr(why, "gone"));
    assert_int_equal(cl_identity_compare(&none, &a, why, sizeof(why)), -ENODEV);
    assert_non_null(strstr(why, "appeared"));
}

/* The reason never overruns its buffer, and a missing buffer is allowed. */
static void test_reason_truncates(void **st)
{
    struct cl_identity a = mk(1, "{}"), b = mk(2, "[]");
    b.vendor_id = 0;
    char why[24];
    memset(why, 'z', sizeof(why));
    assert_int_equal(cl_identity_compare(&a, &b, why, 16), -ENODEV);
    assert_int_equal(strlen(why), 15);
    assert_int_equal(why[16], 'z');
    assert_int_equal(cl_identity_compare(&a, &b, NULL, 0), -ENODEV);
    for (size_t n = 1; n < sizeof(why); n++) {
        memset(why, 'z', sizeof(why));
        assert_int_equal(cl_identity_compare(&a, &b, why, n), -ENODEV);
        assert_true(strlen(why) < n);
        if (n < sizeof(why))
            assert_int_equal(why[n], 'z');
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_from_config),
        cmocka_unit_test(test_same_device),
        cmocka_unit_test(test_every_id_and_the_reason),
        cmocka_unit_test(test_descriptor),
        cmocka_unit_test(test_reason_truncates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
