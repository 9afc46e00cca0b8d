/* agent.c - berth-agent, the process that runs as PID 1 inside every workspace container.
 *
 * berthd must reach a workspace's commands and terminals without container networking and
 * without going through the engine for every keystroke, so each container runs this small
 * static program. It listens on a unix socket in the workspace's run directory (bind-mounted
 * from the host) and speaks the framed protocol of agent-proto.h, one session per connection.
 *
 * The parts, in the order they appear:
 *   - byte queues: one per connection for frames going to the client and one for stdin going
 *     to the command; every queue has a limit, so a peer can only stall its own session;
 *   - the child side of an EXEC: everything between fork() and execve() (new session, pty or
 *     pipes, user switch, cwd, environment, PATH search). Its failures travel back over a
 *     close-on-exec pipe, so the client reads a sentence instead of a bare exit status;
 *   - sessions: the parent's relay between the client and the command's pipes or pty, and the
 *     rules for when a session ends (command reaped and output drained, or a short grace for
 *     a background process that keeps the pipe open);
 *   - TCP relays (TCP_CONNECT): a non-blocking connect() to a port inside the container, then
 *     raw bytes both ways with half-closes passed on. Bytes go straight from one socket to
 *     the other while the receiver keeps up; only what it refuses is queued, so a busy relay
 *     costs two syscalls per chunk and one whose peers keep up holds no buffer;
 *   - port watches (PORTS_WATCH): while anyone watches, /proc/net/tcp{,6} is read twice a
 *     second and the difference to the last look is sent; /proc/PID/fd is searched for the
 *     owners of new sockets only;
 *   - the frame parser, which never trusts a length;
 *   - the loop: one poll() over the listening socket, a signalfd and every connection's fds.
 *     As PID 1 it reaps every orphan, forwards signals to the image's own command, and on
 *     SIGTERM stops everything within about two seconds so a container stop never waits out
 *     the engine's timeout.
 *
 * It is single-threaded and never blocks: sockets and pipes are non-blocking and nothing is
 * freed while poll() results still point at it (dead connections are swept between turns).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pty.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "agent-proto.h"

#define AGENT_DEFAULT_SOCKET "/.berth/" AGENT_SOCKET_NAME
#define AGENT_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define AGENT_MAX_CONNS 1024
#define AGENT_CHUNK (64 * 1024)           /* largest STDOUT/STDERR frame and read size */
#define AGENT_OUT_LIMIT (4 * 1024 * 1024) /* unsent output that pauses the command's pipes */
#define AGENT_IN_LIMIT (1024 * 1024)      /* unwritten stdin that pauses reading the client */
#define AGENT_MSG_LIMIT (16 * 1024)       /* longest ERROR message */
#define AGENT_DRAIN_MS 200                /* output grace after the command exits */
#define AGENT_HANGUP_KILL_MS 1000         /* SIGHUP, then SIGKILL if still alive */
#define AGENT_SHUTDOWN_MS 2000            /* engine stop timeout is 10 s; stay well inside */
#define AGENT_IDLE_MS 30000               /* no request yet, or a client that stopped reading */
#define AGENT_LINGER_MS 1000              /* after the last frame, for the client to close */
#define AGENT_RELAY_LIMIT (256 * 1024)    /* queued relay bytes that pause reading the source */
#define AGENT_RELAY_READS 8               /* chunks moved per wake-up, so one relay cannot starve */
#define AGENT_CONNECT_MS 10000            /* per address; loopback only waits on a full backlog */
#define AGENT_PORTS_SCAN_MS 500           /* "about a second" for a change to reach the client */
#define AGENT_PORTS_MAX 4096              /* listeners tracked; a frame of them stays < 1 MiB */

#define NEVER INT64_MAX
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_ __attribute__((noreturn))

static _noreturn_ _printf_(1, 2) void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("berth-agent: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* Out of memory aborts, as everywhere in Berth: as PID 1 that stops the container, which the
 * daemon notices and reports; limping on would leave sessions half-served. */
static _noreturn_ void oom(void)
{
    fputs("berth-agent: out of memory\n", stderr);
    abort();
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        oom();
    return p;
}

static char *xstrndup(const void *s, size_t n)
{
    char *p = xrealloc(NULL, n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void set_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags >= 0)
        (void)fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* ---- byte queues ---- */

/* Bytes [head, len) of data are queued; the space before head is reclaimed lazily so that
 * sending a little from a large queue does not move the rest every time. */
struct buf {
    unsigned char *data;
    size_t head, len, cap;
};

static size_t buf_pending(const struct buf *b)
{
    return b->len - b->head;
}

/* Returns room for n more bytes at data + len; the caller advances len by what it used. */
static unsigned char *buf_reserve(struct buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return b->data + b->len;
    if (b->head > 0 && b->head >= buf_pending(b)) {
        memmove(b->data, b->data + b->head, buf_pending(b));
        b->len -= b->head;
        b->head = 0;
        if (b->cap - b->len >= n)
            return b->data + b->len;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < n)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
    return b->data + b->len;
}

static void buf_add(struct buf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    memcpy(buf_reserve(b, n), p, n);
    b->len += n;
}

static void buf_release(struct buf *b)
{
    free(b->data);
    *b = (struct buf){0};
}

static void buf_consume(struct buf *b, size_t n)
{
    b->head += n;
    if (b->head < b->len)
        return;
    b->head = b->len = 0;
    /* A burst of output should not pin megabytes per idle terminal. */
    if (b->cap > 4 * AGENT_CHUNK)
        buf_release(b);
}

/* ---- connections ---- */

enum conn_state {
    CONN_REQUEST,    /* waiting for the request frame */
    CONN_SESSION,    /* an EXEC is running */
    CONN_CONNECTING, /* TCP_CONNECT: connect() in progress; client bytes are queued raw */
    CONN_RELAY,      /* TCP_CONNECT: connected; raw bytes both ways, no frames */
    CONN_WATCH,      /* PORTS_WATCH: PORTS frames go out; only the client's close comes in */
    CONN_CLOSING,    /* last frames queued; close once they are sent */
};

union inet_addr {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
};

struct conn {
    int fd; /* client socket, -1 once closed */
    enum conn_state state;
    int64_t deadline; /* CONN_REQUEST: request timeout; CONN_CLOSING: stall timeout */

    unsigned char hdr[AGENT_HEADER_SIZE]; /* frame being received */
    size_t hdr_got;
    unsigned char *payload;
    size_t payload_len, payload_got;
    struct buf out; /* frames for the client */

    /* The EXEC session; pid is 0 until a command was started. */
    pid_t pid;
    bool reaped;    /* waitpid() returned it; status is valid, pid may be reused */
    bool abandoned; /* the client left first: no more relaying, only the hangup */
    bool tty;
    bool stdin_eof;
    bool wr_shut; /* CONN_CLOSING: everything sent, waiting for the client to close */
    int status;
    int in_fd;     /* pipe to the command's stdin */
    int out_fd;    /* pipe from its stdout, or pty_fd until the pty reports EOF */
    int pty_fd;    /* tty mode: the master; takes input, resizes, and closes last */
    int err_fd;    /* pipe from its stderr */
    int report_fd; /* setup errors from the child; EOF once execve() succeeded */
    struct buf in; /* client input not yet taken by the command */
    struct buf report;
    int64_t drain_deadline; /* after exit: give up waiting for EOF on the output */
    int64_t kill_deadline;  /* after a hangup: SIGKILL if it is still running */

    /* The TCP_CONNECT session. in holds the client's bytes for the server, out the CONNECTED
     * frame and then the server's bytes for the client; deadline bounds each connect(). */
    int tcp_fd;
    unsigned short tcp_port;
    bool tcp_host_given;
    bool tcp_pass_fd; /* PASS_FD: hand the connected socket over instead of relaying */
    unsigned tcp_naddrs, tcp_tried;
    union inet_addr tcp_addrs[2];
    int tcp_errno;       /* the most telling failure among the addresses tried */
    bool client_eof;     /* the client half-closed: shut the server's side once in drains */
    bool tcp_wr_shut;    /* nothing more goes to the server (shut down, or it failed) */
    bool tcp_eof;        /* nothing more comes from the server */
    bool tcp_failed;     /* it failed: close the client once out drains, without its EOF */
    bool client_wr_shut; /* the server's EOF was passed on */

    /* The PORTS_WATCH session */
    bool watch_listed; /* the initial list was sent; from now on only changes */
};

/* A listening TCP socket as PORTS_WATCH reports it. */
struct port {
    unsigned long inode; /* the lowest inode listening on this address and port */
    pid_t pid;           /* the owner; 0 when none was found */
    unsigned short port;
    unsigned char family; /* AF_INET (addr[0..3]) or AF_INET6 */
    unsigned char addr[16];
    bool resolved; /* pid and comm are known, or known to be unknowable */
    bool own;      /* the agent's: never reported */
    char comm[32];
};

static struct {
    const char *socket_path;
    int listen_fd;
    int signal_fd;
    struct conn **conns;
    size_t nconns, conns_cap;
    pid_t cmd_pid; /* the image's own command, 0 when none or gone */
    char *cmd_name;
    int64_t accept_resume; /* out of fds: accepting again from then on */
    bool shutting_down;
    int64_t shutdown_deadline;
    struct rlimit nofile; /* as the engine set it; restored for every command */
    bool nofile_raised;
    struct port *ports; /* the last look at the listeners, sorted by port_cmp() */
    size_t nports;
    int64_t ports_next_scan;
} agent = {.listen_fd = -1, .signal_fd = -1};

/* Where every read from a socket or pipe lands first. */
static unsigned char scratch[AGENT_CHUNK];

static void conn_send(struct conn *c, enum agent_frame_type type, const void *data, size_t len)
{
    if (c->fd < 0)
        return;
    unsigned char *p = buf_reserve(&c->out, AGENT_HEADER_SIZE + len);
    agent_put_header(p, type, (uint32_t)len);
    if (len > 0)
        memcpy(p + AGENT_HEADER_SIZE, data, len);
    c->out.len += AGENT_HEADER_SIZE + len;
}

static _printf_(2, 0) void conn_send_errorv(struct conn *c, const char *fmt, va_list ap)
{
    char *msg;
    int n = vasprintf(&msg, fmt, ap);

    if (n < 0)
        oom();
    conn_send(c, AGENT_ERROR, msg, (size_t)n < AGENT_MSG_LIMIT ? (size_t)n : AGENT_MSG_LIMIT);
    free(msg);
}

static _printf_(2, 3) void conn_send_error(struct conn *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    conn_send_errorv(c, fmt, ap);
    va_end(ap);
}

static void conn_send_u32(struct conn *c, enum agent_frame_type type, uint32_t v)
{
    unsigned char p[4];

    agent_put_u32(p, v);
    conn_send(c, type, p, sizeof(p));
}

static void conn_start_closing(struct conn *c, int64_t now)
{
    c->state = CONN_CLOSING;
    c->deadline = now + AGENT_IDLE_MS;
}

/* States that end by a deadline: no request yet, a connect(), a client that stopped
 * reading the last frames. */
static bool conn_timed(const struct conn *c)
{
    return c->state == CONN_REQUEST || c->state == CONN_CONNECTING || c->state == CONN_CLOSING;
}

static bool session_running(const struct conn *c)
{
    return c->state == CONN_SESSION && c->pid > 0 && !c->abandoned;
}

/* Signals the command's process group. Right after fork() the child may not have called
 * setsid() yet, so the group does not exist; then the child itself is signalled. */
static void session_kill(struct conn *c, int sig)
{
    if (c->pid <= 0 || c->reaped)
        return;
    if (kill(-c->pid, sig) < 0 && errno == ESRCH)
        (void)kill(c->pid, sig);
}

static void session_close_fds(struct conn *c)
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
static void session_abandon(struct conn *c, int64_t now)
{
    c->abandoned = true;
    session_close_fds(c);
    session_kill(c, SIGHUP);
    session_kill(c, SIGCONT); /* a stopped job would never see the hangup */
    c->kill_deadline = c->reaped ? NEVER : now + AGENT_HANGUP_KILL_MS;
}

static void conn_drop_client(struct conn *c, int64_t now)
{
    close_fd(&c->fd);
    close_fd(&c->tcp_fd);
    buf_release(&c->in);
    buf_release(&c->out);
    free(c->payload);
    c->payload = NULL;
    if (session_running(c))
        session_abandon(c, now);
}

/* A protocol violation ends the connection: say why, then close. */
static _printf_(3, 4) void conn_fail(struct conn *c, int64_t now, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    conn_send_errorv(c, fmt, ap);
    va_end(ap);
    if (session_running(c))
        session_abandon(c, now);
    conn_start_closing(c, now);
}

static void conn_free(struct conn *c)
{
    close_fd(&c->fd);
    close_fd(&c->tcp_fd);
    session_close_fds(c);
    buf_release(&c->out);
    buf_release(&c->report);
    free(c->payload);
    free(c);
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

/* Takes the next field off the list at *p (n bytes left). Returns NULL, or why the list is
 * malformed. */
static const char *field_next(const unsigned char **p, size_t *n, unsigned *ret_tag,
                              const unsigned char **ret_value, size_t *ret_len)
{
    if (*n < 5)
        return "truncated field header";
    uint32_t len = agent_get_u32(*p + 1);
    if (len > *n - 5)
        return "field longer than the frame";
    *ret_tag = (*p)[0];
    *ret_value = *p + 5;
    *ret_len = len;
    *p += 5 + (size_t)len;
    *n -= 5 + (size_t)len;
    return NULL;
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

static void session_start(struct conn *c, const unsigned char *p, size_t n, int64_t now)
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
static void session_read_output(struct conn *c, int *fd, enum agent_frame_type type)
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

static void session_write_input(struct conn *c)
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

static void session_read_report(struct conn *c)
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
static void session_maybe_finish(struct conn *c, int64_t now)
{
    if (!session_running(c) || !c->reaped)
        return;
    bool drained = c->out_fd < 0 && c->err_fd < 0 && c->report_fd < 0;
    if (!drained && now < c->drain_deadline)
        return;
    session_close_fds(c);
    if (buf_pending(&c->report) > 0)
        conn_send(c, AGENT_ERROR, c->report.data + c->report.head, buf_pending(&c->report));
    int status = WIFSIGNALED(c->status) ? 128 + WTERMSIG(c->status) : WEXITSTATUS(c->status);
    conn_send_u32(c, AGENT_EXIT, (uint32_t)status);
    conn_start_closing(c, now);
}

static void session_handle_frame(struct conn *c, unsigned type, const unsigned char *p, size_t n,
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

/* ---- TCP_CONNECT: a relay to a port inside the container ---- */

/* Returns NULL, or why the request is unusable. */
static const char *relay_parse(struct conn *c, const unsigned char *p, size_t n)
{
    if (n < 2)
        return "no port";
    c->tcp_port = (unsigned short)(p[0] << 8 | p[1]);
    if (c->tcp_port == 0)
        return "port 0";
    p += 2;
    n -= 2;
    while (n > 0) {
        unsigned tag;
        const unsigned char *v;
        size_t len;
        const char *why = field_next(&p, &n, &tag, &v, &len);
        if (why)
            return why;
        if (tag == AGENT_FIELD_PASS_FD)
            c->tcp_pass_fd = true;
        if (tag != AGENT_FIELD_HOST)
            continue;
        /* Numbers only: resolving a name could block the whole agent. */
        char host[INET6_ADDRSTRLEN];
        if (len == 0 || len >= sizeof(host) || memchr(v, '\0', len))
            return "HOST is not a numeric IP address";
        memcpy(host, v, len);
        host[len] = '\0';
        union inet_addr *a = &c->tcp_addrs[0];
        *a = (union inet_addr){0};
        if (inet_pton(AF_INET, host, &a->in4.sin_addr) == 1)
            a->in4.sin_family = AF_INET;
        else if (inet_pton(AF_INET6, host, &a->in6.sin6_addr) == 1)
            a->in6.sin6_family = AF_INET6;
        else
            return "HOST is not a numeric IP address";
        c->tcp_naddrs = 1;
        c->tcp_host_given = true;
    }
    if (!c->tcp_host_given) {
        /* Dev servers bind to either loopback; IPv4 first, as most do. */
        c->tcp_addrs[0] = (union inet_addr){
            .in4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)}};
        c->tcp_addrs[1] =
            (union inet_addr){.in6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT}};
        c->tcp_naddrs = 2;
    }
    for (unsigned i = 0; i < c->tcp_naddrs; i++) {
        if (c->tcp_addrs[i].sa.sa_family == AF_INET)
            c->tcp_addrs[i].in4.sin_port = htons(c->tcp_port);
        else
            c->tcp_addrs[i].in6.sin6_port = htons(c->tcp_port);
    }
    return NULL;
}

/* A container without IPv6 makes ::1 fail; that says less than 127.0.0.1 refusing. */
static bool relay_error_is_weak(int err)
{
    return err == EAFNOSUPPORT || err == EADDRNOTAVAIL || err == ENETUNREACH ||
           err == EPROTONOSUPPORT;
}

static void relay_note_error(struct conn *c, int err)
{
    if (c->tcp_errno == 0 || (relay_error_is_weak(c->tcp_errno) && !relay_error_is_weak(err)))
        c->tcp_errno = err;
}

static void relay_fail(struct conn *c, int64_t now)
{
    char host[INET6_ADDRSTRLEN] = "";
    const union inet_addr *a = &c->tcp_addrs[0];

    if (c->tcp_host_given) {
        const void *bytes = a->sa.sa_family == AF_INET ? (const void *)&a->in4.sin_addr
                                                       : (const void *)&a->in6.sin6_addr;
        if (!inet_ntop(a->sa.sa_family, bytes, host, sizeof(host)))
            host[0] = '\0';
    }
    const char *sep = host[0] ? " " : "";
    if (c->tcp_errno == ECONNREFUSED)
        conn_send_error(c, "connection refused on %s%sport %u", host, sep, c->tcp_port);
    else
        conn_send_error(c, "cannot connect to %s%sport %u: %s", host, sep, c->tcp_port,
                        strerror(c->tcp_errno));
    buf_release(&c->in); /* bytes the client sent ahead have nowhere to go */
    conn_start_closing(c, now);
}

/* Starts connecting to the next address; the socket reports the outcome by turning writable.
 * Without any address left, the client is told why the last ones failed. */
static void relay_connect_next(struct conn *c, int64_t now)
{
    while (c->tcp_tried < c->tcp_naddrs) {
        const union inet_addr *a = &c->tcp_addrs[c->tcp_tried++];
        socklen_t len = a->sa.sa_family == AF_INET ? sizeof(a->in4) : sizeof(a->in6);
        int fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            relay_note_error(c, errno);
            continue;
        }
        if (connect(fd, &a->sa, len) == 0 || errno == EINPROGRESS) {
            c->tcp_fd = fd;
            c->deadline = now + AGENT_CONNECT_MS;
            return;
        }
        relay_note_error(c, errno);
        close(fd);
    }
    relay_fail(c, now);
}

static void relay_connect_timeout(struct conn *c, int64_t now)
{
    relay_note_error(c, ETIMEDOUT);
    close_fd(&c->tcp_fd);
    relay_connect_next(c, now);
}

/* The server's side can take no more bytes: what the client sends from now on is dropped,
 * and once the server's last bytes are relayed the client is closed without waiting for it. */
static void relay_tcp_broken(struct conn *c)
{
    c->tcp_failed = true;
    c->tcp_wr_shut = true;
    buf_release(&c->in);
}

/* Passes half-closes on once their direction is drained, and closes both sockets when both
 * directions are done. */
static void relay_settle(struct conn *c, int64_t now)
{
    if (c->state != CONN_RELAY || c->fd < 0)
        return;
    if (c->client_eof && !c->tcp_wr_shut && buf_pending(&c->in) == 0) {
        (void)shutdown(c->tcp_fd, SHUT_WR);
        c->tcp_wr_shut = true;
    }
    if (c->tcp_eof && !c->client_wr_shut && buf_pending(&c->out) == 0) {
        if (c->tcp_failed) {
            conn_drop_client(c, now);
            return;
        }
        (void)shutdown(c->fd, SHUT_WR);
        c->client_wr_shut = true;
    }
    if (c->tcp_wr_shut && c->client_wr_shut)
        conn_drop_client(c, now);
}

static void relay_flush_tcp(struct conn *c, int64_t now)
{
    if (c->tcp_fd >= 0 && !c->tcp_wr_shut && buf_pending(&c->in) > 0) {
        ssize_t n = send(c->tcp_fd, c->in.data + c->in.head, buf_pending(&c->in), MSG_NOSIGNAL);
        if (n > 0)
            buf_consume(&c->in, (size_t)n);
        else if (n < 0 && errno != EAGAIN && errno != EINTR)
            relay_tcp_broken(c);
    }
    relay_settle(c, now);
}

/* PASS_FD: CONNECTED goes out with the connected socket attached, and the session ends; the
 * client's bytes then never pass through the agent. False (nothing sent) when that cannot be
 * done: then the relay goes on as without PASS_FD. */
static bool relay_pass_fd(struct conn *c, int64_t now)
{
    unsigned char h[AGENT_HEADER_SIZE];
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    struct iovec iov = {.iov_base = h, .iov_len = sizeof(h)};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};

    if (buf_pending(&c->in) > 0 || buf_pending(&c->out) > 0)
        return false; /* bytes already on their way: keep them in order through the relay */
    agent_put_header(h, AGENT_CONNECTED, 0);
    memset(&u, 0, sizeof(u));
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &c->tcp_fd, sizeof(int));
    ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
    if (n < 0)
        return false;
    /* the socket went with the first byte; the rest of the frame follows as usual */
    buf_add(&c->out, h + n, sizeof(h) - (size_t)n);
    close_fd(&c->tcp_fd);
    conn_start_closing(c, now);
    return true;
}

static void relay_connect_done(struct conn *c, int64_t now)
{
    int err = 0, one = 1;
    socklen_t len = sizeof(err);

    if (getsockopt(c->tcp_fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        relay_note_error(c, err);
        close_fd(&c->tcp_fd);
        relay_connect_next(c, now);
        return;
    }
    /* The relay forwards writes as the client made them; Nagle would only add delay to the
     * small ones (keystrokes over a WebSocket). */
    (void)setsockopt(c->tcp_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (c->tcp_pass_fd && relay_pass_fd(c, now))
        return;
    c->state = CONN_RELAY;
    c->deadline = NEVER;
    conn_send(c, AGENT_CONNECTED, NULL, 0);
    relay_flush_tcp(c, now);
}

static void relay_start(struct conn *c, const unsigned char *p, size_t n, int64_t now)
{
    const char *why = relay_parse(c, p, n);

    if (why) {
        conn_fail(c, now, "invalid TCP_CONNECT request: %s", why);
        return;
    }
    c->state = CONN_CONNECTING;
    relay_connect_next(c, now);
}

/* Passes the client's bytes to the server, queueing what it does not take yet (and all of
 * them while still connecting). */
static void relay_from_client(struct conn *c, const unsigned char *p, size_t n)
{
    if (c->tcp_wr_shut)
        return;
    if (c->state == CONN_RELAY && buf_pending(&c->in) == 0) {
        ssize_t w = send(c->tcp_fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            relay_tcp_broken(c);
            return;
        }
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        }
    }
    buf_add(&c->in, p, n);
}

static void relay_read_client(struct conn *c, int64_t now)
{
    for (int i = 0; i < AGENT_RELAY_READS && !c->client_eof; i++) {
        if (!c->tcp_wr_shut && buf_pending(&c->in) >= AGENT_RELAY_LIMIT)
            break;
        ssize_t n = read(c->fd, scratch, sizeof(scratch));
        if (n == 0) {
            c->client_eof = true;
        } else if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                conn_drop_client(c, now);
                return;
            }
            break;
        } else {
            relay_from_client(c, scratch, (size_t)n);
            if ((size_t)n < sizeof(scratch))
                break; /* drained; spare the read that would say EAGAIN */
        }
    }
    relay_settle(c, now);
}

static void relay_read_tcp(struct conn *c, int64_t now)
{
    for (int i = 0; i < AGENT_RELAY_READS && !c->tcp_eof; i++) {
        if (buf_pending(&c->out) >= AGENT_RELAY_LIMIT)
            break;
        ssize_t n = read(c->tcp_fd, scratch, sizeof(scratch));
        if (n == 0) {
            c->tcp_eof = true;
        } else if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                c->tcp_eof = true; /* reset: relay what came before, then close */
                relay_tcp_broken(c);
            }
            break;
        } else {
            size_t sent = 0;
            if (buf_pending(&c->out) == 0) {
                ssize_t w = send(c->fd, scratch, (size_t)n, MSG_NOSIGNAL);
                if (w < 0 && errno != EAGAIN && errno != EINTR) {
                    conn_drop_client(c, now);
                    return;
                }
                sent = w > 0 ? (size_t)w : 0;
            }
            buf_add(&c->out, scratch + sent, (size_t)n - sent);
            if ((size_t)n < sizeof(scratch))
                break;
        }
    }
    relay_settle(c, now);
}

/* ---- PORTS_WATCH: listening TCP ports ---- */

static int port_key_cmp(const void *pa, const void *pb)
{
    const struct port *a = pa, *b = pb;

    if (a->port != b->port)
        return a->port < b->port ? -1 : 1;
    if (a->family != b->family)
        return a->family < b->family ? -1 : 1;
    return memcmp(a->addr, b->addr, sizeof(a->addr));
}

/* By address and port, then lowest inode first. */
static int port_cmp(const void *pa, const void *pb)
{
    const struct port *a = pa, *b = pb;
    int r = port_key_cmp(a, b);

    if (r != 0)
        return r;
    return a->inode < b->inode ? -1 : a->inode > b->inode;
}

static int port_inode_cmp(const void *pa, const void *pb)
{
    const struct port *a = *(struct port *const *)pa, *b = *(struct port *const *)pb;

    return a->inode < b->inode ? -1 : a->inode > b->inode;
}

static bool hex_u32(const char *s, size_t len, uint32_t *ret)
{
    uint32_t v = 0;

    if (len == 0 || len > 8)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        unsigned d = ch >= '0' && ch <= '9'   ? (unsigned)(ch - '0')
                     : ch >= 'A' && ch <= 'F' ? (unsigned)(ch - 'A' + 10)
                     : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10)
                                              : 16;
        if (d > 15)
            return false;
        v = v << 4 | d;
    }
    *ret = v;
    return true;
}

/* Parses a listening socket's line of /proc/net/tcp or tcp6:
 *     "  0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000  0 4711"
 * (slot, local address:port, remote, state, queues, timer, retransmits, uid, timeout, inode).
 * The kernel prints an address as the words it holds in memory, so storing the numbers back
 * as native words restores the address bytes on either byte order. */
static bool port_parse_line(char *line, struct port *ret)
{
    char *tok[10], *save = NULL;
    size_t n = 0;

    for (char *t = strtok_r(line, " \t\n", &save); t && n < 10; t = strtok_r(NULL, " \t\n", &save))
        tok[n++] = t;
    uint32_t state, port;
    if (n < 10 || !hex_u32(tok[3], strlen(tok[3]), &state) || state != 0x0A /* LISTEN */)
        return false;
    char *colon = strchr(tok[1], ':');
    size_t addr_len = colon ? (size_t)(colon - tok[1]) : 0;
    if ((addr_len != 8 && addr_len != 32) || !hex_u32(colon + 1, strlen(colon + 1), &port) ||
        port == 0 || port > 0xffff)
        return false;
    struct port p = {.family = addr_len == 8 ? AF_INET : AF_INET6, .port = (unsigned short)port};
    for (size_t i = 0; i < addr_len / 8; i++) {
        uint32_t word;
        if (!hex_u32(tok[1] + 8 * i, 8, &word))
            return false;
        memcpy(p.addr + 4 * i, &word, sizeof(word));
    }
    char *end;
    errno = 0;
    p.inode = strtoul(tok[9], &end, 10);
    if (errno != 0 || *end != '\0' || end == tok[9] || p.inode == 0)
        return false;
    *ret = p;
    return true;
}

/* Appends the listeners in path. Returns 0 or -errno. */
static int ports_read(const char *path, struct port **v, size_t *n, size_t *cap)
{
    FILE *f = fopen(path, "re");
    char line[512]; /* the kernel pads lines to 150 (tcp) and about 180 (tcp6) bytes */

    if (!f)
        return -errno;
    /* The kernel walks its socket tables again for every read(); stdio's 1 KiB reads made
     * that several walks per file. Nothing else uses scratch while the table is read. */
    (void)setvbuf(f, (char *)scratch, _IOFBF, sizeof(scratch));
    while (fgets(line, sizeof(line), f)) {
        if (!strchr(line, '\n') && !feof(f)) {
            int ch;
            while ((ch = fgetc(f)) != EOF && ch != '\n')
                ; /* not a line this parser knows: skip all of it */
            continue;
        }
        struct port p;
        if (*n >= AGENT_PORTS_MAX || !port_parse_line(line, &p))
            continue;
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 32;
            *v = xrealloc(*v, *cap * sizeof(**v));
        }
        (*v)[(*n)++] = p;
    }
    fclose(f);
    return 0;
}

static void port_read_comm(int pid_dfd, char *comm, size_t size)
{
    char raw[64];
    int fd = openat(pid_dfd, "comm", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, raw, sizeof(raw)) : -1;

    if (fd >= 0)
        close(fd);
    if (n > 0 && raw[n - 1] == '\n')
        n--;
    if (n <= 0) {
        snprintf(comm, size, "?");
        return;
    }
    if ((size_t)n >= size)
        n = (ssize_t)size - 1;
    /* Any process can name itself anything; a newline would forge a line of the protocol. */
    for (ssize_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)raw[i];
        comm[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    comm[n] = '\0';
}

/* Passing -1 changes nothing and returns the current value, which shows whether the switch
 * back really happened: the agent must never go on with a user's file-system identity. */
static void agent_restore_fsid(uid_t uid, gid_t gid)
{
    (void)setfsuid(uid);
    (void)setfsgid(gid);
    if ((uid_t)setfsuid((uid_t)-1) != uid || (gid_t)setfsgid((gid_t)-1) != gid)
        die("cannot restore the file-system uid and gid after a look into /proc");
}

/* Marks the wanted sockets (sorted by inode) that process pid holds. */
static void ports_scan_fds(int pid_dfd, pid_t pid, struct port **want, size_t nwant, size_t *left)
{
    int fd = openat(pid_dfd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    char comm[sizeof(want[0]->comm)] = "";
    struct dirent *de;

    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    while (*left > 0 && (de = readdir(d))) {
        char link[64];
        ssize_t n = readlinkat(fd, de->d_name, link, sizeof(link) - 1);
        if (n <= 8 || memcmp(link, "socket:[", 8) != 0)
            continue;
        link[n] = '\0';
        char *end;
        struct port key = {.inode = strtoul(link + 8, &end, 10)};
        struct port *keyp = &key;
        if (*end != ']')
            continue;
        struct port **hit = bsearch(&keyp, want, nwant, sizeof(*want), port_inode_cmp);
        if (!hit || (*hit)->resolved)
            continue;
        if (!comm[0])
            port_read_comm(pid_dfd, comm, sizeof(comm));
        (*hit)->pid = pid;
        (*hit)->own = pid == getpid();
        (*hit)->resolved = true;
        memcpy((*hit)->comm, comm, sizeof(comm));
        (*left)--;
    }
    closedir(d);
}

/* Finds the process holding each socket not resolved yet, by the "socket:[INODE]" links in
 * /proc/PID/fd; the lowest pid wins, which for a socket shared after fork() is the parent.
 * Reading another user's links takes CAP_SYS_PTRACE, which containers lack; the kernel also
 * lets a caller whose file-system uid and gid are the owner's, so root takes those for the
 * look into each process. */
static void ports_find_owners(struct port *v, size_t n)
{
    struct port **want = NULL;
    size_t nwant = 0;
    uid_t fsuid = geteuid();
    gid_t fsgid = getegid();

    for (size_t i = 0; i < n; i++) {
        if (v[i].resolved)
            continue;
        want = xrealloc(want, (nwant + 1) * sizeof(*want));
        want[nwant++] = &v[i];
    }
    if (nwant == 0)
        return;
    qsort(want, nwant, sizeof(*want), port_inode_cmp);
    DIR *proc = opendir("/proc");
    struct dirent *de;
    size_t left = nwant;
    while (proc && left > 0 && (de = readdir(proc))) {
        char *end;
        errno = 0;
        unsigned long pid = strtoul(de->d_name, &end, 10);
        if (de->d_name[0] < '1' || de->d_name[0] > '9' || *end != '\0' || errno != 0 ||
            pid > INT_MAX)
            continue;
        int pid_dfd = openat(dirfd(proc), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pid_dfd < 0)
            continue;
        struct stat st; /* a process's directory belongs to its effective uid and gid */
        bool as_owner = fsuid == 0 && fstat(pid_dfd, &st) == 0 && (st.st_uid || st.st_gid);
        if (as_owner) {
            (void)setfsgid(st.st_gid);
            (void)setfsuid(st.st_uid);
        }
        ports_scan_fds(pid_dfd, (pid_t)pid, want, nwant, &left);
        if (as_owner)
            agent_restore_fsid(fsuid, fsgid);
        close(pid_dfd);
    }
    if (proc)
        closedir(proc);
    for (size_t i = 0; i < nwant; i++) {
        if (want[i]->resolved)
            continue;
        want[i]->resolved = true;
        want[i]->pid = 0;
        snprintf(want[i]->comm, sizeof(want[i]->comm), "?");
    }
    free(want);
}

static void port_line(struct buf *b, char sign, const struct port *p)
{
    char addr[INET6_ADDRSTRLEN], line[128];
    int n;

    if (!inet_ntop(p->family, p->addr, addr, sizeof(addr)))
        snprintf(addr, sizeof(addr), "?");
    if (sign == '+')
        n = snprintf(line, sizeof(line), "+ %u %s %d %s\n", p->port, addr, (int)p->pid, p->comm);
    else
        n = snprintf(line, sizeof(line), "- %u %s\n", p->port, addr);
    buf_add(b, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* Takes a new look at the listeners and writes what changed since the last one to diff.
 * Returns 0 or -errno. */
static int ports_scan(struct buf *diff)
{
    struct port *v = NULL;
    size_t n = 0, cap = 0;
    int r = ports_read("/proc/net/tcp", &v, &n, &cap);

    if (r < 0) {
        free(v);
        return r;
    }
    (void)ports_read("/proc/net/tcp6", &v, &n, &cap); /* absent without IPv6 */
    if (n > 0)
        qsort(v, n, sizeof(*v), port_cmp);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (kept == 0 || port_key_cmp(&v[kept - 1], &v[i]) != 0)
            v[kept++] = v[i]; /* SO_REUSEPORT: one entry, for the lowest inode */
    n = kept;

    /* What was known about a socket seen before is kept, so /proc/PID/fd is searched only
     * when a new one appears. */
    for (size_t i = 0; i < n; i++) {
        struct port *old = agent.nports
                               ? bsearch(&v[i], agent.ports, agent.nports, sizeof(*v), port_key_cmp)
                               : NULL;
        if (old && old->inode == v[i].inode) {
            v[i].pid = old->pid;
            v[i].own = old->own;
            v[i].resolved = old->resolved;
            memcpy(v[i].comm, old->comm, sizeof(v[i].comm));
        }
    }
    ports_find_owners(v, n);

    /* All "-" lines first: a listener replaced since the last look reads as closed, then
     * opened. */
    for (size_t i = 0; i < agent.nports; i++) {
        const struct port *o = &agent.ports[i];
        const struct port *now = n ? bsearch(o, v, n, sizeof(*v), port_key_cmp) : NULL;
        if (!o->own && (!now || now->inode != o->inode))
            port_line(diff, '-', o);
    }
    for (size_t i = 0; i < n; i++) {
        const struct port *old =
            agent.nports ? bsearch(&v[i], agent.ports, agent.nports, sizeof(*v), port_key_cmp)
                         : NULL;
        if (!v[i].own && (!old || old->inode != v[i].inode))
            port_line(diff, '+', &v[i]);
    }
    free(agent.ports);
    agent.ports = v;
    agent.nports = n;
    return 0;
}

/* Sends text as PORTS frames of whole lines. */
static void ports_send(struct conn *c, const struct buf *text)
{
    const unsigned char *p = text->data + text->head;
    size_t n = buf_pending(text);

    while (n > 0) {
        size_t take = n;
        if (take > AGENT_CHUNK) {
            take = AGENT_CHUNK;
            while (take > 0 && p[take - 1] != '\n')
                take--;
            if (take == 0)
                take = AGENT_CHUNK; /* cannot happen: lines are short */
        }
        conn_send(c, AGENT_PORTS, p, take);
        p += take;
        n -= take;
    }
}

/* Looks at the listeners when it is time and someone watches; lowers *next to the time of
 * the next look. */
static void ports_tick(int64_t now, int64_t *next)
{
    bool watched = false, fresh = false;

    for (size_t i = 0; i < agent.nconns; i++) {
        const struct conn *c = agent.conns[i];
        if (c->state == CONN_WATCH && c->fd >= 0) {
            watched = true;
            fresh |= !c->watch_listed;
        }
    }
    if (!watched) {
        /* Nobody watches: no looking, and the next watch starts from a clean look. */
        free(agent.ports);
        agent.ports = NULL;
        agent.nports = 0;
        return;
    }
    if (fresh || now >= agent.ports_next_scan) {
        struct buf diff = {0}, list = {0};
        int r = ports_scan(&diff);
        agent.ports_next_scan = now + AGENT_PORTS_SCAN_MS;
        if (r == 0 && fresh) {
            for (size_t i = 0; i < agent.nports; i++)
                if (!agent.ports[i].own)
                    port_line(&list, '+', &agent.ports[i]);
            buf_add(&list, ".\n", 2);
        }
        for (size_t i = 0; i < agent.nconns; i++) {
            struct conn *c = agent.conns[i];
            if (c->state != CONN_WATCH || c->fd < 0)
                continue;
            if (r < 0) {
                conn_fail(c, now, "cannot read '/proc/net/tcp': %s", strerror(-r));
                continue;
            }
            ports_send(c, c->watch_listed ? &diff : &list);
            c->watch_listed = true;
            /* A stream of changes cannot skip any; a client that stopped reading starts
             * over with a new list when it reconnects. */
            if (buf_pending(&c->out) > AGENT_OUT_LIMIT)
                conn_drop_client(c, now);
        }
        buf_release(&diff);
        buf_release(&list);
    }
    if (agent.ports_next_scan < *next)
        *next = agent.ports_next_scan;
}

/* ---- frames from the client ---- */

static void conn_handle_frame(struct conn *c, int64_t now)
{
    unsigned type = c->hdr[0];

    if (c->state == CONN_SESSION) {
        session_handle_frame(c, type, c->payload, c->payload_len, now);
        return;
    }
    if (c->state == CONN_WATCH) {
        conn_fail(c, now, "unexpected frame type %u in a ports watch", type);
        return;
    }
    if (c->state != CONN_REQUEST)
        return;
    switch (type) {
    case AGENT_HELLO:
        conn_send(c, AGENT_HELLO, AGENT_PROTO_VERSION, strlen(AGENT_PROTO_VERSION));
        conn_start_closing(c, now);
        break;
    case AGENT_EXEC:
        session_start(c, c->payload, c->payload_len, now);
        break;
    case AGENT_TCP_CONNECT:
        relay_start(c, c->payload, c->payload_len, now);
        break;
    case AGENT_PORTS_WATCH:
        c->state = CONN_WATCH; /* the next turn's ports_tick() sends the list */
        c->deadline = NEVER;
        break;
    default:
        conn_fail(c, now, "unsupported request type %u", type);
        break;
    }
}

/* Feeds bytes read from the client through the frame parser. A header's length is checked
 * before anything is allocated for it. */
static void conn_feed(struct conn *c, const unsigned char *p, size_t n, int64_t now)
{
    while (n > 0 && c->fd >= 0 && c->state != CONN_CLOSING) {
        if (c->hdr_got < AGENT_HEADER_SIZE) {
            size_t take = AGENT_HEADER_SIZE - c->hdr_got;
            take = take < n ? take : n;
            memcpy(c->hdr + c->hdr_got, p, take);
            c->hdr_got += take;
            p += take;
            n -= take;
            if (c->hdr_got < AGENT_HEADER_SIZE)
                return;
            uint32_t len = agent_get_u32(c->hdr + 4);
            if (len > AGENT_MAX_PAYLOAD) {
                conn_fail(c, now, "frame of %u bytes exceeds the limit of %u", (unsigned)len,
                          (unsigned)AGENT_MAX_PAYLOAD);
                return;
            }
            c->payload = xrealloc(c->payload, len);
            c->payload_len = len;
            c->payload_got = 0;
        }
        size_t take = c->payload_len - c->payload_got;
        take = take < n ? take : n;
        memcpy(c->payload + c->payload_got, p, take);
        c->payload_got += take;
        p += take;
        n -= take;
        if (c->payload_got < c->payload_len)
            return;
        c->hdr_got = 0;
        conn_handle_frame(c, now);
        if (c->state == CONN_CONNECTING || c->state == CONN_RELAY) {
            /* No frames after TCP_CONNECT: the rest is the client's first bytes for the
             * server. */
            free(c->payload);
            c->payload = NULL;
            if (n > 0)
                relay_from_client(c, p, n);
            relay_settle(c, now);
            return;
        }
    }
}

static void conn_read(struct conn *c, int64_t now)
{
    if (c->state == CONN_CONNECTING || c->state == CONN_RELAY) {
        relay_read_client(c, now);
        return;
    }
    ssize_t n = read(c->fd, scratch, sizeof(scratch));

    if (n > 0)
        conn_feed(c, scratch, (size_t)n, now);
    else if (n == 0 || (errno != EAGAIN && errno != EINTR))
        conn_drop_client(c, now);
}

static void conn_flush(struct conn *c, int64_t now)
{
    if (c->fd >= 0 && buf_pending(&c->out) > 0) {
        ssize_t n = send(c->fd, c->out.data + c->out.head, buf_pending(&c->out), MSG_NOSIGNAL);
        if (n > 0) {
            buf_consume(&c->out, (size_t)n);
            if (c->state == CONN_CLOSING)
                c->deadline = now + AGENT_IDLE_MS;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            conn_drop_client(c, now);
            return;
        }
    }
    /* Closing with unread client bytes would turn the client's EOF into ECONNRESET, maybe
     * before it read EXIT; so half-close, discard what still arrives, and close on its EOF
     * (or shortly after, for a client that never closes). */
    if (c->state == CONN_CLOSING && buf_pending(&c->out) == 0 && !c->wr_shut) {
        (void)shutdown(c->fd, SHUT_WR);
        c->wr_shut = true;
        c->deadline = now + AGENT_LINGER_MS;
    }
    relay_settle(c, now);
}

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

static void agent_accept(int64_t now)
{
    while (agent.nconns < AGENT_MAX_CONNS) {
        int fd = accept4(agent.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            /* Out of fds, the pending connection stays readable: without a pause the loop
             * would spin until some session ends. */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                agent.accept_resume = now + 100;
            return;
        }
        struct conn *c = xrealloc(NULL, sizeof(*c));
        *c = (struct conn){.fd = fd,
                           .state = CONN_REQUEST,
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
    }
}

/* Runs the timers, finishes sessions, frees what is dead, and returns the next deadline. */
static int64_t agent_tick(int64_t now)
{
    int64_t next = agent.shutting_down ? agent.shutdown_deadline : NEVER;

    if (agent.accept_resume > now && agent.accept_resume < next)
        next = agent.accept_resume;
    ports_tick(now, &next);

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
    if (agent.nconns < AGENT_MAX_CONNS && now >= agent.accept_resume)
        watch(NULL, WATCH_LISTEN, agent.listen_fd, POLLIN);
    for (size_t i = 0; i < agent.nconns; i++) {
        struct conn *c = agent.conns[i];
        short ev = buf_pending(&c->out) > 0 ? POLLOUT : 0;
        /* A closing connection reads (and discards) only once all is sent: an EOF from a
         * client that half-closed must not cut off its EXIT. */
        if (c->state == CONN_REQUEST || c->state == CONN_WATCH || c->wr_shut ||
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
            agent_accept(now);
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
    fputs("usage: berth-agent [--socket PATH] [-- CMD ARGS...]\n", stderr);
    exit(2);
}

/* `berth-agent git-credential get`: git's credential helper inside a workspace.
 * It hands git's request (key=value lines on stdin) to berthd through the
 * socket berthd keeps in the remote user's run directory while the workspace
 * runs, and prints berthd's answer. Credentials thus come from berthd on
 * demand and are never written into the container. Other operations (store,
 * erase) are accepted and ignored, as git expects of a read-only helper. */
#define AGENT_CREDENTIAL_SOCKET "/.berth/ide/credentials.sock"

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
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", AGENT_CREDENTIAL_SOCKET);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
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

int main(int argc, char **argv)
{
    const char *path = AGENT_DEFAULT_SOCKET;
    char **cmd = NULL;

    if (argc >= 2 && strcmp(argv[1], "git-credential") == 0)
        return git_credential(argc, argv);

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            if (i + 1 < argc)
                cmd = argv + i + 1;
            break;
        } else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            path = argv[++i];
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
    agent_listen(path);
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
