/* options.h - what a devcontainer.json asks of the container, checked against
 * the server's policy.
 *
 * A repository's configuration is untrusted: `privileged`, `capAdd`,
 * `securityOpt`, bind mounts of host paths, a host network and the `runArgs`
 * that mean the same are refused unless the admin's allow-list names them, and
 * the refusal names the property and the entry that would allow it. `runArgs`
 * are parsed flag by flag (never handed to a shell or to the engine's CLI); a
 * flag Berth does not know is refused. Named volumes are private to the
 * workspace (their names get the workspace's prefix); nothing can mount the
 * engine socket, the data directory or another workspace.
 *
 * The policy's refusals are gathered, not stopped at: a configuration that asks
 * for four refused settings is told of all four at once, each with the entry
 * (or the maximum) an admin would change, as a compiler reports every error. A
 * malformed value (a capability Linux does not have, an unknown runArgs flag)
 * still stops the check where it is, since what follows it cannot be trusted to
 * mean what it says.
 *
 * Allow-list entries: "privileged", "capAdd:NAME" (or "capAdd:*"),
 * "securityOpt:VALUE", "network:NAME", "device:PATH", "bind:/host/prefix".
 */
#ifndef BERTH_DC_OPTIONS_H
#define BERTH_DC_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "devcontainer/devcontainer.h"

enum dc_mount_type { DC_MOUNT_VOLUME, DC_MOUNT_TMPFS, DC_MOUNT_BIND };

struct dc_mount {
    enum dc_mount_type type;
    char *source; /* volume: the name as written; bind: the host path; tmpfs: NULL */
    char *target;
    bool readonly;
};

struct dc_run_options {
    bool privileged;
    bool init;
    struct strv cap_add;
    struct strv cap_drop;
    struct strv security_opt;
    struct strv devices;
    struct strv env;    /* NAME=value, from -e */
    struct strv labels; /* NAME=value, from -l */
    char *network;      /* NULL: the engine's default */
    char *hostname;
    int64_t shm_size;  /* bytes, 0: default */
    int64_t nano_cpus; /* 0: no limit */
    int64_t memory;    /* bytes, 0: no limit */
    struct dc_mount *mounts;
    size_t n_mounts;
    /* the allow-list entries this needed ("privileged", "capAdd:NAME",
     * "bind:/real/path", ...), to check again before each start */
    struct strv granted;
};

struct dc_policy {
    const struct strv *allow; /* allow-list entries, see above */
    /* host paths no bind mount may reach, whatever the allow-list says */
    const struct strv *forbidden;
    int64_t max_cpus;   /* 0: no maximum */
    int64_t max_memory; /* bytes; 0: no maximum */
};

void dc_run_options_release(struct dc_run_options *o);

/* Reads the container options of c (runArgs from the file, the merged
 * privileged/capAdd/securityOpt/init/mounts/hostRequirements) into o, checking
 * each against the policy. `file` names the configuration in messages. When
 * the policy refuses settings, fails with -EPERM (-EDQUOT when only maxima are
 * passed) and one message naming all of them (dc_refusals_message); a
 * malformed value fails with its own error. On failure o is left released. */
int dc_run_options_build(const struct dc_config *c, const char *file, const struct dc_policy *p,
                         struct dc_run_options *o, struct berr **reterr);

/* One setting the policy refuses. */
struct dc_refusal {
    char *what; /* the setting as the file names it: "capAdd \"SYS_ADMIN\"", "\"mounts\"[1] …" */
    char *why;  /* "adds a Linux capability to the container" */
    /* the allow-list entries that would let it in (a bind that resolves
     * through a symlink needs both paths); empty when no entry can */
    struct strv allow;
    /* what an admin would run: "berth admin settings --allow capAdd:SYS_ADMIN",
     * "berth admin settings --max-cpus 16"; NULL when nothing can let it in */
    char *fix;
};

struct dc_refusals {
    struct dc_refusal *v;
    size_t n;
};

void dc_refusals_release(struct dc_refusals *r);

/* Every setting of c the policy refuses, in the order of the file, into
 * *ret_refusals (which may come back with n == 0). Returns 0, or a malformed
 * value's error as dc_run_options_build gives it (*ret_refusals untouched).
 * For a preview such as `berth config`: host paths resolve on this machine. */
int dc_policy_check(const struct dc_config *c, const char *file, const struct dc_policy *p,
                    struct dc_refusals *ret_refusals, struct berr **reterr);

/* One refusal as a line of text (no newline), newly allocated:
 * "capAdd \"SYS_ADMIN\": adds a Linux capability to the container; allow with
 * 'berth admin settings --allow capAdd:SYS_ADMIN'". */
char *dc_refusal_text(const struct dc_refusal *r);

/* All of them as one message, newly allocated: a header line
 * "'FILE': N settings are refused by this server's policy:" and one indented
 * line per refusal. */
char *dc_refusals_message(const char *file, const struct dc_refusals *r);

/* A capability as the engine and the allow-list name it ("SYS_PTRACE" for
 * "cap_sys_ptrace"), newly allocated; NULL when Linux has no such capability.
 * "ALL" stays "ALL". */
char *dc_cap_name(const char *name);

/* Whether the policy still allows a granted entry (see dc_run_options). */
bool dc_policy_allows(const struct dc_policy *p, const char *granted);

#endif
