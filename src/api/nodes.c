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
#include <uv.h>

#include "api/api-internal.h"
#include "engine/swarm.h"
#include "util/xalloc.h"

struct nodes_job {
    uv_work_t work;
    struct engine *engine;
    struct http_conn *conn; /* NULL once the client left */
    char *node;             /* PATCH: the node; NULL for the list */
    json_t *labels;         /* PATCH */
    char *availability;     /* PATCH, may be NULL */
    int r;
    struct berr *e;
    json_t *answer;
};

static void nodes_job_run(uv_work_t *w)
{
    struct nodes_job *j = (struct nodes_job *)w;
    if (j->node) {
        j->r = swarm_node_update(j->engine, j->node, j->labels, j->availability, &j->e);
        if (j->r < 0)
            return;
    }
    json_t *list = NULL;
    j->r = swarm_nodes(j->engine, &list, &j->e);
    if (j->r < 0)
        return;
    if (!j->node) {
        j->answer = json_pack("{s:b, s:o}", "cluster", 1, "nodes", list);
        return;
    }
    size_t i;
    json_t *n;
    json_array_foreach (list, i, n) {
        const char *id = json_string_value(json_object_get(n, "id"));
        const char *name = json_string_value(json_object_get(n, "name"));
        if ((id && strcmp(id, j->node) == 0) || (name && strcmp(name, j->node) == 0)) {
            j->answer = json_incref(n);
            break;
        }
    }
    json_decref(list);
    if (!j->answer)
        j->r = berr_make(&j->e, ENOENT, "node '%s' is gone", j->node);
}

static void nodes_job_conn_closed(struct http_conn *c, void *data)
{
    (void)c;
    ((struct nodes_job *)data)->conn = NULL;
}

static void nodes_job_done(uv_work_t *w, int status)
{
    (void)status;
    struct nodes_job *j = (struct nodes_job *)w;
    if (j->conn) {
        http_conn_on_close(j->conn, NULL, NULL);
        if (j->r < 0)
            api_respond_berr(j->conn, j->r, j->e);
        else
            http_respond_json(j->conn, 200, TAKE_PTR(j->answer));
    }
    json_decref(j->answer);
    json_decref(j->labels);
    berr_free(j->e);
    free(j->node);
    free(j->availability);
    free(j);
}

static void nodes_job_start(struct api *a, struct http_conn *c, struct nodes_job *j)
{
    j->engine = a->swarm;
    j->conn = c;
    http_conn_on_close(c, nodes_job_conn_closed, j);
    uv_queue_work(uv_default_loop(), &j->work, nodes_job_run, nodes_job_done);
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
    struct nodes_job *j = xcalloc(1, sizeof(*j));
    j->node = xstrdup(node);
    j->labels = labels ? json_incref(labels) : json_object();
    j->availability = avail ? xstrdup(json_string_value(avail)) : NULL;
    _cleanup_free_ char *detail = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    api_audit(a, user, req, "admin.node.update", node, detail);
    nodes_job_start(a, c, j);
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
        nodes_job_start(a, c, xcalloc(1, sizeof(struct nodes_job)));
    return true;
}
