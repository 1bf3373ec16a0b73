/*
 * The strict JSON reader (json.h): one checking pass over the document, then
 * accessors that walk spans of the checked text. Rules and limits in json.h.
 */
#include "proto/json.h"

#include <errno.h>
#include <string.h>

/* ---- the checking pass ---------------------------------------------------------- */

struct parser {
    const uint8_t *s;
    size_t len, off;
    unsigned depth, max_depth;
    size_t open[UFIO_JSON_DEPTH_LIMIT];     /* offset of each open '{' or '[' */
    unsigned members[UFIO_JSON_DEPTH_LIMIT]; /* members seen so far in each open object */
};

static bool is_ws(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

static void skip_ws(struct parser *ps)
{
    while (ps->off < ps->len && is_ws(ps->s[ps->off]))
        ps->off++;
}

/* The byte at the cursor, or -1 at the end of the text. */
static int peek(const struct parser *ps) { return ps->off < ps->len ? ps->s[ps->off] : -1; }

static int hex_val(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Four hex digits at s (len bytes available), or -1. */
static long hex4(const uint8_t *s, size_t len)
{
    if (len < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_val(s[i]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/*
 * Length of the well-formed UTF-8 sequence at s (RFC 3629 table: no
 * overlongs, no surrogates, nothing above U+10FFFF), or 0.
 */
static size_t utf8_len(const uint8_t *s, size_t left)
{
    uint8_t c = s[0];
    size_t n;
    uint8_t lo = 0x80, hi = 0xbf; /* the range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0; /* below: overlong */
        else if (c == 0xed)
            hi = 0x9f; /* above: UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90; /* below: overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above: beyond U+10FFFF */
    } else {
        return 0; /* continuation byte, 0xc0/0xc1 (overlong), 0xf5.. */
    }
    if (left < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

/* A string starting at the cursor's '"'; leaves the cursor after the closing quote. */
static int check_string(struct parser *ps)
{
    ps->off++;
    while (ps->off < ps->len) {
        uint8_t c = ps->s[ps->off];
        if (c == '"') {
            ps->off++;
            return 0;
        }
        if (c < 0x20)
            return -EINVAL;
        if (c != '\\') {
            size_t n = utf8_len(ps->s + ps->off, ps->len - ps->off);
            if (!n)
                return -EINVAL;
            ps->off += n;
            continue;
        }
        if (ps->off + 1 >= ps->len)
            return -EINVAL;
        uint8_t e = ps->s[ps->off + 1];
        if (e != 'u') {
            if (!e || !strchr("\"\\/bfnrt", e))
                return -EINVAL;
            ps->off += 2;
            continue;
        }
        long u = hex4(ps->s + ps->off + 2, ps->len - ps->off - 2);
        if (u < 0 || (u >= 0xdc00 && u <= 0xdfff))
            return -EINVAL; /* not hex, or a low surrogate with no high one before it */
        ps->off += 6;
        if (u >= 0xd800 && u <= 0xdbff) {
            /* a high surrogate must be followed by an escaped low one */
            if (ps->len - ps->off < 6 || ps->s[ps->off] != '\\' || ps->s[ps->off + 1] != 'u')
                return -EINVAL;
            long l = hex4(ps->s + ps->off + 2, ps->len - ps->off - 2);
            if (l < 0xdc00 || l > 0xdfff)
                return -EINVAL;
            ps->off += 6;
        }
    }
    return -EINVAL; /* unterminated */
}

static int check_number(struct parser *ps)
{
    if (peek(ps) == '-')
        ps->off++;
    if (peek(ps) == '0') {
        ps->off++;
    } else if (peek(ps) >= '1' && peek(ps) <= '9') {
        while (ps->off < ps->len && is_digit(ps->s[ps->off]))
            ps->off++;
    } else {
        return -EINVAL;
    }
    if (peek(ps) == '.') {
        ps->off++;
        if (ps->off >= ps->len || !is_digit(ps->s[ps->off]))
            return -EINVAL;
        while (ps->off < ps->len && is_digit(ps->s[ps->off]))
            ps->off++;
    }
    if (peek(ps) == 'e' || peek(ps) == 'E') {
        ps->off++;
        if (peek(ps) == '+' || peek(ps) == '-')
            ps->off++;
        if (ps->off >= ps->len || !is_digit(ps->s[ps->off]))
            return -EINVAL;
        unsigned long e = 0;
        while (ps->off < ps->len && is_digit(ps->s[ps->off])) {
            e = e * 10 + (ps->s[ps->off] - '0');
            if (e > UFIO_JSON_MAX_EXP)
                return -ERANGE;
            ps->off++;
        }
    }
    return 0;
}

static int check_literal(struct parser *ps, const char *word)
{
    size_t n = strlen(word);
    if (ps->len - ps->off < n || memcmp(ps->s + ps->off, word, n))
        return -EINVAL;
    ps->off += n;
    return 0;
}

static int check_scalar(struct parser *ps)
{
    switch (peek(ps)) {
    case '"': return check_string(ps);
    case 't': return check_literal(ps, "true");
    case 'f': return check_literal(ps, "false");
    case 'n': return check_literal(ps, "null");
    default: return check_number(ps);
    }
}

static bool str_equal(const struct ufio_json *a, const struct ufio_json *b);
/* The members of the innermost open object before key k: is one named like k? */
static bool duplicate_key(const struct parser *ps, const struct ufio_json *k)
{
    /* the object is checked up to k, and the walk stops at k: it never needs the '}' */
    struct ufio_json_iter it = { (const char *)ps->s + ps->open[ps->depth - 1] + 1, k->p, true };
    struct ufio_json key, val;
    while (ufio_json_next(&it, &key, &val))
        if (str_equal(&key, k))
            return true;
    return false;
}

static enum ufio_json_type type_at(uint8_t c)
{
    switch (c) {
    case '{': return UFIO_JSON_OBJECT;
    case '[': return UFIO_JSON_ARRAY;
    case '"': return UFIO_JSON_STRING;
    case 't': return UFIO_JSON_TRUE;
    case 'f': return UFIO_JSON_FALSE;
    case 'n': return UFIO_JSON_NULL;
    default: return UFIO_JSON_NUMBER;
    }
}

/* An object member's name and colon, at the cursor. */
static int check_key(struct parser *ps)
{
    if (peek(ps) != '"')
        return -EINVAL;
    unsigned d = ps->depth - 1;
    if (++ps->members[d] > UFIO_JSON_MAX_MEMBERS)
        return -E2BIG;
    size_t start = ps->off;
    int err = check_string(ps);
    if (err)
        return err;
    struct ufio_json k = { (const char *)ps->s + start, ps->off - start, UFIO_JSON_STRING };
    if (ps->members[d] > 1 && duplicate_key(ps, &k)) {
        ps->off = start;
        return -EEXIST;
    }
    skip_ws(ps);
    if (peek(ps) != ':')
        return -EINVAL;
    ps->off++;
    skip_ws(ps);
    return 0;
}

/*
 * Iterative, so the C stack does not grow with the input's nesting: the only
 * state per level is where its container opened and how many members it has.
 */
static int check_document(struct parser *ps)
{
    int err;
    skip_ws(ps);
    for (;;) {
        /* a value at the cursor */
        int c = peek(ps);
        if (c == '{' || c == '[') {
            if (ps->depth >= ps->max_depth)
                return -ELOOP;
            ps->open[ps->depth] = ps->off;
            ps->members[ps->depth] = 0;
            ps->depth++;
            ps->off++;
            skip_ws(ps);
            int close = c == '{' ? '}' : ']';
            if (peek(ps) == close) {
                ps->off++;
                ps->depth--;
            } else {
                if (c == '{' && (err = check_key(ps)))
                    return err;
                continue;
            }
        } else if ((err = check_scalar(ps))) {
            return err;
        }
        /* after a value: a separator, the end of containers, or the end of the text */
        for (;;) {
            skip_ws(ps);
            if (!ps->depth)
                return ps->off == ps->len ? 0 : -EINVAL;
            bool in_obj = ps->s[ps->open[ps->depth - 1]] == '{';
            c = peek(ps);
            if (c == ',') {
                ps->off++;
                skip_ws(ps);
                if (in_obj && (err = check_key(ps)))
                    return err;
                break;
            }
            if (c != (in_obj ? '}' : ']'))
                return -EINVAL;
            ps->off++;
            ps->depth--;
        }
    }
}

int ufio_json_parse(const char *text, size_t len, unsigned max_depth, struct ufio_json *root, size_t *err_off)
{
    struct parser ps = { .s = (const uint8_t *)text, .len = len };
    ps.max_depth = max_depth < UFIO_JSON_DEPTH_LIMIT ? max_depth : UFIO_JSON_DEPTH_LIMIT;
    int err = text ? check_document(&ps) : -EINVAL;
    if (err) {
        if (err_off)
            *err_off = ps.off;
        return err;
    }
    /* the value is the text without its surrounding whitespace */
    size_t b = 0, e = len;
    while (is_ws(ps.s[b]))
        b++;
    while (is_ws(ps.s[e - 1]))
        e--;
    root->p = text + b;
    root->len = e - b;
    root->type = type_at(ps.s[b]);
    return 0;
}

/* ---- walking checked text ---------------------------------------------------------- */

/* After the string whose opening quote is at p. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end && *p != '"'; p++)
        if (*p == '\\')
            p++; /* the escaped byte (the rest of \uXXXX is plain hex) */
    return p < end ? p + 1 : end;
}

static const char *skip_ws_p(const char *p, const char *end)
{
    while (p < end && is_ws((uint8_t)*p))
        p++;
    return p;
}

/* After the value that starts at p. */
static const char *skip_value(const char *p, const char *end)
{
    if (p >= end)
        return end;
    if (*p == '"')
        return skip_string(p, end);
    if (*p == '{' || *p == '[') {
        size_t depth = 0;
        while (p < end) {
            if (*p == '"') {
                p = skip_string(p, end);
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if ((*p == '}' || *p == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return end;
    }
    while (p < end && !is_ws((uint8_t)*p) && *p != ',' && *p != ']' && *p != '}')
        p++;
    return p;
}

void ufio_json_iter_init(struct ufio_json_iter *it, const struct ufio_json *c)
{
    bool container = c->type == UFIO_JSON_OBJECT || c->type == UFIO_JSON_ARRAY;
    it->p = container ? c->p + 1 : c->p;
    it->end = container ? c->p + c->len - 1 : c->p; /* the closing bracket */
    it->object = c->type == UFIO_JSON_OBJECT;
}

static void span(struct ufio_json *v, const char *p, const char *end)
{
    v->p = p;
    v->len = (size_t)(skip_value(p, end) - p);
    v->type = type_at((uint8_t)*p);
}

bool ufio_json_next(struct ufio_json_iter *it, struct ufio_json *key, struct ufio_json *val)
{
    const char *p = skip_ws_p(it->p, it->end);
    if (p < it->end && *p == ',')
        p = skip_ws_p(p + 1, it->end);
    if (p >= it->end) {
        it->p = it->end;
        return false;
    }
    if (it->object) {
        struct ufio_json k;
        span(&k, p, it->end);
        if (key)
            *key = k;
        p = skip_ws_p(p + k.len, it->end);
        p = skip_ws_p(p + 1, it->end); /* the ':' */
        if (p >= it->end) {
            it->p = it->end;
            return false;
        }
    }
    struct ufio_json v;
    span(&v, p, it->end);
    if (val)
        *val = v;
    it->p = p + v.len;
    return true;
}

size_t ufio_json_count(const struct ufio_json *c)
{
    if (c->type != UFIO_JSON_OBJECT && c->type != UFIO_JSON_ARRAY)
        return 0;
    struct ufio_json_iter it;
    ufio_json_iter_init(&it, c);
    size_t n = 0;
    while (ufio_json_next(&it, NULL, NULL))
        n++;
    return n;
}

/* ---- strings ------------------------------------------------------------------------ */

/* Unescaped bytes of a checked string, one at a time. */
struct unescape {
    const char *p, *end; /* inside the quotes */
    uint8_t pend[4];
    unsigned npend, ipend;
};

static void unescape_init(struct unescape *u, const struct ufio_json *s)
{
    u->p = s->p + 1;
    u->end = s->p + s->len - 1;
    u->npend = u->ipend = 0;
}

static void put_utf8(struct unescape *u, uint32_t cp)
{
    uint8_t *b = u->pend;
    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        u->npend = 1;
    } else if (cp < 0x800) {
        b[0] = (uint8_t)(0xc0 | cp >> 6);
        b[1] = (uint8_t)(0x80 | (cp & 0x3f));
        u->npend = 2;
    } else if (cp < 0x10000) {
        b[0] = (uint8_t)(0xe0 | cp >> 12);
        b[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
        b[2] = (uint8_t)(0x80 | (cp & 0x3f));
        u->npend = 3;
    } else {
        b[0] = (uint8_t)(0xf0 | cp >> 18);
        b[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
        b[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
        b[3] = (uint8_t)(0x80 | (cp & 0x3f));
        u->npend = 4;
    }
    u->ipend = 0;
}

/* The next byte, or -1 at the end. */
static int unescape_next(struct unescape *u)
{
    if (u->ipend < u->npend)
        return u->pend[u->ipend++];
    if (u->p >= u->end)
        return -1;
    uint8_t c = (uint8_t)*u->p++;
    if (c != '\\')
        return c;
    uint8_t e = (uint8_t)*u->p++;
    switch (e) {
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'u': break;
    default: return e; /* " \ / */
    }
    uint32_t cp = (uint32_t)hex4((const uint8_t *)u->p, 4);
    u->p += 4;
    if (cp >= 0xd800 && cp <= 0xdbff) { /* the check guaranteed the low half follows */
        uint32_t lo = (uint32_t)hex4((const uint8_t *)u->p + 2, 4);
        u->p += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    put_utf8(u, cp);
    return u->pend[u->ipend++];
}

static bool str_equal(const struct ufio_json *a, const struct ufio_json *b)
{
    if (a->type != UFIO_JSON_STRING || b->type != UFIO_JSON_STRING)
        return false;
    if (a->len == b->len && !memcmp(a->p, b->p, a->len))
        return true;
    struct unescape x, y;
    unescape_init(&x, a);
    unescape_init(&y, b);
    for (;;) {
        int c = unescape_next(&x), d = unescape_next(&y);
        if (c != d)
            return false;
        if (c < 0)
            return true;
    }
}

size_t ufio_json_str(const struct ufio_json *s, char *buf, size_t cap)
{
    if (s->type != UFIO_JSON_STRING) {
        if (cap)
            buf[0] = 0;
        return 0;
    }
    struct unescape u;
    unescape_init(&u, s);
    size_t n = 0;
    int c;
    while ((c = unescape_next(&u)) >= 0) {
        if (n + 1 < cap)
            buf[n] = (char)c;
        n++;
    }
    if (cap)
        buf[n < cap ? n : cap - 1] = 0;
    return n;
}

bool ufio_json_str_is(const struct ufio_json *s, const char *c)
{
    if (s->type != UFIO_JSON_STRING)
        return false;
    struct unescape u;
    unescape_init(&u, s);
    for (;; c++) {
        int b = unescape_next(&u);
        if (b < 0)
            return !*c;
        if (!*c || b != (uint8_t)*c)
            return false;
    }
}

bool ufio_json_get(const struct ufio_json *obj, const char *name, struct ufio_json *val)
{
    if (obj->type != UFIO_JSON_OBJECT)
        return false;
    struct ufio_json_iter it;
    ufio_json_iter_init(&it, obj);
    struct ufio_json k, v;
    while (ufio_json_next(&it, &k, &v)) {
        if (ufio_json_str_is(&k, name)) {
            if (val)
                *val = v;
            return true;
        }
    }
    return false;
}

/* ---- numbers ------------------------------------------------------------------------ */

/*
 * A checked number as 0.DIGITS x 10^exp10 with DIGITS the significant digits
 * (no leading or trailing zeros): the form in which two numbers compare
 * exactly, digit by digit.
 */
struct decimal {
    bool neg, zero, integer;
    const char *ip, *fp; /* integer and fraction digits */
    size_t ni, nf;
    size_t first, last; /* significant digits: [first, last) of ip ++ fp */
    long long exp10;
};

static char digit_at(const struct decimal *d, size_t k)
{
    return k < d->ni ? d->ip[k] : d->fp[k - d->ni];
}

static void decimal_of(const struct ufio_json *n, struct decimal *d)
{
    const char *p = n->p, *end = n->p + n->len;
    memset(d, 0, sizeof(*d));
    d->integer = true;
    if (p < end && *p == '-') {
        d->neg = true;
        p++;
    }
    d->ip = p;
    while (p < end && is_digit((uint8_t)*p))
        p++;
    d->ni = (size_t)(p - d->ip);
    d->fp = p;
    if (p < end && *p == '.') {
        d->integer = false;
        d->fp = ++p;
        while (p < end && is_digit((uint8_t)*p))
            p++;
        d->nf = (size_t)(p - d->fp);
    }
    long long e = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        d->integer = false;
        bool eneg = *++p == '-';
        if (*p == '-' || *p == '+')
            p++;
        while (p < end && is_digit((uint8_t)*p))
            e = e * 10 + (*p++ - '0'); /* at most UFIO_JSON_MAX_EXP: checked */
        if (eneg)
            e = -e;
    }
    size_t total = d->ni + d->nf;
    d->first = 0;
    while (d->first < total && digit_at(d, d->first) == '0')
        d->first++;
    d->last = total;
    while (d->last > d->first && digit_at(d, d->last - 1) == '0')
        d->last--;
    d->zero = d->first == d->last;
    d->exp10 = (long long)d->ni + e - (long long)d->first;
}

bool ufio_json_is_integer(const struct ufio_json *n)
{
    if (n->type != UFIO_JSON_NUMBER)
        return false;
    return !memchr(n->p, '.', n->len) && !memchr(n->p, 'e', n->len) && !memchr(n->p, 'E', n->len);
}

int ufio_json_u64(const struct ufio_json *n, uint64_t *out)
{
    if (!ufio_json_is_integer(n))
        return -EINVAL;
    const char *p = n->p, *end = n->p + n->len;
    bool neg = *p == '-';
    uint64_t v = 0;
    for (p += neg; p < end; p++) {
        unsigned dg = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - dg) / 10)
            return neg ? -EINVAL : -ERANGE;
        v = v * 10 + dg;
    }
    if (neg && v)
        return -EINVAL;
    *out = v;
    return 0;
}

static int magnitude_cmp(const struct decimal *a, const struct decimal *b)
{
    if (a->exp10 != b->exp10)
        return a->exp10 < b->exp10 ? -1 : 1;
    size_t la = a->last - a->first, lb = b->last - b->first;
    for (size_t i = 0; i < la || i < lb; i++) {
        char x = i < la ? digit_at(a, a->first + i) : '0';
        char y = i < lb ? digit_at(b, b->first + i) : '0';
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}

int ufio_json_num_cmp(const struct ufio_json *a, const struct ufio_json *b)
{
    struct decimal x, y;
    decimal_of(a, &x);
    decimal_of(b, &y);
    if (x.zero || y.zero) {
        if (x.zero && y.zero)
            return 0;
        if (x.zero)
            return y.neg ? 1 : -1;
        return x.neg ? -1 : 1;
    }
    if (x.neg != y.neg)
        return x.neg ? -1 : 1;
    int m = magnitude_cmp(&x, &y);
    return x.neg ? -m : m;
}

/* ---- equality ----------------------------------------------------------------------- */

bool ufio_json_equal(const struct ufio_json *a, const struct ufio_json *b)
{
    if (a->type != b->type)
        return false;
    struct ufio_json_iter i, j;
    struct ufio_json ka, va, vb;
    switch (a->type) {
    case UFIO_JSON_NUMBER:
        return ufio_json_num_cmp(a, b) == 0;
    case UFIO_JSON_STRING:
        return str_equal(a, b);
    case UFIO_JSON_ARRAY:
        ufio_json_iter_init(&i, a);
        ufio_json_iter_init(&j, b);
        for (;;) {
            bool more_a = ufio_json_next(&i, NULL, &va), more_b = ufio_json_next(&j, NULL, &vb);
            if (more_a != more_b)
                return false;
            if (!more_a)
                return true;
            if (!ufio_json_equal(&va, &vb))
                return false;
        }
    case UFIO_JSON_OBJECT:
        /* names are unique (checked), so equal counts and every name of a found in b suffice */
        if (ufio_json_count(a) != ufio_json_count(b))
            return false;
        ufio_json_iter_init(&i, a);
        while (ufio_json_next(&i, &ka, &va)) {
            struct ufio_json kb;
            bool found = false;
            ufio_json_iter_init(&j, b);
            while (!found && ufio_json_next(&j, &kb, &vb))
                found = str_equal(&ka, &kb);
            if (!found || !ufio_json_equal(&va, &vb))
                return false;
        }
        return true;
    default:
        return true; /* null, true, false: the type is the value */
    }
}
