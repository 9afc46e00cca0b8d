/* agentc.h - berthd's side of the agent protocol (see agent/agent-proto.h).
 *
 * The blocking calls are for worker threads (lifecycle commands, readiness);
 * the event loop uses agentc_build_exec() and relays the stream itself.
 * Sockets are opened without following symlinks: the run dir is writable by
 * the untrusted container.
 */
#ifndef BERTH_AGENTC_H
#define BERTH_AGENTC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "agent/agent-proto.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/strv.h"

struct agentc_exec {
    const struct strv *argv;
    const struct strv *env; /* may be NULL */
    const char *cwd;        /* may be NULL */
    const char *user;       /* may be NULL: root */
    bool tty;
    unsigned cols, rows;
    /* agentc_run: the most the command may take, in ms (0: no limit); at
     * the limit the connection closes, which hangs the command up (the
     * agent escalates to SIGKILL), and agentc_run returns -ETIMEDOUT */
    int64_t timeout_ms;
    /* agentc_run: the command's stdin (then EOF), or NULL; small inputs
     * only: it is written before any output is read */
    const struct buf *input;
};

/* Output callback: type is AGENT_STDOUT, AGENT_STDERR or AGENT_ERROR. */
typedef void (*agentc_output_cb)(int type, const char *data, size_t len, void *userdata);

/* Appends one field (tag, length, value) to a request's payload. */
void agentc_put_field(struct buf *b, enum agent_field_tag tag, const void *data, size_t len);
/* Appends a complete EXEC request frame to out. */
void agentc_build_exec(struct buf *out, const struct agentc_exec *x);
/* On the loop: writes an EXEC request to an agent connection. */
void agentc_send_exec(uv_stream_t *s, const struct agentc_exec *x);
/* On the loop: writes one frame (a copy of payload, len bytes) to an agent
 * connection; a write that fails is dropped (the read side sees the end). */
void agentc_send_frame(uv_stream_t *s, enum agent_frame_type type, const void *payload, size_t len);
/* The same, for a payload that holds a secret: the copy is zeroed once written. */
void agentc_send_secret_frame(uv_stream_t *s, enum agent_frame_type type, const void *payload,
                              size_t len);
/* A uv_alloc_cb for reads from an agent connection: a 64 KiB buffer that the
 * read callback frees. */
void agentc_read_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);

/* The handshake of an agent's TCP listener (agent-proto.h, AUTH) on a
 * connected fd: proves that berthd holds the workspace's key and checks the
 * agent's proof, each read within timeout_ms. 0, or -errno with *reterr
 * saying why; afterwards fd takes a request as on the unix socket. */
int agentc_auth(int fd, const unsigned char key[32], const char *id, int timeout_ms,
                struct berr **reterr);

struct ws_manager;

/* Connects to workspace id's agent (ws_agent_connect) and checks it answers HELLO. */
int agentc_hello(struct ws_manager *m, const char *id, struct berr **reterr);

/* Waits until the agent answers, for up to timeout_ms. */
int agentc_wait_ready(struct ws_manager *m, const char *id, int timeout_ms, struct berr **reterr);

/* Runs a command and waits for it; *ret_status is its exit status. */
int agentc_run(struct ws_manager *m, const char *id, const struct agentc_exec *x,
               agentc_output_cb cb, void *userdata, int *ret_status, struct berr **reterr);

#endif
