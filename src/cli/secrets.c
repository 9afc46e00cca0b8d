/* secrets.c - what a user's workspaces may use without it being in the repo:
 * git credentials (for cloning private repositories) and secrets (environment
 * variables, optionally only for repositories that match a pattern).
 *
 * berthd never returns a password or a secret value, so the lists show names
 * only. Values are read from the terminal with echo off, or from stdin, and
 * wiped from this process's buffers once sent.
 */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/prompt.h"
#include "util/xalloc.h"

/* A secret value read from stdin may span lines (a key file) but not more. */
#define SECRET_MAX_VALUE (1024u * 1024)

int cmd_gitcred_add(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    const char *url = a->pos.v[0];
    if (!a->username)
        return berr_make(reterr, EINVAL, "git-credentials add: --username is required");
    _cleanup_(prompt_wipe) char *password = NULL;
    int r;
    if (a->password_stdin) {
        r = prompt_stdin_line("password", &password, reterr);
    } else {
        _cleanup_free_ char *prompt = xasprintf("Password for %s at %s: ", a->username, url);
        r = prompt_line("password", prompt, false, "--password-stdin", &password, reterr);
        if (r >= 0 && !*password)
            r = berr_make(reterr, EINVAL, "no password given");
    }
    if (r < 0)
        return r;
    _cleanup_(json_decrefp) json_t *body = json_object();
    r = cmd_json_set(body, "url", url, reterr);
    if (r >= 0)
        r = cmd_json_set(body, "username", a->username, reterr);
    if (r < 0)
        return r;
    if (json_object_set_new(body, "password", json_string(password)) < 0)
        return berr_make(reterr, EINVAL, "the password is not valid UTF-8");
    _cleanup_(json_decrefp) json_t *resp = NULL;
    r = client_json(c, "POST", "/api/v1/git-credentials", body, &resp, reterr);
    if (r < 0)
        return r;
    if (json_object_get(resp, "id")) {
        _cleanup_free_ char *id = cmd_json_text(resp, "id");
        printf("git credentials for %s added (id %s)\n", url, id);
    } else {
        printf("git credentials for %s added\n", url);
    }
    return 0;
}

int cmd_gitcred_ls(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_(json_decrefp) json_t *resp = NULL;
    int r = client_json(c, "GET", "/api/v1/git-credentials", NULL, &resp, reterr);
    if (r < 0)
        return r;
    json_t *list = json_object_get(resp, "credentials");
    if (!json_is_array(list))
        return berr_make(reterr, EBADMSG, "berthd's git credentials have no 'credentials' array");
    if (a->json) {
        cmd_print_json(list);
        return 0;
    }
    _cleanup_strv_ struct strv cells = STRV_INIT;
    strv_pushl(&cells, "ID", "URL", "USERNAME", "CREATED", NULL);
    time_t now = time(NULL);
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *cred = json_array_get(list, i);
        strv_push_owned(&cells, cmd_json_text(cred, "id"));
        strv_push_owned(&cells, cmd_json_text(cred, "url"));
        strv_push_owned(&cells, cmd_json_text(cred, "username"));
        strv_push_owned(&cells, cmd_format_ago(cmd_json_str(cred, "created_at", NULL), now, "-"));
    }
    cmd_print_table(&cells, 4);
    return 0;
}

int cmd_gitcred_rm(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_free_ char *path = cmd_api_path("/api/v1/git-credentials/", a->pos.v[0], "");
    _cleanup_(json_decrefp) json_t *resp = NULL;
    int r = client_json(c, "DELETE", path, NULL, &resp, reterr);
    if (r < 0)
        return r;
    printf("git credentials %s removed\n", a->pos.v[0]);
    return 0;
}

int cmd_secret_set(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    const char *name = a->pos.v[0];
    _cleanup_(prompt_wipe_buf) struct buf value = BUF_INIT;
    int r;
    if (a->value_stdin) {
        r = prompt_stdin_all("value", SECRET_MAX_VALUE, &value, reterr);
    } else {
        _cleanup_free_ char *prompt = xasprintf("Value for secret %s: ", name);
        _cleanup_(prompt_wipe) char *line = NULL;
        r = prompt_line("value", prompt, false, "--value-stdin", &line, reterr);
        if (r >= 0 && !*line) /* Enter by mistake must not empty a secret */
            r = berr_make(reterr, EINVAL, "no value given (an empty one needs --value-stdin)");
        if (r >= 0)
            buf_adds(&value, line);
    }
    if (r < 0)
        return r;
    _cleanup_(json_decrefp) json_t *body = json_object();
    if (json_object_set_new(body, "value", json_stringn(value.buf, value.len)) < 0)
        return berr_make(reterr, EINVAL, "the value of secret '%s' is not UTF-8 text", name);
    r = cmd_json_set(body, "repo_pattern", a->repo, reterr);
    if (r < 0)
        return r;
    _cleanup_free_ char *path = cmd_api_path("/api/v1/secrets/", name, "");
    _cleanup_(json_decrefp) json_t *resp = NULL;
    r = client_json(c, "PUT", path, body, &resp, reterr);
    if (r < 0)
        return r;
    if (a->repo)
        printf("secret '%s' set for repositories matching '%s'\n", name, a->repo);
    else
        printf("secret '%s' set\n", name);
    return 0;
}

int cmd_secret_ls(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_(json_decrefp) json_t *resp = NULL;
    json_t *list = NULL;
    int r = cmd_get_list(c, a, "/api/v1/secrets", "secrets", "secret list", &resp, &list, reterr);
    if (r != 0)
        return r < 0 ? r : 0;
    _cleanup_strv_ struct strv cells = STRV_INIT;
    strv_pushl(&cells, "NAME", "REPO", "CREATED", NULL);
    time_t now = time(NULL);
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *s = json_array_get(list, i);
        strv_push_owned(&cells, cmd_json_text(s, "name"));
        strv_push_owned(&cells, cmd_json_text(s, "repo_pattern"));
        strv_push_owned(&cells, cmd_format_ago(cmd_json_str(s, "created_at", NULL), now, "-"));
    }
    cmd_print_table(&cells, 3);
    return 0;
}

int cmd_secret_rm(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_free_ char *path = cmd_api_path("/api/v1/secrets/", a->pos.v[0], "");
    _cleanup_(json_decrefp) json_t *resp = NULL;
    int r = client_json(c, "DELETE", path, NULL, &resp, reterr);
    if (r < 0)
        return r;
    printf("secret '%s' removed\n", a->pos.v[0]);
    return 0;
}
