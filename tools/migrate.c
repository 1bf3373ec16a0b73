/*
 * ufio-migrate: move a live vfio-user device from one server process to
 * another (include/ufio/migrate.h does the work).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include <ufio/migrate.h>

#include "migrate_net.h"

static const char *phase_name[] = { "checking", "precopy", "stop-copy", "resuming", "done" };

static void progress(void *opaque, enum ufio_migrate_phase ph, uint64_t bytes, unsigned round)
{
    (void)opaque;
    fprintf(stderr, "\r%-10s round %-3u %10.2f MiB", phase_name[ph], round, bytes / 1048576.0);
    if (ph == UFIO_MIGRATE_DONE)
        fprintf(stderr, "\n");
}

static void usage(FILE *f)
{
    fprintf(f, "usage: ufio-migrate --from SRC.sock --to DST.sock [options]          (one host)\n"
               "       ufio-migrate --listen tls://ADDR:PORT --to DST.sock --tls-dir DIR (destination agent)\n"
               "       ufio-migrate --from SRC.sock --to tls://HOST:PORT --tls-dir DIR   (source agent)\n"
               "       ufio-migrate --recover DEV.sock   (after an agent died: a source left saving goes back to\n"
               "                                     RUNNING; a destination left RESUMING drops it and STOPs)\n"
               "Migrates the device served on SRC to the server on DST while it runs.\n"
               "  --tls-dir DIR       DIR/ca.pem, DIR/cert.pem, DIR/key.pem (TLS 1.3, mutual X.509)\n"
               "  --tls-name NAME     the peer's certificate must carry NAME (source default: HOST)\n"
               "  --insecure          plaintext tcp://HOST:PORT, no authentication (warned loudly)\n"
               "  --keep              destination: serve one migration after another\n"
               "  --link-timeout MS   a link without progress for MS fails (default 10000)\n"
               "  --max-downtime MS   precopy until the rest fits MS at the measured rate (default 300)\n"
               "  --max-rounds N      at most N precopy rounds (default 30)\n"
               "  --no-precopy        stop the source at once and copy everything\n"
               "  --timeout MS        per-request timeout (default 5000)\n"
               "  --json              print a JSON summary on stdout (across hosts: one JSON event a line)\n"
               "  -q, --quiet         no progress line (it is shown only on a terminal anyway)\n"
               "Exit status: 0 migrated, 1 failed (source left running), 2 usage, 3 incompatible;\n"
               "across hosts also 4 authentication refused or plaintext without --insecure (nothing moved),\n"
               "5 link lost or stalled (as 1), 6 in doubt after commit (both stopped: see docs/cross-host.md),\n"
               "7 downtime budget cannot be met (source never stopped), 8 source could not be resumed.\n");
}

int main(int argc, char **argv)
{
    struct ufio_migrate_opts o = { .size = sizeof(o) };
    bool json = false, quiet = false;
    struct net_args na = { 0 };
    const char *listen_url = NULL, *recover = NULL;
    static const struct option lo[] = {
        { "from", required_argument, NULL, 'f' }, { "to", required_argument, NULL, 't' },
        { "max-downtime", required_argument, NULL, 'd' }, { "max-rounds", required_argument, NULL, 'r' },
        { "no-precopy", no_argument, NULL, 'n' }, { "timeout", required_argument, NULL, 'T' },
        { "json", no_argument, NULL, 'j' }, { "quiet", no_argument, NULL, 'q' },
        { "listen", required_argument, NULL, 'L' }, { "tls-dir", required_argument, NULL, 'D' },
        { "tls-name", required_argument, NULL, 'N' }, { "insecure", no_argument, NULL, 'I' },
        { "keep", no_argument, NULL, 'k' }, { "link-timeout", required_argument, NULL, 'l' },
        { "recover", required_argument, NULL, 'R' },
        { "help", no_argument, NULL, 'h' }, { 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "qh", lo, NULL)) != -1) {
        switch (c) {
        case 'f': o.src_path = optarg; break;
        case 't': o.dst_path = optarg; break;
        case 'd': o.max_downtime_ms = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'r': o.max_rounds = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'n': o.no_precopy = true; break;
        case 'T': o.timeout_ms = atoi(optarg); break;
        case 'j': json = true; break;
        case 'q': quiet = true; break;
        case 'L': listen_url = optarg; break;
        case 'D': na.link.tls_dir = optarg; break;
        case 'N': na.link.peer_name = optarg; break;
        case 'I': na.link.insecure = true; break;
        case 'k': na.keep = true; break;
        case 'l': na.link.timeout_ms = atoi(optarg); break;
        case 'R': recover = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (recover)
        return o.src_path || o.dst_path || listen_url ? (usage(stderr), 2) : net_recover(recover, o.timeout_ms);
    na.max_downtime_ms = o.max_downtime_ms;
    na.max_rounds = o.max_rounds;
    na.no_precopy = o.no_precopy;
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
    if (!quiet && isatty(2))
        o.progress = progress;
    char errbuf[UFIO_MIGRATE_ERROR_MAX];
    struct ufio_migrate_result r = { .size = sizeof(r), .error = errbuf, .error_size = sizeof(errbuf) };
    int err = ufio_migrate(&o, &r);
    if (json) {
        json_object *j = json_object_new_object();
        json_object_object_add(j, "result", json_object_new_string(err == 0 ? "migrated" : err == -EPERM ? "incompatible" : "failed"));
        json_object_object_add(j, "bytes", json_object_new_int64((int64_t)r.bytes));
        json_object_object_add(j, "precopy_bytes", json_object_new_int64((int64_t)r.precopy_bytes));
        json_object_object_add(j, "stopcopy_bytes", json_object_new_int64((int64_t)r.stopcopy_bytes));
        json_object_object_add(j, "rounds", json_object_new_int((int)r.rounds));
        json_object_object_add(j, "downtime_ms", json_object_new_double(r.downtime_ms));
        json_object_object_add(j, "total_ms", json_object_new_double(r.total_ms));
        json_object_object_add(j, "throughput_mib_s", json_object_new_double(r.throughput_mib_s));
        if (err)
            json_object_object_add(j, "error", json_object_new_string(r.error));
        printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
        json_object_put(j);
    } else if (!err) {
        printf("migrated %llu bytes (%u precopy rounds), downtime %.2f ms, total %.2f ms, %.1f MiB/s\n",
               (unsigned long long)r.bytes, r.rounds, r.downtime_ms, r.total_ms, r.throughput_mib_s);
    }
    if (err) {
        fprintf(stderr, "ufio-migrate: %s: %s\n", err == -EPERM ? "incompatible" : "failed", r.error);
        return err == -EPERM ? 3 : 1;
    }
    return 0;
}
