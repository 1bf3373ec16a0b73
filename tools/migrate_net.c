/*
 * ufio-migrate across hosts: the --listen (destination) and --to tls://
 * (source) agents, their --json event lines, and --recover.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <json-c/json.h>

#include <ufio/client.h>
#include <ufio/migration.h>

#include "migrate_net.h"
#include "net/xmig.h"


struct sink {
    bool json;
    bool tty;
    const char *side;
    int pause_at;   /* an ufio_xmig_phase, or -1 */
};

static volatile int net_cancel;

static void on_signal(int sig)
{
    net_cancel = sig;
}

/* --test-pause-at: a test holds the agent at a phase until SIGINT/SIGTERM
 * (the source agent then rolls back; the destination agent has no handler
 * and ends, as it would when killed there). */
static void on_pause(void *opaque, enum ufio_xmig_phase ph)
{
    struct sink *k = opaque;
    if ((int)ph != k->pause_at)
        return;
    k->pause_at = -1;
    sigset_t stop, old;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, &old); /* a signal sent after the line below is not lost */
    fprintf(stderr, "ufio-migrate: %s: paused at %s\n", k->side, ufio_xmig_phase_name(ph));
    sigset_t wait = old;
    sigdelset(&wait, SIGINT);
    sigdelset(&wait, SIGTERM);
    while (!net_cancel)
        sigsuspend(&wait);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

static int pause_phase(const char *name)
{
    static const struct { const char *name; enum ufio_xmig_phase ph; } map[] = {
        { "checking", XMIG_CHECK }, { "precopy", XMIG_PRECOPY }, { "stop-copy", XMIG_STOPCOPY },
        { "resuming", XMIG_LOAD }, { "commit", XMIG_COMMIT },
    };
    for (size_t i = 0; name && i < sizeof(map) / sizeof(map[0]); i++)
        if (!strcmp(name, map[i].name))
            return (int)map[i].ph;
    return -1;
}

static void on_event(void *opaque, const struct ufio_xmig_event *ev)
{
    struct sink *k = opaque;
    if (k->json) {
        json_object *j = json_object_new_object();
        json_object_object_add(j, "event", json_object_new_string("progress"));
        json_object_object_add(j, "side", json_object_new_string(k->side));
        json_object_object_add(j, "phase", json_object_new_string(ufio_xmig_phase_name(ev->phase)));
        json_object_object_add(j, "round", json_object_new_int((int)ev->round));
        json_object_object_add(j, "bytes", json_object_new_int64((int64_t)ev->bytes));
        json_object_object_add(j, "rate_mib_s", json_object_new_double(ev->rate_bps / 1048576.0));
        json_object_object_add(j, "estimate_bytes", json_object_new_int64((int64_t)ev->estimate));
        if (ev->msg)
            json_object_object_add(j, "message", json_object_new_string(ev->msg));
        printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
        fflush(stdout);
        json_object_put(j);
    } else if (k->tty) {
        fprintf(stderr, "\r%-9s round %-3u %10.2f MiB %8.1f MiB/s", ufio_xmig_phase_name(ev->phase), ev->round,
                ev->bytes / 1048576.0, ev->rate_bps / 1048576.0);
        if (ev->phase == XMIG_DONE || ev->phase == XMIG_ABORTED)
            fprintf(stderr, "\n");
    }
}

static void report(const struct sink *k, int code, const struct ufio_xmig_result *r)
{
    const char *name = ufio_xmig_code_name(code);
    if (k->json) {
        json_object *j = json_object_new_object();
        json_object_object_add(j, "event", json_object_new_string("result"));
        json_object_object_add(j, "side", json_object_new_string(k->side));
        json_object_object_add(j, "result", json_object_new_string(name));
        json_object_object_add(j, "exit_code", json_object_new_int(code));
        json_object_object_add(j, "peer", json_object_new_string(r->peer));
        json_object_object_add(j, "bytes", json_object_new_int64((int64_t)r->bytes));
        json_object_object_add(j, "precopy_bytes", json_object_new_int64((int64_t)r->precopy_bytes));
        json_object_object_add(j, "stopcopy_bytes", json_object_new_int64((int64_t)r->stopcopy_bytes));
        json_object_object_add(j, "rounds", json_object_new_int((int)r->rounds));
        json_object_object_add(j, "downtime_ms", json_object_new_double(r->downtime_ms));
        json_object_object_add(j, "total_ms", json_object_new_double(r->total_ms));
        json_object_object_add(j, "throughput_mib_s", json_object_new_double(r->throughput_mib_s));
        json_object_object_add(j, "link_rate_mib_s", json_object_new_double(r->link_rate_mib_s));
        json_object_object_add(j, "predicted_downtime_ms", json_object_new_double(r->predicted_downtime_ms));
        json_object_object_add(j, "dirty_limit_pages_s", json_object_new_int64((int64_t)r->dirty_limit));
        json_object_object_add(j, "verified", json_object_new_boolean(r->verified));
        if (r->verified)
            json_object_object_add(j, "digest", json_object_new_string(r->digest));
        if (r->peer_code >= 0)
            json_object_object_add(j, "peer_exit_code", json_object_new_int(r->peer_code));
        if (r->warning[0])
            json_object_object_add(j, "warning", json_object_new_string(r->warning));
        /* the agent's CPU (user + system) since it started: TLS, framing and its device client */
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
        json_object_object_add(j, "cpu_s", json_object_new_double(cpu));
        if (code)
            json_object_object_add(j, "error", json_object_new_string(r->error));
        printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
        fflush(stdout);
        json_object_put(j);
    } else if (!code) {
        printf("%s: migrated %llu bytes (%u precopy rounds), downtime %.2f ms, total %.2f ms, %.1f MiB/s%s\n",
               k->side, (unsigned long long)r->bytes, r->rounds, r->downtime_ms, r->total_ms, r->throughput_mib_s,
               r->verified ? ", state digests equal" : "");
    }
    if (r->warning[0])
        fprintf(stderr, "ufio-migrate: %s: warning: %s\n", k->side, r->warning);
    if (code)
        fprintf(stderr, "ufio-migrate: %s: %s: %s\n", k->side, name, r->error);
}

static void warn_insecure(const struct net_args *a)
{
    if (a->link.insecure)
        fprintf(stderr, "ufio-migrate: WARNING: --insecure: the device state crosses the network in PLAINTEXT, "
                        "unauthenticated; anyone on the path can read or alter it\n");
}

/* tls:// needs a TLS directory; tcp:// (plaintext) needs --insecure. */
static int check_url(const char *url, struct net_args *a, char *host, size_t hc, char *port, size_t pc)
{
    bool tls;
    if (ufio_link_parse_url(url, host, hc, port, pc, &tls)) {
        fprintf(stderr, "ufio-migrate: %s: expected tls://HOST:PORT (or tcp://HOST:PORT with --insecure)\n", url);
        return UFIO_XMIG_USAGE;
    }
    if (!tls && !a->link.insecure) {
        fprintf(stderr, "ufio-migrate: refused: %s is plaintext; use tls:// with --tls-dir, or say --insecure\n", url);
        return UFIO_XMIG_REFUSED;
    }
    if (tls && a->link.insecure) {
        fprintf(stderr, "ufio-migrate: --insecure is plaintext: use tcp://HOST:PORT with it\n");
        return UFIO_XMIG_USAGE;
    }
    if (tls && !a->link.tls_dir) {
        fprintf(stderr, "ufio-migrate: %s needs --tls-dir DIR (DIR/ca.pem, DIR/cert.pem, DIR/key.pem)\n", url);
        return UFIO_XMIG_USAGE;
    }
    return 0;
}

static void fill_opts(struct ufio_xmig_opts *o, const struct net_args *a, struct sink *k)
{
    o->link = a->link;
    o->dev_timeout_ms = a->dev_timeout_ms;
    o->accept_timeout_ms = a->accept_timeout_ms;
    o->event = (k->json || k->tty) ? on_event : NULL;
    o->pause = k->pause_at >= 0 ? on_pause : NULL;
    o->opaque = k;
}

int net_send(const char *src, const char *url, struct net_args *a)
{
    char host[256], port[16];
    int code = check_url(url, a, host, sizeof(host), port, sizeof(port));
    if (code)
        return code;
    warn_insecure(a);
    signal(SIGPIPE, SIG_IGN);
    /* SIGINT/SIGTERM: the engine rolls back (no SA_RESTART: a wait on the link sees it) */
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    struct sink k = { .json = a->json, .tty = !a->quiet && isatty(2), .side = "source",
                      .pause_at = pause_phase(a->pause_at) };
    struct ufio_migrate_opts mo = { .size = sizeof(mo) };
    if (a->mig)
        mo = *a->mig;
    mo.cancel = &net_cancel;
    struct ufio_xmig_opts o = { .dev_path = src, .host = host, .port = port, .mig = &mo };
    fill_opts(&o, a, &k);
    struct ufio_xmig_result r;
    code = ufio_xmig_send(&o, &r);
    report(&k, code, &r);
    return code;
}

int net_listen(const char *url, const char *dst, struct net_args *a)
{
    char host[256], port[16];
    int code = check_url(url, a, host, sizeof(host), port, sizeof(port));
    if (code)
        return code;
    warn_insecure(a);
    signal(SIGPIPE, SIG_IGN);
    char err[512];
    int lfd = ufio_link_listen(host, port, err, sizeof(err));
    if (lfd < 0) {
        fprintf(stderr, "ufio-migrate: %s\n", err);
        return UFIO_XMIG_FAILED;
    }
    struct sink k = { .json = a->json, .tty = !a->quiet && isatty(2), .side = "destination",
                      .pause_at = pause_phase(a->pause_at) };
    if (a->json) {
        printf("{\"event\":\"listening\",\"side\":\"destination\",\"address\":\"%s\",\"port\":\"%s\"}\n", host, port);
        fflush(stdout);
    } else if (!a->quiet) {
        fprintf(stderr, "ufio-migrate: listening on %s\n", url);
    }
    struct ufio_xmig_opts o = { .dev_path = dst };
    fill_opts(&o, a, &k);
    do {
        struct ufio_xmig_result r;
        code = ufio_xmig_receive(lfd, &o, &r);
        report(&k, code, &r);
    } while (a->keep);
    close(lfd);
    return code;
}

int net_recover(const char *path, int timeout_ms)
{
    struct ufio_client *c;
    struct ufio_client_opts co = { .size = sizeof(co), .timeout_ms = timeout_ms > 0 ? timeout_ms : 5000,
                                   .role = UFIO_ROLE_CONTROLLER_REQ };
    int e = ufio_client_connect(path, &co, &c);
    if (e) {
        fprintf(stderr, "ufio-migrate: %s: %s\n", path, strerror(-e));
        return UFIO_XMIG_FAILED;
    }
    unsigned st = 0, reached = 0;
    e = ufio_client_mig_get_state(c, &st);
    if (!e && (st == UFIO_MIG_RESUMING || st == UFIO_MIG_ERROR)) {
        /* a destination left half-way: drop what it holds (leaving RESUMING
         * with an incomplete stream ends in ERROR; a reset leaves that) and stop */
        if (st == UFIO_MIG_RESUMING)
            ufio_client_mig_set_state(c, UFIO_MIG_STOP, &reached);
        e = ufio_client_reset(c);
        if (!e)
            e = ufio_client_mig_set_state(c, UFIO_MIG_STOP, &reached);
        ufio_client_destroy(c);
        if (e) {
            fprintf(stderr, "ufio-migrate: %s: could not stop: %s\n", path, strerror(-e));
            return UFIO_XMIG_FAILED;
        }
        printf("%s: STOP, half-loaded state dropped (was %s)\n", path, ufio_mig_state_name(st));
        return 0;
    }
    if (!e && st != UFIO_MIG_RUNNING) {
        e = ufio_client_mig_set_state(c, UFIO_MIG_RUNNING, &reached);
        if (e && reached == UFIO_MIG_ERROR)
            fprintf(stderr, "ufio-migrate: %s is in ERROR: its state is lost; reset it\n", path);
    }
    ufio_client_destroy(c);
    if (e) {
        fprintf(stderr, "ufio-migrate: %s: could not resume: %s\n", path, strerror(-e));
        return UFIO_XMIG_SOURCE_LOST;
    }
    printf("%s: RUNNING (was %s)\n", path, ufio_mig_state_name(st));
    return 0;
}
