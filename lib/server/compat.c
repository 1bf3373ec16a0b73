/* The device's compatibility descriptor and the destination-side check. */
#include "server/compat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/compat.h"
#include "server/dev_internal.h"

UFIO_API int ufio_dev_set_compat(struct ufio_dev *dev, const char *json)
{
    char err[200];
    struct ufio_compat_desc d;
    if (ufio_compat_parse(json, &d, err, sizeof(err)))
        return -EINVAL;
    char *copy = strdup(json);
    if (!copy)
        return -ENOMEM;
    free(dev->compat_json);
    dev->compat_json = copy;
    return 0;
}

/* Without a registered descriptor a device is what its ids say, at version 0.0.0. */
const char *dev_compat_json(struct ufio_dev *dev)
{
    if (dev->compat_json)
        return dev->compat_json;
    const struct pci_cfg *c = &dev->cfg;
    char buf[512];
    snprintf(buf, sizeof(buf),
             "{\"device_api\":\"vfio-pci\",\"type\":\"%s\",\"software_version\":\"0.0.0\","
             "\"pci\":{\"vendor_id\":\"0x%04x\",\"device_id\":\"0x%04x\",\"subsystem_vendor_id\":\"0x%04x\","
             "\"subsystem_id\":\"0x%04x\",\"class_code\":\"0x%06x\",\"revision\":%u}}",
             dev->name, pci_cfg_get16(c, PCI_VENDOR_ID), pci_cfg_get16(c, PCI_DEVICE_ID),
             pci_cfg_get16(c, PCI_SUBSYSTEM_VENDOR_ID), pci_cfg_get16(c, PCI_SUBSYSTEM_ID),
             pci_cfg_get32(c, PCI_REVISION_ID) >> 8, c->space[PCI_REVISION_ID]);
    dev->compat_json = strdup(buf);
    return dev->compat_json ? dev->compat_json : "{}";
}

int dev_compat_check(struct ufio_dev *dev, const char *src_json, char *reason, size_t cap)
{
    struct ufio_compat_verdict v;
    char err[200];
    if (ufio_compat_check_json(src_json, dev_compat_json(dev), &v, err, sizeof(err))) {
        snprintf(reason, cap, "%s", err);
        return -EINVAL;
    }
    if (!v.compatible) {
        ufio_compat_format(&v, reason, cap);
        return -EINVAL;
    }
    return 0;
}
