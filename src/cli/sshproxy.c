/* sshproxy.c - `berth ssh-proxy WS`: an OpenSSH ProxyCommand over berthd's HTTP port.
 *
 * For machines that reach berthd's HTTP port and not its SSH port: ssh runs
 * `berth ssh-proxy WS` and speaks SSH on its stdin and stdout, which berth
 * carries in the binary messages of a WebSocket to /api/v1/workspaces/{ws}/ssh
 * (docs/api.md), opened with the CLI's token. berthd hands the stream to its
 * SSH gateway as if it had come to the SSH port, so the SSH login still needs a
 * key of the workspace's owner: the token only opens the way.
 *
 * One poll() loop: stdin is read while less than SP_HIGH_WATER waits to go out
 * on the WebSocket; each message that comes is written to stdout at once (a
 * blocking write: ssh reads its ProxyCommand's output as it comes, and while it
 * does not, nothing more is read from berthd either). When stdin ends (ssh is
 * done), what it sent is delivered, the WebSocket is closed and berth exits 0;
 * when berthd ends the stream, berth exits 0 too, and ssh reports what the SSH
 * protocol says. Errors go to stderr, which ssh shows to its user.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/wsclient.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/xalloc.h"

#define SP_READ_CHUNK (64 * 1024)
#define SP_HIGH_WATER (1024 * 1024)
/* How long berthd may take to answer our close frame. */
#define SP_CLOSE_WAIT_MS 5000

static int proxy_message_cb(struct wsc *w, int opcode, const unsigned char *msg, size_t len,
                            void *data, struct berr **reterr)
{
    (void)w;
    (void)data;
    if (opcode != WSC_BINARY)
        return 0;
    int r = write_all(STDOUT_FILENO, msg, len);
    if (r < 0)
        return berr_make(reterr, -r, "cannot write to ssh: %s", strerror(-r));
    return 0;
}

/* Reads one chunk of stdin into the WebSocket's queue; returns 1 at its end. */
static int proxy_read_stdin(struct wsc *w, unsigned char *chunk, struct berr **reterr)
{
    ssize_t n = read(STDIN_FILENO, chunk, SP_READ_CHUNK);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n < 0)
        return berr_make(reterr, errno, "cannot read from ssh: %s", strerror(errno));
    if (n == 0)
        return 1;
    return wsc_send(w, WSC_BINARY, chunk, (size_t)n, reterr);
}

static int proxy_loop(struct wsc *w, struct berr **reterr)
{
    _cleanup_free_ unsigned char *chunk = xmalloc(SP_READ_CHUNK);
    bool stdin_open = true, closing = false;
    int64_t close_deadline = 0;
    while (!wsc_done(w)) {
        if (!stdin_open && !closing && wsc_queued(w) == 0) {
            wsc_close(w, 1000);
            closing = true;
            close_deadline = mono_ms() + SP_CLOSE_WAIT_MS;
        }
        int timeout = -1;
        if (closing) {
            int64_t left = close_deadline - mono_ms();
            if (left <= 0)
                return 0;
            timeout = (int)left;
        }
        if (wsc_has_buffered(w))
            timeout = 0;
        struct pollfd p[2] = {{.fd = wsc_fd(w), .events = wsc_events(w)}, {.fd = -1}};
        if (stdin_open && wsc_queued(w) < SP_HIGH_WATER)
            p[1] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
        int n = poll(p, 2, timeout);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return berr_make(reterr, errno, "poll: %s", strerror(errno));
        if (p[1].revents) {
            int r = proxy_read_stdin(w, chunk, reterr);
            if (r < 0)
                return r;
            if (r == 1)
                stdin_open = false;
        }
        int r = wsc_process(w, p[0].revents, reterr);
        if (r < 0)
            return r == -ECONNRESET ? 0 : r; /* berthd or the gateway ended the stream */
    }
    return 0;
}

int cmd_ssh_proxy(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    (void)signal(SIGPIPE, SIG_IGN);
    _cleanup_free_ char *path = cmd_ws_path(a->pos.v[0], "/ssh");
    _cleanup_(wsc_freep) struct wsc *w = NULL;
    int r = wsc_connect(client_url(c), path, client_token(c), proxy_message_cb, NULL, &w, reterr);
    if (r < 0)
        return r;
    r = proxy_loop(w, reterr);
    return r < 0 ? r : 0;
}
