/* api.c - routes of the JSON API: workspaces, their actions, events, logs, exec.
 *
 * Handlers validate the request (json_unpack_ex names the bad field), call the
 * workspace module and map its -errno results to HTTP statuses. Two routes
 * stream: logs (fed by the workspace module's followers) and exec (a relay of
 * the agent's frames straight to the client, with backpressure both ways).
 */
#include "api/api-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/ports.h"
#include "sshd/sshd.h"
#include "store/accounts.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "workspace/agentc.h"

#define API_PREFIX "/api/v1"
#define EXEC_HIGH_WATER (1024 * 1024)

static void on_change(void *data)
{
    struct api *a = data;
    portproxy_forget(a->portproxy);
    web_changed(a->web);
    ports_sync(a->ports);
    creds_sync(a->creds);
}

static void on_url(const char *ws_id, int port, const char *path, void *data)
{
    ports_note_url(((struct api *)data)->ports, ws_id, port, path);
}

/* A workspace's ports or their visibility changed: the proxy reads them
 * again, and the owner's dashboards hear of it. */
static void on_ports_change(const char *ws_id, void *data)
{
    struct api *a = data;
    portproxy_forget(a->portproxy);
    _cleanup_ws_record_ struct ws_record rec = {0};
    if (store_ws_get(a->store, ws_id, &rec, NULL) < 0 || !rec.owner)
        return;
    web_ports_changed(a->web, rec.owner, rec.id, ports_list_json(a->ports, &rec));
}

struct api *api_new(struct ws_manager *m, struct runtime *rt, const char *web_dir,
                    const char *vendor_dir)
{
    struct api *a = xcalloc(1, sizeof(*a));
    a->m = m;
    a->store = ws_manager_store(m);
    a->rt = rt;
    a->auth = auth_new(a->store);
    a->terms = terminals_new(m);
    a->web = web_new(m, web_dir, vendor_dir);
    a->ports = ports_new(m, a->auth);
    web_set_ports(a->web, a->ports);
    a->portproxy = portproxy_new(m, a->auth, a->ports);
    a->creds = creds_new(m);
    ws_manager_on_change(m, on_change, a);
    ws_manager_on_url(m, on_url, a);
    ports_on_change(a->ports, on_ports_change, a);
    return a;
}

void api_free(struct api *a)
{
    if (a) {
        auth_free(a->auth);
        terminals_free(a->terms);
        portproxy_free(a->portproxy);
        ports_free(a->ports);
        creds_free(a->creds);
        web_free(a->web);
    }
    free(a);
}

struct auth *api_auth(struct api *a)
{
    return a->auth;
}

void api_audit(struct api *a, const struct auth_user *user, const struct http_request *req,
               const char *action, const char *target, const char *detail)
{
    store_audit_add(a->store, user ? user->name : NULL, action, target, detail,
                    req ? req->peer : NULL);
}

void api_set_swarm(struct api *a, struct engine *manager)
{
    a->swarm = manager;
}

void api_set_base_domain(struct api *a, const char *domain)
{
    portproxy_set_base_domain(a->portproxy, domain);
}

void api_set_sshd(struct api *a, struct sshd *sshd)
{
    a->sshd = sshd;
}

bool api_wants_stream(const struct http_request *req, void *data)
{
    struct api *a = data;
    return portproxy_wants_stream(req, a->portproxy);
}

void api_set_engine_ok(struct api *a, bool ok)
{
    a->engine_ok = ok;
}

int api_status_for(int r)
{
    switch (-r) {
    case ENOENT:
        return 404;
    case EINVAL:
        return 400;
    case EEXIST:
    case EBUSY:
        return 409;
    case ENOTSUP:
        return 400;
    case EACCES:
        return 401;
    case EPERM:
    case EDQUOT:
        return 403;
    default:
        return 500;
    }
}

void api_respond_berr(struct http_conn *c, int r, struct berr *e)
{
    http_respond_error(c, api_status_for(r), "%s", berr_msg(e));
}

json_t *api_parse_body(struct http_conn *c, struct http_request *req)
{
    json_error_t jerr;
    json_t *j = json_loadb(req->body.buf, req->body.len, 0, &jerr);
    if (!j) {
        http_respond_error(c, 400, "request body is not valid JSON: %s (line %d, column %d)",
                           jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        http_respond_error(c, 400, "request body must be a JSON object");
        return NULL;
    }
    return j;
}

static json_t *with_offset(json_t *ws, int64_t offset)
{
    json_object_set_new(ws, "log_offset", json_integer(offset));
    return ws;
}

static void create_workspace(struct api *a, struct http_conn *c, struct http_request *req,
                             const struct auth_user *user)
{
    json_t *body = api_parse_body(c, req);
    if (!body)
        return;
    struct ws_create_request cr = {0};
    json_error_t jerr;
    int no_prebuild = 0;
    if (json_unpack_ex(body, &jerr, 0, "{s:s, s?s, s?s, s?s, s?s, s?s, s?b}", "repo", &cr.repo,
                       "branch", &cr.branch, "commit", &cr.commit, "ref", &cr.ref, "name", &cr.name,
                       "devcontainer_path", &cr.devcontainer_path, "no_prebuild",
                       &no_prebuild) < 0) {
        http_respond_error(c, 400, "invalid request: %s", jerr.text);
        json_decref(body);
        return;
    }
    cr.owner = user->name;
    cr.owner_is_admin = user->admin;
    cr.no_prebuild = no_prebuild;
    struct ws_record rec;
    _cleanup_berr_ struct berr *e = NULL;
    int r = ws_create(a->m, &cr, &rec, &e);
    json_decref(body);
    if (r < 0) {
        api_respond_berr(c, r, e);
        return;
    }
    api_audit(a, user, req, "workspace.create", rec.id, rec.repo);
    log_info("workspace '%s' (%s): create from '%s'", rec.name, rec.id, rec.repo);
    http_respond_json(c, 201, with_offset(ws_record_json(&rec), 0));
    ws_record_release(&rec);
}

static void list_workspaces(struct api *a, struct http_conn *c, struct http_request *req,
                            const struct auth_user *user)
{
    _cleanup_free_ char *all_s = http_request_query(req, "all");
    bool all = all_s && (strcmp(all_s, "1") == 0 || strcmp(all_s, "true") == 0);
    if (all && !user->admin) {
        http_respond_error(c, 403, "only admins can list every user's workspaces");
        return;
    }
    struct ws_record *list = NULL;
    size_t n = 0;
    _cleanup_berr_ struct berr *e = NULL;
    int r = store_ws_list(ws_manager_store(a->m), &list, &n, &e);
    if (r < 0) {
        api_respond_berr(c, r, e);
        return;
    }
    json_t *arr = json_array();
    json_t *idle = ws_idle_json_all(a->m);
    for (size_t i = 0; i < n; i++) {
        if (all || (list[i].owner && strcmp(list[i].owner, user->name) == 0))
            json_array_append_new(arr, ws_json_from(&list[i], idle));
        ws_record_release(&list[i]);
    }
    json_decref(idle);
    free(list);
    http_respond_json(c, 200, json_pack("{s:o}", "workspaces", arr));
}

/* ---- logs ---- */

struct log_stream {
    struct api *a;
    struct http_conn *conn;
    struct ws_log_follower *f;
};

static void log_stream_cb(const char *lines, size_t len, bool done, void *data)
{
    struct log_stream *s = data;
    if (lines)
        http_stream_write(s->conn, lines, len);
    if (done) {
        http_conn_on_close(s->conn, NULL, NULL);
        http_stream_end(s->conn);
        free(s);
    }
}

static void log_stream_closed(struct http_conn *c, void *data)
{
    (void)c;
    struct log_stream *s = data;
    ws_log_unfollow(s->a->m, s->f);
    free(s);
}

void api_get_logs(struct api *a, struct http_conn *c, struct http_request *req, const char *id)
{
    _cleanup_free_ char *follow = http_request_query(req, "follow");
    _cleanup_free_ char *after_s = http_request_query(req, "after");
    int64_t after = 0;
    if (after_s) {
        char *end = NULL;
        long long v = strtoll(after_s, &end, 10);
        if (!*after_s || *end || v < 0) {
            http_respond_error(c, 400, "after must be a non-negative integer");
            return;
        }
        after = v;
    }
    if (follow && (strcmp(follow, "1") == 0 || strcmp(follow, "true") == 0)) {
        struct log_stream *s = xcalloc(1, sizeof(*s));
        s->a = a;
        s->conn = c;
        http_stream_begin(c, 200, "text/plain; charset=utf-8");
        http_conn_on_close(c, log_stream_closed, s);
        s->f = ws_log_follow(a->m, id, after, log_stream_cb, s);
        return;
    }
    _cleanup_buf_ struct buf out = BUF_INIT;
    int64_t last = after;
    for (;;) {
        size_t before = out.len;
        if (store_logs_since(ws_manager_store(a->m), id, last, 5000, &out, &last) < 0 ||
            out.len == before || out.len > 64 * 1024 * 1024)
            break;
    }
    http_respond(c, 200, "text/plain; charset=utf-8", out.buf, out.len);
}

/* ---- exec ---- */

struct exec_relay {
    uv_pipe_t pipe;
    struct http_conn *conn;
    bool reading;
    bool pipe_closed;
    struct ws_manager *m;
    char ws_id[25]; /* output of the command is activity in the workspace */
};

static void relay_free(uv_handle_t *h)
{
    free(h->data);
}

static void relay_close_pipe(struct exec_relay *x)
{
    if (x->pipe_closed)
        return;
    x->pipe_closed = true;
    uv_close((uv_handle_t *)&x->pipe, relay_free);
}

static void relay_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    b->base = xmalloc(65536);
    b->len = 65536;
}

static void relay_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct exec_relay *x = s->data;
    if (n > 0 && x->conn) {
        ws_activity(x->m, x->ws_id, WS_ACT_EXEC);
        http_stream_write(x->conn, b->base, (size_t)n);
        if (x->conn && http_conn_pending(x->conn) > EXEC_HIGH_WATER) {
            uv_read_stop(s);
            x->reading = false;
        }
    }
    free(b->base);
    if (n < 0) {
        if (x->conn) {
            http_conn_on_close(x->conn, NULL, NULL);
            http_stream_end(x->conn);
            x->conn = NULL;
        }
        relay_close_pipe(x);
    }
}

static void relay_drained(struct http_conn *c, void *data)
{
    (void)c;
    struct exec_relay *x = data;
    if (!x->reading && !x->pipe_closed) {
        x->reading = true;
        uv_read_start((uv_stream_t *)&x->pipe, relay_alloc, relay_read);
    }
}

static void relay_client_gone(struct http_conn *c, void *data)
{
    (void)c;
    struct exec_relay *x = data;
    x->conn = NULL;
    /* closing our end makes the agent hang up the command */
    relay_close_pipe(x);
}

static void relay_written(uv_write_t *w, int status)
{
    (void)status;
    free(w->data);
    free(w);
}

static void exec_command(struct api *a, struct http_conn *c, struct http_request *req,
                         const struct ws_record *rec)
{
    json_t *body = api_parse_body(c, req);
    if (!body)
        return;
    json_t *cmd = NULL, *env = NULL;
    const char *user = NULL, *cwd = NULL;
    json_error_t jerr;
    if (json_unpack_ex(body, &jerr, 0, "{s:o, s?s, s?s, s?o}", "cmd", &cmd, "user", &user, "cwd",
                       &cwd, "env", &env) < 0) {
        http_respond_error(c, 400, "invalid request: %s", jerr.text);
        json_decref(body);
        return;
    }
    _cleanup_strv_ struct strv argv = STRV_INIT;
    _cleanup_strv_ struct strv envv = STRV_INIT;
    size_t i;
    json_t *v;
    bool ok = json_is_array(cmd) && json_array_size(cmd) > 0;
    json_array_foreach (cmd, i, v) {
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
            ok = false;
        else
            strv_push(&argv, json_string_value(v));
    }
    if (!ok) {
        json_decref(body);
        http_respond_error(c, 400, "cmd must be a non-empty array of strings");
        return;
    }
    if (env && !json_is_object(env)) {
        json_decref(body);
        http_respond_error(c, 400, "env must be an object of strings");
        return;
    }
    const char *k;
    json_object_foreach (env, k, v) {
        if (!json_is_string(v) || !*k || strchr(k, '=')) {
            json_decref(body);
            http_respond_error(c, 400, "env must be an object of strings with valid names");
            return;
        }
        strv_pushf(&envv, "%s=%s", k, json_string_value(v));
    }
    if (strcmp(rec->state, "running") != 0) {
        json_decref(body);
        http_respond_error(c, 409, "workspace '%s' is %s, not running", rec->name, rec->state);
        return;
    }
    int fd = -1;
    int r = ws_agent_connect(a->m, rec->id, &fd, NULL);
    if (r < 0) {
        json_decref(body);
        http_respond_error(c, 502, "cannot reach the workspace agent: %s", strerror(-r));
        return;
    }
    /* the owner's secrets first, so the request's env can override them */
    _cleanup_strv_ struct strv full_env = STRV_INIT;
    (void)ws_owner_env(a->m, rec, &full_env, NULL);
    for (size_t ei = 0; ei < envv.n; ei++)
        strv_push(&full_env, envv.v[ei]);
    struct agentc_exec ex = {.argv = &argv,
                             .env = &full_env,
                             .cwd = cwd ? cwd : rec->workspace_folder,
                             .user = user ? user : rec->remote_user};
    struct buf frame = BUF_INIT;
    agentc_build_exec(&frame, &ex);
    json_decref(body);

    struct exec_relay *x = xcalloc(1, sizeof(*x));
    uv_pipe_init(uv_default_loop(), &x->pipe, 0);
    x->pipe.data = x;
    x->conn = c;
    x->m = a->m;
    snprintf(x->ws_id, sizeof(x->ws_id), "%s", rec->id);
    ws_activity(a->m, rec->id, WS_ACT_EXEC);
    if (uv_pipe_open(&x->pipe, fd) < 0) {
        close(fd);
        buf_release(&frame);
        x->pipe_closed = true;
        uv_close((uv_handle_t *)&x->pipe, relay_free);
        http_respond_error(c, 502, "cannot reach the workspace agent");
        return;
    }
    uv_write_t *w = xmalloc(sizeof(*w));
    size_t len;
    w->data = buf_detach(&frame, &len);
    uv_buf_t ub = uv_buf_init(w->data, (unsigned)len);
    uv_write(w, (uv_stream_t *)&x->pipe, &ub, 1, relay_written);
    http_stream_begin(c, 200, "application/vnd.berth.stream");
    http_conn_on_close(c, relay_client_gone, x);
    http_conn_on_drain(c, relay_drained, x);
    x->reading = true;
    uv_read_start((uv_stream_t *)&x->pipe, relay_alloc, relay_read);
}

/* ---- GET /workspaces/{ws}/ssh: berth ssh-proxy's WebSocket to the SSH gateway ---- */

/* The SSH stream is the gateway's like one from its TCP port: the client still logs in
 * with a key of the workspace's owner (the token only opens the way). */
static void ssh_proxy(struct api *a, struct http_conn *c, struct http_request *req)
{
    if (!a->sshd) {
        http_respond_error(c, 503, "the SSH gateway is off (berthd --ssh-listen none)");
        return;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        http_respond_error(c, 503, "cannot open an SSH stream: %s", strerror(errno));
        return;
    }
    int r = sshd_accept_fd(a->sshd, sv[0], req->peer);
    if (r < 0) {
        close(sv[1]);
        if (r == -EACCES)
            http_respond_error(c, 429, "too many failed SSH logins from %s; try again later",
                               req->peer);
        else
            http_respond_error(c, 503, "the SSH gateway is full; try again later");
        return;
    }
    ports_tunnel_fd(c, req, a->m, NULL, sv[1]);
}

/* ---- routing ---- */

static void workspace_route(struct api *a, struct http_conn *c, struct http_request *req,
                            const struct auth_user *user, const char *rest)
{
    /* rest: "{ws}" or "{ws}/action" */
    const char *slash = strchr(rest, '/');
    _cleanup_free_ char *ws = slash ? xstrndup(rest, (size_t)(slash - rest)) : xstrdup(rest);
    const char *action = slash ? slash + 1 : "";
    if (!*ws) {
        http_respond_error(c, 404, "not found");
        return;
    }
    _cleanup_ws_record_ struct ws_record rec = {0};
    _cleanup_berr_ struct berr *e = NULL;
    int r = store_ws_get(ws_manager_store(a->m), ws, &rec, &e);
    if (r < 0) {
        api_respond_berr(c, r, e);
        return;
    }
    const char *m = req->method;
    bool get = strcmp(m, "GET") == 0, post = strcmp(m, "POST") == 0;
    /* Another user's workspace does not exist for the caller; an admin may
     * read, stop and delete it (never exec into it), and that is audited. */
    bool own = rec.owner && strcmp(rec.owner, user->name) == 0;
    bool admin_act =
        !own && user->admin &&
        ((!*action && (get || strcmp(m, "DELETE") == 0)) || (strcmp(action, "stop") == 0 && post) ||
         (strcmp(action, "events") == 0 && get));
    if (!own && !admin_act && user->admin) {
        /* the admin can see it anyway: say what they may do, not "not found" */
        http_respond_error(c, 403,
                           "workspace '%s' belongs to %s: admins may see, stop and delete other "
                           "users' workspaces, not enter them",
                           ws, rec.owner ? rec.owner : "nobody");
        return;
    }
    if (!own && !admin_act) {
        http_respond_error(c, 404, "workspace '%s' not found", ws);
        return;
    }

    if (!*action && get) {
        json_t *j = ws_json(a->m, &rec);
        json_object_set_new(j, "task_terminals", terminals_tasks_json(a->terms, &rec));
        http_respond_json(c, 200, j);
        return;
    }
    if (strcmp(action, "settings") == 0) {
        api_workspace_settings(a, c, req, user, &rec);
        return;
    }
    /* where this action's log lines will start, for logs?after= */
    int64_t offset = store_log_last(ws_manager_store(a->m), rec.id);
    if (!*action && strcmp(m, "DELETE") == 0) {
        struct ws_record out;
        r = ws_act(a->m, rec.id, WS_ACTION_DELETE, &out, &e);
        if (r < 0) {
            api_respond_berr(c, r, e);
            return;
        }
        log_info("workspace '%s' (%s): delete by '%s'", out.name, out.id, user->name);
        api_audit(a, user, req, own ? "workspace.delete" : "admin.workspace.delete", out.id,
                  out.owner);
        http_respond_json(c, 202, with_offset(ws_record_json(&out), offset));
        ws_record_release(&out);
        return;
    }
    static const struct {
        const char *name;
        enum ws_action action;
    } actions[] = {
        {"start", WS_ACTION_START}, {"stop", WS_ACTION_STOP}, {"rebuild", WS_ACTION_REBUILD}};
    for (size_t i = 0; i < ELEMENTSOF(actions); i++) {
        if (strcmp(action, actions[i].name) != 0)
            continue;
        if (!post) {
            http_respond_error(c, 405, "use POST for %s", action);
            return;
        }
        struct ws_record out;
        r = ws_act(a->m, rec.id, actions[i].action, &out, &e);
        if (r < 0) {
            api_respond_berr(c, r, e);
            return;
        }
        log_info("workspace '%s' (%s): %s by '%s'", out.name, out.id, action, user->name);
        _cleanup_free_ char *what = xasprintf("%sworkspace.%s", own ? "" : "admin.", action);
        api_audit(a, user, req, what, out.id, out.owner);
        http_respond_json(c, 202, with_offset(ws_record_json(&out), offset));
        ws_record_release(&out);
        return;
    }
    if (strcmp(action, "events") == 0 && get) {
        json_t *events = NULL;
        r = store_events_json(ws_manager_store(a->m), rec.id, &events, &e);
        if (r < 0) {
            api_respond_berr(c, r, e);
            return;
        }
        http_respond_json(c, 200, json_pack("{s:o}", "events", events));
        return;
    }
    if (strcmp(action, "logs") == 0 && get) {
        api_get_logs(a, c, req, rec.id);
        return;
    }
    if (strcmp(action, "exec") == 0 && post) {
        exec_command(a, c, req, &rec);
        return;
    }
    if (strcmp(action, "ports") == 0 || strncmp(action, "ports/", 6) == 0) {
        ports_api(a->ports, c, req, user, &rec, action + 5);
        return;
    }
    if (strcmp(action, "terminal") == 0 && get) {
        terminal_route(a->terms, c, req, user, &rec);
        return;
    }
    if (strcmp(action, "ssh") == 0 && get) {
        ssh_proxy(a, c, req);
        return;
    }
    http_respond_error(c, *action && !get && !post ? 405 : 404, "no route for %s %s", m, req->path);
}

/* ---- GET /images/metadata?image=REF: what `berth config` merges ---- */

struct image_query {
    struct runtime *rt;
    char *image;
};

static int image_query_run(void *data, json_t **ret_answer, struct berr **e)
{
    struct image_query *q = data;
    json_t *info = NULL;
    int r = rt_image_inspect(q->rt, q->image, &info, e);
    if (r < 0)
        return r;
    json_t *cfg = json_object_get(info, "Config");
    const char *label =
        json_string_value(json_object_get(json_object_get(cfg, "Labels"), "devcontainer.metadata"));
    const char *user = json_string_value(json_object_get(cfg, "User"));
    *ret_answer = json_pack("{s:s, s:o, s:o}", "image", q->image, "metadata",
                            label ? json_string(label) : json_null(), "user",
                            user && *user ? json_string(user) : json_null());
    json_decref(info);
    return 0;
}

static void image_query_free(void *data)
{
    struct image_query *q = data;
    free(q->image);
    free(q);
}

static void image_metadata(struct api *a, struct http_conn *c, struct http_request *req)
{
    _cleanup_free_ char *image = http_request_query(req, "image");
    if (!image || !*image || strlen(image) > 512) {
        http_respond_error(c, 400, "give the image as ?image=NAME");
        return;
    }
    if (!ws_image_name_allowed(image)) {
        http_respond_error(c, 403, "image '%s' is Berth's build cache or an id", image);
        return;
    }
    struct image_query *q = xcalloc(1, sizeof(*q));
    q->rt = a->rt;
    q->image = TAKE_PTR(image);
    api_job_start(c, image_query_run, q, image_query_free);
}

/* Browser routes under /w/{ws}/: the IDE. */
static void browser_route(struct api *a, struct http_conn *c, struct http_request *req)
{
    struct auth_user user = {0};
    _cleanup_berr_ struct berr *e = NULL;
    int r = auth_request(a->auth, req, AUTH_ORIGIN_ONLY, &user, &e);
    if (r < 0) {
        if (r == -EACCES && strcmp(req->method, "GET") == 0 && !req->upgrade) {
            _cleanup_free_ char *loc = xasprintf("/login.html?next=%s", req->path);
            http_conn_add_header(c, "Location: %s", loc);
            http_respond(c, 302, NULL, NULL, 0);
        } else {
            api_respond_berr(c, r, e);
        }
        return;
    }
    /* "/w/{ws}/ide..." */
    const char *p = req->path + 3;
    const char *slash = strchr(p, '/');
    _cleanup_free_ char *ws = slash ? xstrndup(p, (size_t)(slash - p)) : xstrdup(p);
    const char *rest = slash ? slash + 1 : "";
    _cleanup_ws_record_ struct ws_record rec = {0};
    bool found = store_ws_get(a->store, ws, &rec, NULL) == 0;
    if (!found || !rec.owner || strcmp(rec.owner, user.name) != 0) {
        http_respond_error(c, 404, "workspace '%s' not found", ws);
    } else if (strncmp(rest, "ide", 3) == 0 && (rest[3] == 0 || rest[3] == '/')) {
        web_ide(a->web, c, req, &user, &rec, rest + 3);
    } else {
        http_respond_error(c, 404, "no route for %s %s", req->method, req->path);
    }
    auth_user_release(&user);
}

void api_handle(struct http_conn *c, struct http_request *req, void *data)
{
    struct api *a = data;
    const char *p = req->path;
    /* forwarded ports (a port's subdomain, /w/{ws}/ports/...) decide by their
     * own visibility who may enter */
    if (portproxy_route(a->portproxy, c, req))
        return;
    if (strncmp(p, "/w/", 3) == 0) {
        browser_route(a, c, req);
        return;
    }
    if (strncmp(p, API_PREFIX "/", strlen(API_PREFIX) + 1) != 0) {
        web_static(a->web, c, req);
        return;
    }
    p += strlen(API_PREFIX);
    if (strcmp(p, "/health") == 0) {
        http_respond_json(
            c, 200,
            json_pack("{s:s, s:s}", "status", "ok", "engine", a->engine_ok ? "ok" : "unreachable"));
        return;
    }
    if (strcmp(p, "/auth/login") == 0) {
        if (strcmp(req->method, "POST") == 0)
            api_login(a, c, req);
        else
            http_respond_error(c, 405, "use POST to log in");
        return;
    }
    if (strncmp(p, "/prebuild-hooks/", 16) == 0) {
        api_prebuild_hook(a, c, req, p + 16);
        return;
    }
    struct auth_user user = {0};
    _cleanup_berr_ struct berr *e = NULL;
    /* WebSockets cannot carry the CSRF header; their Origin is checked instead */
    int r = auth_request(a->auth, req, req->upgrade ? AUTH_ORIGIN_ONLY : AUTH_CSRF, &user, &e);
    if (r < 0) {
        if (r == -EACCES)
            http_conn_add_header(c, "WWW-Authenticate: Bearer realm=\"berth\"");
        api_respond_berr(c, r, e);
        return;
    }
    if (strcmp(p, "/stream") == 0 && strcmp(req->method, "GET") == 0) {
        web_stream(a->web, c, &user);
    } else if (strcmp(p, "/workspaces") == 0 || strcmp(p, "/workspaces/") == 0) {
        if (strcmp(req->method, "POST") == 0)
            create_workspace(a, c, req, &user);
        else if (strcmp(req->method, "GET") == 0)
            list_workspaces(a, c, req, &user);
        else
            http_respond_error(c, 405, "use GET or POST on /workspaces");
    } else if (strncmp(p, "/workspaces/", 12) == 0) {
        workspace_route(a, c, req, &user, p + 12);
    } else if (strcmp(p, "/images/metadata") == 0 && strcmp(req->method, "GET") == 0) {
        image_metadata(a, c, req);
    } else if (!api_prebuilds_route(a, c, req, &user, p) &&
               !api_accounts_route(a, c, req, &user, p) &&
               !api_sshkeys_route(a, c, req, &user, p) && !api_nodes_route(a, c, req, &user, p) &&
               !api_settings_route(a, c, req, &user, p)) {
        http_respond_error(c, 404, "no route for %s %s", req->method, req->path);
    }
    auth_user_release(&user);
}
