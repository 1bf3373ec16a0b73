/* Two compatibility descriptors (split at the first NUL), parsed and matched. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/compat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    size_t a = strlen(s);
    const char *d = a < size ? s + a + 1 : "{}";
    struct ufio_compat_verdict v;
    char err[128], text[512];
    if (ufio_compat_check_json(s, d, &v, err, sizeof(err)) == 0)
        ufio_compat_format(&v, text, sizeof(text));
    free(s);
    return 0;
}
