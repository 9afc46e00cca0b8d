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
 * Requests that need parameters (EXEC) carry a list of fields in the payload:
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
 *           status BE, or 128 + signal number), after which the agent closes.
 *           If the client closes the connection, the agent sends SIGHUP to the
 *           process group of the command.
 *
 *           What agent.c does with the details (clients may rely on these):
 *           the command's environment is not the agent's; it starts from HOME,
 *           USER, LOGNAME and SHELL from the user's passwd entry,
 *           PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin and,
 *           with TTY, TERM=xterm-256color; ENV fields then override, and an ENV
 *           field "NAME" without '=' removes NAME. PATH is searched in that
 *           environment. Without CWD the command starts in the user's home (or /).
 *           A USER number without a passwd entry runs with that uid as gid, no
 *           supplementary groups and HOME=/ (/root for 0). A command that cannot
 *           be started yields ERROR, then EXIT 127 (not found), 126 (cannot
 *           execute, unknown user, failed user switch) or 1 (cannot chdir to CWD).
 *           STDIN_EOF in TTY mode types the terminal's EOF character (^D). A
 *           half-close (shutdown of the client's write side) counts as closing the
 *           connection. SIGNAL with a number outside 1..64 yields ERROR; the
 *           session goes on. A malformed frame (too long, wrong size, unexpected
 *           type) yields ERROR, then the agent closes (and hangs up a running
 *           command).
 *
 * Reserved for later sessions: TCP_CONNECT (relay to a container-local port),
 * PORTS_WATCH (stream of listening-port changes), DATA.
 */
#ifndef BERTH_AGENT_PROTO_H
#define BERTH_AGENT_PROTO_H

#include <stdint.h>

#define AGENT_PROTO_VERSION "berth-agent 1"
#define AGENT_HEADER_SIZE 8
#define AGENT_MAX_PAYLOAD (1024 * 1024)
#define AGENT_SOCKET_NAME "agent.sock"

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
    /* reserved, not implemented yet */
    AGENT_TCP_CONNECT = 11,
    AGENT_PORTS_WATCH = 12,
    AGENT_DATA = 13,
};

enum agent_field_tag {
    AGENT_FIELD_ARG = 1,
    AGENT_FIELD_ENV = 2,
    AGENT_FIELD_CWD = 3,
    AGENT_FIELD_USER = 4,
    AGENT_FIELD_TTY = 5,
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

#endif
