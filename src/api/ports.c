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
#include <jansson.h>
#include <poll.h>
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
#include "workspace/workspace.h"

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
};

struct ports *ports_new(struct ws_manager *m, struct auth *auth)
{
    struct ports *p = xcalloc(1, sizeof(*p));
    p->m = m;
    p->store = ws_manager_store(m);
    p->auth = auth;
    return p;
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

void ports_free(struct ports *p)
{
    if (!p)
        return;
    while (p->watches)
        watch_close(p->watches);
    free(p);
}

static void apply_line(struct watch *w, const char *line)
{
    if (strcmp(line, ".") == 0) {
        w->ready = true;
    } else if (line[0] == '+' && line[1] == ' ') {
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

static void watch_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    b->base = xmalloc(65536);
    b->len = 65536;
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
    while (w->in.len - off >= AGENT_HEADER_SIZE) {
        const unsigned char *h = (const unsigned char *)w->in.buf + off;
        uint32_t len = agent_get_u32(h + 4);
        if (len > AGENT_MAX_PAYLOAD) {
            watch_close(w);
            return;
        }
        if (w->in.len - off - AGENT_HEADER_SIZE < len)
            break;
        if (h[0] == AGENT_PORTS) {
            _cleanup_free_ char *text = xstrndup((const char *)h + AGENT_HEADER_SIZE, len);
            char *save = NULL;
            for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
                apply_line(w, l);
        }
        off += AGENT_HEADER_SIZE + len;
    }
    buf_remove_front(&w->in, off);
}

static struct watch *watch_find(struct ports *p, const char *ws_id)
{
    for (struct watch *w = p->watches; w; w = w->next)
        if (strcmp(w->ws_id, ws_id) == 0)
            return w;
    return NULL;
}

static void watch_written(uv_write_t *wr, int status)
{
    (void)status;
    free(wr->data);
    free(wr);
}

static void watch_start(struct ports *p, const struct ws_record *r)
{
    _cleanup_free_ char *run = ws_run_dir(p->m, r->id);
    int fd = unix_connect_nofollow(run, AGENT_SOCKET_NAME);
    if (fd < 0)
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
    uv_write_t *wr = xmalloc(sizeof(*wr));
    unsigned char *frame = xmalloc(AGENT_HEADER_SIZE);
    agent_put_header(frame, AGENT_PORTS_WATCH, 0);
    wr->data = frame;
    uv_buf_t b = uv_buf_init((char *)frame, AGENT_HEADER_SIZE);
    uv_write(wr, (uv_stream_t *)&w->pipe, &b, 1, watch_written);
    uv_read_start((uv_stream_t *)&w->pipe, watch_alloc, watch_read);
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
        bool running = strcmp(r->state, "running") == 0 && !ws_is_busy(p->m, r->id);
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
        if (!found)
            watch_close(w);
    }
    for (size_t i = 0; i < n; i++)
        ws_record_release(&list[i]);
    free(list);
}

static json_t *ports_json(struct ports *p, const struct ws_record *rec)
{
    json_t *arr = json_array();
    struct watch *w = watch_find(p, rec->id);
    if (!w)
        return arr;
    for (size_t i = 0; i < w->open.n; i++) {
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
        json_t *existing = NULL;
        size_t k;
        json_t *e;
        json_array_foreach (arr, k, e)
            if (json_integer_value(json_object_get(e, "port")) == port)
                existing = e;
        if (existing) {
            json_array_append_new(json_object_get(existing, "addresses"), json_string(addr));
            continue;
        }
        _cleanup_free_ char *vis = store_port_visibility(p->store, rec->id, port);
        _cleanup_free_ char *url = xasprintf("/w/%s/ports/%d/", rec->id, port);
        json_array_append_new(arr, json_pack("{s:i, s:[s], s:i, s:s, s:s, s:s}", "port", port,
                                             "addresses", addr, "pid", atoi(pid_s), "process", comm,
                                             "visibility", vis, "url", url));
    }
    return arr;
}

/* ---- tunnels (berth port-forward): a WebSocket carrying a raw TCP stream ---- */

struct tunnel {
    uv_pipe_t pipe;
    struct wsock *ws;
    bool pipe_closed;
    bool reading;
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

static void tunnel_open(struct ports *p, struct http_conn *c, struct http_request *req,
                        const struct ws_record *rec, int port)
{
    if (strcmp(rec->state, "running") != 0) {
        http_respond_error(c, 409, "workspace '%s' is %s, not running", rec->name, rec->state);
        return;
    }
    _cleanup_free_ char *msg = NULL;
    int fd = ports_connect(p, rec->id, port, &msg);
    if (fd < 0) {
        http_respond_error(c, 502, "%s", msg);
        return;
    }
    struct tunnel *t = xcalloc(1, sizeof(*t));
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

void ports_api(struct ports *p, struct http_conn *c, struct http_request *req,
               const struct auth_user *user, const struct ws_record *rec, const char *rest)
{
    (void)user;
    if (!*rest && strcmp(req->method, "GET") == 0) {
        ports_sync(p);
        struct watch *w = watch_find(p, rec->id);
        /* "detecting": the agent has not sent its first list yet */
        http_respond_json(c, 200,
                          json_pack("{s:o, s:b}", "ports", ports_json(p, rec), "detecting",
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
    if (port <= 0 || port > 65535 || !end || strcmp(end, "/visibility") != 0 ||
        (strcmp(req->method, "POST") != 0 && strcmp(req->method, "PUT") != 0)) {
        http_respond_error(c, 404, "no route for %s %s", req->method, req->path);
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
    http_respond_json(c, 200, json_pack("{s:i, s:s}", "port", (int)port, "visibility", vis));
    json_decref(body);
}

/* read() that also takes a stream socket passed along (SCM_RIGHTS) into
 * *ret_fd when ret_fd is given; anything else passed is closed. */
static ssize_t read_with_fd(int fd, void *data, size_t len, int *ret_fd)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    struct iovec iov = {.iov_base = data, .iov_len = len};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0)
        return n;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
            cm->cmsg_len != CMSG_LEN(sizeof(int)))
            continue;
        int got;
        memcpy(&got, CMSG_DATA(cm), sizeof(int));
        int type = 0;
        socklen_t tl = sizeof(type);
        /* only a stream socket is any use; the container chose what to send */
        if (ret_fd && *ret_fd < 0 && getsockopt(got, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 &&
            type == SOCK_STREAM)
            *ret_fd = got;
        else
            close(got);
    }
    return n;
}

int ports_connect(struct ports *p, const char *ws_id, int port, char **ret_msg)
{
    _cleanup_free_ char *run = ws_run_dir(p->m, ws_id);
    int fd = unix_connect_nofollow(run, AGENT_SOCKET_NAME);
    if (fd < 0) {
        *ret_msg = xstrdup("the workspace agent does not answer");
        return fd;
    }
    /* the port, then the field PASS_FD (empty): the socket itself, no relay */
    unsigned char frame[AGENT_HEADER_SIZE + 2 + 5] = {0};
    agent_put_header(frame, AGENT_TCP_CONNECT, 2 + 5);
    frame[AGENT_HEADER_SIZE] = (unsigned char)(port >> 8);
    frame[AGENT_HEADER_SIZE + 1] = (unsigned char)port;
    frame[AGENT_HEADER_SIZE + 2] = AGENT_FIELD_PASS_FD;
    if (write(fd, frame, sizeof(frame)) != (ssize_t)sizeof(frame)) {
        close(fd);
        *ret_msg = xstrdup("the workspace agent does not answer");
        return -EIO;
    }
    /* the agent answers as soon as the loopback connect is done */
    unsigned char h[AGENT_HEADER_SIZE];
    size_t got = 0;
    int passed = -1;
    while (got < sizeof(h)) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 3000) <= 0)
            break;
        ssize_t n = read_with_fd(fd, h + got, sizeof(h) - got, passed < 0 ? &passed : NULL);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got == sizeof(h) && h[0] == AGENT_CONNECTED && agent_get_u32(h + 4) == 0) {
        if (passed < 0)
            return fd; /* an agent that relays */
        close(fd);
        return passed;
    }
    if (passed >= 0)
        close(passed);
    close(fd);
    *ret_msg = xasprintf("nothing is listening on port %d in the workspace", port);
    return -ECONNREFUSED;
}
