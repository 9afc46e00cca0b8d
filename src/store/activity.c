/* activity.c - SQL for the idle clock, retention marks and users' settings. */
#include "store/activity.h"

#include <errno.h>
#include <stdlib.h>

#include "store/store-internal.h"
#include "util/xalloc.h"

void ws_activity_rec_release(struct ws_activity_rec *a)
{
    free(a->kind);
    a->kind = NULL;
}

/* The columns of a ws_activity_rec, in read_activity's order. */
#define ACTIVITY_COLUMNS "idle_timeout, last_activity, activity_kind, pinned, retention_warned"

/* ACTIVITY_COLUMNS from column i on. */
static struct ws_activity_rec read_activity(sqlite3_stmt *st, int i)
{
    return (struct ws_activity_rec){
        .idle_timeout =
            sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, i),
        .last_activity = sqlite3_column_int64(st, i + 1),
        .kind = col_text(st, i + 2),
        .pinned = sqlite3_column_int(st, i + 3) != 0,
        .retention_warned = sqlite3_column_int(st, i + 4) != 0,
    };
}

int store_ws_activity_get(struct store *s, const char *id, struct ws_activity_rec *ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "SELECT " ACTIVITY_COLUMNS " FROM workspaces WHERE id=?1", &st) < 0)
        return -EIO;
    bind_text(st, 1, id);
    if (sqlite3_step(st) != SQLITE_ROW)
        return -ENOENT;
    *ret = read_activity(st, 0);
    return 0;
}

/* Runs an UPDATE of one workspace whose ?1 is the id and ?2 an integer. */
static int update_int(struct store *s, const char *sql, const char *id, int64_t v, bool null)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, sql, &st) < 0)
        return -EIO;
    bind_text(st, 1, id);
    if (null)
        sqlite3_bind_null(st, 2);
    else
        sqlite3_bind_int64(st, 2, v);
    if (sqlite3_step(st) != SQLITE_DONE)
        return -EIO;
    return sqlite3_changes(s->db) ? 0 : -ENOENT;
}

int store_ws_set_activity(struct store *s, const char *id, int64_t when, const char *kind)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "UPDATE workspaces SET last_activity=?2, activity_kind=?3, retention_warned=0 "
                "WHERE id=?1",
                &st) < 0)
        return -EIO;
    bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, when);
    bind_text(st, 3, kind);
    if (sqlite3_step(st) != SQLITE_DONE)
        return -EIO;
    return sqlite3_changes(s->db) ? 0 : -ENOENT;
}

int store_ws_set_idle_timeout(struct store *s, const char *id, int64_t minutes)
{
    return update_int(s, "UPDATE workspaces SET idle_timeout=?2 WHERE id=?1", id, minutes,
                      minutes < 0);
}

int store_ws_set_pinned(struct store *s, const char *id, bool pinned)
{
    return update_int(s, "UPDATE workspaces SET pinned=?2 WHERE id=?1", id, pinned, false);
}

int store_ws_set_retention_warned(struct store *s, const char *id, bool warned)
{
    return update_int(s, "UPDATE workspaces SET retention_warned=?2 WHERE id=?1", id, warned,
                      false);
}

int store_ws_idle_list(struct store *s, struct ws_idle_row **ret, size_t *ret_n)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "SELECT w.id, w.name, w.state, w.owner, w.updated_at, us.value, " ACTIVITY_COLUMNS
                " FROM workspaces w LEFT JOIN users u ON u.name = w.owner "
                "LEFT JOIN user_settings us ON us.user_id = u.id AND us.key = 'idle'",
                &st) < 0)
        return -EIO;
    struct ws_idle_row *rows = NULL;
    size_t n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        rows = xrealloc(rows, (n + 1) * sizeof(*rows));
        rows[n++] = (struct ws_idle_row){
            .rec = {.id = col_text(st, 0),
                    .name = col_text(st, 1),
                    .state = col_text(st, 2),
                    .owner = col_text(st, 3),
                    .updated_at = sqlite3_column_int64(st, 4),
                    .uid = -1,
                    .gid = -1},
            .a = read_activity(st, 6),
            .user_idle = col_text(st, 5),
        };
    }
    *ret = rows;
    *ret_n = n;
    return 0;
}

void ws_idle_rows_free(struct ws_idle_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ws_record_release(&rows[i].rec);
        ws_activity_rec_release(&rows[i].a);
        free(rows[i].user_idle);
    }
    free(rows);
}

char *store_user_setting(struct store *s, const char *user, const char *key)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "SELECT value FROM user_settings JOIN users ON users.id = user_settings.user_id "
                "WHERE users.name=?1 AND key=?2",
                &st) < 0)
        return NULL;
    bind_text(st, 1, user);
    bind_text(st, 2, key);
    return sqlite3_step(st) == SQLITE_ROW ? col_text(st, 0) : NULL;
}

int store_user_setting_set(struct store *s, const char *user, const char *key, const char *value)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    const char *sql = value ? "INSERT OR REPLACE INTO user_settings (user_id, key, value) "
                              "SELECT id, ?2, ?3 FROM users WHERE name=?1"
                            : "DELETE FROM user_settings WHERE key=?2 AND user_id = "
                              "(SELECT id FROM users WHERE name=?1)";
    if (prepare(s, sql, &st) < 0)
        return -EIO;
    bind_text(st, 1, user);
    bind_text(st, 2, key);
    if (value)
        bind_text(st, 3, value);
    if (sqlite3_step(st) != SQLITE_DONE)
        return -EIO;
    return sqlite3_changes(s->db) || !value ? 0 : -ENOENT;
}
