/* test-tls.c - the TLS module without a socket: certificates that load or
 * not, a reload that keeps the old pair on failure, and a session driven
 * through its memory BIOs by an OpenSSL client in the same process.
 *
 * Each test makes its own self-signed certificates (EC P-256) in a temporary
 * directory, so the tests need no openssl binary and no network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/tls.h"
#include "util/buf.h"
#include "util/fs.h"
#include "util/xalloc.h"

struct fixture {
    char dir[64];
    char *cert, *key; /* the pair tls_ctx_new is given */
};

/* Writes a new self-signed certificate for "localhost" and its key. */
static void make_pair(const char *cert_file, const char *key_file)
{
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    assert_non_null(pkey);
    assert_non_null(x);
    static int serial = 1;
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pkey);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
    FILE *f = fopen(cert_file, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
    f = fopen(key_file, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(pkey);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/berth-test-tls-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->cert = xasprintf("%s/cert.pem", f->dir);
    f->key = xasprintf("%s/key.pem", f->dir);
    make_pair(f->cert, f->key);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(rm_rf(f->dir), 0);
    free(f->cert);
    free(f->key);
    free(f);
    return 0;
}

/* Moves what each side has written to the other until neither has more;
 * the server's plaintext is added to got. Returns the server's last
 * tls_conn_read: 0, or -EPIPE once the client has ended the session. */
static ssize_t shuttle(struct tls_conn *server, SSL *client, BIO *client_in, BIO *client_out,
                       struct buf *got)
{
    ssize_t last = 0;
    for (int round = 0; round < 20; round++) {
        bool moved = false;
        char bytes[4096];
        int n = BIO_read(client_out, bytes, sizeof(bytes));
        if (n > 0) {
            tls_conn_feed(server, bytes, (size_t)n);
            moved = true;
        }
        while ((last = tls_conn_read(server, bytes, sizeof(bytes))) > 0)
            buf_add(got, bytes, (size_t)last);
        const char *out = NULL;
        size_t len = tls_conn_output(server, &out);
        if (len) {
            assert_int_equal(BIO_write(client_in, out, (int)len), (int)len);
            tls_conn_output_clear(server);
            moved = true;
        }
        if (!SSL_is_init_finished(client))
            (void)SSL_do_handshake(client);
        if (!moved)
            break;
    }
    return last;
}

static void test_tls__a_missing_or_mismatched_pair_is_named(void **state)
{
    struct fixture *f = *state;
    struct tls_ctx *t = NULL;
    struct berr *e = NULL;
    _cleanup_free_ char *missing = xasprintf("%s/none.pem", f->dir);
    assert_int_equal(tls_ctx_new(missing, f->key, &t, &e), -EINVAL);
    assert_null(t);
    assert_non_null(strstr(berr_msg(e), "none.pem"));
    e = berr_free(e);
    _cleanup_free_ char *other_cert = xasprintf("%s/other.pem", f->dir);
    _cleanup_free_ char *other_key = xasprintf("%s/other.key", f->dir);
    make_pair(other_cert, other_key);
    assert_int_equal(tls_ctx_new(f->cert, other_key, &t, &e), -EINVAL);
    assert_non_null(strstr(berr_msg(e), "does not belong"));
    e = berr_free(e);
}

static void test_tls__a_bad_reload_keeps_the_pair_in_use(void **state)
{
    struct fixture *f = *state;
    struct tls_ctx *t = NULL;
    assert_int_equal(tls_ctx_new(f->cert, f->key, &t, NULL), 0);
    _cleanup_free_ char *first = xstrdup(tls_ctx_fingerprint(t));
    assert_int_equal(strlen(first), 32 * 3 - 1);
    write_file(f->cert, "not a certificate\n");
    struct berr *e = NULL;
    assert_int_equal(tls_ctx_reload(t, &e), -EINVAL);
    assert_non_null(strstr(berr_msg(e), "cert.pem"));
    e = berr_free(e);
    assert_string_equal(tls_ctx_fingerprint(t), first);
    make_pair(f->cert, f->key);
    assert_int_equal(tls_ctx_reload(t, NULL), 0);
    assert_string_not_equal(tls_ctx_fingerprint(t), first);
    tls_ctx_free(t);
}

static void test_tls__a_session_carries_bytes_both_ways(void **state)
{
    struct fixture *f = *state;
    struct tls_ctx *t = NULL;
    assert_int_equal(tls_ctx_new(f->cert, f->key, &t, NULL), 0);
    struct tls_conn *server = tls_conn_new(t);
    tls_ctx_free(t); /* the session keeps what it uses */

    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL *client = SSL_new(cctx);
    BIO *client_in = BIO_new(BIO_s_mem()), *client_out = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(client_in, -1);
    SSL_set_bio(client, client_in, client_out);
    SSL_set_connect_state(client);

    struct buf got = BUF_INIT;
    char buf[256];
    assert_int_equal(tls_conn_write(server, "early", 5), -EPROTO); /* no session yet */
    (void)SSL_do_handshake(client);
    assert_int_equal(shuttle(server, client, client_in, client_out, &got), 0);
    assert_true(SSL_is_init_finished(client));

    assert_int_equal(SSL_write(client, "GET / HTTP/1.1\r\n\r\n", 18), 18);
    assert_int_equal(shuttle(server, client, client_in, client_out, &got), 0);
    assert_int_equal(got.len, 18);
    assert_memory_equal(got.buf, "GET / HTTP/1.1\r\n\r\n", 18);

    assert_int_equal(tls_conn_write(server, "HTTP/1.1 204 No Content\r\n\r\n", 27), 0);
    (void)shuttle(server, client, client_in, client_out, &got);
    assert_int_equal(SSL_read(client, buf, sizeof(buf)), 27);
    assert_memory_equal(buf, "HTTP/1.1 204", 12);

    /* the client's close_notify ends the session */
    (void)SSL_shutdown(client);
    assert_int_equal(shuttle(server, client, client_in, client_out, &got), -EPIPE);
    buf_release(&got);

    SSL_free(client);
    SSL_CTX_free(cctx);
    tls_conn_free(server);
}

static void test_tls__plain_http_is_recognised(void **state)
{
    struct fixture *f = *state;
    struct tls_ctx *t = NULL;
    assert_int_equal(tls_ctx_new(f->cert, f->key, &t, NULL), 0);
    struct tls_conn *server = tls_conn_new(t);
    const char *req = "GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n";
    tls_conn_feed(server, req, strlen(req));
    char buf[64];
    assert_int_equal(tls_conn_read(server, buf, sizeof(buf)), -EPROTO);
    assert_true(tls_conn_plain_http(server));
    tls_conn_free(server);

    /* other bytes that are not TLS fail too, but are not called HTTP */
    server = tls_conn_new(t);
    tls_conn_feed(server, "\x16\x09\x09\x00\x05hello", 10);
    assert_int_equal(tls_conn_read(server, buf, sizeof(buf)), -EPROTO);
    assert_false(tls_conn_plain_http(server));
    tls_conn_free(server);
    tls_ctx_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tls__a_missing_or_mismatched_pair_is_named, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tls__a_bad_reload_keeps_the_pair_in_use, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tls__a_session_carries_bytes_both_ways, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tls__plain_http_is_recognised, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
