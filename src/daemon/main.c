/* main.c - berthd: flags, the data dir, the engine, the store, and the loop.
 *
 * Start-up order: parse flags; open the store (migrating it); pick the engine
 * (--engine, DOCKER_HOST, the usual sockets, else a supervised podman service);
 * start the HTTP server (HTTPS with --tls-cert and --tls-key, whose files
 * SIGHUP reads again, and a plain listener that only redirects to it with
 * --http-redirect); then, off the loop, wait for the engine to answer and
 * reconcile the store with it. Requests are served meanwhile.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "api/api.h"
#include "api/auth.h"
#include "store/accounts.h"
#include "util/seal.h"
#include "daemon/supervise.h"
#include "engine/engine.h"
#include "engine/swarm.h"
#include "engine/runtime.h"
#include "http/server.h"
#include "http/tls.h"
#include "sshd/sshd.h"
#include "store/store.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "workspace/workspace.h"

struct daemon {
    uv_loop_t *loop;
    char *listen_addr;
    int listen_port;
    char *data_dir;
    char *engine_socket;
    char *agent_binary;
    char *default_image;
    char *web_dir;
    char *ide_dir;
    char *vendor_dir;
    char *base_domain;
    char *ssh_addr; /* NULL: --ssh-listen none */
    int ssh_port;
    bool ssh_explicit;
    struct sshd *sshd;
    struct store *store;
    struct engine *engine;
    struct runtime *rt; /* the engine's: where workspaces run */
    struct supervisor *supervisor;
    struct ws_manager *manager;
    struct api *api;
    struct http_server *http;
    char *tls_cert; /* NULL: plain HTTP */
    char *tls_key;
    struct tls_ctx *tls;
    char *redirect_addr; /* --http-redirect; NULL: none */
    int redirect_port;
    struct http_server *redirect;
    char *behind_proxy; /* the reverse proxy's address; NULL: none */
    uv_signal_t sigint, sigterm, sighup;
    uv_timer_t health;
    long max_workspaces; /* -1: keep the stored setting */
    long max_running;
    long idle_timeout;   /* seconds; 0: the server's default */
    long idle_minute_ms; /* --test-idle-minute; 0: a real minute */
    bool embedded;       /* --engine embedded: always run our own podman service */
    bool swarm;          /* --engine swarm+unix://: a Swarm manager's socket */
    char *registry;      /* --registry: where a Swarm's nodes pull VS Code from */
    bool reconciled;
    bool checking;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: berthd [--listen ADDR:PORT] [--data DIR] [--engine unix:///PATH]\n"
               "              [--agent PATH] [--default-image IMAGE] [--debug]\n"
               "              [--base-domain DOMAIN] [--idle-timeout SECONDS] [--ide DIR]\n"
               "              [--web-vendor DIR] [--web DIR] [--max-workspaces N]\n"
               "              [--max-running N] [--ssh-listen ADDR:PORT|none]\n"
               "              [--tls-cert FILE --tls-key FILE [--http-redirect ADDR:PORT]]\n"
               "              [--behind-proxy ADDR]\n"
               "\n"
               "  --listen ADDR:PORT   where to serve the API (default 127.0.0.1:7878)\n"
               "  --tls-cert FILE      serve HTTPS on --listen with this PEM certificate chain\n"
               "  --tls-key FILE       ... and its PEM private key; SIGHUP reads both again\n"
               "                       (a pair that does not load is logged, the old kept);\n"
               "                       cookies are then Secure and __Host-, answers carry HSTS.\n"
               "                       Let the certificate also name *.DOMAIN for the port\n"
               "                       subdomains (see --base-domain)\n"
               "  --http-redirect A:P  also listen for plain HTTP there, answering every request\n"
               "                       with 308 to the same path on https://\n"
               "  --behind-proxy ADDR  a reverse proxy at this IP address terminates TLS: take\n"
               "                       X-Forwarded-Proto (https: Secure cookies) and\n"
               "                       X-Forwarded-For (the client) from it, from nobody else\n"
               "  --ssh-listen A:P     the SSH gateway (default 127.0.0.1:2222; 'none': off)\n"
               "  --data DIR           where workspaces and the database live\n"
               "                       (default ./.berth-data)\n"
               "  --engine URL         the Docker Engine API socket; default: DOCKER_HOST,\n"
               "                       /var/run/docker.sock, /run/podman/podman.sock, else a\n"
               "                       podman service that berthd runs itself ('embedded'\n"
               "                       forces that); swarm+unix:///PATH: a Swarm manager's\n"
               "                       (its nodes only so far: docs/cluster.md)\n"
               "  --registry HOST:PORT on a Swarm: a registry berthd pushes VS Code to and\n"
               "                       the nodes pull it from (without it: no VS Code there)\n"
               "  --agent PATH         the berth-agent binary (default: beside berthd)\n"
               "  --default-image IMG  image for repositories without devcontainer.json\n"
               "                       (default " WS_DEFAULT_IMAGE ")\n"
               "  --ide DIR            the code-server tree (default DATA/ide)\n"
               "  --web-vendor DIR     front-end packages (default DATA/web-vendor/node_modules)\n"
               "  --web DIR            the dashboard's files (default: web/ of the source tree)\n"
               "  --max-workspaces N   workspaces per user (default 10; an admin setting)\n"
               "  --max-running N      running workspaces per user (default 5)\n"
               "  --base-domain DOMAIN forwarded ports are also served at\n"
               "                       http://PORT-WORKSPACE.DOMAIN (default localhost)\n"
               "  --idle-timeout S     close a connection that sends no complete request for S\n"
               "                       seconds after it opens or gets its last answer\n"
               "                       (default 75; a half-sent request gets 408)\n"
               "  --test-idle-minute MS for tests only: one minute of workspaces' idle\n"
               "                       timeouts lasts MS milliseconds (docs/idle.md)\n"
               "\n"
               "On first start berthd creates the account 'admin' and prints its password\n"
               "once (or takes it from BERTH_ADMIN_PASSWORD).\n");
}

static int parse_listen(const char *s, char **ret_addr, int *ret_port)
{
    const char *colon = strrchr(s, ':');
    if (!colon)
        return -EINVAL;
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port <= 0 || port > 65535)
        return -EINVAL;
    const char *host = s;
    size_t hl = (size_t)(colon - s);
    if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
        host++;
        hl -= 2;
    }
    *ret_addr = hl ? xstrndup(host, hl) : xstrdup("127.0.0.1");
    *ret_port = (int)port;
    return 0;
}

/* A host name: labels of letters, digits and '-', joined by dots. */
static bool valid_domain(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 200 || s[0] == '.' || s[n - 1] == '.' || strstr(s, ".."))
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
            return false;
    return true;
}

static char *exe_dir(void)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
    if (n <= 0)
        return xstrdup(".");
    path[n] = 0;
    char *slash = strrchr(path, '/');
    if (slash)
        *slash = 0;
    return xstrdup(path);
}

static char *find_agent(void)
{
    const char *env = getenv("BERTH_AGENT");
    if (env && *env)
        return xstrdup(env);
    _cleanup_free_ char *dir = exe_dir();
    const char *rel[] = {"berth-agent", "../agent/berth-agent", "../lib/berth/berth-agent"};
    for (size_t i = 0; i < ELEMENTSOF(rel); i++) {
        char *p = xasprintf("%s/%s", dir, rel[i]);
        if (access(p, X_OK) == 0)
            return p;
        free(p);
    }
    return NULL;
}

/* The dashboard's files: --web, else web/ of the source tree berthd was built in. */
static char *find_web_dir(void)
{
    _cleanup_free_ char *dir = exe_dir();
    const char *rel[] = {"../../../web", "../share/berth/web"};
    for (size_t i = 0; i < ELEMENTSOF(rel); i++) {
        char *p = xasprintf("%s/%s", dir, rel[i]);
        _cleanup_free_ char *index = xasprintf("%s/index.html", p);
        if (access(index, R_OK) == 0)
            return p;
        free(p);
    }
    return NULL;
}

static char *find_program(const char *name)
{
    const char *path = getenv("PATH");
    _cleanup_free_ char *copy = xstrdup(path ? path : "/usr/bin:/bin");
    char *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char *p = xasprintf("%s/%s", d, name);
        if (access(p, X_OK) == 0)
            return p;
        free(p);
    }
    return NULL;
}

static bool is_socket(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* Picks the engine socket; may start the supervised podman service. */
static int choose_engine(struct daemon *d)
{
    if (d->engine_socket)
        return 0;
    if (d->embedded)
        goto embedded;
    const char *dh = getenv("DOCKER_HOST");
    if (dh && strncmp(dh, "unix://", 7) == 0) {
        d->engine_socket = xstrdup(dh + 7);
        return 0;
    }
    const char *candidates[] = {"/var/run/docker.sock", "/run/podman/podman.sock"};
    for (size_t i = 0; i < ELEMENTSOF(candidates); i++) {
        if (!is_socket(candidates[i]))
            continue;
        struct engine *e = engine_new(candidates[i]);
        int r = engine_ping(e, NULL);
        engine_free(e);
        if (r == 0) {
            d->engine_socket = xstrdup(candidates[i]);
            return 0;
        }
    }
embedded:;
    _cleanup_free_ char *podman = find_program("podman");
    if (!podman) {
        log_error("no container engine: give --engine, set DOCKER_HOST, or install podman");
        return -ENOENT;
    }
    _cleanup_free_ char *dir = xasprintf("%s/engine", d->data_dir);
    int r = supervisor_start(d->loop, podman, dir, &d->supervisor);
    if (r < 0) {
        log_error("cannot start the podman service: %s", strerror(-r));
        return r;
    }
    d->engine_socket = xstrdup(supervisor_socket(d->supervisor));
    return 0;
}

/* ---- engine health and reconcile, off the loop ---- */

struct health_work {
    uv_work_t work;
    struct daemon *d;
    bool ok;
    bool wait;
};

static void health_run(uv_work_t *w)
{
    struct health_work *h = (struct health_work *)w;
    /* on start-up, give a freshly started service time to come up */
    for (int i = 0; i < (h->wait ? 600 : 1); i++) {
        if (engine_ping(h->d->engine, NULL) == 0) {
            h->ok = true;
            return;
        }
        if (h->wait)
            usleep(100 * 1000);
    }
}

static void health_done(uv_work_t *w, int status)
{
    (void)status;
    struct health_work *h = (struct health_work *)w;
    struct daemon *d = h->d;
    d->checking = false;
    api_set_engine_ok(d->api, h->ok);
    if (h->ok && !d->reconciled) {
        d->reconciled = true;
        log_info("engine ready at %s", d->engine_socket);
        ws_manager_reconcile(d->manager);
    } else if (!h->ok) {
        log_warn("the container engine at %s does not answer", d->engine_socket);
    }
    free(h);
}

static void check_health(struct daemon *d, bool wait)
{
    if (d->checking)
        return;
    d->checking = true;
    struct health_work *h = xcalloc(1, sizeof(*h));
    h->d = d;
    h->wait = wait;
    uv_queue_work(d->loop, &h->work, health_run, health_done);
}

static void on_health_timer(uv_timer_t *t)
{
    check_health(t->data, false);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct daemon *d = s->data;
    log_info("received signal %d, shutting down", signum);
    http_server_close(d->http);
    if (d->redirect)
        http_server_close(d->redirect);
    supervisor_stop(d->supervisor);
    uv_timer_stop(&d->health);
    uv_close((uv_handle_t *)&d->health, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sighup, NULL);
    ws_manager_free(d->manager);
    /* jobs still on the thread pool are abandoned: their state is in the
     * store and reconcile resumes them at the next start */
    uv_stop(d->loop);
}

/* The host of a Host header ("name", "name:port", "[v6]:port"), newly
 * allocated, or NULL when it is none of those. */
static char *host_name(const char *host)
{
    size_t n = host[0] == '[' ? strcspn(host, "]") + 1 : strcspn(host, ":");
    if (n == 0 || n > 255 || (host[0] == '[' && host[n - 1] != ']'))
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)host[i]) && !strchr(host[0] == '[' ? "[]:." : "-.", host[i]))
            return NULL;
    if (host[n] && (host[n] != ':' || strspn(host + n + 1, "0123456789") != strlen(host + n + 1)))
        return NULL;
    return xstrndup(host, n);
}

/* --http-redirect's only answer: 308 to the same target on https://, the
 * host the client asked for at the HTTPS port. */
static void redirect_handle(struct http_conn *c, struct http_request *req, void *data)
{
    struct daemon *d = data;
    const char *host = http_request_header(req, "host");
    _cleanup_free_ char *name = NULL;
    if (host)
        name = host_name(host);
    else
        name = strchr(d->listen_addr, ':') ? xasprintf("[%s]", d->listen_addr)
                                           : xstrdup(d->listen_addr);
    if (!name) {
        http_respond_error(c, 400, "malformed Host header");
        return;
    }
    _cleanup_free_ char *port =
        d->listen_port == 443 ? xstrdup("") : xasprintf(":%d", d->listen_port);
    /* an absolute-form target ("http://host/x") goes to the root */
    const char *target = req->raw_target[0] == '/' ? req->raw_target : "/";
    http_conn_add_header(c, "Location: https://%s%s%s", name, port, target);
    http_respond(c, 308, "text/plain", "use https://\n", 13);
}

/* SIGHUP: the certificate and key again, for the connections to come. */
static void on_sighup(uv_signal_t *s, int signum)
{
    (void)signum;
    struct daemon *d = s->data;
    if (!d->tls)
        return;
    _cleanup_berr_ struct berr *e = NULL;
    if (tls_ctx_reload(d->tls, &e) < 0)
        log_error("%s; the certificate in use stays", berr_msg(e));
    else
        log_info("TLS certificate '%s' reloaded, SHA-256 %s", d->tls_cert,
                 tls_ctx_fingerprint(d->tls));
}

int main(int argc, char **argv)
{
    struct daemon d = {.listen_port = 7878,
                       .max_workspaces = -1,
                       .max_running = -1,
                       .ssh_addr = xstrdup("127.0.0.1"),
                       .ssh_port = 2222};
    signal(SIGPIPE, SIG_IGN);
    /* workspace jobs block on git and the engine for minutes: give the pool room */
    setenv("UV_THREADPOOL_SIZE", "64", 0);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--debug") == 0) {
            log_set_level(LOG_DEBUG);
        } else if (strcmp(a, "--listen") == 0 && v) {
            free(d.listen_addr);
            if (parse_listen(v, &d.listen_addr, &d.listen_port) < 0) {
                fprintf(stderr, "berthd: invalid --listen '%s': use ADDR:PORT\n", v);
                return 2;
            }
            i++;
        } else if (strcmp(a, "--ssh-listen") == 0 && v) {
            free(d.ssh_addr);
            d.ssh_addr = NULL;
            d.ssh_port = 0;
            d.ssh_explicit = true;
            if (strcmp(v, "none") != 0 && parse_listen(v, &d.ssh_addr, &d.ssh_port) < 0) {
                fprintf(stderr, "berthd: invalid --ssh-listen '%s': use ADDR:PORT or none\n", v);
                return 2;
            }
            i++;
        } else if ((strcmp(a, "--tls-cert") == 0 || strcmp(a, "--tls-key") == 0) && v) {
            char **dst = strcmp(a, "--tls-cert") == 0 ? &d.tls_cert : &d.tls_key;
            free(*dst);
            *dst = xstrdup(v);
            i++;
        } else if (strcmp(a, "--http-redirect") == 0 && v) {
            free(d.redirect_addr);
            if (parse_listen(v, &d.redirect_addr, &d.redirect_port) < 0) {
                fprintf(stderr, "berthd: invalid --http-redirect '%s': use ADDR:PORT\n", v);
                return 2;
            }
            i++;
        } else if (strcmp(a, "--behind-proxy") == 0 && v) {
            unsigned char bin[16];
            if (uv_inet_pton(strchr(v, ':') ? AF_INET6 : AF_INET, v, bin) != 0) {
                fprintf(stderr, "berthd: invalid --behind-proxy '%s': use an IP address\n", v);
                return 2;
            }
            free(d.behind_proxy);
            d.behind_proxy = xstrdup(v);
            i++;
        } else if (strcmp(a, "--data") == 0 && v) {
            d.data_dir = xstrdup(v);
            i++;
        } else if (strcmp(a, "--engine") == 0 && v) {
            if (strcmp(v, "embedded") == 0) {
                d.embedded = true;
            } else if (strncmp(v, "unix://", 7) == 0) {
                d.engine_socket = xstrdup(v + 7);
            } else if (strncmp(v, "swarm+unix://", 13) == 0) {
                d.engine_socket = xstrdup(v + 13);
                d.swarm = true;
            } else {
                fprintf(stderr, "berthd: --engine must be unix:///path, swarm+unix:///path (a "
                                "Swarm manager's socket) or 'embedded'\n");
                return 2;
            }
            i++;
        } else if (strcmp(a, "--registry") == 0 && v) {
            d.registry = xstrdup(v);
            i++;
        } else if (strcmp(a, "--agent") == 0 && v) {
            d.agent_binary = xstrdup(v);
            i++;
        } else if (strcmp(a, "--test-idle-minute") == 0 && v) {
            char *end = NULL;
            long n = strtol(v, &end, 10);
            if (*end || n < 100 || n > 60000) {
                fprintf(stderr,
                        "berthd: --test-idle-minute needs milliseconds from 100 to 60000\n");
                return 2;
            }
            d.idle_minute_ms = n;
            i++;
        } else if ((strcmp(a, "--max-workspaces") == 0 || strcmp(a, "--max-running") == 0) && v) {
            char *end = NULL;
            long n = strtol(v, &end, 10);
            if (*end || n < 0 || n > 100000) {
                fprintf(stderr, "berthd: %s needs a number from 0 to 100000\n", a);
                return 2;
            }
            if (strcmp(a, "--max-workspaces") == 0)
                d.max_workspaces = n;
            else
                d.max_running = n;
            i++;
        } else if (strcmp(a, "--idle-timeout") == 0 && v) {
            char *end = NULL;
            d.idle_timeout = strtol(v, &end, 10);
            if (*end || d.idle_timeout < 1 || d.idle_timeout > 86400) {
                fprintf(stderr, "berthd: --idle-timeout needs seconds from 1 to 86400\n");
                return 2;
            }
            i++;
        } else if (strcmp(a, "--ide") == 0 && v) {
            d.ide_dir = xstrdup(v);
            i++;
        } else if (strcmp(a, "--web-vendor") == 0 && v) {
            d.vendor_dir = xstrdup(v);
            i++;
        } else if (strcmp(a, "--web") == 0 && v) {
            d.web_dir = xstrdup(v);
            i++;
        } else if (strcmp(a, "--base-domain") == 0 && v) {
            if (!valid_domain(v)) {
                fprintf(stderr, "berthd: invalid --base-domain '%s': use a host name\n", v);
                return 2;
            }
            free(d.base_domain);
            d.base_domain = xstrdup(v);
            i++;
        } else if (strcmp(a, "--default-image") == 0 && v) {
            d.default_image = xstrdup(v);
            i++;
        } else {
            fprintf(stderr, "berthd: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!d.tls_cert != !d.tls_key) {
        fprintf(stderr, "berthd: --tls-cert and --tls-key go together\n");
        return 2;
    }
    if (d.redirect_addr && !d.tls_cert) {
        fprintf(stderr, "berthd: --http-redirect needs --tls-cert and --tls-key\n");
        return 2;
    }
    if (!d.listen_addr)
        d.listen_addr = xstrdup("127.0.0.1");
    if (!d.data_dir)
        d.data_dir = xstrdup(".berth-data");
    int r = mkdir_p(d.data_dir, 0711);
    char real[PATH_MAX];
    if (r < 0 || !realpath(d.data_dir, real)) {
        log_error("cannot use data dir '%s': %s", d.data_dir, strerror(r < 0 ? -r : errno));
        return 1;
    }
    free(d.data_dir);
    d.data_dir = xstrdup(real);
    if (!d.agent_binary)
        d.agent_binary = find_agent();
    if (!d.agent_binary) {
        log_error("cannot find berth-agent: give --agent PATH or set BERTH_AGENT");
        return 1;
    }

    d.loop = uv_default_loop();
    _cleanup_berr_ struct berr *e = NULL;
    if (d.tls_cert && tls_ctx_new(d.tls_cert, d.tls_key, &d.tls, &e) < 0) {
        log_error("%s", berr_msg(e));
        return 1;
    }
    _cleanup_free_ char *db = xasprintf("%s/berth.db", d.data_dir);
    if (store_open(db, &d.store, &e) < 0) {
        log_error("%s", berr_msg(e));
        return 1;
    }
    _cleanup_free_ char *key = xasprintf("%s/secret.key", d.data_dir);
    r = seal_init(key);
    if (r < 0) {
        log_error("cannot use the key '%s': %s", key, strerror(-r));
        return 1;
    }
    if (d.max_workspaces >= 0)
        (void)store_setting_set_int(d.store, WS_SETTING_MAX_WORKSPACES, d.max_workspaces);
    if (d.max_running >= 0)
        (void)store_setting_set_int(d.store, WS_SETTING_MAX_RUNNING, d.max_running);
    if (choose_engine(&d) < 0)
        return 1;
    d.engine = engine_new(d.engine_socket);
    if (d.swarm && swarm_check_manager(d.engine, &e) < 0) {
        log_error("%s", berr_msg(e));
        return 1;
    }
    if (d.swarm) {
        /* workspaces as services on the cluster's nodes (runtime-swarm.c) */
        _cleanup_free_ char *cluster = xasprintf("%s/cluster", d.data_dir);
        _cleanup_free_ char *agents = xasprintf("%s/agent", d.data_dir);
        if (mkdir_p(cluster, 0700) < 0) {
            log_error("cannot create '%s'", cluster);
            return 1;
        }
        d.rt = runtime_swarm_new(d.engine, cluster, agents,
                                 d.default_image ? d.default_image : WS_DEFAULT_IMAGE, d.registry);
        log_warn("workspaces run on the Swarm's nodes; their overlays are not encrypted and "
                 "prebuilds are not available there yet (docs/cluster.md)");
        if (!d.registry)
            log_warn("no --registry: workspaces on the Swarm have no VS Code in the browser and "
                     "no image builds or features (terminals, SSH and ports work)");
    } else {
        d.rt = runtime_docker_new(d.engine);
    }
    struct ws_manager_config mc = {.data_dir = d.data_dir,
                                   .agent_binary = d.agent_binary,
                                   .default_image = d.default_image,
                                   .ide_dir = d.ide_dir,
                                   .idle_minute_ms = d.idle_minute_ms};
    if (ws_manager_new(d.loop, d.store, d.rt, &mc, &d.manager, &e) < 0) {
        log_error("%s", berr_msg(e));
        return 1;
    }
    if (d.idle_minute_ms)
        log_warn("an idle minute lasts %ld ms (--test-idle-minute: for tests only)",
                 d.idle_minute_ms);
    if (!d.web_dir)
        d.web_dir = find_web_dir();
    if (!d.vendor_dir)
        d.vendor_dir = xasprintf("%s/web-vendor/node_modules", d.data_dir);
    d.api = api_new(d.manager, d.rt, d.web_dir, d.vendor_dir);
    if (d.base_domain)
        api_set_base_domain(d.api, d.base_domain);
    api_set_swarm(d.api, d.swarm ? d.engine : NULL);
    _cleanup_free_ char *generated = NULL;
    r = auth_bootstrap(api_auth(d.api), &generated, &e);
    if (r < 0) {
        log_error("cannot create the first admin: %s", berr_msg(e));
        return 1;
    }
    if (generated)
        fprintf(stderr,
                "\n  created the account 'admin' with the password: %s\n"
                "  (shown only this once; log in with: berth login --username admin)\n\n",
                generated);
    else if (r == 1)
        log_info("created the account 'admin' with the password from BERTH_ADMIN_PASSWORD");
    r = http_server_new(d.loop, d.listen_addr, d.listen_port, api_handle, d.api, &d.http);
    if (r < 0) {
        log_error("cannot listen on %s:%d: %s", d.listen_addr, d.listen_port, uv_strerror(r));
        return 1;
    }
    http_server_stream_bodies(d.http, api_wants_stream, d.api);
    if (d.idle_timeout)
        http_server_set_idle_timeout(d.http, (unsigned)d.idle_timeout);
    if (d.behind_proxy) {
        (void)http_server_trust_proxy(d.http, d.behind_proxy); /* checked with the flags */
        log_info("trusting X-Forwarded-For and -Proto from %s only", d.behind_proxy);
    }
    if (d.tls) {
        http_server_use_tls(d.http, d.tls);
        log_info("TLS certificate '%s', SHA-256 %s", d.tls_cert, tls_ctx_fingerprint(d.tls));
    }
    if (d.redirect_addr) {
        r = http_server_new(d.loop, d.redirect_addr, d.redirect_port, redirect_handle, &d,
                            &d.redirect);
        if (r < 0) {
            log_error("cannot listen on %s:%d: %s", d.redirect_addr, d.redirect_port,
                      uv_strerror(r));
            return 1;
        }
        log_info("redirecting http://%s:%d to https://", d.redirect_addr, d.redirect_port);
    }
    log_info("berthd listening on %s://%s%s%s:%d (data %s, engine %s)", d.tls ? "https" : "http",
             strchr(d.listen_addr, ':') ? "[" : "", d.listen_addr,
             strchr(d.listen_addr, ':') ? "]" : "", d.listen_port, d.data_dir, d.engine_socket);
    if (d.ssh_addr) {
        _cleanup_free_ char *fp = NULL;
        if (sshd_start(d.loop, d.manager, d.ssh_addr, d.ssh_port, &d.sshd, &fp, &e) < 0) {
            /* the default port may be another berthd's: only an explicit one is fatal */
            if (d.ssh_explicit) {
                log_error("%s", berr_msg(e));
                return 1;
            }
            log_warn("%s; the SSH gateway is off", berr_msg(e));
            (void)store_setting_set_text(d.store, SSHD_SETTING_LISTEN, "");
            berr_free(TAKE_PTR(e));
        } else {
            log_info("ssh gateway on %s:%d, host key %s", d.ssh_addr, d.ssh_port, fp);
            api_set_sshd(d.api, d.sshd);
        }
    } else {
        (void)store_setting_set_text(d.store, SSHD_SETTING_LISTEN, "");
    }

    uv_signal_init(d.loop, &d.sigint);
    uv_signal_init(d.loop, &d.sigterm);
    d.sigint.data = d.sigterm.data = &d;
    uv_signal_start(&d.sigint, on_signal, SIGINT);
    uv_signal_start(&d.sigterm, on_signal, SIGTERM);
    uv_signal_init(d.loop, &d.sighup);
    d.sighup.data = &d;
    uv_signal_start(&d.sighup, on_sighup, SIGHUP);
    uv_timer_init(d.loop, &d.health);
    d.health.data = &d;
    check_health(&d, true);
    uv_timer_start(&d.health, on_health_timer, 15000, 15000);

    uv_run(d.loop, UV_RUN_DEFAULT);
    /* exit without waiting for abandoned jobs */
    fflush(stderr);
    _exit(0);
}
