/* api.h - the JSON API under /api/v1 (see docs/api.md). */
#ifndef BERTH_API_H
#define BERTH_API_H

#include <stdbool.h>

#include "engine/runtime.h"
#include "http/server.h"
#include "workspace/workspace.h"

struct api;

/* web_dir and vendor_dir: see web_new(); may be NULL. */
struct api *api_new(struct ws_manager *m, struct runtime *rt, const char *web_dir,
                    const char *vendor_dir);
void api_free(struct api *a);

/* The authentication state (for the first admin at start-up). */
struct auth *api_auth(struct api *a);

/* Whether berthd's engine answered its last health check (set by the daemon). */
void api_set_engine_ok(struct api *a, bool ok);

/* The engine is a Swarm manager (berthd --engine swarm+unix://); NULL: one engine. */
struct engine;
void api_set_swarm(struct api *a, struct engine *manager);

/* The domain of port subdomains, {port}-{ws}.DOMAIN (default "localhost"). */
void api_set_base_domain(struct api *a, const char *domain);
/* The SSH gateway that GET /workspaces/{ws}/ssh hands its streams to (NULL, the
 * default: the route answers 503). */
struct sshd;
void api_set_sshd(struct api *a, struct sshd *sshd);
/* The server's stream filter (http_server_stream_bodies); data is the api. */
bool api_wants_stream(const struct http_request *req, void *data);

/* The server's request handler; data is the struct api. */
void api_handle(struct http_conn *c, struct http_request *req, void *data);

#endif
