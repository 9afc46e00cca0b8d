/* swarm-job.c - a one-task job on one node of a Swarm (swarm-job.h). */
#include "engine/swarm-job.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "util/xalloc.h"

void swarm_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* 1 done, 0 not yet, or the task's failure. */
static int job_state(struct engine *e, const char *name, struct berr **reterr)
{
    _cleanup_free_ char *path = engine_filter_path("/tasks", "service", name);
    _cleanup_(json_decrefp) json_t *tasks = NULL;
    int r = engine_call(e, "GET", path, NULL, &tasks, "list the job's tasks", reterr);
    if (r < 0)
        return r;
    size_t k;
    json_t *t;
    json_array_foreach (tasks, k, t) {
        json_t *st = json_object_get(t, "Status");
        const char *state = json_string_value(json_object_get(st, "State"));
        if (!state)
            continue;
        if (strcmp(state, "complete") == 0)
            return 1;
        if (strcmp(state, "failed") == 0 || strcmp(state, "rejected") == 0) {
            const char *err = json_string_value(json_object_get(st, "Err"));
            json_int_t code = json_integer_value(
                json_object_get(json_object_get(st, "ContainerStatus"), "ExitCode"));
            return berr_make(reterr, EIO, "the job's task %s (exit %lld): %s", state,
                             (long long)code, err ? err : "no reason given");
        }
    }
    return 0;
}

int swarm_job_run(struct engine *e, const char *name, const char *node_id, json_t *container,
                  json_t *labels, long timeout_ms, struct berr **reterr)
{
    _cleanup_free_ char *spath = xasprintf("/services/%s", name);
    (void)engine_call(e, "DELETE", spath, NULL, NULL, "remove the old job", NULL);
    /* one replica that is never restarted, not a ReplicatedJob: removing a
     * job leaves its task's container behind on the node (moby/moby#44312),
     * holding the volumes it mounted */
    json_t *spec =
        json_pack("{s:s, s:o, s:{s:o, s:{s:[o]}, s:{s:s}}, s:{s:{s:i}}}", "Name", name, "Labels",
                  labels ? labels : json_object(), "TaskTemplate", "ContainerSpec", container,
                  "Placement", "Constraints", json_sprintf("node.id==%s", node_id), "RestartPolicy",
                  "Condition", "none", "Mode", "Replicated", "Replicas", 1);
    if (!spec)
        return berr_make(reterr, EINVAL, "cannot make the job's spec");
    int r = engine_call(e, "POST", "/services/create", spec, NULL, "create the job", reterr);
    json_decref(spec);
    if (r < 0)
        return r;
    r = 0;
    for (long waited = 0; r == 0 && waited < timeout_ms; waited += 250) {
        r = job_state(e, name, reterr);
        if (r == 0)
            swarm_sleep_ms(250);
    }
    (void)engine_call(e, "DELETE", spath, NULL, NULL, "remove the job", NULL);
    if (r == 0)
        return berr_make(reterr, ETIMEDOUT, "the job did not end in %ld s", timeout_ms / 1000);
    return r < 0 ? r : 0;
}

json_t *swarm_agent_configs(const char *path, const char *cfg_id, const char *cfg_name)
{
    return json_pack("[{s:{s:s, s:s, s:s, s:i}, s:s, s:s}]", "File", "Name", path, "UID", "0",
                     "GID", "0", "Mode", 0555, "ConfigID", cfg_id, "ConfigName", cfg_name);
}
