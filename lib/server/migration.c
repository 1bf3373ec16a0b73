/*
 * DEVICE_FEATURE and migration data for the device side.
 * (Placeholder until migration v2 lands: every feature is unsupported.)
 */
#include "server/dev_internal.h"

#include <errno.h>

int dev_feature(struct ufio_dev *dev, const struct ufio_feature *f, struct ufio_reply *rep)
{
    return -ENOTSUP;
}

int dev_mig_data_read(struct ufio_dev *dev, const struct ufio_mig_data *req, struct ufio_reply *rep)
{
    return -EINVAL;
}

int dev_mig_data_write(struct ufio_dev *dev, const struct ufio_mig_data *req)
{
    return -EINVAL;
}

void dev_mig_reset(struct ufio_dev *dev) {}
void dev_mig_free(struct ufio_dev *dev) {}
