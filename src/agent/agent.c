/* agent.c - berth-agent, the process that runs as PID 1 inside every workspace container.
 *
 * berthd must reach a workspace's commands and terminals without container networking and
 * without going through the engine for every keystroke, so each container runs this small
 * static program. It listens on a unix socket in the workspace's run directory (bind-mounted
 * from the host) and speaks the framed protocol of agent-proto.h, one session per connection.
 *
 * The parts, one file each:
 *   - agent-frame.c: the byte queues (one per connection for frames going to the client and
 *     one for stdin going to the command; every queue has a limit, so a peer can only stall
 *     its own session), sending and closing, and the frame parser, which never trusts a length;
 *   - agent-exec.c: EXEC, the child side between fork() and execve() (its failures travel
 *     back over a close-on-exec pipe, so the client reads a sentence instead of a bare exit
 *     status) and the parent's relay between the client and the command's pipes or pty;
 *   - agent-tunnel.c: TCP_CONNECT, a non-blocking connect() to a port inside the container,
 *     then the socket handed over (PASS_FD) or raw bytes relayed both ways;
 *   - agent-ports.c: PORTS_WATCH, the listeners in /proc/net/tcp{,6} as they change;
 *   - agent-ttys.c: TTY_WATCH, when terminals the agent did not open last printed;
 *   - agent-auth.c: the TCP listener for berthd on another host, and its handshake;
 *   - agent-creds.c: CRED_SERVE, git's credential requests passed on to berthd on another
 *     host;
 *   - this file: the loop, one poll() over the listening socket, a signalfd and every
 *     connection's fds. As PID 1 it reaps every orphan, forwards signals to the image's own
 *     command, and on SIGTERM stops everything within about two seconds so a container stop
 *     never waits out the engine's timeout.
 *
 * It is single-threaded and never blocks: sockets and pipes are non-blocking and nothing is
 * freed while poll() results still point at it (dead connections are swept between turns).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent-internal.h"

struct agent_state agent = {
    .listen_fd = -1, .tcp_listen_fd = -1, .signal_fd = -1, .cred_listen_fd = -1};

/* ---- processes ---- */

static void agent_reap(int64_t now)
{
    int status;
    pid_t pid;

    /* As PID 1 every orphan in the container lands here; reap them all, not only ours. */
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == agent.cmd_pid) {
            agent.cmd_pid = 0;
            if (WIFSIGNALED(status))
                fprintf(stderr, "berth-agent: '%s' killed by signal %d\n", agent.cmd_name,
                        WTERMSIG(status));
            else
                fprintf(stderr, "berth-agent: '%s' exited with status %d\n", agent.cmd_name,
                        WEXITSTATUS(status));
            continue;
        }
        for (size_t i = 0; i < agent.nconns; i++) {
            struct conn *c = agent.conns[i];
            if (c->pid == pid && !c->reaped) {
                c->reaped = true;
                c->status = status;
                c->drain_deadline = now + AGENT_DRAIN_MS;
                break;
            }
        }
    }
}

static void agent_start_command(char **argv)
{
    pid_t pid = fork();

    if (pid < 0)
        die("cannot start '%s': %s", argv[0], strerror(errno));
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        /* Its own process group, so the final SIGKILL reaches whatever it started too; it
         * keeps the container's terminal, if there is one, in the foreground. */
        (void)setpgid(0, 0);
        if (isatty(STDIN_FILENO)) {
            signal(SIGTTOU, SIG_IGN);
            (void)tcsetpgrp(STDIN_FILENO, getpid());
            signal(SIGTTOU, SIG_DFL);
        }
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        if (agent.nofile_raised)
            (void)setrlimit(RLIMIT_NOFILE, &agent.nofile);
        execvp(argv[0], argv);
        fprintf(stderr, "berth-agent: cannot run '%s': %s\n", argv[0], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    (void)setpgid(pid, pid); /* also from here, so a signal right away finds the group */
    agent.cmd_pid = pid;
    agent.cmd_name = argv[0];
}

static void agent_begin_shutdown(int64_t now)
{
    agent.shutting_down = true;
    agent.shutdown_deadline = now + AGENT_SHUTDOWN_MS;
    if (agent.listen_fd >= 0) {
        close_fd(&agent.listen_fd);
        (void)unlink(agent.socket_path);
    }
    for (size_t i = 0; i < agent.nconns; i++) {
        struct conn *c = agent.conns[i];
        session_kill(c, SIGTERM);
        if (c->tty)
            session_kill(c, SIGHUP); /* interactive shells ignore SIGTERM, not a hangup */
        session_kill(c, SIGCONT);
        /* Only EXEC sessions have an ending worth waiting for; relays and watches would
         * only hold the container up. */
        if (c->state != CONN_SESSION && c->state != CONN_CLOSING)
            conn_drop_client(c, now);
    }
    if (agent.cmd_pid > 0)
        (void)kill(agent.cmd_pid, SIGTERM);
    /* As PID 1, daemons that sessions left behind get the same chance to stop cleanly;
     * kill(-1) from anything else would reach the whole host. */
    if (getpid() == 1)
        (void)kill(-1, SIGTERM);
}

/* As PID 1 the container ends with the agent, so orphans are waited for too. */
static bool agent_done(void)
{
    siginfo_t info;

    if (agent.cmd_pid > 0)
        return false;
    for (size_t i = 0; i < agent.nconns; i++)
        if (!agent.conns[i]->wr_shut) /* all sent: no need to wait for the client's EOF */
            return false;
    if (getpid() != 1)
        return true;
    return waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0 && errno == ECHILD;
}

static void agent_finish_shutdown(void)
{
    for (size_t i = 0; i < agent.nconns; i++)
        session_kill(agent.conns[i], SIGKILL);
    if (agent.cmd_pid > 0)
        (void)kill(-agent.cmd_pid, SIGKILL);
    exit(0);
}

static void agent_read_signals(int64_t now)
{
    struct signalfd_siginfo si;

    while (read(agent.signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            agent_reap(now);
            break;
        case SIGTERM:
        case SIGINT:
            if (agent.shutting_down)
                agent_finish_shutdown(); /* asked twice: do not wait any longer */
            agent_begin_shutdown(now);
            break;
        default:
            /* PID 1 passes the rest on to the image's command, as an init should; to the
             * command alone, as docker-init does, since a shell's children do not expect a
             * SIGUSR1 meant for the shell. */
            if (agent.cmd_pid > 0)
                (void)kill(agent.cmd_pid, (int)si.ssi_signo);
            break;
        }
    }
}

struct conn *conn_new(int fd, enum conn_state state, int64_t now)
{
    struct conn *c = xrealloc(NULL, sizeof(*c));
    *c = (struct conn){.fd = fd,
                       .state = state,
                       .deadline = now + AGENT_IDLE_MS,
                       .tcp_fd = -1,
                       .in_fd = -1,
                       .out_fd = -1,
                       .err_fd = -1,
                       .pty_fd = -1,
                       .report_fd = -1,
                       .drain_deadline = NEVER,
                       .kill_deadline = NEVER};
    if (agent.nconns == agent.conns_cap) {
        agent.conns_cap = agent.conns_cap ? agent.conns_cap * 2 : 16;
        agent.conns = xrealloc(agent.conns, agent.conns_cap * sizeof(*agent.conns));
    }
    agent.conns[agent.nconns++] = c;
    return c;
}

/* Accepts on listen_fd; connections from the TCP listener (tcp) start with the handshake. */
static void agent_accept(int listen_fd, bool tcp, int64_t now)
{
    while (agent.nconns < AGENT_MAX_CONNS) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            /* Out of fds, the pending connection stays readable: without a pause the loop
             * would spin until some session ends. */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                agent.accept_resume = now + 100;
            return;
        }
        struct conn *c = conn_new(fd, CONN_REQUEST, now);
        if (tcp)
            auth_begin(c, now);
    }
}

/* Runs the timers, finishes sessions, frees what is dead, and returns the next deadline. */
static int64_t agent_tick(int64_t now)
{
    int64_t next = agent.shutting_down ? agent.shutdown_deadline : NEVER;

    if (agent.accept_resume > now && agent.accept_resume < next)
        next = agent.accept_resume;
    ports_tick(now, &next);
    ttys_tick(now, &next);
    creds_tick(now);

    for (size_t i = 0; i < agent.nconns;) {
        struct conn *c = agent.conns[i];
        if (c->fd >= 0 && c->state == CONN_CONNECTING && now >= c->deadline)
            relay_connect_timeout(c, now);
        else if (c->fd >= 0 && conn_timed(c) && now >= c->deadline)
            conn_drop_client(c, now); /* never asked for anything, or stopped reading */
        if (c->abandoned && !c->reaped && now >= c->kill_deadline) {
            session_kill(c, SIGKILL);
            c->kill_deadline = NEVER;
        }
        /* The grace period only counts while output can flow: a client reading slowly
         * must not lose the command's last output. */
        if (session_running(c) && c->reaped && buf_pending(&c->out) >= AGENT_OUT_LIMIT &&
            c->drain_deadline < now + AGENT_DRAIN_MS)
            c->drain_deadline = now + AGENT_DRAIN_MS;
        session_maybe_finish(c, now);
        if (c->fd < 0 && (c->pid == 0 || c->reaped)) {
            conn_free(c);
            agent.conns[i] = agent.conns[--agent.nconns];
            continue;
        }
        if (c->fd >= 0 && conn_timed(c) && c->deadline < next)
            next = c->deadline;
        if (session_running(c) && c->reaped && c->drain_deadline < next)
            next = c->drain_deadline;
        if (c->abandoned && !c->reaped && c->kill_deadline < next)
            next = c->kill_deadline;
        i++;
    }
    return next;
}

enum watch_kind {
    WATCH_LISTEN,
    WATCH_LISTEN_TCP,
    WATCH_LISTEN_CRED,
    WATCH_SIGNAL,
    WATCH_CLIENT,
    WATCH_IN,
    WATCH_OUT,
    WATCH_ERR,
    WATCH_REPORT,
    WATCH_TCP
};

struct watch {
    struct conn *conn;
    enum watch_kind kind;
    int fd;
};

static struct pollfd *pfds;
static struct watch *watches;
static size_t nwatches, watches_cap;

static void watch(struct conn *c, enum watch_kind kind, int fd, short events)
{
    if (fd < 0 || events == 0)
        return;
    if (nwatches == watches_cap) {
        watches_cap = watches_cap ? watches_cap * 2 : 64;
        pfds = xrealloc(pfds, watches_cap * sizeof(*pfds));
        watches = xrealloc(watches, watches_cap * sizeof(*watches));
    }
    pfds[nwatches] = (struct pollfd){.fd = fd, .events = events};
    watches[nwatches++] = (struct watch){.conn = c, .kind = kind, .fd = fd};
}

static void agent_build_watches(int64_t now)
{
    nwatches = 0;
    watch(NULL, WATCH_SIGNAL, agent.signal_fd, POLLIN);
    if (agent.nconns < AGENT_MAX_CONNS && now >= agent.accept_resume) {
        watch(NULL, WATCH_LISTEN, agent.listen_fd, POLLIN);
        watch(NULL, WATCH_LISTEN_TCP, agent.tcp_listen_fd, POLLIN);
        watch(NULL, WATCH_LISTEN_CRED, agent.cred_listen_fd, POLLIN);
    }
    for (size_t i = 0; i < agent.nconns; i++) {
        struct conn *c = agent.conns[i];
        /* A closing connection moves on (half-close, then linger for the client's EOF) in
         * conn_flush(), so it wants POLLOUT until it half-closed even with nothing queued:
         * PASS_FD sends its CONNECTED outside the queue, and without this such a connection
         * was never polled again and held its socket (and a slot of AGENT_MAX_CONNS) for
         * AGENT_IDLE_MS. */
        bool flush = buf_pending(&c->out) > 0 || (c->state == CONN_CLOSING && !c->wr_shut);
        short ev = flush ? POLLOUT : 0;
        /* A closing connection reads (and discards) only once all is sent: an EOF from a
         * client that half-closed must not cut off its EXIT. */
        if (c->state == CONN_AUTH || c->state == CONN_REQUEST || c->state == CONN_WATCH ||
            c->state == CONN_CRED_SERVE || c->state == CONN_CRED_ASK || c->wr_shut ||
            (c->state == CONN_SESSION && buf_pending(&c->in) < AGENT_IN_LIMIT))
            ev |= POLLIN;
        /* A relay stops reading a side whose bytes the other side does not take; once the
         * server's side broke, the client's bytes are read only to be dropped. */
        bool relay = c->state == CONN_CONNECTING || c->state == CONN_RELAY;
        if (relay && !c->client_eof && (c->tcp_wr_shut || buf_pending(&c->in) < AGENT_RELAY_LIMIT))
            ev |= POLLIN;
        watch(c, WATCH_CLIENT, c->fd, ev);
        if (c->state == CONN_CONNECTING)
            watch(c, WATCH_TCP, c->tcp_fd, POLLOUT);
        if (c->state == CONN_RELAY)
            watch(c, WATCH_TCP, c->tcp_fd,
                  (short)((!c->tcp_eof && buf_pending(&c->out) < AGENT_RELAY_LIMIT ? POLLIN : 0) |
                          (!c->tcp_wr_shut && buf_pending(&c->in) > 0 ? POLLOUT : 0)));
        if (!session_running(c))
            continue;
        /* Backpressure: past the limit the command blocks on its own full pipe. */
        bool room = buf_pending(&c->out) < AGENT_OUT_LIMIT;
        bool input = buf_pending(&c->in) > 0 || (c->stdin_eof && !c->tty);
        if (c->tty) {
            watch(c, WATCH_OUT, c->out_fd, (short)((room ? POLLIN : 0) | (input ? POLLOUT : 0)));
        } else {
            watch(c, WATCH_IN, c->in_fd, input ? POLLOUT : 0);
            watch(c, WATCH_OUT, c->out_fd, room ? POLLIN : 0);
            watch(c, WATCH_ERR, c->err_fd, room ? POLLIN : 0);
        }
        watch(c, WATCH_REPORT, c->report_fd, POLLIN);
    }
}

static void agent_dispatch(size_t i, int64_t now)
{
    struct watch *w = &watches[i];
    struct conn *c = w->conn;
    short rev = pfds[i].revents;

    /* An earlier event in this turn may have closed the fd (and its number been reused). */
    switch (w->kind) {
    case WATCH_SIGNAL:
        agent_read_signals(now);
        break;
    case WATCH_LISTEN:
        if (agent.listen_fd == w->fd)
            agent_accept(w->fd, false, now);
        break;
    case WATCH_LISTEN_TCP:
        if (agent.tcp_listen_fd == w->fd)
            agent_accept(w->fd, true, now);
        break;
    case WATCH_LISTEN_CRED:
        if (agent.cred_listen_fd == w->fd)
            creds_accept(now);
        break;
    case WATCH_CLIENT:
        if (c->fd != w->fd)
            break;
        if (rev & (POLLOUT | POLLERR | POLLHUP))
            conn_flush(c, now);
        if (c->fd >= 0 && (rev & (POLLIN | POLLHUP | POLLERR))) {
            if (pfds[i].events & POLLIN)
                conn_read(c, now);
            else if (rev & (POLLHUP | POLLERR))
                conn_drop_client(c, now);
        }
        break;
    case WATCH_IN:
        if (c->in_fd == w->fd)
            session_write_input(c);
        break;
    case WATCH_OUT:
        if (c->out_fd != w->fd)
            break;
        if (rev & POLLOUT)
            session_write_input(c);
        if (c->out_fd >= 0 && (rev & (POLLIN | POLLHUP | POLLERR)))
            session_read_output(c, &c->out_fd, AGENT_STDOUT);
        break;
    case WATCH_ERR:
        if (c->err_fd == w->fd)
            session_read_output(c, &c->err_fd, AGENT_STDERR);
        break;
    case WATCH_REPORT:
        if (c->report_fd == w->fd)
            session_read_report(c);
        break;
    case WATCH_TCP:
        if (c->tcp_fd != w->fd)
            break;
        if (c->state == CONN_CONNECTING) {
            relay_connect_done(c, now);
            break;
        }
        if (rev & (POLLOUT | POLLERR | POLLHUP))
            relay_flush_tcp(c, now);
        if (c->tcp_fd == w->fd && (pfds[i].events & POLLIN) && (rev & (POLLIN | POLLHUP | POLLERR)))
            relay_read_tcp(c, now);
        break;
    default:
        break;
    }
}

static void agent_listen(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    struct stat st;

    if (strlen(path) >= sizeof(addr.sun_path))
        die("cannot bind '%s': %s", path, strerror(ENAMETOOLONG));
    memcpy(addr.sun_path, path, strlen(path) + 1);
    /* A socket left by an earlier run of this container; anything else is not ours. */
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        (void)unlink(path);
    agent.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (agent.listen_fd < 0)
        die("cannot create a socket: %s", strerror(errno));
    /* The umask makes it 0600 from the start: nobody can connect before the chmod. */
    mode_t old_mask = umask(0177);
    int r = bind(agent.listen_fd, (struct sockaddr *)&addr, sizeof(addr));
    int bind_errno = errno;
    umask(old_mask);
    if (r < 0)
        die("cannot bind '%s': %s", path, strerror(bind_errno));
    if (chmod(path, 0600) < 0)
        die("cannot chmod '%s': %s", path, strerror(errno));
    if (listen(agent.listen_fd, SOMAXCONN) < 0)
        die("cannot listen on '%s': %s", path, strerror(errno));
    agent.socket_path = path;
}

static void agent_setup_signals(void)
{
    sigset_t set;

    sigemptyset(&set);
    int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaddset(&set, sigs[i]);
    /* Blocked signals still reach PID 1 through the signalfd; unblocked ones with default
     * action would be dropped by the kernel for an init process. */
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        die("cannot block signals: %s", strerror(errno));
    agent.signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (agent.signal_fd < 0)
        die("cannot create a signalfd: %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);
}

/* fds the runtime or a test harness passed in belong to the image's command (started
 * before this), never to a session's command. */
static void agent_cloexec_inherited(void)
{
    struct rlimit rl;

    if (syscall(SYS_close_range, 3U, ~0U, 1U << 2 /* CLOSE_RANGE_CLOEXEC, Linux 5.11 */) == 0)
        return;
    rlim_t max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? rl.rlim_cur : 65536;
    for (int fd = 3; fd < (int)max; fd++)
        (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* Hundreds of relays take two fds each; engines often set a soft limit of 1024 with a far
 * higher hard one. Commands get the engine's limit back (child_run). */
static void agent_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    agent.nofile = rl;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        agent.nofile_raised = true;
}

static _noreturn_ void usage(void)
{
    fputs("usage: berth-agent [--socket PATH] [--tcp ADDR:PORT --key FILE --id ID] "
          "[-- CMD ARGS...]\n",
          stderr);
    exit(2);
}

/* `berth-agent git-credential get`: git's credential helper inside a workspace.
 * It hands git's request (key=value lines on stdin) to berthd and prints
 * berthd's answer: through the socket berthd keeps in the remote user's run
 * directory while the workspace runs (one host), or else through the agent's
 * AGENT_CRED_SOCKET, which a CRED_SERVE session from berthd opens (a
 * workspace on another host). Credentials thus come from berthd on demand and
 * are never written into the container. Other operations (store, erase) are
 * accepted and ignored, as git expects of a read-only helper. */
#define AGENT_CREDENTIAL_SOCKET "/.berth/ide/credentials.sock"

static int credential_connect(void)
{
    static const char *const paths[] = {AGENT_CREDENTIAL_SOCKET, AGENT_CRED_SOCKET};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", paths[i]);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return fd;
        if (fd >= 0)
            close(fd);
    }
    return -1;
}

static int git_credential(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[2], "get") != 0)
        return 0;
    char req[16384];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(0, req + n, sizeof(req) - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n >= sizeof(req) - 1)
            return 1;
    }
    int fd = credential_connect();
    if (fd < 0)
        return 0; /* no credentials offered: git goes on without */
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, req + off, n - off);
        if (w <= 0)
            return 0;
        off += (size_t)w;
    }
    (void)shutdown(fd, SHUT_WR);
    char out[16384];
    size_t m = 0;
    for (;;) {
        ssize_t r = read(fd, out + m, sizeof(out) - m);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || (m += (size_t)r) >= sizeof(out))
            break;
    }
    for (size_t off = 0; off < m;) {
        ssize_t w = write(1, out + off, m - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    return 0;
}

static int wipe_status;

static int wipe_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag;
    if (f->level == 0)
        return 0; /* the mount point itself stays */
    if (remove(path) < 0 && errno != ENOENT) {
        fprintf(stderr, "berth-agent: cannot remove '%s': %s\n", path, strerror(errno));
        wipe_status = 1; /* the rest goes all the same */
    }
    return 0;
}

static int wipe(int n, char **dirs)
{
    int status = 0;
    for (int i = 0; i < n; i++)
        /* depth first, never following a symlink or crossing a mount */
        if (nftw(dirs[i], wipe_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0) {
            fprintf(stderr, "berth-agent: cannot wipe '%s': %s\n", dirs[i], strerror(errno));
            status = 1;
        }
    return status | wipe_status;
}

static unsigned long long tree_files, tree_bytes;

static int tree_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)path, (void)f;
    if (flag == FTW_F && S_ISREG(st->st_mode)) {
        tree_files++;
        tree_bytes += (unsigned long long)st->st_size;
    }
    return 0;
}

/* `berth-agent check-tree DIR FILES BYTES`: 0 when DIR holds FILES regular
 * files of BYTES bytes in all (a node's copy of VS Code's tree is whole);
 * else DIR is emptied, for Docker to copy into again at the next mount, and
 * the status is 3. */
static int check_tree(char **argv)
{
    char *end1, *end2;
    unsigned long long files = strtoull(argv[3], &end1, 10), bytes = strtoull(argv[4], &end2, 10);
    if (*end1 || *end2)
        usage();
    if (nftw(argv[2], tree_entry, 16, FTW_PHYS | FTW_MOUNT) < 0) {
        fprintf(stderr, "berth-agent: cannot read '%s': %s\n", argv[2], strerror(errno));
        return 1;
    }
    if (tree_files == files && tree_bytes == bytes)
        return 0;
    fprintf(stderr, "berth-agent: '%s' holds %llu files of %llu bytes, not %llu of %llu: emptied\n",
            argv[2], tree_files, tree_bytes, files, bytes);
    return wipe(1, argv + 2) == 0 ? 3 : 1;
}

int main(int argc, char **argv)
{
    const char *path = AGENT_DEFAULT_SOCKET;
    const char *tcp = NULL, *key_file = NULL, *id = NULL;
    char **cmd = NULL;

    if (argc >= 2 && strcmp(argv[1], "git-credential") == 0)
        return git_credential(argc, argv);
    /* `berth-agent check PATH`: 0 when PATH is an executable, for images with
     * no shell (the job that fills a node's IDE volume: swarm-ide.c) */
    if (argc == 3 && strcmp(argv[1], "check") == 0)
        return access(argv[2], X_OK) == 0 ? 0 : 1;
    if (argc == 5 && strcmp(argv[1], "check-tree") == 0)
        return check_tree(argv);
    /* `berth-agent wipe DIR...`: empties each DIR (a volume's mount point,
     * which stays), for a removed workspace's volumes on a node */
    if (argc >= 3 && strcmp(argv[1], "wipe") == 0)
        return wipe(argc - 2, argv + 2);

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            if (i + 1 < argc)
                cmd = argv + i + 1;
            break;
        } else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--tcp") == 0 && i + 1 < argc) {
            tcp = argv[++i];
        } else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc) {
            key_file = argv[++i];
        } else if (strcmp(argv[i], "--id") == 0 && i + 1 < argc) {
            id = argv[++i];
        } else {
            usage();
        }
    }

    /* The engine may start PID 1 with fds 0-2 closed; a pipe landing there would be
     * clobbered by the dup2() calls in children. */
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0)
            die("cannot open '/dev/null': %s", strerror(errno));

    agent_setup_signals();
    agent_raise_nofile();
    /* Outside a PID namespace (tests, other runtimes) orphans of sessions still come here. */
    if (getpid() != 1)
        (void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    if ((tcp != NULL) != (key_file != NULL) || (tcp != NULL) != (id != NULL))
        usage(); /* a TCP listener without its handshake is never what anyone wants */
    agent_listen(path);
    if (tcp)
        auth_setup(tcp, key_file, id);
    if (cmd)
        agent_start_command(cmd);
    agent_cloexec_inherited();

    for (;;) {
        int64_t now = now_ms();
        int64_t next = agent_tick(now);
        if (agent.shutting_down && (agent_done() || now >= agent.shutdown_deadline))
            agent_finish_shutdown();
        agent_build_watches(now);
        int timeout = -1;
        if (next != NEVER)
            timeout = next <= now ? 0 : next - now > INT_MAX ? INT_MAX : (int)(next - now);
        int n = poll(pfds, nwatches, timeout);
        if (n < 0 && errno != EINTR)
            die("poll failed: %s", strerror(errno));
        now = now_ms();
        for (size_t i = 0; n > 0 && i < nwatches; i++)
            if (pfds[i].revents)
                agent_dispatch(i, now);
    }
}
