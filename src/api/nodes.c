/* nodes.c - the cluster's nodes for admins: GET /admin/nodes, PATCH /admin/nodes/{node}.
 *
 * On one engine there are no nodes to show ({"cluster": false, "nodes": []}); on a
 * Swarm the list is the manager's, with each node's state, availability, resources,
 * labels and running tasks (swarm.h). A PATCH sets or removes labels ({"labels":
 * {"key": "value", "gone": null}}) and the availability ("drain": no new workspaces).
 * The engine is asked on a worker thread, never on the loop.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api-internal.h"
#include "engine/swarm.h"
#include "util/xalloc.h"

struct nodes_query {
    struct engine *engine;
    char *node;         /* PATCH: the node; NULL for the list */
    json_t *labels;     /* PATCH */
    char *availability; /* PATCH, may be NULL */
};

static int nodes_query_run(void *data, json_t **ret_answer, struct berr **e)
{
    struct nodes_query *q = data;
    if (q->node) {
        int r = swarm_node_update(q->engine, q->node, q->labels, q->availability, e);
        if (r < 0)
            return r;
    }
    json_t *list = NULL;
    int r = swarm_nodes(q->engine, &list, e);
    if (r < 0)
        return r;
    if (!q->node) {
        *ret_answer = json_pack("{s:b, s:o}", "cluster", 1, "nodes", list);
        return 0;
    }
    size_t i;
    json_t *n;
    json_array_foreach (list, i, n) {
        const char *id = json_string_value(json_object_get(n, "id"));
        const char *name = json_string_value(json_object_get(n, "name"));
        if ((id && strcmp(id, q->node) == 0) || (name && strcmp(name, q->node) == 0)) {
            *ret_answer = json_incref(n);
            break;
        }
    }
    json_decref(list);
    return *ret_answer ? 0 : berr_make(e, ENOENT, "node '%s' is gone", q->node);
}

static void nodes_query_free(void *data)
{
    struct nodes_query *q = data;
    json_decref(q->labels);
    free(q->node);
    free(q->availability);
    free(q);
}

static void nodes_query_start(struct api *a, struct http_conn *c, struct nodes_query *q)
{
    q->engine = a->swarm;
    api_job_start(c, nodes_query_run, q, nodes_query_free);
}

static void node_patch(struct api *a, struct http_conn *c, struct http_request *req,
                       const struct auth_user *user, const char *node)
{
    _cleanup_(json_decrefp) json_t *body = api_parse_body(c, req);
    if (!body)
        return;
    json_t *labels = json_object_get(body, "labels");
    json_t *avail = json_object_get(body, "availability");
    if ((labels && !json_is_object(labels)) || (avail && !json_is_string(avail))) {
        http_respond_error(c, 400,
                           "give {\"labels\": {\"KEY\": \"VALUE\" or null}, \"availability\": "
                           "\"active\"|\"drain\"|\"pause\"}");
        return;
    }
    struct nodes_query *q = xcalloc(1, sizeof(*q));
    q->node = xstrdup(node);
    q->labels = labels ? json_incref(labels) : json_object();
    q->availability = avail ? xstrdup(json_string_value(avail)) : NULL;
    _cleanup_free_ char *detail = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    api_audit(a, user, req, "admin.node.update", node, detail);
    nodes_query_start(a, c, q);
}

bool api_nodes_route(struct api *a, struct http_conn *c, struct http_request *req,
                     const struct auth_user *user, const char *path)
{
    if (strncmp(path, "/admin/nodes", 12) != 0 || (path[12] && path[12] != '/'))
        return false;
    if (!user->admin) {
        http_respond_error(c, 403, "only admins can see and change the cluster's nodes");
        return true;
    }
    const char *node = path[12] ? path + 13 : NULL;
    bool get = strcmp(req->method, "GET") == 0;
    if (!node && !get) {
        http_respond_error(c, 405, "use GET on /admin/nodes");
        return true;
    }
    if (node && (!*node || strcmp(req->method, "PATCH") != 0)) {
        http_respond_error(c, 405, "use PATCH on /admin/nodes/{node}");
        return true;
    }
    if (!a->swarm) {
        if (node)
            http_respond_error(c, 409,
                               "this berthd runs workspaces on one engine: there are no nodes "
                               "(berthd --engine swarm+unix://SOCKET takes a Swarm manager)");
        else
            http_respond_json(c, 200, json_pack("{s:b, s:[]}", "cluster", 0, "nodes"));
        return true;
    }
    if (node)
        node_patch(a, c, req, user, node);
    else
        nodes_query_start(a, c, xcalloc(1, sizeof(struct nodes_query)));
    return true;
}
