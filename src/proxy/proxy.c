/* proxy.c - the byte relay behind the IDE and forwarded ports.
 *
 * Two streams, the client's http_conn and a uv_pipe (or uv_tcp) to the
 * upstream, each pausing the other when its write queue grows past the high
 * water mark. The relay ends when the upstream closes (its answer is complete)
 * or the client goes away.
 */
#include "proxy/proxy.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "util/xalloc.h"

struct relay {
    uv_pipe_t up;
    struct http_conn *client; /* NULL once it closed */
    bool up_closed;
    bool up_reading;
    char *inject;    /* a header to add after the status line, until done */
    struct buf head; /* the answer's start, while looking for the status line */
};

static void relay_freed(uv_handle_t *h)
{
    struct relay *r = h->data;
    free(r->inject);
    buf_release(&r->head);
    free(r);
}

/* Passes upstream bytes to the client, adding r->inject after the first line. */
static void to_client(struct relay *r, const char *data, size_t len)
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

static void up_close(struct relay *r)
{
    if (r->up_closed)
        return;
    r->up_closed = true;
    uv_close((uv_handle_t *)&r->up, relay_freed);
}

static void up_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    b->base = xmalloc(65536);
    b->len = 65536;
}

static void up_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct relay *r = s->data;
    if (n > 0 && r->client) {
        to_client(r, b->base, (size_t)n);
        if (http_conn_pending(r->client) > PROXY_HIGH_WATER) {
            uv_read_stop(s);
            r->up_reading = false;
        }
    }
    free(b->base);
    if (n < 0) {
        if (r->client) {
            struct http_conn *c = r->client;
            r->client = NULL;
            http_conn_on_close(c, NULL, NULL);
            http_conn_close_after_write(c);
        }
        up_close(r);
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
    uv_write_t *w = xmalloc(sizeof(*w));
    w->data = xmalloc(len);
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(w, (uv_stream_t *)&r->up, &b, 1, up_written) < 0) {
        free(w->data);
        free(w);
    }
}

static void client_data(struct http_conn *c, const char *bytes, size_t len, void *data)
{
    struct relay *r = data;
    up_write(r, bytes, len);
    if (uv_stream_get_write_queue_size((uv_stream_t *)&r->up) > PROXY_HIGH_WATER)
        http_conn_pause(c);
}

static void client_closed(struct http_conn *c, void *data)
{
    (void)c;
    struct relay *r = data;
    r->client = NULL;
    up_close(r);
}

static void client_drained(struct http_conn *c, void *data)
{
    (void)c;
    struct relay *r = data;
    if (!r->up_reading && !r->up_closed) {
        r->up_reading = true;
        uv_read_start((uv_stream_t *)&r->up, up_alloc, up_read);
    }
}

char *proxy_strip_cookies(const char *header, const char *const *names)
{
    struct buf out = BUF_INIT;
    for (const char *p = header; p && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        bool drop = false;
        for (size_t i = 0; names[i]; i++) {
            size_t n = strlen(names[i]);
            if (len > n && strncmp(p, names[i], n) == 0 && p[n] == '=')
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

void proxy_forward(struct http_conn *c, const struct http_request *req, int upstream_fd,
                   const char *target)
{
    proxy_forward_with_header(c, req, upstream_fd, target, NULL);
}

void proxy_forward_with_header(struct http_conn *c, const struct http_request *req, int upstream_fd,
                               const char *target, const char *header)
{
    static const char *const berth_cookies[] = {"berth_session", "berth_csrf", NULL};
    struct relay *r = xcalloc(1, sizeof(*r));
    r->head = (struct buf)BUF_INIT;
    r->inject = header ? xstrdup(header) : NULL;
    uv_pipe_init(uv_default_loop(), &r->up, 0);
    r->up.data = r;
    if (uv_pipe_open(&r->up, upstream_fd) < 0) {
        close(upstream_fd);
        r->up_closed = true;
        uv_close((uv_handle_t *)&r->up, relay_freed);
        http_respond_error(c, 502, "cannot reach the upstream");
        return;
    }
    r->client = c;

    struct buf head = BUF_INIT;
    buf_addf(&head, "%s %s HTTP/1.1\r\n", req->method, target);
    for (size_t i = 0; i < req->headers.n; i++) {
        const char *h = req->headers.v[i];
        if (strncmp(h, "authorization:", 14) == 0 || strncmp(h, "connection:", 11) == 0 ||
            strncmp(h, "keep-alive:", 11) == 0 || strncmp(h, "proxy-", 6) == 0 ||
            strncmp(h, "transfer-encoding:", 18) == 0 || strncmp(h, "content-length:", 15) == 0)
            continue;
        if (strncmp(h, "upgrade:", 8) == 0 && !req->upgrade)
            continue;
        if (strncmp(h, "cookie:", 7) == 0) {
            _cleanup_free_ char *rest = proxy_strip_cookies(h + 8, berth_cookies);
            if (rest)
                buf_addf(&head, "Cookie: %s\r\n", rest);
            continue;
        }
        buf_adds(&head, h);
        buf_adds(&head, "\r\n");
    }
    buf_adds(&head, req->upgrade ? "Connection: Upgrade\r\n" : "Connection: close\r\n");
    if (req->body.len || (strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0))
        buf_addf(&head, "Content-Length: %zu\r\n", req->body.len);
    buf_addf(&head, "X-Forwarded-For: %s\r\n\r\n", req->peer);
    buf_add(&head, req->body.buf, req->body.len);
    up_write(r, head.buf, head.len);
    buf_release(&head);

    http_conn_on_close(c, client_closed, r);
    http_conn_on_drain(c, client_drained, r);
    http_conn_takeover(c, client_data, r);
    r->up_reading = true;
    uv_read_start((uv_stream_t *)&r->up, up_alloc, up_read);
}
