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
#include <unistd.h>

#include "cli/commands.h"
#include "cli/prompt.h"
#include "util/buf.h"
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

/* Writes `alias key` into Berth's known_hosts, keeping the other servers' lines. */
static int known_hosts_pin(const char *kh, const char *alias, const char *key, struct berr **reterr)
{
    _cleanup_free_ char *dir = xstrndup(kh, (size_t)(strrchr(kh, '/') - kh));
    _cleanup_buf_ struct buf old = BUF_INIT, out = BUF_INIT;
    int r = read_file(kh, 1024 * 1024, &old);
    if (r < 0 && r != -ENOENT)
        return berr_make(reterr, -r, "cannot read '%s': %s", kh, strerror(-r));
    size_t alen = strlen(alias);
    for (const char *line = old.len ? old.buf : ""; *line;) {
        size_t n = strcspn(line, "\n");
        if (!(n > alen && strncmp(line, alias, alen) == 0 && line[alen] == ' '))
            buf_add(&out, line, n), buf_addch(&out, '\n');
        line += n + (line[n] == '\n');
    }
    buf_addf(&out, "%s %s\n", alias, key);
    r = mkdir_p(dir, 0700);
    if (r >= 0)
        r = write_file_atomic(kh, out.buf, out.len, 0600);
    if (r < 0)
        return berr_make(reterr, -r, "cannot write '%s': %s", kh, strerror(-r));
    return 0;
}

/* The ProxyCommand for `--proxy`: this berth, by its absolute path, with the
 * server named (ssh runs it through a shell: both are single-quoted). */
static int proxy_command(const char *url, struct buf *out, struct berr **reterr)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return berr_make(reterr, errno ? errno : EIO, "cannot find berth's own path");
    self[n] = 0;
    if (strchr(self, '\'') || strchr(url, '\'') || strpbrk(url, "\r\n"))
        return berr_make(reterr, EINVAL, "cannot quote '%s' or '%s' for a ProxyCommand", self, url);
    buf_addf(out, "'%s' ssh-proxy --server '%s'", self, url);
    return 0;
}

/* --install: the blocks go to ~/.ssh/berth_config, which ~/.ssh/config includes
 * from its first line (an Include under a Host line would apply to that host
 * only), once. The user's own config is otherwise left as it is. */
static int ssh_config_install(const struct buf *text, size_t hosts, struct berr **reterr)
{
    const char *home = getenv("HOME");
    if (!home || home[0] != '/')
        return berr_make(reterr, EINVAL, "HOME is not set: cannot find ~/.ssh");
    _cleanup_free_ char *dir = xasprintf("%s/.ssh", home);
    _cleanup_free_ char *ours = xasprintf("%s/berth_config", dir);
    _cleanup_free_ char *main_cfg = xasprintf("%s/config", dir);
    int r = mkdir_p(dir, 0700);
    if (r >= 0)
        r = write_file_atomic(ours, text->buf ? text->buf : "", text->len, 0600);
    if (r < 0)
        return berr_make(reterr, -r, "cannot write '%s': %s", ours, strerror(-r));

    _cleanup_buf_ struct buf cfg = BUF_INIT;
    r = read_file(main_cfg, 4 * 1024 * 1024, &cfg);
    if (r < 0 && r != -ENOENT)
        return berr_make(reterr, -r, "cannot read '%s': %s", main_cfg, strerror(-r));
    /* by its absolute path: ssh finds ~ from the password database, not $HOME */
    _cleanup_free_ char *include = xasprintf("Include \"%s\"", ours);
    bool has = false;
    for (const char *line = cfg.len ? cfg.buf : ""; *line && !has;) {
        size_t n = strcspn(line, "\n");
        has = n == strlen(include) && strncmp(line, include, n) == 0;
        line += n + (line[n] == '\n');
    }
    if (!has) {
        if (strpbrk(ours, "\"\r\n"))
            return berr_make(reterr, EINVAL, "cannot name '%s' in an Include line", ours);
        _cleanup_buf_ struct buf out = BUF_INIT;
        buf_addf(&out, "%s\n\n", include);
        buf_add(&out, cfg.buf ? cfg.buf : "", cfg.len);
        r = write_file_atomic(main_cfg, out.buf, out.len, 0600);
        if (r < 0)
            return berr_make(reterr, -r, "cannot write '%s': %s", main_cfg, strerror(-r));
    }
    printf("wrote %zu host%s to %s%s\n", hosts, hosts == 1 ? "" : "s", ours,
           has ? "" : "; ~/.ssh/config includes it from its first line");
    return 0;
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
    _cleanup_buf_ struct buf proxy = BUF_INIT;
    if (a->proxy && (r = proxy_command(client_url(c), &proxy, reterr)) < 0)
        return r;
    r = known_hosts_pin(kh, alias, key, reterr);
    if (r < 0)
        return r;

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
    _cleanup_buf_ struct buf text = BUF_INIT;
    size_t hosts = 0;
    if (a->ssh_install)
        buf_addf(&text,
                 "# written by `berth ssh-config --install` for %s; it rewrites this file\n\n",
                 client_url(c));
    for (size_t i = 0; i < names.n; i++) {
        if (!*names.v[i] || strpbrk(names.v[i], " \t\r\n\"#'"))
            continue;
        buf_addf(&text, "Host berth-%s\n    HostName %s\n    Port %s\n    User %s\n", names.v[i],
                 addr, port, names.v[i]);
        if (a->proxy)
            buf_addf(&text, "    ProxyCommand %s %s\n", proxy.buf, names.v[i]);
        buf_addf(&text,
                 "    HostKeyAlias %s\n"
                 "    UserKnownHostsFile \"%s\"\n"
                 "    StrictHostKeyChecking yes\n"
                 "    ServerAliveInterval 30\n\n",
                 alias, kh);
        hosts++;
    }
    if (a->ssh_install)
        return ssh_config_install(&text, hosts, reterr);
    (void)fwrite(text.buf ? text.buf : "", 1, text.len, stdout);
    return 0;
}
