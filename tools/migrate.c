/*
 * ufio-migrate: move a live vfio-user device from one server process to
 * another (include/ufio/migrate.h does the work).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include <ufio/migrate.h>

#include "migrate_net.h"
#include "net/xmig.h"

static const char *phase_name[] = { "checking", "precopy", "stop-copy", "resuming", "done" };
static volatile int cancel_flag;
static bool progress_shown; /* the progress line is open: a message must start a new line */
static int pause_at = -1;   /* --test-pause-at */
static bool show_progress;

static void on_signal(int sig)
{
    cancel_flag = sig;
}

static void progress(void *opaque, enum ufio_migrate_phase ph, uint64_t bytes, unsigned round)
{
    (void)opaque;
    if ((int)ph == pause_at) {
        /* a test holds the migration here until it sends a signal */
        pause_at = -1;
        sigset_t stop, old;
        sigemptyset(&stop);
        sigaddset(&stop, SIGINT);
        sigaddset(&stop, SIGTERM);
        sigprocmask(SIG_BLOCK, &stop, &old); /* a signal sent after the line below is not lost */
        fprintf(stderr, "%sufio-migrate: paused at %s\n", progress_shown ? "\n" : "", phase_name[ph]);
        progress_shown = false;
        sigset_t wait = old;
        sigdelset(&wait, SIGINT);
        sigdelset(&wait, SIGTERM);
        while (!cancel_flag)
            sigsuspend(&wait);
        sigprocmask(SIG_SETMASK, &old, NULL);
    }
    if (!show_progress)
        return;
    fprintf(stderr, "\r%-10s round %-3u %10.2f MiB", phase_name[ph], round, bytes / 1048576.0);
    progress_shown = true;
    if (ph == UFIO_MIGRATE_DONE) {
        fprintf(stderr, "\n");
        progress_shown = false;
    }
}

/* One message line on stderr, never glued to the progress line. */
static void say(const char *what, const char *text)
{
    if (progress_shown) {
        fputc('\n', stderr);
        progress_shown = false;
    }
    fprintf(stderr, "ufio-migrate: %s%s%s\n", what, text ? ": " : "", text ? text : "");
}

static void usage(FILE *f)
{
    fprintf(f, "usage: ufio-migrate --from SRC.sock --to DST.sock [options]          (one host)\n"
               "       ufio-migrate --listen tls://ADDR:PORT --to DST.sock --tls-dir DIR (destination agent)\n"
               "       ufio-migrate --from SRC.sock --to tls://HOST:PORT --tls-dir DIR   (source agent)\n"
               "       ufio-migrate --reset DEV.sock     (a device left half-way by an interrupted one-host\n"
               "                                     migration: reset, left stopped)\n"
               "       ufio-migrate --recover DEV.sock   (after an agent died: a source left saving goes back to\n"
               "                                     RUNNING; a destination left RESUMING drops it and STOPs)\n"
               "Migrates the device served on SRC to the server on DST while it runs.\n"
               "  --max-downtime MS     the downtime budget (default 300): precopy until the rest fits it at\n"
               "                        the measured rate (the destination's load included), then stop the\n"
               "                        source; refuse (the source runs on) when it cannot be met\n"
               "  --max-rounds N        at most N precopy rounds (default 30)\n"
               "  --max-precopy-time MS precopy for at most MS (default 60000)\n"
               "  --max-precopy-bytes N precopy at most N bytes (default: no bound)\n"
               "  --force-downtime      stop the source even when the budget cannot be met\n"
               "  --no-precopy          stop the source at once and copy everything\n"
               "  --force               migrate a source that is stopped (already migrated away, or paused)\n"
               "  --no-verify           do not compare the source's and destination's state digests\n"
               "  --reset DEV           reset a device left half-way by an interrupted migration, leave it stopped\n"
               "  --recover DEV         after a cross-host agent died (see above)\n"
               "  --tls-dir DIR         DIR/ca.pem, DIR/cert.pem, DIR/key.pem (TLS 1.3, mutual X.509)\n"
               "  --tls-name NAME       the peer's certificate must carry NAME (source default: HOST)\n"
               "  --insecure            plaintext tcp://HOST:PORT, no authentication (warned loudly)\n"
               "  --keep                destination agent: serve one migration after another\n"
               "  --link-timeout MS     a link without progress for MS fails (default 10000)\n"
               "  --accept-timeout MS   destination agent: no source within MS (default 300000, 0 = wait for\n"
               "                        ever) ends it with exit 6, its device untouched\n"
               "  --timeout MS          per-request timeout (default 5000)\n"
               "  --json                print a JSON summary on stdout (across hosts: one JSON event a line)\n"
               "  -q, --quiet           no progress line (it is shown only on a terminal anyway)\n"
               "  --test-pause-at PHASE for tests: stop at PHASE (checking, precopy, stop-copy, resuming;\n"
               "                        across hosts also commit: the source stopped, COMMIT not sent; the\n"
               "                        destination running, not yet answered) until SIGINT/SIGTERM arrives\n"
               "Across hosts the source agent runs the same migration: the options above apply to it.\n"
               "SIGINT/SIGTERM roll back: the source runs on, the destination is stopped.\n"
               "Exit status (one host and across hosts): 0 migrated; 1 failed, rolled back (source running\n"
               "with its state, destination stopped); 2 usage; 3 incompatible (nothing moved); 4 refused\n"
               "before anything moved (stopped or busy device, authentication, plaintext without\n"
               "--insecure); 5 interrupted (rolled back); 6 link lost, peer gone, stalled, or no source came\n"
               "(rolled back); 7 downtime budget cannot be met (the source runs: never stopped, or resumed\n"
               "when stop-copy passed its deadline); 8 in doubt after commit (both stopped: see\n"
               "docs/cross-host.md); 9 failed and the source could not be put back to RUNNING.\n");
}

/* A whole decimal number in [min, max], or false. */
static bool parse_num(const char *s, unsigned long long min, unsigned long long max, unsigned long long *out)
{
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static int bad_value(const char *opt, const char *val, const char *want)
{
    fprintf(stderr, "ufio-migrate: bad value for --%s: '%s' (%s)\n", opt, val, want);
    return 2;
}

static int reset_device(const char *path, int timeout_ms, bool json)
{
    char why[1024];
    int err = ufio_migrate_reset(path, NULL, timeout_ms, why, sizeof(why));
    if (json)
        printf("{ \"result\": \"%s\" }\n", err ? "failed" : "reset");
    if (err) {
        fprintf(stderr, "ufio-migrate: reset failed: %s\n", why[0] ? why : strerror(-err));
        return 1;
    }
    if (!json)
        printf("%s: reset, stopped\n", path);
    return 0;
}

int main(int argc, char **argv)
{
    struct ufio_migrate_opts o = { .size = sizeof(o) };
    bool json = false, quiet = false;
    struct net_args na = { .accept_timeout_ms = 300000 };
    const char *listen_url = NULL, *recover = NULL, *reset = NULL;
    static const struct option lo[] = {
        { "from", required_argument, NULL, 'f' }, { "to", required_argument, NULL, 't' },
        { "max-downtime", required_argument, NULL, 'd' }, { "max-rounds", required_argument, NULL, 'r' },
        { "no-precopy", no_argument, NULL, 'n' }, { "timeout", required_argument, NULL, 'T' },
        { "json", no_argument, NULL, 'j' }, { "quiet", no_argument, NULL, 'q' },
        { "listen", required_argument, NULL, 'L' }, { "tls-dir", required_argument, NULL, 'S' },
        { "tls-name", required_argument, NULL, 'N' }, { "insecure", no_argument, NULL, 'I' },
        { "keep", no_argument, NULL, 'k' }, { "link-timeout", required_argument, NULL, 'l' },
        { "recover", required_argument, NULL, 'C' }, { "accept-timeout", required_argument, NULL, 'A' },
        { "max-precopy-time", required_argument, NULL, 'P' },
        { "max-precopy-bytes", required_argument, NULL, 'B' },
        { "force-downtime", no_argument, NULL, 'D' }, { "force", no_argument, NULL, 'F' },
        { "no-verify", no_argument, NULL, 'V' }, { "reset", required_argument, NULL, 'R' },
        { "test-pause-at", required_argument, NULL, 'X' },
        { "help", no_argument, NULL, 'h' }, { 0 },
    };
    int c;
    unsigned long long v;
    while ((c = getopt_long(argc, argv, "qh", lo, NULL)) != -1) {
        switch (c) {
        case 'f': o.src_path = optarg; break;
        case 't': o.dst_path = optarg; break;
        case 'd':
            if (!parse_num(optarg, 1, 3600000, &v))
                return bad_value("max-downtime", optarg, "milliseconds, 1 to 3600000");
            o.max_downtime_ms = (unsigned)v;
            break;
        case 'r':
            if (!parse_num(optarg, 1, 100000, &v))
                return bad_value("max-rounds", optarg, "a count, 1 to 100000");
            o.max_rounds = (unsigned)v;
            break;
        case 'P':
            if (!parse_num(optarg, 1, 86400000, &v))
                return bad_value("max-precopy-time", optarg, "milliseconds, 1 to 86400000");
            o.max_precopy_ms = (unsigned)v;
            break;
        case 'B':
            if (!parse_num(optarg, 1, ULLONG_MAX, &v))
                return bad_value("max-precopy-bytes", optarg, "a byte count, at least 1");
            o.max_precopy_bytes = v;
            break;
        case 'T':
            if (!parse_num(optarg, 1, INT_MAX, &v))
                return bad_value("timeout", optarg, "milliseconds, at least 1");
            o.timeout_ms = (int)v;
            break;
        case 'D': o.force_downtime = true; break;
        case 'n': o.no_precopy = true; break;
        case 'F': o.force = true; break;
        case 'V': o.no_verify = true; break;
        case 'R': reset = optarg; break;
        case 'X':
            for (int i = 0; i < 4; i++)
                if (!strcmp(optarg, phase_name[i]))
                    pause_at = i;
            na.pause_at = optarg; /* across hosts: "commit" as well (migrate_net.c) */
            if (pause_at < 0 && strcmp(optarg, "commit"))
                return bad_value("test-pause-at", optarg, "checking, precopy, stop-copy, resuming or commit");
            break;
        case 'j': json = true; break;
        case 'q': quiet = true; break;
        case 'L': listen_url = optarg; break;
        case 'S': na.link.tls_dir = optarg; break;
        case 'N': na.link.peer_name = optarg; break;
        case 'I': na.link.insecure = true; break;
        case 'k': na.keep = true; break;
        case 'l':
            if (!parse_num(optarg, 1, INT_MAX, &v))
                return bad_value("link-timeout", optarg, "milliseconds, at least 1");
            na.link.timeout_ms = (int)v;
            break;
        case 'A':
            if (!parse_num(optarg, 0, INT_MAX, &v))
                return bad_value("accept-timeout", optarg, "milliseconds, 0 for no limit");
            na.accept_timeout_ms = v ? (int)v : -1;
            break;
        case 'C': recover = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (reset)
        return o.src_path || o.dst_path || listen_url ? (usage(stderr), 2) : reset_device(reset, o.timeout_ms, json);
    if (recover)
        return o.src_path || o.dst_path || listen_url ? (usage(stderr), 2) : net_recover(recover, o.timeout_ms);
    na.mig = &o;
    na.dev_timeout_ms = o.timeout_ms;
    na.json = json;
    na.quiet = quiet;
    if (listen_url) {
        if (o.src_path || !o.dst_path) {
            usage(stderr);
            return 2;
        }
        return net_listen(listen_url, o.dst_path, &na);
    }
    if (o.dst_path && strstr(o.dst_path, "://")) {
        if (!o.src_path) {
            usage(stderr);
            return 2;
        }
        return net_send(o.src_path, o.dst_path, &na);
    }
    if (!o.src_path || !o.dst_path) {
        usage(stderr);
        return 2;
    }
    if (na.pause_at && pause_at < 0)
        return bad_value("test-pause-at", na.pause_at, "commit is a step of the cross-host agents only");
    if (reset)
        return reset_device(reset, o.timeout_ms, json);
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    o.cancel = &cancel_flag;
    show_progress = !quiet && isatty(2);
    if (show_progress || pause_at >= 0)
        o.progress = progress;
    static char errbuf[UFIO_MIGRATE_ERROR_MAX], warnbuf[UFIO_MIGRATE_ERROR_MAX], digest[UFIO_MIGRATE_DIGEST_MAX];
    struct ufio_migrate_result r = { .size = sizeof(r), .error = errbuf, .error_size = sizeof(errbuf),
                                     .warning = warnbuf, .warning_size = sizeof(warnbuf),
                                     .digest = digest, .digest_size = sizeof(digest) };
    int err = ufio_migrate(&o, &r);
    int rc = ufio_xmig_code_of(err, r.warning); /* the exit status both modes share */
    const char *result = ufio_xmig_code_name(rc);
    if (json) {
        json_object *j = json_object_new_object();
        json_object_object_add(j, "result", json_object_new_string(result));
        json_object_object_add(j, "exit_code", json_object_new_int(rc));
        json_object_object_add(j, "bytes", json_object_new_int64((int64_t)r.bytes));
        json_object_object_add(j, "precopy_bytes", json_object_new_int64((int64_t)r.precopy_bytes));
        json_object_object_add(j, "stopcopy_bytes", json_object_new_int64((int64_t)r.stopcopy_bytes));
        json_object_object_add(j, "rounds", json_object_new_int((int)r.rounds));
        json_object_object_add(j, "downtime_ms", json_object_new_double(r.downtime_ms));
        json_object_object_add(j, "predicted_downtime_ms", json_object_new_double(r.predicted_downtime_ms));
        json_object_object_add(j, "rate_mib_s", json_object_new_double(r.rate_mib_s));
        json_object_object_add(j, "dirty_limit_pages_s", json_object_new_int64((int64_t)r.dirty_limit));
        json_object_object_add(j, "total_ms", json_object_new_double(r.total_ms));
        json_object_object_add(j, "throughput_mib_s", json_object_new_double(r.throughput_mib_s));
        json_object_object_add(j, "verified", json_object_new_boolean(r.verified));
        if (r.verified)
            json_object_object_add(j, "digest", json_object_new_string(r.digest));
        if (err)
            json_object_object_add(j, "error", json_object_new_string(r.error));
        if (r.warning[0])
            json_object_object_add(j, "warning", json_object_new_string(r.warning));
        printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
        json_object_put(j);
    } else if (!err) {
        printf("migrated %llu bytes (%u precopy rounds), downtime %.2f ms, total %.2f ms, %.1f MiB/s, %s\n",
               (unsigned long long)r.bytes, r.rounds, r.downtime_ms, r.total_ms, r.throughput_mib_s,
               r.verified ? "state digests equal" : "not verified (a device gives no digest)");
    }
    if (r.warning[0])
        say("warning", r.warning);
    if (err) {
        /* "interrupted: interrupted" says it once */
        say(result, strcmp(r.error, result) ? r.error : NULL);
        if (cancel_flag)
            say("the source runs on, the destination is stopped", NULL);
    }
    return rc;
}
