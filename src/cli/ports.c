/* ports.c - `berth ports`: the TCP ports listening in a workspace, and their visibility.
 *
 * The list comes from GET /api/v1/workspaces/{ws}/ports (docs/api.md,
 * "Forwarded ports"). Right after a workspace starts, its agent may not have
 * sent its first list yet (`detecting`): the request is then repeated a few
 * times, PORTS_DETECT_TRIES in all, PORTS_DETECT_INTERVAL_NS apart (about two
 * seconds), and what there is then is printed, with a note on stderr when the
 * detection is still not done (or cannot be: the workspace is not running).
 * Each port's URL is the server's URL and the port's `url` path.
 *
 * `berth ports WS visibility PORT private|org|public` sets who may open that URL
 * in a browser. It does not concern port-forward, whose tunnels go through the
 * API with the caller's token.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "util/buf.h"
#include "util/xalloc.h"

#define PORTS_DETECT_TRIES 9
#define PORTS_DETECT_INTERVAL_NS (250L * 1000 * 1000)
#define EXIT_USAGE 2

/* "node (42)", or what there is of it. */
static char *ports_process(const json_t *p)
{
    const char *name = cmd_json_str(p, "process", NULL);
    json_int_t pid = json_integer_value(json_object_get(p, "pid"));
    if (name && *name && pid > 0)
        return xasprintf("%s (%" JSON_INTEGER_FORMAT ")", name, pid);
    if (name && *name)
        return xstrdup(name);
    if (pid > 0)
        return xasprintf("(%" JSON_INTEGER_FORMAT ")", pid);
    return xstrdup("-");
}

/* The addresses, comma-separated. */
static char *ports_addresses(const json_t *p)
{
    const json_t *list = json_object_get(p, "addresses");
    _cleanup_buf_ struct buf b = BUF_INIT;
    for (size_t i = 0; i < json_array_size(list); i++) {
        const char *addr = json_string_value(json_array_get(list, i));
        if (!addr)
            continue;
        if (b.len)
            buf_addch(&b, ',');
        buf_adds(&b, addr);
    }
    return b.len ? buf_detach(&b, NULL) : xstrdup("-");
}

/* The list is still not there: a stopped workspace has none to send (berthd
 * says `detecting` then too), else the agent is slow. */
static void ports_detecting_note(struct client *c, const char *ws)
{
    _cleanup_free_ char *path = cmd_ws_path(ws, "");
    _cleanup_(json_decrefp) json_t *rec = NULL;
    _cleanup_berr_ struct berr *err = NULL;
    const char *state = "running";
    if (client_json(c, "GET", path, NULL, &rec, &err) >= 0)
        state = cmd_json_str(rec, "state", "running");
    if (strcmp(state, "running") != 0)
        fprintf(stderr, "berth: workspace '%s' is %s: its ports are known only while it runs\n", ws,
                state);
    else
        fprintf(stderr,
                "berth: the ports of '%s' are still being detected; the list may be "
                "incomplete\n",
                ws);
}

static int ports_list(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    const char *ws = a->pos.v[0];
    _cleanup_free_ char *path = cmd_ws_path(ws, "/ports");
    _cleanup_(json_decrefp) json_t *resp = NULL;
    for (int i = 0; i < PORTS_DETECT_TRIES; i++) {
        if (i > 0) {
            struct timespec ts = {.tv_nsec = PORTS_DETECT_INTERVAL_NS};
            (void)nanosleep(&ts, NULL);
        }
        json_decref(resp);
        resp = NULL;
        int r = client_json(c, "GET", path, NULL, &resp, reterr);
        if (r < 0)
            return r;
        if (!json_is_true(json_object_get(resp, "detecting")))
            break;
    }
    json_t *list = json_object_get(resp, "ports");
    if (!json_is_array(list))
        return berr_make(reterr, EBADMSG, "berthd's port list has no 'ports' array");
    if (json_is_true(json_object_get(resp, "detecting")))
        ports_detecting_note(c, ws);
    if (a->json) {
        cmd_print_json(list);
        return 0;
    }
    _cleanup_strv_ struct strv cells = STRV_INIT;
    strv_pushl(&cells, "PORT", "LABEL", "PROCESS", "ADDRESSES", "VISIBILITY", "URL", NULL);
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *p = json_array_get(list, i);
        strv_push_owned(&cells, cmd_json_text(p, "port"));
        strv_push(&cells, cmd_json_str(p, "label", "-"));
        /* forwardPorts and printed URLs are listed before anything listens */
        if (json_is_false(json_object_get(p, "listening")))
            strv_push(&cells, "(not listening)");
        else
            strv_push_owned(&cells, ports_process(p));
        strv_push_owned(&cells, ports_addresses(p));
        strv_push(&cells, cmd_json_str(p, "visibility", "-"));
        const char *url = cmd_json_str(p, "url", NULL);
        if (url && *url)
            strv_push_owned(&cells, xasprintf("%s%s", client_url(c), url));
        else
            strv_push(&cells, "-");
    }
    cmd_print_table(&cells, 6);
    return 0;
}

static int ports_visibility(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    const char *ws = a->pos.v[0];
    const char *vis = a->pos.v[3];
    long long port = 0;
    int r = cmd_parse_number("PORT", a->pos.v[2], 1, 65535, &port, reterr);
    if (r < 0)
        return r;
    if (strcmp(vis, "private") != 0 && strcmp(vis, "org") != 0 && strcmp(vis, "public") != 0)
        return berr_make(reterr, EINVAL,
                         "visibility must be 'private', 'org' or 'public', not '%s'", vis);
    _cleanup_free_ char *suffix = xasprintf("/ports/%lld/visibility", port);
    _cleanup_free_ char *path = cmd_ws_path(ws, suffix);
    _cleanup_(json_decrefp) json_t *body = json_pack("{s:s}", "visibility", vis);
    _cleanup_(json_decrefp) json_t *resp = NULL;
    r = client_json(c, "POST", path, body, &resp, reterr);
    if (r < 0)
        return r;
    if (a->json)
        cmd_print_json(resp ? resp : body);
    else
        printf("port %lld of '%s' is now %s\n", port, ws, vis);
    return 0;
}

int cmd_ports(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    if (a->pos.n == 1)
        return ports_list(c, a, reterr);
    if (a->pos.n == 4 && strcmp(a->pos.v[1], "visibility") == 0)
        return ports_visibility(c, a, reterr);
    if (strcmp(a->pos.v[1], "visibility") == 0)
        fprintf(stderr, "berth: ports: wrong number of arguments\n");
    else
        fprintf(stderr, "berth: ports: unknown subcommand '%s'\n", a->pos.v[1]);
    fprintf(stderr, "usage: berth ports WS [--json]\n"
                    "       berth ports WS visibility PORT private|org|public\n");
    return EXIT_USAGE;
}
