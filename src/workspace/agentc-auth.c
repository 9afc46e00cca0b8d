/* agentc-auth.c - berthd's side of the handshake on an agent's TCP listener
 * (agent-proto.h, AUTH; the keyed hash is agent-auth.h's). Blocking, on a
 * connected fd, for worker threads. */
#include <errno.h>
#include <string.h>

#include "agent/agent-auth.h"
#include "util/fs.h"
#include "workspace/agentc.h"

/* Reads one frame of at most max payload bytes into payload; its type and
 * length go to *ret_type and *ret_len. */
static int read_frame(int fd, unsigned char *payload, size_t max, int timeout_ms,
                      unsigned *ret_type, size_t *ret_len)
{
    unsigned char h[AGENT_HEADER_SIZE];
    int r = read_full(fd, h, sizeof(h), timeout_ms);
    if (r < 0)
        return r;
    uint32_t len = agent_get_u32(h + 4);
    if (len > max)
        return -EPROTO;
    r = read_full(fd, payload, len, timeout_ms);
    if (r < 0)
        return r;
    *ret_type = h[0];
    *ret_len = len;
    return 0;
}

int agentc_auth(int fd, const unsigned char key[32], const char *id, int timeout_ms,
                struct berr **reterr)
{
    unsigned char challenge[256], mine[AGENT_NONCE_SIZE];
    unsigned type;
    size_t len;
    int r = read_frame(fd, challenge, sizeof(challenge), timeout_ms, &type, &len);
    if (r < 0)
        return berr_make(reterr, -r, "the workspace agent sent no challenge: %s", strerror(-r));
    if (type != AGENT_AUTH_CHALLENGE || len != AGENT_NONCE_SIZE)
        return berr_make(reterr, EPROTO, "the workspace agent sent frame type %u, not a challenge",
                         type);
    unsigned char msg[AGENT_HEADER_SIZE + AGENT_MAC_SIZE + AGENT_NONCE_SIZE];
    randombytes_buf(mine, sizeof(mine));
    agent_put_header(msg, AGENT_AUTH, AGENT_MAC_SIZE + AGENT_NONCE_SIZE);
    agent_auth_mac(msg + AGENT_HEADER_SIZE, key, "berthd", id, challenge, mine);
    memcpy(msg + AGENT_HEADER_SIZE + AGENT_MAC_SIZE, mine, sizeof(mine));
    r = write_all(fd, msg, sizeof(msg));
    unsigned char answer[1024];
    if (r == 0)
        r = read_frame(fd, answer, sizeof(answer) - 1, timeout_ms, &type, &len);
    if (r < 0)
        return berr_make(reterr, -r, "the workspace agent did not answer the handshake: %s",
                         strerror(-r));
    if (type == AGENT_ERROR) {
        answer[len] = 0;
        return berr_make(reterr, EACCES, "the workspace agent refused the handshake: %s",
                         (const char *)answer);
    }
    unsigned char want[AGENT_MAC_SIZE];
    agent_auth_mac(want, key, "agent", id, mine, challenge);
    if (type != AGENT_AUTH_OK || len != AGENT_MAC_SIZE || crypto_verify_32(want, answer) != 0)
        return berr_make(reterr, EACCES,
                         "the workspace agent's proof is wrong: it is not the agent of "
                         "workspace %s",
                         id);
    return 0;
}
