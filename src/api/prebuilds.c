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

#include <sodium.h>

#include "util/log.h"
#include "util/seal.h"
#include "util/xalloc.h"

#define PBC_POLL_MIN_S 10
#define PBC_POLL_MAX_S (24 * 3600)
#define PBC_SECRET_BYTES 24

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

/* ---- configurations ---- */

static json_t *config_json(const struct pb_config *c, const char *secret)
{
    _cleanup_free_ char *created = store_time_iso(c->created_at);
    _cleanup_free_ char *hook = xasprintf("/api/v1/prebuild-hooks/%s", c->id);
    json_t *j = json_pack("{s:s, s:s, s:s, s:o, s:O, s:I, s:I, s:b, s:s, s:s}", "id", c->id,
                          "owner", c->owner, "repo", c->repo, "devcontainer_path",
                          *c->devcontainer_path ? json_string(c->devcontainer_path) : json_null(),
                          "branches", json_object_get(c->settings, "branches"), "poll",
                          json_integer_value(json_object_get(c->settings, "poll")), "keep",
                          json_integer_value(json_object_get(c->settings, "keep")), "shared",
                          json_is_true(json_object_get(c->settings, "shared")), "webhook", hook,
                          "created_at", created);
    if (secret)
        json_object_set_new(j, "secret", json_string(secret));
    return j;
}

static bool may_see_config(const struct auth_user *user, const struct pb_config *c)
{
    return user->admin || strcmp(c->owner, user->name) == 0;
}

static void put_config(struct api *a, struct http_conn *c, struct http_request *req,
                       const struct auth_user *user)
{
    json_t *body = api_parse_body(c, req);
    if (!body)
        return;
    const char *repo = NULL, *path = NULL;
    json_t *branches = NULL;
    json_int_t poll = 0, keep = 0;
    json_error_t jerr;
    if (json_unpack_ex(body, &jerr, 0, "{s:s, s?s, s?o, s?I, s?I}", "repo", &repo,
                       "devcontainer_path", &path, "branches", &branches, "poll", &poll, "keep",
                       &keep) < 0) {
        http_respond_error(c, 400, "invalid request: %s", jerr.text);
        json_decref(body);
        return;
    }
    size_t i;
    json_t *v;
    bool ok = !branches || json_is_array(branches);
    json_array_foreach (branches, i, v)
        ok = ok && json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < 256;
    const char *bad = !ok ? "branches must be an array of branch names or patterns"
                      : poll && (poll < PBC_POLL_MIN_S || poll > PBC_POLL_MAX_S)
                          ? "poll must be 0 (off) or from 10 seconds to a day"
                      : keep < 0 || keep > 100 ? "keep must be from 1 to 100 (0: the server's)"
                                               : NULL;
    if (bad) {
        http_respond_error(c, 400, "%s", bad);
        json_decref(body);
        return;
    }
    /* the owner must be able to prebuild it at all */
    struct ws_create_request check = {
        .repo = repo, .owner = user->name, .owner_is_admin = user->admin};
    _cleanup_berr_ struct berr *e = NULL;
    int r = ws_check_request(a->m, &check, &e);
    if (r < 0) {
        api_respond_berr(c, r, e);
        json_decref(body);
        return;
    }
    char secret[PBC_SECRET_BYTES * 2 + 1];
    unsigned char raw[PBC_SECRET_BYTES];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(secret, sizeof(secret), raw, sizeof(raw));
    char id[16] = "pc";
    randombytes_buf(raw, 5);
    sodium_bin2hex(id + 2, sizeof(id) - 2, raw, 5);
    struct pb_config pc = {
        .id = xstrdup(id),
        .owner = xstrdup(user->name),
        .repo = xstrdup(repo),
        .devcontainer_path = xstrdup(path ? path : ""),
        .settings =
            json_pack("{s:O, s:I, s:I, s:b}", "branches", branches ? branches : json_array(),
                      "poll", poll, "keep", keep, "shared", false),
        .secret = BUF_INIT,
        .created_at = store_now(),
    };
    if (!branches)
        json_decref(json_object_get(pc.settings, "branches")); /* the json_array() above */
    seal(secret, strlen(secret), &pc.secret);
    json_decref(body);
    r = store_pbc_put(ws_manager_store(a->m), &pc, &e);
    if (r < 0) {
        pb_config_release(&pc);
        sodium_memzero(secret, sizeof(secret));
        api_respond_berr(c, r, e);
        return;
    }
    bool made = strcmp(pc.id, id) == 0;
    api_audit(a, user, req, made ? "prebuild_config.create" : "prebuild_config.update", pc.id,
              pc.repo);
    /* the secret is shown once, when the configuration is made */
    http_respond_json(c, made ? 201 : 200, config_json(&pc, made ? secret : NULL));
    sodium_memzero(secret, sizeof(secret));
    pb_config_release(&pc);
}

static void list_configs(struct api *a, struct http_conn *c, const struct auth_user *user)
{
    struct pb_config *list = NULL;
    size_t n = 0;
    _cleanup_berr_ struct berr *e = NULL;
    int r = store_pbc_list(ws_manager_store(a->m), &list, &n, &e);
    if (r < 0) {
        api_respond_berr(c, r, e);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if (may_see_config(user, &list[i]))
            json_array_append_new(arr, config_json(&list[i], NULL));
        pb_config_release(&list[i]);
    }
    free(list);
    http_respond_json(c, 200, json_pack("{s:o}", "configs", arr));
}

static void config_route(struct api *a, struct http_conn *c, struct http_request *req,
                         const struct auth_user *user, const char *rest)
{
    const char *slash = strchr(rest, '/');
    _cleanup_free_ char *id = slash ? xstrndup(rest, (size_t)(slash - rest)) : xstrdup(rest);
    const char *action = slash ? slash + 1 : "";
    struct pb_config pc;
    _cleanup_berr_ struct berr *e = NULL;
    if (store_pbc_get(ws_manager_store(a->m), id, &pc, &e) < 0) {
        http_respond_error(c, 404, "no prebuild configuration '%s'", id);
        return;
    }
    if (!may_see_config(user, &pc)) {
        pb_config_release(&pc);
        http_respond_error(c, 404, "no prebuild configuration '%s'", id);
        return;
    }
    if (!*action && strcmp(req->method, "GET") == 0) {
        http_respond_json(c, 200, config_json(&pc, NULL));
    } else if (!*action && strcmp(req->method, "DELETE") == 0) {
        if (store_pbc_delete(ws_manager_store(a->m), pc.id, &e) < 0) {
            api_respond_berr(c, -EIO, e);
        } else {
            api_audit(a, user, req, "prebuild_config.delete", pc.id, pc.repo);
            http_respond(c, 204, NULL, NULL, 0);
        }
    } else if (strcmp(action, "share") == 0 && strcmp(req->method, "POST") == 0) {
        json_t *body = api_parse_body(c, req);
        int shared = 1;
        if (!body) {
            pb_config_release(&pc);
            return;
        }
        if (!user->admin) {
            http_respond_error(c, 403, "only admins can share a prebuild configuration");
        } else if (json_unpack(body, "{s?b}", "shared", &shared) < 0) {
            http_respond_error(c, 400, "shared must be true or false");
        } else {
            json_object_set_new(pc.settings, "shared", json_boolean(shared));
            if (store_pbc_put(ws_manager_store(a->m), &pc, &e) < 0) {
                api_respond_berr(c, -EIO, e);
            } else {
                api_audit(a, user, req,
                          shared ? "prebuild_config.share" : "prebuild_config.unshare", pc.id,
                          pc.repo);
                http_respond_json(c, 200, config_json(&pc, NULL));
            }
        }
        json_decref(body);
    } else {
        http_respond_error(c, 404, "no route for %s %s", req->method, req->path);
    }
    pb_config_release(&pc);
}

/* ---- the webhook ---- */

/* X-Hub-Signature-256: sha256=HEX (GitHub, Gitea, Gitness), or Gitea's own
 * X-Gitea-Signature: HEX; HMAC-SHA256 of the body with the secret. */
static bool signature_ok(const struct http_request *req, const struct buf *secret)
{
    const char *sig = http_request_header(req, "x-hub-signature-256");
    if (sig && strncmp(sig, "sha256=", 7) == 0)
        sig += 7;
    else if (!sig)
        sig = http_request_header(req, "x-gitea-signature");
    unsigned char want[crypto_auth_hmacsha256_BYTES], got[crypto_auth_hmacsha256_BYTES];
    size_t len = 0;
    if (!sig || strlen(sig) != 2 * sizeof(got) ||
        sodium_hex2bin(got, sizeof(got), sig, strlen(sig), NULL, &len, NULL) < 0 ||
        len != sizeof(got))
        return false;
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret->buf, secret->len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)req->body.buf, req->body.len);
    crypto_auth_hmacsha256_final(&st, want);
    return sodium_memcmp(want, got, sizeof(want)) == 0;
}

void api_prebuild_hook(struct api *a, struct http_conn *c, struct http_request *req, const char *id)
{
    if (strcmp(req->method, "POST") != 0) {
        http_respond_error(c, 405, "a webhook is a POST");
        return;
    }
    struct pb_config pc;
    /* an unknown id is answered as a bad signature: ids are not to be guessed */
    bool known = store_pbc_get(ws_manager_store(a->m), id, &pc, NULL) == 0;
    _cleanup_buf_ struct buf secret = BUF_INIT;
    bool ok =
        known && unseal(pc.secret.buf, pc.secret.len, &secret) == 0 && signature_ok(req, &secret);
    if (secret.buf)
        sodium_memzero(secret.buf, secret.len);
    if (!ok) {
        log_info("prebuild webhook %s from %s: missing or wrong signature", id, req->peer);
        api_audit(a, NULL, req, "prebuild_hook.refused", id, "missing or wrong signature");
        if (known)
            pb_config_release(&pc);
        http_respond_error(c, 401, "missing or wrong webhook signature");
        return;
    }
    const char *event = http_request_header(req, "x-github-event");
    if (!event)
        event = http_request_header(req, "x-gitea-event");
    json_t *body = json_loadb(req->body.buf, req->body.len, 0, NULL);
    const char *ref = json_string_value(json_object_get(body, "ref"));
    const char *def =
        json_string_value(json_object_get(json_object_get(body, "repository"), "default_branch"));
    const char *branch = ref && strncmp(ref, "refs/heads/", 11) == 0 ? ref + 11 : NULL;
    bool patterns = json_array_size(json_object_get(pc.settings, "branches")) > 0;
    const char *skip = event && strcmp(event, "ping") == 0              ? "ping"
                       : event && strcmp(event, "push") != 0            ? "not a push event"
                       : !branch                                        ? "not a push to a branch"
                       : json_is_true(json_object_get(body, "deleted")) ? "the branch was deleted"
                       : patterns                         ? (prebuild_config_matches(&pc, branch)
                                                                 ? NULL
                                                                 : "the branch is not in the configuration")
                       : !def || strcmp(def, branch) == 0 ? NULL
                                                          : "not the default branch";
    if (skip) {
        http_respond_json(c, 200, json_pack("{s:n, s:s}", "prebuild", "ignored", skip));
    } else {
        struct ws_record rec;
        _cleanup_berr_ struct berr *e = NULL;
        int r = prebuild_from_config(a->m, &pc, branch,
                                     json_string_value(json_object_get(body, "after")), "webhook",
                                     &rec, &e);
        if (r < 0) {
            api_respond_berr(c, r, e);
        } else {
            api_audit(a, NULL, req, "prebuild_hook.start", rec.id, branch);
            http_respond_json(c, 202, json_pack("{s:s}", "prebuild", rec.id));
            ws_record_release(&rec);
        }
    }
    json_decref(body);
    pb_config_release(&pc);
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
    if (strcmp(path, "/prebuild-configs") == 0) {
        if (strcmp(m, "POST") == 0)
            put_config(a, c, req, user);
        else if (strcmp(m, "GET") == 0)
            list_configs(a, c, user);
        else
            http_respond_error(c, 405, "use GET or POST on /prebuild-configs");
        return true;
    }
    if (strncmp(path, "/prebuild-configs/", 18) == 0) {
        config_route(a, c, req, user, path + 18);
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
