/* runtime.h - where workspaces run: the workspace's verbs, not an engine's.
 *
 * The workspace module makes, starts, stops and finds its containers, volumes
 * and images only through a struct runtime. One host's runtime is the docker
 * runtime (runtime-docker.c), today's Docker Engine API calls behind these
 * ops; a cluster's runtime implements the same ops on its own objects.
 *
 * A workspace's spec names Berth's own mounts by their role, not as host
 * binds: the docker runtime binds each role's source from this host, where
 * another runtime would give the role its own volume. The devcontainer's
 * mounts and options are passed through as the configuration asked (already
 * checked against the server's policy).
 *
 * Every op may block (it waits on the engine): call them from worker threads,
 * never on the event loop. Errors carry the engine's own words.
 */
#ifndef BERTH_RUNTIME_H
#define BERTH_RUNTIME_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/engine.h"
#include "util/err.h"
#include "util/strv.h"

/* The limits every workspace's processes get. */
#define RT_ULIMIT_NOFILE 20000
#define RT_ULIMIT_NPROC 32768
/* The labels on what Berth makes: that it is Berth's, and whose it is. */
#define RT_LABEL_MANAGED "berth.managed"
#define RT_LABEL_ID "berth.workspace"

/* Berth's own mounts of a workspace. */
enum rt_role {
    RT_ROLE_FILES, /* the checkout, read-write */
    RT_ROLE_RUN,   /* berthd's run dir for the workspace: the agent's socket, the IDE's */
    RT_ROLE_AGENT, /* the berth-agent binary, read-only */
    RT_ROLE_IDE,   /* the IDE's tree, read-only */
    RT_ROLE_VSIX,  /* the admin's .vsix files, read-only */
};

struct rt_role_mount {
    enum rt_role role;
    const char *source; /* where this host keeps it (a runtime may use its own) */
    const char *target; /* the path inside the container */
};

/* A mount the configuration asked for. */
enum rt_mount_type { RT_MOUNT_VOLUME, RT_MOUNT_TMPFS, RT_MOUNT_BIND };

struct rt_mount {
    enum rt_mount_type type;
    const char *source; /* volume: its full name; bind: the host path; tmpfs: NULL */
    const char *target;
    bool readonly;
};

struct rt_ws_spec {
    const char *name; /* the container's name, "berth-<id>" */
    const char *image;
    const char *entrypoint;
    const struct strv *cmd; /* the entrypoint's arguments */
    const struct strv *env; /* NAME=value */
    const char *user;
    const char *working_dir;
    const char *hostname;
    int stop_timeout_s;
    json_t *labels; /* object of strings */
    const struct rt_role_mount *roles;
    size_t n_roles;
    /* what the configuration asked for */
    const struct rt_mount *mounts;
    size_t n_mounts;
    bool privileged;
    const struct strv *cap_add, *cap_drop, *security_opt, *devices;
    const char *network; /* NULL: the runtime's default */
    int64_t shm_size;    /* bytes, 0: default */
    int64_t nano_cpus;   /* 0: no limit */
    int64_t memory;      /* bytes, 0: no limit */
    /* hostRequirements: what it needs of its node (a remote runtime places
     * by them and reserves them); 0: nothing asked */
    int64_t need_cpus; /* NanoCPUs */
    int64_t need_memory;
    int64_t need_storage; /* bytes of disk */
    /* a remote runtime's agent listens on TCP (RT_AGENT_PORT) and proves
     * itself with this key (32 bytes; agent-auth.h); NULL on one host */
    const unsigned char *agent_key;
    /* a remote runtime: the node the workspace lives on (its files are
     * there), which a rebuild keeps; NULL: placement picks one */
    const char *node;
    /* a prebuild: rt_ws_commit saves it while it runs; a remote runtime puts
     * it where its engine can commit (the manager's node) */
    bool commit_later;
};

/* Where a remote runtime's agents listen, on the workspace's own network. */
#define RT_AGENT_PORT 7880

/* What inspecting a workspace's container tells. */
struct rt_ws_info {
    char *status; /* "running", "exited", ...; "unavailable": its node is down */
    bool running;
    char *node; /* where it runs, on a cluster; NULL on one host */
};
void rt_ws_info_release(struct rt_ws_info *i);

/* One container a list found. */
struct rt_ws_entry {
    char *id;
    char *ws_id;               /* its RT_LABEL_ID label, or NULL */
    struct strv mount_sources; /* where its mounts come from */
};
void rt_ws_entries_free(struct rt_ws_entry *list, size_t n);

/* Every op gets the runtime's data first. -ENOENT where the named thing does
 * not exist. */
struct runtime_ops {
    /* Creates the workspace's container from spec; *ret_id is its id. */
    int (*ws_create)(void *data, const struct rt_ws_spec *spec, char **ret_id,
                     struct berr **reterr);
    int (*ws_start)(void *data, const char *id, struct berr **reterr);
    /* SIGTERM, then SIGKILL after timeout_s; stopping a stopped one is fine. */
    int (*ws_stop)(void *data, const char *id, int timeout_s, struct berr **reterr);
    /* Removes it (running or not) and its anonymous volumes; id may be the name. */
    int (*ws_remove)(void *data, const char *id, struct berr **reterr);
    int (*ws_inspect)(void *data, const char *id, struct rt_ws_info *ret, struct berr **reterr);
    /* The containers, running or not, that carry the label "key=value". */
    int (*ws_list)(void *data, const char *label, struct rt_ws_entry **ret, size_t *ret_n,
                   struct berr **reterr);
    /* Empties the volumes of a workspace that is being deleted where its
     * node keeps them (NULL on one host, where berthd removes the files
     * itself and the engine the volumes). */
    int (*ws_wipe)(void *data, const char *id, struct berr **reterr);
    /* Makes image repo:tag of what the container's filesystem holds now. */
    int (*ws_commit)(void *data, const char *id, const char *repo, const char *tag,
                     struct berr **reterr);
    int (*volume_create)(void *data, const char *name, json_t *labels, struct berr **reterr);
    int (*volume_remove)(void *data, const char *name, struct berr **reterr);
    /* The names of the volumes that carry the label "key=value", added to ret. */
    int (*volume_list)(void *data, const char *label, struct strv *ret, struct berr **reterr);
    /* *ret is the image's inspect JSON (its "Config": Entrypoint, Cmd, User, Labels). */
    int (*image_inspect)(void *data, const char *image, json_t **ret, struct berr **reterr);
    /* Progress lines go to cb. */
    int (*image_pull)(void *data, const char *image, engine_line_cb cb, void *cb_data,
                      struct berr **reterr);
    /* Builds from a tar of the context; the builder's output goes to cb. */
    int (*image_build)(void *data, const char *context_tar, const struct engine_build *b,
                       engine_line_cb cb, void *cb_data, struct berr **reterr);
    /* Removes an image no container uses. */
    int (*image_remove)(void *data, const char *image, struct berr **reterr);
    /* Adds the host paths no workspace's bind may reach: the runtime's own. */
    void (*host_paths)(void *data, struct strv *ret);
    /* A remote runtime (NULL on one host, whose agents are on the run dir's
     * socket): *ret_host is the address of id's agent, which the relay's
     * unix socket (*ret_relay, a path on this host) connects to. */
    int (*agent_address)(void *data, const char *id, char **ret_host, char **ret_relay,
                         struct berr **reterr);
    void (*free)(void *data);
};

struct runtime {
    const struct runtime_ops *ops;
    void *data;
    bool no_ide; /* its workspaces cannot have VS Code (a Swarm without a registry) */
    /* why it cannot keep prebuilds (a Swarm without a registry); NULL: it can */
    const char *no_prebuilds;
};

/* The runtime of one host's engine, which it borrows (e outlives it). */
struct runtime *runtime_docker_new(struct engine *e);
/* The runtime of a Docker Swarm, through a manager's engine, which it borrows
 * (runtime-swarm.c, docs/cluster.md): a workspace is a one-replica service
 * pinned to a node, with its files in a volume there. cluster_dir (on this
 * host) holds the relay's socket; image is the relay's image; registry
 * (host:port, may be NULL) is where the nodes pull VS Code from
 * (swarm-ide.h). */
struct runtime *runtime_swarm_new(struct engine *manager, const char *cluster_dir,
                                  const char *agent_dir, const char *image, const char *registry);
/* True when workspaces do not run on this host (their files and run dir are
 * not here). */
static inline bool rt_is_remote(const struct runtime *rt)
{
    return rt->ops->agent_address != NULL;
}
struct runtime *runtime_free(struct runtime *rt);
/* For the runtimes (runtime-docker.c): a JSON array of v's strings; the
 * directory of e's socket (newly allocated), which no bind may reach. */
json_t *rt_strv_json(const struct strv *v);
char *rt_socket_dir(struct engine *e);
/* The Docker API ContainerConfig that the docker runtime's ws_create sends
 * for spec (new reference); for tests. */
json_t *runtime_docker_body(const struct rt_ws_spec *spec);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct runtime *, runtime_free)

static inline int rt_ws_create(struct runtime *rt, const struct rt_ws_spec *spec, char **ret_id,
                               struct berr **reterr)
{
    return rt->ops->ws_create(rt->data, spec, ret_id, reterr);
}
static inline int rt_ws_start(struct runtime *rt, const char *id, struct berr **reterr)
{
    return rt->ops->ws_start(rt->data, id, reterr);
}
static inline int rt_ws_stop(struct runtime *rt, const char *id, int timeout_s,
                             struct berr **reterr)
{
    return rt->ops->ws_stop(rt->data, id, timeout_s, reterr);
}
static inline int rt_ws_remove(struct runtime *rt, const char *id, struct berr **reterr)
{
    return rt->ops->ws_remove(rt->data, id, reterr);
}
static inline int rt_ws_inspect(struct runtime *rt, const char *id, struct rt_ws_info *ret,
                                struct berr **reterr)
{
    return rt->ops->ws_inspect(rt->data, id, ret, reterr);
}
static inline int rt_ws_list(struct runtime *rt, const char *label, struct rt_ws_entry **ret,
                             size_t *ret_n, struct berr **reterr)
{
    return rt->ops->ws_list(rt->data, label, ret, ret_n, reterr);
}
static inline int rt_ws_wipe(struct runtime *rt, const char *id, struct berr **reterr)
{
    return rt->ops->ws_wipe ? rt->ops->ws_wipe(rt->data, id, reterr) : 0;
}
static inline int rt_ws_commit(struct runtime *rt, const char *id, const char *repo,
                               const char *tag, struct berr **reterr)
{
    return rt->ops->ws_commit(rt->data, id, repo, tag, reterr);
}
static inline int rt_volume_create(struct runtime *rt, const char *name, json_t *labels,
                                   struct berr **reterr)
{
    return rt->ops->volume_create(rt->data, name, labels, reterr);
}
static inline int rt_volume_remove(struct runtime *rt, const char *name, struct berr **reterr)
{
    return rt->ops->volume_remove(rt->data, name, reterr);
}
static inline int rt_volume_list(struct runtime *rt, const char *label, struct strv *ret,
                                 struct berr **reterr)
{
    return rt->ops->volume_list(rt->data, label, ret, reterr);
}
static inline int rt_image_inspect(struct runtime *rt, const char *image, json_t **ret,
                                   struct berr **reterr)
{
    return rt->ops->image_inspect(rt->data, image, ret, reterr);
}
static inline int rt_image_pull(struct runtime *rt, const char *image, engine_line_cb cb,
                                void *cb_data, struct berr **reterr)
{
    return rt->ops->image_pull(rt->data, image, cb, cb_data, reterr);
}
static inline int rt_image_build(struct runtime *rt, const char *context_tar,
                                 const struct engine_build *b, engine_line_cb cb, void *cb_data,
                                 struct berr **reterr)
{
    return rt->ops->image_build(rt->data, context_tar, b, cb, cb_data, reterr);
}
static inline int rt_image_remove(struct runtime *rt, const char *image, struct berr **reterr)
{
    return rt->ops->image_remove(rt->data, image, reterr);
}
static inline void rt_host_paths(struct runtime *rt, struct strv *ret)
{
    rt->ops->host_paths(rt->data, ret);
}
static inline int rt_agent_address(struct runtime *rt, const char *id, char **ret_host,
                                   char **ret_relay, struct berr **reterr)
{
    return rt->ops->agent_address(rt->data, id, ret_host, ret_relay, reterr);
}

#endif
