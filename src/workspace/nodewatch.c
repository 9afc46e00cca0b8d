/* nodewatch.c - a remote runtime's workspaces whose node went away.
 *
 * Every few seconds a worker thread looks at each running or unavailable
 * workspace through the runtime: one whose node is down or unknown becomes
 * `unavailable` (never deleted, never made again elsewhere: its files are on
 * that node), and one whose node is back and whose agent answers is `running`
 * again, with an event for each. A workspace that a job holds is left to the
 * job. On one host there are no nodes and nothing runs.
 */
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "workspace/agentc.h"
#include "workspace/ws-internal.h"

#define NODEWATCH_EVERY_MS 3000

struct nodewatch_work {
    uv_work_t work;
    struct ws_manager *m;
    bool changed;
};

/* Moves r from its state to next (the job's lock held), with an event. */
static void move(struct ws_manager *m, const struct ws_record *r, enum ws_state next,
                 const char *why)
{
    (void)store_ws_set_state(m->store, r->id, ws_state_name(next));
    (void)store_event_add(m->store, r->id, "state", ws_state_name(next));
    (void)store_event_add(m->store, r->id, "node", why);
    log_info("workspace '%s' (%s): %s: %s", r->name, r->id, ws_state_name(next), why);
}

static void check_one(struct nodewatch_work *w, const struct ws_record *r)
{
    struct ws_manager *m = w->m;
    enum ws_state s = ws_state_from_name(r->state);
    if ((s != WS_RUNNING && s != WS_UNAVAILABLE) || !r->container_id || !busy_take(m, r->id))
        return;
    struct rt_ws_info info = {0};
    if (rt_ws_inspect(m->rt, r->container_id, &info, NULL) == 0) {
        if (s == WS_UNAVAILABLE)
            agentc_forget_address(r->id); /* its task comes back anew */
        bool away = info.status && strcmp(info.status, "unavailable") == 0;
        if (s == WS_RUNNING && away) {
            _cleanup_free_ char *why = xasprintf(
                "its node %s is down or drained: the workspace waits for it, with its files",
                info.node ? info.node : "?");
            move(m, r, WS_UNAVAILABLE, why);
            w->changed = true;
        } else if (s == WS_UNAVAILABLE && info.running && agentc_hello(m, r->id, NULL) == 0) {
            _cleanup_free_ char *why =
                xasprintf("its node %s is back", info.node ? info.node : "?");
            move(m, r, WS_RUNNING, why);
            w->changed = true;
        }
    }
    rt_ws_info_release(&info);
    busy_release(m, r->id);
}

static void nodewatch_run(uv_work_t *req)
{
    struct nodewatch_work *w = (struct nodewatch_work *)req;
    struct ws_record *list = NULL;
    size_t n = 0;
    if (store_ws_list(w->m->store, &list, &n, NULL) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        check_one(w, &list[i]);
        ws_record_release(&list[i]);
    }
    free(list);
}

static void nodewatch_done(uv_work_t *req, int status)
{
    (void)status;
    struct nodewatch_work *w = (struct nodewatch_work *)req;
    w->m->nodewatch_busy = false;
    if (w->changed)
        uv_async_send(&w->m->notify);
    free(w);
}

static void nodewatch_tick(uv_timer_t *t)
{
    struct ws_manager *m = t->data;
    if (m->nodewatch_busy)
        return;
    struct nodewatch_work *w = xcalloc(1, sizeof(*w));
    w->m = m;
    m->nodewatch_busy = true;
    uv_queue_work(m->loop, &w->work, nodewatch_run, nodewatch_done);
}

void nodewatch_start(struct ws_manager *m)
{
    if (!rt_is_remote(m->rt))
        return;
    uv_timer_init(m->loop, &m->nodewatch_timer);
    m->nodewatch_timer.data = m;
    uv_timer_start(&m->nodewatch_timer, nodewatch_tick, NODEWATCH_EVERY_MS, NODEWATCH_EVERY_MS);
    uv_unref((uv_handle_t *)&m->nodewatch_timer);
}
