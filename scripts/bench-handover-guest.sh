#!/bin/sh
# Benchmark (not a test): what a live handover costs the guest, for
# ufio-virtio-blk and ufio-sample (docs/handover.md, "What it costs").
#
#   scripts/bench-handover-guest.sh [BUILD_DIR [HANDOVERS]]   (default: build 20)
#
# For each device, three runs of the real-guest workload with HANDOVERS
# handovers (tests/e2e/run.sh --workload N [--sample] --window-cmd
# tests/e2e/takeover-window.sh; the cached guest root must exist):
#   1. plain: per handover window the guest's longest I/O (virtio-blk: an
#      O_DIRECT read or write; sample: a BAR0 access, or a raise-to-interrupt)
#      against the longest in the stretch outside the windows before it (the
#      stretch before the first window, with the warm-up, is left out), and
#      the new process's "takeover timing" line (quiesce -> acknowledgement);
#   2. with QEMU's vfio-user trace (timestamped): per window, the VMM's
#      longest wait from sending a request to its reply (ufio-sample; the
#      doorbells of virtio-blk are posted writes, with no reply), and its
#      longest silence: the longest time without any message to or from the
#      device, which under a busy guest bounds the time from the quiesce
#      (the old process's last message) to the first request the new one
#      served (its first message);
#   3. with the new process under `perf trace` (scripts/bench-handover-window.sh:
#      its write and send syscalls, timestamped by the kernel): the time from
#      its acknowledgement to the first thing it does for the guest (a reply
#      on the VMM's socket or an interrupt), and so, with its timing line, the
#      time from the quiesce to the first request the new process served.
# Prints one table: median and max over the handovers, in ms. TCG guest on a
# shared machine: compare inside against outside of the same run.
# BENCH_KEEP=1 keeps each run's logs (run.sh --keep) and says where.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
n=${2:-20}
case $build in /*) ;; *) build=$here/$build ;; esac
out=$(mktemp -d /tmp/ufio-bench-hg.XXXXXX)
trap 'rm -rf "$out"' EXIT

have_perf=1
command -v perf >/dev/null || { have_perf=0; echo "bench: no perf (package linux-perf): the third runs are left out" >&2; }

run() { # NAME MODE [run.sh ARGS...]; MODE 0 plain, 1 QEMU's trace, 2 perf trace
    name=$1 trace=$2
    shift 2
    window=$here/tests/e2e/takeover-window.sh
    [ "$trace" != 2 ] || window=$here/scripts/bench-handover-window.sh
    set -- --build "$build" --workload "$n" --window-cmd "$window" --keep "$@"
    [ "$trace" != 1 ] || set -- "$@" --trace
    echo "bench: $name (mode $trace): tests/e2e/run.sh $*" >&2
    if ! "$here/tests/e2e/run.sh" "$@" >"$out/run.log" 2>&1; then
        tail -n 30 "$out/run.log" >&2
        echo "bench: the run failed" >&2
        exit 1
    fi
    dir=$(sed -n 's/^e2e: logs kept in //p' "$out/run.log")
    # each perf trace writes its file as it exits, after its server
    # shellcheck disable=SC2013 # one pid a line
    for p in $(sed -n 's/.*(under perf \([0-9]*\))$/\1/p' "$dir/window.log" 2>/dev/null); do
        i=0
        while kill -0 "$p" 2>/dev/null && [ $i -lt 1000 ]; do
            i=$((i + 1))
            sleep 0.01
        done
    done
    python3 - "$dir" "$name" "$trace" >>"$out/results" <<'EOF'
import datetime, glob, re, sys
d, name, mode = sys.argv[1], sys.argv[2], sys.argv[3]
def emit(key, vals):
    print(name, key, " ".join("%.3f" % v for v in vals))
serial = open(glob.glob(d + "/serial-*.txt")[0], errors="replace").read()
ins, outs = [], []
for m in re.finditer(r"# wv window (\d+) end max-us (\d+) n \d+; outside before max-us (\d+)", serial):
    ins.append(int(m.group(2)) / 1000)
    if int(m.group(1)) > 1:
        outs.append(int(m.group(3)) / 1000)
steps = ("connect", "precopy", "quiesced", "stream", "fds", "adopt")
timing = {k: [] for k in steps}
for f in sorted(glob.glob(d + "/takeover-*.log")):
    m = re.search(r"takeover timing: connect ([0-9.]+) ms, precopy ([0-9.]+) ms, quiesced ([0-9.]+) ms "
                  r"\(stop-copy stream ([0-9.]+), fds ([0-9.]+), load and adopt ([0-9.]+)\)", open(f).read())
    if m:
        for k, v in zip(steps, m.groups()):
            timing[k].append(float(v))
if mode == "0":
    emit("guest-in", ins)
    emit("guest-out", outs)
    for k in steps:
        emit(k, timing[k])
    sys.exit(0)
if mode == "2":
    # perf trace lines: "   41.221 ( 0.029 ms): ufio-sample/24102 sendto(fd: 8, buff: 0x.., len: 4, ...) = 4"
    ev = re.compile(r"^\s*([0-9.]+) \(.*?\): \S+ (\w+)\(fd: (\d+)(.*)")
    served, q_served = [], []
    for f in sorted(glob.glob(d + "/perf-*.txt")):
        k = f.rsplit("-", 1)[1].split(".")[0]
        m = re.search(r"quiesced ([0-9.]+) ms", open(d + "/takeover-%s.log" % k).read())
        t_ack = t_first = None
        for line in open(f, errors="replace"):
            e = ev.match(line)
            if not e:
                continue
            t, call, fd, rest = float(e.group(1)), e.group(2), int(e.group(3)), e.group(4)
            if t_ack is None:
                # the acknowledgement: the new process's first 4-byte send
                if call == "sendto" and "len: 4," in rest:
                    t_ack = t
            elif fd > 2:  # not its log lines: a reply to the VMM or an interrupt
                t_first = t
                break
        if m and t_ack is not None and t_first is not None:
            served.append(t_first - t_ack)
            q_served.append(float(m.group(1)) + t_first - t_ack)
    emit("ack-served", served)
    emit("quiesce-served", q_served)
    sys.exit(0)
# windows on the host's clock
win = {}
for line in open(d + "/windows.txt"):
    k, what, t = line.split()
    win.setdefault(int(k), {})[what] = float(t)
bounds = [(win[k]["begin"], win[k]["end"]) for k in sorted(win)]
def epoch(ts):
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
sent, waits, events = {}, [], []
ev = re.compile(r"^(\S+Z) vfio_user_(send_write|recv_hdr)\s+(?:\(\S+\) )?id (0x[0-9a-f]+)(?:.* flags (0x[0-9a-f]+))?")
for line in open(glob.glob(d + "/qemu-*.log")[0], errors="replace"):
    m = ev.match(line)
    if not m:
        continue
    t = epoch(m.group(1))
    events.append(t)
    if m.group(2) == "send_write":
        sent[m.group(3)] = t
    elif m.group(4) and int(m.group(4), 16) & 1 and m.group(3) in sent:  # a reply
        waits.append((sent.pop(m.group(3)), t))
def in_window(t):
    return next((i for i, (b, e) in enumerate(bounds) if b <= t <= e), None)
def stretch(t):  # between windows i-1 and i (i >= 1)
    return next((i for i in range(1, len(bounds)) if bounds[i - 1][1] < t < bounds[i][0]), None)
w_in, w_out = [0.0] * len(bounds), [0.0] * len(bounds)
for s, r in waits:
    i = in_window(s)
    if i is not None:
        w_in[i] = max(w_in[i], (r - s) * 1000)
    elif (j := stretch(s)) is not None:
        w_out[j] = max(w_out[j], (r - s) * 1000)
g_in, g_out = [0.0] * len(bounds), [0.0] * len(bounds)
for a, b in zip(events, events[1:]):
    i = in_window(a)
    if i is not None and in_window(b) == i:
        g_in[i] = max(g_in[i], (b - a) * 1000)
    elif (j := stretch(a)) is not None and stretch(b) == j:
        g_out[j] = max(g_out[j], (b - a) * 1000)
if any(w_in):
    emit("vmm-wait-in", w_in)
    emit("vmm-wait-out", w_out[1:])
emit("silence-in", g_in)
emit("silence-out", g_out[1:])
EOF
    if [ -n "${BENCH_KEEP:-}" ]; then echo "bench: logs kept in $dir" >&2; else rm -rf "$dir"; fi
}

run virtio-blk 0
run virtio-blk 1
[ "$have_perf" = 0 ] || run virtio-blk 2
run sample 0 --sample
run sample 1 --sample
[ "$have_perf" = 0 ] || run sample 2 --sample

python3 - "$out/results" "$n" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    rows[(f[0], f[1])] = [float(x) for x in f[2:]]
def cell(dev, key):
    v = rows.get((dev, key))
    return "%7.2f %7.2f" % (statistics.median(v), max(v)) if v else "%15s" % "-"
print("handover stall over %s handovers, ms (median max)" % sys.argv[2])
print("%-11s %15s %15s %15s %15s %15s %15s %15s" % ("device", "guest in", "guest outside", "quiesce->ack",
      "VMM wait in", "VMM wait out", "VMM silent in", "VMM silent out"))
for dev in ("virtio-blk", "sample"):
    print("%-11s %s %s %s %s %s %s %s" % (dev, cell(dev, "guest-in"), cell(dev, "guest-out"), cell(dev, "quiesced"),
          cell(dev, "vmm-wait-in"), cell(dev, "vmm-wait-out"), cell(dev, "silence-in"), cell(dev, "silence-out")))
print("the new process under perf trace, ms (median max)")
print("%-11s %15s %15s" % ("device", "ack->served", "quiesce->served"))
for dev in ("virtio-blk", "sample"):
    print("%-11s %s %s" % (dev, cell(dev, "ack-served"), cell(dev, "quiesce-served")))
print("the new process's steps (its takeover timing line), ms (median max)")
print("%-11s %15s %15s %15s %15s %15s %15s" % ("device", "connect", "precopy", "quiesced", "stop-copy", "fds",
      "load+adopt"))
for dev in ("virtio-blk", "sample"):
    print("%-11s %s" % (dev, " ".join(cell(dev, k) for k in ("connect", "precopy", "quiesced", "stream", "fds",
                                                              "adopt"))))
EOF
