/* runtime-docker.c - the workspace runtime of one host's Docker-API engine.
 *
 * Each op is one engine_* call, or two; the only work of its own is the
 * create body: a workspace spec becomes a ContainerConfig with Berth's roles
 * as host Binds, the configuration's options as HostConfig entries, and the
 * limits every workspace gets.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/runtime.h"
#include "util/xalloc.h"

void rt_ws_info_release(struct rt_ws_info *i)
{
    free(i->status);
    i->status = NULL;
    free(i->node);
    i->node = NULL;
}

void rt_ws_entries_free(struct rt_ws_entry *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(list[i].id);
        free(list[i].ws_id);
        strv_release(&list[i].mount_sources);
    }
    free(list);
}

json_t *rt_strv_json(const struct strv *v)
{
    json_t *a = json_array();
    for (size_t i = 0; v && i < v->n; i++)
        json_array_append_new(a, json_string(v->v[i]));
    return a;
}

/* Berth's roles as binds: the checkout and the run dir writable, the rest read-only. */
static json_t *role_binds(const struct rt_ws_spec *s)
{
    json_t *binds = json_array();
    for (size_t i = 0; i < s->n_roles; i++) {
        const struct rt_role_mount *rm = &s->roles[i];
        const char *mode = rm->role == RT_ROLE_FILES ? "" : rm->role == RT_ROLE_RUN ? ":rw" : ":ro";
        json_array_append_new(binds, json_sprintf("%s:%s%s", rm->source, rm->target, mode));
    }
    return binds;
}

/* HostConfig entries for the options the configuration asked for. */
static void host_options(const struct rt_ws_spec *s, json_t *host)
{
    if (s->privileged)
        json_object_set_new(host, "Privileged", json_true());
    if (s->cap_add && s->cap_add->n)
        json_object_set_new(host, "CapAdd", rt_strv_json(s->cap_add));
    if (s->cap_drop && s->cap_drop->n)
        json_object_set_new(host, "CapDrop", rt_strv_json(s->cap_drop));
    if (s->security_opt && s->security_opt->n)
        json_object_set_new(host, "SecurityOpt", rt_strv_json(s->security_opt));
    if (s->network)
        json_object_set_new(host, "NetworkMode", json_string(s->network));
    if (s->shm_size)
        json_object_set_new(host, "ShmSize", json_integer(s->shm_size));
    if (s->nano_cpus)
        json_object_set_new(host, "NanoCpus", json_integer(s->nano_cpus));
    if (s->memory)
        json_object_set_new(host, "Memory", json_integer(s->memory));
    json_t *devices = json_array();
    for (size_t i = 0; s->devices && i < s->devices->n; i++)
        json_array_append_new(devices, json_pack("{s:s, s:s, s:s}", "PathOnHost", s->devices->v[i],
                                                 "PathInContainer", s->devices->v[i],
                                                 "CgroupPermissions", "rwm"));
    json_object_set_new(host, "Devices", devices);
    json_t *mounts = json_array();
    json_t *tmpfs = json_object();
    for (size_t i = 0; i < s->n_mounts; i++) {
        const struct rt_mount *mt = &s->mounts[i];
        if (mt->type == RT_MOUNT_TMPFS) {
            json_object_set_new(tmpfs, mt->target, json_string("rw,nosuid,nodev"));
            continue;
        }
        json_t *jm =
            json_pack("{s:s, s:s, s:b}", "Type", mt->type == RT_MOUNT_BIND ? "bind" : "volume",
                      "Target", mt->target, "ReadOnly", mt->readonly);
        if (mt->source)
            json_object_set_new(jm, "Source", json_string(mt->source));
        json_array_append_new(mounts, jm);
    }
    json_object_set_new(host, "Mounts", mounts);
    json_object_set_new(host, "Tmpfs", tmpfs);
}

json_t *runtime_docker_body(const struct rt_ws_spec *s)
{
    /* berth-agent is the container's init (it reaps and forwards signals), so
     * "init": true needs no second one */
    json_t *host = json_pack("{s:o, s:b, s:[{s:s, s:i, s:i}, {s:s, s:i, s:i}]}", "Binds",
                             role_binds(s), "Init", 0, "Ulimits", "Name", "nofile", "Soft",
                             RT_ULIMIT_NOFILE, "Hard", RT_ULIMIT_NOFILE, "Name", "nproc", "Soft",
                             RT_ULIMIT_NPROC, "Hard", RT_ULIMIT_NPROC);
    host_options(s, host);
    return json_pack("{s:s, s:[s], s:o, s:o, s:s, s:s, s:s, s:i, s:O, s:o}", "Image", s->image,
                     "Entrypoint", s->entrypoint, "Cmd", rt_strv_json(s->cmd), "Env",
                     rt_strv_json(s->env), "User", s->user, "WorkingDir", s->working_dir,
                     "Hostname", s->hostname, "StopTimeout", s->stop_timeout_s, "Labels", s->labels,
                     "HostConfig", host);
}

static int docker_ws_create(void *data, const struct rt_ws_spec *spec, char **ret_id,
                            struct berr **reterr)
{
    json_t *body = runtime_docker_body(spec);
    int r = engine_container_create(data, spec->name, body, ret_id, reterr);
    json_decref(body);
    return r;
}

static int docker_ws_start(void *data, const char *id, struct berr **reterr)
{
    return engine_container_start(data, id, reterr);
}

static int docker_ws_stop(void *data, const char *id, int timeout_s, struct berr **reterr)
{
    return engine_container_stop(data, id, timeout_s, reterr);
}

static int docker_ws_remove(void *data, const char *id, struct berr **reterr)
{
    return engine_container_remove(data, id, true, reterr);
}

static int docker_ws_inspect(void *data, const char *id, struct rt_ws_info *ret,
                             struct berr **reterr)
{
    json_t *info = NULL;
    int r = engine_container_inspect(data, id, &info, reterr);
    if (r < 0)
        return r;
    const char *status = NULL;
    int running = 0;
    (void)json_unpack(info, "{s:{s:s}}", "State", "Status", &status);
    (void)json_unpack(info, "{s:{s:b}}", "State", "Running", &running);
    *ret = (struct rt_ws_info){.status = status ? xstrdup(status) : NULL, .running = running};
    json_decref(info);
    return 0;
}

static int docker_ws_list(void *data, const char *label, struct rt_ws_entry **ret, size_t *ret_n,
                          struct berr **reterr)
{
    json_t *containers = NULL;
    int r = engine_container_list(data, label, &containers, reterr);
    if (r < 0)
        return r;
    size_t n = 0;
    struct rt_ws_entry *list = xcalloc(json_array_size(containers) + 1, sizeof(*list));
    size_t ci;
    json_t *c;
    json_array_foreach (containers, ci, c) {
        const char *cid = json_string_value(json_object_get(c, "Id"));
        if (!cid)
            continue;
        const char *wid =
            json_string_value(json_object_get(json_object_get(c, "Labels"), RT_LABEL_ID));
        struct rt_ws_entry *en = &list[n++];
        en->id = xstrdup(cid);
        en->ws_id = wid ? xstrdup(wid) : NULL;
        en->mount_sources = (struct strv)STRV_INIT;
        size_t mi;
        json_t *mt;
        json_array_foreach (json_object_get(c, "Mounts"), mi, mt) {
            const char *src = json_string_value(json_object_get(mt, "Source"));
            if (src)
                strv_push(&en->mount_sources, src);
        }
    }
    json_decref(containers);
    *ret = list;
    *ret_n = n;
    return 0;
}

static int docker_ws_commit(void *data, const char *id, const char *repo, const char *tag,
                            struct berr **reterr)
{
    return engine_container_commit(data, id, repo, tag, reterr);
}

static int docker_volume_create(void *data, const char *name, json_t *labels, struct berr **reterr)
{
    return engine_volume_create(data, name, labels, reterr);
}

static int docker_volume_remove(void *data, const char *name, struct berr **reterr)
{
    return engine_volume_remove(data, name, reterr);
}

static int docker_volume_list(void *data, const char *label, struct strv *ret, struct berr **reterr)
{
    json_t *list = NULL;
    int r = engine_volume_list(data, label, &list, reterr);
    if (r < 0)
        return r;
    size_t i;
    json_t *v;
    json_array_foreach (list, i, v) {
        const char *name = json_string_value(json_object_get(v, "Name"));
        if (name)
            strv_push(ret, name);
    }
    json_decref(list);
    return 0;
}

static int docker_image_inspect(void *data, const char *image, json_t **ret, struct berr **reterr)
{
    return engine_image_inspect(data, image, ret, reterr);
}

static int docker_image_pull(void *data, const char *image, engine_line_cb cb, void *cb_data,
                             struct berr **reterr)
{
    return engine_image_pull(data, image, cb, cb_data, reterr);
}

static int docker_image_build(void *data, const char *context_tar, const struct engine_build *b,
                              engine_line_cb cb, void *cb_data, struct berr **reterr)
{
    return engine_image_build(data, context_tar, b, cb, cb_data, reterr);
}

static int docker_image_remove(void *data, const char *image, struct berr **reterr)
{
    return engine_image_remove(data, image, reterr);
}

/* The engine's socket's directory, and where the usual engines keep their
 * sockets and storage. */
char *rt_socket_dir(struct engine *e)
{
    char *sock = xstrdup(engine_socket(e));
    char *slash = strrchr(sock, '/');
    if (slash && slash != sock)
        *slash = 0;
    return sock;
}

static void docker_host_paths(void *data, struct strv *ret)
{
    _cleanup_free_ char *sock = rt_socket_dir(data);
    strv_pushl(ret, sock, "/run/podman", "/run/docker.sock", "/var/run/docker.sock",
               "/var/lib/containers", "/run/containers", NULL);
}

static void docker_free(void *data)
{
    (void)data; /* the engine is borrowed */
}

static const struct runtime_ops docker_ops = {
    .ws_create = docker_ws_create,
    .ws_start = docker_ws_start,
    .ws_stop = docker_ws_stop,
    .ws_remove = docker_ws_remove,
    .ws_inspect = docker_ws_inspect,
    .ws_list = docker_ws_list,
    .ws_commit = docker_ws_commit,
    .volume_create = docker_volume_create,
    .volume_remove = docker_volume_remove,
    .volume_list = docker_volume_list,
    .image_inspect = docker_image_inspect,
    .image_pull = docker_image_pull,
    .image_build = docker_image_build,
    .image_remove = docker_image_remove,
    .host_paths = docker_host_paths,
    .free = docker_free,
};

struct runtime *runtime_docker_new(struct engine *e)
{
    struct runtime *rt = xmalloc(sizeof(*rt));
    *rt = (struct runtime){.ops = &docker_ops, .data = e};
    return rt;
}

struct runtime *runtime_free(struct runtime *rt)
{
    if (!rt)
        return NULL;
    rt->ops->free(rt->data);
    free(rt);
    return NULL;
}
