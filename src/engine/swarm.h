/* swarm.h - Docker Swarm mode through a manager's Engine API: the cluster and
 * its nodes.
 *
 * berthd --engine swarm+unix:///PATH takes a manager's socket. This part
 * checks that it is one and reads and changes the nodes (docs/cluster.md).
 * Blocking, like engine.h: for worker threads.
 */
#ifndef BERTH_ENGINE_SWARM_H
#define BERTH_ENGINE_SWARM_H

#include <jansson.h>

#include "engine/engine.h"
#include "util/err.h"

/* The node label that says how much disk a node gives workspaces ("500gb"):
 * placement then holds the hostRequirements.storage of the workspaces pinned
 * there within it. A node without it is not placed on by disk (the Engine
 * API does not report a node's disk). */
#define SWARM_LABEL_STORAGE "berth.storage"

/* 0 when the engine is a manager of an active Swarm; else -ENOTSUP (or the
 * engine's error) with a message that says what to do. */
int swarm_check_manager(struct engine *e, struct berr **reterr);

/* The nodes, by name: an array of {id, name, state, availability, role,
 * leader, address, cpus, memory_bytes, storage_bytes (its SWARM_LABEL_STORAGE,
 * or null), labels, engine_version, tasks (the tasks that run there now)}. */
int swarm_nodes(struct engine *e, json_t **ret, struct berr **reterr);

/* Changes node (an id or a hostname): each key of labels is set to its string
 * or, when null, removed; availability (NULL: unchanged) is "active", "drain"
 * or "pause". -ENOENT for an unknown node, -EINVAL for a bad value (a
 * SWARM_LABEL_STORAGE that is not a size among them). */
int swarm_node_update(struct engine *e, const char *node, json_t *labels, const char *availability,
                      struct berr **reterr);

#endif
