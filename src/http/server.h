/* server.h - a small HTTP/1.1 server on libuv and http-parser.
 *
 * The server parses requests (with limits on every part a client controls),
 * hands each complete request to one handler, and offers three ways to answer:
 * a whole response, a chunked stream (for logs and exec output), or taking the
 * connection over after an Upgrade (for WebSockets and proxied streams, later).
 *
 * A connection serves one request at a time; bytes that arrive while a
 * response is under way are kept (bounded) and parsed after it ends, so
 * keep-alive and pipelining work, and a client hanging up during a stream is
 * noticed at once (the close callback).
 *
 * Relays (the proxy) need more: a request whose head the server's stream
 * filter accepts is handed over as soon as its head is complete, its body
 * (of any size) is read piece by piece with http_conn_read_body, the answer is
 * written raw and ended with http_conn_raw_end, and the connection then reads
 * its next request. Data attached to a connection (an idle upstream) lives
 * across its requests.
 *
 * Lifetime: a struct http_conn lives until its socket is closed. A handler that
 * keeps a pointer to it past the handler call (a stream) must register a close
 * callback and drop the pointer when it runs.
 */
#ifndef BERTH_HTTP_SERVER_H
#define BERTH_HTTP_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "util/buf.h"
#include "util/strv.h"

#define HTTP_MAX_HEADER_BYTES (64 * 1024)
#define HTTP_MAX_URL (8 * 1024)
#define HTTP_MAX_BODY (1024 * 1024)
/* On every answer over HTTPS: browsers then keep to https:// for a year */
#define HTTP_HSTS_HEADER "Strict-Transport-Security: max-age=31536000"

struct http_server;
struct http_conn;
struct tls_ctx;

struct http_request {
    const char *method;  /* "GET", "POST", ... */
    char *path;          /* percent-decoded path, without the query */
    char *query;         /* raw query string, or "" */
    struct strv headers; /* "name: value", names lower-cased */
    struct buf body;
    char peer[64];       /* remote address, for logs and throttling (the trusted
                            proxy's client, by X-Forwarded-For) */
    bool upgrade;        /* the client asked to switch protocols (WebSocket) */
    char *raw_target;    /* the request target as sent (path and query, not decoded) */
    bool http11;         /* HTTP/1.1 or later (chunked answers allowed) */
    bool body_streamed;  /* handed over at its head: read the body with http_conn_read_body */
    bool chunked;        /* the body comes with Transfer-Encoding: chunked */
    long long body_size; /* Content-Length, or -1 when chunked or absent */
    bool secure;         /* came over TLS: to this server (its answers carry HSTS) or,
                            from the trusted proxy, to it (X-Forwarded-Proto: https) */
};

typedef void (*http_handler_cb)(struct http_conn *c, struct http_request *req, void *data);
typedef void (*http_close_cb)(struct http_conn *c, void *data);
typedef void (*http_drain_cb)(struct http_conn *c, void *data);
typedef void (*http_raw_cb)(struct http_conn *c, const char *bytes, size_t len, void *data);
typedef bool (*http_filter_cb)(const struct http_request *req, void *data);

/* Listens on addr:port (IPv4 or IPv6 literal). Returns 0 or -errno. */
int http_server_new(uv_loop_t *loop, const char *addr, int port, http_handler_cb handler,
                    void *data, struct http_server **ret);
/* Stops listening and closes every connection; frees the server from the loop. */
void http_server_close(struct http_server *s);
/* Serves HTTPS: every connection accepted from now on is a TLS session
 * with tls's certificate at that moment (see tls.h; a reload there holds for
 * the next connection). The server does not own tls, which must outlive it.
 * Everything else (routes, streams, relays, WebSockets) is as over HTTP, and
 * every answer carries Strict-Transport-Security. */
void http_server_use_tls(struct http_server *s, struct tls_ctx *tls);
/* Trusts X-Forwarded-For and X-Forwarded-Proto from the peer with this IP
 * address (a TLS-terminating reverse proxy): from it, their last items set a
 * request's peer and `secure`. These headers never reach req.headers, from
 * any peer, so no handler or upstream takes a client's word for them.
 * Returns 0 or -EINVAL (not an IP address). */
int http_server_trust_proxy(struct http_server *s, const char *addr);
/* Requests (other than upgrades) for which want() returns true go to the
 * handler as soon as their head is complete, with body_streamed set and no
 * size limit on the body. want() sees the head only: path, query, headers. */
void http_server_stream_bodies(struct http_server *s, http_filter_cb want, void *data);
/* Closes connections that have not sent a whole request within this many
 * seconds of opening or of their last answer going out (default 75); for a
 * request the stream filter takes, the head is enough. */
void http_server_set_idle_timeout(struct http_server *s, unsigned seconds);

/* A header's value (name lower-case), or NULL. */
const char *http_request_header(const struct http_request *req, const char *name);
/* The value of a query parameter (not decoded beyond '+'), newly allocated, or NULL. */
char *http_request_query(const struct http_request *req, const char *name);

/* Adds a header line ("Name: value", no CRLF) to the next response. */
void http_conn_add_header(struct http_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Sends a whole response. body may be NULL for an empty one. */
void http_respond(struct http_conn *c, int status, const char *content_type, const void *body,
                  size_t len);
/* Sends json (reference stolen) as the response. */
void http_respond_json(struct http_conn *c, int status, json_t *json);
/* Sends {"error": message}. */
void http_respond_error(struct http_conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Starts a chunked response; then http_stream_write any number of times and
 * http_stream_end once. */
void http_stream_begin(struct http_conn *c, int status, const char *content_type);
void http_stream_write(struct http_conn *c, const void *data, size_t len);
void http_stream_end(struct http_conn *c);

/* Bytes queued for the client and not yet written (for backpressure). */
size_t http_conn_pending(struct http_conn *c);
/* Called once the connection closes (client hung up or server closed it). */
void http_conn_on_close(struct http_conn *c, http_close_cb cb, void *data);
/* Called when the write queue falls below 256 KiB after having been above it. */
void http_conn_on_drain(struct http_conn *c, http_drain_cb cb, void *data);
/* Closes the connection now. */
void http_conn_close(struct http_conn *c);

/* Takes the connection over from the HTTP parser (after an Upgrade, or to
 * relay a proxied response): every byte read from now on, starting with any
 * already received after the request, goes to on_data; write with
 * http_conn_write_raw. The close callback (http_conn_on_close) still runs. */
void http_conn_takeover(struct http_conn *c, http_raw_cb on_data, void *data);
void http_conn_write_raw(struct http_conn *c, const void *bytes, size_t len);
/* For a request with body_streamed: delivers its body (chunked decoding
 * undone) to body_cb in pieces, then once with bytes NULL at its end; called
 * again while the body is read, it only changes where the rest goes. Reading
 * follows http_conn_pause/resume. body_cb may answer and end the response. */
void http_conn_read_body(struct http_conn *c, http_raw_cb body_cb, void *data);
/* Ends a response written raw (a relayed answer) without taking the
 * connection over: it reads its next request, or closes once the answer is
 * written when keep-alive is off, the request's body was not read to its end,
 * or !reuse (an answer whose end only the close marks). */
void http_conn_raw_end(struct http_conn *c, bool reuse);
/* Whether the connection is to stay open after the current response. */
bool http_conn_keep_alive(struct http_conn *c);
/* Data that outlives one request (a relay's idle upstream): free_cb runs when
 * the connection closes. Attaching NULL detaches without calling it. */
void http_conn_attach(struct http_conn *c, void *data, http_close_cb free_cb);
void *http_conn_attached(struct http_conn *c);
/* Closes the connection once everything queued has been written. */
void http_conn_close_after_write(struct http_conn *c);
/* Stops and restarts reading from the client (backpressure for relays). */
void http_conn_pause(struct http_conn *c);
void http_conn_resume(struct http_conn *c);

const char *http_status_text(int status);

#endif
