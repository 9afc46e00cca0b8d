/* terminal-echo.c - bench/terminal.sh's helper: keystroke round trips and output
 * throughput of a workspace terminal, through berthd's WebSocket or straight to
 * the workspace agent.
 *
 *   terminal-echo echo ws URL WS N         berthd's terminal WebSocket (BERTH_TOKEN)
 *   terminal-echo echo agent SOCKET N      the agent's unix socket (EXEC with a TTY)
 *   terminal-echo yes ws URL WS LINES
 *   terminal-echo yes agent SOCKET LINES
 *
 * Both paths end in the same thing: a shell on a PTY in the container (the
 * WebSocket's is berthd's login shell, the agent's an interactive /bin/sh). The
 * helper waits for its prompt, then:
 *
 *   echo  types "stty raw -echo; dd bs=1 count=..." and, once that runs, sends N
 *         single bytes, each after the echo of the one before (dd's, a read and a
 *         write per byte like cat's; the terminal's own echo is off, so every byte
 *         comes back exactly once); prints "p50 p99 mean min max" in
 *         milliseconds. 100 unmeasured keystrokes go first. When dd has its
 *         count, the shell exits. With TERMINAL_ECHO_SAMPLES=FILE set, every
 *         round trip is also appended to FILE, one a line, in milliseconds.
 *   yes   types "yes | head -n LINES; echo END-MARK" and prints the seconds from
 *         the keystroke to the marker, and the bytes received: "seconds bytes";
 *         then it types "exit".
 *
 * Either way the shell ends, so berthd does not keep it for its ten minutes.
 *
 * The WebSocket side is the CLI's own client (src/cli/wsclient.c), so the figures
 * are those of `berth shell`. Built ad hoc by bench/terminal.sh.
 */
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "agent/agent-proto.h"
#include "cli/commands.h"
#include "cli/wsclient.h"
#include "util/buf.h"
#include "util/xalloc.h"

#define QUIET_MS 300
#define START_TIMEOUT_MS 15000
#define STEP_TIMEOUT_MS 10000
#define WARMUP 100

struct term {
    struct wsc *w; /* the WebSocket, or NULL */
    int fd;        /* the agent's socket, when w is NULL */
    struct buf agent_in;
    struct buf out; /* output not yet looked at */
    size_t total;   /* output bytes in all */
    bool ended;
};

/* cmd_api_path() lives in commands.c, which needs all of the CLI; the helper
 * only needs the workspace's name in a path, and names are URL-safe. */
static char *ws_terminal_path(const char *ws)
{
    return xasprintf("/api/v1/workspaces/%s/terminal?cols=80&rows=24", ws);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

_noreturn_ static void die(const char *what, const struct berr *e)
{
    fprintf(stderr, "terminal-echo: %s%s%s\n", what, e ? ": " : "", e ? berr_msg(e) : "");
    exit(1);
}

static void got_output(struct term *t, const void *p, size_t n)
{
    buf_add(&t->out, p, n);
    t->total += n;
}

static int ws_message_cb(struct wsc *w, int opcode, const unsigned char *msg, size_t len,
                         void *data, struct berr **reterr)
{
    struct term *t = data;
    if (len && msg[0] == '0')
        got_output(t, msg + 1, len - 1);
    else if (len && msg[0] == '2')
        t->ended = true;
    return 0;
}

static void put_field(struct buf *b, enum agent_field_tag tag, const void *v, size_t len)
{
    unsigned char h[5] = {(unsigned char)tag};
    agent_put_u32(h + 1, (uint32_t)len);
    buf_add(b, h, sizeof(h));
    buf_add(b, v, len);
}

static void agent_frame(struct term *t, enum agent_frame_type type, const void *p, size_t len)
{
    _cleanup_buf_ struct buf f = BUF_INIT;
    unsigned char h[AGENT_HEADER_SIZE];
    agent_put_header(h, type, (uint32_t)len);
    buf_add(&f, h, sizeof(h));
    buf_add(&f, p, len);
    if (cmd_write_all(t->fd, f.buf, f.len) < 0)
        die("cannot write to the agent", NULL);
}

/* Avoids linking commands.c for this one helper. */
int cmd_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void term_open_agent(struct term *t, const char *socket_path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(socket_path) >= sizeof(sa.sun_path))
        die("socket path too long", NULL);
    strcpy(sa.sun_path, socket_path);
    t->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (t->fd < 0 || connect(t->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        die("cannot connect to the agent socket", NULL);
    _cleanup_buf_ struct buf p = BUF_INIT;
    put_field(&p, AGENT_FIELD_ARG, "/bin/sh", 7);
    unsigned char sz[4] = {0, 80, 0, 24};
    put_field(&p, AGENT_FIELD_TTY, sz, 4);
    agent_frame(t, AGENT_EXEC, p.buf, p.len);
}

static void term_open_ws(struct term *t, const char *url, const char *ws)
{
    _cleanup_free_ char *path = ws_terminal_path(ws);
    _cleanup_berr_ struct berr *err = NULL;
    t->fd = -1;
    if (wsc_connect(url, path, getenv("BERTH_TOKEN"), ws_message_cb, t, &t->w, &err) < 0)
        die("cannot open the terminal WebSocket", err);
}

static void term_send(struct term *t, const char *p, size_t len)
{
    if (!t->w) {
        agent_frame(t, AGENT_STDIN, p, len);
        return;
    }
    _cleanup_free_ char *m = xmalloc(len + 1);
    m[0] = '0';
    memcpy(m + 1, p, len);
    _cleanup_berr_ struct berr *err = NULL;
    if (wsc_send(t->w, WSC_BINARY, m, len + 1, &err) < 0 || wsc_process(t->w, 0, &err) < 0)
        die("cannot send to the WebSocket", err);
}

/* Parses whole agent frames out of agent_in. */
static void agent_parse(struct term *t)
{
    size_t off = 0;
    while (t->agent_in.len - off >= AGENT_HEADER_SIZE) {
        const unsigned char *h = (const unsigned char *)t->agent_in.buf + off;
        uint32_t n = agent_get_u32(h + 4);
        if (t->agent_in.len - off - AGENT_HEADER_SIZE < n)
            break;
        if (h[0] == AGENT_STDOUT || h[0] == AGENT_STDERR)
            got_output(t, h + AGENT_HEADER_SIZE, n);
        else if (h[0] == AGENT_EXIT)
            t->ended = true;
        off += AGENT_HEADER_SIZE + n;
    }
    buf_remove_front(&t->agent_in, off);
}

/* Waits up to timeout_ms for output; returns whether some came. */
static bool term_wait(struct term *t, int timeout_ms)
{
    size_t before = t->total;
    int fd = t->w ? wsc_fd(t->w) : t->fd;
    short ev = t->w ? wsc_events(t->w) : POLLIN;
    struct pollfd p = {.fd = fd, .events = ev};
    int n = (t->w && wsc_has_buffered(t->w)) ? 1 : poll(&p, 1, timeout_ms);
    if (n < 0 && errno != EINTR)
        die("poll failed", NULL);
    if (n <= 0)
        return false;
    if (t->w) {
        _cleanup_berr_ struct berr *err = NULL;
        if (wsc_process(t->w, p.revents, &err) < 0)
            die("the WebSocket failed", err);
        if (wsc_done(t->w))
            t->ended = true;
    } else {
        char chunk[65536];
        ssize_t k = read(t->fd, chunk, sizeof(chunk));
        if (k <= 0) {
            t->ended = true;
            return false;
        }
        buf_add(&t->agent_in, chunk, (size_t)k);
        agent_parse(t);
    }
    return t->total > before;
}

/* Reads output until none came for QUIET_MS (and at least some came when
 * `need_some`), within START_TIMEOUT_MS. */
static void term_settle(struct term *t, bool need_some)
{
    double deadline = now_ms() + START_TIMEOUT_MS;
    size_t start = t->total;
    double last = now_ms();
    while (now_ms() < deadline && !t->ended) {
        if (term_wait(t, 50))
            last = now_ms();
        else if (now_ms() - last >= QUIET_MS && (!need_some || t->total > start))
            break;
    }
    buf_reset(&t->out);
}

/* Waits until `needle` is in the output; returns false after timeout_ms. */
static bool term_expect(struct term *t, const char *needle, size_t nlen, double timeout_ms)
{
    double deadline = now_ms() + timeout_ms;
    for (;;) {
        char *hit = memmem(t->out.buf, t->out.len, needle, nlen);
        if (hit) {
            buf_remove_front(&t->out, (size_t)(hit - t->out.buf) + nlen);
            return true;
        }
        if (t->out.len > 4096) /* keep only a tail that may hold the start of needle */
            buf_remove_front(&t->out, t->out.len - nlen);
        double left = deadline - now_ms();
        if (left <= 0 || t->ended)
            return false;
        term_wait(t, (int)ceil(left));
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run_echo(struct term *t, long n)
{
    /* the sync byte, the warm-up and the measured keystrokes */
    _cleanup_free_ char *cmd =
        xasprintf("stty raw -echo; dd bs=1 count=%ld status=none; exit\r", 1 + WARMUP + n);
    term_send(t, cmd, strlen(cmd));
    term_settle(t, true);
    /* in sync: a byte that comes back once, then nothing more */
    term_send(t, "s", 1);
    if (!term_expect(t, "s", 1, STEP_TIMEOUT_MS))
        die("no echo from dd", NULL);
    term_settle(t, false);

    double *v = xcalloc((size_t)n, sizeof(double));
    for (long i = -WARMUP; i < n; i++) {
        char c = (char)('a' + (i + WARMUP) % 26);
        double s = now_ms();
        term_send(t, &c, 1);
        if (!term_expect(t, &c, 1, STEP_TIMEOUT_MS))
            die("a keystroke was not echoed within 10 s", NULL);
        if (i >= 0)
            v[i] = now_ms() - s;
    }
    const char *samples = getenv("TERMINAL_ECHO_SAMPLES");
    if (samples && *samples) {
        FILE *f = fopen(samples, "ae");
        if (!f)
            die("cannot open TERMINAL_ECHO_SAMPLES", NULL);
        for (long i = 0; i < n; i++)
            fprintf(f, "%.4f\n", v[i]);
        if (fclose(f) != 0)
            die("cannot write TERMINAL_ECHO_SAMPLES", NULL);
    }
    double sum = 0;
    for (long i = 0; i < n; i++)
        sum += v[i];
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    size_t p50 = (size_t)ceil(0.50 * (double)n) - 1, p99 = (size_t)ceil(0.99 * (double)n) - 1;
    printf("%.3f %.3f %.3f %.3f %.3f\n", v[p50], v[p99], sum / (double)n, v[0], v[n - 1]);
    free(v);
}

static void run_yes(struct term *t, long lines)
{
    /* the marker is split on the command line, so its echo does not match */
    _cleanup_free_ char *cmd = xasprintf("yes | head -n %ld; echo END-''MARK\r", lines);
    size_t before = t->total;
    double s = now_ms();
    term_send(t, cmd, strlen(cmd));
    if (!term_expect(t, "END-MARK", 8, 120000))
        die("the end marker did not come within 120 s", NULL);
    printf("%.3f %zu\n", (now_ms() - s) / 1000.0, t->total - before);
    term_send(t, "exit\r", 5);
}

int main(int argc, char **argv)
{
    if (argc < 4)
        die("usage: terminal-echo echo|yes ws URL WS N | echo|yes agent SOCKET N", NULL);
    bool ws = strcmp(argv[2], "ws") == 0;
    if ((ws && argc != 6) || (!ws && (strcmp(argv[2], "agent") != 0 || argc != 5)))
        die("usage: terminal-echo echo|yes ws URL WS N | echo|yes agent SOCKET N", NULL);
    long n = strtol(argv[argc - 1], NULL, 10);
    if (n < 1)
        die("N must be a positive number", NULL);

    struct term t = {.fd = -1, .agent_in = BUF_INIT, .out = BUF_INIT};
    if (ws)
        term_open_ws(&t, argv[3], argv[4]);
    else
        term_open_agent(&t, argv[3]);
    term_settle(&t, true); /* the prompt */
    if (strcmp(argv[1], "echo") == 0)
        run_echo(&t, n);
    else
        run_yes(&t, n);
    double deadline = now_ms() + 5000;
    while (!t.ended && now_ms() < deadline)
        term_wait(&t, 100);
    if (!t.ended)
        fprintf(stderr, "terminal-echo: the shell did not exit\n");
    if (t.w)
        wsc_free(t.w);
    else
        close(t.fd);
    buf_release(&t.agent_in);
    buf_release(&t.out);
    return 0;
}
