/* strv.c - NULL-terminated string vectors; see strv.h. */
#include "util/strv.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/xalloc.h"

char *strv_empty[1];

void strv_init(struct strv *s)
{
    *s = (struct strv)STRV_INIT;
}

void strv_release(struct strv *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    if (s->alloc)
        free(s->v);
    strv_init(s);
}

void strv_push_owned(struct strv *s, char *str)
{
    if (s->n + 2 > s->alloc) {
        size_t n = s->alloc ? s->alloc * 2 : 8;
        char **v = s->alloc ? s->v : NULL;
        s->v = xrealloc(v, n * sizeof(char *));
        s->alloc = n;
    }
    s->v[s->n++] = str;
    s->v[s->n] = NULL;
}

void strv_push(struct strv *s, const char *str)
{
    strv_push_owned(s, xstrdup(str));
}

void strv_pushf(struct strv *s, const char *fmt, ...)
{
    struct buf b = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vaddf(&b, fmt, ap);
    va_end(ap);
    strv_push_owned(s, buf_detach(&b, NULL));
}

void strv_pushl(struct strv *s, ...)
{
    va_list ap;
    va_start(ap, s);
    for (const char *a; (a = va_arg(ap, const char *));)
        strv_push(s, a);
    va_end(ap);
}

static ssize_t env_find(const struct strv *s, const char *name)
{
    size_t l = strlen(name);
    for (size_t i = 0; i < s->n; i++)
        if (strncmp(s->v[i], name, l) == 0 && s->v[i][l] == '=')
            return (ssize_t)i;
    return -1;
}

void strv_setenv(struct strv *s, const char *name, const char *value)
{
    char *e = xasprintf("%s=%s", name, value);
    ssize_t i = env_find(s, name);
    if (i >= 0) {
        free(s->v[i]);
        s->v[i] = e;
    } else {
        strv_push_owned(s, e);
    }
}

const char *strv_getenv(const struct strv *s, const char *name)
{
    ssize_t i = env_find(s, name);
    return i >= 0 ? s->v[i] + strlen(name) + 1 : NULL;
}

bool strv_contains(const struct strv *s, const char *str)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], str) == 0)
            return true;
    return false;
}

char *strv_join(const struct strv *s, const char *sep)
{
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < s->n; i++) {
        if (i)
            buf_adds(&b, sep);
        buf_adds(&b, s->v[i]);
    }
    return buf_detach(&b, NULL);
}
