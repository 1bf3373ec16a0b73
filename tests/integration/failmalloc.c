/*
 * LD_PRELOAD shim for failure-injection tests:
 *  - UFIO_FAILMALLOC_AT=N: the N-th malloc/calloc/realloc of the process fails
 *    with ENOMEM (once);
 *  - UFIO_FAILFD_AT=N: the N-th call that creates a file descriptor or a
 *    mapping fails (once): socket, socketpair, accept, accept4, eventfd,
 *    memfd_create, epoll_create1, open, dup, dup2, dup3, fcntl(F_DUPFD*) with
 *    EMFILE, mmap with ENOMEM (what the kernel says when out of fds / memory).
 * When a failure is injected, "failmalloc: injected <kind> #N" goes to stderr,
 * so a test knows the session it ran really took it. With
 * UFIO_FAILMALLOC_REPORT set, the counts of both kinds are printed at exit.
 */

/* both names of open, fcntl and mmap are defined below: no header redirection of one to the other */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

static void say_injected(const char *kind, long n);

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
    if (fail_at > 0 && __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED) == fail_at) {
        say_injected("allocation", fail_at);
        return 1;
    }
    return 0;
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

/* ---- calls that create fds (and mmap) ------------------------------------------------ */

static long fd_fail_at = -2, fd_count; /* -2: not read yet */

static int fd_should_fail(void)
{
    if (fd_fail_at == -2) {
        const char *e = getenv("UFIO_FAILFD_AT");
        fd_fail_at = e ? atol(e) : -1;
    }
    if (__atomic_add_fetch(&fd_count, 1, __ATOMIC_RELAXED) == fd_fail_at && fd_fail_at > 0) {
        say_injected("fd call", fd_fail_at);
        return 1;
    }
    return 0;
}

#define REAL(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))
#define FAIL_FD()                                                                                  \
    do {                                                                                           \
        if (fd_should_fail()) {                                                                    \
            errno = EMFILE;                                                                        \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

__attribute__((visibility("default"))) int socket(int domain, int type, int protocol)
{
    FAIL_FD();
    return REAL(socket)(domain, type, protocol);
}

__attribute__((visibility("default"))) int socketpair(int domain, int type, int protocol, int sv[2])
{
    FAIL_FD();
    return REAL(socketpair)(domain, type, protocol, sv);
}

__attribute__((visibility("default"))) int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    FAIL_FD();
    return REAL(accept)(fd, addr, len);
}

__attribute__((visibility("default"))) int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    FAIL_FD();
    return REAL(accept4)(fd, addr, len, flags);
}

__attribute__((visibility("default"))) int eventfd(unsigned int initval, int flags)
{
    FAIL_FD();
    return REAL(eventfd)(initval, flags);
}

__attribute__((visibility("default"))) int memfd_create(const char *name, unsigned int flags)
{
    FAIL_FD();
    return REAL(memfd_create)(name, flags);
}

__attribute__((visibility("default"))) int epoll_create1(int flags)
{
    FAIL_FD();
    return REAL(epoll_create1)(flags);
}

__attribute__((visibility("default"))) int dup(int fd)
{
    FAIL_FD();
    return REAL(dup)(fd);
}

__attribute__((visibility("default"))) int dup2(int fd, int fd2)
{
    FAIL_FD();
    return REAL(dup2)(fd, fd2);
}

__attribute__((visibility("default"))) int dup3(int fd, int fd2, int flags)
{
    FAIL_FD();
    return REAL(dup3)(fd, fd2, flags);
}

/* open, fcntl: variadic; the third argument (mode, or fcntl's arg) passes through as a word */
static int open_common(const char *sym, const char *path, int flags, va_list ap)
{
    mode_t mode = (flags & (O_CREAT | __O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
    if (fd_should_fail()) {
        errno = EMFILE;
        return -1;
    }
    int (*real)(const char *, int, ...) = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, sym);
    return real(path, flags, mode);
}

__attribute__((visibility("default"))) int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    int r = open_common("open", path, flags, ap);
    va_end(ap);
    return r;
}

__attribute__((visibility("default"))) int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    int r = open_common("open64", path, flags, ap);
    va_end(ap);
    return r;
}

static int fcntl_common(const char *sym, int fd, int cmd, va_list ap)
{
    void *arg = va_arg(ap, void *);
    if ((cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && fd_should_fail()) {
        errno = EMFILE;
        return -1;
    }
    int (*real)(int, int, ...) = (int (*)(int, int, ...))dlsym(RTLD_NEXT, sym);
    return real(fd, cmd, arg);
}

__attribute__((visibility("default"))) int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    int r = fcntl_common("fcntl", fd, cmd, ap);
    va_end(ap);
    return r;
}

__attribute__((visibility("default"))) int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    int r = fcntl_common("fcntl64", fd, cmd, ap);
    va_end(ap);
    return r;
}

static void *mmap_common(const char *sym, void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (fd_should_fail()) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    void *(*real)(void *, size_t, int, int, int, off_t) =
        (void *(*)(void *, size_t, int, int, int, off_t))dlsym(RTLD_NEXT, sym);
    return real(addr, len, prot, flags, fd, off);
}

__attribute__((visibility("default"))) void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return mmap_common("mmap", addr, len, prot, flags, fd, off);
}

__attribute__((visibility("default"))) void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
    return mmap_common("mmap64", addr, len, prot, flags, fd, off);
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

/* Writes "failmalloc: <what> <n>\n" with write(2) only: safe in destructors and while malloc fails. */
static void say(const char *what, long n)
{
    char line[96];
    size_t len = 0;
    static const char pre[] = "failmalloc: ";
    memcpy(line, pre, sizeof(pre) - 1);
    len = sizeof(pre) - 1;
    size_t wl = strlen(what);
    memcpy(line + len, what, wl);
    len += wl;
    line[len++] = ' ';
    char digits[24];
    int nd = 0;
    do {
        digits[nd++] = (char)('0' + n % 10);
        n /= 10;
    } while (n && nd < 20);
    while (nd)
        line[len++] = digits[--nd];
    line[len++] = '\n';
    ssize_t r = write(2, line, len);
    (void)r;
}

static void say_injected(const char *kind, long n)
{
    say(kind[0] == 'a' ? "injected allocation #" : "injected fd call #", n);
}

/* With UFIO_FAILMALLOC_REPORT set, the numbers of allocations and fd calls made are printed at exit. */
__attribute__((destructor)) static void report(void)
{
    if (!getenv("UFIO_FAILMALLOC_REPORT"))
        return;
    say("allocations", __atomic_load_n(&count, __ATOMIC_RELAXED));
    say("fd calls", __atomic_load_n(&fd_count, __ATOMIC_RELAXED));
}

__attribute__((constructor)) static void install(void)
{
    void *warm[2];
    backtrace(warm, 2); /* loads the unwinder now, not inside the handler */
    signal(SIGSEGV, on_crash);
    signal(SIGABRT, on_crash);
    signal(SIGBUS, on_crash);
}
