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

static inline size_t abi_user_size(const void *user)
{
    size_t n;
    memcpy(&n, user, sizeof(n));
    return n;
}

/*
 * Copies the caller's struct at user into the library's own (lib, lib_size
 * bytes), zero-filling what the caller's build did not know. lib->size is set
 * to lib_size. -EINVAL when the caller's size does not even cover `size`.
 */
static inline int abi_struct_in(void *lib, size_t lib_size, const void *user)
{
    size_t n = abi_user_size(user);
    if (n < sizeof(size_t))
        return -EINVAL;
    if (n > lib_size) {
        const uint8_t *tail = (const uint8_t *)user + lib_size;
        for (size_t i = 0; i < n - lib_size; i++)
            if (tail[i])
                return -E2BIG;
        n = lib_size;
    }
    memcpy(lib, user, n);
    memset((uint8_t *)lib + n, 0, lib_size - n);
    memcpy(lib, &lib_size, sizeof(lib_size));
    return 0;
}

/* -EINVAL unless user is a struct whose size covers at least `size`. */
static inline int abi_check_out(const void *user)
{
    return user && abi_user_size(user) >= sizeof(size_t) ? 0 : -EINVAL;
}

/*
 * Writes the library's struct (lib, lib_size bytes) to the caller's, as far
 * as the caller's size reaches; members past the library's struct (a newer
 * caller) read as zero. The caller's size is left as it was. The caller has
 * passed abi_check_out().
 */
static inline void abi_struct_out(void *user, const void *lib, size_t lib_size)
{
    size_t n = abi_user_size(user);
    size_t k = n < lib_size ? n : lib_size;
    memcpy((uint8_t *)user + sizeof(size_t), (const uint8_t *)lib + sizeof(size_t), k - sizeof(size_t));
    if (n > lib_size)
        memset((uint8_t *)user + lib_size, 0, n - lib_size);
}

#endif
