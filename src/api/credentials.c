/* credentials.c - per-workspace credential sockets; see credentials.h.
 *
 * The socket lives in a directory the remote user owns, so berthd never
 * follows a name there: the directory is opened with O_NOFOLLOW and the socket
 * bound and chowned through that descriptor. One request per connection,
 * read to EOF (at most 16 KiB), answered, closed.
 */
#include "api/credentials.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "store/accounts.h"
#include "util/log.h"
#include "util/seal.h"
#include "util/xalloc.h"
#include "workspace/workspace.h"

#define CRED_SOCKET "credentials.sock"
#define CRED_MAX_REQUEST 16384

struct listener {
    struct listener *next;
    struct creds *owner;
    char *ws_id;
    char *container_id;
    uv_pipe_t pipe;
    bool closing;
};

struct creds {
    struct ws_manager *m;
    struct store *store;
    struct listener *list;
};

struct client {
    uv_pipe_t pipe;
    struct listener *l; /* may be gone: only ws_id is used */
    char *ws_id;
    struct buf in;
    bool answered;
};

struct creds *creds_new(struct ws_manager *m)
{
    struct creds *c = xcalloc(1, sizeof(*c));
    c->m = m;
    c->store = ws_manager_store(m);
    return c;
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

void creds_free(struct creds *c)
{
    if (!c)
        return;
    while (c->list)
        listener_close(c->list);
    free(c);
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
    char *answer = cl->in.len <= CRED_MAX_REQUEST && cl->l
                       ? lookup(cl->l->owner, cl->ws_id, cl->in.buf)
                       : NULL;
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
    cl->l = l;
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

void creds_sync(struct creds *c)
{
    struct ws_record *list = NULL;
    size_t n = 0;
    if (store_ws_list(c->store, &list, &n, NULL) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
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
        for (size_t i = 0; i < n; i++)
            if (strcmp(list[i].id, l->ws_id) == 0)
                found = true;
        if (!found)
            listener_close(l);
    }
    for (size_t i = 0; i < n; i++)
        ws_record_release(&list[i]);
    free(list);
}
