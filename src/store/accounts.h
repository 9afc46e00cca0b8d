/* accounts.h - users, tokens, the audit log, settings, git credentials and
 * secrets in the store.
 *
 * The store keeps only what it is given: token hashes (never tokens), password
 * hashes (never passwords), and git credentials and secrets as sealed blobs
 * (util/seal.h); turning them back into plaintext is the caller's business.
 */
#ifndef BERTH_STORE_ACCOUNTS_H
#define BERTH_STORE_ACCOUNTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"
#include "util/buf.h"

struct user_rec {
    int64_t id;
    char *name;
    char *password_hash;
    bool admin;
    bool disabled;
    int64_t created_at;
};

void user_rec_release(struct user_rec *u);

int64_t store_user_count(struct store *s);
/* -EEXIST when the name is taken. */
int store_user_insert(struct store *s, const char *name, const char *password_hash, bool admin,
                      struct berr **reterr);
/* -ENOENT when there is no such user. */
int store_user_get(struct store *s, const char *name, struct user_rec *ret, struct berr **reterr);
int store_user_get_by_id(struct store *s, int64_t id, struct user_rec *ret);
int store_user_list_json(struct store *s, json_t **ret);
int store_user_set_disabled(struct store *s, const char *name, bool disabled, struct berr **reterr);

/* A token: `id` is public (it names the token), `hash` the 32-byte hash of
 * its secret part. kind is "session", "cli" or "api". */
struct token_rec {
    char *id;
    int64_t user_id;
    char *kind;
    char *name;
    unsigned char hash[32];
    char *csrf;
    int64_t expires_at; /* 0: never */
};

void token_rec_release(struct token_rec *t);
int store_token_insert(struct store *s, const struct token_rec *t, struct berr **reterr);
/* -ENOENT when there is no such token. */
int store_token_get(struct store *s, const char *id, struct token_rec *ret);
void store_token_touch(struct store *s, const char *id);
/* The user's tokens of kind "api" and "cli" as {id, name, kind, created_at, last_used_at}. */
int store_token_list_json(struct store *s, int64_t user_id, json_t **ret);
/* Deletes a token; user_id >= 0 restricts it to that user's. -ENOENT if none. */
int store_token_delete(struct store *s, const char *id, int64_t user_id);

void store_audit_add(struct store *s, const char *actor, const char *action, const char *target,
                     const char *detail, const char *address);
int store_audit_json(struct store *s, int limit, json_t **ret);

int64_t store_setting_int(struct store *s, const char *key, int64_t fallback);
int store_setting_set_int(struct store *s, const char *key, int64_t value);
/* A text setting (newly allocated), or NULL when unset. */
char *store_setting_text(struct store *s, const char *key);
int store_setting_set_text(struct store *s, const char *key, const char *value);
/* Sets a setting only when it has no value yet (flags give defaults). */
int store_setting_default_int(struct store *s, const char *key, int64_t value);

/* Git credentials: url is scheme://host[:port]; secret is a sealed blob. */
int store_gitcred_put(struct store *s, int64_t user_id, const char *url, const char *username,
                      const struct buf *secret, struct berr **reterr);
int store_gitcred_list_json(struct store *s, int64_t user_id, json_t **ret);
int store_gitcred_delete(struct store *s, int64_t user_id, int64_t id);
/* Finds the credential for url (exact scheme://host[:port]); -ENOENT if none. */
int store_gitcred_find(struct store *s, int64_t user_id, const char *url, char **ret_username,
                       struct buf *ret_secret);

/* Secrets: value is a sealed blob. */
int store_secret_put(struct store *s, int64_t user_id, const char *name, const struct buf *value,
                     const char *repo_pattern, struct berr **reterr);
int store_secret_list_json(struct store *s, int64_t user_id, json_t **ret);
int store_secret_delete(struct store *s, int64_t user_id, const char *name);

struct secret_rec {
    char *name;
    char *repo_pattern;
    struct buf value; /* sealed */
};
/* All of the user's secrets, in a new array. */
int store_secret_all(struct store *s, int64_t user_id, struct secret_rec **ret, size_t *ret_n);
void secret_recs_free(struct secret_rec *list, size_t n);

/* A forwarded port's visibility ("private" unless set); newly allocated. */
char *store_port_visibility(struct store *s, const char *ws_id, int port);
int store_port_set_visibility(struct store *s, const char *ws_id, int port, const char *vis);
/* The ports of ws_id whose visibility is not private, in order. */
int store_port_shared(struct store *s, const char *ws_id, int **ret_ports, size_t *ret_n);

/* Counts the owner's workspaces: all of them, and those running or on their way. */
int store_ws_count(struct store *s, const char *owner, int64_t *ret_all, int64_t *ret_active);

#endif
