/* prebuilds.c - routes for prebuilds: start one, list, show, follow the log,
 * remove.
 *
 * A prebuild is its owner's: others (admins aside) do not see it. Starting
 * one asks what a create asks (the owner may clone the repository).
 */
#include "api/api-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/xalloc.h"

static bool may_see(const struct auth_user *user, const struct ws_record *pb)
{
    return user->admin || (pb->owner && strcmp(pb->owner, user->name) == 0);
}

static void start_prebuild(struct api *a, struct http_conn *c, struct http_request *req,
                           const struct auth_user *user)
{
    json_t *body = api_parse_body(c, req);
    if (!body)
        return;
    struct ws_prebuild_request pr = {0};
    json_error_t jerr;
    if (json_unpack_ex(body, &jerr, 0, "{s:s, s?s, s?s}", "repo", &pr.repo, "branch", &pr.branch,
                       "devcontainer_path", &pr.devcontainer_path) < 0) {
        http_respond_error(c, 400, "invalid request: %s", jerr.text);
        json_decref(body);
        return;
    }
    pr.owner = user->name;
    pr.owner_is_admin = user->admin;
    struct ws_record rec;
    _cleanup_berr_ struct berr *e = NULL;
    int r = ws_prebuild(a->m, &pr, &rec, &e);
    json_decref(body);
    if (r < 0) {
        api_respond_berr(c, r, e);
        return;
    }
    api_audit(a, user, req, "prebuild.start", rec.id, rec.repo);
    log_info("prebuild '%s': of '%s'%s%s", rec.id, rec.repo, rec.branch ? " branch " : "",
             rec.branch ? rec.branch : "");
    http_respond_json(c, 201, ws_prebuild_json(a->m, &rec));
    ws_record_release(&rec);
}

static void list_prebuilds(struct api *a, struct http_conn *c, struct http_request *req,
                           const struct auth_user *user)
{
    _cleanup_free_ char *repo = http_request_query(req, "repo");
    struct ws_record *list = NULL;
    size_t n = 0;
    _cleanup_berr_ struct berr *e = NULL;
    int r = store_pb_list(ws_manager_store(a->m), &list, &n, &e);
    if (r < 0) {
        api_respond_berr(c, r, e);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if (may_see(user, &list[i]) && (!repo || strcmp(repo, list[i].repo) == 0))
            json_array_append_new(arr, ws_prebuild_json(a->m, &list[i]));
        ws_record_release(&list[i]);
    }
    free(list);
    http_respond_json(c, 200, json_pack("{s:o}", "prebuilds", arr));
}

bool api_prebuilds_route(struct api *a, struct http_conn *c, struct http_request *req,
                         const struct auth_user *user, const char *path)
{
    const char *m = req->method;
    if (strcmp(path, "/prebuilds") == 0) {
        if (strcmp(m, "POST") == 0)
            start_prebuild(a, c, req, user);
        else if (strcmp(m, "GET") == 0)
            list_prebuilds(a, c, req, user);
        else
            http_respond_error(c, 405, "use GET or POST on /prebuilds");
        return true;
    }
    if (strncmp(path, "/prebuilds/", 11) != 0)
        return false;
    const char *rest = path + 11;
    const char *slash = strchr(rest, '/');
    _cleanup_free_ char *id = slash ? xstrndup(rest, (size_t)(slash - rest)) : xstrdup(rest);
    const char *action = slash ? slash + 1 : "";
    struct ws_record pb;
    _cleanup_berr_ struct berr *e = NULL;
    int r = store_pb_get(ws_manager_store(a->m), id, &pb, &e);
    if (r == 0 && !may_see(user, &pb)) {
        ws_record_release(&pb);
        r = -ENOENT;
    }
    if (r < 0) {
        if (r == -ENOENT)
            http_respond_error(c, 404, "no prebuild '%s'", id);
        else
            api_respond_berr(c, r, e);
        return true;
    }
    if (!*action && strcmp(m, "GET") == 0) {
        http_respond_json(c, 200, ws_prebuild_json(a->m, &pb));
    } else if (!*action && strcmp(m, "DELETE") == 0) {
        r = ws_prebuild_remove(a->m, pb.id, &e);
        if (r < 0) {
            api_respond_berr(c, r, e);
        } else {
            api_audit(a, user, req, "prebuild.remove", pb.id, pb.repo);
            http_respond(c, 204, NULL, NULL, 0);
        }
    } else if (strcmp(action, "logs") == 0 && strcmp(m, "GET") == 0) {
        api_get_logs(a, c, req, pb.id);
    } else {
        http_respond_error(c, 404, "no route for %s %s", m, req->path);
    }
    ws_record_release(&pb);
    return true;
}
