/* auth.h - who is asking: passwords, tokens, sessions, CSRF and login throttling.
 *
 * Tokens look like "berth_<id>_<secret>": the id (16 hex digits) finds the row,
 * the secret (64 hex digits, 256 random bits) is checked against its stored
 * BLAKE2b hash in constant time. Only hashes are stored. Browser sessions are
 * the same tokens, carried in an HttpOnly cookie, with a CSRF token that state-
 * changing requests must echo in the X-Berth-CSRF header.
 *
 * Over HTTPS (http_request.secure: TLS here or at the trusted proxy) Berth's
 * cookies are Secure and named with the __Host- prefix, which browsers accept
 * only from a secure origin, host-only, for Path=/: no port subdomain can set
 * or shadow them. A request over HTTPS is read only under the prefixed names.
 *
 * Password hashing (argon2id) is deliberately slow: call auth_hash_password
 * and auth_verify_password only off the event loop.
 */
#ifndef BERTH_AUTH_H
#define BERTH_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "http/server.h"
#include "store/store.h"
#include "util/err.h"

#define AUTH_SESSION_COOKIE "berth_session"
#define AUTH_CSRF_COOKIE "berth_csrf"
#define AUTH_CSRF_HEADER "x-berth-csrf"
#define AUTH_SESSION_TTL (7 * 24 * 3600)
#define AUTH_SECURE_PREFIX "__Host-"

struct auth;

/* The authenticated caller of one request. */
struct auth_user {
    int64_t id;
    char *name;
    bool admin;
    char *token_id;
    bool via_cookie;
};

void auth_user_release(struct auth_user *u);

struct auth *auth_new(struct store *s);
void auth_free(struct auth *a);

/* Finds the caller of req. Returns 0 and fills *ret; -EACCES (401: no or bad
 * credentials, message in *reterr) or -EPERM (403: CSRF check failed).
 * With AUTH_ORIGIN_ONLY, a cookie-authenticated request needs no CSRF header
 * but its Origin, when present, must match its Host (for the proxied IDE and
 * WebSockets, whose requests Berth's pages do not make). */
#define AUTH_CSRF 0
#define AUTH_ORIGIN_ONLY 1
int auth_request(struct auth *a, const struct http_request *req, int mode, struct auth_user *ret,
                 struct berr **reterr);

/* The user of the token token_id while it lives (not expired, owner enabled):
 * 0 and *ret, or -EACCES. Like auth_request, it answers from a cache that is
 * read again after a few seconds. */
int auth_token_user(struct auth *a, const char *token_id, struct auth_user *ret);

/* Makes the cache read every token and user again: call after revoking a
 * token or changing a user, so the change holds from the next request on. */
void auth_forget(struct auth *a);

/* Makes a token for the user and stores its hash. *ret_token is the whole
 * token (shown once), *ret_csrf the CSRF token for sessions (else NULL). */
int auth_issue_token(struct auth *a, int64_t user_id, const char *kind, const char *name,
                     int64_t ttl, char **ret_token, char **ret_id, char **ret_csrf,
                     struct berr **reterr);

/* Blocking (argon2id): a new hash string, or NULL on failure. */
char *auth_hash_password(const char *password);
/* Blocking: whether password matches hash (a NULL hash spends the same time). */
bool auth_verify_password(const char *hash, const char *password);
/* A random password of 20 characters a person can type. */
char *auth_random_password(void);

/* Login throttling, per account and per address. Returns seconds to wait, or 0. */
int auth_throttle_check(struct auth *a, const char *user, const char *address);
void auth_throttle_failure(struct auth *a, const char *user, const char *address);
void auth_throttle_success(struct auth *a, const char *user, const char *address);

/* Creates the first admin when there are no users: the password comes from
 * BERTH_ADMIN_PASSWORD or is generated and returned in *ret_generated. */
int auth_bootstrap(struct auth *a, char **ret_generated, struct berr **reterr);

/* Valid user names: 1-32 of a-z 0-9 . _ -, starting with a letter. */
bool auth_valid_username(const char *name);

/* The value of cookie `name` in a Cookie header (may be NULL), newly
 * allocated, or NULL. */
char *auth_cookie_value(const char *header, const char *name);

/* The value of Berth's cookie `name` (AUTH_SESSION_COOKIE, ...) on req,
 * under the name it has there (AUTH_SECURE_PREFIX over HTTPS), newly
 * allocated, or NULL. */
char *auth_request_cookie(const struct http_request *req, const char *name);
/* Sets Berth's cookie `name` in the next answer on c: Path=/, SameSite=Lax,
 * Max-Age=max_age (0: removes it), HttpOnly unless the pages' scripts read
 * it; for a request over HTTPS (`secure`) Secure, under the prefixed name. */
void auth_set_cookie(struct http_conn *c, bool secure, const char *name, const char *value,
                     bool http_only, int max_age);

#endif
