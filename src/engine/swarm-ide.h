/* swarm-ide.h - VS Code's tree on the nodes of a Swarm (docs/cluster.md).
 *
 * The code-server tree (hundreds of MB) is far too big for a Swarm config,
 * so it travels as an image through a registry the nodes pull from:
 * - once per tree, berthd builds REGISTRY/berth/ide:<hash of its
 *   launcher and package.json> FROM scratch on the manager and pushes it
 *   (each berthd pushes again, and the nodes pull by the digest that push
 *   gave: a tag someone else pushed to the registry is never used);
 * - once per node (and per berthd run: a node that has it answers at once),
 *   a one-task job of that image, pinned to the node, mounts the empty
 *   volume berth-ide-<hash>: Docker copies the image's files into it, and the
 *   job checks that the tree is whole (berth-agent check-tree, against the
 *   image's count of its files and bytes); a copy cut short is emptied by
 *   the check and filled again by one more job;
 * - each workspace on the node mounts that volume read-only where one host
 *   bind-mounts the tree.
 *
 * The calls block (engine requests, the build, the job's wait): worker
 * threads only. */
#ifndef BERTH_SWARM_IDE_H
#define BERTH_SWARM_IDE_H

#include "engine/engine.h"
#include "util/err.h"

struct swarm_ide;

/* NULL when ide_dir holds no code-server tree. work_dir:
 * berthd's own scratch space for the build context. */
struct swarm_ide *swarm_ide_new(struct engine *manager, const char *registry, const char *ide_dir,
                                const char *work_dir);
void swarm_ide_free(struct swarm_ide *i);

/* The name of the volume that holds the tree on a node once filled there. */
const char *swarm_ide_volume(const struct swarm_ide *i);

/* Builds the image on the manager if it is not there and pushes it, once
 * per berthd; the nodes then pull it by the digest the registry gave. */
int swarm_ide_push(struct swarm_ide *i, struct berr **reterr);

/* Makes sure node_id has the tree in its volume (after swarm_ide_push, or
 * doing it). The job gets berth-agent from the Swarm config
 * cfg_id/cfg_name. */
int swarm_ide_fill(struct swarm_ide *i, const char *node_id, const char *cfg_id,
                   const char *cfg_name, struct berr **reterr);

#endif
