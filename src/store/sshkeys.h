/* sshkeys.h - users' SSH public keys in the store.
 *
 * A key is kept as its OpenSSH type and base64 blob with its SHA256
 * fingerprint, which is unique: one key belongs to one user. Checking that a
 * key is well formed is the caller's business (sshd/sshkey.h).
 */
#ifndef BERTH_STORE_SSHKEYS_H
#define BERTH_STORE_SSHKEYS_H

#include <jansson.h>
#include <stdint.h>

#include "store/store.h"

/* -EEXIST when the key is registered already (by anyone). *ret_id: the new id. */
int store_sshkey_insert(struct store *s, int64_t user_id, const char *name, const char *type,
                        const char *blob, const char *fingerprint, int64_t *ret_id,
                        struct berr **reterr);
/* The user's keys as [{id, name, type, fingerprint, created_at, last_used_at}]. */
int store_sshkey_list_json(struct store *s, int64_t user_id, json_t **ret);
/* -ENOENT when the user has no such key. */
int store_sshkey_delete(struct store *s, int64_t user_id, int64_t id);
/* The owner of the key with this fingerprint, and notes its use; -ENOENT if none. */
int store_sshkey_owner(struct store *s, const char *fingerprint, int64_t *ret_user_id);

#endif
