/* exec.c - `berth exec`: run a command in a workspace and relay its output.
 *
 * The answer to POST /exec is a stream of agent frames (agent/agent-proto.h):
 * an 8-byte header, then the payload. curl hands the body over in pieces that
 * need not line up with frames, so exec_stream_cb() appends each piece to a
 * buffer, handles every complete frame in it and keeps the incomplete tail for
 * the next piece. Output is written as each frame completes; the EXIT frame, which
 * is always last, gives berth's own exit status.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "agent/agent-proto.h"
#include "cli/commands.h"
#include "util/fs.h"
#include "util/buf.h"
#include "util/xalloc.h"

/* The status when the stream ends without an EXIT frame (as ssh does). */
#define EXEC_EXIT_LOST 255

struct exec_stream {
    struct buf pending; /* the start of a frame not yet complete */
    bool started;       /* some of the body has arrived */
    bool exited;
    uint32_t status;
};

static void exec_stream_release(struct exec_stream *s)
{
    buf_release(&s->pending);
}

static int exec_frame(struct exec_stream *s, unsigned type, const char *payload, uint32_t len,
                      struct berr **reterr)
{
    _cleanup_buf_ struct buf msg = BUF_INIT;
    int r = 0;
    switch (type) {
    case AGENT_STDOUT:
        r = write_all(STDOUT_FILENO, payload, len);
        break;
    case AGENT_STDERR:
        r = write_all(STDERR_FILENO, payload, len);
        break;
    case AGENT_ERROR:
        buf_adds(&msg, "berth: ");
        buf_add(&msg, payload, len);
        if (len == 0 || payload[len - 1] != '\n')
            buf_addch(&msg, '\n');
        r = write_all(STDERR_FILENO, msg.buf, msg.len);
        break;
    case AGENT_EXIT:
        if (len < 4)
            return berr_make(reterr, EBADMSG, "exec stream has an exit frame of %u bytes", len);
        s->exited = true;
        s->status = agent_get_u32((const unsigned char *)payload);
        break;
    default:
        break; /* types added later are not for this client */
    }
    if (r < 0)
        return berr_make(reterr, -r, "cannot write the command's output: %s", strerror(-r));
    return 0;
}

static int exec_stream_cb(const void *chunk, size_t len, void *data, struct berr **reterr)
{
    struct exec_stream *s = data;
    size_t done = 0;
    int r = 0;
    s->started = true;
    buf_add(&s->pending, chunk, len);
    while (r >= 0 && s->pending.len - done >= AGENT_HEADER_SIZE) {
        const unsigned char *h = (const unsigned char *)s->pending.buf + done;
        uint32_t n = agent_get_u32(h + 4);
        if (n > AGENT_MAX_PAYLOAD)
            return berr_make(reterr, EBADMSG, "exec stream has a frame of %u bytes (limit %d)", n,
                             AGENT_MAX_PAYLOAD);
        if (s->pending.len - done - AGENT_HEADER_SIZE < n)
            break;
        r = exec_frame(s, h[0], (const char *)h + AGENT_HEADER_SIZE, n, reterr);
        done += AGENT_HEADER_SIZE + n;
    }
    if (done > 0)
        buf_remove_front(&s->pending, done);
    return r;
}

static int exec_request(const struct cli_args *a, json_t **ret_body, struct berr **reterr)
{
    _cleanup_(json_decrefp) json_t *body = json_object();
    json_t *cmd = json_array();
    json_t *env = json_object();
    (void)json_object_set_new(body, "cmd", cmd);
    (void)json_object_set_new(body, "env", env);
    for (size_t i = 1; i < a->pos.n; i++)
        if (json_array_append_new(cmd, json_string(a->pos.v[i])) < 0)
            return berr_make(reterr, EINVAL, "'%s' is not valid UTF-8", a->pos.v[i]);
    for (size_t i = 0; i < a->env.n; i++) {
        const char *eq = strchr(a->env.v[i], '=');
        if (!eq || eq == a->env.v[i])
            return berr_make(reterr, EINVAL, "'-e %s' is not NAME=VALUE", a->env.v[i]);
        _cleanup_free_ char *name = xstrndup(a->env.v[i], (size_t)(eq - a->env.v[i]));
        int r = cmd_json_set(env, name, eq + 1, reterr);
        if (r < 0)
            return r;
    }
    int r = cmd_json_set(body, "user", a->user, reterr);
    if (r >= 0)
        r = cmd_json_set(body, "cwd", a->cwd, reterr);
    if (r < 0)
        return r;
    *ret_body = TAKE_PTR(body);
    return 0;
}

int cmd_exec(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_(json_decrefp) json_t *body = NULL;
    int r = exec_request(a, &body, reterr);
    if (r < 0)
        return r;
    _cleanup_free_ char *path = cmd_ws_path(a->pos.v[0], "/exec");
    _cleanup_(exec_stream_release) struct exec_stream s = {.pending = BUF_INIT};
    _cleanup_berr_ struct berr *err = NULL;
    r = client_stream(c, "POST", path, body, exec_stream_cb, &s, &err);
    if (s.exited)
        return s.status > 255 ? 255 : (int)s.status;
    /* Failing before the command ran is an ordinary error (exit 1); losing it
     * midway leaves its status unknown. */
    if (r < 0 && !s.started && r != -ECONNRESET)
        return berr_make(reterr, -r, "%s", berr_msg(err));
    if (r < 0)
        fprintf(stderr, "berth: %s\n", berr_msg(err));
    fprintf(stderr, "berth: the command's output ended without its exit status\n");
    return EXEC_EXIT_LOST;
}
