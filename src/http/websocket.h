/* websocket.h - WebSocket (RFC 6455) on a taken-over HTTP connection, with wslay.
 *
 * wsock_accept() checks the upgrade request, answers 101, and from then on
 * delivers whole messages to on_message. Messages are limited to 1 MiB. When
 * the peer closes, the connection drops, or wsock_close() is called, on_close
 * runs once; the struct wsock is freed right after it returns.
 */
#ifndef BERTH_WEBSOCKET_H
#define BERTH_WEBSOCKET_H

#include <stddef.h>
#include <stdint.h>

#include "http/server.h"

#define WSOCK_TEXT 1
#define WSOCK_BINARY 2

struct wsock;

typedef void (*wsock_message_cb)(struct wsock *w, int opcode, const unsigned char *data, size_t len,
                                 void *data_);
typedef void (*wsock_close_cb)(struct wsock *w, void *data);
typedef void (*wsock_drain_cb)(struct wsock *w, void *data);

/* Completes the handshake. On a bad request answers 400 itself and returns
 * -EINVAL (the connection is then closed). */
int wsock_accept(struct http_conn *c, const struct http_request *req, wsock_message_cb on_message,
                 wsock_close_cb on_close, void *data, struct wsock **ret);
void wsock_send(struct wsock *w, int opcode, const void *bytes, size_t len);
/* Sends a close frame and closes the connection once it is written. */
void wsock_close(struct wsock *w, uint16_t code, const char *reason);
/* Bytes queued for the peer (for backpressure). */
size_t wsock_pending(struct wsock *w);
/* Called when the queue falls low again after being high. */
void wsock_on_drain(struct wsock *w, wsock_drain_cb cb);
/* Stops or restarts reading from the peer. */
void wsock_pause(struct wsock *w);
void wsock_resume(struct wsock *w);

#endif
