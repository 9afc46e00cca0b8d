/* web.c - static files, server-sent events, and the IDE's launcher and proxy.
 *
 * Static files are read whole (they are small) from two roots; a path is
 * served only when it has no "..", no hidden component, and resolves to a
 * regular file under its root (O_NOFOLLOW on each step is not needed: the
 * roots are berthd's own, not a workspace's).
 *
 * Each SSE client remembers what it last sent of each workspace; on every
 * change notification from the workspace module it sends what differs.
 *
 * The IDE (code-server) is started through the agent on the first request
 * and kept for as long as its agent session lasts; until its socket answers,
 * the IDE page shows "starting" and reloads itself.
 */
#include "api/web.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "agent/agent-proto.h"
#include "api/ide-activity.h"
#include "api/ide-ttys.h"
#include "api/ports.h"
#include "proxy/proxy.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "workspace/agentc.h"
#include "workspace/workspace.h"

#define WEB_MAX_FILE (32 * 1024 * 1024)
#define IDE_SOCKET "ide.sock"

struct sse {
    struct sse *next;
    struct web *web;
    struct http_conn *conn;
    char *user;
    bool admin;
    struct strv sent; /* "id\tsignature" of what the client has */
};

struct ide {
    struct ide *next;
    struct web *web;
    char *ws_id;
    char *container_id;
    uv_pipe_t pipe;
    bool open;
    bool listening; /* code-server said so (on a cluster: its port answers) */
    char *error;
    struct buf out; /* what code-server printed, for errors */
};

struct web {
    struct ws_manager *m;
    struct store *store;
    char *web_dir;
    char *vendor_dir;
    struct sse *clients;
    struct ide *ides;
    struct ide_ttys *ttys; /* VS Code terminal output, while VS Code is open */
    struct ports *ports;   /* borrowed: VS Code's port on a cluster */
    uv_timer_t keepalive;
};

static void on_keepalive(uv_timer_t *t);

void web_set_ports(struct web *w, struct ports *p)
{
    w->ports = p;
}

struct web *web_new(struct ws_manager *m, const char *web_dir, const char *vendor_dir)
{
    struct web *w = xcalloc(1, sizeof(*w));
    w->m = m;
    w->store = ws_manager_store(m);
    w->web_dir = web_dir ? xstrdup(web_dir) : NULL;
    w->vendor_dir = vendor_dir ? xstrdup(vendor_dir) : NULL;
    w->ttys = ide_ttys_new(m);
    uv_timer_init(uv_default_loop(), &w->keepalive);
    w->keepalive.data = w;
    uv_timer_start(&w->keepalive, on_keepalive, 15000, 15000);
    return w;
}

void web_free(struct web *w)
{
    if (!w)
        return;
    uv_timer_stop(&w->keepalive);
    uv_close((uv_handle_t *)&w->keepalive, NULL);
}

/* ---- static files ---- */

static const char *content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".woff2", "font/woff2"},
        {".map", "application/json"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < ELEMENTSOF(types); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

static bool safe_relpath(const char *p)
{
    if (!*p || p[0] == '/')
        return false;
    for (const char *s = p; *s;) {
        if (*s == '.' || *s == '/')
            return false; /* "..", hidden files, "//" */
        const char *slash = strchr(s, '/');
        if (!slash)
            break;
        s = slash + 1;
    }
    return !strstr(p, "..");
}

void web_static(struct web *w, struct http_conn *c, struct http_request *req)
{
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        http_respond_error(c, 405, "use GET");
        return;
    }
    const char *root = w->web_dir;
    const char *rel = req->path + 1;
    if (strncmp(req->path, "/vendor/", 8) == 0) {
        root = w->vendor_dir;
        rel = req->path + 8;
    } else if (strcmp(req->path, "/") == 0) {
        rel = "index.html";
    }
    /* vendor packages have scoped names ("@xterm/xterm") */
    const char *check = rel[0] == '@' ? rel + 1 : rel;
    if (!root || !safe_relpath(check) || strncmp(rel, "package", 7) == 0) {
        http_respond_error(c, 404, "not found");
        return;
    }
    _cleanup_free_ char *path = xasprintf("%s/%s", root, rel);
    struct stat st;
    _cleanup_buf_ struct buf body = BUF_INIT;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || read_file(path, WEB_MAX_FILE, &body) < 0) {
        http_respond_error(c, 404, "not found");
        return;
    }
    http_conn_add_header(c, "Content-Security-Policy: default-src 'self'; img-src 'self' data:; "
                            "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'");
    http_conn_add_header(c, "X-Frame-Options: DENY");
    http_conn_add_header(c, "Referrer-Policy: same-origin");
    http_respond(c, 200, content_type(path), body.buf,
                 strcmp(req->method, "HEAD") == 0 ? 0 : body.len);
}

/* ---- server-sent events ---- */

/* What a client must be sent again when it changes: the record, and of the
 * idle clock what is not a countdown (a warning, the timeout, the pin). */
static char *signature(const struct ws_record *r, const json_t *ws)
{
    const json_t *idle = json_object_get(ws, "idle");
    return xasprintf("%s|%lld|%s|%s|%s|%d%d%d|%lld", r->state, (long long)r->updated_at,
                     r->error ? r->error : "", r->container_id ? r->container_id : "",
                     r->image ? r->image : "", json_is_true(json_object_get(idle, "warning")),
                     json_is_true(json_object_get(idle, "pinned")),
                     json_is_true(json_object_get(idle, "deletion_warning")),
                     (long long)json_integer_value(json_object_get(idle, "timeout_minutes")));
}

static void sse_send(struct sse *s, const char *event, json_t *data)
{
    char *text = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    _cleanup_free_ char *msg = xasprintf("event: %s\ndata: %s\n\n", event, text ? text : "null");
    free(text);
    http_stream_write(s->conn, msg, strlen(msg));
}

/* Sends s what changed; idle: ws_idle_json_all's object, read once for
 * every client. */
static void sse_refresh(struct sse *s, json_t *idle)
{
    struct ws_record *list = NULL;
    size_t n = 0;
    if (store_ws_list(s->web->store, &list, &n, NULL) < 0)
        return;
    struct strv now = STRV_INIT;
    for (size_t i = 0; i < n; i++) {
        struct ws_record *r = &list[i];
        if (!r->owner || strcmp(r->owner, s->user) != 0)
            continue;
        json_t *j = ws_json_from(r, idle);
        _cleanup_free_ char *sig = signature(r, j);
        _cleanup_free_ char *entry = xasprintf("%s\t%s", r->id, sig);
        if (!strv_contains(&s->sent, entry))
            sse_send(s, "workspace", j);
        else
            json_decref(j);
        strv_push(&now, entry);
    }
    /* gone since last time */
    for (size_t k = 0; k < s->sent.n; k++) {
        const char *tab = strchr(s->sent.v[k], '\t');
        size_t idlen = tab ? (size_t)(tab - s->sent.v[k]) : strlen(s->sent.v[k]);
        bool present = false;
        for (size_t j = 0; j < now.n; j++)
            if (strncmp(now.v[j], s->sent.v[k], idlen) == 0 && now.v[j][idlen] == '\t')
                present = true;
        if (!present) {
            _cleanup_free_ char *id = xstrndup(s->sent.v[k], idlen);
            sse_send(s, "deleted", json_pack("{s:s}", "id", id));
        }
    }
    strv_release(&s->sent);
    s->sent = now;
    for (size_t i = 0; i < n; i++)
        ws_record_release(&list[i]);
    free(list);
}

void web_changed(struct web *w)
{
    if (!w->clients)
        return;
    json_t *idle = ws_idle_json_all(w->m);
    for (struct sse *s = w->clients; s; s = s->next)
        sse_refresh(s, idle);
    json_decref(idle);
}

void web_ports_changed(struct web *w, const char *owner, const char *ws_id, json_t *ports)
{
    for (struct sse *s = w->clients; s; s = s->next)
        if (strcmp(s->user, owner) == 0)
            sse_send(s, "ports", json_pack("{s:s, s:O}", "id", ws_id, "ports", ports));
    json_decref(ports);
}

static void on_keepalive(uv_timer_t *t)
{
    struct web *w = t->data;
    for (struct sse *s = w->clients; s; s = s->next)
        http_stream_write(s->conn, ": keep-alive\n\n", 14);
}

static void sse_closed(struct http_conn *c, void *data)
{
    (void)c;
    struct sse *s = data;
    for (struct sse **pp = &s->web->clients; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    strv_release(&s->sent);
    free(s->user);
    free(s);
}

void web_stream(struct web *w, struct http_conn *c, const struct auth_user *user)
{
    struct sse *s = xcalloc(1, sizeof(*s));
    s->web = w;
    s->conn = c;
    s->user = xstrdup(user->name);
    s->sent = (struct strv)STRV_INIT;
    s->next = w->clients;
    w->clients = s;
    http_conn_add_header(c, "X-Accel-Buffering: no");
    http_stream_begin(c, 200, "text/event-stream");
    http_conn_on_close(c, sse_closed, s);
    http_stream_write(c, ": berth\n\n", 9);
    json_t *idle = ws_idle_json_all(w->m);
    sse_refresh(s, idle);
    json_decref(idle);
}

/* ---- the IDE ---- */

static struct ide *ide_find(struct web *w, const char *ws_id)
{
    for (struct ide *i = w->ides; i; i = i->next)
        if (strcmp(i->ws_id, ws_id) == 0)
            return i;
    return NULL;
}

static void ide_freed(uv_handle_t *h)
{
    struct ide *i = h->data;
    free(i->ws_id);
    free(i->container_id);
    free(i->error);
    buf_release(&i->out);
    free(i);
}

static void ide_forget(struct ide *i)
{
    for (struct ide **pp = &i->web->ides; *pp; pp = &(*pp)->next) {
        if (*pp == i) {
            *pp = i->next;
            break;
        }
    }
    if (i->open) {
        i->open = false;
        uv_close((uv_handle_t *)&i->pipe, ide_freed);
    } else {
        ide_freed((uv_handle_t *)&i->pipe);
    }
}

static void ide_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    b->base = xmalloc(16384);
    b->len = 16384;
}

static char *ide_output_text(const struct buf *out);

/* code-server's agent session: keep the tail of its output for error pages;
 * when it ends, the IDE is gone (a later request starts it again). */
static void ide_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct ide *i = s->data;
    if (n > 0) {
        /* frames: header + payload; only the text matters here */
        buf_add(&i->out, b->base, (size_t)n);
        if (i->out.len > 65536)
            buf_remove_front(&i->out, i->out.len - 65536);
        if (!i->listening && memmem(i->out.buf, i->out.len, "server listening on", 19))
            i->listening = true;
    }
    free(b->base);
    if (n < 0) {
        _cleanup_free_ char *text = ide_output_text(&i->out);
        log_info("workspace %s: the IDE stopped", i->ws_id);
        if (strstr(text, "command not found") || strstr(text, "No such file")) {
            /* remembered until the workspace is rebuilt, so pages do not
             * keep restarting it */
            free(i->error);
            i->error = xstrdup("VS Code is not available in this workspace: it was created "
                               "before the IDE was installed. Rebuild the workspace to add it "
                               "(files are kept).");
            i->open = false;
            uv_close((uv_handle_t *)&i->pipe, NULL);
            return;
        }
        ide_forget(i);
    }
}

/* The printable text of the agent frames received, for a message. */
static char *ide_output_text(const struct buf *out)
{
    struct buf t = BUF_INIT;
    size_t off = 0;
    struct agent_frame f;
    while (agent_next_frame(out->buf, out->len, &off, &f) > 0)
        if (f.type == AGENT_STDOUT || f.type == AGENT_STDERR || f.type == AGENT_ERROR)
            buf_add(&t, f.payload, f.len);
    return buf_detach(&t, NULL);
}

static int ide_start(struct web *w, const struct ws_record *rec)
{
    bool remote = ws_manager_remote(w->m);
    if (!remote) {
        _cleanup_free_ char *run = ws_run_dir(w->m, rec->id);
        _cleanup_free_ char *ide_dir = xasprintf("%s/ide", run);
        /* a stale socket from an earlier IDE would answer nothing */
        int dfd = open(ide_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
            return -errno;
        (void)unlinkat(dfd, IDE_SOCKET, 0);
        close(dfd);
    }
    int fd = -1;
    int r = ws_agent_connect(w->m, rec->id, &fd, NULL);
    if (r < 0)
        return r;
    struct ide *i = xcalloc(1, sizeof(*i));
    i->web = w;
    i->ws_id = xstrdup(rec->id);
    i->container_id = rec->container_id ? xstrdup(rec->container_id) : NULL;
    i->out = (struct buf)BUF_INIT;
    uv_pipe_init(uv_default_loop(), &i->pipe, 0);
    i->pipe.data = i;
    if (uv_pipe_open(&i->pipe, fd) < 0) {
        close(fd);
        uv_close((uv_handle_t *)&i->pipe, ide_freed);
        return -EIO;
    }
    i->open = true;
    i->next = w->ides;
    w->ides = i;
    /* on one host its socket is in the run dir, which berthd reaches; on a
     * cluster a port on the container's loopback, which the agent reaches */
    _cleanup_free_ char *bind = xasprintf("127.0.0.1:%d", WS_IDE_PORT);
    _cleanup_strv_ struct strv argv = STRV_INIT;
    strv_pushl(&argv, "/.berth-ide/bin/code-server", "--auth", "none", NULL);
    strv_pushl(&argv, remote ? "--bind-addr" : "--socket",
               remote ? bind : "/.berth/ide/" IDE_SOCKET, NULL);
    strv_pushl(&argv, "--config", "/dev/null", "--disable-telemetry", "--disable-update-check",
               "--disable-workspace-trust", rec->workspace_folder, NULL);
    _cleanup_strv_ struct strv env = STRV_INIT;
    (void)ws_owner_env(w->m, rec, &env, NULL);
    struct agentc_exec ex = {
        .argv = &argv, .env = &env, .cwd = rec->workspace_folder, .user = rec->remote_user};
    agentc_send_exec((uv_stream_t *)&i->pipe, &ex);
    uv_read_start((uv_stream_t *)&i->pipe, ide_alloc, ide_read);
    log_info("workspace '%s': starting the IDE", rec->name);
    ws_attached(w->m, rec->id);
    return 0;
}

/* What the browser sends VS Code: its Regular messages are activity in the
 * workspace, its keep-alives are not (ide-activity.h). While it is open, the
 * output of VS Code's terminals is activity too (ide-ttys.h). */
struct ide_tap {
    struct ws_manager *m;
    struct ide_ttys *ttys;
    char ws_id[25];
    struct ide_activity a;
};

static void ide_tap_free(void *data)
{
    struct ide_tap *t = data;
    ide_ttys_release(t->ttys, t->ws_id);
    free(t);
}

static void ide_tap_bytes(void *data, const char *bytes, size_t len)
{
    struct ide_tap *t = data;
    if (ide_activity_feed(&t->a, (const unsigned char *)bytes, len))
        ws_activity(t->m, t->ws_id, WS_ACT_IDE);
}

static void respond_starting(struct http_conn *c, const char *message, bool retry)
{
    _cleanup_free_ char *html =
        xasprintf("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                  "%s<title>VS Code - Berth</title>"
                  "<style>body{font:16px system-ui,sans-serif;margin:3em;color:#222}</style>"
                  "</head><body><main><h1>VS Code</h1><p role=\"status\">%s</p>"
                  "<p><a href=\"/\">Back to the dashboard</a></p></main></body></html>",
                  retry ? "<meta http-equiv=\"refresh\" content=\"1\">" : "", message);
    if (retry)
        http_conn_add_header(c, "Retry-After: 1");
    http_respond(c, retry ? 503 : 502, "text/html; charset=utf-8", html, strlen(html));
}

/* To code-server: through fd, its socket; or (fd -1, on a cluster) its port
 * on the container's loopback, through the agent. */
static void ide_proxy(struct web *w, struct http_conn *c, struct http_request *req,
                      const struct ws_record *rec, int fd)
{
    /* "/w/ID/ide/x?y" -> "/x?y" */
    const char *q = strstr(req->raw_target, "/ide/");
    const char *target = q ? q + 4 : "/";
    struct ide_tap *t = NULL;
    if (!req->upgrade) {
        /* opening the IDE (its page, not its assets) is someone's doing */
        if (target[0] == '/' && (target[1] == 0 || target[1] == '?'))
            ws_activity(w->m, rec->id, WS_ACT_IDE);
    } else {
        t = xcalloc(1, sizeof(*t));
        t->m = w->m;
        t->ttys = w->ttys;
        snprintf(t->ws_id, sizeof(t->ws_id), "%s", rec->id);
        ide_ttys_hold(t->ttys, t->ws_id);
    }
    if (fd >= 0) {
        if (t)
            proxy_forward_tapped(c, req, fd, target, ide_tap_bytes, ide_tap_free, t);
        else
            proxy_forward(c, req, fd, target);
        return;
    }
    _cleanup_free_ char *key = xasprintf("%s:%d", rec->id, WS_IDE_PORT);
    struct proxy_route route = {.key = key,
                                .target = target,
                                .open = ports_open_ide,
                                .data = w->ports,
                                .tap = t ? ide_tap_bytes : NULL,
                                .tap_free = t ? ide_tap_free : NULL,
                                .tap_data = t};
    proxy_request(c, req, &route);
}

void web_ide(struct web *w, struct http_conn *c, struct http_request *req,
             const struct auth_user *user, const struct ws_record *rec, const char *rest)
{
    (void)user;
    if (!*rest) {
        _cleanup_free_ char *loc = xasprintf("/w/%s/ide/", rec->id);
        http_conn_add_header(c, "Location: %s", loc);
        http_respond(c, 302, NULL, NULL, 0);
        return;
    }
    if (strcmp(rec->state, "running") != 0) {
        _cleanup_free_ char *msg = xasprintf("The workspace is %s. Start it from the dashboard "
                                             "to use VS Code.",
                                             rec->state);
        respond_starting(c, msg, false);
        return;
    }
    struct ide *i = ide_find(w, rec->id);
    if (i && i->container_id && rec->container_id && strcmp(i->container_id, rec->container_id)) {
        ide_forget(i); /* the workspace was rebuilt */
        i = NULL;
    }
    bool remote = ws_manager_remote(w->m);
    int fd = -1;
    if (!remote) {
        _cleanup_free_ char *run = ws_run_dir(w->m, rec->id);
        _cleanup_free_ char *ide_dir = xasprintf("%s/ide", run);
        fd = unix_connect_nofollow(ide_dir, IDE_SOCKET);
    }
    if (fd >= 0 || (remote && i && i->listening)) {
        ide_proxy(w, c, req, rec, fd);
        return;
    }
    if (!i) {
        int r = ide_start(w, rec);
        if (r < 0) {
            respond_starting(c,
                             "VS Code could not be started: the workspace agent does not "
                             "answer.",
                             false);
            return;
        }
        respond_starting(c, "Starting VS Code&hellip;", true);
        return;
    }
    if (i->error) {
        respond_starting(c, i->error, false);
        return;
    }
    respond_starting(c, "Starting VS Code&hellip;", true);
}
