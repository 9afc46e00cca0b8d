/* portproxy.c - requests for forwarded ports: routing, access, the exchange.
 *
 * Parts:
 *   - grants: the exchange's short-lived codes and the subdomain passes, in
 *     memory (a restart only sends browsers through the exchange again), kept
 *     as hashes of their secrets;
 *   - routing: a port subdomain by its Host, the path form by its prefix;
 *   - access: one check for both forms, by the port's visibility and the
 *     caller each form accepts;
 *   - the exchange's two steps: /api/v1/port-auth on the main origin and
 *     /.berth/auth on the subdomain.
 * The relay itself is proxy_request, to a TCP relay of the agent (ports.c);
 * the upstream stays open across the requests of one client connection.
 *
 * What a request needs of the workspace and the port (id, owner, state,
 * visibility) comes from a small cache rather than SQLite: an entry is read
 * again after PORT_CACHE_TTL seconds, and portproxy_forget, which the API
 * calls on every change of workspaces or ports, makes all of them stale.
 */
#include "api/portproxy.h"

#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "proxy/proxy.h"
#include "store/accounts.h"
#include "util/clock.h"
#include "util/xalloc.h"
#include "workspace/workspace.h"

/* A sandbox without allow-same-origin: the app's pages get an opaque origin,
 * so they can neither read Berth's cookies nor send them to Berth's API. */
#define PORT_SANDBOX_CSP                                                                           \
    "Content-Security-Policy: sandbox allow-scripts allow-forms allow-popups allow-modals "        \
    "allow-downloads"

#define PORT_PASS_COOKIE "berth_port"
#define PORT_AUTH_PATH "/api/v1/port-auth"
#define PORT_CODE_TTL 60
#define PORT_PASS_TTL (8 * 3600)
#define PORT_GRANTS_MAX 10000
#define PORT_WS_MAX 64
#define PORT_CACHE_TTL 5
#define PORT_CACHE_MAX 256

enum grant_kind { GRANT_CODE, GRANT_PASS };

struct grant {
    struct grant *next;
    enum grant_kind kind;
    unsigned char hash[32]; /* of the secret the browser holds */
    int64_t user_id;
    char *token_id; /* the Berth session or token it came from */
    char *ws_id;
    int port;
    time_t expires;
};

/* A workspace and port as a URL names them, as the store last showed them. */
struct port_entry {
    char *ws; /* as written in the URL */
    int port;
    char *id; /* NULL: no such workspace */
    char *name;
    char *owner;
    char *state;
    char *vis;
    int64_t fetched; /* monotonic seconds; 0: stale */
};

struct portproxy {
    struct ws_manager *m;
    struct store *store;
    struct auth *auth;
    struct ports *ports;
    char *base_domain;
    struct grant *grants; /* newest first */
    size_t n_grants;
    struct port_entry *cache;
    size_t n_cache;
};

struct portproxy *portproxy_new(struct ws_manager *m, struct auth *auth, struct ports *ports)
{
    struct portproxy *pp = xcalloc(1, sizeof(*pp));
    pp->m = m;
    pp->store = ws_manager_store(m);
    pp->auth = auth;
    pp->ports = ports;
    pp->base_domain = xstrdup("localhost");
    return pp;
}

static struct grant *grant_free(struct grant *g)
{
    if (g) {
        free(g->token_id);
        free(g->ws_id);
        free(g);
    }
    return NULL;
}

static void port_entry_release(struct port_entry *e)
{
    free(e->ws);
    free(e->id);
    free(e->name);
    free(e->owner);
    free(e->state);
    free(e->vis);
    *e = (struct port_entry){0};
}

void portproxy_free(struct portproxy *pp)
{
    if (!pp)
        return;
    for (size_t i = 0; i < pp->n_cache; i++)
        port_entry_release(&pp->cache[i]);
    free(pp->cache);
    while (pp->grants) {
        struct grant *g = pp->grants;
        pp->grants = g->next;
        grant_free(g);
    }
    free(pp->base_domain);
    free(pp);
}

void portproxy_set_base_domain(struct portproxy *pp, const char *domain)
{
    free(pp->base_domain);
    pp->base_domain = xstrdup(domain);
    for (char *p = pp->base_domain; *p; p++)
        *p = (char)tolower((unsigned char)*p);
}

/* ---- grants ---- */

static void hash_secret(const char *secret, unsigned char out[32])
{
    crypto_generichash(out, 32, (const unsigned char *)secret, strlen(secret), NULL, 0);
}

/* Drops expired grants, and the oldest when there are too many. */
static void grants_prune(struct portproxy *pp)
{
    time_t now = time(NULL);
    size_t kept = 0;
    for (struct grant **gp = &pp->grants; *gp;) {
        struct grant *g = *gp;
        if (g->expires <= now || kept >= PORT_GRANTS_MAX - 1) {
            *gp = g->next;
            grant_free(g);
            pp->n_grants--;
        } else {
            kept++;
            gp = &g->next;
        }
    }
}

/* Records a grant and returns its secret (64 hex digits), newly allocated. */
static char *grant_add(struct portproxy *pp, enum grant_kind kind, int64_t user_id,
                       const char *token_id, const char *ws_id, int port, int ttl)
{
    unsigned char raw[32];
    char *secret = xmalloc(sizeof(raw) * 2 + 1);
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(secret, sizeof(raw) * 2 + 1, raw, sizeof(raw));
    sodium_memzero(raw, sizeof(raw));
    grants_prune(pp);
    struct grant *g = xcalloc(1, sizeof(*g));
    g->kind = kind;
    hash_secret(secret, g->hash);
    g->user_id = user_id;
    g->token_id = xstrdup(token_id);
    g->ws_id = xstrdup(ws_id);
    g->port = port;
    g->expires = time(NULL) + ttl;
    g->next = pp->grants;
    pp->grants = g;
    pp->n_grants++;
    return secret;
}

/* The live grant of this kind for secret, for this workspace and port, or
 * NULL. With take, it is unlinked (single use) and the caller frees it. */
static struct grant *grant_find(struct portproxy *pp, enum grant_kind kind, const char *secret,
                                const char *ws_id, int port, bool take)
{
    if (!secret || strlen(secret) != 64)
        return NULL;
    unsigned char h[32];
    hash_secret(secret, h);
    for (struct grant **gp = &pp->grants; *gp; gp = &(*gp)->next) {
        struct grant *g = *gp;
        if (g->kind != kind || sodium_memcmp(g->hash, h, 32) != 0)
            continue;
        if (take) {
            *gp = g->next;
            pp->n_grants--;
        }
        bool ok = g->expires > time(NULL) && strcmp(g->ws_id, ws_id) == 0 && g->port == port;
        if (!ok && take)
            grant_free(g);
        return ok ? g : NULL;
    }
    return NULL;
}

/* ---- the workspace and port cache ---- */

void portproxy_forget(struct portproxy *pp)
{
    for (size_t i = 0; i < pp->n_cache; i++)
        pp->cache[i].fetched = 0;
}

/* The workspace ws (as the URL names it) and its port, read again when stale.
 * The entry lives until the next call. */
static const struct port_entry *port_lookup(struct portproxy *pp, const char *ws, int port)
{
    int64_t now = mono_stamp();
    struct port_entry *e = NULL;
    for (size_t i = 0; i < pp->n_cache && !e; i++)
        if (pp->cache[i].port == port && strcmp(pp->cache[i].ws, ws) == 0)
            e = &pp->cache[i];
    if (e && e->fetched && now - e->fetched < PORT_CACHE_TTL)
        return e;
    if (e) {
        port_entry_release(e);
    } else {
        if (pp->n_cache == PORT_CACHE_MAX) {
            for (size_t i = 0; i < pp->n_cache; i++)
                port_entry_release(&pp->cache[i]);
            pp->n_cache = 0;
        }
        if (!pp->cache)
            pp->cache = xcalloc(PORT_CACHE_MAX, sizeof(*pp->cache));
        e = &pp->cache[pp->n_cache++];
    }
    _cleanup_ws_record_ struct ws_record rec = {0};
    *e = (struct port_entry){.ws = xstrdup(ws), .port = port, .fetched = now};
    if (store_ws_get(pp->store, ws, &rec, NULL) == 0) {
        e->id = xstrdup(rec.id);
        e->name = xstrdup(rec.name);
        e->owner = rec.owner ? xstrdup(rec.owner) : NULL;
        e->state = xstrdup(rec.state);
        e->vis = store_port_visibility(pp->store, rec.id, port);
    }
    return e;
}

/* ---- small parsers and writers ---- */

static bool valid_ws_label(const char *s, size_t n)
{
    if (n == 0 || n > PORT_WS_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '-')
            return false;
    return true;
}

/* "3000" -> 3000; 0 when it is not a port number. */
static int parse_port(const char *s, size_t n)
{
    if (n == 0 || n > 5 || s[0] == '0')
        return 0;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    return v <= 65535 ? v : 0;
}

/* Matches Host "{port}-{ws}.{base}[:P]": the port, the workspace label
 * (lower-cased, newly allocated) and ":P" (or ""). */
static bool parse_port_host(const struct portproxy *pp, const struct http_request *req,
                            int *ret_port, char **ret_ws, const char **ret_suffix)
{
    const char *host = http_request_header(req, "host");
    if (!host || host[0] == '[')
        return false;
    size_t hl = strcspn(host, ":");
    size_t bl = strlen(pp->base_domain);
    if (hl < bl + 4 || host[hl - bl - 1] != '.' ||
        strncasecmp(host + hl - bl, pp->base_domain, bl) != 0)
        return false;
    _cleanup_free_ char *label = xstrndup(host, hl - bl - 1);
    for (char *p = label; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    const char *dash = strchr(label, '-');
    if (!dash)
        return false;
    int port = parse_port(label, (size_t)(dash - label));
    if (!port || !valid_ws_label(dash + 1, strlen(dash + 1)))
        return false;
    *ret_port = port;
    *ret_ws = xstrdup(dash + 1);
    *ret_suffix = host + hl;
    return true;
}

/* Percent-encodes s, keeping letters, digits, "-._~" and the characters in keep. */
static void add_escaped(struct buf *b, const char *s, const char *keep)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || strchr("-._~", *p) || (*p > 0x20 && *p < 0x7f && strchr(keep, *p)))
            buf_addch(b, (char)*p);
        else
            buf_addf(b, "%%%02X", *p);
    }
}

/* next= as a path on this host: "/..." but not "//..." (another host). */
static const char *safe_next(const char *next)
{
    if (!next || next[0] != '/' || next[1] == '/' || next[1] == '\\')
        return "/";
    for (const char *p = next; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return "/";
    return next;
}

static void redirect(struct http_conn *c, const char *location)
{
    http_conn_add_header(c, "Location: %s", location);
    http_conn_add_header(c, "Referrer-Policy: no-referrer");
    http_respond(c, 302, NULL, NULL, 0);
}

/* A browser finding its way (a page load), rather than a program. */
static bool wants_redirect(const struct http_request *req)
{
    const char *accept = http_request_header(req, "accept");
    if (strcmp(req->method, "GET") != 0 || req->upgrade ||
        http_request_header(req, "authorization"))
        return false;
    return !accept || !strstr(accept, "application/json") || strstr(accept, "text/html");
}

/* ---- access ---- */

/* The user behind a berth_port cookie, while the session it came from lives. */
static int pass_user(struct portproxy *pp, const struct http_request *req, const char *ws_id,
                     int port, char **ret_name)
{
    _cleanup_free_ char *secret = auth_request_cookie(req, PORT_PASS_COOKIE);
    struct grant *g = grant_find(pp, GRANT_PASS, secret, ws_id, port, false);
    struct auth_user u = {0};
    if (!g || auth_token_user(pp->auth, g->token_id, &u) < 0)
        return -EACCES;
    bool ok = u.id == g->user_id;
    if (ok)
        *ret_name = TAKE_PTR(u.name);
    auth_user_release(&u);
    return ok ? 0 : -EACCES;
}

/* Who asks, by the credentials this URL form accepts: 0 and the user, or
 * -EACCES (nobody) or -EPERM (a cross-site cookie request). */
static int port_caller(struct portproxy *pp, const struct http_request *req, bool subdomain,
                       const char *ws_id, int port, struct auth_user *ret)
{
    if (subdomain && !http_request_header(req, "authorization")) {
        char *name = NULL;
        int r = pass_user(pp, req, ws_id, port, &name);
        if (r == 0)
            *ret = (struct auth_user){.name = name, .via_cookie = true};
        return r;
    }
    _cleanup_berr_ struct berr *e = NULL;
    return auth_request(pp->auth, req, AUTH_ORIGIN_ONLY, ret, &e);
}

/* What the URL a request came in on names. */
struct port_url {
    const char *ws; /* as written in the URL */
    int port;
    bool subdomain;
    const char *host_suffix; /* ":P" of a subdomain's Host */
};

static void deny_anonymous(struct portproxy *pp, struct http_conn *c,
                           const struct http_request *req, const struct port_url *u)
{
    if (!wants_redirect(req)) {
        http_conn_add_header(c, "WWW-Authenticate: Bearer realm=\"berth\"");
        http_respond_error(c, 401, "authentication required: log in first");
        return;
    }
    struct buf loc = BUF_INIT;
    if (u->subdomain) {
        /* scheme-relative: the main origin, by the scheme the browser used */
        buf_addf(&loc, "//%s%s" PORT_AUTH_PATH "?ws=%s&port=%d&next=", pp->base_domain,
                 u->host_suffix, u->ws, u->port);
        add_escaped(&loc, req->raw_target, "");
    } else {
        buf_adds(&loc, "/login.html?next=");
        add_escaped(&loc, req->raw_target, "");
    }
    redirect(c, loc.buf);
    buf_release(&loc);
}

/* 0: the caller may use the port; else the answer was given. */
static int check_access(struct portproxy *pp, struct http_conn *c, const struct http_request *req,
                        const struct port_url *u, const struct port_entry *rec)
{
    const char *vis = rec->vis;
    if (vis && strcmp(vis, "public") == 0)
        return 0;
    struct auth_user user = {0};
    int r = port_caller(pp, req, u->subdomain, rec->id ? rec->id : "", u->port, &user);
    if (r == -EACCES) {
        deny_anonymous(pp, c, req, u);
        return r;
    }
    if (r < 0) {
        http_respond_error(c, 403, "cross-site request refused");
        return r;
    }
    /* an unknown workspace looks like a private port of someone else's */
    bool ok =
        vis && (strcmp(vis, "org") == 0 || (rec->owner && strcmp(rec->owner, user.name) == 0));
    auth_user_release(&user);
    if (!ok) {
        http_respond_error(c, 404, "not found");
        return -ENOENT;
    }
    return 0;
}

/* ---- relaying ---- */

static void enter_port(struct portproxy *pp, struct http_conn *c, struct http_request *req,
                       const struct port_url *u, const char *target)
{
    const struct port_entry *rec = port_lookup(pp, u->ws, u->port);
    if (check_access(pp, c, req, u, rec) < 0)
        return;
    if (strcmp(rec->state, "running") != 0) {
        http_respond_error(c, 503, "workspace '%s' is %s", rec->name, rec->state);
        return;
    }
    ws_activity(pp->m, rec->id, WS_ACT_PORT);
    _cleanup_free_ char *key = xasprintf("%s:%d", rec->id, u->port);
    struct proxy_route route = {.key = key,
                                .target = target,
                                .header = PORT_SANDBOX_CSP,
                                .open = ports_open,
                                .data = pp->ports};
    proxy_request(c, req, &route);
}

/* ---- the exchange ---- */

/* GET /api/v1/port-auth?ws=&port=&next= on the main origin. */
static void port_auth(struct portproxy *pp, struct http_conn *c, struct http_request *req)
{
    _cleanup_free_ char *ws = http_request_query(req, "ws");
    _cleanup_free_ char *port_s = http_request_query(req, "port");
    _cleanup_free_ char *next = http_request_query(req, "next");
    int port = port_s ? parse_port(port_s, strlen(port_s)) : 0;
    if (strcmp(req->method, "GET") != 0 || !ws || !valid_ws_label(ws, strlen(ws)) || !port) {
        http_respond_error(c, 400, "use GET " PORT_AUTH_PATH "?ws=WORKSPACE&port=PORT&next=PATH");
        return;
    }
    struct auth_user user = {0};
    _cleanup_berr_ struct berr *e = NULL;
    int r = auth_request(pp->auth, req, AUTH_ORIGIN_ONLY, &user, &e);
    if (r == -EACCES) {
        struct buf loc = BUF_INIT;
        buf_adds(&loc, "/login.html?next=");
        add_escaped(&loc, req->raw_target, "");
        redirect(c, loc.buf);
        buf_release(&loc);
        return;
    }
    if (r < 0) {
        http_respond_error(c, 403, "%s", berr_msg(e));
        return;
    }
    _cleanup_ws_record_ struct ws_record rec = {0};
    bool found = store_ws_get(pp->store, ws, &rec, NULL) == 0;
    _cleanup_free_ char *vis = found ? store_port_visibility(pp->store, rec.id, port) : NULL;
    bool ok = found &&
              (strcmp(vis, "private") != 0 || strcmp(rec.owner ? rec.owner : "", user.name) == 0);
    if (!ok) {
        auth_user_release(&user);
        http_respond_error(c, 404, "not found");
        return;
    }
    _cleanup_free_ char *code =
        grant_add(pp, GRANT_CODE, user.id, user.token_id, rec.id, port, PORT_CODE_TTL);
    auth_user_release(&user);
    const char *host = http_request_header(req, "host");
    const char *suffix = host && host[0] != '[' ? host + strcspn(host, ":") : "";
    struct buf loc = BUF_INIT;
    buf_addf(&loc, "//%d-%s.%s%s/.berth/auth?code=%s&next=", port, ws, pp->base_domain, suffix,
             code);
    add_escaped(&loc, safe_next(next), "/");
    redirect(c, loc.buf);
    buf_release(&loc);
}

/* GET /.berth/auth?code=&next= on a port's subdomain: the code for a cookie. */
static void subdomain_auth(struct portproxy *pp, struct http_conn *c, struct http_request *req,
                           const struct port_url *u)
{
    _cleanup_free_ char *code = http_request_query(req, "code");
    _cleanup_free_ char *next = http_request_query(req, "next");
    _cleanup_ws_record_ struct ws_record rec = {0};
    struct grant *g = NULL;
    if (store_ws_get(pp->store, u->ws, &rec, NULL) == 0)
        g = grant_find(pp, GRANT_CODE, code, rec.id, u->port, true);
    if (!g) {
        http_respond_error(c, 403, "this sign-in link is invalid or has expired");
        return;
    }
    _cleanup_free_ char *pass =
        grant_add(pp, GRANT_PASS, g->user_id, g->token_id, rec.id, u->port, PORT_PASS_TTL);
    grant_free(g);
    auth_set_cookie(c, req->secure, PORT_PASS_COOKIE, pass, true, PORT_PASS_TTL);
    struct buf loc = BUF_INIT;
    add_escaped(&loc, safe_next(next), "/?&=%:@!$'()*+,;");
    redirect(c, loc.buf);
    buf_release(&loc);
}

/* ---- routing ---- */

/* "/w/{ws}/ports/{rest}": the workspace (newly allocated) and rest. */
static bool parse_port_path(const char *path, char **ret_ws, const char **ret_rest)
{
    if (strncmp(path, "/w/", 3) != 0)
        return false;
    const char *slash = strchr(path + 3, '/');
    if (!slash || slash == path + 3 || strncmp(slash, "/ports/", 7) != 0)
        return false;
    *ret_ws = xstrndup(path + 3, (size_t)(slash - path - 3));
    *ret_rest = slash + 7;
    return true;
}

bool portproxy_wants_stream(const struct http_request *req, void *data)
{
    struct portproxy *pp = data;
    int port;
    _cleanup_free_ char *ws = NULL;
    const char *rest, *suffix;
    if (parse_port_host(pp, req, &port, &ws, &suffix))
        return true;
    return parse_port_path(req->path, &ws, &rest);
}

static void path_form(struct portproxy *pp, struct http_conn *c, struct http_request *req,
                      const char *ws, const char *rest)
{
    /* rest: "PORT" or "PORT/..." */
    size_t digits = strspn(rest, "0123456789");
    int port = parse_port(rest, digits);
    if (!port || (rest[digits] && rest[digits] != '/')) {
        http_respond_error(c, 404, "not found");
        return;
    }
    if (!rest[digits]) {
        _cleanup_free_ char *loc = xasprintf("%s/", req->path);
        redirect(c, loc);
        return;
    }
    /* "/w/WS/ports/PORT/x?y" -> "/x?y" */
    const char *t = strstr(req->raw_target, "/ports/");
    t = t ? strchr(t + 7, '/') : NULL;
    struct port_url u = {.ws = ws, .port = port};
    enter_port(pp, c, req, &u, t ? t : "/");
}

bool portproxy_route(struct portproxy *pp, struct http_conn *c, struct http_request *req)
{
    int port;
    _cleanup_free_ char *ws = NULL;
    const char *rest, *suffix;
    if (parse_port_host(pp, req, &port, &ws, &suffix)) {
        struct port_url u = {.ws = ws, .port = port, .subdomain = true, .host_suffix = suffix};
        if (strcmp(req->path, "/.berth/auth") == 0)
            subdomain_auth(pp, c, req, &u);
        else if (strncmp(req->path, "/.berth/", 8) == 0)
            http_respond_error(c, 404, "not found");
        else
            enter_port(pp, c, req, &u, req->raw_target[0] == '/' ? req->raw_target : "/");
        return true;
    }
    if (parse_port_path(req->path, &ws, &rest)) {
        path_form(pp, c, req, ws, rest);
        return true;
    }
    if (strcmp(req->path, PORT_AUTH_PATH) == 0) {
        port_auth(pp, c, req);
        return true;
    }
    return false;
}
