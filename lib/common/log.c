#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static ufio_log_fn log_fn;
static void *log_opaque;
static enum ufio_log_level log_max = UFIO_LOG_WARN;
static int log_env_checked;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

UFIO_API void ufio_set_log(ufio_log_fn fn, void *opaque, enum ufio_log_level max_level)
{
    pthread_mutex_lock(&log_lock);
    log_fn = fn;
    log_opaque = opaque;
    log_max = max_level;
    log_env_checked = 1; /* an explicit setting beats UFIO_LOG */
    pthread_mutex_unlock(&log_lock);
}

/* UFIO_LOG=debug|info|warn|error raises the default sink's level without code changes. */
static void check_env(void)
{
    if (log_env_checked)
        return;
    log_env_checked = 1;
    const char *e = getenv("UFIO_LOG");
    if (!e)
        return;
    for (int i = 0; i <= UFIO_LOG_DEBUG; i++)
        if (!strcmp(e, level_names[i]))
            log_max = (enum ufio_log_level)i;
}

bool ufio_log_enabled(enum ufio_log_level level)
{
    check_env();
    return level <= log_max;
}

void ufio_log(enum ufio_log_level level, const char *who, const char *fmt, ...)
{
    if (!ufio_log_enabled(level))
        return;
    char msg[512];
    int n = snprintf(msg, sizeof(msg), "%s: ", who ? who : "ufio");
    if (n < 0 || (size_t)n >= sizeof(msg))
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_lock);
    ufio_log_fn fn = log_fn;
    void *op = log_opaque;
    pthread_mutex_unlock(&log_lock);
    if (fn)
        fn(op, level, msg);
    else
        fprintf(stderr, "ufio %s: %s\n", level_names[level], msg);
}
