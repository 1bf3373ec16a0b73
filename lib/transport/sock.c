/*
 * UNIX stream sockets: listen, accept, connect, pairs.
 */
#include "transport/transport.h"
#include <ufio/ufio.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/*
 * Both ends pinned to the same single CPU? Then a peer woken in poll/epoll
 * runs first and the waiter finds its answer without sleeping, while across
 * CPUs waiting in recvmsg saves a wake-up (ufio-bench's two raw ping-pong
 * rows show both). Unpinned peers count as apart: the scheduler spreads
 * them when it can. A peer in another pid namespace (pid 0) counts as apart.
 */
bool ufio_sock_peer_on_my_cpu(int fd)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 || cr.pid <= 0)
        return false;
    cpu_set_t mine, theirs;
    if (sched_getaffinity(0, sizeof(mine), &mine) || sched_getaffinity(cr.pid, sizeof(theirs), &theirs))
        return false;
    return CPU_COUNT(&mine) == 1 && CPU_EQUAL(&mine, &theirs);
}

int ufio_set_nonblock(int fd, bool on)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
    return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

static int fill_addr(struct sockaddr_un *a, const char *path)
{
    memset(a, 0, sizeof(*a));
    a->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(a->sun_path))
        return -ENAMETOOLONG;
    strcpy(a->sun_path, path);
    return 0;
}

/* Does a live server answer on path? */
static bool path_is_live(const struct sockaddr_un *a)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool live = connect(fd, (const struct sockaddr *)a, sizeof(*a)) == 0;
    close(fd);
    return live;
}

/*
 * A bigger send buffer than the default (~200 KiB): a 1 MiB migration data
 * message then crosses in one piece instead of ten sender/receiver
 * hand-offs, each a wake-up and a context switch. On the 2-CPU benchmark
 * box (scripts/bench-cross-host.sh, 1 GiB) this took the cross-host stream
 * from ~700 to ~900 MiB/s and the destination agent from 0.98 to 0.73 CPU
 * seconds per GiB. It is a limit, not an allocation; the kernel clamps it
 * to net.core.wmem_max.
 */
#define SOCK_SNDBUF (4 << 20)

static void big_sndbuf(int fd)
{
    int sb = SOCK_SNDBUF;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
}

int ufio_sock_listen(const char *path, int *out_fd)
{
    struct sockaddr_un a;
    int err = fill_addr(&a, path);
    if (err)
        return err;
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return -EEXIST;
        if (path_is_live(&a))
            return -EADDRINUSE;
        unlink(path); /* stale: its server is gone */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0) {
        err = -errno;
        close(fd);
        return err;
    }
    *out_fd = fd;
    return 0;
}

int ufio_sock_accept(int lfd, int *out_fd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            big_sndbuf(fd);
            *out_fd = fd;
            return 0;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

int ufio_sock_connect(const char *path, int timeout_ms, int *out_fd)
{
    struct sockaddr_un a;
    int err = fill_addr(&a, path);
    if (err)
        return err;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -errno;
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
            big_sndbuf(fd);
            err = ufio_set_nonblock(fd, true);
            if (err) {
                close(fd);
                return err;
            }
            *out_fd = fd;
            return 0;
        }
        err = -errno;
        close(fd);
        if (err != -ENOENT && err != -ECONNREFUSED && err != -EAGAIN)
            return err;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long el = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (timeout_ms >= 0 && el >= timeout_ms)
            return timeout_ms == 0 ? err : -ETIMEDOUT;
        usleep(10000);
    }
}

int ufio_sock_pair(int fds[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
        return -errno;
    return 0;
}

UFIO_API int ufio_mgmt_path(const char *sock_path, char *buf, size_t cap)
{
    if (!sock_path || !*sock_path)
        return -EINVAL;
    int n = snprintf(buf, cap, "%s.mgmt", sock_path);
    if (n < 0 || (size_t)n >= cap || (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return -ENAMETOOLONG;
    return 0;
}
