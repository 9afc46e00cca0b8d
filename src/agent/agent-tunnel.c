/* agent-tunnel.c - TCP_CONNECT: a connection to a port inside the container.
 *
 * A non-blocking connect() to the port on a loopback (127.0.0.1, then ::1) or the numeric HOST
 * asked for. With PASS_FD the connected socket goes to the client with CONNECTED and the
 * agent is out of the way; otherwise raw bytes go both ways with half-closes passed on. Bytes
 * go straight from one socket to the other while the receiver keeps up; only what it refuses
 * is queued, so a busy relay costs two syscalls per chunk and one whose peers keep up holds no
 * buffer.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent-internal.h"

/* Returns NULL, or why the request is unusable. */
static const char *relay_parse(struct conn *c, const unsigned char *p, size_t n)
{
    if (n < 2)
        return "no port";
    c->tcp_port = (unsigned short)(p[0] << 8 | p[1]);
    if (c->tcp_port == 0)
        return "port 0";
    p += 2;
    n -= 2;
    while (n > 0) {
        unsigned tag;
        const unsigned char *v;
        size_t len;
        const char *why = field_next(&p, &n, &tag, &v, &len);
        if (why)
            return why;
        if (tag == AGENT_FIELD_PASS_FD)
            c->tcp_pass_fd = true;
        if (tag != AGENT_FIELD_HOST)
            continue;
        /* Numbers only: resolving a name could block the whole agent. */
        char host[INET6_ADDRSTRLEN];
        if (len == 0 || len >= sizeof(host) || memchr(v, '\0', len))
            return "HOST is not a numeric IP address";
        memcpy(host, v, len);
        host[len] = '\0';
        union inet_addr *a = &c->tcp_addrs[0];
        *a = (union inet_addr){0};
        if (inet_pton(AF_INET, host, &a->in4.sin_addr) == 1)
            a->in4.sin_family = AF_INET;
        else if (inet_pton(AF_INET6, host, &a->in6.sin6_addr) == 1)
            a->in6.sin6_family = AF_INET6;
        else
            return "HOST is not a numeric IP address";
        c->tcp_naddrs = 1;
        c->tcp_host_given = true;
    }
    if (!c->tcp_host_given) {
        /* Dev servers bind to either loopback; IPv4 first, as most do. */
        c->tcp_addrs[0] = (union inet_addr){
            .in4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)}};
        c->tcp_addrs[1] =
            (union inet_addr){.in6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT}};
        c->tcp_naddrs = 2;
    }
    for (unsigned i = 0; i < c->tcp_naddrs; i++) {
        if (c->tcp_addrs[i].sa.sa_family == AF_INET)
            c->tcp_addrs[i].in4.sin_port = htons(c->tcp_port);
        else
            c->tcp_addrs[i].in6.sin6_port = htons(c->tcp_port);
    }
    return NULL;
}

/* A container without IPv6 makes ::1 fail; that says less than 127.0.0.1 refusing. */
static bool relay_error_is_weak(int err)
{
    return err == EAFNOSUPPORT || err == EADDRNOTAVAIL || err == ENETUNREACH ||
           err == EPROTONOSUPPORT;
}

static void relay_note_error(struct conn *c, int err)
{
    if (c->tcp_errno == 0 || (relay_error_is_weak(c->tcp_errno) && !relay_error_is_weak(err)))
        c->tcp_errno = err;
}

static void relay_fail(struct conn *c, int64_t now)
{
    char host[INET6_ADDRSTRLEN] = "";
    const union inet_addr *a = &c->tcp_addrs[0];

    if (c->tcp_host_given) {
        const void *bytes = a->sa.sa_family == AF_INET ? (const void *)&a->in4.sin_addr
                                                       : (const void *)&a->in6.sin6_addr;
        if (!inet_ntop(a->sa.sa_family, bytes, host, sizeof(host)))
            host[0] = '\0';
    }
    const char *sep = host[0] ? " " : "";
    if (c->tcp_errno == ECONNREFUSED)
        conn_send_error(c, "connection refused on %s%sport %u", host, sep, c->tcp_port);
    else
        conn_send_error(c, "cannot connect to %s%sport %u: %s", host, sep, c->tcp_port,
                        strerror(c->tcp_errno));
    buf_release(&c->in); /* bytes the client sent ahead have nowhere to go */
    conn_start_closing(c, now);
}

/* Starts connecting to the next address; the socket reports the outcome by turning writable.
 * Without any address left, the client is told why the last ones failed. */
static void relay_connect_next(struct conn *c, int64_t now)
{
    while (c->tcp_tried < c->tcp_naddrs) {
        const union inet_addr *a = &c->tcp_addrs[c->tcp_tried++];
        socklen_t len = a->sa.sa_family == AF_INET ? sizeof(a->in4) : sizeof(a->in6);
        int fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            relay_note_error(c, errno);
            continue;
        }
        if (connect(fd, &a->sa, len) == 0 || errno == EINPROGRESS) {
            c->tcp_fd = fd;
            c->deadline = now + AGENT_CONNECT_MS;
            return;
        }
        relay_note_error(c, errno);
        close(fd);
    }
    relay_fail(c, now);
}

void relay_connect_timeout(struct conn *c, int64_t now)
{
    relay_note_error(c, ETIMEDOUT);
    close_fd(&c->tcp_fd);
    relay_connect_next(c, now);
}

/* The server's side can take no more bytes: what the client sends from now on is dropped,
 * and once the server's last bytes are relayed the client is closed without waiting for it. */
static void relay_tcp_broken(struct conn *c)
{
    c->tcp_failed = true;
    c->tcp_wr_shut = true;
    buf_release(&c->in);
}

/* Passes half-closes on once their direction is drained, and closes both sockets when both
 * directions are done. */
void relay_settle(struct conn *c, int64_t now)
{
    if (c->state != CONN_RELAY || c->fd < 0)
        return;
    if (c->client_eof && !c->tcp_wr_shut && buf_pending(&c->in) == 0) {
        (void)shutdown(c->tcp_fd, SHUT_WR);
        c->tcp_wr_shut = true;
    }
    if (c->tcp_eof && !c->client_wr_shut && buf_pending(&c->out) == 0) {
        if (c->tcp_failed) {
            conn_drop_client(c, now);
            return;
        }
        (void)shutdown(c->fd, SHUT_WR);
        c->client_wr_shut = true;
    }
    if (c->tcp_wr_shut && c->client_wr_shut)
        conn_drop_client(c, now);
}

void relay_flush_tcp(struct conn *c, int64_t now)
{
    if (c->tcp_fd >= 0 && !c->tcp_wr_shut && buf_pending(&c->in) > 0) {
        ssize_t n = send(c->tcp_fd, c->in.data + c->in.head, buf_pending(&c->in), MSG_NOSIGNAL);
        if (n > 0)
            buf_consume(&c->in, (size_t)n);
        else if (n < 0 && errno != EAGAIN && errno != EINTR)
            relay_tcp_broken(c);
    }
    relay_settle(c, now);
}

/* PASS_FD: CONNECTED goes out with the connected socket attached, and the session ends; the
 * client's bytes then never pass through the agent. False (nothing sent) when that cannot be
 * done: then the relay goes on as without PASS_FD. */
static bool relay_pass_fd(struct conn *c, int64_t now)
{
    unsigned char h[AGENT_HEADER_SIZE];
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    struct iovec iov = {.iov_base = h, .iov_len = sizeof(h)};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};

    if (buf_pending(&c->in) > 0 || buf_pending(&c->out) > 0)
        return false; /* bytes already on their way: keep them in order through the relay */
    /* only a unix socket carries a descriptor: TCP ignores SCM_RIGHTS without
     * an error (a client on the TCP listener would get CONNECTED and no socket) */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(c->fd, (struct sockaddr *)&ss, &sl) < 0 || ss.ss_family != AF_UNIX)
        return false;
    agent_put_header(h, AGENT_CONNECTED, 0);
    memset(&u, 0, sizeof(u));
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &c->tcp_fd, sizeof(int));
    ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
    if (n < 0)
        return false;
    /* the socket went with the first byte; the rest of the frame follows as usual */
    buf_add(&c->out, h + n, sizeof(h) - (size_t)n);
    close_fd(&c->tcp_fd);
    conn_start_closing(c, now);
    return true;
}

void relay_connect_done(struct conn *c, int64_t now)
{
    int err = 0, one = 1;
    socklen_t len = sizeof(err);

    if (getsockopt(c->tcp_fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        relay_note_error(c, err);
        close_fd(&c->tcp_fd);
        relay_connect_next(c, now);
        return;
    }
    /* The relay forwards writes as the client made them; Nagle would only add delay to the
     * small ones (keystrokes over a WebSocket). */
    (void)setsockopt(c->tcp_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (c->tcp_pass_fd && relay_pass_fd(c, now))
        return;
    c->state = CONN_RELAY;
    c->deadline = NEVER;
    conn_send(c, AGENT_CONNECTED, NULL, 0);
    relay_flush_tcp(c, now);
}

void relay_start(struct conn *c, const unsigned char *p, size_t n, int64_t now)
{
    const char *why = relay_parse(c, p, n);

    if (why) {
        conn_fail(c, now, "invalid TCP_CONNECT request: %s", why);
        return;
    }
    c->state = CONN_CONNECTING;
    relay_connect_next(c, now);
}

/* Passes the client's bytes to the server, queueing what it does not take yet (and all of
 * them while still connecting). */
void relay_from_client(struct conn *c, const unsigned char *p, size_t n)
{
    if (c->tcp_wr_shut)
        return;
    if (c->state == CONN_RELAY && buf_pending(&c->in) == 0) {
        ssize_t w = send(c->tcp_fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            relay_tcp_broken(c);
            return;
        }
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        }
    }
    buf_add(&c->in, p, n);
}

void relay_read_client(struct conn *c, int64_t now)
{
    for (int i = 0; i < AGENT_RELAY_READS && !c->client_eof; i++) {
        if (!c->tcp_wr_shut && buf_pending(&c->in) >= AGENT_RELAY_LIMIT)
            break;
        ssize_t n = read(c->fd, scratch, sizeof(scratch));
        if (n == 0) {
            c->client_eof = true;
        } else if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                conn_drop_client(c, now);
                return;
            }
            break;
        } else {
            relay_from_client(c, scratch, (size_t)n);
            if ((size_t)n < sizeof(scratch))
                break; /* drained; spare the read that would say EAGAIN */
        }
    }
    relay_settle(c, now);
}

void relay_read_tcp(struct conn *c, int64_t now)
{
    for (int i = 0; i < AGENT_RELAY_READS && !c->tcp_eof; i++) {
        if (buf_pending(&c->out) >= AGENT_RELAY_LIMIT)
            break;
        ssize_t n = read(c->tcp_fd, scratch, sizeof(scratch));
        if (n == 0) {
            c->tcp_eof = true;
        } else if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                c->tcp_eof = true; /* reset: relay what came before, then close */
                relay_tcp_broken(c);
            }
            break;
        } else {
            size_t sent = 0;
            if (buf_pending(&c->out) == 0) {
                ssize_t w = send(c->fd, scratch, (size_t)n, MSG_NOSIGNAL);
                if (w < 0 && errno != EAGAIN && errno != EINTR) {
                    conn_drop_client(c, now);
                    return;
                }
                sent = w > 0 ? (size_t)w : 0;
            }
            buf_add(&c->out, scratch + sent, (size_t)n - sent);
            if ((size_t)n < sizeof(scratch))
                break;
        }
    }
    relay_settle(c, now);
}
