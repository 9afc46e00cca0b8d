/* sshkeys.c - SSH access to workspaces: the user's public keys (`berth
 * ssh-key add|ls|rm`) and `berth ssh-config`, which prints OpenSSH client
 * configuration for berthd's SSH gateway with its host key pinned in a
 * known_hosts file of Berth's own (beside the CLI's logins).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "cli/prompt.h"
#include "util/fs.h"
#include "util/xalloc.h"

#define SSHKEY_MAX_FILE (64u * 1024)

int cmd_sshkey_add(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    const char *file = a->pos.n ? a->pos.v[0] : "-";
    _cleanup_buf_ struct buf key = BUF_INIT;
    int r;
    if (strcmp(file, "-") == 0) {
        r = prompt_stdin_all("key", SSHKEY_MAX_FILE, &key, reterr);
        if (r < 0)
            return r;
    } else if ((r = read_file(file, SSHKEY_MAX_FILE, &key)) < 0) {
        return berr_make(reterr, -r, "cannot read '%s': %s", file, strerror(-r));
    }
    _cleanup_(json_decrefp) json_t *body = json_object();
    r = cmd_json_set(body, "key", key.buf, reterr);
    if (r >= 0 && a->name)
        r = cmd_json_set(body, "name", a->name, reterr);
    if (r < 0)
        return r;
    _cleanup_(json_decrefp) json_t *resp = NULL;
    r = client_json(c, "POST", "/api/v1/ssh-keys", body, &resp, reterr);
    if (r < 0)
        return r;
    _cleanup_free_ char *id = cmd_json_text(resp, "id");
    printf("SSH key %s added (id %s)\n", cmd_json_str(resp, "fingerprint", "?"), id);
    return 0;
}

int cmd_sshkey_ls(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_(json_decrefp) json_t *resp = NULL;
    int r = client_json(c, "GET", "/api/v1/ssh-keys", NULL, &resp, reterr);
    if (r < 0)
        return r;
    json_t *list = json_object_get(resp, "keys");
    if (!json_is_array(list))
        return berr_make(reterr, EBADMSG, "berthd's SSH keys have no 'keys' array");
    if (a->json) {
        cmd_print_json(list);
        return 0;
    }
    _cleanup_strv_ struct strv cells = STRV_INIT;
    strv_pushl(&cells, "ID", "NAME", "TYPE", "FINGERPRINT", "LAST USED", NULL);
    time_t now = time(NULL);
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *k = json_array_get(list, i);
        strv_push_owned(&cells, cmd_json_text(k, "id"));
        strv_push_owned(&cells, cmd_json_text(k, "name"));
        strv_push_owned(&cells, cmd_json_text(k, "type"));
        strv_push_owned(&cells, cmd_json_text(k, "fingerprint"));
        strv_push_owned(&cells, cmd_format_ago(cmd_json_str(k, "last_used_at", NULL), now, "-"));
    }
    cmd_print_table(&cells, 5);
    return 0;
}

int cmd_sshkey_rm(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_free_ char *path = cmd_api_path("/api/v1/ssh-keys/", a->pos.v[0], "");
    _cleanup_(json_decrefp) json_t *resp = NULL;
    int r = client_json(c, "DELETE", path, NULL, &resp, reterr);
    if (r < 0)
        return r;
    printf("SSH key %s removed\n", a->pos.v[0]);
    return 0;
}

/* The host part of http://HOST:PORT/..., newly allocated. */
static char *url_host(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    if (*p == '[') {
        const char *end = strchr(p, ']');
        return end ? xstrndup(p + 1, (size_t)(end - p - 1)) : xstrdup(p);
    }
    return xstrndup(p, strcspn(p, ":/"));
}

static char *known_hosts_path(void)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    if (xdg && xdg[0] == '/')
        return xasprintf("%s/berth/known_hosts", xdg);
    const char *home = getenv("HOME");
    return xasprintf("%s/.config/berth/known_hosts", home && *home ? home : "/tmp");
}

int cmd_ssh_config(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_(json_decrefp) json_t *host = NULL;
    int r = client_json(c, "GET", "/api/v1/ssh-host", NULL, &host, reterr);
    if (r < 0)
        return r;
    const char *listen = cmd_json_str(host, "listen", "");
    const char *key = cmd_json_str(host, "host_key", "");
    const char *colon = strrchr(listen, ':');
    if (!colon || !*key)
        return berr_make(reterr, EBADMSG, "berthd's SSH gateway answer has no address or key");
    _cleanup_free_ char *addr = xstrndup(listen, (size_t)(colon - listen));
    const char *port = colon + 1;
    if (strcmp(addr, "0.0.0.0") == 0 || strcmp(addr, "::") == 0 || !*addr) {
        free(addr);
        addr = url_host(client_url(c));
    }
    _cleanup_free_ char *alias = xasprintf("berthd-%s-%s", addr, port);
    _cleanup_free_ char *kh = known_hosts_path();
    _cleanup_free_ char *dir = xstrndup(kh, (size_t)(strrchr(kh, '/') - kh));
    _cleanup_free_ char *line = xasprintf("%s %s\n", alias, key);
    r = mkdir_p(dir, 0700);
    if (r >= 0)
        r = write_file_atomic(kh, line, strlen(line), 0600);
    if (r < 0)
        return berr_make(reterr, -r, "cannot write '%s': %s", kh, strerror(-r));

    _cleanup_strv_ struct strv names = STRV_INIT;
    if (a->pos.n) {
        for (size_t i = 0; i < a->pos.n; i++)
            strv_push(&names, a->pos.v[i]);
    } else {
        _cleanup_(json_decrefp) json_t *resp = NULL;
        r = client_json(c, "GET", "/api/v1/workspaces", NULL, &resp, reterr);
        if (r < 0)
            return r;
        json_t *list = json_object_get(resp, "workspaces");
        for (size_t i = 0; i < json_array_size(list); i++)
            strv_push(&names, cmd_json_str(json_array_get(list, i), "name", ""));
    }
    for (size_t i = 0; i < names.n; i++) {
        if (!*names.v[i] || strpbrk(names.v[i], " \t\r\n\"#"))
            continue;
        printf("Host berth-%s\n"
               "    HostName %s\n"
               "    Port %s\n"
               "    User %s\n"
               "    HostKeyAlias %s\n"
               "    UserKnownHostsFile \"%s\"\n"
               "    StrictHostKeyChecking yes\n\n",
               names.v[i], addr, port, names.v[i], alias, kh);
    }
    return 0;
}
