/* urlscan.h - finding the local URLs a program prints ("Local:
 * http://localhost:5173/"), as Codespaces does, so their ports can be offered.
 *
 * Output arrives in pieces, with colours: a scanner keeps the unfinished tail
 * of the last piece and drops terminal escape sequences (ESC [ ... letter) and
 * carriage returns before matching. Matched: http:// or https:// followed by
 * localhost, 127.0.0.1, 0.0.0.0 or [::], a port, and an optional path.
 */
#ifndef BERTH_URLSCAN_H
#define BERTH_URLSCAN_H

#include <stddef.h>

#include "util/buf.h"

struct urlscan {
    struct buf line; /* the current line so far, escapes removed */
    int esc;         /* 0, or where in an escape sequence we are */
};

#define URLSCAN_INIT                                                                               \
    {                                                                                              \
        .line = BUF_INIT, .esc = 0                                                                 \
    }

typedef void (*urlscan_cb)(int port, const char *path, void *data);

/* Feeds output; cb is called for each URL found on every finished line. */
void urlscan_feed(struct urlscan *s, const char *data, size_t len, urlscan_cb cb, void *data_);
/* Scans what is left (the last line without a newline). */
void urlscan_flush(struct urlscan *s, urlscan_cb cb, void *data);
void urlscan_release(struct urlscan *s);

#endif
