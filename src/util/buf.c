/* buf.c - growable byte buffer; see buf.h for the invariants. */
#include "util/buf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

char buf_slopbuf[1];

void buf_init(struct buf *b)
{
    *b = (struct buf)BUF_INIT;
}

void buf_release(struct buf *b)
{
    if (b->alloc)
        free(b->buf);
    buf_init(b);
}

char *buf_detach(struct buf *b, size_t *ret_len)
{
    char *s;
    if (ret_len)
        *ret_len = b->len;
    if (!b->alloc)
        s = xstrdup("");
    else
        s = b->buf;
    buf_init(b);
    return s;
}

void buf_grow(struct buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->alloc)
        return;
    size_t n = b->alloc ? b->alloc : 64;
    while (n < need)
        n *= 2;
    if (!b->alloc) {
        b->buf = xmalloc(n);
        b->buf[0] = 0;
    } else {
        b->buf = xrealloc(b->buf, n);
    }
    b->alloc = n;
}

void buf_reset(struct buf *b)
{
    if (b->alloc) {
        b->len = 0;
        b->buf[0] = 0;
    }
}

void buf_add(struct buf *b, const void *data, size_t n)
{
    if (!n)
        return;
    buf_grow(b, n);
    memcpy(b->buf + b->len, data, n);
    b->len += n;
    b->buf[b->len] = 0;
}

void buf_adds(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

void buf_addch(struct buf *b, char c)
{
    buf_add(b, &c, 1);
}

void buf_vaddf(struct buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n <= 0)
        return;
    buf_grow(b, (size_t)n);
    vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void buf_addf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vaddf(b, fmt, ap);
    va_end(ap);
}

void buf_remove_front(struct buf *b, size_t n)
{
    if (n >= b->len) {
        buf_reset(b);
        return;
    }
    memmove(b->buf, b->buf + n, b->len - n);
    b->len -= n;
    b->buf[b->len] = 0;
}

void buf_rtrim(struct buf *b)
{
    while (b->len && isspace((unsigned char)b->buf[b->len - 1]))
        b->len--;
    if (b->alloc)
        b->buf[b->len] = 0;
}
