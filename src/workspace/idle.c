/* idle.c - idle auto-stop and retention of workspaces.
 *
 * Whatever a person does or sees in a workspace calls ws_activity() (from any
 * thread): terminal input and output, VS Code's messages, SSH channel data,
 * requests to forwarded ports, berth exec. The clock of each running
 * workspace lives here, in memory, on the monotonic clock: a jump of the
 * wall clock moves no deadline. A sweep on the loop, every quarter of an idle
 * minute (at most 15 s), walks the running workspaces: one with a job under
 * way (a lifecycle command) is active; one idle past its warning gets an
 * event and open terminals a notice; one idle past its timeout is stopped
 * (the normal stop), with the reason in its timeline. The sweep writes each
 * clock that moved to the store, so a restarted berthd picks it up; a
 * workspace that was idle through the restart gets IDLE_WARN_MINUTES from
 * then, never an immediate stop.
 *
 * Retention (an admin setting in days, off by default) deletes stopped
 * workspaces that nobody touched for that long, unless pinned, after an
 * event a day ahead.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/accounts.h"
#include "store/activity.h"
#include "util/clock.h"
#include "util/log.h"
#include "workspace/idle-policy.h"
#include "workspace/ws-internal.h"

#define IDLE_SWEEP_MAX_MS 15000
#define DAY_S (24 * 3600)

struct idle_entry {
    char *id;
    int64_t last_mono; /* mono_ms() of the last activity */
    int64_t last_wall; /* the same in unix seconds, for the store and display */
    enum ws_activity_kind kind;
    int64_t saved_wall; /* what the store holds */
    enum ws_activity_kind saved_kind;
    bool warned;
};

static const char *const kind_names[] = {
#define WS_ACTIVITY_NAME(e, s) [e] = s,
    WS_ACTIVITY_KINDS(WS_ACTIVITY_NAME)
#undef WS_ACTIVITY_NAME
};

const char *ws_activity_name(enum ws_activity_kind k)
{
    return (unsigned)k < ELEMENTSOF(kind_names) ? kind_names[k] : "activity";
}

static enum ws_activity_kind kind_from_name(const char *s)
{
    for (size_t i = 0; s && i < ELEMENTSOF(kind_names); i++)
        if (strcmp(kind_names[i], s) == 0)
            return (enum ws_activity_kind)i;
    return WS_ACT_START;
}

/* The entry of id, with m->idle_lock held; NULL when there is none. */
static struct idle_entry *entry_find(struct ws_manager *m, const char *id)
{
    for (size_t i = 0; i < m->n_idle; i++)
        if (strcmp(m->idle[i].id, id) == 0)
            return &m->idle[i];
    return NULL;
}

static struct idle_entry *entry_add(struct ws_manager *m, const char *id)
{
    m->idle = xrealloc(m->idle, (m->n_idle + 1) * sizeof(*m->idle));
    struct idle_entry *e = &m->idle[m->n_idle++];
    *e = (struct idle_entry){.id = xstrdup(id)};
    return e;
}

static void entry_remove(struct ws_manager *m, struct idle_entry *e)
{
    free(e->id);
    *e = m->idle[--m->n_idle];
}

void ws_activity(struct ws_manager *m, const char *id, enum ws_activity_kind kind)
{
    if (!m || !id)
        return;
    int64_t now = mono_ms(), wall = store_now();
    pthread_mutex_lock(&m->idle_lock);
    struct idle_entry *e = entry_find(m, id);
    if (!e)
        e = entry_add(m, id);
    e->last_mono = now;
    e->last_wall = wall;
    e->kind = kind;
    e->warned = false;
    pthread_mutex_unlock(&m->idle_lock);
}

/* The admin's limits, read once per sweep. */
struct idle_limits {
    int64_t max;
    bool never;
};

static struct idle_limits limits_now(struct ws_manager *m)
{
    return (struct idle_limits){
        .max = store_setting_int(m->store, WS_SETTING_IDLE_MAX, IDLE_DEFAULT_MAX_MINUTES),
        .never = store_setting_int(m->store, WS_SETTING_IDLE_ALLOW_NEVER, 0) != 0,
    };
}

/* The timeout that applies (minutes, 0: never) and its source, from the
 * workspace's own, its owner's setting (user_idle, may be NULL) and the limits. */
static int64_t timeout_of(const struct ws_activity_rec *a, const char *user_idle,
                          const struct idle_limits *l, const char **ret_source)
{
    int64_t user = -1;
    if (user_idle && idle_parse_minutes(user_idle, &user) < 0)
        user = -1;
    return idle_effective(a->idle_timeout, user, l->max, l->never, ret_source);
}

/* Copies id's clock out, making it from the store's when berthd has none
 * (after a restart): a workspace idle since before it gets the warning's
 * lead from now. */
static struct idle_entry clock_of(struct ws_manager *m, const char *id,
                                  const struct ws_activity_rec *a, int64_t timeout_ms)
{
    int64_t now = mono_ms();
    pthread_mutex_lock(&m->idle_lock);
    struct idle_entry *e = entry_find(m, id);
    if (!e) {
        e = entry_add(m, id);
        int64_t wall = store_now();
        int64_t age_ms = a->last_activity > 0 ? (wall - a->last_activity) * 1000 : 0;
        if (age_ms < 0)
            age_ms = 0; /* the clock went back */
        int64_t most = timeout_ms ? idle_warn_after(timeout_ms, m->idle_minute_ms) : age_ms;
        if (age_ms > most)
            age_ms = most;
        e->last_mono = now - age_ms;
        e->last_wall = a->last_activity > 0 ? a->last_activity : wall;
        e->saved_wall = a->last_activity;
        e->kind = e->saved_kind = kind_from_name(a->kind);
    }
    struct idle_entry copy = *e;
    pthread_mutex_unlock(&m->idle_lock);
    copy.id = NULL;
    return copy;
}

/* Notes that id's clock is in the store as wall and kind. */
static void entry_saved(struct ws_manager *m, const char *id, int64_t wall,
                        enum ws_activity_kind kind)
{
    pthread_mutex_lock(&m->idle_lock);
    struct idle_entry *e = entry_find(m, id);
    if (e) {
        e->saved_wall = wall;
        e->saved_kind = kind;
    }
    pthread_mutex_unlock(&m->idle_lock);
}

/* Notes whether id was warned of its stop (a new timeout warns afresh). */
static void entry_warned(struct ws_manager *m, const char *id, bool warned)
{
    pthread_mutex_lock(&m->idle_lock);
    struct idle_entry *e = entry_find(m, id);
    if (e)
        e->warned = warned;
    pthread_mutex_unlock(&m->idle_lock);
}

/* The "idle" of r from its stored clock a, its owner's setting, the
 * admin's limits and the retention days. */
static json_t *idle_json(struct ws_manager *m, const struct ws_record *r,
                         const struct ws_activity_rec *ap, const char *user_idle,
                         const struct idle_limits *l, int64_t days)
{
    struct ws_activity_rec a = *ap;
    const char *source = NULL;
    int64_t minutes = timeout_of(&a, user_idle, l, &source);
    json_t *j = json_pack("{s:o, s:s, s:b}", "timeout_minutes",
                          minutes ? json_integer(minutes) : json_null(), "source", source, "pinned",
                          a.pinned);
    if (a.idle_timeout >= 0)
        json_object_set_new(j, "workspace_timeout_minutes",
                            a.idle_timeout ? json_integer(a.idle_timeout) : json_string("never"));
    bool running = strcmp(r->state, "running") == 0;
    int64_t last = a.last_activity;
    const char *kind = a.kind;
    struct idle_entry e = {0};
    if (running) {
        e = clock_of(m, r->id, &a, minutes * m->idle_minute_ms);
        last = e.last_wall;
        kind = ws_activity_name(e.kind);
        int64_t idle_ms = mono_ms() - e.last_mono;
        json_object_set_new(j, "idle_seconds", json_integer(idle_ms / 1000));
        if (minutes) {
            int64_t left_ms = minutes * m->idle_minute_ms - idle_ms;
            if (left_ms < 0)
                left_ms = 0;
            _cleanup_free_ char *at = store_time_iso(store_now() + (left_ms + 999) / 1000);
            json_object_set_new(j, "stops_at", json_string(at));
            json_object_set_new(j, "stops_in_seconds", json_integer((left_ms + 999) / 1000));
            json_object_set_new(j, "warning", json_boolean(e.warned));
        }
    }
    if (last > 0) {
        _cleanup_free_ char *at = store_time_iso(last);
        json_object_set_new(j, "last_activity", json_string(at));
        json_object_set_new(j, "last_activity_kind", kind ? json_string(kind) : json_null());
    }
    if (days > 0 && !a.pinned && !running && !ws_state_is_busy(ws_state_from_name(r->state))) {
        int64_t touched = r->updated_at > a.last_activity ? r->updated_at : a.last_activity;
        _cleanup_free_ char *at = store_time_iso(touched + days * DAY_S);
        json_object_set_new(j, "deleted_at", json_string(at));
        json_object_set_new(j, "deletion_warning", json_boolean(a.retention_warned));
    }
    return j;
}

json_t *ws_idle_json(struct ws_manager *m, const struct ws_record *r)
{
    struct ws_activity_rec a = {0};
    if (store_ws_activity_get(m->store, r->id, &a) < 0)
        return json_null();
    struct idle_limits l = limits_now(m);
    _cleanup_free_ char *user_idle =
        r->owner ? store_user_setting(m->store, r->owner, "idle") : NULL;
    json_t *j = idle_json(m, r, &a, user_idle, &l,
                          store_setting_int(m->store, WS_SETTING_RETENTION_DAYS, 0));
    ws_activity_rec_release(&a);
    return j;
}

json_t *ws_idle_json_all(struct ws_manager *m)
{
    json_t *all = json_object();
    struct ws_idle_row *rows = NULL;
    size_t n = 0;
    if (store_ws_idle_list(m->store, &rows, &n) < 0)
        return all;
    struct idle_limits l = limits_now(m);
    int64_t days = store_setting_int(m->store, WS_SETTING_RETENTION_DAYS, 0);
    for (size_t i = 0; i < n; i++)
        json_object_set_new(all, rows[i].rec.id,
                            idle_json(m, &rows[i].rec, &rows[i].a, rows[i].user_idle, &l, days));
    ws_idle_rows_free(rows, n);
    return all;
}

json_t *ws_json(struct ws_manager *m, const struct ws_record *r)
{
    json_t *j = ws_record_json(r);
    json_object_set_new(j, "idle", ws_idle_json(m, r));
    return j;
}

json_t *ws_json_from(const struct ws_record *r, json_t *idle_all)
{
    json_t *j = ws_record_json(r);
    json_t *idle = json_object_get(idle_all, r->id);
    json_object_set(j, "idle", idle ? idle : json_null());
    return j;
}

int ws_idle_check(struct ws_manager *m, int64_t minutes, struct berr **reterr)
{
    struct idle_limits l = limits_now(m);
    const char *why = minutes >= 0 ? idle_check(minutes, l.max, l.never) : NULL;
    return why ? berr_make(reterr, EINVAL, "%s", why) : 0;
}

void ws_idle_range(struct ws_manager *m, int64_t *ret_max, bool *ret_never)
{
    struct idle_limits l = limits_now(m);
    *ret_max = l.max;
    *ret_never = l.never;
}

int ws_set_idle_timeout(struct ws_manager *m, const char *id, int64_t minutes, struct berr **reterr)
{
    int r = ws_idle_check(m, minutes, reterr);
    if (r < 0)
        return r;
    r = store_ws_set_idle_timeout(m->store, id, minutes);
    if (r < 0)
        return berr_make(reterr, -r, "cannot set the idle timeout: %s", strerror(-r));
    char buf[32];
    _cleanup_free_ char *msg =
        minutes < 0 ? xstrdup("idle timeout: the owner's setting")
                    : xasprintf("idle timeout: %s", idle_format_minutes(minutes, buf, sizeof(buf)));
    (void)store_event_add(m->store, id, "idle", msg);
    entry_warned(m, id, false);
    uv_async_send(&m->notify);
    return 0;
}

void ws_manager_on_idle_warning(struct ws_manager *m, ws_idle_warn_cb cb, void *data)
{
    m->idle_warn_cb = cb;
    m->idle_warn_data = data;
}

/* Stops r, idle for idle_ms of its timeout. */
static void idle_stop(struct ws_manager *m, const struct ws_record *r, int64_t minutes,
                      const struct idle_entry *e, int64_t idle_ms)
{
    char tbuf[32], abuf[32];
    _cleanup_free_ char *why =
        xasprintf("idle %s: stopping (last activity: %s, %s ago)",
                  idle_format_minutes(minutes, tbuf, sizeof(tbuf)), ws_activity_name(e->kind),
                  idle_format_age(idle_ms, abuf, sizeof(abuf)));
    /* the reason first in the timeline; the sweep checked that no job runs */
    (void)store_event_add(m->store, r->id, "idle", why);
    struct ws_record out;
    _cleanup_berr_ struct berr *err = NULL;
    if (ws_act(m, r->id, WS_ACTION_STOP, &out, &err) < 0) {
        log_warn("workspace '%s': idle stop failed: %s", r->name, berr_msg(err));
        return;
    }
    store_audit_add(m->store, NULL, "workspace.idle_stop", r->id, why, NULL);
    log_info("workspace '%s' (%s): %s", r->name, r->id, why);
    ws_record_release(&out);
    pthread_mutex_lock(&m->idle_lock);
    struct idle_entry *me = entry_find(m, r->id);
    if (me)
        entry_remove(m, me);
    pthread_mutex_unlock(&m->idle_lock);
}

static void idle_warn(struct ws_manager *m, const struct ws_record *r, int64_t left_ms)
{
    char buf[32];
    int64_t left_min = (left_ms + m->idle_minute_ms - 1) / m->idle_minute_ms;
    _cleanup_free_ char *msg =
        xasprintf("no activity: the workspace stops in %s unless it is used",
                  idle_format_minutes(left_min > 0 ? left_min : 1, buf, sizeof(buf)));
    (void)store_event_add(m->store, r->id, "idle-warning", msg);
    entry_warned(m, r->id, true);
    if (m->idle_warn_cb)
        m->idle_warn_cb(r->id, msg, m->idle_warn_data);
    uv_async_send(&m->notify);
}

static void sweep_running(struct ws_manager *m, const struct ws_idle_row *row,
                          const struct idle_limits *l)
{
    const struct ws_record *r = &row->rec;
    if (ws_is_busy(m, r->id) || ws_is_attaching(m, r->id)) {
        ws_activity(m, r->id, WS_ACT_LIFECYCLE);
        return;
    }
    const char *source;
    int64_t minutes = timeout_of(&row->a, row->user_idle, l, &source);
    int64_t timeout_ms = minutes * m->idle_minute_ms;
    struct idle_entry e = clock_of(m, r->id, &row->a, timeout_ms);
    /* a new kind within the same second is a change too (an exec just
     * after the create's lifecycle commands) */
    if (e.last_wall != e.saved_wall || e.kind != e.saved_kind) {
        (void)store_ws_set_activity(m->store, r->id, e.last_wall, ws_activity_name(e.kind));
        entry_saved(m, r->id, e.last_wall, e.kind);
    }
    if (!minutes)
        return;
    int64_t idle_ms = mono_ms() - e.last_mono;
    if (idle_ms >= timeout_ms)
        idle_stop(m, r, minutes, &e, idle_ms);
    else if (idle_ms >= idle_warn_after(timeout_ms, m->idle_minute_ms) && !e.warned)
        idle_warn(m, r, timeout_ms - idle_ms);
}

static void sweep_stopped(struct ws_manager *m, const struct ws_idle_row *row, int64_t days)
{
    const struct ws_record *r = &row->rec;
    int64_t la = row->a.last_activity;
    int64_t touched = r->updated_at > la ? r->updated_at : la;
    int64_t age = store_now() - touched;
    bool pinned = row->a.pinned, warned = row->a.retention_warned;
    if (pinned || age < (days - 1) * DAY_S)
        return;
    if (age < days * DAY_S) {
        if (!warned) {
            _cleanup_free_ char *when = store_time_iso(touched + days * DAY_S);
            _cleanup_free_ char *msg =
                xasprintf("unused for %lld days: deleted at %s unless it is started or pinned "
                          "(berth pin %s)",
                          (long long)(age / DAY_S), when, r->name);
            (void)store_event_add(m->store, r->id, "retention-warning", msg);
            (void)store_ws_set_retention_warned(m->store, r->id, true);
            uv_async_send(&m->notify);
        }
        return;
    }
    struct ws_record out;
    _cleanup_berr_ struct berr *err = NULL;
    if (ws_act(m, r->id, WS_ACTION_DELETE, &out, &err) < 0) {
        log_debug("workspace '%s': retention delete deferred: %s", r->name, berr_msg(err));
        return;
    }
    _cleanup_free_ char *detail =
        xasprintf("owner %s; unused for %lld days (retention %lld)", r->owner ? r->owner : "-",
                  (long long)(age / DAY_S), (long long)days);
    store_audit_add(m->store, NULL, "workspace.retention_delete", r->name, detail, NULL);
    log_info("workspace '%s' (%s): deleted by retention: %s", r->name, r->id, detail);
    ws_record_release(&out);
}

static void sweep(uv_timer_t *t)
{
    struct ws_manager *m = t->data;
    int64_t start = mono_us();
    struct ws_idle_row *list = NULL;
    size_t n = 0;
    if (store_ws_idle_list(m->store, &list, &n) < 0)
        return;
    int64_t days = store_setting_int(m->store, WS_SETTING_RETENTION_DAYS, 0);
    struct idle_limits l = limits_now(m);
    struct strv live = STRV_INIT;
    for (size_t i = 0; i < n; i++) {
        const struct ws_record *r = &list[i].rec;
        enum ws_state s = ws_state_from_name(r->state);
        if (s == WS_RUNNING) {
            strv_push(&live, r->id);
            sweep_running(m, &list[i], &l);
        } else if (ws_state_is_busy(s)) {
            strv_push(&live, r->id); /* its clock goes on when it runs */
        } else if (days > 0 && (s == WS_STOPPED || s == WS_FAILED)) {
            sweep_stopped(m, &list[i], days);
        }
    }
    ws_idle_rows_free(list, n);
    /* forget the clocks of workspaces at rest or gone */
    pthread_mutex_lock(&m->idle_lock);
    for (size_t i = 0; i < m->n_idle;) {
        if (!strv_contains(&live, m->idle[i].id))
            entry_remove(m, &m->idle[i]);
        else
            i++;
    }
    pthread_mutex_unlock(&m->idle_lock);
    strv_release(&live);
    m->sweep_us = mono_us() - start;
    m->sweep_n = n;
}

void idle_sweeper_start(struct ws_manager *m)
{
    int64_t every = m->idle_minute_ms / 4;
    if (every > IDLE_SWEEP_MAX_MS)
        every = IDLE_SWEEP_MAX_MS;
    if (every < 50)
        every = 50;
    uv_timer_init(m->loop, &m->idle_timer);
    m->idle_timer.data = m;
    uv_timer_start(&m->idle_timer, sweep, (uint64_t)every, (uint64_t)every);
    uv_unref((uv_handle_t *)&m->idle_timer);
}

void ws_idle_stats(struct ws_manager *m, int64_t *ret_us, size_t *ret_n)
{
    *ret_us = m->sweep_us;
    *ret_n = m->sweep_n;
}
