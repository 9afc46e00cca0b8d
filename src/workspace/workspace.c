/* workspace.c - the workspace manager: records, the state checks of each
 * action, log followers, the owner's secrets and the record as JSON.
 *
 * ws_create() and ws_act() decide on the loop whether an action may run and
 * write its busy state; the work itself is a job (job.c, actions.c). Log
 * followers are fed on the loop from the manager's uv_async_t, which jobs
 * wake whenever they write a line or a state.
 */
#include "workspace/workspace.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "agent/agent-proto.h"
#include "git/git.h"
#include "store/accounts.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/path.h"
#include "util/seal.h"
#include "util/urlscan.h"
#include "workspace/ws-internal.h"

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

struct ws_log_follower {
    struct ws_log_follower *next;
    char *id;
    int64_t last;
    ws_log_cb cb;
    void *data;
    bool removed;
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

void ws_manager_on_ready(struct ws_manager *m, ws_ready_cb cb, void *data)
{
    m->ready_cb = cb;
    m->ready_data = data;
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

bool ws_manager_remote(struct ws_manager *m)
{
    return rt_is_remote(m->rt);
}

const char *ws_manager_data_dir(struct ws_manager *m)
{
    return m->data_dir;
}

char *ws_run_dir(struct ws_manager *m, const char *id)
{
    return xasprintf("%s/run/%s", m->data_dir, id);
}

char *ws_files_dir(struct ws_manager *m, const char *id)
{
    return xasprintf("%s/workspaces/%s", m->data_dir, id);
}

int ws_agent_connect(struct ws_manager *m, const char *id, int *ret_fd, struct berr **reterr)
{
    if (rt_is_remote(m->rt))
        return agentc_connect_remote(m, id, ret_fd, reterr);
    _cleanup_free_ char *run = ws_run_dir(m, id);
    int fd = unix_connect_nofollow(run, AGENT_SOCKET_NAME);
    if (fd < 0)
        return berr_make(reterr, -fd, "cannot connect to the workspace agent: %s", strerror(-fd));
    *ret_fd = fd;
    return 0;
}

int ws_manager_new(uv_loop_t *loop, struct store *store, struct runtime *rt,
                   const struct ws_manager_config *cfg, struct ws_manager **ret,
                   struct berr **reterr)
{
    struct ws_manager *m = xcalloc(1, sizeof(*m));
    m->loop = loop;
    m->store = store;
    m->rt = rt;
    m->data_dir = xstrdup(cfg->data_dir);
    m->agent_dir = xasprintf("%s/agent", cfg->data_dir);
    m->default_image = xstrdup(cfg->default_image ? cfg->default_image : WS_DEFAULT_IMAGE);
    m->ide_dir = cfg->ide_dir ? xstrdup(cfg->ide_dir) : xasprintf("%s/ide", cfg->data_dir);
    m->busy = (struct strv)STRV_INIT;
    m->attaching = (struct strv)STRV_INIT;
    m->after = (struct strv)STRV_INIT;
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->idle_lock, NULL);
    m->idle_minute_ms = cfg->idle_minute_ms > 0 ? cfg->idle_minute_ms : 60000;

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
    prebuild_poller_start(m);
    idle_sweeper_start(m);
    nodewatch_start(m);
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
    if (m->poll_timer.loop)
        uv_close((uv_handle_t *)&m->poll_timer, NULL);
    if (m->idle_timer.loop)
        uv_close((uv_handle_t *)&m->idle_timer, NULL);
    if (m->nodewatch_timer.loop)
        uv_close((uv_handle_t *)&m->nodewatch_timer, NULL);
    /* the manager itself is leaked on purpose when jobs may still run: berthd
     * exits right after this */
    free(m->data_dir);
    m->data_dir = NULL;
}

/* The directory name of the checkout: the repo's last path component without
 * ".git", reduced to characters that are safe in a path. */
char *repo_dir_name(const char *repo)
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

void sodium_memzero_buf(struct buf *b)
{
    volatile char *p = b->buf;
    for (size_t i = 0; i < b->len; i++)
        p[i] = 0;
}

void ws_random_hex(char *out, size_t nbytes)
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
int check_local_repo(struct ws_manager *m, const struct ws_create_request *req,
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

int ws_check_request(struct ws_manager *m, const struct ws_create_request *req,
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
    return 0;
}

int ws_create(struct ws_manager *m, const struct ws_create_request *req, struct ws_record *ret,
              struct berr **reterr)
{
    int r = ws_check_request(m, req, reterr);
    if (r < 0)
        return r;
    if (req->name && !valid_name(req->name))
        return berr_make(reterr, EINVAL,
                         "name '%s' must be 1-63 characters of a-z, 0-9 and '-', starting with a "
                         "letter or digit",
                         req->name);
    r = check_limits(m, req->owner, true, reterr);
    if (r < 0)
        return r;
    char id[25];
    ws_random_hex(id, 6);
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
        .runtime = req->no_prebuild ? xstrdup("{\"no_prebuild\":true}") : NULL,
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
    ws_activity(m, rec.id, WS_ACT_START);
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
    if (s == WS_UNAVAILABLE && action != WS_ACTION_DELETE)
        why = "its node is down; it comes back as it was when the node does ('berth admin "
              "nodes' shows the nodes)";
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
    if (action == WS_ACTION_START || action == WS_ACTION_REBUILD)
        ws_activity(m, rec.id, WS_ACT_START);
    *ret = rec;
    return 0;
}

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

void deliver_logs(uv_async_t *a)
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
        } else if (ws_is_prebuild_id(f->id)) {
            at_rest = ws_prebuild_at_rest(m, f->id);
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
    /* a prebuild is shared by every workspace made from it: no secret of
     * its owner's goes into it */
    if (!r->owner || ws_is_prebuild_id(r->id))
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
    /* "node": where it runs, on a cluster */
    json_t *node = json_object_get(rt, "node");
    if (node)
        json_object_set(j, "node", node);
    /* on a cluster VS Code is there only where the nodes get it (--registry) */
    if (node && !json_is_true(json_object_get(rt, "ide")))
        json_object_set_new(j, "ide", json_false());
    json_t *pb = json_object_get(rt, "prebuild");
    json_object_set(j, "prebuild", pb ? pb : json_null());
    /* "tasks": the names of the terminals its tasks run in */
    json_t *names = json_array();
    const char *name;
    json_t *v;
    json_object_foreach (json_object_get(rt, "tasks"), name, v)
        json_array_append_new(names, json_string(name));
    json_object_set_new(j, "tasks", names);
    json_decref(rt);
    return j;
}
