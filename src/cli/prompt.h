/* prompt.h - asking the person at the terminal, and reading secrets from stdin.
 *
 * Passwords, tokens and secret values pass through here. Every buffer that held
 * one is wiped before it is freed (prompt_wipe), and none is ever printed, not
 * even in an error message.
 */
#ifndef BERTH_CLI_PROMPT_H
#define BERTH_CLI_PROMPT_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

/* Writes `prompt` to the terminal (/dev/tty, whatever stdin and stdout are) and
 * reads one line from it, with echo off unless `echo`; the terminal is restored
 * even when a signal ends berth meanwhile. *ret_line gets the line without its
 * newline (the caller frees it, with prompt_wipe for a secret). `what` names the
 * answer in errors and `instead` the option to use without a terminal:
 * "cannot ask for the password: no terminal (use --password-stdin)". Returns
 * -ENXIO with no terminal, -ECANCELED on end of input, -EMSGSIZE past
 * PROMPT_MAX_LINE bytes. */
int prompt_line(const char *what, const char *prompt, bool echo, const char *instead,
                char **ret_line, struct berr **reterr);

/* Reads one line from stdin and drops its newline, for --password-stdin. An
 * empty line is -EINVAL; past PROMPT_MAX_LINE bytes, -EMSGSIZE. */
int prompt_stdin_line(const char *what, char **ret_line, struct berr **reterr);

/* Appends all of stdin to *out and drops one trailing newline, for values that
 * may span lines. -EMSGSIZE past `max` bytes. *out is wiped on failure. */
int prompt_stdin_all(const char *what, size_t max, struct buf *out, struct berr **reterr);

/* Overwrites the string with zeros and frees it; for _cleanup_. */
void prompt_wipe(char **s);
/* The same for a buf, which is then BUF_INIT again. */
void prompt_wipe_buf(struct buf *b);

#define PROMPT_MAX_LINE 4096

#endif
