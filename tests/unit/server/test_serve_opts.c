/*
 * The shared server options (include/ufio/serve_opts.h): what each option
 * accepts, which combinations are usage errors, and that ufio_serve_start()
 * serves a device the way the options say (socket and management socket on
 * disk, an attached fd, the limits set on the device).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <ufio/serve_opts.h>
#include <ufio/server.h>

static const char *P = "test_serve_opts";

static struct ufio_serve_opts *opts(void)
{
    struct ufio_serve_opts *o = ufio_serve_opts_new();
    assert_non_null(o);
    return o;
}

static struct ufio_dev *device(void)
{
    static const struct ufio_pci_ids ids = { .vendor_id = 0x5546, .device_id = 0x00ff };
    const struct ufio_dev_ops ops = { .size = sizeof(ops) };
    struct ufio_dev *dev = NULL;
    assert_int_equal(ufio_dev_create("serve-opts", &ids, &ops, NULL, &dev), 0);
    return dev;
}

static void test_values(void **st)
{
    (void)st;
    struct ufio_serve_opts *o = opts();
    assert_int_equal(ufio_serve_opt(o, 'x', NULL, P), 0); /* the program's own */
    assert_int_equal(ufio_serve_opt(o, UFIO_SERVE_OPT_FD, "7", P), 1);
    assert_int_equal(ufio_serve_fd(o), 7);
    static const struct { int opt; const char *arg; } bad[] = {
        { UFIO_SERVE_OPT_FD, "" },           { UFIO_SERVE_OPT_FD, "-1" },
        { UFIO_SERVE_OPT_FD, "3x" },         { UFIO_SERVE_OPT_FD, "65536" },
        { UFIO_SERVE_OPT_POLL_US, "100001" }, { UFIO_SERVE_OPT_POLL_US, "abc" },
        { UFIO_SERVE_OPT_SOCKET, "" },       { UFIO_SERVE_OPT_ALLOW_UID, "root" },
        { UFIO_SERVE_OPT_HANDSHAKE, "-5" },  { UFIO_SERVE_OPT_TAKEOVER, "" },
        { UFIO_SERVE_OPT_MGMT, "" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ufio_serve_opt(o, bad[i].opt, bad[i].arg, P), -EINVAL);
    assert_int_equal(ufio_serve_fd(o), 7); /* a refused value changes nothing */
    assert_int_equal(ufio_serve_opt(o, UFIO_SERVE_OPT_POLL_US, "100000", P), 1);
    ufio_serve_opts_free(o);
    ufio_serve_opts_free(NULL);
}

static void test_combinations(void **st)
{
    (void)st;
    struct ufio_serve_opts *o = opts();
    assert_int_equal(ufio_serve_check(o, NULL, P), -EINVAL); /* nothing to serve */
    assert_int_equal(ufio_serve_check(o, "/tmp/default.sock", P), 0);
    assert_string_equal(ufio_serve_socket(o), "/tmp/default.sock");
    ufio_serve_opts_free(o);

    o = opts();
    assert_int_equal(ufio_serve_opt(o, UFIO_SERVE_OPT_FD, "5", P), 1);
    assert_int_equal(ufio_serve_check(o, "/tmp/default.sock", P), 0);
    assert_null(ufio_serve_socket(o)); /* serving the fd, not the default */
    assert_int_equal(ufio_serve_opt(o, UFIO_SERVE_OPT_SOCKET, "/tmp/a.sock", P), 1);
    assert_int_equal(ufio_serve_check(o, NULL, P), -EINVAL);
    ufio_serve_opts_free(o);

    o = opts();
    assert_int_equal(ufio_serve_opt(o, UFIO_SERVE_OPT_FD, "5", P), 1);
    assert_int_equal(ufio_serve_opt(o, UFIO_SERVE_OPT_TAKEOVER, "/tmp/old.sock", P), 1);
    assert_int_equal(ufio_serve_check(o, NULL, P), -EINVAL);
    ufio_serve_opts_free(o);

    /* a takeover serves the old process's path; naming another is a mistake */
    o = opts();
    assert_int_equal(ufio_serve_opt(o, UFIO_SERVE_OPT_TAKEOVER, "/tmp/old.sock", P), 1);
    assert_int_equal(ufio_serve_check(o, "/tmp/default.sock", P), 0);
    assert_string_equal(ufio_serve_socket(o), "/tmp/old.sock");
    assert_string_equal(ufio_serve_takeover(o), "/tmp/old.sock");
    assert_int_equal(ufio_serve_opt(o, UFIO_SERVE_OPT_SOCKET, "/tmp/other.sock", P), 1);
    assert_int_equal(ufio_serve_check(o, NULL, P), -EINVAL);
    ufio_serve_opts_free(o);
}

static void test_start_listening(void **st)
{
    (void)st;
    char dir[] = "/tmp/ufio-serve-opts-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sock[128], mgmt[160];
    snprintf(sock, sizeof(sock), "%s/dev.sock", dir);
    snprintf(mgmt, sizeof(mgmt), "%s.mgmt", sock);

    struct ufio_serve_opts *o = opts();
    assert_int_equal(ufio_serve_opt(o, UFIO_SERVE_OPT_SOCKET, sock, P), 1);
    assert_int_equal(ufio_serve_opt(o, UFIO_SERVE_OPT_MSG_TIMEOUT, "1234", P), 1);
    assert_int_equal(ufio_serve_opt(o, UFIO_SERVE_OPT_POLL_US, "20", P), 1);
    struct ufio_dev *dev = device();
    assert_int_equal(ufio_serve_start(dev, o, "/nonexistent/default.sock", P), 0);
    struct stat sb;
    assert_int_equal(stat(sock, &sb), 0);
    assert_true(S_ISSOCK(sb.st_mode));
    assert_int_equal(stat(mgmt, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_string_equal(ufio_dev_mgmt_socket(dev), mgmt);
    struct ufio_dev_limits l = { .size = sizeof(l) };
    assert_int_equal(ufio_dev_get_limits(dev, &l), 0);
    assert_int_equal(l.msg_timeout_ms, 1234);
    ufio_dev_destroy(dev);
    ufio_serve_opts_free(o);
    unlink(sock);
    unlink(mgmt);

    /* --mgmt-socket=none: the device socket only */
    o = opts();
    assert_int_equal(ufio_serve_opt(o, UFIO_SERVE_OPT_MGMT, "none", P), 1);
    dev = device();
    assert_int_equal(ufio_serve_start(dev, o, sock, P), 0);
    assert_int_equal(stat(sock, &sb), 0);
    assert_int_equal(stat(mgmt, &sb), -1);
    assert_null(ufio_dev_mgmt_socket(dev));
    ufio_dev_destroy(dev);
    ufio_serve_opts_free(o);
    unlink(sock);

    /* a path that cannot be bound: the step's errno, nothing left behind */
    o = opts();
    snprintf(sock, sizeof(sock), "%s/no/such/dir.sock", dir);
    dev = device();
    int err = ufio_serve_start(dev, o, sock, P);
    assert_true(err < 0);
    assert_int_not_equal(err, -EINVAL);
    ufio_dev_destroy(dev);
    ufio_serve_opts_free(o);
    assert_int_equal(rmdir(dir), 0); /* empty: no socket files left */
}

static void test_start_fd(void **st)
{
    (void)st;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    char arg[16];
    snprintf(arg, sizeof(arg), "%d", sv[0]);
    struct ufio_serve_opts *o = opts();
    assert_int_equal(ufio_serve_opt(o, UFIO_SERVE_OPT_FD, arg, P), 1);
    struct ufio_dev *dev = device();
    assert_int_equal(ufio_serve_start(dev, o, "/tmp/ufio-serve-opts-unused.sock", P), 0);
    assert_null(ufio_serve_socket(o));
    assert_null(ufio_dev_mgmt_socket(dev)); /* no management socket beside an fd */
    assert_int_equal(access("/tmp/ufio-serve-opts-unused.sock", F_OK), -1);
    ufio_dev_destroy(dev);
    ufio_serve_opts_free(o);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_combinations),
        cmocka_unit_test(test_start_listening),
        cmocka_unit_test(test_start_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
