/*
 * Size-carrying public structs (docs/abi.md): every ops/options/info struct a
 * caller passes starts with `size_t size`, set to sizeof the struct in the
 * caller's build. The library reads only those bytes and writes only those.
 *
 * Caller older than the library: the members it did not know are zero (a NULL
 * callback, a default option). Caller newer than the library: the members this
 * library does not know must be zero, otherwise -E2BIG (the caller asked for
 * something this library cannot do, and must not be silently ignored).
 */
#ifndef UFIO_COMMON_ABI_H
#define UFIO_COMMON_ABI_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/log.h"

/* No public struct will ever be this large: a larger size is a caller that
 * never set it (stack garbage), refused before anything is read past it. */
#define ABI_STRUCT_MAX 4096u

static inline size_t abi_user_size(const void *user)
{
    size_t n;
    memcpy(&n, user, sizeof(n));
    return n;
}

/* A bad size is a bug in the caller's code: say what to fix, once per call. */
static inline int abi_bad_size(const char *fn, size_t n)
{
    ufio_log(UFIO_LOG_ERR, "libufio", "%s: struct size %zu: set .size = sizeof the struct (docs/abi.md)", fn, n);
    return -EINVAL;
}

/*
 * Copies the caller's struct at user into the library's own (lib, lib_size
 * bytes), zero-filling what the caller's build did not know. lib->size is set
 * to lib_size. -EINVAL when the caller's size does not even cover `size` (or
 * is absurd), -E2BIG when a newer caller set members this library lacks.
 */
#define abi_struct_in(lib, lib_size, user) abi_struct_in_(lib, lib_size, user, __func__)
static inline int abi_struct_in_(void *lib, size_t lib_size, const void *user, const char *fn)
{
    size_t n = abi_user_size(user);
    if (n < sizeof(size_t) || n > ABI_STRUCT_MAX)
        return abi_bad_size(fn, n);
    if (n > lib_size) {
        const uint8_t *tail = (const uint8_t *)user + lib_size;
        for (size_t i = 0; i < n - lib_size; i++)
            if (tail[i]) {
                ufio_log(UFIO_LOG_ERR, "libufio",
                         "%s: the caller sets members this libufio %s does not have (struct size %zu > %zu)",
                         fn, UFIO_VERSION_STRING, n, lib_size);
                return -E2BIG;
            }
        n = lib_size;
    }
    memcpy(lib, user, n);
    memset((uint8_t *)lib + n, 0, lib_size - n);
    memcpy(lib, &lib_size, sizeof(lib_size));
    return 0;
}

/* -EINVAL unless user is a struct whose size covers at least `size`. */
#define abi_check_out(user) abi_check_out_(user, __func__)
static inline int abi_check_out_(const void *user, const char *fn)
{
    if (!user)
        return -EINVAL;
    size_t n = abi_user_size(user);
    return n >= sizeof(size_t) && n <= ABI_STRUCT_MAX ? 0 : abi_bad_size(fn, n);
}

/*
 * Writes the library's struct (lib, lib_size bytes) to the caller's, as far
 * as both reach: never past the caller's size, never past the library's own
 * struct (members of a newer caller's build stay as the caller initialised
 * them). The caller's size is left as it was. The caller has passed
 * abi_check_out().
 */
static inline void abi_struct_out(void *user, const void *lib, size_t lib_size)
{
    size_t n = abi_user_size(user);
    size_t k = n < lib_size ? n : lib_size;
    memcpy((uint8_t *)user + sizeof(size_t), (const uint8_t *)lib + sizeof(size_t), k - sizeof(size_t));
}

#endif
