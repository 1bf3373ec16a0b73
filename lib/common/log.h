/* Internal logging: every line names its object (device or client). */
#ifndef UFIO_COMMON_LOG_H
#define UFIO_COMMON_LOG_H

#include <ufio/ufio.h>

void ufio_log(enum ufio_log_level level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool ufio_log_enabled(enum ufio_log_level level);

#define UFIO_ERR(who, ...) ufio_log(UFIO_LOG_ERR, who, __VA_ARGS__)
#define UFIO_WARN(who, ...) ufio_log(UFIO_LOG_WARN, who, __VA_ARGS__)
#define UFIO_INFO(who, ...) ufio_log(UFIO_LOG_INFO, who, __VA_ARGS__)
#define UFIO_DBG(who, ...) \
    do { if (ufio_log_enabled(UFIO_LOG_DEBUG)) ufio_log(UFIO_LOG_DEBUG, who, __VA_ARGS__); } while (0)

#endif
