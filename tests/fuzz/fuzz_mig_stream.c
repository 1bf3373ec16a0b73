/* The streaming migration stream reader, fed in pieces whose sizes come from
 * the input; its consumer refuses a record now and then, as a device may. */
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "proto/mig_stream.h"

static int on_data(void *arg, const uint8_t *p, size_t len)
{
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < len; i += 512)
        sink ^= p[i]; /* the whole record must be readable */
    (void)sink;
    return len == 13 ? -22 : 0;
}

static int on_desc(void *arg, const char *d)
{
    return strlen(d) == 7 ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t piece = (size_t)data[0] + 1;
    struct ufio_mig_rx rx;
    ufio_mig_rx_init(&rx, 1 << 20);
    rx.on_data = on_data;
    rx.on_desc = on_desc;
    for (size_t off = 1; off < size;) {
        size_t n = size - off < piece ? size - off : piece;
        if (ufio_mig_rx_feed(&rx, data + off, n))
            break;
        off += n;
    }
    ufio_mig_rx_free(&rx);
    return 0;
}
