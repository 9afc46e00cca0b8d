/* actions.c - what each action does: create, start, stop, rebuild, delete,
 * and the background ones (postAttachCommand, interrupting lifecycle commands).
 *
 * Each runs on a job's thread with the record read at the job's start, and
 * ends in a resting state (job_set_state); provision.c holds the steps.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/fs.h"
#include "util/log.h"
#include "workspace/ws-internal.h"

void do_create(struct job_ctx *x, bool resume)
{
    _cleanup_berr_ struct berr *e = NULL;
    _cleanup_free_ char *requested =
        x->rec.devcontainer_path ? xstrdup(x->rec.devcontainer_path) : NULL;
    if (resume)
        jevent(x, "resume",
               "berthd restarted while this workspace was being created: starting "
               "over");
    _cleanup_free_ char *mirror = NULL;
    bool from_prebuild = false;
    int r = step_fetch(x, &mirror, &e);
    if (r == 0)
        r = prebuild_try(x, mirror, requested, &from_prebuild, &e);
    if (r == 0 && !from_prebuild)
        r = step_clone(x, mirror, &e);
    if (r == 0) {
        x->mirror = mirror;
        r = provision(x, requested, &e);
        x->mirror = NULL;
    }
    if (x->from) {
        ws_record_release(x->from);
        free(x->from);
        x->from = NULL;
    }
    free(TAKE_PTR(x->head));
    if (r < 0) {
        remove_container(x);
        job_set_state(x, WS_FAILED, berr_msg(e));
        return;
    }
    if (x->interrupted || interrupt_asked(x->m, x->rec.id))
        return; /* the stop or delete that follows says where it is */
    _cleanup_free_ char *warning = x->rec.error ? xstrdup(x->rec.error) : NULL;
    job_set_state(x, WS_RUNNING, warning);
}

/* postAttachCommand, run as it was recorded when the container was created. */
void do_attach(struct job_ctx *x)
{
    if (strcmp(x->rec.state, ws_state_name(WS_RUNNING)) != 0)
        return;
    json_t *rt = runtime_get(&x->rec);
    json_t *commands = json_object_get(rt, "postAttachCommand");
    if (json_array_size(commands)) {
        struct dc_config cfg;
        dc_config_init(&cfg);
        cfg.hooks[DC_POST_ATTACH] = json_incref(commands);
        _cleanup_free_ char *failure = NULL;
        _cleanup_berr_ struct berr *e = NULL;
        int r = run_hook(x, &cfg, DC_POST_ATTACH, &failure, &e);
        if (r < 0 || failure)
            jevent(x, "lifecycle", "%s", failure ? failure : berr_msg(e));
        dc_config_release(&cfg);
    }
    json_decref(rt);
}

/* The first allow-list entry the container was created with that the policy
 * no longer has (newly allocated), or NULL. */
static char *revoked_grant(struct job_ctx *x)
{
    json_t *rt = runtime_get(&x->rec);
    struct policy pol;
    policy_load(x->m, &pol);
    char *revoked = NULL;
    size_t i;
    json_t *v;
    json_array_foreach (json_object_get(rt, "granted"), i, v)
        if (!revoked && json_is_string(v) && !dc_policy_allows(&pol.p, json_string_value(v)))
            revoked = xstrdup(json_string_value(v));
    policy_release(&pol);
    json_decref(rt);
    return revoked;
}

void do_start(struct job_ctx *x)
{
    _cleanup_berr_ struct berr *e = NULL;
    if (!x->rec.container_id || x->rec.uid < 0) {
        /* a create that failed before its container ran: start over */
        do_create(x, false);
        return;
    }
    /* an admin who takes an entry off the allow-list takes it from the
     * containers made with it too, from their next start */
    _cleanup_free_ char *revoked = revoked_grant(x);
    if (revoked) {
        _cleanup_free_ char *msg =
            xasprintf("this workspace's container was made with \"%s\", which this server's "
                      "policy no longer allows; rebuild it to apply the current policy (files "
                      "are kept)",
                      revoked);
        job_set_state(x, WS_FAILED, msg);
        return;
    }
    jevent(x, "container", "starting container");
    int r = step_start_container(x, &e);
    if (r == -ENOENT) {
        job_set_state(x, WS_FAILED,
                      "the container is gone; rebuild the workspace (files are kept)");
        return;
    }
    if (r < 0) {
        job_set_state(x, WS_FAILED, berr_msg(e));
        return;
    }
    struct dc_config cfg;
    dc_config_init(&cfg);
    _cleanup_free_ char *failure = NULL;
    r = step_config(x, x->rec.devcontainer_path, &cfg, &e);
    if (r == 0) {
        json_t *image = NULL;
        if (rt_image_inspect(x->m->rt, x->rec.image, &image, NULL) == 0)
            dc_merge_image_metadata(&cfg, image_label(image, "devcontainer.metadata"));
        json_decref(image);
        /* the create-time commands a stop cut short, from the one it cut,
         * then postStartCommand */
        json_t *rt = runtime_get(&x->rec);
        const char *pending = json_string_value(json_object_get(rt, "create_pending"));
        size_t first = ELEMENTSOF(lifecycle_hooks) - 1;
        for (size_t i = 0; pending && i + 1 < ELEMENTSOF(lifecycle_hooks); i++)
            if (strcmp(pending, dc_hook_name(lifecycle_hooks[i])) == 0)
                first = i;
        json_decref(rt);
        /* ready once what waitFor names is done (default updateContentCommand),
         * before what runs on after it (often a server) */
        size_t wait_idx = 1;
        for (size_t i = 0; cfg.wait_for && i < ELEMENTSOF(lifecycle_hooks); i++)
            if (strcmp(cfg.wait_for, dc_hook_name(lifecycle_hooks[i])) == 0)
                wait_idx = i;
        for (size_t i = first; i < ELEMENTSOF(lifecycle_hooks) && r == 0 && !failure; i++) {
            bool later = false;
            for (size_t k = i; k < ELEMENTSOF(lifecycle_hooks); k++)
                later = later || has_commands(&cfg, lifecycle_hooks[k]);
            if (later && i > wait_idx && strcmp(x->rec.state, "running") != 0) {
                job_set_state(x, WS_RUNNING, NULL);
                jlog(x,
                     "ready: the workspace can be used now; %s runs on (Ctrl-C stops following "
                     "this log, not the command)",
                     dc_hook_name(lifecycle_hooks[i]));
            }
            if (pending && i == first)
                jlog(x, "%s was cut short by a stop: running it again",
                     dc_hook_name(lifecycle_hooks[i]));
            if (lifecycle_step(x, &cfg, i, &r, &failure, &e)) {
                dc_config_release(&cfg);
                return;
            }
            if (lifecycle_hooks[i] == DC_POST_CREATE)
                runtime_set(x, "create_pending", NULL);
        }
        runtime_set(x, "lifecycle", json_string(r == 0 && !failure ? "done" : "failed"));
    }
    dc_config_release(&cfg);
    if (r < 0 && !failure)
        failure = xstrdup(berr_msg(e));
    job_set_state(x, WS_RUNNING, failure);
}

/* Stops the container under lifecycle commands that a stop or delete
 * interrupts (their job then ends, and the action follows it). */
void do_interrupt(struct job_ctx *x)
{
    if (!x->rec.container_id)
        return;
    _cleanup_berr_ struct berr *e = NULL;
    if (rt_ws_stop(x->m->rt, x->rec.container_id, WS_STOP_TIMEOUT_S, &e) < 0)
        log_error("workspace '%s': cannot stop the container to interrupt its lifecycle "
                  "commands: %s",
                  x->rec.name, berr_msg(e));
}

void do_stop(struct job_ctx *x)
{
    _cleanup_berr_ struct berr *e = NULL;
    if (x->rec.container_id) {
        jevent(x, "container", "stopping container");
        int r = rt_ws_stop(x->m->rt, x->rec.container_id, WS_STOP_TIMEOUT_S, &e);
        if (r < 0 && r != -ENOENT) {
            job_set_state(x, WS_FAILED, berr_msg(e));
            return;
        }
    }
    job_set_state(x, WS_STOPPED, NULL);
}

void do_rebuild(struct job_ctx *x)
{
    _cleanup_berr_ struct berr *e = NULL;
    _cleanup_free_ char *dest = clone_path(x);
    struct stat st;
    if (stat(dest, &st) < 0) {
        /* nothing was ever cloned: a rebuild is a create */
        do_create(x, false);
        return;
    }
    jevent(x, "rebuild", "rebuilding the container; files in the workspace are kept");
    /* what the container that is there was made with, should it stay */
    char **fields[] = {&x->rec.image, &x->rec.workspace_folder, &x->rec.remote_user,
                       &x->rec.devcontainer_path};
    char *before[ELEMENTSOF(fields)];
    for (size_t i = 0; i < ELEMENTSOF(fields); i++)
        before[i] = *fields[i] ? xstrdup(*fields[i]) : NULL;
    _cleanup_free_ char *requested =
        x->rec.devcontainer_path ? xstrdup(x->rec.devcontainer_path) : NULL;
    int r = provision(x, requested, &e);
    if (r < 0 && !x->replaced) {
        /* the configuration, the build or the policy failed: the container
         * that was there stays as it was, stopped (a failed workspace does
         * not count as running) */
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
            free(*fields[i]);
            *fields[i] = TAKE_PTR(before[i]);
        }
        if (x->rec.container_id)
            (void)rt_ws_stop(x->m->rt, x->rec.container_id, WS_STOP_TIMEOUT_S, NULL);
        _cleanup_free_ char *msg =
            xasprintf("%s (the previous container is kept, stopped: start it as it was, or fix "
                      "this and rebuild)",
                      berr_msg(e));
        job_set_state(x, WS_FAILED, msg);
        return;
    }
    for (size_t i = 0; i < ELEMENTSOF(fields); i++)
        free(before[i]);
    if (r < 0) {
        remove_container(x);
        job_set_state(x, WS_FAILED, berr_msg(e));
        return;
    }
    if (x->interrupted || interrupt_asked(x->m, x->rec.id))
        return;
    _cleanup_free_ char *warning = x->rec.error ? xstrdup(x->rec.error) : NULL;
    job_set_state(x, WS_RUNNING, warning);
}

void do_delete(struct job_ctx *x)
{
    /* on a cluster the files are in volumes on the node: emptied there */
    _cleanup_free_ char *name = xasprintf("berth-%s", x->rec.id);
    _cleanup_berr_ struct berr *we = NULL;
    int wr = rt_ws_wipe(x->m->rt, x->rec.container_id ? x->rec.container_id : name, &we);
    if (wr < 0 && wr != -ENOENT)
        jlog(x, "warning: %s", berr_msg(we));
    remove_container(x);
    remove_volumes(x);
    json_t *rt = runtime_get(&x->rec);
    const char *v = json_string_value(json_object_get(rt, "prebuild"));
    _cleanup_free_ char *prebuild = v ? xstrdup(v) : NULL;
    json_decref(rt);
    if (prebuild)
        prebuild_unmount(x->m, &x->rec);
    _cleanup_free_ char *files = ws_files_dir(x->m, x->rec.id);
    _cleanup_free_ char *run = ws_run_dir(x->m, x->rec.id);
    int r = rm_rf(files);
    if (r == 0)
        r = rm_rf(run);
    if (r < 0) {
        _cleanup_free_ char *msg = xasprintf("cannot remove the workspace files: %s", strerror(-r));
        job_set_state(x, WS_FAILED, msg);
        return;
    }
    _cleanup_berr_ struct berr *e = NULL;
    if (store_ws_delete(x->m->store, x->rec.id, &e) < 0)
        log_error("delete workspace '%s': %s", x->rec.id, berr_msg(e));
    if (prebuild)
        prebuild_collect(x->m, prebuild);
    uv_async_send(&x->m->notify);
}
