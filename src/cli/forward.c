/* forward.c - `berth port-forward WS LOCAL:REMOTE...`: local TCP ports relayed to a workspace's.
 *
 * For each mapping berth listens on 127.0.0.1:LOCAL (only on the loopback: what
 * is forwarded is reached with the caller's token, so it must not be offered to
 * the network). Each accepted connection gets its own tunnel, a WebSocket to
 * /api/v1/workspaces/{ws}/ports/{REMOTE}/tunnel (docs/api.md, "Forwarded
 * ports") whose binary messages carry the TCP stream both ways, opened with
 * wsc_open() so that its handshake does not hold up the others (only the
 * server's host name is resolved on the spot). One poll() loop serves the
 * listeners, every local connection and every tunnel, and the read end of a
 * self-pipe that SIGINT and SIGTERM write to.
 *
 * Backpressure: each direction has one bounded queue. Bytes read from a local
 * connection are queued on its WebSocket; the local connection is not read while
 * more than PF_HIGH_WATER is queued there. Messages from the tunnel are queued
 * for the local connection (`out`); the tunnel is not read (wsc_pause_read())
 * while more than PF_HIGH_WATER waits there, and is read again below
 * PF_LOW_WATER.
 *
 * Ends: the protocol has no half-close, so when the local side ends its sending,
 * what it sent is delivered first (the queue runs empty), then the WebSocket is
 * closed, and with it berthd's connection to the port. When the tunnel ends
 * (the port closed its connection, berthd went away), what came through it is
 * written out and then the local connection is closed. A tunnel that cannot be
 * opened (berthd answers 502 when the port refuses, 409 when the workspace is not
 * running) closes its local connection and its error goes to stderr; berth goes
 * on serving the others. Ctrl-C or SIGTERM closes the listeners and every
 * connection, sending each open tunnel a close frame (waiting up to
 * PF_SHUTDOWN_WAIT_MS for the answers), and berth exits with 0; a second signal
 * ends it at once.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include "cli/commands.h"
#include "util/fs.h"
#include "cli/wsclient.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/xalloc.h"

/* Read from a local connection at once: one WebSocket message. */
#define PF_READ_CHUNK (64 * 1024)
/* A direction's queue over this stops the reading that fills it. */
#define PF_HIGH_WATER (1024 * 1024)
/* The tunnel is read again when the local connection's queue is below this. */
#define PF_LOW_WATER (256 * 1024)
/* How long a tunnel may take to answer our close frame. */
#define PF_CLOSE_WAIT_MS 5000
/* How long berth waits for those answers when it is stopped. */
#define PF_SHUTDOWN_WAIT_MS 1000
/* Accepting stops for this long when there are no file descriptors left. */
#define PF_ACCEPT_PAUSE_MS 100
/* At most this many connections at once (each uses two descriptors). */
#define PF_MAX_CONNS 1024

#define PF_LISTEN_ADDR "127.0.0.1"

struct pf_map {
    unsigned local; /* as bound: a requested 0 becomes the port the system chose */
    unsigned remote;
    int fd; /* the listening socket */
    char *path;
};

struct pf;

struct pf_conn {
    struct pf *pf;
    const struct pf_map *map;
    unsigned id;
    char peer[64];  /* ADDR:PORT of the local client */
    int fd;         /* the local connection; -1 once closed */
    struct wsc *w;  /* the tunnel; NULL once over */
    struct buf out; /* from the tunnel, for the local connection, from out_off on */
    size_t out_off;
    bool local_eof; /* the local side sent all it will send */
    bool closing;   /* our close frame is queued */
    int64_t close_deadline;
};

struct pf {
    struct client *c;
    const char *ws; /* as the user wrote it */
    bool verbose;
    struct pf_map *maps;
    size_t nmaps;
    struct pf_conn **conns;
    size_t nconns;
    size_t max_conns;
    unsigned next_id;
    int64_t accept_resume; /* accepting is paused until then (0: it is not) */
    bool stopping;
    char *chunk; /* PF_READ_CHUNK bytes to read into */
};

static volatile sig_atomic_t stop_fd = -1;

static void stop_handler(int sig)
{
    int saved = errno;
    if (stop_fd >= 0)
        (void)write(stop_fd, "s", 1);
    errno = saved;
}

/* ------------------------------------------------------------------------
 * Mappings and listeners
 */

/* Parses "LOCAL:REMOTE" (or "PORT", the same on both sides). LOCAL may be 0: any
 * free port. */
static int map_parse(const char *arg, struct pf_map *m, struct berr **reterr)
{
    const char *colon = strchr(arg, ':');
    _cleanup_free_ char *local = colon ? xstrndup(arg, (size_t)(colon - arg)) : xstrdup(arg);
    const char *remote = colon ? colon + 1 : arg;
    long long l = 0, r = 0;
    _cleanup_berr_ struct berr *err = NULL;
    if (cmd_parse_number("LOCAL", local, 0, 65535, &l, &err) < 0 ||
        cmd_parse_number("REMOTE", remote, 1, 65535, &r, &err) < 0)
        return berr_make(reterr, EINVAL, "'%s' is not LOCAL:REMOTE: %s", arg, berr_msg(err));
    m->local = (unsigned)l;
    m->remote = (unsigned)r;
    return 0;
}

static int map_listen(struct pf_map *m, struct berr **reterr)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)m->local)};
    (void)inet_pton(AF_INET, PF_LISTEN_ADDR, &sa.sin_addr);
    _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return berr_make(reterr, errno, "cannot make a socket: %s", strerror(errno));
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, SOMAXCONN) < 0)
        return berr_make(reterr, errno, "cannot listen on %s:%u: %s", PF_LISTEN_ADDR, m->local,
                         strerror(errno));
    socklen_t len = sizeof(sa);
    if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        return berr_make(reterr, errno, "getsockname: %s", strerror(errno));
    m->local = ntohs(sa.sin_port);
    m->fd = TAKE_FD(fd);
    return 0;
}

/* ------------------------------------------------------------------------
 * Connections
 */

static size_t conn_pending(const struct pf_conn *k)
{
    return k->out.len - k->out_off;
}

_printf_(2, 3) static void conn_note(const struct pf_conn *k, const char *fmt, ...)
{
    _cleanup_buf_ struct buf b = BUF_INIT;
    buf_addf(&b, "berth: %s:%u -> '%s':%u: ", PF_LISTEN_ADDR, k->map->local, k->pf->ws,
             k->map->remote);
    va_list ap;
    va_start(ap, fmt);
    buf_vaddf(&b, fmt, ap);
    va_end(ap);
    buf_addch(&b, '\n');
    (void)write_all(STDERR_FILENO, b.buf, b.len);
}

static int conn_message_cb(struct wsc *w, int opcode, const unsigned char *msg, size_t len,
                           void *data, struct berr **reterr)
{
    struct pf_conn *k = data;
    if (k->fd < 0)
        return 0; /* the local connection is gone */
    buf_add(&k->out, msg, len);
    if (conn_pending(k) > PF_HIGH_WATER)
        wsc_pause_read(w, true);
    return 0;
}

/* Queues our close frame on the open tunnel; one that is not open yet is
 * dropped. */
static void conn_close_tunnel(struct pf_conn *k, uint16_t code, int wait_ms)
{
    if (!k->w || k->closing)
        return;
    if (!wsc_is_open(k->w)) {
        k->w = wsc_free(k->w);
        return;
    }
    wsc_close(k->w, code);
    k->closing = true;
    k->close_deadline = mono_ms() + wait_ms;
}

static void conn_close_local(struct pf_conn *k)
{
    closep(&k->fd);
    buf_release(&k->out);
    k->out_off = 0;
}

/* The local connection failed: nothing more can go either way. */
static void conn_local_failed(struct pf_conn *k, int e)
{
    if (k->pf->verbose)
        conn_note(k, "connection %u from %s failed: %s", k->id, k->peer, strerror(e));
    conn_close_local(k);
    conn_close_tunnel(k, 1000, PF_CLOSE_WAIT_MS);
}

static struct pf_conn *conn_free(struct pf_conn *k)
{
    if (!k)
        return NULL;
    wsc_free(k->w);
    conn_close_local(k);
    free(k);
    return NULL;
}

/* Whether the local connection is to be read now. */
static bool conn_reading(const struct pf_conn *k)
{
    return k->fd >= 0 && !k->local_eof && k->w && !k->closing && !wsc_done(k->w) &&
           wsc_queued(k->w) < PF_HIGH_WATER;
}

static void conn_accepted(struct pf *pf, const struct pf_map *m, int fd,
                          const struct sockaddr_in *peer)
{
    struct pf_conn *k = xcalloc(1, sizeof(*k));
    k->pf = pf;
    k->map = m;
    k->id = ++pf->next_id;
    k->fd = fd;
    k->out = (struct buf)BUF_INIT;
    char addr[INET_ADDRSTRLEN] = "?";
    (void)inet_ntop(AF_INET, &peer->sin_addr, addr, sizeof(addr));
    snprintf(k->peer, sizeof(k->peer), "%s:%u", addr, ntohs(peer->sin_port));
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    _cleanup_berr_ struct berr *err = NULL;
    if (wsc_open(client_url(pf->c), m->path, client_token(pf->c), conn_message_cb, k, &k->w, &err) <
        0) {
        conn_note(k, "%s", berr_msg(err));
        conn_free(k);
        return;
    }
    if (pf->verbose)
        conn_note(k, "connection %u from %s", k->id, k->peer);
    pf->conns = xrealloc(pf->conns, (pf->nconns + 1) * sizeof(*pf->conns));
    pf->conns[pf->nconns++] = k;
}

/* Writes what the tunnel sent to the local connection, as far as it goes. */
static void conn_write(struct pf_conn *k)
{
    while (k->fd >= 0 && conn_pending(k) > 0) {
        ssize_t n = send(k->fd, k->out.buf + k->out_off, conn_pending(k), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0) {
            conn_local_failed(k, errno);
            return;
        }
        k->out_off += (size_t)n;
    }
    if (k->out_off == k->out.len) {
        if (k->out.alloc > PF_LOW_WATER)
            buf_release(&k->out); /* an idle connection keeps little */
        else
            buf_reset(&k->out);
        k->out_off = 0;
    } else if (k->out_off > k->out.len / 2) {
        buf_remove_front(&k->out, k->out_off);
        k->out_off = 0;
    }
    if (k->w && conn_pending(k) < PF_LOW_WATER)
        wsc_pause_read(k->w, false);
}

/* Serves one connection after poll(): lrev and wrev are the revents of the local
 * connection and of the tunnel. Returns whether the connection is over. */
static bool conn_step(struct pf_conn *k, short lrev, short wrev)
{
    struct pf *pf = k->pf;
    /* the local side to the tunnel */
    if ((lrev & (POLLIN | POLLHUP | POLLERR)) && conn_reading(k)) {
        ssize_t n = recv(k->fd, pf->chunk, PF_READ_CHUNK, 0);
        if (n > 0)
            (void)wsc_send(k->w, WSC_BINARY, pf->chunk, (size_t)n, NULL);
        else if (n == 0)
            k->local_eof = true;
        else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_local_failed(k, errno);
    }

    /* the tunnel, and what it brings to the local side */
    if (k->w) {
        bool was_open = wsc_is_open(k->w);
        _cleanup_berr_ struct berr *err = NULL;
        if (wsc_process(k->w, wrev, &err) < 0) {
            if (!k->closing && !pf->stopping)
                conn_note(k, "%s%s", was_open ? "" : "cannot open the tunnel: ", berr_msg(err));
            k->w = wsc_free(k->w);
        }
    }
    conn_write(k);

    /* the local side's end, once all it sent has gone through */
    if (k->w && k->local_eof && !k->closing && wsc_is_open(k->w) && wsc_queued(k->w) == 0) {
        conn_close_tunnel(k, 1000, PF_CLOSE_WAIT_MS);
        if (wsc_process(k->w, 0, NULL) < 0)
            k->w = wsc_free(k->w);
    }
    if (k->w && (wsc_done(k->w) || (k->closing && mono_ms() >= k->close_deadline)))
        k->w = wsc_free(k->w);

    /* the tunnel's end, once all it sent has been written */
    if (!k->w && k->fd >= 0 && conn_pending(k) == 0) {
        if (pf->verbose)
            conn_note(k, "connection %u from %s closed", k->id, k->peer);
        conn_close_local(k);
    }
    return !k->w && k->fd < 0;
}

/* ------------------------------------------------------------------------
 * The loop
 */

static void pf_accept(struct pf *pf, struct pf_map *m)
{
    while (pf->nconns < pf->max_conns) {
        struct sockaddr_in peer = {0};
        socklen_t len = sizeof(peer);
        int fd = accept4(m->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
            continue;
        if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM))
            pf->accept_resume = mono_ms() + PF_ACCEPT_PAUSE_MS;
        if (fd < 0)
            return;
        conn_accepted(pf, m, fd, &peer);
    }
}

/* Ctrl-C or SIGTERM: no new connections, and every tunnel is closed. */
static void pf_stop(struct pf *pf)
{
    pf->stopping = true;
    for (size_t i = 0; i < pf->nmaps; i++)
        closep(&pf->maps[i].fd);
    for (size_t i = 0; i < pf->nconns; i++) {
        conn_close_local(pf->conns[i]);
        conn_close_tunnel(pf->conns[i], 1001, PF_SHUTDOWN_WAIT_MS);
    }
}

static int pf_loop(struct pf *pf, int sig_fd, struct berr **reterr)
{
    struct pollfd *p = NULL;
    size_t np = 0;
    int64_t stop_deadline = 0;
    int r = 0;
    for (;;) {
        if (pf->stopping && (pf->nconns == 0 || mono_ms() >= stop_deadline))
            break;
        size_t want = 1 + pf->nmaps + 2 * pf->nconns;
        if (want > np) {
            np = want * 2;
            p = xrealloc(p, np * sizeof(*p));
        }
        int64_t now = mono_ms();
        int64_t timeout = -1;
        bool accepting = pf->nconns < pf->max_conns && now >= pf->accept_resume;
        if (!accepting && pf->accept_resume > now)
            timeout = pf->accept_resume - now;
        if (pf->stopping)
            timeout = stop_deadline > now ? stop_deadline - now : 0;
        p[0] = (struct pollfd){.fd = sig_fd, .events = POLLIN};
        for (size_t i = 0; i < pf->nmaps; i++)
            p[1 + i] = (struct pollfd){.fd = accepting ? pf->maps[i].fd : -1, .events = POLLIN};
        struct pollfd *q = p + 1 + pf->nmaps;
        for (size_t i = 0; i < pf->nconns; i++) {
            struct pf_conn *k = pf->conns[i];
            short lev = (short)((conn_reading(k) ? POLLIN : 0) | (conn_pending(k) ? POLLOUT : 0));
            short wev = k->w ? wsc_events(k->w) : 0;
            /* an fd polled for nothing would still wake us for its hang-up */
            q[2 * i] = (struct pollfd){.fd = lev ? k->fd : -1, .events = lev};
            q[2 * i + 1] = (struct pollfd){.fd = wev ? wsc_fd(k->w) : -1, .events = wev};
            int64_t t = -1;
            if (k->w && wsc_has_buffered(k->w))
                t = 0;
            else if (k->w && !wsc_is_open(k->w))
                t = wsc_timeout_ms(k->w);
            else if (k->w && k->closing)
                t = k->close_deadline > now ? k->close_deadline - now : 0;
            if (t >= 0 && (timeout < 0 || t < timeout))
                timeout = t;
        }
        int n = poll(p, want, timeout > INT32_MAX ? INT32_MAX : (int)timeout);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = berr_make(reterr, errno, "poll: %s", strerror(errno));
            break;
        }
        if (p[0].revents) {
            char drain[64];
            while (read(sig_fd, drain, sizeof(drain)) > 0)
                ;
            if (pf->stopping)
                break; /* a second signal: at once */
            pf_stop(pf);
            stop_deadline = mono_ms() + PF_SHUTDOWN_WAIT_MS;
        }
        /* the connections polled, then the new ones (which are appended) */
        size_t kept = 0, polled = pf->nconns;
        for (size_t i = 0; i < polled; i++) {
            struct pf_conn *k = pf->conns[i];
            if (conn_step(k, q[2 * i].revents, q[2 * i + 1].revents))
                conn_free(k);
            else
                pf->conns[kept++] = k;
        }
        pf->nconns = kept;
        for (size_t i = 0; i < pf->nmaps && !pf->stopping; i++)
            if (p[1 + i].revents)
                pf_accept(pf, &pf->maps[i]);
    }
    free(p);
    return r;
}

/* How many connections the descriptors allow, after raising their limit. */
static size_t pf_max_conns(size_t nmaps)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 64;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    rlim_t spare = rl.rlim_cur > 32 + nmaps ? (rl.rlim_cur - 32 - nmaps) / 2 : 1;
    return spare < PF_MAX_CONNS ? (size_t)spare : PF_MAX_CONNS;
}

static void pf_release(struct pf *pf)
{
    for (size_t i = 0; i < pf->nconns; i++)
        conn_free(pf->conns[i]);
    free(pf->conns);
    for (size_t i = 0; i < pf->nmaps; i++) {
        closep(&pf->maps[i].fd);
        free(pf->maps[i].path);
    }
    free(pf->maps);
    free(pf->chunk);
}

static void pipe_release(int (*p)[2])
{
    stop_fd = -1;
    closep(&(*p)[0]);
    closep(&(*p)[1]);
}

int cmd_port_forward(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    _cleanup_(pf_release) struct pf pf = {.c = c, .ws = a->pos.v[0], .verbose = a->verbose};
    pf.nmaps = a->pos.n - 1;
    pf.maps = xcalloc(pf.nmaps, sizeof(*pf.maps));
    for (size_t i = 0; i < pf.nmaps; i++)
        pf.maps[i].fd = -1;
    for (size_t i = 0; i < pf.nmaps; i++) {
        int r = map_parse(a->pos.v[i + 1], &pf.maps[i], reterr);
        if (r < 0)
            return r;
    }

    /* the workspace must exist; its id names it in the tunnels' paths */
    _cleanup_free_ char *ws_path = cmd_ws_path(pf.ws, "");
    _cleanup_(json_decrefp) json_t *ws = NULL;
    int r = client_json(c, "GET", ws_path, NULL, &ws, reterr);
    if (r < 0)
        return r;
    const char *id = cmd_json_str(ws, "id", pf.ws);
    const char *state = cmd_json_str(ws, "state", "running");
    if (strcmp(state, "running") != 0)
        fprintf(stderr,
                "berth: warning: workspace '%s' is %s; connections fail until it runs "
                "('berth start %s')\n",
                pf.ws, state, pf.ws);

    for (size_t i = 0; i < pf.nmaps; i++) {
        _cleanup_free_ char *suffix = xasprintf("/ports/%u/tunnel", pf.maps[i].remote);
        pf.maps[i].path = cmd_ws_path(id, suffix);
        r = map_listen(&pf.maps[i], reterr);
        if (r < 0)
            return r;
    }
    pf.max_conns = pf_max_conns(pf.nmaps);
    pf.chunk = xmalloc(PF_READ_CHUNK);

    _cleanup_(pipe_release) int sig_pipe[2] = {-1, -1};
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return berr_make(reterr, errno, "cannot make a pipe: %s", strerror(errno));
    stop_fd = sig_pipe[1];
    (void)signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = stop_handler, .sa_flags = SA_RESTART};
    (void)sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGINT, &sa, NULL);
    (void)sigaction(SIGTERM, &sa, NULL);

    for (size_t i = 0; i < pf.nmaps; i++)
        printf("forwarding %s:%u -> '%s':%u\n", PF_LISTEN_ADDR, pf.maps[i].local, pf.ws,
               pf.maps[i].remote);
    (void)fflush(stdout);
    return pf_loop(&pf, sig_pipe[0], reterr);
}
