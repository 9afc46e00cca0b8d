/* proxy.c - the relay behind the IDE and forwarded ports.
 *
 * A struct relay is one upstream connection (a uv_pipe), attached to one
 * client http_conn for as long as both live. It carries one exchange at a
 * time: the request head is rebuilt and written, the body follows as the
 * server parses it (http_conn_read_body), and the answer goes through an
 * http_parser in response mode whose callbacks rebuild the head and pass the
 * body on. When the answer ends the client connection is handed back to the
 * server (http_conn_raw_end) and the relay waits, idle, for the next request
 * to the same key; an idle upstream that closes or talks is dropped.
 *
 * Upgrades (WebSockets) leave the parsers: the client connection is taken
 * over and bytes go both ways unchanged, the extra header put after the
 * answer's status line.
 *
 * A request that needs a new upstream waits in a struct start, attached to
 * the client connection, while the route's open callback works (an agent's
 * answer comes later from the loop); a client that leaves meanwhile only
 * marks it, and the socket that arrives after is closed.
 */
#include "proxy/proxy.h"

#include <http_parser.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "util/xalloc.h"

#define PROXY_READ_SIZE 65536
#define PROXY_MAX_HEAD (64 * 1024)

struct relay {
    uv_pipe_t up;
    struct http_conn *owner;  /* the client connection it is attached to, or NULL */
    struct http_conn *client; /* during an exchange, else NULL */
    char *key;
    bool up_closed;
    bool up_reading;
    bool raw; /* upgraded: a byte relay until either side closes */
    char *inject;

    /* the current answer */
    http_parser resp;
    bool head_request; /* the request was HEAD: the answer has no body */
    bool chunk_out;    /* the body is sent to the client chunked */
    bool close_client; /* the body ends only with the connection */
    bool resp_done;
    bool head_sent;
    bool last_was_value;
    struct buf reason;
    struct buf field;
    struct buf value;
    struct buf head;    /* the answer's header lines, filtered */
    struct buf out;     /* bytes for the client from one read */
    bool req_chunked;   /* the request body is re-chunked to the upstream */
    bool client_http11; /* the client understands chunked answers */
    struct buf resend;  /* a bodiless request on a reused upstream, until answered */
    proxy_open_cb open;
    void *open_data;
    proxy_tap_cb tap; /* an upgrade's client bytes */
    void (*tap_free)(void *);
    void *tap_data;
};

/* A request waiting for a new upstream. */
struct start {
    struct http_conn *c; /* NULL once the client has gone */
    char *key;
    char *inject;
    struct buf head; /* for the upstream: the request head, and a buffered body */
    bool upgrade;
    bool read_body; /* streamed by the server: read it as it comes */
    bool bodiless;
    bool req_chunked;
    bool head_request;
    bool http11;
    proxy_open_cb open;
    void *open_data;
    proxy_tap_cb tap;
    void (*tap_free)(void *);
    void *tap_data;
};

static http_parser_settings resp_settings;

static void relay_freed(uv_handle_t *h)
{
    struct relay *r = h->data;
    free(r->key);
    free(r->inject);
    buf_release(&r->reason);
    buf_release(&r->field);
    buf_release(&r->value);
    buf_release(&r->head);
    buf_release(&r->out);
    buf_release(&r->resend);
    if (r->tap_free)
        r->tap_free(r->tap_data);
    free(r);
}

static void relay_detach(struct relay *r)
{
    if (r->owner && http_conn_attached(r->owner) == r)
        http_conn_attach(r->owner, NULL, NULL);
    r->owner = NULL;
}

/* Closes the upstream; the relay is freed once libuv is done with it. */
static void up_close(struct relay *r)
{
    relay_detach(r);
    if (r->up_closed)
        return;
    r->up_closed = true;
    uv_close((uv_handle_t *)&r->up, relay_freed);
}

static void up_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    b->base = xmalloc(PROXY_READ_SIZE);
    b->len = PROXY_READ_SIZE;
}

static void up_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

static void up_start_reading(struct relay *r)
{
    if (!r->up_reading && !r->up_closed) {
        r->up_reading = true;
        uv_read_start((uv_stream_t *)&r->up, up_alloc, up_read);
    }
}

static void up_written(uv_write_t *w, int status)
{
    struct relay *r = w->handle->data;
    free(w->data);
    free(w);
    if (status < 0)
        return;
    /* the client was paused while the upstream's queue was high */
    if (r->client && !r->up_closed &&
        uv_stream_get_write_queue_size((uv_stream_t *)&r->up) < PROXY_HIGH_WATER / 4)
        http_conn_resume(r->client);
}

static void up_write(struct relay *r, const void *data, size_t len)
{
    if (r->up_closed || !len)
        return;
    /* most writes go out at once (libuv refuses while others queue) */
    uv_buf_t now = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&r->up, &now, 1);
    if (n > 0) {
        data = (const char *)data + n;
        len -= (size_t)n;
    }
    if (!len)
        return;
    uv_write_t *w = xmalloc(sizeof(*w));
    w->data = xmalloc(len);
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(w, (uv_stream_t *)&r->up, &b, 1, up_written) < 0) {
        free(w->data);
        free(w);
    }
}

static void up_throttle_client(struct relay *r, struct http_conn *c)
{
    if (uv_stream_get_write_queue_size((uv_stream_t *)&r->up) > PROXY_HIGH_WATER)
        http_conn_pause(c);
}

/* ---- the exchange: ending it ---- */

/* The answer is complete: hand the client back to the server, keep the
 * upstream for the next request when it may be reused. */
static void exchange_done(struct relay *r, bool reusable)
{
    struct http_conn *c = r->client;
    r->client = NULL;
    buf_release(&r->out);
    buf_release(&r->head);
    buf_release(&r->resend);
    bool close_client = r->close_client;
    if (!reusable || !r->key)
        up_close(r);
    /* may start the next request on c at once, reusing r: the last thing */
    http_conn_raw_end(c, !close_client);
}

/* The exchange cannot finish: answer 502 if nothing was sent, else cut. */
static void exchange_fail(struct relay *r, const char *msg)
{
    struct http_conn *c = r->client;
    r->client = NULL;
    up_close(r);
    if (!c)
        return;
    if (!r->head_sent) {
        http_conn_resume(c);
        http_respond_error(c, 502, "%s", msg);
    } else {
        http_conn_close(c);
    }
}

/* ---- the answer's parser ---- */

static bool header_is(const char *h, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(h, name, n) == 0;
}

/* Whether a Set-Cookie value sets one of Berth's cookies (berth_*, and
 * __Host-berth_* as they are named over HTTPS). */
static bool sets_berth_cookie(const char *value)
{
    while (*value == ' ')
        value++;
    if (strncmp(value, "__Host-", 7) == 0)
        value += 7;
    return strncmp(value, "berth_", 6) == 0;
}

static void resp_finish_header(struct relay *r)
{
    if (!r->field.len)
        return;
    const char *f = r->field.buf;
    size_t n = r->field.len;
    bool drop = header_is(f, n, "connection") || header_is(f, n, "keep-alive") ||
                header_is(f, n, "transfer-encoding") || header_is(f, n, "content-length") ||
                header_is(f, n, "proxy-connection") || header_is(f, n, "trailer") ||
                header_is(f, n, "strict-transport-security") ||
                (header_is(f, n, "set-cookie") && sets_berth_cookie(r->value.buf));
    if (!drop)
        buf_addf(&r->head, "%s: %s\r\n", f, r->value.buf);
    buf_reset(&r->field);
    buf_reset(&r->value);
}

static int resp_message_begin(http_parser *p)
{
    struct relay *r = p->data;
    buf_reset(&r->reason);
    buf_reset(&r->field);
    buf_reset(&r->value);
    buf_reset(&r->head);
    r->last_was_value = false;
    return 0;
}

static int resp_status(http_parser *p, const char *at, size_t len)
{
    struct relay *r = p->data;
    buf_add(&r->reason, at, len);
    return r->reason.len > 1024 ? -1 : 0;
}

static int resp_field(http_parser *p, const char *at, size_t len)
{
    struct relay *r = p->data;
    if (r->last_was_value)
        resp_finish_header(r);
    r->last_was_value = false;
    buf_add(&r->field, at, len);
    return r->head.len + r->field.len > PROXY_MAX_HEAD ? -1 : 0;
}

static int resp_value(http_parser *p, const char *at, size_t len)
{
    struct relay *r = p->data;
    r->last_was_value = true;
    buf_add(&r->value, at, len);
    return r->head.len + r->value.len > PROXY_MAX_HEAD ? -1 : 0;
}

static int resp_headers_complete(http_parser *p)
{
    struct relay *r = p->data;
    if (r->last_was_value)
        resp_finish_header(r);
    struct buf *o = &r->out;
    buf_addf(o, "HTTP/1.1 %u %s\r\n", p->status_code, r->reason.len ? r->reason.buf : "");
    buf_add(o, r->head.buf, r->head.len);
    buf_reset(&r->head);
    if (p->status_code / 100 == 1) {
        /* 100 Continue and friends: the real answer follows */
        buf_adds(o, "\r\n");
        return 0;
    }
    bool no_body = r->head_request || p->status_code == 204 || p->status_code == 304;
    r->chunk_out = false;
    if (r->head_request && p->content_length != ULLONG_MAX) {
        buf_addf(o, "Content-Length: %llu\r\n", (unsigned long long)p->content_length);
    } else if (no_body) {
        /* nothing to frame */
    } else if (p->flags & F_CHUNKED) {
        r->chunk_out = true;
    } else if (p->content_length != ULLONG_MAX) {
        buf_addf(o, "Content-Length: %llu\r\n", (unsigned long long)p->content_length);
    } else if (r->client_http11) {
        /* the upstream ends the body by closing: re-chunk it so the client's
         * connection can stay */
        r->chunk_out = true;
    } else {
        r->close_client = true; /* an HTTP/1.0 client gets the close instead */
    }
    if (r->chunk_out)
        buf_adds(o, "Transfer-Encoding: chunked\r\n");
    if (r->inject)
        buf_addf(o, "%s\r\n", r->inject);
    if (!http_conn_keep_alive(r->client) || r->close_client)
        buf_adds(o, "Connection: close\r\n");
    buf_adds(o, "\r\n");
    r->head_sent = true;
    return r->head_request ? 1 : 0;
}

static void flush_out(struct relay *r);

static int resp_body(http_parser *p, const char *at, size_t len)
{
    struct relay *r = p->data;
    if (!r->chunk_out && r->out.len) {
        /* with the head read just before it: one write, so the client wakes
         * once for a small answer (at most one read buffer is copied) */
        buf_add(&r->out, at, len);
        return 0;
    }
    if (!r->chunk_out) {
        /* straight from the read buffer */
        if (r->client)
            http_conn_write_raw(r->client, at, len);
        return 0;
    }
    buf_addf(&r->out, "%zx\r\n", len);
    buf_add(&r->out, at, len);
    buf_adds(&r->out, "\r\n");
    return 0;
}

static int resp_message_complete(http_parser *p)
{
    struct relay *r = p->data;
    if (p->status_code / 100 == 1 && p->status_code != 101)
        return 0; /* an interim answer: parse on */
    if (r->chunk_out)
        buf_adds(&r->out, "0\r\n\r\n");
    r->resp_done = true;
    http_parser_pause(p, 1);
    return 0;
}

static void flush_out(struct relay *r)
{
    if (r->out.len && r->client)
        http_conn_write_raw(r->client, r->out.buf, r->out.len);
    buf_reset(&r->out);
}

static void open_upstream(struct start *st);

/* A reused upstream closed before answering a request without a body: the
 * app timed the idle connection out as the request went. Sends the request
 * again on a new connection, which takes r's place. */
static void exchange_retry(struct relay *r)
{
    struct http_conn *c = r->client;
    struct start *st = xmalloc(sizeof(*st));
    /* the server may still owe r the request's end (a bodiless request's
     * NULL piece): the new relay takes that over (read_body) */
    *st = (struct start){.c = c,
                         .key = xstrdup(r->key),
                         .inject = TAKE_PTR(r->inject),
                         .head = r->resend,
                         .read_body = true,
                         .head_request = r->head_request,
                         .http11 = r->client_http11,
                         .open = r->open,
                         .open_data = r->open_data};
    r->resend = (struct buf)BUF_INIT;
    r->client = NULL;
    http_conn_on_drain(c, NULL, NULL);
    up_close(r);
    open_upstream(st);
}

/* Bytes of the answer (or, with n == 0, its end by close). */
static void answer_bytes(struct relay *r, const char *data, size_t n)
{
    if (n == 0 && r->resend.len) {
        exchange_retry(r);
        return;
    }
    if (n > 0)
        buf_release(&r->resend); /* answered: no second try */
    size_t used = http_parser_execute(&r->resp, &resp_settings, data, n);
    enum http_errno err = HTTP_PARSER_ERRNO(&r->resp);
    flush_out(r);
    if (err != HPE_OK && err != HPE_PAUSED) {
        exchange_fail(r, "the port sent a malformed answer");
        return;
    }
    if (r->resp_done) {
        /* bytes after the answer: the upstream is not a plain HTTP/1.1 server */
        bool reusable = used == n && n > 0 && http_should_keep_alive(&r->resp);
        exchange_done(r, reusable);
        return;
    }
    if (n == 0)
        exchange_fail(r, "the port closed the connection before answering");
    else if (r->client && http_conn_pending(r->client) > PROXY_HIGH_WATER) {
        uv_read_stop((uv_stream_t *)&r->up);
        r->up_reading = false;
    }
}

/* ---- upgrades: the byte relay ---- */

/* Passes upstream bytes to the client, adding r->inject after the first line. */
static void raw_to_client(struct relay *r, const char *data, size_t len)
{
    if (!r->inject) {
        http_conn_write_raw(r->client, data, len);
        return;
    }
    buf_add(&r->head, data, len);
    char *eol = memchr(r->head.buf, '\n', r->head.len);
    if (!eol && r->head.len < 8192)
        return;
    size_t first = eol ? (size_t)(eol - r->head.buf) + 1 : r->head.len;
    http_conn_write_raw(r->client, r->head.buf, first);
    if (eol) {
        _cleanup_free_ char *h = xasprintf("%s\r\n", r->inject);
        http_conn_write_raw(r->client, h, strlen(h));
    }
    http_conn_write_raw(r->client, r->head.buf + first, r->head.len - first);
    buf_release(&r->head);
    free(r->inject);
    r->inject = NULL;
}

/* What the client still sends once the upstream of an upgrade has gone. */
static void discard_bytes(struct http_conn *c, const char *bytes, size_t len, void *data)
{
    (void)c;
    (void)bytes;
    (void)len;
    (void)data;
}

static void raw_read(struct relay *r, ssize_t n, const char *data)
{
    if (n > 0 && r->client) {
        raw_to_client(r, data, (size_t)n);
        if (http_conn_pending(r->client) > PROXY_HIGH_WATER) {
            uv_read_stop((uv_stream_t *)&r->up);
            r->up_reading = false;
        }
    }
    if (n < 0) {
        struct http_conn *c = r->client;
        r->client = NULL;
        up_close(r);
        if (c) {
            /* r is freed once closed: nothing of c may call it any more */
            http_conn_on_drain(c, NULL, NULL);
            http_conn_takeover(c, discard_bytes, NULL);
            http_conn_close_after_write(c);
        }
    }
}

static void up_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct relay *r = s->data;
    if (r->raw)
        raw_read(r, n, b->base);
    else if (!r->client && n != 0)
        up_close(r); /* an idle upstream closed or spoke out of turn */
    else if (n > 0)
        answer_bytes(r, b->base, (size_t)n);
    else if (n < 0)
        answer_bytes(r, NULL, 0);
    free(b->base);
}

/* ---- the client side ---- */

static void client_raw_data(struct http_conn *c, const char *bytes, size_t len, void *data)
{
    struct relay *r = data;
    if (r->tap)
        r->tap(r->tap_data, bytes, len);
    up_write(r, bytes, len);
    up_throttle_client(r, c);
}

static void client_body(struct http_conn *c, const char *bytes, size_t len, void *data)
{
    struct relay *r = data;
    if (!bytes) {
        if (r->req_chunked)
            up_write(r, "0\r\n\r\n", 5);
        return;
    }
    if (r->req_chunked) {
        char size[24];
        int sn = snprintf(size, sizeof(size), "%zx\r\n", len);
        up_write(r, size, (size_t)sn);
    }
    up_write(r, bytes, len);
    if (r->req_chunked)
        up_write(r, "\r\n", 2);
    up_throttle_client(r, c);
}

/* The client connection closed (during an exchange or while r was idle). */
static void client_gone(struct http_conn *c, void *data)
{
    (void)c;
    struct relay *r = data;
    r->owner = NULL;
    r->client = NULL;
    up_close(r);
}

static void client_drained(struct http_conn *c, void *data)
{
    (void)c;
    struct relay *r = data;
    up_start_reading(r);
}

char *proxy_strip_cookies(const char *header, const char *const *names)
{
    struct buf out = BUF_INIT;
    for (const char *p = header; p && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t name_len = eq ? (size_t)(eq - p) : len;
        bool drop = false;
        for (size_t i = 0; names[i]; i++) {
            size_t n = strlen(names[i]);
            bool prefix = n && names[i][n - 1] == '*';
            if (prefix ? name_len >= n - 1 && strncmp(p, names[i], n - 1) == 0
                       : name_len == n && strncmp(p, names[i], n) == 0)
                drop = true;
        }
        if (!drop && len) {
            if (out.len)
                buf_adds(&out, "; ");
            buf_add(&out, p, len);
        }
        p = end;
    }
    if (!out.len) {
        buf_release(&out);
        return NULL;
    }
    return buf_detach(&out, NULL);
}

/* The request head for the upstream; a tapped upgrade is offered no
 * extensions (permessage-deflate would hide what the tap reads). */
static void build_request_head(const struct http_request *req, const char *target, bool tapped,
                               struct buf *head)
{
    static const char *const berth_cookies[] = {"berth_*", "__Host-berth_*", NULL};
    buf_addf(head, "%s %s HTTP/1.1\r\n", req->method, target);
    for (size_t i = 0; i < req->headers.n; i++) {
        const char *h = req->headers.v[i];
        if (strncmp(h, "authorization:", 14) == 0 || strncmp(h, "connection:", 11) == 0 ||
            strncmp(h, "keep-alive:", 11) == 0 || strncmp(h, "proxy-", 6) == 0 ||
            strncmp(h, "transfer-encoding:", 18) == 0 || strncmp(h, "content-length:", 15) == 0 ||
            strncmp(h, "te:", 3) == 0 || strncmp(h, "trailer:", 8) == 0)
            continue;
        if (strncmp(h, "upgrade:", 8) == 0 && !req->upgrade)
            continue;
        if (tapped && strncmp(h, "sec-websocket-extensions:", 25) == 0)
            continue;
        if (strncmp(h, "cookie:", 7) == 0) {
            _cleanup_free_ char *rest = proxy_strip_cookies(h + 8, berth_cookies);
            if (rest)
                buf_addf(head, "Cookie: %s\r\n", rest);
            continue;
        }
        buf_adds(head, h);
        buf_adds(head, "\r\n");
    }
    if (req->upgrade)
        buf_adds(head, "Connection: Upgrade\r\n");
    if (req->body_streamed && req->chunked) {
        buf_adds(head, "Transfer-Encoding: chunked\r\n");
    } else if (req->body_streamed && req->body_size >= 0) {
        buf_addf(head, "Content-Length: %lld\r\n", req->body_size);
    } else if (!req->body_streamed && (req->body.len || strcmp(req->method, "POST") == 0 ||
                                       strcmp(req->method, "PUT") == 0)) {
        buf_addf(head, "Content-Length: %zu\r\n", req->body.len);
    }
    buf_addf(head, "X-Forwarded-For: %s\r\nX-Forwarded-Proto: %s\r\n\r\n", req->peer,
             req->secure ? "https" : "http");
}

static struct relay *relay_new(struct http_conn *c, int fd, const char *key)
{
    struct relay *r = xcalloc(1, sizeof(*r));
    r->reason = r->field = r->value = r->head = r->out = r->resend = (struct buf)BUF_INIT;
    r->key = key ? xstrdup(key) : NULL;
    uv_pipe_init(uv_default_loop(), &r->up, 0);
    r->up.data = r;
    if (uv_pipe_open(&r->up, fd) < 0) {
        close(fd);
        r->up_closed = true;
        uv_close((uv_handle_t *)&r->up, relay_freed);
        return NULL;
    }
    r->owner = c;
    http_conn_attach(c, r, client_gone);
    return r;
}

static void settings_init(void)
{
    resp_settings = (http_parser_settings){
        .on_message_begin = resp_message_begin,
        .on_status = resp_status,
        .on_header_field = resp_field,
        .on_header_value = resp_value,
        .on_headers_complete = resp_headers_complete,
        .on_body = resp_body,
        .on_message_complete = resp_message_complete,
    };
}

static void start_release(struct start *st)
{
    free(st->key);
    free(st->inject);
    buf_release(&st->head);
    if (st->tap_free)
        st->tap_free(st->tap_data);
    st->tap_free = NULL;
}

static void start_free(struct start *st)
{
    start_release(st);
    free(st);
}

/* Sends st's request on r and relays its answer; releases what st holds.
 * With reused, a bodiless request is kept to be sent again should r turn out
 * closed. */
static void exchange_begin(struct relay *r, struct start *st, bool reused)
{
    struct http_conn *c = st->c;
    r->client = c;
    free(r->inject);
    r->inject = TAKE_PTR(st->inject);
    r->open = st->open;
    r->open_data = st->open_data;
    r->req_chunked = st->req_chunked;
    up_write(r, st->head.buf, st->head.len);
    buf_release(&r->resend);
    if (reused && st->bodiless && !st->upgrade) {
        r->resend = st->head;
        st->head = (struct buf)BUF_INIT;
    }
    http_conn_on_drain(c, client_drained, r);
    if (st->upgrade) {
        r->raw = true;
        r->tap = st->tap;
        r->tap_free = st->tap_free;
        r->tap_data = st->tap_data;
        st->tap_free = NULL;
        http_conn_takeover(c, client_raw_data, r);
    } else {
        http_parser_init(&r->resp, HTTP_RESPONSE);
        r->resp.data = r;
        r->head_request = st->head_request;
        r->client_http11 = st->http11;
        r->resp_done = r->head_sent = r->close_client = false;
        if (st->read_body)
            http_conn_read_body(c, client_body, r);
    }
    start_release(st);
    up_start_reading(r);
}

static void start_client_gone(struct http_conn *c, void *data)
{
    (void)c;
    struct start *st = data;
    st->c = NULL;
}

static void upstream_opened(void *ctx, int fd, const char *msg)
{
    struct start *st = ctx;
    struct http_conn *c = st->c;
    if (!c) {
        if (fd >= 0)
            close(fd);
        start_free(st);
        return;
    }
    http_conn_attach(c, NULL, NULL);
    /* reading goes on from the next loop turn, after exchange_begin has
     * asked for the body */
    http_conn_resume(c);
    struct relay *r = fd >= 0 ? relay_new(c, fd, st->key) : NULL;
    if (!r) {
        start_free(st);
        http_respond_error(c, 502, "%s", fd < 0 && msg ? msg : "cannot relay to the upstream");
        return;
    }
    exchange_begin(r, st, false);
    free(st);
}

static void open_upstream(struct start *st)
{
    /* a body that comes meanwhile waits in the socket, not in the server's
     * bounded pending buffer */
    http_conn_pause(st->c);
    http_conn_attach(st->c, st, start_client_gone);
    /* may call upstream_opened before it returns: st is not touched after */
    st->open(st->open_data, st->key, upstream_opened, st);
}

/* The header lines added to every answer: the route's, and over HTTPS
 * berthd's HSTS (an app's own is dropped: the policy is berthd's to set). */
static char *answer_headers(const char *header, bool secure)
{
    if (!secure)
        return header ? xstrdup(header) : NULL;
    return header ? xasprintf("%s\r\n" HTTP_HSTS_HEADER, header) : xstrdup(HTTP_HSTS_HEADER);
}

void proxy_request(struct http_conn *c, const struct http_request *req,
                   const struct proxy_route *route)
{
    if (!resp_settings.on_message_complete)
        settings_init();
    /* the idle upstream attached to c when it fits the key */
    struct relay *r = http_conn_attached(c);
    bool reused = r && route->key && r->key && strcmp(r->key, route->key) == 0 && !r->up_closed &&
                  !r->raw && !r->client;
    if (r && !reused)
        up_close(r);
    /* on the stack: a request on a kept upstream (the common case) needs
     * nothing that outlives this call */
    struct start st = {
        .c = c,
        .inject = answer_headers(route->header, req->secure),
        .head = BUF_INIT,
        .upgrade = req->upgrade,
        .read_body = req->body_streamed,
        .bodiless = !req->body_streamed || (!req->chunked && req->body_size <= 0),
        .req_chunked = req->body_streamed && req->chunked,
        .head_request = strcmp(req->method, "HEAD") == 0,
        .http11 = req->http11,
        .open = route->open,
        .open_data = route->data,
        .tap = req->upgrade ? route->tap : NULL,
        .tap_free = route->tap_free,
        .tap_data = route->tap_data,
    };
    build_request_head(req, route->target, st.tap != NULL, &st.head);
    if (!req->body_streamed)
        buf_add(&st.head, req->body.buf, req->body.len);
    if (reused) {
        exchange_begin(r, &st, true);
        return;
    }
    struct start *opening = xmalloc(sizeof(*opening));
    *opening = st;
    opening->key = route->key ? xstrdup(route->key) : NULL;
    open_upstream(opening);
}

/* The open callback of proxy_forward: the fd it was given. */
static void given_fd(void *data, const char *key, proxy_opened_cb done, void *ctx)
{
    (void)key;
    done(ctx, *(int *)data, NULL);
}

void proxy_forward(struct http_conn *c, const struct http_request *req, int upstream_fd,
                   const char *target)
{
    proxy_forward_with_header(c, req, upstream_fd, target, NULL);
}

void proxy_forward_tapped(struct http_conn *c, const struct http_request *req, int upstream_fd,
                          const char *target, proxy_tap_cb tap, void (*tap_free)(void *),
                          void *tap_data)
{
    struct proxy_route route = {.target = target,
                                .open = given_fd,
                                .data = &upstream_fd,
                                .tap = tap,
                                .tap_free = tap_free,
                                .tap_data = tap_data};
    proxy_request(c, req, &route);
}

void proxy_forward_with_header(struct http_conn *c, const struct http_request *req, int upstream_fd,
                               const char *target, const char *header)
{
    struct proxy_route route = {
        .target = target, .header = header, .open = given_fd, .data = &upstream_fd};
    proxy_request(c, req, &route);
}
