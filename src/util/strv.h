/* strv.h - a NULL-terminated vector of owned strings, for argv and env.
 *
 * `v` is never NULL once initialized with STRV_INIT or strv_init(); v[n] is NULL.
 */
#ifndef BERTH_STRV_H
#define BERTH_STRV_H

#include <stdbool.h>
#include <stddef.h>
#include "util/macro.h"

struct strv {
    char **v;
    size_t n;
    size_t alloc;
};

extern char *strv_empty[];
#define STRV_INIT                                                                                  \
    {                                                                                              \
        .v = strv_empty, .n = 0, .alloc = 0                                                        \
    }

void strv_init(struct strv *s);
void strv_release(struct strv *s);
/* Appends a copy of str. */
void strv_push(struct strv *s, const char *str);
/* Appends str, taking ownership of it. */
void strv_push_owned(struct strv *s, char *str);
void strv_pushf(struct strv *s, const char *fmt, ...) _printf_(2, 3);
/* Appends each argument up to a NULL. */
void strv_pushl(struct strv *s, ...) __attribute__((sentinel));
/* For "NAME=value" vectors: sets NAME, replacing an existing entry. */
void strv_setenv(struct strv *s, const char *name, const char *value);
/* Returns the value of NAME in an env vector, or NULL. */
const char *strv_getenv(const struct strv *s, const char *name);
/* Whether an element equals str. */
bool strv_contains(const struct strv *s, const char *str);
/* Returns a newly allocated string of the elements joined with sep. */
char *strv_join(const struct strv *s, const char *sep);

static inline void strv_releasep(struct strv *s)
{
    strv_release(s);
}
#define _cleanup_strv_ _cleanup_(strv_releasep)

#endif
