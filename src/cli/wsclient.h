/* wsclient.h - a WebSocket (RFC 6455) client for the CLI, on wslay, over plain TCP.
 *
 * wsc_connect() connects to the host and port of an http:// server URL, sends the
 * upgrade request itself (with the bearer token) and checks the 101 answer and its
 * Sec-WebSocket-Accept; it blocks, with time limits, until the connection is
 * open. From then on the caller runs the connection from its own poll() loop:
 * poll wsc_fd() for wsc_events(), hand the result to wsc_process(), which reads
 * and writes what it can without blocking and delivers each whole message to the
 * message callback. wsc_send() only queues; wsc_process() writes. The frames the
 * client sends are masked with random keys from getrandom(), as clients must.
 *
 * Errors follow err.h:
 *   -EINVAL          a server URL that is not http:// (https:// is refused with a
 *                    message: there is no TLS here)
 *   -ECONNREFUSED    berthd could not be reached
 *   -ETIMEDOUT       the connection or the handshake took too long
 *   -EPROTO          the answer was not a valid WebSocket upgrade
 *   HTTP errors      the server refused the upgrade: its {"error": …} message and
 *                    the code client_status_error() gives (404 -ENOENT, 409 -EBUSY,
 *                    401 -EKEYREJECTED, …)
 *   -ECONNRESET      the connection broke, or the server went away without the
 *                    closing handshake
 *   -EMSGSIZE        a message over WSC_MAX_MESSAGE
 */
#ifndef BERTH_CLI_WSCLIENT_H
#define BERTH_CLI_WSCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define WSC_TEXT 1
#define WSC_BINARY 2
#define WSC_MAX_MESSAGE (4u * 1024 * 1024)

struct wsc;

/* Receives one whole data message (text or binary; control frames are handled
 * inside). Returning a negative errno (with *reterr set) makes wsc_process()
 * stop and return it. */
typedef int (*wsc_message_cb)(struct wsc *w, int opcode, const unsigned char *msg, size_t len,
                              void *data, struct berr **reterr);

/* Opens a WebSocket to `path` (starting with '/', query included) on the server
 * at `url` (http://HOST[:PORT][/PREFIX]; PREFIX goes before path). `token`, when
 * not NULL, is sent as "Authorization: Bearer TOKEN". Messages go to on_message
 * with `data`. On success the connection is open and *ret_w owns the socket. */
int wsc_connect(const char *url, const char *path, const char *token, wsc_message_cb on_message,
                void *data, struct wsc **ret_w, struct berr **reterr);
/* Closes the socket and frees everything; accepts NULL; returns NULL. */
struct wsc *wsc_free(struct wsc *w);

/* The socket, non-blocking, to poll. */
int wsc_fd(const struct wsc *w);
/* What to poll the socket for now: POLLIN and/or POLLOUT, or 0 when done. */
short wsc_events(const struct wsc *w);
/* Whether bytes read along with the handshake are still waiting: then call
 * wsc_process() without waiting for poll() (use a timeout of 0). */
bool wsc_has_buffered(const struct wsc *w);
/* Reads and writes what can be done without blocking, given poll()'s revents
 * for the socket (0 when there are buffered bytes only). Returns 0, or a
 * negative errno: the connection is then unusable. */
int wsc_process(struct wsc *w, short revents, struct berr **reterr);

/* Queues a message (copied) for the next wsc_process(). */
int wsc_send(struct wsc *w, int opcode, const void *msg, size_t len, struct berr **reterr);
/* Queues a close frame with `code` (and no reason). */
void wsc_close(struct wsc *w, uint16_t code);
/* Bytes queued and not yet written (for backpressure). */
size_t wsc_queued(const struct wsc *w);
/* Whether the closing handshake is over (or the peer went away after sending its
 * close frame): nothing more will come or go. */
bool wsc_done(const struct wsc *w);
/* The status code of the peer's close frame, or 0 when none has come. */
uint16_t wsc_close_code(const struct wsc *w);

DEFINE_TRIVIAL_CLEANUP_FUNC(struct wsc *, wsc_free)

#endif
