/* The migration stream framing (lib/proto/mig_stream.c): a streaming reader. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/mig_stream.h"

static const char desc[] = "{\"device_api\":\"vfio-pci\"}";
#define H UFIO_MIG_REC_HDR

static size_t rec(uint8_t *s, uint16_t tag, uint16_t flags, const void *p, uint32_t len)
{
    memcpy(s + H, p, len);
    ufio_mig_frame(s, tag, flags, p, len);
    return H + len;
}

/* header, DESC, an optional unknown record, DATA pieces, DEVCFG, END */
static size_t build(uint8_t *s, const uint8_t *payload, size_t plen, size_t piece, bool with_optional,
                    uint16_t extra_tag)
{
    size_t n = 0;
    ufio_mig_put_header(s);
    n += UFIO_MIG_HDR_SIZE;
    n += rec(s + n, UFIO_MIG_TAG_DESC, 0, desc, sizeof(desc));
    if (with_optional)
        n += rec(s + n, extra_tag, extra_tag > 100 ? UFIO_MIG_REC_OPTIONAL : 0, "xyz", 3);
    uint32_t chain = 0, nrec = 0;
    for (size_t o = 0; o < plen; o += piece, nrec++) {
        size_t k = plen - o < piece ? plen - o : piece;
        n += rec(s + n, UFIO_MIG_TAG_DATA, 0, payload + o, (uint32_t)k);
        chain = ufio_mig_crc_chain(chain, ufio_crc32c(0, payload + o, k));
    }
    uint8_t cfg[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    n += rec(s + n, UFIO_MIG_TAG_DEVCFG, 0, cfg, sizeof(cfg));
    chain = ufio_mig_crc_chain(chain, ufio_crc32c(0, cfg, sizeof(cfg)));
    uint8_t end[UFIO_MIG_END_SIZE];
    ufio_mig_put_end(end, plen, chain, nrec);
    n += rec(s + n, UFIO_MIG_TAG_END, 0, end, sizeof(end));
    return n;
}

/* What the reader handed on, in order, with the record boundaries. */
struct sink {
    uint8_t data[8192];
    size_t len;
    size_t bounds[64];
    unsigned nrec, ndesc;
    int fail_at; /* refuse the record with this number (1-based), 0 = never */
};

static int on_data(void *arg, const uint8_t *p, size_t len)
{
    struct sink *k = arg;
    if (k->fail_at && (int)k->nrec + 1 == k->fail_at)
        return -ENOSPC;
    assert_true(k->len + len <= sizeof(k->data));
    memcpy(k->data + k->len, p, len);
    k->len += len;
    k->bounds[k->nrec++] = len;
    return 0;
}

static int on_desc(void *arg, const char *d)
{
    struct sink *k = arg;
    assert_int_equal(k->nrec, 0); /* before any data */
    k->ndesc++;
    return strcmp(d, desc) ? -EPERM : 0;
}

static int feed(const uint8_t *s, size_t n, size_t piece, struct ufio_mig_rx *rx, struct sink *k)
{
    ufio_mig_rx_init(rx, 1 << 20);
    memset(k, 0, sizeof(*k));
    rx->on_data = on_data;
    rx->on_desc = on_desc;
    rx->arg = k;
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
    uint8_t payload[1000], s[4096];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 3);
    size_t n = build(s, payload, sizeof(payload), 300, true, 200);
    static const size_t pieces[] = { 1, 2, 7, 16, 100, 4096 };
    for (size_t k = 0; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
        struct ufio_mig_rx rx;
        struct sink out;
        assert_int_equal(feed(s, n, pieces[k], &rx, &out), 0);
        assert_true(rx.done);
        assert_true(rx.desc_seen);
        assert_string_equal(rx.desc, desc);
        assert_int_equal(out.ndesc, 1);
        /* the payload came through whole, in the pieces it was framed in */
        assert_int_equal(out.len, sizeof(payload));
        assert_memory_equal(out.data, payload, sizeof(payload));
        assert_int_equal(out.nrec, 4);
        assert_int_equal(out.bounds[0], 300);
        assert_int_equal(out.bounds[3], 100);
        assert_int_equal(rx.devcfg_len, 8);
        /* the reader held at most one record */
        assert_true(rx.body_cap <= 300);
        /* nothing may follow END */
        assert_int_equal(ufio_mig_rx_feed(&rx, "x", 1), -EINVAL);
        ufio_mig_rx_free(&rx);
    }
}

/* A record arrives whole and verified or not at all: a damaged record is never handed on. */
static void test_damage(void **st)
{
    uint8_t payload[64], s[1024], bad[1024];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i + 9);
    size_t n = build(s, payload, sizeof(payload), 32, false, 0);
    struct ufio_mig_rx rx;
    struct sink out;
    /* truncation at every point: never done, and only whole records were handed on */
    for (size_t cut = 0; cut < n; cut++) {
        assert_int_equal(feed(s, cut, 5, &rx, &out), 0);
        assert_false(rx.done);
        assert_true(out.len == 0 || out.len == 32 || out.len == 64);
        assert_memory_equal(out.data, payload, out.len);
        ufio_mig_rx_free(&rx);
    }
    /* any flipped bit after DESC: whatever was handed on is the right bytes, and the
     * stream is refused or left incomplete, unless the bit means nothing (a record
     * flag of a known tag) */
    size_t after_desc = UFIO_MIG_HDR_SIZE + H + sizeof(desc);
    for (size_t at = after_desc; at < n; at++) {
        memcpy(bad, s, n);
        bad[at] ^= 1;
        int err = feed(bad, n, 64, &rx, &out);
        assert_memory_equal(out.data, payload, out.len < 64 ? out.len : 64);
        assert_true(err || !rx.done || out.len == sizeof(payload));
        ufio_mig_rx_free(&rx);
    }
    /* a flipped payload byte in the second record: the first was loaded, the second never */
    memcpy(bad, s, n);
    bad[after_desc + H + 32 + H + 5] ^= 0x80;
    assert_int_equal(feed(bad, n, 64, &rx, &out), -EBADMSG);
    assert_int_equal(out.nrec, 1);
    /* the error is sticky */
    assert_int_equal(ufio_mig_rx_feed(&rx, s, 1), -EBADMSG);
    ufio_mig_rx_free(&rx);
    /* a record dropped from the middle: every record checks, END does not */
    memcpy(bad, s, after_desc);
    memcpy(bad + after_desc, s + after_desc + H + 32, n - after_desc - H - 32);
    assert_int_equal(feed(bad, n - H - 32, 64, &rx, &out), -EBADMSG);
    ufio_mig_rx_free(&rx);
    /* two records swapped: END's chain catches the order */
    memcpy(bad, s, n);
    memcpy(bad + after_desc, s + after_desc + H + 32, H + 32);
    memcpy(bad + after_desc + H + 32, s + after_desc, H + 32);
    assert_int_equal(feed(bad, n, 64, &rx, &out), -EBADMSG);
    ufio_mig_rx_free(&rx);
    memcpy(bad, s, n);
    bad[0] = 'X';
    assert_int_equal(feed(bad, n, 64, &rx, &out), -EINVAL);
    ufio_mig_rx_free(&rx);
    memcpy(bad, s, n);
    bad[8] = 1; /* stream version 1: records without CRCs */
    assert_int_equal(feed(bad, n, 64, &rx, &out), -EINVAL);
    ufio_mig_rx_free(&rx);
    /* the descriptor callback's verdict stops the stream before any data */
    memcpy(bad, s, n);
    bad[UFIO_MIG_HDR_SIZE + H + 3] ^= 0x20;
    ufio_mig_frame(bad + UFIO_MIG_HDR_SIZE, UFIO_MIG_TAG_DESC, 0, bad + UFIO_MIG_HDR_SIZE + H, sizeof(desc));
    assert_int_equal(feed(bad, n, 64, &rx, &out), -EPERM);
    assert_int_equal(out.nrec, 0);
    ufio_mig_rx_free(&rx);
    /* a refusing consumer stops the stream at that record */
    ufio_mig_rx_init(&rx, 1 << 20);
    memset(&out, 0, sizeof(out));
    out.fail_at = 2;
    rx.on_data = on_data;
    rx.arg = &out;
    assert_int_equal(ufio_mig_rx_feed(&rx, s, n), -ENOSPC);
    assert_int_equal(out.nrec, 1);
    ufio_mig_rx_free(&rx);
    /* unknown mandatory record refused, unknown optional one skipped */
    n = build(s, payload, sizeof(payload), 64, true, 50);
    assert_int_equal(feed(s, n, 64, &rx, &out), -EINVAL);
    ufio_mig_rx_free(&rx);
    /* DATA before DESC refused */
    uint8_t early[64];
    ufio_mig_put_header(early);
    ufio_mig_put_record(early + 16, UFIO_MIG_TAG_DATA, 0, 4, 0);
    assert_int_equal(feed(early, 16 + H, 64, &rx, &out), -EINVAL);
    ufio_mig_rx_free(&rx);
    /* an oversized record is refused before any allocation */
    ufio_mig_put_record(early + 16, UFIO_MIG_TAG_DESC, 0, UFIO_MIG_MAX_DESC + 1, 0);
    assert_int_equal(feed(early, 16 + H, 64, &rx, &out), -E2BIG);
    ufio_mig_rx_free(&rx);
    /* a record above the receiver's bound, and a payload above its total bound */
    uint8_t big[3000] = { 0 }, s2[4096];
    n = build(s2, big, sizeof(big), 3000, false, 0);
    ufio_mig_rx_init(&rx, 1000);
    assert_int_equal(ufio_mig_rx_feed(&rx, s2, n), -E2BIG);
    ufio_mig_rx_free(&rx);
    n = build(s2, big, sizeof(big), 1000, false, 0);
    ufio_mig_rx_init(&rx, 1000);
    rx.max_total = 2500;
    assert_int_equal(ufio_mig_rx_feed(&rx, s2, n), -E2BIG);
    ufio_mig_rx_reset(&rx);
    assert_int_equal(rx.max_total, 2500); /* a reset keeps the limits */
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
