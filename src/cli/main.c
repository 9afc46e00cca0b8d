/* main.c - the berth command line: global flags, the command table, dispatch.
 *
 * Each row of the command table names the flags its command takes and how many
 * positional arguments it needs, so a bad command line is refused here with the
 * usage (exit 2) before anything is sent; the commands (commands.c, exec.c,
 * shell.c, ports.c, forward.c, account.c, admin.c, secrets.c) only talk to berthd. A row's name is
 * one word ("ls") or a group and a subcommand ("token create"). Which token a
 * command sends is decided here too (BERTH_TOKEN, else the stored login), and
 * so is what a person reads when berthd answers 401.
 *
 * Exit statuses: 0 success, 1 an error printed as "berth: …", 2 a usage error;
 * exec exits with the remote command's status, shell with the remote shell's.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <curl/curl.h>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/config.h"

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
    X(ENV, "--env", "-e", FLAG_LIST, env)                                                          \
    X(ALL, "--all", NULL, FLAG_BOOL, all)                                                          \
    X(USERNAME, "--username", NULL, FLAG_STRING, username)                                         \
    X(PASSWORD_STDIN, "--password-stdin", NULL, FLAG_BOOL, password_stdin)                         \
    X(TOKEN, "--token", NULL, FLAG_STRING, token)                                                  \
    X(ADMIN, "--admin", NULL, FLAG_BOOL, admin)                                                    \
    X(LIMIT, "--limit", NULL, FLAG_STRING, limit)                                                  \
    X(MAX_WORKSPACES, "--max-workspaces", NULL, FLAG_STRING, max_workspaces)                       \
    X(MAX_RUNNING, "--max-running", NULL, FLAG_STRING, max_running)                                \
    X(MAX_CPUS, "--max-cpus", NULL, FLAG_STRING, max_cpus)                                         \
    X(MAX_MEMORY, "--max-memory", NULL, FLAG_STRING, max_memory)                                   \
    X(ALLOW, "--allow", NULL, FLAG_LIST, allow)                                                    \
    X(DISALLOW, "--disallow", NULL, FLAG_LIST, disallow)                                           \
    X(REPO, "--repo", NULL, FLAG_STRING, repo)                                                     \
    X(VALUE_STDIN, "--value-stdin", NULL, FLAG_BOOL, value_stdin)                                  \
    X(SESSION, "--session", NULL, FLAG_STRING, session)                                            \
    X(TASK, "--task", NULL, FLAG_STRING, task)                                                     \
    X(VERBOSE, "--verbose", "-v", FLAG_BOOL, verbose)                                              \
    X(NO_PREBUILD, "--no-prebuild", NULL, FLAG_BOOL, no_prebuild)                                  \
    X(BRANCHES, "--branches", NULL, FLAG_STRING, branches)                                         \
    X(POLL, "--poll", NULL, FLAG_STRING, poll)                                                     \
    X(KEEP, "--keep", NULL, FLAG_STRING, keep)                                                     \
    X(OFF, "--off", NULL, FLAG_BOOL, off)                                                          \
    X(PREBUILD_KEEP, "--prebuild-keep", NULL, FLAG_STRING, keep)                                   \
    X(PREBUILD_QUOTA, "--prebuild-quota", NULL, FLAG_STRING, prebuild_quota)                       \
    X(INSTALL, "--install", NULL, FLAG_STRING, install)                                            \
    X(SSH_INSTALL, "--install", NULL, FLAG_BOOL, ssh_install)                                      \
    X(PROXY, "--proxy", NULL, FLAG_BOOL, proxy)                                                    \
    X(TARGET, "--target", NULL, FLAG_STRING, target)                                               \
    X(IDLE_MAX, "--idle-max", NULL, FLAG_STRING, idle_max)                                         \
    X(IDLE_NEVER, "--idle-never", NULL, FLAG_STRING, idle_never)                                   \
    X(RETENTION_DAYS, "--retention-days", NULL, FLAG_STRING, retention_days)

enum {
#define FLAG_BIT(id, ...) FLAG_BIT_##id,
    FLAG_MAP(FLAG_BIT)
#undef FLAG_BIT
};
#define F(id) (UINT64_C(1) << FLAG_BIT_##id)
/* The flags of every command that talks to berthd. */
#define REMOTE F(SERVER)

static const struct flag {
    uint64_t bit;
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
    const char *name;  /* "ls", or a group and a subcommand: "token create" */
    const char *alias; /* for the name's last word */
    cmd_run_fn run;
    uint64_t flags;      /* besides --help */
    bool own_token;      /* picks its token itself (login, logout) */
    const char *section; /* a heading in the help, above the first of its rows */
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
     .section = "workspaces",
     .run = cmd_create,
     .flags = REMOTE | F(BRANCH) | F(COMMIT) | F(REF) | F(NAME) | F(DEVCONTAINER) | F(NO_WAIT) |
              F(JSON) | F(NO_PREBUILD),
     .min_args = 1,
     .max_args = 1,
     .synopsis = "REPO [--branch B | --commit C | --ref R] [--name N] [--devcontainer PATH] "
                 "[--no-prebuild] [--no-wait] [--json]",
     .summary = "create a workspace from a git repository (URL or local directory) and wait "
                "until it runs; it starts from the newest fitting prebuild unless --no-prebuild"},
    {.name = "config",
     .run = cmd_config,
     .flags = REMOTE | F(DEVCONTAINER) | F(JSON),
     .min_args = 1,
     .max_args = 1,
     .synopsis = "DIR [--devcontainer PATH] [--json]",
     .summary = "print the devcontainer.json of a checkout merged with its image's metadata, "
                "as a workspace would get it"},
    {.name = "ls",
     .alias = "list",
     .run = cmd_ls,
     .flags = REMOTE | F(ALL) | F(JSON),
     .synopsis = "[--all] [--json]",
     .summary = "list your workspaces, newest first (--all: everyone's, for admins)"},
    {.name = "show",
     .run = cmd_show,
     .flags = REMOTE | F(JSON),
     ONE_WS,
     .synopsis = "WS [--json]",
     .summary = "print every field of a workspace"},
    {.name = "idle",
     .run = cmd_idle,
     .flags = REMOTE | F(JSON),
     .min_args = 1,
     .max_args = 2,
     .synopsis = "WS [45m|2h|never|default] [--json]",
     .summary = "show when a workspace stops for idleness and what kept it alive last, or set "
                "its own idle timeout (default: your setting)"},
    {.name = "pin",
     .run = cmd_pin,
     .flags = REMOTE,
     ONE_WS,
     .synopsis = "WS",
     .summary = "keep a workspace from being deleted by the server's retention"},
    {.name = "unpin",
     .run = cmd_unpin,
     .flags = REMOTE,
     ONE_WS,
     .synopsis = "WS",
     .summary = "let retention delete the workspace again once it is unused"},
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
    {.name = "shell",
     .alias = "ssh",
     .run = cmd_shell,
     .flags = REMOTE | F(SESSION) | F(TASK) | F(VERBOSE),
     ONE_WS,
     .synopsis = "WS [--session ID | --task NAME] [-v|--verbose]",
     .summary = "open a login shell in a running workspace; exits with its status (-v prints "
                "the session id that --session attaches to again; --task attaches to the "
                "terminal a task runs in)"},
    {.name = "ports",
     .run = cmd_ports,
     .flags = REMOTE | F(JSON),
     .min_args = 1,
     .max_args = 4,
     .synopsis = "WS [--json] | WS visibility PORT private|org|public",
     .summary = "list the TCP ports listening in a workspace and their URLs, or set who may "
                "open a port's URL"},
    {.name = "port-forward",
     .run = cmd_port_forward,
     .flags = REMOTE | F(VERBOSE),
     .min_args = 2,
     .max_args = SIZE_MAX,
     .synopsis = "WS LOCAL:REMOTE... [-v|--verbose]",
     .summary = "relay 127.0.0.1:LOCAL to port REMOTE in a workspace until Ctrl-C (LOCAL 0: "
                "any free port; -v logs each connection)"},

    {.name = "prebuild logs",
     .section = "prebuilds",
     .run = cmd_prebuild_logs,
     .flags = REMOTE | F(FOLLOW),
     .min_args = 1,
     .max_args = 1,
     .synopsis = "ID [-f|--follow]",
     .summary = "print a prebuild's log"},
    {.name = "prebuild rm",
     .alias = "delete",
     .run = cmd_prebuild_rm,
     .flags = REMOTE,
     .min_args = 1,
     .max_args = 1,
     .synopsis = "ID",
     .summary = "remove a prebuild (workspaces made from it keep it until they are deleted)"},
    {.name = "prebuild config",
     .run = cmd_prebuild_config,
     .flags = REMOTE | F(BRANCHES) | F(POLL) | F(KEEP) | F(DEVCONTAINER) | F(OFF) | F(JSON),
     .min_args = 1,
     .max_args = 1,
     .synopsis = "REPO [--branches 'main,release/*'] [--poll 5m|off] [--keep N] "
                 "[--devcontainer PATH] [--off] [--json]",
     .summary = "keep branches of a repository prebuilt: poll for new commits, or take a git "
                "host's push webhook (printed with its secret when made); --off removes it"},
    {.name = "prebuild configs",
     .run = cmd_prebuild_configs,
     .flags = REMOTE | F(JSON),
     .synopsis = "[--json]",
     .summary = "list your prebuild configurations (admins: everyone's)"},
    {.name = "prebuild share",
     .run = cmd_prebuild_share,
     .flags = REMOTE | F(OFF),
     .min_args = 1,
     .max_args = 1,
     .synopsis = "CONFIG-ID [--off]",
     .summary = "(admins) let every user who may clone the repository use this configuration's "
                "prebuilds"},
    {.name = "prebuild",
     .run = cmd_prebuild,
     .flags = REMOTE | F(BRANCH) | F(DEVCONTAINER) | F(NO_WAIT) | F(JSON),
     .min_args = 1,
     .max_args = 1,
     .synopsis = "REPO [--branch B] [--devcontainer PATH] [--no-wait] [--json]",
     .summary = "prebuild a branch (clone, image, onCreateCommand, updateContentCommand) so "
                "that workspaces of it are ready at once; streams the log and waits"},
    {.name = "prebuilds",
     .run = cmd_prebuilds,
     .flags = REMOTE | F(JSON),
     .max_args = 1,
     .synopsis = "[REPO] [--json]",
     .summary = "list your prebuilds, newest first"},

    {.name = "login",
     .section = "accounts",
     .run = cmd_login,
     .flags = REMOTE | F(USERNAME) | F(PASSWORD_STDIN) | F(TOKEN),
     .own_token = true,
     .synopsis = "[--username NAME] [--password-stdin] | --token TOKEN",
     .summary = "log in and keep a token for this server (--token: keep a token you have)"},
    {.name = "logout",
     .run = cmd_logout,
     .flags = REMOTE,
     .own_token = true,
     .synopsis = "",
     .summary = "revoke the stored token and forget it"},
    {.name = "whoami",
     .run = cmd_whoami,
     .flags = REMOTE | F(JSON),
     .synopsis = "[--json]",
     .summary = "print who the server takes you for"},
    {.name = "token create",
     .run = cmd_token_create,
     .flags = REMOTE | F(JSON),
     .min_args = 1,
     .max_args = 1,
     .synopsis = "NAME [--json]",
     .summary = "make an API token for scripts; it is printed only this once"},
    {.name = "token ls",
     .alias = "list",
     .run = cmd_token_ls,
     .flags = REMOTE | F(JSON),
     .synopsis = "[--json]",
     .summary = "list your API tokens and logins"},
    {.name = "token revoke",
     .run = cmd_token_revoke,
     .flags = REMOTE,
     .min_args = 1,
     .max_args = 1,
     .synopsis = "ID",
     .summary = "revoke a token; it stops working at once"},

    {.name = "git-credentials add",
     .section = "credentials and secrets for your workspaces",
     .run = cmd_gitcred_add,
     .flags = REMOTE | F(USERNAME) | F(PASSWORD_STDIN),
     .min_args = 1,
     .max_args = 1,
     .synopsis = "URL --username U [--password-stdin]",
     .summary = "store a username and password (or access token) for a git host"},
    {.name = "git-credentials ls",
     .alias = "list",
     .run = cmd_gitcred_ls,
     .flags = REMOTE | F(JSON),
     .synopsis = "[--json]",
     .summary = "list your git credentials (never their passwords)"},
    {.name = "git-credentials rm",
     .run = cmd_gitcred_rm,
     .flags = REMOTE,
     .min_args = 1,
     .max_args = 1,
     .synopsis = "ID",
     .summary = "delete git credentials"},
    {.name = "secret set",
     .run = cmd_secret_set,
     .flags = REMOTE | F(REPO) | F(VALUE_STDIN),
     .min_args = 1,
     .max_args = 1,
     .synopsis = "NAME [--repo PATTERN] [--value-stdin]",
     .summary = "set a secret, an environment variable in your workspaces (of matching repos)"},
    {.name = "secret ls",
     .alias = "list",
     .run = cmd_secret_ls,
     .flags = REMOTE | F(JSON),
     .synopsis = "[--json]",
     .summary = "list your secrets (never their values)"},
    {.name = "secret rm",
     .run = cmd_secret_rm,
     .flags = REMOTE,
     .min_args = 1,
     .max_args = 1,
     .synopsis = "NAME",
     .summary = "delete a secret"},
    {.name = "ssh-key add",
     .run = cmd_sshkey_add,
     .flags = REMOTE | F(NAME),
     .max_args = 1,
     .synopsis = "[FILE|-] [--name N]",
     .summary = "register an SSH public key (ed25519, ECDSA, RSA >= 2048) for `ssh WS@berthd`"},
    {.name = "ssh-key ls",
     .alias = "list",
     .run = cmd_sshkey_ls,
     .flags = REMOTE | F(JSON),
     .synopsis = "[--json]",
     .summary = "list your SSH keys"},
    {.name = "ssh-key rm",
     .run = cmd_sshkey_rm,
     .flags = REMOTE,
     .min_args = 1,
     .max_args = 1,
     .synopsis = "ID",
     .summary = "delete an SSH key; it stops logging in at once"},
    {.name = "ssh-config",
     .run = cmd_ssh_config,
     .flags = REMOTE | F(SSH_INSTALL) | F(PROXY),
     .max_args = 64,
     .synopsis = "[WS...] [--install] [--proxy]",
     .summary = "print OpenSSH config (Host berth-WS) for the SSH gateway, host key pinned "
                "(--install: into ~/.ssh/config through an Include; --proxy: over the HTTP "
                "port with `berth ssh-proxy`)"},
    {.name = "ssh-proxy",
     .run = cmd_ssh_proxy,
     .flags = REMOTE,
     ONE_WS,
     .synopsis = "WS",
     .summary = "an OpenSSH ProxyCommand: carries ssh's stream to the SSH gateway over "
                "berthd's HTTP port (`ssh -o ProxyCommand='berth ssh-proxy %r' WS@berthd`)"},
    {.name = "settings",
     .run = cmd_settings,
     .flags = REMOTE | F(INSTALL) | F(TARGET) | F(OFF) | F(JSON),
     .max_args = 2,
     .synopsis = "[idle 30m|2h|never|default] [dotfiles URL [--install CMD] [--target DIR] | "
                 "dotfiles --off] [--json]",
     .summary = "print or change your settings: the idle timeout of your workspaces, and the "
                "dotfiles repository every new workspace gets"},

    {.name = "admin create-user",
     .section = "administration (admins only)",
     .run = cmd_admin_create_user,
     .flags = REMOTE | F(PASSWORD_STDIN) | F(ADMIN) | F(JSON),
     .min_args = 1,
     .max_args = 1,
     .synopsis = "NAME [--password-stdin] [--admin] [--json]",
     .summary = "create a user; without --password-stdin a password is generated and printed once"},
    {.name = "admin ls-users",
     .run = cmd_admin_ls_users,
     .flags = REMOTE | F(JSON),
     .synopsis = "[--json]",
     .summary = "list users"},
    {.name = "admin disable-user",
     .run = cmd_admin_disable_user,
     .flags = REMOTE,
     .min_args = 1,
     .max_args = 1,
     .synopsis = "NAME",
     .summary = "disable a user; their sessions and tokens stop working at once"},
    {.name = "admin enable-user",
     .run = cmd_admin_enable_user,
     .flags = REMOTE,
     .min_args = 1,
     .max_args = 1,
     .synopsis = "NAME",
     .summary = "enable a disabled user"},
    {.name = "admin audit",
     .run = cmd_admin_audit,
     .flags = REMOTE | F(LIMIT) | F(JSON),
     .synopsis = "[--limit N] [--json]",
     .summary = "print the audit log, newest first"},
    {.name = "admin settings",
     .run = cmd_admin_settings,
     .flags = REMOTE | F(MAX_WORKSPACES) | F(MAX_RUNNING) | F(MAX_CPUS) | F(MAX_MEMORY) | F(ALLOW) |
              F(DISALLOW) | F(PREBUILD_KEEP) | F(PREBUILD_QUOTA) | F(IDLE_MAX) | F(IDLE_NEVER) |
              F(RETENTION_DAYS) | F(JSON),
     .synopsis = "[--max-workspaces N] [--max-running N] [--max-cpus N] [--max-memory SIZE] "
                 "[--allow ENTRY]... [--disallow ENTRY]... [--prebuild-keep N] "
                 "[--prebuild-quota SIZE] [--idle-max 4h] [--idle-never yes|no] "
                 "[--retention-days N] [--json]",
     .summary = "print the limits and what devcontainer.json may ask for, or change them "
                "(ENTRY: privileged, capAdd:NAME, securityOpt:VALUE, network:NAME, "
                "device:/PATH, bind:/PATH)"},
    {.name = "admin nodes",
     .run = cmd_admin_nodes,
     .flags = REMOTE | F(JSON),
     .synopsis = "[--json]",
     .summary = "list the cluster's nodes: state, availability, resources, running tasks, labels"},
    {.name = "admin node",
     .run = cmd_admin_node,
     .flags = REMOTE | F(JSON),
     .min_args = 2,
     .max_args = 34,
     .synopsis = "label NODE KEY=VALUE|KEY-... | drain NODE | pause NODE | activate NODE [--json]",
     .summary = "set (KEY=VALUE) or remove (KEY-) a cluster node's labels; pause it (no new "
                "workspaces), drain it (also its workspaces are unavailable until it is "
                "active again) or make it active again"},

    {.name = "version",
     .section = "berth",
     .run = cmd_version,
     .synopsis = "",
     .summary = "print berth's version"},
    {.name = "help",
     .run = cmd_help,
     .max_args = 2,
     .synopsis = "[COMMAND]",
     .summary = "print this help, or a command's usage"},
};

/* How many of the words at argv name cmd: 1 ("ls"), 2 ("token create") or 0. */
static size_t command_matches(const struct command *cmd, size_t argc, char *const *argv)
{
    const char *last = cmd->name;
    const char *space = strchr(cmd->name, ' ');
    size_t words = 1;
    if (space) {
        size_t group_len = (size_t)(space - cmd->name);
        if (argc < 2 || strlen(argv[0]) != group_len || strncmp(argv[0], cmd->name, group_len))
            return 0;
        last = space + 1;
        words = 2;
    }
    const char *word = argv[words - 1];
    if (strcmp(last, word) == 0 || (cmd->alias && strcmp(cmd->alias, word) == 0))
        return words;
    return 0;
}

static const struct command *command_find(size_t argc, char *const *argv, size_t *ret_words)
{
    for (size_t i = 0; argc > 0 && i < ELEMENTSOF(commands); i++) {
        size_t words = command_matches(&commands[i], argc, argv);
        if (words) {
            *ret_words = words;
            return &commands[i];
        }
    }
    return NULL;
}

/* Whether word is the first word of two-word commands ("token"). */
static bool command_is_group(const char *word)
{
    size_t n = strlen(word);
    for (size_t i = 0; i < ELEMENTSOF(commands); i++)
        if (strncmp(commands[i].name, word, n) == 0 && commands[i].name[n] == ' ')
            return true;
    return false;
}

static void command_usage(FILE *f, const struct command *cmd)
{
    fprintf(f, "usage: berth %s%s%s\n", cmd->name, *cmd->synopsis ? " " : "", cmd->synopsis);
}

static void command_line(FILE *f, const struct command *cmd)
{
    fprintf(f, "  %s%s%s%s%s\n      %s\n", cmd->name, cmd->alias ? "|" : "",
            cmd->alias ? cmd->alias : "", *cmd->synopsis ? " " : "", cmd->synopsis, cmd->summary);
}

/* The subcommands of a group: `berth token`, `berth help token`. */
static void group_usage(FILE *f, const char *group)
{
    fprintf(f, "usage: berth %s SUBCOMMAND [ARGS]\n\nsubcommands:\n", group);
    size_t n = strlen(group);
    for (size_t i = 0; i < ELEMENTSOF(commands); i++)
        if (strncmp(commands[i].name, group, n) == 0 && commands[i].name[n] == ' ')
            command_line(f, &commands[i]);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: berth [--server URL] COMMAND [ARGS]\n");
    for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
        if (commands[i].section)
            fprintf(f, "\n%s:\n", commands[i].section);
        command_line(f, &commands[i]);
    }
    fprintf(f,
            "\nWS is a workspace's name or id. berthd is reached at --server URL, else\n"
            "$BERTH_SERVER, else %s.\n"
            "Each command sends $BERTH_TOKEN, if set, as a bearer token, else the token\n"
            "'berth login' stored for that URL in $XDG_CONFIG_HOME/berth/config.json\n"
            "(default ~/.config/berth/config.json).\n",
            BERTH_DEFAULT_SERVER);
}

static int cmd_help(_unused_ struct client *c, const struct cli_args *a,
                    _unused_ struct berr **reterr)
{
    if (a->pos.n == 0) {
        usage(stdout);
        return 0;
    }
    size_t words = 0;
    const struct command *cmd = command_find(a->pos.n, a->pos.v, &words);
    if (cmd && words == a->pos.n) {
        command_usage(stdout, cmd);
        return 0;
    }
    if (a->pos.n == 1 && command_is_group(a->pos.v[0])) {
        group_usage(stdout, a->pos.v[0]);
        return 0;
    }
    fprintf(stderr, "berth: unknown command '%s%s%s'\n", a->pos.v[0], a->pos.n > 1 ? " " : "",
            a->pos.n > 1 ? a->pos.v[1] : "");
    usage(stderr);
    return EXIT_USAGE;
}

static int cmd_version(_unused_ struct client *c, _unused_ const struct cli_args *a,
                       _unused_ struct berr **reterr)
{
    printf("berth %s\n", BERTH_VERSION);
    return 0;
}

/* The flag arg names; of two with one name (--install: a command for
 * `settings dotfiles`, a switch for `ssh-config`) the one the command takes. */
static const struct flag *flag_find(const char *arg, size_t len, uint64_t allowed)
{
    const struct flag *found = NULL;
    for (size_t i = 0; i < ELEMENTSOF(flags); i++) {
        const char *alias = flags[i].alias;
        if ((strlen(flags[i].name) == len && strncmp(flags[i].name, arg, len) == 0) ||
            (alias && strlen(alias) == len && strncmp(alias, arg, len) == 0)) {
            if (flags[i].bit & allowed)
                return &flags[i];
            if (!found)
                found = &flags[i];
        }
    }
    return found;
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
        const struct flag *f = flag_find(arg, len, cmd->flags | F(HELP));
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
    strv_release(&a->allow);
    strv_release(&a->disallow);
}

/* Gives the client its token: BERTH_TOKEN when set, else the one `berth login`
 * stored for the server's URL, else none. */
static int client_auth(struct client *c, bool *ret_from_env, struct berr **reterr)
{
    const char *env = getenv("BERTH_TOKEN");
    if (env && *env) {
        client_set_token(c, env);
        *ret_from_env = true;
        return 0;
    }
    _cleanup_(config_freep) struct config *cfg = NULL;
    int r = config_read(&cfg, reterr);
    if (r < 0)
        return r;
    client_set_token(c, config_token(cfg, client_url(c)));
    *ret_from_env = false;
    return 0;
}

/* berthd answered 401: it did not take the caller. Its own message is kept when
 * it says why a token stopped working (revoked, a disabled account), which
 * logging in again may not fix; otherwise the fix is to log in, or, when the
 * token came from BERTH_TOKEN, to give one that works. */
static void explain_401(const struct client *c, bool from_env, struct berr **err)
{
    static const char *const reasons[] = {"revoked", "disabled", "expired"};
    const char *msg = berr_msg(*err);
    for (size_t i = 0; i < ELEMENTSOF(reasons); i++)
        if (strcasestr(msg, reasons[i]))
            return;
    *err = berr_free(*err);
    if (from_env)
        (void)berr_make(err, EKEYREJECTED,
                        "not logged in to %s: it refused the token in BERTH_TOKEN", client_url(c));
    else
        (void)berr_make(err, EKEYREJECTED, "not logged in to %s (run 'berth login')",
                        client_url(c));
}

/* A group name without a known subcommand: `berth token`, `berth token --help`. */
static int group_only(const char *group, int argc, char **argv)
{
    if (argc > 0 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        group_usage(stdout, group);
        return 0;
    }
    if (argc > 0)
        fprintf(stderr, "berth: %s: unknown subcommand '%s'\n", group, argv[0]);
    else
        fprintf(stderr, "berth: %s: missing subcommand\n", group);
    group_usage(stderr, group);
    return EXIT_USAGE;
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
    size_t words = 0;
    const struct command *cmd = command_find((size_t)(argc - i), argv + i, &words);
    if (!cmd && command_is_group(argv[i]))
        return group_only(argv[i], argc - i - 1, argv + i + 1);
    if (!cmd) {
        fprintf(stderr, "berth: unknown command '%s'\n", argv[i]);
        usage(stderr);
        return EXIT_USAGE;
    }
    _cleanup_(cli_args_release) struct cli_args a = {
        .pos = STRV_INIT, .env = STRV_INIT, .allow = STRV_INIT, .disallow = STRV_INIT};
    if (args_parse(cmd, argc - i - (int)words, argv + i + words, &a) < 0) {
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
    bool token_from_env = false;
    int r = 0;
    if (cmd->flags & REMOTE) {
        r = client_new(server, NULL, &c, &err);
        if (r >= 0 && !cmd->own_token)
            r = client_auth(c, &token_from_env, &err);
    }
    if (r >= 0)
        r = cmd->run(c, &a, &err);
    if (r == -EKEYREJECTED && c)
        explain_401(c, token_from_env, &err);
    if (r < 0) {
        fprintf(stderr, "berth: %s\n", berr_msg(err));
        r = 1;
    }
    c = client_free(c);
    curl_global_cleanup();
    return r;
}
