/* The migration stream reader, fed in pieces whose sizes come from the input. */
#include <stdint.h>
#include <stddef.h>

#include "proto/mig_stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t piece = (size_t)data[0] + 1;
    struct ufio_mig_rx rx;
    ufio_mig_rx_init(&rx, 1 << 20);
    for (size_t off = 1; off < size;) {
        size_t n = size - off < piece ? size - off : piece;
        if (ufio_mig_rx_feed(&rx, data + off, n))
            break;
        off += n;
    }
    ufio_mig_rx_free(&rx);
    return 0;
}
