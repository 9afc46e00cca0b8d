/* swarm-net.c - the workspaces' overlays and the relay on them (swarm-net.h). */
#include "engine/swarm-net.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "engine/runtime.h"
#include "engine/swarm-job.h"
#include "util/log.h"
#include "util/strv.h"
#include "util/xalloc.h"

#define POOL_PREFIX "berth-pool-"
#define POOL_LABEL "berth.pool"
#define POOL_SIZE 2
#define POOL_RETRY_S 10      /* after a failure (the manager's node paused, say), */
#define POOL_RETRY_MAX_S 300 /* doubling up to this */

struct swarm_net {
    struct engine *e; /* borrowed */
    char *relay;      /* the relay container's name */
    char *cluster_dir;
    char *agent_dir;
    char *relay_image;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct strv names, ids; /* the pool: made, and joined by the relay */
    bool stop;
    bool started;
    pthread_t filler;
};

static void *filler_main(void *data);

struct swarm_net *swarm_net_new(struct engine *e, const char *cluster_dir, const char *agent_dir,
                                const char *relay_image)
{
    struct swarm_net *n = xcalloc(1, sizeof(*n));
    n->e = e;
    /* one relay per berthd (data dir): two berthds may share a Swarm */
    uint32_t h = 2166136261u;
    for (const char *p = cluster_dir; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    n->relay = xasprintf("berth-relay-%08x", h);
    n->cluster_dir = xstrdup(cluster_dir);
    n->agent_dir = xstrdup(agent_dir);
    n->relay_image = xstrdup(relay_image);
    pthread_mutex_init(&n->lock, NULL);
    pthread_cond_init(&n->wake, NULL);
    n->names = (struct strv)STRV_INIT;
    n->ids = (struct strv)STRV_INIT;
    /* the pool from the start, so that the first create finds it made too */
    n->started = pthread_create(&n->filler, NULL, filler_main, n) == 0;
    if (!n->started)
        log_warn("no overlays made ahead for workspaces: no thread for it");
    return n;
}

void swarm_net_free(struct swarm_net *n)
{
    if (!n)
        return;
    pthread_mutex_lock(&n->lock);
    n->stop = true;
    pthread_cond_broadcast(&n->wake);
    bool started = n->started;
    pthread_mutex_unlock(&n->lock);
    if (started)
        pthread_join(n->filler, NULL);
    pthread_mutex_destroy(&n->lock);
    pthread_cond_destroy(&n->wake);
    strv_release(&n->names);
    strv_release(&n->ids);
    free(n->relay);
    free(n->cluster_dir);
    free(n->agent_dir);
    free(n->relay_image);
    free(n);
}

/* ---- the relay ---- */

static int relay_running(struct swarm_net *n, struct berr **reterr)
{
    _cleanup_(json_decrefp) json_t *info = NULL;
    int r = engine_container_inspect(n->e, n->relay, &info, NULL);
    if (r == -ENOENT) {
        _cleanup_free_ char *relay_dir = xasprintf("%s/relay", n->cluster_dir);
        if (mkdir(relay_dir, 0700) < 0 && errno != EEXIST)
            return berr_make(reterr, errno, "cannot create '%s': %s", relay_dir, strerror(errno));
        json_t *binds = json_array();
        json_array_append_new(binds, json_sprintf("%s:/relay", relay_dir));
        json_array_append_new(binds, json_sprintf("%s:/.berth-agent:ro", n->agent_dir));
        json_t *body =
            json_pack("{s:s, s:[s], s:[s, s], s:{s:s}, s:{s:o, s:{s:s}}}", "Image", n->relay_image,
                      "Entrypoint", "/.berth-agent/berth-agent", "Cmd", "--socket",
                      "/relay/agent.sock", "Labels", "berth.relay", n->cluster_dir, "HostConfig",
                      "Binds", binds, "RestartPolicy", "Name", "always");
        _cleanup_free_ char *id = NULL;
        r = engine_container_create(n->e, n->relay, body, &id, reterr);
        json_decref(body);
        if (r < 0 && r != -EBUSY) /* EBUSY: another create made it meanwhile */
            return r;
    } else if (r < 0) {
        return berr_make(reterr, -r, "cannot inspect the relay container");
    }
    return engine_container_start(n->e, n->relay, reterr);
}

int swarm_net_join(struct swarm_net *n, const char *net, struct berr **reterr)
{
    int r = relay_running(n, reterr);
    if (r < 0)
        return r;
    _cleanup_free_ char *path = xasprintf("/networks/%s/connect", net);
    json_t *body = json_pack("{s:s}", "Container", n->relay);
    struct berr *ce = NULL;
    r = engine_call(n->e, "POST", path, body, NULL, "attach the relay", &ce);
    json_decref(body);
    if (r < 0 && ce && strstr(berr_msg(ce), "already")) /* attached before */
        r = 0;
    if (r < 0 && reterr)
        *reterr = ce;
    else
        berr_free(ce);
    return r;
}

static void relay_leave(struct swarm_net *n, const char *net)
{
    _cleanup_free_ char *path = xasprintf("/networks/%s/disconnect", net);
    json_t *body = json_pack("{s:s, s:b}", "Container", n->relay, "Force", 1);
    (void)engine_call(n->e, "POST", path, body, NULL, "detach the relay", NULL);
    json_decref(body);
}

void swarm_net_remove(struct swarm_net *n, const char *net)
{
    _cleanup_free_ char *path = xasprintf("/networks/%s", net);
    for (int i = 0; i < 120; i++) {
        if (engine_call(n->e, "GET", path, NULL, NULL, "read the overlay", NULL) == -ENOENT)
            return;
        relay_leave(n, net);
        (void)engine_call(n->e, "DELETE", path, NULL, NULL, "remove the overlay", NULL);
        swarm_sleep_ms(250);
    }
}

bool swarm_net_is_workspace(const char *name, const char *ws_id)
{
    if (strncmp(name, POOL_PREFIX, strlen(POOL_PREFIX)) == 0)
        return true;
    return strncmp(name, "berth-ws-", 9) == 0 && strcmp(name + 9, ws_id) == 0;
}

/* ---- overlays ---- */

/* Makes overlay name with labels (taken): its id into *ret_id. */
static int overlay_create(struct swarm_net *n, const char *name, json_t *labels, char **ret_id,
                          struct berr **reterr)
{
    json_object_set_new(labels, RT_LABEL_MANAGED, json_string("1"));
    /* attachable, so that the relay can join it */
    json_t *body = json_pack("{s:s, s:s, s:b, s:b, s:o}", "Name", name, "Driver", "overlay",
                             "Attachable", 1, "CheckDuplicate", 1, "Labels", labels);
    _cleanup_(json_decrefp) json_t *ans = NULL;
    int r = engine_call(n->e, "POST", "/networks/create", body, &ans, "create the overlay", reterr);
    json_decref(body);
    if (r < 0)
        return r;
    const char *id = json_string_value(json_object_get(ans, "Id"));
    if (!id)
        id = json_string_value(json_object_get(ans, "ID"));
    if (!id)
        return berr_make(reterr, EIO, "the engine gave the overlay %s no id", name);
    *ret_id = xstrdup(id);
    return 0;
}

/* One more overlay for the pool, made and joined. */
static int pool_make(struct swarm_net *n, char **ret_name, char **ret_id, struct berr **reterr)
{
    unsigned char rnd[5];
    randombytes_buf(rnd, sizeof(rnd));
    char hex[2 * sizeof(rnd) + 1];
    sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
    _cleanup_free_ char *name = xasprintf(POOL_PREFIX "%s", hex);
    _cleanup_free_ char *id = NULL;
    int r = overlay_create(n, name, json_pack("{s:s}", POOL_LABEL, n->cluster_dir), &id, reterr);
    if (r == 0)
        r = swarm_net_join(n, id, reterr);
    if (r < 0) {
        if (id)
            swarm_net_remove(n, name);
        return r;
    }
    *ret_name = TAKE_PTR(name);
    *ret_id = TAKE_PTR(id);
    return 0;
}

/* The pool's overlays an earlier berthd of this data dir left that no
 * service names (a create cut short, a berthd stopped) go: one of them may
 * still hold the task of a workspace removed half-way, so none is used
 * again, and the pool is made anew. */
static void pool_sweep(struct swarm_net *n)
{
    _cleanup_free_ char *label = xasprintf(POOL_LABEL "=%s", n->cluster_dir);
    _cleanup_free_ char *path = engine_filter_path("/networks", "label", label);
    _cleanup_(json_decrefp) json_t *list = NULL;
    if (engine_call(n->e, "GET", path, NULL, &list, "list the pool's overlays", NULL) < 0)
        return;
    size_t i;
    json_t *net;
    json_array_foreach (list, i, net) {
        const char *name = json_string_value(json_object_get(net, "Name"));
        if (!name)
            continue;
        _cleanup_free_ char *used = xasprintf(SWARM_NET_LABEL "=%s", name);
        _cleanup_free_ char *spath = engine_filter_path("/services", "label", used);
        _cleanup_(json_decrefp) json_t *svcs = NULL;
        if (engine_call(n->e, "GET", spath, NULL, &svcs, "list the services", NULL) == 0 &&
            json_array_size(svcs) == 0)
            swarm_net_remove(n, name);
    }
}

static void *filler_main(void *data)
{
    struct swarm_net *n = data;
    pool_sweep(n);
    int backoff = POOL_RETRY_S;
    pthread_mutex_lock(&n->lock);
    while (!n->stop) {
        if (n->names.n >= POOL_SIZE) {
            pthread_cond_wait(&n->wake, &n->lock);
            continue;
        }
        pthread_mutex_unlock(&n->lock);
        char *name = NULL, *id = NULL;
        _cleanup_berr_ struct berr *e = NULL;
        int r = pool_make(n, &name, &id, &e);
        pthread_mutex_lock(&n->lock);
        if (r == 0) {
            strv_push(&n->names, name);
            strv_push(&n->ids, id);
            free(name);
            free(id);
            backoff = POOL_RETRY_S;
            continue;
        }
        /* the manager's node paused, say: creates make their own meanwhile */
        if (backoff == POOL_RETRY_S)
            log_warn("no overlay made ahead for workspaces (tried again in %d s, then less "
                     "often): %s",
                     backoff, berr_msg(e));
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += backoff;
        backoff = backoff * 2 > POOL_RETRY_MAX_S ? POOL_RETRY_MAX_S : backoff * 2;
        (void)pthread_cond_timedwait(&n->wake, &n->lock, &until);
    }
    pthread_mutex_unlock(&n->lock);
    return NULL;
}

static char *take_last(struct strv *v)
{
    char *last = v->v[--v->n];
    v->v[v->n] = NULL;
    return last;
}

int swarm_net_take(struct swarm_net *n, const char *ws_id, char **ret_name, char **ret_id,
                   bool *ret_joined, struct berr **reterr)
{
    pthread_mutex_lock(&n->lock);
    bool pooled = n->names.n > 0;
    if (pooled) {
        *ret_name = take_last(&n->names);
        *ret_id = take_last(&n->ids);
        pthread_cond_broadcast(&n->wake);
    }
    pthread_mutex_unlock(&n->lock);
    *ret_joined = pooled;
    if (pooled)
        return 0;
    _cleanup_free_ char *name = xasprintf("berth-ws-%s", ws_id);
    /* one a create cut short (berthd killed) left goes first: its removal
     * may still be under way, and a network going away cannot be reused */
    swarm_net_remove(n, name);
    int r = overlay_create(n, name, json_pack("{s:s}", RT_LABEL_ID, ws_id), ret_id, reterr);
    if (r < 0)
        return r;
    *ret_name = TAKE_PTR(name);
    return 0;
}
