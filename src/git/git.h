/* git.h - the git CLI on the host: clones through a mirror per remote.
 *
 * Every git runs from an argv array with a fixed, minimal environment: no
 * terminal prompts, only the file, git, http(s) and ssh transports (so a URL
 * such as "ext::sh -c ..." can never run a command on the host), and "--"
 * before the URL so it cannot be taken for an option. Blocking; worker threads
 * only.
 */
#ifndef BERTH_GIT_H
#define BERTH_GIT_H

#include <stdbool.h>
#include <sys/types.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/run.h"

/* What to check out: at most one of branch, commit, ref (all NULL: the default branch). */
struct git_target {
    const char *branch;
    const char *commit;
    const char *ref;
};

/* Checks that url is a local absolute path or a URL of an allowed transport. */
int git_check_url(const char *url, struct berr **reterr);

/* Credentials for one clone: given to git through GIT_ASKPASS (a helper that
 * prints them from its environment), never in a URL, a file or a log. */
struct git_auth {
    const char *askpass; /* path of the helper */
    const char *username;
    const char *password;
};
/* Sets the credentials used by the next git_run/git_mirror_update on this thread. */
void git_set_auth(const struct git_auth *a);

/* "scheme://host[:port]" of an http(s) URL, newly allocated, or NULL. */
char *git_url_origin(const char *url);

/* Runs git with args (NULL-terminated) in cwd (NULL: "/") with the minimal
 * environment above; output lines go to cb (may be NULL), and are captured
 * into ret_out when it is not NULL. On failure the error is git's own last
 * "fatal:" line. Only for repositories that are berthd's alone (a mirror, a
 * checkout no container has written): git obeys the config and hooks it finds. */
int git_run(const char *cwd, run_line_cb cb, void *data, struct buf *ret_out, struct berr **reterr,
            ...) __attribute__((sentinel));

/* ---- mirrors (mirror.c) ---- */

/* The mirror of url under mirrors_dir (newly allocated; it may not exist yet). */
char *git_mirror_path(const char *mirrors_dir, const char *url);

/* Brings the bare mirror of url up to date (made on first use), and gives its
 * path in *ret_path. A caller that comes while a fetch of the same mirror runs
 * waits for it and shares its result. Credentials: git_set_auth, as for
 * git_clone; they never reach the mirror's config. */
int git_mirror_update(const char *mirrors_dir, const char *url, run_line_cb cb, void *data,
                      char **ret_path, struct berr **reterr);

/* Clones the mirror into dest (which must not exist) with copied objects,
 * checks out the target and points origin at url. *ret_commit: the commit. */
int git_clone_mirror(const char *mirror, const char *url, const char *dest,
                     const struct git_target *t, run_line_cb cb, void *data, char **ret_commit,
                     struct berr **reterr);

/* The mirror's default branch (newly allocated), or NULL when it has none. */
char *git_mirror_default_branch(const char *mirror);
/* The commit the target names in the mirror (a branch, a ref, a commit, or
 * the default branch), newly allocated in *ret_commit. */
int git_mirror_resolve(const char *mirror, const struct git_target *t, char **ret_commit,
                       struct berr **reterr);

#endif
