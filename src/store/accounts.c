/* accounts.c - SQL for users, tokens, audit, settings, git credentials, secrets. */
#include "store/accounts.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "store/store-internal.h"
#include "util/xalloc.h"

void user_rec_release(struct user_rec *u)
{
    free(u->name);
    free(u->password_hash);
    *u = (struct user_rec){0};
}

void token_rec_release(struct token_rec *t)
{
    free(t->id);
    free(t->kind);
    free(t->name);
    free(t->csrf);
    *t = (struct token_rec){0};
}

static json_t *time_or_null(sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return json_null();
    char *t = store_time_iso(sqlite3_column_int64(st, i));
    json_t *j = json_string(t);
    free(t);
    return j;
}

static json_t *text_or_null(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? json_string((const char *)t) : json_null();
}

int64_t store_user_count(struct store *s)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "SELECT COUNT(*) FROM users", &st) < 0 || sqlite3_step(st) != SQLITE_ROW)
        return -EIO;
    return sqlite3_column_int64(st, 0);
}

int store_user_insert(struct store *s, const char *name, const char *password_hash, bool admin,
                      struct berr **reterr)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "INSERT INTO users (name, password_hash, admin, created_at) "
                "VALUES (?1, ?2, ?3, ?4)",
                &st) < 0)
        return sql_error(s, reterr, "create user");
    bind_text(st, 1, name);
    bind_text(st, 2, password_hash);
    sqlite3_bind_int(st, 3, admin);
    sqlite3_bind_int64(st, 4, store_now());
    if (sqlite3_step(st) != SQLITE_DONE) {
        if (sqlite3_errcode(s->db) == SQLITE_CONSTRAINT)
            return berr_make(reterr, EEXIST, "user '%s' already exists", name);
        return sql_error(s, reterr, "create user");
    }
    return 0;
}

static void read_user(sqlite3_stmt *st, struct user_rec *u)
{
    *u = (struct user_rec){
        .id = sqlite3_column_int64(st, 0),
        .name = col_text(st, 1),
        .password_hash = col_text(st, 2),
        .admin = sqlite3_column_int(st, 3),
        .disabled = sqlite3_column_int(st, 4),
        .created_at = sqlite3_column_int64(st, 5),
    };
}

int store_user_get(struct store *s, const char *name, struct user_rec *ret, struct berr **reterr)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "SELECT id, name, password_hash, admin, disabled, created_at FROM users "
                "WHERE name=?1",
                &st) < 0)
        return sql_error(s, reterr, "read user");
    bind_text(st, 1, name);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return berr_make(reterr, ENOENT, "user '%s' not found", name);
    if (rc != SQLITE_ROW)
        return sql_error(s, reterr, "read user");
    read_user(st, ret);
    return 0;
}

int store_user_get_by_id(struct store *s, int64_t id, struct user_rec *ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "SELECT id, name, password_hash, admin, disabled, created_at FROM users "
                "WHERE id=?1",
                &st) < 0)
        return -EIO;
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) != SQLITE_ROW)
        return -ENOENT;
    read_user(st, ret);
    return 0;
}

int store_user_list_json(struct store *s, json_t **ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "SELECT name, admin, disabled, created_at FROM users ORDER BY name", &st) < 0)
        return -EIO;
    json_t *a = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(
            a, json_pack("{s:s, s:b, s:b, s:o}", "name", (const char *)sqlite3_column_text(st, 0),
                         "admin", sqlite3_column_int(st, 1), "disabled", sqlite3_column_int(st, 2),
                         "created_at", time_or_null(st, 3)));
    *ret = a;
    return 0;
}

int store_user_set_disabled(struct store *s, const char *name, bool disabled, struct berr **reterr)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "UPDATE users SET disabled=?2 WHERE name=?1", &st) < 0)
        return sql_error(s, reterr, "update user");
    bind_text(st, 1, name);
    sqlite3_bind_int(st, 2, disabled);
    if (sqlite3_step(st) != SQLITE_DONE)
        return sql_error(s, reterr, "update user");
    if (sqlite3_changes(s->db) == 0)
        return berr_make(reterr, ENOENT, "user '%s' not found", name);
    return 0;
}

int store_token_insert(struct store *s, const struct token_rec *t, struct berr **reterr)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "INSERT INTO tokens (id, user_id, kind, name, hash, csrf, created_at, "
                "expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                &st) < 0)
        return sql_error(s, reterr, "create token");
    bind_text(st, 1, t->id);
    sqlite3_bind_int64(st, 2, t->user_id);
    bind_text(st, 3, t->kind);
    bind_text(st, 4, t->name);
    sqlite3_bind_blob(st, 5, t->hash, sizeof(t->hash), SQLITE_TRANSIENT);
    bind_text(st, 6, t->csrf);
    sqlite3_bind_int64(st, 7, store_now());
    if (t->expires_at)
        sqlite3_bind_int64(st, 8, t->expires_at);
    else
        sqlite3_bind_null(st, 8);
    if (sqlite3_step(st) != SQLITE_DONE)
        return sql_error(s, reterr, "create token");
    return 0;
}

int store_token_get(struct store *s, const char *id, struct token_rec *ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "SELECT id, user_id, kind, name, hash, csrf, COALESCE(expires_at, 0) "
                "FROM tokens WHERE id=?1",
                &st) < 0)
        return -EIO;
    bind_text(st, 1, id);
    if (sqlite3_step(st) != SQLITE_ROW)
        return -ENOENT;
    if (sqlite3_column_bytes(st, 4) != 32)
        return -EIO;
    *ret = (struct token_rec){
        .id = col_text(st, 0),
        .user_id = sqlite3_column_int64(st, 1),
        .kind = col_text(st, 2),
        .name = col_text(st, 3),
        .csrf = col_text(st, 5),
        .expires_at = sqlite3_column_int64(st, 6),
    };
    memcpy(ret->hash, sqlite3_column_blob(st, 4), 32);
    return 0;
}

void store_token_touch(struct store *s, const char *id)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "UPDATE tokens SET last_used_at=?2 WHERE id=?1", &st) < 0)
        return;
    bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, store_now());
    (void)sqlite3_step(st);
}

int store_token_list_json(struct store *s, int64_t user_id, json_t **ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "SELECT id, name, kind, created_at, last_used_at FROM tokens "
                "WHERE user_id=?1 AND kind != 'session' ORDER BY created_at, id",
                &st) < 0)
        return -EIO;
    sqlite3_bind_int64(st, 1, user_id);
    json_t *a = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(a, json_pack("{s:o, s:o, s:o, s:o, s:o}", "id", text_or_null(st, 0),
                                           "name", text_or_null(st, 1), "kind", text_or_null(st, 2),
                                           "created_at", time_or_null(st, 3), "last_used_at",
                                           time_or_null(st, 4)));
    *ret = a;
    return 0;
}

int store_token_delete(struct store *s, const char *id, int64_t user_id)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "DELETE FROM tokens WHERE id=?1 AND (?2 < 0 OR user_id=?2)", &st) < 0)
        return -EIO;
    bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, user_id);
    if (sqlite3_step(st) != SQLITE_DONE)
        return -EIO;
    return sqlite3_changes(s->db) ? 0 : -ENOENT;
}

void store_audit_add(struct store *s, const char *actor, const char *action, const char *target,
                     const char *detail, const char *address)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "INSERT INTO audit (time, actor, action, target, detail, address) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                &st) < 0)
        return;
    sqlite3_bind_int64(st, 1, store_now());
    bind_text(st, 2, actor);
    bind_text(st, 3, action);
    bind_text(st, 4, target);
    bind_text(st, 5, detail);
    bind_text(st, 6, address);
    (void)sqlite3_step(st);
}

int store_audit_json(struct store *s, int limit, json_t **ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "SELECT id, time, actor, action, target, detail, address FROM audit "
                "ORDER BY id DESC LIMIT ?1",
                &st) < 0)
        return -EIO;
    sqlite3_bind_int(st, 1, limit);
    json_t *a = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(a, json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
                                           (json_int_t)sqlite3_column_int64(st, 0), "time",
                                           time_or_null(st, 1), "actor", text_or_null(st, 2),
                                           "action", text_or_null(st, 3), "target",
                                           text_or_null(st, 4), "detail", text_or_null(st, 5),
                                           "address", text_or_null(st, 6)));
    *ret = a;
    return 0;
}

int64_t store_setting_int(struct store *s, const char *key, int64_t fallback)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "SELECT value FROM settings WHERE key=?1", &st) < 0)
        return fallback;
    bind_text(st, 1, key);
    if (sqlite3_step(st) != SQLITE_ROW)
        return fallback;
    return sqlite3_column_int64(st, 0);
}

int store_setting_default_int(struct store *s, const char *key, int64_t value)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "INSERT OR IGNORE INTO settings (key, value) VALUES (?1, ?2)", &st) < 0)
        return -EIO;
    bind_text(st, 1, key);
    sqlite3_bind_int64(st, 2, value);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
}

char *store_setting_text(struct store *s, const char *key)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "SELECT value FROM settings WHERE key=?1", &st) < 0)
        return NULL;
    bind_text(st, 1, key);
    if (sqlite3_step(st) != SQLITE_ROW)
        return NULL;
    return col_text(st, 0);
}

int store_setting_set_text(struct store *s, const char *key, const char *value)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "INSERT INTO settings (key, value) VALUES (?1, ?2) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                &st) < 0)
        return -EIO;
    bind_text(st, 1, key);
    bind_text(st, 2, value);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
}

/* The value column is TEXT: a number is stored as its text either way. */
int store_setting_set_int(struct store *s, const char *key, int64_t value)
{
    char text[24];
    snprintf(text, sizeof(text), "%lld", (long long)value);
    return store_setting_set_text(s, key, text);
}

int store_gitcred_put(struct store *s, int64_t user_id, const char *url, const char *username,
                      const struct buf *secret, struct berr **reterr)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "INSERT INTO git_credentials (user_id, url, username, secret, created_at) "
                "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(user_id, url) DO UPDATE SET "
                "username=excluded.username, secret=excluded.secret",
                &st) < 0)
        return sql_error(s, reterr, "store git credential");
    sqlite3_bind_int64(st, 1, user_id);
    bind_text(st, 2, url);
    bind_text(st, 3, username);
    sqlite3_bind_blob(st, 4, secret->buf, (int)secret->len, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, store_now());
    if (sqlite3_step(st) != SQLITE_DONE)
        return sql_error(s, reterr, "store git credential");
    return 0;
}

int store_gitcred_list_json(struct store *s, int64_t user_id, json_t **ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "SELECT id, url, username, created_at FROM git_credentials WHERE user_id=?1 "
                "ORDER BY url",
                &st) < 0)
        return -EIO;
    sqlite3_bind_int64(st, 1, user_id);
    json_t *a = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(a, json_pack("{s:I, s:o, s:o, s:o}", "id",
                                           (json_int_t)sqlite3_column_int64(st, 0), "url",
                                           text_or_null(st, 1), "username", text_or_null(st, 2),
                                           "created_at", time_or_null(st, 3)));
    *ret = a;
    return 0;
}

int store_gitcred_delete(struct store *s, int64_t user_id, int64_t id)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "DELETE FROM git_credentials WHERE id=?1 AND user_id=?2", &st) < 0)
        return -EIO;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, user_id);
    if (sqlite3_step(st) != SQLITE_DONE)
        return -EIO;
    return sqlite3_changes(s->db) ? 0 : -ENOENT;
}

int store_gitcred_find(struct store *s, int64_t user_id, const char *url, char **ret_username,
                       struct buf *ret_secret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "SELECT username, secret FROM git_credentials WHERE user_id=?1 AND url=?2",
                &st) < 0)
        return -EIO;
    sqlite3_bind_int64(st, 1, user_id);
    bind_text(st, 2, url);
    if (sqlite3_step(st) != SQLITE_ROW)
        return -ENOENT;
    *ret_username = col_text(st, 0);
    buf_add(ret_secret, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1));
    return 0;
}

int store_secret_put(struct store *s, int64_t user_id, const char *name, const struct buf *value,
                     const char *repo_pattern, struct berr **reterr)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "INSERT INTO secrets (user_id, name, value, repo_pattern, created_at) "
                "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(user_id, name) DO UPDATE SET "
                "value=excluded.value, repo_pattern=excluded.repo_pattern",
                &st) < 0)
        return sql_error(s, reterr, "store secret");
    sqlite3_bind_int64(st, 1, user_id);
    bind_text(st, 2, name);
    sqlite3_bind_blob(st, 3, value->buf, (int)value->len, SQLITE_TRANSIENT);
    bind_text(st, 4, repo_pattern);
    sqlite3_bind_int64(st, 5, store_now());
    if (sqlite3_step(st) != SQLITE_DONE)
        return sql_error(s, reterr, "store secret");
    return 0;
}

int store_secret_list_json(struct store *s, int64_t user_id, json_t **ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "SELECT name, repo_pattern, created_at FROM secrets WHERE user_id=?1 "
                "ORDER BY name",
                &st) < 0)
        return -EIO;
    sqlite3_bind_int64(st, 1, user_id);
    json_t *a = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(a, json_pack("{s:o, s:o, s:o}", "name", text_or_null(st, 0),
                                           "repo_pattern", text_or_null(st, 1), "created_at",
                                           time_or_null(st, 2)));
    *ret = a;
    return 0;
}

int store_secret_delete(struct store *s, int64_t user_id, const char *name)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "DELETE FROM secrets WHERE user_id=?1 AND name=?2", &st) < 0)
        return -EIO;
    sqlite3_bind_int64(st, 1, user_id);
    bind_text(st, 2, name);
    if (sqlite3_step(st) != SQLITE_DONE)
        return -EIO;
    return sqlite3_changes(s->db) ? 0 : -ENOENT;
}

int store_secret_all(struct store *s, int64_t user_id, struct secret_rec **ret, size_t *ret_n)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "SELECT name, repo_pattern, value FROM secrets WHERE user_id=?1 ORDER BY name",
                &st) < 0)
        return -EIO;
    sqlite3_bind_int64(st, 1, user_id);
    struct secret_rec *list = NULL;
    size_t n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        list = xrealloc(list, (n + 1) * sizeof(*list));
        list[n] = (struct secret_rec){
            .name = col_text(st, 0), .repo_pattern = col_text(st, 1), .value = BUF_INIT};
        buf_add(&list[n].value, sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2));
        n++;
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

void secret_recs_free(struct secret_rec *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(list[i].name);
        free(list[i].repo_pattern);
        buf_release(&list[i].value);
    }
    free(list);
}

int store_ws_count(struct store *s, const char *owner, int64_t *ret_all, int64_t *ret_active)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "SELECT COUNT(*), COALESCE(SUM(state IN ('creating', 'starting', 'running', "
                "'rebuilding')), 0) FROM workspaces WHERE owner IS ?1 AND state != 'deleting'",
                &st) < 0)
        return -EIO;
    bind_text(st, 1, owner);
    if (sqlite3_step(st) != SQLITE_ROW)
        return -EIO;
    *ret_all = sqlite3_column_int64(st, 0);
    *ret_active = sqlite3_column_int64(st, 1);
    return 0;
}

char *store_port_visibility(struct store *s, const char *ws_id, int port)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "SELECT visibility FROM ports WHERE ws_id=?1 AND port=?2", &st) < 0)
        return xstrdup("private");
    bind_text(st, 1, ws_id);
    sqlite3_bind_int(st, 2, port);
    if (sqlite3_step(st) != SQLITE_ROW)
        return xstrdup("private");
    return col_text(st, 0);
}

int store_port_shared(struct store *s, const char *ws_id, int **ret_ports, size_t *ret_n)
{
    *ret_ports = NULL;
    *ret_n = 0;
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "SELECT port FROM ports WHERE ws_id=?1 AND visibility != 'private' ORDER BY port",
                &st) < 0)
        return -EIO;
    bind_text(st, 1, ws_id);
    while (sqlite3_step(st) == SQLITE_ROW) {
        *ret_ports = xrealloc(*ret_ports, (*ret_n + 1) * sizeof(int));
        (*ret_ports)[(*ret_n)++] = sqlite3_column_int(st, 0);
    }
    return 0;
}

int store_port_set_visibility(struct store *s, const char *ws_id, int port, const char *vis)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "INSERT INTO ports (ws_id, port, visibility) VALUES (?1, ?2, ?3) "
                "ON CONFLICT(ws_id, port) DO UPDATE SET visibility=excluded.visibility",
                &st) < 0)
        return -EIO;
    bind_text(st, 1, ws_id);
    sqlite3_bind_int(st, 2, port);
    bind_text(st, 3, vis);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
}
