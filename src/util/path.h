/* path.h - paths judged by their text. */
#ifndef BERTH_PATH_H
#define BERTH_PATH_H

#include <stdbool.h>

/* Resolves ".", ".." and repeated slashes of path by its text alone (no
 * symlinks are looked at). An absolute path stays absolute, and ".." at its
 * root stays there ("/../x" is "/x"). A relative path gives NULL when ".."
 * would climb above where it starts, and "" when it is that start itself. */
char *path_normalize(const char *path);

/* Whether path is prefix or below it, by whole components ("/srv/a" is under
 * "/srv" and "/srv/", not under "/sr"; everything is under "/"). */
bool path_is_under(const char *path, const char *prefix);

#endif
