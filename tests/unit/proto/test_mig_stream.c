/* The migration stream framing (lib/proto/mig_stream.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/mig_stream.h"

static const char desc[] = "{\"device_api\":\"vfio-pci\"}";

/* header, DESC, an optional unknown record, DATA, DEVCFG, END */
static size_t build(uint8_t *s, const uint8_t *payload, size_t plen, bool with_optional, uint16_t extra_tag)
{
    size_t n = 0;
    ufio_mig_put_header(s);
    n += UFIO_MIG_HDR_SIZE;
    ufio_mig_put_record(s + n, UFIO_MIG_TAG_DESC, 0, sizeof(desc));
    memcpy(s + n + 8, desc, sizeof(desc));
    n += 8 + sizeof(desc);
    if (with_optional) {
        ufio_mig_put_record(s + n, extra_tag, extra_tag > 100 ? UFIO_MIG_REC_OPTIONAL : 0, 3);
        memcpy(s + n + 8, "xyz", 3);
        n += 11;
    }
    ufio_mig_put_record(s + n, UFIO_MIG_TAG_DATA, 0, (uint32_t)plen);
    memcpy(s + n + 8, payload, plen);
    n += 8 + plen;
    uint8_t cfg[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    ufio_mig_put_record(s + n, UFIO_MIG_TAG_DEVCFG, 0, sizeof(cfg));
    memcpy(s + n + 8, cfg, sizeof(cfg));
    n += 8 + sizeof(cfg);
    uint32_t crc = ufio_crc32c(ufio_crc32c(0, payload, plen), cfg, sizeof(cfg));
    ufio_mig_put_record(s + n, UFIO_MIG_TAG_END, 0, UFIO_MIG_END_SIZE);
    ufio_mig_put_end(s + n + 8, plen, crc);
    return n + 8 + UFIO_MIG_END_SIZE;
}

static int feed(const uint8_t *s, size_t n, size_t piece, struct ufio_mig_rx *rx)
{
    ufio_mig_rx_init(rx, 1 << 20);
    for (size_t o = 0; o < n; o += piece) {
        int err = ufio_mig_rx_feed(rx, s + o, n - o < piece ? n - o : piece);
        if (err)
            return err;
    }
    return 0;
}

static void test_crc_check_value(void **st)
{
    assert_int_equal(ufio_crc32c(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(ufio_crc32c(ufio_crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);
}

static void test_any_chunking(void **st)
{
    uint8_t payload[1000], s[2048];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 3);
    size_t n = build(s, payload, sizeof(payload), true, 200);
    static const size_t pieces[] = { 1, 2, 7, 16, 100, 4096 };
    for (size_t k = 0; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
        struct ufio_mig_rx rx;
        assert_int_equal(feed(s, n, pieces[k], &rx), 0);
        assert_true(rx.done);
        assert_true(rx.desc_seen);
        assert_string_equal(rx.desc, desc);
        assert_int_equal(rx.data_len, sizeof(payload));
        assert_memory_equal(rx.data, payload, sizeof(payload));
        assert_int_equal(rx.nrec, 1);
        assert_int_equal(rx.devcfg_len, 8);
        /* nothing may follow END */
        assert_int_equal(ufio_mig_rx_feed(&rx, "x", 1), -EINVAL);
        ufio_mig_rx_free(&rx);
    }
}

static void test_damage(void **st)
{
    uint8_t payload[64] = { 9 }, s[1024], bad[1024];
    size_t n = build(s, payload, sizeof(payload), false, 0);
    struct ufio_mig_rx rx;
    /* truncation at every point: never done */
    for (size_t cut = 0; cut < n; cut++) {
        int err = feed(s, cut, 5, &rx);
        assert_int_equal(err, 0);
        assert_false(rx.done);
        ufio_mig_rx_free(&rx);
    }
    /* any flipped bit after DESC: refused, left incomplete, or (a record-flag bit
     * that means nothing for a known tag) harmless: never a wrong payload accepted */
    for (size_t at = UFIO_MIG_HDR_SIZE + 8 + sizeof(desc); at < n; at++) {
        memcpy(bad, s, n);
        bad[at] ^= 1;
        int err = feed(bad, n, 64, &rx);
        assert_true(err || !rx.done || (rx.data_len == sizeof(payload) && !memcmp(rx.data, payload, sizeof(payload))));
        ufio_mig_rx_free(&rx);
    }
    /* a flipped payload byte specifically: the CRC catches it */
    memcpy(bad, s, n);
    bad[UFIO_MIG_HDR_SIZE + 8 + sizeof(desc) + 8 + 5] ^= 0x80;
    assert_int_equal(feed(bad, n, 64, &rx), -EBADMSG);
    ufio_mig_rx_free(&rx);
    memcpy(bad, s, n);
    bad[0] = 'X';
    assert_int_equal(feed(bad, n, 64, &rx), -EINVAL);
    ufio_mig_rx_free(&rx);
    memcpy(bad, s, n);
    bad[8] = 2; /* stream version 2 */
    assert_int_equal(feed(bad, n, 64, &rx), -EINVAL);
    ufio_mig_rx_free(&rx);
    /* unknown mandatory record refused, unknown optional one skipped */
    n = build(s, payload, sizeof(payload), true, 50);
    assert_int_equal(feed(s, n, 64, &rx), -EINVAL);
    ufio_mig_rx_free(&rx);
    /* DATA before DESC refused */
    uint8_t early[64];
    ufio_mig_put_header(early);
    ufio_mig_put_record(early + 16, UFIO_MIG_TAG_DATA, 0, 4);
    assert_int_equal(feed(early, 24, 64, &rx), -EINVAL);
    ufio_mig_rx_free(&rx);
    /* an oversized record is refused before any allocation */
    ufio_mig_put_record(early + 16, UFIO_MIG_TAG_DESC, 0, UFIO_MIG_MAX_DESC + 1);
    assert_int_equal(feed(early, 24, 64, &rx), -E2BIG);
    ufio_mig_rx_free(&rx);
    /* payload above the receiver's bound */
    uint8_t big[3000] = { 0 }, s2[4096];
    n = build(s2, big, sizeof(big), false, 0);
    ufio_mig_rx_init(&rx, 1000);
    assert_int_equal(ufio_mig_rx_feed(&rx, s2, n), -E2BIG);
    ufio_mig_rx_free(&rx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc_check_value),
        cmocka_unit_test(test_any_chunking),
        cmocka_unit_test(test_damage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
