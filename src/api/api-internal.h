/* api-internal.h - what the API's source files share. */
#ifndef BERTH_API_INTERNAL_H
#define BERTH_API_INTERNAL_H

#include "api/api.h"
#include "api/auth.h"
#include "api/credentials.h"
#include "api/ports.h"
#include "api/portproxy.h"
#include "api/terminal.h"
#include "api/web.h"

struct api {
    struct ws_manager *m;
    struct terminals *terms;
    struct web *web;
    struct ports *ports;
    struct portproxy *portproxy;
    struct creds *creds;
    struct store *store;
    struct runtime *rt;
    struct auth *auth;
    struct sshd *sshd; /* NULL: the SSH gateway is off */
    bool engine_ok;
    struct engine
        *swarm; /* a Swarm manager's engine: the cluster's nodes (nodes.c); NULL on one engine */
};

/* The HTTP status for a -errno from a lower layer. */
int api_status_for(int r);
/* Answers with the error's message and the status for r. */
void api_respond_berr(struct http_conn *c, int r, struct berr *e);
/* Parses the body as a JSON object; answers 400 and returns NULL on failure. */
json_t *api_parse_body(struct http_conn *c, struct http_request *req);

/* A job's work, on a worker thread: fills *ret_answer (the 200's JSON) or
 * returns a -errno with *e. */
typedef int (*api_job_fn)(void *data, json_t **ret_answer, struct berr **e);
/* Answers c from run(data) on libuv's pool (api-job.c); free_data (may be
 * NULL) frees data afterwards, also when the client has left. */
void api_job_start(struct http_conn *c, api_job_fn run, void *data, void (*free_data)(void *data));

/* Records an audit event for the request's caller (user may be NULL). */
void api_audit(struct api *a, const struct auth_user *user, const struct http_request *req,
               const char *action, const char *target, const char *detail);

/* POST /api/v1/auth/login (no caller yet). */
void api_login(struct api *a, struct http_conn *c, struct http_request *req);
/* Routes for accounts, tokens, users, settings, audit, git credentials and
 * secrets. Returns true when it answered. */
bool api_accounts_route(struct api *a, struct http_conn *c, struct http_request *req,
                        const struct auth_user *user, const char *path);

/* Routes under /ssh-keys and /ssh-host (sshkeys.c). Returns true when it answered. */
bool api_sshkeys_route(struct api *a, struct http_conn *c, struct http_request *req,
                       const struct auth_user *user, const char *path);

/* GET /admin/nodes and PATCH /admin/nodes/{node}: the cluster's nodes, for
 * admins (nodes.c). Returns true when it answered. */
bool api_nodes_route(struct api *a, struct http_conn *c, struct http_request *req,
                     const struct auth_user *user, const char *path);

/* GET/PUT /settings: the caller's idle timeout and dotfiles (settings.c).
 * Returns true when it answered. */
bool api_settings_route(struct api *a, struct http_conn *c, struct http_request *req,
                        const struct auth_user *user, const char *path);
/* GET/PUT /workspaces/{ws}/settings: its idle timeout and pin, by its owner. */
void api_workspace_settings(struct api *a, struct http_conn *c, struct http_request *req,
                            const struct auth_user *user, const struct ws_record *rec);

/* GET .../logs of a workspace or prebuild (?after=N, ?follow=1). */
void api_get_logs(struct api *a, struct http_conn *c, struct http_request *req, const char *id);
/* POST /api/v1/prebuild-hooks/{id}: a git host's push, signed with the
 * configuration's secret (no login). */
void api_prebuild_hook(struct api *a, struct http_conn *c, struct http_request *req,
                       const char *id);
/* Routes under /prebuilds and /prebuild-configs. Returns true when it answered. */
bool api_prebuilds_route(struct api *a, struct http_conn *c, struct http_request *req,
                         const struct auth_user *user, const char *path);

#endif
