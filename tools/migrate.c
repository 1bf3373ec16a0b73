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
    fprintf(f, "usage: ufio-migrate --from SRC.sock --to DST.sock [options]\n"
               "Migrates the device served on SRC to the server on DST while it runs.\n"
               "  --max-downtime MS   precopy until the rest fits MS at the measured rate (default 300)\n"
               "  --max-rounds N      at most N precopy rounds (default 30)\n"
               "  --no-precopy        stop the source at once and copy everything\n"
               "  --timeout MS        per-request timeout (default 5000)\n"
               "  --json              print a JSON summary on stdout\n"
               "  -q, --quiet         no progress line (it is shown only on a terminal anyway)\n"
               "Exit status: 0 migrated, 1 failed (source left running), 2 usage, 3 incompatible.\n");
}

int main(int argc, char **argv)
{
    struct ufio_migrate_opts o = { 0 };
    bool json = false, quiet = false;
    static const struct option lo[] = {
        { "from", required_argument, NULL, 'f' }, { "to", required_argument, NULL, 't' },
        { "max-downtime", required_argument, NULL, 'd' }, { "max-rounds", required_argument, NULL, 'r' },
        { "no-precopy", no_argument, NULL, 'n' }, { "timeout", required_argument, NULL, 'T' },
        { "json", no_argument, NULL, 'j' }, { "quiet", no_argument, NULL, 'q' },
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
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!o.src_path || !o.dst_path || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (!quiet && isatty(2))
        o.progress = progress;
    struct ufio_migrate_result r;
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
    if (r.warning[0])
        fprintf(stderr, "ufio-migrate: warning: %s\n", r.warning);
    if (err) {
        fprintf(stderr, "ufio-migrate: %s: %s\n", err == -EPERM ? "incompatible" : "failed", r.error);
        return err == -EPERM ? 3 : 1;
    }
    return 0;
}
