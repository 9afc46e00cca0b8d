/* runtime-swarm.c - the workspace runtime of a Docker Swarm (docs/cluster.md).
 *
 * A workspace <id> is:
 * - a service berth-<id>: one replica at most (made with 1, so that its task
 *   is scheduled at once; stop is 0 replicas, start 1),
 *   pinned by node.id to the node placement chose at create, endpoint mode
 *   dnsrr (no IPVS), restart-condition any (none for a prebuild, whose
 *   restarted task would have lost what onCreateCommand wrote outside the
 *   checkout), berth-agent as its command with its TCP listener on;
 * - a volume berth-<id>-files on that node at the checkout's path (Swarm makes
 *   it when the first task starts; it stays on the node, so a new task there
 *   has the same files), and the configuration's named volumes likewise;
 * - a secret berth-<id>-agent: the agent's key, given to this service only;
 * - an attachable overlay of its own holding the workspace and the relay, one
 *   made and joined ahead or berth-ws-<id> (swarm-net.h), named by the
 *   service's label berth.net.
 *
 * The relay is one more berth-agent, in a container on the manager with the cluster dir's
 * relay/ bound in (swarm-net.c): berthd connects to its unix socket and asks it for
 * TCP_CONNECT with PASS_FD to the task's address on the overlay (agent_address gives both),
 * then runs the handshake itself.
 *
 * - the agent binary as a Swarm config berth-agent-<hash> (at
 *   /.berth-agent/berth-agent, 0555): Swarm carries it to every node, with no
 *   host path and no registry.
 *
 * - with a registry (--registry): images berthd builds (on the manager's
 *   engine) are pushed there for the nodes; VS Code's tree comes the same
 *   way into a volume on each node (swarm-ide.h).
 *
 * - a prebuild runs on the manager's node, whose engine commits its task's
 *   container; the image goes to the registry like a built one.
 *
 * What is not here yet (the create says so rather than half-do it): devices,
 * privileged, binds and host networks.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>

#include "engine/runtime.h"
#include "engine/swarm-ide.h"
#include "engine/swarm-job.h"
#include "engine/swarm-net.h"
#include "engine/swarm.h"
#include "util/buf.h"
#include "util/fs.h"
#include "util/size.h"
#include "util/strv.h"
#include "util/xalloc.h"

#define SERVICE_PREFIX "berth-"
#define SECRET_FILE "berth-agent"
#define NODE_LABEL_WORKSPACES "berth.workspaces"
/* a workspace service's hostRequirements.storage, in bytes */
#define SERVICE_LABEL_STORAGE "berth.reserve.storage"
#define NO_PREBUILDS                                                                               \
    "prebuilds on a Swarm cluster need berthd --registry HOST:PORT: the nodes pull a prebuild's "  \
    "image from it"

struct swarm_rt {
    struct engine *e; /* borrowed */
    pthread_mutex_t place_lock;
    pthread_mutex_t config_lock;
    char *agent_config_id; /* the Swarm config that carries berth-agent, once made */
    char *agent_config_name;
    struct swarm_net *net; /* the overlays and the relay */
    char *cluster_dir;
    char *agent_dir;
    char *registry;        /* where the nodes pull VS Code from; NULL: no IDE */
    struct swarm_ide *ide; /* once a workspace asked for the IDE (config_lock) */
};

/* The workspace id in a service name "berth-<id>", or in id itself. */
static const char *ws_id_of(const char *name)
{
    return strncmp(name, SERVICE_PREFIX, strlen(SERVICE_PREFIX)) == 0
               ? name + strlen(SERVICE_PREFIX)
               : name;
}

/* ---- placement ---- */

/* What the Berth workspaces pinned to a node hold there: services running
 * or not (their files are there, and a start must find its room again). */
struct node_load {
    long count;
    int64_t cpus, memory, storage; /* reserved: NanoCPUs, bytes, bytes */
};

static struct node_load load_of(json_t *services, const char *id)
{
    struct node_load l = {0};
    size_t i, k;
    json_t *svc, *c;
    json_array_foreach (services, i, svc) {
        json_t *tt = json_object_get(json_object_get(svc, "Spec"), "TaskTemplate");
        json_t *cs = json_object_get(json_object_get(tt, "Placement"), "Constraints");
        json_t *res = json_object_get(json_object_get(tt, "Resources"), "Reservations");
        json_array_foreach (cs, k, c) {
            const char *v = json_string_value(c);
            if (v && strncmp(v, "node.id==", 9) == 0 && strcmp(v + 9, id) == 0) {
                l.count++;
                l.cpus += json_integer_value(json_object_get(res, "NanoCPUs"));
                l.memory += json_integer_value(json_object_get(res, "MemoryBytes"));
                const char *st = json_string_value(
                    json_object_get(json_object_get(json_object_get(svc, "Spec"), "Labels"),
                                    SERVICE_LABEL_STORAGE));
                int64_t bytes = st ? size_parse(st) : 0;
                if (bytes > 0) /* at most 10^18 each: the sum saturates */
                    l.storage = l.storage > INT64_MAX - bytes ? INT64_MAX : l.storage + bytes;
            }
        }
    }
    return l;
}

/* Whether an admin left node n to workspaces: the label berth.workspaces=no
 * keeps them off a node that stays active (the manager, whose relay must
 * join each workspace's overlay). */
static bool takes_workspaces(json_t *n)
{
    const char *v = json_string_value(json_object_get(
        json_object_get(json_object_get(n, "Spec"), "Labels"), NODE_LABEL_WORKSPACES));
    return !v || (strcmp(v, "no") != 0 && strcmp(v, "false") != 0);
}

static const char *hostname_of(const json_t *n)
{
    const char *h =
        json_string_value(json_object_get(json_object_get(n, "Description"), "Hostname"));
    return h ? h : "";
}

static double gib(int64_t bytes)
{
    return (double)bytes / (1024.0 * 1024 * 1024);
}

/* The disk node n gives workspaces (its label SWARM_LABEL_STORAGE), or -1
 * when it does not say; a label that is not a size (set past berth, with
 * docker node update) gives none, and *ret_bad names it. */
static int64_t storage_of(json_t *n, const char **ret_bad)
{
    const char *v = json_string_value(json_object_get(
        json_object_get(json_object_get(n, "Spec"), "Labels"), SWARM_LABEL_STORAGE));
    *ret_bad = NULL;
    if (!v)
        return -1;
    int64_t bytes = size_parse(v);
    if (bytes < 0)
        *ret_bad = v;
    return bytes < 0 ? 0 : bytes;
}

/* Whether the workspace's reservation (hostRequirements' cpus and memory,
 * and its storage on a node that says how much disk it has) fits in what
 * node n has unreserved; if not, says so into why. *ret_free: the memory
 * left unreserved. */
static bool fits(json_t *n, const struct node_load *l, const struct rt_ws_spec *sp,
                 int64_t *ret_free, struct buf *why)
{
    json_t *res = json_object_get(json_object_get(n, "Description"), "Resources");
    int64_t cpus = json_integer_value(json_object_get(res, "NanoCPUs")) - l->cpus;
    int64_t mem = json_integer_value(json_object_get(res, "MemoryBytes")) - l->memory;
    const char *bad;
    int64_t disk = storage_of(n, &bad);
    if (disk >= 0)
        disk = disk > l->storage ? disk - l->storage : 0;
    *ret_free = mem;
    if (sp->need_cpus <= cpus && sp->need_memory <= mem && (disk < 0 || sp->need_storage <= disk))
        return true;
    buf_addf(why, "%s%s has %.2g CPUs and %.1f GiB unreserved", why->len ? "; " : "",
             hostname_of(n), (double)(cpus > 0 ? cpus : 0) / 1e9, gib(mem > 0 ? mem : 0));
    if (bad)
        buf_addf(why, ", and no disk: its " SWARM_LABEL_STORAGE " '%s' is not a size", bad);
    else if (disk >= 0)
        buf_addf(why, ", and %.1f GiB of disk (" SWARM_LABEL_STORAGE ")", gib(disk));
    return false;
}

/* What sp reserves, only what it asks: "2 CPUs, 1.0 GiB of memory and
 * 64.0 GiB of disk". */
static char *needs_text(const struct rt_ws_spec *sp)
{
    _cleanup_strv_ struct strv parts = STRV_INIT;
    if (sp->need_cpus)
        strv_push_owned(&parts, xasprintf("%.2g CPUs", (double)sp->need_cpus / 1e9));
    if (sp->need_memory)
        strv_push_owned(&parts, xasprintf("%.1f GiB of memory", gib(sp->need_memory)));
    if (sp->need_storage)
        strv_push_owned(&parts, xasprintf("%.1f GiB of disk", gib(sp->need_storage)));
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < parts.n; i++)
        buf_addf(&b, "%s%s", i == 0 ? "" : i + 1 == parts.n ? " and " : ", ", parts.v[i]);
    return b.len ? buf_detach(&b, NULL) : xstrdup("reservation");
}

static int hostname_cmp(const void *pa, const void *pb)
{
    const json_t *a = *(json_t *const *)pa, *b = *(json_t *const *)pb;
    int c = strcmp(hostname_of(a), hostname_of(b));
    const char *ia = json_string_value(json_object_get(a, "ID"));
    const char *ib = json_string_value(json_object_get(b, "ID"));
    return c ? c : strcmp(ia ? ia : "", ib ? ib : "");
}

/* The engine's node list in hostname order: placement's ties and its
 * refusal read the same on every call. */
static json_t *by_hostname(json_t *nodes)
{
    size_t count = json_array_size(nodes);
    json_t **v = xcalloc(count ? count : 1, sizeof(*v));
    for (size_t i = 0; i < count; i++)
        v[i] = json_array_get(nodes, i);
    qsort(v, count, sizeof(*v), hostname_cmp);
    json_t *out = json_array();
    for (size_t i = 0; i < count; i++)
        json_array_append(out, v[i]);
    free(v);
    return out;
}

/* The node for a new workspace: ready, active, not labelled
 * berth.workspaces=no, with room for its reservation; then the fewest Berth
 * workspaces pinned there, then the most memory unreserved. The caller holds
 * s->place_lock until the service exists, so that creates at once see each
 * other. */
static int place(struct swarm_rt *s, const struct rt_ws_spec *sp, char **ret_node,
                 struct berr **reterr)
{
    _cleanup_(json_decrefp) json_t *listed = NULL;
    int r = engine_call(s->e, "GET", "/nodes", NULL, &listed, "list the Swarm's nodes", reterr);
    if (r < 0)
        return r;
    _cleanup_(json_decrefp) json_t *nodes = by_hostname(listed);
    _cleanup_free_ char *spath = engine_filter_path("/services", "label", RT_LABEL_MANAGED "=1");
    _cleanup_(json_decrefp) json_t *services = NULL;
    r = engine_call(s->e, "GET", spath, NULL, &services, "list the workspaces' services", reterr);
    if (r < 0)
        return r;
    const char *best = NULL;
    long best_n = 0;
    int64_t best_mem = 0;
    _cleanup_buf_ struct buf why = BUF_INIT;
    size_t i;
    json_t *n;
    json_array_foreach (nodes, i, n) {
        const char *id = json_string_value(json_object_get(n, "ID"));
        const char *state =
            json_string_value(json_object_get(json_object_get(n, "Status"), "State"));
        const char *avail =
            json_string_value(json_object_get(json_object_get(n, "Spec"), "Availability"));
        if (!id || !state || strcmp(state, "ready") != 0 || !avail ||
            strcmp(avail, "active") != 0 || !takes_workspaces(n))
            continue;
        struct node_load l = load_of(services, id);
        int64_t mem;
        if (!fits(n, &l, sp, &mem, &why))
            continue;
        if (!best || l.count < best_n || (l.count == best_n && mem > best_mem)) {
            best = id;
            best_n = l.count;
            best_mem = mem;
        }
    }
    if (!best && why.len) {
        _cleanup_free_ char *need = needs_text(sp);
        return berr_make(reterr, EAGAIN,
                         "no node of the Swarm has room for this workspace's %s "
                         "(hostRequirements, reserved for it on its node): %s",
                         need, why.buf);
    }
    if (!best)
        return berr_make(reterr, EAGAIN,
                         "no node of the Swarm takes workspaces now (none is ready, active and "
                         "without the label " NODE_LABEL_WORKSPACES "=no: 'berth admin nodes' "
                         "shows them)");
    *ret_node = xstrdup(best);
    return 0;
}

/* The id of the workspace's own node sp->node (its files are there), which
 * must be ready, active and have room: a rebuild stays where the files are. */
static int node_keep(struct swarm_rt *s, const struct rt_ws_spec *sp, char **ret_node,
                     struct berr **reterr)
{
    const char *name = sp->node;
    _cleanup_free_ char *path = xasprintf("/nodes/%s", name);
    _cleanup_(json_decrefp) json_t *node = NULL;
    int r = engine_call(s->e, "GET", path, NULL, &node, "read the workspace's node", reterr);
    if (r < 0)
        return berr_wrap(reterr, "the workspace's files are on node %s", name);
    const char *id = json_string_value(json_object_get(node, "ID"));
    const char *state =
        json_string_value(json_object_get(json_object_get(node, "Status"), "State"));
    if (!id || !state || strcmp(state, "ready") != 0)
        return berr_make(reterr, EAGAIN,
                         "the workspace's node %s is %s: its files are there, so it is made "
                         "there again once the node is back",
                         name, state ? state : "unknown");
    const char *avail =
        json_string_value(json_object_get(json_object_get(node, "Spec"), "Availability"));
    if (avail && strcmp(avail, "active") != 0)
        return berr_make(reterr, EAGAIN,
                         "the workspace's node %s is %sd: it takes no new container, and the "
                         "workspace's files are there ('berth admin node activate %s')",
                         name, avail, name);
    /* its hostRequirements may have grown */
    _cleanup_free_ char *spath = engine_filter_path("/services", "label", RT_LABEL_MANAGED "=1");
    _cleanup_(json_decrefp) json_t *services = NULL;
    r = engine_call(s->e, "GET", spath, NULL, &services, "list the workspaces' services", reterr);
    if (r < 0)
        return r;
    struct node_load l = load_of(services, id);
    int64_t mem;
    _cleanup_buf_ struct buf why = BUF_INIT;
    if (!fits(node, &l, sp, &mem, &why)) {
        _cleanup_free_ char *need = needs_text(sp);
        return berr_make(reterr, EAGAIN,
                         "the workspace's node has no room for its %s (hostRequirements; its "
                         "files are there): %s",
                         need, why.buf);
    }
    *ret_node = xstrdup(id);
    return 0;
}

/* ---- the relay ---- */

/* The id of the node whose engine berthd talks to (the manager's). */
static int manager_node(struct swarm_rt *s, char **ret, struct berr **reterr)
{
    _cleanup_(json_decrefp) json_t *info = NULL;
    int r = engine_call(s->e, "GET", "/info", NULL, &info, "read the manager", reterr);
    if (r < 0)
        return r;
    const char *self = json_string_value(json_object_get(json_object_get(info, "Swarm"), "NodeID"));
    if (!self || !*self)
        return berr_make(reterr, EIO, "the engine berthd talks to is not a Swarm node");
    *ret = xstrdup(self);
    return 0;
}

/* Before anything is made: the relay runs on the manager's node, and Swarm
 * attaches no network there while that node is paused or drained (it waits
 * 20 s and fails); and some node must take the workspace. */
static int can_create(struct swarm_rt *s, const struct rt_ws_spec *sp, struct berr **reterr)
{
    _cleanup_free_ char *self = NULL;
    int r = manager_node(s, &self, reterr);
    if (r < 0)
        return r;
    _cleanup_free_ char *path = xasprintf("/nodes/%s", self);
    _cleanup_(json_decrefp) json_t *node = NULL;
    r = engine_call(s->e, "GET", path, NULL, &node, "read the manager's node", reterr);
    if (r < 0)
        return r;
    const char *avail =
        json_string_value(json_object_get(json_object_get(node, "Spec"), "Availability"));
    const char *host =
        json_string_value(json_object_get(json_object_get(node, "Description"), "Hostname"));
    if (avail && strcmp(avail, "active") != 0)
        return berr_make(reterr, EAGAIN,
                         "the manager's node %s is %sd, and Swarm joins Berth's relay there to no "
                         "workspace's network until it is active again ('berth admin node "
                         "activate %s'); to keep workspaces off it, label it " NODE_LABEL_WORKSPACES
                         "=no instead",
                         host ? host : self, avail, host ? host : self);
    _cleanup_free_ char *any = NULL;
    return sp->node ? node_keep(s, sp, &any, reterr) : place(s, sp, &any, reterr);
}

/* GET /services/{id}: the service's JSON into *ret. */
static int service_get(struct swarm_rt *s, const char *id, json_t **ret, struct berr **reterr)
{
    _cleanup_free_ char *path = xasprintf("/services/%s", id);
    return engine_call(s->e, "GET", path, NULL, ret, "read the service", reterr);
}

/* ---- the agent binary, as a Swarm config ---- */

/* Swarm keeps configs in its Raft store and gives each task its own on its
 * node: berth-agent reaches every node that way, with no host path and no
 * registry. The config is named by the binary's hash, so a running
 * workspace keeps the agent it started with when berthd is upgraded. */
#define SWARM_CONFIG_MAX (500 * 1024)

static int agent_config(struct swarm_rt *s, char **ret_id, char **ret_name, struct berr **reterr)
{
    pthread_mutex_lock(&s->config_lock);
    int r = 0;
    if (!s->agent_config_id) {
        _cleanup_free_ char *path = xasprintf("%s/berth-agent", s->agent_dir);
        _cleanup_buf_ struct buf bin = BUF_INIT;
        r = read_file(path, SWARM_CONFIG_MAX, &bin);
        if (r < 0) {
            r = berr_make(reterr, -r, "cannot read the agent '%s' for the cluster: %s%s", path,
                          strerror(-r),
                          r == -EFBIG ? " (a Swarm config holds 500 kB at most)" : "");
            goto out;
        }
        unsigned char h[crypto_hash_sha256_BYTES];
        crypto_hash_sha256(h, (const unsigned char *)bin.buf, bin.len);
        char hex[2 * sizeof(h) + 1];
        sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
        _cleanup_free_ char *name = xasprintf("berth-agent-%.16s", hex);
        _cleanup_free_ char *cpath = xasprintf("/configs/%s", name);
        _cleanup_(json_decrefp) json_t *have = NULL;
        if (engine_call(s->e, "GET", cpath, NULL, &have, "read the agent's config", NULL) < 0) {
            size_t b64len = sodium_base64_ENCODED_LEN(bin.len, sodium_base64_VARIANT_ORIGINAL);
            _cleanup_free_ char *b64 = xmalloc(b64len);
            sodium_bin2base64(b64, b64len, (const unsigned char *)bin.buf, bin.len,
                              sodium_base64_VARIANT_ORIGINAL);
            json_t *body = json_pack("{s:s, s:s, s:{s:s}}", "Name", name, "Data", b64, "Labels",
                                     RT_LABEL_MANAGED, "1");
            struct berr *ce = NULL;
            r = engine_call(s->e, "POST", "/configs/create", body, &have,
                            "create the agent's config", &ce);
            json_decref(body);
            if (r == -EBUSY) /* another create made it meanwhile */
                r = engine_call(s->e, "GET", cpath, NULL, &have, "read the agent's config", NULL);
            if (r < 0) {
                if (reterr)
                    *reterr = ce;
                else
                    berr_free(ce);
                goto out;
            }
            berr_free(ce);
        }
        const char *id = json_string_value(json_object_get(have, "ID"));
        if (!id) {
            r = berr_make(reterr, EIO, "the engine did not say the agent config's id");
            goto out;
        }
        s->agent_config_id = xstrdup(id);
        s->agent_config_name = TAKE_PTR(name);
    }
    *ret_id = xstrdup(s->agent_config_id);
    *ret_name = xstrdup(s->agent_config_name);
out:
    pthread_mutex_unlock(&s->config_lock);
    return r;
}

/* The IDE's distribution when sp asks for the IDE and the nodes have a
 * registry to pull it from; else NULL (the workspace has no VS Code). */
static struct swarm_ide *ide_for(struct swarm_rt *s, const struct rt_ws_spec *sp)
{
    const char *tree = NULL;
    for (size_t i = 0; i < sp->n_roles; i++)
        if (sp->roles[i].role == RT_ROLE_IDE)
            tree = sp->roles[i].source;
    if (!s->registry || !tree)
        return NULL;
    pthread_mutex_lock(&s->config_lock);
    if (!s->ide)
        s->ide = swarm_ide_new(s->e, s->registry, tree, s->cluster_dir);
    struct swarm_ide *ide = s->ide;
    pthread_mutex_unlock(&s->config_lock);
    return ide;
}

/* ---- the service ---- */

static int refuse_unsupported(const struct rt_ws_spec *sp, struct berr **reterr)
{
    const char *what = sp->privileged                  ? "privileged"
                       : sp->devices && sp->devices->n ? "devices"
                       : sp->network                   ? "a network of the configuration's"
                       : sp->security_opt && sp->security_opt->n ? "securityOpt"
                                                                 : NULL;
    for (size_t i = 0; !what && i < sp->n_mounts; i++)
        if (sp->mounts[i].type == RT_MOUNT_BIND)
            what = "a bind mount";
    if (what)
        return berr_make(reterr, ENOTSUP,
                         "%s is not available for workspaces on a Swarm cluster yet "
                         "(docs/cluster.md)",
                         what);
    if (!sp->agent_key)
        return berr_make(reterr, EINVAL, "a workspace on a Swarm needs its agent's key");
    return 0;
}

/* The mounts: the files volume at the checkout, the configuration's volumes
 * and tmpfs (the agent comes as a config: service_spec). The run dir, the
 * IDE and the .vsix files are on this host only. */
static json_t *service_mounts(struct swarm_rt *s, const struct rt_ws_spec *sp, const char *id)
{
    json_t *mounts = json_array();
    for (size_t i = 0; i < sp->n_roles; i++) {
        const struct rt_role_mount *rm = &sp->roles[i];
        if (rm->role == RT_ROLE_FILES)
            json_array_append_new(mounts,
                                  json_pack("{s:s, s:o, s:s, s:{s:{s:s, s:s}}}", "Type", "volume",
                                            "Source", json_sprintf("berth-%s-files", id), "Target",
                                            rm->target, "VolumeOptions", "Labels", RT_LABEL_MANAGED,
                                            "1", RT_LABEL_ID, id));
        /* the node's copy of the tree, which swarm_ide_fill made */
        struct swarm_ide *ide = rm->role == RT_ROLE_IDE ? ide_for(s, sp) : NULL;
        if (ide)
            json_array_append_new(mounts,
                                  json_pack("{s:s, s:s, s:s, s:b, s:{s:b}}", "Type", "volume",
                                            "Source", swarm_ide_volume(ide), "Target", rm->target,
                                            "ReadOnly", 1, "VolumeOptions", "NoCopy", 1));
    }
    for (size_t i = 0; i < sp->n_mounts; i++) {
        const struct rt_mount *mt = &sp->mounts[i];
        json_t *jm =
            json_pack("{s:s, s:s, s:b}", "Type", mt->type == RT_MOUNT_TMPFS ? "tmpfs" : "volume",
                      "Target", mt->target, "ReadOnly", mt->readonly);
        if (mt->source && mt->type == RT_MOUNT_VOLUME)
            json_object_set_new(jm, "Source", json_string(mt->source));
        json_array_append_new(mounts, jm);
    }
    return mounts;
}

static json_t *run_label(const struct rt_ws_spec *sp)
{
    for (size_t i = 0; i < sp->n_roles; i++)
        if (sp->roles[i].role == RT_ROLE_RUN)
            return json_string(sp->roles[i].source);
    return json_string("");
}

static json_t *service_spec(struct swarm_rt *s, const struct rt_ws_spec *sp, const char *id,
                            const char *node, const char *net_id, const char *secret_id,
                            const char *cfg_id, const char *cfg_name)
{
    /* the unix socket too, as on one host (the run dir is not there: /run) */
    json_t *args =
        json_pack("[s, s, s, s, s, s, s, s]", "--socket", "/run/berth-agent.sock", "--tcp",
                  "0.0.0.0:7880", "--key", "/run/secrets/" SECRET_FILE, "--id", id);
    for (size_t i = 0; sp->cmd && i < sp->cmd->n; i++)
        json_array_append_new(args, json_string(sp->cmd->v[i]));
    json_t *labels = json_deep_copy(sp->labels);
    /* reconcile tells this data dir's workspaces by their run dir */
    json_object_set_new(labels, "berth.run", run_label(sp));
    if (sp->need_storage)
        json_object_set_new(labels, SERVICE_LABEL_STORAGE,
                            json_sprintf("%lld", (long long)sp->need_storage));
    json_t *container = json_pack(
        "{s:s, s:O, s:[s], s:o, s:o, s:s, s:s, s:s, s:o, s:b, s:I, s:[{s:{s:s, s:s, s:s, s:i}, "
        "s:s, s:s}], s:[{s:s, s:i, s:i}, {s:s, s:i, s:i}]}",
        "Image", sp->image, "Labels", labels, "Command", sp->entrypoint, "Args", args, "Env",
        rt_strv_json(sp->env), "User", sp->user, "Dir", sp->working_dir ? sp->working_dir : "/",
        "Hostname", sp->hostname, "Mounts", service_mounts(s, sp, id), "Init", 0, "StopGracePeriod",
        (json_int_t)sp->stop_timeout_s * 1000000000, "Secrets", "File", "Name", SECRET_FILE, "UID",
        "0", "GID", "0", "Mode", 0400, "SecretID", secret_id, "SecretName",
        json_string_value(json_object_get(labels, "berth.secret")), "Ulimits", "Name", "nofile",
        "Soft", RT_ULIMIT_NOFILE, "Hard", RT_ULIMIT_NOFILE, "Name", "nproc", "Soft",
        RT_ULIMIT_NPROC, "Hard", RT_ULIMIT_NPROC);
    /* the agent, where the agent role's mount would be on one host */
    for (size_t i = 0; i < sp->n_roles; i++)
        if (sp->roles[i].role == RT_ROLE_AGENT) {
            _cleanup_free_ char *target = xasprintf("%s/berth-agent", sp->roles[i].target);
            json_object_set_new(container, "Configs",
                                swarm_agent_configs(target, cfg_id, cfg_name));
        }
    if (sp->cap_add && sp->cap_add->n)
        json_object_set_new(container, "CapabilityAdd", rt_strv_json(sp->cap_add));
    if (sp->cap_drop && sp->cap_drop->n)
        json_object_set_new(container, "CapabilityDrop", rt_strv_json(sp->cap_drop));
    json_t *limits = json_object();
    if (sp->nano_cpus)
        json_object_set_new(limits, "NanoCPUs", json_integer(sp->nano_cpus));
    if (sp->memory)
        json_object_set_new(limits, "MemoryBytes", json_integer(sp->memory));
    json_t *reserve = json_object();
    if (sp->need_cpus)
        json_object_set_new(reserve, "NanoCPUs", json_integer(sp->need_cpus));
    if (sp->need_memory)
        json_object_set_new(reserve, "MemoryBytes", json_integer(sp->need_memory));
    json_t *spec = json_pack(
        "{s:s, s:o, s:{s:o, s:{s:o, s:o}, s:{s:s, s:I}, s:{s:[o]}, s:[{s:s}]}, s:{s:{s:i}}, "
        "s:{s:s}}",
        "Name", sp->name, "Labels", labels, "TaskTemplate", "ContainerSpec", container, "Resources",
        "Limits", limits, "Reservations", reserve, "RestartPolicy", "Condition",
        sp->commit_later ? "none" : "any", "Delay", (json_int_t)1000000000, "Placement",
        "Constraints", json_sprintf("node.id==%s", node), "Networks", "Target", net_id, "Mode",
        "Replicated", "Replicas", 1, "EndpointSpec", "Mode", "dnsrr");
    return spec;
}

/* The name the nodes pull image by: one that berthd built (build.c's
 * localhost/berth/build-* and features-*, or a prebuild's commit, on the
 * manager only) is tagged
 * into the registry and pushed (layers the registry has are not sent
 * again), and named by the digest the push gave; any other is the nodes'
 * own or a registry's already. */
static int image_for_nodes(struct swarm_rt *s, const char *image, char **ret, struct berr **reterr)
{
    static const char *const built[] = {"localhost/berth/build-", "localhost/berth/features-",
                                        "localhost/berth/prebuild-"};
    bool ours = false;
    for (size_t i = 0; i < ELEMENTSOF(built); i++)
        ours = ours || strncmp(image, built[i], strlen(built[i])) == 0;
    if (!ours || !s->registry) {
        *ret = xstrdup(image);
        return 0;
    }
    const char *rest = image + strlen("localhost/");
    const char *colon = strrchr(rest, ':');
    _cleanup_free_ char *repo =
        xasprintf("%s/%.*s", s->registry, (int)(colon ? colon - rest : (long)strlen(rest)), rest);
    const char *tag = colon ? colon + 1 : "latest";
    _cleanup_free_ char *digest = NULL;
    int r = engine_image_tag(s->e, image, repo, tag, reterr);
    if (r == 0)
        r = engine_image_push(s->e, repo, tag, &digest, reterr);
    if (r < 0)
        return berr_wrap(reterr, "give the nodes the image built for the workspace");
    /* by digest: what this push stored, whatever the tag says later */
    *ret = xasprintf("%s@%s", repo, digest);
    return 0;
}

static int create_parts(struct swarm_rt *s, const struct rt_ws_spec *sp, const char *id,
                        char **ret_id, struct berr **reterr);
static int place_and_create(struct swarm_rt *s, const struct rt_ws_spec *sp, const char *id,
                            const char *net, const char *net_id, const char *secret,
                            const char *secret_id, char **ret_node, char **ret_id,
                            struct berr **reterr);

static int swarm_ws_create(void *data, const struct rt_ws_spec *sp, char **ret_id,
                           struct berr **reterr)
{
    struct swarm_rt *s = data;
    int r = refuse_unsupported(sp, reterr);
    if (r < 0)
        return r;
    const char *id = json_string_value(json_object_get(sp->labels, RT_LABEL_ID));
    if (!id)
        return berr_make(reterr, EINVAL, "a workspace's spec carries its id");
    struct rt_ws_spec copy = *sp;
    _cleanup_free_ char *self = NULL;
    if (sp->commit_later) {
        /* a prebuild: the manager's engine commits it, so it runs there
         * (whatever its label says), and the nodes get its image from the
         * registry */
        if (!s->registry)
            return berr_make(reterr, ENOTSUP, "%s", NO_PREBUILDS);
        r = manager_node(s, &self, reterr);
        if (r < 0)
            return r;
        copy.node = self;
    }
    r = can_create(s, &copy, reterr);
    if (r < 0)
        return r;
    /* what can take long goes before the placement lock */
    _cleanup_free_ char *image = NULL;
    r = image_for_nodes(s, sp->image, &image, reterr);
    struct swarm_ide *ide = ide_for(s, sp);
    if (r == 0 && ide)
        r = swarm_ide_push(ide, reterr);
    if (r < 0)
        return r;
    copy.image = image;
    return create_parts(s, &copy, id, ret_id, reterr);
}

static int create_parts(struct swarm_rt *s, const struct rt_ws_spec *sp, const char *id,
                        char **ret_id, struct berr **reterr)
{
    /* the overlay: one the relay joined ahead, or one made now */
    _cleanup_free_ char *net = NULL, *net_id = NULL;
    bool joined = false;
    int r = swarm_net_take(s->net, id, &net, &net_id, &joined, reterr);
    if (r < 0)
        return r;
    /* the key, as a secret of this service's alone */
    _cleanup_free_ char *secret = xasprintf("berth-%s-agent", id);
    char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(b64, sizeof(b64), sp->agent_key, 32, sodium_base64_VARIANT_ORIGINAL);
    /* a secret left by a create cut short holds an older key */
    _cleanup_free_ char *spath = xasprintf("/secrets/%s", secret);
    (void)engine_call(s->e, "DELETE", spath, NULL, NULL, "remove the old secret", NULL);
    json_t *sbody = json_pack("{s:s, s:s, s:{s:s, s:s}}", "Name", secret, "Data", b64, "Labels",
                              RT_LABEL_MANAGED, "1", RT_LABEL_ID, id);
    _cleanup_(json_decrefp) json_t *sans = NULL;
    r = engine_call(s->e, "POST", "/secrets/create", sbody, &sans, "create the agent's secret",
                    reterr);
    json_decref(sbody);
    /* placement and the service under one lock: creates at once see each
     * other's services */
    _cleanup_free_ char *node = NULL;
    if (r == 0) {
        pthread_mutex_lock(&s->place_lock);
        r = place_and_create(s, sp, id, net, net_id, secret,
                             json_string_value(json_object_get(sans, "ID")), &node, ret_id, reterr);
        pthread_mutex_unlock(&s->place_lock);
    }
    if (r < 0) {
        /* the overlay is not used again, even if it looks unused: a create
         * that the engine did not answer may have made its service */
        _cleanup_free_ char *path = xasprintf("/services/%s", sp->name);
        (void)engine_call(s->e, "DELETE", path, NULL, NULL, "remove the service", NULL);
        swarm_net_remove(s->net, net);
        return r;
    }
    /* the relay joins a new overlay while Swarm starts the task (each takes
     * about half a second) */
    if (!joined)
        r = swarm_net_join(s->net, net_id, reterr);
    /* VS Code into its volume on the node, once per node: the task mounts the
     * volume now and sees the files when the job has copied them in */
    struct swarm_ide *ide = ide_for(s, sp);
    _cleanup_free_ char *cfg_id = NULL, *cfg_name = NULL;
    if (r == 0 && ide)
        r = agent_config(s, &cfg_id, &cfg_name, reterr);
    if (ide && r == 0)
        r = swarm_ide_fill(ide, node, cfg_id, cfg_name, reterr);
    if (r < 0) {
        /* nothing half made: the service goes, and its overlay once its task
         * left (its secret with rm) */
        _cleanup_free_ char *path = xasprintf("/services/%s", *ret_id);
        (void)engine_call(s->e, "DELETE", path, NULL, NULL, "remove the service", NULL);
        swarm_net_remove(s->net, net);
        free(*ret_id);
        *ret_id = NULL;
    }
    return r;
}

static int place_and_create(struct swarm_rt *s, const struct rt_ws_spec *sp, const char *id,
                            const char *net, const char *net_id, const char *secret,
                            const char *secret_id, char **ret_node, char **ret_id,
                            struct berr **reterr)
{
    _cleanup_free_ char *node = NULL;
    int r = sp->node ? node_keep(s, sp, &node, reterr) : place(s, sp, &node, reterr);
    if (r < 0)
        return r;
    json_t *labels = json_deep_copy(sp->labels);
    json_object_set_new(labels, "berth.secret", json_string(secret));
    json_object_set_new(labels, SWARM_NET_LABEL, json_string(net));
    struct rt_ws_spec copy = *sp;
    copy.labels = labels;
    _cleanup_free_ char *cfg_id = NULL, *cfg_name = NULL;
    r = agent_config(s, &cfg_id, &cfg_name, reterr);
    if (r < 0) {
        json_decref(labels);
        return r;
    }
    json_t *spec = service_spec(s, &copy, id, node, net_id, secret_id, cfg_id, cfg_name);
    json_decref(labels);
    _cleanup_(json_decrefp) json_t *ans = NULL;
    r = engine_call(s->e, "POST", "/services/create", spec, &ans, "create the service", reterr);
    json_decref(spec);
    if (r < 0)
        return r;
    const char *sid = json_string_value(json_object_get(ans, "ID"));
    *ret_id = xstrdup(sid ? sid : sp->name);
    *ret_node = TAKE_PTR(node);
    return 0;
}

/* Sets the service's replicas (read-modify-write at the version read). */
static int set_replicas(struct swarm_rt *s, const char *id, int replicas, struct berr **reterr)
{
    for (int attempt = 0;; attempt++) {
        _cleanup_(json_decrefp) json_t *svc = NULL;
        int r = service_get(s, id, &svc, reterr);
        if (r < 0)
            return r;
        json_t *spec = json_object_get(svc, "Spec");
        json_t *have = json_object_get(json_object_get(json_object_get(spec, "Mode"), "Replicated"),
                                       "Replicas");
        if (json_integer_value(have) == replicas)
            return 0; /* a new service starts at once: its start has nothing to do */
        json_object_set_new(json_object_get(json_object_get(spec, "Mode"), "Replicated"),
                            "Replicas", json_integer(replicas));
        json_int_t version =
            json_integer_value(json_object_get(json_object_get(svc, "Version"), "Index"));
        _cleanup_free_ char *upath =
            xasprintf("/services/%s/update?version=%lld", id, (long long)version);
        struct berr *ue = NULL;
        r = engine_call(s->e, "POST", upath, spec, NULL, "update the service", &ue);
        if (r < 0 && attempt < 2 && (r == -EINVAL || r == -EIO)) {
            berr_free(ue); /* "update out of sequence": read again */
            continue;
        }
        if (r < 0 && reterr)
            *reterr = ue;
        else
            berr_free(ue);
        return r;
    }
}

/* The service's tasks that Swarm wants running, and whether one runs. */
static int task_state(struct swarm_rt *s, const char *svc, char **ret_state, json_t **ret_task,
                      struct berr **reterr)
{
    _cleanup_free_ char *path = engine_filter_path("/tasks", "service", svc);
    _cleanup_(json_decrefp) json_t *tasks = NULL;
    int r = engine_call(s->e, "GET", path, NULL, &tasks, "list the service's tasks", reterr);
    if (r < 0)
        return r;
    json_t *best = NULL;
    const char *best_at = "";
    size_t i;
    json_t *t;
    json_array_foreach (tasks, i, t) {
        const char *want = json_string_value(json_object_get(t, "DesiredState"));
        const char *at = json_string_value(json_object_get(t, "UpdatedAt"));
        if (!want || strcmp(want, "running") != 0)
            continue;
        if (!best || (at && strcmp(at, best_at) > 0)) {
            best = t;
            best_at = at ? at : "";
        }
    }
    const char *st =
        best ? json_string_value(json_object_get(json_object_get(best, "Status"), "State")) : NULL;
    if (ret_state)
        *ret_state = xstrdup(st ? st : "exited");
    if (ret_task)
        *ret_task = best ? json_incref(best) : NULL;
    return 0;
}

static int swarm_ws_start(void *data, const char *id, struct berr **reterr)
{
    return set_replicas(data, id, 1, reterr);
}

static int swarm_ws_stop(void *data, const char *id, int timeout_s, struct berr **reterr)
{
    struct swarm_rt *s = data;
    int r = set_replicas(s, id, 0, reterr);
    if (r < 0)
        return r;
    /* done when no task of it runs (Swarm sends SIGTERM, SIGKILL after the
     * grace period) */
    for (long waited = 0; waited < (timeout_s + 30) * 1000L; waited += 250) {
        _cleanup_free_ char *state = NULL;
        if (task_state(s, id, &state, NULL, NULL) == 0 && strcmp(state, "exited") == 0)
            return 0;
        swarm_sleep_ms(250);
    }
    return berr_make(reterr, ETIMEDOUT, "the service's task did not stop in %d s", timeout_s + 30);
}

static int swarm_ws_remove(void *data, const char *name, struct berr **reterr)
{
    struct swarm_rt *s = data;
    _cleanup_(json_decrefp) json_t *svc = NULL;
    int r = service_get(s, name, &svc, reterr);
    /* no service (a create that failed before it): by its name, the
     * overlay and the secret made before it go all the same */
    bool by_name = strncmp(name, SERVICE_PREFIX, strlen(SERVICE_PREFIX)) == 0;
    if (r < 0 && (r != -ENOENT || !by_name))
        return r;
    json_t *labels = json_object_get(json_object_get(svc, "Spec"), "Labels");
    const char *id = json_string_value(json_object_get(labels, RT_LABEL_ID));
    _cleanup_free_ char *ws = xstrdup(id ? id : ws_id_of(name));
    /* the overlay the service names (one of the pool), else berth-ws-<id> */
    const char *named = json_string_value(json_object_get(labels, SWARM_NET_LABEL));
    _cleanup_free_ char *net = named ? xstrdup(named) : xasprintf("berth-ws-%s", ws);
    if (svc) {
        _cleanup_free_ char *path = xasprintf("/services/%s", name);
        r = engine_call(s->e, "DELETE", path, NULL, NULL, "remove the service", reterr);
        if (r < 0)
            return r;
    }
    /* the network goes once the task has left it; the secret with the service */
    swarm_net_remove(s->net, net);
    _cleanup_free_ char *secret = xasprintf("/secrets/berth-%s-agent", ws);
    (void)engine_call(s->e, "DELETE", secret, NULL, NULL, "remove the agent's secret", NULL);
    return r;
}

/* A deleted workspace's volumes on its node (its files, its configuration's
 * named volumes) emptied by a job of `berth-agent wipe` in its own image,
 * while the service still says where they are. The empty volumes stay: the
 * manager's API cannot remove a node's volume. */
#define WIPE_TIMEOUT_MS (120 * 1000)

static int swarm_ws_wipe(void *data, const char *name, struct berr **reterr)
{
    struct swarm_rt *s = data;
    _cleanup_(json_decrefp) json_t *svc = NULL;
    int r = service_get(s, name, &svc, reterr);
    if (r < 0)
        return r;
    json_t *spec = json_object_get(svc, "Spec");
    json_t *tt = json_object_get(spec, "TaskTemplate");
    json_t *cs = json_object_get(tt, "ContainerSpec");
    const char *ws =
        json_string_value(json_object_get(json_object_get(spec, "Labels"), RT_LABEL_ID));
    const char *image = json_string_value(json_object_get(cs, "Image"));
    const char *c = json_string_value(
        json_array_get(json_object_get(json_object_get(tt, "Placement"), "Constraints"), 0));
    if (!ws || !image || !c || strncmp(c, "node.id==", 9) != 0)
        return berr_make(reterr, EINVAL, "the service '%s' does not say where its files are", name);
    const char *node = c + 9;
    _cleanup_free_ char *npath = xasprintf("/nodes/%s", node);
    _cleanup_(json_decrefp) json_t *n = NULL;
    r = engine_call(s->e, "GET", npath, NULL, &n, "read the workspace's node", reterr);
    if (r < 0)
        return r;
    const char *host =
        json_string_value(json_object_get(json_object_get(n, "Description"), "Hostname"));
    const char *state = json_string_value(json_object_get(json_object_get(n, "Status"), "State"));
    if (!state || strcmp(state, "ready") != 0)
        return berr_make(reterr, EAGAIN,
                         "the workspace's files stay on node %s, which is %s: remove its volumes "
                         "berth-%s-* there",
                         host ? host : node, state ? state : "unknown", ws);
    _cleanup_free_ char *prefix = xasprintf("berth-%s-", ws);
    json_t *mounts = json_array();
    json_t *args = json_pack("[s]", "wipe");
    size_t i;
    json_t *m;
    json_array_foreach (json_object_get(cs, "Mounts"), i, m) {
        const char *type = json_string_value(json_object_get(m, "Type"));
        const char *src = json_string_value(json_object_get(m, "Source"));
        if (!type || strcmp(type, "volume") != 0 || !src ||
            strncmp(src, prefix, strlen(prefix)) != 0)
            continue;
        json_t *target = json_sprintf("/wipe/%zu", json_array_size(mounts));
        json_array_append(args, target);
        json_array_append_new(mounts, json_pack("{s:s, s:s, s:o}", "Type", "volume", "Source", src,
                                                "Target", target));
    }
    if (!json_array_size(mounts)) {
        json_decref(mounts);
        json_decref(args);
        return 0;
    }
    json_t *container = json_pack("{s:s, s:[s], s:o, s:s, s:o, s:O}", "Image", image, "Command",
                                  "/.berth-agent/berth-agent", "Args", args, "User", "root",
                                  "Mounts", mounts, "Configs", json_object_get(cs, "Configs"));
    _cleanup_free_ char *job = xasprintf("berth-wipe-%s", ws);
    r = swarm_job_run(s->e, job, node, container, json_pack("{s:s}", "berth.wipe", ws),
                      WIPE_TIMEOUT_MS, reterr);
    if (r < 0)
        return berr_wrap(reterr, "empty the workspace's volumes on node %s", host ? host : node);
    return 0;
}

static int swarm_ws_inspect(void *data, const char *id, struct rt_ws_info *ret,
                            struct berr **reterr)
{
    struct swarm_rt *s = data;
    _cleanup_(json_decrefp) json_t *svc = NULL;
    int r = service_get(s, id, &svc, reterr);
    if (r < 0)
        return r;
    json_int_t replicas = json_integer_value(json_object_get(
        json_object_get(json_object_get(json_object_get(svc, "Spec"), "Mode"), "Replicated"),
        "Replicas"));
    char *state = NULL;
    _cleanup_(json_decrefp) json_t *task = NULL;
    r = task_state(s, id, &state, &task, reterr);
    if (r < 0)
        return r;
    if (!replicas) {
        free(state);
        state = xstrdup("exited");
    }
    /* the node is the constraint's (where the task runs or will run) */
    const char *node_id = json_string_value(json_object_get(task, "NodeID"));
    const char *c = json_string_value(json_array_get(
        json_object_get(
            json_object_get(json_object_get(json_object_get(svc, "Spec"), "TaskTemplate"),
                            "Placement"),
            "Constraints"),
        0));
    if (!node_id && c && strncmp(c, "node.id==", 9) == 0)
        node_id = c + 9;
    if (node_id) {
        _cleanup_free_ char *npath = xasprintf("/nodes/%s", node_id);
        _cleanup_(json_decrefp) json_t *node = NULL;
        if (engine_call(s->e, "GET", npath, NULL, &node, "read the node", NULL) == 0) {
            const char *host = json_string_value(
                json_object_get(json_object_get(node, "Description"), "Hostname"));
            const char *ns =
                json_string_value(json_object_get(json_object_get(node, "Status"), "State"));
            const char *avail =
                json_string_value(json_object_get(json_object_get(node, "Spec"), "Availability"));
            ret->node = xstrdup(host ? host : node_id);
            /* a down node's tasks still show their last state; a drained
             * node's are shut down, and a pinned one cannot move */
            if (replicas &&
                ((ns && strcmp(ns, "ready") != 0) || (avail && strcmp(avail, "drain") == 0))) {
                free(state);
                state = xstrdup("unavailable");
            }
        }
    }
    ret->running = strcmp(state, "running") == 0;
    ret->status = state;
    return 0;
}

static int swarm_ws_list(void *data, const char *label, struct rt_ws_entry **ret, size_t *ret_n,
                         struct berr **reterr)
{
    struct swarm_rt *s = data;
    _cleanup_free_ char *path = engine_filter_path("/services", "label", label);
    _cleanup_(json_decrefp) json_t *list = NULL;
    int r = engine_call(s->e, "GET", path, NULL, &list, "list the services", reterr);
    if (r < 0)
        return r;
    size_t n = json_array_size(list);
    struct rt_ws_entry *v = xcalloc(n ? n : 1, sizeof(*v));
    size_t i;
    json_t *svc;
    json_array_foreach (list, i, svc) {
        json_t *labels = json_object_get(json_object_get(svc, "Spec"), "Labels");
        const char *id = json_string_value(json_object_get(svc, "ID"));
        const char *ws = json_string_value(json_object_get(labels, RT_LABEL_ID));
        const char *run = json_string_value(json_object_get(labels, "berth.run"));
        v[i].id = xstrdup(id ? id : "");
        v[i].ws_id = ws ? xstrdup(ws) : NULL;
        v[i].mount_sources = (struct strv)STRV_INIT;
        if (run)
            strv_push(&v[i].mount_sources, run);
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

/* A prebuild runs on the manager's node (swarm_ws_create): its running
 * task's container is the manager engine's own, which commits it. */
static int swarm_ws_commit(void *data, const char *id, const char *repo, const char *tag,
                           struct berr **reterr)
{
    struct swarm_rt *s = data;
    _cleanup_free_ char *state = NULL, *self = NULL;
    _cleanup_(json_decrefp) json_t *task = NULL;
    int r = task_state(s, id, &state, &task, reterr);
    if (r == 0)
        r = manager_node(s, &self, reterr);
    if (r < 0)
        return r;
    const char *node = json_string_value(json_object_get(task, "NodeID"));
    const char *cid = json_string_value(json_object_get(
        json_object_get(json_object_get(task, "Status"), "ContainerStatus"), "ContainerID"));
    if (!task || strcmp(state, "running") != 0 || !cid)
        return berr_make(reterr, EAGAIN,
                         "the prebuild's task is '%s', not running: nothing to save", state);
    if (!node || strcmp(node, self) != 0)
        return berr_make(reterr, ENOTSUP,
                         "the prebuild runs on another node than the manager's: its engine "
                         "cannot be asked to save it");
    return engine_container_commit(s->e, cid, repo, tag, reterr);
}

/* Swarm makes a service's volumes on its node when the task starts; the
 * manager cannot make or remove them on another node. */
static int swarm_volume_create(void *data, const char *name, json_t *labels, struct berr **reterr)
{
    (void)data, (void)name, (void)labels, (void)reterr;
    return 0;
}

static int swarm_volume_remove(void *data, const char *name, struct berr **reterr)
{
    (void)data;
    return berr_make(reterr, ENOTSUP, "volume '%s' is on its node: remove it there", name);
}

static int swarm_volume_list(void *data, const char *label, struct strv *ret, struct berr **reterr)
{
    (void)data, (void)label, (void)ret, (void)reterr;
    return 0;
}

static int swarm_image_inspect(void *data, const char *image, json_t **ret, struct berr **reterr)
{
    return engine_image_inspect(((struct swarm_rt *)data)->e, image, ret, reterr);
}

static int swarm_image_pull(void *data, const char *image, engine_line_cb cb, void *cb_data,
                            struct berr **reterr)
{
    return engine_image_pull(((struct swarm_rt *)data)->e, image, cb, cb_data, reterr);
}

/* Builds on the manager's engine; the create pushes the image to the
 * registry the nodes pull from (image_for_nodes). */
static int swarm_image_build(void *data, const char *context_tar, const struct engine_build *b,
                             engine_line_cb cb, void *cb_data, struct berr **reterr)
{
    struct swarm_rt *s = data;
    if (!s->registry)
        return berr_make(reterr, ENOTSUP,
                         "building a devcontainer's image (build, Dockerfile, features) for a "
                         "Swarm cluster needs a registry the nodes pull from: berthd --registry "
                         "HOST:PORT (docs/cluster.md)");
    return engine_image_build(s->e, context_tar, b, cb, cb_data, reterr);
}

static int swarm_image_remove(void *data, const char *image, struct berr **reterr)
{
    struct swarm_rt *s = data;
    /* the tag image_for_nodes gave it for the registry goes too, or the
     * manager keeps its layers */
    const char *local = "localhost/";
    if (s->registry && strncmp(image, "localhost/berth/", strlen("localhost/berth/")) == 0) {
        _cleanup_free_ char *pushed = xasprintf("%s/%s", s->registry, image + strlen(local));
        (void)engine_image_remove(s->e, pushed, NULL);
    }
    return engine_image_remove(s->e, image, reterr);
}

static void swarm_host_paths(void *data, struct strv *ret)
{
    struct swarm_rt *s = data;
    _cleanup_free_ char *sock = rt_socket_dir(s->e);
    strv_pushl(ret, sock, "/run/docker.sock", "/var/run/docker.sock", "/var/lib/docker",
               s->cluster_dir, NULL);
}

static int swarm_agent_address(void *data, const char *id, char **ret_host, char **ret_relay,
                               struct berr **reterr)
{
    struct swarm_rt *s = data;
    _cleanup_free_ char *svc = xasprintf("berth-%s", id);
    _cleanup_free_ char *state = NULL;
    _cleanup_(json_decrefp) json_t *task = NULL;
    int r = task_state(s, svc, &state, &task, reterr);
    if (r < 0)
        return r;
    if (!task || strcmp(state, "running") != 0)
        return berr_make(reterr, ENOTCONN, "the workspace's task is %s", state);
    /* the overlay the task's spec names, else one by its name */
    const char *want = json_string_value(json_object_get(
        json_array_get(json_object_get(json_object_get(task, "Spec"), "Networks"), 0), "Target"));
    size_t i;
    json_t *att;
    json_array_foreach (json_object_get(task, "NetworksAttachments"), i, att) {
        json_t *net = json_object_get(att, "Network");
        const char *net_id = json_string_value(json_object_get(net, "ID"));
        const char *name = json_string_value(json_object_get(json_object_get(net, "Spec"), "Name"));
        const char *addr = json_string_value(json_array_get(json_object_get(att, "Addresses"), 0));
        bool ours =
            want ? net_id && strcmp(net_id, want) == 0 : name && swarm_net_is_workspace(name, id);
        if (!ours || !addr)
            continue;
        *ret_host = xstrndup(addr, strcspn(addr, "/"));
        *ret_relay = xasprintf("%s/relay/agent.sock", s->cluster_dir);
        return 0;
    }
    return berr_make(reterr, ENOTCONN, "the workspace's task has no address on its overlay yet");
}

static void swarm_free(void *data)
{
    struct swarm_rt *s = data;
    swarm_net_free(s->net);
    free(s->cluster_dir);
    free(s->agent_config_id);
    free(s->agent_config_name);
    free(s->agent_dir);
    free(s->registry);
    swarm_ide_free(s->ide);
    free(s);
}

static const struct runtime_ops swarm_ops = {
    .ws_create = swarm_ws_create,
    .ws_start = swarm_ws_start,
    .ws_stop = swarm_ws_stop,
    .ws_remove = swarm_ws_remove,
    .ws_inspect = swarm_ws_inspect,
    .ws_list = swarm_ws_list,
    .ws_wipe = swarm_ws_wipe,
    .ws_commit = swarm_ws_commit,
    .volume_create = swarm_volume_create,
    .volume_remove = swarm_volume_remove,
    .volume_list = swarm_volume_list,
    .image_inspect = swarm_image_inspect,
    .image_pull = swarm_image_pull,
    .image_build = swarm_image_build,
    .image_remove = swarm_image_remove,
    .host_paths = swarm_host_paths,
    .agent_address = swarm_agent_address,
    .free = swarm_free,
};

struct runtime *runtime_swarm_new(struct engine *manager, const char *cluster_dir,
                                  const char *agent_dir, const char *image, const char *registry)
{
    struct swarm_rt *s = xcalloc(1, sizeof(*s));
    s->e = manager;
    pthread_mutex_init(&s->place_lock, NULL);
    pthread_mutex_init(&s->config_lock, NULL);
    s->cluster_dir = xstrdup(cluster_dir);
    s->net = swarm_net_new(manager, cluster_dir, agent_dir, image);
    s->agent_dir = xstrdup(agent_dir);
    s->registry = registry ? xstrdup(registry) : NULL;
    struct runtime *rt = xmalloc(sizeof(*rt));
    *rt = (struct runtime){.ops = &swarm_ops,
                           .data = s,
                           .no_ide = !registry,
                           .no_prebuilds = registry ? NULL : NO_PREBUILDS};
    return rt;
}
