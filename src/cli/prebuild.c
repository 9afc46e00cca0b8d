/* prebuild.c - berth prebuild, prebuilds, prebuild logs and prebuild rm.
 *
 * `berth prebuild REPO` starts a prebuild and, like create, streams its log
 * until it is done, then says what came of it: ready (exit 0), skipped (the
 * commit has one already, exit 0) or failed (exit 1 with the reason).
 */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/commands.h"
#include "util/fs.h"
#include "util/buf.h"
#include "util/xalloc.h"

#define PB_POLL_INTERVAL_NS (500L * 1000 * 1000)
#define PB_WAIT_TIMEOUT_MIN 120

static char *pb_path(const char *id, const char *suffix)
{
    return cmd_api_path("/api/v1/prebuilds/", id, suffix);
}

static int write_cb(const void *chunk, size_t len, void *data, struct berr **reterr)
{
    int r = write_all(*(const int *)data, chunk, len);
    if (r < 0)
        return berr_make(reterr, -r, "cannot write the log: %s", strerror(-r));
    return 0;
}

static char *format_size(long long bytes)
{
    if (bytes >= 1000LL * 1000 * 1000)
        return xasprintf("%.1f GB", (double)bytes / 1e9);
    if (bytes >= 1000LL * 1000)
        return xasprintf("%.1f MB", (double)bytes / 1e6);
    return xasprintf("%lld kB", (bytes + 999) / 1000);
}

/* Streams the prebuild's log to log_fd, then waits until it is not building. */
static int pb_wait(struct client *c, const char *id, int log_fd, json_t **ret, struct berr **reterr)
{
    _cleanup_free_ char *logs = pb_path(id, "/logs?follow=1");
    _cleanup_berr_ struct berr *err = NULL;
    int r = client_stream(c, "GET", logs, NULL, write_cb, &log_fd, &err);
    if (r < 0 && r != -ECONNREFUSED && r != -ENOENT)
        fprintf(stderr, "berth: log stream ended early (%s), waiting for prebuild '%s'\n",
                berr_msg(err), id);
    _cleanup_free_ char *path = pb_path(id, "");
    struct timespec start;
    (void)clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        _cleanup_(json_decrefp) json_t *pb = NULL;
        r = client_json(c, "GET", path, NULL, &pb, reterr);
        if (r < 0)
            return r;
        if (strcmp(cmd_json_str(pb, "state", ""), "building") != 0) {
            *ret = TAKE_PTR(pb);
            return 0;
        }
        struct timespec now;
        (void)clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec > PB_WAIT_TIMEOUT_MIN * 60)
            return berr_make(reterr, ETIMEDOUT, "prebuild '%s' still building after %d minutes", id,
                             PB_WAIT_TIMEOUT_MIN);
        struct timespec ts = {.tv_nsec = PB_POLL_INTERVAL_NS};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
}

int cmd_prebuild(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    const char *repo = a->pos.v[0];
    _cleanup_free_ char *abs = NULL;
    struct stat st;
    if (stat(repo, &st) == 0 && S_ISDIR(st.st_mode)) {
        abs = realpath(repo, NULL);
        if (!abs)
            return berr_make(reterr, errno, "cannot resolve '%s': %s", repo, strerror(errno));
        repo = abs;
    }
    _cleanup_(json_decrefp) json_t *body = json_object();
    int r = cmd_json_set(body, "repo", repo, reterr);
    if (r == 0)
        r = cmd_json_set(body, "branch", a->branch, reterr);
    if (r == 0)
        r = cmd_json_set(body, "devcontainer_path", a->devcontainer, reterr);
    if (r < 0)
        return r;
    _cleanup_(json_decrefp) json_t *pb = NULL;
    r = client_json(c, "POST", "/api/v1/prebuilds", body, &pb, reterr);
    if (r < 0)
        return r;
    const char *id = cmd_json_str(pb, "id", "?");
    if (a->no_wait) {
        if (a->json)
            cmd_print_json(pb);
        else
            printf("prebuild '%s' is building (berth prebuild logs %s -f)\n", id, id);
        return 0;
    }
    _cleanup_(json_decrefp) json_t *done = NULL;
    r = pb_wait(c, id, a->json ? 2 : 1, &done, reterr);
    if (r < 0)
        return r;
    const char *state = cmd_json_str(done, "state", "?");
    if (strcmp(state, "failed") == 0)
        return berr_make(reterr, EIO, "prebuild '%s' failed: %s (berth prebuild logs %s)", id,
                         cmd_json_str(done, "error", "no reason given"), id);
    if (a->json) {
        cmd_print_json(done);
    } else if (strcmp(state, "skipped") == 0) {
        printf("%s\n", cmd_json_str(done, "error", "skipped"));
    } else {
        _cleanup_free_ char *size =
            format_size((long long)json_integer_value(json_object_get(done, "size")));
        printf("prebuild '%s' of %.12s is %s (%s)\n", id, cmd_json_str(done, "commit", "?"), state,
               size);
    }
    return 0;
}

int cmd_prebuilds(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_free_ char *path = NULL;
    if (a->pos.n > 0) {
        const char *repo = a->pos.v[0];
        _cleanup_free_ char *abs = NULL;
        struct stat st;
        if (stat(repo, &st) == 0 && S_ISDIR(st.st_mode) && (abs = realpath(repo, NULL)))
            repo = abs;
        path = cmd_api_path("/api/v1/prebuilds?repo=", repo, "");
    } else {
        path = xstrdup("/api/v1/prebuilds");
    }
    _cleanup_(json_decrefp) json_t *resp = NULL;
    json_t *list = NULL;
    int r = cmd_get_list(c, a, path, "prebuilds", "prebuild list", &resp, &list, reterr);
    if (r != 0)
        return r < 0 ? r : 0;
    _cleanup_strv_ struct strv cells = STRV_INIT;
    strv_pushl(&cells, "ID", "REPO", "BRANCH", "COMMIT", "STATE", "CREATED", "SIZE", NULL);
    time_t now = time(NULL);
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *pb = json_array_get(list, i);
        const char *commit = cmd_json_str(pb, "commit", "-");
        strv_pushl(&cells, cmd_json_str(pb, "id", "-"), cmd_json_str(pb, "repo", "-"),
                   cmd_json_str(pb, "branch", "(default)"), NULL);
        strv_push_owned(&cells, xstrndup(commit, 12));
        strv_push(&cells, cmd_json_str(pb, "state", "-"));
        strv_push_owned(&cells, cmd_format_age(cmd_json_str(pb, "created_at", NULL), now));
        strv_push_owned(&cells,
                        format_size((long long)json_integer_value(json_object_get(pb, "size"))));
    }
    cmd_print_table(&cells, 7);
    return 0;
}

int cmd_prebuild_logs(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_free_ char *path = pb_path(a->pos.v[0], a->follow ? "/logs?follow=1" : "/logs");
    int fd = 1;
    return client_stream(c, "GET", path, NULL, write_cb, &fd, reterr);
}

int cmd_prebuild_rm(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_free_ char *path = pb_path(a->pos.v[0], "");
    _cleanup_(json_decrefp) json_t *resp = NULL;
    int r = client_json(c, "DELETE", path, NULL, &resp, reterr);
    if (r < 0)
        return r;
    printf("prebuild '%s' removed\n", a->pos.v[0]);
    return 0;
}

/* "5m", "30s", "2h", "90" (seconds), "off" or "0". -1 for anything else. */
static long long parse_duration(const char *s)
{
    if (strcmp(s, "off") == 0)
        return 0;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0 || v > 1000000)
        return -1;
    long long unit = strcmp(end, "") == 0 || strcmp(end, "s") == 0 ? 1
                     : strcmp(end, "m") == 0                       ? 60
                     : strcmp(end, "h") == 0                       ? 3600
                                                                   : -1;
    return unit < 0 ? -1 : v * unit;
}

static char *format_poll(long long s)
{
    if (s <= 0)
        return xstrdup("off");
    if (s % 3600 == 0)
        return xasprintf("%lldh", s / 3600);
    if (s % 60 == 0)
        return xasprintf("%lldm", s / 60);
    return xasprintf("%llds", s);
}

static char *absolute_repo(const char *repo)
{
    struct stat st;
    char *abs = NULL;
    if (stat(repo, &st) == 0 && S_ISDIR(st.st_mode) && (abs = realpath(repo, NULL)))
        return abs;
    return xstrdup(repo);
}

int cmd_prebuild_config(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_free_ char *repo = absolute_repo(a->pos.v[0]);
    if (a->off) {
        _cleanup_(json_decrefp) json_t *resp = NULL;
        int r = client_json(c, "GET", "/api/v1/prebuild-configs", NULL, &resp, reterr);
        if (r < 0)
            return r;
        _cleanup_(json_decrefp) json_t *me = NULL;
        (void)client_json(c, "GET", "/api/v1/me", NULL, &me, NULL);
        json_t *list = json_object_get(resp, "configs");
        for (size_t i = 0; i < json_array_size(list); i++) {
            const json_t *pc = json_array_get(list, i);
            const char *path = cmd_json_str(pc, "devcontainer_path", "");
            if (strcmp(cmd_json_str(pc, "repo", ""), repo) != 0 ||
                strcmp(path, a->devcontainer ? a->devcontainer : "") != 0 ||
                (me && strcmp(cmd_json_str(pc, "owner", ""), cmd_json_str(me, "name", "")) != 0))
                continue;
            _cleanup_free_ char *del =
                cmd_api_path("/api/v1/prebuild-configs/", cmd_json_str(pc, "id", ""), "");
            _cleanup_(json_decrefp) json_t *gone = NULL;
            r = client_json(c, "DELETE", del, NULL, &gone, reterr);
            if (r < 0)
                return r;
            printf("prebuild configuration %s of '%s' removed (its prebuilds stay until "
                   "removed)\n",
                   cmd_json_str(pc, "id", "?"), repo);
            return 0;
        }
        return berr_make(reterr, ENOENT, "no prebuild configuration of yours for '%s'", repo);
    }
    _cleanup_(json_decrefp) json_t *body = json_object();
    int r = cmd_json_set(body, "repo", repo, reterr);
    if (r == 0)
        r = cmd_json_set(body, "devcontainer_path", a->devcontainer, reterr);
    if (r < 0)
        return r;
    if (a->branches) {
        json_t *list = json_array();
        _cleanup_free_ char *copy = xstrdup(a->branches);
        char *save = NULL;
        for (char *b = strtok_r(copy, ", ", &save); b; b = strtok_r(NULL, ", ", &save))
            json_array_append_new(list, json_string(b));
        json_object_set_new(body, "branches", list);
    }
    if (a->poll) {
        long long s = parse_duration(a->poll);
        if (s < 0)
            return berr_make(reterr, EINVAL,
                             "--poll: '%s' is not a duration such as 5m, 30s or off", a->poll);
        json_object_set_new(body, "poll", json_integer(s));
    }
    if (a->keep) {
        long long n;
        r = cmd_parse_number("--keep", a->keep, 1, 100, &n, reterr);
        if (r < 0)
            return r;
        json_object_set_new(body, "keep", json_integer(n));
    }
    _cleanup_(json_decrefp) json_t *pc = NULL;
    r = client_json(c, "POST", "/api/v1/prebuild-configs", body, &pc, reterr);
    if (r < 0)
        return r;
    if (a->json) {
        cmd_print_json(pc);
        return 0;
    }
    cmd_print_fields(pc);
    const char *secret = cmd_json_str(pc, "secret", NULL);
    if (secret)
        printf("\nFor a push webhook on your git host: payload URL %s%s, content type "
               "application/json, secret %s\n(the secret is shown only now)\n",
               client_url(c), cmd_json_str(pc, "webhook", ""), secret);
    return 0;
}

int cmd_prebuild_configs(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_(json_decrefp) json_t *resp = NULL;
    json_t *list = NULL;
    int r = cmd_get_list(c, a, "/api/v1/prebuild-configs", "configs", "configuration list", &resp,
                         &list, reterr);
    if (r != 0)
        return r < 0 ? r : 0;
    _cleanup_strv_ struct strv cells = STRV_INIT;
    strv_pushl(&cells, "ID", "OWNER", "REPO", "BRANCHES", "POLL", "KEEP", "SHARED", NULL);
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *pc = json_array_get(list, i);
        struct buf b = BUF_INIT;
        const json_t *branches = json_object_get(pc, "branches");
        for (size_t k = 0; k < json_array_size(branches); k++)
            buf_addf(&b, "%s%s", k ? "," : "", json_string_value(json_array_get(branches, k)));
        strv_pushl(&cells, cmd_json_str(pc, "id", "-"), cmd_json_str(pc, "owner", "-"),
                   cmd_json_str(pc, "repo", "-"), NULL);
        strv_push_owned(&cells, b.len ? buf_detach(&b, NULL) : xstrdup("(default)"));
        buf_release(&b);
        strv_push_owned(&cells,
                        format_poll((long long)json_integer_value(json_object_get(pc, "poll"))));
        long long keep = (long long)json_integer_value(json_object_get(pc, "keep"));
        strv_push_owned(&cells, keep > 0 ? xasprintf("%lld", keep) : xstrdup("(server)"));
        strv_push(&cells, json_is_true(json_object_get(pc, "shared")) ? "yes" : "no");
    }
    cmd_print_table(&cells, 7);
    return 0;
}

int cmd_prebuild_share(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_free_ char *path = cmd_api_path("/api/v1/prebuild-configs/", a->pos.v[0], "/share");
    _cleanup_(json_decrefp) json_t *body = json_pack("{s:b}", "shared", !a->off);
    _cleanup_(json_decrefp) json_t *pc = NULL;
    int r = client_json(c, "POST", path, body, &pc, reterr);
    if (r < 0)
        return r;
    printf("prebuilds of configuration %s (%s) are %s\n", a->pos.v[0],
           cmd_json_str(pc, "repo", "?"),
           a->off ? "their owner's only" : "shared with everyone who may clone the repository");
    return 0;
}
