/* buf.h - the growable byte buffer, in the manner of git's strbuf.
 *
 * Invariants: `buf` is never NULL and always NUL-terminated at `len`, so a
 * struct buf can be passed as a C string at any time. A buf must be initialized
 * with BUF_INIT or buf_init() before use. It may hold NUL bytes.
 */
#ifndef BERTH_BUF_H
#define BERTH_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include "util/macro.h"

struct buf {
    size_t alloc; /* 0 while buf points at the shared empty string */
    size_t len;
    char *buf;
};

extern char buf_slopbuf[];
#define BUF_INIT                                                                                   \
    {                                                                                              \
        .alloc = 0, .len = 0, .buf = buf_slopbuf                                                   \
    }

void buf_init(struct buf *b);
/* Frees the storage; the buf is reset to BUF_INIT and may be reused. */
void buf_release(struct buf *b);
/* Returns the string, which the caller now owns; the buf is reset to BUF_INIT. */
char *buf_detach(struct buf *b, size_t *ret_len);
/* Makes room for at least `extra` more bytes. */
void buf_grow(struct buf *b, size_t extra);
void buf_reset(struct buf *b);
void buf_add(struct buf *b, const void *data, size_t n);
void buf_adds(struct buf *b, const char *s);
void buf_addch(struct buf *b, char c);
void buf_addf(struct buf *b, const char *fmt, ...) _printf_(2, 3);
void buf_vaddf(struct buf *b, const char *fmt, va_list ap) _printf_(2, 0);
/* Removes the first n bytes. */
void buf_remove_front(struct buf *b, size_t n);
/* Strips trailing whitespace. */
void buf_rtrim(struct buf *b);

static inline void buf_releasep(struct buf *b)
{
    buf_release(b);
}
#define _cleanup_buf_ _cleanup_(buf_releasep)

#endif
