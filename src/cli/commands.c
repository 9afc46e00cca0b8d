/* commands.c - the workspace commands: create, ls, show, start, stop, rebuild, rm,
 * logs and events (exec is in exec.c).
 *
 * A lifecycle command sends one request and then, unless --no-wait, waits for
 * the workspace to come to rest in ws_wait(): it streams the workspace's log
 * (logs?follow=1, which ends when the workspace rests) and then polls the
 * workspace, which is also the fallback when the stream breaks. With --json the
 * final object goes to stdout and the log to stderr, so stdout stays parseable.
 */
#include "cli/commands.h"
#include "util/fs.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "util/buf.h"
#include "util/xalloc.h"

#define WS_POLL_INTERVAL_NS (500L * 1000 * 1000)
#define WS_WAIT_TIMEOUT_MIN 30

/* ------------------------------------------------------------------------
 * Helpers
 */

char *cmd_api_path(const char *prefix, const char *arg, const char *suffix)
{
    struct buf b = BUF_INIT;
    buf_adds(&b, prefix);
    for (const unsigned char *p = (const unsigned char *)arg; *p; p++) {
        if (isalnum(*p) || strchr("-._~", *p))
            buf_addch(&b, (char)*p);
        else
            buf_addf(&b, "%%%02X", *p);
    }
    buf_adds(&b, suffix);
    return buf_detach(&b, NULL);
}

char *cmd_ws_path(const char *ws, const char *suffix)
{
    return cmd_api_path("/api/v1/workspaces/", ws, suffix);
}

int cmd_json_set(json_t *o, const char *key, const char *value, struct berr **reterr)
{
    if (value && json_object_set_new(o, key, json_string(value)) < 0)
        return berr_make(reterr, EINVAL, "'%s' for '%s' is not valid UTF-8", value, key);
    return 0;
}

const char *cmd_json_str(const json_t *o, const char *key, const char *fallback)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : fallback;
}

char *cmd_json_text(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return xstrdup("-");
    if (json_is_string(v))
        return xstrdup(*json_string_value(v) ? json_string_value(v) : "-");
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    return s ? s : xstrdup("?");
}

void cmd_print_json(const json_t *j)
{
    (void)json_dumpf(j, stdout, JSON_INDENT(2));
    putchar('\n');
}

int cmd_get_list(struct client *c, const struct cli_args *a, const char *path, const char *key,
                 const char *what, json_t **ret_resp, json_t **ret_list, struct berr **reterr)
{
    int r = client_json(c, "GET", path, NULL, ret_resp, reterr);
    if (r < 0)
        return r;
    *ret_list = json_object_get(*ret_resp, key);
    if (!json_is_array(*ret_list))
        return berr_make(reterr, EBADMSG, "berthd's %s has no '%s' array", what, key);
    if (a->json) {
        cmd_print_json(*ret_list);
        return 1;
    }
    return 0;
}

/* Writes s with each byte of a control character (C0, DEL, and C1 in UTF-8) as
 * '?': table cells come from other users (names, audit details) and must not
 * reach the terminal as escape sequences. The width stays what strlen() says. */
static void print_cell(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            fputs("??", stdout);
            p++;
        } else {
            putchar(*p < 0x20 || *p == 0x7f ? '?' : *p);
        }
    }
}

void cmd_print_table(const struct strv *cells, size_t ncols)
{
    _cleanup_free_ size_t *width = xcalloc(ncols, sizeof(*width));
    for (size_t i = 0; i < cells->n; i++) {
        size_t n = strlen(cells->v[i]);
        if (n > width[i % ncols])
            width[i % ncols] = n;
    }
    for (size_t i = 0; i < cells->n; i++) {
        print_cell(cells->v[i]);
        if (i % ncols == ncols - 1)
            putchar('\n');
        else
            printf("%*s", (int)(width[i % ncols] - strlen(cells->v[i]) + 2), "");
    }
}

/* The longest key of o. */
static int fields_width(const json_t *o)
{
    json_t *obj = (json_t *)o; /* jansson's iterators take no const */
    int width = 0;
    for (void *it = json_object_iter(obj); it; it = json_object_iter_next(obj, it))
        if ((int)strlen(json_object_iter_key(it)) > width)
            width = (int)strlen(json_object_iter_key(it));
    return width;
}

void cmd_print_fields(const json_t *o)
{
    json_t *obj = (json_t *)o;
    int width = fields_width(o);
    for (void *it = json_object_iter(obj); it; it = json_object_iter_next(obj, it)) {
        const char *key = json_object_iter_key(it);
        _cleanup_free_ char *text = cmd_json_text(o, key);
        print_cell(key);
        printf(":%*s ", width - (int)strlen(key), "");
        print_cell(text);
        putchar('\n');
    }
}

char *cmd_format_age(const char *timestamp, time_t now)
{
    struct tm tm = {0};
    if (!timestamp || !strptime(timestamp, "%Y-%m-%dT%H:%M:%S", &tm))
        return xstrdup("-");
    time_t then = timegm(&tm);
    long s = now > then ? (long)(now - then) : 0;
    if (s < 60)
        return xasprintf("%lds", s);
    if (s < 60 * 60)
        return xasprintf("%ldm", s / 60);
    if (s < 24 * 60 * 60)
        return xasprintf("%ldh", s / (60 * 60));
    return xasprintf("%ldd", s / (24 * 60 * 60));
}

char *cmd_format_ago(const char *timestamp, time_t now, const char *none)
{
    _cleanup_free_ char *age = cmd_format_age(timestamp, now);
    return strcmp(age, "-") == 0 ? xstrdup(none) : xasprintf("%s ago", age);
}

int cmd_parse_number(const char *option, const char *text, long long min, long long max,
                     long long *ret_value, struct berr **reterr)
{
    char *end = NULL;
    errno = 0;
    long long v = isdigit((unsigned char)text[0]) ? strtoll(text, &end, 10) : 0;
    if (!end || *end || errno || v < min || v > max)
        return berr_make(reterr, EINVAL, "%s wants a whole number from %lld to %lld, not '%s'",
                         option, min, max, text);
    *ret_value = v;
    return 0;
}

/* What the workspace was made from: the branch, else the ref, else a short commit. */
static char *ws_revision(const json_t *ws)
{
    const char *branch = cmd_json_str(ws, "branch", NULL);
    const char *ref = cmd_json_str(ws, "ref", NULL);
    const char *commit = cmd_json_str(ws, "commit", NULL);
    if (branch)
        return xstrdup(branch);
    if (ref)
        return xstrdup(strncmp(ref, "refs/", 5) == 0 ? ref + 5 : ref);
    if (commit)
        return xstrndup(commit, 7);
    return xstrdup("-");
}

/* ------------------------------------------------------------------------
 * Waiting for a workspace to come to rest
 */

static bool ws_state_is_busy(const char *state)
{
    static const char *const busy[] = {"creating", "starting", "stopping", "rebuilding",
                                       "deleting"};
    for (size_t i = 0; i < ELEMENTSOF(busy); i++)
        if (strcmp(state, busy[i]) == 0)
            return true;
    return false;
}

static int log_write_cb(const void *chunk, size_t len, void *data, struct berr **reterr)
{
    int r = write_all(*(const int *)data, chunk, len);
    if (r < 0)
        return berr_make(reterr, -r, "cannot write the log: %s", strerror(-r));
    return 0;
}

static struct timespec now_monotonic(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts;
}

/* Waits until workspace `id` (called `name` in messages) is not busy and hands
 * it over in *ret_ws. When log_fd >= 0, its log is streamed there first.
 * Returns -ENOENT when the workspace is gone (which is what rm waits for),
 * -ETIMEDOUT after WS_WAIT_TIMEOUT_MIN minutes of polling. */
static int ws_wait(struct client *c, const char *id, const char *name, int log_fd,
                   long long log_offset, json_t **ret_ws, struct berr **reterr)
{
    _cleanup_free_ char *path = cmd_ws_path(id, "");
    if (log_fd >= 0) {
        /* only the lines of this action: the server said where they start */
        _cleanup_free_ char *query = xasprintf("/logs?follow=1&after=%lld", log_offset);
        _cleanup_free_ char *logs = cmd_ws_path(id, query);
        _cleanup_berr_ struct berr *err = NULL;
        int r = client_stream(c, "GET", logs, NULL, log_write_cb, &log_fd, &err);
        /* The polling below reports an unreachable server or a missing workspace. */
        if (r < 0 && r != -ECONNREFUSED && r != -ENOENT)
            fprintf(stderr, "berth: log stream ended early (%s), waiting for workspace '%s'\n",
                    berr_msg(err), name);
    }
    time_t deadline = now_monotonic().tv_sec + WS_WAIT_TIMEOUT_MIN * 60;
    for (;;) {
        _cleanup_(json_decrefp) json_t *ws = NULL;
        int r = client_json(c, "GET", path, NULL, &ws, reterr);
        if (r < 0)
            return r;
        if (!ws_state_is_busy(cmd_json_str(ws, "state", ""))) {
            *ret_ws = TAKE_PTR(ws);
            return 0;
        }
        if (now_monotonic().tv_sec >= deadline)
            return berr_make(reterr, ETIMEDOUT, "workspace '%s' still %s after %d minutes", name,
                             cmd_json_str(ws, "state", ""), WS_WAIT_TIMEOUT_MIN);
        struct timespec ts = {.tv_nsec = WS_POLL_INTERVAL_NS};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
}

/* Ends every lifecycle command but rm: `ws` is the action's answer. Unless
 * --no-wait, waits for the workspace to rest; `failed` is an error, an error
 * message on a resting workspace a warning. Then prints the workspace. */
static int ws_settle(struct client *c, const json_t *ws, const char *arg, const struct cli_args *a,
                     bool stream_logs, struct berr **reterr)
{
    _cleanup_(json_decrefp) json_t *done = NULL;
    if (!a->no_wait) {
        int log_fd = !stream_logs ? -1 : a->json ? 2 : 1;
        long long offset = (long long)json_integer_value(json_object_get(ws, "log_offset"));
        int r = ws_wait(c, cmd_json_str(ws, "id", arg), cmd_json_str(ws, "name", arg), log_fd,
                        offset, &done, reterr);
        if (r < 0)
            return r;
        ws = done;
        const char *error = cmd_json_str(ws, "error", NULL);
        if (strcmp(cmd_json_str(ws, "state", ""), "failed") == 0)
            return berr_make(reterr, EIO, "workspace '%s' failed: %s",
                             cmd_json_str(ws, "name", arg), error ? error : "no reason given");
        if (error)
            fprintf(stderr, "berth: warning: workspace '%s': %s\n", cmd_json_str(ws, "name", arg),
                    error);
    }
    if (a->json)
        cmd_print_json(ws);
    else
        printf("workspace '%s' (%s) is %s\n", cmd_json_str(ws, "name", arg),
               cmd_json_str(ws, "id", "?"), cmd_json_str(ws, "state", "?"));
    return 0;
}

/* ------------------------------------------------------------------------
 * Commands
 */

int cmd_create(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    if (!!a->branch + !!a->commit + !!a->ref > 1)
        return berr_make(reterr, EINVAL, "give at most one of --branch, --commit and --ref");
    const char *repo = a->pos.v[0];
    _cleanup_free_ char *abs = NULL;
    struct stat st;
    if (stat(repo, &st) == 0 && S_ISDIR(st.st_mode)) {
        abs = realpath(repo, NULL);
        if (!abs)
            return berr_make(reterr, errno, "cannot resolve '%s': %s", repo, strerror(errno));
        repo = abs;
    }
    const char *fields[][2] = {
        {"repo", repo},  {"branch", a->branch}, {"commit", a->commit},
        {"ref", a->ref}, {"name", a->name},     {"devcontainer_path", a->devcontainer},
    };
    _cleanup_(json_decrefp) json_t *body = json_object();
    for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
        int r = cmd_json_set(body, fields[i][0], fields[i][1], reterr);
        if (r < 0)
            return r;
    }
    if (a->no_prebuild)
        json_object_set_new(body, "no_prebuild", json_true());
    _cleanup_(json_decrefp) json_t *ws = NULL;
    int r = client_json(c, "POST", "/api/v1/workspaces", body, &ws, reterr);
    if (r < 0)
        return r;
    return ws_settle(c, ws, a->name ? a->name : a->pos.v[0], a, true, reterr);
}

int cmd_ls(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_(json_decrefp) json_t *resp = NULL;
    json_t *list = NULL;
    int r = cmd_get_list(c, a, a->all ? "/api/v1/workspaces?all=1" : "/api/v1/workspaces",
                         "workspaces", "workspace list", &resp, &list, reterr);
    if (r != 0)
        return r < 0 ? r : 0;
    _cleanup_strv_ struct strv cells = STRV_INIT;
    if (a->all)
        strv_push(&cells, "OWNER");
    strv_pushl(&cells, "NAME", "ID", "STATE", "REPO", "BRANCH", "IMAGE", "AGE", NULL);
    time_t now = time(NULL);
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *ws = json_array_get(list, i);
        if (a->all)
            strv_push(&cells, cmd_json_str(ws, "owner", "-"));
        strv_pushl(&cells, cmd_json_str(ws, "name", "-"), cmd_json_str(ws, "id", "-"),
                   cmd_json_str(ws, "state", "-"), cmd_json_str(ws, "repo", "-"), NULL);
        strv_push_owned(&cells, ws_revision(ws));
        strv_push(&cells, cmd_json_str(ws, "image", "-"));
        strv_push_owned(&cells, cmd_format_age(cmd_json_str(ws, "created_at", NULL), now));
    }
    cmd_print_table(&cells, a->all ? 8 : 7);
    cmd_print_notices(list);
    return 0;
}

int cmd_show(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_free_ char *path = cmd_ws_path(a->pos.v[0], "");
    _cleanup_(json_decrefp) json_t *ws = NULL;
    int r = client_json(c, "GET", path, NULL, &ws, reterr);
    if (r < 0)
        return r;
    if (a->json) {
        cmd_print_json(ws);
        return 0;
    }
    /* idle, in words, last */
    json_t *idle = json_incref(json_object_get(ws, "idle"));
    json_object_del(ws, "idle");
    cmd_print_fields(ws);
    _cleanup_free_ char *summary = cmd_idle_summary(idle);
    json_decref(idle);
    printf("idle:%*s %s\n", fields_width(ws) - 4, "", summary);
    return 0;
}

static int ws_action(struct client *c, const struct cli_args *a, const char *action,
                     bool stream_logs, struct berr **reterr)
{
    _cleanup_free_ char *suffix = xasprintf("/%s", action);
    _cleanup_free_ char *path = cmd_ws_path(a->pos.v[0], suffix);
    _cleanup_(json_decrefp) json_t *ws = NULL;
    int r = client_json(c, "POST", path, NULL, &ws, reterr);
    if (r < 0)
        return r;
    return ws_settle(c, ws, a->pos.v[0], a, stream_logs, reterr);
}

int cmd_start(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    return ws_action(c, a, "start", true, reterr);
}

int cmd_stop(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    return ws_action(c, a, "stop", false, reterr);
}

int cmd_rebuild(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    return ws_action(c, a, "rebuild", true, reterr);
}

int cmd_rm(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    const char *arg = a->pos.v[0];
    _cleanup_free_ char *path = cmd_ws_path(arg, "");
    _cleanup_(json_decrefp) json_t *ws = NULL;
    int r = client_json(c, "DELETE", path, NULL, &ws, reterr);
    if (r < 0)
        return r;
    const char *name = cmd_json_str(ws, "name", arg);
    if (a->no_wait) {
        printf("workspace '%s' is being deleted\n", name);
        return 0;
    }
    _cleanup_(json_decrefp) json_t *rest = NULL;
    _cleanup_berr_ struct berr *err = NULL;
    r = ws_wait(c, cmd_json_str(ws, "id", arg), name, -1, 0, &rest, &err);
    if (r == -ENOENT) {
        printf("workspace '%s' deleted\n", name);
        return 0;
    }
    if (r < 0)
        return berr_make(reterr, -r, "%s", berr_msg(err));
    return berr_make(reterr, EIO, "workspace '%s' was not deleted: it is %s: %s", name,
                     cmd_json_str(rest, "state", "?"),
                     cmd_json_str(rest, "error", "no reason given"));
}

int cmd_logs(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_free_ char *path = cmd_ws_path(a->pos.v[0], a->follow ? "/logs?follow=1" : "/logs");
    int fd = STDOUT_FILENO;
    return client_stream(c, "GET", path, NULL, log_write_cb, &fd, reterr);
}

int cmd_events(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_free_ char *path = cmd_ws_path(a->pos.v[0], "/events");
    _cleanup_(json_decrefp) json_t *resp = NULL;
    json_t *list = NULL;
    int r = cmd_get_list(c, a, path, "events", "event list", &resp, &list, reterr);
    if (r != 0)
        return r < 0 ? r : 0;
    _cleanup_strv_ struct strv cells = STRV_INIT;
    strv_pushl(&cells, "TIME", "TYPE", "MESSAGE", NULL);
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *ev = json_array_get(list, i);
        strv_pushl(&cells, cmd_json_str(ev, "time", "-"), cmd_json_str(ev, "type", "-"),
                   cmd_json_str(ev, "message", ""), NULL);
    }
    cmd_print_table(&cells, 3);
    return 0;
}
