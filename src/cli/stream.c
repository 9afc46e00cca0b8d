/* stream.c - plain TCP or OpenSSL TLS under the CLI's WebSocket client (stream.h).
 *
 * A plain stream is recv() and send() on the socket. A TLS stream is an SSL
 * object on the same socket (SSL_set_fd), in connect state: SSL_connect,
 * SSL_read and SSL_write answer SSL_ERROR_WANT_READ or _WANT_WRITE when the
 * socket would block, and each answer is kept as the poll events its operation
 * waits for (hs_wants, read_wants, write_wants), for stream_events(). The first
 * TLS stream makes the one SSL_CTX (tls_ctx), which then lives as long as the
 * process: its CA store is read once.
 *
 * OpenSSL's error queue is per thread; every call into it starts from an empty
 * queue and a failure's reason is taken from it at once (ssl_reason()).
 */
#include "cli/stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/client.h"
#include "util/ssl-reason.h"
#include "util/xalloc.h"

struct stream {
    int fd;
    SSL *ssl;   /* NULL: plain TCP */
    char *host; /* the TLS server's name, for messages */
    bool handshaken;
    bool broken; /* TLS failed: no close_notify then */
    short hs_wants, read_wants, write_wants;
};

static SSL_CTX *tls_ctx;

DEFINE_TRIVIAL_CLEANUP_FUNC(SSL_CTX *, SSL_CTX_free);

int stream_tls_init(struct berr **reterr)
{
    if (tls_ctx)
        return 0;
    ERR_clear_error();
    _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return berr_make(reterr, ENOMEM, "cannot make a TLS context: %s", ssl_reason());
    (void)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* an end without close_notify reads as the end: the WebSocket's close
     * frame, not TLS, tells a clean end from a cut one */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* a write may take part of the buffer, and its retry may come from
     * another buffer with the same bytes (wslay masks client frames into a
     * scratch buffer of its own) */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    const char *cacert = client_cacert();
    if (cacert) {
        /* OpenSSL's reason for a file it cannot open names no cause */
        _cleanup_close_ int fd = open(cacert, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return berr_make(reterr, errno, "cannot read the CA file '%s' (BERTH_CACERT): %s",
                             cacert, strerror(errno));
        if (SSL_CTX_load_verify_locations(ctx, cacert, NULL) != 1)
            return berr_make(reterr, EINVAL,
                             "cannot load the CA certificates in '%s' (BERTH_CACERT): %s", cacert,
                             ssl_reason());
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        return berr_make(reterr, EIO, "cannot load the system's CA certificates: %s", ssl_reason());
    }
    tls_ctx = TAKE_PTR(ctx);
    return 0;
}

/* Whether `host` is an IPv4 or IPv6 address rather than a DNS name. */
static bool host_is_ip(const char *host)
{
    unsigned char addr[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

int stream_new(int fd, const char *tls_host, struct stream **ret_s, struct berr **reterr)
{
    _cleanup_(stream_freep) struct stream *s = xcalloc(1, sizeof(*s));
    s->fd = fd;
    s->read_wants = POLLIN;
    s->write_wants = POLLOUT;
    if (!tls_host) {
        s->handshaken = true;
        *ret_s = TAKE_PTR(s);
        return 0;
    }
    int r = stream_tls_init(reterr);
    if (r < 0)
        return r;
    s->host = xstrdup(tls_host);
    s->hs_wants = POLLOUT;
    ERR_clear_error();
    s->ssl = SSL_new(tls_ctx);
    if (!s->ssl)
        return berr_make(reterr, ENOMEM, "cannot start TLS: %s", ssl_reason());
    /* the name the certificate must carry: an address is matched against its IP
     * SANs and never sent as SNI (RFC 6066, 3) */
    X509_VERIFY_PARAM *param = SSL_get0_param(s->ssl);
    bool ip = host_is_ip(tls_host);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (ip ? X509_VERIFY_PARAM_set1_ip_asc(param, tls_host) != 1
           : X509_VERIFY_PARAM_set1_host(param, tls_host, 0) != 1 ||
                 SSL_set_tlsext_host_name(s->ssl, tls_host) != 1)
        return berr_make(reterr, EINVAL, "cannot verify TLS for the host '%s': %s", tls_host,
                         ssl_reason());
    if (SSL_set_fd(s->ssl, fd) != 1)
        return berr_make(reterr, EIO, "cannot start TLS: %s", ssl_reason());
    SSL_set_connect_state(s->ssl);
    *ret_s = TAKE_PTR(s);
    return 0;
}

struct stream *stream_free(struct stream *s)
{
    if (!s)
        return NULL;
    if (s->ssl) {
        if (s->handshaken && !s->broken) {
            /* one try, without waiting: the peer learns the end is meant */
            ERR_clear_error();
            (void)SSL_shutdown(s->ssl);
            ERR_clear_error();
        }
        SSL_free(s->ssl);
    }
    closep(&s->fd);
    free(s->host);
    free(s);
    return NULL;
}

int stream_fd(const struct stream *s)
{
    return s->fd;
}

short stream_events(const struct stream *s, bool reading, bool writing)
{
    if (!s->handshaken)
        return s->hs_wants;
    return (short)((reading ? s->read_wants : 0) | (writing ? s->write_wants : 0));
}

bool stream_pending(const struct stream *s)
{
    return s->ssl && s->handshaken && SSL_pending(s->ssl) > 0;
}

/* An SSL call on s answered `n`: -EAGAIN with *wants set to what it waits for,
 * 0 for the end of the stream, or the error (`what` names the step). */
static int tls_result(struct stream *s, int n, short *wants, const char *what, struct berr **reterr)
{
    int e = SSL_get_error(s->ssl, n);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *wants = POLLIN;
        ERR_clear_error();
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        *wants = POLLOUT;
        ERR_clear_error();
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return 0;
    case SSL_ERROR_SYSCALL:
        s->broken = true;
        if (ERR_peek_error())
            return berr_make(reterr, EPROTO, "TLS %s failed: %s", what, ssl_reason());
        if (errno)
            return berr_make(reterr, errno, "%s", strerror(errno));
        return berr_make(reterr, ECONNRESET, "the connection ended during TLS %s", what);
    default:
        s->broken = true;
        return berr_make(reterr, EPROTO, "TLS %s failed: %s", what, ssl_reason());
    }
}

int stream_handshake(struct stream *s, struct berr **reterr)
{
    if (s->handshaken)
        return 0;
    ERR_clear_error();
    errno = 0;
    int n = SSL_connect(s->ssl);
    if (n == 1) {
        s->handshaken = true;
        return 0;
    }
    long v = SSL_get_verify_result(s->ssl);
    _cleanup_berr_ struct berr *err = NULL;
    int r = tls_result(s, n, &s->hs_wants, "handshake", &err);
    if (r == -EAGAIN)
        return r;
    if (r == 0) /* a close_notify instead of a handshake */
        return berr_make(reterr, ECONNRESET, "the connection ended during the TLS handshake");
    if (v != X509_V_OK && client_cacert())
        return berr_make(reterr, EPROTO,
                         "certificate verify failed: %s (for '%s', trusting the CAs in '%s' from "
                         "BERTH_CACERT)",
                         X509_verify_cert_error_string(v), s->host, client_cacert());
    if (v != X509_V_OK)
        return berr_make(reterr, EPROTO,
                         "certificate verify failed: %s (for '%s', trusting the system's CAs; "
                         "set BERTH_CACERT to the file of a private CA)",
                         X509_verify_cert_error_string(v), s->host);
    return berr_make(reterr, -r, "%s", berr_msg(err));
}

ssize_t stream_read(struct stream *s, void *buf, size_t len, struct berr **reterr)
{
    if (!s->ssl) {
        for (;;) {
            ssize_t n = recv(s->fd, buf, len, 0);
            if (n >= 0)
                return n;
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return -EAGAIN;
            return berr_make(reterr, errno, "%s", strerror(errno));
        }
    }
    ERR_clear_error();
    errno = 0;
    int n = SSL_read(s->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (n > 0) {
        s->read_wants = POLLIN;
        return n;
    }
    return tls_result(s, n, &s->read_wants, "read", reterr);
}

ssize_t stream_write(struct stream *s, const void *buf, size_t len, bool more, struct berr **reterr)
{
    if (len == 0)
        return 0;
    if (!s->ssl) {
        for (;;) {
            ssize_t n = send(s->fd, buf, len, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
            if (n >= 0)
                return n;
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return -EAGAIN;
            return berr_make(reterr, errno, "%s", strerror(errno));
        }
    }
    ERR_clear_error();
    errno = 0;
    int n = SSL_write(s->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (n > 0) {
        s->write_wants = POLLOUT;
        return n;
    }
    int r = tls_result(s, n, &s->write_wants, "write", reterr);
    /* a write has no end of stream: SSL_write answers 0 only on failure */
    return r == 0 ? berr_make(reterr, EPIPE, "the TLS connection is closed") : r;
}
