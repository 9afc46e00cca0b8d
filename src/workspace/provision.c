/* provision.c - the pipeline that gives a workspace its files and container.
 *
 * step_fetch brings the repository's mirror up to date and step_clone checks
 * it out on the host; provision() then reads the
 * configuration, ensures the image (pull, Dockerfile build, features), checks
 * the policy, creates and starts the container, waits for its agent, gives
 * the checkout to the remote user, records the runtime and runs the
 * lifecycle commands up to postStartCommand. A create runs both; a rebuild
 * runs provision() on the files it has.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "git/git.h"
#include "store/accounts.h"
#include "util/fs.h"
#include "util/run.h"
#include "util/seal.h"
#include "workspace/agentc.h"
#include "workspace/build.h"
#include "workspace/ws-internal.h"

/* The owner's stored credential for the repo's host, unsealed. */
static int owner_credential(struct ws_manager *m, const char *owner, const char *repo,
                            char **ret_username, struct buf *ret_password)
{
    if (!owner)
        return -ENOENT;
    _cleanup_free_ char *origin = git_url_origin(repo);
    if (!origin)
        return -ENOENT;
    struct user_rec u = {0};
    if (store_user_get(m->store, owner, &u, NULL) < 0)
        return -ENOENT;
    int64_t uid = u.id;
    user_rec_release(&u);
    _cleanup_buf_ struct buf sealed = BUF_INIT;
    char *username = NULL;
    int r = store_gitcred_find(m->store, uid, origin, &username, &sealed);
    if (r < 0)
        return r;
    r = unseal(sealed.buf, sealed.len, ret_password);
    if (r < 0) {
        free(username);
        return r;
    }
    *ret_username = username;
    return 0;
}

int mirror_fetch(struct ws_manager *m, const char *repo, const char *owner, run_line_cb cb,
                 void *data, char **ret_mirror, struct berr **reterr)
{
    /* checked again at each fetch: an admin may have taken the folder away,
     * or the path may lead elsewhere now */
    struct user_rec u = {0};
    bool admin = owner && store_user_get(m->store, owner, &u, NULL) == 0 && u.admin;
    user_rec_release(&u);
    struct ws_create_request req = {.repo = repo, .owner = owner, .owner_is_admin = admin};
    int r = check_local_repo(m, &req, reterr);
    if (r < 0)
        return r;
    struct git_auth auth = {0};
    _cleanup_free_ char *username = NULL;
    _cleanup_buf_ struct buf password = BUF_INIT;
    if (owner_credential(m, owner, repo, &username, &password) == 0)
        auth = (struct git_auth){
            .askpass = m->askpass, .username = username, .password = password.buf};
    git_set_auth(auth.askpass ? &auth : NULL);
    _cleanup_free_ char *mirrors = xasprintf("%s/git", m->data_dir);
    r = git_mirror_update(mirrors, repo, cb, data, ret_mirror, reterr);
    git_set_auth(NULL);
    sodium_memzero_buf(&password);
    if (r < 0)
        return berr_wrap(reterr, "clone '%s'", repo);
    return 0;
}

int step_fetch(struct job_ctx *x, char **ret_mirror, struct berr **reterr)
{
    const char *kind = x->rec.branch   ? " branch "
                       : x->rec.commit ? " commit "
                       : x->rec.ref    ? " ref "
                                       : "";
    const char *what = x->rec.branch ? x->rec.branch : x->rec.commit ? x->rec.commit : x->rec.ref;
    jevent(x, "clone", "cloning '%s'%s%s", x->rec.repo, kind, what ? what : "");
    return mirror_fetch(x->m, x->rec.repo, x->rec.owner, log_line_cb, x, ret_mirror, reterr);
}

int step_clone(struct job_ctx *x, const char *mirror, struct berr **reterr)
{
    _cleanup_free_ char *files = ws_files_dir(x->m, x->rec.id);
    _cleanup_free_ char *dest = clone_path(x);
    (void)rm_rf(files); /* a clone interrupted by a crash starts over */
    int r = mkdir_p(files, 0755);
    if (r < 0)
        return berr_make(reterr, -r, "cannot create '%s': %s", files, strerror(-r));
    struct git_target t = {.branch = x->rec.branch, .commit = x->rec.commit, .ref = x->rec.ref};
    _cleanup_free_ char *commit = NULL;
    /* the checkout is berthd's alone until the container starts: git on the
     * host never runs in a .git the workspace could have changed */
    r = git_clone_mirror(mirror, x->rec.repo, dest, &t, log_line_cb, x, &commit, reterr);
    if (r < 0)
        return r;
    set_field(&x->rec.commit, commit);
    jlog(x, "checked out %.12s", commit);
    (void)job_save(x);
    return 0;
}

bool ws_image_name_allowed(const char *image)
{
    /* other workspaces' builds hold their sources; ids resolve by prefix */
    if (strncmp(image, "localhost/berth/build-", 22) == 0 ||
        strncmp(image, "localhost/berth/features-", 25) == 0 ||
        strncmp(image, "localhost/berth/prebuild-", 25) == 0 || strncmp(image, "sha256:", 7) == 0)
        return false;
    return strspn(image, "0123456789abcdef") != strlen(image);
}

/* Reads devcontainer.json into cfg and picks the image. */
int step_config(struct job_ctx *x, const char *requested_path, struct dc_config *cfg,
                struct berr **reterr)
{
    _cleanup_free_ char *dest = clone_path(x);
    _cleanup_free_ char *rel = NULL;
    int r = dc_find(dest, requested_path, &rel, reterr);
    if (r < 0)
        return r;
    _cleanup_free_ char *dirname_ = repo_dir_name(x->rec.repo);
    _cleanup_free_ char *folder = xasprintf("/workspaces/%s", dirname_);
    /* ${localEnv:VAR}: the owner's secrets for this repository, never
     * berthd's own environment (nor what the container's shell had) */
    _cleanup_strv_ struct strv owner_env = STRV_INIT;
    struct ws_record secrets_only = x->rec;
    secrets_only.runtime = NULL;
    (void)ws_owner_env(x->m, &secrets_only, &owner_env, NULL);
    struct dc_vars vars = {.local_workspace_folder = dest,
                           .container_workspace_folder = folder,
                           .devcontainer_id = x->rec.id,
                           .local_env = &owner_env};
    r = dc_load(dest, rel, &vars, cfg, reterr);
    if (r < 0)
        return r;
    for (size_t i = 0; i < cfg->warnings.n; i++)
        jlog(x, "warning: %s", cfg->warnings.v[i]);
    if (rel)
        jlog(x, "using configuration '%s'", rel);
    else
        jlog(x, "no devcontainer.json found: using the default image");
    if (cfg->image && !ws_image_name_allowed(cfg->image))
        return berr_make(reterr, EPERM,
                         "'%s': image '%s' is not allowed: Berth's build cache and image ids "
                         "cannot be named; use the image's name or \"build\"",
                         rel, cfg->image);
    set_field(&x->rec.devcontainer_path, rel);
    set_field(&x->rec.image, cfg->image ? cfg->image : x->m->default_image);
    if (!cfg->workspace_folder)
        cfg->workspace_folder = xstrdup(folder);
    set_field(&x->rec.workspace_folder, cfg->workspace_folder);
    if (json_object_get(cfg->raw, "initializeCommand"))
        jlog(x, "initializeCommand skipped: Berth never runs a repository's commands on the "
                "server");
    return 0;
}

static void pull_line_cb(const char *line, void *data)
{
    jlog(data, "%s", line);
}

/* Makes sure the image is present; returns its inspect JSON in *ret. */
static int step_image(struct job_ctx *x, json_t **ret, struct berr **reterr)
{
    const char *image = x->rec.image;
    struct berr *e = NULL;
    int r = rt_image_inspect(x->m->rt, image, ret, &e);
    if (r == 0)
        return 0;
    if (r != -ENOENT) {
        if (reterr && !*reterr)
            *reterr = e;
        else
            berr_free(e);
        return r;
    }
    berr_free(e);
    e = NULL;
    jevent(x, "image", "pulling image '%s'", image);
    r = rt_image_pull(x->m->rt, image, pull_line_cb, x, &e);
    if (r == 0)
        r = rt_image_inspect(x->m->rt, image, ret, &e);
    if (r < 0) {
        int code = berr_make(reterr, ENOENT, "image '%s' not found and could not be pulled: %s",
                             image, berr_msg(e));
        berr_free(e);
        return code;
    }
    return 0;
}

const char *image_label(json_t *inspect, const char *label)
{
    json_t *labels = json_object_get(json_object_get(inspect, "Config"), "Labels");
    return json_string_value(json_object_get(labels, label));
}

static void build_line_cb(const char *line, void *data)
{
    jlog(data, "build: %s", line);
}

/* Scratch space for a build, under the data dir (not in the checkout). */
static char *build_dir(struct job_ctx *x)
{
    return xasprintf("%s/tmp/build-%s", x->m->data_dir, x->rec.id);
}

/* The user commands run as, from a merged config: remoteUser, then
 * containerUser, then the image's own user, then root. */
static const char *pick_user(const struct dc_config *merged, json_t *image)
{
    const char *image_user =
        json_string_value(json_object_get(json_object_get(image, "Config"), "User"));
    return merged->remote_user         ? merged->remote_user
           : merged->container_user    ? merged->container_user
           : image_user && *image_user ? image_user
                                       : "root";
}

/* The builder for this workspace, on an empty scratch dir (*ret_work) and
 * its checkout (*ret_repo); both strings are the caller's to free. */
static int builder_open(struct job_ctx *x, struct wsb *b, char **ret_work, char **ret_repo,
                        struct berr **reterr)
{
    *ret_work = build_dir(x);
    *ret_repo = clone_path(x);
    (void)rm_rf(*ret_work);
    int r = mkdir_p(*ret_work, 0700);
    if (r < 0)
        return berr_make(reterr, -r, "cannot create '%s'", *ret_work);
    *b = (struct wsb){.rt = x->m->rt,
                      .repo_dir = *ret_repo,
                      .config_rel = x->rec.devcontainer_path,
                      .work_dir = *ret_work,
                      .log = build_line_cb,
                      .data = x};
    return 0;
}

/* The image a build made (tag, taken) becomes the workspace's. */
static void adopt_image(struct job_ctx *x, char *tag)
{
    set_field(&x->rec.image, tag);
    free(tag);
    (void)job_save(x);
}

/* "build": the Dockerfile's image (built once per content) replaces "image". */
static int step_build(struct job_ctx *x, struct dc_config *cfg, struct berr **reterr)
{
    json_t *build = json_object_get(cfg->raw, "build");
    if (cfg->image || !json_is_object(build))
        return 0;
    _cleanup_free_ char *work = NULL;
    _cleanup_free_ char *repo = NULL;
    struct wsb b;
    int r = builder_open(x, &b, &work, &repo, reterr);
    if (r < 0)
        return r;
    char *tag = NULL;
    jevent(x, "image", "building the image of '%s'", x->rec.devcontainer_path);
    r = wsb_dockerfile(&b, build, &tag, reterr);
    (void)rm_rf(work);
    if (r < 0)
        return r;
    adopt_image(x, tag);
    return 0;
}

/* "features": installed on top of the image into a derived, cached image
 * whose metadata carries what they contribute. */
static int step_features(struct job_ctx *x, struct dc_config *cfg, json_t **image,
                         struct berr **reterr)
{
    json_t *features = json_object_get(cfg->raw, "features");
    if (!json_object_size(features))
        return 0;
    _cleanup_free_ char *work = NULL;
    _cleanup_free_ char *repo = NULL;
    struct wsb b;
    int r = builder_open(x, &b, &work, &repo, reterr);
    if (r < 0)
        return r;
    /* the user as provision will pick it: the image's metadata merged first */
    struct dc_config merged;
    dc_config_init(&merged);
    merged.raw = json_incref(cfg->raw);
    dc_merge_image_metadata(&merged, image_label(*image, "devcontainer.metadata"));
    char *tag = NULL;
    jevent(x, "image", "installing %zu feature%s", json_object_size(features),
           json_object_size(features) == 1 ? "" : "s");
    r = wsb_features(&b, features, json_object_get(cfg->raw, "overrideFeatureInstallOrder"),
                     x->rec.image, pick_user(&merged, *image), &tag, reterr);
    dc_config_release(&merged);
    (void)rm_rf(work);
    if (r < 0)
        return r;
    adopt_image(x, tag);
    json_decref(*image);
    *image = NULL;
    return rt_image_inspect(x->m->rt, x->rec.image, image, reterr);
}

/* Starts the container and waits for its agent. */
int step_start_container(struct job_ctx *x, struct berr **reterr)
{
    /* made from a prebuild: its files lie on the prebuild's (a mount a host
     * restart took away) */
    int r = prebuild_mount(x, reterr);
    if (r < 0)
        return r;
    if (rt_is_remote(x->m->rt))
        agentc_forget_address(x->rec.id); /* a new task, a new address */
    r = rt_ws_start(x->m->rt, x->rec.container_id, reterr);
    if (r < 0)
        return r;
    r = agentc_wait_ready(x->m, x->rec.id, WS_AGENT_TIMEOUT_MS, reterr);
    if (r < 0) {
        struct rt_ws_info info = {0};
        if (rt_ws_inspect(x->m->rt, x->rec.container_id, &info, NULL) == 0) {
            if (info.status && strcmp(info.status, "running") != 0)
                berr_wrap(reterr, "the container is '%s'", info.status);
            rt_ws_info_release(&info);
        }
        return r;
    }
    /* on a cluster: the node it landed on, for berth show */
    struct rt_ws_info info = {0};
    if (rt_is_remote(x->m->rt) && rt_ws_inspect(x->m->rt, x->rec.container_id, &info, NULL) == 0 &&
        info.node)
        runtime_set(x, "node", json_string(info.node));
    rt_ws_info_release(&info);
    return 0;
}

/* On a remote runtime the checkout made here goes into the workspace's files
 * volume on its node: a tar of it (from a prebuild: the tar it kept) as the
 * stdin of tar in the container, which then gives it to the remote user.
 * Once: a mark in .git says the volume has it, so that a rebuild (or a create
 * taken up again after berthd was killed) keeps what the user changed there. */
static int ship_files(struct job_ctx *x, const char *dest, struct berr **reterr)
{
    _cleanup_free_ char *dir = repo_dir_name(x->rec.repo);
    _cleanup_free_ char *target = xasprintf("/workspaces/%s", dir);
    _cleanup_free_ char *uid = xasprintf("%lld", (long long)x->rec.uid);
    _cleanup_free_ char *gid = xasprintf("%lld", (long long)x->rec.gid);
    /* the volume has them already: kept, and the user's, as on one host
     * (test exits 1 only when the mark is not there: anything else is an
     * error, never a reason to unpack over the user's files) */
    _cleanup_free_ char *mark = xasprintf("%s/.git/berth-checkout", target);
    _cleanup_strv_ struct strv test = STRV_INIT;
    strv_pushl(&test, "test", "-e", mark, NULL);
    int status = -1;
    int r = exec_in(x, &test, "root", "files: ", NULL, &status, reterr);
    if (r < 0)
        return r;
    if (status != 0 && status != 1)
        return berr_make(reterr, EIO, "cannot tell whether the node has the files (exit %d)",
                         status);
    if (status == 0) {
        _cleanup_strv_ struct strv own = STRV_INIT;
        _cleanup_free_ char *ids = xasprintf("%s:%s", uid, gid);
        strv_pushl(&own, "chown", "-R", ids, target, NULL);
        r = exec_in(x, &own, "root", "files: ", NULL, &status, reterr);
        if (r < 0)
            return r;
        if (status != 0)
            return berr_make(reterr, EIO, "cannot give %s to uid %s on the node (exit %d)", target,
                             uid, status);
        jlog(x, "the files in the workspace's volume on its node are kept");
        return 0;
    }
    _cleanup_(run_cmd_releasep) struct run_cmd tar = RUN_CMD_INIT;
    if (x->from) {
        /* from a prebuild: the checkout it left, as its node packed it */
        _cleanup_free_ char *pb_tar = prebuild_files_tar(x->m, x->from->id);
        r = read_file(pb_tar, WS_SHIP_MAX, &tar.output);
        if (r < 0)
            return berr_make(reterr, -r, "cannot read prebuild %s's files '%s': %s", x->from->id,
                             pb_tar, strerror(-r));
    } else {
        strv_pushl(&tar.args, "tar", "-C", dest, "-cf", "-", ".", NULL);
        tar.capture = true;
        tar.max_output = WS_SHIP_MAX;
        tar.timeout_ms = 300000;
        r = run_cmd(&tar, reterr);
        if (r != 0)
            return r < 0 ? r : berr_make(reterr, EIO, "cannot pack the checkout '%s'", dest);
    }
    _cleanup_strv_ struct strv argv = STRV_INIT;
    strv_pushl(&argv, "/bin/sh", "-c",
               "mkdir -p \"$1\" && tar -xf - -C \"$1\" && : >\"$1/.git/berth-checkout\" && "
               "chown -R \"$2:$3\" \"$1\"",
               "sh", target, uid, gid, NULL);
    jlog(x, "copying the %s (%zu kB) to the workspace's node",
         x->from ? "prebuild's checkout" : "checkout", tar.output.len / 1024);
    x->limits.input = &tar.output;
    r = exec_in(x, &argv, "root", "files: ", NULL, &status, reterr);
    x->limits.input = NULL;
    if (r < 0)
        return r;
    if (status != 0)
        return berr_make(reterr, EIO, "cannot unpack the checkout into %s on the node (exit %d)",
                         target, status);
    return 0;
}

/* Finds the remote user's uid and gid, and gives them the checkout. */
static int step_own_files(struct job_ctx *x, struct berr **reterr)
{
    const char *user = x->rec.remote_user;
    int64_t ids[2] = {-1, -1};
    const char *flags[] = {"-u", "-g"};
    for (int i = 0; i < 2; i++) {
        _cleanup_strv_ struct strv argv = STRV_INIT;
        strv_pushl(&argv, "id", flags[i], "--", user, NULL);
        _cleanup_buf_ struct buf out = BUF_INIT;
        int status = -1;
        int r = exec_in(x, &argv, "root", "", &out, &status, reterr);
        if (r < 0)
            return r;
        buf_rtrim(&out);
        char *end = NULL;
        long v = strtol(out.buf, &end, 10);
        if (status != 0 || !out.len || *end || v < 0)
            return berr_make(reterr, ENOENT, "remote user '%s' does not exist in image '%s'", user,
                             x->rec.image);
        ids[i] = v;
    }
    x->rec.uid = ids[0];
    x->rec.gid = ids[1];
    _cleanup_free_ char *dest = clone_path(x);
    if (rt_is_remote(x->m->rt))
        return ship_files(x, dest, reterr);
    /* a prebuild's files are the user's already (a chown would copy every
     * one of them up into this workspace's layer) */
    bool owned = x->from && x->from->uid == ids[0] && x->from->gid == ids[1];
    int r = owned ? 0 : chown_r(dest, (uid_t)ids[0], (gid_t)ids[1]);
    if (r < 0)
        return berr_make(reterr, -r, "cannot give '%s' to uid %lld: %s", dest, (long long)ids[0],
                         strerror(-r));
    /* the IDE's socket lives in a directory of the remote user's: the run
     * dir itself stays root's */
    _cleanup_free_ char *run = ws_run_dir(x->m, x->rec.id);
    _cleanup_free_ char *ide = xasprintf("%s/ide", run);
    if ((mkdir(ide, 0700) < 0 && errno != EEXIST) || lchown(ide, (uid_t)ids[0], (gid_t)ids[1]) < 0)
        return berr_make(reterr, errno, "cannot prepare '%s': %s", ide, strerror(errno));
    return 0;
}

/* Creates the container from the config and brings it to running, then runs
 * the create-time hooks (once per container) and postStart. */
int provision(struct job_ctx *x, const char *requested_path, struct berr **reterr)
{
    struct dc_config cfg;
    dc_config_init(&cfg);
    struct dc_run_options opts = {0};
    json_t *image = NULL;
    _cleanup_free_ char *run = ws_run_dir(x->m, x->rec.id);
    _cleanup_free_ char *failure = NULL;
    int r = step_config(x, requested_path, &cfg, reterr);
    if (r < 0)
        goto out;
    (void)job_save(x);
    if (x->from) {
        /* the prebuild's image was made from this one (build and features
         * done): its metadata and command are what the config meant */
        _cleanup_free_ char *base = prebuild_base_image(x->from);
        set_field(&x->rec.image, base);
        r = step_image(x, &image, reterr);
    } else {
        r = step_build(x, &cfg, reterr);
        if (r == 0)
            r = step_image(x, &image, reterr);
        if (r == 0)
            r = step_features(x, &cfg, &image, reterr);
    }
    if (r < 0)
        goto out;
    dc_merge_image_metadata(&cfg, image_label(image, "devcontainer.metadata"));
    set_field(&x->rec.remote_user, pick_user(&cfg, image));
    if (cfg.workspace_folder)
        set_field(&x->rec.workspace_folder, cfg.workspace_folder);
    struct policy pol;
    policy_load(x->m, &pol);
    r = dc_run_options_build(&cfg, x->rec.devcontainer_path, &pol.p, &opts, reterr);
    policy_release(&pol);
    if (r < 0)
        goto out;
    /* what the container gets only by the allow-list: checked again at each start */
    json_t *granted = json_array();
    for (size_t i = 0; i < opts.granted.n; i++)
        json_array_append_new(granted, json_string(opts.granted.v[i]));
    runtime_set(x, "granted", granted);
    if (cfg.init)
        jlog(x, "init: berth-agent is the container's init already");

    /* only now, with the new one sure to be made, does the old container go */
    x->replaced = true;
    remove_container(x);
    (void)rm_rf(run);
    /* 0711: the remote user may pass through to its ide/ dir, not list or use the rest */
    r = mkdir_p(run, 0711);
    if (r < 0) {
        r = berr_make(reterr, -r, "cannot create '%s': %s", run, strerror(-r));
        goto out;
    }
    r = create_volumes(x, &opts, reterr);
    if (r < 0)
        goto out;
    /* from a prebuild: its committed image, with what onCreateCommand wrote */
    if (x->from)
        set_field(&x->rec.image, x->from->image);
    char *cid = NULL;
    jevent(x, "container", "creating container from '%s'", x->rec.image);
    r = container_create(x, &cfg, &opts, image, &cid, reterr);
    if (r < 0)
        goto out;
    set_field(&x->rec.container_id, cid);
    free(cid);
    (void)job_save(x);
    r = step_start_container(x, reterr);
    if (r < 0)
        goto out;
    jlog(x, "agent ready");
    r = step_own_files(x, reterr);
    if (r < 0)
        goto out;
    (void)job_save(x);

    step_runtime(x, &cfg, image);

    enum dc_hook wait_for = DC_UPDATE_CONTENT;
    for (size_t i = 0; i < ELEMENTSOF(lifecycle_hooks); i++)
        if (cfg.wait_for && strcmp(cfg.wait_for, dc_hook_name(lifecycle_hooks[i])) == 0)
            wait_for = lifecycle_hooks[i];
    if (cfg.wait_for && strcmp(cfg.wait_for, dc_hook_name(wait_for)) != 0)
        jlog(x, "waitFor \"%s\" is not a lifecycle command Berth waits for: using %s", cfg.wait_for,
             dc_hook_name(wait_for));
    runtime_set(x, "create_pending", NULL);
    /* a prebuild stops at the spec's prebuild point; a workspace from one
     * runs only what comes after it (updateContentCommand again when the
     * branch has moved on since) */
    size_t first = 0, end = x->prebuild ? 2 : ELEMENTSOF(lifecycle_hooks);
    if (x->from) {
        first = 2;
        if (x->head && x->from->commit && strcmp(x->head, x->from->commit) != 0) {
            first = 1;
            r = prebuild_update_checkout(x, &failure, reterr);
            if (r < 0)
                goto out;
        } else {
            jlog(x, "the prebuild is at the branch's commit: its onCreateCommand and "
                    "updateContentCommand are not run again");
        }
        size_t wait_idx = wait_for == DC_ON_CREATE ? 0 : 1;
        for (size_t k = first; wait_idx < first && k < end; k++)
            if (has_commands(&cfg, lifecycle_hooks[k])) {
                job_set_state(x, WS_RUNNING, NULL);
                jlog(x,
                     "ready: the workspace can be used now; %s and what follows run on "
                     "(Ctrl-C stops following this log, not the commands)",
                     dc_hook_name(lifecycle_hooks[k]));
                break;
            }
    }
    for (size_t i = first; i < end && !failure; i++) {
        /* a stop or delete came: its container is being stopped */
        if (lifecycle_step(x, &cfg, i, &r, &failure, reterr)) {
            x->interrupted = true;
            goto out;
        }
        if (r < 0)
            goto out;
        /* the owner's dotfiles come after postCreateCommand (even a failed one) */
        if (!x->prebuild && lifecycle_hooks[i] == DC_POST_CREATE)
            step_dotfiles(x);
        /* waitFor: the workspace is ready for its user from here on; the
         * later commands keep running, shown in "lifecycle" */
        if (!x->prebuild && lifecycle_hooks[i] == wait_for && !failure &&
            i + 1 < ELEMENTSOF(lifecycle_hooks)) {
            job_set_state(x, WS_RUNNING, NULL);
            for (size_t k = i + 1; k < ELEMENTSOF(lifecycle_hooks); k++)
                if (has_commands(&cfg, lifecycle_hooks[k])) {
                    jlog(x,
                         "ready: the workspace can be used now; %s and what follows run on "
                         "(Ctrl-C stops following this log, not the commands)",
                         dc_hook_name(lifecycle_hooks[k]));
                    break;
                }
        }
    }
    runtime_set(x, "lifecycle", json_string(failure ? "failed" : "done"));
    /* customizations.vscode.settings become the IDE's machine settings */
    json_t *settings = json_object_get(
        json_object_get(json_object_get(cfg.raw, "customizations"), "vscode"), "settings");
    if (json_is_object(settings)) {
        _cleanup_free_ char *text = json_dumps(settings, JSON_INDENT(2));
        _cleanup_strv_ struct strv argv = STRV_INIT;
        strv_pushl(&argv, "/bin/sh", "-c",
                   "d=\"$HOME/.local/share/code-server/Machine\" && mkdir -p \"$d\" && "
                   "printf '%s\\n' \"$1\" > \"$d/settings.json\"",
                   "sh", text, NULL);
        int status = -1;
        struct berr *se = NULL;
        if (exec_in(x, &argv, x->rec.remote_user, "", NULL, &status, &se) < 0 || status != 0)
            jlog(x, "warning: cannot write the VS Code settings: %s",
                 se ? berr_msg(se) : "the command failed");
        else
            jlog(x, "VS Code settings from customizations.vscode.settings applied");
        berr_free(se);
    }
    install_extensions(x, &cfg);
    /* a failed lifecycle command leaves a usable workspace, as in Codespaces */
    set_field(&x->rec.error, failure);
    r = 0;
out:
    if (r < 0) {
        /* a command cut short by the failure is not running any more */
        _cleanup_free_ char *cut = lifecycle_running(&x->rec);
        if (cut)
            runtime_set(x, "lifecycle", json_string("failed"));
    }
    json_decref(image);
    dc_run_options_release(&opts);
    dc_config_release(&cfg);
    return r;
}
