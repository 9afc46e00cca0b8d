/* proxy.h - relaying HTTP requests (and WebSockets) to an upstream socket.
 *
 * Each request is written to the upstream with its target rewritten, Berth's
 * own cookies (every cookie named berth_*) and the Authorization header
 * removed; its body is streamed (a request the server handed over at its head,
 * see http_server_stream_bodies) or sent from the buffer. The upstream's
 * answer is parsed just enough to find its end: its head is rebuilt (hop-by-hop
 * headers dropped, Set-Cookie for berth_* names dropped, an extra header
 * added; over HTTPS berthd's HSTS instead of any the app sends), its body streamed, re-chunked when
 * the upstream only ends it by closing. Then the client connection goes back to the HTTP server for
 * its next request (keep-alive), and the upstream connection stays attached to it, idle, for the
 * next request with the same key. For an Upgrade the relay goes on in both directions, byte for
 * byte, until either side closes. Backpressure both ways: a side that has more than
 * PROXY_HIGH_WATER queued stops the other's reading. No body is ever held whole.
 */
#ifndef BERTH_PROXY_H
#define BERTH_PROXY_H

#include "http/server.h"

#define PROXY_HIGH_WATER (1024 * 1024)

/* How an opening ends: a connected upstream fd (the relay's from then on), or
 * -errno with a message. */
typedef void (*proxy_opened_cb)(void *ctx, int fd, const char *msg);
/* Opens an upstream for the route's key and calls done(ctx, ...) once: before
 * returning, or later from the loop (the client waits; nothing blocks). */
typedef void (*proxy_open_cb)(void *data, const char *key, proxy_opened_cb done, void *ctx);

typedef void (*proxy_tap_cb)(void *tap_data, const char *bytes, size_t len);

/* Where one request goes. */
struct proxy_route {
    const char *key;    /* an idle upstream opened for the same key is reused; NULL: never */
    const char *target; /* the request target to send upstream */
    const char *header; /* a header line ("Name: value") added to the answer, or NULL */
    /* Called when no idle upstream fits, and again when a reused one closes
     * before answering a request without a body (the app timed the idle
     * connection out just then): that request is sent once more. With a key,
     * data must live as long as the client connection. */
    proxy_open_cb open;
    void *data;
    /* An upgrade's bytes from the client, seen before they go on (with
     * permessage-deflate refused, so they are readable); tap_data belongs
     * to the proxy from here and goes to tap_free at the end. NULL: none. */
    proxy_tap_cb tap;
    void (*tap_free)(void *tap_data);
    void *tap_data;
};

/* Relays the request req of c (a handler's request) and its answer. When no
 * upstream can be opened, answers 502 with the open callback's message. */
void proxy_request(struct http_conn *c, const struct http_request *req,
                   const struct proxy_route *route);

/* Relays one request to the connected upstream fd (owned from now on). */
void proxy_forward(struct http_conn *c, const struct http_request *req, int upstream_fd,
                   const char *target);
/* The same, adding a header line ("Name: value") to the upstream's answer. */
void proxy_forward_with_header(struct http_conn *c, const struct http_request *req, int upstream_fd,
                               const char *target, const char *header);

/* proxy_forward with a tap on an upgrade's client bytes (see proxy_route). */
void proxy_forward_tapped(struct http_conn *c, const struct http_request *req, int upstream_fd,
                          const char *target, proxy_tap_cb tap, void (*tap_free)(void *),
                          void *tap_data);

/* Removes the named cookies from a Cookie header value; newly allocated, or
 * NULL when nothing is left. A name ending in '*' is a prefix. */
char *proxy_strip_cookies(const char *cookie_header, const char *const *names);

#endif
