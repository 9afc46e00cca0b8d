/* prompt.c - terminal prompts with echo off, and secrets read from stdin.
 *
 * prompt_line() talks to /dev/tty rather than stdin/stdout so that it works
 * while those are pipes (`berth token create x > file`). With echo off it keeps
 * the terminal's settings in a static for the one signal handler that must put
 * them back when Ctrl-C or a kill ends berth mid-prompt; otherwise the user's
 * shell would be left without echo. Lines are read a byte at a time so that
 * nothing past the newline is consumed.
 */
#include "cli/prompt.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <termios.h>

#include "util/xalloc.h"

static const int prompt_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

/* What the signal handler restores; tty_fd is -1 outside a prompt. */
static volatile sig_atomic_t tty_fd = -1;
static struct termios tty_saved;

static void tty_restore_cb(int sig)
{
    if (tty_fd >= 0) {
        (void)tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
        (void)write(tty_fd, "\n", 1); /* the shell's prompt starts on a new line */
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

void prompt_wipe(char **s)
{
    if (*s)
        explicit_bzero(*s, strlen(*s));
    free(*s);
    *s = NULL;
}

void prompt_wipe_buf(struct buf *b)
{
    explicit_bzero(b->buf, b->len);
    buf_release(b);
}

/* Puts back the terminal settings and signal handlers prompt_line() changed. */
static void prompt_restore(int fd, const struct termios *saved, const struct sigaction *actions)
{
    (void)tcsetattr(fd, TCSAFLUSH, saved);
    tty_fd = -1;
    for (size_t i = 0; i < ELEMENTSOF(prompt_signals); i++)
        (void)sigaction(prompt_signals[i], &actions[i], NULL);
}

/* Reads up to a newline (dropped) or the end of input into *line. Returns 1 for
 * a line, 0 for end of input before any byte, -EMSGSIZE or -errno. */
static int read_line(int fd, struct buf *line)
{
    for (;;) {
        char ch;
        ssize_t n = read(fd, &ch, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return line->len > 0;
        if (ch == '\n')
            return 1;
        if (line->len >= PROMPT_MAX_LINE)
            return -EMSGSIZE;
        buf_addch(line, ch);
    }
}

int prompt_line(const char *what, const char *prompt, bool echo, const char *instead,
                char **ret_line, struct berr **reterr)
{
    _cleanup_close_ int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return berr_make(reterr, ENXIO, "cannot ask for the %s: no terminal (use %s)", what,
                         instead);
    struct termios saved;
    bool restore = false;
    struct sigaction old_actions[ELEMENTSOF(prompt_signals)];
    if (!echo && tcgetattr(fd, &saved) == 0) {
        struct termios quiet = saved;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        quiet.c_lflag |= ECHONL; /* Enter still moves to the next line */
        tty_saved = saved;
        tty_fd = fd;
        struct sigaction sa = {.sa_handler = tty_restore_cb};
        for (size_t i = 0; i < ELEMENTSOF(prompt_signals); i++)
            (void)sigaction(prompt_signals[i], &sa, &old_actions[i]);
        restore = true;
        if (tcsetattr(fd, TCSAFLUSH, &quiet) < 0) {
            int e = errno;
            prompt_restore(fd, &saved, old_actions);
            return berr_make(reterr, e, "cannot turn off echo to ask for the %s: %s", what,
                             strerror(e));
        }
    } else if (!echo) {
        return berr_make(reterr, ENXIO,
                         "cannot ask for the %s: /dev/tty is not a terminal (use %s)", what,
                         instead);
    }

    _cleanup_(prompt_wipe_buf) struct buf line = BUF_INIT;
    size_t plen = strlen(prompt);
    int r = write(fd, prompt, plen) == (ssize_t)plen ? 0 : -EIO;
    if (r >= 0)
        r = read_line(fd, &line);
    if (restore)
        prompt_restore(fd, &saved, old_actions);
    if (r == 0) {
        (void)write(fd, "\n", 1);
        return berr_make(reterr, ECANCELED, "no %s given", what);
    }
    if (r == -EMSGSIZE)
        return berr_make(reterr, EMSGSIZE, "the %s is longer than %d bytes", what, PROMPT_MAX_LINE);
    if (r < 0)
        return berr_make(reterr, -r, "cannot read the %s from the terminal: %s", what,
                         strerror(-r));
    *ret_line = buf_detach(&line, NULL);
    return 0;
}

int prompt_stdin_line(const char *what, char **ret_line, struct berr **reterr)
{
    _cleanup_(prompt_wipe_buf) struct buf line = BUF_INIT;
    int r = read_line(STDIN_FILENO, &line);
    if (r == -EMSGSIZE)
        return berr_make(reterr, EMSGSIZE, "the %s on stdin is longer than %d bytes", what,
                         PROMPT_MAX_LINE);
    if (r < 0)
        return berr_make(reterr, -r, "cannot read the %s from stdin: %s", what, strerror(-r));
    if (line.len == 0)
        return berr_make(reterr, EINVAL, "no %s on stdin", what);
    if (memchr(line.buf, 0, line.len))
        return berr_make(reterr, EINVAL, "the %s on stdin has a NUL byte", what);
    *ret_line = buf_detach(&line, NULL);
    return 0;
}

int prompt_stdin_all(const char *what, size_t max, struct buf *out, struct berr **reterr)
{
    char chunk[4096];
    int r = 0;
    for (;;) {
        ssize_t n = read(STDIN_FILENO, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = berr_make(reterr, errno, "cannot read the %s from stdin: %s", what,
                          strerror(errno));
            break;
        }
        if (n == 0)
            break;
        if (out->len + (size_t)n > max) {
            r = berr_make(reterr, EMSGSIZE, "the %s on stdin is larger than %zu bytes", what, max);
            break;
        }
        buf_add(out, chunk, (size_t)n);
    }
    explicit_bzero(chunk, sizeof(chunk));
    if (r < 0) {
        prompt_wipe_buf(out);
        return r;
    }
    if (out->len > 0 && out->buf[out->len - 1] == '\n')
        out->buf[--out->len] = 0;
    return 0;
}
