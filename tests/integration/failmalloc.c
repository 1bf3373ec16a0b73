/*
 * LD_PRELOAD shim for allocation-failure tests: with UFIO_FAILMALLOC_AT=N the
 * N-th malloc/calloc/realloc of the process fails with ENOMEM (once).
 */

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static long fail_at = -1, count;
static int resolving;
static char boot[4096]; /* dlsym may allocate before the real functions are known */
static size_t boot_used;

static void init(void)
{
    if (real_malloc || resolving)
        return;
    resolving = 1;
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    const char *e = getenv("UFIO_FAILMALLOC_AT");
    fail_at = e ? atol(e) : -1;
    resolving = 0;
}

static int should_fail(void)
{
    return fail_at > 0 && __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED) == fail_at;
}

static void *boot_alloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (boot_used + n > sizeof(boot))
        return NULL;
    void *p = boot + boot_used;
    boot_used += n;
    return p;
}

__attribute__((visibility("default"))) void *malloc(size_t n)
{
    init();
    if (!real_malloc)
        return boot_alloc(n);
    if (should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return real_malloc(n);
}

__attribute__((visibility("default"))) void *calloc(size_t a, size_t b)
{
    init();
    if (!real_calloc) {
        void *p = boot_alloc(a * b);
        if (p)
            memset(p, 0, a * b);
        return p;
    }
    if (should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return real_calloc(a, b);
}

__attribute__((visibility("default"))) void *realloc(void *p, size_t n)
{
    init();
    if (should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return real_realloc(p, n);
}

__attribute__((visibility("default"))) void free(void *p)
{
    static void (*real_free)(void *);
    if ((char *)p >= boot && (char *)p < boot + sizeof(boot))
        return;
    if (!real_free)
        real_free = dlsym(RTLD_NEXT, "free");
    real_free(p);
}

/* A crash prints its stack to stderr so the test can tell whose code it was in. */
#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

static void on_crash(int sig)
{
    void *frames[32];
    int n = backtrace(frames, 32);
    static const char hdr[] = "failmalloc: crashed, stack:\n";
    ssize_t r = write(2, hdr, sizeof(hdr) - 1);
    (void)r;
    backtrace_symbols_fd(frames, n, 2);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* With UFIO_FAILMALLOC_REPORT set, the number of allocations made is printed at exit. */
__attribute__((destructor)) static void report(void)
{
    if (!getenv("UFIO_FAILMALLOC_REPORT"))
        return;
    char line[64];
    long n = __atomic_load_n(&count, __ATOMIC_RELAXED);
    int len = 0;
    char digits[24];
    int nd = 0;
    do {
        digits[nd++] = (char)('0' + n % 10);
        n /= 10;
    } while (n && nd < 20);
    static const char pre[] = "failmalloc: allocations ";
    memcpy(line, pre, sizeof(pre) - 1);
    len = sizeof(pre) - 1;
    while (nd)
        line[len++] = digits[--nd];
    line[len++] = '\n';
    ssize_t r = write(2, line, (size_t)len);
    (void)r;
}

__attribute__((constructor)) static void install(void)
{
    void *warm[2];
    backtrace(warm, 2); /* loads the unwinder now, not inside the handler */
    signal(SIGSEGV, on_crash);
    signal(SIGABRT, on_crash);
    signal(SIGBUS, on_crash);
}
