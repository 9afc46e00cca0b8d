/* git.c - running the git CLI on the host, safely: URL checks, a fixed
 * environment, credentials through an askpass helper, errors that name git's
 * own reason. mirror.c builds the shared clone cache on top of git_run.
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

/* Runs c (its args filled) with git's environment in cwd (never NULL: "/"). */
static int run_git_cmd(struct run_cmd *c, const char *cwd, struct git_out *o, struct buf *ret_out,
                       struct berr **reterr)
{
    git_env(&c->env);
    /* never berthd's own directory: git takes an argument that names an
     * existing path there as a local repository, whatever it looks like */
    c->cwd = cwd ? cwd : "/";
    c->timeout_ms = GIT_TIMEOUT_MS;
    c->line_cb = on_line;
    c->data = o;
    c->capture = ret_out != NULL;
    free(o->last_fatal);
    o->last_fatal = NULL;
    int r = run_cmd(c, reterr);
    if (r < 0)
        return r;
    if (r != 0)
        return berr_make(reterr, EIO, "%s", o->last_fatal ? o->last_fatal : "git failed");
    if (ret_out)
        buf_add(ret_out, c->output.buf, c->output.len);
    return 0;
}

int git_run(const char *cwd, run_line_cb cb, void *data, struct buf *ret_out, struct berr **reterr,
            ...)
{
    _cleanup_run_cmd_ struct run_cmd c = RUN_CMD_INIT;
    strv_push(&c.args, "git");
    va_list ap;
    va_start(ap, reterr);
    for (const char *a; (a = va_arg(ap, const char *));)
        strv_push(&c.args, a);
    va_end(ap);
    struct git_out o = {.cb = cb, .data = data};
    int r = run_git_cmd(&c, cwd, &o, ret_out, reterr);
    free(o.last_fatal);
    return r;
}
