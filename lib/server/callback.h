/*
 * What a device callback's return value means, in one place, so every
 * callback follows the rule server.h documents ("Return values").
 */
#ifndef UFIO_SERVER_CALLBACK_H
#define UFIO_SERVER_CALLBACK_H

#include <stdint.h>

/*
 * ret is what callback `what` of device `who` returned. len is the byte count
 * of a region access (then ret == len also means success; libvfio-user's
 * callbacks return it), 0 for a callback without one. Returns 0 for success,
 * the negative errno for a failure, and -EIO (with a warning naming the
 * callback and value) for anything else: a short or long count, a positive
 * value, or a negative number that is no errno.
 */
int dev_cb_result(const char *who, const char *what, int ret, uint32_t len);

#endif
