/* The device's compatibility descriptor and the check of a source's (server side). */
#ifndef UFIO_SERVER_COMPAT_H
#define UFIO_SERVER_COMPAT_H

#include <stddef.h>

struct ufio_dev;

/* The device's descriptor as JSON (built from its ids unless the device set one). */
const char *dev_compat_json(struct ufio_dev *dev);
/* 0 if a stream from a source with this descriptor can be loaded here, else
 * -EINVAL with the reasons in reason. */
int dev_compat_check(struct ufio_dev *dev, const char *src_json, char *reason, size_t cap);

#endif
