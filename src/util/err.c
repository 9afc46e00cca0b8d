/* err.c - error objects; see err.h. */
#include "util/err.h"

#include <stdarg.h>
#include <stdlib.h>

#include "util/buf.h"
#include "util/xalloc.h"

int berr_make(struct berr **reterr, int code, const char *fmt, ...)
{
    if (code <= 0)
        code = EIO;
    if (!reterr || *reterr)
        return -code;
    struct buf b = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vaddf(&b, fmt, ap);
    va_end(ap);
    struct berr *e = xmalloc(sizeof(*e));
    e->code = code;
    e->msg = buf_detach(&b, NULL);
    *reterr = e;
    return -code;
}

int berr_wrap(struct berr **reterr, const char *fmt, ...)
{
    if (!reterr || !*reterr)
        return -EIO;
    struct buf b = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vaddf(&b, fmt, ap);
    va_end(ap);
    buf_addf(&b, ": %s", (*reterr)->msg);
    free((*reterr)->msg);
    (*reterr)->msg = buf_detach(&b, NULL);
    return -(*reterr)->code;
}

struct berr *berr_free(struct berr *e)
{
    if (e) {
        free(e->msg);
        free(e);
    }
    return NULL;
}

const char *berr_msg(const struct berr *e)
{
    return e && e->msg ? e->msg : "unknown error";
}
