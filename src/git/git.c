/* git.c - clone, check out and deepen repositories with the git CLI.
 *
 * The fast path is a shallow, single-branch clone; when a remote refuses it
 * (dumb HTTP, an abbreviated commit) the clone falls back to full history.
 * The rest of the history is fetched right after (git_unshallow), while the
 * checkout is still berthd's alone.
 */
#include "git/git.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/fs.h"
#include "util/xalloc.h"

#define GIT_TIMEOUT_MS (30 * 60 * 1000)

int git_check_url(const char *url, struct berr **reterr)
{
    static const char *const schemes[] = {"file://", "http://", "https://", "ssh://", "git://"};
    if (!url || !*url)
        return berr_make(reterr, EINVAL, "repo must not be empty");
    if (strlen(url) > 4096)
        return berr_make(reterr, EINVAL, "repo is too long");
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return berr_make(reterr, EINVAL, "repo contains control characters");
    if (url[0] == '/')
        return 0;
    for (size_t i = 0; i < ELEMENTSOF(schemes); i++)
        if (strncmp(url, schemes[i], strlen(schemes[i])) == 0)
            return 0;
    /* scp-like ssh: user@host:path (git reads it so only when no '/' comes
     * before the colon; otherwise it is a local path) */
    const char *at = strchr(url, '@'), *colon = strchr(url, ':');
    if (at && colon && at < colon && url[0] != '-' && !strstr(url, "::") &&
        !memchr(url, '/', (size_t)(colon - url)))
        return 0;
    return berr_make(reterr, EINVAL,
                     "repo '%s' is not an absolute path or a file://, http(s)://, ssh:// or "
                     "git:// URL",
                     url);
}

static __thread const struct git_auth *thread_auth;

void git_set_auth(const struct git_auth *a)
{
    thread_auth = a;
}

char *git_url_origin(const char *url)
{
    const char *scheme = strncmp(url, "https://", 8) == 0  ? "https://"
                         : strncmp(url, "http://", 7) == 0 ? "http://"
                                                           : NULL;
    if (!scheme)
        return NULL;
    const char *rest = url + strlen(scheme);
    const char *slash = strchr(rest, '/');
    const char *at = strchr(rest, '@');
    if (at && (!slash || at < slash))
        rest = at + 1; /* user info in the URL is not part of the origin */
    size_t hl = slash ? (size_t)(slash - rest) : strlen(rest);
    if (!hl)
        return NULL;
    _cleanup_free_ char *host = xstrndup(rest, hl);
    for (char *p = host; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return xasprintf("%s%s", scheme, host);
}

static void git_env(struct strv *env)
{
    strv_pushl(env, "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/nonexistent", "LANG=C.UTF-8",
               "GIT_TERMINAL_PROMPT=0", "GIT_ALLOW_PROTOCOL=file:git:http:https:ssh",
               "GIT_SSH_COMMAND=ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
               "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_COUNT=2", "GIT_CONFIG_KEY_0=safe.directory",
               "GIT_CONFIG_VALUE_0=*", "GIT_CONFIG_KEY_1=advice.detachedHead",
               "GIT_CONFIG_VALUE_1=false", NULL);
    if (thread_auth && thread_auth->askpass) {
        strv_setenv(env, "GIT_ASKPASS", thread_auth->askpass);
        strv_setenv(env, "BERTH_GIT_USERNAME", thread_auth->username);
        strv_setenv(env, "BERTH_GIT_PASSWORD", thread_auth->password);
    }
}

struct git_out {
    run_line_cb cb;
    void *data;
    char *last_fatal;
};

static void on_line(const char *line, void *data)
{
    struct git_out *o = data;
    if (strncmp(line, "fatal: ", 7) == 0 || strncmp(line, "error: ", 7) == 0) {
        free(o->last_fatal);
        o->last_fatal = xstrdup(line + 7);
    }
    if (o->cb && *line)
        o->cb(line, o->data);
}

/* Runs git with args (NULL-terminated) in cwd; on failure the error names git's
 * own last "fatal:" line. Output is captured into ret_out when not NULL. */
static int run_git(const char *cwd, struct git_out *o, struct buf *ret_out, struct berr **reterr,
                   ...) __attribute__((sentinel));

static int run_git(const char *cwd, struct git_out *o, struct buf *ret_out, struct berr **reterr,
                   ...)
{
    _cleanup_run_cmd_ struct run_cmd c = RUN_CMD_INIT;
    strv_push(&c.args, "git");
    va_list ap;
    va_start(ap, reterr);
    for (const char *a; (a = va_arg(ap, const char *));)
        strv_push(&c.args, a);
    va_end(ap);
    git_env(&c.env);
    /* never berthd's own directory: git takes an argument that names an
     * existing path there as a local repository, whatever it looks like */
    c.cwd = cwd ? cwd : "/";
    c.timeout_ms = GIT_TIMEOUT_MS;
    c.line_cb = on_line;
    c.data = o;
    c.capture = ret_out != NULL;
    free(o->last_fatal);
    o->last_fatal = NULL;
    int r = run_cmd(&c, reterr);
    if (r < 0)
        return r;
    if (r != 0)
        return berr_make(reterr, EIO, "%s", o->last_fatal ? o->last_fatal : "git failed");
    if (ret_out)
        buf_add(ret_out, c.output.buf, c.output.len);
    return 0;
}

static bool is_full_sha(const char *s)
{
    size_t n = strlen(s);
    if (n != 40 && n != 64)
        return false;
    return strspn(s, "0123456789abcdef") == n;
}

static int checkout_fetched(const char *dest, const char *url, const char *what, bool try_shallow,
                            struct git_out *o, bool *ret_shallow, struct berr **reterr)
{
    int r = run_git(NULL, o, NULL, reterr, "init", "--quiet", "--", dest, NULL);
    if (r < 0)
        return r;
    r = run_git(dest, o, NULL, reterr, "remote", "add", "origin", "--", url, NULL);
    if (r < 0)
        return r;
    if (try_shallow) {
        struct berr *e = NULL;
        r = run_git(dest, o, NULL, &e, "fetch", "--depth", "1", "--no-tags", "origin", "--", what,
                    NULL);
        berr_free(e);
        if (r == 0) {
            *ret_shallow = true;
            return run_git(dest, o, NULL, reterr, "checkout", "--quiet", "--detach", "FETCH_HEAD",
                           NULL);
        }
    }
    *ret_shallow = false;
    if (strncmp(what, "refs/", 5) == 0) {
        r = run_git(dest, o, NULL, reterr, "fetch", "origin", "--", what, NULL);
        if (r < 0)
            return r;
        return run_git(dest, o, NULL, reterr, "checkout", "--quiet", "--detach", "FETCH_HEAD",
                       NULL);
    }
    r = run_git(dest, o, NULL, reterr, "fetch", "--tags", "origin", NULL);
    if (r < 0)
        return r;
    _cleanup_free_ char *spec = xasprintf("%s^{commit}", what);
    _cleanup_buf_ struct buf out = BUF_INIT;
    r = run_git(dest, o, &out, reterr, "rev-parse", "--verify", "--quiet", spec, NULL);
    if (r < 0)
        return berr_make(reterr, ENOENT, "commit '%s' not found in the repository", what);
    buf_rtrim(&out);
    return run_git(dest, o, NULL, reterr, "checkout", "--quiet", "--detach", out.buf, NULL);
}

int git_clone(const char *url, const char *dest, const struct git_target *t, run_line_cb cb,
              void *data, char **ret_commit, bool *ret_shallow, struct berr **reterr)
{
    int r = git_check_url(url, reterr);
    if (r < 0)
        return r;
    /* a local path as file:// so that --depth applies */
    _cleanup_free_ char *u = NULL;
    if (url[0] == '/') {
        struct stat st;
        if (stat(url, &st) < 0 || !S_ISDIR(st.st_mode))
            return berr_make(reterr, ENOENT, "repository '%s' does not exist", url);
        u = xasprintf("file://%s", url);
    } else {
        u = xstrdup(url);
    }
    struct git_out o = {.cb = cb, .data = data};
    bool shallow = false;
    if (t->commit) {
        r = checkout_fetched(dest, u, t->commit, is_full_sha(t->commit), &o, &shallow, reterr);
    } else if (t->ref) {
        r = checkout_fetched(dest, u, t->ref, true, &o, &shallow, reterr);
    } else {
        struct berr *e = NULL;
        if (t->branch)
            r = run_git(NULL, &o, NULL, &e, "clone", "--depth", "1", "--single-branch", "--branch",
                        t->branch, "--", u, dest, NULL);
        else
            r = run_git(NULL, &o, NULL, &e, "clone", "--depth", "1", "--single-branch", "--", u,
                        dest, NULL);
        shallow = r == 0;
        if (r < 0 && e &&
            (strstr(e->msg, "not found in upstream") ||
             strstr(e->msg, "does not appear to be a git repository") ||
             strstr(e->msg, "Could not read from remote") || strstr(e->msg, "unable to access") ||
             strstr(e->msg, "Could not resolve"))) {
            /* the remote answered: a full clone would fail the same way */
            *reterr = TAKE_PTR(e);
        } else if (r < 0) {
            berr_free(e);
            (void)rm_rf(dest);
            if (t->branch)
                r = run_git(NULL, &o, NULL, reterr, "clone", "--single-branch", "--branch",
                            t->branch, "--", u, dest, NULL);
            else
                r = run_git(NULL, &o, NULL, reterr, "clone", "--", u, dest, NULL);
        }
    }
    free(o.last_fatal);
    if (r < 0)
        return berr_wrap(reterr, "clone '%s'", url);
    _cleanup_buf_ struct buf out = BUF_INIT;
    struct git_out q = {0};
    r = run_git(dest, &q, &out, reterr, "rev-parse", "HEAD", NULL);
    free(q.last_fatal);
    if (r < 0)
        return berr_wrap(reterr, "clone '%s'", url);
    buf_rtrim(&out);
    *ret_commit = buf_detach(&out, NULL);
    *ret_shallow = shallow;
    return 0;
}

int git_unshallow(const char *dest, struct berr **reterr)
{
    _cleanup_run_cmd_ struct run_cmd c = RUN_CMD_INIT;
    strv_pushl(&c.args, "git", "fetch", "--quiet", "--unshallow", "--tags", "origin", NULL);
    git_env(&c.env);
    c.cwd = dest;
    c.timeout_ms = GIT_TIMEOUT_MS;
    c.capture = true;
    c.max_output = 8192;
    int r = run_cmd(&c, reterr);
    if (r < 0)
        return r;
    if (r != 0) {
        buf_rtrim(&c.output);
        return berr_make(reterr, EIO, "fetch full history: %s", c.output.buf);
    }
    return 0;
}
