/* run.c - fork/exec with merged output, line callbacks, a timeout and an uid drop.
 *
 * Everything the child needs (the resolved path, argv, envp) is prepared before
 * fork(), because berthd is multi-threaded and the child may only make
 * async-signal-safe calls until execve.
 */
#include "util/run.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/xalloc.h"

extern char **environ;

void run_cmd_release(struct run_cmd *c)
{
    strv_release(&c->args);
    strv_release(&c->env);
    buf_release(&c->output);
}

static char *find_program(const char *name, const char *path)
{
    if (strchr(name, '/'))
        return xstrdup(name);
    if (!path)
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    _cleanup_free_ char *copy = xstrdup(path);
    char *save = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
        if (access(p, X_OK) == 0)
            return TAKE_PTR(p);
    }
    return NULL;
}

static void emit_lines(struct run_cmd *c, struct buf *pending, bool flush)
{
    if (!c->line_cb)
        return;
    for (;;) {
        char *nl = memchr(pending->buf, '\n', pending->len);
        if (!nl && !(flush && pending->len) && pending->len < 65536)
            return;
        size_t n = nl ? (size_t)(nl - pending->buf) : pending->len;
        _cleanup_free_ char *line = xstrndup(pending->buf, n);
        /* git progress uses \r; keep what a person would see last */
        char *cr = strrchr(line, '\r');
        c->line_cb(cr && cr[1] ? cr + 1 : line, c->data);
        buf_remove_front(pending, nl ? n + 1 : n);
        if (!pending->len)
            return;
    }
}

int run_cmd(struct run_cmd *c, struct berr **reterr)
{
    if (c->args.n == 0)
        return berr_make(reterr, EINVAL, "no program to run");
    char **envp = c->env.n ? c->env.v : environ;
    const char *path = c->env.n ? strv_getenv(&c->env, "PATH") : getenv("PATH");
    _cleanup_free_ char *prog = find_program(c->args.v[0], path);
    if (!prog)
        return berr_make(reterr, ENOENT, "cannot run '%s': program not found", c->args.v[0]);

    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return berr_make(reterr, errno, "pipe: %s", strerror(errno));
    _cleanup_close_ int rd = pipefd[0];
    _cleanup_close_ int wr = pipefd[1];

    pid_t pid = fork();
    if (pid < 0)
        return berr_make(reterr, errno, "fork: %s", strerror(errno));
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(wr, 1) < 0 || dup2(wr, 2) < 0)
            _exit(126);
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        setpgid(0, 0);
        if (c->set_ids) {
            if (setgroups(0, NULL) < 0 || setgid(c->gid) < 0 || setuid(c->uid) < 0)
                _exit(126);
            if (getuid() != c->uid || geteuid() != c->uid)
                _exit(126);
        }
        if (c->cwd && chdir(c->cwd) < 0)
            _exit(126);
        execve(prog, c->args.v, envp);
        _exit(127);
    }
    closep(&wr);

    _cleanup_buf_ struct buf pending = BUF_INIT;
    long long deadline = c->timeout_ms > 0 ? mono_ms() + c->timeout_ms : 0;
    bool timed_out = false;
    char chunk[16384];
    for (;;) {
        int wait_ms = -1;
        if (deadline) {
            long long left = deadline - mono_ms();
            if (left <= 0) {
                timed_out = true;
                break;
            }
            wait_ms = (int)left;
        }
        struct pollfd p = {.fd = rd, .events = POLLIN};
        int r = poll(&p, 1, wait_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            continue;
        ssize_t n = read(rd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (c->capture && c->output.len < c->max_output) {
            size_t room = c->max_output - c->output.len;
            buf_add(&c->output, chunk, (size_t)n < room ? (size_t)n : room);
        }
        if (c->line_cb) {
            buf_add(&pending, chunk, (size_t)n);
            emit_lines(c, &pending, false);
        }
    }
    emit_lines(c, &pending, true);
    if (timed_out)
        (void)kill(-pid, SIGKILL), (void)kill(pid, SIGKILL);

    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return berr_make(reterr, errno, "waitpid: %s", strerror(errno));
    if (timed_out)
        return berr_make(reterr, ETIMEDOUT, "'%s' timed out after %d s", c->args.v[0],
                         c->timeout_ms / 1000);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}
