/* swarm-job.h - a one-task job on one node of a Swarm, run to its end: what
 * berthd does on a node whose engine it cannot reach (the manager's API only
 * places tasks). Blocking: worker threads only. */
#ifndef BERTH_SWARM_JOB_H
#define BERTH_SWARM_JOB_H

#include <jansson.h>

#include "engine/engine.h"
#include "util/err.h"

/* Runs the service name as one replica, never restarted, pinned to node_id,
 * with container as its ContainerSpec (taken) and labels (taken, may be
 * NULL); waits at most timeout_ms for the task to complete, then removes the
 * job, whatever the end. A job of that name left from before goes first. A
 * failed task is the error, with its exit code. */
int swarm_job_run(struct engine *e, const char *name, const char *node_id, json_t *container,
                  json_t *labels, long timeout_ms, struct berr **reterr);

/* The ContainerSpec "Configs" that puts berth-agent (the Swarm config
 * cfg_id/cfg_name) at path, 0555. */
json_t *swarm_agent_configs(const char *path, const char *cfg_id, const char *cfg_name);

void swarm_sleep_ms(long ms);

#endif
