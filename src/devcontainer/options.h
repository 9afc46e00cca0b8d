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
 * each against the policy. `file` names the configuration in messages. */
int dc_run_options_build(const struct dc_config *c, const char *file, const struct dc_policy *p,
                         struct dc_run_options *o, struct berr **reterr);

/* A capability as the engine and the allow-list name it ("SYS_PTRACE" for
 * "cap_sys_ptrace"), newly allocated; NULL when Linux has no such capability.
 * "ALL" stays "ALL". */
char *dc_cap_name(const char *name);

/* Whether the policy still allows a granted entry (see dc_run_options). */
bool dc_policy_allows(const struct dc_policy *p, const char *granted);

#endif
