/* proxy.h - relaying one HTTP request (or WebSocket) to an upstream socket.
 *
 * The request is written to the upstream with its target rewritten, Berth's
 * own cookies and the Authorization header removed, and "Connection: close"
 * (so the end of the upstream's answer is the end of its connection); the
 * answer is relayed to the client byte for byte. For an Upgrade the relay goes
 * on in both directions until either side closes. Backpressure both ways: a
 * side that has more than PROXY_HIGH_WATER queued stops the other's reading.
 */
#ifndef BERTH_PROXY_H
#define BERTH_PROXY_H

#include "http/server.h"

#define PROXY_HIGH_WATER (1024 * 1024)

/* Takes over the client connection c and the connected upstream fd (owned
 * from now on). target is the request target to send upstream. */
void proxy_forward(struct http_conn *c, const struct http_request *req, int upstream_fd,
                   const char *target);
/* The same, adding a header line ("Name: value") to the upstream's answer. */
void proxy_forward_with_header(struct http_conn *c, const struct http_request *req, int upstream_fd,
                               const char *target, const char *header);

/* Removes the named cookies from a Cookie header value; newly allocated, or
 * NULL when nothing is left. */
char *proxy_strip_cookies(const char *cookie_header, const char *const *names);

#endif
