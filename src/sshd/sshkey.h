/* sshkey.h - checking a public key a user registers for the SSH gateway. */
#ifndef BERTH_SSHKEY_H
#define BERTH_SSHKEY_H

#include "util/err.h"

struct sshkey_info {
    char *type;        /* "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa" */
    char *blob;        /* base64 */
    char *comment;     /* may be NULL */
    char *fingerprint; /* "SHA256:..." */
};

void sshkey_info_release(struct sshkey_info *k);

/* Parses one authorized_keys-style line "TYPE BASE64 [COMMENT]". Only
 * ed25519, ECDSA and RSA of at least 2048 bits are taken; -EINVAL with the
 * reason in *reterr otherwise. */
int sshkey_parse(const char *line, struct sshkey_info *ret, struct berr **reterr);

#endif
