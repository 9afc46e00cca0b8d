/* run.h - run a program from an argv array and wait for it (git's run-command).
 *
 * This is the blocking form, for berthd's worker threads and the CLI; never call
 * it on the event loop. Programs are never run through a shell string: the
 * argv is passed to execve as it is.
 *
 * The caller fills a struct run_cmd (RUN_CMD_INIT), calls run_cmd(), then
 * run_cmd_release(). stdin is /dev/null; stdout and stderr are merged and, if
 * `line_cb` is set, handed over line by line as they arrive; if `capture` is
 * set the first `max_output` bytes are also kept in `output`.
 */
#ifndef BERTH_RUN_H
#define BERTH_RUN_H

#include <stdbool.h>
#include <sys/types.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/strv.h"

typedef void (*run_line_cb)(const char *line, void *data);

struct run_cmd {
    struct strv args;
    struct strv env; /* the whole environment of the child; empty = inherit berthd's */
    const char *cwd; /* NULL = inherit */
    bool set_ids;    /* run as uid/gid (with no supplementary groups) */
    uid_t uid;
    gid_t gid;
    int timeout_ms; /* 0 = none; the child is killed (SIGKILL) when it passes */
    bool capture;
    size_t max_output; /* limit of `output` when capture is set (default 1 MiB) */
    struct buf output;
    run_line_cb line_cb;
    void *data;
};

#define RUN_CMD_INIT                                                                               \
    {                                                                                              \
        .args = STRV_INIT, .env = STRV_INIT, .output = BUF_INIT, .max_output = 1024 * 1024         \
    }

/* Runs the command. Returns its exit code, or 128 + signal number when it was
 * killed (as a shell's $? would), or a negative errno with *reterr set when it
 * could not be started or timed out. */
int run_cmd(struct run_cmd *c, struct berr **reterr);
void run_cmd_release(struct run_cmd *c);

static inline void run_cmd_releasep(struct run_cmd *c)
{
    run_cmd_release(c);
}
#define _cleanup_run_cmd_ _cleanup_(run_cmd_releasep)

#endif
