/* ports.c - forwarded ports: live detection, the API, tunnels, connections.
 *
 * For each running workspace berthd keeps one PORTS_WATCH session with its
 * agent; the agent pushes "+ PORT ADDR PID COMM" and "- PORT ADDR" lines as
 * listeners open and close (no polling here). The list lives in memory; only
 * the visibility a user chose is stored.
 *
 * Connections to a port (ports_connect, for the proxy in portproxy.c and for
 * tunnels) are made by the agent, from inside the container, to the port on
 * its loopback, so apps bound to 127.0.0.1 work and the engine publishes
 * nothing on the host. The agent hands the connected socket over (PASS_FD),
 * so the bytes do not take a second hop through it.
 */
#include "api/ports.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "agent/agent-proto.h"
#include "http/websocket.h"
#include "proxy/proxy.h"
#include "store/accounts.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "workspace/agentc.h"
#include "workspace/workspace.h"

/* URLs seen in output: kept per workspace, and queued from other threads */
#define PORTS_MAX_URLS 16
#define PORTS_MAX_PENDING 256

struct watch {
    struct watch *next;
    struct ports *owner;
    char *ws_id;
    char *container_id;
    uv_pipe_t pipe;
    bool closing;
    bool ready; /* the first full list has arrived */
    struct buf in;
    struct strv open; /* "PORT ADDR PID COMM" */
};

struct ports {
    struct ws_manager *m;
    struct store *store;
    struct auth *auth;
    struct watch *watches;
    struct strv urls;     /* "WSID PORT PATH": local URLs seen in output */
    pthread_mutex_t lock; /* guards pending, which any thread may add to */
    struct strv pending;  /* notes not yet taken to the loop */
    uv_async_t wake;
    ports_change_cb change_cb;
    void *change_data;
};

static void take_pending(uv_async_t *a);

/* On a cluster VS Code listens on WS_IDE_PORT with no password of its own
 * (berthd is its gate): never a port anyone may forward or share. */
static bool is_berths(struct ports *p, int port)
{
    return port == WS_IDE_PORT && ws_manager_remote(p->m);
}

struct ports *ports_new(struct ws_manager *m, struct auth *auth)
{
    struct ports *p = xcalloc(1, sizeof(*p));
    p->m = m;
    p->store = ws_manager_store(m);
    p->auth = auth;
    p->urls = (struct strv)STRV_INIT;
    p->pending = (struct strv)STRV_INIT;
    pthread_mutex_init(&p->lock, NULL);
    uv_async_init(uv_default_loop(), &p->wake, take_pending);
    p->wake.data = p;
    return p;
}

void ports_on_change(struct ports *p, ports_change_cb cb, void *data)
{
    p->change_cb = cb;
    p->change_data = data;
}

static void changed(struct ports *p, const char *ws_id)
{
    if (p->change_cb)
        p->change_cb(ws_id, p->change_data);
}

/* A path that stays under the port's URL and is fit for JSON, else "/". */
static const char *safe_path(const char *path)
{
    if (!path || path[0] != '/' || strstr(path, "/../") || strstr(path, "/./") ||
        strstr(path, "\\") || strlen(path) > 512)
        return "/";
    size_t n = strlen(path);
    if ((n >= 3 && strcmp(path + n - 3, "/..") == 0) || (n >= 2 && strcmp(path + n - 2, "/.") == 0))
        return "/";
    json_t *j = json_string(path); /* NULL when it is not UTF-8 */
    bool ok = j != NULL;
    json_decref(j);
    return ok ? path : "/";
}

void ports_note_url(struct ports *p, const char *ws_id, int port, const char *path)
{
    pthread_mutex_lock(&p->lock);
    /* a program printing URLs in a loop must not flood the loop */
    bool room = p->pending.n < PORTS_MAX_PENDING;
    if (room)
        strv_pushf(&p->pending, "%s %d %s", ws_id, port, safe_path(path));
    pthread_mutex_unlock(&p->lock);
    if (room)
        uv_async_send(&p->wake);
}

static size_t urls_of(struct ports *p, const char *ws_id)
{
    size_t n = strlen(ws_id), count = 0;
    for (size_t k = 0; k < p->urls.n; k++)
        if (strncmp(p->urls.v[k], ws_id, n) == 0 && p->urls.v[k][n] == ' ')
            count++;
    return count;
}

/* On the loop: the URLs noted since, each port of a workspace once. */
static void take_pending(uv_async_t *a)
{
    struct ports *p = a->data;
    pthread_mutex_lock(&p->lock);
    struct strv notes = p->pending;
    p->pending = (struct strv)STRV_INIT;
    pthread_mutex_unlock(&p->lock);
    struct strv touched = STRV_INIT;
    for (size_t i = 0; i < notes.n; i++) {
        /* "WSID PORT " is the key */
        const char *sp = strchr(notes.v[i], ' ');
        const char *sp2 = sp ? strchr(sp + 1, ' ') : NULL;
        if (!sp2)
            continue;
        size_t kl = (size_t)(sp2 - notes.v[i]) + 1;
        bool seen = false;
        for (size_t k = 0; k < p->urls.n && !seen; k++)
            seen = strncmp(p->urls.v[k], notes.v[i], kl) == 0;
        _cleanup_free_ char *ws_id = xstrndup(notes.v[i], (size_t)(sp - notes.v[i]));
        if (seen || urls_of(p, ws_id) >= PORTS_MAX_URLS)
            continue;
        strv_push(&p->urls, notes.v[i]);
        bool listed = false;
        for (size_t k = 0; k < touched.n && !listed; k++)
            listed = strcmp(touched.v[k], ws_id) == 0;
        if (!listed)
            strv_push(&touched, ws_id);
    }
    /* one change per workspace for the whole batch */
    for (size_t k = 0; k < touched.n; k++)
        changed(p, touched.v[k]);
    strv_release(&touched);
    strv_release(&notes);
}

/* The path printed with a port's URL, or NULL. */
static const char *url_path(struct ports *p, const char *ws_id, int port)
{
    _cleanup_free_ char *key = xasprintf("%s %d ", ws_id, port);
    for (size_t k = 0; k < p->urls.n; k++)
        if (strncmp(p->urls.v[k], key, strlen(key)) == 0)
            return p->urls.v[k] + strlen(key);
    return NULL;
}

/* Forgets the URLs of a workspace that stopped or went away. */
static void forget_urls(struct ports *p, const char *ws_id)
{
    size_t n = strlen(ws_id);
    for (size_t k = p->urls.n; k-- > 0;) {
        if (strncmp(p->urls.v[k], ws_id, n) == 0 && p->urls.v[k][n] == ' ') {
            free(p->urls.v[k]);
            p->urls.v[k] = p->urls.v[--p->urls.n];
            p->urls.v[p->urls.n] = NULL;
        }
    }
}

static void watch_freed(uv_handle_t *h)
{
    struct watch *w = h->data;
    buf_release(&w->in);
    strv_release(&w->open);
    free(w->ws_id);
    free(w->container_id);
    free(w);
}

static void watch_close(struct watch *w)
{
    if (w->closing)
        return;
    w->closing = true;
    for (struct watch **pp = &w->owner->watches; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    uv_close((uv_handle_t *)&w->pipe, watch_freed);
}

static void ports_freed(uv_handle_t *h)
{
    struct ports *p = h->data;
    strv_release(&p->urls);
    strv_release(&p->pending);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

void ports_free(struct ports *p)
{
    if (!p)
        return;
    while (p->watches)
        watch_close(p->watches);
    uv_close((uv_handle_t *)&p->wake, ports_freed);
}

static void apply_line(struct watch *w, const char *line)
{
    if (strcmp(line, ".") == 0) {
        w->ready = true;
    } else if (line[0] == '+' && line[1] == ' ') {
        /* on a cluster VS Code's own port (web.c) is Berth's, not the user's */
        if (ws_manager_remote(w->owner->m) && strtol(line + 2, NULL, 10) == WS_IDE_PORT)
            return;
        strv_push(&w->open, line + 2);
    } else if (line[0] == '-' && line[1] == ' ') {
        const char *key = line + 2; /* "PORT ADDR" */
        size_t kl = strlen(key);
        for (size_t i = 0; i < w->open.n; i++) {
            if (strncmp(w->open.v[i], key, kl) == 0 && w->open.v[i][kl] == ' ') {
                free(w->open.v[i]);
                w->open.v[i] = w->open.v[--w->open.n];
                w->open.v[w->open.n] = NULL;
                break;
            }
        }
    }
}

static void watch_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct watch *w = s->data;
    if (n < 0) {
        free(b->base);
        watch_close(w);
        return;
    }
    buf_add(&w->in, b->base, (size_t)n);
    free(b->base);
    size_t off = 0;
    bool news = false;
    struct agent_frame f;
    int got;
    while ((got = agent_next_frame(w->in.buf, w->in.len, &off, &f)) > 0) {
        if (f.type == AGENT_PORTS) {
            _cleanup_free_ char *text = xstrndup((const char *)f.payload, f.len);
            char *save = NULL;
            for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
                apply_line(w, l);
            news = true;
        }
    }
    if (got < 0) {
        watch_close(w);
        return;
    }
    buf_remove_front(&w->in, off);
    if (news && w->ready)
        changed(w->owner, w->ws_id);
}

static struct watch *watch_find(struct ports *p, const char *ws_id)
{
    for (struct watch *w = p->watches; w; w = w->next)
        if (strcmp(w->ws_id, ws_id) == 0)
            return w;
    return NULL;
}

static void watch_start(struct ports *p, const struct ws_record *r)
{
    int fd = -1;
    if (ws_agent_connect(p->m, r->id, &fd, NULL) < 0)
        return;
    struct watch *w = xcalloc(1, sizeof(*w));
    w->owner = p;
    w->ws_id = xstrdup(r->id);
    w->container_id = r->container_id ? xstrdup(r->container_id) : NULL;
    w->in = (struct buf)BUF_INIT;
    w->open = (struct strv)STRV_INIT;
    uv_pipe_init(uv_default_loop(), &w->pipe, 0);
    w->pipe.data = w;
    w->next = p->watches;
    p->watches = w;
    if (uv_pipe_open(&w->pipe, fd) < 0) {
        close(fd);
        watch_close(w);
        return;
    }
    agentc_send_frame((uv_stream_t *)&w->pipe, AGENT_PORTS_WATCH, NULL, 0);
    uv_read_start((uv_stream_t *)&w->pipe, agentc_read_alloc, watch_read);
}

void ports_sync(struct ports *p)
{
    struct ws_record *list = NULL;
    size_t n = 0;
    if (store_ws_list(p->store, &list, &n, NULL) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        struct ws_record *r = &list[i];
        struct watch *w = watch_find(p, r->id);
        /* running, even while later lifecycle commands run (waitFor) */
        bool running = strcmp(r->state, "running") == 0;
        if (strcmp(r->state, "stopped") == 0 || strcmp(r->state, "failed") == 0)
            forget_urls(p, r->id);
        if (w && (!running || !r->container_id || !w->container_id ||
                  strcmp(r->container_id, w->container_id) != 0))
            watch_close(w), w = NULL;
        if (!w && running)
            watch_start(p, r);
    }
    /* watches of deleted workspaces */
    for (struct watch *w = p->watches, *next; w; w = next) {
        next = w->next;
        bool found = false;
        for (size_t i = 0; i < n; i++)
            if (strcmp(list[i].id, w->ws_id) == 0)
                found = true;
        if (!found) {
            forget_urls(p, w->ws_id);
            watch_close(w);
        }
    }
    for (size_t i = 0; i < n; i++)
        ws_record_release(&list[i]);
    free(list);
}

/* portsAttributes: the entry for the port ("3000", or a range "3000-3010"),
 * else otherPortsAttributes, else NULL. */
static json_t *port_attributes(json_t *rt, int port)
{
    const char *key;
    json_t *v;
    json_object_foreach (json_object_get(rt, "portsAttributes"), key, v) {
        char *end = NULL;
        long lo = strtol(key, &end, 10), hi = lo;
        if (end && *end == '-')
            hi = strtol(end + 1, &end, 10);
        if (end && !*end && port >= lo && port <= hi && json_is_object(v))
            return v;
    }
    json_t *other = json_object_get(rt, "otherPortsAttributes");
    return json_is_object(other) ? other : NULL;
}

static bool in_forward_ports(json_t *rt, int port)
{
    size_t i;
    json_t *v;
    json_array_foreach (json_object_get(rt, "forwardPorts"), i, v) {
        const char *s = json_string_value(v);
        /* "localhost:3000" is this container's; "db:5432" another's (Compose) */
        if (json_integer_value(v) == port ||
            (s && strncmp(s, "localhost:", 10) == 0 && atoi(s + 10) == port))
            return true;
    }
    return false;
}

static json_t *find_port(json_t *arr, int port)
{
    size_t k;
    json_t *e;
    json_array_foreach (arr, k, e)
        if (json_integer_value(json_object_get(e, "port")) == port)
            return e;
    return NULL;
}

/* One entry: what the watch saw, and what the configuration says of the port.
 * A portsAttributes entry sets the label, the protocol and onAutoForward; it
 * cannot change the visibility (only the owner can). */
static json_t *port_entry(struct ports *p, const struct ws_record *rec, json_t *rt, int port,
                          const char *source)
{
    json_t *attrs = port_attributes(rt, port);
    const char *label = json_string_value(json_object_get(attrs, "label"));
    const char *protocol = json_string_value(json_object_get(attrs, "protocol"));
    const char *on_auto = json_string_value(json_object_get(attrs, "onAutoForward"));
    const char *path = url_path(p, rec->id, port);
    _cleanup_free_ char *vis = store_port_visibility(p->store, rec->id, port);
    _cleanup_free_ char *url = xasprintf("/w/%s/ports/%d%s", rec->id, port, path ? path : "/");
    return json_pack("{s:i, s:[], s:b, s:s, s:o, s:s, s:s, s:s, s:s}", "port", port, "addresses",
                     "listening", strcmp(source, "detected") == 0, "source", source, "label",
                     label ? json_string(label) : json_null(), "protocol",
                     protocol ? protocol : "http", "on_auto_forward", on_auto ? on_auto : "notify",
                     "visibility", vis, "url", url);
}

json_t *ports_list_json(struct ports *p, const struct ws_record *rec)
{
    json_t *arr = json_array();
    json_t *rt = rec->runtime ? json_loads(rec->runtime, 0, NULL) : NULL;
    struct watch *w = watch_find(p, rec->id);
    for (size_t i = 0; w && i < w->open.n; i++) {
        /* "PORT ADDR PID COMM" */
        _cleanup_free_ char *copy = xstrdup(w->open.v[i]);
        char *save = NULL;
        char *port_s = strtok_r(copy, " ", &save);
        char *addr = strtok_r(NULL, " ", &save);
        char *pid_s = strtok_r(NULL, " ", &save);
        char *comm = save && *save ? save : "?";
        if (!port_s || !addr || !pid_s)
            continue;
        int port = atoi(port_s);
        /* one entry per port: 0.0.0.0 and :: of the same port are one */
        json_t *e = find_port(arr, port);
        if (!e) {
            e = port_entry(p, rec, rt, port, "detected");
            json_object_set_new(e, "pid", json_integer(atoi(pid_s)));
            json_object_set_new(e, "process", json_string(comm));
            json_array_append_new(arr, e);
        }
        json_array_append_new(json_object_get(e, "addresses"), json_string(addr));
    }
    /* forwardPorts are listed before anything listens on them; so are ports
     * whose URL a program printed */
    size_t i;
    json_t *v;
    json_array_foreach (json_object_get(rt, "forwardPorts"), i, v) {
        int port = json_is_integer(v) ? (int)json_integer_value(v) : 0;
        if (json_is_string(v) && strncmp(json_string_value(v), "localhost:", 10) == 0)
            port = atoi(json_string_value(v) + 10);
        if (port > 0 && port <= 65535 && !find_port(arr, port))
            json_array_append_new(arr, port_entry(p, rec, rt, port, "forwardPorts"));
    }
    _cleanup_free_ char *prefix = xasprintf("%s ", rec->id);
    for (size_t k = 0; k < p->urls.n; k++) {
        if (strncmp(p->urls.v[k], prefix, strlen(prefix)) != 0)
            continue;
        int port = atoi(p->urls.v[k] + strlen(prefix));
        if (!find_port(arr, port))
            json_array_append_new(arr, port_entry(p, rec, rt, port, "output"));
    }
    /* a port its owner shared stays listed while closed: who may reach it
     * when something listens again is not hidden */
    _cleanup_free_ int *shared = NULL;
    size_t n_shared = 0;
    (void)store_port_shared(p->store, rec->id, &shared, &n_shared);
    for (size_t k = 0; k < n_shared; k++)
        if (!find_port(arr, shared[k]))
            json_array_append_new(arr, port_entry(p, rec, rt, shared[k], "visibility"));
    /* onAutoForward "ignore": not offered, unless forwardPorts asks for it */
    for (size_t k = json_array_size(arr); k-- > 0;) {
        json_t *e = json_array_get(arr, k);
        int port = (int)json_integer_value(json_object_get(e, "port"));
        const char *on_auto = json_string_value(json_object_get(e, "on_auto_forward"));
        const char *vis = json_string_value(json_object_get(e, "visibility"));
        bool is_shared = vis && strcmp(vis, "private") != 0; /* never hidden */
        if (on_auto && strcmp(on_auto, "ignore") == 0 && !in_forward_ports(rt, port) && !is_shared)
            json_array_remove(arr, k);
    }
    json_decref(rt);
    return arr;
}

/* ---- tunnels (berth port-forward): a WebSocket carrying a raw TCP stream ---- */

struct tunnel {
    uv_pipe_t pipe;
    struct wsock *ws;
    bool pipe_closed;
    bool reading;
    struct ws_manager *m;
    char ws_id[25]; /* what the client sends is activity in the workspace */
};

static void tunnel_freed(uv_handle_t *h)
{
    free(h->data);
}

static void tunnel_close_pipe(struct tunnel *t)
{
    if (!t->pipe_closed) {
        t->pipe_closed = true;
        uv_close((uv_handle_t *)&t->pipe, tunnel_freed);
    }
}

static void tunnel_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    b->base = xmalloc(65536);
    b->len = 65536;
}

static void tunnel_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct tunnel *t = s->data;
    if (n > 0 && t->ws) {
        wsock_send(t->ws, WSOCK_BINARY, b->base, (size_t)n);
        if (t->ws && wsock_pending(t->ws) > PROXY_HIGH_WATER) {
            uv_read_stop(s);
            t->reading = false;
        }
    }
    free(b->base);
    if (n < 0) {
        if (t->ws) {
            struct wsock *w = t->ws;
            t->ws = NULL;
            wsock_close(w, 1000, "the port closed the connection");
        }
        tunnel_close_pipe(t);
    }
}

static void tunnel_written(uv_write_t *w, int status)
{
    struct tunnel *t = w->handle->data;
    free(w->data);
    free(w);
    /* the client's messages were paused while the port's queue was high */
    if (status == 0 && t->ws && !t->pipe_closed &&
        uv_stream_get_write_queue_size((uv_stream_t *)&t->pipe) < PROXY_HIGH_WATER / 4)
        wsock_resume(t->ws);
}

static void tunnel_message(struct wsock *w, int opcode, const unsigned char *data, size_t len,
                           void *ud)
{
    (void)opcode;
    struct tunnel *t = ud;
    if (t->pipe_closed || !len)
        return;
    if (t->ws_id[0])
        ws_activity(t->m, t->ws_id, WS_ACT_PORT);
    uv_write_t *wr = xmalloc(sizeof(*wr));
    wr->data = xmalloc(len);
    memcpy(wr->data, data, len);
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)len);
    if (uv_write(wr, (uv_stream_t *)&t->pipe, &b, 1, tunnel_written) < 0) {
        free(wr->data);
        free(wr);
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)&t->pipe) > PROXY_HIGH_WATER)
        wsock_pause(w);
}

static void tunnel_ws_closed(struct wsock *w, void *ud)
{
    (void)w;
    struct tunnel *t = ud;
    t->ws = NULL;
    tunnel_close_pipe(t);
}

static void tunnel_drained(struct wsock *w, void *ud)
{
    (void)w;
    struct tunnel *t = ud;
    if (!t->reading && !t->pipe_closed) {
        t->reading = true;
        uv_read_start((uv_stream_t *)&t->pipe, tunnel_alloc, tunnel_read);
    }
}

void ports_tunnel_fd(struct http_conn *c, struct http_request *req, struct ws_manager *m,
                     const char *ws_id, int fd)
{
    struct tunnel *t = xcalloc(1, sizeof(*t));
    t->m = m;
    if (ws_id)
        snprintf(t->ws_id, sizeof(t->ws_id), "%s", ws_id);
    uv_pipe_init(uv_default_loop(), &t->pipe, 0);
    t->pipe.data = t;
    if (uv_pipe_open(&t->pipe, fd) < 0) {
        close(fd);
        tunnel_close_pipe(t);
        http_respond_error(c, 502, "cannot relay to the port");
        return;
    }
    if (wsock_accept(c, req, tunnel_message, tunnel_ws_closed, t, &t->ws) < 0) {
        tunnel_close_pipe(t);
        return;
    }
    wsock_on_drain(t->ws, tunnel_drained);
    t->reading = true;
    uv_read_start((uv_stream_t *)&t->pipe, tunnel_alloc, tunnel_read);
}

/* A tunnel's request while its port's connection is being opened. */
struct tunnel_start {
    struct http_conn *c; /* NULL once the client has gone */
    struct http_request *req;
    struct ws_manager *m;
    char ws_id[25];
};

static void tunnel_client_gone(struct http_conn *c, void *data)
{
    (void)c;
    struct tunnel_start *ts = data;
    ts->c = NULL;
}

static void tunnel_connected(void *data, int fd, const char *msg)
{
    struct tunnel_start *ts = data;
    struct http_conn *c = ts->c;
    struct http_request *req = ts->req;
    struct ws_manager *m = ts->m;
    char ws_id[25];
    memcpy(ws_id, ts->ws_id, sizeof(ws_id));
    free(ts);
    if (!c) {
        if (fd >= 0)
            close(fd);
        return;
    }
    http_conn_on_close(c, NULL, NULL);
    if (fd < 0) {
        http_respond_error(c, 502, "%s", msg);
        return;
    }
    ports_tunnel_fd(c, req, m, ws_id, fd);
}

static void tunnel_open(struct ports *p, struct http_conn *c, struct http_request *req,
                        const struct ws_record *rec, int port)
{
    if (strcmp(rec->state, "running") != 0) {
        http_respond_error(c, 409, "workspace '%s' is %s, not running", rec->name, rec->state);
        return;
    }
    struct tunnel_start *ts = xcalloc(1, sizeof(*ts));
    ts->c = c;
    ts->req = req;
    ts->m = p->m;
    snprintf(ts->ws_id, sizeof(ts->ws_id), "%s", rec->id);
    http_conn_on_close(c, tunnel_client_gone, ts);
    ports_connect(p, rec->id, port, tunnel_connected, ts);
}

void ports_api(struct ports *p, struct http_conn *c, struct http_request *req,
               const struct auth_user *user, const struct ws_record *rec, const char *rest)
{
    (void)user;
    if (!*rest && strcmp(req->method, "GET") == 0) {
        ports_sync(p);
        struct watch *w = watch_find(p, rec->id);
        /* "detecting": the agent has not sent its first list yet */
        http_respond_json(c, 200,
                          json_pack("{s:o, s:b}", "ports", ports_list_json(p, rec), "detecting",
                                    strcmp(rec->state, "running") == 0 && (!w || !w->ready)));
        return;
    }
    /* "/PORT/visibility" or "/PORT/tunnel" */
    char *end = NULL;
    long port = rest[0] == '/' ? strtol(rest + 1, &end, 10) : 0;
    if (port > 0 && port <= 65535 && end && strcmp(end, "/tunnel") == 0 &&
        strcmp(req->method, "GET") == 0) {
        tunnel_open(p, c, req, rec, (int)port);
        return;
    }
    if (end && end != rest + 1 &&
        (strcmp(end, "/visibility") == 0 || strcmp(end, "/tunnel") == 0) &&
        (port <= 0 || port > 65535)) {
        http_respond_error(c, 400, "%.*s is not a port number (1 to 65535)", (int)(end - rest - 1),
                           rest + 1);
        return;
    }
    if (port <= 0 || port > 65535 || !end || strcmp(end, "/visibility") != 0 ||
        (strcmp(req->method, "POST") != 0 && strcmp(req->method, "PUT") != 0)) {
        http_respond_error(c, 404, "no route for %s %s", req->method, req->path);
        return;
    }
    if (is_berths(p, (int)port)) {
        http_respond_error(c, 403, "port %ld is Berth's own in a workspace on a cluster (VS Code)",
                           port);
        return;
    }
    json_t *body = json_loadb(req->body.buf, req->body.len, 0, NULL);
    const char *vis = NULL;
    if (!body || json_unpack(body, "{s:s}", "visibility", &vis) < 0 ||
        (strcmp(vis, "private") != 0 && strcmp(vis, "org") != 0 && strcmp(vis, "public") != 0)) {
        json_decref(body);
        http_respond_error(c, 400, "visibility must be 'private', 'org' or 'public'");
        return;
    }
    if (store_port_set_visibility(p->store, rec->id, (int)port, vis) < 0) {
        json_decref(body);
        http_respond_error(c, 500, "cannot store the visibility");
        return;
    }
    store_audit_add(p->store, user->name, "port.visibility", rec->id, vis, req->peer);
    changed(p, rec->id);
    http_respond_json(c, 200, json_pack("{s:i, s:s}", "port", (int)port, "visibility", vis));
    json_decref(body);
}

/* A connection to a port under way: the agent's answer is awaited on the loop. */
struct connecting {
    uv_poll_t poll;
    uv_timer_t timer;
    int handles; /* open: freed when both have closed */
    int fd;      /* to the agent */
    int passed;  /* the TCP socket it handed over, or -1 */
    int port;
    char *only_on; /* the one address the port listens on, when not loopback or any */
    unsigned char h[AGENT_HEADER_SIZE];
    size_t got;
    ports_connected_cb cb;
    void *data;
};

static void connecting_closed(uv_handle_t *h)
{
    struct connecting *k = h->data;
    if (--k->handles > 0)
        return;
    if (k->fd >= 0)
        close(k->fd);
    if (k->passed >= 0)
        close(k->passed);
    free(k->only_on);
    free(k);
}

/* The answer is in (or will not come): report it and let go. */
static void connecting_end(struct connecting *k, const char *why)
{
    if (k->cb) {
        int fd = -ECONNREFUSED;
        _cleanup_free_ char *msg = NULL;
        if (!why && k->h[0] == AGENT_CONNECTED && agent_get_u32(k->h + 4) == 0) {
            /* the socket itself, or the agent's own relay (an older agent) */
            fd = k->passed >= 0 ? TAKE_FD(k->passed) : fcntl(k->fd, F_DUPFD_CLOEXEC, 0);
            if (fd < 0)
                fd = -errno;
        }
        if (fd < 0 && !why && k->only_on)
            msg = xasprintf("port %d listens only on %s in the workspace, which Berth does not "
                            "reach: bind it to 127.0.0.1 or 0.0.0.0",
                            k->port, k->only_on);
        else if (fd < 0)
            msg = why ? xstrdup(why)
                      : xasprintf("nothing is listening on port %d in the workspace", k->port);
        ports_connected_cb cb = k->cb;
        k->cb = NULL;
        cb(k->data, fd, msg);
    }
    uv_close((uv_handle_t *)&k->poll, connecting_closed);
    uv_close((uv_handle_t *)&k->timer, connecting_closed);
}

static void connecting_readable(uv_poll_t *h, int status, int events)
{
    (void)events;
    struct connecting *k = h->data;
    if (!k->cb)
        return;
    if (status < 0) {
        connecting_end(k, "the workspace agent does not answer");
        return;
    }
    ssize_t n = recv_with_fd(k->fd, k->h + k->got, sizeof(k->h) - k->got,
                             k->passed < 0 ? &k->passed : NULL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        connecting_end(k, "the workspace agent closed the connection");
        return;
    }
    k->got += (size_t)n;
    if (k->got == sizeof(k->h))
        connecting_end(k, NULL);
}

static void connecting_timeout(uv_timer_t *t)
{
    struct connecting *k = t->data;
    if (k->cb)
        connecting_end(k, "the workspace agent does not answer");
}

/* The address port listens on when that is one the agent's loopback connect
 * cannot reach (the container's own address, say), newly allocated; else NULL. */
static char *bound_elsewhere(const struct watch *w, int port)
{
    char prefix[16];
    snprintf(prefix, sizeof(prefix), "%d ", port);
    char *addr = NULL;
    for (size_t i = 0; w && i < w->open.n; i++) {
        if (strncmp(w->open.v[i], prefix, strlen(prefix)) != 0)
            continue;
        const char *a = w->open.v[i] + strlen(prefix);
        size_t n = strcspn(a, " ");
        static const char *const reachable[] = {"127.0.0.1", "0.0.0.0", "::1",
                                                "::",        "[::1]",   "[::]"};
        for (size_t k = 0; k < ELEMENTSOF(reachable); k++)
            if (strlen(reachable[k]) == n && strncmp(a, reachable[k], n) == 0) {
                free(addr);
                return NULL; /* one it can reach: the failure is elsewhere */
            }
        if (!addr)
            addr = xstrndup(a, n);
    }
    return addr;
}

static void connect_port(struct ports *p, const char *ws_id, int port, ports_connected_cb cb,
                         void *data);

void ports_connect(struct ports *p, const char *ws_id, int port, ports_connected_cb cb, void *data)
{
    if (is_berths(p, port)) {
        cb(data, -EACCES, "port 7881 is Berth's own in a workspace on a cluster (VS Code)");
        return;
    }
    connect_port(p, ws_id, port, cb, data);
}

void ports_open_ide(void *data, const char *key, ports_connected_cb done, void *ctx)
{
    _cleanup_free_ char *ws_id = xstrndup(key, strcspn(key, ":"));
    connect_port(data, ws_id, WS_IDE_PORT, done, ctx);
}

static void connect_port(struct ports *p, const char *ws_id, int port, ports_connected_cb cb,
                         void *data)
{
    _cleanup_close_ int fd = -1;
    (void)ws_agent_connect(p->m, ws_id, &fd, NULL);
    /* the port, then the field PASS_FD (empty): the socket itself, no relay */
    unsigned char frame[AGENT_HEADER_SIZE + 2 + 5] = {0};
    agent_put_header(frame, AGENT_TCP_CONNECT, 2 + 5);
    frame[AGENT_HEADER_SIZE] = (unsigned char)(port >> 8);
    frame[AGENT_HEADER_SIZE + 1] = (unsigned char)port;
    frame[AGENT_HEADER_SIZE + 2] = AGENT_FIELD_PASS_FD;
    /* a new socket's buffer takes the frame whole, without waiting */
    if (fd < 0 ||
        send(fd, frame, sizeof(frame), MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)sizeof(frame)) {
        cb(data, -EIO, "the workspace agent does not answer");
        return;
    }
    struct connecting *k = xcalloc(1, sizeof(*k));
    k->fd = TAKE_FD(fd);
    k->passed = -1;
    k->port = port;
    k->only_on = bound_elsewhere(watch_find(p, ws_id), port);
    k->cb = cb;
    k->data = data;
    int r = uv_poll_init(uv_default_loop(), &k->poll, k->fd);
    if (r < 0) {
        close(k->fd);
        free(k);
        cb(data, r, "cannot wait for the workspace agent");
        return;
    }
    uv_timer_init(uv_default_loop(), &k->timer);
    k->poll.data = k->timer.data = k;
    k->handles = 2;
    /* the agent answers as soon as the loopback connect is done */
    uv_poll_start(&k->poll, UV_READABLE, connecting_readable);
    uv_timer_start(&k->timer, connecting_timeout, 3000, 0);
}

void ports_open(void *data, const char *key, ports_connected_cb done, void *ctx)
{
    const char *colon = strrchr(key, ':');
    _cleanup_free_ char *ws_id = xstrndup(key, (size_t)(colon - key));
    ports_connect(data, ws_id, (int)strtol(colon + 1, NULL, 10), done, ctx);
}
