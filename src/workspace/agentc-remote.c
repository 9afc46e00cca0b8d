/* agentc-remote.c - reaching the agent of a workspace that runs elsewhere (a
 * remote runtime: runtime-swarm.c, docs/cluster.md).
 *
 * The runtime names the agent's address and the relay's unix socket on this
 * host. berthd asks the relay for TCP_CONNECT to ADDRESS:RT_AGENT_PORT with
 * PASS_FD, so the connected TCP socket itself comes back and no byte passes
 * through the relay afterwards; then berthd runs the handshake with the
 * workspace's key (agentc_auth), which the relay cannot take part in. The
 * key lives in the workspace's run dir on this host, 0600.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "util/fs.h"
#include "workspace/agentc.h"
#include "workspace/ws-internal.h"

/* The agents' addresses, as the runtime last gave them: a connection tries
 * the one it knows first (no engine call, which callers on the event loop
 * would wait for), and asks the runtime again only when that fails (a task
 * made anew has a new address). */
struct addr_entry {
    char id[64];
    char host[64];
    char relay[256];
};
#define ADDR_CACHE 256
static struct addr_entry addr_cache[ADDR_CACHE];
static pthread_mutex_t addr_lock = PTHREAD_MUTEX_INITIALIZER;

static bool addr_get(const char *id, char **ret_host, char **ret_relay)
{
    bool found = false;
    pthread_mutex_lock(&addr_lock);
    for (size_t i = 0; i < ADDR_CACHE && !found; i++)
        if (strcmp(addr_cache[i].id, id) == 0) {
            *ret_host = xstrdup(addr_cache[i].host);
            *ret_relay = xstrdup(addr_cache[i].relay);
            found = true;
        }
    pthread_mutex_unlock(&addr_lock);
    return found;
}

/* host NULL: forgets id's */
static void addr_put(const char *id, const char *host, const char *relay)
{
    if (strlen(id) >= sizeof(addr_cache[0].id) ||
        (host && strlen(host) >= sizeof(addr_cache[0].host)) ||
        (relay && strlen(relay) >= sizeof(addr_cache[0].relay)))
        return;
    pthread_mutex_lock(&addr_lock);
    struct addr_entry *slot = NULL;
    for (size_t i = 0; i < ADDR_CACHE && !slot; i++)
        if (strcmp(addr_cache[i].id, id) == 0)
            slot = &addr_cache[i];
    if (!host) {
        if (slot)
            memset(slot, 0, sizeof(*slot));
    } else {
        for (size_t i = 0; i < ADDR_CACHE && !slot; i++)
            if (!addr_cache[i].id[0])
                slot = &addr_cache[i];
        if (!slot) /* full: any one goes (it is only a hint) */
            slot = &addr_cache[(unsigned char)id[0] % ADDR_CACHE];
        snprintf(slot->id, sizeof(slot->id), "%s", id);
        snprintf(slot->host, sizeof(slot->host), "%s", host);
        snprintf(slot->relay, sizeof(slot->relay), "%s", relay);
    }
    pthread_mutex_unlock(&addr_lock);
}

void agentc_forget_address(const char *id)
{
    addr_put(id, NULL, NULL);
}

#define AGENT_KEY_FILE "agent.key"
#define CONNECT_TIMEOUT_MS 10000
#define AUTH_TIMEOUT_MS 5000

int agent_key_make(struct ws_manager *m, const char *id, unsigned char key[32],
                   struct berr **reterr)
{
    randombytes_buf(key, 32);
    _cleanup_free_ char *run = ws_run_dir(m, id);
    _cleanup_free_ char *path = xasprintf("%s/%s", run, AGENT_KEY_FILE);
    int r = write_file_atomic(path, key, 32, 0600);
    if (r < 0)
        return berr_make(reterr, -r, "cannot write '%s': %s", path, strerror(-r));
    return 0;
}

static int key_read(struct ws_manager *m, const char *id, unsigned char key[32],
                    struct berr **reterr)
{
    _cleanup_free_ char *run = ws_run_dir(m, id);
    _cleanup_free_ char *path = xasprintf("%s/%s", run, AGENT_KEY_FILE);
    _cleanup_buf_ struct buf b = BUF_INIT;
    int r = read_file(path, 64, &b);
    if (r < 0 || b.len != 32)
        return berr_make(reterr, r < 0 ? -r : EINVAL, "the workspace's agent key '%s' is %s", path,
                         r < 0 ? strerror(-r) : "not 32 bytes");
    memcpy(key, b.buf, 32);
    sodium_memzero(b.buf, b.len);
    return 0;
}

/* TCP_CONNECT PORT, HOST host, PASS_FD to the relay on fd; the socket it
 * passes back goes to *ret_fd. */
static int relay_connect(int fd, const char *host, int timeout_ms, int *ret_fd,
                         struct berr **reterr)
{
    size_t hl = strlen(host);
    size_t len = 2 + 5 + hl + 5;
    unsigned char frame[AGENT_HEADER_SIZE + 2 + 5 + 64 + 5];
    if (hl > 64)
        return berr_make(reterr, EINVAL, "agent address '%s' is too long", host);
    agent_put_header(frame, AGENT_TCP_CONNECT, (uint32_t)len);
    unsigned char *p = frame + AGENT_HEADER_SIZE;
    *p++ = (unsigned char)(RT_AGENT_PORT >> 8);
    *p++ = (unsigned char)RT_AGENT_PORT;
    *p++ = AGENT_FIELD_HOST;
    agent_put_u32(p, (uint32_t)hl);
    p += 4;
    memcpy(p, host, hl);
    p += hl;
    *p++ = AGENT_FIELD_PASS_FD;
    agent_put_u32(p, 0);
    p += 4;
    int r = write_all(fd, frame, (size_t)(p - frame));
    if (r < 0)
        return berr_make(reterr, -r, "cannot ask the relay: %s", strerror(-r));
    unsigned char h[AGENT_HEADER_SIZE];
    size_t got = 0;
    int passed = -1;
    while (got < sizeof(h)) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int pr = poll(&pf, 1, timeout_ms);
        if (pr == 0) {
            r = -ETIMEDOUT;
            break;
        }
        ssize_t n = pr < 0 ? -1 : recv_with_fd(fd, h + got, sizeof(h) - got, &passed);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r = n < 0 ? -errno : -EPIPE;
            break;
        }
        got += (size_t)n;
    }
    if (got == sizeof(h) && h[0] == AGENT_CONNECTED && passed >= 0) {
        *ret_fd = passed;
        return 0;
    }
    if (passed >= 0)
        close(passed);
    if (got == sizeof(h) && h[0] == AGENT_ERROR) {
        uint32_t el = agent_get_u32(h + 4);
        char msg[256] = "";
        if (el < sizeof(msg) && read_full(fd, msg, el, 2000) == 0)
            msg[el] = 0;
        return berr_make(reterr, ECONNREFUSED, "the relay cannot reach the agent at %s: %s", host,
                         msg);
    }
    return berr_make(reterr, r < 0 ? -r : EPROTO,
                     "the relay did not connect to the agent at %s%s%s", host, r < 0 ? ": " : "",
                     r < 0 ? strerror(-r) : "");
}

static int connect_at(struct ws_manager *m, const char *id, const char *host, const char *relay,
                      int timeout_ms, int *ret_fd, struct berr **reterr);

int agentc_connect_remote(struct ws_manager *m, const char *id, int *ret_fd, struct berr **reterr)
{
    _cleanup_free_ char *host = NULL, *relay = NULL;
    if (addr_get(id, &host, &relay)) {
        /* a known address answers at once, or it is stale: not the full wait */
        if (connect_at(m, id, host, relay, 1000, ret_fd, NULL) == 0)
            return 0;
        addr_put(id, NULL, NULL);
        free(host);
        free(relay);
        host = relay = NULL;
    }
    int r = rt_agent_address(m->rt, id, &host, &relay, reterr);
    if (r < 0)
        return r;
    r = connect_at(m, id, host, relay, CONNECT_TIMEOUT_MS, ret_fd, reterr);
    if (r == 0)
        addr_put(id, host, relay);
    return r;
}

static int connect_at(struct ws_manager *m, const char *id, const char *host, const char *relay,
                      int timeout_ms, int *ret_fd, struct berr **reterr)
{
    int r;
    _cleanup_free_ char *dir = xstrdup(relay);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return berr_make(reterr, EINVAL, "the relay's socket '%s' is not a path", relay);
    *slash = 0;
    _cleanup_close_ int rfd = unix_connect_nofollow(dir, slash + 1);
    if (rfd < 0)
        return berr_make(reterr, -rfd, "cannot connect to the relay at %s: %s", relay,
                         strerror(-rfd));
    _cleanup_close_ int tcp = -1;
    r = relay_connect(rfd, host, timeout_ms, &tcp, reterr);
    if (r < 0)
        return r;
    /* the passed socket may be non-blocking; the handshake polls anyway */
    int fl = fcntl(tcp, F_GETFL);
    if (fl >= 0)
        (void)fcntl(tcp, F_SETFL, fl & ~O_NONBLOCK);
    unsigned char key[32];
    r = key_read(m, id, key, reterr);
    if (r < 0)
        return r;
    r = agentc_auth(tcp, key, id, AUTH_TIMEOUT_MS, reterr);
    sodium_memzero(key, sizeof(key));
    if (r < 0)
        return r;
    *ret_fd = TAKE_FD(tcp);
    return 0;
}
