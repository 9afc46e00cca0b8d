/* path.c - paths judged by their text (see path.h). */
#include "util/path.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/strv.h"
#include "util/xalloc.h"

char *path_normalize(const char *path)
{
    bool absolute = path[0] == '/';
    struct strv parts = STRV_INIT;
    char *copy = xstrdup(path);
    char *save = NULL;
    bool escaped = false;
    for (char *p = strtok_r(copy, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
        if (strcmp(p, ".") == 0)
            continue;
        if (strcmp(p, "..") == 0) {
            if (parts.n) {
                free(parts.v[--parts.n]);
                parts.v[parts.n] = NULL;
            } else if (!absolute) {
                escaped = true;
            }
            continue;
        }
        strv_push(&parts, p);
    }
    free(copy);
    char *joined = strv_join(&parts, "/");
    strv_release(&parts);
    if (escaped) {
        free(joined);
        return NULL;
    }
    if (!absolute)
        return joined;
    char *r = xasprintf("/%s", joined);
    free(joined);
    return r;
}

bool path_is_under(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    while (n > 1 && prefix[n - 1] == '/')
        n--;
    if (n == 1 && prefix[0] == '/')
        return true;
    return strncmp(path, prefix, n) == 0 && (path[n] == 0 || path[n] == '/');
}
