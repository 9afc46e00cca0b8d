/* admin.c - `berth admin …`: users, the audit log and per-user limits.
 *
 * Each command is one request to an admin-only route; berthd decides who may
 * (403 for anyone else), so nothing here checks. A password berthd generates
 * for a new user is printed once, as `token create` prints a token.
 */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "workspace/idle-policy.h"
#include "devcontainer/devcontainer.h"
#include "cli/prompt.h"
#include "util/size.h"
#include "util/xalloc.h"

#define AUDIT_MAX_LIMIT 100000

int cmd_admin_create_user(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    const char *name = a->pos.v[0];
    _cleanup_(json_decrefp) json_t *body = json_object();
    int r = cmd_json_set(body, "name", name, reterr);
    if (r < 0)
        return r;
    if (a->admin)
        (void)json_object_set_new(body, "admin", json_true());
    if (a->password_stdin) {
        _cleanup_(prompt_wipe) char *password = NULL;
        r = prompt_stdin_line("password", &password, reterr);
        if (r < 0)
            return r;
        if (json_object_set_new(body, "password", json_string(password)) < 0)
            return berr_make(reterr, EINVAL, "the password is not valid UTF-8");
    }
    _cleanup_(json_decrefp) json_t *resp = NULL;
    r = client_json(c, "POST", "/api/v1/users", body, &resp, reterr);
    if (r < 0)
        return r;
    const char *password = cmd_json_str(resp, "password", NULL);
    if (a->json) {
        cmd_print_json(resp);
    } else {
        printf("user '%s' created%s\n", cmd_json_str(resp, "name", name),
               json_is_true(json_object_get(resp, "admin")) ? " (admin)" : "");
        if (password)
            printf("password: %s\n", password);
    }
    if (password) {
        fflush(stdout);
        fprintf(stderr, "berth: the generated password will not be shown again\n");
    }
    return 0;
}

int cmd_admin_ls_users(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_(json_decrefp) json_t *resp = NULL;
    json_t *list = NULL;
    int r = cmd_get_list(c, a, "/api/v1/users", "users", "user list", &resp, &list, reterr);
    if (r != 0)
        return r < 0 ? r : 0;
    _cleanup_strv_ struct strv cells = STRV_INIT;
    strv_pushl(&cells, "NAME", "ADMIN", "DISABLED", "CREATED", NULL);
    time_t now = time(NULL);
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *u = json_array_get(list, i);
        strv_push_owned(&cells, cmd_json_text(u, "name"));
        strv_push(&cells, json_is_true(json_object_get(u, "admin")) ? "yes" : "no");
        strv_push(&cells, json_is_true(json_object_get(u, "disabled")) ? "yes" : "no");
        strv_push_owned(&cells, cmd_format_ago(cmd_json_str(u, "created_at", NULL), now, "-"));
    }
    cmd_print_table(&cells, 4);
    return 0;
}

static int user_action(struct client *c, const char *name, const char *action, const char *done,
                       struct berr **reterr)
{
    _cleanup_free_ char *suffix = xasprintf("/%s", action);
    _cleanup_free_ char *path = cmd_api_path("/api/v1/users/", name, suffix);
    _cleanup_(json_decrefp) json_t *resp = NULL;
    int r = client_json(c, "POST", path, NULL, &resp, reterr);
    if (r < 0)
        return r;
    printf("user '%s' %s\n", name, done);
    return 0;
}

int cmd_admin_disable_user(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    return user_action(c, a->pos.v[0], "disable", "disabled", reterr);
}

int cmd_admin_enable_user(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    return user_action(c, a->pos.v[0], "enable", "enabled", reterr);
}

int cmd_admin_audit(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_free_ char *path = NULL;
    if (a->limit) {
        long long limit;
        int r = cmd_parse_number("--limit", a->limit, 1, AUDIT_MAX_LIMIT, &limit, reterr);
        if (r < 0)
            return r;
        path = xasprintf("/api/v1/audit?limit=%lld", limit);
    } else {
        path = xstrdup("/api/v1/audit");
    }
    _cleanup_(json_decrefp) json_t *resp = NULL;
    json_t *list = NULL;
    int r = cmd_get_list(c, a, path, "events", "audit log", &resp, &list, reterr);
    if (r != 0)
        return r < 0 ? r : 0;
    static const char *const columns[] = {"time", "actor", "action", "target", "detail", "address"};
    _cleanup_strv_ struct strv cells = STRV_INIT;
    strv_pushl(&cells, "TIME", "ACTOR", "ACTION", "TARGET", "DETAIL", "ADDRESS", NULL);
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *ev = json_array_get(list, i);
        for (size_t k = 0; k < ELEMENTSOF(columns); k++)
            strv_push_owned(&cells, cmd_json_text(ev, columns[k]));
    }
    cmd_print_table(&cells, ELEMENTSOF(columns));
    return 0;
}

int cmd_admin_settings(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    /* Each limit a flag may change, and its field in the settings. */
    const struct {
        const char *option;
        const char *value;
        const char *field;
    } limits[] = {
        {"--max-workspaces", a->max_workspaces, "max_workspaces_per_user"},
        {"--max-running", a->max_running, "max_running_per_user"},
        {"--max-cpus", a->max_cpus, "max_cpus_per_workspace"},
        {"--prebuild-keep", a->keep, "prebuild_keep"},
        {"--retention-days", a->retention_days, "retention_days"},
    };
    _cleanup_(json_decrefp) json_t *change = json_object();
    for (size_t i = 0; i < ELEMENTSOF(limits); i++) {
        if (!limits[i].value)
            continue;
        long long n;
        int r = cmd_parse_number(limits[i].option, limits[i].value, 0, 1000000, &n, reterr);
        if (r < 0)
            return r;
        (void)json_object_set_new(change, limits[i].field, json_integer(n));
    }
    if (a->max_memory) {
        int64_t bytes = size_parse(a->max_memory);
        if (bytes < 0)
            return berr_make(reterr, EINVAL, "--max-memory: '%s' is not a size such as 8gb",
                             a->max_memory);
        (void)json_object_set_new(change, "max_memory_mb_per_workspace", json_integer(bytes >> 20));
    }
    if (a->idle_max) {
        int64_t minutes;
        if (idle_parse_minutes(a->idle_max, &minutes) < 0 || minutes == 0)
            return berr_make(reterr, EINVAL, "--idle-max: '%s' is not a duration such as 4h",
                             a->idle_max);
        (void)json_object_set_new(change, "idle_max_minutes", json_integer(minutes));
    }
    if (a->idle_never) {
        bool yes = strcmp(a->idle_never, "yes") == 0;
        if (!yes && strcmp(a->idle_never, "no") != 0)
            return berr_make(reterr, EINVAL, "--idle-never takes yes or no");
        (void)json_object_set_new(change, "idle_allow_never", json_integer(yes));
    }
    if (a->prebuild_quota) {
        int64_t bytes = size_parse(a->prebuild_quota);
        if (bytes < 0)
            return berr_make(reterr, EINVAL, "--prebuild-quota: '%s' is not a size such as 50gb",
                             a->prebuild_quota);
        (void)json_object_set_new(change, "prebuild_quota_mb", json_integer(bytes / 1000000));
    }
    _cleanup_(json_decrefp) json_t *settings = NULL;
    int r = 0;
    if (a->allow.n || a->disallow.n) {
        /* the allow-list is changed whole: read it, edit it, write it back */
        r = client_json(c, "GET", "/api/v1/admin/settings", NULL, &settings, reterr);
        if (r < 0)
            return r;
        json_t *list = json_deep_copy(json_object_get(settings, "devcontainer_allow"));
        if (!json_is_array(list))
            list = (json_decref(list), json_array());
        for (size_t i = 0; i < a->disallow.n; i++)
            for (size_t k = json_array_size(list); k-- > 0;)
                if (strcmp(json_string_value(json_array_get(list, k)) ?: "", a->disallow.v[i]) == 0)
                    json_array_remove(list, k);
        for (size_t i = 0; i < a->allow.n; i++)
            json_array_append_new(list, json_string(a->allow.v[i]));
        json_object_set_new(change, "devcontainer_allow", list);
        json_decref(TAKE_PTR(settings));
    }
    if (json_object_size(change) > 0)
        r = client_json(c, "PUT", "/api/v1/admin/settings", change, &settings, reterr);
    /* The PUT's answer is the settings; should it be empty, ask for them. */
    if (r >= 0 && !json_is_object(settings)) {
        json_decref(TAKE_PTR(settings));
        r = client_json(c, "GET", "/api/v1/admin/settings", NULL, &settings, reterr);
    }
    if (r < 0)
        return r;
    if (!json_is_object(settings))
        return berr_make(reterr, EBADMSG, "berthd's settings are not a JSON object");
    if (a->json)
        cmd_print_json(settings);
    else
        cmd_print_fields(settings);
    return 0;
}

/* `berth admin nodes`: the cluster's nodes and their load. */
int cmd_admin_nodes(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_(json_decrefp) json_t *resp = NULL;
    int r = client_json(c, "GET", "/api/v1/admin/nodes", NULL, &resp, reterr);
    if (r < 0)
        return r;
    if (a->json) {
        cmd_print_json(resp);
        return 0;
    }
    if (!json_is_true(json_object_get(resp, "cluster"))) {
        printf("this berthd runs workspaces on one engine: no cluster, no nodes\n");
        return 0;
    }
    const json_t *list = json_object_get(resp, "nodes");
    _cleanup_strv_ struct strv cells = STRV_INIT;
    strv_pushl(&cells, "NAME", "STATE", "AVAILABILITY", "ROLE", "ADDRESS", "CPUS", "MEMORY",
               "TASKS", "LABELS", NULL);
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *n = json_array_get(list, i);
        strv_push_owned(&cells, cmd_json_text(n, "name"));
        strv_push_owned(&cells, cmd_json_text(n, "state"));
        strv_push_owned(&cells, cmd_json_text(n, "availability"));
        const char *role = cmd_json_str(n, "role", "-");
        bool leader = json_is_true(json_object_get(n, "leader"));
        strv_push_owned(&cells, xasprintf("%s%s", role, leader ? " (leader)" : ""));
        strv_push_owned(&cells, cmd_json_text(n, "address"));
        strv_push_owned(&cells, xasprintf("%g", json_number_value(json_object_get(n, "cpus"))));
        json_int_t mem = json_integer_value(json_object_get(n, "memory_bytes"));
        strv_push_owned(&cells, xasprintf("%.1f GiB", (double)mem / (1024.0 * 1024 * 1024)));
        strv_push_owned(
            &cells, xasprintf("%lld", (long long)json_integer_value(json_object_get(n, "tasks"))));
        struct buf l = BUF_INIT;
        const char *key;
        json_t *value;
        json_object_foreach (json_object_get(n, "labels"), key, value) {
            if (l.len)
                buf_add(&l, ",", 1);
            buf_addf(&l, "%s=%s", key, json_string_value(value) ? json_string_value(value) : "");
        }
        strv_push_owned(&cells, l.len ? buf_detach(&l, NULL) : xstrdup("-"));
        buf_release(&l);
    }
    cmd_print_table(&cells, 9);
    return 0;
}

/* PATCH /admin/nodes/{node} with body; prints what the node is now. */
static int node_patch(struct client *c, const struct cli_args *a, const char *node, json_t *body,
                      struct berr **reterr)
{
    _cleanup_free_ char *path = xasprintf("/api/v1/admin/nodes/%s", node);
    _cleanup_(json_decrefp) json_t *resp = NULL;
    int r = client_json(c, "PATCH", path, body, &resp, reterr);
    if (r < 0)
        return r;
    if (a->json) {
        cmd_print_json(resp);
        return 0;
    }
    cmd_print_fields(resp);
    return 0;
}

/* `berth admin node label NODE key=value... key-...` */
static int node_label(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    const char *node = a->pos.v[1];
    _cleanup_(json_decrefp) json_t *labels = json_object();
    if (a->pos.n < 3)
        return berr_make(reterr, EINVAL, "give the labels: KEY=VALUE to set, KEY- to remove");
    for (size_t i = 2; i < a->pos.n; i++) {
        const char *arg = a->pos.v[i];
        const char *eq = strchr(arg, '=');
        size_t len = strlen(arg);
        if (eq && eq > arg) {
            _cleanup_free_ char *key = xstrndup(arg, (size_t)(eq - arg));
            json_object_set_new(labels, key, json_string(eq + 1));
        } else if (!eq && len > 1 && arg[len - 1] == '-') {
            _cleanup_free_ char *key = xstrndup(arg, len - 1);
            json_object_set_new(labels, key, json_null());
        } else {
            return berr_make(reterr, EINVAL,
                             "'%s': give KEY=VALUE to set a label or KEY- to remove it", arg);
        }
    }
    _cleanup_(json_decrefp) json_t *body = json_pack("{s:O}", "labels", labels);
    return node_patch(c, a, node, body, reterr);
}

/* `berth admin node label|pause|drain|activate NODE ...` */
int cmd_admin_node(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    const char *verb = a->pos.v[0];
    if (strcmp(verb, "label") == 0)
        return node_label(c, a, reterr);
    const char *availability = strcmp(verb, "drain") == 0      ? "drain"
                               : strcmp(verb, "pause") == 0    ? "pause"
                               : strcmp(verb, "activate") == 0 ? "active"
                                                               : NULL;
    if (!availability)
        return berr_make(reterr, EINVAL, "'%s': use label, pause, drain or activate", verb);
    if (a->pos.n != 2)
        return berr_make(reterr, EINVAL, "give one node: berth admin node %s NODE", verb);
    _cleanup_(json_decrefp) json_t *body = json_pack("{s:s}", "availability", availability);
    return node_patch(c, a, a->pos.v[1], body, reterr);
}
