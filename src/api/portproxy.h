/* portproxy.h - the way into a forwarded port: two URL forms, who may enter,
 * and the cookie exchange for port subdomains.
 *
 * URL forms, checked the same way on every request (also each request of a
 * kept-alive connection):
 *   path       /w/{ws}/ports/{port}/...              on Berth's own origin
 *   subdomain  http://{port}-{ws}.{base-domain}[:P]/...  (base "localhost" by default)
 * {ws} is a workspace id or name. Any other Host goes to the normal routes.
 *
 * Visibility: private (the owner), org (any signed-in user), public (anyone).
 * Callers: a bearer token in both forms; Berth's session cookie on the path
 * form; on a subdomain, where that cookie (host-only) never arrives, the
 * berth_port cookie from the exchange:
 *   1. a browser without one is sent to GET /api/v1/port-auth?ws=&port=&next=
 *      on the main origin ({base-domain}[:P]);
 *   2. there, a signed-in user who may see the port gets a single-use code
 *      (60 s) and is sent back to {subdomain}/.berth/auth?code=&next=;
 *   3. that sets berth_port (host-only, HttpOnly, SameSite=Lax, 8 h; over
 *      HTTPS Secure and named __Host-berth_port, see auth.h), bound
 *      to the user, the workspace, the port and the Berth session it came
 *      from (a logout ends it), and redirects to next (a path on that host).
 * Others get a login redirect (browser GETs) or 401, a signed-in user who may
 * not see the port 404; never the app's content. Every answer of the app gets
 * a sandboxing Content-Security-Policy, and Berth's cookies and Authorization
 * never reach the app (see proxy.h).
 */
#ifndef BERTH_PORTPROXY_H
#define BERTH_PORTPROXY_H

#include <stdbool.h>

#include "api/auth.h"
#include "api/ports.h"
#include "http/server.h"

struct portproxy;
struct ws_manager;

struct portproxy *portproxy_new(struct ws_manager *m, struct auth *auth, struct ports *ports);
void portproxy_free(struct portproxy *pp);

/* Makes the cache of workspaces and port visibilities read the store again:
 * call after a workspace or a port's visibility changed. */
void portproxy_forget(struct portproxy *pp);

/* The domain under which {port}-{ws}.DOMAIN names a port ("localhost" by
 * default). Must be a lower-case host name. */
void portproxy_set_base_domain(struct portproxy *pp, const char *domain);

/* A stream filter for http_server_stream_bodies (data: the portproxy):
 * requests for a port, whose bodies are relayed as they arrive. */
bool portproxy_wants_stream(const struct http_request *req, void *data);

/* Answers req when it is for a forwarded port (either form) or the
 * exchange's /api/v1/port-auth; returns false, having done nothing, else. */
bool portproxy_route(struct portproxy *pp, struct http_conn *c, struct http_request *req);

#endif
