/* store.c - SQLite persistence for workspaces, events and logs.
 *
 * Migrations are a list of SQL scripts; the database's user_version says how
 * many have run. A new release appends to the list and never edits an old entry.
 * Column order of the workspaces table is fixed by WS_COLUMNS, which both the
 * reader and the writers use.
 */
#include "store/store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/xalloc.h"

#include "store/store-internal.h"

static const char *const migrations[] = {
    /* 1: workspaces, their timeline and their logs */
    "CREATE TABLE workspaces ("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, state TEXT NOT NULL,"
    "  repo TEXT NOT NULL, branch TEXT, commit_sha TEXT, ref TEXT, image TEXT,"
    "  container_id TEXT, workspace_folder TEXT, remote_user TEXT,"
    "  devcontainer_path TEXT, error TEXT, owner TEXT,"
    "  uid INTEGER NOT NULL DEFAULT -1, gid INTEGER NOT NULL DEFAULT -1,"
    "  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
    "CREATE TABLE events ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, ws_id TEXT NOT NULL,"
    "  time INTEGER NOT NULL, type TEXT NOT NULL, message TEXT NOT NULL);"
    "CREATE INDEX events_ws ON events(ws_id, id);"
    "CREATE TABLE logs ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, ws_id TEXT NOT NULL,"
    "  time INTEGER NOT NULL, line TEXT NOT NULL);"
    "CREATE INDEX logs_ws ON logs(ws_id, id);",
    /* 2: accounts, tokens, the audit log, settings, git credentials, secrets */
    "CREATE TABLE users ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,"
    "  password_hash TEXT NOT NULL, admin INTEGER NOT NULL DEFAULT 0,"
    "  disabled INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL);"
    "CREATE TABLE tokens ("
    "  id TEXT PRIMARY KEY, user_id INTEGER NOT NULL, kind TEXT NOT NULL,"
    "  name TEXT NOT NULL, hash BLOB NOT NULL, csrf TEXT,"
    "  created_at INTEGER NOT NULL, last_used_at INTEGER, expires_at INTEGER);"
    "CREATE INDEX tokens_user ON tokens(user_id);"
    "CREATE TABLE audit ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, actor TEXT,"
    "  action TEXT NOT NULL, target TEXT, detail TEXT, address TEXT);"
    "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE git_credentials ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL,"
    "  url TEXT NOT NULL, username TEXT NOT NULL, secret BLOB NOT NULL,"
    "  created_at INTEGER NOT NULL, UNIQUE(user_id, url));"
    "CREATE TABLE secrets ("
    "  user_id INTEGER NOT NULL, name TEXT NOT NULL, value BLOB NOT NULL,"
    "  repo_pattern TEXT, created_at INTEGER NOT NULL, PRIMARY KEY(user_id, name));",
    /* 3: forwarded ports' settings (the ports themselves are live state) */
    "CREATE TABLE ports ("
    "  ws_id TEXT NOT NULL, port INTEGER NOT NULL, visibility TEXT NOT NULL DEFAULT 'private',"
    "  label TEXT, PRIMARY KEY(ws_id, port));",
    /* 4: what the container's configuration asks of every later session
     * (environment, postAttachCommand, port attributes), as JSON */
    "ALTER TABLE workspaces ADD COLUMN runtime TEXT;",
    /* 5: prebuilds: a workspace's files and container, made ahead of time;
     * rows of the workspaces' shape (runtime also holds the prebuild's own
     * facts: config_hash, base_image, size) */
    "CREATE TABLE prebuilds ("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL, state TEXT NOT NULL,"
    "  repo TEXT NOT NULL, branch TEXT, commit_sha TEXT, ref TEXT, image TEXT,"
    "  container_id TEXT, workspace_folder TEXT, remote_user TEXT,"
    "  devcontainer_path TEXT, error TEXT, owner TEXT,"
    "  uid INTEGER NOT NULL DEFAULT -1, gid INTEGER NOT NULL DEFAULT -1,"
    "  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, runtime TEXT);"
    "CREATE INDEX prebuilds_repo ON prebuilds(repo, branch);",
    /* 6: what to prebuild and when: one per owner, repo and config path;
     * settings is JSON (branches, poll, keep, shared); secret is sealed */
    "CREATE TABLE prebuild_configs ("
    "  id TEXT PRIMARY KEY, owner TEXT NOT NULL, repo TEXT NOT NULL,"
    "  devcontainer_path TEXT NOT NULL DEFAULT '', settings TEXT NOT NULL,"
    "  secret BLOB NOT NULL, last_poll INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,"
    "  UNIQUE(owner, repo, devcontainer_path));",
    /* 7: users' SSH public keys for the gateway (sshd/); one key, one user */
    "CREATE TABLE ssh_keys ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL, name TEXT NOT NULL,"
    "  type TEXT NOT NULL, blob TEXT NOT NULL, fingerprint TEXT NOT NULL UNIQUE,"
    "  created_at INTEGER NOT NULL, last_used_at INTEGER);",
    /* 8: the idle clock and retention of a workspace (store/activity.c; never
     * written by store_ws_update), and per-user settings (idle, dotfiles) */
    "ALTER TABLE workspaces ADD COLUMN idle_timeout INTEGER;"
    "ALTER TABLE workspaces ADD COLUMN last_activity INTEGER;"
    "ALTER TABLE workspaces ADD COLUMN activity_kind TEXT;"
    "ALTER TABLE workspaces ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE workspaces ADD COLUMN retention_warned INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE user_settings ("
    "  user_id INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
    "  PRIMARY KEY(user_id, key));",
};

#define WS_COLUMNS                                                                                 \
    "id, name, state, repo, branch, commit_sha, ref, image, container_id, workspace_folder,"       \
    " remote_user, devcontainer_path, error, owner, uid, gid, created_at, updated_at, runtime"

int64_t store_now(void)
{
    return (int64_t)time(NULL);
}

char *store_time_iso(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    return xasprintf("%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int sql_error(struct store *s, struct berr **reterr, const char *what)
{
    int code = sqlite3_errcode(s->db);
    int e = (code == SQLITE_CONSTRAINT) ? EEXIST : code == SQLITE_FULL ? ENOSPC : EIO;
    return berr_make(reterr, e, "%s: %s", what, sqlite3_errmsg(s->db));
}

int prepare(struct store *s, const char *sql, sqlite3_stmt **ret)
{
    return sqlite3_prepare_v2(s->db, sql, -1, ret, NULL) == SQLITE_OK ? 0 : -EIO;
}

static int migrate(struct store *s, struct berr **reterr)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "PRAGMA user_version", &st) < 0 || sqlite3_step(st) != SQLITE_ROW)
        return sql_error(s, reterr, "read schema version");
    int version = sqlite3_column_int(st, 0);
    if (version > (int)ELEMENTSOF(migrations))
        return berr_make(reterr, EPROTO,
                         "database schema version %d is newer than this berthd (%d)", version,
                         (int)ELEMENTSOF(migrations));
    for (int i = version; i < (int)ELEMENTSOF(migrations); i++) {
        _cleanup_free_ char *sql =
            xasprintf("BEGIN; %s PRAGMA user_version = %d; COMMIT;", migrations[i], i + 1);
        char *msg = NULL;
        if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
            int r = berr_make(reterr, EIO, "migrate schema to version %d: %s", i + 1,
                              msg ? msg : "unknown error");
            sqlite3_free(msg);
            (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            return r;
        }
    }
    return 0;
}

int store_open(const char *path, struct store **ret_store, struct berr **reterr)
{
    struct store *s = xcalloc(1, sizeof(*s));
    _cleanup_(store_closep) struct store *guard = s;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK)
        return berr_make(reterr, EIO, "cannot open '%s': %s", path,
                         s->db ? sqlite3_errmsg(s->db) : "out of memory");
    sqlite3_busy_timeout(s->db, 5000);
    char *msg = NULL;
    if (sqlite3_exec(s->db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
                     NULL, NULL, &msg) != SQLITE_OK) {
        int r = berr_make(reterr, EIO, "cannot open '%s': %s", path, msg ? msg : "?");
        sqlite3_free(msg);
        return r;
    }
    int r = migrate(s, reterr);
    if (r < 0)
        return berr_wrap(reterr, "cannot open '%s'", path);
    *ret_store = TAKE_PTR(guard);
    return 0;
}

struct store *store_close(struct store *s)
{
    if (s) {
        sqlite3_close_v2(s->db);
        free(s);
    }
    return NULL;
}

void ws_record_release(struct ws_record *r)
{
    char **fields[] = {&r->id,           &r->name,
                       &r->state,        &r->repo,
                       &r->branch,       &r->commit,
                       &r->ref,          &r->image,
                       &r->container_id, &r->workspace_folder,
                       &r->remote_user,  &r->devcontainer_path,
                       &r->error,        &r->owner,
                       &r->runtime};
    for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
        free(*fields[i]);
        *fields[i] = NULL;
    }
    r->uid = r->gid = -1;
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

void ws_record_copy(struct ws_record *dst, const struct ws_record *src)
{
    *dst = (struct ws_record){
        .id = dup_or_null(src->id),
        .name = dup_or_null(src->name),
        .state = dup_or_null(src->state),
        .repo = dup_or_null(src->repo),
        .branch = dup_or_null(src->branch),
        .commit = dup_or_null(src->commit),
        .ref = dup_or_null(src->ref),
        .image = dup_or_null(src->image),
        .container_id = dup_or_null(src->container_id),
        .workspace_folder = dup_or_null(src->workspace_folder),
        .remote_user = dup_or_null(src->remote_user),
        .devcontainer_path = dup_or_null(src->devcontainer_path),
        .error = dup_or_null(src->error),
        .owner = dup_or_null(src->owner),
        .runtime = dup_or_null(src->runtime),
        .uid = src->uid,
        .gid = src->gid,
        .created_at = src->created_at,
        .updated_at = src->updated_at,
    };
}

void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

/* Binds the 19 columns of WS_COLUMNS starting at parameter 1. */
static void bind_record(sqlite3_stmt *st, const struct ws_record *r)
{
    bind_text(st, 1, r->id);
    bind_text(st, 2, r->name);
    bind_text(st, 3, r->state);
    bind_text(st, 4, r->repo);
    bind_text(st, 5, r->branch);
    bind_text(st, 6, r->commit);
    bind_text(st, 7, r->ref);
    bind_text(st, 8, r->image);
    bind_text(st, 9, r->container_id);
    bind_text(st, 10, r->workspace_folder);
    bind_text(st, 11, r->remote_user);
    bind_text(st, 12, r->devcontainer_path);
    bind_text(st, 13, r->error);
    bind_text(st, 14, r->owner);
    sqlite3_bind_int64(st, 15, r->uid);
    sqlite3_bind_int64(st, 16, r->gid);
    sqlite3_bind_int64(st, 17, r->created_at);
    sqlite3_bind_int64(st, 18, r->updated_at);
    bind_text(st, 19, r->runtime);
}

char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? xstrdup((const char *)t) : NULL;
}

static void read_record(sqlite3_stmt *st, struct ws_record *r)
{
    *r = (struct ws_record){
        .id = col_text(st, 0),
        .name = col_text(st, 1),
        .state = col_text(st, 2),
        .repo = col_text(st, 3),
        .branch = col_text(st, 4),
        .commit = col_text(st, 5),
        .ref = col_text(st, 6),
        .image = col_text(st, 7),
        .container_id = col_text(st, 8),
        .workspace_folder = col_text(st, 9),
        .remote_user = col_text(st, 10),
        .devcontainer_path = col_text(st, 11),
        .error = col_text(st, 12),
        .owner = col_text(st, 13),
        .uid = sqlite3_column_int64(st, 14),
        .gid = sqlite3_column_int64(st, 15),
        .created_at = sqlite3_column_int64(st, 16),
        .updated_at = sqlite3_column_int64(st, 17),
        .runtime = col_text(st, 18),
    };
}

static int record_list(struct store *s, const char *sql, struct ws_record **ret_list, size_t *ret_n,
                       struct berr **reterr);

static int record_insert(struct store *s, const char *table, const struct ws_record *r,
                         struct berr **reterr)
{
    _cleanup_free_ char *sql =
        xasprintf("INSERT INTO %s (" WS_COLUMNS ") VALUES "
                  "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19)",
                  table);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, sql, &st) < 0)
        return sql_error(s, reterr, "insert record");
    bind_record(st, r);
    if (sqlite3_step(st) != SQLITE_DONE)
        return sql_error(s, reterr, "insert record");
    return 0;
}

static int record_update(struct store *s, const char *table, struct ws_record *r,
                         struct berr **reterr)
{
    r->updated_at = store_now();
    _cleanup_free_ char *sql =
        xasprintf("UPDATE %s SET name=?2, state=?3, repo=?4, branch=?5, commit_sha=?6,"
                  " ref=?7, image=?8, container_id=?9, workspace_folder=?10, remote_user=?11,"
                  " devcontainer_path=?12, error=?13, owner=?14, uid=?15, gid=?16,"
                  " created_at=?17, updated_at=?18, runtime=?19 WHERE id=?1",
                  table);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, sql, &st) < 0)
        return sql_error(s, reterr, "update record");
    bind_record(st, r);
    if (sqlite3_step(st) != SQLITE_DONE)
        return sql_error(s, reterr, "update record");
    if (sqlite3_changes(s->db) == 0)
        return berr_make(reterr, ENOENT, "%s '%s' not found",
                         strcmp(table, "prebuilds") == 0 ? "prebuild" : "workspace", r->id);
    return 0;
}

int store_ws_insert(struct store *s, const struct ws_record *r, struct berr **reterr)
{
    return record_insert(s, "workspaces", r, reterr);
}

int store_ws_update(struct store *s, struct ws_record *r, struct berr **reterr)
{
    return record_update(s, "workspaces", r, reterr);
}

int store_pb_insert(struct store *s, const struct ws_record *r, struct berr **reterr)
{
    return record_insert(s, "prebuilds", r, reterr);
}

int store_pb_update(struct store *s, struct ws_record *r, struct berr **reterr)
{
    return record_update(s, "prebuilds", r, reterr);
}

int store_pb_get(struct store *s, const char *id, struct ws_record *ret, struct berr **reterr)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "SELECT " WS_COLUMNS " FROM prebuilds WHERE id=?1", &st) < 0)
        return sql_error(s, reterr, "read prebuild");
    bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return berr_make(reterr, ENOENT, "prebuild '%s' not found", id);
    if (rc != SQLITE_ROW)
        return sql_error(s, reterr, "read prebuild");
    read_record(st, ret);
    return 0;
}

int store_pb_list(struct store *s, struct ws_record **ret_list, size_t *ret_n, struct berr **reterr)
{
    return record_list(s,
                       "SELECT " WS_COLUMNS " FROM prebuilds ORDER BY created_at DESC, rowid DESC",
                       ret_list, ret_n, reterr);
}

int store_pb_delete(struct store *s, const char *id, struct berr **reterr)
{
    static const char *const sqls[] = {
        "DELETE FROM logs WHERE ws_id=?1",
        "DELETE FROM events WHERE ws_id=?1",
        "DELETE FROM prebuilds WHERE id=?1",
    };
    for (size_t i = 0; i < ELEMENTSOF(sqls); i++) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (prepare(s, sqls[i], &st) < 0)
            return sql_error(s, reterr, "delete prebuild");
        bind_text(st, 1, id);
        if (sqlite3_step(st) != SQLITE_DONE)
            return sql_error(s, reterr, "delete prebuild");
    }
    return 0;
}

int store_pb_users(struct store *s, const char *id)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "SELECT count(*) FROM workspaces WHERE json_valid(runtime) AND "
                "json_extract(runtime, '$.prebuild') = ?1",
                &st) < 0)
        return -EIO;
    bind_text(st, 1, id);
    if (sqlite3_step(st) != SQLITE_ROW)
        return -EIO;
    return sqlite3_column_int(st, 0);
}

int store_ws_set_state(struct store *s, const char *id, const char *state)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "UPDATE workspaces SET state=?2, updated_at=?3 WHERE id=?1", &st) < 0)
        return -EIO;
    bind_text(st, 1, id);
    bind_text(st, 2, state);
    sqlite3_bind_int64(st, 3, store_now());
    if (sqlite3_step(st) != SQLITE_DONE)
        return -EIO;
    return sqlite3_changes(s->db) ? 0 : -ENOENT;
}

int store_ws_get(struct store *s, const char *id_or_name, struct ws_record *ret,
                 struct berr **reterr)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s,
                "SELECT " WS_COLUMNS " FROM workspaces WHERE id=?1 OR name=?1 "
                "ORDER BY id=?1 DESC LIMIT 1",
                &st) < 0)
        return sql_error(s, reterr, "read workspace");
    bind_text(st, 1, id_or_name);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return berr_make(reterr, ENOENT, "workspace '%s' not found", id_or_name);
    if (rc != SQLITE_ROW)
        return sql_error(s, reterr, "read workspace");
    read_record(st, ret);
    return 0;
}

static int record_list(struct store *s, const char *sql, struct ws_record **ret_list, size_t *ret_n,
                       struct berr **reterr)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, sql, &st) < 0)
        return sql_error(s, reterr, "list records");
    struct ws_record *list = NULL;
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        list = xrealloc(list, (n + 1) * sizeof(*list));
        read_record(st, &list[n++]);
    }
    if (rc != SQLITE_DONE) {
        for (size_t k = 0; k < n; k++)
            ws_record_release(&list[k]);
        free(list);
        return sql_error(s, reterr, "list records");
    }
    *ret_list = list;
    *ret_n = n;
    return 0;
}

int store_ws_list(struct store *s, struct ws_record **ret_list, size_t *ret_n, struct berr **reterr)
{
    return record_list(s,
                       "SELECT " WS_COLUMNS " FROM workspaces ORDER BY created_at DESC, rowid DESC",
                       ret_list, ret_n, reterr);
}

int store_ws_delete(struct store *s, const char *id, struct berr **reterr)
{
    static const char *const sqls[] = {
        "DELETE FROM logs WHERE ws_id=?1",
        "DELETE FROM events WHERE ws_id=?1",
        "DELETE FROM ports WHERE ws_id=?1",
        "DELETE FROM workspaces WHERE id=?1",
    };
    for (size_t i = 0; i < ELEMENTSOF(sqls); i++) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (prepare(s, sqls[i], &st) < 0)
            return sql_error(s, reterr, "delete workspace");
        bind_text(st, 1, id);
        if (sqlite3_step(st) != SQLITE_DONE)
            return sql_error(s, reterr, "delete workspace");
    }
    return 0;
}

int store_event_add(struct store *s, const char *ws_id, const char *type, const char *message)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "INSERT INTO events (ws_id, time, type, message) VALUES (?1, ?2, ?3, ?4)", &st) <
        0)
        return -EIO;
    bind_text(st, 1, ws_id);
    sqlite3_bind_int64(st, 2, store_now());
    bind_text(st, 3, type);
    bind_text(st, 4, message);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
}

int store_events_json(struct store *s, const char *ws_id, json_t **ret, struct berr **reterr)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "SELECT id, time, type, message FROM events WHERE ws_id=?1 ORDER BY id", &st) <
        0)
        return sql_error(s, reterr, "read events");
    bind_text(st, 1, ws_id);
    json_t *arr = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        _cleanup_free_ char *t = store_time_iso(sqlite3_column_int64(st, 1));
        json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:s}", "id",
                                             (json_int_t)sqlite3_column_int64(st, 0), "time", t,
                                             "type", (const char *)sqlite3_column_text(st, 2),
                                             "message", (const char *)sqlite3_column_text(st, 3)));
    }
    if (rc != SQLITE_DONE) {
        json_decref(arr);
        return sql_error(s, reterr, "read events");
    }
    *ret = arr;
    return 0;
}

int64_t store_log_add(struct store *s, const char *ws_id, const char *line)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "INSERT INTO logs (ws_id, time, line) VALUES (?1, ?2, ?3)", &st) < 0)
        return -EIO;
    bind_text(st, 1, ws_id);
    sqlite3_bind_int64(st, 2, store_now());
    bind_text(st, 3, line);
    if (sqlite3_step(st) != SQLITE_DONE)
        return -EIO;
    return sqlite3_last_insert_rowid(s->db);
}

int store_logs_since(struct store *s, const char *ws_id, int64_t after_id, int limit,
                     struct buf *out, int64_t *ret_last)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "SELECT id, line FROM logs WHERE ws_id=?1 AND id>?2 ORDER BY id LIMIT ?3", &st) <
        0)
        return -EIO;
    bind_text(st, 1, ws_id);
    sqlite3_bind_int64(st, 2, after_id);
    sqlite3_bind_int(st, 3, limit);
    int64_t last = after_id;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        last = sqlite3_column_int64(st, 0);
        buf_adds(out, (const char *)sqlite3_column_text(st, 1));
        buf_addch(out, '\n');
    }
    *ret_last = last;
    return rc == SQLITE_DONE ? 0 : -EIO;
}

int64_t store_log_last(struct store *s, const char *ws_id)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(s, "SELECT COALESCE(MAX(id), 0) FROM logs WHERE ws_id=?1", &st) < 0)
        return 0;
    bind_text(st, 1, ws_id);
    return sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
}
