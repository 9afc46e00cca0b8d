/* terminal.h - browser and CLI terminals: a WebSocket bridged to a PTY that the
 * workspace's agent runs (see docs/api.md, "Terminal"). Terminals outlive their
 * WebSocket for TERMINAL_LINGER_MS so a reload can reattach. */
#ifndef BERTH_TERMINAL_H
#define BERTH_TERMINAL_H

#include <jansson.h>

#include "api/auth.h"
#include "http/server.h"
#include "store/store.h"

#define TERMINAL_LINGER_MS (10 * 60 * 1000)
#define TERMINAL_SCROLLBACK (64 * 1024)

struct terminals;
struct ws_manager;

struct terminals *terminals_new(struct ws_manager *m);
/* Ends every terminal (berthd is stopping). */
void terminals_free(struct terminals *t);

/* GET /api/v1/workspaces/{ws}/terminal for a caller who owns rec. */
void terminal_route(struct terminals *t, struct http_conn *c, struct http_request *req,
                    const struct auth_user *user, const struct ws_record *rec);

/* The workspace's tasks: [{"name", "running", "attached"}]. */
json_t *terminals_tasks_json(struct terminals *t, const struct ws_record *rec);

#endif
