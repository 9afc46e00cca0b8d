/* err.h - error objects that carry a message a person can read.
 *
 * A function that can fail returns a negative errno; where the cause must be
 * read by a person it also fills `struct berr **reterr` (always the last
 * parameter, may be NULL). The error is made where the failure happens and
 * gains context on its way up (crun's make_error / error_wrap):
 *
 *     return berr_wrap(reterr, "pull image '%s'", name);
 *
 * turns "manifest unknown" into "pull image 'x': manifest unknown".
 */
#ifndef BERTH_ERR_H
#define BERTH_ERR_H

#include "util/macro.h"

struct berr {
    int code; /* positive errno */
    char *msg;
};

/* Sets *reterr (if reterr is not NULL and *reterr is NULL) and returns -code. */
int berr_make(struct berr **reterr, int code, const char *fmt, ...) _printf_(3, 4);
/* Prepends "context: " to the message of *reterr and returns its -code (or -EIO). */
int berr_wrap(struct berr **reterr, const char *fmt, ...) _printf_(2, 3);
/* Frees the error; accepts NULL; returns NULL. */
struct berr *berr_free(struct berr *e);
/* The message, or "unknown error" for NULL. */
const char *berr_msg(const struct berr *e);

DEFINE_TRIVIAL_CLEANUP_FUNC(struct berr *, berr_free)
#define _cleanup_berr_ _cleanup_(berr_freep)

#endif
