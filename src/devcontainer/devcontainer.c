/* devcontainer.c - JSONC parsing, locating, loading and merging devcontainer.json.
 *
 * Parsing strips comments and trailing commas by overwriting them with spaces
 * (newlines are kept), so jansson's line and column numbers point into the
 * user's file. Loading validates the types of the fields Berth uses with
 * json_unpack_ex, which names the bad field. Lifecycle commands keep their JSON
 * form until they are expanded, because the image metadata and the file may
 * each contribute one.
 */
#include "devcontainer/devcontainer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/buf.h"
#include "util/fs.h"
#include "util/xalloc.h"

#define DC_MAX_FILE (1024 * 1024)

#define DC_HOOK_NAME(e, s) [e] = s,
static const char *const hook_names[] = {DC_HOOKS(DC_HOOK_NAME)};
#undef DC_HOOK_NAME

const char *dc_hook_name(enum dc_hook h)
{
    return h < _DC_HOOK_MAX ? hook_names[h] : "unknown";
}

void dc_config_init(struct dc_config *c)
{
    *c = (struct dc_config){.container_env = STRV_INIT, .override_command = true};
}

void dc_config_release(struct dc_config *c)
{
    json_decref(c->raw);
    free(c->image);
    free(c->remote_user);
    free(c->container_user);
    free(c->workspace_folder);
    strv_release(&c->container_env);
    for (int i = 0; i < _DC_HOOK_MAX; i++)
        json_decref(c->hooks[i]);
    dc_config_init(c);
}

void dc_jsonc_strip(char *t, size_t len)
{
    /* pass 1: comments become spaces */
    for (size_t i = 0; i < len; i++) {
        if (t[i] == '"') {
            for (i++; i < len && t[i] != '"'; i++)
                if (t[i] == '\\')
                    i++;
        } else if (t[i] == '/' && i + 1 < len && t[i + 1] == '/') {
            for (; i < len && t[i] != '\n'; i++)
                t[i] = ' ';
        } else if (t[i] == '/' && i + 1 < len && t[i + 1] == '*') {
            t[i] = t[i + 1] = ' ';
            for (i += 2; i < len && !(t[i] == '*' && i + 1 < len && t[i + 1] == '/'); i++)
                if (t[i] != '\n')
                    t[i] = ' ';
            if (i < len)
                t[i] = ' ';
            if (i + 1 < len)
                t[i + 1] = ' ';
            i++;
        }
    }
    /* pass 2: a comma followed only by whitespace and then } or ] goes */
    for (size_t i = 0; i < len; i++) {
        if (t[i] == '"') {
            for (i++; i < len && t[i] != '"'; i++)
                if (t[i] == '\\')
                    i++;
        } else if (t[i] == ',') {
            size_t j = i + 1;
            while (j < len && strchr(" \t\r\n", t[j]))
                j++;
            if (j < len && (t[j] == '}' || t[j] == ']'))
                t[i] = ' ';
        }
    }
}

int dc_parse_jsonc(const char *text, size_t len, const char *name, json_t **ret,
                   struct berr **reterr)
{
    _cleanup_free_ char *copy = xmalloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = 0;
    dc_jsonc_strip(copy, len);
    json_error_t jerr;
    json_t *j = json_loadb(copy, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!j)
        return berr_make(reterr, EINVAL, "'%s' line %d, column %d: %s", name, jerr.line,
                         jerr.column, jerr.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return berr_make(reterr, EINVAL, "'%s': the top level must be an object", name);
    }
    *ret = j;
    return 0;
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* A relative path that stays inside the repository: no "..", not absolute. */
static bool path_is_contained(const char *rel)
{
    if (!*rel || rel[0] == '/')
        return false;
    for (const char *p = rel; *p;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return false;
        p += n;
        if (*p == '/')
            p++;
    }
    return true;
}

int dc_find(const char *repo_dir, const char *explicit_path, char **ret_relpath,
            struct berr **reterr)
{
    if (explicit_path) {
        if (!path_is_contained(explicit_path))
            return berr_make(reterr, EINVAL,
                             "devcontainer path '%s' must be relative and inside the repository",
                             explicit_path);
        _cleanup_free_ char *p = xasprintf("%s/%s", repo_dir, explicit_path);
        if (!is_file(p))
            return berr_make(reterr, ENOENT, "'%s' not found in the repository", explicit_path);
        *ret_relpath = xstrdup(explicit_path);
        return 0;
    }
    static const char *const candidates[] = {".devcontainer/devcontainer.json",
                                             ".devcontainer.json"};
    for (size_t i = 0; i < ELEMENTSOF(candidates); i++) {
        _cleanup_free_ char *p = xasprintf("%s/%s", repo_dir, candidates[i]);
        if (is_file(p)) {
            *ret_relpath = xstrdup(candidates[i]);
            return 0;
        }
    }
    *ret_relpath = NULL;
    return 0;
}

static const char *basename_of(const char *path)
{
    const char *s = strrchr(path, '/');
    return s && s[1] ? s + 1 : path;
}

/* Looks up NAME or NAME:default in env; returns a new string. */
static char *lookup_with_default(const char *spec, const struct strv *env)
{
    _cleanup_free_ char *name = xstrdup(spec);
    char *colon = strchr(name, ':');
    const char *def = "";
    if (colon) {
        *colon = 0;
        def = colon + 1;
    }
    const char *v = env ? strv_getenv(env, name) : NULL;
    return xstrdup(v ? v : def);
}

char *dc_substitute(const char *s, const struct dc_vars *vars, const struct strv *container_env)
{
    struct buf out = BUF_INIT;
    while (*s) {
        const char *start = strstr(s, "${");
        const char *end = start ? strchr(start, '}') : NULL;
        if (!start || !end) {
            buf_adds(&out, s);
            break;
        }
        buf_add(&out, s, (size_t)(start - s));
        _cleanup_free_ char *var = xstrndup(start + 2, (size_t)(end - start - 2));
        _cleanup_free_ char *val = NULL;
        const char *lw = vars ? vars->local_workspace_folder : NULL;
        const char *cw = vars ? vars->container_workspace_folder : NULL;
        if (strcmp(var, "localWorkspaceFolder") == 0 && lw)
            val = xstrdup(lw);
        else if (strcmp(var, "localWorkspaceFolderBasename") == 0 && lw)
            val = xstrdup(basename_of(lw));
        else if (strcmp(var, "containerWorkspaceFolder") == 0 && cw)
            val = xstrdup(cw);
        else if (strcmp(var, "containerWorkspaceFolderBasename") == 0 && cw)
            val = xstrdup(basename_of(cw));
        else if (strcmp(var, "devcontainerId") == 0 && vars && vars->devcontainer_id)
            val = xstrdup(vars->devcontainer_id);
        else if (strncmp(var, "localEnv:", 9) == 0)
            val = lookup_with_default(var + 9, vars ? vars->local_env : NULL);
        else if (strncmp(var, "env:", 4) == 0)
            val = lookup_with_default(var + 4, vars ? vars->local_env : NULL);
        else if (strncmp(var, "containerEnv:", 13) == 0 && container_env)
            val = lookup_with_default(var + 13, container_env);
        if (val)
            buf_adds(&out, val);
        else
            buf_add(&out, start, (size_t)(end - start + 1));
        s = end + 1;
    }
    return buf_detach(&out, NULL);
}

static json_t *substitute_json(json_t *j, const struct dc_vars *vars)
{
    if (json_is_string(j)) {
        _cleanup_free_ char *s = dc_substitute(json_string_value(j), vars, NULL);
        return json_string(s);
    }
    if (json_is_array(j)) {
        json_t *a = json_array();
        size_t i;
        json_t *v;
        json_array_foreach (j, i, v)
            json_array_append_new(a, substitute_json(v, vars));
        return a;
    }
    if (json_is_object(j)) {
        json_t *o = json_object();
        const char *k;
        json_t *v;
        json_object_foreach (j, k, v)
            json_object_set_new(o, k, substitute_json(v, vars));
        return o;
    }
    return json_incref(j);
}

static void set_str(char **dst, const char *v)
{
    if (v) {
        free(*dst);
        *dst = xstrdup(v);
    }
}

/* Applies one config object (from metadata or the file) on top of c. */
static void apply_layer(struct dc_config *c, json_t *o)
{
    const char *image = NULL, *ru = NULL, *cu = NULL, *wf = NULL;
    json_t *env = NULL;
    int override = -1;
    (void)json_unpack(o, "{s?s, s?s, s?s, s?s, s?o, s?b}", "image", &image, "remoteUser", &ru,
                      "containerUser", &cu, "workspaceFolder", &wf, "containerEnv", &env,
                      "overrideCommand", &override);
    set_str(&c->image, image);
    set_str(&c->remote_user, ru);
    set_str(&c->container_user, cu);
    set_str(&c->workspace_folder, wf);
    if (override >= 0)
        c->override_command = override;
    if (json_is_object(env)) {
        const char *k;
        json_t *v;
        json_object_foreach (env, k, v)
            if (json_is_string(v))
                strv_setenv(&c->container_env, k, json_string_value(v));
    }
    for (int h = 0; h < _DC_HOOK_MAX; h++) {
        json_t *v = json_object_get(o, hook_names[h]);
        if (!v || json_is_null(v))
            continue;
        if (!c->hooks[h])
            c->hooks[h] = json_array();
        json_array_append(c->hooks[h], v);
    }
}

/* Checks the types of the fields Berth reads; names the first bad one. */
static int validate(json_t *j, const char *name, struct berr **reterr)
{
    json_error_t jerr;
    json_t *build = NULL, *env = NULL;
    const char *image = NULL;
    if (json_unpack_ex(j, &jerr, 0, "{s?s, s?s, s?s, s?s, s?o, s?o, s?b}", "image", &image,
                       "remoteUser", &(const char *){NULL}, "containerUser", &(const char *){NULL},
                       "workspaceFolder", &(const char *){NULL}, "containerEnv", &env, "build",
                       &build, "overrideCommand", &(int){0}) < 0)
        return berr_make(reterr, EINVAL, "'%s': %s", name, jerr.text);
    if (env && !json_is_object(env))
        return berr_make(reterr, EINVAL, "'%s': containerEnv must be an object of strings", name);
    if (env) {
        const char *k;
        json_t *v;
        json_object_foreach (env, k, v)
            if (!json_is_string(v))
                return berr_make(reterr, EINVAL, "'%s': containerEnv.%s must be a string", name, k);
    }
    if (!image && (build || json_object_get(j, "dockerFile") || json_object_get(j, "dockerfile")))
        return berr_make(reterr, ENOTSUP,
                         "'%s': building from a Dockerfile is not supported yet; use \"image\"",
                         name);
    if (json_object_get(j, "dockerComposeFile"))
        return berr_make(reterr, ENOTSUP, "'%s': Docker Compose configurations are not supported",
                         name);
    for (int h = 0; h < _DC_HOOK_MAX; h++) {
        json_t *v = json_object_get(j, hook_names[h]);
        if (v && !json_is_string(v) && !json_is_array(v) && !json_is_object(v) && !json_is_null(v))
            return berr_make(reterr, EINVAL, "'%s': %s must be a string, an array or an object",
                             name, hook_names[h]);
    }
    return 0;
}

int dc_load(const char *repo_dir, const char *relpath, const struct dc_vars *vars,
            struct dc_config *c, struct berr **reterr)
{
    json_t *raw = NULL;
    if (relpath) {
        _cleanup_free_ char *path = xasprintf("%s/%s", repo_dir, relpath);
        _cleanup_buf_ struct buf text = BUF_INIT;
        int r = read_file(path, DC_MAX_FILE, &text);
        if (r == -EFBIG)
            return berr_make(reterr, EFBIG, "'%s' is larger than 1 MiB", relpath);
        if (r < 0)
            return berr_make(reterr, -r, "cannot read '%s': %s", relpath, strerror(-r));
        json_t *parsed = NULL;
        r = dc_parse_jsonc(text.buf, text.len, relpath, &parsed, reterr);
        if (r < 0)
            return r;
        r = validate(parsed, relpath, reterr);
        if (r < 0) {
            json_decref(parsed);
            return r;
        }
        raw = substitute_json(parsed, vars);
        json_decref(parsed);
    } else {
        raw = json_object();
    }
    dc_config_release(c);
    c->raw = raw;
    apply_layer(c, raw);
    return 0;
}

void dc_merge_image_metadata(struct dc_config *c, const char *label)
{
    if (!label || !*label)
        return;
    json_t *meta = json_loads(label, 0, NULL);
    if (!meta)
        return;
    if (json_is_object(meta)) {
        json_t *a = json_array();
        json_array_append(a, meta);
        json_decref(meta);
        meta = a;
    }
    if (!json_is_array(meta)) {
        json_decref(meta);
        return;
    }
    /* rebuild: metadata layers first, then the file again on top */
    struct dc_config merged;
    dc_config_init(&merged);
    size_t i;
    json_t *layer;
    json_array_foreach (meta, i, layer)
        if (json_is_object(layer))
            apply_layer(&merged, layer);
    if (c->raw)
        apply_layer(&merged, c->raw);
    merged.raw = json_incref(c->raw);
    dc_config_release(c);
    *c = merged;
    json_decref(meta);
}

static int push_argv(json_t *v, struct strv *argv)
{
    if (json_is_string(v)) {
        strv_pushl(argv, "/bin/sh", "-c", json_string_value(v), NULL);
        return 0;
    }
    if (json_is_array(v) && json_array_size(v) > 0) {
        size_t i;
        json_t *a;
        json_array_foreach (v, i, a) {
            if (!json_is_string(a))
                return -EINVAL;
            strv_push(argv, json_string_value(a));
        }
        return 0;
    }
    return -EINVAL;
}

int dc_hook_commands(const struct dc_config *c, enum dc_hook h, struct dc_command **ret,
                     struct berr **reterr)
{
    struct dc_command *list = NULL;
    size_t n = 0;
    json_t *values = c->hooks[h];
    size_t i;
    json_t *v;
    json_array_foreach (values, i, v) {
        if (json_is_string(v) && !*json_string_value(v))
            continue;
        if (json_is_object(v)) {
            const char *k;
            json_t *e;
            json_object_foreach (v, k, e) {
                list = xrealloc(list, (n + 1) * sizeof(*list));
                list[n] =
                    (struct dc_command){.label = xstrdup(k), .argv = STRV_INIT, .group = (int)i};
                n++;
                if (push_argv(e, &list[n - 1].argv) < 0) {
                    dc_commands_free(list, n);
                    return berr_make(reterr, EINVAL,
                                     "%s.%s must be a string or a non-empty array of strings",
                                     hook_names[h], k);
                }
            }
            continue;
        }
        list = xrealloc(list, (n + 1) * sizeof(*list));
        list[n] = (struct dc_command){
            .label = xstrdup(hook_names[h]), .argv = STRV_INIT, .group = (int)i};
        n++;
        if (push_argv(v, &list[n - 1].argv) < 0) {
            dc_commands_free(list, n);
            return berr_make(reterr, EINVAL,
                             "%s must be a string, a non-empty array of strings or an object",
                             hook_names[h]);
        }
    }
    *ret = list;
    return (int)n;
}

void dc_commands_free(struct dc_command *cmds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(cmds[i].label);
        strv_release(&cmds[i].argv);
    }
    free(cmds);
}
