/* seal.h - sealing secrets at rest (git credentials, user secrets).
 *
 * A 32-byte key lives in DATA/secret.key (0600), made on first use. A sealed
 * blob is nonce || XSalsa20-Poly1305 ciphertext (libsodium's secretbox), so a
 * copy of berth.db alone reveals nothing.
 */
#ifndef BERTH_SEAL_H
#define BERTH_SEAL_H

#include "util/buf.h"

/* Loads the key at path, creating it if missing. 0 or -errno. */
int seal_init(const char *key_path);
/* Appends the sealed form of plain to out. */
void seal(const void *plain, size_t len, struct buf *out);
/* Appends the plaintext of a sealed blob to out; -EBADMSG when it was tampered with. */
int unseal(const void *sealed, size_t len, struct buf *out);

#endif
