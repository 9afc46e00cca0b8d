/* lifecycle.c - running commands in a workspace's container.
 *
 * Every command goes through the agent (never the engine's exec) as the
 * remote user, its output into the workspace log. On top of that: the
 * environment later sessions get (userEnvProbe, remoteEnv), the lifecycle
 * hooks with their parallel groups, and the IDE's extensions.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/urlscan.h"
#include "workspace/agentc.h"
#include "workspace/ws-internal.h"

/* Runs a command through the agent, each output line into the log. */
struct out_ctx {
    struct job_ctx *x;
    const char *prefix;
    size_t logged; /* output bytes that went to the log */
    struct buf partial;
    struct buf capture;
    bool capturing;
    struct urlscan urls;
};

static void flush_lines(struct out_ctx *o, bool all)
{
    for (;;) {
        char *nl = memchr(o->partial.buf, '\n', o->partial.len);
        if (!nl && !(all && o->partial.len))
            return;
        size_t n = nl ? (size_t)(nl - o->partial.buf) : o->partial.len;
        _cleanup_free_ char *line = xstrndup(o->partial.buf, n);
        jlog(o->x, "%s%s", o->prefix, line);
        buf_remove_front(&o->partial, nl ? n + 1 : n);
        if (!o->partial.len)
            return;
    }
}

static void exec_output_cb(int type, const char *data, size_t len, void *userdata)
{
    struct out_ctx *o = userdata;
    if (type == AGENT_ERROR) {
        _cleanup_free_ char *msg = xstrndup(data, len);
        jlog(o->x, "%serror: %s", o->prefix ? o->prefix : "", msg);
        return;
    }
    if (o->capturing && type == AGENT_STDOUT) {
        if (o->capture.len < 65536)
            buf_add(&o->capture, data, len);
        return;
    }
    if (!o->prefix) /* quiet: only the captured output matters */
        return;
    ws_scan_output(o->x->m, o->x->rec.id, &o->urls, data, len);
    size_t cap = o->x->limits.log_bytes;
    if (cap && o->logged >= cap)
        return;
    if (cap && o->logged + len >= cap) {
        len = cap - o->logged;
        o->logged = cap;
        buf_add(&o->partial, data, len);
        flush_lines(o, true);
        jlog(o->x, "%s(output cut at %zu bytes: the rest is not logged)", o->prefix, cap);
        return;
    }
    o->logged += len;
    buf_add(&o->partial, data, len);
    flush_lines(o, false);
}

/* Runs argv with env (the job's environment when NULL). */
static int exec_in_env(struct job_ctx *x, const struct strv *argv, const struct strv *env,
                       const char *user, const char *prefix, struct buf *capture, int *ret_status,
                       struct berr **reterr)
{
    struct out_ctx o = {.x = x,
                        .prefix = prefix,
                        .partial = BUF_INIT,
                        .capture = BUF_INIT,
                        .capturing = capture != NULL,
                        .urls = URLSCAN_INIT};
    struct agentc_exec ex = {.argv = argv,
                             .env = env ? env : &x->env,
                             .cwd = x->rec.workspace_folder,
                             .user = user,
                             .timeout_ms = x->limits.timeout_ms,
                             .input = x->limits.input};
    int r = agentc_run(x->m, x->rec.id, &ex, exec_output_cb, &o, ret_status, reterr);
    if (prefix)
        flush_lines(&o, true);
    if (capture)
        buf_add(capture, o.capture.buf, o.capture.len);
    buf_release(&o.partial);
    buf_release(&o.capture);
    urlscan_release(&o.urls);
    return r;
}

int exec_in(struct job_ctx *x, const struct strv *argv, const char *user, const char *prefix,
            struct buf *capture, int *ret_status, struct berr **reterr)
{
    return exec_in_env(x, argv, NULL, user, prefix, capture, ret_status, reterr);
}

json_t *runtime_get(const struct ws_record *r)
{
    json_t *rt = r->runtime ? json_loads(r->runtime, 0, NULL) : NULL;
    return json_is_object(rt) ? rt : (json_decref(rt), json_object());
}

/* The lifecycle command r shows as running ("postCreateCommand"), newly
 * allocated, or NULL. */
char *lifecycle_running(const struct ws_record *r)
{
    json_t *rt = runtime_get(r);
    const char *l = json_string_value(json_object_get(rt, "lifecycle"));
    char *running = l && strncmp(l, "running ", 8) == 0 ? xstrdup(l + 8) : NULL;
    json_decref(rt);
    return running;
}

/* Sets one key of the runtime and saves the record. */
void runtime_set(struct job_ctx *x, const char *key, json_t *value)
{
    json_t *rt = runtime_get(&x->rec);
    json_object_set_new(rt, key, value ? value : json_null());
    free(x->rec.runtime);
    x->rec.runtime = json_dumps(rt, JSON_COMPACT);
    json_decref(rt);
    (void)job_save(x);
}

#define ENV_MARK "\036berth-env\036"

/* userEnvProbe: the environment the remote user's shell builds (PATH from
 * ~/.profile, nvm, sdkman...) is what commands and terminals see. */
static void probe_user_env(struct job_ctx *x, const char *mode, json_t *env)
{
    static const char *const modes[][2] = {
        {"loginInteractiveShell", "-lic"}, {"loginShell", "-lc"}, {"interactiveShell", "-ic"}};
    if (mode && strcmp(mode, "none") == 0)
        return;
    const char *flags = NULL;
    for (size_t i = 0; i < ELEMENTSOF(modes); i++)
        if (strcmp(mode ? mode : "loginInteractiveShell", modes[i][0]) == 0)
            flags = modes[i][1];
    if (!flags) {
        jlog(x,
             "userEnvProbe \"%s\" is not one of none, loginShell, interactiveShell, "
             "loginInteractiveShell: skipped",
             mode);
        return;
    }
    _cleanup_strv_ struct strv argv = STRV_INIT;
    strv_pushl(&argv, "/bin/sh", "-c", "exec \"${SHELL:-/bin/sh}\" \"$1\" \"$2\"", "sh", flags,
               "printf '" ENV_MARK "'; env -0", NULL);
    _cleanup_buf_ struct buf out = BUF_INIT;
    int status = -1;
    struct berr *e = NULL;
    /* only the container's own environment: neither the owner's secrets
     * (the result is stored) nor what an earlier probe found */
    struct strv none = STRV_INIT;
    int r = exec_in_env(x, &argv, &none, x->rec.remote_user, NULL, &out, &status, &e);
    const char *mark = memmem(out.buf, out.len, ENV_MARK, sizeof(ENV_MARK) - 1);
    if (r < 0 || !mark) {
        jlog(x, "userEnvProbe: the shell's environment could not be read%s%s", e ? ": " : "",
             e ? berr_msg(e) : "");
        berr_free(e);
        return;
    }
    static const char *const skip[] = {"_",   "PWD", "OLDPWD",   "SHLVL", "TERM",
                                       "PS1", "PS2", "HOSTNAME", "LINES", "COLUMNS"};
    const char *end = out.buf + out.len;
    for (const char *p = mark + sizeof(ENV_MARK) - 1; p < end; p += strlen(p) + 1) {
        const char *eq = strchr(p, '=');
        if (p + strlen(p) >= end) /* cut short by the capture limit */
            break;
        if (!eq || eq == p)
            continue;
        _cleanup_free_ char *name = xstrndup(p, (size_t)(eq - p));
        bool skipped = false;
        for (size_t i = 0; i < ELEMENTSOF(skip) && !skipped; i++)
            skipped = strcmp(name, skip[i]) == 0;
        if (!skipped)
            json_object_set_new(env, name, json_string(eq + 1));
    }
}

/* remoteEnv, with ${containerEnv:VAR} read from the container's environment
 * (the image's, containerEnv, and what the probe found). */
static void resolve_remote_env(const struct dc_config *cfg, json_t *image, json_t *env)
{
    _cleanup_strv_ struct strv base = STRV_INIT;
    size_t i;
    json_t *v;
    json_array_foreach (json_object_get(json_object_get(image, "Config"), "Env"), i, v) {
        const char *kv = json_string_value(v);
        const char *eq = kv ? strchr(kv, '=') : NULL;
        if (eq) {
            _cleanup_free_ char *k = xstrndup(kv, (size_t)(eq - kv));
            strv_setenv(&base, k, eq + 1);
        }
    }
    for (i = 0; i < cfg->container_env.n; i++) {
        const char *eq = strchr(cfg->container_env.v[i], '=');
        _cleanup_free_ char *k =
            xstrndup(cfg->container_env.v[i], (size_t)(eq - cfg->container_env.v[i]));
        strv_setenv(&base, k, eq + 1);
    }
    const char *k;
    json_object_foreach (env, k, v)
        strv_setenv(&base, k, json_string_value(v));
    json_object_foreach (cfg->remote_env, k, v) {
        if (json_is_null(v)) {
            json_object_del(env, k);
        } else if (json_is_string(v)) {
            _cleanup_free_ char *val = dc_substitute(json_string_value(v), NULL, &base);
            json_object_set_new(env, k, json_string(val));
        }
    }
}

/* A task's name: printable, at most 64 bytes (a query parameter and a label). */
static bool task_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64)
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

/* customizations.berth.tasks of every entry, as {name: argv}: a string is a
 * command for sh -c, an array an argv. What is neither is logged and left out. */
static json_t *berth_tasks(struct job_ctx *x, const struct dc_config *cfg)
{
    json_t *out = json_object();
    json_t *entries = cfg->customizations ? json_object_get(cfg->customizations, "berth") : NULL;
    size_t i;
    json_t *entry;
    json_array_foreach (entries, i, entry) {
        const char *name;
        json_t *v;
        json_object_foreach (json_object_get(entry, "tasks"), name, v) {
            json_t *argv = NULL;
            if (json_is_string(v) && *json_string_value(v)) {
                argv = json_pack("[s, s, O]", "/bin/sh", "-c", v);
            } else if (json_is_array(v) && json_array_size(v)) {
                bool strings = true;
                for (size_t k = 0; k < json_array_size(v); k++)
                    strings = strings && json_is_string(json_array_get(v, k));
                argv = strings ? json_deep_copy(v) : NULL;
            }
            if (!argv || !task_name_ok(name)) {
                jlog(x,
                     "warning: task '%s' is left out: a task is a name (at most 64 printable "
                     "bytes) and a command (a string or an array of strings)",
                     name);
                json_decref(argv);
                continue;
            }
            json_object_set_new(out, name, argv);
        }
    }
    return out;
}

/* Records what later sessions need from the configuration and puts its
 * environment into this job's too. */
void step_runtime(struct job_ctx *x, const struct dc_config *cfg, json_t *image)
{
    json_t *env = json_object();
    probe_user_env(x, cfg->user_env_probe, env);
    resolve_remote_env(cfg, image, env);
    if (json_object_size(env))
        jlog(x, "environment for commands and terminals: %zu variables from %s",
             json_object_size(env),
             cfg->remote_env ? "the login shell and remoteEnv" : "the login shell");
    json_t *rt = runtime_get(&x->rec);
    json_object_set_new(rt, "env", env);
    json_object_set_new(rt, "postAttachCommand",
                        cfg->hooks[DC_POST_ATTACH] ? json_deep_copy(cfg->hooks[DC_POST_ATTACH])
                                                   : json_array());
    json_t *tasks = berth_tasks(x, cfg);
    if (json_object_size(tasks))
        jlog(x,
             "tasks: %zu, each in a terminal of its own once the workspace is ready "
             "(berth shell WS --task NAME)",
             json_object_size(tasks));
    json_object_set_new(rt, "tasks", tasks);
    json_t *ports[][2] = {{json_string("forwardPorts"), cfg->forward_ports},
                          {json_string("portsAttributes"), cfg->ports_attributes},
                          {json_string("otherPortsAttributes"), cfg->other_ports_attributes}};
    for (size_t i = 0; i < ELEMENTSOF(ports); i++) {
        const char *key = json_string_value(ports[i][0]);
        if (ports[i][1])
            json_object_set_new(rt, key, json_deep_copy(ports[i][1]));
        else
            json_object_del(rt, key);
        json_decref(ports[i][0]);
    }
    free(x->rec.runtime);
    x->rec.runtime = json_dumps(rt, JSON_COMPACT);
    json_decref(rt);
    (void)job_save(x);
    strv_release(&x->env);
    x->env = (struct strv)STRV_INIT;
    (void)ws_owner_env(x->m, &x->rec, &x->env, NULL);
}

/* Runs one lifecycle hook. Returns 0, or 1 when a command failed (its message
 * in *ret_failure), or a negative errno when the agent could not be used. */
/* One command of a hook, run on its own thread when the object form asks for
 * entries in parallel. */
struct hook_run {
    pthread_t thread;
    struct job_ctx *x;
    const struct dc_command *cmd;
    const char *prefix;
    int r;      /* exec_in's result */
    int status; /* the command's exit status */
    struct berr *e;
};

static void *hook_run_thread(void *data)
{
    struct hook_run *hr = data;
    hr->r = exec_in(hr->x, &hr->cmd->argv, hr->x->rec.remote_user, hr->prefix, NULL, &hr->status,
                    &hr->e);
    return NULL;
}

/* Whether the config has anything to run for h. */
bool has_commands(const struct dc_config *cfg, enum dc_hook h)
{
    const json_t *v = cfg->hooks[h];
    return v && (!json_is_array(v) || json_array_size(v)) &&
           (!json_is_string(v) || *json_string_value(v)) &&
           (!json_is_object(v) || json_object_size(v));
}

int run_hook(struct job_ctx *x, const struct dc_config *cfg, enum dc_hook h, char **ret_failure,
             struct berr **reterr)
{
    struct dc_command *cmds = NULL;
    int n = dc_hook_commands(cfg, h, &cmds, reterr);
    if (n < 0)
        return n;
    int result = 0;
    /* commands of one group (the entries of an object) run at the same time;
     * groups run in order, and a failed group stops the rest */
    for (int i = 0; i < n && result == 0;) {
        int j = i;
        while (j < n && cmds[j].group == cmds[i].group)
            j++;
        int count = j - i;
        struct hook_run *runs = xcalloc((size_t)count, sizeof(*runs));
        char **prefixes = xcalloc((size_t)count, sizeof(char *));
        for (int k = 0; k < count; k++) {
            const struct dc_command *c = &cmds[i + k];
            _cleanup_free_ char *shown = strv_join(&c->argv, " ");
            bool labelled = strcmp(c->label, dc_hook_name(h)) != 0;
            prefixes[k] = labelled ? xasprintf("[%s] ", c->label) : xstrdup("");
            jevent(x, "lifecycle", "running %s%s%s: %s", dc_hook_name(h), labelled ? "." : "",
                   labelled ? c->label : "", shown);
            runs[k] = (struct hook_run){.x = x, .cmd = c, .prefix = prefixes[k], .status = -1};
            if (count == 1 || pthread_create(&runs[k].thread, NULL, hook_run_thread, &runs[k]) != 0)
                hook_run_thread(&runs[k]), runs[k].thread = 0;
        }
        for (int k = 0; k < count; k++) {
            if (runs[k].thread)
                pthread_join(runs[k].thread, NULL);
            const struct dc_command *c = &cmds[i + k];
            bool labelled = strcmp(c->label, dc_hook_name(h)) != 0;
            if (runs[k].r < 0 && result == 0) {
                result = runs[k].r;
                if (reterr && !*reterr)
                    *reterr = TAKE_PTR(runs[k].e);
            } else if (runs[k].r == 0 && runs[k].status != 0 && result == 0) {
                *ret_failure =
                    xasprintf("%s%s%s failed with exit code %d", dc_hook_name(h),
                              labelled ? "." : "", labelled ? c->label : "", runs[k].status);
                result = 1;
            }
            berr_free(runs[k].e);
            free(prefixes[k]);
        }
        free(runs);
        free(prefixes);
        i = j;
    }
    dc_commands_free(cmds, (size_t)n);
    return result;
}

/* customizations.vscode.extensions: no marketplace is reachable, so an
 * extension is installed only from a .vsix an admin put in DATA/vsix (mounted
 * read-only at /.berth-vsix, named <publisher.name>[-version].vsix), and
 * listed as skipped otherwise. */
void install_extensions(struct job_ctx *x, const struct dc_config *cfg)
{
    json_t *exts = json_object_get(
        json_object_get(json_object_get(cfg->raw, "customizations"), "vscode"), "extensions");
    size_t i;
    json_t *v;
    json_array_foreach (exts, i, v) {
        const char *id = json_string_value(v);
        if (!id || !*id || strchr(id, '/') || id[0] == '.' || strlen(id) > 200) {
            jlog(x, "extension %s skipped: not a valid extension id", id ? id : "?");
            continue;
        }
        _cleanup_strv_ struct strv argv = STRV_INIT;
        /* the id travels as an argument, never inside the script */
        strv_pushl(
            &argv, "/bin/sh", "-c",
            "for f in \"/.berth-vsix/$1.vsix\" \"/.berth-vsix/$1\"-*.vsix; do "
            "[ -f \"$f\" ] || continue; "
            "exec /.berth-ide/bin/code-server --config /dev/null --install-extension \"$f\"; "
            "done; exit 3",
            "sh", id, NULL);
        int status = -1;
        struct berr *e = NULL;
        int r = exec_in(x, &argv, x->rec.remote_user, "", NULL, &status, &e);
        if (r == 0 && status == 0)
            jlog(x, "extension %s installed from a local .vsix", id);
        else if (r == 0 && status == 3)
            jlog(x,
                 "extension %s skipped: no .vsix for it in the server's extension folder (no "
                 "marketplace is reachable)",
                 id);
        else
            jlog(x, "extension %s skipped: %s", id, e ? berr_msg(e) : "its install failed");
        berr_free(e);
    }
}

/* The lifecycle commands of a container, in order: the create-time ones
 * once, then postStartCommand at each start. */
const enum dc_hook lifecycle_hooks[WS_LIFECYCLE_HOOKS] = {DC_ON_CREATE, DC_UPDATE_CONTENT,
                                                          DC_POST_CREATE, DC_POST_START};

/* Runs lifecycle_hooks[i], unless a stop or delete waits. True when one does: the
 * job is to end now, the lifecycle shown "interrupted", and create_pending
 * naming the create-time command to run at the next start (this one, unless
 * it got to its end). */
bool lifecycle_step(struct job_ctx *x, const struct dc_config *cfg, size_t i, int *r,
                    char **failure, struct berr **reterr)
{
    _cleanup_free_ char *doing = xasprintf("running %s", dc_hook_name(lifecycle_hooks[i]));
    runtime_set(x, "lifecycle", json_string(doing));
    bool skip = interrupt_asked(x->m, x->rec.id);
    *r = skip ? 0 : run_hook(x, cfg, lifecycle_hooks[i], failure, reterr);
    if (!interrupt_asked(x->m, x->rec.id))
        return false;
    jevent(x, "lifecycle", "%s interrupted: the workspace is being stopped or deleted",
           dc_hook_name(lifecycle_hooks[i]));
    size_t next = !skip && *r == 0 && !*failure ? i + 1 : i;
    if (next < ELEMENTSOF(lifecycle_hooks) && lifecycle_hooks[next] != DC_POST_START)
        runtime_set(x, "create_pending", json_string(dc_hook_name(lifecycle_hooks[next])));
    runtime_set(x, "lifecycle", json_string("interrupted"));
    *r = 0;
    return true;
}
