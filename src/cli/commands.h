/* commands.h - the berth CLI's commands, called by main.c's command table.
 *
 * Workspaces are in commands.c, exec.c and shell.c, their ports in ports.c and
 * forward.c; logins and tokens in account.c; what admins do in admin.c; git
 * credentials and secrets in secrets.c.
 *
 * main.c parses the command line into a struct cli_args (flags each command
 * accepts are listed in its table row, so usage errors never reach a command)
 * and makes the client. A command returns the process's exit status (>= 0), or
 * a negative errno with *reterr set, which main prints as "berth: …" and turns
 * into exit status 1.
 */
#ifndef BERTH_CLI_COMMANDS_H
#define BERTH_CLI_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <jansson.h>

#include "cli/client.h"
#include "util/err.h"
#include "util/strv.h"

struct cli_args {
    struct strv pos; /* positional arguments, the command name excluded */
    bool json;
    bool no_wait;
    bool follow;
    bool all;
    bool admin;
    bool password_stdin;
    bool value_stdin;
    bool verbose;
    bool no_prebuild;
    bool off;
    bool proxy;         /* ssh-config: ProxyCommand berth ssh-proxy */
    bool ssh_install;   /* ssh-config --install */
    bool help;          /* handled by main */
    const char *server; /* handled by main */
    const char *branch;
    const char *commit;
    const char *ref;
    const char *name;
    const char *devcontainer;
    const char *user;
    const char *cwd;
    const char *username;
    const char *token;
    const char *repo;
    const char *limit; /* numbers are checked by the command */
    const char *max_workspaces;
    const char *max_running;
    const char *max_cpus;
    const char *max_memory; /* a size: "8gb", "512mb" */
    const char *session;
    const char *task;     /* shell: a task's terminal */
    const char *branches; /* prebuild config: "main,release-1.x" */
    const char *poll;     /* a duration: "5m", "30s", "1h", "off" */
    const char *keep;
    const char *prebuild_quota; /* a size */
    const char *install;        /* dotfiles: the install command */
    const char *target;         /* dotfiles: the folder */
    const char *idle_max;       /* admin settings: a duration */
    const char *idle_never;     /* "yes" or "no" */
    const char *retention_days;
    struct strv env;      /* NAME=VALUE, from each -e */
    struct strv allow;    /* allow-list entries to add */
    struct strv disallow; /* and to remove */
};

typedef int (*cmd_run_fn)(struct client *c, const struct cli_args *a, struct berr **reterr);

int cmd_create(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_config(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_ls(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_show(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_start(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_stop(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_rebuild(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_rm(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_logs(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_events(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_exec(struct client *c, const struct cli_args *a, struct berr **reterr);  /* exec.c */
int cmd_shell(struct client *c, const struct cli_args *a, struct berr **reterr); /* shell.c */

/* prebuild.c */
int cmd_prebuild(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_prebuilds(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_prebuild_logs(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_prebuild_rm(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_prebuild_config(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_prebuild_configs(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_prebuild_share(struct client *c, const struct cli_args *a, struct berr **reterr);

/* settings.c */
int cmd_idle(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_pin(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_unpin(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_settings(struct client *c, const struct cli_args *a, struct berr **reterr);
/* One line of a workspace's "idle": "stops in 25m; timeout 30m (default);
 * last: terminal output 5m ago". The caller frees it. */
char *cmd_idle_summary(const json_t *idle);
/* Notices under `berth ls`: workspaces about to be stopped or deleted. */
void cmd_print_notices(const json_t *list);

/* ports.c and forward.c */
int cmd_ports(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_port_forward(struct client *c, const struct cli_args *a, struct berr **reterr);

/* account.c */
int cmd_login(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_logout(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_whoami(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_token_create(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_token_ls(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_token_revoke(struct client *c, const struct cli_args *a, struct berr **reterr);

/* admin.c */
int cmd_admin_create_user(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_admin_ls_users(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_admin_disable_user(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_admin_enable_user(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_admin_audit(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_admin_settings(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_admin_nodes(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_admin_node(struct client *c, const struct cli_args *a, struct berr **reterr);

/* secrets.c */
int cmd_gitcred_add(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_gitcred_ls(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_gitcred_rm(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_secret_set(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_secret_ls(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_secret_rm(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_sshkey_add(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_sshkey_ls(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_sshkey_rm(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_ssh_config(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_ssh_proxy(struct client *c, const struct cli_args *a,
                  struct berr **reterr); /* sshproxy.c */

/* Helpers shared by the command files. */

/* Returns prefix + arg + suffix with arg percent-encoded: "/api/v1/tokens/" and an
 * id make a token's path. The caller frees it. */
char *cmd_api_path(const char *prefix, const char *arg, const char *suffix);
/* Returns "/api/v1/workspaces/WS" + suffix with WS percent-encoded; caller frees. */
char *cmd_ws_path(const char *ws, const char *suffix);
/* The string at key in object o, or fallback. */
const char *cmd_json_str(const json_t *o, const char *key, const char *fallback);
/* The value at key as a table cell: a string as it is, "-" for none, null or "",
 * else its compact JSON (ids may be numbers). The caller frees it. */
char *cmd_json_text(const json_t *o, const char *key);
/* Prints j indented, for --json. */
void cmd_print_json(const json_t *j);
/* GETs path and its array at key (*ret_list, owned by *ret_resp, which the
 * caller frees); `what` names the list in the error for a malformed answer.
 * With --json the list is printed and 1 returned: the caller is done. Else 0,
 * or -errno. */
int cmd_get_list(struct client *c, const struct cli_args *a, const char *path, const char *key,
                 const char *what, json_t **ret_resp, json_t **ret_list, struct berr **reterr);
/* Prints cells (row-major, ncols to a row, the header first) as left-aligned
 * columns two spaces apart, with control characters shown as '?'. */
void cmd_print_table(const struct strv *cells, size_t ncols);
/* Prints each field of an object as "key: value", the keys aligned. */
void cmd_print_fields(const json_t *o);
/* "5s", "3m", "2h" or "4d" since an RFC 3339 UTC time, or "-"; caller frees. */
char *cmd_format_age(const char *timestamp, time_t now);
/* "3m ago", or `none` when there is no time; caller frees. */
char *cmd_format_ago(const char *timestamp, time_t now, const char *none);
/* Parses the value of a numeric option (digits only) within [min, max]. */
int cmd_parse_number(const char *option, const char *text, long long min, long long max,
                     long long *ret_value, struct berr **reterr);
/* Sets key to the string value in object o; a NULL value sets nothing. Returns 0,
 * or -EINVAL when key or value is not UTF-8 (JSON cannot carry it). */
int cmd_json_set(json_t *o, const char *key, const char *value, struct berr **reterr);

#endif
