/* prebuild.c - prebuilds: a workspace's slow set-up done before anyone asks.
 *
 * A prebuild runs the create pipeline (clone from the mirror, image, build,
 * features, container, onCreateCommand, updateContentCommand) and then keeps
 * two things: the container's filesystem, committed by the engine as an image
 * (localhost/berth/prebuild-ID), and the checkout it left under
 * DATA/workspaces/ID, which no container writes again. A workspace made from
 * it gets a container of that image and its files as an overlay: the
 * prebuild's checkout is the read-only lower layer, the workspace's own
 * upper layer takes every change. Neither costs time that grows with the
 * prebuild's size, and what one workspace writes is never seen by the
 * prebuild or another workspace.
 *
 * On a remote runtime (a cluster) the files are in a volume on a node, and
 * the prebuild runs where the runtime can commit it (the manager's node):
 * its checkout is kept as a tar, DATA/workspaces/ID/files.tar, which a
 * workspace from it unpacks into its own volume on its node (ship_files;
 * the overlay here only serves its configuration), and the nodes pull the
 * image from the registry.
 *
 * Rows live in the prebuilds table (the workspaces' shape); the runtime JSON
 * also holds config_hash, base_image, requested_path and size. States:
 * building, ready, failed, skipped, removed (kept while workspaces lie on it).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "git/git.h"
#include "store/accounts.h"
#include "util/fs.h"
#include "util/log.h"
#include "workspace/agentc.h"
#include "workspace/ws-internal.h"

#define PB_IMAGE_REPO "localhost/berth/prebuild-"
#define PB_KEEP_DEFAULT 3

/* Choosing a prebuild and claiming it (the workspace's runtime names it) is
 * one step against removing one: a prebuild is never taken from under a
 * workspace that has just picked it. */
static pthread_mutex_t pb_lock = PTHREAD_MUTEX_INITIALIZER;

static char *rt_string(const struct ws_record *r, const char *key)
{
    json_t *rt = runtime_get(r);
    const char *v = json_string_value(json_object_get(rt, key));
    char *s = v ? xstrdup(v) : NULL;
    json_decref(rt);
    return s;
}

char *prebuild_base_image(const struct ws_record *pb)
{
    return rt_string(pb, "base_image");
}

static bool same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

bool prebuild_is_of(const struct ws_record *pb, const char *repo, const char *branch,
                    const char *requested)
{
    _cleanup_free_ char *preq = rt_string(pb, "requested_path");
    return strcmp(pb->repo, repo) == 0 && same(pb->branch, branch) && same(preq, requested);
}

/* The digest of what configures the container at commit: the devcontainer
 * folder or file, and .gitpod.yml, as the mirror has them. */
static int config_hash(const char *mirror, const char *commit, const char *requested,
                       char **ret_hash, struct berr **reterr)
{
    _cleanup_buf_ struct buf out = BUF_INIT;
    int r;
    if (requested)
        r = git_run(mirror, NULL, NULL, &out, reterr, "ls-tree", "-r", commit, "--", requested,
                    ".gitpod.yml", NULL);
    else
        r = git_run(mirror, NULL, NULL, &out, reterr, "ls-tree", "-r", commit, "--",
                    ".devcontainer", ".devcontainer.json", ".gitpod.yml", NULL);
    if (r < 0)
        return r;
    unsigned char h[16];
    crypto_generichash(h, sizeof(h), (const unsigned char *)out.buf, out.len, NULL, 0);
    char hex[sizeof(h) * 2 + 1];
    sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
    *ret_hash = xstrdup(hex);
    return 0;
}

/* ---- the files of a workspace made from a prebuild ---- */

static bool is_mountpoint(const char *path)
{
    struct stat a, b;
    _cleanup_free_ char *parent = xasprintf("%s/..", path);
    return stat(path, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

int prebuild_mount(struct job_ctx *x, struct berr **reterr)
{
    _cleanup_free_ char *pb_id = rt_string(&x->rec, "prebuild");
    if (!pb_id)
        return 0;
    _cleanup_free_ char *dest = clone_path(x);
    if (is_mountpoint(dest))
        return 0;
    _cleanup_free_ char *files = ws_files_dir(x->m, x->rec.id);
    _cleanup_free_ char *name = repo_dir_name(x->rec.repo);
    _cleanup_free_ char *lower = xasprintf("%s/workspaces/%s/%s", x->m->data_dir, pb_id, name);
    _cleanup_free_ char *upper = xasprintf("%s/.layer/upper", files);
    _cleanup_free_ char *work = xasprintf("%s/.layer/work", files);
    struct stat lst;
    if (stat(lower, &lst) < 0)
        return berr_make(reterr, ENOENT,
                         "the files of prebuild '%s', which this workspace's files lie on, are "
                         "gone",
                         pb_id);
    const char *paths[] = {upper, work, dest};
    for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
        int r = mkdir_p(paths[i], 0755);
        if (r < 0)
            return berr_make(reterr, -r, "cannot create '%s': %s", paths[i], strerror(-r));
        if (strpbrk(paths[i], ",:\\"))
            return berr_make(reterr, EINVAL, "'%s' cannot be an overlay path", paths[i]);
    }
    /* the top of the checkout looks as the prebuild's does */
    if (lchown(upper, lst.st_uid, lst.st_gid) < 0 || chmod(upper, lst.st_mode & 07777) < 0)
        return berr_make(reterr, errno, "cannot prepare '%s': %s", upper, strerror(errno));
    _cleanup_free_ char *opts = xasprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work);
    if (mount("overlay", dest, "overlay", MS_NOSUID | MS_NODEV, opts) < 0)
        return berr_make(reterr, errno, "cannot mount the workspace's files over prebuild '%s': %s",
                         pb_id, strerror(errno));
    return 0;
}

void prebuild_unmount(struct ws_manager *m, const struct ws_record *r)
{
    _cleanup_free_ char *files = ws_files_dir(m, r->id);
    _cleanup_free_ char *name = repo_dir_name(r->repo);
    _cleanup_free_ char *dest = xasprintf("%s/%s", files, name);
    for (int i = 0; i < 5 && is_mountpoint(dest); i++)
        (void)umount2(dest, MNT_DETACH);
}

/* ---- choosing one ---- */

/* A prebuild is its owner's, and everyone's who may clone the repository
 * (the caller checked that) when an admin shared its configuration. */
static bool may_use(struct ws_manager *m, const struct ws_record *pb, const char *user)
{
    if (same(pb->owner, user))
        return true;
    _cleanup_free_ char *config = rt_string(pb, "config");
    struct pb_config c;
    if (!config || store_pbc_get(m->store, config, &c, NULL) < 0)
        return false;
    bool shared = json_is_true(json_object_get(c.settings, "shared"));
    pb_config_release(&c);
    return shared;
}

/* The newest ready prebuild of the owner for this workspace's repository,
 * branch and configuration at the branch's head, or NULL. */
struct ws_record *prebuild_pick(struct job_ctx *x, const char *mirror, const char *requested,
                                const char *head)
{
    _cleanup_free_ char *hash = NULL;
    if (config_hash(mirror, head, requested, &hash, NULL) < 0)
        return NULL;
    _cleanup_free_ char *branch =
        x->rec.branch ? xstrdup(x->rec.branch) : git_mirror_default_branch(mirror);
    struct ws_record *list = NULL;
    size_t n = 0;
    if (store_pb_list(x->m->store, &list, &n, NULL) < 0)
        return NULL;
    struct ws_record *pick = NULL;
    for (size_t i = 0; i < n; i++) {
        struct ws_record *p = &list[i];
        _cleanup_free_ char *ph = rt_string(p, "config_hash");
        json_t *prt = runtime_get(p);
        bool same_rt = json_is_true(json_object_get(prt, "remote")) == rt_is_remote(x->m->rt);
        json_decref(prt);
        if (!pick && same_rt && strcmp(p->state, "ready") == 0 &&
            prebuild_is_of(p, x->rec.repo, branch, requested) && ph && strcmp(ph, hash) == 0 &&
            may_use(x->m, p, x->rec.owner)) {
            pick = xcalloc(1, sizeof(*pick));
            ws_record_copy(pick, p);
        }
        ws_record_release(p);
    }
    free(list);
    return pick;
}

int prebuild_try(struct job_ctx *x, const char *mirror, const char *requested, bool *ret_used,
                 struct berr **reterr)
{
    *ret_used = false;
    json_t *rt = runtime_get(&x->rec);
    bool off = json_is_true(json_object_get(rt, "no_prebuild"));
    const char *v = json_string_value(json_object_get(rt, "prebuild"));
    _cleanup_free_ char *was = v ? xstrdup(v) : NULL;
    json_decref(rt);
    if (was) {
        /* a create cut short by a restart starts over, from the newest */
        prebuild_unmount(x->m, &x->rec);
        runtime_set(x, "prebuild", NULL);
        prebuild_collect(x->m, was);
    }
    if (off || x->rec.commit || x->rec.ref || !x->rec.owner)
        return 0;
    struct git_target t = {.branch = x->rec.branch};
    _cleanup_free_ char *head = NULL;
    if (git_mirror_resolve(mirror, &t, &head, NULL) < 0)
        return 0; /* the clone says what is wrong with the branch */
    pthread_mutex_lock(&pb_lock);
    struct ws_record *pb = prebuild_pick(x, mirror, requested, head);
    if (pb)
        runtime_set(x, "prebuild", json_string(pb->id));
    pthread_mutex_unlock(&pb_lock);
    if (!pb) {
        jlog(x, "no ready prebuild of this branch and configuration: a full create");
        return 0;
    }
    x->from = pb;
    x->head = TAKE_PTR(head);
    _cleanup_free_ char *files = ws_files_dir(x->m, x->rec.id);
    (void)rm_rf(files);
    jevent(x, "prebuild",
           "starting from prebuild %s (commit %.12s): no clone, build or "
           "onCreateCommand",
           pb->id, pb->commit);
    int r = prebuild_mount(x, reterr);
    if (r < 0)
        return r;
    set_field(&x->rec.commit, pb->commit);
    (void)job_save(x);
    *ret_used = true;
    return 0;
}

/* Brings the prebuild's checkout to the branch's head inside the container
 * (git on the host never runs in a .git a container has written): berthd
 * bundles the new commits from its mirror, the remote user's git fetches
 * them from that bundle, given as stdin. */
int prebuild_update_checkout(struct job_ctx *x, char **ret_failure, struct berr **reterr)
{
    _cleanup_free_ char *branch =
        x->rec.branch ? xstrdup(x->rec.branch) : git_mirror_default_branch(x->mirror);
    if (!branch) {
        *ret_failure = xstrdup("cannot tell the repository's default branch");
        return 0;
    }
    jevent(x, "prebuild", "the branch moved on since the prebuild: updating %.12s to %.12s",
           x->from->commit, x->head);
    _cleanup_free_ char *run = ws_run_dir(x->m, x->rec.id);
    _cleanup_free_ char *bundle = xasprintf("%s/update.bundle", run);
    _cleanup_free_ char *ref = xasprintf("refs/heads/%s", branch);
    _cleanup_free_ char *not = xasprintf("^%s", x->from->commit);
    struct berr *e = NULL;
    int r = git_run(x->mirror, NULL, NULL, NULL, &e, "bundle", "create", "--quiet", bundle, ref,
                    not, NULL);
    if (r < 0 || chmod(bundle, 0644) < 0) {
        *ret_failure = xasprintf("cannot bundle the new commits: %s", e ? berr_msg(e) : "chmod");
        berr_free(e);
        (void)unlink(bundle);
        return 0;
    }
    _cleanup_buf_ struct buf data = BUF_INIT;
    r = read_file(bundle, 256u << 20, &data);
    (void)unlink(bundle);
    if (r < 0) {
        *ret_failure = xasprintf("cannot read the bundle of the new commits: %s", strerror(-r));
        return 0;
    }
    _cleanup_free_ char *dir = repo_dir_name(x->rec.repo);
    _cleanup_free_ char *checkout = xasprintf("/workspaces/%s", dir);
    _cleanup_strv_ struct strv argv = STRV_INIT;
    /* the bundle as stdin, into a file of the container's own (a cluster's
     * nodes see nothing of berthd's run dir) */
    strv_pushl(&argv, "/bin/sh", "-c",
               "b=$(mktemp) && cat >\"$b\" && cd \"$1\" && git fetch --quiet \"$b\" "
               "\"+refs/heads/$2:refs/remotes/origin/$2\" && "
               "git merge --ff-only --quiet \"refs/remotes/origin/$2\"; s=$?; rm -f \"$b\"; "
               "exit $s",
               "sh", checkout, branch, NULL);
    int status = -1;
    x->limits.input = &data;
    r = exec_in(x, &argv, x->rec.remote_user, "git: ", NULL, &status, reterr);
    x->limits.input = NULL;
    if (r < 0)
        return r;
    if (status != 0) {
        *ret_failure = xasprintf("the checkout could not be brought from the prebuild's commit "
                                 "%.12s to %.12s (git exited with %d); the workspace has the "
                                 "prebuild's commit",
                                 x->from->commit, x->head, status);
        return 0;
    }
    set_field(&x->rec.commit, x->head);
    (void)job_save(x);
    jlog(x, "checked out %.12s", x->head);
    return 0;
}

/* ---- making one ---- */

static char *image_name(const char *id)
{
    return xasprintf(PB_IMAGE_REPO "%s:latest", id);
}

/* Removes a prebuild's image, files and row; one that workspaces still lie
 * on is only marked removed, and goes with the last of them. */
static void prebuild_discard(struct ws_manager *m, struct ws_record *pb)
{
    pthread_mutex_lock(&pb_lock);
    bool used = store_pb_users(m->store, pb->id) > 0;
    if (used && strcmp(pb->state, "removed") != 0) {
        set_field(&pb->state, "removed");
        (void)store_pb_update(m->store, pb, NULL);
    } else if (!used) {
        (void)store_pb_delete(m->store, pb->id, NULL);
    }
    pthread_mutex_unlock(&pb_lock);
    if (used)
        return;
    _cleanup_free_ char *img = image_name(pb->id);
    (void)rt_image_remove(m->rt, img, NULL);
    _cleanup_free_ char *cname = xasprintf("berth-%s", pb->id);
    (void)rt_ws_remove(m->rt, cname, NULL);
    _cleanup_free_ char *files = ws_files_dir(m, pb->id);
    _cleanup_free_ char *run = ws_run_dir(m, pb->id);
    (void)rm_rf(files);
    (void)rm_rf(run);
}

void prebuild_collect(struct ws_manager *m, const char *id)
{
    struct ws_record pb;
    if (store_pb_get(m->store, id, &pb, NULL) < 0)
        return;
    if (strcmp(pb.state, "removed") == 0)
        prebuild_discard(m, &pb);
    ws_record_release(&pb);
}

/* Keeps the newest `keep` ready prebuilds of one repo, branch and config. */
static void prebuild_retain(struct job_ctx *x, int64_t keep)
{
    struct ws_record *list = NULL;
    size_t n = 0;
    if (store_pb_list(x->m->store, &list, &n, NULL) < 0)
        return;
    _cleanup_free_ char *req = rt_string(&x->rec, "requested_path");
    int64_t seen = 0;
    for (size_t i = 0; i < n; i++) {
        struct ws_record *p = &list[i];
        if (strcmp(p->state, "ready") == 0 && same(p->owner, x->rec.owner) &&
            prebuild_is_of(p, x->rec.repo, x->rec.branch, req) && ++seen > keep) {
            jlog(x, "removing older prebuild %s (keeping the newest %lld)", p->id, (long long)keep);
            prebuild_discard(x->m, p);
        }
        ws_record_release(p);
    }
    free(list);
}

int64_t prebuild_total_size(struct ws_manager *m, size_t *ret_n)
{
    struct ws_record *list = NULL;
    size_t n = 0, counted = 0;
    int64_t total = 0;
    if (store_pb_list(m->store, &list, &n, NULL) < 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        json_t *rt = runtime_get(&list[i]);
        int64_t size = json_integer_value(json_object_get(rt, "size"));
        json_decref(rt);
        if (size > 0) {
            total += size;
            counted++;
        }
        ws_record_release(&list[i]);
    }
    free(list);
    if (ret_n)
        *ret_n = counted;
    return total;
}

/* A prebuild may start while the prebuilds' quota has room. */
static int quota_check(struct ws_manager *m, struct berr **reterr)
{
    int64_t quota = store_setting_int(m->store, WS_SETTING_PREBUILD_QUOTA_MB, -1) * 1000000;
    if (quota < 0)
        return 0;
    size_t n = 0;
    int64_t used = prebuild_total_size(m, &n);
    if (used < quota)
        return 0;
    return berr_make(reterr, ENOSPC,
                     "the prebuilds on this server use %.1f MB of their %.1f MB quota (%zu "
                     "prebuilds): remove some (berth prebuild rm ID), lower --keep, or ask an "
                     "admin to raise the quota (berth admin settings --prebuild-quota)",
                     (double)used / 1e6, (double)quota / 1e6, n);
}

char *prebuild_files_tar(struct ws_manager *m, const char *id)
{
    _cleanup_free_ char *files = ws_files_dir(m, id);
    return xasprintf("%s/files.tar", files);
}

struct fetch_ctx {
    struct job_ctx *x;
    int fd;
    int err; /* the first write's errno */
    int64_t size;
};

static void fetch_output_cb(int type, const char *data, size_t len, void *userdata)
{
    struct fetch_ctx *f = userdata;
    if (type != AGENT_STDOUT) {
        _cleanup_free_ char *msg = xstrndup(data, len);
        jlog(f->x, "files: %s", msg);
        return;
    }
    if (!f->err && f->size + (int64_t)len > WS_SHIP_MAX)
        f->err = EFBIG;
    while (len && !f->err) {
        ssize_t n = write(f->fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            f->err = errno;
            return;
        }
        data += n;
        len -= (size_t)n;
        f->size += n;
    }
}

/* A remote prebuild's checkout, as the container left it, into its
 * files.tar here (what berthd's clone, which stays for the configuration,
 * lacks: what onCreateCommand wrote). */
static int fetch_files(struct job_ctx *x, struct berr **reterr)
{
    _cleanup_free_ char *path = prebuild_files_tar(x->m, x->rec.id);
    _cleanup_free_ char *part = xasprintf("%s.part", path);
    _cleanup_free_ char *dir = repo_dir_name(x->rec.repo);
    _cleanup_free_ char *target = xasprintf("/workspaces/%s", dir);
    (void)unlink(part);
    struct fetch_ctx f = {.x = x, .fd = open(part, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)};
    if (f.fd < 0)
        return berr_make(reterr, errno, "cannot create '%s': %s", part, strerror(errno));
    _cleanup_strv_ struct strv argv = STRV_INIT;
    strv_pushl(&argv, "tar", "-C", target, "-cf", "-", ".", NULL);
    struct agentc_exec ex = {.argv = &argv, .env = &x->env, .user = "root", .timeout_ms = 1800000};
    int status = -1;
    jlog(x, "copying the checkout from the prebuild's node");
    int r = agentc_run(x->m, x->rec.id, &ex, fetch_output_cb, &f, &status, reterr);
    if (r == 0 && !f.err && fsync(f.fd) < 0)
        f.err = errno;
    close(f.fd);
    if (r == 0 && f.err == EFBIG)
        r = berr_make(reterr, EFBIG,
                      "the prebuild's checkout is over %u MB, more than a workspace on the "
                      "cluster takes from a prebuild",
                      WS_SHIP_MAX >> 20);
    else if (r == 0 && f.err)
        r = berr_make(reterr, f.err, "cannot write '%s': %s", part, strerror(f.err));
    /* exit 1: a file changed while tar read it (a process onCreateCommand
     * left running); the copy is what was there */
    if (r == 0 && status == 1)
        jlog(x, "warning: files changed while the checkout was copied");
    else if (r == 0 && status != 0)
        r = berr_make(reterr, EIO, "cannot pack the checkout on the prebuild's node (exit %d)",
                      status);
    if (r == 0 && rename(part, path) < 0)
        r = berr_make(reterr, errno, "cannot rename '%s': %s", part, strerror(errno));
    if (r < 0) {
        (void)unlink(part);
        return r;
    }
    jlog(x, "the prebuild's checkout: %.1f MB", (double)f.size / 1e6);
    return 0;
}

void do_prebuild(struct job_ctx *x)
{
    _cleanup_berr_ struct berr *e = NULL;
    _cleanup_free_ char *requested = rt_string(&x->rec, "requested_path");
    _cleanup_free_ char *mirror = NULL;
    jevent(x, "prebuild", "prebuilding '%s'%s%s", x->rec.repo, x->rec.branch ? " branch " : "",
           x->rec.branch ? x->rec.branch : "");
    int r = quota_check(x->m, &e);
    if (r == 0)
        r = step_fetch(x, &mirror, &e);
    _cleanup_free_ char *head = NULL;
    _cleanup_free_ char *hash = NULL;
    if (r == 0 && !x->rec.branch) {
        /* a prebuild is of a branch: the default one when none is named */
        _cleanup_free_ char *def = git_mirror_default_branch(mirror);
        if (def) {
            set_field(&x->rec.branch, def);
            (void)job_save(x);
        }
    }
    struct git_target t = {.branch = x->rec.branch};
    if (r == 0)
        r = git_mirror_resolve(mirror, &t, &head, &e);
    if (r == 0)
        r = config_hash(mirror, head, requested, &hash, &e);
    if (r < 0) {
        job_set_state(x, WS_FAILED, berr_msg(e));
        return;
    }
    runtime_set(x, "config_hash", json_string(hash));
    /* a commit that has a good prebuild already needs no second one */
    struct ws_record *list = NULL;
    size_t n = 0;
    _cleanup_free_ char *have = NULL;
    if (store_pb_list(x->m->store, &list, &n, NULL) == 0) {
        for (size_t i = 0; i < n; i++) {
            _cleanup_free_ char *ph = rt_string(&list[i], "config_hash");
            if (!have && strcmp(list[i].state, "ready") == 0 && same(list[i].owner, x->rec.owner) &&
                prebuild_is_of(&list[i], x->rec.repo, x->rec.branch, requested) &&
                same(list[i].commit, head) && same(ph, hash))
                have = xstrdup(list[i].id);
            ws_record_release(&list[i]);
        }
        free(list);
    }
    _cleanup_free_ char *trigger = rt_string(&x->rec, "trigger");
    if (have && trigger) {
        /* a poll or push that found nothing new leaves no trace */
        jlog(x, "commit %.12s has prebuild %s already", head, have);
        (void)store_pb_delete(x->m->store, x->rec.id, NULL);
        return;
    }
    if (have) {
        set_field(&x->rec.commit, head);
        free(x->rec.state);
        x->rec.state = xstrdup("skipped");
        _cleanup_free_ char *msg =
            xasprintf("commit %.12s has prebuild %s already: nothing to do", head, have);
        set_field(&x->rec.error, msg);
        (void)store_event_add(x->m->store, x->rec.id, "state", msg);
        jlog(x, "==> skipped: %s", msg);
        (void)job_save(x);
        return;
    }
    /* the prebuild is of the commit the mirror has now */
    set_field(&x->rec.commit, head);
    r = step_clone(x, mirror, &e);
    if (r == 0)
        r = provision(x, requested, &e);
    if (r == 0 && x->rec.error) /* a lifecycle command failed: not a good prebuild */
        r = berr_make(&e, EIO, "%s", x->rec.error);
    _cleanup_free_ char *img = image_name(x->rec.id);
    bool remote = rt_is_remote(x->m->rt);
    if (remote) /* its files are a tar, which only a remote runtime takes */
        runtime_set(x, "remote", json_true());
    if (r == 0) {
        runtime_set(x, "base_image", json_string(x->rec.image));
        jevent(x, "prebuild", "saving the container's filesystem as '%s'", img);
        _cleanup_free_ char *tag = xstrdup(img);
        char *colon = strrchr(tag, ':');
        *colon = 0;
        /* remote: the files from the node, and the container committed
         * while it runs (the commit pauses it); one host: stopped first */
        r = remote ? fetch_files(x, &e)
                   : rt_ws_stop(x->m->rt, x->rec.container_id, WS_STOP_TIMEOUT_S, &e);
        if (r == 0)
            r = rt_ws_commit(x->m->rt, x->rec.container_id, tag, colon + 1, &e);
    }
    if (remote && x->rec.container_id) {
        /* its volume on the manager's node is not needed again */
        _cleanup_berr_ struct berr *we = NULL;
        if (rt_ws_wipe(x->m->rt, x->rec.container_id, &we) < 0)
            jlog(x, "warning: %s", berr_msg(we));
    }
    remove_container(x);
    remove_volumes(x);
    _cleanup_free_ char *run = ws_run_dir(x->m, x->rec.id);
    (void)rm_rf(run);
    if (r < 0) {
        _cleanup_free_ char *files = ws_files_dir(x->m, x->rec.id);
        (void)rm_rf(files);
        job_set_state(x, WS_FAILED, berr_msg(e));
        return;
    }
    set_field(&x->rec.image, img);
    _cleanup_free_ char *files = ws_files_dir(x->m, x->rec.id);
    int64_t size = disk_usage(files);
    json_t *info = NULL;
    if (rt_image_inspect(x->m->rt, img, &info, NULL) == 0) {
        json_t *base = NULL;
        _cleanup_free_ char *base_name = rt_string(&x->rec, "base_image");
        int64_t total = json_integer_value(json_object_get(info, "Size"));
        int64_t below = 0;
        if (base_name && rt_image_inspect(x->m->rt, base_name, &base, NULL) == 0)
            below = json_integer_value(json_object_get(base, "Size"));
        if (total > below)
            size += total - below;
        json_decref(base);
    }
    json_decref(info);
    runtime_set(x, "size", json_integer(size));
    jlog(x, "prebuild %s of %.12s: %.1f MB (files and the container's changes)", x->rec.id,
         x->rec.commit, (double)size / 1e6);
    job_set_state(x, WS_RUNNING, NULL); /* "ready" */
    json_t *rt = runtime_get(&x->rec);
    int64_t keep = json_integer_value(json_object_get(rt, "keep"));
    json_decref(rt);
    if (keep <= 0)
        keep = store_setting_int(x->m->store, WS_SETTING_PREBUILD_KEEP, PB_KEEP_DEFAULT);
    prebuild_retain(x, keep);
}

/* ---- the manager's side ---- */

int ws_prebuild(struct ws_manager *m, const struct ws_prebuild_request *req, struct ws_record *ret,
                struct berr **reterr)
{
    struct ws_create_request cr = {.repo = req->repo,
                                   .branch = req->branch,
                                   .owner = req->owner,
                                   .owner_is_admin = req->owner_is_admin};
    if (m->rt->no_prebuilds) /* before the clone and the build, not after */
        return berr_make(reterr, ENOTSUP, "%s", m->rt->no_prebuilds);
    int r = ws_check_request(m, &cr, reterr);
    if (r < 0)
        return r;
    char id[16] = "pb";
    ws_random_hex(id + 2, 5);
    int64_t now = store_now();
    json_t *rt = json_object();
    if (req->devcontainer_path)
        json_object_set_new(rt, "requested_path", json_string(req->devcontainer_path));
    if (req->config_id)
        json_object_set_new(rt, "config", json_string(req->config_id));
    if (req->keep > 0)
        json_object_set_new(rt, "keep", json_integer(req->keep));
    if (req->trigger)
        json_object_set_new(rt, "trigger", json_string(req->trigger));
    struct ws_record rec = {
        .id = xstrdup(id),
        .name = xasprintf("prebuild-%s", id + 2),
        .state = xstrdup("building"),
        .repo = xstrdup(req->repo),
        .branch = req->branch ? xstrdup(req->branch) : NULL,
        .devcontainer_path = req->devcontainer_path ? xstrdup(req->devcontainer_path) : NULL,
        .commit = req->commit && strlen(req->commit) == 40 &&
                          strspn(req->commit, "0123456789abcdef") == 40
                      ? xstrdup(req->commit)
                      : NULL,
        .owner = req->owner ? xstrdup(req->owner) : NULL,
        .runtime = json_dumps(rt, JSON_COMPACT),
        .uid = -1,
        .gid = -1,
        .created_at = now,
        .updated_at = now,
    };
    json_decref(rt);
    r = store_pb_insert(m->store, &rec, reterr);
    if (r < 0) {
        ws_record_release(&rec);
        return r;
    }
    (void)store_event_add(m->store, rec.id, "state", "building");
    busy_take(m, rec.id);
    queue_job(m, rec.id, WS_ACTION_PREBUILD, false, false);
    *ret = rec;
    return 0;
}

int ws_prebuild_remove(struct ws_manager *m, const char *id, struct berr **reterr)
{
    struct ws_record pb;
    int r = store_pb_get(m->store, id, &pb, reterr);
    if (r < 0)
        return r;
    if (ws_is_busy(m, id)) {
        ws_record_release(&pb);
        return berr_make(reterr, EBUSY,
                         "prebuild '%s' is still building; remove it when it is done", id);
    }
    /* a workspace being made from it has it in its runtime already, and so
     * keeps it until that workspace is deleted */
    prebuild_discard(m, &pb);
    ws_record_release(&pb);
    return 0;
}

bool ws_prebuild_at_rest(struct ws_manager *m, const char *id)
{
    struct ws_record pb;
    if (store_pb_get(m->store, id, &pb, NULL) < 0)
        return true;
    bool rest = strcmp(pb.state, "building") != 0;
    ws_record_release(&pb);
    return rest && !ws_is_busy(m, id);
}

json_t *ws_prebuild_json(struct ws_manager *m, const struct ws_record *r)
{
    _cleanup_free_ char *created = store_time_iso(r->created_at);
    json_t *rt = runtime_get(r);
    json_int_t size = json_integer_value(json_object_get(rt, "size"));
    const char *config = json_string_value(json_object_get(rt, "config"));
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:s, s:i}", "id", r->id,
                  "state", strcmp(r->state, "running") == 0 ? "ready" : r->state, "repo", r->repo,
                  "branch", r->branch ? json_string(r->branch) : json_null(), "commit",
                  r->commit ? json_string(r->commit) : json_null(), "devcontainer_path",
                  r->devcontainer_path ? json_string(r->devcontainer_path) : json_null(), "error",
                  r->error ? json_string(r->error) : json_null(), "size", size, "owner",
                  r->owner ? json_string(r->owner) : json_null(), "config",
                  config ? json_string(config) : json_null(), "created_at", created, "used_by",
                  store_pb_users(m->store, r->id));
    json_decref(rt);
    return j;
}

/* After a restart: a prebuild cut short is discarded, never used. */
void prebuild_reconcile(struct ws_manager *m)
{
    struct ws_record *list = NULL;
    size_t n = 0;
    if (store_pb_list(m->store, &list, &n, NULL) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        struct ws_record *p = &list[i];
        if (strcmp(p->state, "building") == 0) {
            log_info("reconcile: prebuild '%s' was cut short by a restart: discarded", p->id);
            _cleanup_free_ char *cname = xasprintf("berth-%s", p->id);
            (void)rt_ws_wipe(m->rt, cname, NULL); /* a cluster: its volume on the node */
            (void)rt_ws_remove(m->rt, cname, NULL);
            _cleanup_free_ char *files = ws_files_dir(m, p->id);
            _cleanup_free_ char *run = ws_run_dir(m, p->id);
            (void)rm_rf(files);
            (void)rm_rf(run);
            set_field(&p->state, "failed");
            set_field(&p->error, "berthd restarted while this prebuild ran; it was discarded");
            (void)store_pb_update(m->store, p, NULL);
            (void)store_event_add(m->store, p->id, "reconcile", p->error);
        } else if (strcmp(p->state, "removed") == 0) {
            prebuild_discard(m, p);
        }
        ws_record_release(p);
    }
    free(list);
}
