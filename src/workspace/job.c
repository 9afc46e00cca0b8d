/* job.c - job plumbing: one job per workspace at a time, on libuv's thread pool.
 *
 * Rule for every action: write the new state, then do the work, then write the
 * resting state. A crash in between leaves a busy state in the store, which
 * reconcile resumes. A job logs to the store (secrets masked) and wakes the
 * loop, which pushes the lines to followers. A stop or delete asked for while
 * lifecycle commands run waits in the manager's "after" list and runs when the
 * job ends (job_done).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "workspace/ws-internal.h"

bool busy_take(struct ws_manager *m, const char *id)
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
int after_job(struct ws_manager *m, const char *id, int set)
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

bool interrupt_asked(struct ws_manager *m, const char *id)
{
    return interrupt_action(m, id) >= 0;
}

void busy_release(struct ws_manager *m, const char *id)
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
    bool b = strv_contains(&m->busy, id);
    pthread_mutex_unlock(&m->lock);
    return b;
}

bool ws_is_attaching(struct ws_manager *m, const char *id)
{
    pthread_mutex_lock(&m->lock);
    bool b = strv_contains(&m->attaching, id);
    pthread_mutex_unlock(&m->lock);
    return b;
}

struct job {
    uv_work_t work;
    struct ws_manager *m;
    char *id;
    enum ws_action action;
    bool background; /* not holding the busy mark (postAttach, interrupt) */
    bool resume;     /* picked up again by reconcile after a restart */
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

void jlog(struct job_ctx *x, const char *fmt, ...)
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

void jevent(struct job_ctx *x, const char *type, const char *fmt, ...)
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

void log_line_cb(const char *line, void *data)
{
    jlog(data, "%s", line);
}

int job_save(struct job_ctx *x)
{
    _cleanup_berr_ struct berr *e = NULL;
    /* what an interrupting stop or delete showed stays shown */
    int next = interrupt_action(x->m, x->rec.id);
    if (next >= 0) {
        free(x->rec.state);
        x->rec.state = xstrdup(ws_state_name(next == WS_ACTION_DELETE ? WS_DELETING : WS_STOPPING));
    }
    int r = x->prebuild ? store_pb_update(x->m->store, &x->rec, &e)
                        : store_ws_update(x->m->store, &x->rec, &e);
    if (r < 0)
        log_error("workspace '%s': %s", x->rec.id, berr_msg(e));
    uv_async_send(&x->m->notify);
    return r;
}

void job_set_state(struct job_ctx *x, enum ws_state s, const char *error)
{
    /* already there (waitFor made it ready early) with nothing new to say */
    if (!error && !x->rec.error && x->rec.state && strcmp(x->rec.state, ws_state_name(s)) == 0) {
        (void)job_save(x);
        return;
    }
    /* a prebuild shows its own states: building, ready, failed */
    const char *name = !x->prebuild      ? ws_state_name(s)
                       : s == WS_RUNNING ? "ready"
                       : s == WS_FAILED  ? "failed"
                                         : "building";
    free(x->rec.state);
    x->rec.state = xstrdup(name);
    free(x->rec.error);
    x->rec.error = error ? xstrdup(error) : NULL;
    (void)store_event_add(x->m->store, x->rec.id, "state", error ? error : name);
    if (error)
        jlog(x, "==> %s: %s", name, error);
    else
        jlog(x, "==> %s", name);
    (void)job_save(x);
}

char *clone_path(struct job_ctx *x)
{
    _cleanup_free_ char *files = ws_files_dir(x->m, x->rec.id);
    _cleanup_free_ char *name = repo_dir_name(x->rec.repo);
    return xasprintf("%s/%s", files, name);
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

static void job_run(uv_work_t *w)
{
    struct job *j = (struct job *)w;
    struct job_ctx x = {.m = j->m, .line = BUF_INIT};
    _cleanup_berr_ struct berr *e = NULL;
    x.prebuild = j->action == WS_ACTION_PREBUILD;
    if ((x.prebuild ? store_pb_get(j->m->store, j->id, &x.rec, &e)
                    : store_ws_get(j->m->store, j->id, &x.rec, &e)) < 0) {
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
    case WS_ACTION_PREBUILD:
        do_prebuild(&x);
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
    bool readies = j->action == WS_ACTION_CREATE || j->action == WS_ACTION_START ||
                   j->action == WS_ACTION_REBUILD;
    if (next < 0 && readies && j->m->ready_cb)
        j->m->ready_cb(j->id, j->m->ready_data);
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

void queue_job(struct ws_manager *m, const char *id, enum ws_action action, bool background,
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
