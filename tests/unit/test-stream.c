/* test-stream.c - the CLI's byte stream (cli/stream.h) on a socket pair: TLS
 * against an OpenSSL server in the same process (the host check, SNI, bytes
 * both ways with the socket full, decrypted bytes left pending), and plain TCP.
 *
 * main() makes a self-signed certificate for "localhost" and names it in
 * BERTH_CACERT before the first stream, since the stream's TLS context reads
 * its CAs once for the process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/stream.h"
#include "util/fs.h"
#include "util/xalloc.h"

static char dir[64];
static char *cert_file, *key_file;

/* Writes a self-signed certificate for the DNS name "localhost" and its key. */
static int make_pair(void)
{
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (!pkey || !x)
        return -1;
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pkey);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    X509_EXTENSION *san = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, "DNS:localhost");
    if (!san || X509_add_ext(x, san, -1) != 1 || X509_sign(x, pkey, EVP_sha256()) <= 0)
        return -1;
    X509_EXTENSION_free(san);
    FILE *f = fopen(cert_file, "w");
    if (!f || PEM_write_X509(f, x) != 1)
        return -1;
    fclose(f);
    f = fopen(key_file, "w");
    if (!f || PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) != 1)
        return -1;
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(pkey);
    return 0;
}

struct pair {
    struct stream *client;
    SSL_CTX *ctx;
    SSL *server; /* NULL for a plain stream: `peer` is the other end then */
    int peer;
};

/* A client stream for `host` (NULL: plain) and the server end. */
static void pair_open(struct pair *p, const char *host)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    p->peer = sv[1];
    p->server = NULL;
    p->ctx = NULL;
    struct berr *err = NULL;
    assert_int_equal(stream_new(sv[0], host, &p->client, &err), 0);
    if (!host)
        return;
    p->ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(p->ctx);
    assert_int_equal(SSL_CTX_use_certificate_file(p->ctx, cert_file, SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(p->ctx, key_file, SSL_FILETYPE_PEM), 1);
    p->server = SSL_new(p->ctx);
    assert_non_null(p->server);
    assert_int_equal(SSL_set_fd(p->server, p->peer), 1);
    SSL_set_accept_state(p->server);
}

static void pair_close(struct pair *p)
{
    p->client = stream_free(p->client);
    SSL_free(p->server);
    SSL_CTX_free(p->ctx);
    close(p->peer);
}

/* Waits a little for what the client's stream asks for (reading, writing). */
static void client_wait(struct pair *p, bool reading, bool writing)
{
    struct pollfd pfd = {.fd = stream_fd(p->client),
                         .events = stream_events(p->client, reading, writing)};
    (void)poll(&pfd, 1, 10);
}

/* Runs both sides of the handshake until the client's ends: its result. */
static int handshake(struct pair *p, struct berr **reterr)
{
    for (int i = 0; i < 1000; i++) {
        int r = stream_handshake(p->client, reterr);
        if (r != -EAGAIN)
            return r;
        (void)SSL_do_handshake(p->server);
        ERR_clear_error();
        client_wait(p, false, false);
    }
    fail_msg("the handshake did not end");
    return -ETIMEDOUT;
}

static void test_stream__tls_carries_bytes_both_ways(void **state)
{
    struct pair p;
    pair_open(&p, "localhost");
    struct berr *err = NULL;
    assert_int_equal(handshake(&p, &err), 0);
    assert_null(err);
    while (SSL_do_handshake(p.server) != 1) /* its last step waits for the client's Finished */
        client_wait(&p, true, false);
    assert_string_equal(SSL_get_servername(p.server, TLSEXT_NAMETYPE_host_name), "localhost");

    /* 4 MiB up: more than the socket holds, so writes must wait for the reader */
    size_t total = 4u << 20, sent = 0, got = 0;
    unsigned char *up = xmalloc(total), *down = xmalloc(total);
    for (size_t i = 0; i < total; i++)
        up[i] = (unsigned char)(i * 7 + i / 4096);
    bool waited = false;
    while (got < total) {
        /* write until the socket is full, then let the server read it all */
        while (sent < total) {
            ssize_t n = stream_write(p.client, up + sent, total - sent, false, &err);
            assert_true(n > 0 || n == -EAGAIN);
            if (n == -EAGAIN) {
                waited = true;
                break;
            }
            sent += (size_t)n;
        }
        for (;;) {
            int n = SSL_read(p.server, down + got, (int)(total - got));
            if (n <= 0) {
                assert_int_equal(SSL_get_error(p.server, n), SSL_ERROR_WANT_READ);
                break;
            }
            got += (size_t)n;
        }
    }
    assert_true(waited);
    assert_memory_equal(up, down, total);

    /* one 20000-byte write is two records: a small read leaves bytes pending */
    assert_int_equal(SSL_write(p.server, up, 20000), 20000);
    unsigned char small[100];
    ssize_t n;
    while ((n = stream_read(p.client, small, sizeof(small), &err)) == -EAGAIN)
        client_wait(&p, true, false);
    assert_int_equal(n, sizeof(small));
    assert_true(stream_pending(p.client));
    size_t have = sizeof(small);
    while (stream_pending(p.client)) {
        n = stream_read(p.client, down + have, 20000 - have, &err);
        assert_true(n > 0);
        have += (size_t)n;
    }
    while (have < 20000) {
        n = stream_read(p.client, down + have, 20000 - have, &err);
        if (n == -EAGAIN)
            client_wait(&p, true, false);
        else
            have += (size_t)n;
    }
    assert_memory_equal(small, up, sizeof(small));
    assert_memory_equal(down + sizeof(small), up + sizeof(small), 20000 - sizeof(small));

    /* the server's close_notify is the end of the stream */
    (void)SSL_shutdown(p.server);
    while ((n = stream_read(p.client, small, sizeof(small), &err)) == -EAGAIN)
        client_wait(&p, true, false);
    assert_int_equal(n, 0);
    assert_null(err);
    free(up);
    free(down);
    pair_close(&p);
}

static void test_stream__a_certificate_for_another_host_is_refused(void **state)
{
    static const struct {
        const char *host;
        const char *reason;
    } cases[] = {
        {"example.org", "certificate verify failed: hostname mismatch"},
        {"127.0.0.1", "certificate verify failed: IP address mismatch"},
        {"::1", "certificate verify failed: IP address mismatch"},
        {"sub.localhost", "certificate verify failed: hostname mismatch"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pair p;
        pair_open(&p, cases[i].host);
        struct berr *err = NULL;
        assert_int_equal(handshake(&p, &err), -EPROTO);
        assert_non_null(strstr(berr_msg(err), cases[i].reason));
        assert_non_null(strstr(berr_msg(err), cert_file)); /* which CAs were trusted */
        berr_free(err);
        /* a failed session is not shut down: nothing more is written */
        pair_close(&p);
    }
}

static void test_stream__plain_tcp_reads_writes_and_ends(void **state)
{
    struct pair p;
    pair_open(&p, NULL);
    struct berr *err = NULL;
    assert_int_equal(stream_handshake(p.client, &err), 0);
    assert_int_equal(stream_events(p.client, true, true), POLLIN | POLLOUT);
    assert_int_equal(stream_write(p.client, "ping", 4, false, &err), 4);
    char b[8];
    assert_int_equal(read(p.peer, b, sizeof(b)), 4);
    assert_memory_equal(b, "ping", 4);
    assert_int_equal(stream_read(p.client, b, sizeof(b), &err), -EAGAIN);
    assert_false(stream_pending(p.client));
    assert_int_equal(write(p.peer, "pong", 4), 4);
    shutdown(p.peer, SHUT_WR);
    assert_int_equal(stream_read(p.client, b, sizeof(b), &err), 4);
    assert_int_equal(stream_read(p.client, b, sizeof(b), &err), 0);
    assert_null(err);
    pair_close(&p);
}

int main(void)
{
    strcpy(dir, "/tmp/berth-test-stream-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    cert_file = xasprintf("%s/cert.pem", dir);
    key_file = xasprintf("%s/key.pem", dir);
    if (make_pair() < 0 || setenv("BERTH_CACERT", cert_file, 1) < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream__tls_carries_bytes_both_ways),
        cmocka_unit_test(test_stream__a_certificate_for_another_host_is_refused),
        cmocka_unit_test(test_stream__plain_tcp_reads_writes_and_ends),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    (void)rm_rf(dir);
    free(cert_file);
    free(key_file);
    return r;
}
