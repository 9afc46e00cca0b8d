/* account.c - who the CLI is to berthd: login, logout, whoami and API tokens.
 *
 * `berth login` turns a name and password (or a token made elsewhere) into an
 * API token and keeps it in the config file (config.h) under the server's URL;
 * main.c then sends that token with every command unless BERTH_TOKEN is set.
 * Login and logout choose their token themselves: login sends none (or the one
 * being checked) and logout the stored one, never BERTH_TOKEN.
 *
 * Tokens and passwords are never printed; the one exception is `token create`,
 * whose whole purpose is to show a new token once.
 */
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include "cli/commands.h"
#include "cli/config.h"
#include "cli/prompt.h"
#include "util/xalloc.h"

static void warn_env_token(const char *what)
{
    if (getenv("BERTH_TOKEN") && *getenv("BERTH_TOKEN"))
        fprintf(stderr, "berth: warning: BERTH_TOKEN is set; commands send it, not the token %s\n",
                what);
}

/* Checks a token someone already has with GET /me; *ret_user gets its owner. */
static int login_with_token(struct client *c, const char *token, char **ret_user,
                            struct berr **reterr)
{
    client_set_token(c, token);
    _cleanup_(json_decrefp) json_t *me = NULL;
    _cleanup_berr_ struct berr *err = NULL;
    int r = client_json(c, "GET", "/api/v1/me", NULL, &me, &err);
    if (r == -EKEYREJECTED)
        return berr_make(reterr, EACCES, "%s did not accept the token: %s", client_url(c),
                         berr_msg(err));
    if (r < 0)
        return berr_make(reterr, -r, "%s", berr_msg(err));
    const char *name = cmd_json_str(me, "name", NULL);
    if (!name)
        return berr_make(reterr, EBADMSG, "berthd's answer to GET /api/v1/me has no 'name'");
    *ret_user = xstrdup(name);
    return 0;
}

/* Asks for what login_with_password() does not have: the name on the terminal,
 * the password on the terminal or stdin. */
static int ask_credentials(const struct client *c, const struct cli_args *a, char **ret_name,
                           char **ret_password, struct berr **reterr)
{
    _cleanup_free_ char *name = a->username ? xstrdup(a->username) : NULL;
    int r = 0;
    if (!name) {
        _cleanup_free_ char *prompt = xasprintf("Username for %s: ", client_url(c));
        r = prompt_line("username", prompt, true, "--username", &name, reterr);
    }
    if (r >= 0 && !*name)
        r = berr_make(reterr, EINVAL, "no username given");
    if (r < 0)
        return r;
    _cleanup_(prompt_wipe) char *password = NULL;
    if (a->password_stdin) {
        r = prompt_stdin_line("password", &password, reterr);
    } else {
        _cleanup_free_ char *prompt = xasprintf("Password for %s: ", name);
        r = prompt_line("password", prompt, false, "--password-stdin", &password, reterr);
        if (r >= 0 && !*password)
            r = berr_make(reterr, EINVAL, "no password given");
    }
    if (r < 0)
        return r;
    *ret_name = TAKE_PTR(name);
    *ret_password = TAKE_PTR(password);
    return 0;
}

/* POST /auth/login in token mode; the token is named for this machine so that
 * `berth token ls` tells logins apart. */
static int login_with_password(struct client *c, const struct cli_args *a, char **ret_token,
                               char **ret_user, struct berr **reterr)
{
    _cleanup_free_ char *name = NULL;
    _cleanup_(prompt_wipe) char *password = NULL;
    int r = ask_credentials(c, a, &name, &password, reterr);
    if (r < 0)
        return r;

    struct utsname u;
    _cleanup_free_ char *token_name =
        xasprintf("berth CLI on %s", uname(&u) == 0 && *u.nodename ? u.nodename : "unknown host");
    _cleanup_(json_decrefp) json_t *body = json_pack("{s:s}", "mode", "token");
    r = cmd_json_set(body, "token_name", token_name, reterr);
    if (r >= 0)
        r = cmd_json_set(body, "username", name, reterr);
    if (r < 0)
        return r;
    if (json_object_set_new(body, "password", json_string(password)) < 0)
        return berr_make(reterr, EINVAL, "the password is not valid UTF-8");

    client_set_token(c, NULL);
    _cleanup_(json_decrefp) json_t *resp = NULL;
    _cleanup_berr_ struct berr *err = NULL;
    r = client_json(c, "POST", "/api/v1/auth/login", body, &resp, &err);
    if (r == -EKEYREJECTED)
        return berr_make(reterr, EACCES, "invalid username or password");
    if (r < 0) /* 429 and the like: the server says how long to wait */
        return berr_make(reterr, -r, "%s", berr_msg(err));

    const char *token = NULL, *user = NULL;
    json_error_t jerr;
    if (json_unpack_ex(resp, &jerr, 0, "{s:s, s?{s?s}}", "token", &token, "user", "name", &user) <
        0)
        return berr_make(reterr, EBADMSG, "berthd's login answer is not as expected: %s",
                         jerr.text);
    if (!*token)
        return berr_make(reterr, EBADMSG, "berthd's login answer has an empty token");
    *ret_token = xstrdup(token);
    *ret_user = xstrdup(user ? user : name);
    return 0;
}

int cmd_login(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    if (a->token && (a->username || a->password_stdin))
        return berr_make(reterr, EINVAL,
                         "--token cannot be combined with --username or --password-stdin");
    const char *url = client_url(c);
    /* A config that cannot be written is found before the server makes a token. */
    _cleanup_(config_freep) struct config *cfg = NULL;
    int r = config_read(&cfg, reterr);
    if (r < 0)
        return r;
    cfg = config_free(cfg);

    _cleanup_(prompt_wipe) char *token = a->token ? xstrdup(a->token) : NULL;
    _cleanup_free_ char *user = NULL;
    if (token)
        r = login_with_token(c, token, &user, reterr);
    else
        r = login_with_password(c, a, &token, &user, reterr);
    if (r < 0)
        return r;

    r = config_open(&cfg, reterr);
    if (r >= 0)
        r = config_set(cfg, url, token, user, reterr);
    if (r >= 0)
        r = config_save(cfg, reterr);
    if (r < 0)
        return r;
    printf("logged in to %s as %s\n", url, user);
    warn_env_token("stored by login");
    return 0;
}

int cmd_logout(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    const char *url = client_url(c);
    _cleanup_(config_freep) struct config *cfg = NULL;
    int r = config_open(&cfg, reterr);
    if (r < 0)
        return r;
    const char *token = config_token(cfg, url);
    if (!token) {
        printf("not logged in to %s\n", url);
        warn_env_token("of a login");
        return 0;
    }
    /* Revoke it on the server first; a token already refused there (401) is
     * as good as revoked, and no answer at all must not keep it on disk. */
    client_set_token(c, token);
    _cleanup_(json_decrefp) json_t *resp = NULL;
    _cleanup_berr_ struct berr *err = NULL;
    r = client_json(c, "POST", "/api/v1/auth/logout", NULL, &resp, &err);
    if (r < 0 && r != -EKEYREJECTED)
        fprintf(stderr,
                "berth: warning: could not revoke the token on the server (%s); it is removed "
                "here but may still work: 'berth token ls' after logging in shows it\n",
                berr_msg(err));
    (void)config_remove(cfg, url);
    r = config_save(cfg, reterr);
    if (r < 0)
        return r;
    printf("logged out of %s\n", url);
    warn_env_token("that was removed");
    return 0;
}

int cmd_whoami(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_(json_decrefp) json_t *me = NULL;
    int r = client_json(c, "GET", "/api/v1/me", NULL, &me, reterr);
    if (r < 0)
        return r;
    if (a->json) {
        cmd_print_json(me);
        return 0;
    }
    const char *name = cmd_json_str(me, "name", NULL);
    if (!name)
        return berr_make(reterr, EBADMSG, "berthd's answer to GET /api/v1/me has no 'name'");
    printf("%s%s\n", name, json_is_true(json_object_get(me, "admin")) ? " (admin)" : "");
    return 0;
}

int cmd_token_create(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_(json_decrefp) json_t *body = json_object();
    int r = cmd_json_set(body, "name", a->pos.v[0], reterr);
    if (r < 0)
        return r;
    _cleanup_(json_decrefp) json_t *resp = NULL;
    r = client_json(c, "POST", "/api/v1/tokens", body, &resp, reterr);
    if (r < 0)
        return r;
    const char *token = cmd_json_str(resp, "token", NULL);
    if (!token)
        return berr_make(reterr, EBADMSG, "berthd's answer has no 'token'");
    if (a->json)
        cmd_print_json(resp);
    else
        printf("%s\n", token);
    _cleanup_free_ char *id = cmd_json_text(resp, "id");
    fflush(stdout);
    fprintf(stderr, "berth: token '%s' (id %s) created; it will not be shown again\n",
            cmd_json_str(resp, "name", a->pos.v[0]), id);
    return 0;
}

int cmd_token_ls(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_(json_decrefp) json_t *resp = NULL;
    json_t *list = NULL;
    int r = cmd_get_list(c, a, "/api/v1/tokens", "tokens", "token list", &resp, &list, reterr);
    if (r != 0)
        return r < 0 ? r : 0;
    _cleanup_strv_ struct strv cells = STRV_INIT;
    strv_pushl(&cells, "ID", "NAME", "CREATED", "LAST-USED", NULL);
    time_t now = time(NULL);
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *t = json_array_get(list, i);
        strv_push_owned(&cells, cmd_json_text(t, "id"));
        strv_push_owned(&cells, cmd_json_text(t, "name"));
        strv_push_owned(&cells, cmd_format_ago(cmd_json_str(t, "created_at", NULL), now, "-"));
        strv_push_owned(&cells,
                        cmd_format_ago(cmd_json_str(t, "last_used_at", NULL), now, "never"));
    }
    cmd_print_table(&cells, 4);
    return 0;
}

int cmd_token_revoke(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_free_ char *path = cmd_api_path("/api/v1/tokens/", a->pos.v[0], "");
    _cleanup_(json_decrefp) json_t *resp = NULL;
    int r = client_json(c, "DELETE", path, NULL, &resp, reterr);
    if (r < 0)
        return r;
    printf("token %s revoked\n", a->pos.v[0]);
    return 0;
}
