/*
 * The client's handling of what a server sends: a valid VERSION reply, then
 * the input as the bytes that follow (replies, server-initiated DMA_READ /
 * DMA_WRITE requests, garbage), then EOF; the first byte picks the call made.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ufio/client.h>
#include <ufio/migration.h>

#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 200000)
        return 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        abort();
    static const char json[] = "{\"capabilities\":{\"max_msg_fds\":8,\"write_multiple\":true}}";
    uint8_t v[16 + 4 + sizeof(json)];
    struct vfio_user_header h = { .msg_id = 0, .cmd = VFIO_USER_VERSION, .msg_size = sizeof(v), .flags = 1 };
    ufio_hdr_encode(v, &h);
    v[16] = 0; v[17] = 0; v[18] = 0; v[19] = 0;
    memcpy(v + 20, json, sizeof(json));
    if (write(sv[1], v, sizeof(v)) != (ssize_t)sizeof(v))
        abort();
    /* the rest may exceed the socket buffer: a thread-free way is to write what fits */
    size_t off = 1;
    while (off < size) {
        ssize_t n = send(sv[1], data + off, size - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    shutdown(sv[1], SHUT_WR);
    struct ufio_client_opts o = { .timeout_ms = 50, .no_twin_socket = true };
    struct ufio_client *c;
    if (ufio_client_attach_fd(sv[0], &o, &c) == 0) {
        static uint8_t local[8192];
        ufio_client_dma_map(c, 0x1000, sizeof(local), UFIO_DMA_READ | UFIO_DMA_WRITE, local, -1, 0);
        uint8_t buf[4096];
        size_t got;
        switch (data[0] % 8) {
        case 0: { struct ufio_client_device_info di; ufio_client_device_info(c, &di); break; }
        case 1: { struct ufio_client_region_info *ri = malloc(sizeof(*ri)); if (ri) ufio_client_region_info(c, 2, ri); free(ri); break; }
        case 2: { struct ufio_client_irq_info ii; ufio_client_irq_info(c, 2, &ii); break; }
        case 3: ufio_client_region_read(c, 0, 0, buf, sizeof(buf)); break;
        case 4: ufio_client_feature(c, UFIO_FEATURE_GET | 2, NULL, 0, buf, sizeof(buf), &got); break;
        case 5: ufio_client_mig_data_read(c, buf, sizeof(buf), &got); break;
        case 6: { uint64_t bm[4]; ufio_client_dirty_log_report(c, 0, 1 << 20, 4096, bm); break; }
        default: ufio_client_process(c); break;
        }
        ufio_client_destroy(c);
    }
    close(sv[1]);
    return 0;
}
