/* pbconfig.c - the prebuild_configs table: what to prebuild and when. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

#include "store/store-internal.h"

#define PBC_COLUMNS "id, owner, repo, devcontainer_path, settings, secret, last_poll, created_at"

void pb_config_release(struct pb_config *c)
{
    free(c->id);
    free(c->owner);
    free(c->repo);
    free(c->devcontainer_path);
    json_decref(c->settings);
    buf_release(&c->secret);
    memset(c, 0, sizeof(*c));
}

static void read_config(sqlite3_stmt *st, struct pb_config *c)
{
    memset(c, 0, sizeof(*c));
    c->id = col_text(st, 0);
    c->owner = col_text(st, 1);
    c->repo = col_text(st, 2);
    c->devcontainer_path = col_text(st, 3);
    const char *settings = (const char *)sqlite3_column_text(st, 4);
    c->settings = settings ? json_loads(settings, 0, NULL) : NULL;
    if (!json_is_object(c->settings)) {
        json_decref(c->settings);
        c->settings = json_object();
    }
    c->secret = (struct buf)BUF_INIT;
    buf_add(&c->secret, sqlite3_column_blob(st, 5), (size_t)sqlite3_column_bytes(st, 5));
    c->last_poll = sqlite3_column_int64(st, 6);
    c->created_at = sqlite3_column_int64(st, 7);
}

int store_pbc_put(struct store *s, struct pb_config *c, struct berr **reterr)
{
    _cleanup_free_ char *settings = json_dumps(c->settings, JSON_COMPACT);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "INSERT INTO prebuild_configs (" PBC_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, "
                "?7) ON CONFLICT(owner, repo, devcontainer_path) DO UPDATE SET "
                "settings=excluded.settings RETURNING " PBC_COLUMNS,
                &st) < 0)
        return sql_error(s, reterr, "store prebuild config");
    bind_text(st, 1, c->id);
    bind_text(st, 2, c->owner);
    bind_text(st, 3, c->repo);
    bind_text(st, 4, c->devcontainer_path ? c->devcontainer_path : "");
    bind_text(st, 5, settings);
    sqlite3_bind_blob(st, 6, c->secret.buf, (int)c->secret.len, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 7, c->created_at);
    if (sqlite3_step(st) != SQLITE_ROW)
        return sql_error(s, reterr, "store prebuild config");
    pb_config_release(c);
    read_config(st, c);
    return 0;
}

int store_pbc_get(struct store *s, const char *id, struct pb_config *ret, struct berr **reterr)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "SELECT " PBC_COLUMNS " FROM prebuild_configs WHERE id=?1", &st) < 0)
        return sql_error(s, reterr, "read prebuild config");
    bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return berr_make(reterr, ENOENT, "no prebuild configuration '%s'", id);
    if (rc != SQLITE_ROW)
        return sql_error(s, reterr, "read prebuild config");
    read_config(st, ret);
    return 0;
}

int store_pbc_list(struct store *s, struct pb_config **ret_list, size_t *ret_n,
                   struct berr **reterr)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "SELECT " PBC_COLUMNS " FROM prebuild_configs ORDER BY repo, owner", &st) < 0)
        return sql_error(s, reterr, "list prebuild configs");
    struct pb_config *list = NULL;
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        list = xrealloc(list, (n + 1) * sizeof(*list));
        read_config(st, &list[n++]);
    }
    if (rc != SQLITE_DONE) {
        for (size_t i = 0; i < n; i++)
            pb_config_release(&list[i]);
        free(list);
        return sql_error(s, reterr, "list prebuild configs");
    }
    *ret_list = list;
    *ret_n = n;
    return 0;
}

int store_pbc_set_polled(struct store *s, const char *id, int64_t when)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "UPDATE prebuild_configs SET last_poll=?2 WHERE id=?1", &st) < 0)
        return -EIO;
    bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, when);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
}

int store_pbc_delete(struct store *s, const char *id, struct berr **reterr)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "DELETE FROM prebuild_configs WHERE id=?1", &st) < 0)
        return sql_error(s, reterr, "delete prebuild config");
    bind_text(st, 1, id);
    if (sqlite3_step(st) != SQLITE_DONE)
        return sql_error(s, reterr, "delete prebuild config");
    return sqlite3_changes(s->db) ? 0
                                  : berr_make(reterr, ENOENT, "no prebuild configuration '%s'", id);
}
