/* agent-frame.c - what every connection of berth-agent goes through: its frames.
 *
 * A connection starts with one request frame and then belongs to a session (agent-exec.c,
 * agent-tunnel.c, agent-ports.c). This part holds what they all use: the small helpers
 * (allocation that aborts, fds, time), the byte queues, sending frames and errors, closing
 * (say the last frames, half-close, linger for the client's EOF), and the parser, which checks
 * a header's length before anything is allocated for it and hands each frame to the session
 * the connection is in.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent-internal.h"

/* Where every read from a socket or pipe lands first. */
unsigned char scratch[AGENT_CHUNK];

_noreturn_ _printf_(1, 2) void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("berth-agent: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* Out of memory aborts, as everywhere in Berth: as PID 1 that stops the container, which the
 * daemon notices and reports; limping on would leave sessions half-served. */
_noreturn_ void oom(void)
{
    fputs("berth-agent: out of memory\n", stderr);
    abort();
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        oom();
    return p;
}

char *xstrndup(const void *s, size_t n)
{
    char *p = xrealloc(NULL, n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

void set_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags >= 0)
        (void)fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* ---- byte queues ---- */

size_t buf_pending(const struct buf *b)
{
    return b->len - b->head;
}

/* Returns room for n more bytes at data + len; the caller advances len by what it used. */
unsigned char *buf_reserve(struct buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return b->data + b->len;
    if (b->head > 0 && b->head >= buf_pending(b)) {
        memmove(b->data, b->data + b->head, buf_pending(b));
        b->len -= b->head;
        b->head = 0;
        if (b->cap - b->len >= n)
            return b->data + b->len;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < n)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
    return b->data + b->len;
}

void buf_add(struct buf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    memcpy(buf_reserve(b, n), p, n);
    b->len += n;
}

void buf_release(struct buf *b)
{
    free(b->data);
    *b = (struct buf){0};
}

void buf_consume(struct buf *b, size_t n)
{
    b->head += n;
    if (b->head < b->len)
        return;
    b->head = b->len = 0;
    /* A burst of output should not pin megabytes per idle terminal. */
    if (b->cap > 4 * AGENT_CHUNK)
        buf_release(b);
}

void conn_send(struct conn *c, enum agent_frame_type type, const void *data, size_t len)
{
    if (c->fd < 0)
        return;
    unsigned char *p = buf_reserve(&c->out, AGENT_HEADER_SIZE + len);
    agent_put_header(p, type, (uint32_t)len);
    if (len > 0)
        memcpy(p + AGENT_HEADER_SIZE, data, len);
    c->out.len += AGENT_HEADER_SIZE + len;
}

static _printf_(2, 0) void conn_send_errorv(struct conn *c, const char *fmt, va_list ap)
{
    char *msg;
    int n = vasprintf(&msg, fmt, ap);

    if (n < 0)
        oom();
    conn_send(c, AGENT_ERROR, msg, (size_t)n < AGENT_MSG_LIMIT ? (size_t)n : AGENT_MSG_LIMIT);
    free(msg);
}

_printf_(2, 3) void conn_send_error(struct conn *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    conn_send_errorv(c, fmt, ap);
    va_end(ap);
}

void conn_send_u32(struct conn *c, enum agent_frame_type type, uint32_t v)
{
    unsigned char p[4];

    agent_put_u32(p, v);
    conn_send(c, type, p, sizeof(p));
}

void conn_start_closing(struct conn *c, int64_t now)
{
    c->state = CONN_CLOSING;
    c->deadline = now + AGENT_IDLE_MS;
}

/* States that end by a deadline: no request yet, a connect(), a credential helper's
 * request or its answer, a client that stopped reading the last frames. */
bool conn_timed(const struct conn *c)
{
    return c->state == CONN_AUTH || c->state == CONN_REQUEST || c->state == CONN_CONNECTING ||
           c->state == CONN_CRED_ASK || c->state == CONN_CRED_WAIT || c->state == CONN_CLOSING;
}

void conn_drop_client(struct conn *c, int64_t now)
{
    creds_conn_free(c);
    close_fd(&c->fd);
    close_fd(&c->tcp_fd);
    buf_release(&c->in);
    buf_release(&c->out);
    free(c->payload);
    c->payload = NULL;
    if (session_running(c))
        session_abandon(c, now);
}

/* A protocol violation ends the connection: say why, then close. */
_printf_(3, 4) void conn_fail(struct conn *c, int64_t now, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    conn_send_errorv(c, fmt, ap);
    va_end(ap);
    if (session_running(c))
        session_abandon(c, now);
    conn_start_closing(c, now);
}

void conn_free(struct conn *c)
{
    creds_conn_free(c);
    close_fd(&c->fd);
    close_fd(&c->tcp_fd);
    session_close_fds(c);
    buf_release(&c->out);
    buf_release(&c->report);
    free(c->payload);
    free(c);
}

/* Takes the next field off the list at *p (n bytes left). Returns NULL, or why the list is
 * malformed. */
const char *field_next(const unsigned char **p, size_t *n, unsigned *ret_tag,
                       const unsigned char **ret_value, size_t *ret_len)
{
    if (*n < 5)
        return "truncated field header";
    uint32_t len = agent_get_u32(*p + 1);
    if (len > *n - 5)
        return "field longer than the frame";
    *ret_tag = (*p)[0];
    *ret_value = *p + 5;
    *ret_len = len;
    *p += 5 + (size_t)len;
    *n -= 5 + (size_t)len;
    return NULL;
}

/* ---- frames from the client ---- */

static void conn_handle_frame(struct conn *c, int64_t now)
{
    unsigned type = c->hdr[0];

    if (c->state == CONN_SESSION) {
        session_handle_frame(c, type, c->payload, c->payload_len, now);
        return;
    }
    if (c->state == CONN_WATCH) {
        conn_fail(c, now, "unexpected frame type %u in a watch", type);
        return;
    }
    if (c->state == CONN_AUTH) {
        auth_handle_frame(c, type, c->payload, c->payload_len, now);
        return;
    }
    if (c->state == CONN_CRED_SERVE) {
        creds_handle_frame(c, type, c->payload, c->payload_len, now);
        return;
    }
    if (c->state != CONN_REQUEST)
        return;
    switch (type) {
    case AGENT_HELLO:
        conn_send(c, AGENT_HELLO, AGENT_PROTO_VERSION, strlen(AGENT_PROTO_VERSION));
        conn_start_closing(c, now);
        break;
    case AGENT_EXEC:
        session_start(c, c->payload, c->payload_len, now);
        break;
    case AGENT_TCP_CONNECT:
        relay_start(c, c->payload, c->payload_len, now);
        break;
    case AGENT_PORTS_WATCH:
        c->state = CONN_WATCH; /* the next turn's ports_tick() sends the list */
        c->deadline = NEVER;
        break;
    case AGENT_TTY_WATCH:
        c->state = CONN_WATCH; /* the next turn's ttys_tick() sends the first time */
        c->watch_ttys = true;
        c->deadline = NEVER;
        break;
    case AGENT_CRED_SERVE:
        creds_serve_start(c, c->payload, c->payload_len, now);
        break;
    default:
        conn_fail(c, now, "unsupported request type %u", type);
        break;
    }
}

/* Feeds bytes read from the client through the frame parser. A header's length is checked
 * before anything is allocated for it. */
static void conn_feed(struct conn *c, const unsigned char *p, size_t n, int64_t now)
{
    while (n > 0 && c->fd >= 0 && c->state != CONN_CLOSING) {
        if (c->hdr_got < AGENT_HEADER_SIZE) {
            size_t take = AGENT_HEADER_SIZE - c->hdr_got;
            take = take < n ? take : n;
            memcpy(c->hdr + c->hdr_got, p, take);
            c->hdr_got += take;
            p += take;
            n -= take;
            if (c->hdr_got < AGENT_HEADER_SIZE)
                return;
            uint32_t len = agent_get_u32(c->hdr + 4);
            if (len > AGENT_MAX_PAYLOAD) {
                conn_fail(c, now, "frame of %u bytes exceeds the limit of %u", (unsigned)len,
                          (unsigned)AGENT_MAX_PAYLOAD);
                return;
            }
            c->payload = xrealloc(c->payload, len);
            c->payload_len = len;
            c->payload_got = 0;
        }
        size_t take = c->payload_len - c->payload_got;
        take = take < n ? take : n;
        memcpy(c->payload + c->payload_got, p, take);
        c->payload_got += take;
        p += take;
        n -= take;
        if (c->payload_got < c->payload_len)
            return;
        c->hdr_got = 0;
        conn_handle_frame(c, now);
        if (c->state == CONN_CONNECTING || c->state == CONN_RELAY) {
            /* No frames after TCP_CONNECT: the rest is the client's first bytes for the
             * server. */
            free(c->payload);
            c->payload = NULL;
            if (n > 0)
                relay_from_client(c, p, n);
            relay_settle(c, now);
            return;
        }
    }
}

void conn_read(struct conn *c, int64_t now)
{
    if (c->state == CONN_CONNECTING || c->state == CONN_RELAY) {
        relay_read_client(c, now);
        return;
    }
    if (c->state == CONN_CRED_ASK) {
        creds_read_ask(c, now);
        return;
    }
    ssize_t n = read(c->fd, scratch, sizeof(scratch));

    if (n > 0)
        conn_feed(c, scratch, (size_t)n, now);
    else if (n == 0 || (errno != EAGAIN && errno != EINTR))
        conn_drop_client(c, now);
}

void conn_flush(struct conn *c, int64_t now)
{
    if (c->fd >= 0 && buf_pending(&c->out) > 0) {
        ssize_t n = send(c->fd, c->out.data + c->out.head, buf_pending(&c->out), MSG_NOSIGNAL);
        if (n > 0) {
            buf_consume(&c->out, (size_t)n);
            if (c->state == CONN_CLOSING)
                c->deadline = now + AGENT_IDLE_MS;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            conn_drop_client(c, now);
            return;
        }
    }
    /* Closing with unread client bytes would turn the client's EOF into ECONNRESET, maybe
     * before it read EXIT; so half-close, discard what still arrives, and close on its EOF
     * (or shortly after, for a client that never closes). */
    if (c->state == CONN_CLOSING && buf_pending(&c->out) == 0 && !c->wr_shut) {
        (void)shutdown(c->fd, SHUT_WR);
        c->wr_shut = true;
        c->deadline = now + AGENT_LINGER_MS;
    }
    relay_settle(c, now);
}
