/* swarm.c - the cluster's nodes, on the Engine API's /info, /nodes and /tasks.
 *
 * A node's update is read-modify-write: POST /nodes/{id}/update takes the whole
 * NodeSpec and the version it was read at, so a change made in between by
 * someone else (docker node update) makes the engine refuse rather than be
 * lost; it is tried again once on a fresh read.
 */
#include "engine/swarm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/size.h"
#include "util/xalloc.h"

int swarm_check_manager(struct engine *e, struct berr **reterr)
{
    _cleanup_(json_decrefp) json_t *info = NULL;
    int r = engine_call(e, "GET", "/info", NULL, &info, "read the engine's info", reterr);
    if (r < 0)
        return r;
    json_t *sw = json_object_get(info, "Swarm");
    const char *state = json_string_value(json_object_get(sw, "LocalNodeState"));
    if (!state || strcmp(state, "active") != 0)
        return berr_make(reterr, ENOTSUP,
                         "the engine at %s is not in a Swarm (its state: %s): make one with "
                         "'docker swarm init', or use --engine unix://%s for one host",
                         engine_socket(e), state && *state ? state : "none", engine_socket(e));
    if (!json_is_true(json_object_get(sw, "ControlAvailable")))
        return berr_make(reterr, ENOTSUP,
                         "the engine at %s is a Swarm worker: berthd needs a manager's socket "
                         "('docker node ls' works there)",
                         engine_socket(e));
    return 0;
}

/* How many tasks run on each node: {node id: count}. */
static json_t *running_tasks(struct engine *e)
{
    json_t *counts = json_object();
    json_t *tasks = NULL;
    _cleanup_free_ char *path = engine_filter_path("/tasks", "desired-state", "running");
    if (engine_call(e, "GET", path, NULL, &tasks, "list the tasks", NULL) < 0)
        return counts;
    size_t i;
    json_t *t;
    json_array_foreach (tasks, i, t) {
        const char *node = json_string_value(json_object_get(t, "NodeID"));
        const char *st = json_string_value(json_object_get(json_object_get(t, "Status"), "State"));
        if (!node || !st || strcmp(st, "running") != 0)
            continue;
        json_int_t n = json_integer_value(json_object_get(counts, node));
        json_object_set_new(counts, node, json_integer(n + 1));
    }
    json_decref(tasks);
    return counts;
}

static int node_cmp(const void *pa, const void *pb)
{
    const json_t *a = *(json_t *const *)pa, *b = *(json_t *const *)pb;
    const char *na = json_string_value(json_object_get(a, "name"));
    const char *nb = json_string_value(json_object_get(b, "name"));
    return strcmp(na ? na : "", nb ? nb : "");
}

static json_t *node_json(const json_t *n, const json_t *tasks)
{
    const json_t *spec = json_object_get(n, "Spec"), *desc = json_object_get(n, "Description"),
                 *status = json_object_get(n, "Status"), *mgr = json_object_get(n, "ManagerStatus"),
                 *res = json_object_get(desc, "Resources");
    const char *id = json_string_value(json_object_get(n, "ID"));
    const char *name = json_string_value(json_object_get(desc, "Hostname"));
    json_int_t nano_cpus = json_integer_value(json_object_get(res, "NanoCPUs"));
    json_t *labels = json_object_get(spec, "Labels");
    const char *storage = json_string_value(json_object_get(labels, SWARM_LABEL_STORAGE));
    int64_t storage_bytes = storage ? size_parse(storage) : -1;
    return json_pack(
        "{s:s, s:s, s:s?, s:s?, s:s?, s:b, s:s?, s:f, s:I, s:o, s:O, s:s?, s:I}", "id",
        id ? id : "", "name", name ? name : (id ? id : ""), "state",
        json_string_value(json_object_get(status, "State")), "availability",
        json_string_value(json_object_get(spec, "Availability")), "role",
        json_string_value(json_object_get(spec, "Role")), "leader",
        json_is_true(json_object_get(mgr, "Leader")), "address",
        json_string_value(json_object_get(status, "Addr")), "cpus", (double)nano_cpus / 1e9,
        "memory_bytes", json_integer_value(json_object_get(res, "MemoryBytes")), "storage_bytes",
        storage_bytes >= 0 ? json_integer(storage_bytes) : json_null(), "labels",
        labels ? labels : json_object(), "engine_version",
        json_string_value(json_object_get(json_object_get(desc, "Engine"), "EngineVersion")),
        "tasks", json_integer_value(json_object_get(tasks, id ? id : "")));
}

int swarm_nodes(struct engine *e, json_t **ret, struct berr **reterr)
{
    _cleanup_(json_decrefp) json_t *nodes = NULL;
    int r = engine_call(e, "GET", "/nodes", NULL, &nodes, "list the Swarm's nodes", reterr);
    if (r < 0)
        return r;
    _cleanup_(json_decrefp) json_t *tasks = running_tasks(e);
    size_t count = json_array_size(nodes);
    json_t **v = xcalloc(count ? count : 1, sizeof(*v));
    for (size_t i = 0; i < count; i++)
        v[i] = node_json(json_array_get(nodes, i), tasks);
    qsort(v, count, sizeof(*v), node_cmp);
    json_t *out = json_array();
    for (size_t i = 0; i < count; i++)
        json_array_append_new(out, v[i]);
    free(v);
    *ret = out;
    return 0;
}

static bool availability_valid(const char *a)
{
    return strcmp(a, "active") == 0 || strcmp(a, "drain") == 0 || strcmp(a, "pause") == 0;
}

static int node_update_once(struct engine *e, const char *node, json_t *labels,
                            const char *availability, struct berr **reterr)
{
    _cleanup_free_ char *path = xasprintf("/nodes/%s", node);
    _cleanup_(json_decrefp) json_t *n = NULL;
    struct berr *ge = NULL;
    int r = engine_call(e, "GET", path, NULL, &n, "read the node", &ge);
    if (r == -ENOENT) {
        berr_free(ge);
        return berr_make(reterr, ENOENT,
                         "no node '%s' in the Swarm ('berth admin nodes' lists them)", node);
    }
    if (r < 0) {
        if (reterr)
            *reterr = ge;
        else
            berr_free(ge);
        return r;
    }
    json_t *spec = json_deep_copy(json_object_get(n, "Spec"));
    if (!json_is_object(json_object_get(spec, "Labels")))
        json_object_set_new(spec, "Labels", json_object());
    json_t *have = json_object_get(spec, "Labels");
    const char *key;
    json_t *value;
    json_object_foreach (labels, key, value) {
        if (json_is_null(value))
            json_object_del(have, key);
        else
            json_object_set(have, key, value);
    }
    if (availability)
        json_object_set_new(spec, "Availability", json_string(availability));
    json_int_t version =
        json_integer_value(json_object_get(json_object_get(n, "Version"), "Index"));
    const char *id = json_string_value(json_object_get(n, "ID"));
    _cleanup_free_ char *upath =
        xasprintf("/nodes/%s/update?version=%lld", id ? id : node, (long long)version);
    r = engine_call(e, "POST", upath, spec, NULL, "update the node", reterr);
    json_decref(spec);
    return r;
}

int swarm_node_update(struct engine *e, const char *node, json_t *labels, const char *availability,
                      struct berr **reterr)
{
    if (!*node || strchr(node, '/') || strchr(node, '?') || strchr(node, '%'))
        return berr_make(reterr, EINVAL, "'%s' is not a node's id or name", node);
    if (availability && !availability_valid(availability))
        return berr_make(reterr, EINVAL,
                         "availability '%s': use active, pause (no new workspaces) or drain (no "
                         "new workspaces, and its running ones stop until it is active: they "
                         "are pinned to it)",
                         availability);
    const char *key;
    json_t *value;
    json_object_foreach (labels, key, value) {
        if (!*key || strlen(key) > 256 || strchr(key, '='))
            return berr_make(reterr, EINVAL, "label key '%s': give a name without '='", key);
        if (!json_is_null(value) && !json_is_string(value))
            return berr_make(reterr, EINVAL, "label '%s': its value must be a string or null", key);
        if (strcmp(key, SWARM_LABEL_STORAGE) == 0 && json_is_string(value) &&
            size_parse(json_string_value(value)) < 0)
            return berr_make(reterr, EINVAL,
                             "label " SWARM_LABEL_STORAGE
                             " '%s': give the disk the node has for workspaces, as a size such "
                             "as 500gb",
                             json_string_value(value));
    }
    struct berr *first = NULL;
    int r = node_update_once(e, node, labels, availability, &first);
    if (r == -EINVAL || r == -EIO) {
        /* the version moved under us (the engine says "update out of sequence"): once more */
        r = node_update_once(e, node, labels, availability, reterr);
        berr_free(first);
        return r;
    }
    if (r < 0 && reterr)
        *reterr = first;
    else
        berr_free(first);
    return r;
}
