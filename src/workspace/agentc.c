/* agentc.c - blocking agent client: frame building, readiness, running commands. */
#include "workspace/agentc.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "util/clock.h"
#include "util/fs.h"
#include "util/xalloc.h"
#include "workspace/workspace.h"

void agentc_put_field(struct buf *b, enum agent_field_tag tag, const void *data, size_t len)
{
    unsigned char h[5];
    h[0] = (unsigned char)tag;
    agent_put_u32(h + 1, (uint32_t)len);
    buf_add(b, h, 5);
    buf_add(b, data, len);
}

void agentc_build_exec(struct buf *out, const struct agentc_exec *x)
{
    struct buf p = BUF_INIT;
    for (size_t i = 0; i < x->argv->n; i++)
        agentc_put_field(&p, AGENT_FIELD_ARG, x->argv->v[i], strlen(x->argv->v[i]));
    if (x->env)
        for (size_t i = 0; i < x->env->n; i++)
            agentc_put_field(&p, AGENT_FIELD_ENV, x->env->v[i], strlen(x->env->v[i]));
    if (x->cwd)
        agentc_put_field(&p, AGENT_FIELD_CWD, x->cwd, strlen(x->cwd));
    if (x->user)
        agentc_put_field(&p, AGENT_FIELD_USER, x->user, strlen(x->user));
    if (x->tty) {
        unsigned char sz[4] = {(unsigned char)(x->cols >> 8), (unsigned char)x->cols,
                               (unsigned char)(x->rows >> 8), (unsigned char)x->rows};
        agentc_put_field(&p, AGENT_FIELD_TTY, sz, 4);
    }
    unsigned char h[AGENT_HEADER_SIZE];
    agent_put_header(h, AGENT_EXEC, (uint32_t)p.len);
    buf_add(out, h, sizeof(h));
    buf_add(out, p.buf, p.len);
    buf_release(&p);
}

static int connect_agent(struct ws_manager *m, const char *id, struct berr **reterr)
{
    int fd = -1;
    int r = ws_agent_connect(m, id, &fd, reterr);
    return r < 0 ? r : fd;
}

int agentc_hello(struct ws_manager *m, const char *id, struct berr **reterr)
{
    _cleanup_close_ int fd = connect_agent(m, id, reterr);
    if (fd < 0)
        return fd;
    unsigned char h[AGENT_HEADER_SIZE];
    agent_put_header(h, AGENT_HELLO, 0);
    int r = write_all(fd, h, sizeof(h));
    if (r == 0)
        r = read_full(fd, h, sizeof(h), 5000);
    if (r < 0)
        return berr_make(reterr, -r, "the workspace agent did not answer: %s", strerror(-r));
    if (h[0] != AGENT_HELLO)
        return berr_make(reterr, EPROTO, "the workspace agent answered with frame type %d", h[0]);
    return 0;
}

int agentc_wait_ready(struct ws_manager *m, const char *id, int timeout_ms, struct berr **reterr)
{
    long long deadline = mono_ms() + timeout_ms;
    for (;;) {
        struct berr *e = NULL;
        int r = agentc_hello(m, id, &e);
        if (r == 0)
            return 0;
        if (mono_ms() >= deadline) {
            if (reterr && !*reterr)
                *reterr = e;
            else
                berr_free(e);
            return berr_wrap(reterr, "the workspace agent did not start within %d s",
                             timeout_ms / 1000);
        }
        berr_free(e);
        usleep(20 * 1000);
    }
}

int agentc_run(struct ws_manager *m, const char *id, const struct agentc_exec *x,
               agentc_output_cb cb, void *userdata, int *ret_status, struct berr **reterr)
{
    _cleanup_close_ int fd = connect_agent(m, id, reterr);
    if (fd < 0)
        return fd;
    _cleanup_buf_ struct buf req = BUF_INIT;
    agentc_build_exec(&req, x);
    int r = write_all(fd, req.buf, req.len);
    for (size_t off = 0; r >= 0 && x->input && off < x->input->len;) {
        size_t n = x->input->len - off > 65536 ? 65536 : x->input->len - off;
        unsigned char h[AGENT_HEADER_SIZE];
        agent_put_header(h, AGENT_STDIN, (uint32_t)n);
        r = write_all(fd, h, sizeof(h));
        if (r >= 0)
            r = write_all(fd, x->input->buf + off, n);
        off += n;
    }
    if (r >= 0 && x->input) {
        unsigned char h[AGENT_HEADER_SIZE];
        agent_put_header(h, AGENT_STDIN_EOF, 0);
        r = write_all(fd, h, sizeof(h));
    }
    if (r < 0)
        return berr_make(reterr, -r, "send command to the workspace agent: %s", strerror(-r));
    _cleanup_free_ char *payload = xmalloc(AGENT_MAX_PAYLOAD);
    int64_t deadline = x->timeout_ms > 0 ? mono_ms() + x->timeout_ms : 0;
    for (;;) {
        unsigned char h[AGENT_HEADER_SIZE];
        int wait = -1;
        if (deadline) {
            int64_t left = deadline - mono_ms();
            wait = left > 0 ? (int)(left > INT32_MAX ? INT32_MAX : left) : 0;
        }
        r = read_full(fd, h, sizeof(h), wait);
        if (r == -ETIMEDOUT && deadline)
            return berr_make(reterr, ETIMEDOUT, "the command did not finish in %lld s: stopped",
                             (long long)(x->timeout_ms / 1000));
        if (r < 0)
            return berr_make(reterr, -r,
                             "the workspace agent closed the connection before the "
                             "command finished");
        uint32_t len = agent_get_u32(h + 4);
        if (len > AGENT_MAX_PAYLOAD)
            return berr_make(reterr, EPROTO, "the workspace agent sent an oversized frame");
        r = read_full(fd, payload, len, 30000);
        if (r < 0)
            return berr_make(reterr, -r, "read from the workspace agent: %s", strerror(-r));
        switch (h[0]) {
        case AGENT_STDOUT:
        case AGENT_STDERR:
        case AGENT_ERROR:
            if (cb)
                cb(h[0], payload, len, userdata);
            break;
        case AGENT_EXIT:
            if (len < 4)
                return berr_make(reterr, EPROTO, "the workspace agent sent a short exit frame");
            *ret_status = (int)agent_get_u32((unsigned char *)payload);
            return 0;
        default:
            break;
        }
    }
}

struct frame_write {
    uv_write_t w;
    char *bytes;
    size_t len;
    bool secret; /* zeroed once written */
};

static void frame_written(uv_write_t *w, int status)
{
    (void)status;
    struct frame_write *f = w->data;
    if (f->secret)
        sodium_memzero(f->bytes, f->len);
    free(f->bytes);
    free(f);
}

/* Writes bytes (which it takes) to s. */
static void send_bytes(uv_stream_t *s, char *bytes, size_t len, bool secret)
{
    struct frame_write *f = xmalloc(sizeof(*f));
    *f = (struct frame_write){.bytes = bytes, .len = len, .secret = secret};
    f->w.data = f;
    uv_buf_t b = uv_buf_init(bytes, (unsigned)len);
    if (uv_write(&f->w, s, &b, 1, frame_written) < 0)
        frame_written(&f->w, UV_EPIPE);
}

static void send_frame(uv_stream_t *s, enum agent_frame_type type, const void *payload, size_t len,
                       bool secret)
{
    char *frame = xmalloc(AGENT_HEADER_SIZE + len);
    agent_put_header((unsigned char *)frame, type, (uint32_t)len);
    if (len)
        memcpy(frame + AGENT_HEADER_SIZE, payload, len);
    send_bytes(s, frame, AGENT_HEADER_SIZE + len, secret);
}

void agentc_send_frame(uv_stream_t *s, enum agent_frame_type type, const void *payload, size_t len)
{
    send_frame(s, type, payload, len, false);
}

void agentc_send_secret_frame(uv_stream_t *s, enum agent_frame_type type, const void *payload,
                              size_t len)
{
    send_frame(s, type, payload, len, true);
}

void agentc_read_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    b->base = xmalloc(65536);
    b->len = 65536;
}

void agentc_send_exec(uv_stream_t *s, const struct agentc_exec *x)
{
    struct buf frame = BUF_INIT;
    agentc_build_exec(&frame, x);
    size_t len;
    char *bytes = buf_detach(&frame, &len);
    send_bytes(s, bytes, len, false);
}
