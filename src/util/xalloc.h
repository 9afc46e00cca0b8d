/* xalloc.h - allocation that aborts on out-of-memory.
 *
 * berthd is supervised and restarts; handling OOM at every call site would only
 * add untested paths (crun, bubblewrap and redis do the same).
 */
#ifndef BERTH_XALLOC_H
#define BERTH_XALLOC_H

#include <stddef.h>
#include "util/macro.h"

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a newly allocated formatted string. */
char *xasprintf(const char *fmt, ...) _printf_(1, 2);

#endif
