/* stream.h - the byte stream under the CLI's WebSocket client: a connected TCP
 * socket, plain or inside TLS (OpenSSL).
 *
 * A stream takes a connected, non-blocking socket and reads and writes it
 * without blocking, for a caller that polls the socket itself (wsclient.c). For
 * TLS it first runs the client handshake (stream_handshake()), then reads and
 * writes through OpenSSL. Because TLS may need to write while the caller reads
 * (and read while it writes), stream_events() says what to poll the socket for,
 * given what the caller wants to do; and because OpenSSL decrypts a whole record
 * at a time, bytes can wait in memory that poll() will not announce:
 * stream_pending() says so.
 *
 * The TLS side: one SSL_CTX for the process, made on first use (or by
 * stream_tls_init()), trusting the CA file client_cacert() names
 * ($BERTH_CACERT, as curl does in client.c) or else the system's default CA
 * paths. TLS 1.2 at least, no renegotiation. The server's certificate must
 * chain to those CAs and name the host: a DNS name (also sent as SNI) or an IP
 * address, as the server URL gives it. Verification is never turned off.
 *
 * A write that answered -EAGAIN must be offered again with at least the same
 * bytes (OpenSSL's rule for a retried SSL_write; wslay and the handshake
 * request do so). Writes do not raise SIGPIPE on a plain stream; over TLS
 * OpenSSL writes the socket itself, so the caller ignores SIGPIPE (the CLI's
 * WebSocket commands all do).
 *
 * Errors follow err.h. The messages are the cause alone ("Connection reset by
 * peer", "certificate verify failed: …"); the caller says what was being done.
 *   -EAGAIN        not now: poll for stream_events() and try again (no message)
 *   -EPROTO        TLS failed: the handshake or a record (OpenSSL's reason)
 *   -ECONNRESET    the peer went away during the TLS handshake
 *   -errno         the socket failed
 */
#ifndef BERTH_CLI_STREAM_H
#define BERTH_CLI_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/err.h"

struct stream;

/* Makes the process's TLS context if it is not made yet: fails when the CA file
 * in $BERTH_CACERT does not load (the message names it). For an early, clear
 * error before connecting; stream_new() calls it too. */
int stream_tls_init(struct berr **reterr);

/* Makes a stream on the connected socket `fd`, which it owns from then on (also
 * when it fails: fd is closed). `tls_host` NULL: plain TCP; else TLS with the
 * server `tls_host` (a host name, or an IP address without brackets), whose
 * handshake stream_handshake() then runs. */
int stream_new(int fd, const char *tls_host, struct stream **ret_s, struct berr **reterr);
/* Sends TLS's close_notify when it can without blocking, closes the socket and
 * frees everything; accepts NULL; returns NULL. */
struct stream *stream_free(struct stream *s);

/* The socket, to poll. */
int stream_fd(const struct stream *s);
/* Moves the TLS handshake on without blocking. Returns 0 when it is over (at
 * once for plain TCP), -EAGAIN while it goes on, or the error (a certificate the
 * CAs do not vouch for, or one for another host: "certificate verify failed:
 * REASON (trusting WHICH CAs)"). */
int stream_handshake(struct stream *s, struct berr **reterr);
/* What to poll the socket for: during the handshake what it waits for; after
 * it, for `reading` and for `writing`, what the last read or write that could
 * not go on waited for (POLLIN and POLLOUT by default). */
short stream_events(const struct stream *s, bool reading, bool writing);
/* Whether received bytes wait decrypted in memory: read them without polling. */
bool stream_pending(const struct stream *s);

/* Reads up to `len` bytes. Returns how many (> 0), 0 at the end of the stream
 * (a TLS close_notify, or TCP's end without one: the WebSocket's own close
 * says whether the end was clean), -EAGAIN, or the error. */
ssize_t stream_read(struct stream *s, void *buf, size_t len, struct berr **reterr);
/* Writes up to `len` bytes (`more`: more follow at once, a hint for TCP).
 * Returns how many (> 0), -EAGAIN, or the error. */
ssize_t stream_write(struct stream *s, const void *buf, size_t len, bool more,
                     struct berr **reterr);

DEFINE_TRIVIAL_CLEANUP_FUNC(struct stream *, stream_free)

#endif
