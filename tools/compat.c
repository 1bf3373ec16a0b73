/*
 * ufio-compat: show a device's migration compatibility descriptor, or decide
 * whether a source's state can be loaded by a destination.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include <ufio/client.h>
#include <ufio/migration.h>

#include "proto/compat.h"

static int timeout_ms = 5000;

/*
 * Indented JSON of a checked descriptor, printed straight from the strict
 * reader's spans: the descriptor came from a peer, and json-c must not parse it.
 */
static void print_pretty(const struct ufio_json *v, int indent)
{
    if ((v->type != UFIO_JSON_OBJECT && v->type != UFIO_JSON_ARRAY) || ufio_json_count(v) == 0) {
        if (v->type == UFIO_JSON_OBJECT || v->type == UFIO_JSON_ARRAY)
            fputs(v->type == UFIO_JSON_OBJECT ? "{}" : "[]", stdout);
        else
            fwrite(v->p, 1, v->len, stdout);
        return;
    }
    bool obj = v->type == UFIO_JSON_OBJECT;
    struct ufio_json_iter it;
    struct ufio_json k, e;
    ufio_json_iter_init(&it, v);
    putchar(obj ? '{' : '[');
    for (bool first = true; ufio_json_next(&it, &k, &e); first = false) {
        printf("%s\n%*s", first ? "" : ",", indent + 2, "");
        if (obj) {
            fwrite(k.p, 1, k.len, stdout);
            putchar(':');
        }
        print_pretty(&e, indent + 2);
    }
    printf("\n%*s%c", indent, "", obj ? '}' : ']');
}

/* A descriptor from a socket (asked over vfio-user) or from a file. */
static char *load_desc(const char *what, char *err, size_t errlen)
{
    struct stat st;
    if (stat(what, &st) == 0 && S_ISSOCK(st.st_mode)) {
        struct ufio_client_opts o = { .size = sizeof(o), .timeout_ms = timeout_ms, .role = UFIO_ROLE_OBSERVER_REQ };
        struct ufio_client *c;
        int e = ufio_client_connect(what, &o, &c);
        if (e) {
            snprintf(err, errlen, "%s: %s", what, strerror(-e));
            return NULL;
        }
        char *buf = calloc(1, 65536 + 1);
        size_t got = 0;
        e = buf ? ufio_client_feature(c, UFIO_FEATURE_GET | UFIO_FEATURE_COMPAT_DESC, NULL, 0, buf, 65536, &got)
                : -ENOMEM;
        if (e == -EINVAL || e == -ENOTSUP) {
            /* a server without ufio's extensions: described by its PCI ids, as ufio-migrate does */
            uint8_t cfg[0x30];
            e = ufio_client_region_read(c, 7 /* config space */, 0, cfg, sizeof(cfg));
            if (!e)
                e = ufio_compat_from_pci_ids(cfg, sizeof(cfg), buf, 65536);
            if (!e)
                fprintf(stderr, "ufio-compat: %s gives no descriptor; described by its PCI ids\n", what);
        }
        ufio_client_destroy(c);
        if (e) {
            snprintf(err, errlen, "%s: the device gives no descriptor (%s)", what, strerror(-e));
            free(buf);
            return NULL;
        }
        return buf;
    }
    FILE *f = fopen(what, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", what, strerror(errno));
        return NULL;
    }
    char *buf = calloc(1, 65536 + 2);
    size_t n = buf ? fread(buf, 1, 65536 + 1, f) : 0;
    fclose(f);
    if (!buf || n > 65536) {
        snprintf(err, errlen, "%s: descriptor larger than 64 KiB", what);
        free(buf);
        return NULL;
    }
    return buf;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: ufio-compat describe SOCKET\n"
               "       ufio-compat check [--json] SRC DST\n"
               "SRC and DST are device sockets or saved descriptor files (the output of describe).\n"
               "check prints compatible / incompatible with every reason and exits 0 / 1\n"
               "(2 for usage or unreadable input). Rules: docs/compatibility.md.\n"
               "  --json        machine-readable verdict\n"
               "  --timeout MS  connect/reply timeout (default 5000)\n");
}

int main(int argc, char **argv)
{
    bool json = false;
    static const struct option lo[] = { { "json", no_argument, NULL, 'j' },
                                        { "timeout", required_argument, NULL, 't' },
                                        { "help", no_argument, NULL, 'h' }, { 0 } };
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'j': json = true; break;
        case 't': timeout_ms = atoi(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    int rest = argc - optind;
    char err[512];
    if (rest == 2 && !strcmp(argv[optind], "describe")) {
        char *d = load_desc(argv[optind + 1], err, sizeof(err));
        if (!d) {
            fprintf(stderr, "ufio-compat: %s\n", err);
            return 2;
        }
        struct ufio_compat_desc desc;
        if (ufio_compat_parse(d, &desc, err, sizeof(err))) {
            fprintf(stderr, "ufio-compat: malformed descriptor: %s\n", err);
            free(d);
            return 2;
        }
        print_pretty(&desc.root, 0);
        putchar('\n');
        free(d);
        return 0;
    }
    if (rest != 3 || strcmp(argv[optind], "check")) {
        usage(stderr);
        return 2;
    }
    char *s = load_desc(argv[optind + 1], err, sizeof(err));
    char *d = s ? load_desc(argv[optind + 2], err, sizeof(err)) : NULL;
    if (!s || !d) {
        fprintf(stderr, "ufio-compat: %s\n", err);
        free(s);
        return 2;
    }
    struct ufio_compat_verdict v;
    int e = ufio_compat_check_json(s, d, &v, err, sizeof(err));
    free(s);
    free(d);
    if (e) {
        fprintf(stderr, "ufio-compat: %s\n", err);
        return 2;
    }
    if (json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "compatible", json_object_new_boolean(v.compatible));
        json_object *a = json_object_new_array();
        for (unsigned i = 0; i < v.n; i++) {
            json_object *r = json_object_new_object();
            json_object_object_add(r, "field", json_object_new_string(v.r[i].field));
            json_object_object_add(r, "source", json_object_new_string(v.r[i].source));
            json_object_object_add(r, "accepts", json_object_new_string(v.r[i].accepts));
            json_object_array_add(a, r);
        }
        json_object_object_add(o, "reasons", a);
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
    } else {
        printf("%s\n", v.compatible ? "compatible" : "incompatible");
        for (unsigned i = 0; i < v.n; i++)
            printf("  %s: source %s, destination accepts %s\n", v.r[i].field, v.r[i].source, v.r[i].accepts);
    }
    return v.compatible ? 0 : 1;
}
