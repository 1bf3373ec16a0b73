#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- children to kill when a test fails ---------------------------------------- */

#define T_MAX_CHILDREN 64
static struct { pid_t pid; unsigned gen; } children[T_MAX_CHILDREN];
static unsigned gen, mark; /* children of a group setup predate every test's mark */

static void kill_from(unsigned from)
{
    for (int i = 0; i < T_MAX_CHILDREN; i++) {
        pid_t pid = children[i].pid;
        if (!pid || children[i].gen < from)
            continue;
        children[i].pid = 0;
        /* still ours and not reaped: a reaped pid may belong to someone else now */
        if (waitpid(pid, NULL, WNOHANG) == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
    }
}

static void kill_at_exit(void)
{
    kill_from(0);
}

void t_child_add(pid_t pid)
{
    static bool hooked;
    if (!hooked) {
        atexit(kill_at_exit);
        hooked = true;
    }
    for (int i = 0; i < T_MAX_CHILDREN; i++)
        if (!children[i].pid) {
            children[i].pid = pid;
            children[i].gen = gen;
            return;
        }
}

void t_child_forget(pid_t pid)
{
    for (int i = 0; i < T_MAX_CHILDREN; i++)
        if (children[i].pid == pid)
            children[i].pid = 0;
}

int t_mark_children(void **state)
{
    (void)state;
    mark = ++gen;
    return 0;
}

int t_kill_children(void **state)
{
    (void)state;
    kill_from(mark);
    return 0;
}

int srv_start(struct srv *s, const char *bin, const char *const *extra)
{
    static unsigned seq;
    char path[108];
    snprintf(path, sizeof(path), "/tmp/ufio-test-%d-%u.sock", getpid(), seq++);
    return srv_start_at(s, bin, path, extra);
}

int srv_start_at(struct srv *s, const char *bin, const char *path, const char *const *extra)
{
    snprintf(s->path, sizeof(s->path), "%s", path);
    unlink(s->path);
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -errno;
    char sockarg[160];
    snprintf(sockarg, sizeof(sockarg), "--socket-path=%s", s->path);
    const char *argv[16] = { bin, sockarg };
    int argc = 2;
    for (int i = 0; extra && extra[i] && argc < 15; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        dup2(pipefd[1], 1);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    t_child_add(pid);
    s->pid = pid;
    s->out_fd = pipefd[0];
    /* wait for the "listening on" line */
    char buf[512];
    size_t got = 0;
    for (;;) {
        struct pollfd p = { .fd = s->out_fd, .events = POLLIN };
        if (poll(&p, 1, 5000) <= 0)
            return -ETIMEDOUT;
        ssize_t n = read(s->out_fd, buf + got, sizeof(buf) - 1 - got);
        if (n <= 0)
            return -ECHILD;
        got += (size_t)n;
        buf[got] = 0;
        if (strstr(buf, "listening on"))
            return 0;
    }
}

bool srv_alive(const struct srv *s)
{
    return s->pid > 0 && waitpid(s->pid, NULL, WNOHANG) == 0;
}

int srv_stop(struct srv *s)
{
    if (s->pid <= 0)
        return -1;
    /* a pidfd becomes readable when the process exits: wait on that, with a deadline (under
     * valgrind, which does not know pidfd_open, ask waitpid until the same deadline) */
    int pfd = (int)syscall(SYS_pidfd_open, s->pid, 0);
    kill(s->pid, SIGTERM);
    int st = 0;
    bool gone = false;
    if (pfd >= 0) {
        struct pollfd p = { .fd = pfd, .events = POLLIN };
        gone = poll(&p, 1, 5000) == 1 && waitpid(s->pid, &st, 0) == s->pid;
        close(pfd);
    } else {
        for (int i = 0; i < 500 && !gone; i++) {
            gone = waitpid(s->pid, &st, WNOHANG) == s->pid;
            if (!gone)
                poll(NULL, 0, 10);
        }
    }
    t_child_forget(s->pid);
    if (!gone) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &st, 0);
        s->pid = 0;
        close(s->out_fd);
        return -1;
    }
    s->pid = 0;
    close(s->out_fd);
    struct stat sb;
    char mgmt[128];
    snprintf(mgmt, sizeof(mgmt), "%s.mgmt", s->path);
    bool left = stat(s->path, &sb) == 0 || stat(mgmt, &sb) == 0;
    if (WIFSIGNALED(st) || left) {
        unlink(s->path); /* a killed server leaves its files: not the next test's problem */
        unlink(mgmt);
    }
    if (left && !WIFSIGNALED(st))
        return -2; /* socket file left behind */
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void srv_kill(struct srv *s)
{
    if (s->pid <= 0)
        return;
    t_child_forget(s->pid);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
    close(s->out_fd);
    char mgmt[128];
    snprintf(mgmt, sizeof(mgmt), "%s.mgmt", s->path);
    unlink(s->path);
    unlink(mgmt);
}

int srv_fd_count(const struct srv *s)
{
    char p[64];
    snprintf(p, sizeof(p), "/proc/%d/fd", s->pid);
    DIR *d = opendir(p);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

int srv_wait_fd_count(const struct srv *s, int want)
{
    int n = srv_fd_count(s);
    for (int i = 0; i < 200 && n != want; i++) {
        usleep(10000);
        n = srv_fd_count(s);
    }
    return n;
}

int raw_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

int raw_send(int fd, const void *buf, size_t len, const int *fds, int nfds)
{
    const uint8_t *p = buf;
    bool first = true;
    while (len) {
        struct iovec iov = { (void *)p, len };
        union {
            char b[CMSG_SPACE(sizeof(int) * 64)];
            struct cmsghdr align;
        } cm;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (first && nfds > 0) {
            memset(cm.b, 0, sizeof(cm.b));
            mh.msg_control = cm.b;
            mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
            struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
            memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
        }
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        first = false;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int read_exact(int fd, void *buf, size_t len, int *fds, int *nfds, int timeout_ms)
{
    uint8_t *p = buf;
    while (len) {
        struct pollfd pf = { .fd = fd, .events = POLLIN };
        int r = poll(&pf, 1, timeout_ms);
        if (r == 0)
            return -ETIMEDOUT;
        if (r < 0)
            return -errno;
        struct iovec iov = { p, len };
        union {
            char b[CMSG_SPACE(sizeof(int) * 16)];
            struct cmsghdr align;
        } cm;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
                             .msg_controllen = sizeof(cm.b) };
        ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
        if (n == 0)
            return -ECONNRESET;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                for (int i = 0; i < k; i++) {
                    int f;
                    memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                    if (fds && *nfds < 16)
                        fds[(*nfds)++] = f;
                    else
                        close(f);
                }
            }
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int raw_recv(int fd, struct rmsg *m, int timeout_ms)
{
    uint8_t h[16];
    m->nfds = 0;
    int err = read_exact(fd, h, 16, m->fds, &m->nfds, timeout_ms);
    if (err)
        return err;
    m->id = get16(h);
    m->cmd = get16(h + 2);
    m->size = get32(h + 4);
    m->flags = get32(h + 8);
    m->err = get32(h + 12);
    if (m->size < 16 || m->size - 16 > sizeof(m->payload))
        return -EPROTO;
    m->len = m->size - 16;
    return read_exact(fd, m->payload, m->len, m->fds, &m->nfds, timeout_ms);
}

size_t mk_size(uint8_t *buf, uint16_t id, uint16_t cmd, uint32_t flags, uint32_t msg_size,
               const void *payload, size_t plen)
{
    put16(buf, id);
    put16(buf + 2, cmd);
    put32(buf + 4, msg_size);
    put32(buf + 8, flags);
    put32(buf + 12, 0);
    if (plen)
        memcpy(buf + 16, payload, plen);
    return 16 + plen;
}

size_t mk(uint8_t *buf, uint16_t id, uint16_t cmd, uint32_t flags, const void *payload, size_t plen)
{
    return mk_size(buf, id, cmd, flags, (uint32_t)(16 + plen), payload, plen);
}

int xfer(int fd, uint16_t id, uint16_t cmd, const void *payload, size_t plen,
         const int *fds, int nfds, struct rmsg *reply)
{
    uint8_t *buf = malloc(16 + plen);
    if (!buf)
        return -ENOMEM;
    size_t n = mk(buf, id, cmd, 0, payload, plen);
    int err = raw_send(fd, buf, n, fds, nfds);
    free(buf);
    if (err)
        return err;
    return raw_recv(fd, reply, 5000);
}

int raw_version(int fd, const char *json, struct rmsg *reply)
{
    uint8_t p[1024];
    put16(p, 0);
    put16(p + 2, 0);
    size_t len = 4;
    if (json) {
        size_t j = strlen(json) + 1;
        memcpy(p + 4, json, j);
        len += j;
    }
    int err = xfer(fd, 1, 1, p, len, NULL, 0, reply);
    if (err)
        return err;
    if (reply->flags & 0x20)
        return -(int)reply->err;
    return 0;
}

