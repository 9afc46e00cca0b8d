/* settings.c - berth idle, pin, unpin and settings: when workspaces stop for
 * idleness, which are kept from retention, and the user's dotfiles. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/client.h"
#include "cli/commands.h"
#include "util/buf.h"
#include "util/xalloc.h"

/* "2m", "1h 5m" for seconds. */
static char *format_seconds(json_int_t s)
{
    if (s < 60)
        return xasprintf("%llds", (long long)s);
    if (s < 3600)
        return xasprintf("%lldm", (long long)(s / 60));
    if (s % 3600 < 60)
        return xasprintf("%lldh", (long long)(s / 3600));
    return xasprintf("%lldh %lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
}

char *cmd_idle_summary(const json_t *idle)
{
    if (!json_is_object(idle))
        return xstrdup("-");
    json_t *minutes = json_object_get(idle, "timeout_minutes");
    const char *source = cmd_json_str(idle, "source", "default");
    _cleanup_free_ char *timeout = json_is_integer(minutes)
                                       ? format_seconds(json_integer_value(minutes) * 60)
                                       : xstrdup("never");
    struct buf b = BUF_INIT;
    json_t *left = json_object_get(idle, "stops_in_seconds");
    if (json_is_integer(left)) {
        _cleanup_free_ char *l = format_seconds(json_integer_value(left));
        buf_addf(&b, "stops in %s", l);
    } else if (json_object_get(idle, "idle_seconds")) {
        buf_adds(&b, "no idle stop");
    }
    buf_addf(&b, "%stimeout %s (%s)", b.len ? "; " : "", timeout, source);
    const char *kind = cmd_json_str(idle, "last_activity_kind", NULL);
    json_t *idle_s = json_object_get(idle, "idle_seconds");
    if (kind && json_is_integer(idle_s)) {
        _cleanup_free_ char *ago = format_seconds(json_integer_value(idle_s));
        buf_addf(&b, "; last: %s %s ago", kind, ago);
    }
    if (json_is_true(json_object_get(idle, "pinned")))
        buf_adds(&b, "; pinned");
    const char *deleted = cmd_json_str(idle, "deleted_at", NULL);
    if (deleted)
        buf_addf(&b, "; deleted at %s unless started or pinned", deleted);
    size_t len;
    return buf_detach(&b, &len);
}

void cmd_print_notices(const json_t *list)
{
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *ws = json_array_get(list, i);
        const json_t *idle = json_object_get(ws, "idle");
        const char *name = cmd_json_str(ws, "name", "?");
        if (json_is_true(json_object_get(idle, "deletion_warning")))
            printf("notice: '%s' is unused and will be deleted at %s (berth pin %s keeps it)\n",
                   name, cmd_json_str(idle, "deleted_at", "?"), name);
        if (json_is_true(json_object_get(idle, "warning"))) {
            _cleanup_free_ char *left =
                format_seconds(json_integer_value(json_object_get(idle, "stops_in_seconds")));
            printf("notice: '%s' is idle and stops in %s unless it is used\n", name, left);
        }
    }
}

static int put_settings(struct client *c, const char *path, json_t *body, json_t **ret,
                        struct berr **reterr)
{
    int r = client_json(c, "PUT", path, body, ret, reterr);
    json_decref(body);
    return r;
}

int cmd_idle(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_free_ char *path = cmd_ws_path(a->pos.v[0], "/settings");
    _cleanup_(json_decrefp) json_t *idle = NULL;
    int r;
    if (a->pos.n < 2) {
        r = client_json(c, "GET", path, NULL, &idle, reterr);
    } else {
        const char *v = a->pos.v[1];
        json_t *value = strcmp(v, "default") == 0 ? json_null() : json_string(v);
        r = put_settings(c, path, json_pack("{s:o}", "idle_timeout", value), &idle, reterr);
    }
    if (r < 0)
        return r;
    if (a->json) {
        cmd_print_json(idle);
        return 0;
    }
    _cleanup_free_ char *s = cmd_idle_summary(idle);
    printf("%s: %s\n", a->pos.v[0], s);
    return 0;
}

static int pin(struct client *c, const struct cli_args *a, bool on, struct berr **reterr)
{
    _cleanup_free_ char *path = cmd_ws_path(a->pos.v[0], "/settings");
    _cleanup_(json_decrefp) json_t *idle = NULL;
    int r = put_settings(c, path, json_pack("{s:b}", "pinned", on), &idle, reterr);
    if (r < 0)
        return r;
    printf(on ? "workspace '%s' is pinned: retention keeps it\n"
              : "workspace '%s' is no longer pinned\n",
           a->pos.v[0]);
    return 0;
}

int cmd_pin(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    return pin(c, a, true, reterr);
}

int cmd_unpin(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    return pin(c, a, false, reterr);
}

static void print_user_settings(const json_t *s)
{
    const char *idle = cmd_json_str(s, "idle_timeout", NULL);
    const json_t *range = json_object_get(s, "idle_range");
    printf("idle:      %s%s (from %lld to %lld minutes%s)\n", idle ? idle : "30m",
           idle ? "" : ", the default",
           (long long)json_integer_value(json_object_get(range, "min_minutes")),
           (long long)json_integer_value(json_object_get(range, "max_minutes")),
           json_is_true(json_object_get(range, "never_allowed")) ? ", or never" : "");
    const json_t *d = json_object_get(s, "dotfiles");
    if (!json_is_object(d)) {
        printf("dotfiles:  off\n");
        return;
    }
    printf("dotfiles:  %s\n", cmd_json_str(d, "url", "?"));
    printf("  install: %s\n", cmd_json_str(d, "install",
                                           "(the first of install.sh, install, "
                                           "bootstrap.sh, bootstrap, "
                                           "script/bootstrap, setup.sh, setup, "
                                           "script/setup; else links dot-files)"));
    printf("  target:  %s\n", cmd_json_str(d, "target", "~/dotfiles"));
}

int cmd_settings(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    const char *what = a->pos.n ? a->pos.v[0] : NULL;
    json_t *body = NULL;
    if (!what) {
        if (a->install || a->target || a->off)
            return berr_make(reterr, EINVAL,
                             "--install, --target and --off go with "
                             "'berth settings dotfiles'");
    } else if (strcmp(what, "idle") == 0) {
        if (a->pos.n != 2)
            return berr_make(reterr, EINVAL, "usage: berth settings idle 30m|2h|never|default");
        const char *v = a->pos.v[1];
        body = json_pack("{s:o}", "idle_timeout",
                         strcmp(v, "default") == 0 ? json_null() : json_string(v));
    } else if (strcmp(what, "dotfiles") == 0) {
        if (a->off == (a->pos.n == 2) || (a->off && (a->install || a->target)))
            return berr_make(reterr, EINVAL,
                             "usage: berth settings dotfiles URL [--install CMD] [--target DIR] "
                             "| --off");
        body = a->off ? json_pack("{s:n}", "dotfiles")
                      : json_pack("{s:{s:s, s:s?, s:s?}}", "dotfiles", "url", a->pos.v[1],
                                  "install", a->install, "target", a->target);
    } else {
        return berr_make(reterr, EINVAL, "unknown setting '%s' (idle, dotfiles)", what);
    }
    _cleanup_(json_decrefp) json_t *s = NULL;
    int r = body ? put_settings(c, "/api/v1/settings", body, &s, reterr)
                 : client_json(c, "GET", "/api/v1/settings", NULL, &s, reterr);
    if (r < 0)
        return r;
    if (a->json)
        cmd_print_json(s);
    else
        print_user_settings(s);
    return 0;
}
