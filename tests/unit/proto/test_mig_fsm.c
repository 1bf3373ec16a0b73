/*
 * The migration state machine against the kernel's answers, written out by
 * hand from the path tables (protocol-reference.md §5.4, computed from
 * vfio_mig_get_next_state) for every flag combination and every pair.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <ufio/migration.h>

#define SC UFIO_MIG_F_STOP_COPY
#define P2P UFIO_MIG_F_P2P
#define PRE UFIO_MIG_F_PRE_COPY

/* rows: from STOP..PRE_COPY_P2P (1..7); columns: to STOP..PRE_COPY_P2P.
 * "-" same state, "X" EINVAL, else the states after `from`, comma-separated. */
struct table {
    uint64_t flags;
    const char *cell[7][7];
};

static const struct table tables[] = {
    { SC, {
        /* STOP */      { "-", "R", "SC", "RS", "X", "X", "X" },
        /* RUNNING */   { "S", "-", "S,SC", "S,RS", "X", "X", "X" },
        /* STOP_COPY */ { "S", "S,R", "-", "S,RS", "X", "X", "X" },
        /* RESUMING */  { "S", "S,R", "S,SC", "-", "X", "X", "X" },
        /* R_P2P */     { "X", "X", "X", "X", "X", "X", "X" },
        /* PRE_COPY */  { "X", "X", "X", "X", "X", "X", "X" },
        /* PC_P2P */    { "X", "X", "X", "X", "X", "X", "X" } } },
    { SC | PRE, {
        { "-", "R", "SC", "RS", "X", "R,PC", "X" },
        { "S", "-", "S,SC", "S,RS", "X", "PC", "X" },
        { "S", "S,R", "-", "S,RS", "X", "X", "X" },
        { "S", "S,R", "S,SC", "-", "X", "S,R,PC", "X" },
        { "X", "X", "X", "X", "X", "X", "X" },
        { "R,S", "R", "SC", "R,S,RS", "X", "-", "X" },
        { "X", "X", "X", "X", "X", "X", "X" } } },
    { SC | P2P, {
        { "-", "RP,R", "SC", "RS", "RP", "X", "X" },
        { "RP,S", "-", "RP,S,SC", "RP,S,RS", "RP", "X", "X" },
        { "S", "S,RP,R", "-", "S,RS", "S,RP", "X", "X" },
        { "S", "S,RP,R", "S,SC", "-", "S,RP", "X", "X" },
        { "S", "R", "S,SC", "S,RS", "-", "X", "X" },
        { "X", "X", "X", "X", "X", "X", "X" },
        { "X", "X", "X", "X", "X", "X", "X" } } },
    { SC | P2P | PRE, {
        { "-", "RP,R", "SC", "RS", "RP", "RP,R,PC", "RP,PP" },
        { "RP,S", "-", "RP,S,SC", "RP,S,RS", "RP", "PC", "RP,PP" },
        { "S", "S,RP,R", "-", "S,RS", "S,RP", "X", "X" },
        { "S", "S,RP,R", "S,SC", "-", "S,RP", "S,RP,R,PC", "S,RP,PP" },
        { "S", "R", "S,SC", "S,RS", "-", "R,PC", "PP" },
        { "R,RP,S", "R", "PP,SC", "R,RP,S,RS", "R,RP", "-", "PP" },
        { "RP,S", "RP,R", "SC", "RP,S,RS", "RP", "PC", "-" } } },
};

static unsigned abbrev(const char *s, size_t n)
{
    static const char *const ab[] = { "E", "S", "R", "SC", "RS", "RP", "PC", "PP" };
    for (unsigned i = 0; i < 8; i++)
        if (strlen(ab[i]) == n && !strncmp(ab[i], s, n))
            return i;
    fail_msg("bad abbreviation");
    return 0;
}

static bool is_saving(unsigned s)
{
    return s == UFIO_MIG_STOP_COPY || s == UFIO_MIG_PRE_COPY || s == UFIO_MIG_PRE_COPY_P2P;
}

static void test_all_pairs(void **st)
{
    (void)st;
    int checked = 0;
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
        uint64_t f = tables[t].flags;
        for (unsigned from = 0; from < 8; from++) {
            for (unsigned to = 0; to < 8; to++) {
                unsigned path[8];
                size_t len = 99;
                int err = ufio_mig_path(f, from, to, path, &len);
                unsigned nx;
                int err2 = ufio_mig_next_state(f, from, to, &nx);
                checked++;
                if (from == 0 || to == 0) { /* ERROR at either end */
                    assert_int_equal(err, -EINVAL);
                    assert_int_equal(err2, -EINVAL);
                    continue;
                }
                const char *want = tables[t].cell[from - 1][to - 1];
                if (!strcmp(want, "X")) {
                    if (err != -EINVAL)
                        fail_msg("flags %#llx %s->%s: want EINVAL", (unsigned long long)f,
                                 ufio_mig_state_name(from), ufio_mig_state_name(to));
                    assert_int_equal(err2, -EINVAL);
                    continue;
                }
                assert_int_equal(err, 0);
                assert_int_equal(err2, 0);
                if (!strcmp(want, "-")) {
                    assert_int_equal(len, 0);
                    assert_int_equal(nx, from);
                    continue;
                }
                size_t k = 0;
                for (const char *p = want; *p;) {
                    size_t n = strcspn(p, ",");
                    assert_true(k < len);
                    if (path[k] != abbrev(p, n))
                        fail_msg("flags %#llx %s->%s: step %zu is %s, want %.*s", (unsigned long long)f,
                                 ufio_mig_state_name(from), ufio_mig_state_name(to), k,
                                 ufio_mig_state_name(path[k]), (int)n, p);
                    k++;
                    p += n + (p[n] == ',');
                }
                assert_int_equal(k, len);
                assert_int_equal(nx, path[0]);
                /* every step is a direct arc. A saving state inside the path would open
                 * (or reopen) a session the caller did not ask for; the only exception is
                 * a path still inside the session it started in (PRE_COPY -> PRE_COPY_P2P
                 * -> STOP_COPY): once it leaves the saving group it never comes back
                 * before the end. */
                unsigned prev = from;
                bool in_session = is_saving(from);
                for (size_t i = 0; i < len; i++) {
                    if (!ufio_mig_arc_is_direct(f, prev, path[i]))
                        fail_msg("flags %#llx %s->%s: %s->%s is not a direct arc", (unsigned long long)f,
                                 ufio_mig_state_name(from), ufio_mig_state_name(to),
                                 ufio_mig_state_name(prev), ufio_mig_state_name(path[i]));
                    in_session = in_session && is_saving(path[i]);
                    if (i + 1 < len && is_saving(path[i]))
                        assert_true(in_session);
                    prev = path[i];
                }
                /* a hop that is not a single step is never direct, and vice versa */
                assert_int_equal(ufio_mig_arc_is_direct(f, from, to), len == 1);
            }
        }
    }
    assert_int_equal(checked, 4 * 64);
}

static void test_invalid_flags(void **st)
{
    (void)st;
    static const uint64_t bad[] = { 0, P2P, PRE, P2P | PRE, SC | 8, 1ull << 40 };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        for (unsigned a = 0; a < 8; a++)
            for (unsigned b = 0; b < 8; b++) {
                unsigned nx, path[8];
                size_t len;
                assert_int_equal(ufio_mig_next_state(bad[i], a, b, &nx), -EINVAL);
                assert_int_equal(ufio_mig_path(bad[i], a, b, path, &len), -EINVAL);
            }
    unsigned nx;
    assert_int_equal(ufio_mig_next_state(SC, 1, 8, &nx), -EINVAL);
    assert_int_equal(ufio_mig_next_state(SC, 99, 1, &nx), -EINVAL);
}

static int count_arcs(uint64_t f)
{
    int n = 0;
    for (unsigned a = 0; a < 10; a++)
        for (unsigned b = 0; b < 10; b++)
            n += ufio_mig_arc_is_direct(f, a, b);
    return n;
}

static void test_direct_arcs(void **st)
{
    (void)st;
    /* the driver arc lists of §5.3: 4 always + 2 without P2P / 4 with P2P,
     * + 2 with PRE_COPY, + 1 (PRE_COPY->STOP_COPY) without P2P or + 5 with it */
    assert_int_equal(count_arcs(SC), 6);
    assert_int_equal(count_arcs(SC | P2P), 8);
    /* STOP_COPY|PRE_COPY (what vfio-user uses): exactly the spec's 9 arcs */
    assert_int_equal(count_arcs(SC | PRE), 9);
    assert_int_equal(count_arcs(SC | P2P | PRE), 15);
    assert_int_equal(count_arcs(0), 0);
    assert_int_equal(count_arcs(SC | 8), 0);
    assert_false(ufio_mig_arc_is_direct(SC, UFIO_MIG_ERROR, UFIO_MIG_STOP));
    assert_false(ufio_mig_arc_is_direct(SC, UFIO_MIG_STOP, UFIO_MIG_ERROR));
    assert_false(ufio_mig_arc_is_direct(SC, UFIO_MIG_STOP, UFIO_MIG_STOP));
    assert_true(ufio_mig_arc_is_direct(SC | PRE, UFIO_MIG_PRE_COPY, UFIO_MIG_STOP_COPY));
    assert_false(ufio_mig_arc_is_direct(SC | PRE, UFIO_MIG_STOP_COPY, UFIO_MIG_PRE_COPY));
    assert_false(ufio_mig_arc_is_direct(SC | P2P, UFIO_MIG_RUNNING, UFIO_MIG_STOP));
    assert_true(ufio_mig_arc_is_direct(SC | P2P | PRE, UFIO_MIG_PRE_COPY_P2P, UFIO_MIG_STOP_COPY));
    assert_false(ufio_mig_arc_is_direct(SC | P2P | PRE, UFIO_MIG_PRE_COPY, UFIO_MIG_STOP_COPY));
}

static void test_supported(void **st)
{
    (void)st;
    static const struct { uint64_t f; const char *want; } cases[] = {
        /* one char per state ERROR..PRE_COPY_P2P */
        { SC, "01111000" },
        { SC | P2P, "01111100" },
        { SC | PRE, "01111010" },
        { SC | P2P | PRE, "01111111" },
        { 0, "00000000" },
        { P2P | PRE, "00000000" },
        { SC | PRE | 8, "00000000" },
        { ~0ull, "00000000" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        for (unsigned s = 0; s < 8; s++)
            if (ufio_mig_state_supported(cases[i].f, s) != (cases[i].want[s] == '1'))
                fail_msg("flags %#llx state %s", (unsigned long long)cases[i].f, ufio_mig_state_name(s));
    assert_false(ufio_mig_state_supported(SC, 8));
    assert_false(ufio_mig_state_supported(SC, ~0u));
}

static void test_names(void **st)
{
    (void)st;
    for (unsigned s = 0; s < 8; s++)
        assert_int_equal(ufio_mig_state_parse(ufio_mig_state_name(s)), (int)s);
    assert_int_equal(ufio_mig_state_parse("stop_copy"), 3);
    assert_int_equal(ufio_mig_state_parse("Pre_Copy_P2P"), 7);
    assert_int_equal(ufio_mig_state_parse("bogus"), -EINVAL);
    assert_int_equal(ufio_mig_state_parse(""), -EINVAL);
    assert_int_equal(ufio_mig_state_parse("STOP "), -EINVAL);
    assert_int_equal(ufio_mig_state_parse(NULL), -EINVAL);
    assert_string_equal(ufio_mig_state_name(0), "ERROR");
    assert_string_equal(ufio_mig_state_name(5), "RUNNING_P2P");
    assert_string_equal(ufio_mig_state_name(8), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_pairs),
        cmocka_unit_test(test_invalid_flags),
        cmocka_unit_test(test_direct_arcs),
        cmocka_unit_test(test_supported),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
