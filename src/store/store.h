/* store.h - Berth's persistent state in SQLite (WAL mode).
 *
 * One database file, DATA/berth.db, holds the workspaces, their timeline of
 * events and their logs. The schema is versioned (PRAGMA user_version) and
 * migrated forward on open. The store is safe to use from several threads: the
 * connection is opened in SQLite's serialized mode.
 *
 * Every state transition of a workspace is written here before its side effect,
 * so a restarted berthd can tell what it was doing (see workspace/reconcile).
 */
#ifndef BERTH_STORE_H
#define BERTH_STORE_H

#include <jansson.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

struct store;

/* One row of the workspaces table. Strings are owned; NULL means SQL NULL. */
struct ws_record {
    char *id;
    char *name;
    char *state;
    char *repo;
    char *branch;
    char *commit;
    char *ref;
    char *image;
    char *container_id;
    char *workspace_folder;
    char *remote_user;
    char *devcontainer_path;
    char *error;
    char *owner;
    /* JSON: what sessions in the container get from the configuration:
     * {"env": {NAME: value}, "postAttach": [commands], "ports": {...}} */
    char *runtime;
    int64_t uid; /* remote user's uid/gid in the container, -1 unknown */
    int64_t gid;
    int64_t created_at; /* unix seconds */
    int64_t updated_at;
};

int store_open(const char *path, struct store **ret_store, struct berr **reterr);
struct store *store_close(struct store *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct store *, store_close)

void ws_record_release(struct ws_record *r);
void ws_record_copy(struct ws_record *dst, const struct ws_record *src);
static inline void ws_record_releasep(struct ws_record *r)
{
    ws_record_release(r);
}
#define _cleanup_ws_record_ _cleanup_(ws_record_releasep)

/* Inserts a new workspace; -EEXIST when the id or name is taken. */
int store_ws_insert(struct store *s, const struct ws_record *r, struct berr **reterr);
/* Writes every field of r (by id); updated_at is set to now. */
int store_ws_update(struct store *s, struct ws_record *r, struct berr **reterr);
/* Sets the state column alone (another thread may own the rest of the row). */
int store_ws_set_state(struct store *s, const char *id, const char *state);
/* Finds a workspace by id or name; -ENOENT when there is none. */
int store_ws_get(struct store *s, const char *id_or_name, struct ws_record *ret,
                 struct berr **reterr);
/* Returns every workspace, newest first, in a newly allocated array. */
int store_ws_list(struct store *s, struct ws_record **ret_list, size_t *ret_n,
                  struct berr **reterr);
/* Removes the workspace with its events and logs. */
int store_ws_delete(struct store *s, const char *id, struct berr **reterr);

/* Prebuilds: rows of the same shape in their own table (their logs and
 * events are keyed by their id too). */
int store_pb_insert(struct store *s, const struct ws_record *r, struct berr **reterr);
int store_pb_update(struct store *s, struct ws_record *r, struct berr **reterr);
int store_pb_get(struct store *s, const char *id, struct ws_record *ret, struct berr **reterr);
/* Every prebuild, newest first. */
int store_pb_list(struct store *s, struct ws_record **ret_list, size_t *ret_n,
                  struct berr **reterr);
/* Removes the prebuild with its events and logs. */
int store_pb_delete(struct store *s, const char *id, struct berr **reterr);
/* How many workspaces were made from the prebuild (their files lie on it). */
int store_pb_users(struct store *s, const char *id);

/* What to prebuild and when (pbconfig.c). devcontainer_path "" is the
 * default location. */
struct pb_config {
    char *id;
    char *owner;
    char *repo;
    char *devcontainer_path;
    json_t *settings;  /* {branches: [pattern...], poll: seconds (0: off), keep, shared} */
    struct buf secret; /* sealed webhook secret */
    int64_t last_poll;
    int64_t created_at;
};
void pb_config_release(struct pb_config *c);
/* Inserts, or replaces the settings of the owner's config of repo and path
 * (keeping its id and secret; *c gets them). */
int store_pbc_put(struct store *s, struct pb_config *c, struct berr **reterr);
int store_pbc_get(struct store *s, const char *id, struct pb_config *ret, struct berr **reterr);
int store_pbc_list(struct store *s, struct pb_config **ret_list, size_t *ret_n,
                   struct berr **reterr);
int store_pbc_set_polled(struct store *s, const char *id, int64_t when);
int store_pbc_delete(struct store *s, const char *id, struct berr **reterr);

/* Appends an event to the workspace's timeline. */
int store_event_add(struct store *s, const char *ws_id, const char *type, const char *message);
/* Returns the timeline as a JSON array of {id, time, type, message}. */
int store_events_json(struct store *s, const char *ws_id, json_t **ret, struct berr **reterr);

/* Appends one line to the workspace's log; returns its id (> 0) or -errno. */
int64_t store_log_add(struct store *s, const char *ws_id, const char *line);
/* The id of the workspace's last log line, or 0. */
int64_t store_log_last(struct store *s, const char *ws_id);
/* Appends the log lines with id > after_id to out (each ending in '\n'), at most
 * `limit` lines, and sets *ret_last to the id of the last one (or after_id). */
int store_logs_since(struct store *s, const char *ws_id, int64_t after_id, int limit,
                     struct buf *out, int64_t *ret_last);

/* Formats unix seconds as RFC 3339 UTC ("2026-11-24T00:00:00Z"). */
char *store_time_iso(int64_t t);
int64_t store_now(void);

#endif
