/* sshd.c - the SSH gateway: host key, listener, authentication, channels.
 *
 * One thread accepts connections; each connection gets a thread of its own
 * that runs the key exchange and then a libssh event loop (ssh_event) holding
 * the session and the agent sockets of its channels. Authentication is by
 * public key only: the key must be registered by a user who owns the
 * workspace the SSH user name names; anything else is the same denial.
 * A session channel's exec, shell or sftp subsystem becomes one EXEC session
 * of the workspace's agent (agent/agent-proto.h), relayed frame by frame.
 * Starting a stopped workspace must happen on berthd's loop: the connection
 * thread queues the id, an async handle runs ws_act() there, and the thread
 * watches the store until the workspace runs.
 */
#include "sshd/sshd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent-proto.h"
#include "store/accounts.h"
#include "store/sshkeys.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/strv.h"
#include "util/xalloc.h"
#include "workspace/agentc.h"

#define SSHD_MAX_CONNECTIONS 64
#define SSHD_MAX_CHANNELS 32
#define SSHD_AUTH_TIMEOUT_MS 30000
#define SSHD_START_TIMEOUT_MS (5 * 60 * 1000)
#define SSHD_FAIL_LIMIT 10    /* failed connections per address ... */
#define SSHD_FAIL_WINDOW_S 60 /* ... in this many seconds block it ... */
#define SSHD_BLOCK_S 60       /* ... for this long */
#define SSHD_FAIL_SLOTS 256
/* where a workspace's processes see <run>/ide */
#define SSHD_AGENT_DIR_IN_CONTAINER "/.berth/ide"
#define SFTP_SERVER_COMMAND                                                                        \
    "if [ -x /usr/lib/openssh/sftp-server ]; then exec /usr/lib/openssh/sftp-server; fi; "         \
    "if [ -x /usr/libexec/sftp-server ]; then exec /usr/libexec/sftp-server; fi; "                 \
    "exec /.berth-agent/sftp-server"

struct fail_slot {
    char addr[INET6_ADDRSTRLEN];
    int count;
    int64_t first;
    int64_t blocked_until;
};

struct sshd {
    struct ws_manager *m;
    struct store *store;
    ssh_bind bind;
    pthread_t acceptor;
    uv_async_t async;
    pthread_mutex_t lock; /* guards what follows */
    struct strv starts;   /* workspace ids to start on the loop */
    int connections;
    struct fail_slot fails[SSHD_FAIL_SLOTS];
};

struct conn;

struct chan {
    struct conn *c;
    ssh_channel ch;
    struct ssh_channel_callbacks_struct cb;
    int fd; /* the agent session, -1 before the request */
    bool tty;
    bool raw; /* direct-tcpip: after CONNECTED, bytes both ways unframed */
    unsigned cols, rows;
    struct strv env;
    struct buf in; /* bytes from the agent not yet parsed */
    bool fd_dead;  /* the agent closed: remove fd after this poll */
    bool done;     /* exit status sent or the client closed: free */
    struct chan *next;
};

struct conn {
    struct sshd *d;
    ssh_session s;
    ssh_event ev;
    char addr[INET6_ADDRSTRLEN];
    struct ssh_server_callbacks_struct cb;
    bool authed;
    bool tried;
    char *user_name;
    char *ws_id;
    struct chan *chans;
    int nchans;
    /* agent forwarding (ssh -A): asked for on a session channel; the socket,
     * made when a command first runs, in the remote user's run directory */
    bool want_agent;
    int agent_listen;
    char *agent_dir;  /* <run>/ide on the host */
    char *agent_name; /* ssh-agent-<hex>.sock in it */
};

/* ---- rate limiting of failed logins, per address ---- */

static bool addr_blocked(struct sshd *d, const char *addr)
{
    int64_t now = store_now();
    bool blocked = false;
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < SSHD_FAIL_SLOTS; i++)
        if (strcmp(d->fails[i].addr, addr) == 0 && d->fails[i].blocked_until > now)
            blocked = true;
    pthread_mutex_unlock(&d->lock);
    return blocked;
}

static void addr_failed(struct sshd *d, const char *addr)
{
    int64_t now = store_now();
    pthread_mutex_lock(&d->lock);
    struct fail_slot *slot = NULL, *oldest = &d->fails[0];
    for (size_t i = 0; i < SSHD_FAIL_SLOTS && !slot; i++) {
        if (strcmp(d->fails[i].addr, addr) == 0)
            slot = &d->fails[i];
        else if (d->fails[i].first < oldest->first)
            oldest = &d->fails[i];
    }
    if (!slot) {
        slot = oldest;
        *slot = (struct fail_slot){0};
        snprintf(slot->addr, sizeof(slot->addr), "%s", addr);
    }
    if (now - slot->first > SSHD_FAIL_WINDOW_S) {
        slot->first = now;
        slot->count = 0;
    }
    if (++slot->count >= SSHD_FAIL_LIMIT)
        slot->blocked_until = now + SSHD_BLOCK_S;
    pthread_mutex_unlock(&d->lock);
}

/* ---- starting a stopped workspace, on the loop ---- */

static void on_async(uv_async_t *a)
{
    struct sshd *d = a->data;
    struct strv ids = STRV_INIT;
    pthread_mutex_lock(&d->lock);
    ids = d->starts;
    d->starts = (struct strv)STRV_INIT;
    pthread_mutex_unlock(&d->lock);
    for (size_t i = 0; i < ids.n; i++) {
        struct berr *e = NULL;
        struct ws_record rec = {0};
        if (ws_act(d->m, ids.v[i], WS_ACTION_START, &rec, &e) < 0)
            log_warn("ssh: cannot start workspace '%s': %s", ids.v[i], berr_msg(e));
        ws_record_release(&rec);
        berr_free(e);
    }
    strv_release(&ids);
}

static void write_stderr(struct chan *ch, const char *msg)
{
    if (ch)
        (void)ssh_channel_write_stderr(ch->ch, msg, (uint32_t)strlen(msg));
}

/* Waits until the connection's workspace runs, starting it if it is stopped;
 * progress goes to ch's stderr. Fills *rec. */
static int ensure_running(struct conn *c, struct chan *ch, struct ws_record *rec)
{
    long long deadline = mono_ms() + SSHD_START_TIMEOUT_MS;
    bool asked = false;
    _cleanup_free_ char *last = NULL;
    for (;;) {
        ws_record_release(rec);
        if (store_ws_get(c->d->store, c->ws_id, rec, NULL) < 0) {
            write_stderr(ch, "berth: the workspace is gone\r\n");
            return -ENOENT;
        }
        if (strcmp(rec->state, "running") == 0 && !ws_is_busy(c->d->m, rec->id))
            return 0;
        if (!last || strcmp(last, rec->state) != 0) {
            _cleanup_free_ char *m =
                xasprintf("berth: workspace '%s' is %s\r\n", rec->name, rec->state);
            write_stderr(ch, m);
            free(last);
            last = xstrdup(rec->state);
        }
        if (strcmp(rec->state, "failed") == 0 || strcmp(rec->state, "deleting") == 0 ||
            mono_ms() > deadline)
            return -EIO;
        if ((strcmp(rec->state, "stopped") == 0 || strcmp(rec->state, "running") == 0) && !asked) {
            asked = true;
            write_stderr(ch, "berth: starting it\r\n");
            pthread_mutex_lock(&c->d->lock);
            strv_push(&c->d->starts, rec->id);
            pthread_mutex_unlock(&c->d->lock);
            uv_async_send(&c->d->async);
        }
        usleep(300 * 1000);
    }
}

/* ---- authentication ---- */

static char *key_fingerprint(ssh_key key)
{
    unsigned char *hash = NULL;
    size_t hlen = 0;
    if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) != 0)
        return NULL;
    char *fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
    ssh_clean_pubkey_hash(&hash);
    char *copy = fp ? xstrdup(fp) : NULL;
    ssh_string_free_char(fp);
    return copy;
}

static int auth_pubkey(ssh_session s, const char *user, struct ssh_key_struct *pubkey, char state,
                       void *userdata)
{
    struct conn *c = userdata;
    c->tried = true;
    if (state != SSH_PUBLICKEY_STATE_NONE && state != SSH_PUBLICKEY_STATE_VALID)
        return SSH_AUTH_DENIED;
    _cleanup_free_ char *fp = key_fingerprint(pubkey);
    int64_t uid = 0;
    if (!fp || !user || strlen(user) > 128 || store_sshkey_owner(c->d->store, fp, &uid) < 0)
        return SSH_AUTH_DENIED;
    struct user_rec u = {0};
    if (store_user_get_by_id(c->d->store, uid, &u) < 0)
        return SSH_AUTH_DENIED;
    _cleanup_ws_record_ struct ws_record rec = {0};
    bool ok = !u.disabled && store_ws_get(c->d->store, user, &rec, NULL) == 0 && rec.owner &&
              strcmp(rec.owner, u.name) == 0;
    if (ok && state == SSH_PUBLICKEY_STATE_VALID) {
        c->authed = true;
        free(c->user_name);
        free(c->ws_id);
        c->user_name = xstrdup(u.name);
        c->ws_id = xstrdup(rec.id);
        store_audit_add(c->d->store, u.name, "ssh.login", rec.id, fp, c->addr);
        log_info("ssh: %s logged in to workspace '%s' from %s", u.name, rec.name, c->addr);
    }
    user_rec_release(&u);
    return ok ? SSH_AUTH_SUCCESS : SSH_AUTH_DENIED;
}

/* ---- channels ---- */

static void send_frame(struct chan *ch, enum agent_frame_type type, const void *data, size_t len)
{
    if (ch->fd < 0 || ch->fd_dead)
        return;
    while (len > 0 || type != AGENT_STDIN) {
        size_t n = len > 65536 ? 65536 : len;
        unsigned char h[AGENT_HEADER_SIZE];
        agent_put_header(h, type, (uint32_t)n);
        if (write_all(ch->fd, h, sizeof(h)) < 0 || write_all(ch->fd, data, n) < 0) {
            ch->fd_dead = true;
            return;
        }
        data = (const char *)data + n;
        len -= n;
        if (type != AGENT_STDIN)
            break;
    }
}

/* Ends the channel as OpenSSH's sshd does: exit-signal (the signal's name without SIG) when
 * a signal ended the command (sig > 0), else exit-status. */
static void finish_signal(struct chan *ch, int status, int sig)
{
    if (ch->done)
        return;
    ch->done = true;
    const char *name = sig > 0 ? sigabbrev_np(sig) : NULL;
    if (name)
        (void)ssh_channel_request_send_exit_signal(ch->ch, name, 0, "", "");
    else
        (void)ssh_channel_request_send_exit_status(ch->ch, status);
    (void)ssh_channel_send_eof(ch->ch);
    (void)ssh_channel_close(ch->ch);
}

static void finish(struct chan *ch, int status)
{
    finish_signal(ch, status, 0);
}

static int agent_readable(socket_t fd, int revents, void *userdata)
{
    struct chan *ch = userdata;
    if (ch->fd_dead)
        return 0;
    char tmp[65536];
    ssize_t n = read(fd, tmp, sizeof(tmp));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n <= 0) {
        ch->fd_dead = true;
        if (ch->raw && !ch->done) {
            ch->done = true;
            (void)ssh_channel_send_eof(ch->ch);
            (void)ssh_channel_close(ch->ch);
        } else {
            finish(ch, 255);
        }
        return 0;
    }
    ws_activity(ch->c->d->m, ch->c->ws_id, WS_ACT_SSH);
    if (ch->raw) {
        if (!ch->done)
            (void)ssh_channel_write(ch->ch, tmp, (uint32_t)n);
        return 0;
    }
    buf_add(&ch->in, tmp, (size_t)n);
    size_t off = 0;
    struct agent_frame f;
    int r;
    while ((r = agent_next_frame(ch->in.buf, ch->in.len, &off, &f)) == 1) {
        if (f.type == AGENT_STDOUT && !ch->done)
            (void)ssh_channel_write(ch->ch, f.payload, f.len);
        else if (f.type == AGENT_STDERR && !ch->done)
            (void)ssh_channel_write_stderr(ch->ch, f.payload, f.len);
        else if (f.type == AGENT_ERROR && !ch->done) {
            (void)ssh_channel_write_stderr(ch->ch, "berth: ", 7);
            (void)ssh_channel_write_stderr(ch->ch, f.payload, f.len);
            (void)ssh_channel_write_stderr(ch->ch, ch->tty ? "\r\n" : "\n", ch->tty ? 2 : 1);
        } else if (f.type == AGENT_EXIT && f.len >= 4) {
            int sig = f.len >= 8 ? (int)agent_get_u32(f.payload + 4) : 0;
            finish_signal(ch, (int)agent_get_u32(f.payload), sig);
            ch->fd_dead = true;
        }
    }
    if (r < 0) {
        ch->fd_dead = true;
        finish(ch, 255);
    }
    buf_remove_front(&ch->in, off);
    return 0;
}

/* ---- agent forwarding ---- */

static struct chan *chan_new_raw(struct conn *c, ssh_channel sch, int fd);

/* A process in the workspace connected to the forwarded agent's socket: it
 * gets an auth-agent@openssh.com channel to the client, relayed raw. */
static int agent_accept(socket_t lfd, int revents, void *userdata)
{
    struct conn *c = userdata;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return 0;
    ssh_channel sch = c->nchans < SSHD_MAX_CHANNELS ? ssh_channel_new(c->s) : NULL;
    if (!sch || ssh_channel_open_auth_agent(sch) != SSH_OK) {
        if (sch)
            ssh_channel_free(sch);
        close(fd);
        return 0;
    }
    if (!chan_new_raw(c, sch, fd))
        ssh_channel_free(sch);
    return 0;
}

/* Makes the forwarded agent's socket for the connection, owned by the remote
 * user and 0600. It is bound and chowned under a temporary name in the run
 * directory (root's), then renamed into <run>/ide (the remote user's): berthd
 * never follows a name in a directory the workspace can write. */
static void agent_listen_start(struct conn *c, const struct ws_record *rec)
{
    if (c->agent_listen >= 0 || rec->uid < 0)
        return;
    _cleanup_free_ char *run = ws_run_dir(c->d->m, rec->id);
    _cleanup_free_ char *ide = xasprintf("%s/ide", run);
    unsigned char rnd[8];
    if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
        return;
    char hex[17];
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    _cleanup_free_ char *name = xasprintf("ssh-agent-%s.sock", hex);
    _cleanup_close_ int rfd = open(run, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_close_ int ifd = open(ide, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (rfd < 0 || ifd < 0 || fd < 0)
        return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", rfd, name);
    /* Linux gives the socket file the mode of the socket's inode (less the umask) */
    if (fchmod(fd, 0600) < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return;
    if (fchownat(rfd, name, (uid_t)rec->uid, (gid_t)rec->gid, AT_SYMLINK_NOFOLLOW) < 0 ||
        listen(fd, 16) < 0 || renameat(rfd, name, ifd, name) < 0) {
        (void)unlinkat(rfd, name, 0);
        return;
    }
    if (ssh_event_add_fd(c->ev, fd, POLLIN, agent_accept, c) != SSH_OK) {
        (void)unlinkat(ifd, name, 0);
        return;
    }
    c->agent_listen = TAKE_FD(fd);
    c->agent_dir = TAKE_PTR(ide);
    c->agent_name = TAKE_PTR(name);
}

static void agent_listen_stop(struct conn *c)
{
    if (c->agent_listen < 0)
        return;
    ssh_event_remove_fd(c->ev, c->agent_listen);
    close(c->agent_listen);
    c->agent_listen = -1;
    _cleanup_close_ int ifd = open(c->agent_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (ifd >= 0)
        (void)unlinkat(ifd, c->agent_name, 0);
    free(TAKE_PTR(c->agent_dir));
    free(TAKE_PTR(c->agent_name));
}

static void on_auth_agent_req(ssh_session s, ssh_channel channel, void *userdata)
{
    struct chan *ch = userdata;
    ch->c->want_agent = true;
}

/* Runs argv (NULL: the user's login shell) in the workspace for the channel. */
static int start_exec(struct chan *ch, const char *command, bool sftp)
{
    struct conn *c = ch->c;
    if (ch->fd >= 0)
        return SSH_ERROR;
    _cleanup_ws_record_ struct ws_record rec = {0};
    if (ensure_running(c, ch, &rec) < 0)
        return SSH_ERROR;
    int fd = -1;
    if (ws_agent_connect(c->d->m, rec.id, &fd, NULL) < 0) {
        write_stderr(ch, "berth: cannot reach the workspace agent\r\n");
        return SSH_ERROR;
    }
    _cleanup_strv_ struct strv argv = STRV_INIT;
    if (sftp)
        strv_pushl(&argv, "/bin/sh", "-c", SFTP_SERVER_COMMAND, NULL);
    else if (command)
        strv_pushl(&argv, "/bin/sh", "-c", command, NULL);
    else
        strv_pushl(&argv, "/bin/sh", "-c", "exec \"${SHELL:-/bin/sh}\" -l", NULL);
    _cleanup_strv_ struct strv env = STRV_INIT;
    (void)ws_owner_env(c->d->m, &rec, &env, NULL);
    for (size_t i = 0; i < ch->env.n; i++)
        strv_push(&env, ch->env.v[i]);
    if (c->want_agent)
        agent_listen_start(c, &rec);
    if (c->agent_listen >= 0)
        strv_pushf(&env, "SSH_AUTH_SOCK=%s/%s", SSHD_AGENT_DIR_IN_CONTAINER, c->agent_name);
    struct agentc_exec ex = {.argv = &argv,
                             .env = &env,
                             .cwd = rec.workspace_folder,
                             .user = rec.remote_user,
                             .tty = ch->tty && !sftp,
                             .cols = ch->cols ? ch->cols : 80,
                             .rows = ch->rows ? ch->rows : 24};
    _cleanup_buf_ struct buf req = BUF_INIT;
    agentc_build_exec(&req, &ex);
    if (write_all(fd, req.buf, req.len) < 0) {
        close(fd);
        write_stderr(ch, "berth: cannot reach the workspace agent\r\n");
        return SSH_ERROR;
    }
    ch->fd = fd;
    if (ssh_event_add_fd(c->ev, fd, POLLIN, agent_readable, ch) != SSH_OK) {
        ch->fd_dead = true;
        return SSH_ERROR;
    }
    return SSH_OK;
}

static int on_data(ssh_session s, ssh_channel channel, void *data, uint32_t len, int is_stderr,
                   void *userdata)
{
    struct chan *ch = userdata;
    ws_activity(ch->c->d->m, ch->c->ws_id, WS_ACT_SSH);
    if (ch->raw) {
        if (!ch->fd_dead && write_all(ch->fd, data, len) < 0)
            ch->fd_dead = true;
        return (int)len;
    }
    send_frame(userdata, AGENT_STDIN, data, len);
    return (int)len;
}

static void on_eof(ssh_session s, ssh_channel channel, void *userdata)
{
    struct chan *ch = userdata;
    if (ch->raw && ch->fd >= 0)
        (void)shutdown(ch->fd, SHUT_WR);
    else
        send_frame(userdata, AGENT_STDIN_EOF, NULL, 0);
}

static void on_close(ssh_session s, ssh_channel channel, void *userdata)
{
    struct chan *ch = userdata;
    ch->done = true;
    ch->fd_dead = true;
}

static int on_pty(ssh_session s, ssh_channel channel, const char *term, int width, int height,
                  int pxwidth, int pxheight, void *userdata)
{
    struct chan *ch = userdata;
    ch->tty = true;
    ch->cols = width > 0 && width < 10000 ? (unsigned)width : 80;
    ch->rows = height > 0 && height < 10000 ? (unsigned)height : 24;
    if (term && *term && strlen(term) < 64)
        strv_pushf(&ch->env, "TERM=%s", term);
    return SSH_OK;
}

static int on_window_change(ssh_session s, ssh_channel channel, int width, int height, int pxwidth,
                            int pxheight, void *userdata)
{
    struct chan *ch = userdata;
    if (width <= 0 || height <= 0 || width > 65535 || height > 65535)
        return SSH_OK;
    unsigned char sz[4] = {(unsigned char)(width >> 8), (unsigned char)width,
                           (unsigned char)(height >> 8), (unsigned char)height};
    send_frame(ch, AGENT_RESIZE, sz, 4);
    return SSH_OK;
}

static int on_env(ssh_session s, ssh_channel channel, const char *name, const char *value,
                  void *userdata)
{
    struct chan *ch = userdata;
    bool ok =
        strcmp(name, "LANG") == 0 || strcmp(name, "TERM") == 0 || strncmp(name, "LC_", 3) == 0;
    if (!ok || strlen(name) > 64 || strlen(value) > 1024 || strchr(name, '=') || ch->env.n > 32)
        return SSH_ERROR;
    strv_pushf(&ch->env, "%s=%s", name, value);
    return SSH_OK;
}

static int on_shell(ssh_session s, ssh_channel channel, void *userdata)
{
    return start_exec(userdata, NULL, false);
}

static int on_exec(ssh_session s, ssh_channel channel, const char *command, void *userdata)
{
    return start_exec(userdata, command, false);
}

static int on_subsystem(ssh_session s, ssh_channel channel, const char *subsystem, void *userdata)
{
    if (strcmp(subsystem, "sftp") != 0)
        return SSH_ERROR;
    return start_exec(userdata, NULL, true);
}

static void on_signal_req(ssh_session s, ssh_channel channel, const char *signal, void *userdata)
{
    static const struct {
        const char *name;
        int num;
    } sigs[] = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"KILL", SIGKILL}, {"QUIT", SIGQUIT},
                {"TERM", SIGTERM}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}};
    for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
        if (strcmp(signal, sigs[i].name) == 0) {
            unsigned char n[4];
            agent_put_u32(n, (uint32_t)sigs[i].num);
            send_frame(userdata, AGENT_SIGNAL, n, 4);
        }
}

/* Adds a channel to the connection; sch is libssh's (NULL: make one). */
static struct chan *chan_new(struct conn *c, ssh_channel sch)
{
    struct chan *ch = xcalloc(1, sizeof(*ch));
    ch->c = c;
    ch->fd = -1;
    ch->env = (struct strv)STRV_INIT;
    ch->in = (struct buf)BUF_INIT;
    ch->ch = sch ? sch : ssh_channel_new(c->s);
    if (!ch->ch) {
        free(ch);
        return NULL;
    }
    ch->cb = (struct ssh_channel_callbacks_struct){
        .userdata = ch,
        .channel_data_function = on_data,
        .channel_eof_function = on_eof,
        .channel_close_function = on_close,
        .channel_signal_function = on_signal_req,
        .channel_pty_request_function = on_pty,
        .channel_shell_request_function = on_shell,
        .channel_pty_window_change_function = on_window_change,
        .channel_exec_request_function = on_exec,
        .channel_env_request_function = on_env,
        .channel_subsystem_request_function = on_subsystem,
        .channel_auth_agent_req_function = on_auth_agent_req,
    };
    ssh_callbacks_init(&ch->cb);
    ssh_set_channel_callbacks(ch->ch, &ch->cb);
    ch->next = c->chans;
    c->chans = ch;
    c->nchans++;
    return ch;
}

/* A channel whose bytes go to and from fd unframed (direct-tcpip, a forwarded
 * agent's connection); fd is the channel's from here on. NULL when no channel
 * could be made (fd is closed; sch is the caller's still). */
static struct chan *chan_new_raw(struct conn *c, ssh_channel sch, int fd)
{
    struct chan *ch = chan_new(c, sch);
    if (!ch) {
        close(fd);
        return NULL;
    }
    ch->raw = true;
    ch->fd = fd;
    if (ssh_event_add_fd(c->ev, fd, POLLIN, agent_readable, ch) != SSH_OK)
        ch->fd_dead = true;
    return ch;
}

static ssh_channel open_session(ssh_session s, void *userdata)
{
    struct conn *c = userdata;
    if (!c->authed || c->nchans >= SSHD_MAX_CHANNELS)
        return NULL;
    struct chan *ch = chan_new(c, NULL);
    return ch ? ch->ch : NULL;
}

/* Opens a TCP_CONNECT session of the agent to host:port in the workspace and
 * waits for CONNECTED; the connected agent socket, or -1. */
static int agent_tcp_connect(struct conn *c, const char *host, int port)
{
    _cleanup_ws_record_ struct ws_record rec = {0};
    if (ensure_running(c, NULL, &rec) < 0)
        return -1;
    unsigned char a6[16];
    bool numeric = inet_pton(AF_INET, host, a6) == 1 || inet_pton(AF_INET6, host, a6) == 1;
    if (!numeric && strcmp(host, "localhost") != 0)
        return -1;
    _cleanup_close_ int fd = -1;
    if (ws_agent_connect(c->d->m, rec.id, &fd, NULL) < 0)
        return -1;
    _cleanup_buf_ struct buf p = BUF_INIT;
    unsigned char pb[2] = {(unsigned char)(port >> 8), (unsigned char)port};
    buf_add(&p, pb, 2);
    if (numeric) {
        unsigned char fh[5];
        fh[0] = AGENT_FIELD_HOST;
        agent_put_u32(fh + 1, (uint32_t)strlen(host));
        buf_add(&p, fh, 5);
        buf_adds(&p, host);
    }
    unsigned char h[AGENT_HEADER_SIZE];
    agent_put_header(h, AGENT_TCP_CONNECT, (uint32_t)p.len);
    if (write_all(fd, h, sizeof(h)) < 0 || write_all(fd, p.buf, p.len) < 0)
        return -1;
    /* CONNECTED or ERROR, within the agent's own connect timeout */
    size_t got = 0;
    long long deadline = mono_ms() + 12000;
    while (got < sizeof(h)) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int left = (int)(deadline - mono_ms());
        if (left <= 0 || poll(&pf, 1, left) <= 0)
            return -1;
        ssize_t n = read(fd, h + got, sizeof(h) - got);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    uint32_t len = agent_get_u32(h + 4);
    if (h[0] != AGENT_CONNECTED || len > 4096)
        return -1;
    char skip[4096];
    for (uint32_t done = 0; done < len;) {
        ssize_t n = read(fd, skip, len - done);
        if (n <= 0)
            return -1;
        done += (uint32_t)n;
    }
    return TAKE_FD(fd);
}

/* What the server callbacks do not cover: direct-tcpip (ssh -L). 1: not
 * handled (libssh answers with a refusal). */
static int on_message(ssh_session s, ssh_message msg, void *userdata)
{
    struct conn *c = userdata;
    if (!c->authed || ssh_message_type(msg) != SSH_REQUEST_CHANNEL_OPEN ||
        ssh_message_subtype(msg) != SSH_CHANNEL_DIRECT_TCPIP || c->nchans >= SSHD_MAX_CHANNELS)
        return 1;
    const char *host = ssh_message_channel_request_open_destination(msg);
    int port = ssh_message_channel_request_open_destination_port(msg);
    if (!host || port < 1 || port > 65535)
        return 1;
    int fd = agent_tcp_connect(c, host, port);
    if (fd < 0)
        return 1;
    ssh_channel sch = ssh_message_channel_request_open_reply_accept(msg);
    if (!sch)
        close(fd);
    else
        (void)chan_new_raw(c, sch, fd);
    return 0;
}

/* After a poll: drops dead agent sockets and finished channels. */
static void sweep(struct conn *c)
{
    for (struct chan **p = &c->chans; *p;) {
        struct chan *ch = *p;
        if (ch->fd >= 0 && ch->fd_dead) {
            ssh_event_remove_fd(c->ev, ch->fd);
            close(ch->fd);
            ch->fd = -1;
        }
        if (ch->done && ch->fd < 0) {
            *p = ch->next;
            c->nchans--;
            /* libssh keeps a channel we closed until the peer's close */
            ssh_remove_channel_callbacks(ch->ch, &ch->cb);
            ssh_channel_free(ch->ch);
            strv_release(&ch->env);
            buf_release(&ch->in);
            free(ch);
            continue;
        }
        p = &ch->next;
    }
}

static void *conn_thread(void *arg)
{
    struct conn *c = arg;
    struct sshd *d = c->d;
    long timeout = SSHD_AUTH_TIMEOUT_MS / 1000;
    (void)ssh_options_set(c->s, SSH_OPTIONS_TIMEOUT, &timeout);
    c->cb =
        (struct ssh_server_callbacks_struct){.userdata = c,
                                             .auth_pubkey_function = auth_pubkey,
                                             .channel_open_request_session_function = open_session};
    ssh_callbacks_init(&c->cb);
    ssh_set_server_callbacks(c->s, &c->cb);
    ssh_set_auth_methods(c->s, SSH_AUTH_METHOD_PUBLICKEY);
    ssh_set_message_callback(c->s, on_message, c);
    if (ssh_handle_key_exchange(c->s) != SSH_OK)
        goto out;
    c->ev = ssh_event_new();
    if (!c->ev || ssh_event_add_session(c->ev, c->s) != SSH_OK)
        goto out;
    long long auth_deadline = mono_ms() + SSHD_AUTH_TIMEOUT_MS;
    for (;;) {
        int r = ssh_event_dopoll(c->ev, 500);
        sweep(c);
        if (r == SSH_ERROR && !ssh_is_connected(c->s))
            break;
        if (!c->authed && mono_ms() > auth_deadline)
            break;
        if (c->authed && !c->chans && ssh_get_status(c->s) & (SSH_CLOSED | SSH_CLOSED_ERROR))
            break;
        if (r == SSH_ERROR)
            break;
    }
out:
    if (!c->authed) {
        addr_failed(d, c->addr);
        if (c->tried) {
            store_audit_add(d->store, NULL, "ssh.login-failed", NULL, NULL, c->addr);
            log_info("ssh: failed login from %s", c->addr);
        }
    }
    for (struct chan *ch = c->chans; ch; ch = ch->next) {
        ch->done = true;
        ch->fd_dead = true;
    }
    if (c->ev) {
        agent_listen_stop(c);
        sweep(c);
        ssh_event_free(c->ev);
    }
    ssh_disconnect(c->s);
    ssh_free(c->s);
    free(c->user_name);
    free(c->ws_id);
    free(c);
    pthread_mutex_lock(&d->lock);
    d->connections--;
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

static void peer_address(int fd, char *out, size_t size)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    snprintf(out, size, "?");
    if (getpeername(fd, (struct sockaddr *)&sa, &len) < 0)
        return;
    if (sa.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, out, (socklen_t)size);
    else if (sa.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, out, (socklen_t)size);
}

int sshd_accept_fd(struct sshd *d, int fd, const char *peer)
{
    pthread_mutex_lock(&d->lock);
    bool full = d->connections >= SSHD_MAX_CONNECTIONS;
    if (!full)
        d->connections++;
    pthread_mutex_unlock(&d->lock);
    if (full) {
        close(fd);
        return -EAGAIN;
    }
    struct conn *c = xcalloc(1, sizeof(*c));
    c->d = d;
    c->agent_listen = -1;
    snprintf(c->addr, sizeof(c->addr), "%s", peer);
    int r = 0;
    if (addr_blocked(d, c->addr)) {
        log_info("ssh: refused %s: too many failed logins", c->addr);
        close(fd);
        r = -EACCES;
        goto fail;
    }
    c->s = ssh_new();
    /* the bind's options and keys are copied into the session; one at a time */
    pthread_mutex_lock(&d->lock);
    int ok = c->s ? ssh_bind_accept_fd(d->bind, c->s, fd) : SSH_ERROR;
    pthread_mutex_unlock(&d->lock);
    if (ok != SSH_OK) {
        if (!c->s || ssh_get_fd(c->s) != fd)
            close(fd); /* not yet the session's */
        r = -ENOMEM;
        goto fail;
    }
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, conn_thread, c) != 0)
        r = -EAGAIN;
    pthread_attr_destroy(&attr);
    if (r == 0)
        return 0;
fail:
    if (c->s)
        ssh_free(c->s);
    free(c);
    pthread_mutex_lock(&d->lock);
    d->connections--;
    pthread_mutex_unlock(&d->lock);
    return r;
}

static void *accept_thread(void *arg)
{
    struct sshd *d = arg;
    int lfd = ssh_bind_get_fd(d->bind);
    for (;;) {
        struct pollfd pfd = {.fd = lfd, .events = POLLIN};
        (void)poll(&pfd, 1, -1); /* whether libssh left the socket blocking or not */
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN)
                usleep(100 * 1000); /* EMFILE and the like: let it pass */
            continue;
        }
        /* libssh sends each packet with a send() of its own. Under Nagle the window
         * adjust that follows a small SFTP status reply waited for the ACK of the
         * reply, which a client with no window left delays by up to 40 ms: uploads
         * ran at a quarter of OpenSSH's speed, and every login paid for it too. */
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        char addr[INET6_ADDRSTRLEN];
        peer_address(fd, addr, sizeof(addr));
        (void)sshd_accept_fd(d, fd, addr);
    }
    return NULL;
}

/* ---- the host key and start-up ---- */

static int load_host_key(const char *data_dir, ssh_key *ret, struct berr **reterr)
{
    _cleanup_free_ char *path = xasprintf("%s/ssh_host_ed25519_key", data_dir);
    ssh_key key = NULL;
    if (access(path, F_OK) == 0) {
        if (ssh_pki_import_privkey_file(path, NULL, NULL, NULL, &key) != SSH_OK)
            return berr_make(reterr, EINVAL, "cannot read the SSH host key '%s'", path);
        *ret = key;
        return 0;
    }
    if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK)
        return berr_make(reterr, EIO, "cannot make an SSH host key");
    char *pem = NULL;
    if (ssh_pki_export_privkey_base64(key, NULL, NULL, NULL, &pem) != SSH_OK) {
        ssh_key_free(key);
        return berr_make(reterr, EIO, "cannot export the SSH host key");
    }
    int r = write_file_atomic(path, pem, strlen(pem), 0600);
    ssh_string_free_char(pem);
    if (r < 0) {
        ssh_key_free(key);
        return berr_make(reterr, -r, "cannot write '%s': %s", path, strerror(-r));
    }
    *ret = key;
    return 0;
}

int sshd_start(uv_loop_t *loop, struct ws_manager *m, const char *addr, int port, struct sshd **ret,
               char **ret_fingerprint, struct berr **reterr)
{
    ssh_key key = NULL;
    int r = load_host_key(ws_manager_data_dir(m), &key, reterr);
    if (r < 0)
        return r;
    char *b64 = NULL;
    _cleanup_free_ char *fp = key_fingerprint(key);
    if (!fp || ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK) {
        ssh_key_free(key);
        return berr_make(reterr, EIO, "cannot read the SSH host key's public half");
    }
    _cleanup_free_ char *pub = xasprintf("ssh-ed25519 %s", b64);
    ssh_string_free_char(b64);

    struct sshd *d = xcalloc(1, sizeof(*d));
    d->m = m;
    d->store = ws_manager_store(m);
    d->starts = (struct strv)STRV_INIT;
    pthread_mutex_init(&d->lock, NULL);
    d->bind = ssh_bind_new();
    _cleanup_free_ char *port_s = xasprintf("%d", port);
    if (ssh_bind_options_set(d->bind, SSH_BIND_OPTIONS_BINDADDR, addr) != SSH_OK ||
        ssh_bind_options_set(d->bind, SSH_BIND_OPTIONS_BINDPORT_STR, port_s) != SSH_OK ||
        ssh_bind_options_set(d->bind, SSH_BIND_OPTIONS_IMPORT_KEY, key) != SSH_OK ||
        ssh_bind_listen(d->bind) != SSH_OK) {
        r = berr_make(reterr, EADDRINUSE, "cannot listen for SSH on %s:%d: %s", addr, port,
                      ssh_get_error(d->bind));
        ssh_bind_free(d->bind);
        free(d);
        return r;
    }
    /* images without an sftp-server get the host's, beside the agent (read-only) */
    struct buf bin = BUF_INIT;
    if (read_file("/usr/lib/openssh/sftp-server", 16 << 20, &bin) == 0) {
        _cleanup_free_ char *dst = xasprintf("%s/agent/sftp-server", ws_manager_data_dir(m));
        (void)write_file_atomic(dst, bin.buf, bin.len, 0755);
    }
    buf_release(&bin);
    (void)store_setting_set_text(d->store, SSHD_SETTING_HOST_KEY, pub);
    _cleanup_free_ char *listen = xasprintf("%s:%d", addr, port);
    (void)store_setting_set_text(d->store, SSHD_SETTING_LISTEN, listen);
    uv_async_init(loop, &d->async, on_async);
    d->async.data = d;
    if (pthread_create(&d->acceptor, NULL, accept_thread, d) != 0)
        return berr_make(reterr, EAGAIN, "cannot start the SSH thread");
    *ret_fingerprint = TAKE_PTR(fp);
    *ret = d;
    return 0;
}
