/* mirror.c - one bare mirror per remote under the data dir, shared by clones.
 *
 * Every workspace and prebuild of a remote clones from its mirror, so only
 * new objects cross the network: git_mirror_update fetches into it first, and
 * callers that arrive while a fetch of the same mirror runs wait for that one
 * instead of starting their own. The mirror is berthd's alone: it is never
 * mounted into a container, has no remote configured (the URL, and any
 * credential in it, is given to each fetch and never written to its config),
 * and clones copy its objects (--no-hardlinks), so no workspace can change
 * what the mirror or another workspace holds.
 */
#include "git/git.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/xalloc.h"

/* Fetches in flight, by mirror path: later callers wait and share the result. */
struct inflight {
    struct inflight *next;
    char *path;
    bool done;
    int result;
    char *error;
    int waiters;
};

static pthread_mutex_t inflight_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t inflight_cond = PTHREAD_COND_INITIALIZER;
static struct inflight *inflight_list;

char *git_mirror_path(const char *mirrors_dir, const char *url)
{
    unsigned char h[16];
    crypto_generichash(h, sizeof(h), (const unsigned char *)url, strlen(url), NULL, 0);
    char hex[sizeof(h) * 2 + 1];
    sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
    return xasprintf("%s/%s.git", mirrors_dir, hex);
}

/* The mirror's HEAD names the remote's default branch, as a clone's would,
 * so that a clone of the mirror without a branch checks out that one. */
static int mirror_set_head(const char *path, const char *url, struct berr **reterr)
{
    _cleanup_buf_ struct buf out = BUF_INIT;
    int r =
        git_run(NULL, NULL, NULL, &out, reterr, "ls-remote", "--symref", "--", url, "HEAD", NULL);
    if (r < 0)
        return r;
    /* "ref: refs/heads/main<TAB>HEAD" */
    const char *ref = strncmp(out.buf, "ref: ", 5) == 0 ? out.buf + 5 : NULL;
    const char *tab = ref ? strchr(ref, '\t') : NULL;
    if (!tab || strncmp(ref, "refs/heads/", 11) != 0)
        return 0; /* a detached or unknown HEAD: clones name their branch */
    _cleanup_free_ char *name = xstrndup(ref, (size_t)(tab - ref));
    return git_run(path, NULL, NULL, NULL, reterr, "symbolic-ref", "HEAD", name, NULL);
}

static int mirror_fetch(const char *path, const char *url, run_line_cb cb, void *data,
                        struct berr **reterr)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        /* made under a temporary name, so a half-made mirror is never used */
        _cleanup_free_ char *tmp = xasprintf("%s.tmp-%ld", path, (long)gettid());
        (void)rm_rf(tmp);
        int r = git_run(NULL, cb, data, NULL, reterr, "init", "--quiet", "--bare", "--", tmp, NULL);
        if (r < 0)
            return r;
        r = git_run(tmp, cb, data, NULL, reterr, "fetch", "--quiet", "--prune", "--", url,
                    "+refs/*:refs/*", NULL);
        if (r == 0)
            r = mirror_set_head(tmp, url, reterr);
        if (r < 0) {
            (void)rm_rf(tmp);
            return r;
        }
        if (rename(tmp, path) < 0) {
            int e = errno;
            (void)rm_rf(tmp);
            return berr_make(reterr, e, "cannot rename the mirror into '%s': %s", path,
                             strerror(e));
        }
        return 0;
    }
    return git_run(path, cb, data, NULL, reterr, "fetch", "--quiet", "--prune", "--", url,
                   "+refs/*:refs/*", NULL);
}

int git_mirror_update(const char *mirrors_dir, const char *url, run_line_cb cb, void *data,
                      char **ret_path, struct berr **reterr)
{
    int r = git_check_url(url, reterr);
    if (r < 0)
        return r;
    r = mkdir_p(mirrors_dir, 0700);
    if (r < 0)
        return berr_make(reterr, -r, "cannot create '%s': %s", mirrors_dir, strerror(-r));
    _cleanup_free_ char *src = NULL;
    if (url[0] == '/') {
        struct stat st;
        if (stat(url, &st) < 0 || !S_ISDIR(st.st_mode))
            return berr_make(reterr, ENOENT, "repository '%s' does not exist", url);
        src = xasprintf("file://%s", url);
    }
    char *path = git_mirror_path(mirrors_dir, url);

    pthread_mutex_lock(&inflight_lock);
    struct inflight *f = inflight_list;
    while (f && strcmp(f->path, path) != 0)
        f = f->next;
    if (f) {
        /* one fetch at a time per mirror: its result is ours too */
        f->waiters++;
        while (!f->done)
            pthread_cond_wait(&inflight_cond, &inflight_lock);
        r = f->result;
        if (r < 0)
            berr_make(reterr, -r, "%s", f->error);
        if (--f->waiters == 0) {
            free(f->path);
            free(f->error);
            free(f);
        }
        pthread_mutex_unlock(&inflight_lock);
        if (r < 0) {
            free(path);
            return r;
        }
        if (cb)
            cb("fetched by a clone of the same repository that ran at the same time", data);
        *ret_path = path;
        return 0;
    }
    f = xcalloc(1, sizeof(*f));
    f->path = xstrdup(path);
    f->next = inflight_list;
    inflight_list = f;
    pthread_mutex_unlock(&inflight_lock);

    struct berr *e = NULL;
    r = mirror_fetch(path, src ? src : url, cb, data, &e);

    pthread_mutex_lock(&inflight_lock);
    for (struct inflight **pp = &inflight_list; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    f->done = true;
    f->result = r;
    f->error = e ? xstrdup(berr_msg(e)) : NULL;
    bool shared = f->waiters > 0;
    pthread_cond_broadcast(&inflight_cond);
    if (!shared) {
        free(f->path);
        free(f->error);
        free(f);
    }
    pthread_mutex_unlock(&inflight_lock);
    if (r < 0) {
        free(path);
        if (reterr && !*reterr)
            *reterr = e;
        else
            berr_free(e);
        return r;
    }
    *ret_path = path;
    return 0;
}

int git_clone_mirror(const char *mirror, const char *url, const char *dest,
                     const struct git_target *t, run_line_cb cb, void *data, char **ret_commit,
                     struct berr **reterr)
{
    /* a copy of the objects, not hard links: the checkout is the workspace's
     * to write, the mirror is not */
    int r;
    if (t->branch)
        r = git_run(NULL, cb, data, NULL, reterr, "clone", "--quiet", "--no-hardlinks", "--branch",
                    t->branch, "--", mirror, dest, NULL);
    else
        r = git_run(NULL, cb, data, NULL, reterr, "clone", "--quiet", "--no-hardlinks", "--",
                    mirror, dest, NULL);
    if (r == 0 && (t->commit || t->ref)) {
        const char *what = t->commit ? t->commit : t->ref;
        if (t->ref) {
            r = git_run(dest, cb, data, NULL, reterr, "fetch", "--quiet", "origin", "--", what,
                        NULL);
            what = "FETCH_HEAD";
        }
        _cleanup_free_ char *spec = xasprintf("%s^{commit}", what);
        _cleanup_buf_ struct buf out = BUF_INIT;
        if (r == 0 && git_run(dest, NULL, NULL, &out, NULL, "rev-parse", "--verify", "--quiet",
                              spec, NULL) < 0)
            r = berr_make(reterr, ENOENT, "commit '%s' not found in the repository", t->commit);
        buf_rtrim(&out);
        if (r == 0)
            r = git_run(dest, cb, data, NULL, reterr, "checkout", "--quiet", "--detach", out.buf,
                        NULL);
    }
    /* origin is the repository itself, as in a clone from it */
    if (r == 0)
        r = git_run(dest, cb, data, NULL, reterr, "remote", "set-url", "origin", "--", url, NULL);
    if (r < 0)
        return berr_wrap(reterr, "clone '%s'", url);
    _cleanup_buf_ struct buf out = BUF_INIT;
    r = git_run(dest, NULL, NULL, &out, reterr, "rev-parse", "HEAD", NULL);
    if (r < 0)
        return berr_wrap(reterr, "clone '%s'", url);
    buf_rtrim(&out);
    *ret_commit = buf_detach(&out, NULL);
    return 0;
}

int git_mirror_resolve(const char *mirror, const struct git_target *t, char **ret_commit,
                       struct berr **reterr)
{
    _cleanup_free_ char *spec = xasprintf("%s%s^{commit}", t->branch ? "refs/heads/" : "",
                                          t->branch   ? t->branch
                                          : t->commit ? t->commit
                                          : t->ref    ? t->ref
                                                      : "HEAD");
    _cleanup_buf_ struct buf out = BUF_INIT;
    int r = git_run(mirror, NULL, NULL, &out, NULL, "rev-parse", "--verify", "--quiet", spec, NULL);
    if (r < 0)
        return berr_make(reterr, ENOENT, "'%s' is not in the repository", spec);
    buf_rtrim(&out);
    *ret_commit = buf_detach(&out, NULL);
    return 0;
}

char *git_mirror_default_branch(const char *mirror)
{
    _cleanup_buf_ struct buf out = BUF_INIT;
    if (git_run(mirror, NULL, NULL, &out, NULL, "symbolic-ref", "--short", "HEAD", NULL) < 0)
        return NULL;
    buf_rtrim(&out);
    return out.len ? buf_detach(&out, NULL) : NULL;
}
