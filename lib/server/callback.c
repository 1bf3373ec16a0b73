#include "server/callback.h"

#include <errno.h>
#include <stdatomic.h>

#include "common/log.h"

/* errno values are small positive ints; anything past this is no errno */
#define MAX_ERRNO 4095

int dev_cb_result(const char *who, const char *what, int ret, uint32_t len)
{
    if (ret == 0 || (len && ret > 0 && (uint32_t)ret == len))
        return 0;
    if (ret < 0 && ret >= -MAX_ERRNO)
        return ret;
    /* a guest can repeat the access that trips this: the 1st, 2nd, 4th, 8th... are logged */
    static _Atomic unsigned seen;
    unsigned n = ++seen;
    if (n & (n - 1))
        return -EIO;
    if (len && ret > 0)
        UFIO_WARN(who, "%s callback returned %d for a %u-byte access: a short count is an error (EIO to the client)",
                  what, ret, len);
    else
        UFIO_WARN(who, "%s callback returned %d, neither 0 nor a negative errno (EIO to the client)", what, ret);
    return -EIO;
}
