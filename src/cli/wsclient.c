/* wsclient.c - the CLI's WebSocket client: TCP connect, upgrade handshake, wslay framing.
 *
 * The handshake is done by hand on a non-blocking socket, each step bounded by a
 * deadline: url_parse() takes the server URL apart, tcp_connect() tries each
 * address of the host, then the request is written and the answer's head read
 * (up to WSC_MAX_HEAD bytes) and checked by check_upgrade(); a refusal's body
 * (up to WSC_MAX_ERROR_BODY) becomes the error through client_status_error(), as
 * for every other request. Bytes that arrive right behind the head already belong
 * to the WebSocket stream (berthd sends its first frame at once), so they are kept
 * in `in`, and wslay's recv callback hands them out before it reads the socket.
 *
 * After that, wslay does the framing; its callbacks read and write the socket
 * without blocking, and the caller's poll() loop drives it through wsc_process().
 */
#include "cli/wsclient.h"

#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <wslay/wslay.h>

#include "cli/client.h"
#include "util/buf.h"
#include "util/xalloc.h"

#define WSC_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WSC_CONNECT_TIMEOUT_MS 10000
#define WSC_HANDSHAKE_TIMEOUT_MS 30000
#define WSC_MAX_HEAD (16u * 1024)
#define WSC_MAX_ERROR_BODY (64u * 1024)
#define WSC_READ_CHUNK 4096

struct wsc {
    int fd;
    wslay_event_context_ptr ctx;
    struct buf in; /* stream bytes read along with the handshake, from in_off on */
    size_t in_off;
    wsc_message_cb on_message;
    void *data;
    bool eof;            /* the peer closed the TCP connection */
    int sock_errno;      /* why a recv or send failed */
    bool finished;       /* the peer closed after its close frame */
    struct berr *cb_err; /* on_message failed */
};

/* The parts of http://HOST[:PORT][/PREFIX]. */
struct wsc_url {
    char *host; /* without the brackets of an IPv6 literal */
    char *port;
    char *authority; /* HOST[:PORT] as written: the Host header */
    char *prefix;    /* "" or "/PREFIX" without a trailing slash */
};

static void wsc_url_release(struct wsc_url *u)
{
    free(u->host);
    free(u->port);
    free(u->authority);
    free(u->prefix);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct addrinfo *, freeaddrinfo)

/* ------------------------------------------------------------------------
 * The handshake
 */

static int url_parse(const char *url, struct wsc_url *ret, struct berr **reterr)
{
    if (strncmp(url, "https://", 8) == 0)
        return berr_make(reterr, EINVAL,
                         "cannot open a terminal through https:// ('%s'): berth speaks only "
                         "plain http:// WebSockets for now; use an http:// URL (e.g. through "
                         "an SSH tunnel)",
                         url);
    if (strncmp(url, "http://", 7) != 0)
        return berr_make(reterr, EINVAL, "server URL '%s' is not http://", url);
    const char *auth = url + 7;
    size_t auth_len = strcspn(auth, "/?#");
    const char *rest = auth + auth_len;
    if (*rest && *rest != '/')
        return berr_make(reterr, EINVAL, "server URL '%s' has a query or fragment", url);
    if (auth_len == 0 || memchr(auth, '@', auth_len))
        return berr_make(reterr, EINVAL, "server URL '%s' has no host, or a user name", url);

    const char *host = auth, *host_end, *port = NULL;
    if (*auth == '[') {
        host_end = memchr(auth, ']', auth_len);
        if (!host_end || host_end == auth + 1)
            return berr_make(reterr, EINVAL, "server URL '%s' has a bad IPv6 address", url);
        host = auth + 1;
        if (host_end + 1 < rest && host_end[1] != ':')
            return berr_make(reterr, EINVAL, "server URL '%s' has a bad port", url);
        if (host_end + 1 < rest)
            port = host_end + 2;
    } else {
        host_end = memchr(auth, ':', auth_len);
        if (host_end)
            port = host_end + 1;
        else
            host_end = rest;
    }
    if (host_end == host)
        return berr_make(reterr, EINVAL, "server URL '%s' has no host", url);
    if (port) {
        size_t n = (size_t)(rest - port);
        if (n == 0 || n > 5)
            return berr_make(reterr, EINVAL, "server URL '%s' has a bad port", url);
        for (size_t i = 0; i < n; i++)
            if (!isdigit((unsigned char)port[i]))
                return berr_make(reterr, EINVAL, "server URL '%s' has a bad port", url);
    }
    size_t prefix_len = strlen(rest);
    while (prefix_len > 0 && rest[prefix_len - 1] == '/')
        prefix_len--;
    ret->host = xstrndup(host, (size_t)(host_end - host));
    ret->port = port ? xstrndup(port, (size_t)(rest - port)) : xstrdup("80");
    ret->authority = xstrndup(auth, auth_len);
    ret->prefix = xstrndup(rest, prefix_len);
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for `events` or the deadline passes (-ETIMEDOUT). */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

static int random_bytes(void *p, size_t len)
{
    unsigned char *b = p;
    while (len > 0) {
        ssize_t n = getrandom(b, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        b += n;
        len -= (size_t)n;
    }
    return 0;
}

static int tcp_connect(const struct wsc_url *u, const char *url, int *ret_fd, struct berr **reterr)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    _cleanup_(freeaddrinfop) struct addrinfo *res = NULL;
    int g = getaddrinfo(u->host, u->port, &hints, &res);
    if (g != 0)
        return berr_make(reterr, ECONNREFUSED, "cannot reach berthd at %s: %s", url,
                         g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
    int64_t deadline = now_ms() + WSC_CONNECT_TIMEOUT_MS;
    int r = -ECONNREFUSED;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        _cleanup_close_ int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            r = -errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
            r = -errno;
            continue;
        }
        r = wait_fd(fd, POLLOUT, deadline);
        if (r < 0)
            continue;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            soerr = errno;
        if (soerr) {
            r = -soerr;
            continue;
        }
        /* keystrokes are small and must not wait for Nagle's algorithm */
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        *ret_fd = TAKE_FD(fd);
        return 0;
    }
    return berr_make(reterr, -r, "cannot reach berthd at %s: %s", url, strerror(-r));
}

static int send_all(int fd, const char *p, size_t len, int64_t deadline)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int r = wait_fd(fd, POLLOUT, deadline);
            if (r < 0)
                return r;
            continue;
        }
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Appends what the socket has (at most `max` bytes in b in all) to b, waiting for
 * it until the deadline. Returns the number of bytes read, 0 at the end of the
 * stream, or a negative errno. */
static ssize_t recv_some(int fd, struct buf *b, size_t max, int64_t deadline)
{
    char chunk[WSC_READ_CHUNK];
    for (;;) {
        size_t want = max - b->len < sizeof(chunk) ? max - b->len : sizeof(chunk);
        ssize_t n = recv(fd, chunk, want, 0);
        if (n >= 0) {
            buf_add(b, chunk, (size_t)n);
            return n;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int r = wait_fd(fd, POLLIN, deadline);
        if (r < 0)
            return r;
    }
}

/* The value of header `name` in the answer's head (the lines after the status
 * line), without surrounding blanks; NULL when absent. The caller frees it. */
static char *head_header(const char *head, size_t head_len, const char *name)
{
    size_t name_len = strlen(name);
    const char *end = head + head_len;
    const char *line = memchr(head, '\n', head_len);
    while (line && ++line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            eol = end;
        if ((size_t)(eol - line) > name_len && strncasecmp(line, name, name_len) == 0 &&
            line[name_len] == ':') {
            const char *v = line + name_len + 1;
            const char *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            return xstrndup(v, (size_t)(ve - v));
        }
        line = eol;
    }
    return NULL;
}

/* Whether a comma-separated header value lists `token` (any case). */
static bool has_token(const char *value, const char *token)
{
    size_t n = strlen(token);
    for (const char *p = value; p && *p;) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, " \t,");
        if (len == n && strncasecmp(p, token, n) == 0)
            return true;
        p += len;
    }
    return false;
}

/* Reads the rest of a refusal's body (head_len bytes of head before it in b) and
 * turns it into the error. */
static int refused(int fd, long status, struct buf *b, size_t head_len, int64_t deadline,
                   struct berr **reterr)
{
    _cleanup_free_ char *cl = head_header(b->buf, head_len, "Content-Length");
    size_t want = WSC_MAX_ERROR_BODY;
    if (cl) {
        char *endp = NULL;
        unsigned long long n = strtoull(cl, &endp, 10);
        if (*cl && !*endp && n < want)
            want = (size_t)n;
    }
    /* berthd closes the connection after refusing an upgrade, so reading to the
     * end works without a Content-Length too */
    while (b->len - head_len < want) {
        ssize_t n = recv_some(fd, b, head_len + want, deadline);
        if (n <= 0)
            break;
    }
    if (status >= 200 && status < 300)
        return berr_make(reterr, EPROTO, "berthd answered HTTP %ld instead of a WebSocket", status);
    return client_status_error(status, b->buf + head_len, b->len - head_len, reterr);
}

/* Checks a 101 answer's head against the key that was sent. */
static int check_upgrade(const char *head, size_t head_len, const char *key, struct berr **reterr)
{
    _cleanup_free_ char *upgrade = head_header(head, head_len, "Upgrade");
    _cleanup_free_ char *connection = head_header(head, head_len, "Connection");
    _cleanup_free_ char *accept = head_header(head, head_len, "Sec-WebSocket-Accept");
    if (!has_token(upgrade, "websocket") || !has_token(connection, "upgrade"))
        return berr_make(reterr, EPROTO,
                         "berthd's answer switched to something else than a "
                         "WebSocket");
    _cleanup_free_ char *src = xasprintf("%s" WSC_GUID, key);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (!EVP_Digest(src, strlen(src), digest, &dlen, EVP_sha1(), NULL) || dlen != 20)
        return berr_make(reterr, EIO, "cannot compute SHA-1 for the WebSocket handshake");
    unsigned char expected[32]; /* base64 of 20 bytes: 28 characters and a NUL */
    (void)EVP_EncodeBlock(expected, digest, 20);
    if (!accept || strcmp(accept, (const char *)expected) != 0)
        return berr_make(reterr, EPROTO,
                         "berthd's WebSocket answer has a wrong "
                         "Sec-WebSocket-Accept");
    return 0;
}

/* Sends the upgrade request on a connected socket and reads the answer. On
 * success, b keeps the bytes after the head and *ret_head_len says where they
 * start. */
static int handshake(int fd, const struct wsc_url *u, const char *path, const char *token,
                     struct buf *b, size_t *ret_head_len, struct berr **reterr)
{
    unsigned char raw[16];
    int r = random_bytes(raw, sizeof(raw));
    if (r < 0)
        return berr_make(reterr, -r, "cannot get random bytes: %s", strerror(-r));
    char key[32]; /* base64 of 16 bytes: 24 characters and a NUL */
    (void)EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));

    _cleanup_buf_ struct buf req = BUF_INIT;
    buf_addf(&req,
             "GET %s%s HTTP/1.1\r\n"
             "Host: %s\r\n"
             "Upgrade: websocket\r\n"
             "Connection: Upgrade\r\n"
             "Sec-WebSocket-Key: %s\r\n"
             "Sec-WebSocket-Version: 13\r\n"
             "User-Agent: berth-cli\r\n",
             u->prefix, path, u->authority, key);
    if (token)
        buf_addf(&req, "Authorization: Bearer %s\r\n", token);
    buf_adds(&req, "\r\n");
    int64_t deadline = now_ms() + WSC_HANDSHAKE_TIMEOUT_MS;
    r = send_all(fd, req.buf, req.len, deadline);
    explicit_bzero(req.buf, req.len); /* it holds the token */
    if (r < 0)
        return berr_make(reterr, r == -ETIMEDOUT ? ETIMEDOUT : ECONNRESET,
                         "cannot send the WebSocket request to berthd: %s", strerror(-r));

    const char *end;
    while (!(end = memmem(b->buf, b->len, "\r\n\r\n", 4))) {
        if (memchr(b->buf, 0, b->len))
            return berr_make(reterr, EPROTO, "berthd's answer has a NUL byte in its head");
        if (b->len >= WSC_MAX_HEAD)
            return berr_make(reterr, EPROTO, "berthd's answer has a head over %u bytes",
                             WSC_MAX_HEAD);
        ssize_t n = recv_some(fd, b, WSC_MAX_HEAD, deadline);
        if (n == 0)
            return berr_make(reterr, ECONNRESET,
                             "berthd closed the connection without answering the WebSocket "
                             "request");
        if (n < 0)
            return berr_make(reterr, n == -ETIMEDOUT ? ETIMEDOUT : ECONNRESET,
                             "no answer from berthd to the WebSocket request: %s",
                             strerror((int)-n));
    }
    size_t head_len = (size_t)(end - b->buf) + 4;
    if (memchr(b->buf, 0, head_len))
        return berr_make(reterr, EPROTO, "berthd's answer has a NUL byte in its head");
    char *endp = NULL;
    long status = 0;
    if (strncmp(b->buf, "HTTP/1.", 7) == 0 && b->buf[8] == ' ')
        status = strtol(b->buf + 9, &endp, 10);
    if (!endp || endp != b->buf + 12 || status < 100 || status > 599)
        return berr_make(reterr, EPROTO, "berthd's answer does not start with an HTTP status");
    if (status != 101)
        return refused(fd, status, b, head_len, deadline, reterr);
    r = check_upgrade(b->buf, head_len, key, reterr);
    if (r < 0)
        return r;
    *ret_head_len = head_len;
    return 0;
}

/* ------------------------------------------------------------------------
 * wslay's callbacks
 */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *out, size_t len, int flags, void *user)
{
    struct wsc *w = user;
    if (w->in_off < w->in.len) {
        size_t n = w->in.len - w->in_off < len ? w->in.len - w->in_off : len;
        memcpy(out, w->in.buf + w->in_off, n);
        w->in_off += n;
        if (w->in_off == w->in.len) {
            buf_release(&w->in);
            w->in_off = 0;
        }
        return (ssize_t)n;
    }
    for (;;) {
        ssize_t n = recv(w->fd, out, len, 0);
        if (n > 0)
            return n;
        if (n == 0) {
            w->eof = true;
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
            return -1;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
            return -1;
        }
        w->sock_errno = errno;
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    struct wsc *w = user;
    int sflags = MSG_NOSIGNAL | ((flags & WSLAY_MSG_MORE) ? MSG_MORE : 0);
    for (;;) {
        ssize_t n = send(w->fd, data, len, sflags);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
            return -1;
        }
        w->sock_errno = errno;
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
}

/* Client frames are masked with a fresh random key each (RFC 6455, 5.3). */
static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
    return random_bytes(buf, len) < 0 ? -1 : 0;
}

static void msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user)
{
    struct wsc *w = user;
    if (wslay_is_ctrl_frame(arg->opcode) || w->cb_err)
        return;
    int r = w->on_message(w, arg->opcode, arg->msg, arg->msg_length, w->data, &w->cb_err);
    if (r < 0 && !w->cb_err)
        (void)berr_make(&w->cb_err, -r, "%s", strerror(-r));
    if (r < 0)
        wslay_event_shutdown_read(ctx);
}

/* ------------------------------------------------------------------------
 * The connection
 */

int wsc_connect(const char *url, const char *path, const char *token, wsc_message_cb on_message,
                void *data, struct wsc **ret_w, struct berr **reterr)
{
    _cleanup_(wsc_url_release) struct wsc_url u = {0};
    int r = url_parse(url, &u, reterr);
    if (r < 0)
        return r;
    for (const char *p = token; p && *p; p++)
        if ((unsigned char)*p < 0x21 || *p == 0x7f)
            return berr_make(reterr, EINVAL, "the token has a space or a control character");
    _cleanup_close_ int fd = -1;
    r = tcp_connect(&u, url, &fd, reterr);
    if (r < 0)
        return r;
    _cleanup_buf_ struct buf b = BUF_INIT;
    size_t head_len = 0;
    r = handshake(fd, &u, path, token, &b, &head_len, reterr);
    if (r < 0)
        return r;

    struct wsc *w = xcalloc(1, sizeof(*w));
    w->fd = TAKE_FD(fd);
    w->in = (struct buf)BUF_INIT;
    buf_add(&w->in, b.buf + head_len, b.len - head_len);
    w->on_message = on_message;
    w->data = data;
    struct wslay_event_callbacks cbs = {
        .recv_callback = recv_cb,
        .send_callback = send_cb,
        .genmask_callback = genmask_cb,
        .on_msg_recv_callback = msg_cb,
    };
    if (wslay_event_context_client_init(&w->ctx, &cbs, w) != 0)
        abort(); /* it fails only when out of memory */
    wslay_event_config_set_max_recv_msg_length(w->ctx, WSC_MAX_MESSAGE);
    *ret_w = w;
    return 0;
}

struct wsc *wsc_free(struct wsc *w)
{
    if (!w)
        return NULL;
    if (w->ctx)
        wslay_event_context_free(w->ctx);
    closep(&w->fd);
    buf_release(&w->in);
    berr_free(w->cb_err);
    free(w);
    return NULL;
}

int wsc_fd(const struct wsc *w)
{
    return w->fd;
}

bool wsc_done(const struct wsc *w)
{
    return w->finished || (!wslay_event_want_read(w->ctx) && !wslay_event_want_write(w->ctx));
}

short wsc_events(const struct wsc *w)
{
    if (w->finished)
        return 0;
    return (short)((wslay_event_want_read(w->ctx) ? POLLIN : 0) |
                   (wslay_event_want_write(w->ctx) ? POLLOUT : 0));
}

bool wsc_has_buffered(const struct wsc *w)
{
    return w->in_off < w->in.len && !w->finished && wslay_event_want_read(w->ctx);
}

/* wslay gave up on the connection: say why, unless that is the normal end. */
static int wsc_failed(struct wsc *w, struct berr **reterr)
{
    if (wslay_event_get_close_received(w->ctx)) {
        /* the peer said goodbye and did not wait for the answer */
        w->finished = true;
        return 0;
    }
    w->finished = true;
    if (w->sock_errno)
        return berr_make(reterr, ECONNRESET, "connection to berthd lost: %s",
                         strerror(w->sock_errno));
    if (w->eof)
        return berr_make(reterr, ECONNRESET, "berthd closed the connection");
    return berr_make(reterr, EPROTO, "the WebSocket connection to berthd failed");
}

int wsc_process(struct wsc *w, short revents, struct berr **reterr)
{
    if (w->finished)
        return 0;
    if (((revents & (POLLIN | POLLHUP | POLLERR)) || wsc_has_buffered(w)) &&
        wslay_event_want_read(w->ctx)) {
        if (wslay_event_recv(w->ctx) != 0)
            return wsc_failed(w, reterr);
        if (w->cb_err) {
            int r = -w->cb_err->code;
            if (reterr && !*reterr)
                *reterr = TAKE_PTR(w->cb_err);
            return r;
        }
    }
    if (wslay_event_want_write(w->ctx) && wslay_event_send(w->ctx) != 0)
        return wsc_failed(w, reterr);
    return 0;
}

int wsc_send(struct wsc *w, int opcode, const void *msg, size_t len, struct berr **reterr)
{
    struct wslay_event_msg m = {.opcode = (uint8_t)opcode, .msg = msg, .msg_length = len};
    int r = wslay_event_queue_msg(w->ctx, &m);
    if (r == WSLAY_ERR_NOMEM)
        abort();
    if (r != 0)
        return berr_make(reterr, EPIPE, "the WebSocket to berthd is closing");
    return 0;
}

void wsc_close(struct wsc *w, uint16_t code)
{
    (void)wslay_event_queue_close(w->ctx, code, NULL, 0);
}

size_t wsc_queued(const struct wsc *w)
{
    return wslay_event_get_queued_msg_length(w->ctx);
}

uint16_t wsc_close_code(const struct wsc *w)
{
    return wslay_event_get_close_received(w->ctx) ? wslay_event_get_status_code_received(w->ctx)
                                                  : 0;
}
