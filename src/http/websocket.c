/* websocket.c - the WebSocket handshake and framing (wslay's event API).
 *
 * wslay pulls input through a recv callback and pushes output through a send
 * callback. Input arrives from the HTTP connection in chunks, so it is kept in
 * `in` and handed out by the recv callback until it runs dry (WOULDBLOCK);
 * output goes straight to the connection's write queue.
 */
#include "http/websocket.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#include "util/xalloc.h"

#define WSOCK_MAX_MESSAGE (1024 * 1024)
#define WSOCK_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct wsock {
    struct http_conn *conn;
    wslay_event_context_ptr ctx;
    struct buf in;
    size_t in_off;
    wsock_message_cb on_message;
    wsock_close_cb on_close;
    wsock_drain_cb on_drain;
    void *data;
    bool closed;
    int depth; /* nesting of callbacks into wslay; free only at depth 0 */
    bool dead;
};

static void wsock_free(struct wsock *w)
{
    wslay_event_context_free(w->ctx);
    buf_release(&w->in);
    free(w);
}

static void finish(struct wsock *w)
{
    if (w->closed)
        return;
    w->closed = true;
    if (w->on_close)
        w->on_close(w, w->data);
    w->on_close = NULL;
    w->on_message = NULL;
    w->dead = true;
}

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *out, size_t len, int flags, void *user)
{
    (void)flags;
    struct wsock *w = user;
    size_t avail = w->in.len - w->in_off;
    if (!avail) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = avail < len ? avail : len;
    memcpy(out, w->in.buf + w->in_off, n);
    w->in_off += n;
    return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    (void)ctx;
    (void)flags;
    struct wsock *w = user;
    if (w->closed) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    http_conn_write_raw(w->conn, data, len);
    return (ssize_t)len;
}

static void msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user)
{
    (void)ctx;
    struct wsock *w = user;
    if (wslay_is_ctrl_frame(arg->opcode))
        return;
    if (w->on_message)
        w->on_message(w, arg->opcode, arg->msg, arg->msg_length, w->data);
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
    (void)ctx;
    (void)user;
    memset(buf, 0, len); /* servers do not mask */
    return 0;
}

static void pump(struct wsock *w)
{
    if (w->closed)
        return;
    w->depth++;
    if (wslay_event_recv(w->ctx) != 0 || wslay_event_send(w->ctx) != 0) {
        w->depth--;
        http_conn_close(w->conn);
        return;
    }
    /* compact the input buffer */
    if (w->in_off) {
        buf_remove_front(&w->in, w->in_off);
        w->in_off = 0;
    }
    w->depth--;
    if (!w->closed && !wslay_event_want_read(w->ctx) && !wslay_event_want_write(w->ctx)) {
        http_conn_close_after_write(w->conn);
    }
}

static void on_raw(struct http_conn *c, const char *bytes, size_t len, void *data)
{
    (void)c;
    struct wsock *w = data;
    if (w->in.len + len > 2 * WSOCK_MAX_MESSAGE) {
        http_conn_close(w->conn);
        return;
    }
    buf_add(&w->in, bytes, len);
    pump(w);
}

static void on_conn_close(struct http_conn *c, void *data)
{
    (void)c;
    struct wsock *w = data;
    finish(w);
    wsock_free(w);
}

static void on_conn_drain(struct http_conn *c, void *data)
{
    (void)c;
    struct wsock *w = data;
    if (w->on_drain && !w->closed)
        w->on_drain(w, w->data);
}

static bool header_has_token(const char *value, const char *token)
{
    if (!value)
        return false;
    size_t n = strlen(token);
    for (const char *p = value; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (strncasecmp(p, token, n) == 0 && (p[n] == 0 || p[n] == ',' || p[n] == ' '))
            return true;
        const char *comma = strchr(p, ',');
        if (!comma)
            break;
        p = comma + 1;
    }
    return false;
}

int wsock_accept(struct http_conn *c, const struct http_request *req, wsock_message_cb on_message,
                 wsock_close_cb on_close, void *data, struct wsock **ret)
{
    const char *key = http_request_header(req, "sec-websocket-key");
    const char *version = http_request_header(req, "sec-websocket-version");
    if (!req->upgrade || !header_has_token(http_request_header(req, "upgrade"), "websocket") ||
        !key || strlen(key) != 24 || !version || strcmp(version, "13") != 0 ||
        strcmp(req->method, "GET") != 0) {
        http_respond_error(c, 400, "expected a WebSocket upgrade (version 13)");
        return -EINVAL;
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    _cleanup_free_ char *src = xasprintf("%s" WSOCK_GUID, key);
    if (!EVP_Digest(src, strlen(src), digest, &dlen, EVP_sha1(), NULL) || dlen != 20) {
        http_respond_error(c, 500, "cannot compute the WebSocket accept key");
        return -EIO;
    }
    unsigned char accept[32];
    EVP_EncodeBlock(accept, digest, 20);

    struct wsock *w = xcalloc(1, sizeof(*w));
    w->conn = c;
    w->in = (struct buf)BUF_INIT;
    w->on_message = on_message;
    w->on_close = on_close;
    w->data = data;
    struct wslay_event_callbacks cbs = {
        .recv_callback = recv_cb,
        .send_callback = send_cb,
        .genmask_callback = genmask_cb,
        .on_msg_recv_callback = msg_cb,
    };
    if (wslay_event_context_server_init(&w->ctx, &cbs, w) != 0) {
        free(w);
        http_respond_error(c, 500, "cannot set up the WebSocket");
        return -ENOMEM;
    }
    wslay_event_config_set_max_recv_msg_length(w->ctx, WSOCK_MAX_MESSAGE);

    _cleanup_free_ char *head = xasprintf("HTTP/1.1 101 Switching Protocols\r\n"
                                          "Upgrade: websocket\r\n"
                                          "Connection: Upgrade\r\n"
                                          "Sec-WebSocket-Accept: %s\r\n\r\n",
                                          accept);
    http_conn_on_close(c, on_conn_close, w);
    http_conn_on_drain(c, on_conn_drain, w);
    http_conn_write_raw(c, head, strlen(head));
    *ret = w;
    http_conn_takeover(c, on_raw, w);
    return 0;
}

void wsock_send(struct wsock *w, int opcode, const void *bytes, size_t len)
{
    if (w->closed)
        return;
    struct wslay_event_msg msg = {.opcode = (uint8_t)opcode, .msg = bytes, .msg_length = len};
    if (wslay_event_queue_msg(w->ctx, &msg) != 0 || wslay_event_send(w->ctx) != 0)
        http_conn_close(w->conn);
}

void wsock_close(struct wsock *w, uint16_t code, const char *reason)
{
    if (w->closed)
        return;
    (void)wslay_event_queue_close(w->ctx, code, (const uint8_t *)reason,
                                  reason ? strlen(reason) : 0);
    (void)wslay_event_send(w->ctx);
    finish(w);
    http_conn_close_after_write(w->conn);
}

size_t wsock_pending(struct wsock *w)
{
    return http_conn_pending(w->conn);
}

void wsock_on_drain(struct wsock *w, wsock_drain_cb cb)
{
    w->on_drain = cb;
}

void wsock_pause(struct wsock *w)
{
    http_conn_pause(w->conn);
}

void wsock_resume(struct wsock *w)
{
    http_conn_resume(w->conn);
}
