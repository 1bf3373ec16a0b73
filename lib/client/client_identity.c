#include "client/client_identity.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ufio/client.h>
#include <ufio/migration.h>

#include "proto/cursor.h"

#define DESC_MAX 65536 /* what the strict JSON reader takes */

void cl_identity_from_config(struct cl_identity *id, const uint8_t cfg[0x30])
{
    id->vendor_id = ufio_ld16(cfg + 0x00);
    id->device_id = ufio_ld16(cfg + 0x02);
    id->revision = cfg[0x08];
    id->class_code = (uint32_t)cfg[0x09] | (uint32_t)cfg[0x0a] << 8 | (uint32_t)cfg[0x0b] << 16;
    id->subsys_vendor_id = ufio_ld16(cfg + 0x2c);
    id->subsys_id = ufio_ld16(cfg + 0x2e);
}

int cl_identity_read(struct ufio_client *c, struct cl_identity *id)
{
    memset(id, 0, sizeof(*id));
    uint8_t cfg[0x30];
    int err = ufio_client_region_read(c, UFIO_PCI_CONFIG_REGION, 0, cfg, sizeof(cfg));
    if (err)
        return err;
    cl_identity_from_config(id, cfg);
    char *buf = malloc(DESC_MAX + 1);
    if (!buf)
        return -ENOMEM;
    size_t got = 0;
    err = ufio_client_feature(c, UFIO_FEATURE_GET | UFIO_FEATURE_COMPAT_DESC, NULL, 0, buf, DESC_MAX, &got);
    if (err == -ENOTCONN || err == -ETIMEDOUT || err == -ENOMEM || err == -EPROTO) {
        free(buf);
        return err;
    }
    if (err || got == 0) {
        free(buf); /* a server that has no descriptor (not ufio, or an old one): ids only */
        return 0;
    }
    buf[got] = 0;
    id->desc_len = strnlen(buf, got); /* the reply carries the NUL */
    id->desc = buf;
    return 0;
}

/* Appends one reason to why, "; "-separated; truncates quietly. */
__attribute__((format(printf, 4, 5))) static void add(char *why, size_t why_len, size_t *off, const char *fmt, ...)
{
    if (*off + 1 >= why_len)
        return;
    if (*off) {
        snprintf(why + *off, why_len - *off, "; ");
        *off += 2;
        if (*off + 1 >= why_len) {
            *off = why_len - 1;
            return;
        }
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(why + *off, why_len - *off, fmt, ap);
    va_end(ap);
    if (n > 0)
        *off += (size_t)n < why_len - *off ? (size_t)n : why_len - *off - 1;
}

int cl_identity_compare(const struct cl_identity *was, const struct cl_identity *now, char *why, size_t why_len)
{
    char scratch[1];
    if (!why_len) {
        why = scratch;
        why_len = sizeof(scratch);
    }
    why[0] = 0;
    size_t off = 0;
    bool same = true;
#define CMP(field, digits)                                                                              \
    if (was->field != now->field) {                                                                     \
        same = false;                                                                                   \
        add(why, why_len, &off, #field " 0x%0" #digits "x -> 0x%0" #digits "x", (unsigned)was->field,  \
            (unsigned)now->field);                                                                      \
    }
    CMP(vendor_id, 4)
    CMP(device_id, 4)
    CMP(subsys_vendor_id, 4)
    CMP(subsys_id, 4)
    CMP(class_code, 6)
    CMP(revision, 2)
#undef CMP
    if (was->desc && !now->desc) {
        same = false;
        add(why, why_len, &off, "the compatibility descriptor is gone (the server has none now)");
    } else if (!was->desc && now->desc) {
        same = false;
        add(why, why_len, &off, "a compatibility descriptor appeared (the device had none)");
    } else if (was->desc && (was->desc_len != now->desc_len || memcmp(was->desc, now->desc, was->desc_len))) {
        size_t i = 0;
        while (i < was->desc_len && i < now->desc_len && was->desc[i] == now->desc[i])
            i++;
        same = false;
        /* the text around the first difference: enough to see which field changed */
        size_t from = i > 24 ? i - 24 : 0;
        add(why, why_len, &off, "the compatibility descriptor differs from byte %zu: was \"%.48s\", now \"%.48s\"", i,
            was->desc + from, now->desc + from);
    }
    return same ? 0 : -ENODEV;
}

void cl_identity_free(struct cl_identity *id)
{
    free(id->desc);
    id->desc = NULL;
    id->desc_len = 0;
}
