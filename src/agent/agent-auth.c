/* agent-auth.c - the TCP listener, for a berthd that reaches the agent over a network.
 *
 * On a cluster berthd is on another host, and the agent listens on the workspace's own
 * network (berth-agent --tcp ADDR:PORT). Anything on that network can connect, so every
 * connection first proves that it knows the workspace's secret (--key, a file that only
 * this workspace and berthd hold) and gets the agent's proof back (agent-proto.h, AUTH;
 * the keyed hash is agent-auth.h's, from libsodium). Until then the connection takes no
 * request. Afterwards it is a connection like those on the unix socket.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent-auth.h"
#include "agent-internal.h"

/* Debian's libsodium.a is built against glibc with _FORTIFY_SOURCE, so it calls glibc's
 * checked explicit_bzero; musl has only the plain one. */
void __explicit_bzero_chk(void *p, size_t n, size_t dest_len);
void __explicit_bzero_chk(void *p, size_t n, size_t dest_len)
{
    if (n > dest_len)
        abort();
    explicit_bzero(p, n);
}

static void read_key(const char *key_file)
{
    int fd = open(key_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("cannot open the key '%s': %s", key_file, strerror(errno));
    unsigned char extra;
    ssize_t n = read(fd, agent.auth_key, sizeof(agent.auth_key));
    ssize_t more = read(fd, &extra, 1);
    close(fd);
    if (n != (ssize_t)sizeof(agent.auth_key) || more != 0)
        die("the key '%s' must be exactly %zu bytes", key_file, sizeof(agent.auth_key));
}

static void parse_addr(const char *tcp, union inet_addr *a, socklen_t *len)
{
    const char *colon = strrchr(tcp, ':');
    char host[64];
    if (!colon || colon == tcp || (size_t)(colon - tcp) >= sizeof(host))
        die("--tcp wants ADDR:PORT, not '%s'", tcp);
    memcpy(host, tcp, (size_t)(colon - tcp));
    host[colon - tcp] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535)
        die("--tcp: bad port in '%s'", tcp);
    memset(a, 0, sizeof(*a));
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        host[hl - 1] = 0;
        a->in6.sin6_family = AF_INET6;
        a->in6.sin6_port = htons((unsigned short)port);
        if (inet_pton(AF_INET6, host + 1, &a->in6.sin6_addr) != 1)
            die("--tcp: bad IPv6 address in '%s'", tcp);
        *len = sizeof(a->in6);
        return;
    }
    a->in4.sin_family = AF_INET;
    a->in4.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &a->in4.sin_addr) != 1)
        die("--tcp: bad IPv4 address in '%s' (numeric only; IPv6 as [ADDR]:PORT)", tcp);
    *len = sizeof(a->in4);
}

void auth_setup(const char *tcp, const char *key_file, const char *id)
{
    if (sodium_init() < 0)
        die("libsodium cannot start");
    read_key(key_file);
    agent.auth_id = id;
    union inet_addr a;
    socklen_t len;
    parse_addr(tcp, &a, &len);
    int fd = socket(a.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, &a.sa, len) < 0 || listen(fd, 128) < 0)
        die("cannot listen on %s: %s", tcp, strerror(errno));
    agent.tcp_listen_fd = fd;
}

void auth_begin(struct conn *c, int64_t now)
{
    (void)now;
    if (getrandom(c->auth_nonce, sizeof(c->auth_nonce), 0) != (ssize_t)sizeof(c->auth_nonce))
        die("getrandom failed: %s", strerror(errno));
    c->state = CONN_AUTH;
    conn_send(c, AGENT_AUTH_CHALLENGE, c->auth_nonce, sizeof(c->auth_nonce));
}

void auth_handle_frame(struct conn *c, unsigned type, const unsigned char *p, size_t n, int64_t now)
{
    if (type != AGENT_AUTH || n != AGENT_MAC_SIZE + AGENT_NONCE_SIZE) {
        conn_fail(c, now, "authentication first: expected AUTH, got frame type %u", type);
        return;
    }
    unsigned char want[AGENT_MAC_SIZE], proof[AGENT_MAC_SIZE];
    const unsigned char *their_nonce = p + AGENT_MAC_SIZE;
    agent_auth_mac(want, agent.auth_key, "berthd", agent.auth_id, c->auth_nonce, their_nonce);
    if (crypto_verify_32(want, p) != 0) {
        conn_fail(c, now, "authentication failed");
        return;
    }
    agent_auth_mac(proof, agent.auth_key, "agent", agent.auth_id, their_nonce, c->auth_nonce);
    conn_send(c, AGENT_AUTH_OK, proof, sizeof(proof));
    c->state = CONN_REQUEST;
    c->deadline = now + AGENT_IDLE_MS;
}
