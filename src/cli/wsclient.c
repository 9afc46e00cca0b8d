/* wsclient.c - the CLI's WebSocket client: TCP connect, TLS, upgrade handshake, wslay framing.
 *
 * The handshake is a state machine on a non-blocking socket, driven by
 * wsc_process() like the open connection (wsc_connect() just runs it in a poll()
 * loop of its own): url_parse() takes the server URL apart and wsc_open()
 * resolves the host; then each address of the host is tried in turn
 * (CONNECTING); the connected socket becomes a stream (stream.h), plain or, for
 * https://, TLS with its handshake next (TLS); the request is written (SENDING),
 * the answer's head read (HEAD, up to WSC_MAX_HEAD bytes) and checked by
 * check_upgrade(); a refusal's body (REFUSED, up to WSC_MAX_ERROR_BODY) becomes
 * the error through client_status_error(), as for every other request. Each step
 * is bounded by a deadline: a connection attempt by WSC_CONNECT_TIMEOUT_MS, the
 * exchange after it (TLS included) by WSC_HANDSHAKE_TIMEOUT_MS. Bytes that
 * arrive right behind the head already belong to the WebSocket stream (berthd
 * sends its first frame at once), so they are kept in `in`, and wslay's recv
 * callback hands them out before it reads the stream.
 *
 * After that (OPEN), wslay does the framing; its callbacks read and write the
 * stream without blocking, and the caller's poll() loop drives it through
 * wsc_process(). What to poll for is what the stream says its reads and writes
 * wait for (TLS may have to write before it can read), and bytes TLS has
 * decrypted but not handed out count as buffered, since poll() will not announce
 * them. The wslay context exists from wsc_open() on, so messages can be queued
 * before the connection is open. Pausing the reading makes the recv callback
 * answer "would block" and remember that it did (`stalled`): wslay may still
 * hold frames it read, so after the pause wsc_has_buffered() asks for a
 * wsc_process() that does not wait for the socket.
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
#include "cli/stream.h"
#include "util/buf.h"
#include "util/xalloc.h"

#define WSC_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WSC_CONNECT_TIMEOUT_MS 10000
#define WSC_HANDSHAKE_TIMEOUT_MS 30000
#define WSC_MAX_HEAD (16u * 1024)
#define WSC_MAX_ERROR_BODY (64u * 1024)
#define WSC_READ_CHUNK 4096

/* The parts of http[s]://HOST[:PORT][/PREFIX]. */
struct wsc_url {
    bool tls;   /* https:// */
    char *host; /* without the brackets of an IPv6 literal */
    char *port;
    char *authority; /* HOST[:PORT] as written: the Host header */
    char *prefix;    /* "" or "/PREFIX" without a trailing slash */
};

enum wsc_state {
    WSC_CONNECTING, /* connect() to `addr` is under way */
    WSC_TLS,        /* the TLS handshake is under way */
    WSC_SENDING,    /* the request is being written */
    WSC_HEAD,       /* the answer's head is being read */
    WSC_REFUSED,    /* the body of an answer other than 101 is being read */
    WSC_OPEN,       /* wslay runs the connection */
    WSC_FAILED,     /* the handshake failed; wsc_process() said why */
};

struct wsc {
    int fd;           /* while connecting; then the stream's */
    struct stream *s; /* from the connection on */
    enum wsc_state state;
    wslay_event_context_ptr ctx;
    wsc_message_cb on_message;
    void *data;

    /* the handshake */
    char *url;                     /* as given, for messages */
    char *tls_host;                /* https://: the host the certificate must name */
    struct addrinfo *addrs, *addr; /* the host's addresses; the one tried */
    int connect_errno;             /* why the last address failed */
    int64_t deadline;              /* of the current step */
    struct buf req;                /* the request (it holds the token) */
    size_t req_off;                /* how much of it is written */
    char key[32];                  /* Sec-WebSocket-Key: base64 of 16 bytes and a NUL */
    struct buf head;               /* the answer as read so far */
    size_t head_len;               /* the length of its head, once complete */
    size_t body_want;              /* REFUSED: the body's length, at most WSC_MAX_ERROR_BODY */
    long status;

    /* the open connection */
    struct buf in; /* stream bytes read along with the handshake, from in_off on */
    size_t in_off;
    bool paused;         /* wsc_pause_read() */
    bool stalled;        /* the recv callback refused to read during a pause */
    bool eof;            /* the peer closed the connection */
    struct berr *io_err; /* why a read or write failed */
    bool finished;       /* the peer closed after its close frame */
    struct berr *cb_err; /* on_message failed */
};

static void wsc_url_release(struct wsc_url *u)
{
    free(u->host);
    free(u->port);
    free(u->authority);
    free(u->prefix);
}

/* ------------------------------------------------------------------------
 * The handshake
 */

static int url_parse(const char *url, struct wsc_url *ret, struct berr **reterr)
{
    bool tls = strncmp(url, "https://", 8) == 0;
    if (!tls && strncmp(url, "http://", 7) != 0)
        return berr_make(reterr, EINVAL, "server URL '%s' is not http:// or https://", url);
    const char *auth = url + (tls ? 8 : 7);
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
    ret->tls = tls;
    ret->host = xstrndup(host, (size_t)(host_end - host));
    ret->port = port ? xstrndup(port, (size_t)(rest - port)) : xstrdup(tls ? "443" : "80");
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

/* The socket is connected: it becomes the stream, and the exchange's time limit
 * starts. */
static int connected(struct wsc *w, struct berr **reterr)
{
    /* keystrokes are small and must not wait for Nagle's algorithm */
    int one = 1;
    (void)setsockopt(w->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int r = stream_new(TAKE_FD(w->fd), w->tls_host, &w->s, reterr);
    if (r < 0)
        return r;
    w->state = w->tls_host ? WSC_TLS : WSC_SENDING;
    w->deadline = now_ms() + WSC_HANDSHAKE_TIMEOUT_MS;
    return 0;
}

/* Starts connecting to w->addr, or to the addresses after it when that fails
 * at once. Returns 0 (w->state is CONNECTING, or on from there when connect()
 * was done at once), or the error when no address is left. */
static int connect_next(struct wsc *w, struct berr **reterr)
{
    for (; w->addr; w->addr = w->addr->ai_next) {
        struct addrinfo *ai = w->addr;
        closep(&w->fd);
        w->fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (w->fd < 0) {
            w->connect_errno = errno;
            continue;
        }
        if (connect(w->fd, ai->ai_addr, ai->ai_addrlen) == 0)
            return connected(w, reterr);
        if (errno == EINPROGRESS) {
            w->state = WSC_CONNECTING;
            w->deadline = now_ms() + WSC_CONNECT_TIMEOUT_MS;
            return 0;
        }
        w->connect_errno = errno;
    }
    closep(&w->fd);
    int e = w->connect_errno ? w->connect_errno : ECONNREFUSED;
    return berr_make(reterr, e, "cannot reach berthd at %s: %s", w->url, strerror(e));
}

/* The connection attempt to w->addr failed with `e`: on to the next address. */
static int connect_failed(struct wsc *w, int e, struct berr **reterr)
{
    w->connect_errno = e;
    w->addr = w->addr->ai_next;
    return connect_next(w, reterr);
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

/* The answer's head is complete: checks it. Returns 0 with the state moved on
 * (OPEN, or REFUSED to read the refusal's body), or an error. */
static int head_done(struct wsc *w, struct berr **reterr)
{
    const char *b = w->head.buf;
    size_t head_len = w->head_len;
    if (memchr(b, 0, head_len))
        return berr_make(reterr, EPROTO, "berthd's answer has a NUL byte in its head");
    char *endp = NULL;
    long status = 0;
    if (strncmp(b, "HTTP/1.", 7) == 0 && b[8] == ' ')
        status = strtol(b + 9, &endp, 10);
    if (!endp || endp != b + 12 || status < 100 || status > 599)
        return berr_make(reterr, EPROTO, "berthd's answer does not start with an HTTP status");
    w->status = status;
    if (status != 101) {
        _cleanup_free_ char *cl = head_header(b, head_len, "Content-Length");
        w->body_want = WSC_MAX_ERROR_BODY;
        if (cl) {
            char *e = NULL;
            unsigned long long n = strtoull(cl, &e, 10);
            if (*cl && !*e && n < w->body_want)
                w->body_want = (size_t)n;
        }
        w->state = WSC_REFUSED;
        return 0;
    }
    int r = check_upgrade(b, head_len, w->key, reterr);
    if (r < 0)
        return r;
    buf_add(&w->in, b + head_len, w->head.len - head_len);
    buf_release(&w->head);
    freeaddrinfo(w->addrs);
    w->addrs = w->addr = NULL;
    w->state = WSC_OPEN;
    return 0;
}

/* The refusal's body is read (or as much of it as came): the error. */
static int refused(struct wsc *w, struct berr **reterr)
{
    const char *body = w->head.buf + w->head_len;
    size_t len = w->head.len - w->head_len;
    if (len > w->body_want)
        len = w->body_want;
    if (w->status >= 200 && w->status < 300)
        return berr_make(reterr, EPROTO, "berthd answered HTTP %ld instead of a WebSocket",
                         w->status);
    return client_status_error(w->status, body, len, reterr);
}

/* Reads what the stream has into w->head, up to `max` bytes in all. Returns the
 * number of bytes read, 0 at the end of the stream, -EAGAIN, or the error. */
static ssize_t read_head(struct wsc *w, size_t max, struct berr **reterr)
{
    char chunk[WSC_READ_CHUNK];
    size_t want = max - w->head.len < sizeof(chunk) ? max - w->head.len : sizeof(chunk);
    ssize_t n = stream_read(w->s, chunk, want, reterr);
    if (n > 0)
        buf_add(&w->head, chunk, (size_t)n);
    return n;
}

/* Moves the handshake on as far as it goes without blocking. Returns 0 (it goes
 * on, or the connection is open), or the error. */
static int handshake_step(struct wsc *w, short revents, struct berr **reterr)
{
    bool expired = now_ms() >= w->deadline;
    for (;;) {
        switch (w->state) {
        case WSC_CONNECTING: {
            if (!(revents & (POLLOUT | POLLERR | POLLHUP))) {
                if (!expired)
                    return 0;
                int r = connect_failed(w, ETIMEDOUT, reterr);
                if (r < 0)
                    return r;
                expired = false;
                continue;
            }
            revents = 0;
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
                soerr = errno;
            if (soerr) {
                int r = connect_failed(w, soerr, reterr);
                if (r < 0)
                    return r;
                expired = false;
                continue;
            }
            int r = connected(w, reterr);
            if (r < 0)
                return r;
            expired = false;
            continue;
        }
        case WSC_TLS: {
            _cleanup_berr_ struct berr *err = NULL;
            int r = stream_handshake(w->s, &err);
            if (r == -EAGAIN && !expired)
                return 0;
            if (r == -EAGAIN)
                return berr_make(reterr, ETIMEDOUT,
                                 "cannot connect to berthd at %s: the TLS handshake took too long",
                                 w->url);
            if (r < 0)
                return berr_make(reterr, -r, "cannot connect to berthd at %s: %s", w->url,
                                 berr_msg(err));
            w->state = WSC_SENDING;
            continue;
        }
        case WSC_SENDING: {
            while (w->req_off < w->req.len) {
                _cleanup_berr_ struct berr *err = NULL;
                ssize_t n = stream_write(w->s, w->req.buf + w->req_off, w->req.len - w->req_off,
                                         false, &err);
                if (n == -EAGAIN && !expired)
                    return 0;
                if (n == -EAGAIN)
                    return berr_make(reterr, ETIMEDOUT,
                                     "cannot send the WebSocket request to berthd: %s",
                                     strerror(ETIMEDOUT));
                if (n < 0)
                    return berr_make(reterr, ECONNRESET,
                                     "cannot send the WebSocket request to berthd: %s",
                                     berr_msg(err));
                w->req_off += (size_t)n;
            }
            explicit_bzero(w->req.buf, w->req.len); /* it holds the token */
            buf_release(&w->req);
            w->state = WSC_HEAD;
            continue;
        }
        case WSC_HEAD: {
            const char *end = memmem(w->head.buf, w->head.len, "\r\n\r\n", 4);
            if (end) {
                w->head_len = (size_t)(end - w->head.buf) + 4;
                int r = head_done(w, reterr);
                if (r < 0 || w->state == WSC_OPEN)
                    return r;
                continue;
            }
            if (memchr(w->head.buf, 0, w->head.len))
                return berr_make(reterr, EPROTO, "berthd's answer has a NUL byte in its head");
            if (w->head.len >= WSC_MAX_HEAD)
                return berr_make(reterr, EPROTO, "berthd's answer has a head over %u bytes",
                                 WSC_MAX_HEAD);
            _cleanup_berr_ struct berr *err = NULL;
            ssize_t n = read_head(w, WSC_MAX_HEAD, &err);
            if (n == -EAGAIN && !expired)
                return 0;
            if (n == 0)
                return berr_make(reterr, ECONNRESET,
                                 "berthd closed the connection without answering the WebSocket "
                                 "request");
            if (n == -EAGAIN)
                return berr_make(reterr, ETIMEDOUT,
                                 "no answer from berthd to the WebSocket request: %s",
                                 strerror(ETIMEDOUT));
            if (n < 0)
                return berr_make(reterr, ECONNRESET,
                                 "no answer from berthd to the WebSocket request: %s",
                                 berr_msg(err));
            continue;
        }
        case WSC_REFUSED: {
            /* berthd closes the connection after refusing an upgrade, so reading
             * to the end works without a Content-Length too; at the time limit
             * what has come is used */
            while (w->head.len - w->head_len < w->body_want) {
                ssize_t n = read_head(w, w->head_len + w->body_want, NULL);
                if (n == -EAGAIN && !expired)
                    return 0;
                if (n <= 0)
                    break;
            }
            return refused(w, reterr);
        }
        case WSC_OPEN:
            return 0;
        case WSC_FAILED:
        default:
            return berr_make(reterr, EPIPE, "the WebSocket connection to berthd failed");
        }
    }
}

/* Builds the upgrade request into w->req. */
static int request_build(struct wsc *w, const struct wsc_url *u, const char *path,
                         const char *token, struct berr **reterr)
{
    unsigned char raw[16];
    int r = random_bytes(raw, sizeof(raw));
    if (r < 0)
        return berr_make(reterr, -r, "cannot get random bytes: %s", strerror(-r));
    (void)EVP_EncodeBlock((unsigned char *)w->key, raw, sizeof(raw));
    buf_addf(&w->req,
             "GET %s%s HTTP/1.1\r\n"
             "Host: %s\r\n"
             "Upgrade: websocket\r\n"
             "Connection: Upgrade\r\n"
             "Sec-WebSocket-Key: %s\r\n"
             "Sec-WebSocket-Version: 13\r\n"
             "User-Agent: berth-cli\r\n",
             u->prefix, path, u->authority, w->key);
    if (token)
        buf_addf(&w->req, "Authorization: Bearer %s\r\n", token);
    buf_adds(&w->req, "\r\n");
    return 0;
}

/* ------------------------------------------------------------------------
 * wslay's callbacks
 */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *out, size_t len, int flags, void *user)
{
    struct wsc *w = user;
    if (w->paused) {
        w->stalled = true;
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
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
    ssize_t n = stream_read(w->s, out, len, &w->io_err);
    if (n > 0)
        return n;
    if (n == 0)
        w->eof = true;
    wslay_event_set_error(ctx, n == -EAGAIN ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}
static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    struct wsc *w = user;
    ssize_t n = stream_write(w->s, data, len, flags & WSLAY_MSG_MORE, &w->io_err);
    if (n >= 0)
        return n;
    wslay_event_set_error(ctx, n == -EAGAIN ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
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

int wsc_open(const char *url, const char *path, const char *token, wsc_message_cb on_message,
             void *data, struct wsc **ret_w, struct berr **reterr)
{
    _cleanup_(wsc_url_release) struct wsc_url u = {0};
    int r = url_parse(url, &u, reterr);
    if (r < 0)
        return r;
    for (const char *p = token; p && *p; p++)
        if ((unsigned char)*p < 0x21 || *p == 0x7f)
            return berr_make(reterr, EINVAL, "the token has a space or a control character");

    if (u.tls) {
        /* a CA file that does not load fails before any connection */
        r = stream_tls_init(reterr);
        if (r < 0)
            return r;
    }

    _cleanup_(wsc_freep) struct wsc *w = xcalloc(1, sizeof(*w));
    w->fd = -1;
    w->url = xstrdup(url);
    w->tls_host = u.tls ? xstrdup(u.host) : NULL;
    w->req = (struct buf)BUF_INIT;
    w->head = (struct buf)BUF_INIT;
    w->in = (struct buf)BUF_INIT;
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
    r = request_build(w, &u, path, token, reterr);
    if (r < 0)
        return r;

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int g = getaddrinfo(u.host, u.port, &hints, &w->addrs);
    if (g != 0)
        return berr_make(reterr, ECONNREFUSED, "cannot reach berthd at %s: %s", url,
                         g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
    w->addr = w->addrs;
    r = connect_next(w, reterr);
    if (r < 0)
        return r;
    *ret_w = TAKE_PTR(w);
    return 0;
}

int wsc_connect(const char *url, const char *path, const char *token, wsc_message_cb on_message,
                void *data, struct wsc **ret_w, struct berr **reterr)
{
    _cleanup_(wsc_freep) struct wsc *w = NULL;
    int r = wsc_open(url, path, token, on_message, data, &w, reterr);
    if (r < 0)
        return r;
    while (!wsc_is_open(w)) {
        struct pollfd p = {.fd = wsc_fd(w), .events = wsc_events(w)};
        int n = poll(&p, 1, wsc_timeout_ms(w));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return berr_make(reterr, errno, "poll: %s", strerror(errno));
        r = wsc_process(w, n > 0 ? p.revents : 0, reterr);
        if (r < 0)
            return r;
    }
    *ret_w = TAKE_PTR(w);
    return 0;
}

struct wsc *wsc_free(struct wsc *w)
{
    if (!w)
        return NULL;
    if (w->ctx)
        wslay_event_context_free(w->ctx);
    w->s = stream_free(w->s);
    closep(&w->fd);
    if (w->addrs)
        freeaddrinfo(w->addrs);
    if (w->req.alloc)
        explicit_bzero(w->req.buf, w->req.len);
    buf_release(&w->req);
    buf_release(&w->head);
    buf_release(&w->in);
    berr_free(w->cb_err);
    berr_free(w->io_err);
    free(w->url);
    free(w->tls_host);
    free(w);
    return NULL;
}

int wsc_fd(const struct wsc *w)
{
    return w->s ? stream_fd(w->s) : w->fd;
}

bool wsc_is_open(const struct wsc *w)
{
    return w->state == WSC_OPEN;
}

int wsc_timeout_ms(const struct wsc *w)
{
    if (w->state == WSC_OPEN || w->state == WSC_FAILED)
        return -1;
    int64_t left = w->deadline - now_ms();
    return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

bool wsc_done(const struct wsc *w)
{
    if (w->state == WSC_FAILED)
        return true;
    if (w->state != WSC_OPEN)
        return false;
    return w->finished || (!wslay_event_want_read(w->ctx) && !wslay_event_want_write(w->ctx));
}

short wsc_events(const struct wsc *w)
{
    switch (w->state) {
    case WSC_CONNECTING:
        return POLLOUT;
    case WSC_TLS:
        return stream_events(w->s, false, false);
    case WSC_SENDING:
        return stream_events(w->s, false, true);
    case WSC_HEAD:
    case WSC_REFUSED:
        return stream_events(w->s, true, false);
    case WSC_OPEN:
        if (w->finished)
            return 0;
        return stream_events(w->s, !w->paused && wslay_event_want_read(w->ctx),
                             wslay_event_want_write(w->ctx));
    case WSC_FAILED:
    default:
        return 0;
    }
}

bool wsc_has_buffered(const struct wsc *w)
{
    return w->state == WSC_OPEN && (w->in_off < w->in.len || w->stalled || stream_pending(w->s)) &&
           !w->paused && !w->finished && wslay_event_want_read(w->ctx);
}

void wsc_pause_read(struct wsc *w, bool pause)
{
    w->paused = pause;
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
    if (w->io_err)
        return berr_make(reterr, ECONNRESET, "connection to berthd lost: %s", berr_msg(w->io_err));
    if (w->eof)
        return berr_make(reterr, ECONNRESET, "berthd closed the connection");
    return berr_make(reterr, EPROTO, "the WebSocket connection to berthd failed");
}

int wsc_process(struct wsc *w, short revents, struct berr **reterr)
{
    if (w->state != WSC_OPEN) {
        int r = handshake_step(w, revents, reterr);
        if (r < 0) {
            w->state = WSC_FAILED;
            w->s = stream_free(w->s);
            closep(&w->fd);
            return r;
        }
        if (w->state != WSC_OPEN)
            return 0;
        revents = 0; /* they were about the handshake */
    }
    if (w->finished)
        return 0;
    /* what a read waits for: POLLIN, or POLLOUT when TLS must write first */
    short read_wants = stream_events(w->s, true, false);
    if (((revents & (read_wants | POLLHUP | POLLERR)) || wsc_has_buffered(w)) && !w->paused &&
        wslay_event_want_read(w->ctx)) {
        w->stalled = false;
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
