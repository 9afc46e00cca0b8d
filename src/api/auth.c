/* auth.c - authentication of requests, token issue, password hashing, throttling.
 *
 * Throttling keeps, per key ("u:NAME", "a:ADDRESS"), the failures of the last
 * window; from the fifth failure on, the key is blocked for 30 s, doubling with
 * each further failure up to 15 minutes. A success clears the account's key.
 * The table lives in memory: a restart forgets it, which only gives an
 * attacker one more round of five guesses.
 *
 * The cache keeps, per token id, what checking a token needs (its hash, kind,
 * expiry, CSRF token) and its enabled owner, so that the requests of the port
 * proxy do not each read SQLite. An entry is read again after AUTH_CACHE_TTL
 * seconds; auth_forget makes every entry stale at once, and the API calls it
 * after each change of tokens or users, so a revoked token or a disabled user
 * is refused on the next request. last_used_at is written at most once per
 * AUTH_TOUCH_INTERVAL seconds per token.
 */
#include "api/auth.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/accounts.h"
#include "util/clock.h"
#include "util/xalloc.h"

#define THROTTLE_FREE_FAILURES 5
#define THROTTLE_BASE_S 30
#define THROTTLE_MAX_S (15 * 60)
#define THROTTLE_WINDOW_S (15 * 60)

#define AUTH_CACHE_TTL 5
#define AUTH_CACHE_MAX 512
#define AUTH_TOUCH_INTERVAL 60

struct throttle {
    char *key;
    int failures;
    time_t last;
    time_t blocked_until;
};

/* A token as the store last showed it, with its owner. */
struct cached_token {
    char id[17];
    unsigned char hash[32];
    bool session;
    char *csrf;
    int64_t expires_at;
    int64_t user_id;
    char *user_name;
    bool admin;
    bool disabled;   /* the owner is disabled or gone */
    int64_t fetched; /* monotonic seconds; 0: stale */
    int64_t touched; /* monotonic seconds of the last last_used_at write */
};

struct auth {
    struct store *store;
    struct throttle *t;
    size_t n;
    struct cached_token *cache;
    size_t n_cache;
};

void auth_user_release(struct auth_user *u)
{
    free(u->name);
    free(u->token_id);
    *u = (struct auth_user){0};
}

struct auth *auth_new(struct store *s)
{
    if (sodium_init() < 0)
        abort();
    struct auth *a = xcalloc(1, sizeof(*a));
    a->store = s;
    return a;
}

static void cached_token_release(struct cached_token *c)
{
    free(c->csrf);
    free(c->user_name);
    *c = (struct cached_token){0};
}

void auth_free(struct auth *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        free(a->t[i].key);
    free(a->t);
    for (size_t i = 0; i < a->n_cache; i++)
        cached_token_release(&a->cache[i]);
    free(a->cache);
    free(a);
}

bool auth_valid_username(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 32 || !islower((unsigned char)name[0]))
        return false;
    for (const char *p = name; *p; p++)
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && !strchr("._-", *p))
            return false;
    return true;
}

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    sodium_bin2hex(out, n * 2 + 1, in, n);
}

static void hash_secret(const char *secret, unsigned char out[32])
{
    crypto_generichash(out, 32, (const unsigned char *)secret, strlen(secret), NULL, 0);
}

/* Splits "berth_<16 hex>_<64 hex>" into id and secret; false if malformed. */
static bool parse_token(const char *tok, char id[17], char secret[65])
{
    if (strncmp(tok, "berth_", 6) != 0 || strlen(tok) != 6 + 16 + 1 + 64 || tok[22] != '_')
        return false;
    for (int i = 6; i < 6 + 16 + 1 + 64; i++)
        if (i != 22 && !isxdigit((unsigned char)tok[i]))
            return false;
    memcpy(id, tok + 6, 16);
    id[16] = 0;
    memcpy(secret, tok + 23, 64);
    secret[64] = 0;
    return true;
}

int auth_issue_token(struct auth *a, int64_t user_id, const char *kind, const char *name,
                     int64_t ttl, char **ret_token, char **ret_id, char **ret_csrf,
                     struct berr **reterr)
{
    unsigned char raw_id[8], raw_secret[32], raw_csrf[16];
    char id[17], secret[65], csrf[33];
    randombytes_buf(raw_id, sizeof(raw_id));
    randombytes_buf(raw_secret, sizeof(raw_secret));
    randombytes_buf(raw_csrf, sizeof(raw_csrf));
    to_hex(raw_id, sizeof(raw_id), id);
    to_hex(raw_secret, sizeof(raw_secret), secret);
    to_hex(raw_csrf, sizeof(raw_csrf), csrf);
    bool session = strcmp(kind, "session") == 0;
    struct token_rec t = {.id = id,
                          .user_id = user_id,
                          .kind = (char *)kind,
                          .name = (char *)name,
                          .csrf = session ? csrf : NULL,
                          .expires_at = ttl > 0 ? store_now() + ttl : 0};
    hash_secret(secret, t.hash);
    int r = store_token_insert(a->store, &t, reterr);
    if (r < 0)
        return r;
    *ret_token = xasprintf("berth_%s_%s", id, secret);
    if (ret_id)
        *ret_id = xstrdup(id);
    if (ret_csrf)
        *ret_csrf = session ? xstrdup(csrf) : NULL;
    sodium_memzero(secret, sizeof(secret));
    sodium_memzero(raw_secret, sizeof(raw_secret));
    return 0;
}

/* ---- the token cache ---- */

void auth_forget(struct auth *a)
{
    for (size_t i = 0; i < a->n_cache; i++)
        a->cache[i].fetched = 0;
}

static void cache_drop(struct auth *a, struct cached_token *c)
{
    cached_token_release(c);
    *c = a->cache[--a->n_cache];
}

/* The cached token id, read again from the store when stale, or NULL when
 * there is no such token. */
static struct cached_token *cache_get(struct auth *a, const char *id)
{
    int64_t now = mono_stamp();
    struct cached_token *c = NULL;
    for (size_t i = 0; i < a->n_cache && !c; i++)
        if (strcmp(a->cache[i].id, id) == 0)
            c = &a->cache[i];
    if (c && c->fetched && now - c->fetched < AUTH_CACHE_TTL)
        return c;
    struct token_rec t = {0};
    struct user_rec u = {0};
    if (store_token_get(a->store, id, &t) < 0) {
        if (c)
            cache_drop(a, c);
        return NULL;
    }
    bool disabled = store_user_get_by_id(a->store, t.user_id, &u) < 0 || u.disabled;
    int64_t touched = 0;
    if (c) {
        touched = c->touched;
        cached_token_release(c);
    } else {
        if (a->n_cache == AUTH_CACHE_MAX) {
            /* keep it small: stale entries go first, then any */
            for (size_t i = 0; i < a->n_cache;)
                if (now - a->cache[i].fetched >= AUTH_CACHE_TTL)
                    cache_drop(a, &a->cache[i]);
                else
                    i++;
            while (a->n_cache == AUTH_CACHE_MAX)
                cache_drop(a, &a->cache[0]);
        }
        if (!a->cache)
            a->cache = xcalloc(AUTH_CACHE_MAX, sizeof(*a->cache));
        c = &a->cache[a->n_cache++];
    }
    *c = (struct cached_token){.session = strcmp(t.kind, "session") == 0,
                               .csrf = TAKE_PTR(t.csrf),
                               .expires_at = t.expires_at,
                               .user_id = t.user_id,
                               .user_name = TAKE_PTR(u.name),
                               .admin = u.admin,
                               .disabled = disabled,
                               .fetched = now,
                               .touched = touched};
    snprintf(c->id, sizeof(c->id), "%s", id);
    memcpy(c->hash, t.hash, sizeof(c->hash));
    token_rec_release(&t);
    user_rec_release(&u);
    return c;
}

static bool cache_live(const struct cached_token *c)
{
    return !c->expires_at || c->expires_at > store_now();
}

int auth_token_user(struct auth *a, const char *token_id, struct auth_user *ret)
{
    struct cached_token *c = cache_get(a, token_id);
    if (!c || !cache_live(c) || c->disabled)
        return -EACCES;
    *ret = (struct auth_user){.id = c->user_id,
                              .name = xstrdup(c->user_name),
                              .admin = c->admin,
                              .token_id = xstrdup(c->id),
                              .via_cookie = c->session};
    return 0;
}

char *auth_cookie_value(const char *header, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = header; p && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > n && strncmp(p, name, n) == 0 && p[n] == '=')
            return xstrndup(p + n + 1, len - n - 1);
        p = end;
    }
    return NULL;
}

char *auth_request_cookie(const struct http_request *req, const char *name)
{
    _cleanup_free_ char *full = xasprintf("%s%s", req->secure ? AUTH_SECURE_PREFIX : "", name);
    return auth_cookie_value(http_request_header(req, "cookie"), full);
}

void auth_set_cookie(struct http_conn *c, bool secure, const char *name, const char *value,
                     bool http_only, int max_age)
{
    http_conn_add_header(c, "Set-Cookie: %s%s=%s; Path=/;%s SameSite=Lax; Max-Age=%d%s",
                         secure ? AUTH_SECURE_PREFIX : "", name, value,
                         http_only ? " HttpOnly;" : "", max_age, secure ? "; Secure" : "");
}

static bool unsafe_method(const char *m)
{
    return strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0 && strcmp(m, "OPTIONS") != 0;
}

/* The host part of an Origin ("http://host:port" -> "host:port"). */
static const char *origin_host(const char *origin)
{
    const char *p = strstr(origin, "://");
    return p ? p + 3 : origin;
}

int auth_request(struct auth *a, const struct http_request *req, int mode, struct auth_user *ret,
                 struct berr **reterr)
{
    const char *authz = http_request_header(req, "authorization");
    _cleanup_free_ char *cookie_tok = NULL;
    const char *tok = NULL;
    bool via_cookie = false;
    if (authz) {
        if (strncmp(authz, "Bearer ", 7) != 0 || !authz[7])
            return berr_make(reterr, EACCES, "malformed Authorization header: use 'Bearer TOKEN'");
        tok = authz + 7;
    } else {
        cookie_tok = auth_request_cookie(req, AUTH_SESSION_COOKIE);
        tok = cookie_tok;
        via_cookie = true;
    }
    if (!tok)
        return berr_make(reterr, EACCES, "authentication required: log in first");
    char id[17], secret[65];
    if (!parse_token(tok, id, secret))
        return berr_make(reterr, EACCES, "invalid or revoked token");
    unsigned char h[32];
    hash_secret(secret, h);
    sodium_memzero(secret, sizeof(secret));
    struct cached_token *t = cache_get(a, id);
    /* a session token only works as a cookie, an API token only as a header */
    if (!t || sodium_memcmp(h, t->hash, 32) != 0 || !cache_live(t) || t->session != via_cookie)
        return berr_make(reterr, EACCES, "invalid or revoked token");
    if (t->disabled)
        return berr_make(reterr, EACCES, "this account is disabled");
    if (via_cookie && (unsafe_method(req->method) || mode == AUTH_ORIGIN_ONLY)) {
        const char *sent = http_request_header(req, AUTH_CSRF_HEADER);
        const char *origin = http_request_header(req, "origin");
        const char *host = http_request_header(req, "host");
        bool csrf_ok =
            mode == AUTH_ORIGIN_ONLY || (sent && t->csrf && strlen(sent) == strlen(t->csrf) &&
                                         sodium_memcmp(sent, t->csrf, strlen(t->csrf)) == 0);
        if (csrf_ok && origin && (!host || strcmp(origin_host(origin), host) != 0))
            csrf_ok = false;
        if (!csrf_ok)
            return berr_make(reterr, EPERM,
                             "cross-site request refused: send the X-Berth-CSRF header");
    }
    int64_t now = mono_stamp();
    if (!t->touched || now - t->touched >= AUTH_TOUCH_INTERVAL) {
        store_token_touch(a->store, id);
        t->touched = now;
    }
    *ret = (struct auth_user){.id = t->user_id,
                              .name = xstrdup(t->user_name),
                              .admin = t->admin,
                              .token_id = xstrdup(id),
                              .via_cookie = via_cookie};
    return 0;
}

char *auth_hash_password(const char *password)
{
    char out[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        return NULL;
    return xstrdup(out);
}

static char *dummy_hash;

static void make_dummy_hash(void)
{
    dummy_hash = auth_hash_password("berth-dummy-password");
}

bool auth_verify_password(const char *hash, const char *password)
{
    if (!hash) {
        /* spend the same time as a real check, so timing does not tell
         * whether the account exists */
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        (void)pthread_once(&once, make_dummy_hash);
        if (dummy_hash && crypto_pwhash_str_verify(dummy_hash, password, strlen(password)) == 0)
            return false;
        return false;
    }
    return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}

char *auth_random_password(void)
{
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    char *p = xmalloc(21);
    for (int i = 0; i < 20; i++)
        p[i] = alphabet[randombytes_uniform(sizeof(alphabet) - 1)];
    p[20] = 0;
    return p;
}

static struct throttle *throttle_find(struct auth *a, const char *key, bool create)
{
    time_t now = time(NULL);
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->t[i].key, key) == 0)
            return &a->t[i];
    }
    if (!create)
        return NULL;
    /* drop stale entries so the table stays small */
    for (size_t i = 0; i < a->n;) {
        if (now - a->t[i].last > THROTTLE_WINDOW_S && now >= a->t[i].blocked_until) {
            free(a->t[i].key);
            a->t[i] = a->t[--a->n];
        } else {
            i++;
        }
    }
    a->t = xrealloc(a->t, (a->n + 1) * sizeof(*a->t));
    a->t[a->n] = (struct throttle){.key = xstrdup(key), .last = now};
    return &a->t[a->n++];
}

int auth_throttle_check(struct auth *a, const char *user, const char *address)
{
    time_t now = time(NULL);
    int wait = 0;
    const char *prefixes[] = {"u:", "a:"};
    const char *values[] = {user, address};
    for (int i = 0; i < 2; i++) {
        if (!values[i])
            continue;
        _cleanup_free_ char *key = xasprintf("%s%s", prefixes[i], values[i]);
        struct throttle *t = throttle_find(a, key, false);
        if (t && t->blocked_until > now && (int)(t->blocked_until - now) > wait)
            wait = (int)(t->blocked_until - now);
    }
    return wait;
}

void auth_throttle_failure(struct auth *a, const char *user, const char *address)
{
    time_t now = time(NULL);
    const char *prefixes[] = {"u:", "a:"};
    const char *values[] = {user, address};
    for (int i = 0; i < 2; i++) {
        if (!values[i])
            continue;
        _cleanup_free_ char *key = xasprintf("%s%s", prefixes[i], values[i]);
        struct throttle *t = throttle_find(a, key, true);
        if (now - t->last > THROTTLE_WINDOW_S)
            t->failures = 0;
        t->failures++;
        t->last = now;
        /* addresses get more room: many people may share one */
        int free_failures = i == 0 ? THROTTLE_FREE_FAILURES : THROTTLE_FREE_FAILURES * 4;
        if (t->failures >= free_failures) {
            int shift = t->failures - free_failures;
            long block = shift > 5 ? THROTTLE_MAX_S : (long)THROTTLE_BASE_S << shift;
            if (block > THROTTLE_MAX_S)
                block = THROTTLE_MAX_S;
            t->blocked_until = now + block;
        }
    }
}

void auth_throttle_success(struct auth *a, const char *user, const char *address)
{
    (void)address;
    _cleanup_free_ char *key = xasprintf("u:%s", user);
    struct throttle *t = throttle_find(a, key, false);
    if (t) {
        t->failures = 0;
        t->blocked_until = 0;
    }
}

int auth_bootstrap(struct auth *a, char **ret_generated, struct berr **reterr)
{
    *ret_generated = NULL;
    if (store_user_count(a->store) != 0)
        return 0;
    const char *env = getenv("BERTH_ADMIN_PASSWORD");
    _cleanup_free_ char *generated = NULL;
    if (!env || !*env)
        generated = auth_random_password();
    _cleanup_free_ char *hash = auth_hash_password(generated ? generated : env);
    if (!hash)
        return berr_make(reterr, ENOMEM, "cannot hash the admin password");
    int r = store_user_insert(a->store, "admin", hash, true, reterr);
    if (r < 0)
        return r;
    store_audit_add(a->store, NULL, "user.create", "admin", "first start", NULL);
    *ret_generated = TAKE_PTR(generated);
    return 1;
}
