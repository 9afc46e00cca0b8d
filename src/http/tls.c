/* tls.c - OpenSSL behind tls.h: the context with the certificate, and
 * sessions on memory BIOs.
 *
 * Parts:
 *   - the context: TLS 1.2 and later, no renegotiation, the chain and key
 *     checked against each other before a reload replaces anything;
 *   - sessions: SSL objects in accept state whose read BIO takes the socket's
 *     bytes and whose write BIO collects what the socket is to send. A memory
 *     BIO grows as needed, so SSL_write always takes the whole buffer once
 *     the handshake is done.
 * SSL_new takes a reference on the context, so a reload frees the old
 * context only when its last session ends.
 */
#include "http/tls.h"

#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/macro.h"
#include "util/ssl-reason.h"
#include "util/xalloc.h"

struct tls_ctx {
    SSL_CTX *ctx;
    char *cert_file;
    char *key_file;
    char fingerprint[32 * 3];
};

struct tls_conn {
    SSL *ssl;
    BIO *in;  /* network to OpenSSL; owned by ssl */
    BIO *out; /* OpenSSL to network; owned by ssl */
    bool plain_http;
};

DEFINE_TRIVIAL_CLEANUP_FUNC(SSL_CTX *, SSL_CTX_free);

static int load(const char *cert_file, const char *key_file, SSL_CTX **ret, char *ret_fingerprint,
                struct berr **reterr)
{
    ERR_clear_error();
    _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return berr_make(reterr, ENOMEM, "cannot make a TLS context: %s", ssl_reason());
    (void)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1)
        return berr_make(reterr, EINVAL, "cannot load the certificate '%s': %s", cert_file,
                         ssl_reason());
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 &&
        ERR_GET_REASON(ERR_peek_error()) != X509_R_KEY_VALUES_MISMATCH)
        return berr_make(reterr, EINVAL, "cannot load the key '%s': %s", key_file, ssl_reason());
    if (SSL_CTX_check_private_key(ctx) != 1)
        return berr_make(reterr, EINVAL, "the key '%s' does not belong to the certificate '%s': %s",
                         key_file, cert_file, ssl_reason());
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    X509 *leaf = SSL_CTX_get0_certificate(ctx);
    if (!leaf || X509_digest(leaf, EVP_sha256(), md, &n) != 1 || n != 32)
        return berr_make(reterr, EINVAL, "cannot read the certificate '%s': %s", cert_file,
                         ssl_reason());
    for (unsigned int i = 0; i < n; i++)
        snprintf(ret_fingerprint + 3 * i, 4, i + 1 < n ? "%02X:" : "%02X", md[i]);
    *ret = TAKE_PTR(ctx);
    return 0;
}

int tls_ctx_new(const char *cert_file, const char *key_file, struct tls_ctx **ret,
                struct berr **reterr)
{
    struct tls_ctx *t = xcalloc(1, sizeof(*t));
    int r = load(cert_file, key_file, &t->ctx, t->fingerprint, reterr);
    if (r < 0) {
        free(t);
        return r;
    }
    t->cert_file = xstrdup(cert_file);
    t->key_file = xstrdup(key_file);
    *ret = t;
    return 0;
}

int tls_ctx_reload(struct tls_ctx *t, struct berr **reterr)
{
    SSL_CTX *ctx = NULL;
    char fingerprint[sizeof(t->fingerprint)];
    int r = load(t->cert_file, t->key_file, &ctx, fingerprint, reterr);
    if (r < 0)
        return r;
    SSL_CTX_free(t->ctx);
    t->ctx = ctx;
    memcpy(t->fingerprint, fingerprint, sizeof(fingerprint));
    return 0;
}

const char *tls_ctx_fingerprint(const struct tls_ctx *t)
{
    return t->fingerprint;
}

void tls_ctx_free(struct tls_ctx *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t->cert_file);
    free(t->key_file);
    free(t);
}

struct tls_conn *tls_conn_new(struct tls_ctx *t)
{
    struct tls_conn *tc = xcalloc(1, sizeof(*tc));
    tc->ssl = SSL_new(t->ctx);
    tc->in = BIO_new(BIO_s_mem());
    tc->out = BIO_new(BIO_s_mem());
    if (!tc->ssl || !tc->in || !tc->out)
        abort(); /* out of memory, as xmalloc */
    /* an empty input BIO means "wait for more", not end of file */
    BIO_set_mem_eof_return(tc->in, -1);
    SSL_set_bio(tc->ssl, tc->in, tc->out);
    SSL_set_accept_state(tc->ssl);
    return tc;
}

void tls_conn_free(struct tls_conn *tc)
{
    if (!tc)
        return;
    SSL_free(tc->ssl); /* and both BIOs */
    free(tc);
}

void tls_conn_feed(struct tls_conn *tc, const void *bytes, size_t len)
{
    if (len && BIO_write(tc->in, bytes, (int)len) != (int)len)
        abort(); /* a memory BIO only refuses when out of memory */
}

ssize_t tls_conn_read(struct tls_conn *tc, void *out, size_t len)
{
    ERR_clear_error();
    int n = SSL_read(tc->ssl, out, len > INT_MAX ? INT_MAX : (int)len);
    if (n > 0)
        return n;
    switch (SSL_get_error(tc->ssl, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        return -EPIPE;
    default:
        tc->plain_http = ERR_GET_REASON(ERR_peek_error()) == SSL_R_HTTP_REQUEST;
        ERR_clear_error();
        return -EPROTO;
    }
}

int tls_conn_write(struct tls_conn *tc, const void *bytes, size_t len)
{
    if (!len)
        return 0;
    ERR_clear_error();
    if (!SSL_is_init_finished(tc->ssl))
        return -EPROTO;
    int n = SSL_write(tc->ssl, bytes, len > INT_MAX ? INT_MAX : (int)len);
    ERR_clear_error();
    return n > 0 && (size_t)n == len ? 0 : -EPROTO;
}

void tls_conn_shutdown(struct tls_conn *tc)
{
    ERR_clear_error();
    if (SSL_is_init_finished(tc->ssl))
        (void)SSL_shutdown(tc->ssl);
    ERR_clear_error();
}

size_t tls_conn_output(struct tls_conn *tc, const char **ret)
{
    char *p = NULL;
    long n = BIO_get_mem_data(tc->out, &p);
    *ret = p;
    return n > 0 ? (size_t)n : 0;
}

void tls_conn_output_clear(struct tls_conn *tc)
{
    (void)BIO_reset(tc->out);
}

bool tls_conn_plain_http(const struct tls_conn *tc)
{
    return tc->plain_http;
}
