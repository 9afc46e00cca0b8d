/* ide-ttys.c - a TTY_WATCH per workspace whose IDE is open (ide-ttys.h).
 *
 * A watch counts the open IDE connections. Its agent session is a separate
 * allocation, so that the session can close (the agent went away, the
 * workspace stopped) and be opened again by the next connection while the
 * count goes on, and so that the watch can go while its pipe is still closing.
 * The first TTYS frame of a session is the starting point: output before the
 * IDE was opened, or before the session, is nobody's activity now.
 */
#include "api/ide-ttys.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "agent/agent-proto.h"
#include "util/buf.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "workspace/agentc.h"
#include "workspace/workspace.h"

struct tty_session;

struct tty_watch {
    struct tty_watch *next;
    struct ide_ttys *owner;
    char *ws_id;
    unsigned holds;           /* open IDE connections */
    struct tty_session *sess; /* NULL while there is none */
};

struct tty_session {
    uv_pipe_t pipe;
    struct tty_watch *w; /* NULL once the watch let go of it */
    struct buf in;
    bool have_base;
    uint64_t newest;
};

struct ide_ttys {
    struct ws_manager *m;
    struct tty_watch *watches;
};

struct ide_ttys *ide_ttys_new(struct ws_manager *m)
{
    struct ide_ttys *t = xcalloc(1, sizeof(*t));
    t->m = m;
    return t;
}

static void session_freed(uv_handle_t *h)
{
    struct tty_session *s = h->data;
    buf_release(&s->in);
    free(s);
}

/* Ends the session; its watch (if any) has none afterwards. */
static void session_close(struct tty_session *s)
{
    if (s->w)
        s->w->sess = NULL;
    s->w = NULL;
    uv_close((uv_handle_t *)&s->pipe, session_freed);
}

static void session_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct tty_session *s = st->data;
    if (n > 0)
        buf_add(&s->in, b->base, (size_t)n);
    free(b->base);
    if (n < 0) {
        session_close(s);
        return;
    }
    size_t off = 0;
    struct agent_frame f;
    int got;
    while ((got = agent_next_frame(s->in.buf, s->in.len, &off, &f)) > 0) {
        if (f.type != AGENT_TTYS || f.len < 8)
            continue;
        uint64_t t = (uint64_t)agent_get_u32(f.payload) << 32 | agent_get_u32(f.payload + 4);
        if (s->have_base && t > s->newest && s->w)
            ws_activity(s->w->owner->m, s->w->ws_id, WS_ACT_IDE_TERMINAL);
        if (!s->have_base || t > s->newest)
            s->newest = t;
        s->have_base = true;
    }
    if (got < 0) {
        session_close(s);
        return;
    }
    buf_remove_front(&s->in, off);
}

static void session_open(struct tty_watch *w)
{
    int fd = -1;
    _cleanup_berr_ struct berr *e = NULL;
    if (ws_agent_connect(w->owner->m, w->ws_id, &fd, &e) < 0) {
        log_debug("workspace %s: no terminal watch: %s", w->ws_id, berr_msg(e));
        return;
    }
    struct tty_session *s = xcalloc(1, sizeof(*s));
    s->in = (struct buf)BUF_INIT;
    uv_pipe_init(uv_default_loop(), &s->pipe, 0);
    s->pipe.data = s;
    if (uv_pipe_open(&s->pipe, fd) < 0) {
        close(fd);
        uv_close((uv_handle_t *)&s->pipe, session_freed);
        return;
    }
    s->w = w;
    w->sess = s;
    agentc_send_frame((uv_stream_t *)&s->pipe, AGENT_TTY_WATCH, NULL, 0);
    uv_read_start((uv_stream_t *)&s->pipe, agentc_read_alloc, session_read);
}

static struct tty_watch **watch_slot(struct ide_ttys *t, const char *ws_id)
{
    struct tty_watch **pp = &t->watches;
    while (*pp && strcmp((*pp)->ws_id, ws_id) != 0)
        pp = &(*pp)->next;
    return pp;
}

void ide_ttys_hold(struct ide_ttys *t, const char *ws_id)
{
    struct tty_watch **pp = watch_slot(t, ws_id);
    if (!*pp) {
        *pp = xcalloc(1, sizeof(**pp));
        (*pp)->owner = t;
        (*pp)->ws_id = xstrdup(ws_id);
    }
    struct tty_watch *w = *pp;
    w->holds++;
    if (!w->sess)
        session_open(w);
}

void ide_ttys_release(struct ide_ttys *t, const char *ws_id)
{
    struct tty_watch **pp = watch_slot(t, ws_id);
    struct tty_watch *w = *pp;
    if (!w || --w->holds > 0)
        return;
    if (w->sess)
        session_close(w->sess);
    *pp = w->next;
    free(w->ws_id);
    free(w);
}
