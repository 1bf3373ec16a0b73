/* ufio_version(): the version of the library that is actually loaded. */
#include <ufio/ufio.h>

UFIO_API unsigned ufio_version(void) { return UFIO_VERSION; }
UFIO_API const char *ufio_version_string(void) { return UFIO_VERSION_STRING; }
