/* server.c - HTTP/1.1 server: accept, parse with limits, dispatch, respond.
 *
 * Parts:
 *   - listener: uv_tcp bound to one address, accepting into struct http_conn;
 *   - parser callbacks: build a struct http_request, enforcing the header, URL
 *     and body limits (431, 414, 413) and rejecting malformed input with 400;
 *   - dispatch: one request at a time per connection; later bytes wait in
 *     `pending` until the response ends; a request the stream filter takes is
 *     dispatched at its head and its body parsed on demand (relays);
 *   - writers: whole responses and chunked streams, with a pending-byte count
 *     for backpressure;
 *   - the idle sweep: a connection that has not completed a request within
 *     the idle timeout of being opened or of its last answer going out is
 *     closed (an idle keep-alive, or a client sending its head a byte at a
 *     time). That is the head for a request handed over at its head (relays),
 *     the head and its body (at most 1 MiB) for the server's own routes.
 *     Streams, relays and WebSockets are past that phase and stay;
 *   - TLS, when on: the one layer between the socket and the rest. on_read
 *     hands the socket's bytes to the connection's session and the parser
 *     gets the plaintext; conn_write encrypts and sock_write sends. Every
 *     route, stream, relay and WebSocket above runs unchanged over it;
 *   - the trusted proxy: X-Forwarded-For and -Proto are kept out of the
 *     request's headers, and only a request from the proxy's address has
 *     them set its peer and `secure` (request_origin).
 * Connections are freed in the uv_close callback, never earlier (libuv's rule).
 */
#include "http/server.h"

#include <ctype.h>
#include <errno.h>
#include <http_parser.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/tls.h"
#include "util/log.h"
#include "util/xalloc.h"

#define HTTP_MAX_PENDING (256 * 1024)
#define HTTP_DRAIN_LOW (256 * 1024)
#define HTTP_IDLE_TIMEOUT_DEFAULT 75 /* seconds, as nginx's keepalive_timeout */
#define HTTP_TLS_CHUNK (64 * 1024)   /* plaintext handed to the parser at a time */

/* The answer to plain HTTP on the HTTPS port, in plain HTTP (as nginx does) */
#define HTTP_PLAIN_ON_TLS                                                                          \
    "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 43\r\n"               \
    "Connection: close\r\n\r\nthis port speaks HTTPS: use an https:// URL\n"

struct http_server {
    uv_tcp_t tcp;
    uv_loop_t *loop;
    http_handler_cb handler;
    void *data;
    http_filter_cb want_stream;
    void *want_stream_data;
    struct http_conn *conns; /* list of open connections */
    uv_timer_t *sweep;       /* its own allocation: closed apart from tcp */
    uint64_t idle_ms;
    struct tls_ctx *tls;    /* not owned; NULL: plain HTTP */
    char trusted_proxy[64]; /* "": none */
};

enum conn_phase { PHASE_READING, PHASE_HANDLING, PHASE_STREAMING, PHASE_RAW };

struct http_conn {
    uv_tcp_t tcp; /* first: the handle's address is the connection's */
    struct http_server *server;
    struct http_conn *next, *prev;
    http_parser parser;
    enum conn_phase phase;
    uint64_t reading_since; /* loop time PHASE_READING began */
    bool in_request;        /* part of a request has come since then */
    bool closing;
    /* the last answer went out with "Connection: close": our side is shut,
     * and what the client still sends is read and dropped until it closes
     * (or HTTP_LINGER_MS), so that closing with its bytes unread does not
     * reset the connection before it has read the answer */
    bool lingering;
    uint64_t linger_since;
    uv_shutdown_t shutdown_req;
    bool keep_alive;
    bool last_was_value;
    size_t header_bytes;
    struct buf url;
    struct buf field;
    struct buf value;
    struct http_request req;
    bool req_ready;
    char peer[64];
    struct buf extra_headers; /* added by the handler for the next response */
    struct buf pending;       /* bytes received while a response is under way */
    struct buf fwd_for;       /* X-Forwarded-For and -Proto, kept out of req.headers */
    struct buf fwd_proto;
    size_t write_pending;
    bool above_drain_mark;
    http_close_cb close_cb;
    void *close_data;
    http_drain_cb drain_cb;
    void *drain_data;
    http_raw_cb raw_cb;
    void *raw_data;
    bool paused;
    bool finished;     /* the last response is out: later input is ignored */
    bool head_ready;   /* a streamed request's head waits for dispatch */
    bool body_reading; /* the parser runs over a streamed body */
    bool body_done;    /* ... and has reached its end */
    http_raw_cb body_cb;
    void *body_data;
    void *attached;
    http_close_cb attached_free;
    struct tls_conn *tls; /* NULL: plain HTTP */
};

struct write_req {
    uv_write_t req;
    struct http_conn *conn;
    size_t len;
    bool close_after;
    char data[];
};

static http_parser_settings settings;

const char *http_status_text(int status)
{
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 302:
        return "Found";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

static void request_release(struct http_request *r)
{
    free(r->path);
    free(r->query);
    free(r->raw_target);
    strv_release(&r->headers);
    buf_release(&r->body);
    *r = (struct http_request){.headers = STRV_INIT, .body = BUF_INIT};
}

static void on_closed(uv_handle_t *h)
{
    struct http_conn *c = (struct http_conn *)h;
    buf_release(&c->url);
    buf_release(&c->field);
    buf_release(&c->value);
    buf_release(&c->pending);
    buf_release(&c->fwd_for);
    buf_release(&c->fwd_proto);
    buf_release(&c->extra_headers);
    request_release(&c->req);
    tls_conn_free(c->tls);
    free(c);
}

void http_conn_close(struct http_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->server->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    http_close_cb cb = c->close_cb;
    c->close_cb = NULL;
    c->drain_cb = NULL;
    c->body_cb = NULL;
    if (cb)
        cb(c, c->close_data);
    http_close_cb free_attached = c->attached_free;
    c->attached_free = NULL;
    if (free_attached)
        free_attached(c, c->attached);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

#define HTTP_LINGER_MS 2000

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

static void shutdown_done(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
}

static void linger(struct http_conn *c)
{
    c->lingering = true;
    c->linger_since = uv_now(c->server->loop);
    if (c->paused) {
        c->paused = false;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, shutdown_done) < 0)
        http_conn_close(c);
}

static void on_written(uv_write_t *w, int status)
{
    struct write_req *wr = (struct write_req *)w;
    struct http_conn *c = wr->conn;
    c->write_pending -= wr->len;
    bool close_after = wr->close_after;
    free(wr);
    if (c->closing)
        return;
    if (status >= 0 && close_after && !c->tls && !c->lingering) {
        linger(c);
        return;
    }
    if (status < 0 || close_after) {
        http_conn_close(c);
        return;
    }
    /* the idle time runs from when the last answer has gone out */
    if (c->phase == PHASE_READING && !c->write_pending)
        c->reading_since = uv_now(c->server->loop);
    if (c->above_drain_mark && c->write_pending < HTTP_DRAIN_LOW) {
        c->above_drain_mark = false;
        if (c->drain_cb)
            c->drain_cb(c, c->drain_data);
    }
}

/* Writes to the socket itself (ciphertext when TLS is on). */
static void sock_write(struct http_conn *c, const void *data, size_t len, bool close_after)
{
    if (c->closing)
        return;
    /* Most writes go out at once: then no request, copy or callback (and no
     * epoll change for the write's end). libuv refuses while others queue.
     * A failure is left to uv_write below, which reports it from the loop:
     * closing here would run close callbacks inside the writer's own call
     * (a WebSocket's library frees its state under its feet). */
    if (len) {
        uv_buf_t now = uv_buf_init((char *)data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &now, 1);
        if (n > 0) {
            data = (const char *)data + n;
            len -= (size_t)n;
        }
        if (!len && !close_after)
            return;
    }
    struct write_req *wr = xmalloc(sizeof(*wr) + len);
    wr->conn = c;
    wr->len = len;
    wr->close_after = close_after;
    memcpy(wr->data, data, len);
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)len);
    c->write_pending += len;
    if (c->write_pending >= HTTP_DRAIN_LOW)
        c->above_drain_mark = true;
    int r = uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (r < 0) {
        c->write_pending -= len;
        free(wr);
        http_conn_close(c);
    }
}

/* Sends what the TLS session has for the socket. */
static void tls_flush(struct http_conn *c, bool close_after)
{
    const char *out = NULL;
    size_t n = tls_conn_output(c->tls, &out);
    if (n || close_after)
        sock_write(c, n ? out : "", n, close_after);
    tls_conn_output_clear(c->tls);
}

/* Every writer's way out: through the TLS session when there is one. */
static void conn_write(struct http_conn *c, const void *data, size_t len, bool close_after)
{
    if (!c->tls) {
        sock_write(c, data, len, close_after);
        return;
    }
    if (c->closing)
        return;
    if (tls_conn_write(c->tls, data, len) < 0)
        close_after = true; /* no session to carry it: end the connection from the loop */
    else if (close_after)
        tls_conn_shutdown(c->tls);
    tls_flush(c, close_after);
}

size_t http_conn_pending(struct http_conn *c)
{
    return c->write_pending;
}

void http_conn_on_close(struct http_conn *c, http_close_cb cb, void *data)
{
    c->close_cb = cb;
    c->close_data = data;
}

void http_conn_on_drain(struct http_conn *c, http_drain_cb cb, void *data)
{
    c->drain_cb = cb;
    c->drain_data = data;
}

static void conn_feed(struct http_conn *c, const char *data, size_t len);

/* A response has ended: get ready for the next request on this connection. */
static void response_done(struct http_conn *c)
{
    request_release(&c->req);
    c->req_ready = false;
    c->phase = PHASE_READING;
    c->reading_since = uv_now(c->server->loop);
    c->in_request = false;
    c->close_cb = NULL;
    c->drain_cb = NULL;
    c->head_ready = c->body_reading = c->body_done = false;
    c->body_cb = NULL;
    if (!c->keep_alive) {
        /* closed by the write callback of the last piece */
        c->finished = true;
        return;
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    if (c->pending.len) {
        struct buf p = c->pending;
        buf_init(&c->pending);
        conn_feed(c, p.buf, p.len);
        buf_release(&p);
    }
}

/* A streamed request whose body was not read to its end leaves the parser in
 * the middle of it: the connection cannot carry another request. */
static void settle_keep_alive(struct http_conn *c)
{
    if (c->req.body_streamed && !c->body_done && (c->req.chunked || c->req.body_size > 0))
        c->keep_alive = false;
}

bool http_conn_keep_alive(struct http_conn *c)
{
    settle_keep_alive(c);
    return c->keep_alive;
}

static void write_head(struct http_conn *c, int status, const char *content_type, long long len)
{
    settle_keep_alive(c);
    struct buf h = BUF_INIT;
    buf_addf(&h, "HTTP/1.1 %d %s\r\n", status, http_status_text(status));
    if (content_type)
        buf_addf(&h, "Content-Type: %s\r\n", content_type);
    if (len >= 0)
        buf_addf(&h, "Content-Length: %lld\r\n", len);
    else
        buf_adds(&h, "Transfer-Encoding: chunked\r\n");
    buf_adds(&h, "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n");
    if (c->tls || c->req.secure)
        buf_adds(&h, HTTP_HSTS_HEADER "\r\n");
    buf_add(&h, c->extra_headers.buf, c->extra_headers.len);
    buf_reset(&c->extra_headers);
    if (!c->keep_alive)
        buf_adds(&h, "Connection: close\r\n");
    buf_adds(&h, "\r\n");
    conn_write(c, h.buf, h.len, false);
    buf_release(&h);
}

void http_respond(struct http_conn *c, int status, const char *content_type, const void *body,
                  size_t len)
{
    if (c->closing)
        return;
    write_head(c, status, content_type, (long long)len);
    if (len)
        conn_write(c, body, len, !c->keep_alive);
    else if (!c->keep_alive)
        conn_write(c, "", 0, true);
    response_done(c);
}

void http_respond_json(struct http_conn *c, int status, json_t *json)
{
    char *s = json_dumps(json, JSON_COMPACT);
    json_decref(json);
    struct buf b = BUF_INIT;
    buf_adds(&b, s ? s : "null");
    buf_addch(&b, '\n');
    free(s);
    http_respond(c, status, "application/json", b.buf, b.len);
    buf_release(&b);
}

void http_respond_error(struct http_conn *c, int status, const char *fmt, ...)
{
    struct buf m = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vaddf(&m, fmt, ap);
    va_end(ap);
    http_respond_json(c, status, json_pack("{s:s%}", "error", m.buf, m.len));
    buf_release(&m);
}

void http_stream_begin(struct http_conn *c, int status, const char *content_type)
{
    c->phase = PHASE_STREAMING;
    write_head(c, status, content_type, -1);
}

void http_stream_write(struct http_conn *c, const void *data, size_t len)
{
    if (!len || c->closing)
        return;
    char head[32];
    int n = snprintf(head, sizeof(head), "%zx\r\n", len);
    struct buf b = BUF_INIT;
    buf_add(&b, head, (size_t)n);
    buf_add(&b, data, len);
    buf_adds(&b, "\r\n");
    conn_write(c, b.buf, b.len, false);
    buf_release(&b);
}

void http_stream_end(struct http_conn *c)
{
    if (c->closing)
        return;
    conn_write(c, "0\r\n\r\n", 5, !c->keep_alive);
    response_done(c);
}

/* ---- parser callbacks ---- */

static int fail(struct http_conn *c, int status, const char *msg)
{
    c->keep_alive = false;
    http_respond_error(c, status, "%s", msg);
    return -1;
}

static int on_message_begin(http_parser *p)
{
    struct http_conn *c = p->data;
    buf_reset(&c->url);
    buf_reset(&c->field);
    buf_reset(&c->value);
    buf_reset(&c->fwd_for);
    buf_reset(&c->fwd_proto);
    c->header_bytes = 0;
    c->last_was_value = false;
    c->in_request = true;
    request_release(&c->req);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (c->url.len + len > HTTP_MAX_URL)
        return fail(c, 414, "request URL is too long");
    buf_add(&c->url, at, len);
    return 0;
}

static void finish_header(struct http_conn *c)
{
    if (!c->field.len)
        return;
    for (size_t i = 0; i < c->field.len; i++)
        c->field.buf[i] = (char)tolower((unsigned char)c->field.buf[i]);
    bool fwd_for = strcmp(c->field.buf, "x-forwarded-for") == 0;
    if (fwd_for || strcmp(c->field.buf, "x-forwarded-proto") == 0) {
        /* repeated ones join as a list, as RFC 9110 allows */
        struct buf *b = fwd_for ? &c->fwd_for : &c->fwd_proto;
        if (b->len)
            buf_adds(b, ", ");
        buf_add(b, c->value.buf, c->value.len);
    } else {
        strv_pushf(&c->req.headers, "%s: %s", c->field.buf, c->value.buf);
    }
    buf_reset(&c->field);
    buf_reset(&c->value);
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    c->header_bytes += len;
    if (c->header_bytes > HTTP_MAX_HEADER_BYTES)
        return fail(c, 431, "request headers are too large");
    if (c->last_was_value)
        finish_header(c);
    c->last_was_value = false;
    buf_add(&c->field, at, len);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    c->header_bytes += len;
    if (c->header_bytes > HTTP_MAX_HEADER_BYTES)
        return fail(c, 431, "request headers are too large");
    c->last_was_value = true;
    buf_add(&c->value, at, len);
    return 0;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = (char)tolower((unsigned char)ch);
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* Percent-decodes a path; NULL when it is malformed or decodes to a NUL. */
static char *decode_path(const char *s, size_t n)
{
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 1 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                buf_release(&b);
                return NULL;
            }
            buf_addch(&b, (char)(hi * 16 + lo));
            i += 2;
        } else {
            buf_addch(&b, s[i]);
        }
    }
    return buf_detach(&b, NULL);
}

static int on_headers_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    if (c->last_was_value)
        finish_header(c);
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(c->url.buf, c->url.len, 0, &u) != 0 ||
        !(u.field_set & (1 << UF_PATH)))
        return fail(c, 400, "malformed request URL");
    c->req.path = decode_path(c->url.buf + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
    if (!c->req.path)
        return fail(c, 400, "malformed request URL");
    c->req.query =
        (u.field_set & (1 << UF_QUERY))
            ? xstrndup(c->url.buf + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len)
            : xstrdup("");
    c->req.method = http_method_str(p->method);
    c->req.http11 = p->http_major > 1 || (p->http_major == 1 && p->http_minor >= 1);
    c->req.upgrade = p->upgrade;
    c->req.raw_target = xstrndup(c->url.buf, c->url.len);
    c->keep_alive = http_should_keep_alive(p);
    c->req.chunked = (p->flags & F_CHUNKED) != 0;
    c->req.body_size =
        !c->req.chunked && p->content_length != ULLONG_MAX ? (long long)p->content_length : -1;
    struct http_server *s = c->server;
    if (!p->upgrade && s->want_stream && s->want_stream(&c->req, s->want_stream_data)) {
        /* dispatched by conn_feed once the parser returns */
        c->req.body_streamed = true;
        c->head_ready = true;
        http_parser_pause(p, 1);
        return 0;
    }
    if (p->content_length != ULLONG_MAX && p->content_length > HTTP_MAX_BODY)
        return fail(c, 413, "request body is larger than 1 MiB");
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (c->body_reading) {
        if (c->body_cb)
            c->body_cb(c, at, len, c->body_data);
        return 0;
    }
    if (c->req.body.len + len > HTTP_MAX_BODY)
        return fail(c, 413, "request body is larger than 1 MiB");
    buf_add(&c->req.body, at, len);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    http_parser_pause(p, 1);
    if (c->body_reading) {
        c->body_reading = false;
        c->body_done = true;
        if (c->body_cb)
            c->body_cb(c, NULL, 0, c->body_data);
        return 0;
    }
    c->req_ready = true;
    return 0;
}

/* The last item of a comma-separated list (the one the nearest proxy
 * added), without blanks; *ret_len 0 when there is none. */
static const char *last_item(const struct buf *list, size_t *ret_len)
{
    const char *p = strrchr(list->buf, ',');
    p = p ? p + 1 : list->buf;
    p += strspn(p, " \t");
    size_t n = strcspn(p, " \t");
    *ret_len = n;
    return p;
}

/* Who sent the request, and whether it came over TLS: the socket's peer
 * and this server's TLS, or what the trusted proxy says of its client. */
static void request_origin(struct http_conn *c)
{
    memcpy(c->req.peer, c->peer, sizeof(c->peer));
    c->req.secure = c->tls != NULL;
    const char *trusted = c->server->trusted_proxy;
    if (!trusted[0] || strcmp(c->peer, trusted) != 0)
        return; /* anyone else's X-Forwarded-* were dropped unread */
    size_t n;
    const char *proto = last_item(&c->fwd_proto, &n);
    if (n)
        c->req.secure = n == 5 && strncasecmp(proto, "https", 5) == 0;
    const char *addr = last_item(&c->fwd_for, &n);
    char ip[sizeof(c->req.peer)];
    unsigned char bin[16];
    if (n && n < sizeof(ip)) {
        memcpy(ip, addr, n);
        ip[n] = 0;
        if (uv_inet_pton(AF_INET, ip, bin) == 0 || uv_inet_pton(AF_INET6, ip, bin) == 0)
            memcpy(c->req.peer, ip, sizeof(ip));
    }
}

/* Feeds bytes to the parser, dispatching each complete request. */
static void conn_feed(struct http_conn *c, const char *data, size_t len)
{
    while (len && !c->closing && !c->finished) {
        if (c->phase == PHASE_RAW) {
            c->raw_cb(c, data, len, c->raw_data);
            return;
        }
        if (c->phase != PHASE_READING && !c->body_reading) {
            if (c->pending.len + len > HTTP_MAX_PENDING) {
                http_conn_close(c);
                return;
            }
            buf_add(&c->pending, data, len);
            return;
        }
        size_t n = http_parser_execute(&c->parser, &settings, data, len);
        enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
        if (err != HPE_OK && err != HPE_PAUSED) {
            if (c->phase == PHASE_READING && !c->closing && err != HPE_CB_url &&
                err != HPE_CB_header_field && err != HPE_CB_header_value &&
                err != HPE_CB_headers_complete && err != HPE_CB_body) {
                c->keep_alive = false;
                http_respond_error(c, 400, "malformed request: %s", http_errno_description(err));
            }
            return;
        }
        data += n;
        len -= n;
        if (c->head_ready) {
            c->head_ready = false;
            c->phase = PHASE_HANDLING;
            request_origin(c);
            c->server->handler(c, &c->req, c->server->data);
            continue;
        }
        if (c->req_ready) {
            http_parser_pause(&c->parser, 0);
            c->req_ready = false;
            c->phase = PHASE_HANDLING;
            if (c->req.upgrade) {
                /* what follows belongs to the new protocol: keep it for
                 * whoever takes the connection over */
                buf_add(&c->pending, data, len);
                len = 0;
                c->keep_alive = false;
            }
            request_origin(c);
            c->server->handler(c, &c->req, c->server->data);
            /* the handler may have answered (phase READING again), started a
             * stream, or closed the connection; the loop handles each */
        }
    }
}

void http_conn_takeover(struct http_conn *c, http_raw_cb on_data, void *data)
{
    c->phase = PHASE_RAW;
    c->raw_cb = on_data;
    c->raw_data = data;
    if (c->pending.len) {
        struct buf p = c->pending;
        buf_init(&c->pending);
        on_data(c, p.buf, p.len, data);
        buf_release(&p);
    }
}

void http_conn_read_body(struct http_conn *c, http_raw_cb body_cb, void *data)
{
    if (c->body_reading) {
        /* a new reader (a relay that took another's place) */
        c->body_cb = body_cb;
        c->body_data = data;
        return;
    }
    if (c->closing || !c->req.body_streamed || c->body_done)
        return;
    c->body_cb = body_cb;
    c->body_data = data;
    c->body_reading = true;
    http_parser_pause(&c->parser, 0);
    if (c->pending.len) {
        struct buf p = c->pending;
        buf_init(&c->pending);
        conn_feed(c, p.buf, p.len);
        buf_release(&p);
    }
}

void http_conn_raw_end(struct http_conn *c, bool reuse)
{
    if (c->closing)
        return;
    settle_keep_alive(c);
    if (!reuse)
        c->keep_alive = false;
    if (!c->keep_alive)
        http_conn_close_after_write(c);
    /* a relay may have paused the client for backpressure */
    http_conn_resume(c);
    response_done(c);
}

void http_conn_attach(struct http_conn *c, void *data, http_close_cb free_cb)
{
    c->attached = data;
    c->attached_free = free_cb;
}

void *http_conn_attached(struct http_conn *c)
{
    return c->attached;
}

void http_conn_write_raw(struct http_conn *c, const void *bytes, size_t len)
{
    if (len)
        conn_write(c, bytes, len, false);
}

void http_conn_close_after_write(struct http_conn *c)
{
    conn_write(c, "", 0, true);
}

void http_conn_pause(struct http_conn *c)
{
    if (!c->paused && !c->closing) {
        c->paused = true;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
}

void http_conn_resume(struct http_conn *c)
{
    if (c->paused && !c->closing) {
        c->paused = false;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    b->base = xmalloc(65536);
    b->len = 65536;
}

/* Decrypts what the socket brought and feeds the plaintext to the parser. A
 * client that spoke plain HTTP is told so in plain HTTP; any other failure
 * gets OpenSSL's alert. Both then close, and the server serves on. */
static void tls_input(struct http_conn *c, const char *bytes, size_t len)
{
    tls_conn_feed(c->tls, bytes, len);
    _cleanup_free_ char *plain = xmalloc(HTTP_TLS_CHUNK);
    ssize_t n;
    while ((n = tls_conn_read(c->tls, plain, HTTP_TLS_CHUNK)) > 0) {
        conn_feed(c, plain, (size_t)n);
        if (c->closing)
            return;
    }
    if (n == -EPROTO && tls_conn_plain_http(c->tls)) {
        log_debug("plain HTTP from %s on the HTTPS port", c->peer);
        sock_write(c, HTTP_PLAIN_ON_TLS, strlen(HTTP_PLAIN_ON_TLS), true);
        return;
    }
    if (n == -EPROTO)
        log_debug("TLS with %s failed", c->peer);
    else if (n == -EPIPE)
        tls_conn_shutdown(c->tls); /* the peer's close_notify, answered */
    tls_flush(c, n < 0);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct http_conn *c = (struct http_conn *)s;
    if (c->lingering) {
        free(b->base);
        if (n < 0) /* the client has closed (or reset): done */
            http_conn_close(c);
        return;
    }
    if (n < 0) {
        free(b->base);
        http_conn_close(c);
        return;
    }
    if (c->tls)
        tls_input(c, b->base, (size_t)n);
    else
        conn_feed(c, b->base, (size_t)n);
    free(b->base);
}

static void peer_name(struct http_conn *c)
{
    struct sockaddr_storage sa;
    int len = sizeof(sa);
    c->peer[0] = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &len) != 0)
        return;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
    if (sa.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&sa, c->peer, sizeof(c->peer));
    else if (sa.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
        /* an IPv4 client of a dual-stack listener, named as IPv4 */
        uv_inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], c->peer, sizeof(c->peer));
    else if (sa.ss_family == AF_INET6)
        uv_ip6_name(in6, c->peer, sizeof(c->peer));
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct http_server *s = (struct http_server *)listener;
    if (status < 0)
        return;
    struct http_conn *c = xcalloc(1, sizeof(*c));
    c->server = s;
    c->url = (struct buf)BUF_INIT;
    c->field = (struct buf)BUF_INIT;
    c->value = (struct buf)BUF_INIT;
    c->pending = (struct buf)BUF_INIT;
    c->fwd_for = (struct buf)BUF_INIT;
    c->fwd_proto = (struct buf)BUF_INIT;
    c->extra_headers = (struct buf)BUF_INIT;
    c->req = (struct http_request){.headers = STRV_INIT, .body = BUF_INIT};
    uv_tcp_init(s->loop, &c->tcp);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    (void)uv_tcp_nodelay(&c->tcp, 1);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->keep_alive = true;
    c->reading_since = uv_now(s->loop);
    peer_name(c);
    if (s->tls)
        c->tls = tls_conn_new(s->tls);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void sweep_idle(uv_timer_t *t)
{
    struct http_server *s = t->data;
    uint64_t now = uv_now(s->loop);
    for (struct http_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (c->lingering) {
            if (now - c->linger_since >= HTTP_LINGER_MS)
                http_conn_close(c);
            continue;
        }
        if (c->phase != PHASE_READING || c->finished || c->write_pending ||
            now - c->reading_since < s->idle_ms)
            continue;
        if (c->in_request) {
            /* part of a request came: say why, then close */
            c->keep_alive = false;
            http_respond_error(c, 408, "the request did not arrive in time");
        } else {
            http_conn_close(c);
        }
    }
}

void http_server_set_idle_timeout(struct http_server *s, unsigned seconds)
{
    s->idle_ms = (uint64_t)seconds * 1000;
    /* a connection goes at most a quarter of the timeout (or 5 s) late */
    uint64_t every = s->idle_ms / 4 < 100 ? 100 : s->idle_ms / 4 > 5000 ? 5000 : s->idle_ms / 4;
    uv_timer_start(s->sweep, sweep_idle, every, every);
}

int http_server_new(uv_loop_t *loop, const char *addr, int port, http_handler_cb handler,
                    void *data, struct http_server **ret)
{
    settings = (http_parser_settings){
        .on_message_begin = on_message_begin,
        .on_url = on_url,
        .on_header_field = on_header_field,
        .on_header_value = on_header_value,
        .on_headers_complete = on_headers_complete,
        .on_body = on_body,
        .on_message_complete = on_message_complete,
    };
    struct sockaddr_storage sa;
    int r = strchr(addr, ':') ? uv_ip6_addr(addr, port, (struct sockaddr_in6 *)&sa)
                              : uv_ip4_addr(addr, port, (struct sockaddr_in *)&sa);
    if (r < 0)
        return -EINVAL;
    struct http_server *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->handler = handler;
    s->data = data;
    uv_tcp_init(loop, &s->tcp);
    r = uv_tcp_bind(&s->tcp, (struct sockaddr *)&sa, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&s->tcp, 128, on_connection);
    if (r < 0) {
        uv_close((uv_handle_t *)&s->tcp, (uv_close_cb)free);
        return r;
    }
    s->sweep = xmalloc(sizeof(*s->sweep));
    uv_timer_init(loop, s->sweep);
    s->sweep->data = s;
    uv_unref((uv_handle_t *)s->sweep);
    http_server_set_idle_timeout(s, HTTP_IDLE_TIMEOUT_DEFAULT);
    *ret = s;
    return 0;
}

void http_server_use_tls(struct http_server *s, struct tls_ctx *tls)
{
    s->tls = tls;
}

int http_server_trust_proxy(struct http_server *s, const char *addr)
{
    unsigned char bin[16];
    int family = strchr(addr, ':') ? AF_INET6 : AF_INET;
    if (uv_inet_pton(family, addr, bin) != 0)
        return -EINVAL;
    /* the canonical spelling, as peers are named */
    if (uv_inet_ntop(family, bin, s->trusted_proxy, sizeof(s->trusted_proxy)) != 0)
        return -EINVAL;
    return 0;
}

void http_server_stream_bodies(struct http_server *s, http_filter_cb want, void *data)
{
    s->want_stream = want;
    s->want_stream_data = data;
}

void http_server_close(struct http_server *s)
{
    while (s->conns)
        http_conn_close(s->conns);
    uv_close((uv_handle_t *)s->sweep, (uv_close_cb)free);
    uv_close((uv_handle_t *)&s->tcp, (uv_close_cb)free);
}

const char *http_request_header(const struct http_request *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->headers.n; i++) {
        const char *h = req->headers.v[i];
        if (strncmp(h, name, n) == 0 && h[n] == ':')
            return h + n + 2;
    }
    return NULL;
}

char *http_request_query(const struct http_request *req, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = req->query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len >= n && strncmp(p, name, n) == 0 && (len == n || p[n] == '=')) {
            const char *v = len == n ? "" : p + n + 1;
            size_t vl = len == n ? 0 : len - n - 1;
            char *d = decode_path(v, vl);
            if (d)
                for (char *q = d; *q; q++)
                    if (*q == '+')
                        *q = ' ';
            return d;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

void http_conn_add_header(struct http_conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vaddf(&c->extra_headers, fmt, ap);
    va_end(ap);
    buf_adds(&c->extra_headers, "\r\n");
}
