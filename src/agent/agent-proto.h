/* agent-proto.h - the wire protocol between berthd and berth-agent.
 *
 * berthd reaches the agent over a unix stream socket (/.berth/agent.sock inside
 * the container, DATA/run/<id>/agent.sock on the host). The same byte stream can
 * later run over TCP for remote hosts.
 *
 * Every connection carries exactly one session. The client opens it with one
 * request frame (HELLO, EXEC, ...); what follows depends on the request. New
 * kinds of session (TCP relay, port watch) get new request types and never
 * change the meaning of the existing ones.
 *
 * A frame is an 8-byte header followed by `len` bytes of payload:
 *
 *     byte 0     type   (enum agent_frame_type)
 *     byte 1..3  zero   (reserved; a receiver ignores them)
 *     byte 4..7  len    (big-endian, at most AGENT_MAX_PAYLOAD)
 *
 * Requests that need parameters carry a list of fields in the payload (for
 * TCP_CONNECT, after the port):
 *
 *     byte 0     tag    (enum agent_field_tag)
 *     byte 1..4  len    (big-endian)
 *     len bytes  value  (not NUL-terminated)
 *
 * Unknown tags are ignored, so fields can be added later.
 *
 * Sessions:
 *
 *   HELLO   client sends HELLO (empty); agent answers HELLO whose payload is its
 *           version string, then closes. Used to wait for readiness.
 *
 *   EXEC    client sends EXEC with fields ARG (one per argv element, at least one),
 *           ENV ("NAME=value", any number, overriding the defaults), CWD, USER
 *           (name or numeric uid; default root) and optionally TTY (4 bytes: cols
 *           u16 BE, rows u16 BE; asks for a pseudo-terminal, stdout and stderr
 *           merged into STDOUT frames).
 *           Client -> agent: STDIN (data), STDIN_EOF, RESIZE (4 bytes as TTY),
 *           SIGNAL (4 bytes signal number BE).
 *           Agent -> client: STDOUT, STDERR (data), ERROR (a message a person can
 *           read, e.g. "user 'x' not found"), and finally EXIT (4 bytes: exit
 *           status BE, or 128 + signal number; when a signal ended the command, 4
 *           more bytes: that signal's number BE), after which the agent closes.
 *           Readers take the first 4 bytes and ignore what follows.
 *           If the client closes the connection, the agent sends SIGHUP to the
 *           process group of the command.
 *
 *           What agent.c does with the details (clients may rely on these):
 *           the command's environment starts from the agent's own (the
 *           container's: the image's Env and containerEnv, as for `docker exec`)
 *           without HOSTNAME; HOME, USER, LOGNAME and SHELL from the user's passwd
 *           entry replace those, PATH defaults to
 *           /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin when the
 *           container sets none, and with TTY, TERM=xterm-256color; ENV fields
 *           then override, and an ENV field "NAME" without '=' removes NAME. PATH
 *           is searched in that environment. Without CWD the command starts in
 *           the user's home (or /).
 *           A USER number without a passwd entry runs with that uid as gid, no
 *           supplementary groups and HOME=/ (/root for 0). A command that cannot
 *           be started yields ERROR, then EXIT 127 (not found), 126 (cannot
 *           execute, unknown user, failed user switch) or 1 (cannot chdir to CWD).
 *           STDIN_EOF in TTY mode types the terminal's EOF character (^D). A
 *           half-close (shutdown of the client's write side) counts as closing the
 *           connection (TCP_CONNECT passes it on instead; STDIN_EOF is the way to
 *           end an EXEC's input). SIGNAL with a number outside 1..64 yields ERROR; the
 *           session goes on. A malformed frame (too long, wrong size, unexpected
 *           type) yields ERROR, then the agent closes (and hangs up a running
 *           command).
 *
 *   TCP_CONNECT
 *           client sends TCP_CONNECT whose payload is the port (2 bytes, big-endian,
 *           1..65535), optionally followed by fields: HOST (a numeric IPv4 or IPv6
 *           address, e.g. "127.0.0.1", "::1", or an ADDR from a PORTS line; no
 *           names, no brackets). Without HOST the agent tries 127.0.0.1, then ::1
 *           (0.0.0.0 and :: also reach loopback, as on any Linux).
 *           The agent connects from inside the container's network namespace, so
 *           servers bound only to loopback are reachable and no port is published.
 *           Agent -> client: CONNECTED (empty payload; a client ignores any
 *           payload), or ERROR (e.g. "connection refused on port 3000",
 *           "cannot connect to ::1 port 3000: Connection timed out") and close.
 *           After CONNECTED the connection carries no more frames: it is a raw
 *           byte stream in both directions, relayed unchanged to and from the TCP
 *           connection, so the client can splice bytes without parsing.
 *           A client may start sending raw bytes right after the request frame,
 *           without waiting for CONNECTED; they are delivered once connected and
 *           discarded if the connection fails.
 *           Closing (unlike EXEC, where a half-close counts as a full close): a
 *           half-close is passed on. The client's shutdown(SHUT_WR) becomes
 *           shutdown(SHUT_WR) on the TCP connection once all the client's bytes
 *           are written, and the server's FIN becomes shutdown(SHUT_WR) of the
 *           client connection once all the server's bytes are relayed; either
 *           direction goes on flowing until it is closed too. When both
 *           directions are closed the agent closes both sockets. If the TCP
 *           connection fails (reset), the agent relays what it already read and
 *           then closes the client connection without waiting for its EOF; if
 *           the client connection fails or is closed entirely, the agent closes
 *           the TCP connection at once (a reset if the server still had bytes for
 *           it). There is no idle timeout. Each direction queues at most about
 *           256 KiB in the agent, then stops reading its source until the other
 *           side catches up (backpressure reaches the sender).
 *           Connecting gives up on an address after 10 s.
           With the field PASS_FD (empty) the agent relays nothing: CONNECTED
           comes with the connected TCP socket itself attached (SCM_RIGHTS) and
           the agent closes the session, so the client talks to the server
           without a hop through the agent. The client must not send bytes
           before CONNECTED; an agent that cannot pass the socket (or an older
           one) answers plain CONNECTED and relays as above.
 *
 *   PORTS_WATCH
 *           client sends PORTS_WATCH (empty; a payload is ignored) and nothing
 *           else; any frame from the client yields ERROR and close. When the
 *           client closes (or half-closes) the connection the watch ends.
 *           Agent -> client: PORTS frames, for as long as the connection stays
 *           open. A PORTS payload is one or more whole text lines (never split
 *           across frames, at most 64 KiB per frame):
 *
 *               + PORT ADDR PID COMM\n    a listening TCP socket appeared
 *               - PORT ADDR\n             it is gone
 *               .\n                       end of the initial list
 *
 *           PORT is decimal; ADDR is the bound address as inet_ntop() writes it
 *           (0.0.0.0, 127.0.0.1, ::, ::1, ::ffff:127.0.0.1, 172.17.0.2, ...);
 *           PID is the decimal pid (in the container's pid namespace) of the
 *           lowest-numbered process holding the socket and COMM its name from
 *           /proc/PID/comm (the rest of the line: it may contain spaces; control
 *           characters become '?'); PID 0 and COMM "?" when no process could be
 *           found (the socket belongs to another pid namespace, e.g. with host
 *           networking). The agent first sends every current listener as "+"
 *           lines, then ".", then only changes. Each (ADDR, PORT) pair is one
 *           entry: the same port on 0.0.0.0 and :: gives two lines, several
 *           sockets on one address and port (SO_REUSEPORT) one. A listener that
 *           was replaced between two looks (a server restarted quickly) is sent
 *           as "-" then "+" in one frame; in a frame all "-" lines come before
 *           all "+" lines. The agent's own sockets are never listed.
 *
 *           What agent.c does with the details: it reads /proc/net/tcp and
 *           /proc/net/tcp6 (state LISTEN) every 500 ms while at least one watch is
 *           open and not at all otherwise, so changes arrive within about a
 *           second; it looks for owners in /proc/PID/fd only when new sockets
 *           appear. At most 4096 entries are tracked. A watch whose client stops
 *           reading (more than 4 MiB queued) is closed; reconnecting gives a
 *           fresh list.
 *
 *   TTY_WATCH
 *           client sends TTY_WATCH (empty; a payload is ignored) and nothing else;
 *           any frame from the client yields ERROR and close. The watch ends when the
 *           client closes (or half-closes) the connection.
 *           Agent -> client: TTYS frames, 8 bytes each: the unix time in seconds
 *           (u64 BE) of the newest output written to a terminal of the container
 *           that the agent did not open itself (VS Code's terminals, a tmux under
 *           an SSH session), 0 when there is none. The first TTYS comes at once, as
 *           the starting point; later ones only when that time moved forward.
 *           What agent.c does with the details: it looks at the mtime of each
 *           /dev/pts/N (the kernel stamps it when output is written, at a
 *           granularity of 8 s) every 5 s while at least one watch is open, and
 *           not at all otherwise. The terminals of its own EXEC sessions (berth
 *           terminals, SSH sessions) are left out: berthd counts those itself.
 *
 *   CRED_SERVE
 *           berthd offers git credentials to a workspace whose run directory is not
 *           on berthd's host (a cluster; on one host berthd listens on
 *           credentials.sock in the run directory itself). Client sends CRED_SERVE
 *           with the field USER (the numeric uid allowed to ask). The agent listens
 *           on AGENT_CRED_SOCKET (/run/berth-credentials.sock, mode 0600, owned by
 *           that uid) and answers CONNECTED, or ERROR and close. Then:
 *           agent -> client: CRED_ASK, 4 bytes request id (BE) then git's request
 *           as `berth-agent git-credential get` read it (key=value lines, at most
 *           16 KiB), once per connection to the socket.
 *           client -> agent: CRED_ANSWER, 4 bytes of an id it was asked, then the
 *           answer for git (key=value lines; empty: nothing to offer). An id it
 *           was not asked (or no longer waits) is ignored; any other frame yields
 *           ERROR and close.
 *           One CRED_SERVE at a time: a newer one replaces the older, which the
 *           agent closes. When the session ends the socket goes, and requests
 *           still waiting get an empty answer; so does one not answered in 30 s.
 *
 *   AUTH    only on the TCP listener (berth-agent --tcp ADDR:PORT --key FILE --id ID,
 *           for workspaces that berthd reaches over a network, as on a cluster;
 *           the unix socket, reachable only through berthd's own run directory,
 *           has no handshake). Before any request:
 *           agent -> client: AUTH_CHALLENGE, 32 bytes: a random nonce Na.
 *           client -> agent: AUTH, 64 bytes: mac("berthd", Na, Nb) then its own
 *           random nonce Nb.
 *           agent -> client: AUTH_OK, 32 bytes: mac("agent", Nb, Na); or ERROR
 *           ("authentication failed") and close.
 *           mac() is agent-auth.h's keyed hash under the workspace's secret and
 *           binds the workspace id, so a relay between the two, or another
 *           workspace, can neither drive the agent nor pose as it. A client checks
 *           AUTH_OK before it sends its request; then the session goes on as on
 *           the unix socket. Any other frame before AUTH yields ERROR and close.
 *           The handshake authenticates; it does not encrypt (the network's
 *           encryption is the engine's: an encrypted overlay).
 *
 * DATA (13) is reserved and unused: a relay carries raw bytes after CONNECTED.
 */
#ifndef BERTH_AGENT_PROTO_H
#define BERTH_AGENT_PROTO_H

#include <stdint.h>
#include <stddef.h>

#define AGENT_PROTO_VERSION "berth-agent 1"
#define AGENT_HEADER_SIZE 8
#define AGENT_MAX_PAYLOAD (1024 * 1024)
#define AGENT_SOCKET_NAME "agent.sock"
/* Where a CRED_SERVE session's listener is, inside the container. */
#define AGENT_CRED_SOCKET "/run/berth-credentials.sock"

enum agent_frame_type {
    AGENT_HELLO = 1,
    AGENT_EXEC = 2,
    AGENT_STDIN = 3,
    AGENT_STDIN_EOF = 4,
    AGENT_RESIZE = 5,
    AGENT_SIGNAL = 6,
    AGENT_STDOUT = 7,
    AGENT_STDERR = 8,
    AGENT_EXIT = 9,
    AGENT_ERROR = 10,
    AGENT_TCP_CONNECT = 11,
    AGENT_PORTS_WATCH = 12,
    AGENT_DATA = 13, /* reserved, unused */
    AGENT_CONNECTED = 14,
    AGENT_PORTS = 15,
    AGENT_TTY_WATCH = 16,
    AGENT_TTYS = 17,
    AGENT_AUTH_CHALLENGE = 18,
    AGENT_AUTH = 19,
    AGENT_AUTH_OK = 20,
    AGENT_CRED_SERVE = 21,
    AGENT_CRED_ASK = 22,
    AGENT_CRED_ANSWER = 23,
};

enum agent_field_tag {
    AGENT_FIELD_ARG = 1,
    AGENT_FIELD_ENV = 2,
    AGENT_FIELD_CWD = 3,
    AGENT_FIELD_USER = 4,
    AGENT_FIELD_TTY = 5,
    AGENT_FIELD_HOST = 6,
    AGENT_FIELD_PASS_FD = 7,
};

static inline void agent_put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static inline uint32_t agent_get_u32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void agent_put_header(unsigned char *h, enum agent_frame_type type, uint32_t len)
{
    h[0] = (unsigned char)type;
    h[1] = h[2] = h[3] = 0;
    agent_put_u32(h + 4, len);
}

/* A frame as it sits in a buffer of received bytes. */
struct agent_frame {
    unsigned type;
    const unsigned char *payload;
    uint32_t len;
};

/* The next whole frame of data[*off, size): 1 with *off moved past it, 0 when
 * it has not all arrived, -1 when it claims more than AGENT_MAX_PAYLOAD. */
static inline int agent_next_frame(const void *data, size_t size, size_t *off,
                                   struct agent_frame *ret)
{
    if (size - *off < AGENT_HEADER_SIZE)
        return 0;
    const unsigned char *h = (const unsigned char *)data + *off;
    uint32_t len = agent_get_u32(h + 4);
    if (len > AGENT_MAX_PAYLOAD)
        return -1;
    if (size - *off - AGENT_HEADER_SIZE < len)
        return 0;
    *ret = (struct agent_frame){.type = h[0], .payload = h + AGENT_HEADER_SIZE, .len = len};
    *off += AGENT_HEADER_SIZE + len;
    return 1;
}

#endif
