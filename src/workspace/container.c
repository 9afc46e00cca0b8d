/* container.c - the server's policy and the container the runtime makes.
 *
 * policy_load reads what an admin allows; container_create turns a checked
 * configuration into the runtime's workspace spec: Berth's mounts by role
 * (the checkout, the run dir, the read-only agent and IDE), the agent as
 * entrypoint, the environment and labels, the options the configuration
 * asked for. Named volumes are the workspace's own.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <sodium.h>

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
    strv_push(&pol->forbidden, data ? data : m->data_dir);
    rt_host_paths(m->rt, &pol->forbidden);
    strv_pushl(&pol->forbidden, "/proc", "/sys", NULL);
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
        int r = rt_volume_create(x->m->rt, name, labels, &e);
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
    _cleanup_strv_ struct strv names = STRV_INIT;
    if (rt_volume_list(x->m->rt, label, &names, NULL) < 0)
        return;
    for (size_t i = 0; i < names.n; i++) {
        _cleanup_berr_ struct berr *e = NULL;
        if (rt_volume_remove(x->m->rt, names.v[i], &e) < 0)
            jlog(x, "warning: %s", berr_msg(e));
    }
}

int container_create(struct job_ctx *x, const struct dc_config *cfg,
                     const struct dc_run_options *opts, json_t *image, char **ret_id,
                     struct berr **reterr)
{
    _cleanup_free_ char *files = clone_path(x);
    _cleanup_free_ char *run = ws_run_dir(x->m, x->rec.id);
    _cleanup_free_ char *dirname_ = repo_dir_name(x->rec.repo);
    _cleanup_free_ char *files_target = xasprintf("/workspaces/%s", dirname_);
    struct rt_role_mount roles[5] = {
        {RT_ROLE_FILES, files, files_target},
        {RT_ROLE_RUN, run, "/.berth"},
        {RT_ROLE_AGENT, x->m->agent_dir, "/.berth-agent"},
    };
    size_t n_roles = 3;
    /* VS Code in the browser, when the set-up installed it */
    _cleanup_free_ char *ide_bin = xasprintf("%s/bin/code-server", x->m->ide_dir);
    bool ide = !x->m->rt->no_ide && access(ide_bin, X_OK) == 0;
    if (ide)
        roles[n_roles++] = (struct rt_role_mount){RT_ROLE_IDE, x->m->ide_dir, "/.berth-ide"};
    if (rt_is_remote(x->m->rt))
        runtime_set(x, "ide", json_boolean(ide));
    _cleanup_free_ char *vsix = xasprintf("%s/vsix", x->m->data_dir);
    if (access(vsix, R_OK | X_OK) == 0)
        roles[n_roles++] = (struct rt_role_mount){RT_ROLE_VSIX, vsix, "/.berth-vsix"};
    _cleanup_strv_ struct strv cmd = STRV_INIT;
    if (!cfg->override_command) {
        json_t *ic = json_object_get(image, "Config");
        json_t *ep = json_object_get(ic, "Entrypoint"), *c = json_object_get(ic, "Cmd");
        strv_push(&cmd, "--");
        size_t i;
        json_t *v;
        json_array_foreach (ep, i, v)
            if (json_is_string(v))
                strv_push(&cmd, json_string_value(v));
        json_array_foreach (c, i, v)
            if (json_is_string(v))
                strv_push(&cmd, json_string_value(v));
        if (cmd.n == 1)
            strv_release(&cmd);
    }
    _cleanup_strv_ struct strv env = STRV_INIT;
    for (size_t i = 0; i < cfg->container_env.n; i++)
        strv_push(&env, cfg->container_env.v[i]);
    /* git inside asks berthd for the owner's credentials, on demand (the
     * configuration lives in the environment, never in a file) */
    if (!strv_getenv(&cfg->container_env, "GIT_CONFIG_COUNT"))
        strv_pushl(&env, "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=credential.helper",
                   "GIT_CONFIG_VALUE_0=/.berth-agent/berth-agent git-credential", NULL);
    for (size_t i = 0; i < opts->env.n; i++)
        strv_push(&env, opts->env.v[i]);
    json_t *labels = json_object();
    for (size_t i = 0; i < opts->labels.n; i++) {
        const char *eq = strchr(opts->labels.v[i], '=');
        _cleanup_free_ char *k = eq ? xstrndup(opts->labels.v[i], (size_t)(eq - opts->labels.v[i]))
                                    : xstrdup(opts->labels.v[i]);
        json_object_set_new(labels, k, json_string(eq ? eq + 1 : ""));
    }
    /* Berth's own labels last: a config cannot overwrite them */
    json_object_set_new(labels, WS_LABEL_MANAGED, json_string("1"));
    json_object_set_new(labels, WS_LABEL_ID, json_string(x->rec.id));
    json_object_set_new(labels, "berth.name", json_string(x->rec.name));
    /* a named volume is the workspace's own (volume_name) */
    struct rt_mount *mounts = xcalloc(opts->n_mounts + 1, sizeof(*mounts));
    _cleanup_strv_ struct strv names = STRV_INIT;
    for (size_t i = 0; i < opts->n_mounts; i++) {
        const struct dc_mount *mt = &opts->mounts[i];
        const char *source = mt->source;
        if (mt->type == DC_MOUNT_VOLUME && mt->source) {
            _cleanup_free_ char *vn = volume_name(x, mt->source);
            strv_push(&names, vn);
            source = names.v[names.n - 1];
        }
        mounts[i] = (struct rt_mount){.type = mt->type == DC_MOUNT_TMPFS  ? RT_MOUNT_TMPFS
                                              : mt->type == DC_MOUNT_BIND ? RT_MOUNT_BIND
                                                                          : RT_MOUNT_VOLUME,
                                      .source = source,
                                      .target = mt->target,
                                      .readonly = mt->readonly};
    }
    _cleanup_free_ char *name = xasprintf("berth-%s", x->rec.id);
    struct rt_ws_spec spec = {
        .name = name,
        .image = x->rec.image,
        .entrypoint = "/.berth-agent/berth-agent",
        .cmd = &cmd,
        .env = &env,
        .user = "root",
        .working_dir = x->rec.workspace_folder,
        .hostname = opts->hostname ? opts->hostname : x->rec.name,
        .stop_timeout_s = WS_STOP_TIMEOUT_S,
        .labels = labels,
        .roles = roles,
        .n_roles = n_roles,
        .mounts = mounts,
        .n_mounts = opts->n_mounts,
        .privileged = opts->privileged,
        .cap_add = &opts->cap_add,
        .cap_drop = &opts->cap_drop,
        .security_opt = &opts->security_opt,
        .devices = &opts->devices,
        .network = opts->network,
        .shm_size = opts->shm_size,
        .nano_cpus = opts->nano_cpus,
        .memory = opts->memory,
        .need_cpus = cfg->host_cpus * 1000000000LL,
        .need_memory = cfg->host_memory,
        .need_storage = cfg->host_storage,
    };
    /* on a cluster a workspace stays on its node: its files are there */
    _cleanup_(json_decrefp) json_t *rt = runtime_get(&x->rec);
    spec.node = json_string_value(json_object_get(rt, "node"));
    spec.commit_later = x->prebuild;
    unsigned char key[32];
    if (rt_is_remote(x->m->rt)) {
        int kr = agent_key_make(x->m, x->rec.id, key, reterr);
        if (kr < 0) {
            json_decref(labels);
            free(mounts);
            return kr;
        }
        spec.agent_key = key;
    }
    int r = rt_ws_create(x->m->rt, &spec, ret_id, reterr);
    sodium_memzero(key, sizeof(key));
    json_decref(labels);
    free(mounts);
    return r;
}

void remove_container(struct job_ctx *x)
{
    _cleanup_free_ char *name = xasprintf("berth-%s", x->rec.id);
    const char *ids[] = {x->rec.container_id, name};
    for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
        if (!ids[i])
            continue;
        _cleanup_berr_ struct berr *e = NULL;
        int r = rt_ws_remove(x->m->rt, ids[i], &e);
        if (r < 0 && r != -ENOENT)
            jlog(x, "warning: %s", berr_msg(e));
    }
    set_field(&x->rec.container_id, NULL);
}
