/* agent-auth.h - the keyed hash of the handshake on the agent's TCP listener.
 *
 * Shared by berth-agent and berthd, so that both sides compute the same bytes
 * (agent-proto.h, "AUTH"). BLAKE2b-256 (libsodium's crypto_generichash) keyed
 * with the workspace's 32-byte secret, over
 *     role NUL id NUL first_nonce second_nonce
 * where role is "berthd" for berthd's proof and "agent" for the agent's, so
 * that neither proof can be sent back as the other.
 */
#ifndef BERTH_AGENT_AUTH_H
#define BERTH_AGENT_AUTH_H

#include <sodium.h>
#include <string.h>

#define AGENT_KEY_SIZE 32
#define AGENT_NONCE_SIZE 32
#define AGENT_MAC_SIZE 32

static inline void agent_auth_mac(unsigned char out[AGENT_MAC_SIZE],
                                  const unsigned char key[AGENT_KEY_SIZE], const char *role,
                                  const char *id, const unsigned char first[AGENT_NONCE_SIZE],
                                  const unsigned char second[AGENT_NONCE_SIZE])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, AGENT_KEY_SIZE, AGENT_MAC_SIZE);
    crypto_generichash_update(&st, (const unsigned char *)role, strlen(role) + 1);
    crypto_generichash_update(&st, (const unsigned char *)id, strlen(id) + 1);
    crypto_generichash_update(&st, first, AGENT_NONCE_SIZE);
    crypto_generichash_update(&st, second, AGENT_NONCE_SIZE);
    crypto_generichash_final(&st, out, AGENT_MAC_SIZE);
}

#endif
