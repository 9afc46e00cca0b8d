/* ports.h - forwarded ports: detection (the agent's port watch), the ports
 * API, and the proxy to a port through the agent's TCP relay.
 *
 * Visibility: private (the owner), org (any signed-in user), public (anyone);
 * portproxy.h enforces it on the way in. */
#ifndef BERTH_PORTS_H
#define BERTH_PORTS_H

#include <jansson.h>

#include "api/auth.h"
#include "http/server.h"
#include "store/store.h"

struct ports;
struct ws_manager;
struct auth;

struct ports *ports_new(struct ws_manager *m, struct auth *auth);
void ports_free(struct ports *p);
/* Starts watchers for running workspaces and drops those of stopped ones. */
void ports_sync(struct ports *p);

/* The ports of a workspace as the API lists them (docs/api.md): detected
 * listeners, forwardPorts and URLs seen in output, with portsAttributes. */
json_t *ports_list_json(struct ports *p, const struct ws_record *rec);

/* Called on the loop when a workspace's ports may have changed. */
typedef void (*ports_change_cb)(const char *ws_id, void *data);
void ports_on_change(struct ports *p, ports_change_cb cb, void *data);

/* A program in the workspace printed http://localhost:PORT/PATH. Any thread. */
void ports_note_url(struct ports *p, const char *ws_id, int port, const char *path);

/* GET /api/v1/workspaces/{ws}/ports and POST .../ports/{port}/visibility. */
void ports_api(struct ports *p, struct http_conn *c, struct http_request *req,
               const struct auth_user *user, const struct ws_record *rec, const char *rest);

/* Upgrades the request to a WebSocket whose binary messages carry fd's stream both
 * ways (berth port-forward's tunnel, berth ssh-proxy's). fd is owned by the callee.
 * ws_id, when not NULL, is the workspace in which what the client sends counts as
 * port activity. */
void ports_tunnel_fd(struct http_conn *c, struct http_request *req, struct ws_manager *m,
                     const char *ws_id, int fd);

/* fd: a connected socket, owned by the callee from then on; or -errno and msg. */
typedef void (*ports_connected_cb)(void *data, int fd, const char *msg);

/* Opens a TCP connection to the port on the workspace's loopback, through its
 * agent, without blocking: cb gets the connected socket (the TCP socket
 * itself, or the agent's relay when the agent does not pass it) once the agent
 * answers (within 3 s, else an error). cb runs exactly once, from the loop, or
 * before ports_connect returns when the agent cannot even be asked. On a
 * cluster WS_IDE_PORT is refused (it is VS Code's, reached by web.c). */
void ports_connect(struct ports *p, const char *ws_id, int port, ports_connected_cb cb, void *data);
/* ports_connect as a proxy route's opener (proxy_open_cb): data is the ports,
 * key "WS_ID:PORT". */
void ports_open(void *data, const char *key, ports_connected_cb done, void *ctx);
/* The same to VS Code's port on a cluster (WS_IDE_PORT), which ports_connect
 * refuses: for web.c alone, behind its owner check. key "WS_ID:..." */
void ports_open_ide(void *data, const char *key, ports_connected_cb done, void *ctx);

#endif
