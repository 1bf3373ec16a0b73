/* VERSION payloads and their JSON capabilities. */
#include <stdint.h>
#include <stddef.h>

#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ufio_version v;
    if (ufio_version_decode(data, size, &v) == 0) {
        char buf[UFIO_MAX_VERSION_JSON + 64];
        struct ufio_version r, s = { .major = 0, .minor = 2, .has_json = true };
        ufio_caps_defaults(&s.caps);
        if (ufio_version_negotiate(&v, &s, &r) == 0)
            ufio_version_encode(&r, buf, sizeof(buf));
    }
    return 0;
}
