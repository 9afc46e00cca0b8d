/* commands.h - the berth CLI's commands, called by main.c's command table.
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
#include <jansson.h>

#include "cli/client.h"
#include "util/err.h"
#include "util/strv.h"

struct cli_args {
    struct strv pos; /* positional arguments, the command name excluded */
    bool json;
    bool no_wait;
    bool follow;
    bool help;          /* handled by main */
    const char *server; /* handled by main */
    const char *branch;
    const char *commit;
    const char *ref;
    const char *name;
    const char *devcontainer;
    const char *user;
    const char *cwd;
    struct strv env; /* NAME=VALUE, from each -e */
};

typedef int (*cmd_run_fn)(struct client *c, const struct cli_args *a, struct berr **reterr);

int cmd_create(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_ls(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_show(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_start(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_stop(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_rebuild(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_rm(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_logs(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_events(struct client *c, const struct cli_args *a, struct berr **reterr);
int cmd_exec(struct client *c, const struct cli_args *a, struct berr **reterr); /* exec.c */

/* Helpers shared by commands.c and exec.c. */

/* Returns "/api/v1/workspaces/WS" + suffix with WS percent-encoded; caller frees. */
char *cmd_ws_path(const char *ws, const char *suffix);
/* Sets key to the string value in object o; a NULL value sets nothing. Returns 0,
 * or -EINVAL when key or value is not UTF-8 (JSON cannot carry it). */
int cmd_json_set(json_t *o, const char *key, const char *value, struct berr **reterr);
/* Writes all of data to fd, retrying on EINTR. Returns 0 or -errno. */
int cmd_write_all(int fd, const void *data, size_t len);

#endif
