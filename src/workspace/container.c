/* container.c - the server's policy and the container the engine makes.
 *
 * policy_load reads what an admin allows; container_config turns a checked
 * configuration into the engine's create body: Berth's binds (the checkout,
 * the run dir, the read-only agent and IDE), the agent as entrypoint, the
 * environment, limits and labels. Named volumes are the workspace's own.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "store/accounts.h"
#include "workspace/ws-internal.h"

void policy_load(struct ws_manager *m, struct policy *pol)
{
    pol->allow = (struct strv)STRV_INIT;
    pol->forbidden = (struct strv)STRV_INIT;
    _cleanup_free_ char *text = store_setting_text(m->store, WS_SETTING_ALLOW);
    json_t *list = text ? json_loads(text, 0, NULL) : NULL;
    size_t i;
    json_t *v;
    json_array_foreach (list, i, v)
        if (json_is_string(v))
            strv_push(&pol->allow, json_string_value(v));
    json_decref(list);
    _cleanup_free_ char *data = realpath(m->data_dir, NULL);
    _cleanup_free_ char *sock = xstrdup(engine_socket(m->engine));
    char *slash = strrchr(sock, '/');
    if (slash && slash != sock)
        *slash = 0;
    strv_pushl(&pol->forbidden, data ? data : m->data_dir, sock, "/run/podman", "/run/docker.sock",
               "/var/run/docker.sock", "/var/lib/containers", "/run/containers", "/proc", "/sys",
               NULL);
    struct sysinfo si;
    int64_t host_mem = sysinfo(&si) == 0 ? (int64_t)si.totalram * si.mem_unit : 0;
    pol->p = (struct dc_policy){
        .allow = &pol->allow,
        .forbidden = &pol->forbidden,
        .max_cpus = store_setting_int(m->store, WS_SETTING_MAX_CPUS, sysconf(_SC_NPROCESSORS_ONLN)),
        .max_memory = store_setting_int(m->store, WS_SETTING_MAX_MEMORY_MB, host_mem >> 20) << 20,
    };
}

void policy_release(struct policy *pol)
{
    strv_release(&pol->allow);
    strv_release(&pol->forbidden);
}

/* A named volume of the config is the workspace's own: its name is prefixed
 * with the workspace id, so no config can reach another workspace's volume. */
static char *volume_name(struct job_ctx *x, const char *source)
{
    return xasprintf("berth-%s-%s", x->rec.id, source);
}

static json_t *strv_json(const struct strv *v)
{
    json_t *a = json_array();
    for (size_t i = 0; i < v->n; i++)
        json_array_append_new(a, json_string(v->v[i]));
    return a;
}

/* HostConfig entries for the options a config asked for (already checked
 * against the policy). */
static void apply_run_options(struct job_ctx *x, const struct dc_run_options *o, json_t *host,
                              json_t *env, json_t *labels)
{
    if (o->privileged)
        json_object_set_new(host, "Privileged", json_true());
    if (o->cap_add.n)
        json_object_set_new(host, "CapAdd", strv_json(&o->cap_add));
    if (o->cap_drop.n)
        json_object_set_new(host, "CapDrop", strv_json(&o->cap_drop));
    if (o->security_opt.n)
        json_object_set_new(host, "SecurityOpt", strv_json(&o->security_opt));
    if (o->network)
        json_object_set_new(host, "NetworkMode", json_string(o->network));
    if (o->shm_size)
        json_object_set_new(host, "ShmSize", json_integer(o->shm_size));
    if (o->nano_cpus)
        json_object_set_new(host, "NanoCpus", json_integer(o->nano_cpus));
    if (o->memory)
        json_object_set_new(host, "Memory", json_integer(o->memory));
    json_t *devices = json_array();
    for (size_t i = 0; i < o->devices.n; i++)
        json_array_append_new(devices, json_pack("{s:s, s:s, s:s}", "PathOnHost", o->devices.v[i],
                                                 "PathInContainer", o->devices.v[i],
                                                 "CgroupPermissions", "rwm"));
    json_object_set_new(host, "Devices", devices);
    json_t *mounts = json_array();
    json_t *tmpfs = json_object();
    for (size_t i = 0; i < o->n_mounts; i++) {
        const struct dc_mount *mt = &o->mounts[i];
        if (mt->type == DC_MOUNT_TMPFS) {
            json_object_set_new(tmpfs, mt->target, json_string("rw,nosuid,nodev"));
            continue;
        }
        _cleanup_free_ char *source =
            mt->type == DC_MOUNT_VOLUME && mt->source ? volume_name(x, mt->source) : NULL;
        json_t *jm =
            json_pack("{s:s, s:s, s:b}", "Type", mt->type == DC_MOUNT_BIND ? "bind" : "volume",
                      "Target", mt->target, "ReadOnly", mt->readonly);
        if (mt->source)
            json_object_set_new(jm, "Source", json_string(source ? source : mt->source));
        json_array_append_new(mounts, jm);
    }
    json_object_set_new(host, "Mounts", mounts);
    json_object_set_new(host, "Tmpfs", tmpfs);
    for (size_t i = 0; i < o->env.n; i++)
        json_array_append_new(env, json_string(o->env.v[i]));
    for (size_t i = 0; i < o->labels.n; i++) {
        const char *eq = strchr(o->labels.v[i], '=');
        _cleanup_free_ char *k =
            eq ? xstrndup(o->labels.v[i], (size_t)(eq - o->labels.v[i])) : xstrdup(o->labels.v[i]);
        json_object_set_new(labels, k, json_string(eq ? eq + 1 : ""));
    }
}

/* Named volumes are created up front, labelled with the workspace, so that
 * deleting the workspace finds and removes them. */
int create_volumes(struct job_ctx *x, const struct dc_run_options *o, struct berr **reterr)
{
    for (size_t i = 0; i < o->n_mounts; i++) {
        if (o->mounts[i].type != DC_MOUNT_VOLUME || !o->mounts[i].source)
            continue;
        _cleanup_free_ char *name = volume_name(x, o->mounts[i].source);
        json_t *labels = json_pack("{s:s, s:s}", WS_LABEL_MANAGED, "1", WS_LABEL_ID, x->rec.id);
        struct berr *e = NULL;
        int r = engine_volume_create(x->m->engine, name, labels, &e);
        json_decref(labels);
        if (r < 0 && !strstr(berr_msg(e), "exists")) {
            berr_free(e);
            return berr_make(reterr, -r, "cannot create volume '%s' for %s", name,
                             o->mounts[i].target);
        }
        berr_free(e);
    }
    return 0;
}

void remove_volumes(struct job_ctx *x)
{
    _cleanup_free_ char *label = xasprintf("%s=%s", WS_LABEL_ID, x->rec.id);
    json_t *list = NULL;
    if (engine_volume_list(x->m->engine, label, &list, NULL) < 0)
        return;
    size_t i;
    json_t *v;
    json_array_foreach (list, i, v) {
        const char *name = json_string_value(json_object_get(v, "Name"));
        _cleanup_berr_ struct berr *e = NULL;
        if (name && engine_volume_remove(x->m->engine, name, &e) < 0)
            jlog(x, "warning: %s", berr_msg(e));
    }
    json_decref(list);
}

json_t *container_config(struct job_ctx *x, const struct dc_config *cfg,
                         const struct dc_run_options *opts, json_t *image)
{
    _cleanup_free_ char *files = clone_path(x);
    _cleanup_free_ char *run = ws_run_dir(x->m, x->rec.id);
    _cleanup_free_ char *dirname_ = repo_dir_name(x->rec.repo);
    json_t *binds = json_pack("[s++, s+, s+]", files, ":/workspaces/", dirname_, run, ":/.berth:rw",
                              x->m->agent_dir, ":/.berth-agent:ro");
    /* VS Code in the browser, when the set-up installed it */
    _cleanup_free_ char *ide_bin = xasprintf("%s/bin/code-server", x->m->ide_dir);
    if (access(ide_bin, X_OK) == 0)
        json_array_append_new(binds, json_sprintf("%s:/.berth-ide:ro", x->m->ide_dir));
    _cleanup_free_ char *vsix = xasprintf("%s/vsix", x->m->data_dir);
    if (access(vsix, R_OK | X_OK) == 0)
        json_array_append_new(binds, json_sprintf("%s:/.berth-vsix:ro", vsix));
    json_t *entry = json_pack("[s]", "/.berth-agent/berth-agent");
    json_t *cmd = json_array();
    if (!cfg->override_command) {
        json_t *ic = json_object_get(image, "Config");
        json_t *ep = json_object_get(ic, "Entrypoint"), *c = json_object_get(ic, "Cmd");
        json_array_append_new(cmd, json_string("--"));
        size_t i;
        json_t *v;
        json_array_foreach (ep, i, v)
            json_array_append(cmd, v);
        json_array_foreach (c, i, v)
            json_array_append(cmd, v);
        if (json_array_size(cmd) == 1)
            json_array_clear(cmd);
    }
    json_t *env = json_array();
    for (size_t i = 0; i < cfg->container_env.n; i++)
        json_array_append_new(env, json_string(cfg->container_env.v[i]));
    /* git inside asks berthd for the owner's credentials, on demand (the
     * configuration lives in the environment, never in a file) */
    if (!strv_getenv(&cfg->container_env, "GIT_CONFIG_COUNT")) {
        json_array_append_new(env, json_string("GIT_CONFIG_COUNT=1"));
        json_array_append_new(env, json_string("GIT_CONFIG_KEY_0=credential.helper"));
        json_array_append_new(
            env, json_string("GIT_CONFIG_VALUE_0=/.berth-agent/berth-agent git-credential"));
    }
    json_t *labels = json_object();
    /* berth-agent is the container's init (it reaps and forwards signals), so
     * "init": true needs no second one */
    json_t *host = json_pack("{s:o, s:b, s:[{s:s, s:i, s:i}, {s:s, s:i, s:i}]}", "Binds", binds,
                             "Init", 0, "Ulimits", "Name", "nofile", "Soft", 20000, "Hard", 20000,
                             "Name", "nproc", "Soft", 32768, "Hard", 32768);
    apply_run_options(x, opts, host, env, labels);
    /* Berth's own labels last: a config cannot overwrite them */
    json_object_set_new(labels, WS_LABEL_MANAGED, json_string("1"));
    json_object_set_new(labels, WS_LABEL_ID, json_string(x->rec.id));
    json_object_set_new(labels, "berth.name", json_string(x->rec.name));
    return json_pack("{s:s, s:o, s:o, s:o, s:s, s:s, s:s, s:i, s:o, s:o}", "Image", x->rec.image,
                     "Entrypoint", entry, "Cmd", cmd, "Env", env, "User", "root", "WorkingDir",
                     x->rec.workspace_folder, "Hostname",
                     opts->hostname ? opts->hostname : x->rec.name, "StopTimeout",
                     WS_STOP_TIMEOUT_S, "Labels", labels, "HostConfig", host);
}

void remove_container(struct job_ctx *x)
{
    _cleanup_free_ char *name = xasprintf("berth-%s", x->rec.id);
    const char *ids[] = {x->rec.container_id, name};
    for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
        if (!ids[i])
            continue;
        _cleanup_berr_ struct berr *e = NULL;
        int r = engine_container_remove(x->m->engine, ids[i], true, &e);
        if (r < 0 && r != -ENOENT)
            jlog(x, "warning: %s", berr_msg(e));
    }
    set_field(&x->rec.container_id, NULL);
}
