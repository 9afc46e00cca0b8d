/* swarm-net.h - the workspaces' overlays on a Swarm and berthd's relay on them
 * (docs/cluster.md).
 *
 * Each workspace has an attachable overlay of its own, which holds its task
 * and the relay: one more berth-agent, in a container berth-relay-<hash> on
 * the manager (one per data dir, labelled berth.relay=<cluster dir>), through
 * which berthd reaches the workspace's agent. The relay joining an overlay
 * takes half a second or more, longer than Swarm takes to start the task, so
 * a few overlays are made and joined ahead, by a thread of their own from
 * berthd's start on: a pool
 * of berth-pool-<random> networks (labelled berth.pool=<cluster dir>). A
 * create takes one of them when there is one, and makes berth-ws-<id> (and
 * joins it while Swarm starts the task) when there is none. The service
 * names its overlay in the label berth.net; an overlay of the pool that no
 * service names (a create cut short, a berthd stopped) is removed by the
 * next berthd of that data dir, never used again.
 *
 * The calls block (engine requests): worker threads only. */
#ifndef BERTH_SWARM_NET_H
#define BERTH_SWARM_NET_H

#include <stdbool.h>

#include "engine/engine.h"
#include "util/err.h"

/* On a workspace's service: the name of its overlay. */
#define SWARM_NET_LABEL "berth.net"

struct swarm_net;

/* Borrows e. relay_image runs the relay with agent_dir's berth-agent. The
 * pool's thread starts here. */
struct swarm_net *swarm_net_new(struct engine *e, const char *cluster_dir, const char *agent_dir,
                                const char *relay_image);
/* Stops the pool's thread; the overlays stay for the next berthd. */
void swarm_net_free(struct swarm_net *n);

/* An overlay for workspace ws_id: *ret_name and *ret_id; *ret_joined when
 * the relay is on it already (one of the pool), else swarm_net_join must
 * follow. */
int swarm_net_take(struct swarm_net *n, const char *ws_id, char **ret_name, char **ret_id,
                   bool *ret_joined, struct berr **reterr);
/* The relay joins overlay net (a name or an id), starting the relay first
 * if it does not run. */
int swarm_net_join(struct swarm_net *n, const char *net, struct berr **reterr);
/* Removes overlay net (a name), the relay leaving it first, and waits until
 * the engine no longer shows it: at most 30 s. */
void swarm_net_remove(struct swarm_net *n, const char *net);
/* Whether a task's network attachment named name can be a workspace's
 * overlay (berth-ws-<ws_id>, or one of the pool), for a task whose spec
 * does not say. */
bool swarm_net_is_workspace(const char *name, const char *ws_id);

#endif
