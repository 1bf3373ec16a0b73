/*
 * Sessions and roles against a real ufio-sample process: the owner attached
 * and busy while observers, tools and a migration controller work through
 * the management socket; refused rights; held requests; connections that
 * stall; peers refused by uid; a controller killed mid-migration.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <ufio/client.h>
#include <ufio/migrate.h>
#include <ufio/migration.h>

#include "harness.h"

static const char *server_bin, *lspci_bin, *compat_bin;
static struct rmsg R;

/* short limits so that the stall tests do not wait long */
static const char *const quick[] = { "--handshake-timeout-ms=300", "--msg-timeout-ms=300", NULL };

#define SCRATCH 8

/* Runs a tool, returns its exit status and its stdout in out. */
static int run_tool(char *out, size_t cap, const char *const *argv)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    size_t n = 0;
    for (;;) {
        ssize_t r = read(p[0], out + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == cap - 1)
            break;
    }
    out[n] = 0;
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- the tests -------------------------------------------------------------- */

/* Owner busy; lspci, compat describe and a migration controller at the same time. */
static void test_tools_and_controller_beside_a_busy_owner(void **st)
{
    struct srv a, b;
    assert_int_equal(srv_start(&a, server_bin, NULL), 0);
    assert_int_equal(srv_start(&b, server_bin, NULL), 0);
    struct ufio_client *owner = t_connect(a.path, UFIO_ROLE_DEFAULT);
    t_w32(owner, 0, SCRATCH, 0x5e55a11e);
    static struct t_busy bz;
    t_busy_init(&bz, owner);
    t_busy_start(&bz);

    static char out[1 << 16];
    const char *lspci[] = { lspci_bin, "-xxxx", a.path, NULL };
    assert_int_equal(run_tool(out, sizeof(out), lspci), 0);
    assert_non_null(strstr(out, "00: 46 55 01 00")); /* vendor 5546 device 0001, little-endian */
    const char *describe[] = { compat_bin, "describe", a.path, NULL };
    assert_int_equal(run_tool(out, sizeof(out), describe), 0);
    assert_non_null(strstr(out, "ufio-sample"));

    /* a controller migrates A to B while the owner works on A */
    struct ufio_migrate_opts o = { .size = sizeof(o), .src_path = a.path, .dst_path = b.path, .max_downtime_ms = 300 };
    char errbuf[UFIO_MIGRATE_ERROR_MAX];
    struct ufio_migrate_result r = { .size = sizeof(r), .error = errbuf, .error_size = sizeof(errbuf) };
    assert_int_equal(ufio_migrate(&o, &r), 0);
    /* the owner's requests made during STOP_COPY were held, then answered; a write after the
     * stream was taken is refused (ENODEV), not answered with success and lost */
    double end = t_now_ms() + 5000;
    while (!atomic_load(&bz.err) && t_now_ms() < end)
        poll(NULL, 0, 1);
    assert_int_equal(t_busy_stop(&bz), -ENODEV);
    assert_true(atomic_load(&bz.rounds) > 10);
    /* read back from outside: B has A's state, every write the owner had acknowledged */
    struct ufio_client *ob = t_connect(b.path, UFIO_ROLE_OBSERVER_REQ);
    assert_int_equal(t_state(ob), UFIO_MIG_RUNNING);
    ufio_client_destroy(ob);
    struct ufio_client *ownb = t_connect(b.path, UFIO_ROLE_DEFAULT);
    assert_int_equal(t_r32(ownb, 0, SCRATCH), 0x5e55a11e);
    static uint32_t win[T_BUSY_WIN / 4];
    assert_int_equal(ufio_client_region_read(ownb, 2, T_BUSY_OFF, win, sizeof(win)), 0);
    assert_memory_equal(win, bz.shadow, sizeof(win));
    ufio_client_destroy(ownb);
    t_busy_fini(&bz);
    /* A rests in STOP after a finished migration (it must not run twice) */
    assert_int_equal(t_state(owner), UFIO_MIG_STOP);
    ufio_client_destroy(owner);
    srv_stop(&a);
    srv_stop(&b);
}

/* An observer may look; it may not touch, and the owner does not notice it. */
static void test_observer_is_read_only(void **st)
{
    struct srv a;
    assert_int_equal(srv_start(&a, server_bin, quick), 0);
    struct ufio_client *owner = t_connect(a.path, UFIO_ROLE_DEFAULT);
    t_w32(owner, 0, SCRATCH, 0x0b5e7e01);
    struct ufio_client *obs = t_connect(a.path, UFIO_ROLE_OBSERVER_REQ);
    struct ufio_client_caps caps = { .size = sizeof(caps) };
    assert_int_equal(ufio_client_get_caps(obs, &caps), 0);
    assert_false(caps.twin_socket); /* DMA requests go to the owner only */
    /* config space: the same bytes the owner reads */
    uint8_t c1[256], c2[256];
    assert_int_equal(ufio_client_region_read(owner, UFIO_PCI_CONFIG_REGION, 0, c1, sizeof(c1)), 0);
    assert_int_equal(ufio_client_region_read(obs, UFIO_PCI_CONFIG_REGION, 0, c2, sizeof(c2)), 0);
    assert_memory_equal(c1, c2, sizeof(c1));
    /* a BAR read (side effects), a config write, mmap, DMA, reset, state change: refused */
    uint32_t v = 0;
    assert_int_equal(ufio_client_region_read(obs, 0, SCRATCH, &v, 4), -EACCES);
    assert_int_equal(ufio_client_region_write(obs, UFIO_PCI_CONFIG_REGION, 4, &v, 2), -EACCES);
    void *p = NULL;
    assert_true(ufio_client_region_mmap(obs, 2, 0, 4096, &p) < 0);
    assert_int_equal(ufio_client_reset(obs), -EACCES);
    assert_int_equal(ufio_client_mig_set_state(obs, UFIO_MIG_STOP, NULL), -EACCES);
    assert_int_equal(ufio_client_dirty_log_start(obs, 4096, NULL, 0), -EACCES);
    /* but it sees the migration state and the descriptor */
    assert_int_equal(t_state(obs), UFIO_MIG_RUNNING);
    static char desc[4096];
    size_t dl = 0;
    assert_int_equal(ufio_client_feature(obs, UFIO_FEATURE_GET | UFIO_FEATURE_COMPAT_DESC, NULL, 0, desc,
                                         sizeof(desc), &dl), 0);
    assert_non_null(strstr(desc, "ufio-sample"));
    /* the session goes on after refusals, and the owner was untouched */
    assert_int_equal(ufio_client_region_read(obs, UFIO_PCI_CONFIG_REGION, 0, c2, 4), 0);
    assert_int_equal(t_r32(owner, 0, SCRATCH), 0x0b5e7e01);
    assert_int_equal(t_state(owner), UFIO_MIG_RUNNING);
    p = NULL;
    assert_int_equal(ufio_client_region_mmap(owner, 2, 0, 4096, &p), 0);
    munmap(p, 4096);
    /* a second owner on the device socket waits for the place, then EBUSY */
    struct ufio_client_opts o = { .size = sizeof(o), .timeout_ms = 3000 };
    struct ufio_client *second = NULL;
    assert_int_equal(ufio_client_connect(a.path, &o, &second), -EBUSY);
    ufio_client_destroy(obs);
    ufio_client_destroy(owner);
    srv_stop(&a);
}

/* The owner's migration requests while a controller holds the migration: EBUSY. */
static void test_owner_busy_while_controller_migrates(void **st)
{
    struct srv a;
    assert_int_equal(srv_start(&a, server_bin, quick), 0);
    struct ufio_client *owner = t_connect(a.path, UFIO_ROLE_DEFAULT);
    struct ufio_client *ctl = t_connect(a.path, UFIO_ROLE_CONTROLLER_REQ);
    assert_int_equal(ufio_client_mig_set_state(ctl, UFIO_MIG_PRE_COPY, NULL), 0);
    assert_int_equal(ufio_client_mig_set_state(owner, UFIO_MIG_RUNNING, NULL), -EBUSY);
    uint8_t buf[64];
    size_t got = 0;
    assert_int_equal(ufio_client_mig_data_read(owner, buf, sizeof(buf), &got), -EBUSY);
    assert_int_equal(ufio_client_dirty_log_start(owner, 4096, NULL, 0), -EBUSY);
    /* PRE_COPY runs: the owner's accesses are answered at once */
    t_w32(owner, 0, SCRATCH, 7);
    assert_int_equal(t_r32(owner, 0, SCRATCH), 7);
    /* a second controller waits for the place, then EBUSY */
    struct ufio_client_opts o = { .size = sizeof(o), .role = UFIO_ROLE_CONTROLLER_REQ, .timeout_ms = 3000 };
    struct ufio_client *second = NULL;
    assert_int_equal(ufio_client_connect(a.path, &o, &second), -EBUSY);
    assert_int_equal(ufio_client_mig_set_state(ctl, UFIO_MIG_RUNNING, NULL), 0);
    /* released: the owner may migrate itself again */
    assert_int_equal(ufio_client_mig_set_state(owner, UFIO_MIG_PRE_COPY, NULL), 0);
    assert_int_equal(ufio_client_mig_set_state(ctl, UFIO_MIG_STOP, NULL), -EBUSY);
    assert_int_equal(ufio_client_mig_set_state(owner, UFIO_MIG_RUNNING, NULL), 0);
    ufio_client_destroy(ctl);
    ufio_client_destroy(owner);
    srv_stop(&a);
}

static size_t mk_rw(uint8_t *buf, uint16_t id, bool write, uint32_t off, uint32_t val)
{
    uint8_t p[20];
    put64(p, off);
    put32(p + 8, 0); /* BAR0 */
    put32(p + 12, 4);
    put32(p + 16, val);
    return mk(buf, id, write ? 10 : 9, 0, p, write ? 20 : 16);
}

/* The owner's requests while a controller has the device stopped: held, then answered in order. */
static void test_held_requests_answered_in_order(void **st)
{
    struct srv a;
    assert_int_equal(srv_start(&a, server_bin, NULL), 0);
    int fd = raw_connect(a.path);
    assert_true(fd >= 0);
    assert_int_equal(raw_version(fd, "{\"capabilities\":{}}", &R), 0);
    struct ufio_client *ctl = t_connect(a.path, UFIO_ROLE_CONTROLLER_REQ);
    assert_int_equal(ufio_client_mig_set_state(ctl, UFIO_MIG_STOP, NULL), 0);
    /* four requests back to back: write 1, read, write 2, read */
    uint8_t b[256];
    size_t n = 0;
    n += mk_rw(b + n, 11, true, SCRATCH, 1);
    n += mk_rw(b + n, 12, false, SCRATCH, 0);
    n += mk_rw(b + n, 13, true, SCRATCH, 2);
    n += mk_rw(b + n, 14, false, SCRATCH, 0);
    assert_int_equal(raw_send(fd, b, n, NULL, 0), 0);
    /* the controller is served meanwhile (the held owner blocks nobody) */
    for (int i = 0; i < 20; i++)
        assert_int_equal(t_state(ctl), UFIO_MIG_STOP);
    /* nothing for the owner while stopped (a negative check: bounded wait) */
    assert_int_equal(raw_recv(fd, &R, 200), -ETIMEDOUT);
    assert_int_equal(ufio_client_mig_set_state(ctl, UFIO_MIG_RUNNING, NULL), 0);
    uint32_t want_read[] = { 1, 2 };
    for (int i = 0; i < 4; i++) {
        assert_int_equal(raw_recv(fd, &R, 3000), 0);
        assert_int_equal(R.id, 11 + i);
        assert_int_equal(R.flags & 0x20, 0);
        if (i % 2 == 1) {
            assert_int_equal(R.len, 20);
            assert_int_equal(get32(R.payload + 16), want_read[i / 2]);
        }
    }
    ufio_client_destroy(ctl);
    close(fd);
    srv_stop(&a);
}

/* Held while a controller takes the stream, and the controller finishes (STOP_COPY -> STOP,
 * gone): the device lives elsewhere. A write answered with success now would be lost, so
 * the held writes are refused (ENODEV), in order; the reads between them are answered with
 * the state that was sent. */
static void test_held_writes_refused_after_migration_away(void **st)
{
    struct srv a;
    assert_int_equal(srv_start(&a, server_bin, NULL), 0);
    int fd = raw_connect(a.path);
    assert_true(fd >= 0);
    assert_int_equal(raw_version(fd, "{\"capabilities\":{}}", &R), 0);
    uint8_t b[256];
    size_t n = mk_rw(b, 10, true, SCRATCH, 0x5ca1ab1e);
    assert_int_equal(raw_send(fd, b, n, NULL, 0), 0);
    assert_int_equal(raw_recv(fd, &R, 3000), 0);
    assert_int_equal(R.flags & 0x20, 0);
    struct ufio_client *ctl = t_connect(a.path, UFIO_ROLE_CONTROLLER_REQ);
    assert_int_equal(ufio_client_mig_set_state(ctl, UFIO_MIG_STOP_COPY, NULL), 0);
    static uint8_t buf[1 << 20];
    size_t got;
    do
        assert_int_equal(ufio_client_mig_data_read(ctl, buf, sizeof(buf), &got), 0);
    while (got == sizeof(buf));
    n = 0;
    n += mk_rw(b + n, 11, true, SCRATCH, 1);
    n += mk_rw(b + n, 12, false, SCRATCH, 0);
    n += mk_rw(b + n, 13, true, SCRATCH, 2);
    n += mk_rw(b + n, 14, false, SCRATCH, 0);
    assert_int_equal(raw_send(fd, b, n, NULL, 0), 0);
    /* nothing for the owner while stopped (a negative check: bounded wait) */
    assert_int_equal(raw_recv(fd, &R, 200), -ETIMEDOUT);
    assert_int_equal(ufio_client_mig_set_state(ctl, UFIO_MIG_STOP, NULL), 0);
    assert_int_equal(raw_recv(fd, &R, 200), -ETIMEDOUT);
    ufio_client_destroy(ctl);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(raw_recv(fd, &R, 3000), 0);
        assert_int_equal(R.id, 11 + i);
        if (i % 2 == 0) {
            assert_int_equal(R.flags & 0x20, 0x20);
            assert_int_equal(R.err, ENODEV);
        } else {
            assert_int_equal(R.flags & 0x20, 0);
            assert_int_equal(R.len, 20);
            assert_int_equal(get32(R.payload + 16), 0x5ca1ab1e);
        }
    }
    /* it rests stopped, and the owner leaving does not run it */
    close(fd);
    struct ufio_client *owner = t_connect(a.path, UFIO_ROLE_DEFAULT); /* waits for the old owner to go */
    assert_int_equal(t_state(owner), UFIO_MIG_STOP);
    assert_int_equal(t_r32(owner, 0, SCRATCH), 0x5ca1ab1e);
    ufio_client_destroy(owner);
    srv_stop(&a);
}

/* An owner that hangs up while its request is held frees the owner's place. */
static void test_held_owner_hangs_up(void **st)
{
    struct srv a;
    assert_int_equal(srv_start(&a, server_bin, quick), 0);
    int fd = raw_connect(a.path);
    assert_true(fd >= 0);
    assert_int_equal(raw_version(fd, "{\"capabilities\":{}}", &R), 0);
    struct ufio_client *ctl = t_connect(a.path, UFIO_ROLE_CONTROLLER_REQ);
    assert_int_equal(ufio_client_mig_set_state(ctl, UFIO_MIG_STOP, NULL), 0);
    uint8_t b[128]; /* two requests: 36 + 32 bytes */
    size_t n = mk_rw(b, 21, false, SCRATCH, 0);
    assert_int_equal(raw_send(fd, b, n, NULL, 0), 0);
    assert_int_equal(t_state(ctl), UFIO_MIG_STOP); /* served while the owner is held */
    close(fd);
    /* the next owner gets in (a place still taken would make it wait, then EBUSY);
     * raw, since a client's first config read would be held while stopped */
    int fd2 = raw_connect(a.path);
    assert_true(fd2 >= 0);
    assert_int_equal(raw_version(fd2, "{\"capabilities\":{}}", &R), 0);
    assert_int_equal(ufio_client_mig_set_state(ctl, UFIO_MIG_RUNNING, NULL), 0);
    n = mk_rw(b, 22, true, SCRATCH, 5);
    n += mk_rw(b + n, 23, false, SCRATCH, 0);
    assert_int_equal(raw_send(fd2, b, n, NULL, 0), 0);
    assert_int_equal(raw_recv(fd2, &R, 3000), 0);
    assert_int_equal(R.id, 22);
    assert_int_equal(raw_recv(fd2, &R, 3000), 0);
    assert_int_equal(R.id, 23);
    assert_int_equal(get32(R.payload + 16), 5);
    close(fd2);
    ufio_client_destroy(ctl);
    srv_stop(&a);
}

/* A connection that never sends VERSION, and one that stops mid-message, are closed; others are served. */
static void test_stalled_connections_dropped(void **st)
{
    struct srv a;
    assert_int_equal(srv_start(&a, server_bin, quick), 0);
    int silent = raw_connect(a.path);
    int half = raw_connect(a.path);
    assert_true(silent >= 0 && half >= 0);
    /* half: negotiates as an observer on the device socket, then half a REGION_READ */
    assert_int_equal(raw_version(half, "{\"capabilities\":{\"ufio_role\":\"observer\"}}", &R), 0);
    uint8_t b[64];
    size_t n = mk_rw(b, 5, false, 0, 0);
    assert_int_equal(raw_send(half, b, n - 7, NULL, 0), 0);
    double t0 = t_now_ms();
    /* meanwhile the owner is served */
    struct ufio_client *owner = t_connect(a.path, UFIO_ROLE_DEFAULT);
    for (int i = 0; i < 50; i++) {
        t_w32(owner, 0, SCRATCH, (uint32_t)i);
        assert_int_equal(t_r32(owner, 0, SCRATCH), (uint32_t)i);
    }
    /* both are closed by the server once the limit passed (EOF), and not long after */
    assert_int_equal(raw_recv(silent, &R, 3000), -ECONNRESET);
    assert_int_equal(raw_recv(half, &R, 3000), -ECONNRESET);
    double took = t_now_ms() - t0;
    assert_true(took >= 250 && took < 3000);
    assert_int_equal(t_r32(owner, 0, SCRATCH), 49u);
    ufio_client_destroy(owner);
    close(silent);
    close(half);
    srv_stop(&a);
}

/* A peer whose uid is not on the list is refused; --allow-uid lets it in. */
static int child_connects(const char *path, uid_t uid)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(uid) || setuid(uid))
            _exit(10);
        int fd = raw_connect(path);
        if (fd < 0)
            _exit(11);
        static struct rmsg m;
        int err = raw_version(fd, "{\"capabilities\":{\"ufio_role\":\"observer\"}}", &m);
        _exit(err == 0 ? 0 : err == -ECONNRESET || err == -EPIPE ? 1 : 12);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_uid_allow_list(void **st)
{
    if (geteuid() != 0) {
        skip();
        return;
    }
    struct srv a, b;
    const char *const allow[] = { "--allow-uid=65533", NULL };
    assert_int_equal(srv_start(&a, server_bin, NULL), 0);
    assert_int_equal(srv_start(&b, server_bin, allow), 0);
    chmod(a.path, 0777);
    chmod(b.path, 0777);
    assert_int_equal(child_connects(a.path, 65533), 1); /* accepted, then closed */
    assert_int_equal(child_connects(b.path, 65533), 0);
    assert_int_equal(child_connects(b.path, 65532), 1);
    /* the management socket is 0600: another uid cannot even connect */
    char mp[128];
    snprintf(mp, sizeof(mp), "%s.mgmt", b.path);
    struct stat sb;
    assert_int_equal(stat(mp, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(child_connects(mp, 65533), 11);
    /* the server goes on */
    struct ufio_client *owner = t_connect(a.path, UFIO_ROLE_DEFAULT);
    t_w32(owner, 0, SCRATCH, 3);
    ufio_client_destroy(owner);
    srv_stop(&a);
    srv_stop(&b);
}

/* A controller killed mid-PRE_COPY or mid-STOP_COPY: the device runs again with its state. */
static void kill_controller_in(unsigned target)
{
    struct srv a;
    assert_int_equal(srv_start(&a, server_bin, NULL), 0);
    struct ufio_client *owner = t_connect(a.path, UFIO_ROLE_DEFAULT);
    t_w32(owner, 0, SCRATCH, 0xdeadbee0 + target);
    uint8_t ram[4096], back[4096];
    for (size_t i = 0; i < sizeof(ram); i++)
        ram[i] = (uint8_t)(i * 13 + target);
    assert_int_equal(ufio_client_region_write(owner, 2, 0, ram, sizeof(ram)), 0);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    if (pid == 0) {
        struct ufio_client_opts o = { .size = sizeof(o), .role = UFIO_ROLE_CONTROLLER_REQ };
        struct ufio_client *c;
        if (ufio_client_connect(a.path, &o, &c) || ufio_client_mig_set_state(c, target, NULL))
            _exit(1);
        uint8_t buf[4096];
        size_t got;
        if (ufio_client_mig_data_read(c, buf, sizeof(buf), &got))
            _exit(2);
        if (write(ready[1], "k", 1) != 1)
            _exit(3);
        pause();
        _exit(0);
    }
    t_child_add(pid);
    close(ready[1]);
    char k = 0;
    assert_int_equal(read(ready[0], &k, 1), 1);
    close(ready[0]);
    struct ufio_client *obs = t_connect(a.path, UFIO_ROLE_OBSERVER_REQ);
    assert_int_equal(t_state(obs), target);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    t_child_forget(pid);
    /* the server sees the controller go: wait for RUNNING with a deadline */
    assert_int_equal(t_wait_state(obs, UFIO_MIG_RUNNING, 3000), UFIO_MIG_RUNNING);
    /* state intact, read from outside by the owner (which was held, if STOP_COPY, and now runs) */
    assert_int_equal(t_r32(owner, 0, SCRATCH), 0xdeadbee0 + target);
    assert_int_equal(ufio_client_region_read(owner, 2, 0, back, sizeof(back)), 0);
    assert_memory_equal(ram, back, sizeof(ram));
    /* and the next controller can migrate it again */
    struct ufio_client *ctl = t_connect(a.path, UFIO_ROLE_CONTROLLER_REQ);
    assert_int_equal(ufio_client_mig_set_state(ctl, UFIO_MIG_PRE_COPY, NULL), 0);
    assert_int_equal(ufio_client_mig_set_state(ctl, UFIO_MIG_RUNNING, NULL), 0);
    ufio_client_destroy(ctl);
    ufio_client_destroy(obs);
    ufio_client_destroy(owner);
    srv_stop(&a);
}

static void test_controller_killed_in_precopy(void **st) { kill_controller_in(UFIO_MIG_PRE_COPY); }
static void test_controller_killed_in_stop_copy(void **st) { kill_controller_in(UFIO_MIG_STOP_COPY); }

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s SAMPLE LSPCI COMPAT\n", argv[0]);
        return 2;
    }
    server_bin = argv[1];
    lspci_bin = argv[2];
    compat_bin = argv[3];
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        T_TEST(test_tools_and_controller_beside_a_busy_owner),
        T_TEST(test_observer_is_read_only),
        T_TEST(test_owner_busy_while_controller_migrates),
        T_TEST(test_held_requests_answered_in_order),
        T_TEST(test_held_writes_refused_after_migration_away),
        T_TEST(test_held_owner_hangs_up),
        T_TEST(test_stalled_connections_dropped),
        T_TEST(test_uid_allow_list),
        T_TEST(test_controller_killed_in_precopy),
        T_TEST(test_controller_killed_in_stop_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
