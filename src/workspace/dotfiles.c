/* dotfiles.c - the owner's dotfiles in every new container.
 *
 * After postCreateCommand of a create or rebuild (never a prebuild, never a
 * start), as Codespaces does: the repository is fetched on the host into its
 * mirror with the owner's own git credentials (mirror_fetch: the same checks
 * as a create's repository), cloned into berthd's scratch space (never a
 * folder the container can write, which could lead a host git anywhere),
 * and sent as a tar on the stdin of one command in the container, run as
 * the remote user: it unpacks into the target folder (default ~/dotfiles)
 * and runs the first of the install scripts Codespaces looks for, or the
 * user's install command, else links the repository's top-level dot-files
 * into ~. The command has a time limit (10 idle minutes) and at most
 * DOTFILES_LOG_BYTES of its output reach the log. Whatever fails is logged
 * and an event, and the workspace is ready all the same.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "git/git.h"
#include "store/activity.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/run.h"
#include "workspace/ws-internal.h"

#define DOTFILES_MAX_TAR (64 * 1024 * 1024)
#define DOTFILES_LOG_BYTES (1024 * 1024)
#define DOTFILES_TIMEOUT_MINUTES 10

/* $1 target, $2 install command (may be empty); the tar on stdin. */
static const char dotfiles_script[] =
    "t=$1\n"
    "case $t in '~') t=$HOME ;; '~/'*) t=$HOME/${t#'~/'} ;; esac\n"
    "mkdir -p \"$t\" && tar -x -C \"$t\" -f - || { echo \"cannot unpack into $t\"; exit 90; }\n"
    "cd \"$t\" || exit 90\n"
    "echo \"dotfiles in $t\"\n"
    "if [ -n \"$2\" ]; then echo \"running: $2\"; exec sh -c \"$2\" </dev/null; fi\n"
    "for f in install.sh install bootstrap.sh bootstrap script/bootstrap setup.sh setup "
    "script/setup; do\n"
    "  if [ -f \"$f\" ]; then\n"
    "    chmod +x \"$f\" 2>/dev/null\n"
    "    echo \"running $f\"\n"
    "    exec \"./$f\" </dev/null\n"
    "  fi\n"
    "done\n"
    "echo \"no install script: linking the dot-files into $HOME\"\n"
    "for f in .[!.]* ..?*; do\n"
    "  [ -e \"$f\" ] || continue\n"
    "  case $f in .git|.gitignore|.gitmodules|.github) continue ;; esac\n"
    "  ln -sfn \"$t/$f\" \"$HOME/$f\" && echo \"linked ~/$f\"\n"
    "done\n";

static int pack(struct job_ctx *x, const char *mirror, const char *url, struct buf *tar,
                struct berr **reterr)
{
    _cleanup_free_ char *scratch = xasprintf("%s/tmp/dotfiles-%s", x->m->data_dir, x->rec.id);
    _cleanup_free_ char *clone = xasprintf("%s/d", scratch);
    _cleanup_free_ char *file = xasprintf("%s/d.tar", scratch);
    (void)rm_rf(scratch);
    int r = mkdir_p(scratch, 0700);
    if (r < 0)
        return berr_make(reterr, -r, "cannot create '%s': %s", scratch, strerror(-r));
    struct git_target t = {0};
    _cleanup_free_ char *commit = NULL;
    r = git_clone_mirror(mirror, url, clone, &t, log_line_cb, x, &commit, reterr);
    if (r >= 0) {
        jlog(x, "dotfiles at %.12s", commit);
        struct run_cmd c = RUN_CMD_INIT;
        strv_pushl(&c.args, "tar", "-C", clone, "-cf", file, ".", NULL);
        c.timeout_ms = 60000;
        int st = run_cmd(&c, reterr);
        run_cmd_release(&c);
        if (st > 0)
            r = berr_make(reterr, EIO, "cannot pack the dotfiles (tar exited %d)", st);
        else
            r = st;
    }
    if (r >= 0) {
        r = read_file(file, DOTFILES_MAX_TAR, tar);
        if (r < 0)
            r = berr_make(reterr, -r, "the dotfiles repository is over %d MB or unreadable: %s",
                          DOTFILES_MAX_TAR >> 20, strerror(-r));
    }
    (void)rm_rf(scratch);
    return r;
}

void step_dotfiles(struct job_ctx *x)
{
    struct store *s = x->m->store;
    const char *owner = x->rec.owner;
    _cleanup_free_ char *url = owner ? store_user_setting(s, owner, "dotfiles_url") : NULL;
    if (!url)
        return;
    _cleanup_free_ char *install = store_user_setting(s, owner, "dotfiles_install");
    _cleanup_free_ char *target = store_user_setting(s, owner, "dotfiles_target");
    runtime_set(x, "lifecycle", json_string("running dotfiles"));
    jevent(x, "dotfiles", "installing dotfiles from '%s'", url);
    _cleanup_berr_ struct berr *e = NULL;
    _cleanup_free_ char *mirror = NULL;
    _cleanup_buf_ struct buf tar = BUF_INIT;
    int r = mirror_fetch(x->m, url, owner, log_line_cb, x, &mirror, &e);
    if (r >= 0)
        r = pack(x, mirror, url, &tar, &e);
    int status = -1;
    if (r >= 0) {
        _cleanup_strv_ struct strv argv = STRV_INIT;
        strv_pushl(&argv, "/bin/sh", "-c", dotfiles_script, "sh", target ? target : "~/dotfiles",
                   install ? install : "", NULL);
        int64_t limit = DOTFILES_TIMEOUT_MINUTES * x->m->idle_minute_ms;
        x->limits.timeout_ms = limit;
        x->limits.log_bytes = DOTFILES_LOG_BYTES;
        x->limits.input = &tar;
        r = exec_in(x, &argv, x->rec.remote_user, "dotfiles: ", NULL, &status, &e);
        x->limits.timeout_ms = 0;
        x->limits.log_bytes = 0;
        x->limits.input = NULL;
    }
    if (r < 0)
        jevent(x, "dotfiles", "dotfiles failed: %s (the workspace is ready without them)",
               berr_msg(e));
    else if (status != 0)
        jevent(x, "dotfiles",
               "the dotfiles' install exited %d (the workspace is ready; see the log)", status);
    else
        jevent(x, "dotfiles", "dotfiles installed");
}
