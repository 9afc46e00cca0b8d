/* sshkeys.c - SQL for users' SSH public keys (the ssh_keys table). */
#include "store/sshkeys.h"

#include <errno.h>
#include <stdlib.h>

#include "store/store-internal.h"
#include "util/xalloc.h"

static json_t *time_json(sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return json_null();
    _cleanup_free_ char *t = store_time_iso(sqlite3_column_int64(st, i));
    return json_string(t);
}

int store_sshkey_insert(struct store *s, int64_t user_id, const char *name, const char *type,
                        const char *blob, const char *fingerprint, int64_t *ret_id,
                        struct berr **reterr)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "INSERT INTO ssh_keys (user_id, name, type, blob, fingerprint, created_at) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                &st) < 0)
        return sql_error(s, reterr, "store ssh key");
    sqlite3_bind_int64(st, 1, user_id);
    bind_text(st, 2, name);
    bind_text(st, 3, type);
    bind_text(st, 4, blob);
    bind_text(st, 5, fingerprint);
    sqlite3_bind_int64(st, 6, store_now());
    if (sqlite3_step(st) != SQLITE_DONE)
        return sql_error(s, reterr, "store ssh key");
    *ret_id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

int store_sshkey_list_json(struct store *s, int64_t user_id, json_t **ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "SELECT id, name, type, fingerprint, created_at, last_used_at FROM ssh_keys "
                "WHERE user_id=?1 ORDER BY id",
                &st) < 0)
        return -EIO;
    sqlite3_bind_int64(st, 1, user_id);
    json_t *a = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(a, json_pack("{s:I, s:s, s:s, s:s, s:o, s:o}", "id",
                                           (json_int_t)sqlite3_column_int64(st, 0), "name",
                                           (const char *)sqlite3_column_text(st, 1), "type",
                                           (const char *)sqlite3_column_text(st, 2), "fingerprint",
                                           (const char *)sqlite3_column_text(st, 3), "created_at",
                                           time_json(st, 4), "last_used_at", time_json(st, 5)));
    *ret = a;
    return 0;
}

int store_sshkey_delete(struct store *s, int64_t user_id, int64_t id)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "DELETE FROM ssh_keys WHERE id=?1 AND user_id=?2", &st) < 0)
        return -EIO;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, user_id);
    if (sqlite3_step(st) != SQLITE_DONE)
        return -EIO;
    return sqlite3_changes(s->db) ? 0 : -ENOENT;
}

int store_sshkey_owner(struct store *s, const char *fingerprint, int64_t *ret_user_id)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "UPDATE ssh_keys SET last_used_at=?2 WHERE fingerprint=?1 RETURNING user_id",
                &st) < 0)
        return -EIO;
    bind_text(st, 1, fingerprint);
    sqlite3_bind_int64(st, 2, store_now());
    if (sqlite3_step(st) != SQLITE_ROW)
        return -ENOENT;
    *ret_user_id = sqlite3_column_int64(st, 0);
    return 0;
}
