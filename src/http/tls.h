/* tls.h - TLS for the HTTP server: the certificate, and one session per
 * connection on a pair of memory BIOs.
 *
 * A struct tls_ctx is the certificate chain and key, read from two files.
 * tls_ctx_reload reads them again; new sessions get the new pair, sessions
 * under way keep the one they began with, and files that do not load leave
 * the old pair in use.
 *
 * A struct tls_conn never sees the socket: the server hands it what it read
 * (tls_conn_feed), takes the plaintext out (tls_conn_read), hands it what to
 * send (tls_conn_write) and sends what tls_conn_output shows. The handshake
 * happens inside these calls, so a connection needs no other state for it.
 * OpenSSL errors stay in the session: every call clears the thread's queue.
 */
#ifndef BERTH_HTTP_TLS_H
#define BERTH_HTTP_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/err.h"

struct tls_ctx;
struct tls_conn;

/* Reads the PEM certificate chain (the server's first) and its private key.
 * Returns 0 and *ret, or -EINVAL with the file and OpenSSL's reason in
 * *reterr. */
int tls_ctx_new(const char *cert_file, const char *key_file, struct tls_ctx **ret,
                struct berr **reterr);
/* Reads both files again. On failure (-EINVAL, *reterr) the old pair stays. */
int tls_ctx_reload(struct tls_ctx *t, struct berr **reterr);
/* The SHA-256 fingerprint of the certificate in use, "AB:CD:...", for logs. */
const char *tls_ctx_fingerprint(const struct tls_ctx *t);
/* Frees the context; sessions made from it keep what they use. NULL is fine. */
void tls_ctx_free(struct tls_ctx *t);

/* A server-side session with the context's current certificate. */
struct tls_conn *tls_conn_new(struct tls_ctx *t);
void tls_conn_free(struct tls_conn *tc);

/* Hands over bytes read from the socket (all of them are kept). */
void tls_conn_feed(struct tls_conn *tc, const void *bytes, size_t len);
/* Decrypts into out: the number of bytes (> 0), 0 when more input is needed,
 * -EPIPE when the peer ended the session, -EPROTO when the handshake or a
 * record failed (tls_conn_plain_http tells whether plain HTTP came). */
ssize_t tls_conn_read(struct tls_conn *tc, void *out, size_t len);
/* Encrypts bytes for sending: 0, or -EPROTO (no session yet, or it failed). */
int tls_conn_write(struct tls_conn *tc, const void *bytes, size_t len);
/* Queues the close_notify alert, once the handshake is done. */
void tls_conn_shutdown(struct tls_conn *tc);
/* What is to be sent: *ret points at it until tls_conn_output_clear. */
size_t tls_conn_output(struct tls_conn *tc, const char **ret);
void tls_conn_output_clear(struct tls_conn *tc);
/* Whether the session failed because the client spoke plain HTTP. */
bool tls_conn_plain_http(const struct tls_conn *tc);

#endif
