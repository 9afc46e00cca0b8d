/* terminal.c - terminals: WebSocket <-> agent PTY session, with reattach.
 *
 * Each terminal holds one agent connection running a login shell in a PTY. The
 * agent's frames are parsed as they arrive; output is kept in a 64 KiB
 * scrollback and sent to the attached WebSocket, if any. When the WebSocket
 * goes, the shell keeps running; a linger timer ends it after ten minutes
 * unless someone reattaches with its id. Reading from the agent pauses while
 * the browser's queue is over 1 MiB, so `yes` cannot grow berthd's memory.
 *
 * Tasks (customizations.berth.tasks, or a .gitpod.yml's before + command) each
 * get a terminal of their own, opened by berthd when the workspace is ready
 * (ws_manager_on_ready) and attached to by name (?task=NAME). A task's
 * terminal does not linger out: it lasts as long as its shell, which follows
 * the task's command so that the terminal stays usable, as Gitpod's do. Its
 * output counts as activity only while someone watches it: a dev server's
 * log that nobody reads does not keep a workspace running.
 */
#include "api/terminal.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "agent/agent-proto.h"
#include "http/websocket.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/urlscan.h"
#include "util/xalloc.h"
#include "workspace/agentc.h"
#include "workspace/workspace.h"

#define TERM_HIGH_WATER (1024 * 1024)
/* Runs a task's argv ("$@"), then a login shell in its terminal. */
#define TASK_WRAPPER                                                                               \
    "\"$@\"; s=$?; printf '\\r\\nberth: the task ended with status %s; this terminal is a "        \
    "shell now\\r\\n' \"$s\"; exec \"${SHELL:-/bin/sh}\" -l"

struct term {
    struct term *next;
    struct terminals *owner_set;
    char id[33];
    char *ws_id;
    char *user;
    char *task;      /* the task's name, or NULL for a shell someone opened */
    char *container; /* a task's: the container it was started in */
    uv_pipe_t pipe;
    bool pipe_open;
    bool reading;
    struct buf in;       /* partial agent frames */
    struct buf scroll;   /* the last output, for reattach */
    struct urlscan urls; /* local URLs the programs print */
    struct wsock *ws;
    uv_timer_t linger;
    bool ended;
};

struct terminals {
    struct ws_manager *m;
    struct term *list;
};

static void send_frame(struct term *t, char kind, const void *data, size_t len);
static void on_ready(const char *ws_id, void *data);

/* An idle warning is shown in each open terminal of the workspace: as
 * output of berthd's own (not the shell's, so it is no activity), kept out
 * of the scrollback, which a later attach would replay when it is stale. */
static void idle_warning(const char *ws_id, const char *message, void *data)
{
    struct terminals *set = data;
    _cleanup_free_ char *text = xasprintf("\r\n\033[1;33mberth: %s\033[0m\r\n", message);
    for (struct term *t = set->list; t; t = t->next)
        if (t->ws && !t->ended && strcmp(t->ws_id, ws_id) == 0)
            send_frame(t, '0', text, strlen(text));
}

struct terminals *terminals_new(struct ws_manager *m)
{
    struct terminals *t = xcalloc(1, sizeof(*t));
    t->m = m;
    ws_manager_on_idle_warning(m, idle_warning, t);
    ws_manager_on_ready(m, on_ready, t);
    return t;
}

static void term_end(struct term *t);

void terminals_free(struct terminals *set)
{
    if (!set)
        return;
    while (set->list)
        term_end(set->list);
    free(set);
}

static void term_unlink(struct term *t)
{
    for (struct term **pp = &t->owner_set->list; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            return;
        }
    }
}

static void term_free_cb(uv_handle_t *h)
{
    struct term *t = h->data;
    buf_release(&t->in);
    buf_release(&t->scroll);
    urlscan_release(&t->urls);
    free(t->ws_id);
    free(t->user);
    free(t->task);
    free(t->container);
    free(t);
}

static void pipe_closed_cb(uv_handle_t *h)
{
    struct term *t = h->data;
    uv_close((uv_handle_t *)&t->linger, term_free_cb);
}

/* Ends the terminal: the agent connection closes (which hangs up the shell),
 * the WebSocket closes, and the struct is freed from the loop. */
static void term_end(struct term *t)
{
    if (t->ended)
        return;
    t->ended = true;
    term_unlink(t);
    uv_timer_stop(&t->linger);
    if (t->ws) {
        struct wsock *w = t->ws;
        t->ws = NULL;
        wsock_close(w, 1000, "terminal ended");
    }
    uv_close((uv_handle_t *)&t->pipe, pipe_closed_cb);
}

static void send_frame(struct term *t, char kind, const void *data, size_t len)
{
    if (!t->ws)
        return;
    struct buf b = BUF_INIT;
    buf_addch(&b, kind);
    buf_add(&b, data, len);
    wsock_send(t->ws, WSOCK_BINARY, b.buf, b.len);
    buf_release(&b);
}

static void agent_send(struct term *t, enum agent_frame_type type, const void *data, size_t len)
{
    if (!t->ended)
        agentc_send_frame((uv_stream_t *)&t->pipe, type, data, len);
}

static void keep_scrollback(struct term *t, const char *data, size_t len)
{
    buf_add(&t->scroll, data, len);
    if (t->scroll.len > TERMINAL_SCROLLBACK)
        buf_remove_front(&t->scroll, t->scroll.len - TERMINAL_SCROLLBACK);
}

static void on_agent_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct term *t = s->data;
    if (n < 0) {
        free(b->base);
        term_end(t);
        return;
    }
    buf_add(&t->in, b->base, (size_t)n);
    free(b->base);
    size_t off = 0;
    struct agent_frame f;
    int got;
    while ((got = agent_next_frame(t->in.buf, t->in.len, &off, &f)) > 0) {
        const char *p = (const char *)f.payload;
        size_t len = f.len;
        if (f.type == AGENT_STDOUT || f.type == AGENT_STDERR) {
            if (t->ws || !t->task)
                ws_activity(t->owner_set->m, t->ws_id, WS_ACT_TERMINAL_OUTPUT);
            keep_scrollback(t, p, len);
            send_frame(t, '0', p, len);
            ws_scan_output(t->owner_set->m, t->ws_id, &t->urls, p, len);
        } else if (f.type == AGENT_ERROR) {
            _cleanup_free_ char *msg = xasprintf("\r\nberth: %.*s\r\n", (int)len, p);
            keep_scrollback(t, msg, strlen(msg));
            send_frame(t, '0', msg, strlen(msg));
        } else if (f.type == AGENT_EXIT && len >= 4) {
            _cleanup_free_ char *j =
                xasprintf("{\"exit\":%d}", (int)agent_get_u32((const unsigned char *)p));
            send_frame(t, '2', j, strlen(j));
            term_end(t);
            return;
        }
    }
    if (got < 0) {
        term_end(t);
        return;
    }
    buf_remove_front(&t->in, off);
    if (t->ws && wsock_pending(t->ws) > TERM_HIGH_WATER && t->reading) {
        uv_read_stop((uv_stream_t *)&t->pipe);
        t->reading = false;
    }
}

static void resume_agent(struct term *t)
{
    if (!t->reading && !t->ended) {
        t->reading = true;
        uv_read_start((uv_stream_t *)&t->pipe, agentc_read_alloc, on_agent_read);
    }
}

static void on_ws_drain(struct wsock *w, void *data)
{
    (void)w;
    resume_agent(data);
}

static void on_linger(uv_timer_t *timer)
{
    term_end(timer->data);
}

static void on_ws_message(struct wsock *w, int opcode, const unsigned char *data, size_t len,
                          void *ud)
{
    (void)w;
    (void)opcode;
    struct term *t = ud;
    if (!len)
        return;
    if (data[0] == '0') {
        ws_activity(t->owner_set->m, t->ws_id, WS_ACT_TERMINAL_INPUT);
        agent_send(t, AGENT_STDIN, data + 1, len - 1);
    } else if (data[0] == '1') {
        json_t *j = json_loadb((const char *)data + 1, len - 1, 0, NULL);
        json_int_t cols = 0, rows = 0;
        if (j && json_unpack(j, "{s:I, s:I}", "cols", &cols, "rows", &rows) == 0 && cols > 0 &&
            rows > 0 && cols < 10000 && rows < 10000) {
            unsigned char sz[4] = {(unsigned char)(cols >> 8), (unsigned char)cols,
                                   (unsigned char)(rows >> 8), (unsigned char)rows};
            agent_send(t, AGENT_RESIZE, sz, 4);
        }
        json_decref(j);
    }
}

static void on_ws_close(struct wsock *w, void *ud)
{
    struct term *t = ud;
    if (t->ws != w)
        return;
    t->ws = NULL;
    resume_agent(t); /* keep draining into the scrollback */
    if (!t->ended && !t->task)
        uv_timer_start(&t->linger, on_linger, TERMINAL_LINGER_MS, 0);
}

static struct term *term_find(struct terminals *set, const char *id)
{
    for (struct term *t = set->list; t; t = t->next)
        if (strcmp(t->id, id) == 0)
            return t;
    return NULL;
}

static unsigned query_uint(const struct http_request *req, const char *name, unsigned fallback)
{
    _cleanup_free_ char *v = http_request_query(req, name);
    if (!v)
        return fallback;
    char *end = NULL;
    unsigned long n = strtoul(v, &end, 10);
    return *end || n == 0 || n > 9999 ? fallback : (unsigned)n;
}

static void attach(struct term *t, struct http_conn *c, const struct http_request *req)
{
    struct wsock *w = NULL;
    if (wsock_accept(c, req, on_ws_message, on_ws_close, t, &w) < 0) {
        if (!t->ws && !t->ended && !t->task)
            uv_timer_start(&t->linger, on_linger, TERMINAL_LINGER_MS, 0);
        return;
    }
    if (t->ws) {
        /* the newest client wins; the old one is told why it lost */
        struct wsock *old = t->ws;
        t->ws = NULL;
        wsock_close(old, 4000, "attached elsewhere");
    }
    t->ws = w;
    wsock_on_drain(w, on_ws_drain);
    uv_timer_stop(&t->linger);
    json_t *hj = json_pack("{s:s}", "session", t->id);
    if (t->task)
        json_object_set_new(hj, "task", json_string(t->task));
    _cleanup_free_ char *hello = json_dumps(hj, JSON_COMPACT);
    json_decref(hj);
    send_frame(t, '1', hello, strlen(hello));
    if (t->scroll.len)
        send_frame(t, '0', t->scroll.buf, t->scroll.len);
}

/* Opens a terminal running argv in a PTY of rec's agent, for user. NULL when
 * the agent cannot be reached (*ret_err: -errno). */
static struct term *term_open(struct terminals *set, const struct ws_record *rec, const char *user,
                              const struct strv *argv, unsigned cols, unsigned rows, int *ret_err)
{
    int fd = -1;
    int r = ws_agent_connect(set->m, rec->id, &fd, NULL);
    if (r < 0) {
        *ret_err = r;
        return NULL;
    }
    struct term *t = xcalloc(1, sizeof(*t));
    t->owner_set = set;
    unsigned char raw[16];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(t->id, sizeof(t->id), raw, sizeof(raw));
    t->ws_id = xstrdup(rec->id);
    t->user = xstrdup(user);
    t->in = (struct buf)BUF_INIT;
    t->scroll = (struct buf)BUF_INIT;
    t->urls = (struct urlscan)URLSCAN_INIT;
    uv_loop_t *loop = uv_default_loop();
    uv_pipe_init(loop, &t->pipe, 0);
    t->pipe.data = t;
    uv_timer_init(loop, &t->linger);
    t->linger.data = t;
    if (uv_pipe_open(&t->pipe, fd) < 0) {
        close(fd);
        t->ended = true;
        uv_close((uv_handle_t *)&t->pipe, pipe_closed_cb);
        *ret_err = -EIO;
        return NULL;
    }
    t->next = set->list;
    set->list = t;

    _cleanup_strv_ struct strv env = STRV_INIT;
    (void)ws_owner_env(set->m, rec, &env, NULL);
    struct agentc_exec ex = {.argv = argv,
                             .env = &env,
                             .cwd = rec->workspace_folder,
                             .user = rec->remote_user,
                             .tty = true,
                             .cols = cols,
                             .rows = rows};
    agentc_send_exec((uv_stream_t *)&t->pipe, &ex);
    t->reading = true;
    uv_read_start((uv_stream_t *)&t->pipe, agentc_read_alloc, on_agent_read);
    return t;
}

static struct term *task_find(struct terminals *set, const char *ws_id, const char *task)
{
    for (struct term *t = set->list; t; t = t->next)
        if (t->task && !t->ended && strcmp(t->ws_id, ws_id) == 0 && strcmp(t->task, task) == 0)
            return t;
    return NULL;
}

/* The workspace is ready: its tasks' terminals start (again). */
static void on_ready(const char *ws_id, void *data)
{
    struct terminals *set = data;
    _cleanup_ws_record_ struct ws_record rec = {0};
    if (store_ws_get(ws_manager_store(set->m), ws_id, &rec, NULL) < 0 ||
        strcmp(rec.state, "running") != 0 || !rec.owner)
        return;
    json_t *rt = rec.runtime ? json_loads(rec.runtime, 0, NULL) : NULL;
    json_t *tasks = json_object_get(rt, "tasks");
    /* a task runs on in the container it started in; those of a container
     * before (a rebuild) end with it, and one no longer configured ends */
    for (struct term *t = set->list, *next; t; t = next) {
        next = t->next;
        if (!t->task || t->ended || strcmp(t->ws_id, ws_id) != 0)
            continue;
        bool same = t->container && rec.container_id && strcmp(t->container, rec.container_id) == 0;
        if (!same || !json_object_get(tasks, t->task))
            term_end(t);
    }
    const char *name;
    json_t *cmd;
    json_object_foreach (tasks, name, cmd) {
        if (task_find(set, ws_id, name))
            continue;
        _cleanup_strv_ struct strv argv = STRV_INIT;
        strv_pushl(&argv, "/bin/sh", "-c", TASK_WRAPPER, "berth-task", NULL);
        size_t i;
        json_t *a;
        json_array_foreach (cmd, i, a)
            if (json_is_string(a))
                strv_push(&argv, json_string_value(a));
        int err = 0;
        struct term *t = term_open(set, &rec, rec.owner, &argv, 120, 30, &err);
        if (!t) {
            log_warn("workspace '%s': cannot start task '%s': %s", rec.name, name, strerror(-err));
            continue;
        }
        t->task = xstrdup(name);
        t->container = rec.container_id ? xstrdup(rec.container_id) : NULL;
        log_info("workspace '%s': task '%s' started in terminal %.8s", rec.name, name, t->id);
    }
    json_decref(rt);
}

json_t *terminals_tasks_json(struct terminals *set, const struct ws_record *rec)
{
    json_t *out = json_array();
    json_t *rt = rec->runtime ? json_loads(rec->runtime, 0, NULL) : NULL;
    const char *name;
    json_t *cmd;
    json_object_foreach (json_object_get(rt, "tasks"), name, cmd) {
        struct term *t = task_find(set, rec->id, name);
        json_array_append_new(out, json_pack("{s:s, s:b, s:b}", "name", name, "running", t != NULL,
                                             "attached", t && t->ws));
    }
    json_decref(rt);
    return out;
}

void terminal_route(struct terminals *set, struct http_conn *c, struct http_request *req,
                    const struct auth_user *user, const struct ws_record *rec)
{
    if (strcmp(rec->state, "running") != 0) {
        http_respond_error(c, 409, "workspace '%s' is %s, not running", rec->name, rec->state);
        return;
    }
    _cleanup_free_ char *task = http_request_query(req, "task");
    if (task) {
        struct term *t = task_find(set, rec->id, task);
        if (t) {
            attach(t, c, req);
            return;
        }
        json_t *tasks = terminals_tasks_json(set, rec);
        _cleanup_buf_ struct buf names = BUF_INIT;
        size_t i;
        json_t *o;
        json_array_foreach (tasks, i, o)
            buf_addf(&names, "%s%s", i ? ", " : "", json_string_value(json_object_get(o, "name")));
        json_decref(tasks);
        if (names.len)
            http_respond_error(c, 404, "workspace '%s' has no running task '%s' (its tasks: %s)",
                               rec->name, task, names.buf);
        else
            http_respond_error(c, 404, "workspace '%s' has no tasks", rec->name);
        return;
    }
    _cleanup_free_ char *session = http_request_query(req, "session");
    if (session && *session) {
        struct term *t = term_find(set, session);
        if (t && strcmp(t->ws_id, rec->id) == 0 && strcmp(t->user, user->name) == 0) {
            attach(t, c, req);
            return;
        }
        /* an unknown or ended session: start a new terminal */
    }
    _cleanup_strv_ struct strv argv = STRV_INIT;
    strv_pushl(&argv, "/bin/sh", "-c", "exec \"${SHELL:-/bin/sh}\" -l", NULL);
    int err = 0;
    struct term *t = term_open(set, rec, user->name, &argv, query_uint(req, "cols", 80),
                               query_uint(req, "rows", 24), &err);
    if (!t) {
        http_respond_error(c, 502, "cannot reach the workspace agent: %s", strerror(-err));
        return;
    }
    log_info("workspace '%s': terminal %.8s opened by '%s'", rec->name, t->id, user->name);
    ws_attached(set->m, rec->id);
    attach(t, c, req);
}
