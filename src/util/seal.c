/* seal.c - secretbox with a key file; see seal.h. */
#include "util/seal.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fs.h"

static unsigned char key[crypto_secretbox_KEYBYTES];
static int have_key;

int seal_init(const char *key_path)
{
    if (sodium_init() < 0)
        return -EIO;
    struct buf b = BUF_INIT;
    int r = read_file(key_path, 4096, &b);
    if (r == -ENOENT) {
        unsigned char fresh[crypto_secretbox_KEYBYTES];
        randombytes_buf(fresh, sizeof(fresh));
        r = write_file_atomic(key_path, fresh, sizeof(fresh), 0600);
        if (r == 0)
            memcpy(key, fresh, sizeof(key));
        sodium_memzero(fresh, sizeof(fresh));
    } else if (r == 0 && b.len == sizeof(key)) {
        memcpy(key, b.buf, sizeof(key));
    } else if (r == 0) {
        r = -EINVAL;
    }
    sodium_memzero(b.buf, b.len);
    buf_release(&b);
    if (r == 0)
        have_key = 1;
    return r;
}

void seal(const void *plain, size_t len, struct buf *out)
{
    unsigned char nonce[crypto_secretbox_NONCEBYTES];
    randombytes_buf(nonce, sizeof(nonce));
    buf_add(out, nonce, sizeof(nonce));
    buf_grow(out, len + crypto_secretbox_MACBYTES);
    crypto_secretbox_easy((unsigned char *)out->buf + out->len, plain, len, nonce, key);
    out->len += len + crypto_secretbox_MACBYTES;
    out->buf[out->len] = 0;
}

int unseal(const void *sealed, size_t len, struct buf *out)
{
    if (!have_key || len < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
        return -EBADMSG;
    const unsigned char *p = sealed;
    size_t clen = len - crypto_secretbox_NONCEBYTES;
    buf_grow(out, clen);
    if (crypto_secretbox_open_easy((unsigned char *)out->buf + out->len,
                                   p + crypto_secretbox_NONCEBYTES, clen, p, key) < 0)
        return -EBADMSG;
    out->len += clen - crypto_secretbox_MACBYTES;
    out->buf[out->len] = 0;
    return 0;
}
