/* sshkeys.c - the caller's SSH public keys (GET/POST /ssh-keys, DELETE
 * /ssh-keys/{id}) and what a client needs to reach the gateway (GET /ssh-host). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api-internal.h"
#include "http/server.h"
#include "sshd/sshd.h"
#include "sshd/sshkey.h"
#include "store/accounts.h"
#include "store/sshkeys.h"
#include "util/xalloc.h"

static void add_key(struct api *a, struct http_conn *c, struct http_request *req,
                    const struct auth_user *user)
{
    json_t *body = api_parse_body(c, req);
    if (!body)
        return;
    const char *key = NULL, *name = NULL;
    json_error_t jerr;
    if (json_unpack_ex(body, &jerr, 0, "{s:s, s?s}", "key", &key, "name", &name) < 0) {
        http_respond_error(c, 400, "invalid request: %s", jerr.text);
        json_decref(body);
        return;
    }
    struct sshkey_info k = {0};
    _cleanup_berr_ struct berr *e = NULL;
    if (sshkey_parse(key, &k, &e) < 0) {
        json_decref(body);
        api_respond_berr(c, -EINVAL, e);
        return;
    }
    const char *label = name && *name ? name : k.comment && *k.comment ? k.comment : k.type;
    if (strlen(label) > 200 || strchr(label, '\n')) {
        sshkey_info_release(&k);
        json_decref(body);
        http_respond_error(c, 400, "the name must be one line of at most 200 characters");
        return;
    }
    int64_t id = 0;
    int r = store_sshkey_insert(a->store, user->id, label, k.type, k.blob, k.fingerprint, &id, &e);
    if (r == -EEXIST) {
        http_respond_error(c, 409, "the key %s is registered already", k.fingerprint);
    } else if (r < 0) {
        api_respond_berr(c, r, e);
    } else {
        api_audit(a, user, req, "ssh-key.add", k.fingerprint, label);
        http_respond_json(c, 201,
                          json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)id, "name", label,
                                    "type", k.type, "fingerprint", k.fingerprint));
    }
    sshkey_info_release(&k);
    json_decref(body);
}

bool api_sshkeys_route(struct api *a, struct http_conn *c, struct http_request *req,
                       const struct auth_user *user, const char *path)
{
    if (strcmp(path, "/ssh-host") == 0) {
        _cleanup_free_ char *key = store_setting_text(a->store, SSHD_SETTING_HOST_KEY);
        _cleanup_free_ char *listen = store_setting_text(a->store, SSHD_SETTING_LISTEN);
        if (!listen || !*listen || !key)
            http_respond_error(c, 404, "the SSH gateway is off (berthd --ssh-listen)");
        else
            http_respond_json(c, 200, json_pack("{s:s, s:s}", "host_key", key, "listen", listen));
        return true;
    }
    if (strncmp(path, "/ssh-keys", 9) != 0 || (path[9] && path[9] != '/'))
        return false;
    const char *rest = path + 9;
    if (!*rest && strcmp(req->method, "GET") == 0) {
        json_t *list = NULL;
        if (store_sshkey_list_json(a->store, user->id, &list) < 0)
            http_respond_error(c, 500, "cannot list SSH keys");
        else
            http_respond_json(c, 200, json_pack("{s:o}", "keys", list));
        return true;
    }
    if (!*rest && strcmp(req->method, "POST") == 0) {
        add_key(a, c, req, user);
        return true;
    }
    if (rest[0] == '/' && strcmp(req->method, "DELETE") == 0) {
        char *end = NULL;
        long long id = strtoll(rest + 1, &end, 10);
        if (!rest[1] || *end || store_sshkey_delete(a->store, user->id, id) < 0) {
            http_respond_error(c, 404, "SSH key '%s' not found", rest + 1);
            return true;
        }
        api_audit(a, user, req, "ssh-key.delete", rest + 1, NULL);
        http_respond(c, 204, NULL, NULL, 0);
        return true;
    }
    http_respond_error(c, 405, "no route for %s %s", req->method, req->path);
    return true;
}
