/* client.h - the CLI's HTTP client for berthd's API (docs/api.md), on libcurl.
 *
 * One struct client per process; it keeps one curl handle so that successive
 * requests reuse the connection. Requests are blocking. Every request carries
 * the headers built in one place in client.c (JSON content type, and the
 * bearer token when there is one), so authentication is added there only.
 * Which token that is (BERTH_TOKEN or the stored login) is main.c's choice.
 *
 * Errors follow err.h: a negative errno and a message in *reterr.
 *   -ECONNREFUSED  berthd could not be reached ("cannot reach berthd at URL: …")
 *   -ECONNRESET    the connection broke after the response had started
 *   HTTP errors    the server's {"error": …} message, with the code from the status:
 *                  400 -EINVAL, 401 -EKEYREJECTED (no caller, or one the server
 *                  refused), 403 -EPERM, 404 -ENOENT, 409 -EBUSY, anything else -EIO
 *   -EBADMSG       the response was not the JSON that was asked for
 *   -EFBIG         a buffered response passed its limit
 */
#ifndef BERTH_CLI_CLIENT_H
#define BERTH_CLI_CLIENT_H

#include <stddef.h>
#include <jansson.h>

#include "util/err.h"

struct client;

/* Receives a piece of a streamed response body, as it arrives. Returning a
 * negative errno (with *reterr set) aborts the transfer; the request then
 * returns that error. */
typedef int (*client_data_cb)(const void *chunk, size_t len, void *data, struct berr **reterr);

/* Makes a client for the server at `url` (http:// or https://; a trailing slash
 * is ignored). `token`, when not NULL or empty, is sent as a bearer token. Both
 * strings are copied. Returns 0 or -EINVAL for a URL that is not HTTP(S). */
int client_new(const char *url, const char *token, struct client **ret_client,
               struct berr **reterr);
/* Frees the client; accepts NULL; returns NULL. */
struct client *client_free(struct client *c);

/* The server's URL without a trailing slash: the key logins are stored under. */
const char *client_url(const struct client *c);
/* Replaces the bearer token (copied; NULL or empty: send none). */
void client_set_token(struct client *c, const char *token);
/* The bearer token, or NULL when none is sent: for connections made without
 * curl (the terminal's WebSocket, wsclient.h). */
const char *client_token(const struct client *c);

/* The file of CA certificates that https:// servers are verified against
 * ($BERTH_CACERT), or NULL for the system's. One rule for curl and for the
 * WebSocket client's TLS (stream.h). */
const char *client_cacert(void);

/* Turns an HTTP error status and its body into *reterr, with the codes listed
 * above and the server's {"error": …} message when the body has one. Returns the
 * negative code. Shared with wsclient.c, whose upgrade can be refused. */
int client_status_error(long status, const char *body, size_t len, struct berr **reterr);

/* Sends `method` to `path` (which starts with "/api/v1/") with `body` as its JSON
 * body (NULL for none; not stolen) and parses the 2xx response. *ret_json gets a
 * new reference the caller owns, or NULL for an empty body. Responses are
 * limited to CLIENT_MAX_JSON bytes. */
int client_json(struct client *c, const char *method, const char *path, json_t *body,
                json_t **ret_json, struct berr **reterr);

/* Like client_json, but hands a 2xx response body to `cb` piece by piece as it
 * arrives instead of keeping it, with no time limit: for logs and exec. Returns 0
 * when the server ended the response normally. */
int client_stream(struct client *c, const char *method, const char *path, json_t *body,
                  client_data_cb cb, void *data, struct berr **reterr);

#define CLIENT_MAX_JSON (16u * 1024 * 1024)

DEFINE_TRIVIAL_CLEANUP_FUNC(struct client *, client_free)

#endif
