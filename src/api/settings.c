/* settings.c - a user's own settings (idle timeout, dotfiles) and a
 * workspace's (its idle timeout, pinned), under /settings and
 * /workspaces/{ws}/settings.
 *
 * Values are checked here, before they are stored: an idle timeout against
 * the admin's range, a dotfiles URL as a create's repository would be (the
 * same schemes, the same rule for local paths), a target folder as a path
 * under the home directory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api-internal.h"
#include "store/accounts.h"
#include "store/activity.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "workspace/idle-policy.h"
#include "workspace/workspace.h"

/* Keys of the user_settings table. */
#define US_IDLE "idle"
#define US_DOT_URL "dotfiles_url"
#define US_DOT_INSTALL "dotfiles_install"
#define US_DOT_TARGET "dotfiles_target"

#define DOTFILES_FIELD_MAX 1024

static json_t *text_or_null(char *s)
{
    json_t *j = s ? json_string(s) : json_null();
    free(s);
    return j;
}

static json_t *user_settings_json(struct api *a, const char *user)
{
    json_t *j = json_object();
    json_object_set_new(j, "idle_timeout",
                        text_or_null(store_user_setting(a->store, user, US_IDLE)));
    _cleanup_free_ char *url = store_user_setting(a->store, user, US_DOT_URL);
    if (url)
        json_object_set_new(
            j, "dotfiles",
            json_pack("{s:s, s:o, s:o}", "url", url, "install",
                      text_or_null(store_user_setting(a->store, user, US_DOT_INSTALL)), "target",
                      text_or_null(store_user_setting(a->store, user, US_DOT_TARGET))));
    else
        json_object_set_new(j, "dotfiles", json_null());
    int64_t max;
    bool never;
    ws_idle_range(a->m, &max, &never);
    json_object_set_new(j, "idle_range",
                        json_pack("{s:i, s:I, s:b, s:i}", "min_minutes", IDLE_MIN_MINUTES,
                                  "max_minutes", (json_int_t)max, "never_allowed", never,
                                  "default_minutes", IDLE_DEFAULT_MINUTES));
    return j;
}

/* An idle value of a request body: a string ("45m", "never") or a number
 * of minutes. *ret_minutes -1 for null (the default). False after answering
 * 400. Whether this server allows it is ws_idle_check's to say. */
static bool parse_idle(struct http_conn *c, json_t *v, int64_t *ret_minutes, char *canon,
                       size_t size)
{
    if (json_is_null(v)) {
        *ret_minutes = -1;
        return true;
    }
    int64_t minutes = -1;
    if (json_is_integer(v))
        minutes = json_integer_value(v);
    else if (!json_is_string(v) || idle_parse_minutes(json_string_value(v), &minutes) < 0)
        minutes = -1;
    if (minutes < 0) {
        http_respond_error(c, 400,
                           "idle_timeout must be minutes such as \"45m\" or \"2h\", or \"never\"");
        return false;
    }
    *ret_minutes = minutes;
    if (minutes == 0)
        snprintf(canon, size, "never");
    else
        snprintf(canon, size, "%lldm", (long long)minutes);
    return true;
}

/* A text field of at most DOTFILES_FIELD_MAX bytes on one line, or null. */
static bool one_line(json_t *v)
{
    if (json_is_null(v) || !v)
        return true;
    if (!json_is_string(v))
        return false;
    const char *s = json_string_value(v);
    return strlen(s) <= DOTFILES_FIELD_MAX && !strpbrk(s, "\n\r") &&
           json_string_length(v) == strlen(s);
}

/* "~/dotfiles", "~", "/home/x/.dotfiles": a folder in the container, no "..". */
static bool valid_target(const char *t)
{
    if (!(t[0] == '/' || (t[0] == '~' && (t[1] == 0 || t[1] == '/'))))
        return false;
    for (const char *p = t; (p = strstr(p, "..")); p += 2)
        if ((p == t || p[-1] == '/') && (p[2] == 0 || p[2] == '/'))
            return false;
    return true;
}

static bool put_dotfiles(struct api *a, struct http_conn *c, const struct auth_user *user,
                         json_t *d)
{
    if (json_is_null(d)) {
        (void)store_user_setting_set(a->store, user->name, US_DOT_URL, NULL);
        (void)store_user_setting_set(a->store, user->name, US_DOT_INSTALL, NULL);
        (void)store_user_setting_set(a->store, user->name, US_DOT_TARGET, NULL);
        return true;
    }
    json_t *url = json_object_get(d, "url"), *install = json_object_get(d, "install"),
           *target = json_object_get(d, "target");
    if (!json_is_object(d) || !json_is_string(url) || !one_line(url) || !one_line(install) ||
        !one_line(target)) {
        http_respond_error(c, 400,
                           "dotfiles must be null or {\"url\": ..., \"install\": ..., "
                           "\"target\": ...} with one-line strings of at most %d bytes",
                           DOTFILES_FIELD_MAX);
        return false;
    }
    struct ws_create_request probe = {
        .repo = json_string_value(url), .owner = user->name, .owner_is_admin = user->admin};
    _cleanup_berr_ struct berr *e = NULL;
    int r = ws_check_request(a->m, &probe, &e);
    if (r < 0) {
        http_respond_error(c, 400, "dotfiles: %s", berr_msg(e));
        return false;
    }
    const char *t = json_is_string(target) ? json_string_value(target) : NULL;
    if (t && *t && !valid_target(t)) {
        http_respond_error(c, 400,
                           "dotfiles target '%s' must be a folder such as ~/dotfiles or an "
                           "absolute path, without '..'",
                           t);
        return false;
    }
    const char *inst = json_is_string(install) ? json_string_value(install) : NULL;
    (void)store_user_setting_set(a->store, user->name, US_DOT_URL, json_string_value(url));
    (void)store_user_setting_set(a->store, user->name, US_DOT_INSTALL, inst && *inst ? inst : NULL);
    (void)store_user_setting_set(a->store, user->name, US_DOT_TARGET, t && *t ? t : NULL);
    return true;
}

bool api_settings_route(struct api *a, struct http_conn *c, struct http_request *req,
                        const struct auth_user *user, const char *path)
{
    if (strcmp(path, "/admin/idle") == 0) {
        if (!user->admin) {
            http_respond_error(c, 403, "only admins can read the idle sweep's figures");
            return true;
        }
        int64_t us;
        size_t n;
        ws_idle_stats(a->m, &us, &n);
        http_respond_json(
            c, 200,
            json_pack("{s:I, s:I}", "last_sweep_us", (json_int_t)us, "workspaces", (json_int_t)n));
        return true;
    }
    if (strcmp(path, "/settings") != 0)
        return false;
    bool get = strcmp(req->method, "GET") == 0;
    if (!get && strcmp(req->method, "PUT") != 0 && strcmp(req->method, "PATCH") != 0) {
        http_respond_error(c, 405, "use GET, PUT or PATCH on /settings");
        return true;
    }
    if (!get) {
        _cleanup_(json_decrefp) json_t *body = api_parse_body(c, req);
        if (!body)
            return true;
        const char *key;
        json_t *v;
        json_object_foreach (body, key, v) {
            if (strcmp(key, "idle_timeout") != 0 && strcmp(key, "dotfiles") != 0) {
                http_respond_error(c, 400, "unknown setting '%s' (idle_timeout, dotfiles)", key);
                return true;
            }
        }
        json_t *idle = json_object_get(body, "idle_timeout");
        char canon[32];
        int64_t minutes;
        if (idle && !parse_idle(c, idle, &minutes, canon, sizeof(canon)))
            return true;
        _cleanup_berr_ struct berr *e = NULL;
        if (idle && ws_idle_check(a->m, minutes, &e) < 0) {
            http_respond_error(c, 400, "%s", berr_msg(e));
            return true;
        }
        json_t *dot = json_object_get(body, "dotfiles");
        if (dot && !put_dotfiles(a, c, user, dot))
            return true;
        if (idle)
            (void)store_user_setting_set(a->store, user->name, US_IDLE, minutes < 0 ? NULL : canon);
        _cleanup_free_ char *detail = json_dumps(body, JSON_COMPACT);
        api_audit(a, user, req, "settings.user", user->name, detail);
    }
    http_respond_json(c, 200, user_settings_json(a, user->name));
    return true;
}

void api_workspace_settings(struct api *a, struct http_conn *c, struct http_request *req,
                            const struct auth_user *user, const struct ws_record *rec)
{
    bool get = strcmp(req->method, "GET") == 0;
    if (!get && strcmp(req->method, "PUT") != 0 && strcmp(req->method, "PATCH") != 0) {
        http_respond_error(c, 405, "use GET, PUT or PATCH on a workspace's settings");
        return;
    }
    if (!get) {
        _cleanup_(json_decrefp) json_t *body = api_parse_body(c, req);
        if (!body)
            return;
        const char *key;
        json_t *v;
        json_object_foreach (body, key, v) {
            if (strcmp(key, "idle_timeout") != 0 && strcmp(key, "pinned") != 0) {
                http_respond_error(c, 400, "unknown setting '%s' (idle_timeout, pinned)", key);
                return;
            }
        }
        json_t *idle = json_object_get(body, "idle_timeout");
        json_t *pinned = json_object_get(body, "pinned");
        if (pinned && !json_is_boolean(pinned)) {
            http_respond_error(c, 400, "pinned must be true or false");
            return;
        }
        char canon[32];
        int64_t minutes = -1;
        if (idle && !parse_idle(c, idle, &minutes, canon, sizeof(canon)))
            return;
        _cleanup_berr_ struct berr *e = NULL;
        if (idle) {
            int r = ws_set_idle_timeout(a->m, rec->id, minutes, &e);
            if (r < 0) {
                api_respond_berr(c, r, e);
                return;
            }
        }
        if (pinned) {
            (void)store_ws_set_pinned(a->store, rec->id, json_is_true(pinned));
            (void)store_event_add(a->store, rec->id, "retention",
                                  json_is_true(pinned) ? "pinned: kept by retention" : "unpinned");
        }
        _cleanup_free_ char *detail = json_dumps(body, JSON_COMPACT);
        api_audit(a, user, req, "workspace.settings", rec->id, detail);
    }
    http_respond_json(c, 200, ws_idle_json(a->m, rec));
}
