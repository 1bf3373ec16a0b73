/*
 * The window protocol of the guest's continuous workloads (guest-wv.c on
 * virtio-blk, guest-swl.c on the sample device), and their latency record.
 * The host (run.sh's drive_windows) talks to the workload on the serial
 * console's input, one line per command, each acknowledged on the console
 * before the host goes on:
 *   mark begin N  -> "# wv window N begin"     (a handover starts)
 *   mark end N    -> "# wv window N end ..." after WIN_SETTLE more I/Os outside
 *   stop          -> the final verification and the verdict
 * The end line also carries the longest I/O inside that window and the
 * longest in the stretch outside the windows just before it, for
 * scripts/bench-handover-guest.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "guest.h"

double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

int win_open(struct win *w)
{
    memset(w, 0, sizeof(*w));
    w->fd = open("/dev/ttyS0", O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (w->fd < 0)
        return -errno;
    struct termios t;
    if (tcgetattr(w->fd, &t) == 0) {
        /* no echo of the host's commands into the log, no line editing */
        t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
        t.c_iflag &= ~(tcflag_t)(ICRNL | INLCR | IXON);
        t.c_cc[VMIN] = 0;
        t.c_cc[VTIME] = 0;
        tcsetattr(w->fd, TCSANOW, &t);
    }
    return 0;
}

void win_close(struct win *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
}

/* The next whole command line, if one is there (without waiting). */
static bool console_line(struct win *w, char *out, size_t cap)
{
    for (;;) {
        char ch;
        if (w->fd < 0 || read(w->fd, &ch, 1) != 1)
            return false;
        if (ch == '\n' || ch == '\r') {
            if (!w->len)
                continue;
            w->line[w->len] = 0;
            snprintf(out, cap, "%s", w->line);
            w->len = 0;
            return true;
        }
        if (w->len < sizeof(w->line) - 1)
            w->line[w->len++] = ch;
    }
}

void win_record(struct win *w, double us)
{
    if (w->in_window) {
        w->n_in++;
        w->cur_n_in++;
        if (us > w->max_in)
            w->max_in = us;
        if (us > w->cur_max_in)
            w->cur_max_in = us;
    } else {
        w->n_out++;
        w->sum_out += us;
        w->seg_n_out++;
        if (us > w->max_out)
            w->max_out = us;
        if (us > w->seg_max_out)
            w->seg_max_out = us;
    }
}

static void ack_end(struct win *w)
{
    note("wv window %u end max-us %.0f n %llu; outside before max-us %.0f n %llu", w->window_no, w->cur_max_in,
         (unsigned long long)w->cur_n_in, w->prev_max_out, (unsigned long long)w->prev_n_out);
    w->settle = 0;
}

void win_step_done(struct win *w)
{
    if (w->settle && !w->in_window && --w->settle == 0)
        ack_end(w);
}

/* A host command; returns false on "stop". */
static bool command(struct win *w, const char *cmd)
{
    unsigned n;
    if (sscanf(cmd, "mark begin %u", &n) == 1) {
        if (w->settle) /* the previous end was not acknowledged yet: do it now */
            ack_end(w);
        w->in_window = true;
        w->window_no = n;
        w->windows++;
        w->prev_max_out = w->seg_max_out;
        w->prev_n_out = w->seg_n_out;
        w->seg_max_out = 0;
        w->seg_n_out = 0;
        w->cur_max_in = 0;
        w->cur_n_in = 0;
        note("wv window %u begin", n);
    } else if (sscanf(cmd, "mark end %u", &n) == 1) {
        w->in_window = false;
        w->just_ended = true;
        w->settle = WIN_SETTLE;
    } else if (!strcmp(cmd, "stop")) {
        return false;
    } else {
        note("wv: unknown command '%s'", cmd);
    }
    return true;
}

bool win_poll(struct win *w)
{
    char cmd[128];
    while (console_line(w, cmd, sizeof(cmd)))
        if (!command(w, cmd))
            return false;
    return true;
}

void win_finish(struct win *w)
{
    if (w->settle)
        ack_end(w);
}

void win_report(const struct win *w)
{
    note("wv latency-us outside max %.0f mean %.0f n %llu; windows %u max %.0f n %llu", w->max_out,
         w->n_out ? w->sum_out / (double)w->n_out : 0.0, (unsigned long long)w->n_out, w->windows, w->max_in,
         (unsigned long long)w->n_in);
}

unsigned kernel_log_trouble(unsigned quiet)
{
    int len = klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0);
    if (len <= 0)
        return 0;
    char *buf = malloc((size_t)len + 1);
    if (!buf)
        return 0;
    int n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, len);
    unsigned bad = 0;
    if (n > 0) {
        buf[n] = 0;
        static const char *const words[] = { "I/O error", "reset", "timed out", "virtio_blk", "blk_update_request",
                                             "Buffer I/O", "vfio", "hung task", "DMAR", "DMA", "error", "fault" };
        for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
            for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
                /* virtio_blk's own probe line ("[vda] N 512-byte logical blocks") is fine */
                if (strstr(line, words[i]) && !strstr(line, "logical blocks")) {
                    if (bad >= quiet)
                        note("kernel: %s", line);
                    bad++;
                    break;
                }
            }
        }
    }
    free(buf);
    return bad;
}
