/* store-internal.h - what the store's source files share; not for other modules. */
#ifndef BERTH_STORE_INTERNAL_H
#define BERTH_STORE_INTERNAL_H

#include <sqlite3.h>

#include "store/store.h"

struct store {
    sqlite3 *db;
};

DEFINE_TRIVIAL_CLEANUP_FUNC(sqlite3_stmt *, sqlite3_finalize)
#define _cleanup_stmt_ _cleanup_(sqlite3_finalizep)

/* Fills *reterr with SQLite's message, mapping constraint failures to EEXIST. */
int sql_error(struct store *s, struct berr **reterr, const char *what);
/* Prepares sql; 0 or -EIO. */
int prepare(struct store *s, const char *sql, sqlite3_stmt **ret);
/* Binds text, or NULL when v is NULL. */
void bind_text(sqlite3_stmt *st, int i, const char *v);
/* A copy of a text column, or NULL. */
char *col_text(sqlite3_stmt *st, int i);

#endif
