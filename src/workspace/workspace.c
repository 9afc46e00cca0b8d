/* workspace.c - the workspace state machine and its jobs.
 *
 * Parts, in order:
 *   - states and names (one X-macro table);
 *   - the manager: store, engine, busy set, log followers;
 *   - job plumbing: one uv_work_t per action, run on the thread pool, with a
 *     context that logs to the store and wakes the loop;
 *   - the steps: clone, read the config, ensure the image, create and start the
 *     container, wait for the agent, run the lifecycle commands;
 *   - the actions: create, start, stop, rebuild, delete;
 *   - reconcile after a restart;
 *   - log followers, fed on the loop from a uv_async_t.
 *
 * Rule for every action: write the new state, then do the work, then write the
 * resting state. A crash in between leaves a busy state in the store, which
 * reconcile resumes.
 */
#include "workspace/workspace.h"

#include <ctype.h>
#include <fnmatch.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/sysinfo.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devcontainer/devcontainer.h"
#include "devcontainer/options.h"
#include "git/git.h"
#include "store/accounts.h"
#include "util/seal.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/path.h"
#include "util/urlscan.h"
#include "util/xalloc.h"
#include "workspace/agentc.h"
#include "workspace/build.h"

#define WS_AGENT_TIMEOUT_MS (60 * 1000)
#define WS_STOP_TIMEOUT_S 10
#define WS_LOG_BATCH 500

/* ---- states ---- */

#define WS_STATE_NAME(e, s, b) [e] = s,
static const char *const state_names[] = {WS_STATES(WS_STATE_NAME)};
#undef WS_STATE_NAME
#define WS_STATE_BUSY(e, s, b) [e] = b,
static const bool state_busy[] = {WS_STATES(WS_STATE_BUSY)};
#undef WS_STATE_BUSY

const char *ws_state_name(enum ws_state s)
{
    return s >= 0 && s < _WS_STATE_MAX ? state_names[s] : "unknown";
}

enum ws_state ws_state_from_name(const char *name)
{
    for (int i = 0; name && i < _WS_STATE_MAX; i++)
        if (strcmp(state_names[i], name) == 0)
            return (enum ws_state)i;
    return _WS_STATE_INVALID;
}

bool ws_state_is_busy(enum ws_state s)
{
    return s >= 0 && s < _WS_STATE_MAX && state_busy[s];
}

/* ---- manager ---- */

struct ws_log_follower {
    struct ws_log_follower *next;
    char *id;
    int64_t last;
    ws_log_cb cb;
    void *data;
    bool removed;
};

struct ws_manager {
    uv_loop_t *loop;
    struct store *store;
    struct engine *engine;
    char *data_dir;
    char *agent_dir; /* holds berth-agent; mounted read-only */
    char *default_image;
    char *askpass;         /* DATA/bin/git-askpass */
    char *ide_dir;         /* code-server tree, mounted read-only */
    pthread_mutex_t lock;  /* guards busy, attaching and after */
    struct strv busy;      /* ids with a job under way */
    struct strv attaching; /* ids whose postAttachCommand runs */
    /* "ACTION ID": a stop or delete asked for while lifecycle commands ran;
     * their job stops at the next command and the action follows it */
    struct strv after;
    uv_async_t notify; /* a job wrote a log line or changed a state */
    struct ws_log_follower *followers;
    bool delivering;
    ws_change_cb change_cb;
    void *change_data;
    ws_url_cb url_cb; /* set before any job runs */
    void *url_data;
};

void ws_manager_on_url(struct ws_manager *m, ws_url_cb cb, void *data)
{
    m->url_cb = cb;
    m->url_data = data;
}

struct url_ctx {
    struct ws_manager *m;
    const char *ws_id;
};

static void url_found(int port, const char *path, void *data)
{
    struct url_ctx *u = data;
    u->m->url_cb(u->ws_id, port, path, u->m->url_data);
}

void ws_scan_output(struct ws_manager *m, const char *ws_id, struct urlscan *s, const char *data,
                    size_t len)
{
    if (!m->url_cb)
        return;
    struct url_ctx u = {.m = m, .ws_id = ws_id};
    urlscan_feed(s, data, len, url_found, &u);
}

void ws_manager_on_change(struct ws_manager *m, ws_change_cb cb, void *data)
{
    m->change_cb = cb;
    m->change_data = data;
}

struct store *ws_manager_store(struct ws_manager *m)
{
    return m->store;
}

const char *ws_manager_data_dir(struct ws_manager *m)
{
    return m->data_dir;
}

char *ws_run_dir(struct ws_manager *m, const char *id)
{
    return xasprintf("%s/run/%s", m->data_dir, id);
}

static char *ws_files_dir(struct ws_manager *m, const char *id)
{
    return xasprintf("%s/workspaces/%s", m->data_dir, id);
}

static bool busy_take(struct ws_manager *m, const char *id)
{
    pthread_mutex_lock(&m->lock);
    bool taken = false;
    for (size_t i = 0; i < m->busy.n; i++)
        if (strcmp(m->busy.v[i], id) == 0)
            taken = true;
    if (!taken)
        strv_push(&m->busy, id);
    pthread_mutex_unlock(&m->lock);
    return !taken;
}

/* Where id's entry ("ACTION ID") is in m->after, or -1; m->lock held. */
static ssize_t after_find(struct ws_manager *m, const char *id)
{
    for (size_t i = 0; i < m->after.n; i++)
        if (strcmp(strchr(m->after.v[i], ' ') + 1, id) == 0)
            return (ssize_t)i;
    return -1;
}

/* The action that waits for id's job to end (and forgets it), or -1. With
 * set >= 0, records it instead (a delete wins over a stop). */
static int after_job(struct ws_manager *m, const char *id, int set)
{
    pthread_mutex_lock(&m->lock);
    ssize_t i = after_find(m, id);
    int found = i < 0 ? -1 : atoi(m->after.v[i]);
    if (i >= 0 && (set < 0 || set == WS_ACTION_DELETE)) {
        free(m->after.v[i]);
        m->after.v[i] = m->after.v[m->after.n - 1];
        m->after.v[--m->after.n] = NULL;
    }
    if (set >= 0 && (found < 0 || set == WS_ACTION_DELETE))
        strv_pushf(&m->after, "%d %s", set, id);
    pthread_mutex_unlock(&m->lock);
    return found;
}

/* The action (a stop or delete) that waits for id's job, which should stop
 * short, or -1. */
static int interrupt_action(struct ws_manager *m, const char *id)
{
    pthread_mutex_lock(&m->lock);
    ssize_t i = after_find(m, id);
    int action = i < 0 ? -1 : atoi(m->after.v[i]);
    pthread_mutex_unlock(&m->lock);
    return action;
}

static bool interrupt_asked(struct ws_manager *m, const char *id)
{
    return interrupt_action(m, id) >= 0;
}

static void busy_release(struct ws_manager *m, const char *id)
{
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->busy.n; i++) {
        if (strcmp(m->busy.v[i], id) == 0) {
            free(m->busy.v[i]);
            m->busy.v[i] = m->busy.v[m->busy.n - 1];
            m->busy.v[--m->busy.n] = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&m->lock);
}

bool ws_is_busy(struct ws_manager *m, const char *id)
{
    pthread_mutex_lock(&m->lock);
    bool b = false;
    for (size_t i = 0; i < m->busy.n; i++)
        if (strcmp(m->busy.v[i], id) == 0)
            b = true;
    pthread_mutex_unlock(&m->lock);
    return b;
}

static void deliver_logs(uv_async_t *a);

int ws_manager_new(uv_loop_t *loop, struct store *store, struct engine *engine,
                   const struct ws_manager_config *cfg, struct ws_manager **ret,
                   struct berr **reterr)
{
    struct ws_manager *m = xcalloc(1, sizeof(*m));
    m->loop = loop;
    m->store = store;
    m->engine = engine;
    m->data_dir = xstrdup(cfg->data_dir);
    m->agent_dir = xasprintf("%s/agent", cfg->data_dir);
    m->default_image = xstrdup(cfg->default_image ? cfg->default_image : WS_DEFAULT_IMAGE);
    m->ide_dir = cfg->ide_dir ? xstrdup(cfg->ide_dir) : xasprintf("%s/ide", cfg->data_dir);
    m->busy = (struct strv)STRV_INIT;
    m->attaching = (struct strv)STRV_INIT;
    m->after = (struct strv)STRV_INIT;
    pthread_mutex_init(&m->lock, NULL);

    const char *dirs[] = {"workspaces", "run", "agent", "bin"};
    for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
        _cleanup_free_ char *d = xasprintf("%s/%s", m->data_dir, dirs[i]);
        int r = mkdir_p(d, 0711);
        if (r < 0) {
            ws_manager_free(m);
            return berr_make(reterr, -r, "cannot create '%s': %s", d, strerror(-r));
        }
    }
    /* the agent is copied, not linked, so a rebuild of berthd cannot change a
     * running container's PID 1 under it */
    _cleanup_buf_ struct buf bin = BUF_INIT;
    int r = read_file(cfg->agent_binary, 64 * 1024 * 1024, &bin);
    if (r >= 0) {
        _cleanup_free_ char *dst = xasprintf("%s/berth-agent", m->agent_dir);
        r = write_file_atomic(dst, bin.buf, bin.len, 0755);
    }
    if (r < 0) {
        ws_manager_free(m);
        return berr_make(reterr, -r, "cannot install the agent from '%s': %s", cfg->agent_binary,
                         strerror(-r));
    }
    /* git asks this for credentials; they reach it only through the
     * environment of that one git process */
    static const char askpass[] = "#!/bin/sh\n"
                                  "case \"$1\" in\n"
                                  "[Uu]sername*) printf '%s\\n' \"$BERTH_GIT_USERNAME\" ;;\n"
                                  "*) printf '%s\\n' \"$BERTH_GIT_PASSWORD\" ;;\n"
                                  "esac\n";
    m->askpass = xasprintf("%s/bin/git-askpass", m->data_dir);
    r = write_file_atomic(m->askpass, askpass, sizeof(askpass) - 1, 0755);
    if (r < 0) {
        ws_manager_free(m);
        return berr_make(reterr, -r, "cannot write '%s': %s", m->askpass, strerror(-r));
    }
    uv_async_init(loop, &m->notify, deliver_logs);
    m->notify.data = m;
    *ret = m;
    return 0;
}

void ws_manager_free(struct ws_manager *m)
{
    if (!m)
        return;
    while (m->followers) {
        struct ws_log_follower *f = m->followers;
        m->followers = f->next;
        free(f->id);
        free(f);
    }
    if (m->notify.loop)
        uv_close((uv_handle_t *)&m->notify, NULL);
    /* the manager itself is leaked on purpose when jobs may still run: berthd
     * exits right after this */
    free(m->data_dir);
    m->data_dir = NULL;
}

/* ---- job plumbing ---- */

struct job {
    uv_work_t work;
    struct ws_manager *m;
    char *id;
    enum ws_action action;
    bool background; /* not holding the busy mark (postAttach, interrupt) */
    bool resume;     /* picked up again by reconcile after a restart */
};

static void queue_job(struct ws_manager *m, const char *id, enum ws_action action, bool background,
                      bool resume);

/* What a job works on: the record, read from the store when the job starts. */
struct job_ctx {
    struct ws_manager *m;
    struct ws_record rec;
    struct buf line;  /* partial output line */
    bool interrupted; /* lifecycle commands cut short for a stop or delete */
    bool replaced;    /* provision removed the container it had */
    struct strv env;  /* the owner's secrets for this workspace */
    struct strv mask; /* their values, hidden in the log */
};

/* Replaces every secret value of the owner in b with "***". */
static void mask_secrets(struct job_ctx *x, struct buf *b)
{
    for (size_t i = 0; i < x->mask.n; i++) {
        const char *secret = x->mask.v[i];
        size_t sl = strlen(secret);
        if (sl < 3)
            continue; /* too short to hide without hiding everything */
        struct buf masked = BUF_INIT;
        const char *p = b->buf;
        for (const char *hit; (hit = strstr(p, secret)); p = hit + sl) {
            buf_add(&masked, p, (size_t)(hit - p));
            buf_adds(&masked, "***");
        }
        buf_adds(&masked, p);
        buf_release(b);
        *b = masked;
    }
}

static void jlog(struct job_ctx *x, const char *fmt, ...) _printf_(2, 3);
static void jlog(struct job_ctx *x, const char *fmt, ...)
{
    _cleanup_buf_ struct buf b = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vaddf(&b, fmt, ap);
    va_end(ap);
    mask_secrets(x, &b);
    (void)store_log_add(x->m->store, x->rec.id, b.buf);
    uv_async_send(&x->m->notify);
}

/* An event in the timeline, also shown in the log. */
static void jevent(struct job_ctx *x, const char *type, const char *fmt, ...) _printf_(3, 4);
static void jevent(struct job_ctx *x, const char *type, const char *fmt, ...)
{
    _cleanup_buf_ struct buf b = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vaddf(&b, fmt, ap);
    va_end(ap);
    mask_secrets(x, &b);
    (void)store_event_add(x->m->store, x->rec.id, type, b.buf);
    jlog(x, "==> %s", b.buf);
}

static void log_line_cb(const char *line, void *data)
{
    jlog(data, "%s", line);
}

static int save(struct job_ctx *x)
{
    _cleanup_berr_ struct berr *e = NULL;
    /* what an interrupting stop or delete showed stays shown */
    int next = interrupt_action(x->m, x->rec.id);
    if (next >= 0) {
        free(x->rec.state);
        x->rec.state = xstrdup(ws_state_name(next == WS_ACTION_DELETE ? WS_DELETING : WS_STOPPING));
    }
    int r = store_ws_update(x->m->store, &x->rec, &e);
    if (r < 0)
        log_error("workspace '%s': %s", x->rec.id, berr_msg(e));
    uv_async_send(&x->m->notify);
    return r;
}

static void set_state(struct job_ctx *x, enum ws_state s, const char *error)
{
    /* already there (waitFor made it ready early) with nothing new to say */
    if (!error && !x->rec.error && x->rec.state && strcmp(x->rec.state, ws_state_name(s)) == 0) {
        (void)save(x);
        return;
    }
    free(x->rec.state);
    x->rec.state = xstrdup(ws_state_name(s));
    free(x->rec.error);
    x->rec.error = error ? xstrdup(error) : NULL;
    (void)store_event_add(x->m->store, x->rec.id, "state", error ? error : ws_state_name(s));
    if (error)
        jlog(x, "==> %s: %s", ws_state_name(s), error);
    else
        jlog(x, "==> %s", ws_state_name(s));
    (void)save(x);
}

static void set_field(char **field, const char *value)
{
    free(*field);
    *field = value ? xstrdup(value) : NULL;
}

/* ---- steps ---- */

/* The directory name of the checkout: the repo's last path component without
 * ".git", reduced to characters that are safe in a path. */
static char *repo_dir_name(const char *repo)
{
    _cleanup_free_ char *s = xstrdup(repo);
    size_t n = strlen(s);
    while (n && s[n - 1] == '/')
        s[--n] = 0;
    /* ".../name/.git" names the repository "name" */
    if (n > 5 && strcmp(s + n - 5, "/.git") == 0)
        s[n -= 5] = 0;
    const char *base = s;
    for (const char *p = s; *p; p++)
        if (*p == '/' || *p == ':')
            base = p + 1;
    struct buf b = BUF_INIT;
    for (const char *p = base; *p; p++)
        buf_addch(&b, isalnum((unsigned char)*p) || strchr("-_.", *p) ? *p : '-');
    if (b.len > 4 && strcmp(b.buf + b.len - 4, ".git") == 0) {
        b.len -= 4;
        b.buf[b.len] = 0;
    }
    if (!b.len || strcmp(b.buf, ".") == 0 || strcmp(b.buf, "..") == 0) {
        buf_release(&b);
        return xstrdup("repo");
    }
    return buf_detach(&b, NULL);
}

static char *clone_path(struct job_ctx *x)
{
    _cleanup_free_ char *files = ws_files_dir(x->m, x->rec.id);
    _cleanup_free_ char *name = repo_dir_name(x->rec.repo);
    return xasprintf("%s/%s", files, name);
}

static void sodium_memzero_buf(struct buf *b)
{
    volatile char *p = b->buf;
    for (size_t i = 0; i < b->len; i++)
        p[i] = 0;
}

/* The owner's stored credential for the repo's host, unsealed. */
static int owner_credential(struct job_ctx *x, char **ret_username, struct buf *ret_password)
{
    if (!x->rec.owner)
        return -ENOENT;
    _cleanup_free_ char *origin = git_url_origin(x->rec.repo);
    if (!origin)
        return -ENOENT;
    struct user_rec u = {0};
    if (store_user_get(x->m->store, x->rec.owner, &u, NULL) < 0)
        return -ENOENT;
    int64_t uid = u.id;
    user_rec_release(&u);
    _cleanup_buf_ struct buf sealed = BUF_INIT;
    char *username = NULL;
    int r = store_gitcred_find(x->m->store, uid, origin, &username, &sealed);
    if (r < 0)
        return r;
    r = unseal(sealed.buf, sealed.len, ret_password);
    if (r < 0) {
        free(username);
        return r;
    }
    *ret_username = username;
    return 0;
}

static int check_local_repo(struct ws_manager *m, const struct ws_create_request *req,
                            struct berr **reterr);

static int step_clone(struct job_ctx *x, struct berr **reterr)
{
    /* checked again at each clone: an admin may have taken the folder away,
     * or the path may lead elsewhere now */
    struct user_rec owner = {0};
    bool admin =
        x->rec.owner && store_user_get(x->m->store, x->rec.owner, &owner, NULL) == 0 && owner.admin;
    user_rec_release(&owner);
    struct ws_create_request req = {
        .repo = x->rec.repo, .owner = x->rec.owner, .owner_is_admin = admin};
    int rc = check_local_repo(x->m, &req, reterr);
    if (rc < 0)
        return rc;
    _cleanup_free_ char *files = ws_files_dir(x->m, x->rec.id);
    _cleanup_free_ char *dest = clone_path(x);
    (void)rm_rf(files); /* a clone interrupted by a crash starts over */
    int r = mkdir_p(files, 0755);
    if (r < 0)
        return berr_make(reterr, -r, "cannot create '%s': %s", files, strerror(-r));
    struct git_target t = {.branch = x->rec.branch, .commit = x->rec.commit, .ref = x->rec.ref};
    jevent(x, "clone", "cloning '%s'%s%s", x->rec.repo,
           t.branch   ? " branch "
           : t.commit ? " commit "
           : t.ref    ? " ref "
                      : "",
           t.branch   ? t.branch
           : t.commit ? t.commit
           : t.ref    ? t.ref
                      : "");
    _cleanup_free_ char *commit = NULL;
    bool shallow = false;
    struct git_auth auth = {0};
    _cleanup_free_ char *username = NULL;
    _cleanup_buf_ struct buf password = BUF_INIT;
    if (owner_credential(x, &username, &password) == 0) {
        auth = (struct git_auth){
            .askpass = x->m->askpass, .username = username, .password = password.buf};
        jlog(x, "using the stored git credentials of '%s' for this host", x->rec.owner);
    }
    git_set_auth(auth.askpass ? &auth : NULL);
    r = git_clone(x->rec.repo, dest, &t, log_line_cb, x, &commit, &shallow, reterr);
    if (r == 0) {
        set_field(&x->rec.commit, commit);
        jlog(x, "checked out %.12s%s", commit, shallow ? " (shallow; fetching the history)" : "");
    }
    /* The rest of the history is fetched now, while the checkout is still
     * berthd's alone: once the user (or the repository's lifecycle commands)
     * can write .git, a git run on the host would obey their hooks and
     * config. A failure here only leaves the clone shallow. */
    if (r == 0 && shallow) {
        _cleanup_berr_ struct berr *he = NULL;
        if (git_unshallow(dest, &he) < 0)
            jevent(x, "git", "the full history could not be fetched (%s); the clone stays shallow",
                   berr_msg(he));
        else
            jlog(x, "full history fetched");
    }
    git_set_auth(NULL);
    sodium_memzero_buf(&password);
    if (r < 0)
        return r;
    (void)save(x);
    return 0;
}

bool ws_image_name_allowed(const char *image)
{
    /* other workspaces' builds hold their sources; ids resolve by prefix */
    if (strncmp(image, "localhost/berth/build-", 22) == 0 ||
        strncmp(image, "localhost/berth/features-", 25) == 0 || strncmp(image, "sha256:", 7) == 0)
        return false;
    return strspn(image, "0123456789abcdef") != strlen(image);
}

/* Reads devcontainer.json into cfg and picks the image. */
static int step_config(struct job_ctx *x, const char *requested_path, struct dc_config *cfg,
                       struct berr **reterr)
{
    _cleanup_free_ char *dest = clone_path(x);
    _cleanup_free_ char *rel = NULL;
    int r = dc_find(dest, requested_path, &rel, reterr);
    if (r < 0)
        return r;
    _cleanup_free_ char *dirname_ = repo_dir_name(x->rec.repo);
    _cleanup_free_ char *folder = xasprintf("/workspaces/%s", dirname_);
    /* ${localEnv:VAR}: the owner's secrets for this repository, never
     * berthd's own environment (nor what the container's shell had) */
    _cleanup_strv_ struct strv owner_env = STRV_INIT;
    struct ws_record secrets_only = x->rec;
    secrets_only.runtime = NULL;
    (void)ws_owner_env(x->m, &secrets_only, &owner_env, NULL);
    struct dc_vars vars = {.local_workspace_folder = dest,
                           .container_workspace_folder = folder,
                           .devcontainer_id = x->rec.id,
                           .local_env = &owner_env};
    r = dc_load(dest, rel, &vars, cfg, reterr);
    if (r < 0)
        return r;
    if (rel)
        jlog(x, "using configuration '%s'", rel);
    else
        jlog(x, "no devcontainer.json found: using the default image");
    if (cfg->image && !ws_image_name_allowed(cfg->image))
        return berr_make(reterr, EPERM,
                         "'%s': image '%s' is not allowed: Berth's build cache and image ids "
                         "cannot be named; use the image's name or \"build\"",
                         rel, cfg->image);
    set_field(&x->rec.devcontainer_path, rel);
    set_field(&x->rec.image, cfg->image ? cfg->image : x->m->default_image);
    if (!cfg->workspace_folder)
        cfg->workspace_folder = xstrdup(folder);
    set_field(&x->rec.workspace_folder, cfg->workspace_folder);
    if (json_object_get(cfg->raw, "initializeCommand"))
        jlog(x, "initializeCommand skipped: Berth never runs a repository's commands on the "
                "server");
    return 0;
}

static void pull_line_cb(const char *line, void *data)
{
    jlog(data, "%s", line);
}

/* Makes sure the image is present; returns its inspect JSON in *ret. */
static int step_image(struct job_ctx *x, json_t **ret, struct berr **reterr)
{
    const char *image = x->rec.image;
    struct berr *e = NULL;
    int r = engine_image_inspect(x->m->engine, image, ret, &e);
    if (r == 0)
        return 0;
    if (r != -ENOENT) {
        if (reterr && !*reterr)
            *reterr = e;
        else
            berr_free(e);
        return r;
    }
    berr_free(e);
    e = NULL;
    jevent(x, "image", "pulling image '%s'", image);
    r = engine_image_pull(x->m->engine, image, pull_line_cb, x, &e);
    if (r == 0)
        r = engine_image_inspect(x->m->engine, image, ret, &e);
    if (r < 0) {
        int code = berr_make(reterr, ENOENT, "image '%s' not found and could not be pulled: %s",
                             image, berr_msg(e));
        berr_free(e);
        return code;
    }
    return 0;
}

static const char *image_label(json_t *inspect, const char *label)
{
    json_t *labels = json_object_get(json_object_get(inspect, "Config"), "Labels");
    return json_string_value(json_object_get(labels, label));
}

static void build_line_cb(const char *line, void *data)
{
    jlog(data, "build: %s", line);
}

/* Scratch space for a build, under the data dir (not in the checkout). */
static char *build_dir(struct job_ctx *x)
{
    return xasprintf("%s/tmp/build-%s", x->m->data_dir, x->rec.id);
}

/* The user commands run as, from a merged config: remoteUser, then
 * containerUser, then the image's own user, then root. */
static const char *pick_user(const struct dc_config *merged, json_t *image)
{
    const char *image_user =
        json_string_value(json_object_get(json_object_get(image, "Config"), "User"));
    return merged->remote_user         ? merged->remote_user
           : merged->container_user    ? merged->container_user
           : image_user && *image_user ? image_user
                                       : "root";
}

/* The builder for this workspace, on an empty scratch dir (*ret_work) and
 * its checkout (*ret_repo); both strings are the caller's to free. */
static int builder_open(struct job_ctx *x, struct wsb *b, char **ret_work, char **ret_repo,
                        struct berr **reterr)
{
    *ret_work = build_dir(x);
    *ret_repo = clone_path(x);
    (void)rm_rf(*ret_work);
    int r = mkdir_p(*ret_work, 0700);
    if (r < 0)
        return berr_make(reterr, -r, "cannot create '%s'", *ret_work);
    *b = (struct wsb){.engine = x->m->engine,
                      .repo_dir = *ret_repo,
                      .config_rel = x->rec.devcontainer_path,
                      .work_dir = *ret_work,
                      .log = build_line_cb,
                      .data = x};
    return 0;
}

/* The image a build made (tag, taken) becomes the workspace's. */
static void adopt_image(struct job_ctx *x, char *tag)
{
    set_field(&x->rec.image, tag);
    free(tag);
    (void)save(x);
}

/* "build": the Dockerfile's image (built once per content) replaces "image". */
static int step_build(struct job_ctx *x, struct dc_config *cfg, struct berr **reterr)
{
    json_t *build = json_object_get(cfg->raw, "build");
    if (cfg->image || !json_is_object(build))
        return 0;
    _cleanup_free_ char *work = NULL;
    _cleanup_free_ char *repo = NULL;
    struct wsb b;
    int r = builder_open(x, &b, &work, &repo, reterr);
    if (r < 0)
        return r;
    char *tag = NULL;
    jevent(x, "image", "building the image of '%s'", x->rec.devcontainer_path);
    r = wsb_dockerfile(&b, build, &tag, reterr);
    (void)rm_rf(work);
    if (r < 0)
        return r;
    adopt_image(x, tag);
    return 0;
}

/* "features": installed on top of the image into a derived, cached image
 * whose metadata carries what they contribute. */
static int step_features(struct job_ctx *x, struct dc_config *cfg, json_t **image,
                         struct berr **reterr)
{
    json_t *features = json_object_get(cfg->raw, "features");
    if (!json_object_size(features))
        return 0;
    _cleanup_free_ char *work = NULL;
    _cleanup_free_ char *repo = NULL;
    struct wsb b;
    int r = builder_open(x, &b, &work, &repo, reterr);
    if (r < 0)
        return r;
    /* the user as provision will pick it: the image's metadata merged first */
    struct dc_config merged;
    dc_config_init(&merged);
    merged.raw = json_incref(cfg->raw);
    dc_merge_image_metadata(&merged, image_label(*image, "devcontainer.metadata"));
    char *tag = NULL;
    jevent(x, "image", "installing %zu feature%s", json_object_size(features),
           json_object_size(features) == 1 ? "" : "s");
    r = wsb_features(&b, features, json_object_get(cfg->raw, "overrideFeatureInstallOrder"),
                     x->rec.image, pick_user(&merged, *image), &tag, reterr);
    dc_config_release(&merged);
    (void)rm_rf(work);
    if (r < 0)
        return r;
    adopt_image(x, tag);
    json_decref(*image);
    *image = NULL;
    return engine_image_inspect(x->m->engine, x->rec.image, image, reterr);
}

/* The server's policy for what a devcontainer.json may ask (options.h): the
 * admin's allow-list and maxima, and the host paths no mount may reach. */
struct policy {
    struct dc_policy p;
    struct strv allow;
    struct strv forbidden;
};

static void policy_load(struct ws_manager *m, struct policy *pol)
{
    pol->allow = (struct strv)STRV_INIT;
    pol->forbidden = (struct strv)STRV_INIT;
    _cleanup_free_ char *text = store_setting_text(m->store, WS_SETTING_ALLOW);
    json_t *list = text ? json_loads(text, 0, NULL) : NULL;
    size_t i;
    json_t *v;
    json_array_foreach (list, i, v)
        if (json_is_string(v))
            strv_push(&pol->allow, json_string_value(v));
    json_decref(list);
    _cleanup_free_ char *data = realpath(m->data_dir, NULL);
    _cleanup_free_ char *sock = xstrdup(engine_socket(m->engine));
    char *slash = strrchr(sock, '/');
    if (slash && slash != sock)
        *slash = 0;
    strv_pushl(&pol->forbidden, data ? data : m->data_dir, sock, "/run/podman", "/run/docker.sock",
               "/var/run/docker.sock", "/var/lib/containers", "/run/containers", "/proc", "/sys",
               NULL);
    struct sysinfo si;
    int64_t host_mem = sysinfo(&si) == 0 ? (int64_t)si.totalram * si.mem_unit : 0;
    pol->p = (struct dc_policy){
        .allow = &pol->allow,
        .forbidden = &pol->forbidden,
        .max_cpus = store_setting_int(m->store, WS_SETTING_MAX_CPUS, sysconf(_SC_NPROCESSORS_ONLN)),
        .max_memory = store_setting_int(m->store, WS_SETTING_MAX_MEMORY_MB, host_mem >> 20) << 20,
    };
}

static void policy_release(struct policy *pol)
{
    strv_release(&pol->allow);
    strv_release(&pol->forbidden);
}

/* A named volume of the config is the workspace's own: its name is prefixed
 * with the workspace id, so no config can reach another workspace's volume. */
static char *volume_name(struct job_ctx *x, const char *source)
{
    return xasprintf("berth-%s-%s", x->rec.id, source);
}

static json_t *strv_json(const struct strv *v)
{
    json_t *a = json_array();
    for (size_t i = 0; i < v->n; i++)
        json_array_append_new(a, json_string(v->v[i]));
    return a;
}

/* HostConfig entries for the options a config asked for (already checked
 * against the policy). */
static void apply_run_options(struct job_ctx *x, const struct dc_run_options *o, json_t *host,
                              json_t *env, json_t *labels)
{
    if (o->privileged)
        json_object_set_new(host, "Privileged", json_true());
    if (o->cap_add.n)
        json_object_set_new(host, "CapAdd", strv_json(&o->cap_add));
    if (o->cap_drop.n)
        json_object_set_new(host, "CapDrop", strv_json(&o->cap_drop));
    if (o->security_opt.n)
        json_object_set_new(host, "SecurityOpt", strv_json(&o->security_opt));
    if (o->network)
        json_object_set_new(host, "NetworkMode", json_string(o->network));
    if (o->shm_size)
        json_object_set_new(host, "ShmSize", json_integer(o->shm_size));
    if (o->nano_cpus)
        json_object_set_new(host, "NanoCpus", json_integer(o->nano_cpus));
    if (o->memory)
        json_object_set_new(host, "Memory", json_integer(o->memory));
    json_t *devices = json_array();
    for (size_t i = 0; i < o->devices.n; i++)
        json_array_append_new(devices, json_pack("{s:s, s:s, s:s}", "PathOnHost", o->devices.v[i],
                                                 "PathInContainer", o->devices.v[i],
                                                 "CgroupPermissions", "rwm"));
    json_object_set_new(host, "Devices", devices);
    json_t *mounts = json_array();
    json_t *tmpfs = json_object();
    for (size_t i = 0; i < o->n_mounts; i++) {
        const struct dc_mount *mt = &o->mounts[i];
        if (mt->type == DC_MOUNT_TMPFS) {
            json_object_set_new(tmpfs, mt->target, json_string("rw,nosuid,nodev"));
            continue;
        }
        _cleanup_free_ char *source =
            mt->type == DC_MOUNT_VOLUME && mt->source ? volume_name(x, mt->source) : NULL;
        json_t *jm =
            json_pack("{s:s, s:s, s:b}", "Type", mt->type == DC_MOUNT_BIND ? "bind" : "volume",
                      "Target", mt->target, "ReadOnly", mt->readonly);
        if (mt->source)
            json_object_set_new(jm, "Source", json_string(source ? source : mt->source));
        json_array_append_new(mounts, jm);
    }
    json_object_set_new(host, "Mounts", mounts);
    json_object_set_new(host, "Tmpfs", tmpfs);
    for (size_t i = 0; i < o->env.n; i++)
        json_array_append_new(env, json_string(o->env.v[i]));
    for (size_t i = 0; i < o->labels.n; i++) {
        const char *eq = strchr(o->labels.v[i], '=');
        _cleanup_free_ char *k =
            eq ? xstrndup(o->labels.v[i], (size_t)(eq - o->labels.v[i])) : xstrdup(o->labels.v[i]);
        json_object_set_new(labels, k, json_string(eq ? eq + 1 : ""));
    }
}

/* Named volumes are created up front, labelled with the workspace, so that
 * deleting the workspace finds and removes them. */
static int create_volumes(struct job_ctx *x, const struct dc_run_options *o, struct berr **reterr)
{
    for (size_t i = 0; i < o->n_mounts; i++) {
        if (o->mounts[i].type != DC_MOUNT_VOLUME || !o->mounts[i].source)
            continue;
        _cleanup_free_ char *name = volume_name(x, o->mounts[i].source);
        json_t *labels = json_pack("{s:s, s:s}", WS_LABEL_MANAGED, "1", WS_LABEL_ID, x->rec.id);
        struct berr *e = NULL;
        int r = engine_volume_create(x->m->engine, name, labels, &e);
        json_decref(labels);
        if (r < 0 && !strstr(berr_msg(e), "exists")) {
            berr_free(e);
            return berr_make(reterr, -r, "cannot create volume '%s' for %s", name,
                             o->mounts[i].target);
        }
        berr_free(e);
    }
    return 0;
}

static void remove_volumes(struct job_ctx *x)
{
    _cleanup_free_ char *label = xasprintf("%s=%s", WS_LABEL_ID, x->rec.id);
    json_t *list = NULL;
    if (engine_volume_list(x->m->engine, label, &list, NULL) < 0)
        return;
    size_t i;
    json_t *v;
    json_array_foreach (list, i, v) {
        const char *name = json_string_value(json_object_get(v, "Name"));
        _cleanup_berr_ struct berr *e = NULL;
        if (name && engine_volume_remove(x->m->engine, name, &e) < 0)
            jlog(x, "warning: %s", berr_msg(e));
    }
    json_decref(list);
}

static json_t *container_config(struct job_ctx *x, const struct dc_config *cfg,
                                const struct dc_run_options *opts, json_t *image)
{
    _cleanup_free_ char *files = clone_path(x);
    _cleanup_free_ char *run = ws_run_dir(x->m, x->rec.id);
    _cleanup_free_ char *dirname_ = repo_dir_name(x->rec.repo);
    json_t *binds = json_pack("[s++, s+, s+]", files, ":/workspaces/", dirname_, run, ":/.berth:rw",
                              x->m->agent_dir, ":/.berth-agent:ro");
    /* VS Code in the browser, when the set-up installed it */
    _cleanup_free_ char *ide_bin = xasprintf("%s/bin/code-server", x->m->ide_dir);
    if (access(ide_bin, X_OK) == 0)
        json_array_append_new(binds, json_sprintf("%s:/.berth-ide:ro", x->m->ide_dir));
    _cleanup_free_ char *vsix = xasprintf("%s/vsix", x->m->data_dir);
    if (access(vsix, R_OK | X_OK) == 0)
        json_array_append_new(binds, json_sprintf("%s:/.berth-vsix:ro", vsix));
    json_t *entry = json_pack("[s]", "/.berth-agent/berth-agent");
    json_t *cmd = json_array();
    if (!cfg->override_command) {
        json_t *ic = json_object_get(image, "Config");
        json_t *ep = json_object_get(ic, "Entrypoint"), *c = json_object_get(ic, "Cmd");
        json_array_append_new(cmd, json_string("--"));
        size_t i;
        json_t *v;
        json_array_foreach (ep, i, v)
            json_array_append(cmd, v);
        json_array_foreach (c, i, v)
            json_array_append(cmd, v);
        if (json_array_size(cmd) == 1)
            json_array_clear(cmd);
    }
    json_t *env = json_array();
    for (size_t i = 0; i < cfg->container_env.n; i++)
        json_array_append_new(env, json_string(cfg->container_env.v[i]));
    /* git inside asks berthd for the owner's credentials, on demand (the
     * configuration lives in the environment, never in a file) */
    if (!strv_getenv(&cfg->container_env, "GIT_CONFIG_COUNT")) {
        json_array_append_new(env, json_string("GIT_CONFIG_COUNT=1"));
        json_array_append_new(env, json_string("GIT_CONFIG_KEY_0=credential.helper"));
        json_array_append_new(
            env, json_string("GIT_CONFIG_VALUE_0=/.berth-agent/berth-agent git-credential"));
    }
    json_t *labels = json_object();
    /* berth-agent is the container's init (it reaps and forwards signals), so
     * "init": true needs no second one */
    json_t *host = json_pack("{s:o, s:b, s:[{s:s, s:i, s:i}, {s:s, s:i, s:i}]}", "Binds", binds,
                             "Init", 0, "Ulimits", "Name", "nofile", "Soft", 20000, "Hard", 20000,
                             "Name", "nproc", "Soft", 32768, "Hard", 32768);
    apply_run_options(x, opts, host, env, labels);
    /* Berth's own labels last: a config cannot overwrite them */
    json_object_set_new(labels, WS_LABEL_MANAGED, json_string("1"));
    json_object_set_new(labels, WS_LABEL_ID, json_string(x->rec.id));
    json_object_set_new(labels, "berth.name", json_string(x->rec.name));
    return json_pack("{s:s, s:o, s:o, s:o, s:s, s:s, s:s, s:i, s:o, s:o}", "Image", x->rec.image,
                     "Entrypoint", entry, "Cmd", cmd, "Env", env, "User", "root", "WorkingDir",
                     x->rec.workspace_folder, "Hostname",
                     opts->hostname ? opts->hostname : x->rec.name, "StopTimeout",
                     WS_STOP_TIMEOUT_S, "Labels", labels, "HostConfig", host);
}

static void remove_container(struct job_ctx *x)
{
    _cleanup_free_ char *name = xasprintf("berth-%s", x->rec.id);
    const char *ids[] = {x->rec.container_id, name};
    for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
        if (!ids[i])
            continue;
        _cleanup_berr_ struct berr *e = NULL;
        int r = engine_container_remove(x->m->engine, ids[i], true, &e);
        if (r < 0 && r != -ENOENT)
            jlog(x, "warning: %s", berr_msg(e));
    }
    set_field(&x->rec.container_id, NULL);
}

/* Runs a command through the agent, each output line into the log. */
struct out_ctx {
    struct job_ctx *x;
    const char *prefix;
    struct buf partial;
    struct buf capture;
    bool capturing;
    struct urlscan urls;
};

static void flush_lines(struct out_ctx *o, bool all)
{
    for (;;) {
        char *nl = memchr(o->partial.buf, '\n', o->partial.len);
        if (!nl && !(all && o->partial.len))
            return;
        size_t n = nl ? (size_t)(nl - o->partial.buf) : o->partial.len;
        _cleanup_free_ char *line = xstrndup(o->partial.buf, n);
        jlog(o->x, "%s%s", o->prefix, line);
        buf_remove_front(&o->partial, nl ? n + 1 : n);
        if (!o->partial.len)
            return;
    }
}

static void exec_output_cb(int type, const char *data, size_t len, void *userdata)
{
    struct out_ctx *o = userdata;
    if (type == AGENT_ERROR) {
        _cleanup_free_ char *msg = xstrndup(data, len);
        jlog(o->x, "%serror: %s", o->prefix ? o->prefix : "", msg);
        return;
    }
    if (o->capturing && type == AGENT_STDOUT) {
        if (o->capture.len < 65536)
            buf_add(&o->capture, data, len);
        return;
    }
    if (!o->prefix) /* quiet: only the captured output matters */
        return;
    ws_scan_output(o->x->m, o->x->rec.id, &o->urls, data, len);
    buf_add(&o->partial, data, len);
    flush_lines(o, false);
}

/* Runs argv with env (the job's environment when NULL). */
static int exec_in_env(struct job_ctx *x, const struct strv *argv, const struct strv *env,
                       const char *user, const char *prefix, struct buf *capture, int *ret_status,
                       struct berr **reterr);

static int exec_in(struct job_ctx *x, const struct strv *argv, const char *user, const char *prefix,
                   struct buf *capture, int *ret_status, struct berr **reterr)
{
    return exec_in_env(x, argv, NULL, user, prefix, capture, ret_status, reterr);
}

static int exec_in_env(struct job_ctx *x, const struct strv *argv, const struct strv *env,
                       const char *user, const char *prefix, struct buf *capture, int *ret_status,
                       struct berr **reterr)
{
    _cleanup_free_ char *run = ws_run_dir(x->m, x->rec.id);
    struct out_ctx o = {.x = x,
                        .prefix = prefix,
                        .partial = BUF_INIT,
                        .capture = BUF_INIT,
                        .capturing = capture != NULL,
                        .urls = URLSCAN_INIT};
    struct agentc_exec ex = {
        .argv = argv, .env = env ? env : &x->env, .cwd = x->rec.workspace_folder, .user = user};
    int r = agentc_run(run, &ex, exec_output_cb, &o, ret_status, reterr);
    if (prefix)
        flush_lines(&o, true);
    if (capture)
        buf_add(capture, o.capture.buf, o.capture.len);
    buf_release(&o.partial);
    buf_release(&o.capture);
    urlscan_release(&o.urls);
    return r;
}

/* Starts the container and waits for its agent. */
static int step_start_container(struct job_ctx *x, struct berr **reterr)
{
    int r = engine_container_start(x->m->engine, x->rec.container_id, reterr);
    if (r < 0)
        return r;
    _cleanup_free_ char *run = ws_run_dir(x->m, x->rec.id);
    r = agentc_wait_ready(run, WS_AGENT_TIMEOUT_MS, reterr);
    if (r < 0) {
        json_t *info = NULL;
        if (engine_container_inspect(x->m->engine, x->rec.container_id, &info, NULL) == 0) {
            const char *status = NULL;
            (void)json_unpack(info, "{s:{s:s}}", "State", "Status", &status);
            if (status && strcmp(status, "running") != 0)
                berr_wrap(reterr, "the container is '%s'", status);
            json_decref(info);
        }
        return r;
    }
    return 0;
}

/* Finds the remote user's uid and gid, and gives them the checkout. */
static int step_own_files(struct job_ctx *x, struct berr **reterr)
{
    const char *user = x->rec.remote_user;
    int64_t ids[2] = {-1, -1};
    const char *flags[] = {"-u", "-g"};
    for (int i = 0; i < 2; i++) {
        _cleanup_strv_ struct strv argv = STRV_INIT;
        strv_pushl(&argv, "id", flags[i], "--", user, NULL);
        _cleanup_buf_ struct buf out = BUF_INIT;
        int status = -1;
        int r = exec_in(x, &argv, "root", "", &out, &status, reterr);
        if (r < 0)
            return r;
        buf_rtrim(&out);
        char *end = NULL;
        long v = strtol(out.buf, &end, 10);
        if (status != 0 || !out.len || *end || v < 0)
            return berr_make(reterr, ENOENT, "remote user '%s' does not exist in image '%s'", user,
                             x->rec.image);
        ids[i] = v;
    }
    x->rec.uid = ids[0];
    x->rec.gid = ids[1];
    _cleanup_free_ char *dest = clone_path(x);
    int r = chown_r(dest, (uid_t)ids[0], (gid_t)ids[1]);
    if (r < 0)
        return berr_make(reterr, -r, "cannot give '%s' to uid %lld: %s", dest, (long long)ids[0],
                         strerror(-r));
    /* the IDE's socket lives in a directory of the remote user's: the run
     * dir itself stays root's */
    _cleanup_free_ char *run = ws_run_dir(x->m, x->rec.id);
    _cleanup_free_ char *ide = xasprintf("%s/ide", run);
    if ((mkdir(ide, 0700) < 0 && errno != EEXIST) || lchown(ide, (uid_t)ids[0], (gid_t)ids[1]) < 0)
        return berr_make(reterr, errno, "cannot prepare '%s': %s", ide, strerror(errno));
    return 0;
}

/* ---- what sessions get from the configuration (the record's runtime) ---- */

static json_t *runtime_get(const struct ws_record *r)
{
    json_t *rt = r->runtime ? json_loads(r->runtime, 0, NULL) : NULL;
    return json_is_object(rt) ? rt : (json_decref(rt), json_object());
}

/* The lifecycle command r shows as running ("postCreateCommand"), newly
 * allocated, or NULL. */
static char *lifecycle_running(const struct ws_record *r)
{
    json_t *rt = runtime_get(r);
    const char *l = json_string_value(json_object_get(rt, "lifecycle"));
    char *running = l && strncmp(l, "running ", 8) == 0 ? xstrdup(l + 8) : NULL;
    json_decref(rt);
    return running;
}

/* Sets one key of the runtime and saves the record. */
static void runtime_set(struct job_ctx *x, const char *key, json_t *value)
{
    json_t *rt = runtime_get(&x->rec);
    json_object_set_new(rt, key, value ? value : json_null());
    free(x->rec.runtime);
    x->rec.runtime = json_dumps(rt, JSON_COMPACT);
    json_decref(rt);
    (void)save(x);
}

#define ENV_MARK "\036berth-env\036"

/* userEnvProbe: the environment the remote user's shell builds (PATH from
 * ~/.profile, nvm, sdkman...) is what commands and terminals see. */
static void probe_user_env(struct job_ctx *x, const char *mode, json_t *env)
{
    static const char *const modes[][2] = {
        {"loginInteractiveShell", "-lic"}, {"loginShell", "-lc"}, {"interactiveShell", "-ic"}};
    if (mode && strcmp(mode, "none") == 0)
        return;
    const char *flags = NULL;
    for (size_t i = 0; i < ELEMENTSOF(modes); i++)
        if (strcmp(mode ? mode : "loginInteractiveShell", modes[i][0]) == 0)
            flags = modes[i][1];
    if (!flags) {
        jlog(x,
             "userEnvProbe \"%s\" is not one of none, loginShell, interactiveShell, "
             "loginInteractiveShell: skipped",
             mode);
        return;
    }
    _cleanup_strv_ struct strv argv = STRV_INIT;
    strv_pushl(&argv, "/bin/sh", "-c", "exec \"${SHELL:-/bin/sh}\" \"$1\" \"$2\"", "sh", flags,
               "printf '" ENV_MARK "'; env -0", NULL);
    _cleanup_buf_ struct buf out = BUF_INIT;
    int status = -1;
    struct berr *e = NULL;
    /* only the container's own environment: neither the owner's secrets
     * (the result is stored) nor what an earlier probe found */
    struct strv none = STRV_INIT;
    int r = exec_in_env(x, &argv, &none, x->rec.remote_user, NULL, &out, &status, &e);
    const char *mark = memmem(out.buf, out.len, ENV_MARK, sizeof(ENV_MARK) - 1);
    if (r < 0 || !mark) {
        jlog(x, "userEnvProbe: the shell's environment could not be read%s%s", e ? ": " : "",
             e ? berr_msg(e) : "");
        berr_free(e);
        return;
    }
    static const char *const skip[] = {"_",   "PWD", "OLDPWD",   "SHLVL", "TERM",
                                       "PS1", "PS2", "HOSTNAME", "LINES", "COLUMNS"};
    const char *end = out.buf + out.len;
    for (const char *p = mark + sizeof(ENV_MARK) - 1; p < end; p += strlen(p) + 1) {
        const char *eq = strchr(p, '=');
        if (p + strlen(p) >= end) /* cut short by the capture limit */
            break;
        if (!eq || eq == p)
            continue;
        _cleanup_free_ char *name = xstrndup(p, (size_t)(eq - p));
        bool skipped = false;
        for (size_t i = 0; i < ELEMENTSOF(skip) && !skipped; i++)
            skipped = strcmp(name, skip[i]) == 0;
        if (!skipped)
            json_object_set_new(env, name, json_string(eq + 1));
    }
}

/* remoteEnv, with ${containerEnv:VAR} read from the container's environment
 * (the image's, containerEnv, and what the probe found). */
static void resolve_remote_env(const struct dc_config *cfg, json_t *image, json_t *env)
{
    _cleanup_strv_ struct strv base = STRV_INIT;
    size_t i;
    json_t *v;
    json_array_foreach (json_object_get(json_object_get(image, "Config"), "Env"), i, v) {
        const char *kv = json_string_value(v);
        const char *eq = kv ? strchr(kv, '=') : NULL;
        if (eq) {
            _cleanup_free_ char *k = xstrndup(kv, (size_t)(eq - kv));
            strv_setenv(&base, k, eq + 1);
        }
    }
    for (i = 0; i < cfg->container_env.n; i++) {
        const char *eq = strchr(cfg->container_env.v[i], '=');
        _cleanup_free_ char *k =
            xstrndup(cfg->container_env.v[i], (size_t)(eq - cfg->container_env.v[i]));
        strv_setenv(&base, k, eq + 1);
    }
    const char *k;
    json_object_foreach (env, k, v)
        strv_setenv(&base, k, json_string_value(v));
    json_object_foreach (cfg->remote_env, k, v) {
        if (json_is_null(v)) {
            json_object_del(env, k);
        } else if (json_is_string(v)) {
            _cleanup_free_ char *val = dc_substitute(json_string_value(v), NULL, &base);
            json_object_set_new(env, k, json_string(val));
        }
    }
}

/* Records what later sessions need from the configuration and puts its
 * environment into this job's too. */
static void step_runtime(struct job_ctx *x, const struct dc_config *cfg, json_t *image)
{
    json_t *env = json_object();
    probe_user_env(x, cfg->user_env_probe, env);
    resolve_remote_env(cfg, image, env);
    if (json_object_size(env))
        jlog(x, "environment for commands and terminals: %zu variables from %s",
             json_object_size(env),
             cfg->remote_env ? "the login shell and remoteEnv" : "the login shell");
    json_t *rt = runtime_get(&x->rec);
    json_object_set_new(rt, "env", env);
    json_object_set_new(rt, "postAttachCommand",
                        cfg->hooks[DC_POST_ATTACH] ? json_deep_copy(cfg->hooks[DC_POST_ATTACH])
                                                   : json_array());
    json_t *ports[][2] = {{json_string("forwardPorts"), cfg->forward_ports},
                          {json_string("portsAttributes"), cfg->ports_attributes},
                          {json_string("otherPortsAttributes"), cfg->other_ports_attributes}};
    for (size_t i = 0; i < ELEMENTSOF(ports); i++) {
        const char *key = json_string_value(ports[i][0]);
        if (ports[i][1])
            json_object_set_new(rt, key, json_deep_copy(ports[i][1]));
        else
            json_object_del(rt, key);
        json_decref(ports[i][0]);
    }
    free(x->rec.runtime);
    x->rec.runtime = json_dumps(rt, JSON_COMPACT);
    json_decref(rt);
    (void)save(x);
    strv_release(&x->env);
    x->env = (struct strv)STRV_INIT;
    (void)ws_owner_env(x->m, &x->rec, &x->env, NULL);
}

/* Runs one lifecycle hook. Returns 0, or 1 when a command failed (its message
 * in *ret_failure), or a negative errno when the agent could not be used. */
/* One command of a hook, run on its own thread when the object form asks for
 * entries in parallel. */
struct hook_run {
    pthread_t thread;
    struct job_ctx *x;
    const struct dc_command *cmd;
    const char *prefix;
    int r;      /* exec_in's result */
    int status; /* the command's exit status */
    struct berr *e;
};

static void *hook_run_thread(void *data)
{
    struct hook_run *hr = data;
    hr->r = exec_in(hr->x, &hr->cmd->argv, hr->x->rec.remote_user, hr->prefix, NULL, &hr->status,
                    &hr->e);
    return NULL;
}

/* Whether the config has anything to run for h. */
static bool has_commands(const struct dc_config *cfg, enum dc_hook h)
{
    const json_t *v = cfg->hooks[h];
    return v && (!json_is_array(v) || json_array_size(v)) &&
           (!json_is_string(v) || *json_string_value(v)) &&
           (!json_is_object(v) || json_object_size(v));
}

static int run_hook(struct job_ctx *x, const struct dc_config *cfg, enum dc_hook h,
                    char **ret_failure, struct berr **reterr)
{
    struct dc_command *cmds = NULL;
    int n = dc_hook_commands(cfg, h, &cmds, reterr);
    if (n < 0)
        return n;
    int result = 0;
    /* commands of one group (the entries of an object) run at the same time;
     * groups run in order, and a failed group stops the rest */
    for (int i = 0; i < n && result == 0;) {
        int j = i;
        while (j < n && cmds[j].group == cmds[i].group)
            j++;
        int count = j - i;
        struct hook_run *runs = xcalloc((size_t)count, sizeof(*runs));
        char **prefixes = xcalloc((size_t)count, sizeof(char *));
        for (int k = 0; k < count; k++) {
            const struct dc_command *c = &cmds[i + k];
            _cleanup_free_ char *shown = strv_join(&c->argv, " ");
            bool labelled = strcmp(c->label, dc_hook_name(h)) != 0;
            prefixes[k] = labelled ? xasprintf("[%s] ", c->label) : xstrdup("");
            jevent(x, "lifecycle", "running %s%s%s: %s", dc_hook_name(h), labelled ? "." : "",
                   labelled ? c->label : "", shown);
            runs[k] = (struct hook_run){.x = x, .cmd = c, .prefix = prefixes[k], .status = -1};
            if (count == 1 || pthread_create(&runs[k].thread, NULL, hook_run_thread, &runs[k]) != 0)
                hook_run_thread(&runs[k]), runs[k].thread = 0;
        }
        for (int k = 0; k < count; k++) {
            if (runs[k].thread)
                pthread_join(runs[k].thread, NULL);
            const struct dc_command *c = &cmds[i + k];
            bool labelled = strcmp(c->label, dc_hook_name(h)) != 0;
            if (runs[k].r < 0 && result == 0) {
                result = runs[k].r;
                if (reterr && !*reterr)
                    *reterr = TAKE_PTR(runs[k].e);
            } else if (runs[k].r == 0 && runs[k].status != 0 && result == 0) {
                *ret_failure =
                    xasprintf("%s%s%s failed with exit code %d", dc_hook_name(h),
                              labelled ? "." : "", labelled ? c->label : "", runs[k].status);
                result = 1;
            }
            berr_free(runs[k].e);
            free(prefixes[k]);
        }
        free(runs);
        free(prefixes);
        i = j;
    }
    dc_commands_free(cmds, (size_t)n);
    return result;
}

/* customizations.vscode.extensions: no marketplace is reachable, so an
 * extension is installed only from a .vsix an admin put in DATA/vsix (mounted
 * read-only at /.berth-vsix, named <publisher.name>[-version].vsix), and
 * listed as skipped otherwise. */
static void install_extensions(struct job_ctx *x, const struct dc_config *cfg)
{
    json_t *exts = json_object_get(
        json_object_get(json_object_get(cfg->raw, "customizations"), "vscode"), "extensions");
    size_t i;
    json_t *v;
    json_array_foreach (exts, i, v) {
        const char *id = json_string_value(v);
        if (!id || !*id || strchr(id, '/') || id[0] == '.' || strlen(id) > 200) {
            jlog(x, "extension %s skipped: not a valid extension id", id ? id : "?");
            continue;
        }
        _cleanup_strv_ struct strv argv = STRV_INIT;
        /* the id travels as an argument, never inside the script */
        strv_pushl(
            &argv, "/bin/sh", "-c",
            "for f in \"/.berth-vsix/$1.vsix\" \"/.berth-vsix/$1\"-*.vsix; do "
            "[ -f \"$f\" ] || continue; "
            "exec /.berth-ide/bin/code-server --config /dev/null --install-extension \"$f\"; "
            "done; exit 3",
            "sh", id, NULL);
        int status = -1;
        struct berr *e = NULL;
        int r = exec_in(x, &argv, x->rec.remote_user, "", NULL, &status, &e);
        if (r == 0 && status == 0)
            jlog(x, "extension %s installed from a local .vsix", id);
        else if (r == 0 && status == 3)
            jlog(x,
                 "extension %s skipped: no .vsix for it in the server's extension folder (no "
                 "marketplace is reachable)",
                 id);
        else
            jlog(x, "extension %s skipped: %s", id, e ? berr_msg(e) : "its install failed");
        berr_free(e);
    }
}

/* The lifecycle commands of a container, in order: the create-time ones
 * once, then postStartCommand at each start. */
static const enum dc_hook lifecycle_hooks[] = {DC_ON_CREATE, DC_UPDATE_CONTENT, DC_POST_CREATE,
                                               DC_POST_START};

/* Runs lifecycle_hooks[i], unless a stop or delete waits. True when one does: the
 * job is to end now, the lifecycle shown "interrupted", and create_pending
 * naming the create-time command to run at the next start (this one, unless
 * it got to its end). */
static bool lifecycle_step(struct job_ctx *x, const struct dc_config *cfg, size_t i, int *r,
                           char **failure, struct berr **reterr)
{
    _cleanup_free_ char *doing = xasprintf("running %s", dc_hook_name(lifecycle_hooks[i]));
    runtime_set(x, "lifecycle", json_string(doing));
    bool skip = interrupt_asked(x->m, x->rec.id);
    *r = skip ? 0 : run_hook(x, cfg, lifecycle_hooks[i], failure, reterr);
    if (!interrupt_asked(x->m, x->rec.id))
        return false;
    jevent(x, "lifecycle", "%s interrupted: the workspace is being stopped or deleted",
           dc_hook_name(lifecycle_hooks[i]));
    size_t next = !skip && *r == 0 && !*failure ? i + 1 : i;
    if (next < ELEMENTSOF(lifecycle_hooks) && lifecycle_hooks[next] != DC_POST_START)
        runtime_set(x, "create_pending", json_string(dc_hook_name(lifecycle_hooks[next])));
    runtime_set(x, "lifecycle", json_string("interrupted"));
    *r = 0;
    return true;
}

/* Creates the container from the config and brings it to running, then runs
 * the create-time hooks (once per container) and postStart. */
static int provision(struct job_ctx *x, const char *requested_path, struct berr **reterr)
{
    struct dc_config cfg;
    dc_config_init(&cfg);
    struct dc_run_options opts = {0};
    json_t *image = NULL;
    _cleanup_free_ char *run = ws_run_dir(x->m, x->rec.id);
    _cleanup_free_ char *name = xasprintf("berth-%s", x->rec.id);
    _cleanup_free_ char *failure = NULL;
    int r = step_config(x, requested_path, &cfg, reterr);
    if (r < 0)
        goto out;
    (void)save(x);
    r = step_build(x, &cfg, reterr);
    if (r < 0)
        goto out;
    r = step_image(x, &image, reterr);
    if (r < 0)
        goto out;
    r = step_features(x, &cfg, &image, reterr);
    if (r < 0)
        goto out;
    dc_merge_image_metadata(&cfg, image_label(image, "devcontainer.metadata"));
    set_field(&x->rec.remote_user, pick_user(&cfg, image));
    if (cfg.workspace_folder)
        set_field(&x->rec.workspace_folder, cfg.workspace_folder);
    struct policy pol;
    policy_load(x->m, &pol);
    r = dc_run_options_build(&cfg, x->rec.devcontainer_path, &pol.p, &opts, reterr);
    policy_release(&pol);
    if (r < 0)
        goto out;
    /* what the container gets only by the allow-list: checked again at each start */
    json_t *granted = json_array();
    for (size_t i = 0; i < opts.granted.n; i++)
        json_array_append_new(granted, json_string(opts.granted.v[i]));
    runtime_set(x, "granted", granted);
    if (cfg.init)
        jlog(x, "init: berth-agent is the container's init already");

    /* only now, with the new one sure to be made, does the old container go */
    x->replaced = true;
    remove_container(x);
    (void)rm_rf(run);
    /* 0711: the remote user may pass through to its ide/ dir, not list or use the rest */
    r = mkdir_p(run, 0711);
    if (r < 0) {
        r = berr_make(reterr, -r, "cannot create '%s': %s", run, strerror(-r));
        goto out;
    }
    r = create_volumes(x, &opts, reterr);
    if (r < 0)
        goto out;
    json_t *config = container_config(x, &cfg, &opts, image);
    char *cid = NULL;
    jevent(x, "container", "creating container from '%s'", x->rec.image);
    r = engine_container_create(x->m->engine, name, config, &cid, reterr);
    json_decref(config);
    if (r < 0)
        goto out;
    set_field(&x->rec.container_id, cid);
    free(cid);
    (void)save(x);
    r = step_start_container(x, reterr);
    if (r < 0)
        goto out;
    jlog(x, "agent ready");
    r = step_own_files(x, reterr);
    if (r < 0)
        goto out;
    (void)save(x);

    step_runtime(x, &cfg, image);

    enum dc_hook wait_for = DC_UPDATE_CONTENT;
    for (size_t i = 0; i < ELEMENTSOF(lifecycle_hooks); i++)
        if (cfg.wait_for && strcmp(cfg.wait_for, dc_hook_name(lifecycle_hooks[i])) == 0)
            wait_for = lifecycle_hooks[i];
    if (cfg.wait_for && strcmp(cfg.wait_for, dc_hook_name(wait_for)) != 0)
        jlog(x, "waitFor \"%s\" is not a lifecycle command Berth waits for: using %s", cfg.wait_for,
             dc_hook_name(wait_for));
    runtime_set(x, "create_pending", NULL);
    for (size_t i = 0; i < ELEMENTSOF(lifecycle_hooks) && !failure; i++) {
        /* a stop or delete came: its container is being stopped */
        if (lifecycle_step(x, &cfg, i, &r, &failure, reterr)) {
            x->interrupted = true;
            goto out;
        }
        if (r < 0)
            goto out;
        /* waitFor: the workspace is ready for its user from here on; the
         * later commands keep running, shown in "lifecycle" */
        if (lifecycle_hooks[i] == wait_for && !failure && i + 1 < ELEMENTSOF(lifecycle_hooks)) {
            set_state(x, WS_RUNNING, NULL);
            for (size_t k = i + 1; k < ELEMENTSOF(lifecycle_hooks); k++)
                if (has_commands(&cfg, lifecycle_hooks[k])) {
                    jlog(x,
                         "ready: the workspace can be used now; %s and what follows run on "
                         "(Ctrl-C stops following this log, not the commands)",
                         dc_hook_name(lifecycle_hooks[k]));
                    break;
                }
        }
    }
    runtime_set(x, "lifecycle", json_string(failure ? "failed" : "done"));
    /* customizations.vscode.settings become the IDE's machine settings */
    json_t *settings = json_object_get(
        json_object_get(json_object_get(cfg.raw, "customizations"), "vscode"), "settings");
    if (json_is_object(settings)) {
        _cleanup_free_ char *text = json_dumps(settings, JSON_INDENT(2));
        _cleanup_strv_ struct strv argv = STRV_INIT;
        strv_pushl(&argv, "/bin/sh", "-c",
                   "d=\"$HOME/.local/share/code-server/Machine\" && mkdir -p \"$d\" && "
                   "printf '%s\\n' \"$1\" > \"$d/settings.json\"",
                   "sh", text, NULL);
        int status = -1;
        struct berr *se = NULL;
        if (exec_in(x, &argv, x->rec.remote_user, "", NULL, &status, &se) < 0 || status != 0)
            jlog(x, "warning: cannot write the VS Code settings: %s",
                 se ? berr_msg(se) : "the command failed");
        else
            jlog(x, "VS Code settings from customizations.vscode.settings applied");
        berr_free(se);
    }
    install_extensions(x, &cfg);
    /* a failed lifecycle command leaves a usable workspace, as in Codespaces */
    set_field(&x->rec.error, failure);
    r = 0;
out:
    if (r < 0) {
        /* a command cut short by the failure is not running any more */
        _cleanup_free_ char *cut = lifecycle_running(&x->rec);
        if (cut)
            runtime_set(x, "lifecycle", json_string("failed"));
    }
    json_decref(image);
    dc_run_options_release(&opts);
    dc_config_release(&cfg);
    return r;
}

/* ---- actions ---- */

static void do_create(struct job_ctx *x, bool resume)
{
    _cleanup_berr_ struct berr *e = NULL;
    _cleanup_free_ char *requested =
        x->rec.devcontainer_path ? xstrdup(x->rec.devcontainer_path) : NULL;
    if (resume)
        jevent(x, "resume",
               "berthd restarted while this workspace was being created: starting "
               "over");
    if (step_clone(x, &e) < 0) {
        remove_container(x);
        set_state(x, WS_FAILED, berr_msg(e));
        return;
    }
    int r = provision(x, requested, &e);
    if (r < 0) {
        remove_container(x);
        set_state(x, WS_FAILED, berr_msg(e));
        return;
    }
    if (x->interrupted || interrupt_asked(x->m, x->rec.id))
        return; /* the stop or delete that follows says where it is */
    _cleanup_free_ char *warning = x->rec.error ? xstrdup(x->rec.error) : NULL;
    set_state(x, WS_RUNNING, warning);
}

/* postAttachCommand, run as it was recorded when the container was created. */
static void do_attach(struct job_ctx *x)
{
    if (strcmp(x->rec.state, ws_state_name(WS_RUNNING)) != 0)
        return;
    json_t *rt = runtime_get(&x->rec);
    json_t *commands = json_object_get(rt, "postAttachCommand");
    if (json_array_size(commands)) {
        struct dc_config cfg;
        dc_config_init(&cfg);
        cfg.hooks[DC_POST_ATTACH] = json_incref(commands);
        _cleanup_free_ char *failure = NULL;
        _cleanup_berr_ struct berr *e = NULL;
        int r = run_hook(x, &cfg, DC_POST_ATTACH, &failure, &e);
        if (r < 0 || failure)
            jevent(x, "lifecycle", "%s", failure ? failure : berr_msg(e));
        dc_config_release(&cfg);
    }
    json_decref(rt);
}

/* One postAttachCommand run per workspace at a time: a user opening many
 * terminals must not take every worker thread. */
static bool mark_attaching(struct ws_manager *m, const char *id, bool on)
{
    pthread_mutex_lock(&m->lock);
    bool was = false;
    for (size_t i = 0; i < m->attaching.n && !was; i++) {
        if (strcmp(m->attaching.v[i], id) == 0) {
            was = true;
            if (!on) {
                free(m->attaching.v[i]);
                m->attaching.v[i] = m->attaching.v[--m->attaching.n];
                m->attaching.v[m->attaching.n] = NULL;
            }
        }
    }
    if (on && !was)
        strv_push(&m->attaching, id);
    pthread_mutex_unlock(&m->lock);
    return was;
}

void ws_attached(struct ws_manager *m, const char *id)
{
    if (!mark_attaching(m, id, true))
        queue_job(m, id, WS_ACTION_ATTACH, true, false);
}

/* The first allow-list entry the container was created with that the policy
 * no longer has (newly allocated), or NULL. */
static char *revoked_grant(struct job_ctx *x)
{
    json_t *rt = runtime_get(&x->rec);
    struct policy pol;
    policy_load(x->m, &pol);
    char *revoked = NULL;
    size_t i;
    json_t *v;
    json_array_foreach (json_object_get(rt, "granted"), i, v)
        if (!revoked && json_is_string(v) && !dc_policy_allows(&pol.p, json_string_value(v)))
            revoked = xstrdup(json_string_value(v));
    policy_release(&pol);
    json_decref(rt);
    return revoked;
}

static void do_start(struct job_ctx *x)
{
    _cleanup_berr_ struct berr *e = NULL;
    if (!x->rec.container_id || x->rec.uid < 0) {
        /* a create that failed before its container ran: start over */
        do_create(x, false);
        return;
    }
    /* an admin who takes an entry off the allow-list takes it from the
     * containers made with it too, from their next start */
    _cleanup_free_ char *revoked = revoked_grant(x);
    if (revoked) {
        _cleanup_free_ char *msg =
            xasprintf("this workspace's container was made with \"%s\", which this server's "
                      "policy no longer allows; rebuild it to apply the current policy (files "
                      "are kept)",
                      revoked);
        set_state(x, WS_FAILED, msg);
        return;
    }
    jevent(x, "container", "starting container");
    int r = step_start_container(x, &e);
    if (r == -ENOENT) {
        set_state(x, WS_FAILED, "the container is gone; rebuild the workspace (files are kept)");
        return;
    }
    if (r < 0) {
        set_state(x, WS_FAILED, berr_msg(e));
        return;
    }
    struct dc_config cfg;
    dc_config_init(&cfg);
    _cleanup_free_ char *failure = NULL;
    r = step_config(x, x->rec.devcontainer_path, &cfg, &e);
    if (r == 0) {
        json_t *image = NULL;
        if (engine_image_inspect(x->m->engine, x->rec.image, &image, NULL) == 0)
            dc_merge_image_metadata(&cfg, image_label(image, "devcontainer.metadata"));
        json_decref(image);
        /* the create-time commands a stop cut short, from the one it cut,
         * then postStartCommand */
        json_t *rt = runtime_get(&x->rec);
        const char *pending = json_string_value(json_object_get(rt, "create_pending"));
        size_t first = ELEMENTSOF(lifecycle_hooks) - 1;
        for (size_t i = 0; pending && i + 1 < ELEMENTSOF(lifecycle_hooks); i++)
            if (strcmp(pending, dc_hook_name(lifecycle_hooks[i])) == 0)
                first = i;
        json_decref(rt);
        /* ready once what waitFor names is done (default updateContentCommand),
         * before what runs on after it (often a server) */
        size_t wait_idx = 1;
        for (size_t i = 0; cfg.wait_for && i < ELEMENTSOF(lifecycle_hooks); i++)
            if (strcmp(cfg.wait_for, dc_hook_name(lifecycle_hooks[i])) == 0)
                wait_idx = i;
        for (size_t i = first; i < ELEMENTSOF(lifecycle_hooks) && r == 0 && !failure; i++) {
            bool later = false;
            for (size_t k = i; k < ELEMENTSOF(lifecycle_hooks); k++)
                later = later || has_commands(&cfg, lifecycle_hooks[k]);
            if (later && i > wait_idx && strcmp(x->rec.state, "running") != 0) {
                set_state(x, WS_RUNNING, NULL);
                jlog(x,
                     "ready: the workspace can be used now; %s runs on (Ctrl-C stops following "
                     "this log, not the command)",
                     dc_hook_name(lifecycle_hooks[i]));
            }
            if (pending && i == first)
                jlog(x, "%s was cut short by a stop: running it again",
                     dc_hook_name(lifecycle_hooks[i]));
            if (lifecycle_step(x, &cfg, i, &r, &failure, &e)) {
                dc_config_release(&cfg);
                return;
            }
            if (lifecycle_hooks[i] == DC_POST_CREATE)
                runtime_set(x, "create_pending", NULL);
        }
        runtime_set(x, "lifecycle", json_string(r == 0 && !failure ? "done" : "failed"));
    }
    dc_config_release(&cfg);
    if (r < 0 && !failure)
        failure = xstrdup(berr_msg(e));
    set_state(x, WS_RUNNING, failure);
}

/* Stops the container under lifecycle commands that a stop or delete
 * interrupts (their job then ends, and the action follows it). */
static void do_interrupt(struct job_ctx *x)
{
    if (!x->rec.container_id)
        return;
    _cleanup_berr_ struct berr *e = NULL;
    if (engine_container_stop(x->m->engine, x->rec.container_id, WS_STOP_TIMEOUT_S, &e) < 0)
        log_error("workspace '%s': cannot stop the container to interrupt its lifecycle "
                  "commands: %s",
                  x->rec.name, berr_msg(e));
}

static void do_stop(struct job_ctx *x)
{
    _cleanup_berr_ struct berr *e = NULL;
    if (x->rec.container_id) {
        jevent(x, "container", "stopping container");
        int r = engine_container_stop(x->m->engine, x->rec.container_id, WS_STOP_TIMEOUT_S, &e);
        if (r < 0 && r != -ENOENT) {
            set_state(x, WS_FAILED, berr_msg(e));
            return;
        }
    }
    set_state(x, WS_STOPPED, NULL);
}

static void do_rebuild(struct job_ctx *x)
{
    _cleanup_berr_ struct berr *e = NULL;
    _cleanup_free_ char *dest = clone_path(x);
    struct stat st;
    if (stat(dest, &st) < 0) {
        /* nothing was ever cloned: a rebuild is a create */
        do_create(x, false);
        return;
    }
    jevent(x, "rebuild", "rebuilding the container; files in the workspace are kept");
    /* what the container that is there was made with, should it stay */
    char **fields[] = {&x->rec.image, &x->rec.workspace_folder, &x->rec.remote_user,
                       &x->rec.devcontainer_path};
    char *before[ELEMENTSOF(fields)];
    for (size_t i = 0; i < ELEMENTSOF(fields); i++)
        before[i] = *fields[i] ? xstrdup(*fields[i]) : NULL;
    _cleanup_free_ char *requested =
        x->rec.devcontainer_path ? xstrdup(x->rec.devcontainer_path) : NULL;
    int r = provision(x, requested, &e);
    if (r < 0 && !x->replaced) {
        /* the configuration, the build or the policy failed: the container
         * that was there stays as it was, stopped (a failed workspace does
         * not count as running) */
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
            free(*fields[i]);
            *fields[i] = TAKE_PTR(before[i]);
        }
        if (x->rec.container_id)
            (void)engine_container_stop(x->m->engine, x->rec.container_id, WS_STOP_TIMEOUT_S, NULL);
        _cleanup_free_ char *msg =
            xasprintf("%s (the previous container is kept, stopped: start it as it was, or fix "
                      "this and rebuild)",
                      berr_msg(e));
        set_state(x, WS_FAILED, msg);
        return;
    }
    for (size_t i = 0; i < ELEMENTSOF(fields); i++)
        free(before[i]);
    if (r < 0) {
        remove_container(x);
        set_state(x, WS_FAILED, berr_msg(e));
        return;
    }
    if (x->interrupted || interrupt_asked(x->m, x->rec.id))
        return;
    _cleanup_free_ char *warning = x->rec.error ? xstrdup(x->rec.error) : NULL;
    set_state(x, WS_RUNNING, warning);
}

static void do_delete(struct job_ctx *x)
{
    remove_container(x);
    remove_volumes(x);
    _cleanup_free_ char *files = ws_files_dir(x->m, x->rec.id);
    _cleanup_free_ char *run = ws_run_dir(x->m, x->rec.id);
    int r = rm_rf(files);
    if (r == 0)
        r = rm_rf(run);
    if (r < 0) {
        _cleanup_free_ char *msg = xasprintf("cannot remove the workspace files: %s", strerror(-r));
        set_state(x, WS_FAILED, msg);
        return;
    }
    _cleanup_berr_ struct berr *e = NULL;
    if (store_ws_delete(x->m->store, x->rec.id, &e) < 0)
        log_error("delete workspace '%s': %s", x->rec.id, berr_msg(e));
    uv_async_send(&x->m->notify);
}

static void job_run(uv_work_t *w)
{
    struct job *j = (struct job *)w;
    struct job_ctx x = {.m = j->m, .line = BUF_INIT};
    _cleanup_berr_ struct berr *e = NULL;
    if (store_ws_get(j->m->store, j->id, &x.rec, &e) < 0) {
        log_error("job for workspace '%s': %s", j->id, berr_msg(e));
        if (j->action == WS_ACTION_ATTACH)
            (void)mark_attaching(j->m, j->id, false);
        return;
    }
    x.env = (struct strv)STRV_INIT;
    x.mask = (struct strv)STRV_INIT;
    (void)ws_owner_env(j->m, &x.rec, &x.env, &x.mask);
    if (j->background) {
        if (j->action == WS_ACTION_ATTACH) {
            do_attach(&x);
            (void)mark_attaching(j->m, j->id, false);
        } else if (j->action == WS_ACTION_INTERRUPT) {
            do_interrupt(&x);
        }
        strv_release(&x.env);
        strv_release(&x.mask);
        ws_record_release(&x.rec);
        return;
    }
    switch (j->action) {
    case WS_ACTION_CREATE:
        do_create(&x, j->resume);
        break;
    case WS_ACTION_START:
        do_start(&x);
        break;
    case WS_ACTION_STOP:
        do_stop(&x);
        break;
    case WS_ACTION_REBUILD:
        do_rebuild(&x);
        break;
    case WS_ACTION_DELETE:
        do_delete(&x);
        break;
    default:
        break;
    }
    strv_release(&x.env);
    strv_release(&x.mask);
    ws_record_release(&x.rec);
    buf_release(&x.line);
}

static void job_done(uv_work_t *w, int status)
{
    (void)status;
    struct job *j = (struct job *)w;
    if (!j->background)
        busy_release(j->m, j->id);
    int next = j->background ? -1 : after_job(j->m, j->id, -1);
    if (next >= 0) {
        /* the stop or delete that interrupted this job */
        struct ws_record rec;
        _cleanup_berr_ struct berr *e = NULL;
        if (ws_act(j->m, j->id, (enum ws_action)next, &rec, &e) == 0)
            ws_record_release(&rec);
        else
            log_info("workspace '%s': %s", j->id, berr_msg(e));
    }
    deliver_logs(&j->m->notify);
    free(j->id);
    free(j);
}

static void queue_job(struct ws_manager *m, const char *id, enum ws_action action, bool background,
                      bool resume)
{
    struct job *j = xcalloc(1, sizeof(*j));
    j->m = m;
    j->id = xstrdup(id);
    j->action = action;
    j->background = background;
    j->resume = resume;
    if (uv_queue_work(m->loop, &j->work, job_run, job_done) < 0) {
        log_error("cannot queue a job for workspace '%s'", id);
        if (!background)
            busy_release(m, id);
        free(j->id);
        free(j);
    }
}

static void random_hex(char *out, size_t nbytes)
{
    unsigned char raw[32];
    if (nbytes > sizeof(raw))
        nbytes = sizeof(raw);
    if (getrandom(raw, nbytes, 0) != (ssize_t)nbytes)
        abort();
    for (size_t i = 0; i < nbytes; i++)
        sprintf(out + 2 * i, "%02x", raw[i]);
}

static bool valid_name(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > 63 || !(islower((unsigned char)n[0]) || isdigit((unsigned char)n[0])))
        return false;
    for (const char *p = n; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-'))
            return false;
    return true;
}

static char *default_name(const char *repo, const char *id)
{
    _cleanup_free_ char *base = repo_dir_name(repo);
    struct buf b = BUF_INIT;
    for (const char *p = base; *p && b.len < 40; p++) {
        char ch = (char)tolower((unsigned char)*p);
        if (isalnum((unsigned char)ch))
            buf_addch(&b, ch);
        else if (b.len && b.buf[b.len - 1] != '-')
            buf_addch(&b, '-');
    }
    while (b.len && b.buf[b.len - 1] == '-')
        b.buf[--b.len] = 0;
    if (!b.len || !isalnum((unsigned char)b.buf[0]))
        buf_adds(&b, "ws");
    buf_addf(&b, "-%.4s", id);
    return buf_detach(&b, NULL);
}

/* The per-user limits: creating needs room for one more workspace and one more
 * running; starting needs room for one more running. */
static int check_limits(struct ws_manager *m, const char *owner, bool creating,
                        struct berr **reterr)
{
    if (!owner)
        return 0;
    int64_t all = 0, active = 0;
    if (store_ws_count(m->store, owner, &all, &active) < 0)
        return berr_make(reterr, EIO, "cannot count workspaces");
    int64_t max_all =
        store_setting_int(m->store, WS_SETTING_MAX_WORKSPACES, WS_DEFAULT_MAX_WORKSPACES);
    int64_t max_running =
        store_setting_int(m->store, WS_SETTING_MAX_RUNNING, WS_DEFAULT_MAX_RUNNING);
    if (creating && all >= max_all)
        return berr_make(reterr, EDQUOT,
                         "workspace limit reached: you have %lld workspaces and the limit is %lld "
                         "per user; delete one ('berth rm') to make room",
                         (long long)all, (long long)max_all);
    if (active >= max_running)
        return berr_make(reterr, EDQUOT,
                         "running limit reached: %lld of your workspaces are running and the "
                         "limit is %lld at once; stop one ('berth stop') to make room",
                         (long long)active, (long long)max_running);
    return 0;
}

/* A repository on this server's disk (a path or file:// URL) is read with
 * berthd's rights: never from the data directory (other workspaces' files),
 * and for a user who is not an admin only under a "repo:/prefix" entry of the
 * allow-list. */
static int check_local_repo(struct ws_manager *m, const struct ws_create_request *req,
                            struct berr **reterr)
{
    const char *path = req->repo[0] == '/'                     ? req->repo
                       : strncmp(req->repo, "file://", 7) == 0 ? req->repo + 7
                                                               : NULL;
    if (!path)
        return 0;
    if (path[0] != '/')
        return berr_make(reterr, EINVAL, "repo '%s': a file:// URL needs an absolute path",
                         req->repo);
    /* git decodes %XX in the URL it is given (a path becomes file://): what
     * it would read is not what is checked here */
    if (strchr(path, '%'))
        return berr_make(reterr, EINVAL, "repo '%s': '%%' is not allowed in a path on the server",
                         req->repo);
    _cleanup_free_ char *lexical = path_normalize(path);
    char resolved[PATH_MAX];
    /* one that does not exist fails at the clone, as it would anyway */
    const char *real = realpath(path, resolved) ? resolved : lexical;
    _cleanup_free_ char *data = realpath(m->data_dir, NULL);
    const char *forms[] = {real, lexical};
    for (size_t i = 0; i < ELEMENTSOF(forms); i++)
        if (path_is_under(forms[i], data ? data : m->data_dir))
            return berr_make(reterr, EPERM,
                             "repo '%s' is inside berthd's data directory, which holds the "
                             "workspaces' files; clone from the repository itself",
                             req->repo);
    if (req->owner_is_admin)
        return 0;
    struct policy pol;
    policy_load(m, &pol);
    bool ok = false;
    for (size_t i = 0; i < pol.allow.n && !ok; i++)
        if (strncmp(pol.allow.v[i], "repo:/", 6) == 0)
            ok = path_is_under(real, pol.allow.v[i] + 5) &&
                 path_is_under(lexical, pol.allow.v[i] + 5);
    policy_release(&pol);
    if (!ok)
        return berr_make(reterr, EPERM,
                         "repo '%s' is a path on the server: only admins may clone those. Use a "
                         "git URL (http(s)://, ssh://, git://), or ask an admin to allow the "
                         "folder with 'berth admin settings --allow repo:/FOLDER'",
                         req->repo);
    return 0;
}

/* Names are unique on the server, not per user: they are in port URLs. */
#define NAME_TAKEN                                                                                 \
    "the name '%s' is taken on this server (workspace names are unique across users: they "        \
    "appear in port URLs); choose another"

int ws_create(struct ws_manager *m, const struct ws_create_request *req, struct ws_record *ret,
              struct berr **reterr)
{
    int r = git_check_url(req->repo, reterr);
    if (r < 0)
        return r;
    r = check_local_repo(m, req, reterr);
    if (r < 0)
        return r;
    int targets = !!req->branch + !!req->commit + !!req->ref;
    if (targets > 1)
        return berr_make(reterr, EINVAL, "give at most one of branch, commit and ref");
    const char *checks[][2] = {{"branch", req->branch}, {"commit", req->commit}, {"ref", req->ref}};
    for (size_t i = 0; i < ELEMENTSOF(checks); i++) {
        const char *v = checks[i][1];
        if (v && (!*v || v[0] == '-' || strlen(v) > 255 || strpbrk(v, " \t\n\r~^:?*[\\")))
            return berr_make(reterr, EINVAL, "%s '%s' is not a valid git name", checks[i][0], v);
    }
    if (req->ref && strncmp(req->ref, "refs/", 5) != 0)
        return berr_make(reterr, EINVAL, "ref '%s' must start with 'refs/'", req->ref);
    if (req->name && !valid_name(req->name))
        return berr_make(reterr, EINVAL,
                         "name '%s' must be 1-63 characters of a-z, 0-9 and '-', starting with a "
                         "letter or digit",
                         req->name);
    r = check_limits(m, req->owner, true, reterr);
    if (r < 0)
        return r;
    char id[25];
    random_hex(id, 6);
    int64_t now = store_now();
    struct ws_record rec = {
        .id = xstrdup(id),
        .name = req->name ? xstrdup(req->name) : default_name(req->repo, id),
        .state = xstrdup(ws_state_name(WS_CREATING)),
        .repo = xstrdup(req->repo),
        .branch = req->branch ? xstrdup(req->branch) : NULL,
        .commit = req->commit ? xstrdup(req->commit) : NULL,
        .ref = req->ref ? xstrdup(req->ref) : NULL,
        .devcontainer_path = req->devcontainer_path ? xstrdup(req->devcontainer_path) : NULL,
        .owner = req->owner ? xstrdup(req->owner) : NULL,
        .uid = -1,
        .gid = -1,
        .created_at = now,
        .updated_at = now,
    };
    struct ws_record probe;
    if (store_ws_get(m->store, rec.name, &probe, NULL) == 0) {
        ws_record_release(&probe);
        r = berr_make(reterr, EEXIST, NAME_TAKEN, rec.name);
        ws_record_release(&rec);
        return r;
    }
    r = store_ws_insert(m->store, &rec, reterr);
    if (r < 0) {
        ws_record_release(&rec);
        return r == -EEXIST ? berr_make(reterr, EEXIST, NAME_TAKEN, req->name ? req->name : "?")
                            : r;
    }
    (void)store_event_add(m->store, rec.id, "state", "creating");
    uv_async_send(&m->notify);
    busy_take(m, rec.id);
    queue_job(m, rec.id, WS_ACTION_CREATE, false, false);
    *ret = rec;
    return 0;
}

int ws_act(struct ws_manager *m, const char *id_or_name, enum ws_action action,
           struct ws_record *ret, struct berr **reterr)
{
    struct ws_record rec;
    int r = store_ws_get(m->store, id_or_name, &rec, reterr);
    if (r < 0)
        return r;
    if (!busy_take(m, rec.id)) {
        /* lifecycle commands under way: a stop (of a workspace already
         * shown ready) or a delete interrupts them, then follows */
        _cleanup_free_ char *running = lifecycle_running(&rec);
        bool in_hooks = running != NULL;
        /* a second stop while one waits asks again (the first interrupt
         * may have failed to stop the container) */
        bool waiting = interrupt_asked(m, rec.id);
        if (in_hooks &&
            (action == WS_ACTION_DELETE ||
             (action == WS_ACTION_STOP && (strcmp(rec.state, "running") == 0 || waiting)))) {
            after_job(m, rec.id, action);
            /* shown at once, the state alone (the job owns the rest of the
             * row); the job keeps it (save) until the action runs */
            free(rec.state);
            rec.state =
                xstrdup(ws_state_name(action == WS_ACTION_DELETE ? WS_DELETING : WS_STOPPING));
            (void)store_ws_set_state(m->store, rec.id, rec.state);
            (void)store_event_add(m->store, rec.id, "lifecycle",
                                  action == WS_ACTION_DELETE
                                      ? "delete asked for: interrupting the lifecycle commands"
                                      : "stop asked for: interrupting the lifecycle commands");
            uv_async_send(&m->notify);
            queue_job(m, rec.id, WS_ACTION_INTERRUPT, true, false);
            *ret = rec;
            return 0;
        }
        r = berr_make(reterr, EBUSY, "workspace '%s' is busy (%s); try again when it is done",
                      rec.name, rec.state);
        ws_record_release(&rec);
        return r;
    }
    enum ws_state s = ws_state_from_name(rec.state);
    enum ws_state next = _WS_STATE_INVALID;
    const char *why = NULL;
    switch (action) {
    case WS_ACTION_START:
        next = WS_STARTING;
        if (s == WS_RUNNING)
            why = "it is already running";
        else if (s != WS_STOPPED && s != WS_FAILED)
            why = "it is not stopped";
        break;
    case WS_ACTION_STOP:
        next = WS_STOPPING;
        if (s == WS_STOPPED)
            why = "it is already stopped";
        else if (s != WS_RUNNING && s != WS_STOPPING) /* stopping: after an interrupt */
            why = "it is not running";
        break;
    case WS_ACTION_REBUILD:
        next = WS_REBUILDING;
        if (s != WS_RUNNING && s != WS_STOPPED && s != WS_FAILED)
            why = "it is busy";
        break;
    case WS_ACTION_DELETE:
        next = WS_DELETING;
        if (ws_state_is_busy(s) && s != WS_DELETING)
            why = "it is busy";
        break;
    case WS_ACTION_CREATE:
    default:
        why = "unsupported action";
        break;
    }
    if (!why && (action == WS_ACTION_START || (action == WS_ACTION_REBUILD && s != WS_RUNNING))) {
        struct berr *le = NULL;
        if (check_limits(m, rec.owner, false, &le) < 0) {
            busy_release(m, rec.id);
            r = berr_make(reterr, EDQUOT, "%s", berr_msg(le));
            berr_free(le);
            ws_record_release(&rec);
            return r;
        }
    }
    if (why) {
        busy_release(m, rec.id);
        r = berr_make(reterr, EBUSY, "cannot %s workspace '%s': %s",
                      action == WS_ACTION_START     ? "start"
                      : action == WS_ACTION_STOP    ? "stop"
                      : action == WS_ACTION_REBUILD ? "rebuild"
                                                    : "delete",
                      rec.name, why);
        ws_record_release(&rec);
        return r;
    }
    free(rec.state);
    rec.state = xstrdup(ws_state_name(next));
    if (action != WS_ACTION_STOP) {
        free(rec.error);
        rec.error = NULL;
    }
    r = store_ws_update(m->store, &rec, reterr);
    if (r < 0) {
        busy_release(m, rec.id);
        ws_record_release(&rec);
        return r;
    }
    (void)store_event_add(m->store, rec.id, "state", ws_state_name(next));
    uv_async_send(&m->notify);
    queue_job(m, rec.id, action, false, false);
    *ret = rec;
    return 0;
}

/* ---- reconcile ---- */

/* A workspace shown as ready (waitFor) whose later lifecycle commands were
 * cut short by a restart: say so rather than "running" forever. */
static void mark_lifecycle_interrupted(struct ws_manager *m, struct ws_record *r)
{
    _cleanup_free_ char *cut = lifecycle_running(r);
    if (!cut)
        return;
    json_t *rt = runtime_get(r);
    json_object_set_new(rt, "lifecycle", json_string("interrupted"));
    free(r->runtime);
    r->runtime = json_dumps(rt, JSON_COMPACT);
    json_decref(rt);
    (void)store_ws_update(m->store, r, NULL);
    _cleanup_free_ char *msg =
        xasprintf("%s was interrupted by a restart of berthd; rebuild to run it again", cut);
    (void)store_event_add(m->store, r->id, "reconcile", msg);
}

void ws_manager_reconcile(struct ws_manager *m)
{
    struct ws_record *list = NULL;
    size_t n = 0;
    _cleanup_berr_ struct berr *e = NULL;
    if (store_ws_list(m->store, &list, &n, &e) < 0) {
        log_error("reconcile: %s", berr_msg(e));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct ws_record *r = &list[i];
        enum ws_state s = ws_state_from_name(r->state);
        enum ws_action resume = WS_ACTION_CREATE;
        bool do_resume = true;
        /* no lifecycle command outlives berthd's restart */
        mark_lifecycle_interrupted(m, r);
        switch (s) {
        case WS_CREATING:
            resume = WS_ACTION_CREATE;
            break;
        case WS_STARTING:
            resume = WS_ACTION_START;
            break;
        case WS_STOPPING:
            resume = WS_ACTION_STOP;
            break;
        case WS_REBUILDING:
            resume = WS_ACTION_REBUILD;
            break;
        case WS_DELETING:
            resume = WS_ACTION_DELETE;
            break;
        case WS_RUNNING: {
            do_resume = false;
            json_t *info = NULL;
            struct berr *ce = NULL;
            int rc = r->container_id
                         ? engine_container_inspect(m->engine, r->container_id, &info, &ce)
                         : -ENOENT;
            int running = 0;
            if (rc == 0)
                (void)json_unpack(info, "{s:{s:b}}", "State", "Running", &running);
            json_decref(info);
            berr_free(ce);
            if (rc == -ENOENT || (rc == 0 && !running)) {
                struct ws_record copy;
                ws_record_copy(&copy, r);
                free(copy.state);
                copy.state = xstrdup(rc == 0 ? "stopped" : "failed");
                free(copy.error);
                copy.error = rc == 0 ? NULL
                                     : xstrdup("the container disappeared while berthd was "
                                               "down; rebuild the workspace (files are kept)");
                (void)store_ws_update(m->store, &copy, NULL);
                (void)store_event_add(m->store, copy.id, "reconcile",
                                      rc == 0 ? "container stopped while berthd was down"
                                              : copy.error);
                log_info("reconcile: workspace '%s' is now %s", copy.name, copy.state);
                ws_record_release(&copy);
            }
            break;
        }
        case WS_STOPPED:
        case WS_FAILED:
        case _WS_STATE_MAX:
        case _WS_STATE_INVALID:
        default:
            do_resume = false;
            break;
        }
        if (do_resume) {
            log_info("reconcile: resuming '%s' of workspace '%s'", r->state, r->name);
            (void)store_event_add(m->store, r->id, "reconcile",
                                  "berthd restarted; resuming the interrupted action");
            if (busy_take(m, r->id))
                queue_job(m, r->id, resume, false, true);
        }
    }

    /* containers labelled as Berth's that no workspace owns */
    json_t *containers = NULL;
    _cleanup_berr_ struct berr *le = NULL;
    if (engine_container_list(m->engine, WS_LABEL_MANAGED "=1", &containers, &le) < 0) {
        log_error("reconcile: %s", berr_msg(le));
    } else {
        size_t ci;
        json_t *c;
        json_array_foreach (containers, ci, c) {
            const char *cid = json_string_value(json_object_get(c, "Id"));
            const char *wid =
                json_string_value(json_object_get(json_object_get(c, "Labels"), WS_LABEL_ID));
            if (!cid)
                continue;
            /* only this data dir's containers: the run dir bind tells */
            bool known = false;
            for (size_t i = 0; wid && i < n; i++)
                if (strcmp(list[i].id, wid) == 0)
                    known = true;
            _cleanup_free_ char *run = wid ? ws_run_dir(m, wid) : NULL;
            bool ours = false;
            json_t *mounts = json_object_get(c, "Mounts");
            size_t mi;
            json_t *mt;
            json_array_foreach (mounts, mi, mt) {
                const char *src = json_string_value(json_object_get(mt, "Source"));
                if (src && run && strcmp(src, run) == 0)
                    ours = true;
            }
            if (!known && ours) {
                log_info("reconcile: removing container %.12s of unknown workspace '%s'", cid,
                         wid ? wid : "?");
                (void)engine_container_remove(m->engine, cid, true, NULL);
            }
        }
    }
    json_decref(containers);
    for (size_t i = 0; i < n; i++)
        ws_record_release(&list[i]);
    free(list);
    uv_async_send(&m->notify); /* listeners catch up with what was found */
}

/* ---- log followers ---- */

struct ws_log_follower *ws_log_follow(struct ws_manager *m, const char *id, int64_t after,
                                      ws_log_cb cb, void *data)
{
    struct ws_log_follower *f = xcalloc(1, sizeof(*f));
    f->last = after;
    f->id = xstrdup(id);
    f->cb = cb;
    f->data = data;
    f->next = m->followers;
    m->followers = f;
    uv_async_send(&m->notify);
    return f;
}

void ws_log_unfollow(struct ws_manager *m, struct ws_log_follower *f)
{
    (void)m;
    f->removed = true;
    f->cb = NULL;
    uv_async_send(&m->notify);
}

static void deliver_logs(uv_async_t *a)
{
    struct ws_manager *m = a->data;
    if (m->delivering)
        return;
    m->delivering = true;
    for (struct ws_log_follower *f = m->followers; f; f = f->next) {
        if (f->removed)
            continue;
        /* read the state first: lines are written before a resting state, so
         * a resting state seen here means every line is already stored */
        struct ws_record rec;
        bool at_rest = true;
        if (store_ws_get(m->store, f->id, &rec, NULL) == 0) {
            at_rest = !ws_state_is_busy(ws_state_from_name(rec.state)) && !ws_is_busy(m, f->id);
            ws_record_release(&rec);
        }
        for (;;) {
            _cleanup_buf_ struct buf out = BUF_INIT;
            int64_t last = f->last;
            if (store_logs_since(m->store, f->id, f->last, WS_LOG_BATCH, &out, &last) < 0)
                break;
            f->last = last;
            if (out.len && f->cb)
                f->cb(out.buf, out.len, false, f->data);
            if (f->removed || !out.len)
                break;
        }
        if (at_rest && !f->removed) {
            ws_log_cb cb = f->cb;
            f->removed = true;
            if (cb)
                cb(NULL, 0, true, f->data);
        }
    }
    /* unlink removed followers */
    for (struct ws_log_follower **pp = &m->followers; *pp;) {
        struct ws_log_follower *f = *pp;
        if (f->removed) {
            *pp = f->next;
            free(f->id);
            free(f);
        } else {
            pp = &f->next;
        }
    }
    m->delivering = false;
    if (m->change_cb)
        m->change_cb(m->change_data);
}

/* ---- secrets ---- */

/* "team/api" from "https://host/team/api.git", "git@host:team/api", a path. */
static char *repo_slug(const char *repo)
{
    _cleanup_free_ char *s = xstrdup(repo);
    size_t n = strlen(s);
    while (n && s[n - 1] == '/')
        s[--n] = 0;
    if (n > 4 && strcmp(s + n - 4, ".git") == 0)
        s[n -= 4] = 0;
    char *last = strrchr(s, '/');
    if (!last)
        return xstrdup(s);
    *last = 0;
    char *prev = strrchr(s, '/');
    char *colon = strrchr(s, ':');
    if (colon && (!prev || colon > prev))
        prev = colon;
    return xasprintf("%s/%s", prev ? prev + 1 : s, last + 1);
}

int ws_owner_env(struct ws_manager *m, const struct ws_record *r, struct strv *env,
                 struct strv *mask)
{
    /* the configuration's environment first (login shell, remoteEnv); the
     * owner's secrets win over it */
    json_t *rt = runtime_get(r);
    const char *k;
    json_t *v;
    json_object_foreach (json_object_get(rt, "env"), k, v)
        if (json_is_string(v))
            strv_setenv(env, k, json_string_value(v));
    json_decref(rt);
    if (!r->owner)
        return 0;
    struct user_rec u = {0};
    if (store_user_get(m->store, r->owner, &u, NULL) < 0)
        return 0;
    struct secret_rec *list = NULL;
    size_t n = 0;
    int rc = store_secret_all(m->store, u.id, &list, &n);
    user_rec_release(&u);
    if (rc < 0)
        return rc;
    _cleanup_free_ char *slug = repo_slug(r->repo);
    for (size_t i = 0; i < n; i++) {
        const char *pat = list[i].repo_pattern;
        if (pat && *pat && fnmatch(pat, slug, 0) != 0 && fnmatch(pat, r->repo, 0) != 0)
            continue;
        struct buf plain = BUF_INIT;
        if (unseal(list[i].value.buf, list[i].value.len, &plain) == 0) {
            strv_setenv(env, list[i].name, plain.buf);
            if (mask)
                strv_push(mask, plain.buf);
        }
        sodium_memzero_buf(&plain);
        buf_release(&plain);
    }
    secret_recs_free(list, n);
    return 0;
}

/* ---- JSON ---- */

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *ws_record_json(const struct ws_record *r)
{
    _cleanup_free_ char *created = store_time_iso(r->created_at);
    _cleanup_free_ char *updated = store_time_iso(r->updated_at);
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
        " s:s, s:s}",
        "id", r->id, "name", r->name, "state", r->state, "repo", r->repo, "branch",
        str_or_null(r->branch), "commit", str_or_null(r->commit), "ref", str_or_null(r->ref),
        "image", str_or_null(r->image), "container_id", str_or_null(r->container_id),
        "workspace_folder", str_or_null(r->workspace_folder), "remote_user",
        str_or_null(r->remote_user), "devcontainer_path", str_or_null(r->devcontainer_path),
        "error", str_or_null(r->error), "owner", str_or_null(r->owner), "created_at", created,
        "updated_at", updated);
    /* "lifecycle": which lifecycle command runs now, "done" or "failed" */
    json_t *rt = runtime_get(r);
    json_t *lifecycle = json_object_get(rt, "lifecycle");
    json_object_set(j, "lifecycle", lifecycle ? lifecycle : json_null());
    json_decref(rt);
    return j;
}
