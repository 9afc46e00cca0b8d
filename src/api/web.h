/* web.h - what berthd serves to browsers besides the JSON API: the dashboard's
 * static files, the live-update stream, and VS Code under /w/{ws}/ide/. */
#ifndef BERTH_WEB_H
#define BERTH_WEB_H

#include "api/auth.h"
#include "http/server.h"
#include "store/store.h"

struct web;
struct ws_manager;

/* web_dir: the dashboard (web/); vendor_dir: front-end packages from npm
 * (DATA/web-vendor/node_modules); either may be NULL. */
struct web *web_new(struct ws_manager *m, const char *web_dir, const char *vendor_dir);
void web_free(struct web *w);
/* The ports module, through which VS Code is reached on a cluster. */
struct ports;
void web_set_ports(struct web *w, struct ports *p);

/* Workspaces may have changed: update the live streams. */
void web_changed(struct web *w);

/* Serves a static file for GET/HEAD of a path outside /api and /w; answers
 * 404 when there is none. */
void web_static(struct web *w, struct http_conn *c, struct http_request *req);

/* GET /api/v1/stream. */
void web_stream(struct web *w, struct http_conn *c, const struct auth_user *user);

/* Anything under /w/{ws}/ide for the owner of rec; rest is what follows "ide". */
void web_ide(struct web *w, struct http_conn *c, struct http_request *req,
             const struct auth_user *user, const struct ws_record *rec, const char *rest);

/* Sends a workspace's ports to its owner's live streams (SSE event "ports":
 * {"id", "ports": [...]}). Takes ports. */
void web_ports_changed(struct web *w, const char *owner, const char *ws_id, json_t *ports);

#endif
