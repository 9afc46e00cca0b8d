/* devcontainer.h - reading a repository's devcontainer.json.
 *
 * The file is JSONC (comments, trailing commas); errors name the file, line and
 * column. The parsed file is merged with the image's `devcontainer.metadata`
 * label (the spec's rule: entries in order, the repo's file last; scalars: last
 * wins; containerEnv: merged by key; lifecycle commands: all collected in order)
 * and variables such as ${containerWorkspaceFolder} are substituted.
 *
 * A repository's devcontainer.json is untrusted input: this module only reads
 * it; nothing here runs, mounts or resolves anything from berthd's host.
 */
#ifndef BERTH_DEVCONTAINER_H
#define BERTH_DEVCONTAINER_H

#include <jansson.h>
#include <stdbool.h>

#include "util/err.h"
#include "util/strv.h"

/* The lifecycle hooks, in the order they run. */
#define DC_HOOKS(X)                                                                                \
    X(DC_ON_CREATE, "onCreateCommand")                                                             \
    X(DC_UPDATE_CONTENT, "updateContentCommand")                                                   \
    X(DC_POST_CREATE, "postCreateCommand")                                                         \
    X(DC_POST_START, "postStartCommand")                                                           \
    X(DC_POST_ATTACH, "postAttachCommand")

#define DC_HOOK_ENUM(e, s) e,
enum dc_hook { DC_HOOKS(DC_HOOK_ENUM) _DC_HOOK_MAX };
#undef DC_HOOK_ENUM

const char *dc_hook_name(enum dc_hook h);

/* One command to run: a label (the object key in the object form, else the hook
 * name) and an argv (the string form becomes /bin/sh -c STRING). */
struct dc_command {
    char *label;
    struct strv argv;
    int group; /* commands with the same group may run in parallel */
};

/* The merged configuration: each field follows the spec's merge rule for the
 * image metadata entries and the file (noted per field). */
struct dc_config {
    json_t *raw;          /* the parsed devcontainer.json, after substitution */
    bool gitpod;          /* raw was translated from a .gitpod.yml (see gitpod.h) */
    struct strv warnings; /* what loading ignored, one message each, to show the user */
    char *image;
    char *remote_user; /* last wins; NULL: containerUser, else the image's user */
    char *container_user;
    char *workspace_folder;         /* in the container */
    char *user_env_probe;           /* last wins; NULL means loginInteractiveShell */
    char *wait_for;                 /* last wins; NULL means updateContentCommand */
    struct strv container_env;      /* NAME=value, last wins per name */
    json_t *remote_env;             /* object, last wins per name (null unsets) */
    bool override_command;          /* last wins */
    bool init;                      /* true if any entry says so */
    bool privileged;                /* true if any entry says so */
    struct strv cap_add;            /* union */
    struct strv security_opt;       /* union */
    json_t *mounts;                 /* array, collected; the last entry wins for a target */
    json_t *forward_ports;          /* array, union */
    json_t *ports_attributes;       /* object, last wins per port */
    json_t *other_ports_attributes; /* last wins */
    json_t *customizations;         /* object of arrays: per tool, every entry's value */
    /* hostRequirements: the maximum of every entry; 0 when not asked */
    int64_t host_cpus;
    int64_t host_memory; /* bytes */
    int64_t host_storage;
    /* per hook, a JSON array of the command values collected in order (metadata first) */
    json_t *hooks[_DC_HOOK_MAX];
};

void dc_config_init(struct dc_config *c);
void dc_config_release(struct dc_config *c);

/* Strips comments and trailing commas from JSONC text in place, replacing them
 * with spaces so line and column numbers stay true. */
void dc_jsonc_strip(char *text, size_t len);

/* Parses JSONC text. `name` is used in error messages:
 * "'.devcontainer/devcontainer.json' line 3, column 5: unexpected token". */
int dc_parse_jsonc(const char *text, size_t len, const char *name, json_t **ret,
                   struct berr **reterr);

/* Finds the devcontainer.json of a checkout at `repo_dir`. `explicit` (may be
 * NULL) is a path relative to the repo. Without one, the default locations are
 * tried, then a .gitpod.yml at the top (a devcontainer.json wins). Sets
 * *ret_relpath to the relative path found, or NULL when there is none (not an
 * error). An explicit path that does not exist is an error. */
int dc_find(const char *repo_dir, const char *explicit_path, char **ret_relpath,
            struct berr **reterr);

/* Variables the substitution knows. */
struct dc_vars {
    const char *local_workspace_folder;
    const char *container_workspace_folder;
    const char *devcontainer_id;
    const struct strv *local_env; /* the owner's settings, never berthd's env */
};

/* Reads and validates the file at repo_dir/relpath (relpath NULL: an empty
 * config). Fills c; the image field may stay NULL (the caller picks the default).
 * A file named .gitpod.yml is read as YAML and translated (gitpod.h): c->gitpod
 * is set, and what it ignored is in c->warnings. */
int dc_load(const char *repo_dir, const char *relpath, const struct dc_vars *vars,
            struct dc_config *c, struct berr **reterr);

/* The entries of a devcontainer.metadata label (an array, or one object made
 * an array of one), newly referenced; NULL when there is no usable label. */
json_t *dc_metadata_entries(const char *label);

/* Merges an image's devcontainer.metadata label (a JSON text: an array of
 * objects, or one object) under the config. Unknown or malformed metadata is
 * ignored (it is the image's business, not the user's error). */
void dc_merge_image_metadata(struct dc_config *c, const char *label);

/* Expands one hook's commands into a list. Returns the number of commands
 * (>= 0) and sets *ret (to free with dc_commands_free). A malformed value is an
 * error naming the hook. */
int dc_hook_commands(const struct dc_config *c, enum dc_hook h, struct dc_command **ret,
                     struct berr **reterr);
void dc_commands_free(struct dc_command *cmds, size_t n);

/* The merged configuration in the shape of `devcontainer read-configuration
 * --include-merged-configuration`'s "mergedConfiguration". */
json_t *dc_config_merged_json(const struct dc_config *c);

/* The install order of features (the spec's rounds): `ids` is an array of the
 * features' ids as written, `after` maps an id to the ids it must follow
 * (installsAfter and dependsOn, only those present), and the ids in
 * `override_order` (overrideFeatureInstallOrder) go first among the ready
 * ones, in that order; otherwise the order written. A cycle is an error. */
int dc_feature_order(json_t *ids, json_t *after, json_t *override_order, json_t **ret,
                     struct berr **reterr);

/* Substitutes ${...} variables in s; returns a new string. */
char *dc_substitute(const char *s, const struct dc_vars *vars, const struct strv *container_env);

#endif
