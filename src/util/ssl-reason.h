/* ssl-reason.h - OpenSSL's reason for a failure, for error messages: the TLS
 * server (http/tls.c) and the CLI's TLS stream (cli/stream.c). */
#ifndef BERTH_UTIL_SSL_REASON_H
#define BERTH_UTIL_SSL_REASON_H

#include <openssl/err.h>

/* OpenSSL's first reason in the thread's queue (the cause), and an empty queue. */
static inline const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_error();
    const char *s = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return s ? s : "unknown error";
}

#endif
