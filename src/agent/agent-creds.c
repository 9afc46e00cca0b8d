/* agent-creds.c - CRED_SERVE: git's credential requests passed on to berthd.
 *
 * On one host berthd listens on credentials.sock in the workspace's run directory, which the
 * container sees. A workspace on another host has no such directory, so berthd keeps a
 * CRED_SERVE session open instead and the agent listens on AGENT_CRED_SOCKET for it: each
 * connection there is one `berth-agent git-credential get`, whose request (read to its EOF)
 * goes to berthd as a CRED_ASK, and whose answer comes back as a CRED_ANSWER with the same
 * id. Nothing is kept: a credential passes through the agent's memory on its way to git,
 * and the buffers it was in are zeroed. The socket lives in /run, which must be a directory
 * only root may write (else CRED_SERVE is refused), so nobody can put another file in its
 * place; it is 0600 and owned by the uid berthd names. Helpers waiting at once are capped
 * (CRED_ASKS_MAX), so the remote user cannot take the connections berthd needs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent-internal.h"

#define CRED_REQUEST_MAX (16 * 1024)
#define CRED_ASKS_MAX 32

static void zero_buf(struct buf *b)
{
    volatile unsigned char *p = b->data;
    for (size_t i = 0; i < b->cap; i++)
        p[i] = 0;
}

/* The socket goes; helpers still reading or waiting get an empty answer (EOF). */
static void creds_stop(int64_t now)
{
    if (agent.cred_listen_fd >= 0) {
        close_fd(&agent.cred_listen_fd);
        (void)unlink(AGENT_CRED_SOCKET);
    }
    agent.cred_serve = NULL;
    for (size_t i = 0; i < agent.nconns; i++) {
        struct conn *c = agent.conns[i];
        if (c->fd >= 0 && (c->state == CONN_CRED_ASK || c->state == CONN_CRED_WAIT)) {
            zero_buf(&c->in);
            buf_release(&c->in);
            conn_start_closing(c, now);
        }
    }
}

/* NULL when /run is a directory of root's that nobody else may write; else why not. */
static const char *run_unsafe(void)
{
    struct stat st;

    (void)mkdir("/run", 0755);
    if (lstat("/run", &st) < 0)
        return strerror(errno);
    if (!S_ISDIR(st.st_mode))
        return "/run is not a directory";
    if (st.st_uid != 0 || (st.st_mode & 022))
        return "/run is not root's alone (owner or mode)";
    return NULL;
}

static int creds_listen(uid_t uid, int *ret_errno)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    struct stat st;

    memcpy(addr.sun_path, AGENT_CRED_SOCKET, sizeof(AGENT_CRED_SOCKET));
    if (lstat(AGENT_CRED_SOCKET, &st) == 0 && S_ISSOCK(st.st_mode))
        (void)unlink(AGENT_CRED_SOCKET);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        *ret_errno = errno;
        return -1;
    }
    /* 0600 from the start (umask), then given to the uid that may ask */
    mode_t old_mask = umask(0177);
    int r = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
    umask(old_mask);
    if (r < 0 || fchownat(AT_FDCWD, AGENT_CRED_SOCKET, uid, (gid_t)-1, AT_SYMLINK_NOFOLLOW) < 0 ||
        listen(fd, 64) < 0) {
        *ret_errno = errno;
        if (r == 0)
            (void)unlink(AGENT_CRED_SOCKET);
        close(fd);
        return -1;
    }
    return fd;
}

void creds_serve_start(struct conn *c, const unsigned char *p, size_t n, int64_t now)
{
    long uid = -1;

    while (n > 0) {
        unsigned tag;
        const unsigned char *v;
        size_t len;
        const char *why = field_next(&p, &n, &tag, &v, &len);
        if (why) {
            conn_fail(c, now, "malformed CRED_SERVE request: %s", why);
            return;
        }
        if (tag != AGENT_FIELD_USER)
            continue;
        bool digits = len > 0 && len <= 10;
        for (size_t i = 0; digits && i < len; i++)
            digits = v[i] >= '0' && v[i] <= '9';
        if (!digits) {
            conn_fail(c, now, "CRED_SERVE: USER must be a numeric uid");
            return;
        }
        uid = 0;
        for (size_t i = 0; i < len; i++)
            uid = uid * 10 + (v[i] - '0');
        if (uid > 4294967294L) { /* (uid_t)-1 means "no change" to chown */
            conn_fail(c, now, "CRED_SERVE: USER must be a numeric uid");
            return;
        }
    }
    if (uid < 0) {
        conn_fail(c, now, "CRED_SERVE: the USER field is required");
        return;
    }
    /* the newer session wins: an older one is a berthd that went away */
    struct conn *old = agent.cred_serve;
    creds_stop(now);
    if (old && old->fd >= 0)
        conn_start_closing(old, now);
    const char *why = run_unsafe();
    if (why) {
        conn_fail(c, now, "cannot offer git credentials: %s", why);
        return;
    }
    int err = 0;
    int fd = creds_listen((uid_t)uid, &err);
    if (fd < 0) {
        conn_fail(c, now, "cannot listen on %s: %s", AGENT_CRED_SOCKET, strerror(err));
        return;
    }
    agent.cred_listen_fd = fd;
    agent.cred_serve = c;
    c->state = CONN_CRED_SERVE;
    c->deadline = NEVER;
    conn_send(c, AGENT_CONNECTED, NULL, 0);
}

void creds_handle_frame(struct conn *c, unsigned type, const unsigned char *p, size_t n,
                        int64_t now)
{
    if (type != AGENT_CRED_ANSWER || n < 4) {
        conn_fail(c, now, "unexpected frame type %u in a credential session", type);
        creds_stop(now);
        return;
    }
    uint32_t id = agent_get_u32(p);
    for (size_t i = 0; i < agent.nconns; i++) {
        struct conn *h = agent.conns[i];
        if (h->fd >= 0 && h->state == CONN_CRED_WAIT && h->cred_id == id) {
            buf_add(&h->out, p + 4, n - 4);
            conn_start_closing(h, now);
            break;
        }
    }
    /* the answer's other copies: the frame's payload, and where it was read */
    explicit_bzero((void *)p, n);
    explicit_bzero(scratch, sizeof(scratch));
}

void creds_conn_free(struct conn *c)
{
    if (c->cred_id && c->out.data)
        explicit_bzero(c->out.data, c->out.cap);
}

void creds_accept(int64_t now)
{
    size_t asks = 0;
    for (size_t i = 0; i < agent.nconns; i++)
        if (agent.conns[i]->fd >= 0 &&
            (agent.conns[i]->state == CONN_CRED_ASK || agent.conns[i]->state == CONN_CRED_WAIT))
            asks++;
    while (agent.nconns < AGENT_MAX_CONNS) {
        int fd = accept4(agent.cred_listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                agent.accept_resume = now + 100;
            return;
        }
        if (asks >= CRED_ASKS_MAX) {
            close(fd); /* EOF at once: no credential this time */
            continue;
        }
        (void)conn_new(fd, CONN_CRED_ASK, now);
        asks++;
    }
}

void creds_read_ask(struct conn *c, int64_t now)
{
    ssize_t n = read(c->fd, scratch, sizeof(scratch));

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0) {
        conn_drop_client(c, now);
        return;
    }
    buf_add(&c->in, scratch, (size_t)n);
    if (buf_pending(&c->in) > CRED_REQUEST_MAX) {
        zero_buf(&c->in);
        buf_release(&c->in);
        conn_start_closing(c, now); /* not a request git would send: nothing for it */
        return;
    }
    if (n > 0)
        return;
    /* the helper's EOF: the request goes to berthd */
    struct conn *s = agent.cred_serve;
    if (!s || s->fd < 0) {
        conn_start_closing(c, now);
        return;
    }
    c->cred_id = ++agent.cred_next_id;
    size_t len = buf_pending(&c->in);
    unsigned char *p = buf_reserve(&s->out, AGENT_HEADER_SIZE + 4 + len);
    agent_put_header(p, AGENT_CRED_ASK, (uint32_t)(4 + len));
    agent_put_u32(p + AGENT_HEADER_SIZE, c->cred_id);
    memcpy(p + AGENT_HEADER_SIZE + 4, c->in.data + c->in.head, len);
    s->out.len += AGENT_HEADER_SIZE + 4 + len;
    zero_buf(&c->in);
    buf_release(&c->in);
    c->state = CONN_CRED_WAIT;
    c->deadline = now + AGENT_IDLE_MS;
}

void creds_tick(int64_t now)
{
    /* before the sweep frees it: a session that closes leaves CONN_CRED_SERVE first */
    struct conn *s = agent.cred_serve;
    if (s && (s->fd < 0 || s->state != CONN_CRED_SERVE))
        creds_stop(now);
}
