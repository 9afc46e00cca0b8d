/* ws-internal.h - what the parts of the workspace module share.
 *
 * The module is one state machine split by concern:
 *   workspace.c  the manager, create and act (the state checks), log
 *                followers, the owner's secrets, the record as JSON;
 *   job.c        job plumbing: the busy set, one uv_work_t per action on the
 *                thread pool, the job's log, events and state writes;
 *   actions.c    what each action does (create, start, stop, rebuild, delete);
 *   provision.c  the pipeline a create or rebuild runs: clone, config, image
 *                (pull, build, features), container, agent, files, lifecycle;
 *   container.c  the server's policy and the runtime's workspace spec;
 *   lifecycle.c  running commands in the container: exec through the agent,
 *                the remote environment, lifecycle hooks, extensions;
 *   reconcile.c  bringing the store and the engine together after a restart;
 *   idle.c       idle auto-stop and retention (the arithmetic: idle-policy.c).
 *
 * Nothing here is for other modules: workspace.h is the module's manual.
 */
#ifndef BERTH_WS_INTERNAL_H
#define BERTH_WS_INTERNAL_H

#include <pthread.h>

#include "devcontainer/devcontainer.h"
#include "devcontainer/options.h"
#include "util/buf.h"
#include "util/run.h"
#include "util/xalloc.h"
#include "workspace/workspace.h"

#define WS_AGENT_TIMEOUT_MS (60 * 1000)
#define WS_STOP_TIMEOUT_S 10
#define WS_LOG_BATCH 500
/* the most of a checkout that goes to a workspace's node in one piece (a
 * create on a remote runtime, and the tar a prebuild there keeps) */
#define WS_SHIP_MAX (512u << 20)

struct ws_log_follower;

struct ws_manager {
    uv_loop_t *loop;
    struct store *store;
    struct runtime *rt; /* borrowed */
    char *data_dir;
    char *agent_dir; /* holds berth-agent; mounted read-only */
    char *default_image;
    char *askpass;         /* DATA/bin/git-askpass */
    char *ide_dir;         /* code-server tree, mounted read-only */
    pthread_mutex_t lock;  /* guards busy, attaching and after */
    struct strv busy;      /* ids with a job under way */
    struct strv attaching; /* ids whose postAttachCommand runs */
    /* "ACTION ID": a stop or delete asked for while lifecycle commands ran;
     * their job stops at the next command and the action follows it */
    struct strv after;
    uv_async_t notify; /* a job wrote a log line or changed a state */
    struct ws_log_follower *followers;
    bool delivering;
    ws_change_cb change_cb;
    void *change_data;
    ws_url_cb url_cb; /* set before any job runs */
    void *url_data;
    uv_timer_t poll_timer; /* prebuild configurations' polls (pbtrigger.c) */
    bool polling;
    /* idle.c: the clocks of running workspaces */
    pthread_mutex_t idle_lock;
    struct idle_entry *idle;
    size_t n_idle;
    int64_t idle_minute_ms;
    uv_timer_t idle_timer;
    uv_timer_t nodewatch_timer; /* a remote runtime's nodes (nodewatch.c) */
    bool nodewatch_busy;
    ws_idle_warn_cb idle_warn_cb;
    void *idle_warn_data;
    ws_ready_cb ready_cb;
    void *ready_data;
    int64_t sweep_us;
    size_t sweep_n;
};

/* What a job works on: the record, read from the store when the job starts. */
struct job_ctx {
    struct ws_manager *m;
    struct ws_record rec;
    struct buf line;  /* partial output line */
    bool interrupted; /* lifecycle commands cut short for a stop or delete */
    bool replaced;    /* provision removed the container it had */
    struct strv env;  /* the owner's secrets for this workspace */
    struct strv mask; /* their values, hidden in the log */
    /* a prebuild's job (the record is a row of the prebuilds table): its
     * provision stops after updateContentCommand */
    bool prebuild;
    /* a workspace made from a prebuild: its image, its files below ours */
    struct ws_record *from;
    const char *mirror; /* the repository's mirror, while a create runs */
    char *head;         /* the commit the workspace is to have, from the mirror */
    /* what exec_in gives the commands it runs now (dotfiles.c): a time
     * limit, a cap on what goes to the log, stdin; zero: none */
    struct {
        int64_t timeout_ms;
        size_t log_bytes;
        const struct buf *input;
    } limits;
};

/* The server's policy for what a devcontainer.json may ask (options.h): the
 * admin's allow-list and maxima, and the host paths no mount may reach. */
struct policy {
    struct dc_policy p;
    struct strv allow;
    struct strv forbidden;
};

static inline void set_field(char **field, const char *value)
{
    free(*field);
    *field = value ? xstrdup(value) : NULL;
}

/* ---- workspace.c ---- */

char *ws_files_dir(struct ws_manager *m, const char *id);
/* The directory name of the checkout: the repo's last path component without
 * ".git", reduced to characters that are safe in a path. */
char *repo_dir_name(const char *repo);
void sodium_memzero_buf(struct buf *b);
/* A repository on this server's disk (a path or file:// URL) is read with
 * berthd's rights: never from the data directory (other workspaces' files),
 * and for a user who is not an admin only under a "repo:/prefix" entry of the
 * allow-list. */
int check_local_repo(struct ws_manager *m, const struct ws_create_request *req,
                     struct berr **reterr);
void deliver_logs(uv_async_t *a);

/* ---- job.c ---- */

bool busy_take(struct ws_manager *m, const char *id);
/* The action that waits for id's job to end (and forgets it), or -1. With
 * set >= 0, records it instead (a delete wins over a stop). */
int after_job(struct ws_manager *m, const char *id, int set);
bool interrupt_asked(struct ws_manager *m, const char *id);
/* Whether id's postAttachCommand runs now. */
bool ws_is_attaching(struct ws_manager *m, const char *id);
void busy_release(struct ws_manager *m, const char *id);
void jlog(struct job_ctx *x, const char *fmt, ...);
void jevent(struct job_ctx *x, const char *type, const char *fmt, ...);
void log_line_cb(const char *line, void *data);
int job_save(struct job_ctx *x);
void job_set_state(struct job_ctx *x, enum ws_state s, const char *error);
char *clone_path(struct job_ctx *x);
void queue_job(struct ws_manager *m, const char *id, enum ws_action action, bool background,
               bool resume);

/* ---- provision.c ---- */

/* Checks that owner may clone repo and brings its mirror up to date with the
 * owner's stored credentials for the host (*ret_mirror: its path). */
int mirror_fetch(struct ws_manager *m, const char *repo, const char *owner, run_line_cb cb,
                 void *data, char **ret_mirror, struct berr **reterr);
/* The same for a job, with its log. */
int step_fetch(struct job_ctx *x, char **ret_mirror, struct berr **reterr);
/* Clones the workspace's checkout from the mirror and records its commit. */
int step_clone(struct job_ctx *x, const char *mirror, struct berr **reterr);
/* Reads devcontainer.json into cfg and picks the image. */
int step_config(struct job_ctx *x, const char *requested_path, struct dc_config *cfg,
                struct berr **reterr);
const char *image_label(json_t *inspect, const char *label);
/* Starts the container and waits for its agent. */
int step_start_container(struct job_ctx *x, struct berr **reterr);
/* Creates the container from the config and brings it to running, then runs
 * the create-time hooks (once per container) and postStart. */
int provision(struct job_ctx *x, const char *requested_path, struct berr **reterr);

/* ---- container.c ---- */

void policy_load(struct ws_manager *m, struct policy *pol);
void policy_release(struct policy *pol);
/* Named volumes are created up front, labelled with the workspace, so that
 * deleting the workspace finds and removes them. */
int create_volumes(struct job_ctx *x, const struct dc_run_options *o, struct berr **reterr);
void remove_volumes(struct job_ctx *x);
/* Creates the workspace's container through the runtime (*ret_id: its id). */
int container_create(struct job_ctx *x, const struct dc_config *cfg,
                     const struct dc_run_options *opts, json_t *image, char **ret_id,
                     struct berr **reterr);
void remove_container(struct job_ctx *x);

/* ---- lifecycle.c ---- */

int exec_in(struct job_ctx *x, const struct strv *argv, const char *user, const char *prefix,
            struct buf *capture, int *ret_status, struct berr **reterr);
json_t *runtime_get(const struct ws_record *r);
/* The lifecycle command r shows as running ("postCreateCommand"), newly
 * allocated, or NULL. */
char *lifecycle_running(const struct ws_record *r);
/* Sets one key of the runtime and saves the record. */
void runtime_set(struct job_ctx *x, const char *key, json_t *value);
/* Records what later sessions need from the configuration and puts its
 * environment into this job's too. */
void step_runtime(struct job_ctx *x, const struct dc_config *cfg, json_t *image);
/* Whether the config has anything to run for h. */
bool has_commands(const struct dc_config *cfg, enum dc_hook h);
int run_hook(struct job_ctx *x, const struct dc_config *cfg, enum dc_hook h, char **ret_failure,
             struct berr **reterr);
/* customizations.vscode.extensions: no marketplace is reachable, so an
 * extension is installed only from a .vsix an admin put in DATA/vsix (mounted
 * read-only at /.berth-vsix, named <publisher.name>[-version].vsix), and
 * listed as skipped otherwise. */
void install_extensions(struct job_ctx *x, const struct dc_config *cfg);
/* Runs lifecycle_hooks[i], unless a stop or delete waits. True when one does: the
 * job is to end now, the lifecycle shown "interrupted", and create_pending
 * naming the create-time command to run at the next start (this one, unless
 * it got to its end). */
bool lifecycle_step(struct job_ctx *x, const struct dc_config *cfg, size_t i, int *r,
                    char **failure, struct berr **reterr);

/* ---- actions.c ---- */

void do_create(struct job_ctx *x, bool resume);
/* postAttachCommand, run as it was recorded when the container was created. */
void do_attach(struct job_ctx *x);
void do_start(struct job_ctx *x);
/* Stops the container under lifecycle commands that a stop or delete
 * interrupts (their job then ends, and the action follows it). */
void do_interrupt(struct job_ctx *x);
void do_stop(struct job_ctx *x);
void do_rebuild(struct job_ctx *x);
void do_delete(struct job_ctx *x);

/* ---- workspace.c (more) ---- */

/* nbytes random bytes as hex into out (2 * nbytes + 1 chars). */
void ws_random_hex(char *out, size_t nbytes);
/* Prebuild ids start "pb"; workspace ids are hex. */
static inline bool ws_is_prebuild_id(const char *id)
{
    return id[0] == 'p';
}

/* ---- prebuild.c ---- */

void do_prebuild(struct job_ctx *x);
/* The image the prebuild's was committed from (newly allocated). */
char *prebuild_base_image(const struct ws_record *pb);
/* Whether pb is a prebuild of repo and branch for the configuration path a
 * request named (requested; NULL: the default locations). */
bool prebuild_is_of(const struct ws_record *pb, const char *repo, const char *branch,
                    const char *requested);
/* The newest matching ready prebuild for x at head (newly allocated), or NULL. */
struct ws_record *prebuild_pick(struct job_ctx *x, const char *mirror, const char *requested,
                                const char *head);
/* A create from a prebuild when one fits (*ret_used: whether it did): its
 * files mounted under the workspace's, x->from and x->head set. */
int prebuild_try(struct job_ctx *x, const char *mirror, const char *requested, bool *ret_used,
                 struct berr **reterr);
/* Mounts the workspace's files over its prebuild's, when it has one and
 * they are not mounted yet. */
int prebuild_mount(struct job_ctx *x, struct berr **reterr);
void prebuild_unmount(struct ws_manager *m, const struct ws_record *r);
/* Fetches and checks out x->head over the prebuild's commit, in the container. */
int prebuild_update_checkout(struct job_ctx *x, char **ret_failure, struct berr **reterr);
/* Where a prebuild made on a remote runtime keeps its checkout, as a tar
 * (newly allocated). */
char *prebuild_files_tar(struct ws_manager *m, const char *id);
/* Deletes a removed prebuild once no workspace lies on it. */
void prebuild_collect(struct ws_manager *m, const char *id);
void prebuild_reconcile(struct ws_manager *m);

/* ---- pbtrigger.c ---- */

void prebuild_poller_start(struct ws_manager *m);

/* ---- dotfiles.c ---- */

/* The owner's dotfiles into the container, and their install script, after
 * postCreateCommand of a new container. A failure is logged and an event;
 * the workspace goes on. */
void step_dotfiles(struct job_ctx *x);

/* ---- idle.c ---- */

void idle_sweeper_start(struct ws_manager *m);
/* On a remote runtime: running workspaces whose node is down become
 * unavailable, and running again when it is back (nodewatch.c). */
void nodewatch_start(struct ws_manager *m);

/* The lifecycle commands of a container, in order: the create-time ones
 * once, then postStartCommand at each start. */
#define WS_LIFECYCLE_HOOKS 4
extern const enum dc_hook lifecycle_hooks[WS_LIFECYCLE_HOOKS];

/* A remote runtime's agent (agentc-remote.c): a new key for id's agent, in
 * its run dir (0600), into key; and a connection to the agent through the
 * relay, after the handshake. */
int agent_key_make(struct ws_manager *m, const char *id, unsigned char key[32],
                   struct berr **reterr);
int agentc_connect_remote(struct ws_manager *m, const char *id, int *ret_fd, struct berr **reterr);
/* Forgets the address of id's agent that connections try first (its task is
 * made anew). */
void agentc_forget_address(const char *id);

#endif
