/* git.h - cloning a workspace's repository on the host with the git CLI.
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

/* Clones url into dest (which must not exist), shallow where the remote allows,
 * and checks out the target. Progress lines go to cb. On success *ret_commit is
 * the checked-out commit and *ret_shallow tells whether history is incomplete. */
int git_clone(const char *url, const char *dest, const struct git_target *t, run_line_cb cb,
              void *data, char **ret_commit, bool *ret_shallow, struct berr **reterr);

/* Credentials for one clone: given to git through GIT_ASKPASS (a helper that
 * prints them from its environment), never in a URL, a file or a log. */
struct git_auth {
    const char *askpass; /* path of the helper */
    const char *username;
    const char *password;
};
/* Sets the credentials used by the next git_clone/git_unshallow on this thread. */
void git_set_auth(const struct git_auth *a);

/* "scheme://host[:port]" of an http(s) URL, newly allocated, or NULL. */
char *git_url_origin(const char *url);

/* Fetches the full history of a shallow clone. Only for a checkout nobody
 * else has written to yet: git obeys the hooks and config in dest/.git. */
int git_unshallow(const char *dest, struct berr **reterr);

#endif
