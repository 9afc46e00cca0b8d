/* reconcile.c - after a restart, bring the store and the engine into agreement.
 *
 * A workspace left in a busy state is resumed; one shown running whose
 * container stopped or vanished is marked so; lifecycle commands cut short are
 * shown interrupted; containers labelled as Berth's that no workspace of this
 * data dir owns are removed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "workspace/ws-internal.h"

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
    prebuild_reconcile(m);
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
            struct rt_ws_info info = {0};
            struct berr *ce = NULL;
            int rc = r->container_id ? rt_ws_inspect(m->rt, r->container_id, &info, &ce) : -ENOENT;
            bool running = rc == 0 && info.running;
            bool away = rc == 0 && info.status && strcmp(info.status, "unavailable") == 0;
            rt_ws_info_release(&info);
            berr_free(ce);
            if (away) {
                /* its node is down: nodewatch.c shows it and brings it back */
            } else if (rc == -ENOENT || (rc == 0 && !running)) {
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
            } else if (rc == 0 && m->ready_cb) {
                m->ready_cb(r->id, m->ready_data);
            }
            break;
        }
        case WS_STOPPED:
        case WS_FAILED:
        case WS_UNAVAILABLE:
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
    struct rt_ws_entry *containers = NULL;
    size_t n_containers = 0;
    _cleanup_berr_ struct berr *le = NULL;
    if (rt_ws_list(m->rt, WS_LABEL_MANAGED "=1", &containers, &n_containers, &le) < 0) {
        log_error("reconcile: %s", berr_msg(le));
    } else {
        for (size_t ci = 0; ci < n_containers; ci++) {
            const char *cid = containers[ci].id;
            const char *wid = containers[ci].ws_id;
            /* only this data dir's containers: the run dir bind tells */
            bool known = false;
            for (size_t i = 0; wid && i < n; i++)
                if (strcmp(list[i].id, wid) == 0)
                    known = true;
            _cleanup_free_ char *run = wid ? ws_run_dir(m, wid) : NULL;
            bool ours = false;
            const struct strv *sources = &containers[ci].mount_sources;
            for (size_t mi = 0; run && mi < sources->n; mi++)
                if (strcmp(sources->v[mi], run) == 0)
                    ours = true;
            if (!known && ours) {
                log_info("reconcile: removing container %.12s of unknown workspace '%s'", cid,
                         wid ? wid : "?");
                (void)rt_ws_remove(m->rt, cid, NULL);
            }
        }
    }
    rt_ws_entries_free(containers, n_containers);
    for (size_t i = 0; i < n; i++)
        ws_record_release(&list[i]);
    free(list);
    uv_async_send(&m->notify); /* listeners catch up with what was found */
}
