/* wsclient.h - a WebSocket (RFC 6455) client for the CLI, on wslay, over TCP or TLS.
 *
 * A connection is opened in one of two ways. wsc_connect() blocks, with time
 * limits, until the connection is open (berth shell). wsc_open() only starts it
 * (it resolves the host name, then connects without blocking) and the caller's
 * poll() loop drives the connection and the upgrade handshake like everything
 * else, so that one loop can open and serve many connections at once (berth
 * port-forward): wsc_is_open() says when the handshake is over, and
 * wsc_timeout_ms() how long poll() may wait before the handshake's time limit
 * must be checked.
 *
 * Either way the client connects to the host and port of an http:// or https://
 * server URL (ws:// or wss://), sends the upgrade request itself (with the
 * bearer token) and checks the 101 answer and its Sec-WebSocket-Accept. Over
 * https:// it speaks TLS first (stream.h): the server's certificate is verified
 * against the CAs curl trusts in client.c ($BERTH_CACERT, else the system's) and
 * must name the URL's host; that is never turned off.
 *
 * The caller runs the connection from its own poll() loop: poll wsc_fd() for
 * wsc_events(), hand the result to wsc_process(), which reads and writes what it
 * can without blocking and delivers each whole message to the message callback. wsc_send() only
 * queues (also before the handshake is over); wsc_process() writes. The frames the client sends are
 * masked with random keys from getrandom(), as clients must. The caller ignores SIGPIPE: over TLS,
 * OpenSSL writes the socket itself.
 *
 * Errors follow err.h:
 *   -EINVAL          a server URL that is not http:// or https://, or a CA file in
 *                    $BERTH_CACERT that does not load (the message names it)
 *   -ECONNREFUSED    berthd could not be reached
 *   -ETIMEDOUT       the connection or the handshake (TLS's too) took too long
 *   -EPROTO          TLS failed: "certificate verify failed: REASON …" for a
 *                    certificate the CAs do not vouch for or that names another
 *                    host, OpenSSL's reason otherwise; or the answer was not a
 *                    valid WebSocket upgrade
 *   HTTP errors      the server refused the upgrade: its {"error": …} message and
 *                    the code client_status_error() gives (404 -ENOENT, 409 -EBUSY,
 *                    401 -EKEYREJECTED, 502 -EIO, …)
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
 * at `url` (http[s]://HOST[:PORT][/PREFIX]; PREFIX goes before path). `token`, when
 * not NULL, is sent as "Authorization: Bearer TOKEN". Messages go to on_message
 * with `data`. On success the connection is open and *ret_w owns the socket. */
int wsc_connect(const char *url, const char *path, const char *token, wsc_message_cb on_message,
                void *data, struct wsc **ret_w, struct berr **reterr);
/* Like wsc_connect(), but returns as soon as the connection is under way (only
 * the host name is resolved before that): wsc_process() then goes on with the
 * connection and the handshake, and fails with the errors above when they do. */
int wsc_open(const char *url, const char *path, const char *token, wsc_message_cb on_message,
             void *data, struct wsc **ret_w, struct berr **reterr);
/* Whether the handshake is over and the WebSocket open. */
bool wsc_is_open(const struct wsc *w);
/* While the handshake goes on: the milliseconds until its time limit (0 when it
 * has passed; call wsc_process() then, with revents 0). -1 once it is over. */
int wsc_timeout_ms(const struct wsc *w);
/* Closes the socket and frees everything; accepts NULL; returns NULL. */
struct wsc *wsc_free(struct wsc *w);

/* The socket, non-blocking, to poll. It may change while wsc_open()'s
 * connection tries one address of the host after another. */
int wsc_fd(const struct wsc *w);
/* What to poll the socket for now: POLLIN and/or POLLOUT, or 0 when done (or
 * when reading is paused and there is nothing to write). Over TLS a read may
 * wait for POLLOUT, and a write for POLLIN. */
short wsc_events(const struct wsc *w);
/* Whether received bytes are waiting in memory (read along with the handshake,
 * left when reading was paused, or decrypted by TLS and not yet handed out):
 * then call wsc_process() without waiting for poll() (use a timeout of 0). */
bool wsc_has_buffered(const struct wsc *w);
/* Stops (true) or resumes (false) reading messages, for backpressure: while
 * paused, wsc_events() leaves out POLLIN and wsc_process() only writes. A few
 * messages already in memory may still be delivered after the pause begins. */
void wsc_pause_read(struct wsc *w, bool pause);
/* Reads and writes what can be done without blocking, given poll()'s revents
 * for the socket (0 when there are buffered bytes only). Returns 0, or a
 * negative errno: the connection is then unusable. */
int wsc_process(struct wsc *w, short revents, struct berr **reterr);

/* Queues a message (copied) for the next wsc_process(); before the handshake is
 * over too. */
int wsc_send(struct wsc *w, int opcode, const void *msg, size_t len, struct berr **reterr);
/* Queues a close frame with `code` (and no reason). It goes out before the
 * messages still queued, which are then dropped: wait for wsc_queued() to be 0
 * first to have them delivered. */
void wsc_close(struct wsc *w, uint16_t code);
/* Bytes queued and not yet written (for backpressure). */
size_t wsc_queued(const struct wsc *w);
/* Whether the closing handshake is over (or the peer went away after sending its
 * close frame, or the connection failed): nothing more will come or go. */
bool wsc_done(const struct wsc *w);
/* The status code of the peer's close frame, or 0 when none has come. */
uint16_t wsc_close_code(const struct wsc *w);

DEFINE_TRIVIAL_CLEANUP_FUNC(struct wsc *, wsc_free)

#endif
