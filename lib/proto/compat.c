/* Compatibility descriptors: validation and the source -> destination matcher. */
#include "proto/compat.h"
#include "proto/cursor.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ufio_semver_parse(const char *s, unsigned v[3])
{
    for (int i = 0; i < 3; i++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        char *end;
        unsigned long n = strtoul(s, &end, 10);
        if (n > 65535 || (end - s > 1 && *s == '0'))
            return -EINVAL;
        v[i] = (unsigned)n;
        s = end;
        if (i < 2) {
            if (*s != '.')
                return -EINVAL;
            s++;
        }
    }
    return *s ? -EINVAL : 0;
}

/* "0x" and 1..16 hex digits, or 1..20 decimal digits (what docs/compatibility.md allows). */
static int num_text(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    bool hex = len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
    size_t i = hex ? 2 : 0;
    if (i == len || len - i > (hex ? 16 : 20))
        return -EINVAL;
    uint64_t v = 0;
    for (; i < len; i++) {
        unsigned d;
        char c = s[i];
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (hex && c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (hex && c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return -EINVAL;
        unsigned base = hex ? 16 : 10;
        if (v > (UINT64_MAX - d) / base)
            return -EINVAL;
        v = v * base + d;
    }
    if (v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

/* An id or number given as a JSON integer or a "0x..." / decimal string. */
static int get_num(const struct ufio_json *o, uint64_t max, uint64_t *out)
{
    uint64_t v;
    if (o->type == UFIO_JSON_NUMBER) {
        if (ufio_json_u64(o, &v) || v > max)
            return -EINVAL;
        *out = v;
        return 0;
    }
    if (o->type == UFIO_JSON_STRING) {
        char buf[24];
        size_t n = ufio_json_str(o, buf, sizeof(buf));
        if (n >= sizeof(buf))
            return -EINVAL;
        return num_text(buf, n, max, out);
    }
    return -EINVAL;
}

/* A string value as a C string, for messages and version numbers (truncated to fit). */
static void cstr(const struct ufio_json *o, char *buf, size_t cap)
{
    ufio_json_str(o, buf, cap);
}

static bool fail(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return false;
}

static bool is_scalar_value(const struct ufio_json *o)
{
    return o->type == UFIO_JSON_NUMBER || o->type == UFIO_JSON_STRING;
}

/* A semver string: copied into a buffer only as long as a valid one can be. */
static int semver_of(const struct ufio_json *o, unsigned v[3])
{
    char buf[24];
    size_t n;
    if (o->type != UFIO_JSON_STRING || (n = ufio_json_str(o, buf, sizeof(buf))) >= sizeof(buf) || strlen(buf) != n)
        return -EINVAL; /* too long, or a \u0000 inside */
    return ufio_semver_parse(buf, v);
}

static bool valid_constraint(const struct ufio_json *c)
{
    struct ufio_json_iter it;
    struct ufio_json e, mn, mx;
    switch (c->type) {
    case UFIO_JSON_NUMBER:
    case UFIO_JSON_STRING:
        return true;
    case UFIO_JSON_ARRAY:
        ufio_json_iter_init(&it, c);
        while (ufio_json_next(&it, NULL, &e))
            if (!is_scalar_value(&e))
                return false;
        return ufio_json_count(c) > 0;
    case UFIO_JSON_OBJECT: {
        bool has_min = ufio_json_get(c, "min", &mn), has_max = ufio_json_get(c, "max", &mx);
        if (!has_min && !has_max)
            return false;
        if ((has_min && mn.type != UFIO_JSON_NUMBER) || (has_max && mx.type != UFIO_JSON_NUMBER))
            return false;
        return !(has_min && has_max && ufio_json_num_cmp(&mn, &mx) > 0);
    }
    default:
        return false;
    }
}

/* "vvvv:dddd": 1..4 hex digits each, like the sscanf("%4x:%4x") it replaces, nothing after. */
static bool pci_id_pair(const struct ufio_json *e)
{
    char buf[16];
    size_t n;
    if (e->type != UFIO_JSON_STRING || (n = ufio_json_str(e, buf, sizeof(buf))) >= sizeof(buf) || strlen(buf) != n)
        return false;
    const char *colon = strchr(buf, ':');
    uint64_t a, b;
    if (!colon || colon == buf || colon - buf > 4 || strlen(colon + 1) > 4 || !colon[1])
        return false;
    char x[8] = "0x", y[8] = "0x";
    memcpy(x + 2, buf, (size_t)(colon - buf));
    x[2 + (colon - buf)] = 0;
    strcpy(y + 2, colon + 1);
    return !num_text(x, strlen(x), 0xffff, &a) && !num_text(y, strlen(y), 0xffff, &b);
}

static bool validate(const struct ufio_json *d, char *err, size_t n)
{
    struct ufio_json v, pci, x, k, val;
    struct ufio_json_iter it;
    unsigned ver[3];
    uint64_t num;
    char name[64];
    if (d->type != UFIO_JSON_OBJECT)
        return fail(err, n, "descriptor is not a JSON object");
    static const char *const strs[] = { "device_api", "type", "software_version" };
    for (int i = 0; i < 3; i++) {
        if (!ufio_json_get(d, strs[i], &v))
            return fail(err, n, "missing field '%s'", strs[i]);
        if (v.type != UFIO_JSON_STRING || v.len == 2)
            return fail(err, n, "field '%s' must be a non-empty string", strs[i]);
    }
    ufio_json_get(d, "software_version", &v);
    if (semver_of(&v, ver)) {
        char sv[32];
        cstr(&v, sv, sizeof(sv));
        return fail(err, n, "software_version '%s' is not MAJOR.MINOR.PATCH", sv);
    }
    if (!ufio_json_get(d, "pci", &pci) || pci.type != UFIO_JSON_OBJECT)
        return fail(err, n, "missing object 'pci'");
    static const char *const ids[] = { "vendor_id", "device_id", "subsystem_vendor_id", "subsystem_id" };
    for (int i = 0; i < 4; i++) {
        bool has = ufio_json_get(&pci, ids[i], &x);
        if (!has && i < 2)
            return fail(err, n, "missing field 'pci.%s'", ids[i]);
        if (has && get_num(&x, 0xffff, &num))
            return fail(err, n, "field 'pci.%s' must be a 16-bit id", ids[i]);
    }
    if (ufio_json_get(&pci, "class_code", &x) && get_num(&x, 0xffffff, &num))
        return fail(err, n, "field 'pci.class_code' must be a 24-bit number");
    if (ufio_json_get(&pci, "revision", &x) && get_num(&x, 0xff, &num))
        return fail(err, n, "field 'pci.revision' must be 0..255");
    if (ufio_json_get(d, "attributes", &v)) {
        if (v.type != UFIO_JSON_OBJECT)
            return fail(err, n, "'attributes' must be an object");
        ufio_json_iter_init(&it, &v);
        while (ufio_json_next(&it, &k, &val)) {
            if (!is_scalar_value(&val) && val.type != UFIO_JSON_TRUE && val.type != UFIO_JSON_FALSE) {
                cstr(&k, name, sizeof(name));
                return fail(err, n, "attribute '%s' must be a number, string or boolean", name);
            }
        }
    }
    if (ufio_json_get(d, "accepts", &v)) {
        if (v.type != UFIO_JSON_OBJECT)
            return fail(err, n, "'accepts' must be an object");
        if (ufio_json_get(&v, "types", &x)) {
            if (x.type != UFIO_JSON_ARRAY)
                return fail(err, n, "'accepts.types' must be an array of strings");
            ufio_json_iter_init(&it, &x);
            while (ufio_json_next(&it, NULL, &val))
                if (val.type != UFIO_JSON_STRING)
                    return fail(err, n, "'accepts.types' must be an array of strings");
        }
        if (ufio_json_get(&v, "pci_ids", &x)) {
            if (x.type != UFIO_JSON_ARRAY)
                return fail(err, n, "'accepts.pci_ids' must be an array of \"vvvv:dddd\"");
            ufio_json_iter_init(&it, &x);
            while (ufio_json_next(&it, NULL, &val))
                if (!pci_id_pair(&val))
                    return fail(err, n, "'accepts.pci_ids' must be an array of \"vvvv:dddd\"");
        }
        if (ufio_json_get(&v, "software_version", &x)) {
            struct ufio_json mn;
            if (x.type != UFIO_JSON_OBJECT || !ufio_json_get(&x, "min", &mn) || semver_of(&mn, ver))
                return fail(err, n, "'accepts.software_version' must be {\"min\": \"MAJOR.MINOR.PATCH\"}");
        }
        if (ufio_json_get(&v, "attributes", &x)) {
            if (x.type != UFIO_JSON_OBJECT)
                return fail(err, n, "'accepts.attributes' must be an object");
            ufio_json_iter_init(&it, &x);
            while (ufio_json_next(&it, &k, &val)) {
                if (!valid_constraint(&val)) {
                    cstr(&k, name, sizeof(name));
                    return fail(err, n, "'accepts.attributes.%s' must be a value, a list of values, or {\"min\",\"max\"}",
                                name);
                }
            }
        }
    }
    return true;
}

static const char *json_error(int e)
{
    switch (e) {
    case -ELOOP: return "nested too deeply";
    case -EEXIST: return "duplicate key";
    case -E2BIG: return "too many members in an object";
    case -ERANGE: return "exponent out of range";
    default: return "syntax or encoding error";
    }
}

int ufio_compat_parse(const char *json, struct ufio_compat_desc *d, char *err, size_t errlen)
{
    if (!json) {
        fail(err, errlen, "no descriptor");
        return -EINVAL;
    }
    size_t len = strlen(json);
    if (len > UFIO_COMPAT_MAX_DESC) {
        fail(err, errlen, "descriptor longer than 64 KiB");
        return -EINVAL;
    }
    size_t off = 0;
    int e = ufio_json_parse(json, len, UFIO_COMPAT_JSON_DEPTH, &d->root, &off);
    if (e) {
        fail(err, errlen, "descriptor is not valid JSON: %s at byte %zu", json_error(e), off);
        return -EINVAL;
    }
    return validate(&d->root, err, errlen) ? 0 : -EINVAL;
}

/* ---- matching ------------------------------------------------------------------- */

static void reason(struct ufio_compat_verdict *v, const char *field, const char *src, const char *acc)
{
    v->compatible = false;
    if (v->n >= UFIO_COMPAT_MAX_REASONS)
        return;
    struct ufio_compat_reason *r = &v->r[v->n++];
    snprintf(r->field, sizeof(r->field), "%s", field);
    snprintf(r->source, sizeof(r->source), "%s", src);
    snprintf(r->accepts, sizeof(r->accepts), "%s", acc);
}

/* o.a or o.a.b; absent (false) when o is not an object on the way. */
static bool path(const struct ufio_json *o, const char *a, const char *b, struct ufio_json *out)
{
    struct ufio_json x;
    if (!ufio_json_get(o, a, &x))
        return false;
    if (!b) {
        *out = x;
        return true;
    }
    return ufio_json_get(&x, b, out);
}

static bool in_str_array(const struct ufio_json *arr, const struct ufio_json *s)
{
    struct ufio_json_iter it;
    struct ufio_json e;
    ufio_json_iter_init(&it, arr);
    while (ufio_json_next(&it, NULL, &e))
        if (ufio_json_equal(&e, s))
            return true;
    return false;
}

static bool in_cstr_array(const struct ufio_json *arr, const char *s)
{
    struct ufio_json_iter it;
    struct ufio_json e;
    ufio_json_iter_init(&it, arr);
    while (ufio_json_next(&it, NULL, &e))
        if (ufio_json_str_is(&e, s))
            return true;
    return false;
}

/* A value's JSON text without insignificant whitespace, truncated to fit. */
static void fmt_val(const struct ufio_json *o, char *buf, size_t n)
{
    size_t w = 0;
    bool in_str = false;
    if (!n)
        return;
    if (!o) {
        snprintf(buf, n, "(absent)");
        return;
    }
    for (size_t i = 0; i < o->len && w + 1 < n; i++) {
        char c = o->p[i];
        if (in_str) {
            if (c == '\\') {
                if (i + 1 >= o->len || w + 2 >= n)
                    break; /* no room for the whole escape */
                buf[w++] = c;
                c = o->p[++i];
            } else if (c == '"') {
                in_str = false;
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            continue;
        }
        buf[w++] = c;
    }
    buf[w] = 0;
}

static void match_version(const struct ufio_json *src, const struct ufio_json *dst, struct ufio_compat_verdict *v)
{
    unsigned s[3], d[3], mn[3];
    struct ufio_json sv, dv, min, minv;
    ufio_json_get(src, "software_version", &sv);
    ufio_json_get(dst, "software_version", &dv);
    semver_of(&sv, s);
    semver_of(&dv, d);
    char acc[160];
    snprintf(acc, sizeof(acc), "%u.x.x with minor <= %u", d[0], d[1]);
    bool has_min = path(dst, "accepts", "software_version", &min);
    if (has_min) {
        ufio_json_get(&min, "min", &minv);
        semver_of(&minv, mn);
        snprintf(acc + strlen(acc), sizeof(acc) - strlen(acc), ", at least %u.%u.%u", mn[0], mn[1], mn[2]);
    }
    bool ok = s[0] == d[0] && s[1] <= d[1];
    if (ok && has_min)
        ok = s[0] > mn[0] || (s[0] == mn[0] && (s[1] > mn[1] || (s[1] == mn[1] && s[2] >= mn[2])));
    if (!ok) {
        char text[32];
        cstr(&sv, text, sizeof(text));
        reason(v, "software_version", text, acc);
    }
}

/* Ids compare as numbers whatever their spelling (21830 == "0x5546"); anything else by value. */
static bool num_eq(const struct ufio_json *a, const struct ufio_json *b)
{
    uint64_t x, y;
    if (!get_num(a, UINT64_MAX, &x) && !get_num(b, UINT64_MAX, &y))
        return x == y;
    return ufio_json_equal(a, b);
}

static bool satisfies(const struct ufio_json *val, const struct ufio_json *c)
{
    struct ufio_json_iter it;
    struct ufio_json e, mn, mx;
    switch (c->type) {
    case UFIO_JSON_ARRAY:
        ufio_json_iter_init(&it, c);
        while (ufio_json_next(&it, NULL, &e))
            if (num_eq(val, &e))
                return true;
        return false;
    case UFIO_JSON_OBJECT:
        if (val->type != UFIO_JSON_NUMBER)
            return false;
        if (ufio_json_get(c, "min", &mn) && ufio_json_num_cmp(val, &mn) < 0)
            return false;
        if (ufio_json_get(c, "max", &mx) && ufio_json_num_cmp(val, &mx) > 0)
            return false;
        return true;
    default:
        return num_eq(val, c);
    }
}

static void match_attributes(const struct ufio_json *src, const struct ufio_json *dst, struct ufio_compat_verdict *v)
{
    struct ufio_json sa, da, acc, key, val, c, own;
    struct ufio_json_iter it;
    bool has_sa = path(src, "attributes", NULL, &sa), has_da = path(dst, "attributes", NULL, &da);
    bool has_acc = path(dst, "accepts", "attributes", &acc);
    char name[52], field[64], sv[128], av[160];
    if (has_sa) {
        ufio_json_iter_init(&it, &sa);
        while (ufio_json_next(&it, &key, &val)) {
            cstr(&key, name, sizeof(name));
            snprintf(field, sizeof(field), "attributes.%s", name);
            fmt_val(&val, sv, sizeof(sv));
            bool has_c = false, has_own = false;
            /* constraints and own values are looked up by the unescaped key itself */
            if (has_acc) {
                struct ufio_json_iter j;
                struct ufio_json k2;
                ufio_json_iter_init(&j, &acc);
                while (!has_c && ufio_json_next(&j, &k2, &c))
                    has_c = ufio_json_equal(&k2, &key);
            }
            if (has_da) {
                struct ufio_json_iter j;
                struct ufio_json k2;
                ufio_json_iter_init(&j, &da);
                while (!has_own && ufio_json_next(&j, &k2, &own))
                    has_own = ufio_json_equal(&k2, &key);
            }
            if (has_c) {
                if (!satisfies(&val, &c)) {
                    fmt_val(&c, av, sizeof(av));
                    reason(v, field, sv, av);
                }
            } else if (!has_own) {
                reason(v, field, sv, "(not supported by the destination)");
            } else if (!num_eq(&val, &own)) {
                fmt_val(&own, av, sizeof(av));
                reason(v, field, sv, av);
            }
        }
    }
    if (has_da) {
        ufio_json_iter_init(&it, &da);
        while (ufio_json_next(&it, &key, &val)) {
            bool in_src = false;
            if (has_sa) {
                struct ufio_json_iter j;
                struct ufio_json k2;
                ufio_json_iter_init(&j, &sa);
                while (!in_src && ufio_json_next(&j, &k2, NULL))
                    in_src = ufio_json_equal(&k2, &key);
            }
            if (in_src)
                continue;
            cstr(&key, name, sizeof(name));
            snprintf(field, sizeof(field), "attributes.%s", name);
            fmt_val(&val, av, sizeof(av));
            reason(v, field, "(absent)", av);
        }
    }
}

void ufio_compat_match(const struct ufio_compat_desc *sd, const struct ufio_compat_desc *dd,
                       struct ufio_compat_verdict *v)
{
    const struct ufio_json *src = &sd->root, *dst = &dd->root;
    memset(v, 0, sizeof(*v));
    v->compatible = true;
    struct ufio_json sapi, dapi, st, dt, types;
    char a[128], b[128];
    ufio_json_get(src, "device_api", &sapi);
    ufio_json_get(dst, "device_api", &dapi);
    if (!ufio_json_equal(&sapi, &dapi)) {
        cstr(&sapi, a, sizeof(a));
        cstr(&dapi, b, sizeof(b));
        reason(v, "device_api", a, b);
    }
    ufio_json_get(src, "type", &st);
    ufio_json_get(dst, "type", &dt);
    bool has_types = path(dst, "accepts", "types", &types);
    if (!ufio_json_equal(&st, &dt) && !(has_types && in_str_array(&types, &st))) {
        char acc[160], list[128] = "";
        cstr(&st, a, sizeof(a));
        cstr(&dt, b, sizeof(b));
        if (has_types)
            fmt_val(&types, list, sizeof(list));
        snprintf(acc, sizeof(acc), "%s%s%s", b, has_types ? " or one of " : "", list);
        reason(v, "type", a, acc);
    }
    match_version(src, dst, v);

    struct ufio_json sp, dp, x;
    path(src, "pci", NULL, &sp);
    path(dst, "pci", NULL, &dp);
    uint64_t sv = 0, sdv = 0, dv = 0, ddv = 0;
    if (ufio_json_get(&sp, "vendor_id", &x))
        get_num(&x, 0xffff, &sv);
    if (ufio_json_get(&sp, "device_id", &x))
        get_num(&x, 0xffff, &sdv);
    if (ufio_json_get(&dp, "vendor_id", &x))
        get_num(&x, 0xffff, &dv);
    if (ufio_json_get(&dp, "device_id", &x))
        get_num(&x, 0xffff, &ddv);
    char ids[16];
    snprintf(ids, sizeof(ids), "%04llx:%04llx", (unsigned long long)sv, (unsigned long long)sdv);
    struct ufio_json pci_ids;
    if ((sv != dv || sdv != ddv) && !(path(dst, "accepts", "pci_ids", &pci_ids) && in_cstr_array(&pci_ids, ids))) {
        char acc[64];
        snprintf(acc, sizeof(acc), "%04llx:%04llx", (unsigned long long)dv, (unsigned long long)ddv);
        reason(v, "pci.vendor_id:device_id", ids, acc);
    }
    static const char *const opt[] = { "subsystem_vendor_id", "subsystem_id", "class_code" };
    for (int i = 0; i < 3; i++) {
        struct ufio_json ea, eb;
        if (ufio_json_get(&sp, opt[i], &ea) && ufio_json_get(&dp, opt[i], &eb) && !num_eq(&ea, &eb)) {
            char f[64], fx[128], fy[160];
            snprintf(f, sizeof(f), "pci.%s", opt[i]);
            fmt_val(&ea, fx, sizeof(fx));
            fmt_val(&eb, fy, sizeof(fy));
            reason(v, f, fx, fy);
        }
    }
    match_attributes(src, dst, v);
}

int ufio_compat_check_json(const char *src, const char *dst, struct ufio_compat_verdict *v, char *err, size_t errlen)
{
    char e[200];
    struct ufio_compat_desc s, d;
    if (ufio_compat_parse(src, &s, e, sizeof(e))) {
        snprintf(err, errlen, "source descriptor: %s", e);
        return -EINVAL;
    }
    if (ufio_compat_parse(dst, &d, e, sizeof(e))) {
        snprintf(err, errlen, "destination descriptor: %s", e);
        return -EINVAL;
    }
    ufio_compat_match(&s, &d, v);
    return 0;
}

size_t ufio_compat_format(const struct ufio_compat_verdict *v, char *buf, size_t cap)
{
    size_t off = 0;
    if (cap)
        buf[0] = 0;
    for (unsigned i = 0; i < v->n && off < cap; i++) {
        int n = snprintf(buf + off, cap - off, "%s%s: source %s, destination accepts %s", i ? "; " : "",
                         v->r[i].field, v->r[i].source, v->r[i].accepts);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    return off < cap ? off : cap;
}

int ufio_compat_from_pci_ids(const uint8_t *cfg, size_t len, char *buf, size_t cap)
{
    if (len < 0x30)
        return -EINVAL;
    unsigned vendor = ufio_ld16(cfg), device = ufio_ld16(cfg + 2);
    if (vendor == 0xffff || vendor == 0)
        return -ENODEV;
    int n = snprintf(buf, cap,
                     "{\"device_api\":\"vfio-pci\",\"type\":\"pci-%04x:%04x\",\"software_version\":\"0.0.0\","
                     "\"pci\":{\"vendor_id\":\"0x%04x\",\"device_id\":\"0x%04x\",\"subsystem_vendor_id\":\"0x%04x\","
                     "\"subsystem_id\":\"0x%04x\",\"class_code\":\"0x%06x\",\"revision\":%u}}",
                     vendor, device, vendor, device, ufio_ld16(cfg + 0x2c), ufio_ld16(cfg + 0x2e),
                     ufio_ld32(cfg + 8) >> 8, cfg[8]);
    return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}
