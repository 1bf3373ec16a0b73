/*
 * The strict JSON reader on its own: any bytes, then every accessor over what
 * it accepts, with oracles that abort on an inconsistency (a value equals
 * itself, a span re-parses to the same type, a string's length is what its
 * copy says, a member is found by its name). The costly oracles run near the
 * root only: at every level of a deep document they would make the harness,
 * not the reader, quadratic.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/json.h"

static void walk(const struct ufio_json *v, const struct ufio_json *prev_num, unsigned depth)
{
    struct ufio_json again;
    if (depth < 2 && (ufio_json_parse(v->p, v->len, UFIO_JSON_DEPTH_LIMIT, &again, NULL) || again.type != v->type ||
                      again.len != v->len || !ufio_json_equal(v, v)))
        abort();
    char buf[64];
    uint64_t u;
    switch (v->type) {
    case UFIO_JSON_STRING: {
        size_t n = ufio_json_str(v, buf, sizeof(buf));
        if (n < sizeof(buf) && (strlen(buf) == n) != ufio_json_str_is(v, buf))
            abort();
        break;
    }
    case UFIO_JSON_NUMBER:
        if (ufio_json_u64(v, &u) == 0 && !ufio_json_is_integer(v))
            abort();
        if (ufio_json_num_cmp(v, v) != 0)
            abort();
        if (prev_num && (ufio_json_num_cmp(v, prev_num) > 0) != (ufio_json_num_cmp(prev_num, v) < 0))
            abort();
        break;
    case UFIO_JSON_OBJECT:
    case UFIO_JSON_ARRAY: {
        struct ufio_json_iter it;
        struct ufio_json k, e, last_num;
        bool have_num = false;
        size_t n = 0;
        ufio_json_iter_init(&it, v);
        while (ufio_json_next(&it, &k, &e)) {
            n++;
            if (v->type == UFIO_JSON_OBJECT && n <= 8) {
                struct ufio_json found;
                char name[64];
                size_t kl = ufio_json_str(&k, name, sizeof(name));
                if (kl < sizeof(name) && strlen(name) == kl &&
                    (!ufio_json_get(v, name, &found) || found.p != e.p))
                    abort(); /* names are unique, so get() finds this very member */
            }
            walk(&e, have_num ? &last_num : NULL, depth + 1);
            if (e.type == UFIO_JSON_NUMBER) {
                last_num = e;
                have_num = true;
            }
        }
        if (n != ufio_json_count(v))
            abort();
        break;
    }
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ufio_json root;
    /* the first byte picks the depth limit, so the limit itself is fuzzed */
    if (size < 1)
        return 0;
    unsigned depth = data[0] % 70;
    if (ufio_json_parse((const char *)data + 1, size - 1, depth, &root, NULL) == 0)
        walk(&root, NULL, 0);
    return 0;
}
