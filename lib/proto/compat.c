/* Compatibility descriptors: validation and the source -> destination matcher. */
#include "proto/compat.h"

#include <errno.h>
#include <json-c/json.h>
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

/* An id or number given as a JSON integer or a "0x..." / decimal string. */
static int get_num(json_object *o, uint64_t max, uint64_t *out)
{
    if (json_object_is_type(o, json_type_int)) {
        int64_t v = json_object_get_int64(o);
        if (v < 0 || (uint64_t)v > max)
            return -EINVAL;
        *out = (uint64_t)v;
        return 0;
    }
    if (json_object_is_type(o, json_type_string)) {
        const char *s = json_object_get_string(o);
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 0);
        if (!*s || *end || errno || v > max || *s == '-')
            return -EINVAL;
        *out = v;
        return 0;
    }
    return -EINVAL;
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

static bool valid_constraint(json_object *c)
{
    switch (json_object_get_type(c)) {
    case json_type_int:
    case json_type_string:
    case json_type_double:
        return true;
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(c); i++) {
            json_type t = json_object_get_type(json_object_array_get_idx(c, i));
            if (t != json_type_int && t != json_type_string && t != json_type_double)
                return false;
        }
        return json_object_array_length(c) > 0;
    case json_type_object: {
        json_object *mn, *mx;
        bool has_min = json_object_object_get_ex(c, "min", &mn), has_max = json_object_object_get_ex(c, "max", &mx);
        if (!has_min && !has_max)
            return false;
        if ((has_min && !json_object_is_type(mn, json_type_int) && !json_object_is_type(mn, json_type_double)) ||
            (has_max && !json_object_is_type(mx, json_type_int) && !json_object_is_type(mx, json_type_double)))
            return false;
        return !(has_min && has_max && json_object_get_double(mn) > json_object_get_double(mx));
    }
    default:
        return false;
    }
}

static bool validate(json_object *d, char *err, size_t n)
{
    json_object *v, *pci, *x;
    unsigned ver[3];
    uint64_t num;
    if (!json_object_is_type(d, json_type_object))
        return fail(err, n, "descriptor is not a JSON object");
    static const char *const strs[] = { "device_api", "type", "software_version" };
    for (int i = 0; i < 3; i++) {
        if (!json_object_object_get_ex(d, strs[i], &v))
            return fail(err, n, "missing field '%s'", strs[i]);
        if (!json_object_is_type(v, json_type_string) || !json_object_get_string_len(v))
            return fail(err, n, "field '%s' must be a non-empty string", strs[i]);
    }
    json_object_object_get_ex(d, "software_version", &v);
    if (ufio_semver_parse(json_object_get_string(v), ver))
        return fail(err, n, "software_version '%s' is not MAJOR.MINOR.PATCH", json_object_get_string(v));
    if (!json_object_object_get_ex(d, "pci", &pci) || !json_object_is_type(pci, json_type_object))
        return fail(err, n, "missing object 'pci'");
    static const char *const ids[] = { "vendor_id", "device_id", "subsystem_vendor_id", "subsystem_id" };
    for (int i = 0; i < 4; i++) {
        bool has = json_object_object_get_ex(pci, ids[i], &x);
        if (!has && i < 2)
            return fail(err, n, "missing field 'pci.%s'", ids[i]);
        if (has && get_num(x, 0xffff, &num))
            return fail(err, n, "field 'pci.%s' must be a 16-bit id", ids[i]);
    }
    if (json_object_object_get_ex(pci, "class_code", &x) && get_num(x, 0xffffff, &num))
        return fail(err, n, "field 'pci.class_code' must be a 24-bit number");
    if (json_object_object_get_ex(pci, "revision", &x) && get_num(x, 0xff, &num))
        return fail(err, n, "field 'pci.revision' must be 0..255");
    if (json_object_object_get_ex(d, "attributes", &v)) {
        if (!json_object_is_type(v, json_type_object))
            return fail(err, n, "'attributes' must be an object");
        json_object_object_foreach(v, key, val) {
            json_type t = json_object_get_type(val);
            if (t != json_type_int && t != json_type_string && t != json_type_double && t != json_type_boolean)
                return fail(err, n, "attribute '%s' must be a number, string or boolean", key);
        }
    }
    if (json_object_object_get_ex(d, "accepts", &v)) {
        if (!json_object_is_type(v, json_type_object))
            return fail(err, n, "'accepts' must be an object");
        if (json_object_object_get_ex(v, "types", &x)) {
            if (!json_object_is_type(x, json_type_array))
                return fail(err, n, "'accepts.types' must be an array of strings");
            for (size_t i = 0; i < json_object_array_length(x); i++)
                if (!json_object_is_type(json_object_array_get_idx(x, i), json_type_string))
                    return fail(err, n, "'accepts.types' must be an array of strings");
        }
        if (json_object_object_get_ex(v, "pci_ids", &x)) {
            if (!json_object_is_type(x, json_type_array))
                return fail(err, n, "'accepts.pci_ids' must be an array of \"vvvv:dddd\"");
            for (size_t i = 0; i < json_object_array_length(x); i++) {
                json_object *e = json_object_array_get_idx(x, i);
                unsigned a, b;
                char tail;
                if (!json_object_is_type(e, json_type_string) ||
                    sscanf(json_object_get_string(e), "%4x:%4x%c", &a, &b, &tail) != 2)
                    return fail(err, n, "'accepts.pci_ids' must be an array of \"vvvv:dddd\"");
            }
        }
        if (json_object_object_get_ex(v, "software_version", &x)) {
            json_object *mn;
            if (!json_object_is_type(x, json_type_object) || !json_object_object_get_ex(x, "min", &mn) ||
                !json_object_is_type(mn, json_type_string) || ufio_semver_parse(json_object_get_string(mn), ver))
                return fail(err, n, "'accepts.software_version' must be {\"min\": \"MAJOR.MINOR.PATCH\"}");
        }
        if (json_object_object_get_ex(v, "attributes", &x)) {
            if (!json_object_is_type(x, json_type_object))
                return fail(err, n, "'accepts.attributes' must be an object");
            json_object_object_foreach(x, key, c) {
                if (!valid_constraint(c))
                    return fail(err, n, "'accepts.attributes.%s' must be a value, a list of values, or {\"min\",\"max\"}", key);
            }
        }
    }
    return true;
}

struct json_object *ufio_compat_parse(const char *json, char *err, size_t errlen)
{
    if (!json) {
        fail(err, errlen, "no descriptor");
        return NULL;
    }
    size_t len = strlen(json);
    if (len > 65536) {
        fail(err, errlen, "descriptor longer than 64 KiB");
        return NULL;
    }
    json_tokener *tok = json_tokener_new();
    if (!tok) {
        fail(err, errlen, "out of memory");
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *o = json_tokener_parse_ex(tok, json, (int)len);
    bool ok = o && json_tokener_get_error(tok) == json_tokener_success && json_tokener_get_parse_end(tok) == len;
    json_tokener_free(tok);
    if (!ok) {
        json_object_put(o);
        fail(err, errlen, "descriptor is not valid JSON");
        return NULL;
    }
    if (!validate(o, err, errlen)) {
        json_object_put(o);
        return NULL;
    }
    return o;
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

static const char *str(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static json_object *path(json_object *o, const char *a, const char *b)
{
    json_object *x, *y;
    if (!json_object_object_get_ex(o, a, &x))
        return NULL;
    if (!b)
        return x;
    return json_object_object_get_ex(x, b, &y) ? y : NULL;
}

static bool in_str_array(json_object *arr, const char *s)
{
    for (size_t i = 0; arr && i < json_object_array_length(arr); i++)
        if (!strcmp(json_object_get_string(json_object_array_get_idx(arr, i)), s))
            return true;
    return false;
}

static void match_version(json_object *src, json_object *dst, struct ufio_compat_verdict *v)
{
    unsigned s[3], d[3], mn[3];
    ufio_semver_parse(str(src, "software_version"), s);
    ufio_semver_parse(str(dst, "software_version"), d);
    char acc[160];
    snprintf(acc, sizeof(acc), "%u.x.x with minor <= %u", d[0], d[1]);
    json_object *min = path(dst, "accepts", "software_version");
    if (min) {
        ufio_semver_parse(str(min, "min"), mn);
        snprintf(acc + strlen(acc), sizeof(acc) - strlen(acc), ", at least %u.%u.%u", mn[0], mn[1], mn[2]);
    }
    bool ok = s[0] == d[0] && s[1] <= d[1];
    if (ok && min)
        ok = s[0] > mn[0] || (s[0] == mn[0] && (s[1] > mn[1] || (s[1] == mn[1] && s[2] >= mn[2])));
    if (!ok)
        reason(v, "software_version", str(src, "software_version"), acc);
}

static void fmt_val(json_object *o, char *buf, size_t n)
{
    snprintf(buf, n, "%s", o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : "(absent)");
}

static bool num_eq(json_object *a, json_object *b)
{
    uint64_t x, y;
    if (!get_num(a, UINT64_MAX, &x) && !get_num(b, UINT64_MAX, &y))
        return x == y;
    return json_object_equal(a, b);
}

static bool satisfies(json_object *val, json_object *c)
{
    switch (json_object_get_type(c)) {
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(c); i++)
            if (num_eq(val, json_object_array_get_idx(c, i)))
                return true;
        return false;
    case json_type_object: {
        json_type t = json_object_get_type(val);
        if (t != json_type_int && t != json_type_double)
            return false;
        double x = json_object_get_double(val);
        json_object *mn, *mx;
        if (json_object_object_get_ex(c, "min", &mn) && x < json_object_get_double(mn))
            return false;
        if (json_object_object_get_ex(c, "max", &mx) && x > json_object_get_double(mx))
            return false;
        return true;
    }
    default:
        return num_eq(val, c);
    }
}

static void match_attributes(json_object *src, json_object *dst, struct ufio_compat_verdict *v)
{
    json_object *sa = path(src, "attributes", NULL), *da = path(dst, "attributes", NULL);
    json_object *acc = path(dst, "accepts", "attributes");
    char field[64], sv[128], av[160];
    if (sa) {
        json_object_object_foreach(sa, key, val) {
            snprintf(field, sizeof(field), "attributes.%s", key);
            json_object *c = acc ? path(acc, key, NULL) : NULL;
            json_object *own = da ? path(da, key, NULL) : NULL;
            fmt_val(val, sv, sizeof(sv));
            if (c) {
                if (!satisfies(val, c)) {
                    fmt_val(c, av, sizeof(av));
                    reason(v, field, sv, av);
                }
            } else if (!own) {
                reason(v, field, sv, "(not supported by the destination)");
            } else if (!num_eq(val, own)) {
                fmt_val(own, av, sizeof(av));
                reason(v, field, sv, av);
            }
        }
    }
    if (da) {
        json_object_object_foreach(da, key, val) {
            if (sa && path(sa, key, NULL))
                continue;
            snprintf(field, sizeof(field), "attributes.%s", key);
            fmt_val(val, av, sizeof(av));
            reason(v, field, "(absent)", av);
        }
    }
}

void ufio_compat_match(json_object *src, json_object *dst, struct ufio_compat_verdict *v)
{
    memset(v, 0, sizeof(*v));
    v->compatible = true;
    const char *sapi = str(src, "device_api"), *dapi = str(dst, "device_api");
    if (strcmp(sapi, dapi))
        reason(v, "device_api", sapi, dapi);
    const char *st = str(src, "type"), *dt = str(dst, "type");
    json_object *types = path(dst, "accepts", "types");
    if (strcmp(st, dt) && !in_str_array(types, st)) {
        char acc[160];
        snprintf(acc, sizeof(acc), "%s%s%s", dt, types ? " or one of " : "",
                 types ? json_object_to_json_string_ext(types, JSON_C_TO_STRING_PLAIN) : "");
        reason(v, "type", st, acc);
    }
    match_version(src, dst, v);

    json_object *sp = path(src, "pci", NULL), *dp = path(dst, "pci", NULL);
    uint64_t sv, sd, dv, dd;
    get_num(path(sp, "vendor_id", NULL), 0xffff, &sv);
    get_num(path(sp, "device_id", NULL), 0xffff, &sd);
    get_num(path(dp, "vendor_id", NULL), 0xffff, &dv);
    get_num(path(dp, "device_id", NULL), 0xffff, &dd);
    char ids[16];
    snprintf(ids, sizeof(ids), "%04llx:%04llx", (unsigned long long)sv, (unsigned long long)sd);
    if ((sv != dv || sd != dd) && !in_str_array(path(dst, "accepts", "pci_ids"), ids)) {
        char acc[64];
        snprintf(acc, sizeof(acc), "%04llx:%04llx", (unsigned long long)dv, (unsigned long long)dd);
        reason(v, "pci.vendor_id:device_id", ids, acc);
    }
    static const char *const opt[] = { "subsystem_vendor_id", "subsystem_id", "class_code" };
    for (int i = 0; i < 3; i++) {
        json_object *a = path(sp, opt[i], NULL), *b = path(dp, opt[i], NULL);
        if (a && b && !num_eq(a, b)) {
            char f[64], x[128], y[160];
            snprintf(f, sizeof(f), "pci.%s", opt[i]);
            fmt_val(a, x, sizeof(x));
            fmt_val(b, y, sizeof(y));
            reason(v, f, x, y);
        }
    }
    match_attributes(src, dst, v);
}

int ufio_compat_check_json(const char *src, const char *dst, struct ufio_compat_verdict *v, char *err, size_t errlen)
{
    char e[200];
    json_object *s = ufio_compat_parse(src, e, sizeof(e));
    if (!s) {
        snprintf(err, errlen, "source descriptor: %s", e);
        return -EINVAL;
    }
    json_object *d = ufio_compat_parse(dst, e, sizeof(e));
    if (!d) {
        json_object_put(s);
        snprintf(err, errlen, "destination descriptor: %s", e);
        return -EINVAL;
    }
    ufio_compat_match(s, d, v);
    json_object_put(s);
    json_object_put(d);
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
