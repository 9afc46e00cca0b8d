/* agent-internal.h - what the parts of berth-agent share, and nothing outside it uses.
 *
 * berth-agent is one single-threaded program split by concern:
 *   agent-frame.c   helpers, byte queues, a connection's frames: sending, the parser, flushing;
 *   agent-exec.c    EXEC: the request, the child between fork() and execve(), the session;
 *   agent-tunnel.c  TCP_CONNECT: the connect() and the relay, or the socket handed over;
 *   agent-ports.c   PORTS_WATCH: the listeners in /proc/net/tcp{,6} and their owners;
 *   agent-ttys.c    TTY_WATCH: when the container's other terminals last printed;
 *   agent-auth.c    the TCP listener and its handshake (AUTH);
 *   agent-creds.c   CRED_SERVE: git's credential requests passed on to berthd;
 *   agent.c         the loop, PID 1's duties, main() and the git credential helper.
 * Every connection is a struct conn in agent.conns; the loop polls its fds and calls into the
 * part its state belongs to. Nothing here is thread-safe, and nothing needs to be.
 */
#pragma once

#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "agent-proto.h"

#define AGENT_DEFAULT_SOCKET "/.berth/" AGENT_SOCKET_NAME
#define AGENT_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define AGENT_MAX_CONNS 1024
#define AGENT_CHUNK (64 * 1024)           /* largest STDOUT/STDERR frame and read size */
#define AGENT_OUT_LIMIT (4 * 1024 * 1024) /* unsent output that pauses the command's pipes */
#define AGENT_IN_LIMIT (1024 * 1024)      /* unwritten stdin that pauses reading the client */
#define AGENT_MSG_LIMIT (16 * 1024)       /* longest ERROR message */
#define AGENT_DRAIN_MS 200                /* output grace after the command exits */
#define AGENT_HANGUP_KILL_MS 1000         /* SIGHUP, then SIGKILL if still alive */
#define AGENT_SHUTDOWN_MS 2000            /* engine stop timeout is 10 s; stay well inside */
#define AGENT_IDLE_MS 30000               /* no request yet, or a client that stopped reading */
#define AGENT_LINGER_MS 1000              /* after the last frame, for the client to close */
#define AGENT_RELAY_LIMIT (256 * 1024)    /* queued relay bytes that pause reading the source */
#define AGENT_RELAY_READS 8               /* chunks moved per wake-up, so one relay cannot starve */
#define AGENT_CONNECT_MS 10000            /* per address; loopback only waits on a full backlog */
#define AGENT_PORTS_SCAN_MS 500           /* "about a second" for a change to reach the client */
#define AGENT_PORTS_MAX 4096              /* listeners tracked; a frame of them stays < 1 MiB */
#define AGENT_TTYS_SCAN_MS 5000           /* the kernel's own stamp is only good to 8 s */

#define NEVER INT64_MAX
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_ __attribute__((noreturn))

_noreturn_ _printf_(1, 2) void die(const char *fmt, ...);
_noreturn_ void oom(void);
void *xrealloc(void *p, size_t n);
char *xstrndup(const void *s, size_t n);
int64_t now_ms(void);
/* Closes *fd unless it is -1, and sets it to -1. */
void close_fd(int *fd);
void set_nonblock(int fd);

/* ---- byte queues ---- */

/* Bytes [head, len) of data are queued; the space before head is reclaimed lazily so that
 * sending a little from a large queue does not move the rest every time. */
struct buf {
    unsigned char *data;
    size_t head, len, cap;
};

size_t buf_pending(const struct buf *b);
/* Returns room for n more bytes at data + len; the caller advances len by what it used. */
unsigned char *buf_reserve(struct buf *b, size_t n);
void buf_add(struct buf *b, const void *p, size_t n);
void buf_release(struct buf *b);
/* Drops n sent bytes from the front; an emptied large queue gives its memory back. */
void buf_consume(struct buf *b, size_t n);

/* ---- connections ---- */

enum conn_state {
    CONN_AUTH,       /* TCP listener: waiting for the client's AUTH */
    CONN_REQUEST,    /* waiting for the request frame */
    CONN_SESSION,    /* an EXEC is running */
    CONN_CONNECTING, /* TCP_CONNECT: connect() in progress; client bytes are queued raw */
    CONN_RELAY,      /* TCP_CONNECT: connected; raw bytes both ways, no frames */
    CONN_WATCH,      /* PORTS_WATCH or TTY_WATCH: frames go out; only the client's close comes in */
    CONN_CRED_SERVE, /* CRED_SERVE: CRED_ASK frames go out, CRED_ANSWER frames come in */
    CONN_CRED_ASK,   /* a helper on the credential socket: its raw request, up to its EOF */
    CONN_CRED_WAIT,  /* its request went to berthd: waiting for the answer */
    CONN_CLOSING,    /* last frames queued; close once they are sent */
};

union inet_addr {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
};

struct conn {
    int fd; /* client socket, -1 once closed */
    enum conn_state state;
    int64_t deadline; /* CONN_AUTH, CONN_REQUEST: request timeout; CONN_CLOSING: stall timeout */
    unsigned char auth_nonce[32]; /* CONN_AUTH: the challenge sent */

    unsigned char hdr[AGENT_HEADER_SIZE]; /* frame being received */
    size_t hdr_got;
    unsigned char *payload;
    size_t payload_len, payload_got;
    struct buf out; /* frames for the client */

    /* The EXEC session; pid is 0 until a command was started. */
    pid_t pid;
    bool reaped;    /* waitpid() returned it; status is valid, pid may be reused */
    bool abandoned; /* the client left first: no more relaying, only the hangup */
    bool tty;
    bool stdin_eof;
    bool wr_shut; /* CONN_CLOSING: everything sent, waiting for the client to close */
    int status;
    int in_fd;      /* pipe to the command's stdin */
    int out_fd;     /* pipe from its stdout, or pty_fd until the pty reports EOF */
    int pty_fd;     /* tty mode: the master; takes input, resizes, and closes last */
    dev_t pty_rdev; /* tty mode: the terminal's device, which TTY_WATCH leaves out */
    int err_fd;     /* pipe from its stderr */
    int report_fd;  /* setup errors from the child; EOF once execve() succeeded */
    struct buf in;  /* client input not yet taken by the command */
    struct buf report;
    int64_t drain_deadline; /* after exit: give up waiting for EOF on the output */
    int64_t kill_deadline;  /* after a hangup: SIGKILL if it is still running */

    /* The TCP_CONNECT session. in holds the client's bytes for the server, out the CONNECTED
     * frame and then the server's bytes for the client; deadline bounds each connect(). */
    int tcp_fd;
    unsigned short tcp_port;
    bool tcp_host_given;
    bool tcp_pass_fd; /* PASS_FD: hand the connected socket over instead of relaying */
    unsigned tcp_naddrs, tcp_tried;
    union inet_addr tcp_addrs[2];
    int tcp_errno;       /* the most telling failure among the addresses tried */
    bool client_eof;     /* the client half-closed: shut the server's side once in drains */
    bool tcp_wr_shut;    /* nothing more goes to the server (shut down, or it failed) */
    bool tcp_eof;        /* nothing more comes from the server */
    bool tcp_failed;     /* it failed: close the client once out drains, without its EOF */
    bool client_wr_shut; /* the server's EOF was passed on */

    /* The PORTS_WATCH and TTY_WATCH sessions */
    bool watch_ttys;   /* a TTY_WATCH (else a PORTS_WATCH) */
    bool watch_listed; /* the initial list (or time) was sent; from now on only changes */
    int64_t ttys_sent; /* TTY_WATCH: the newest output time sent */

    /* A credential helper's connection: its request is in, its id that of the CRED_ASK */
    uint32_t cred_id;
};

/* A listening TCP socket as PORTS_WATCH reports it. */
struct port {
    unsigned long inode; /* the lowest inode listening on this address and port */
    pid_t pid;           /* the owner; 0 when none was found */
    unsigned short port;
    unsigned char family; /* AF_INET (addr[0..3]) or AF_INET6 */
    unsigned char addr[16];
    bool resolved; /* pid and comm are known, or known to be unknowable */
    bool own;      /* the agent's: never reported */
    char comm[32];
};

struct agent_state {
    const char *socket_path;
    int listen_fd;
    int tcp_listen_fd;          /* --tcp: -1 without */
    unsigned char auth_key[32]; /* --key: the workspace's secret */
    const char *auth_id;        /* --id: the workspace's id */
    int signal_fd;
    struct conn **conns;
    size_t nconns, conns_cap;
    pid_t cmd_pid; /* the image's own command, 0 when none or gone */
    char *cmd_name;
    int64_t accept_resume; /* out of fds: accepting again from then on */
    bool shutting_down;
    int64_t shutdown_deadline;
    struct rlimit nofile; /* as the engine set it; restored for every command */
    bool nofile_raised;
    struct port *ports; /* the last look at the listeners, sorted by port_cmp() */
    size_t nports;
    int64_t ports_next_scan;
    int64_t ttys_next_scan;
    int cred_listen_fd;      /* AGENT_CRED_SOCKET while a CRED_SERVE runs, else -1 */
    struct conn *cred_serve; /* that session */
    uint32_t cred_next_id;
};

extern struct agent_state agent;
/* Where every read from a socket or pipe lands first. */
extern unsigned char scratch[AGENT_CHUNK];

/* ---- agent-frame.c: a connection's frames ---- */

/* Queues a frame for the client; nothing once the client is gone. */
void conn_send(struct conn *c, enum agent_frame_type type, const void *data, size_t len);
_printf_(2, 3) void conn_send_error(struct conn *c, const char *fmt, ...);
void conn_send_u32(struct conn *c, enum agent_frame_type type, uint32_t v);
/* The last frames are queued: close once they are sent, or after AGENT_IDLE_MS. */
void conn_start_closing(struct conn *c, int64_t now);
bool conn_timed(const struct conn *c);
/* Closes the client's socket (and a relay's server socket); a running command is hung up. */
void conn_drop_client(struct conn *c, int64_t now);
/* A protocol violation: ERROR goes out, then the connection closes. */
_printf_(3, 4) void conn_fail(struct conn *c, int64_t now, const char *fmt, ...);
void conn_free(struct conn *c);
/* Takes the next field off the list at *p (n bytes left). Returns NULL, or why the list is
 * malformed. */
const char *field_next(const unsigned char **p, size_t *n, unsigned *ret_tag,
                       const unsigned char **ret_value, size_t *ret_len);
/* The client's fd is readable: frames are parsed and handled, or relay bytes passed on. */
void conn_read(struct conn *c, int64_t now);
/* The client's fd is writable: queued bytes go out; a closing connection half-closes once
 * all is sent. */
void conn_flush(struct conn *c, int64_t now);

/* ---- agent-exec.c: EXEC sessions ---- */

/* An EXEC whose command was started and whose client is still there. */
bool session_running(const struct conn *c);
/* Signals the command's process group (the command alone right after fork()). */
void session_kill(struct conn *c, int sig);
void session_close_fds(struct conn *c);
/* The client left before EXIT: hang up, and SIGKILL after AGENT_HANGUP_KILL_MS. */
void session_abandon(struct conn *c, int64_t now);
/* Parses an EXEC request and starts its command; a failure is told to the client. */
void session_start(struct conn *c, const unsigned char *p, size_t n, int64_t now);
void session_handle_frame(struct conn *c, unsigned type, const unsigned char *p, size_t n,
                          int64_t now);
void session_read_output(struct conn *c, int *fd, enum agent_frame_type type);
void session_write_input(struct conn *c);
void session_read_report(struct conn *c);
/* Sends EXIT once the command is reaped and its output drained (or the grace is over). */
void session_maybe_finish(struct conn *c, int64_t now);

/* ---- agent-tunnel.c: TCP_CONNECT ---- */

/* Parses a TCP_CONNECT request and starts connecting; a failure is told to the client. */
void relay_start(struct conn *c, const unsigned char *p, size_t n, int64_t now);
void relay_connect_done(struct conn *c, int64_t now);
void relay_connect_timeout(struct conn *c, int64_t now);
/* Bytes the client sent: to the server, or queued while it does not take them. */
void relay_from_client(struct conn *c, const unsigned char *p, size_t n);
void relay_read_client(struct conn *c, int64_t now);
void relay_read_tcp(struct conn *c, int64_t now);
void relay_flush_tcp(struct conn *c, int64_t now);
/* Passes half-closes on and closes the relay once both directions are done. */
void relay_settle(struct conn *c, int64_t now);

/* ---- agent-ports.c: PORTS_WATCH ---- */

/* Looks at the listeners when it is time and someone watches; lowers *next to the time of
 * the next look. */
void ports_tick(int64_t now, int64_t *next);

/* ---- agent-ttys.c: TTY_WATCH ---- */

/* Looks at the terminals when it is time and someone watches; lowers *next to the time of the
 * next look. */
void ttys_tick(int64_t now, int64_t *next);

/* ---- agent-creds.c: CRED_SERVE ---- */

/* Parses a CRED_SERVE request and opens the credential socket; a failure is told to the
 * client. */
void creds_serve_start(struct conn *c, const unsigned char *p, size_t n, int64_t now);
/* A frame from the serving client (CRED_ANSWER). */
void creds_handle_frame(struct conn *c, unsigned type, const unsigned char *p, size_t n,
                        int64_t now);
/* Accepts helpers on the credential socket. */
void creds_accept(int64_t now);
/* A helper's connection is readable: its request, sent on at its EOF. */
void creds_read_ask(struct conn *c, int64_t now);
/* Notices a serving session that ended: the socket goes, and waiting helpers get nothing. */
void creds_tick(int64_t now);
/* Zeroes what a credential helper's connection holds, before it is freed. */
void creds_conn_free(struct conn *c);
/* A new connection in state, with every fd unset. */
struct conn *conn_new(int fd, enum conn_state state, int64_t now);

/* ---- agent-auth.c: the TCP listener (AUTH) ---- */

/* Reads the key (exactly 32 bytes) and listens on ADDR:PORT (IPv4, or [IPv6]:PORT); dies on
 * failure. */
void auth_setup(const char *tcp, const char *key_file, const char *id);
/* A connection accepted on the TCP listener: AUTH_CHALLENGE goes out. */
void auth_begin(struct conn *c, int64_t now);
/* A frame of a connection in CONN_AUTH. */
void auth_handle_frame(struct conn *c, unsigned type, const unsigned char *p, size_t n,
                       int64_t now);
