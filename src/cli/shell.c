/* shell.c - `berth shell` (alias `berth ssh`): an interactive login shell in a workspace.
 *
 * The shell is berthd's terminal WebSocket (docs/api.md, "Terminal"), opened with
 * wsclient.h and the same bearer token as every other command. One poll() loop
 * serves three fds: standard input (each read goes out as a `0` frame), the
 * socket (a `0` frame's bytes are written to standard output, `1` names the
 * session, `2` gives the exit status and ends it), and the read end of a
 * self-pipe that the SIGWINCH handler writes to (the new size goes out as a `1`
 * frame). The initial size travels in the query.
 *
 * When standard input is a terminal it is put in raw mode, so that Ctrl-C,
 * Ctrl-Z and Ctrl-D are bytes for the remote shell. The saved mode is restored on
 * every way out: the normal return (before any message is printed) and the
 * signals that still reach berth (SIGTERM, SIGHUP, and SIGINT or SIGQUIT sent
 * with kill), whose handler restores it and then dies of the same signal.
 *
 * When standard input is not a terminal there is no raw mode, and its end is not
 * passed on: berth stops reading it and relays output until the shell ends and
 * berthd closes the connection. (On a TTY an end of input could only be typed as
 * Ctrl-D, which may end the shell before it has read what came before.) So the
 * input itself should end the shell: `printf 'make\nexit\n' | berth shell WS`.
 *
 * The exit status is the shell's; 255 when the connection ends without one (the
 * shell then goes on for ten minutes in berthd, and can be reattached to with
 * --session ID).
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>

#include "cli/commands.h"
#include "util/fs.h"
#include "cli/wsclient.h"
#include "util/buf.h"
#include "util/xalloc.h"

/* The status when the connection ends without the shell's (as ssh does). */
#define SHELL_EXIT_LOST 255
/* Input read at once: a keystroke, or a piece of a paste. */
#define SHELL_READ_CHUNK (16 * 1024)
/* Input is not read while this much is queued for berthd. */
#define SHELL_HIGH_WATER (1024 * 1024)
/* How long to wait for berthd's close after the exit status. */
#define SHELL_CLOSE_WAIT_MS 2000
/* berthd's close code for a terminal another client took over. */
#define SHELL_CLOSE_TAKEN_OVER 4000

struct shell {
    const char *ws; /* as the user wrote it */
    bool verbose;
    bool raw;    /* standard input is in raw mode */
    int size_fd; /* the terminal whose size is sent, or -1 */
    unsigned cols, rows;
    char *session;
    bool exited;
    int status;
};

/* What the signal handlers need: the mode to restore, and the self-pipe. */
static struct termios saved_tio;
static volatile sig_atomic_t tio_saved;
static volatile sig_atomic_t winch_fd = -1;

static const int fatal_signals[] = {SIGTERM, SIGHUP, SIGINT, SIGQUIT};

/* ------------------------------------------------------------------------
 * The local terminal
 */

static void raw_leave(void)
{
    if (tio_saved) {
        (void)tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_tio);
        tio_saved = 0;
    }
}

static int raw_enter(void)
{
    if (tcgetattr(STDIN_FILENO, &saved_tio) < 0)
        return -errno;
    struct termios t = saved_tio;
    cfmakeraw(&t);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    tio_saved = 1;
    if (tcsetattr(STDIN_FILENO, TCSADRAIN, &t) < 0) {
        int r = -errno;
        tio_saved = 0;
        return r;
    }
    return 0;
}

/* SIGTERM, SIGHUP, SIGINT, SIGQUIT: give the terminal back, then die of the
 * signal, so that the caller sees how berth ended. */
static void fatal_handler(int sig)
{
    if (tio_saved)
        (void)tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
    (void)signal(sig, SIG_DFL);
    (void)raise(sig);
}

static void winch_handler(int sig)
{
    int saved = errno;
    if (winch_fd >= 0)
        (void)write(winch_fd, "w", 1); /* a full pipe already has a wake-up in it */
    errno = saved;
}

static void signals_set(void (*fatal)(int), void (*winch)(int))
{
    struct sigaction sa = {.sa_handler = fatal, .sa_flags = SA_RESTART};
    (void)sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < ELEMENTSOF(fatal_signals); i++)
        (void)sigaction(fatal_signals[i], &sa, NULL);
    sa.sa_handler = winch;
    (void)sigaction(SIGWINCH, &sa, NULL);
}

/* The size of the terminal size_fd, when there is one and it knows its size. */
static bool term_size(int fd, unsigned *ret_cols, unsigned *ret_rows)
{
    struct winsize wsz;
    if (fd < 0 || ioctl(fd, TIOCGWINSZ, &wsz) < 0 || wsz.ws_col == 0 || wsz.ws_row == 0)
        return false;
    *ret_cols = wsz.ws_col;
    *ret_rows = wsz.ws_row;
    return true;
}

/* Writes a message for the user to stderr: "berth: …", with "\r\n" while the
 * terminal is raw (its output post-processing is off). */
_printf_(2, 3) static void shell_note(const struct shell *sh, const char *fmt, ...)
{
    _cleanup_buf_ struct buf b = BUF_INIT;
    va_list ap;
    buf_adds(&b, "berth: ");
    va_start(ap, fmt);
    buf_vaddf(&b, fmt, ap);
    va_end(ap);
    buf_adds(&b, sh->raw ? "\r\n" : "\n");
    (void)write_all(STDERR_FILENO, b.buf, b.len);
}

/* Writes all of data to standard output, which may have been left non-blocking
 * by another program sharing the terminal. */
static int write_out(const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, p, len);
        if (n < 0 && errno == EAGAIN) {
            struct pollfd pfd = {.fd = STDOUT_FILENO, .events = POLLOUT};
            (void)poll(&pfd, 1, -1);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * The WebSocket
 */

static int shell_message_cb(struct wsc *w, int opcode, const unsigned char *msg, size_t len,
                            void *data, struct berr **reterr)
{
    struct shell *sh = data;
    if (opcode != WSC_BINARY || len == 0)
        return 0; /* not part of the protocol: ignored */
    const char *rest = (const char *)msg + 1;
    json_error_t jerr;
    switch (msg[0]) {
    case '0': {
        int r = write_out(rest, len - 1);
        if (r < 0)
            return berr_make(reterr, -r, "cannot write the terminal's output: %s", strerror(-r));
        return 0;
    }
    case '1': {
        _cleanup_(json_decrefp) json_t *j = json_loadb(rest, len - 1, 0, &jerr);
        const char *id = json_string_value(json_object_get(j, "session"));
        if (!id)
            return 0; /* other notices may come later */
        free(sh->session);
        sh->session = xstrdup(id);
        if (sh->verbose)
            shell_note(sh, "terminal session %s (reattach with 'berth shell %s --session %s')", id,
                       sh->ws, id);
        return 0;
    }
    case '2': {
        _cleanup_(json_decrefp) json_t *j = json_loadb(rest, len - 1, 0, &jerr);
        json_int_t status = 0;
        if (!j || json_unpack_ex(j, &jerr, 0, "{s:I}", "exit", &status) < 0)
            return berr_make(reterr, EBADMSG, "berthd sent a bad exit message: %s", jerr.text);
        sh->exited = true;
        sh->status = status < 0 || status > 255 ? SHELL_EXIT_LOST : (int)status;
        return 0;
    }
    default:
        return 0; /* kinds added later are not for this client */
    }
}

/* Sends the terminal's size when it changed since it was last sent. */
static int shell_resize(struct shell *sh, struct wsc *w, struct berr **reterr)
{
    unsigned cols, rows;
    if (!term_size(sh->size_fd, &cols, &rows) || (cols == sh->cols && rows == sh->rows))
        return 0;
    sh->cols = cols;
    sh->rows = rows;
    _cleanup_free_ char *m = xasprintf("1{\"cols\":%u,\"rows\":%u}", cols, rows);
    return wsc_send(w, WSC_BINARY, m, strlen(m), reterr);
}

/* Relays until the connection ends (returns 0) or fails. */
static int shell_loop(struct shell *sh, struct wsc *w, int sig_fd, struct berr **reterr)
{
    bool input = true;
    _cleanup_free_ char *in = xmalloc(1 + SHELL_READ_CHUNK); /* '0' and the bytes */
    in[0] = '0';
    while (!wsc_done(w)) {
        bool reading = input && !sh->exited && wsc_queued(w) < SHELL_HIGH_WATER;
        struct pollfd p[3] = {
            {.fd = sig_fd, .events = POLLIN},
            {.fd = reading ? STDIN_FILENO : -1, .events = POLLIN},
            {.fd = wsc_fd(w), .events = wsc_events(w)},
        };
        int timeout = wsc_has_buffered(w) ? 0 : sh->exited ? SHELL_CLOSE_WAIT_MS : -1;
        int n = poll(p, ELEMENTSOF(p), timeout);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return berr_make(reterr, errno, "poll: %s", strerror(errno));
        if (n == 0 && sh->exited)
            return 0; /* berthd did not close; the status is known anyway */
        if (p[0].revents) {
            char drain[64];
            while (read(sig_fd, drain, sizeof(drain)) > 0)
                ;
            int r = shell_resize(sh, w, reterr);
            if (r < 0)
                return r;
        }
        if (p[1].revents) {
            ssize_t k = read(STDIN_FILENO, in + 1, SHELL_READ_CHUNK);
            if (k > 0) {
                int r = wsc_send(w, WSC_BINARY, in, (size_t)k + 1, reterr);
                if (r < 0)
                    return r;
            } else if (k == 0 || (errno != EINTR && errno != EAGAIN)) {
                input = false; /* the end of input: see the top of the file */
            }
        }
        int r = wsc_process(w, p[2].revents, reterr);
        if (r < 0)
            return r;
    }
    return 0;
}

static char *shell_path(const struct cli_args *a, unsigned cols, unsigned rows)
{
    _cleanup_buf_ struct buf q = BUF_INIT;
    buf_adds(&q, "/terminal");
    char sep = '?';
    if (cols && rows) {
        buf_addf(&q, "?cols=%u&rows=%u", cols, rows);
        sep = '&';
    }
    if (a->task) {
        _cleanup_free_ char *name = cmd_api_path("", a->task, "");
        buf_addf(&q, "%ctask=%s", sep, name);
    } else if (a->session) {
        _cleanup_free_ char *id = cmd_api_path("", a->session, "");
        buf_addf(&q, "%csession=%s", sep, id);
    }
    return cmd_ws_path(a->pos.v[0], q.buf);
}

static void shell_release(struct shell *sh)
{
    raw_leave();
    free(sh->session);
}

static void pipe_release(int (*p)[2])
{
    winch_fd = -1;
    closep(&(*p)[0]);
    closep(&(*p)[1]);
}

int cmd_shell(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_(shell_release) struct shell sh = {.ws = a->pos.v[0], .verbose = a->verbose};
    bool tty_in = isatty(STDIN_FILENO);
    sh.size_fd = tty_in                  ? STDIN_FILENO
                 : isatty(STDOUT_FILENO) ? STDOUT_FILENO
                 : isatty(STDERR_FILENO) ? STDERR_FILENO
                                         : -1;
    if (!term_size(sh.size_fd, &sh.cols, &sh.rows))
        sh.cols = sh.rows = 0; /* berthd's default, 80x24 */

    _cleanup_(pipe_release) int sig_pipe[2] = {-1, -1};
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return berr_make(reterr, errno, "cannot make a pipe: %s", strerror(errno));
    winch_fd = sig_pipe[1];
    /* SIGPIPE would end berth without giving the terminal back; EPIPE does not */
    (void)signal(SIGPIPE, SIG_IGN);
    signals_set(fatal_handler, winch_handler);

    _cleanup_free_ char *path = shell_path(a, sh.cols, sh.rows);
    _cleanup_(wsc_freep) struct wsc *w = NULL;
    int r = wsc_connect(client_url(c), path, client_token(c), shell_message_cb, &sh, &w, reterr);
    if (r < 0)
        return r; /* berthd's own words: "workspace 'x' is stopped, not running" */
    if ((a->session || a->task) && sh.cols) {
        /* a terminal attached to again keeps the size it had: make it this one's */
        sh.cols = sh.rows = 0;
        r = shell_resize(&sh, w, reterr);
        if (r < 0)
            return r;
    }
    if (tty_in) {
        r = raw_enter();
        if (r < 0)
            return berr_make(reterr, -r, "cannot put the terminal in raw mode: %s", strerror(-r));
        sh.raw = true;
    }

    _cleanup_berr_ struct berr *err = NULL;
    r = shell_loop(&sh, w, sig_pipe[0], &err);
    raw_leave();
    sh.raw = false;
    if (sh.exited)
        return sh.status;
    if (r < 0)
        shell_note(&sh, "%s", berr_msg(err));
    else if (wsc_close_code(w) == SHELL_CLOSE_TAKEN_OVER)
        shell_note(&sh, "the terminal was attached elsewhere");
    else
        shell_note(&sh, "berthd closed the terminal without the shell's exit status");
    if (a->task && wsc_close_code(w) != SHELL_CLOSE_TAKEN_OVER)
        shell_note(&sh, "the task runs on: 'berth shell %s --task %s'", sh.ws, a->task);
    else if (sh.session && wsc_close_code(w) != SHELL_CLOSE_TAKEN_OVER)
        shell_note(&sh, "the shell may still run for 10 minutes: 'berth shell %s --session %s'",
                   sh.ws, sh.session);
    return SHELL_EXIT_LOST;
}
