/* sshkey.c - parses and vets users' public keys with libssh's pki functions. */
#include "sshd/sshkey.h"

#include <errno.h>
#include <libssh/libssh.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "util/xalloc.h"

/* The modulus size of an RSA key blob (string type, mpint e, mpint n), or -1. */
static int rsa_bits(const char *b64)
{
    size_t max = strlen(b64), len = 0;
    _cleanup_free_ unsigned char *bin = xmalloc(max + 1);
    if (sodium_base642bin(bin, max, b64, max, NULL, &len, NULL, sodium_base64_VARIANT_ORIGINAL) !=
        0)
        return -1;
    size_t off = 0;
    uint32_t n = 0;
    for (int field = 0; field < 3; field++) {
        if (len - off < 4)
            return -1;
        n = (uint32_t)bin[off] << 24 | (uint32_t)bin[off + 1] << 16 | (uint32_t)bin[off + 2] << 8 |
            bin[off + 3];
        off += 4;
        if (len - off < n)
            return -1;
        if (field < 2)
            off += n;
    }
    const unsigned char *m = bin + off;
    while (n && !*m) {
        m++;
        n--;
    }
    if (!n)
        return -1;
    int bits = (int)n * 8;
    for (unsigned char top = m[0]; !(top & 0x80); top <<= 1)
        bits--;
    return bits;
}

void sshkey_info_release(struct sshkey_info *k)
{
    free(k->type);
    free(k->blob);
    free(k->comment);
    free(k->fingerprint);
    *k = (struct sshkey_info){0};
}

int sshkey_parse(const char *line, struct sshkey_info *ret, struct berr **reterr)
{
    if (strlen(line) > 16384)
        return berr_make(reterr, EINVAL, "the key is longer than 16 KiB");
    _cleanup_free_ char *copy = xstrdup(line);
    char *save = NULL;
    char *type = strtok_r(copy, " \t\r\n", &save);
    char *blob = type ? strtok_r(NULL, " \t\r\n", &save) : NULL;
    char *comment = blob ? strtok_r(NULL, "\r\n", &save) : NULL;
    if (!type || !blob)
        return berr_make(reterr, EINVAL,
                         "not an OpenSSH public key: give one line 'TYPE BASE64 [COMMENT]', "
                         "e.g. the contents of ~/.ssh/id_ed25519.pub");
    enum ssh_keytypes_e kt = ssh_key_type_from_name(type);
    if (kt != SSH_KEYTYPE_ED25519 && kt != SSH_KEYTYPE_RSA && kt != SSH_KEYTYPE_ECDSA_P256 &&
        kt != SSH_KEYTYPE_ECDSA_P384 && kt != SSH_KEYTYPE_ECDSA_P521)
        return berr_make(reterr, EINVAL,
                         "key type '%s' is not taken: use ed25519, ECDSA or RSA (2048 bits or "
                         "more)",
                         type);
    ssh_key key = NULL;
    if (ssh_pki_import_pubkey_base64(blob, kt, &key) != SSH_OK || !key)
        return berr_make(reterr, EINVAL, "the %s key is malformed", type);
    int bits = kt == SSH_KEYTYPE_RSA ? rsa_bits(blob) : 0;
    if (kt == SSH_KEYTYPE_RSA && bits < 2048) {
        ssh_key_free(key);
        return berr_make(reterr, EINVAL, "the RSA key has %d bits: 2048 or more are needed", bits);
    }
    unsigned char *hash = NULL;
    size_t hlen = 0;
    if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) != 0) {
        ssh_key_free(key);
        return berr_make(reterr, EINVAL, "cannot compute the key's fingerprint");
    }
    char *fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
    ssh_clean_pubkey_hash(&hash);
    ssh_key_free(key);
    *ret = (struct sshkey_info){.type = xstrdup(type),
                                .blob = xstrdup(blob),
                                .comment = comment ? xstrdup(comment) : NULL,
                                .fingerprint = xstrdup(fp)};
    ssh_string_free_char(fp);
    return 0;
}
