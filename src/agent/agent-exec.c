/* agent-exec.c - EXEC sessions: a command with its pipes or pty, relayed to one client.
 *
 * The request's fields are parsed into a struct exec_req; session_spawn() forks. The child
 * side (everything between fork() and execve(): new session, pty or pipes, user switch, cwd,
 * environment, PATH search) reports its failures over a close-on-exec pipe, so the client reads
 * a sentence instead of a bare exit status. The parent side relays the client's STDIN to the
 * command and its output back as frames, with limits on both queues, and decides when the
 * session ends: the command reaped and its output drained, or a short grace for a background
 * process that keeps the pipe open. A client that leaves first hangs the command up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pty.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent-internal.h"

bool session_running(const struct conn *c)
{
    return c->state == CONN_SESSION && c->pid > 0 && !c->abandoned;
}

/* Signals the command's process group. Right after fork() the child may not have called
 * setsid() yet, so the group does not exist; then the child itself is signalled. */
void session_kill(struct conn *c, int sig)
{
    if (c->pid <= 0 || c->reaped)
        return;
    if (kill(-c->pid, sig) < 0 && errno == ESRCH)
        (void)kill(c->pid, sig);
}

void session_close_fds(struct conn *c)
{
    if (c->out_fd == c->pty_fd)
        c->out_fd = -1;
    close_fd(&c->pty_fd);
    close_fd(&c->in_fd);
    close_fd(&c->out_fd);
    close_fd(&c->err_fd);
    close_fd(&c->report_fd);
    buf_release(&c->in);
}

/* The client is gone (or broke the protocol) before EXIT: hang up like a closed terminal,
 * and escalate to SIGKILL if that is ignored. */
void session_abandon(struct conn *c, int64_t now)
{
    c->abandoned = true;
    session_close_fds(c);
    session_kill(c, SIGHUP);
    session_kill(c, SIGCONT); /* a stopped job would never see the hangup */
    c->kill_deadline = c->reaped ? NEVER : now + AGENT_HANGUP_KILL_MS;
}

/* ---- EXEC requests ---- */

struct exec_req {
    char **argv; /* NULL-terminated */
    size_t argc;
    char **env; /* "NAME=value", or "NAME" to unset */
    size_t envc;
    char *cwd;
    char *user;
    bool tty;
    unsigned short cols, rows;
};

static void strv_push(char ***v, size_t *n, char *s)
{
    *v = xrealloc(*v, (*n + 2) * sizeof(**v));
    (*v)[(*n)++] = s;
    (*v)[*n] = NULL;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static void exec_req_release(struct exec_req *req)
{
    strv_free(req->argv);
    strv_free(req->env);
    free(req->cwd);
    free(req->user);
    *req = (struct exec_req){0};
}

/* Returns NULL, or why the fields are unusable. Strings may not hold NUL: they become C
 * strings, and a cut-off path or argument would run something the client did not ask for. */
static const char *exec_req_parse(struct exec_req *req, const unsigned char *p, size_t n)
{
    while (n > 0) {
        unsigned tag;
        const unsigned char *v;
        size_t len;
        const char *why = field_next(&p, &n, &tag, &v, &len);
        if (why)
            return why;
        bool text = tag == AGENT_FIELD_ARG || tag == AGENT_FIELD_ENV || tag == AGENT_FIELD_CWD ||
                    tag == AGENT_FIELD_USER;
        if (text && memchr(v, '\0', len))
            return "field contains a NUL byte";
        switch (tag) {
        case AGENT_FIELD_ARG:
            strv_push(&req->argv, &req->argc, xstrndup(v, len));
            break;
        case AGENT_FIELD_ENV:
            if (len == 0 || v[0] == '=')
                return "ENV field without a name";
            strv_push(&req->env, &req->envc, xstrndup(v, len));
            break;
        case AGENT_FIELD_CWD:
            free(req->cwd);
            req->cwd = xstrndup(v, len);
            break;
        case AGENT_FIELD_USER:
            free(req->user);
            req->user = xstrndup(v, len);
            break;
        case AGENT_FIELD_TTY:
            if (len != 4)
                return "TTY field is not 4 bytes";
            req->tty = true;
            req->cols = (unsigned short)(v[0] << 8 | v[1]);
            req->rows = (unsigned short)(v[2] << 8 | v[3]);
            break;
        default:
            break; /* newer clients may send fields this agent does not know */
        }
    }
    if (req->argc == 0)
        return "no ARG field";
    return NULL;
}

/* ---- the child, between fork() and execve() ---- */

/* Setup failures are written to the report pipe as one sentence and the child exits with
 * the status a shell would use (127 not found, 126 cannot run, 1 for a bad cwd). */
static _noreturn_ _printf_(3, 4) void child_fail(int report_fd, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vdprintf(report_fd, fmt, ap);
    va_end(ap);
    _exit(code);
}

struct child_user {
    char *name, *home, *shell;
    uid_t uid;
    gid_t gid;
    bool in_passwd; /* has supplementary groups to look up */
};

/* USER is a name, or a uid that may lack a passwd entry (as with `docker run --user 1234`);
 * such a bare uid gets its own number as gid and no supplementary groups. */
static void child_resolve_user(const char *spec, struct child_user *u, int report_fd)
{
    struct passwd *pw = getpwnam(spec);
    bool numeric = spec[0] != '\0' && strspn(spec, "0123456789") == strlen(spec);

    if (!pw && numeric) {
        errno = 0;
        unsigned long v = strtoul(spec, NULL, 10);
        if (errno != 0 || v >= (uid_t)-1)
            child_fail(report_fd, 126, "user '%s' is out of range", spec);
        pw = getpwuid((uid_t)v);
        if (!pw) {
            u->name = xstrndup(spec, strlen(spec));
            u->home = xstrndup(v == 0 ? "/root" : "/", v == 0 ? 5 : 1);
            u->shell = xstrndup("/bin/sh", 7);
            u->uid = (uid_t)v;
            u->gid = (gid_t)v;
            u->in_passwd = false;
            return;
        }
    }
    if (!pw)
        child_fail(report_fd, 126, "user '%s' not found", spec);
    u->name = xstrndup(pw->pw_name, strlen(pw->pw_name));
    u->home =
        pw->pw_dir && pw->pw_dir[0] ? xstrndup(pw->pw_dir, strlen(pw->pw_dir)) : xstrndup("/", 1);
    u->shell = pw->pw_shell && pw->pw_shell[0] ? xstrndup(pw->pw_shell, strlen(pw->pw_shell))
                                               : xstrndup("/bin/sh", 7);
    u->uid = pw->pw_uid;
    u->gid = pw->pw_gid;
    u->in_passwd = true;
}

/* initgroups() in musl stops at NGROUPS_MAX (32); developers in many groups are common
 * enough that the list is grown instead. */
static int child_set_groups(const struct child_user *u)
{
    if (!u->in_passwd)
        return setgroups(1, &u->gid);
    int n = 64;
    gid_t *groups = NULL;
    for (;;) {
        int want = n;
        groups = xrealloc(groups, (size_t)n * sizeof(*groups));
        if (getgrouplist(u->name, u->gid, groups, &n) >= 0)
            break;
        if (want >= 65536)
            return -1;
        n = n > want ? n : want * 2;
    }
    return setgroups((size_t)n, groups);
}

static void child_switch_user(const struct child_user *u, int report_fd)
{
    if (geteuid() != 0) {
        /* Only in tests or a rootless set-up: the agent can run commands as itself only. */
        if (u->uid != geteuid())
            child_fail(report_fd, 126, "cannot run as user '%s': the agent is not root", u->name);
        return;
    }
    if (child_set_groups(u) < 0)
        child_fail(report_fd, 126, "cannot set the groups of user '%s': %s", u->name,
                   strerror(errno));
    if (setgid(u->gid) < 0)
        child_fail(report_fd, 126, "cannot switch to group %u: %s", (unsigned)u->gid,
                   strerror(errno));
    if (setuid(u->uid) < 0)
        child_fail(report_fd, 126, "cannot switch to user '%s': %s", u->name, strerror(errno));
    /* A command that believes it runs as the workspace user but kept root would defeat the
     * whole point of the user field, so the drop is verified, not assumed. */
    if (u->uid != 0 && (getuid() != u->uid || geteuid() != u->uid || getgid() != u->gid ||
                        getegid() != u->gid || setuid(0) == 0))
        child_fail(report_fd, 126, "cannot switch to user '%s': privileges were not dropped",
                   u->name);
}

/* Sets "NAME=value" (or unsets "NAME") in env, replacing an earlier value of NAME. */
static void env_put(char ***env, size_t *n, char *entry)
{
    size_t name_len = strcspn(entry, "=");
    bool unset = entry[name_len] == '\0';

    for (size_t i = 0; i < *n; i++) {
        if (strncmp((*env)[i], entry, name_len) != 0 || (*env)[i][name_len] != '=')
            continue;
        free((*env)[i]);
        if (unset) {
            memmove(&(*env)[i], &(*env)[i + 1], (*n - i) * sizeof(**env));
            (*n)--;
            free(entry);
        } else {
            (*env)[i] = entry;
        }
        return;
    }
    if (unset)
        free(entry);
    else
        strv_push(env, n, entry);
}

static void env_putf(char ***env, size_t *n, const char *name, const char *value)
{
    char *entry;

    if (asprintf(&entry, "%s=%s", name, value) < 0)
        oom();
    env_put(env, n, entry);
}

static const char *env_get(char **env, const char *name)
{
    size_t len = strlen(name);

    for (size_t i = 0; env && env[i]; i++)
        if (strncmp(env[i], name, len) == 0 && env[i][len] == '=')
            return env[i] + len + 1;
    return NULL;
}

/* Searches PATH from the command's environment, not the agent's, as a login would. */
static _noreturn_ void child_exec(char **argv, char **env, int report_fd)
{
    const char *cmd = argv[0];
    size_t cmd_len = strlen(cmd);

    if (cmd_len == 0)
        child_fail(report_fd, 127, "command not found: ''");
    if (strchr(cmd, '/')) {
        execve(cmd, argv, env);
        child_fail(report_fd, errno == ENOENT || errno == ENOTDIR ? 127 : 126,
                   "cannot execute '%s': %s", cmd, strerror(errno));
    }
    const char *path = env_get(env, "PATH");
    bool denied = false;
    for (const char *p = path ? path : AGENT_DEFAULT_PATH;; p++) {
        const char *end = strchrnul(p, ':');
        size_t dir_len = (size_t)(end - p);
        char *full = xrealloc(NULL, dir_len + cmd_len + 2);
        if (dir_len > 0) {
            memcpy(full, p, dir_len);
            full[dir_len] = '/';
            memcpy(full + dir_len + 1, cmd, cmd_len + 1);
        } else {
            memcpy(full, cmd, cmd_len + 1); /* empty entry: the current directory */
        }
        execve(full, argv, env);
        int err = errno;
        if (err == EACCES)
            denied = true;
        else if (err != ENOENT && err != ENOTDIR && err != ENAMETOOLONG)
            child_fail(report_fd, 126, "cannot execute '%s': %s", full, strerror(err));
        free(full);
        p = end;
        if (*p == '\0')
            break;
    }
    if (denied)
        child_fail(report_fd, 126, "cannot execute '%s': %s", cmd, strerror(EACCES));
    child_fail(report_fd, 127, "command not found: '%s'", cmd);
}

static _noreturn_ void child_run(const struct exec_req *req, pid_t agent_pid, int report_fd,
                                 int fd0, int fd1, int fd2)
{
    sigset_t none;

    /* The agent blocks signals for its signalfd, ignores SIGPIPE and raised its fd limit; all
     * are inherited through execve() and would break ordinary programs (`yes | head` relies
     * on SIGPIPE, select() on fds below 1024). */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (agent.nofile_raised)
        (void)setrlimit(RLIMIT_NOFILE, &agent.nofile);

    /* Its own session and process group: job control works, and the agent can signal the
     * command and everything it started in one kill(). */
    if (setsid() < 0)
        child_fail(report_fd, 126, "cannot create a session: %s", strerror(errno));
    if (req->tty && ioctl(fd0, TIOCSCTTY, 0) < 0)
        child_fail(report_fd, 126, "cannot acquire the terminal: %s", strerror(errno));
    if (dup2(fd0, 0) < 0 || dup2(fd1, 1) < 0 || dup2(fd2, 2) < 0)
        child_fail(report_fd, 126, "cannot set up stdio: %s", strerror(errno));

    struct child_user u;
    child_resolve_user(req->user ? req->user : "0", &u, report_fd);
    if (req->tty && geteuid() == 0) {
        /* Programs that reopen their tty by name (ssh, gpg, script) need to own it. */
        struct group *gr = getgrnam("tty");
        (void)fchown(0, u.uid, gr ? gr->gr_gid : (gid_t)-1);
        (void)fchmod(0, 0620);
    }
    child_switch_user(&u, report_fd);

    /* Set after the user switch, which clears it. Without the agent nobody relays the
     * command's output or reaps it, so it should not outlive the agent. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        child_fail(report_fd, 126, "cannot set the parent-death signal: %s", strerror(errno));
    if (getppid() != agent_pid)
        _exit(1);

    if (req->cwd && req->cwd[0] != '\0') {
        if (chdir(req->cwd) < 0)
            child_fail(report_fd, 1, "cannot chdir to '%s': %s", req->cwd, strerror(errno));
    } else if (chdir(u.home) < 0 && chdir("/") < 0) {
        child_fail(report_fd, 1, "cannot chdir to '/': %s", strerror(errno));
    }

    /* The container's own environment (the image's Env and the workspace's
     * containerEnv, as the engine set them for PID 1) is the base, as it is
     * for `docker exec`; the user's identity and the request override it. */
    char **env = NULL;
    size_t envc = 0;
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, "HOSTNAME=", 9) != 0)
            env_put(&env, &envc, xstrndup(*e, strlen(*e)));
    env_putf(&env, &envc, "HOME", u.home);
    env_putf(&env, &envc, "USER", u.name);
    env_putf(&env, &envc, "LOGNAME", u.name);
    env_putf(&env, &envc, "SHELL", u.shell);
    if (!env_get(env, "PATH"))
        env_putf(&env, &envc, "PATH", AGENT_DEFAULT_PATH);
    if (req->tty)
        env_putf(&env, &envc, "TERM", "xterm-256color");
    for (size_t i = 0; i < req->envc; i++)
        env_put(&env, &envc, xstrndup(req->env[i], strlen(req->env[i])));

    child_exec(req->argv, env, report_fd);
}

/* ---- sessions, parent side ---- */

/* Forks the command with the fds the request asks for. Returns 0 or -errno. */
static int session_spawn(struct conn *c, const struct exec_req *req)
{
    int report[2] = {-1, -1}, in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    int master = -1, slave = -1;
    int r = 0;

    if (pipe2(report, O_CLOEXEC) < 0)
        goto fail;
    if (req->tty) {
        struct winsize ws = {.ws_row = req->rows ? req->rows : 24,
                             .ws_col = req->cols ? req->cols : 80};
        if (openpty(&master, &slave, NULL, NULL, &ws) < 0)
            goto fail;
        /* openpty() has no close-on-exec flag; single-threaded, so nothing forks between. */
        (void)fcntl(master, F_SETFD, FD_CLOEXEC);
        (void)fcntl(slave, F_SETFD, FD_CLOEXEC);
        set_nonblock(master);
        struct stat st;
        if (fstat(slave, &st) == 0)
            c->pty_rdev = st.st_rdev;
    } else {
        if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
            goto fail;
        set_nonblock(in[1]);
        set_nonblock(out[0]);
        set_nonblock(err[0]);
    }
    pid_t agent_pid = getpid();
    pid_t pid = fork();
    if (pid < 0)
        goto fail;
    if (pid == 0) {
        if (req->tty)
            child_run(req, agent_pid, report[1], slave, slave, slave);
        child_run(req, agent_pid, report[1], in[0], out[1], err[1]);
    }
    close(report[1]);
    c->report_fd = report[0];
    c->pid = pid;
    c->tty = req->tty;
    if (req->tty) {
        close(slave);
        c->pty_fd = c->out_fd = master;
    } else {
        close(in[0]);
        close(out[1]);
        close(err[1]);
        c->in_fd = in[1];
        c->out_fd = out[0];
        c->err_fd = err[0];
    }
    return 0;

fail:
    r = -errno;
    int *fds[] = {&report[0], &report[1], &in[0],  &in[1],  &out[0],
                  &out[1],    &err[0],    &err[1], &master, &slave};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        close_fd(fds[i]);
    return r;
}

void session_start(struct conn *c, const unsigned char *p, size_t n, int64_t now)
{
    struct exec_req req = {0};
    const char *why = exec_req_parse(&req, p, n);

    if (why) {
        conn_fail(c, now, "invalid EXEC request: %s", why);
        exec_req_release(&req);
        return;
    }
    c->state = CONN_SESSION;
    int r = session_spawn(c, &req);
    if (r < 0) {
        conn_send_error(c, "cannot start '%s': %s", req.argv[0], strerror(-r));
        conn_send_u32(c, AGENT_EXIT, 126);
        conn_start_closing(c, now);
    }
    exec_req_release(&req);
}

/* Reads one chunk of the command's output straight into a frame in the client's queue. */
void session_read_output(struct conn *c, int *fd, enum agent_frame_type type)
{
    unsigned char *p = buf_reserve(&c->out, AGENT_HEADER_SIZE + AGENT_CHUNK);
    ssize_t n = read(*fd, p + AGENT_HEADER_SIZE, AGENT_CHUNK);

    if (n > 0) {
        agent_put_header(p, type, (uint32_t)n);
        c->out.len += AGENT_HEADER_SIZE + (size_t)n;
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        /* EOF; a pty master reports EIO once every slave fd is closed. The master stays
         * open until the command is reaped: closing it hangs up the terminal, and a command
         * that closed its stdio just before exit() would die of that SIGHUP instead. */
        if (c->tty) {
            *fd = -1;
            buf_release(&c->in);
        } else {
            close_fd(fd);
        }
    }
}

void session_write_input(struct conn *c)
{
    int fd = c->tty ? c->pty_fd : c->in_fd;

    if (fd >= 0 && buf_pending(&c->in) > 0) {
        ssize_t n = write(fd, c->in.data + c->in.head, buf_pending(&c->in));
        if (n > 0) {
            buf_consume(&c->in, (size_t)n);
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            /* The command closed its stdin (EPIPE): what it did not read is dropped. */
            buf_release(&c->in);
            if (!c->tty)
                close_fd(&c->in_fd);
        }
    }
    if (!c->tty && c->stdin_eof && buf_pending(&c->in) == 0)
        close_fd(&c->in_fd);
}

void session_read_report(struct conn *c)
{
    unsigned char chunk[4096];
    ssize_t n = read(c->report_fd, chunk, sizeof(chunk));

    if (n > 0) {
        size_t room = AGENT_MSG_LIMIT - buf_pending(&c->report);
        buf_add(&c->report, chunk, (size_t)n < room ? (size_t)n : room);
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        close_fd(&c->report_fd);
    }
}

/* EXIT goes out only when everything the command wrote has been relayed, so the client
 * never sees output after EXIT. A background process may hold the pipe or pty open forever,
 * so EOF is awaited only briefly once the command itself has exited. */
void session_maybe_finish(struct conn *c, int64_t now)
{
    if (!session_running(c) || !c->reaped)
        return;
    bool drained = c->out_fd < 0 && c->err_fd < 0 && c->report_fd < 0;
    if (!drained && now < c->drain_deadline)
        return;
    session_close_fds(c);
    if (buf_pending(&c->report) > 0)
        conn_send(c, AGENT_ERROR, c->report.data + c->report.head, buf_pending(&c->report));
    if (WIFSIGNALED(c->status)) {
        unsigned char p[8];
        agent_put_u32(p, 128 + (uint32_t)WTERMSIG(c->status));
        agent_put_u32(p + 4, (uint32_t)WTERMSIG(c->status));
        conn_send(c, AGENT_EXIT, p, sizeof(p));
    } else {
        conn_send_u32(c, AGENT_EXIT, (uint32_t)WEXITSTATUS(c->status));
    }
    conn_start_closing(c, now);
}

void session_handle_frame(struct conn *c, unsigned type, const unsigned char *p, size_t n,
                          int64_t now)
{
    switch (type) {
    case AGENT_STDIN:
        if (!c->stdin_eof && (c->tty ? c->out_fd : c->in_fd) >= 0)
            buf_add(&c->in, p, n);
        break;
    case AGENT_STDIN_EOF:
        if (c->stdin_eof)
            break;
        c->stdin_eof = true;
        if (c->tty && c->out_fd >= 0) {
            /* Closing the master would hang up the terminal; a terminal's EOF is its
             * VEOF character (it ends input only at the start of a line, as typed ^D). */
            struct termios t;
            unsigned char eof = tcgetattr(c->pty_fd, &t) == 0 ? t.c_cc[VEOF] : 4;
            buf_add(&c->in, &eof, 1);
        }
        break;
    case AGENT_RESIZE:
        if (n != 4) {
            conn_fail(c, now, "RESIZE frame is %zu bytes, not 4", n);
            break;
        }
        if (c->tty && c->pty_fd >= 0) {
            struct winsize ws = {.ws_col = (unsigned short)(p[0] << 8 | p[1]),
                                 .ws_row = (unsigned short)(p[2] << 8 | p[3])};
            (void)ioctl(c->pty_fd, TIOCSWINSZ, &ws); /* the kernel sends SIGWINCH */
        }
        break;
    case AGENT_SIGNAL: {
        if (n != 4) {
            conn_fail(c, now, "SIGNAL frame is %zu bytes, not 4", n);
            break;
        }
        uint32_t sig = agent_get_u32(p);
        if (sig == 0 || sig >= (uint32_t)_NSIG)
            conn_send_error(c, "invalid signal %u", (unsigned)sig);
        else
            session_kill(c, (int)sig);
        break;
    }
    default:
        conn_fail(c, now, "unexpected frame type %u in an exec session", type);
        break;
    }
}
