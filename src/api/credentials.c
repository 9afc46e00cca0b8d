/* credentials.c - per-workspace credential sockets; see credentials.h.
 *
 * One host: the socket lives in a directory the remote user owns, so berthd
 * never follows a name there: the directory is opened with O_NOFOLLOW and the
 * socket bound and chowned through that descriptor. One request per
 * connection, read to EOF (at most 16 KiB), answered, closed.
 *
 * A remote runtime (a cluster): the run dir is not where the workspace runs,
 * so berthd keeps a CRED_SERVE session (agent-proto.h) with each running
 * workspace's agent, which listens inside the container in its place and
 * passes each request on as a CRED_ASK; the answer goes back as a CRED_ANSWER.
 * The connection (relay, then the handshake) is made on a worker thread; a
 * session that ends while the workspace still runs (its task was replaced) is
 * opened again after CRED_RETRY_MS.
 */
#include "api/credentials.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <sodium.h>

#include "agent/agent-proto.h"
#include "store/accounts.h"
#include "util/log.h"
#include "util/seal.h"
#include "util/xalloc.h"
#include "workspace/agentc.h"
#include "workspace/workspace.h"

#define CRED_SOCKET "credentials.sock"
#define CRED_MAX_REQUEST 16384
#define CRED_RETRY_MS 5000

struct listener {
    struct listener *next;
    struct creds *owner;
    char *ws_id;
    char *container_id;
    uv_pipe_t pipe;
    bool closing;
};

/* A remote workspace's CRED_SERVE session. */
struct serve {
    struct serve *next;
    struct creds *owner;
    char *ws_id;
    char *container_id; /* the record's when the session started */
    int64_t uid;        /* who may ask: the remote user */
    bool connecting;    /* the worker thread has it; pipe is not open yet */
    bool closing;
    uv_pipe_t pipe;
    struct buf in;
};

struct creds {
    struct ws_manager *m;
    struct store *store;
    bool remote;
    struct listener *list;
    struct serve *serves;
    /* "ID CONTAINER": the agents that refused CRED_SERVE (an agent older than
     * it, a /run not root's alone), asked again only by a new container */
    struct strv refused;
    uv_timer_t retry;
    unsigned pending; /* connects on worker threads, and handles still closing */
    bool freed;       /* creds_free ran: the last of pending frees it */
};

struct client {
    uv_pipe_t pipe;
    struct creds *c;
    char *ws_id;
    struct buf in;
    bool answered;
};

static void retry_fire(uv_timer_t *t)
{
    creds_sync(t->data);
}

struct creds *creds_new(struct ws_manager *m)
{
    struct creds *c = xcalloc(1, sizeof(*c));
    c->m = m;
    c->store = ws_manager_store(m);
    c->remote = ws_manager_remote(m);
    c->refused = (struct strv)STRV_INIT;
    uv_timer_init(uv_default_loop(), &c->retry);
    c->retry.data = c;
    return c;
}

/* One of pending is done; the last one after creds_free frees c. */
static void pending_done(struct creds *c)
{
    if (--c->pending == 0 && c->freed)
        free(c);
}

static void listener_freed(uv_handle_t *h)
{
    struct listener *l = h->data;
    free(l->ws_id);
    free(l->container_id);
    free(l);
}

static void listener_close(struct listener *l)
{
    if (l->closing)
        return;
    l->closing = true;
    for (struct listener **pp = &l->owner->list; *pp; pp = &(*pp)->next) {
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    }
    uv_close((uv_handle_t *)&l->pipe, listener_freed);
}

static void serve_close(struct serve *v);

static void retry_closed(uv_handle_t *h)
{
    pending_done(h->data);
}

void creds_free(struct creds *c)
{
    if (!c)
        return;
    while (c->list)
        listener_close(c->list);
    while (c->serves)
        serve_close(c->serves);
    strv_release(&c->refused);
    c->freed = true;
    c->pending++;
    uv_close((uv_handle_t *)&c->retry, retry_closed);
}

static void client_freed(uv_handle_t *h)
{
    struct client *cl = h->data;
    volatile char *p = cl->in.buf;
    for (size_t i = 0; i < cl->in.len; i++)
        p[i] = 0;
    buf_release(&cl->in);
    free(cl->ws_id);
    free(cl);
}

static void answer_written(uv_write_t *w, int status)
{
    (void)status;
    struct client *cl = w->handle->data;
    volatile char *p = w->data;
    for (size_t i = 0; p[i]; i++)
        p[i] = 0;
    free(w->data);
    free(w);
    uv_close((uv_handle_t *)&cl->pipe, client_freed);
}

/* The value of "key=" in git's request, newly allocated, or NULL. */
static char *field(const char *req, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = req; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > n && strncmp(p, key, n) == 0 && p[n] == '=')
            return xstrndup(p + n + 1, len - n - 1);
        p = nl ? nl + 1 : NULL;
    }
    return NULL;
}

static char *lookup(struct creds *c, const char *ws_id, const char *req)
{
    _cleanup_free_ char *protocol = field(req, "protocol");
    _cleanup_free_ char *host = field(req, "host");
    if (!protocol || !host || (strcmp(protocol, "https") != 0 && strcmp(protocol, "http") != 0))
        return NULL;
    struct ws_record rec = {0};
    if (store_ws_get(c->store, ws_id, &rec, NULL) < 0)
        return NULL;
    char *answer = NULL;
    struct user_rec u = {0};
    if (strcmp(rec.state, "running") == 0 && rec.owner &&
        store_user_get(c->store, rec.owner, &u, NULL) == 0 && !u.disabled) {
        for (char *p = host; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        _cleanup_free_ char *origin = xasprintf("%s://%s", protocol, host);
        char *username = NULL;
        struct buf sealed = BUF_INIT, plain = BUF_INIT;
        if (store_gitcred_find(c->store, u.id, origin, &username, &sealed) == 0 &&
            unseal(sealed.buf, sealed.len, &plain) == 0) {
            answer = xasprintf("username=%s\npassword=%s\n", username, plain.buf);
            store_audit_add(c->store, rec.owner, "git-credential.use", rec.id, origin, NULL);
        }
        volatile char *z = plain.buf;
        for (size_t i = 0; i < plain.len; i++)
            z[i] = 0;
        free(username);
        buf_release(&sealed);
        buf_release(&plain);
    }
    user_rec_release(&u);
    ws_record_release(&rec);
    return answer;
}

static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    b->base = xmalloc(4096);
    b->len = 4096;
}

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct client *cl = s->data;
    if (n > 0)
        buf_add(&cl->in, b->base, (size_t)n);
    free(b->base);
    if (cl->answered)
        return;
    if (n >= 0 && cl->in.len <= CRED_MAX_REQUEST)
        return;
    /* EOF (or too much): answer once */
    cl->answered = true;
    uv_read_stop(s);
    char *answer = cl->in.len <= CRED_MAX_REQUEST ? lookup(cl->c, cl->ws_id, cl->in.buf) : NULL;
    uv_write_t *w = xmalloc(sizeof(*w));
    w->data = answer ? answer : xstrdup("");
    uv_buf_t ub = uv_buf_init(w->data, (unsigned)strlen(w->data));
    if (uv_write(w, s, &ub, 1, answer_written) < 0) {
        free(w->data);
        free(w);
        uv_close((uv_handle_t *)s, client_freed);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct listener *l = server->data;
    if (status < 0)
        return;
    struct client *cl = xcalloc(1, sizeof(*cl));
    cl->c = l->owner;
    cl->ws_id = xstrdup(l->ws_id);
    cl->in = (struct buf)BUF_INIT;
    uv_pipe_init(uv_default_loop(), &cl->pipe, 0);
    cl->pipe.data = cl;
    if (uv_accept(server, (uv_stream_t *)&cl->pipe) < 0) {
        uv_close((uv_handle_t *)&cl->pipe, client_freed);
        return;
    }
    uv_read_start((uv_stream_t *)&cl->pipe, client_alloc, client_read);
}

static void listener_start(struct creds *c, const struct ws_record *r)
{
    _cleanup_free_ char *run = ws_run_dir(c->m, r->id);
    _cleanup_free_ char *dir = xasprintf("%s/ide", run);
    int dfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return;
    (void)unlinkat(dfd, CRED_SOCKET, 0);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/" CRED_SOCKET, dfd);
    /* the mode comes from the socket's inode (fchmod before bind): a chmod by name
     * after it would follow a symlink the remote user put there in between */
    if (fd < 0 || fchmod(fd, 0600) < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        fchownat(dfd, CRED_SOCKET, (uid_t)r->uid, (gid_t)r->gid, AT_SYMLINK_NOFOLLOW) < 0) {
        if (fd >= 0)
            close(fd);
        close(dfd);
        return;
    }
    close(dfd);
    struct listener *l = xcalloc(1, sizeof(*l));
    l->owner = c;
    l->ws_id = xstrdup(r->id);
    l->container_id = r->container_id ? xstrdup(r->container_id) : NULL;
    uv_pipe_init(uv_default_loop(), &l->pipe, 0);
    l->pipe.data = l;
    l->next = c->list;
    c->list = l;
    if (uv_pipe_open(&l->pipe, fd) < 0 || uv_listen((uv_stream_t *)&l->pipe, 16, on_connection) < 0)
        listener_close(l);
}

/* ---- a remote workspace: the CRED_SERVE session ---- */

static void serve_freed(uv_handle_t *h)
{
    struct serve *v = h->data;
    struct creds *c = v->owner;
    buf_release(&v->in);
    free(v->ws_id);
    free(v->container_id);
    free(v);
    pending_done(c);
}

/* Off the list at once; the pipe closes (if it was opened) and frees it.
 * One still connecting is freed when its thread is done. */
static void serve_close(struct serve *v)
{
    if (v->closing)
        return;
    v->closing = true;
    for (struct serve **pp = &v->owner->serves; *pp; pp = &(*pp)->next)
        if (*pp == v) {
            *pp = v->next;
            break;
        }
    if (!v->connecting)
        uv_close((uv_handle_t *)&v->pipe, serve_freed);
}

/* The session ended on its own: it is opened again while the workspace runs. */
static void serve_lost(struct serve *v)
{
    struct creds *c = v->owner;
    serve_close(v);
    if (!c->freed && !uv_is_active((uv_handle_t *)&c->retry))
        uv_timer_start(&c->retry, retry_fire, CRED_RETRY_MS, 0);
}

static void serve_answer(struct serve *v, const unsigned char *p, size_t n)
{
    if (n < 4)
        return;
    _cleanup_free_ char *req = xstrndup((const char *)p + 4, n - 4);
    char *answer = lookup(v->owner, v->ws_id, req);
    size_t alen = answer ? strlen(answer) : 0;
    struct buf out = BUF_INIT;
    buf_add(&out, p, 4); /* the id */
    if (answer)
        buf_add(&out, answer, alen);
    agentc_send_secret_frame((uv_stream_t *)&v->pipe, AGENT_CRED_ANSWER, out.buf, out.len);
    sodium_memzero(out.buf, out.len);
    buf_release(&out);
    if (answer) {
        sodium_memzero(answer, alen);
        free(answer);
    }
}

static void serve_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct serve *v = st->data;
    if (n > 0)
        buf_add(&v->in, b->base, (size_t)n);
    free(b->base);
    if (v->closing)
        return;
    if (n < 0) {
        log_debug("workspace %s: the credential session ended", v->ws_id);
        serve_lost(v);
        return;
    }
    size_t off = 0;
    struct agent_frame f;
    int got;
    while ((got = agent_next_frame(v->in.buf, v->in.len, &off, &f)) > 0) {
        if (f.type == AGENT_CRED_ASK) {
            serve_answer(v, f.payload, f.len);
        } else if (f.type == AGENT_ERROR) {
            /* asked again only when the workspace has a new container (a
             * rebuild brings an agent that has CRED_SERVE) */
            _cleanup_free_ char *msg = xstrndup((const char *)f.payload, f.len);
            log_warn("workspace %s: git inside gets no credentials from berthd until it is "
                     "rebuilt: its agent says: %s",
                     v->ws_id, msg);
            _cleanup_free_ char *key =
                xasprintf("%s %s", v->ws_id, v->container_id ? v->container_id : "");
            strv_push(&v->owner->refused, key);
            serve_close(v);
            return;
        }
    }
    buf_remove_front(&v->in, off);
    if (got < 0)
        serve_lost(v);
}

struct serve_connect {
    uv_work_t work;
    struct serve *v;
    int fd;
    struct berr *err;
};

static void serve_connect_work(uv_work_t *w)
{
    struct serve_connect *sc = w->data;
    sc->fd = -1;
    if (ws_agent_connect(sc->v->owner->m, sc->v->ws_id, &sc->fd, &sc->err) < 0)
        return;
    /* the session is idle between requests: a path that died quietly (a node
     * gone) shows within about a minute, and the session is opened again */
    int on = 1, idle = 30, intvl = 10, cnt = 3;
    (void)setsockopt(sc->fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    (void)setsockopt(sc->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    (void)setsockopt(sc->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    (void)setsockopt(sc->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

static void serve_connect_done(uv_work_t *w, int status)
{
    struct serve_connect *sc = w->data;
    struct serve *v = sc->v;
    v->connecting = false;
    uv_pipe_init(uv_default_loop(), &v->pipe, 0);
    v->pipe.data = v;
    bool ok = status == 0 && sc->fd >= 0 && !v->closing;
    if (ok && uv_pipe_open(&v->pipe, sc->fd) < 0) {
        close(sc->fd);
        ok = false;
    } else if (!ok && sc->fd >= 0) {
        close(sc->fd);
    }
    if (!ok && !v->closing)
        log_debug("workspace %s: no credential session yet: %s", v->ws_id, berr_msg(sc->err));
    berr_free(sc->err);
    free(sc);
    if (v->closing) { /* let go of while connecting */
        uv_close((uv_handle_t *)&v->pipe, serve_freed);
        return;
    }
    if (!ok) {
        serve_lost(v);
        return;
    }
    /* the uid that may ask: the remote user's, as credentials.sock is on one host */
    char uid[24];
    snprintf(uid, sizeof(uid), "%lld", (long long)v->uid);
    struct buf req = BUF_INIT;
    agentc_put_field(&req, AGENT_FIELD_USER, uid, strlen(uid));
    agentc_send_frame((uv_stream_t *)&v->pipe, AGENT_CRED_SERVE, req.buf, req.len);
    buf_release(&req);
    uv_read_start((uv_stream_t *)&v->pipe, agentc_read_alloc, serve_read);
}

static void serve_start(struct creds *c, const struct ws_record *r)
{
    struct serve *v = xcalloc(1, sizeof(*v));
    v->owner = c;
    v->ws_id = xstrdup(r->id);
    v->container_id = r->container_id ? xstrdup(r->container_id) : NULL;
    v->uid = r->uid;
    v->in = (struct buf)BUF_INIT;
    v->connecting = true;
    v->next = c->serves;
    c->serves = v;
    c->pending++;
    struct serve_connect *sc = xcalloc(1, sizeof(*sc));
    sc->v = v;
    sc->work.data = sc;
    if (uv_queue_work(uv_default_loop(), &sc->work, serve_connect_work, serve_connect_done) < 0) {
        free(sc);
        v->connecting = false;
        uv_pipe_init(uv_default_loop(), &v->pipe, 0);
        v->pipe.data = v;
        serve_lost(v);
    }
}

/* A session per running workspace, none for the others. */
static void serves_sync(struct creds *c, const struct ws_record *list, size_t n)
{
    struct strv refused = STRV_INIT; /* those that still apply */
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *key =
            xasprintf("%s %s", list[i].id, list[i].container_id ? list[i].container_id : "");
        bool refuses = strv_contains(&c->refused, key);
        if (refuses)
            strv_push(&refused, key);
        bool running = strcmp(list[i].state, "running") == 0 && list[i].owner && list[i].uid >= 0;
        struct serve *v = c->serves;
        while (v && strcmp(v->ws_id, list[i].id) != 0)
            v = v->next;
        if (v && !running)
            serve_close(v);
        else if (!v && running && !refuses)
            serve_start(c, &list[i]);
    }
    strv_release(&c->refused);
    c->refused = refused;
    for (struct serve *v = c->serves, *next; v; v = next) {
        next = v->next;
        bool found = false;
        for (size_t i = 0; i < n && !found; i++)
            found = strcmp(list[i].id, v->ws_id) == 0;
        if (!found)
            serve_close(v);
    }
}

void creds_sync(struct creds *c)
{
    struct ws_record *list = NULL;
    size_t n = 0;
    if (store_ws_list(c->store, &list, &n, NULL) < 0)
        return;
    if (c->remote)
        serves_sync(c, list, n);
    size_t nl = c->remote ? 0 : n; /* no run dir here: no listeners */
    for (size_t i = 0; i < nl; i++) {
        struct ws_record *r = &list[i];
        struct listener *l = NULL;
        for (struct listener *x = c->list; x; x = x->next)
            if (strcmp(x->ws_id, r->id) == 0)
                l = x;
        bool running = strcmp(r->state, "running") == 0 && r->uid >= 0 && r->owner;
        if (l && (!running || !r->container_id || !l->container_id ||
                  strcmp(r->container_id, l->container_id) != 0))
            listener_close(l), l = NULL;
        if (!l && running)
            listener_start(c, r);
    }
    for (struct listener *l = c->list, *next; l; l = next) {
        next = l->next;
        bool found = false;
        for (size_t i = 0; i < nl; i++)
            if (strcmp(list[i].id, l->ws_id) == 0)
                found = true;
        if (!found)
            listener_close(l);
    }
    for (size_t i = 0; i < n; i++)
        ws_record_release(&list[i]);
    free(list);
}
