/* accounts.c - the API routes of accounts: login and logout, the caller's
 * tokens, users (admin), settings (admin) and the policy they make (anyone),
 * the audit log (admin), and the caller's git credentials and secrets.
 *
 * Login and user creation hash passwords with argon2id, which takes a good
 * part of a second: that runs on the thread pool, and the request is answered
 * from the completion callback (or dropped if the client left).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>
#include <uv.h>

#include "api/api-internal.h"
#include "devcontainer/options.h"
#include "git/git.h"
#include "store/accounts.h"
#include "workspace/idle-policy.h"
#include "util/log.h"
#include "util/seal.h"
#include "util/xalloc.h"
#include "workspace/workspace.h"

/* ---- hashing off the loop ---- */

struct pw_job {
    uv_work_t work;
    struct api *a;
    struct http_conn *conn; /* NULL once the client hung up */
    char *name;
    char *password;
    char *hash; /* login: the stored hash (may be NULL); create: the result */
    bool ok;
    bool create;    /* user creation rather than login */
    bool admin;     /* create: the new user's role */
    bool generated; /* create: the password was generated */
    char *mode;     /* login: "cookie" or "token" */
    char *token_name;
    char *address;
    bool secure;            /* login: the request came over HTTPS (its cookies' kind) */
    struct auth_user actor; /* create: the admin asking */
    char *host;
};

static void pw_job_free(struct pw_job *j)
{
    if (j->password) {
        volatile char *p = j->password;
        for (size_t i = 0; p[i]; i++)
            p[i] = 0;
    }
    free(j->password);
    free(j->name);
    free(j->hash);
    free(j->mode);
    free(j->token_name);
    free(j->address);
    free(j->host);
    auth_user_release(&j->actor);
    free(j);
}

static void pw_conn_closed(struct http_conn *c, void *data)
{
    (void)c;
    struct pw_job *j = data;
    j->conn = NULL;
}

static void pw_run(uv_work_t *w)
{
    struct pw_job *j = (struct pw_job *)w;
    if (j->create) {
        j->hash = auth_hash_password(j->password);
        j->ok = j->hash != NULL;
    } else {
        j->ok = auth_verify_password(j->hash, j->password);
    }
}

static void login_done(uv_work_t *w, int status)
{
    (void)status;
    struct pw_job *j = (struct pw_job *)w;
    struct api *a = j->a;
    struct user_rec u = {0};
    bool ok = j->ok && store_user_get(a->store, j->name, &u, NULL) == 0 && !u.disabled;
    if (!ok) {
        auth_throttle_failure(a->auth, j->name, j->address);
        store_audit_add(a->store, j->name, "login.failed", j->name, NULL, j->address);
        if (j->conn) {
            http_conn_on_close(j->conn, NULL, NULL);
            http_respond_error(j->conn, 401, "invalid username or password");
        }
        user_rec_release(&u);
        pw_job_free(j);
        return;
    }
    auth_throttle_success(a->auth, j->name, j->address);
    bool cookie = strcmp(j->mode, "cookie") == 0;
    _cleanup_free_ char *token = NULL, *csrf = NULL, *id = NULL;
    _cleanup_berr_ struct berr *e = NULL;
    int r = auth_issue_token(a->auth, u.id, cookie ? "session" : "cli",
                             j->token_name ? j->token_name
                             : cookie      ? "browser"
                                           : "berth CLI",
                             cookie ? AUTH_SESSION_TTL : 0, &token, &id, &csrf, &e);
    store_audit_add(a->store, j->name, "login", j->name, cookie ? "session" : "token", j->address);
    if (j->conn) {
        http_conn_on_close(j->conn, NULL, NULL);
        if (r < 0) {
            api_respond_berr(j->conn, r, e);
        } else {
            json_t *user = json_pack("{s:s, s:b}", "name", u.name, "admin", u.admin);
            if (cookie) {
                auth_set_cookie(j->conn, j->secure, AUTH_SESSION_COOKIE, token, true,
                                AUTH_SESSION_TTL);
                auth_set_cookie(j->conn, j->secure, AUTH_CSRF_COOKIE, csrf, false,
                                AUTH_SESSION_TTL);
                http_respond_json(j->conn, 200,
                                  json_pack("{s:o, s:s}", "user", user, "csrf_token", csrf));
            } else {
                http_respond_json(j->conn, 200,
                                  json_pack("{s:o, s:s}", "user", user, "token", token));
            }
        }
    } else if (r == 0) {
        /* nobody will ever see this token */
        (void)store_token_delete(a->store, id, -1);
    }
    user_rec_release(&u);
    pw_job_free(j);
}

void api_login(struct api *a, struct http_conn *c, struct http_request *req)
{
    json_t *body = api_parse_body(c, req);
    if (!body)
        return;
    const char *name = NULL, *password = NULL, *mode = "cookie", *token_name = NULL;
    json_error_t jerr;
    if (json_unpack_ex(body, &jerr, 0, "{s:s, s:s, s?s, s?s}", "username", &name, "password",
                       &password, "mode", &mode, "token_name", &token_name) < 0) {
        http_respond_error(c, 400, "invalid request: %s", jerr.text);
        json_decref(body);
        return;
    }
    if (strcmp(mode, "cookie") != 0 && strcmp(mode, "token") != 0) {
        http_respond_error(c, 400, "mode must be 'cookie' or 'token'");
        json_decref(body);
        return;
    }
    if (strlen(password) > 1024 || strlen(name) > 256 || (token_name && strlen(token_name) > 100)) {
        http_respond_error(c, 400, "username, password or token_name is too long");
        json_decref(body);
        return;
    }
    int wait = auth_throttle_check(a->auth, name, req->peer);
    if (wait > 0) {
        store_audit_add(a->store, name, "login.throttled", name, NULL, req->peer);
        http_conn_add_header(c, "Retry-After: %d", wait);
        http_respond_error(c, 429, "too many failed logins; try again in %d seconds", wait);
        json_decref(body);
        return;
    }
    struct pw_job *j = xcalloc(1, sizeof(*j));
    j->a = a;
    j->conn = c;
    j->name = xstrdup(name);
    j->password = xstrdup(password);
    j->mode = xstrdup(mode);
    j->token_name = token_name ? xstrdup(token_name) : NULL;
    j->address = xstrdup(req->peer);
    j->secure = req->secure;
    struct user_rec u = {0};
    if (store_user_get(a->store, name, &u, NULL) == 0) {
        j->hash = TAKE_PTR(u.password_hash);
        user_rec_release(&u);
    }
    json_decref(body);
    http_conn_on_close(c, pw_conn_closed, j);
    uv_queue_work(uv_default_loop(), &j->work, pw_run, login_done);
}

/* ---- users (admin) ---- */

static void create_user_done(uv_work_t *w, int status)
{
    (void)status;
    struct pw_job *j = (struct pw_job *)w;
    struct api *a = j->a;
    _cleanup_berr_ struct berr *e = NULL;
    int r = j->ok ? store_user_insert(a->store, j->name, j->hash, j->admin, &e)
                  : berr_make(&e, ENOMEM, "cannot hash the password");
    if (r == 0)
        store_audit_add(a->store, j->actor.name, "user.create", j->name,
                        j->admin ? "admin" : "user", j->address);
    if (j->conn) {
        http_conn_on_close(j->conn, NULL, NULL);
        if (r < 0) {
            api_respond_berr(j->conn, r, e);
        } else {
            json_t *out = json_pack("{s:s, s:b}", "name", j->name, "admin", j->admin);
            if (j->generated)
                json_object_set_new(out, "password", json_string(j->password));
            http_respond_json(j->conn, 201, out);
        }
    }
    pw_job_free(j);
}

static void create_user(struct api *a, struct http_conn *c, struct http_request *req,
                        const struct auth_user *user)
{
    json_t *body = api_parse_body(c, req);
    if (!body)
        return;
    const char *name = NULL, *password = NULL;
    int admin = 0;
    json_error_t jerr;
    if (json_unpack_ex(body, &jerr, 0, "{s:s, s?s, s?b}", "name", &name, "password", &password,
                       "admin", &admin) < 0) {
        http_respond_error(c, 400, "invalid request: %s", jerr.text);
        json_decref(body);
        return;
    }
    if (!auth_valid_username(name)) {
        http_respond_error(c, 400,
                           "user name '%s' must be 1-32 characters of a-z, 0-9, '.', '_' and "
                           "'-', starting with a letter",
                           name);
        json_decref(body);
        return;
    }
    if (password && (strlen(password) < 8 || strlen(password) > 1024)) {
        http_respond_error(c, 400, "password must be 8 to 1024 characters");
        json_decref(body);
        return;
    }
    struct user_rec probe = {0};
    if (store_user_get(a->store, name, &probe, NULL) == 0) {
        user_rec_release(&probe);
        http_respond_error(c, 409, "user '%s' already exists", name);
        json_decref(body);
        return;
    }
    struct pw_job *j = xcalloc(1, sizeof(*j));
    j->a = a;
    j->conn = c;
    j->create = true;
    j->admin = admin;
    j->name = xstrdup(name);
    j->generated = !password;
    j->password = password ? xstrdup(password) : auth_random_password();
    j->address = xstrdup(req->peer);
    j->actor.name = xstrdup(user->name);
    json_decref(body);
    http_conn_on_close(c, pw_conn_closed, j);
    uv_queue_work(uv_default_loop(), &j->work, pw_run, create_user_done);
}

static bool users_route(struct api *a, struct http_conn *c, struct http_request *req,
                        const struct auth_user *user, const char *rest)
{
    bool get = strcmp(req->method, "GET") == 0, post = strcmp(req->method, "POST") == 0;
    if (!user->admin) {
        http_respond_error(c, 403, "only admins can manage users");
        return true;
    }
    if (!*rest) {
        if (get) {
            json_t *list = NULL;
            if (store_user_list_json(a->store, &list) < 0)
                http_respond_error(c, 500, "cannot list users");
            else
                http_respond_json(c, 200, json_pack("{s:o}", "users", list));
        } else if (post) {
            create_user(a, c, req, user);
        } else {
            http_respond_error(c, 405, "use GET or POST on /users");
        }
        return true;
    }
    /* "/NAME/disable" or "/NAME/enable" */
    const char *slash = strchr(rest + 1, '/');
    if (!slash || !post) {
        http_respond_error(c, slash ? 405 : 404, "no route for %s %s", req->method, req->path);
        return true;
    }
    _cleanup_free_ char *name = xstrndup(rest + 1, (size_t)(slash - rest - 1));
    const char *verb = slash + 1;
    bool disable = strcmp(verb, "disable") == 0;
    if (!disable && strcmp(verb, "enable") != 0) {
        http_respond_error(c, 404, "no route for %s %s", req->method, req->path);
        return true;
    }
    if (disable && strcmp(name, user->name) == 0) {
        http_respond_error(c, 400, "you cannot disable your own account");
        return true;
    }
    _cleanup_berr_ struct berr *e = NULL;
    int r = store_user_set_disabled(a->store, name, disable, &e);
    if (r < 0) {
        api_respond_berr(c, r, e);
        return true;
    }
    auth_forget(a->auth);
    api_audit(a, user, req, disable ? "user.disable" : "user.enable", name, NULL);
    http_respond_json(c, 200, json_pack("{s:s, s:b}", "name", name, "disabled", disable));
    return true;
}

/* ---- tokens ---- */

static bool tokens_route(struct api *a, struct http_conn *c, struct http_request *req,
                         const struct auth_user *user, const char *rest)
{
    if (!*rest && strcmp(req->method, "GET") == 0) {
        json_t *list = NULL;
        if (store_token_list_json(a->store, user->id, &list) < 0)
            http_respond_error(c, 500, "cannot list tokens");
        else
            http_respond_json(c, 200, json_pack("{s:o}", "tokens", list));
        return true;
    }
    if (!*rest && strcmp(req->method, "POST") == 0) {
        json_t *body = api_parse_body(c, req);
        if (!body)
            return true;
        const char *name = NULL;
        json_error_t jerr;
        if (json_unpack_ex(body, &jerr, 0, "{s:s}", "name", &name) < 0 || !*name ||
            strlen(name) > 100) {
            http_respond_error(c, 400, "invalid request: give a token name of 1-100 characters");
            json_decref(body);
            return true;
        }
        _cleanup_free_ char *token = NULL, *id = NULL;
        _cleanup_berr_ struct berr *e = NULL;
        int r = auth_issue_token(a->auth, user->id, "api", name, 0, &token, &id, NULL, &e);
        if (r < 0) {
            json_decref(body);
            api_respond_berr(c, r, e);
            return true;
        }
        api_audit(a, user, req, "token.create", id, name);
        http_respond_json(c, 201,
                          json_pack("{s:s, s:s, s:s}", "id", id, "name", name, "token", token));
        json_decref(body);
        return true;
    }
    if (rest[0] == '/' && strcmp(req->method, "DELETE") == 0) {
        const char *id = rest + 1;
        if (store_token_delete(a->store, id, user->id) < 0) {
            http_respond_error(c, 404, "token '%s' not found", id);
            return true;
        }
        auth_forget(a->auth);
        api_audit(a, user, req, "token.revoke", id, NULL);
        http_respond(c, 204, NULL, NULL, 0);
        return true;
    }
    http_respond_error(c, 405, "no route for %s %s", req->method, req->path);
    return true;
}

/* ---- settings and audit (admin) ---- */

/* The integer settings an admin may change, with their defaults and ranges. */
static const struct {
    const char *key;
    int64_t fallback; /* -1: none (unlimited until set) */
    int64_t max;
} int_settings[] = {
    {WS_SETTING_MAX_WORKSPACES, WS_DEFAULT_MAX_WORKSPACES, 100000},
    {WS_SETTING_MAX_RUNNING, WS_DEFAULT_MAX_RUNNING, 100000},
    {WS_SETTING_MAX_CPUS, -1, 4096},
    {WS_SETTING_MAX_MEMORY_MB, -1, 64 * 1024 * 1024},
    {WS_SETTING_PREBUILD_KEEP, 3, 100},
    {WS_SETTING_PREBUILD_QUOTA_MB, -1, 1000LL * 1000 * 1000},
    {WS_SETTING_IDLE_MAX, IDLE_DEFAULT_MAX_MINUTES, 7 * 24 * 60},
    {WS_SETTING_IDLE_ALLOW_NEVER, 0, 1},
    {WS_SETTING_RETENTION_DAYS, 0, 36500},
};

static json_t *allow_list(struct api *a)
{
    _cleanup_free_ char *text = store_setting_text(a->store, WS_SETTING_ALLOW);
    json_t *list = text ? json_loads(text, 0, NULL) : NULL;
    return json_is_array(list) ? list : (json_decref(list), json_array());
}

static json_t *settings_json(struct api *a)
{
    json_t *o = json_object();
    for (size_t i = 0; i < ELEMENTSOF(int_settings); i++) {
        int64_t v = store_setting_int(a->store, int_settings[i].key, int_settings[i].fallback);
        json_object_set_new(o, int_settings[i].key, v < 0 ? json_null() : json_integer(v));
    }
    json_object_set_new(o, WS_SETTING_ALLOW, allow_list(a));
    /* read-only: what the quota counts */
    size_t n = 0;
    int64_t used = prebuild_total_size(a->m, &n);
    json_object_set_new(o, "prebuilds",
                        json_pack("{s:I, s:I}", "count", (json_int_t)n, "bytes", (json_int_t)used));
    return o;
}

/* An allow-list entry as options.h describes them. */
static bool valid_allow_entry(const char *e)
{
    static const char *const kinds[] = {
        "capAdd:", "securityOpt:", "network:", "device:/", "bind:/", "repo:/"};
    if (strcmp(e, "privileged") == 0)
        return true;
    for (size_t i = 0; i < ELEMENTSOF(kinds); i++)
        if (strncmp(e, kinds[i], strlen(kinds[i])) == 0 && e[strlen(kinds[i])] && strlen(e) < 512)
            return true;
    return false;
}

static bool settings_route(struct api *a, struct http_conn *c, struct http_request *req,
                           const struct auth_user *user)
{
    if (!user->admin) {
        http_respond_error(c, 403, "only admins can read or change settings");
        return true;
    }
    if (strcmp(req->method, "GET") == 0) {
        http_respond_json(c, 200, settings_json(a));
        return true;
    }
    if (strcmp(req->method, "PUT") != 0 && strcmp(req->method, "PATCH") != 0) {
        http_respond_error(c, 405, "use GET or PUT on /admin/settings");
        return true;
    }
    json_t *body = api_parse_body(c, req);
    if (!body)
        return true;
    for (size_t i = 0; i < ELEMENTSOF(int_settings); i++) {
        json_t *v = json_object_get(body, int_settings[i].key);
        if (v && (!json_is_integer(v) || json_integer_value(v) < 0 ||
                  json_integer_value(v) > int_settings[i].max)) {
            http_respond_error(c, 400, "%s must be an integer from 0 to %lld", int_settings[i].key,
                               (long long)int_settings[i].max);
            json_decref(body);
            return true;
        }
    }
    json_t *allow = json_object_get(body, WS_SETTING_ALLOW);
    size_t i;
    json_t *e;
    json_array_foreach (allow, i, e) {
        const char *text = json_string_value(e);
        if (!text || !valid_allow_entry(text)) {
            http_respond_error(c, 400,
                               "'%s' is not an allow-list entry (privileged, capAdd:NAME, "
                               "securityOpt:VALUE, network:NAME, device:/PATH, bind:/PATH, "
                               "repo:/PATH)",
                               text ? text : "(not a string)");
            json_decref(body);
            return true;
        }
        if (strncmp(text, "capAdd:", 7) == 0 && strcmp(text + 7, "*") != 0) {
            /* the spelling configs are matched in: "capAdd:SYS_PTRACE" */
            _cleanup_free_ char *cap = dc_cap_name(text + 7);
            if (!cap) {
                http_respond_error(c, 400, "'%s': '%s' is not a Linux capability", text, text + 7);
                json_decref(body);
                return true;
            }
            json_array_set_new(allow, i, json_sprintf("capAdd:%s", cap));
        }
    }
    if (allow && !json_is_array(allow)) {
        http_respond_error(c, 400, "%s must be an array of strings", WS_SETTING_ALLOW);
        json_decref(body);
        return true;
    }
    for (i = 0; i < ELEMENTSOF(int_settings); i++) {
        json_t *v = json_object_get(body, int_settings[i].key);
        if (!v)
            continue;
        (void)store_setting_set_int(a->store, int_settings[i].key, json_integer_value(v));
        _cleanup_free_ char *detail = xasprintf("%lld", (long long)json_integer_value(v));
        api_audit(a, user, req, "settings.set", int_settings[i].key, detail);
    }
    if (allow) {
        _cleanup_free_ char *text = json_dumps(allow, JSON_COMPACT);
        (void)store_setting_set_text(a->store, WS_SETTING_ALLOW, text);
        api_audit(a, user, req, "settings.set", WS_SETTING_ALLOW, text);
    }
    json_decref(body);
    http_respond_json(c, 200, settings_json(a));
    return true;
}

/* GET /policy: what this server lets a devcontainer.json ask for, readable by
 * every user so that `berth config` can mark what would be refused before a
 * workspace fails on it. The maxima are the ones a workspace gets (the
 * admin's, else the host's, as the workspace module reads them); 0: none. */
static bool policy_route(struct api *a, struct http_conn *c, struct http_request *req)
{
    if (strcmp(req->method, "GET") != 0) {
        http_respond_error(c, 405, "use GET on /policy; admins change it with PUT /admin/settings");
        return true;
    }
    struct sysinfo si;
    int64_t host_mem = sysinfo(&si) == 0 ? (int64_t)si.totalram * si.mem_unit : 0;
    int64_t cpus = store_setting_int(a->store, WS_SETTING_MAX_CPUS, sysconf(_SC_NPROCESSORS_ONLN));
    int64_t mem_mb = store_setting_int(a->store, WS_SETTING_MAX_MEMORY_MB, host_mem >> 20);
    http_respond_json(c, 200,
                      json_pack("{s:o, s:I, s:I}", WS_SETTING_ALLOW, allow_list(a),
                                WS_SETTING_MAX_CPUS, (json_int_t)cpus, WS_SETTING_MAX_MEMORY_MB,
                                (json_int_t)mem_mb));
    return true;
}

static bool audit_route(struct api *a, struct http_conn *c, struct http_request *req,
                        const struct auth_user *user)
{
    if (!user->admin) {
        http_respond_error(c, 403, "only admins can read the audit log");
        return true;
    }
    _cleanup_free_ char *limit_s = http_request_query(req, "limit");
    long limit = limit_s ? strtol(limit_s, NULL, 10) : 100;
    if (limit <= 0 || limit > 10000)
        limit = 100;
    json_t *list = NULL;
    if (store_audit_json(a->store, (int)limit, &list) < 0)
        http_respond_error(c, 500, "cannot read the audit log");
    else
        http_respond_json(c, 200, json_pack("{s:o}", "events", list));
    return true;
}

/* ---- git credentials and secrets ---- */

static bool gitcred_route(struct api *a, struct http_conn *c, struct http_request *req,
                          const struct auth_user *user, const char *rest)
{
    if (!*rest && strcmp(req->method, "GET") == 0) {
        json_t *list = NULL;
        if (store_gitcred_list_json(a->store, user->id, &list) < 0)
            http_respond_error(c, 500, "cannot list git credentials");
        else
            http_respond_json(c, 200, json_pack("{s:o}", "credentials", list));
        return true;
    }
    if (!*rest && strcmp(req->method, "POST") == 0) {
        json_t *body = api_parse_body(c, req);
        if (!body)
            return true;
        const char *url = NULL, *username = NULL, *password = NULL;
        json_error_t jerr;
        if (json_unpack_ex(body, &jerr, 0, "{s:s, s:s, s:s}", "url", &url, "username", &username,
                           "password", &password) < 0) {
            http_respond_error(c, 400, "invalid request: %s", jerr.text);
            json_decref(body);
            return true;
        }
        _cleanup_free_ char *origin = git_url_origin(url);
        if (!origin || strlen(username) > 256 || strlen(password) > 8192 ||
            strchr(username, '\n') || strchr(password, '\n')) {
            http_respond_error(c, 400,
                               "url must be an http(s) URL of a git host, e.g. "
                               "https://git.example.com; username and password one line");
            json_decref(body);
            return true;
        }
        _cleanup_buf_ struct buf sealed = BUF_INIT;
        seal(password, strlen(password), &sealed);
        _cleanup_berr_ struct berr *e = NULL;
        int r = store_gitcred_put(a->store, user->id, origin, username, &sealed, &e);
        if (r < 0) {
            json_decref(body);
            api_respond_berr(c, r, e);
            return true;
        }
        api_audit(a, user, req, "git-credential.set", origin, NULL);
        http_respond_json(c, 201, json_pack("{s:s, s:s}", "url", origin, "username", username));
        json_decref(body);
        return true;
    }
    if (rest[0] == '/' && strcmp(req->method, "DELETE") == 0) {
        char *end = NULL;
        long long id = strtoll(rest + 1, &end, 10);
        if (*end || store_gitcred_delete(a->store, user->id, id) < 0) {
            http_respond_error(c, 404, "git credential '%s' not found", rest + 1);
            return true;
        }
        api_audit(a, user, req, "git-credential.delete", rest + 1, NULL);
        http_respond(c, 204, NULL, NULL, 0);
        return true;
    }
    http_respond_error(c, 405, "no route for %s %s", req->method, req->path);
    return true;
}

static bool valid_env_name(const char *n)
{
    if (!*n || strlen(n) > 128 ||
        !(n[0] == '_' || (n[0] >= 'A' && n[0] <= 'Z') || (n[0] >= 'a' && n[0] <= 'z')))
        return false;
    for (const char *p = n; *p; p++)
        if (!(*p == '_' || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
              (*p >= '0' && *p <= '9')))
            return false;
    return true;
}

static bool secrets_route(struct api *a, struct http_conn *c, struct http_request *req,
                          const struct auth_user *user, const char *rest)
{
    if (!*rest && strcmp(req->method, "GET") == 0) {
        json_t *list = NULL;
        if (store_secret_list_json(a->store, user->id, &list) < 0)
            http_respond_error(c, 500, "cannot list secrets");
        else
            http_respond_json(c, 200, json_pack("{s:o}", "secrets", list));
        return true;
    }
    if (rest[0] != '/' || !rest[1]) {
        http_respond_error(c, 405, "no route for %s %s", req->method, req->path);
        return true;
    }
    const char *name = rest + 1;
    if (strcmp(req->method, "PUT") == 0) {
        if (!valid_env_name(name)) {
            http_respond_error(c, 400,
                               "secret name '%s' must be a valid environment variable "
                               "name",
                               name);
            return true;
        }
        json_t *body = api_parse_body(c, req);
        if (!body)
            return true;
        const char *value = NULL, *pattern = NULL;
        json_error_t jerr;
        if (json_unpack_ex(body, &jerr, 0, "{s:s, s?s}", "value", &value, "repo_pattern",
                           &pattern) < 0 ||
            strlen(value) > 65536) {
            http_respond_error(c, 400, "invalid request: give a value (at most 64 KiB)");
            json_decref(body);
            return true;
        }
        _cleanup_buf_ struct buf sealed = BUF_INIT;
        seal(value, strlen(value), &sealed);
        _cleanup_berr_ struct berr *e = NULL;
        int r = store_secret_put(a->store, user->id, name, &sealed, pattern, &e);
        json_decref(body);
        if (r < 0) {
            api_respond_berr(c, r, e);
            return true;
        }
        api_audit(a, user, req, "secret.set", name, NULL);
        http_respond_json(c, 200, json_pack("{s:s}", "name", name));
        return true;
    }
    if (strcmp(req->method, "DELETE") == 0) {
        if (store_secret_delete(a->store, user->id, name) < 0) {
            http_respond_error(c, 404, "secret '%s' not found", name);
            return true;
        }
        api_audit(a, user, req, "secret.delete", name, NULL);
        http_respond(c, 204, NULL, NULL, 0);
        return true;
    }
    http_respond_error(c, 405, "no route for %s %s", req->method, req->path);
    return true;
}

bool api_accounts_route(struct api *a, struct http_conn *c, struct http_request *req,
                        const struct auth_user *user, const char *path)
{
    if (strcmp(path, "/auth/logout") == 0) {
        if (strcmp(req->method, "POST") != 0) {
            http_respond_error(c, 405, "use POST");
            return true;
        }
        (void)store_token_delete(a->store, user->token_id, -1);
        auth_forget(a->auth);
        api_audit(a, user, req, "logout", user->name, NULL);
        if (user->via_cookie) {
            auth_set_cookie(c, req->secure, AUTH_SESSION_COOKIE, "", true, 0);
            auth_set_cookie(c, req->secure, AUTH_CSRF_COOKIE, "", false, 0);
        }
        http_respond(c, 204, NULL, NULL, 0);
        return true;
    }
    if (strcmp(path, "/me") == 0) {
        struct user_rec u = {0};
        if (store_user_get_by_id(a->store, user->id, &u) < 0) {
            http_respond_error(c, 404, "user not found");
            return true;
        }
        _cleanup_free_ char *created = store_time_iso(u.created_at);
        http_respond_json(
            c, 200,
            json_pack("{s:s, s:b, s:s}", "name", u.name, "admin", u.admin, "created_at", created));
        user_rec_release(&u);
        return true;
    }
    static const struct {
        const char *prefix;
        bool (*route)(struct api *, struct http_conn *, struct http_request *,
                      const struct auth_user *, const char *);
    } subtrees[] = {{"/tokens", tokens_route},
                    {"/users", users_route},
                    {"/git-credentials", gitcred_route},
                    {"/secrets", secrets_route}};
    for (size_t i = 0; i < ELEMENTSOF(subtrees); i++) {
        size_t n = strlen(subtrees[i].prefix);
        if (strncmp(path, subtrees[i].prefix, n) == 0 && (path[n] == 0 || path[n] == '/'))
            return subtrees[i].route(a, c, req, user, path + n);
    }
    if (strcmp(path, "/admin/settings") == 0)
        return settings_route(a, c, req, user);
    if (strcmp(path, "/policy") == 0)
        return policy_route(a, c, req);
    if (strcmp(path, "/audit") == 0)
        return audit_route(a, c, req, user);
    return false;
}
