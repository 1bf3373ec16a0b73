/*
 * A strict, allocation-free JSON reader for text that comes from a peer
 * (VERSION capabilities, compatibility descriptors).
 *
 * ufio_json_parse() checks a whole document once against RFC 8259 and our
 * limits; after that a document is only looked at through struct ufio_json
 * spans pointing into the caller's buffer, so nothing is copied or allocated
 * and the buffer must outlive the spans. Accessors trust a span only because
 * it came out of a successful parse of that buffer.
 *
 * What is refused (all -EINVAL unless noted):
 *  - anything outside RFC 8259: comments, single quotes, trailing commas,
 *    NaN/Infinity, hex or leading-zero numbers, '+1', a byte-order mark,
 *    whitespace other than space, tab, CR, LF, anything after the value;
 *  - in strings: raw bytes below 0x20, unknown escapes, \u not followed by 4
 *    hex digits, unpaired surrogates (escaped or as UTF-8), invalid UTF-8
 *    (overlongs, code points above U+10FFFF, stray continuation bytes,
 *    truncated sequences);
 *  - a NUL byte anywhere (so a document is also a C string if NUL-ended);
 *  - nesting deeper than max_depth: -ELOOP;
 *  - the same member name twice in one object, compared after unescaping:
 *    -EEXIST (two parsers that disagree on which duplicate wins are a
 *    classic way to smuggle a value past a checker);
 *  - more than UFIO_JSON_MAX_MEMBERS members in one object: -E2BIG (it bounds
 *    the duplicate check, which is quadratic);
 *  - an exponent above UFIO_JSON_MAX_EXP in magnitude: -ERANGE (keeps number
 *    comparison exact without big-number arithmetic).
 * "\u0000" is accepted (RFC 8259 allows it); it can never equal a C-string key.
 */
#ifndef UFIO_PROTO_JSON_H
#define UFIO_PROTO_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UFIO_JSON_MAX_MEMBERS 1024
#define UFIO_JSON_MAX_EXP 999999999
#define UFIO_JSON_DEPTH_LIMIT 64 /* the largest max_depth a caller may ask for */

enum ufio_json_type {
    UFIO_JSON_NULL,
    UFIO_JSON_FALSE,
    UFIO_JSON_TRUE,
    UFIO_JSON_NUMBER,
    UFIO_JSON_STRING,
    UFIO_JSON_ARRAY,
    UFIO_JSON_OBJECT,
};

/* One value of a parsed document: its bytes, quotes and brackets included. */
struct ufio_json {
    const char *p;
    size_t len;
    enum ufio_json_type type;
};

/*
 * Checks text[0..len) and sets *root to its value. max_depth counts
 * containers: 1 allows "[]" but not "[[]]"; 0 allows only scalars. On failure
 * *err_off (if not NULL) is the offset of the first offending byte.
 */
int ufio_json_parse(const char *text, size_t len, unsigned max_depth, struct ufio_json *root, size_t *err_off);

/* Members of an object or elements of an array, in document order. */
struct ufio_json_iter {
    const char *p, *end;
    bool object;
};
void ufio_json_iter_init(struct ufio_json_iter *it, const struct ufio_json *container);
/* Next element (key left untouched for arrays); false at the end. */
bool ufio_json_next(struct ufio_json_iter *it, struct ufio_json *key, struct ufio_json *val);

/* Number of elements or members of a container, 0 for scalars. */
size_t ufio_json_count(const struct ufio_json *container);

/* The member called name (a C string) of an object; false if absent or not an object. */
bool ufio_json_get(const struct ufio_json *obj, const char *name, struct ufio_json *val);

/*
 * A string's unescaped bytes, UTF-8. Copies at most cap - 1 bytes and a NUL
 * (nothing if cap is 0); returns the full unescaped length, so a result >= cap
 * means truncated. Returns 0 for a non-string.
 */
size_t ufio_json_str(const struct ufio_json *s, char *buf, size_t cap);
/* Is the string's unescaped text exactly the C string c? */
bool ufio_json_str_is(const struct ufio_json *s, const char *c);

/*
 * An integer without fraction or exponent, exactly: -EINVAL for other values
 * and for negative numbers ("-0" is 0), -ERANGE above UINT64_MAX.
 */
int ufio_json_u64(const struct ufio_json *n, uint64_t *out);
/* An integer written without fraction or exponent (any size, any sign). */
bool ufio_json_is_integer(const struct ufio_json *n);

/* Exact comparison of two numbers by value (1 == 1.0 == 10e-1, -0 == 0): <0, 0, >0. */
int ufio_json_num_cmp(const struct ufio_json *a, const struct ufio_json *b);

/*
 * Same value: same type and, for numbers, same value; strings equal after
 * unescaping; arrays element by element; objects with the same names mapping
 * to equal values, in any order.
 */
bool ufio_json_equal(const struct ufio_json *a, const struct ufio_json *b);

#endif
