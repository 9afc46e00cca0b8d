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
#include <stdint.h>
#include <sys/types.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "devcontainer/gitpod.h"
#include "util/buf.h"
#include "util/fs.h"
#include "util/path.h"
#include "util/size.h"
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
    *c = (struct dc_config){.container_env = STRV_INIT,
                            .cap_add = STRV_INIT,
                            .security_opt = STRV_INIT,
                            .warnings = STRV_INIT,
                            .override_command = true};
}

void dc_config_release(struct dc_config *c)
{
    json_decref(c->raw);
    free(c->image);
    free(c->remote_user);
    free(c->container_user);
    free(c->workspace_folder);
    free(c->user_env_probe);
    free(c->wait_for);
    strv_release(&c->container_env);
    strv_release(&c->cap_add);
    strv_release(&c->security_opt);
    strv_release(&c->warnings);
    json_t *objects[] = {c->remote_env,
                         c->mounts,
                         c->forward_ports,
                         c->ports_attributes,
                         c->other_ports_attributes,
                         c->customizations};
    for (size_t i = 0; i < ELEMENTSOF(objects); i++)
        json_decref(objects[i]);
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

/* A regular file of the checkout: not a symlink, and no symlinked folder on
 * the way leads out of it (a repository could point at a host file). */
static bool is_file_inside(const char *repo_dir, const char *rel)
{
    _cleanup_free_ char *path = xasprintf("%s/%s", repo_dir, rel);
    struct stat st;
    if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return false;
    _cleanup_free_ char *root = realpath(repo_dir, NULL);
    _cleanup_free_ char *real = realpath(path, NULL);
    size_t n = root ? strlen(root) : 0;
    return root && real && strncmp(real, root, n) == 0 && real[n] == '/';
}

/* A relative path that stays inside the repository. */
static bool path_is_contained(const char *rel)
{
    if (!*rel || rel[0] == '/')
        return false;
    _cleanup_free_ char *clean = path_normalize(rel);
    return clean && *clean;
}

int dc_find(const char *repo_dir, const char *explicit_path, char **ret_relpath,
            struct berr **reterr)
{
    if (explicit_path) {
        if (!path_is_contained(explicit_path))
            return berr_make(reterr, EINVAL,
                             "devcontainer path '%s' must be relative and inside the repository",
                             explicit_path);
        if (!is_file_inside(repo_dir, explicit_path))
            return berr_make(reterr, ENOENT, "'%s' not found in the repository", explicit_path);
        *ret_relpath = xstrdup(explicit_path);
        return 0;
    }
    static const char *const candidates[] = {".devcontainer/devcontainer.json",
                                             ".devcontainer.json"};
    for (size_t i = 0; i < ELEMENTSOF(candidates); i++) {
        if (is_file_inside(repo_dir, candidates[i])) {
            *ret_relpath = xstrdup(candidates[i]);
            return 0;
        }
    }
    *ret_relpath = is_file_inside(repo_dir, GITPOD_FILE) ? xstrdup(GITPOD_FILE) : NULL;
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

static void set_str_field(char **dst, json_t *o, const char *key)
{
    set_str(dst, json_string_value(json_object_get(o, key)));
}

static void or_bool_field(bool *dst, json_t *o, const char *key)
{
    if (json_is_true(json_object_get(o, key)))
        *dst = true;
}

static void union_strv_field(struct strv *dst, json_t *o, const char *key)
{
    size_t i;
    json_t *v;
    json_array_foreach (json_object_get(o, key), i, v) {
        const char *str = json_string_value(v);
        bool seen = false;
        for (size_t k = 0; str && k < dst->n && !seen; k++)
            seen = strcmp(dst->v[k], str) == 0;
        if (str && !seen)
            strv_push(dst, str);
    }
}

/* An object merged key by key into *dst, the later value winning. */
static void merge_object_field(json_t **dst, json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_object(v))
        return;
    if (!*dst)
        *dst = json_object();
    json_object_update(*dst, v);
}

static void max_field(int64_t *dst, int64_t v)
{
    if (v > *dst)
        *dst = v;
}

/* The target of a mount in either form: "type=volume,source=x,target=/y" or
 * {"type": ..., "source": ..., "target": ...}. */
static char *mount_target(json_t *m)
{
    if (json_is_object(m)) {
        const char *t = json_string_value(json_object_get(m, "target"));
        return t ? xstrdup(t) : NULL;
    }
    const char *str = json_string_value(m);
    for (const char *p = str; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        for (const char *k = "target=\0dst=\0destination=\0"; *k; k += strlen(k) + 1)
            if (n > strlen(k) && strncmp(p, k, strlen(k)) == 0)
                return xstrndup(p + strlen(k), n - strlen(k));
        p += n;
        if (*p == ',')
            p++;
    }
    return NULL;
}

/* Mounts are collected; a later mount of the same target replaces an earlier. */
static void collect_mounts(json_t **dst, json_t *o)
{
    size_t i;
    json_t *m;
    json_array_foreach (json_object_get(o, "mounts"), i, m) {
        if (!json_is_string(m) && !json_is_object(m))
            continue;
        if (!*dst)
            *dst = json_array();
        _cleanup_free_ char *target = mount_target(m);
        for (size_t k = 0; target && k < json_array_size(*dst); k++) {
            _cleanup_free_ char *other = mount_target(json_array_get(*dst, k));
            if (other && strcmp(other, target) == 0) {
                json_array_remove(*dst, k);
                break;
            }
        }
        json_array_append(*dst, m);
    }
}

static void union_ports(json_t **dst, json_t *o)
{
    size_t i;
    json_t *p;
    json_array_foreach (json_object_get(o, "forwardPorts"), i, p) {
        if (!json_is_integer(p) && !json_is_string(p))
            continue;
        if (!*dst)
            *dst = json_array();
        bool seen = false;
        for (size_t k = 0; k < json_array_size(*dst) && !seen; k++)
            seen = json_equal(json_array_get(*dst, k), p);
        if (!seen)
            json_array_append(*dst, p);
    }
}

static void collect_customizations(json_t **dst, json_t *o)
{
    json_t *cust = json_object_get(o, "customizations");
    if (!json_is_object(cust))
        return;
    if (!*dst)
        *dst = json_object();
    const char *tool;
    json_t *v;
    json_object_foreach (cust, tool, v) {
        json_t *list = json_object_get(*dst, tool);
        if (!list) {
            list = json_array();
            json_object_set_new(*dst, tool, list);
        }
        json_array_append(list, v);
    }
}

static void host_requirements(struct dc_config *c, json_t *o)
{
    json_t *hr = json_object_get(o, "hostRequirements");
    if (!json_is_object(hr))
        return;
    json_t *cpus = json_object_get(hr, "cpus");
    if (json_is_integer(cpus))
        max_field(&c->host_cpus, json_integer_value(cpus));
    const char *mem = json_string_value(json_object_get(hr, "memory"));
    if (mem)
        max_field(&c->host_memory, size_parse(mem));
    const char *storage = json_string_value(json_object_get(hr, "storage"));
    if (storage)
        max_field(&c->host_storage, size_parse(storage));
}

/* Applies one config object (from metadata or the file) on top of c, by the
 * spec's merge rule for each property. */
static void apply_layer(struct dc_config *c, json_t *o)
{
    set_str_field(&c->image, o, "image");
    set_str_field(&c->remote_user, o, "remoteUser");
    set_str_field(&c->container_user, o, "containerUser");
    set_str_field(&c->workspace_folder, o, "workspaceFolder");
    set_str_field(&c->user_env_probe, o, "userEnvProbe");
    set_str_field(&c->wait_for, o, "waitFor");
    json_t *override = json_object_get(o, "overrideCommand");
    if (json_is_boolean(override))
        c->override_command = json_is_true(override);
    or_bool_field(&c->init, o, "init");
    or_bool_field(&c->privileged, o, "privileged");
    union_strv_field(&c->cap_add, o, "capAdd");
    union_strv_field(&c->security_opt, o, "securityOpt");
    json_t *env = json_object_get(o, "containerEnv");
    if (json_is_object(env)) {
        const char *k;
        json_t *v;
        json_object_foreach (env, k, v)
            if (json_is_string(v))
                strv_setenv(&c->container_env, k, json_string_value(v));
    }
    merge_object_field(&c->remote_env, o, "remoteEnv");
    merge_object_field(&c->ports_attributes, o, "portsAttributes");
    json_t *other = json_object_get(o, "otherPortsAttributes");
    if (json_is_object(other)) {
        json_decref(c->other_ports_attributes);
        c->other_ports_attributes = json_incref(other);
    }
    collect_mounts(&c->mounts, o);
    union_ports(&c->forward_ports, o);
    collect_customizations(&c->customizations, o);
    host_requirements(c, o);
    for (int h = 0; h < _DC_HOOK_MAX; h++) {
        json_t *v = json_object_get(o, hook_names[h]);
        if (!v || json_is_null(v))
            continue;
        if (!c->hooks[h])
            c->hooks[h] = json_array();
        json_array_append(c->hooks[h], v);
    }
}

enum dc_kind { K_STRING, K_BOOL, K_OBJECT, K_ARRAY, K_STRINGS, K_STRING_OBJECT };

/* The properties Berth reads, with the JSON type each must have. */
static const struct {
    const char *name;
    enum dc_kind kind;
} properties[] = {
    {"image", K_STRING},
    {"remoteUser", K_STRING},
    {"containerUser", K_STRING},
    {"workspaceFolder", K_STRING},
    {"userEnvProbe", K_STRING},
    {"waitFor", K_STRING},
    {"overrideCommand", K_BOOL},
    {"init", K_BOOL},
    {"privileged", K_BOOL},
    {"containerEnv", K_STRING_OBJECT},
    {"remoteEnv", K_OBJECT},
    {"portsAttributes", K_OBJECT},
    {"otherPortsAttributes", K_OBJECT},
    {"hostRequirements", K_OBJECT},
    {"customizations", K_OBJECT},
    {"features", K_OBJECT},
    {"build", K_OBJECT},
    {"capAdd", K_STRINGS},
    {"securityOpt", K_STRINGS},
    {"runArgs", K_STRINGS},
    {"mounts", K_ARRAY},
    {"forwardPorts", K_ARRAY},
};

static const char *kind_text(enum dc_kind k)
{
    static const char *const t[] = {"a string", "true or false",       "an object",
                                    "an array", "an array of strings", "an object of strings"};
    return t[k];
}

static bool has_kind(json_t *v, enum dc_kind k)
{
    switch (k) {
    case K_STRING:
        return json_is_string(v);
    case K_BOOL:
        return json_is_boolean(v);
    case K_OBJECT:
        return json_is_object(v);
    case K_ARRAY:
        return json_is_array(v);
    case K_STRINGS: {
        size_t i;
        json_t *e;
        json_array_foreach (v, i, e)
            if (!json_is_string(e))
                return false;
        return json_is_array(v);
    }
    case K_STRING_OBJECT: {
        const char *key;
        json_t *e;
        json_object_foreach (v, key, e)
            if (!json_is_string(e))
                return false;
        return json_is_object(v);
    }
    default:
        return false;
    }
}

/* Checks the types of the properties Berth reads; names the first bad one. */
static int validate(json_t *j, const char *name, struct berr **reterr)
{
    for (size_t i = 0; i < ELEMENTSOF(properties); i++) {
        json_t *v = json_object_get(j, properties[i].name);
        if (v && !json_is_null(v) && !has_kind(v, properties[i].kind))
            return berr_make(reterr, EINVAL, "'%s': \"%s\" must be %s", name, properties[i].name,
                             kind_text(properties[i].kind));
    }
    size_t i;
    json_t *v;
    json_array_foreach (json_object_get(j, "mounts"), i, v)
        if (!json_is_string(v) && !json_is_object(v))
            return berr_make(reterr, EINVAL, "'%s': \"mounts\"[%zu] must be a string or an object",
                             name, i);
    json_array_foreach (json_object_get(j, "forwardPorts"), i, v)
        if (!json_is_integer(v) && !json_is_string(v))
            return berr_make(reterr, EINVAL,
                             "'%s': \"forwardPorts\"[%zu] must be a port number or \"host:port\"",
                             name, i);
    json_t *hr = json_object_get(j, "hostRequirements");
    json_t *cpus = json_object_get(hr, "cpus");
    if (cpus && (!json_is_integer(cpus) || json_integer_value(cpus) < 1))
        return berr_make(reterr, EINVAL,
                         "'%s': \"hostRequirements.cpus\" must be a whole number of at least 1",
                         name);
    const char *sizes[] = {"memory", "storage"};
    for (size_t k = 0; k < ELEMENTSOF(sizes); k++) {
        json_t *sz = json_object_get(hr, sizes[k]);
        if (sz && (!json_is_string(sz) || size_parse(json_string_value(sz)) < 0))
            return berr_make(reterr, EINVAL,
                             "'%s': \"hostRequirements.%s\" must be a size such as \"4gb\"", name,
                             sizes[k]);
    }
    if (json_object_get(j, "dockerComposeFile"))
        return berr_make(reterr, ENOTSUP, "'%s': Docker Compose configurations are not supported",
                         name);
    if (!json_object_get(j, "image") && !json_object_get(j, "build") &&
        (json_object_get(j, "dockerFile") || json_object_get(j, "dockerfile")))
        return berr_make(reterr, EINVAL,
                         "'%s': use \"build\": {\"dockerfile\": ...} (the top-level "
                         "\"dockerFile\" is not read by Berth)",
                         name);
    json_t *build = json_object_get(j, "build");
    if (build && !json_is_null(build) && !json_is_string(json_object_get(build, "dockerfile")))
        return berr_make(reterr, EINVAL, "'%s': \"build.dockerfile\" must be a string", name);
    for (int h = 0; h < _DC_HOOK_MAX; h++) {
        json_t *hv = json_object_get(j, hook_names[h]);
        if (hv && !json_is_string(hv) && !json_is_array(hv) && !json_is_object(hv) &&
            !json_is_null(hv))
            return berr_make(reterr, EINVAL, "'%s': %s must be a string, an array or an object",
                             name, hook_names[h]);
    }
    return 0;
}

int dc_load(const char *repo_dir, const char *relpath, const struct dc_vars *vars,
            struct dc_config *c, struct berr **reterr)
{
    json_t *raw = NULL;
    bool gitpod = gitpod_is_config(relpath);
    _cleanup_strv_ struct strv warnings = STRV_INIT;
    if (relpath) {
        _cleanup_free_ char *path = xasprintf("%s/%s", repo_dir, relpath);
        _cleanup_buf_ struct buf text = BUF_INIT;
        size_t limit = gitpod ? GITPOD_MAX_FILE : DC_MAX_FILE;
        int r = read_file(path, limit, &text);
        if (r == -EFBIG)
            return berr_make(reterr, EFBIG, "'%s' is larger than %zu KiB", relpath, limit / 1024);
        if (r < 0)
            return berr_make(reterr, -r, "cannot read '%s': %s", relpath, strerror(-r));
        json_t *parsed = NULL;
        if (gitpod)
            r = gitpod_load(text.buf, text.len, relpath, &parsed, &warnings, reterr);
        else
            r = dc_parse_jsonc(text.buf, text.len, relpath, &parsed, reterr);
        if (r < 0)
            return r;
        r = validate(parsed, relpath, reterr);
        if (r < 0) {
            json_decref(parsed);
            return r;
        }
        /* ${containerWorkspaceFolder} is the workspaceFolder the file sets */
        struct dc_vars v = vars ? *vars : (struct dc_vars){0};
        const char *wf = json_string_value(json_object_get(parsed, "workspaceFolder"));
        _cleanup_free_ char *folder = wf ? dc_substitute(wf, vars, NULL) : NULL;
        if (folder && *folder)
            v.container_workspace_folder = folder;
        raw = substitute_json(parsed, &v);
        json_decref(parsed);
        /* substituted once, with the folder as it was before it was set */
        if (folder && *folder)
            json_object_set_new(raw, "workspaceFolder", json_string(folder));
    } else {
        raw = json_object();
    }
    dc_config_release(c);
    c->raw = raw;
    c->gitpod = gitpod;
    c->warnings = warnings;
    warnings = (struct strv)STRV_INIT;
    apply_layer(c, raw);
    return 0;
}

json_t *dc_metadata_entries(const char *label)
{
    json_t *meta = label && *label ? json_loads(label, 0, NULL) : NULL;
    if (json_is_object(meta)) {
        json_t *a = json_array();
        json_array_append_new(a, meta);
        return a;
    }
    if (!json_is_array(meta)) {
        json_decref(meta);
        return NULL;
    }
    return meta;
}

void dc_merge_image_metadata(struct dc_config *c, const char *label)
{
    json_t *meta = dc_metadata_entries(label);
    if (!meta)
        return;
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
    merged.gitpod = c->gitpod;
    strv_release(&merged.warnings);
    merged.warnings = c->warnings;
    c->warnings = (struct strv)STRV_INIT;
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

static void set_strv_array(json_t *o, const char *key, const struct strv *v)
{
    if (!v->n)
        return;
    json_t *a = json_array();
    for (size_t i = 0; i < v->n; i++)
        json_array_append_new(a, json_string(v->v[i]));
    json_object_set_new(o, key, a);
}

static void set_copy(json_t *o, const char *key, json_t *v)
{
    if (v)
        json_object_set_new(o, key, json_deep_copy(v));
}

static void set_string(json_t *o, const char *key, const char *v)
{
    if (v)
        json_object_set_new(o, key, json_string(v));
}

json_t *dc_config_merged_json(const struct dc_config *c)
{
    json_t *o = c->raw ? json_deep_copy(c->raw) : json_object();
    for (int h = 0; h < _DC_HOOK_MAX; h++) {
        json_object_del(o, hook_names[h]);
        _cleanup_free_ char *plural = xasprintf("%ss", hook_names[h]);
        json_t *list = json_array();
        size_t i;
        json_t *v;
        json_array_foreach (c->hooks[h], i, v)
            if (!json_is_string(v) || *json_string_value(v)) /* "" runs nothing */
                json_array_append(list, v);
        json_object_set_new(o, plural, list);
    }
    json_object_del(o, "customizations");
    set_string(o, "image", c->image);
    set_string(o, "remoteUser", c->remote_user);
    set_string(o, "containerUser", c->container_user);
    set_string(o, "workspaceFolder", c->workspace_folder);
    set_string(o, "userEnvProbe", c->user_env_probe);
    set_string(o, "waitFor", c->wait_for);
    {
        json_t *env = json_object();
        for (size_t i = 0; i < c->container_env.n; i++) {
            const char *eq = strchr(c->container_env.v[i], '=');
            _cleanup_free_ char *k =
                xstrndup(c->container_env.v[i], (size_t)(eq - c->container_env.v[i]));
            json_object_set_new(env, k, json_string(eq + 1));
        }
        json_object_set_new(o, "containerEnv", env);
    }
    json_object_set_new(o, "remoteEnv",
                        c->remote_env ? json_deep_copy(c->remote_env) : json_object());
    json_object_set_new(o, "portsAttributes",
                        c->ports_attributes ? json_deep_copy(c->ports_attributes) : json_object());
    json_object_del(o, "mounts");
    json_object_del(o, "forwardPorts");
    if (json_array_size(c->mounts))
        set_copy(o, "mounts", c->mounts);
    if (json_array_size(c->forward_ports))
        set_copy(o, "forwardPorts", c->forward_ports);
    set_copy(o, "otherPortsAttributes", c->other_ports_attributes);
    set_copy(o, "customizations", c->customizations);
    set_strv_array(o, "capAdd", &c->cap_add);
    set_strv_array(o, "securityOpt", &c->security_opt);
    json_object_set_new(o, "init", json_boolean(c->init));
    json_object_set_new(o, "privileged", json_boolean(c->privileged));
    if (c->host_cpus || c->host_memory || c->host_storage) {
        json_t *hr = json_object();
        if (c->host_cpus)
            json_object_set_new(hr, "cpus", json_integer(c->host_cpus));
        if (c->host_memory)
            json_object_set_new(hr, "memory", json_sprintf("%lld", (long long)c->host_memory));
        if (c->host_storage)
            json_object_set_new(hr, "storage", json_sprintf("%lld", (long long)c->host_storage));
        json_object_set_new(o, "hostRequirements", hr);
    }
    return o;
}

int dc_feature_order(json_t *ids, json_t *after, json_t *override_order, json_t **ret,
                     struct berr **reterr)
{
    size_t n = json_array_size(ids);
    bool *done = xcalloc(n ? n : 1, sizeof(bool));
    json_t *order = json_array();
    for (size_t round = 0; round < n; round++) {
        ssize_t pick = -1;
        size_t best_rank = SIZE_MAX;
        for (size_t i = 0; i < n; i++) {
            if (done[i])
                continue;
            const char *id = json_string_value(json_array_get(ids, i));
            /* ready when everything it follows (and is present) is installed */
            bool ready = true;
            size_t k;
            json_t *dep;
            json_array_foreach (json_object_get(after, id), k, dep)
                for (size_t j = 0; j < n && ready; j++)
                    if (!done[j] && j != i &&
                        strcmp(json_string_value(json_array_get(ids, j)), json_string_value(dep)) ==
                            0)
                        ready = false;
            if (!ready)
                continue;
            /* overrideFeatureInstallOrder first, in its order; then as written */
            size_t rank = SIZE_MAX - n + i;
            json_array_foreach (override_order, k, dep)
                if (json_is_string(dep) && strcmp(json_string_value(dep), id) == 0)
                    rank = k;
            if (rank < best_rank) {
                best_rank = rank;
                pick = (ssize_t)i;
            }
        }
        if (pick < 0) {
            free(done);
            json_decref(order);
            return berr_make(reterr, ELOOP,
                             "features wait for each other (installsAfter/dependsOn form a cycle)");
        }
        done[pick] = true;
        json_array_append(order, json_array_get(ids, (size_t)pick));
    }
    free(done);
    *ret = order;
    return 0;
}
