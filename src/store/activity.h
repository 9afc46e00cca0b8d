/* activity.h - a workspace's idle clock and retention, and users' settings.
 *
 * These columns of the workspaces table belong to the idle and retention
 * sweeps (workspace/idle.c) and are written only here, never by
 * store_ws_update, so a job that saves its record does not undo them.
 */
#ifndef BERTH_STORE_ACTIVITY_H
#define BERTH_STORE_ACTIVITY_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

struct ws_activity_rec {
    int64_t idle_timeout;  /* minutes; 0: never; -1: the owner's setting */
    int64_t last_activity; /* unix seconds, 0: none recorded */
    char *kind;            /* what it was ("terminal output"), or NULL */
    bool pinned;           /* kept by retention */
    bool retention_warned; /* its deletion was announced */
};
void ws_activity_rec_release(struct ws_activity_rec *a);

/* -ENOENT when there is no such workspace (by id). */
int store_ws_activity_get(struct store *s, const char *id, struct ws_activity_rec *ret);
int store_ws_set_activity(struct store *s, const char *id, int64_t when, const char *kind);
/* minutes as in ws_activity_rec.idle_timeout. */
int store_ws_set_idle_timeout(struct store *s, const char *id, int64_t minutes);
int store_ws_set_pinned(struct store *s, const char *id, bool pinned);
int store_ws_set_retention_warned(struct store *s, const char *id, bool warned);

/* One workspace as the idle sweep sees it: rec has id, name, state, owner
 * and updated_at; user_idle is the owner's "idle" setting (or NULL). */
struct ws_idle_row {
    struct ws_record rec;
    struct ws_activity_rec a;
    char *user_idle;
};
/* Every workspace with its clock and its owner's setting, in one query. */
int store_ws_idle_list(struct store *s, struct ws_idle_row **ret, size_t *ret_n);
void ws_idle_rows_free(struct ws_idle_row *rows, size_t n);

/* A user's setting (newly allocated), or NULL when unset. */
char *store_user_setting(struct store *s, const char *user, const char *key);
/* Sets (value NULL: removes) a user's setting; -ENOENT when no such user. */
int store_user_setting_set(struct store *s, const char *user, const char *key, const char *value);

#endif
