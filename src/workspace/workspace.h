/* workspace.h - workspaces: their state machine, lifecycle jobs and logs.
 *
 * A workspace is a clone on the host (DATA/workspaces/<id>/<repo>), a run dir
 * (DATA/run/<id>) and one container. Every change of state is written to the
 * store before its side effect, and every step is an event in the timeline.
 *
 * Long work (clone, pull, create, lifecycle commands) runs as a job on libuv's
 * thread pool, one job per workspace at a time: a second action while one runs
 * is refused with -EBUSY (the API answers 409). Jobs write log lines to the
 * store and wake the loop, which pushes them to followers of the log.
 *
 * On start-up ws_manager_reconcile() brings the store and the engine back into
 * agreement after a crash: interrupted jobs are resumed, containers that no
 * workspace owns are removed.
 */
#ifndef BERTH_WORKSPACE_H
#define BERTH_WORKSPACE_H

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "engine/runtime.h"
#include "store/store.h"
#include "util/err.h"
#include "util/strv.h"

#define WS_DEFAULT_IMAGE "localhost/berth/base:bookworm"
#define WS_LABEL_MANAGED RT_LABEL_MANAGED
#define WS_LABEL_ID RT_LABEL_ID

#define WS_STATES(X)                                                                               \
    X(WS_CREATING, "creating", true)                                                               \
    X(WS_STARTING, "starting", true)                                                               \
    X(WS_RUNNING, "running", false)                                                                \
    X(WS_STOPPING, "stopping", true)                                                               \
    X(WS_STOPPED, "stopped", false)                                                                \
    X(WS_REBUILDING, "rebuilding", true)                                                           \
    X(WS_DELETING, "deleting", true)                                                               \
    X(WS_FAILED, "failed", false)                                                                  \
    X(WS_UNAVAILABLE, "unavailable", false) /* its node is down (a cluster) */

#define WS_STATE_ENUM(e, s, b) e,
enum ws_state { WS_STATES(WS_STATE_ENUM) _WS_STATE_MAX, _WS_STATE_INVALID = -1 };
#undef WS_STATE_ENUM

const char *ws_state_name(enum ws_state s);
enum ws_state ws_state_from_name(const char *name);
bool ws_state_is_busy(enum ws_state s);

enum ws_action {
    WS_ACTION_CREATE,
    WS_ACTION_START,
    WS_ACTION_STOP,
    WS_ACTION_REBUILD,
    WS_ACTION_DELETE,
    WS_ACTION_ATTACH,    /* postAttachCommand, in the background */
    WS_ACTION_INTERRUPT, /* stops the container under running lifecycle commands */
    WS_ACTION_PREBUILD,  /* a prebuild's job (prebuild.c) */
};

struct ws_manager;

struct ws_manager_config {
    const char *data_dir;
    const char *agent_binary; /* host path of berth-agent, copied under DATA/agent */
    const char *default_image;
    const char *ide_dir; /* code-server tree, mounted read-only (default DATA/ide) */
    /* the length of one minute of idle timeouts, in ms (0: 60000); tests
     * shorten it (berthd --test-idle-minute MS) */
    int64_t idle_minute_ms;
};

int ws_manager_new(uv_loop_t *loop, struct store *store, struct runtime *rt,
                   const struct ws_manager_config *cfg, struct ws_manager **ret,
                   struct berr **reterr);
/* Stops accepting jobs; running jobs finish on their own. */
void ws_manager_free(struct ws_manager *m);

struct store *ws_manager_store(struct ws_manager *m);
/* True when workspaces run elsewhere (a Swarm's nodes): no run dir of theirs
 * is on this host, and VS Code listens on WS_IDE_PORT in the container. */
bool ws_manager_remote(struct ws_manager *m);
#define WS_IDE_PORT 7881
const char *ws_manager_data_dir(struct ws_manager *m);

/* What a user asks for when creating a workspace. */
struct ws_create_request {
    const char *repo;
    const char *branch;
    const char *commit;
    const char *ref;
    const char *name;
    const char *devcontainer_path;
    const char *owner;
    bool owner_is_admin; /* a local path may be cloned without a repo: entry */
    bool no_prebuild;    /* a cold create, even when a prebuild would do */
};

/* The checks every create and prebuild request passes: the URL, the target,
 * and that the owner may clone a local path. */
int ws_check_request(struct ws_manager *m, const struct ws_create_request *req,
                     struct berr **reterr);

/* Records a new workspace (state creating) and starts its create job.
 * -EINVAL: bad request; -EEXIST: name taken; -EDQUOT: a per-user limit. */
int ws_create(struct ws_manager *m, const struct ws_create_request *req, struct ws_record *ret,
              struct berr **reterr);

/* Starts start/stop/rebuild/delete on a workspace. -EBUSY when a job runs or the
 * state does not allow it (the message says why); -ENOENT when it is unknown. */
int ws_act(struct ws_manager *m, const char *id_or_name, enum ws_action action,
           struct ws_record *ret, struct berr **reterr);

/* A terminal or the IDE attached to the workspace: runs its
 * postAttachCommand in the background (output in the workspace's log). */
void ws_attached(struct ws_manager *m, const char *id);

/* Local URLs printed in a workspace (lifecycle commands, terminals) go to cb,
 * from any thread. */
typedef void (*ws_url_cb)(const char *ws_id, int port, const char *path, void *data);
void ws_manager_on_url(struct ws_manager *m, ws_url_cb cb, void *data);
struct urlscan;
/* Scans a piece of a workspace's output for local URLs (s keeps the state). */
void ws_scan_output(struct ws_manager *m, const char *ws_id, struct urlscan *s, const char *data,
                    size_t len);

/* Whether a configuration (or a caller) may name this image: not Berth's
 * build cache (other workspaces' sources), not a bare id. */
bool ws_image_name_allowed(const char *image);

/* Whether a job runs for this workspace now. */
bool ws_is_busy(struct ws_manager *m, const char *id);

/* The host path of the workspace's run dir (agent socket); newly allocated. */
char *ws_run_dir(struct ws_manager *m, const char *id);
/* Connects to the agent of workspace id: *ret_fd is a stream that speaks
 * agent/agent-proto.h, the caller's to close. On one host that is the
 * agent's socket in the run dir. -errno when the agent cannot be reached. */
int ws_agent_connect(struct ws_manager *m, const char *id, int *ret_fd, struct berr **reterr);

/* Brings the store and the engine into agreement after a restart. */
void ws_manager_reconcile(struct ws_manager *m);

/* Log followers: cb is called on the loop with new lines; `done` is true once
 * the workspace is at rest (or gone) and every line was delivered, after which
 * the follower is removed. Lines with an id <= after are skipped. */
typedef void (*ws_log_cb)(const char *lines, size_t len, bool done, void *data);
struct ws_log_follower;
struct ws_log_follower *ws_log_follow(struct ws_manager *m, const char *id, int64_t after,
                                      ws_log_cb cb, void *data);
/* Removes a follower (for example when its client hangs up). */
void ws_log_unfollow(struct ws_manager *m, struct ws_log_follower *f);

/* The owner's secrets that apply to this workspace's repo, as NAME=value in
 * env; their values also go to mask (may be NULL) for hiding them in logs. */
int ws_owner_env(struct ws_manager *m, const struct ws_record *r, struct strv *env,
                 struct strv *mask);

/* Settings keys and defaults of the per-user limits. */
#define WS_SETTING_MAX_WORKSPACES "max_workspaces_per_user"
#define WS_SETTING_MAX_RUNNING "max_running_per_user"
#define WS_DEFAULT_MAX_WORKSPACES 10
#define WS_DEFAULT_MAX_RUNNING 5
/* What a devcontainer.json may ask for (devcontainer/options.h): a JSON array of
 * allow-list entries, and the most CPUs and memory one workspace may get
 * (default: the host's). */
#define WS_SETTING_ALLOW "devcontainer_allow"
#define WS_SETTING_MAX_CPUS "max_cpus_per_workspace"
#define WS_SETTING_MAX_MEMORY_MB "max_memory_mb_per_workspace"

/* Called on the loop after workspaces may have changed (coalesced). */
typedef void (*ws_change_cb)(void *data);
void ws_manager_on_change(struct ws_manager *m, ws_change_cb cb, void *data);

/* ---- prebuilds (prebuild.c) ----
 *
 * A prebuild of repo + branch (+ devcontainer path) runs the create pipeline
 * up to updateContentCommand and keeps the container's filesystem (an image)
 * and the checkout; a create on that branch starts from the newest ready one
 * whose configuration matches, as a writable layer over it. Rows are
 * ws_records of the prebuilds table; their logs are followed like a
 * workspace's (ws_log_follow with the prebuild's id). */
struct ws_prebuild_request {
    const char *repo;
    const char *branch;
    const char *devcontainer_path;
    const char *owner;
    bool owner_is_admin;
    const char *config_id; /* the configuration that asked for it, or NULL */
    int64_t keep;          /* ready prebuilds to keep of its kind; 0: the server's setting */
    const char *trigger;   /* "poll", "webhook"; NULL: a person */
    const char *commit;    /* the head the trigger saw (the job resolves it again) */
};
/* Records a prebuild (state "building") and starts its job. */
int ws_prebuild(struct ws_manager *m, const struct ws_prebuild_request *req, struct ws_record *ret,
                struct berr **reterr);
/* Removes a prebuild; one that workspaces lie on goes with the last of them.
 * -EBUSY while it builds. */
int ws_prebuild_remove(struct ws_manager *m, const char *id, struct berr **reterr);
/* The prebuild as the API shows it. */
json_t *ws_prebuild_json(struct ws_manager *m, const struct ws_record *r);
/* Whether the prebuild is done (or gone). */
bool ws_prebuild_at_rest(struct ws_manager *m, const char *id);
#define WS_SETTING_PREBUILD_KEEP "prebuild_keep"
/* MB all prebuilds together may take in the data dir; unset: no limit. */
#define WS_SETTING_PREBUILD_QUOTA_MB "prebuild_quota_mb"
/* What the prebuilds take on disk together (*ret_n: how many). */
int64_t prebuild_total_size(struct ws_manager *m, size_t *ret_n);
/* Whether a configuration's branch patterns take branch (pbtrigger.c). */
bool prebuild_config_matches(const struct pb_config *c, const char *branch);
/* Starts a prebuild of branch for a configuration, as its owner. */
int prebuild_from_config(struct ws_manager *m, const struct pb_config *c, const char *branch,
                         const char *commit, const char *trigger, struct ws_record *ret,
                         struct berr **reterr);

/* The workspace as the API shows it (see docs/api.md). */
json_t *ws_record_json(const struct ws_record *r);
/* The same with what the manager knows besides the record: "idle". */
json_t *ws_json(struct ws_manager *m, const struct ws_record *r);

/* ---- idle auto-stop and retention (idle.c, idle-policy.h) ----
 *
 * What counts as a person using a workspace: each kind is named in the
 * workspace's "idle" (what kept it alive last). */
#define WS_ACTIVITY_KINDS(X)                                                                       \
    X(WS_ACT_START, "start")                                                                       \
    X(WS_ACT_TERMINAL_INPUT, "terminal input")                                                     \
    X(WS_ACT_TERMINAL_OUTPUT, "terminal output")                                                   \
    X(WS_ACT_IDE, "VS Code")                                                                       \
    X(WS_ACT_IDE_TERMINAL, "VS Code terminal output")                                              \
    X(WS_ACT_SSH, "SSH")                                                                           \
    X(WS_ACT_PORT, "a forwarded port")                                                             \
    X(WS_ACT_EXEC, "berth exec")                                                                   \
    X(WS_ACT_LIFECYCLE, "a lifecycle command")
#define WS_ACTIVITY_ENUM(e, s) e,
enum ws_activity_kind { WS_ACTIVITY_KINDS(WS_ACTIVITY_ENUM) };
#undef WS_ACTIVITY_ENUM
const char *ws_activity_name(enum ws_activity_kind k);
/* Someone used workspace id just now (any thread; cheap: call it per read). */
void ws_activity(struct ws_manager *m, const char *id, enum ws_activity_kind kind);
/* {timeout_minutes (null: never), source, stops_at, stops_in_seconds,
 *  warning, idle_seconds, last_activity, last_activity_kind, pinned,
 *  deleted_at, deletion_warning}: what applies to r now. */
json_t *ws_idle_json(struct ws_manager *m, const struct ws_record *r);
/* The "idle" of every workspace, by id, read in one query: for lists. */
json_t *ws_idle_json_all(struct ws_manager *m);
/* ws_json with the "idle" taken from ws_idle_json_all's object. */
json_t *ws_json_from(const struct ws_record *r, json_t *idle_all);
/* Whether minutes (0: never; -1: the default) may be chosen on this
 * server; -EINVAL with the allowed range. */
int ws_idle_check(struct ws_manager *m, int64_t minutes, struct berr **reterr);
/* The admin's limits: the longest timeout, and whether "never" is allowed. */
void ws_idle_range(struct ws_manager *m, int64_t *ret_max, bool *ret_never);
/* Sets a workspace's own timeout (minutes, 0: never; -1: its owner's).
 * -EINVAL with the allowed range. */
int ws_set_idle_timeout(struct ws_manager *m, const char *id, int64_t minutes,
                        struct berr **reterr);
/* Told on the loop when a workspace is about to stop for idleness. */
typedef void (*ws_idle_warn_cb)(const char *ws_id, const char *message, void *data);
void ws_manager_on_idle_warning(struct ws_manager *m, ws_idle_warn_cb cb, void *data);
/* Told on the loop when a workspace's container runs with its lifecycle
 * commands done: after a create, start or rebuild, and at reconcile for one
 * that ran on while berthd was down (its tasks' terminals start then). */
typedef void (*ws_ready_cb)(const char *ws_id, void *data);
void ws_manager_on_ready(struct ws_manager *m, ws_ready_cb cb, void *data);
/* What the last sweep took (microseconds) over how many workspaces. */
void ws_idle_stats(struct ws_manager *m, int64_t *ret_us, size_t *ret_n);
/* Admin settings: the longest idle timeout (minutes), whether "never" is
 * allowed, and retention in days (0: off). */
#define WS_SETTING_IDLE_MAX "idle_max_minutes"
#define WS_SETTING_IDLE_ALLOW_NEVER "idle_allow_never"
#define WS_SETTING_RETENTION_DAYS "retention_days"

#endif
