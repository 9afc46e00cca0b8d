/* main.c - the berth command line: global flags, the command table, dispatch.
 *
 * Each row of the command table names the flags its command takes and how many
 * positional arguments it needs, so a bad command line is refused here with the
 * usage (exit 2) before anything is sent; the commands (commands.c, exec.c) only
 * talk to berthd. Exit statuses: 0 success, 1 an error printed as "berth: …",
 * 2 a usage error; exec exits with the remote command's status.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <curl/curl.h>

#include "cli/client.h"
#include "cli/commands.h"

#ifndef BERTH_VERSION
#define BERTH_VERSION "unknown"
#endif
#define BERTH_DEFAULT_SERVER "http://127.0.0.1:7878"
#define EXIT_USAGE 2

enum flag_kind { FLAG_BOOL, FLAG_STRING, FLAG_LIST };

/* Every flag of every command: id, long name, short name, kind, struct cli_args field. */
#define FLAG_MAP(X)                                                                                \
    X(HELP, "--help", "-h", FLAG_BOOL, help)                                                       \
    X(SERVER, "--server", NULL, FLAG_STRING, server)                                               \
    X(JSON, "--json", NULL, FLAG_BOOL, json)                                                       \
    X(NO_WAIT, "--no-wait", NULL, FLAG_BOOL, no_wait)                                              \
    X(FOLLOW, "--follow", "-f", FLAG_BOOL, follow)                                                 \
    X(BRANCH, "--branch", NULL, FLAG_STRING, branch)                                               \
    X(COMMIT, "--commit", NULL, FLAG_STRING, commit)                                               \
    X(REF, "--ref", NULL, FLAG_STRING, ref)                                                        \
    X(NAME, "--name", NULL, FLAG_STRING, name)                                                     \
    X(DEVCONTAINER, "--devcontainer", NULL, FLAG_STRING, devcontainer)                             \
    X(USER, "--user", "-u", FLAG_STRING, user)                                                     \
    X(CWD, "--cwd", "-w", FLAG_STRING, cwd)                                                        \
    X(ENV, "--env", "-e", FLAG_LIST, env)

enum {
#define FLAG_BIT(id, ...) FLAG_BIT_##id,
    FLAG_MAP(FLAG_BIT)
#undef FLAG_BIT
};
#define F(id) (1u << FLAG_BIT_##id)
/* The flags of every command that talks to berthd. */
#define REMOTE F(SERVER)

static const struct flag {
    unsigned bit;
    const char *name;
    const char *alias;
    enum flag_kind kind;
    size_t offset;
} flags[] = {
#define FLAG_ROW(id, name, alias, kind, field)                                                     \
    {F(id), name, alias, kind, offsetof(struct cli_args, field)},
    FLAG_MAP(FLAG_ROW)
#undef FLAG_ROW
};

struct command {
    const char *name;
    const char *alias;
    cmd_run_fn run;
    unsigned flags; /* besides --help */
    size_t min_args;
    size_t max_args;
    /* From the positional argument after this many on, the rest of the line is
     * positional even if it starts with '-' (exec's command); 0: only after "--". */
    size_t rest_after;
    const char *synopsis;
    const char *summary;
};

static int cmd_help(struct client *c, const struct cli_args *a, struct berr **reterr);
static int cmd_version(struct client *c, const struct cli_args *a, struct berr **reterr);

/* The commands that take exactly one argument, the workspace. */
#define ONE_WS .min_args = 1, .max_args = 1

static const struct command commands[] = {
    {.name = "create",
     .run = cmd_create,
     .flags =
         REMOTE | F(BRANCH) | F(COMMIT) | F(REF) | F(NAME) | F(DEVCONTAINER) | F(NO_WAIT) | F(JSON),
     .min_args = 1,
     .max_args = 1,
     .synopsis = "REPO [--branch B | --commit C | --ref R] [--name N] [--devcontainer PATH] "
                 "[--no-wait] [--json]",
     .summary = "create a workspace from a git repository (URL or local directory) and wait "
                "until it runs"},
    {.name = "ls",
     .alias = "list",
     .run = cmd_ls,
     .flags = REMOTE | F(JSON),
     .synopsis = "[--json]",
     .summary = "list workspaces, newest first"},
    {.name = "show",
     .run = cmd_show,
     .flags = REMOTE | F(JSON),
     ONE_WS,
     .synopsis = "WS [--json]",
     .summary = "print every field of a workspace"},
    {.name = "start",
     .run = cmd_start,
     .flags = REMOTE | F(NO_WAIT) | F(JSON),
     ONE_WS,
     .synopsis = "WS [--no-wait] [--json]",
     .summary = "start a stopped or failed workspace and wait until it runs"},
    {.name = "stop",
     .run = cmd_stop,
     .flags = REMOTE | F(NO_WAIT) | F(JSON),
     ONE_WS,
     .synopsis = "WS [--no-wait] [--json]",
     .summary = "stop a running workspace, keeping its files"},
    {.name = "rebuild",
     .run = cmd_rebuild,
     .flags = REMOTE | F(NO_WAIT) | F(JSON),
     ONE_WS,
     .synopsis = "WS [--no-wait] [--json]",
     .summary = "recreate a workspace's container from its devcontainer.json"},
    {.name = "rm",
     .alias = "delete",
     .run = cmd_rm,
     .flags = REMOTE | F(NO_WAIT),
     ONE_WS,
     .synopsis = "WS [--no-wait]",
     .summary = "delete a workspace and wait until it is gone"},
    {.name = "logs",
     .run = cmd_logs,
     .flags = REMOTE | F(FOLLOW),
     ONE_WS,
     .synopsis = "WS [-f|--follow]",
     .summary = "print a workspace's creation and lifecycle log"},
    {.name = "events",
     .run = cmd_events,
     .flags = REMOTE | F(JSON),
     ONE_WS,
     .synopsis = "WS [--json]",
     .summary = "print a workspace's events"},
    {.name = "exec",
     .run = cmd_exec,
     .flags = REMOTE | F(USER) | F(CWD) | F(ENV),
     .min_args = 2,
     .max_args = SIZE_MAX,
     .rest_after = 1,
     .synopsis = "WS [--user U] [--cwd DIR] [-e NAME=VALUE]... [--] CMD [ARG...]",
     .summary = "run a command in a running workspace; exits with its status"},
    {.name = "version", .run = cmd_version, .synopsis = "", .summary = "print berth's version"},
    {.name = "help",
     .run = cmd_help,
     .max_args = 1,
     .synopsis = "[COMMAND]",
     .summary = "print this help, or a command's usage"},
};

static const struct command *command_find(const char *name)
{
    for (size_t i = 0; i < ELEMENTSOF(commands); i++)
        if (strcmp(commands[i].name, name) == 0 ||
            (commands[i].alias && strcmp(commands[i].alias, name) == 0))
            return &commands[i];
    return NULL;
}

static void command_usage(FILE *f, const struct command *cmd)
{
    fprintf(f, "usage: berth %s%s%s\n", cmd->name, *cmd->synopsis ? " " : "", cmd->synopsis);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: berth [--server URL] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
        const struct command *cmd = &commands[i];
        fprintf(f, "  %s%s%s%s%s\n      %s\n", cmd->name, cmd->alias ? "|" : "",
                cmd->alias ? cmd->alias : "", *cmd->synopsis ? " " : "", cmd->synopsis,
                cmd->summary);
    }
    fprintf(f,
            "\nWS is a workspace's name or id. berthd is reached at --server URL, else\n"
            "$BERTH_SERVER, else %s; $BERTH_TOKEN, if set, is sent as a bearer token.\n",
            BERTH_DEFAULT_SERVER);
}

static int cmd_help(_unused_ struct client *c, const struct cli_args *a,
                    _unused_ struct berr **reterr)
{
    const struct command *cmd = a->pos.n ? command_find(a->pos.v[0]) : NULL;
    if (a->pos.n && !cmd) {
        fprintf(stderr, "berth: unknown command '%s'\n", a->pos.v[0]);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (cmd)
        command_usage(stdout, cmd);
    else
        usage(stdout);
    return 0;
}

static int cmd_version(_unused_ struct client *c, _unused_ const struct cli_args *a,
                       _unused_ struct berr **reterr)
{
    printf("berth %s\n", BERTH_VERSION);
    return 0;
}

static const struct flag *flag_find(const char *arg, size_t len)
{
    for (size_t i = 0; i < ELEMENTSOF(flags); i++) {
        const char *alias = flags[i].alias;
        if ((strlen(flags[i].name) == len && strncmp(flags[i].name, arg, len) == 0) ||
            (alias && strlen(alias) == len && strncmp(alias, arg, len) == 0))
            return &flags[i];
    }
    return NULL;
}

/* Fills *a from a command's arguments. Prints what is wrong and returns -EINVAL
 * for a line the command does not take. */
static int args_parse(const struct command *cmd, int argc, char **argv, struct cli_args *a)
{
    bool rest = false;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (!rest && strcmp(arg, "--") == 0) {
            rest = true;
            continue;
        }
        if (rest || arg[0] != '-' || arg[1] == 0) {
            if (cmd->rest_after && a->pos.n >= cmd->rest_after)
                rest = true;
            strv_push(&a->pos, arg);
            continue;
        }
        const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        const struct flag *f = flag_find(arg, len);
        if (!f || !((cmd->flags | F(HELP)) & f->bit)) {
            fprintf(stderr, "berth: %s: unknown option '%.*s'\n", cmd->name, (int)len, arg);
            return -EINVAL;
        }
        void *field = (char *)a + f->offset;
        if (f->kind == FLAG_BOOL) {
            if (eq) {
                fprintf(stderr, "berth: %s: option '%s' takes no value\n", cmd->name, f->name);
                return -EINVAL;
            }
            *(bool *)field = true;
            continue;
        }
        const char *value = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (!value) {
            fprintf(stderr, "berth: %s: option '%s' needs a value\n", cmd->name, f->name);
            return -EINVAL;
        }
        if (f->kind == FLAG_STRING)
            *(const char **)field = value;
        else
            strv_push((struct strv *)field, value);
    }
    if (!a->help && (a->pos.n < cmd->min_args || a->pos.n > cmd->max_args)) {
        fprintf(stderr, "berth: %s: wrong number of arguments\n", cmd->name);
        return -EINVAL;
    }
    return 0;
}

static void cli_args_release(struct cli_args *a)
{
    strv_release(&a->pos);
    strv_release(&a->env);
}

int main(int argc, char **argv)
{
    const char *server = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0)
            return cmd_version(NULL, NULL, NULL);
        if (strcmp(argv[i], "--server") == 0) {
            server = argv[++i];
            if (!server) {
                fprintf(stderr, "berth: option '--server' needs a value\n");
                return EXIT_USAGE;
            }
        } else if (strncmp(argv[i], "--server=", 9) == 0) {
            server = argv[i] + 9;
        } else {
            fprintf(stderr, "berth: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (i == argc) {
        usage(stdout);
        return 0;
    }
    const struct command *cmd = command_find(argv[i]);
    if (!cmd) {
        fprintf(stderr, "berth: unknown command '%s'\n", argv[i]);
        usage(stderr);
        return EXIT_USAGE;
    }
    _cleanup_(cli_args_release) struct cli_args a = {.pos = STRV_INIT, .env = STRV_INIT};
    if (args_parse(cmd, argc - i - 1, argv + i + 1, &a) < 0) {
        command_usage(stderr, cmd);
        return EXIT_USAGE;
    }
    if (a.help) {
        command_usage(stdout, cmd);
        return 0;
    }
    if (a.server)
        server = a.server;
    if (!server || !*server)
        server = getenv("BERTH_SERVER");
    if (!server || !*server)
        server = BERTH_DEFAULT_SERVER;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "berth: cannot initialize libcurl\n");
        return 1;
    }
    _cleanup_(client_freep) struct client *c = NULL;
    _cleanup_berr_ struct berr *err = NULL;
    int r = 0;
    if (cmd->flags & REMOTE)
        r = client_new(server, getenv("BERTH_TOKEN"), &c, &err);
    if (r >= 0)
        r = cmd->run(c, &a, &err);
    if (r < 0) {
        fprintf(stderr, "berth: %s\n", berr_msg(err));
        r = 1;
    }
    c = client_free(c);
    curl_global_cleanup();
    return r;
}
