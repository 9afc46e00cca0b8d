/* sshd.h - berthd's SSH gateway (libssh server API).
 *
 * OpenSSH clients and desktop IDEs reach a workspace through berthd: the SSH
 * user name names the workspace, the client's public key names its owner (a
 * key registered with `berth ssh-key add`). libssh blocks, so the gateway
 * runs on its own threads: one accepts, one per connection; they reach the
 * rest of berthd only through the store (serialized SQLite) and, for what
 * must run on the loop, an async handle.
 */
#ifndef BERTH_SSHD_H
#define BERTH_SSHD_H

#include <uv.h>

#include "util/err.h"
#include "workspace/workspace.h"

/* Settings the gateway writes at start for the API (`berth ssh-config`). */
#define SSHD_SETTING_HOST_KEY "ssh_host_key"
#define SSHD_SETTING_LISTEN "ssh_listen"

struct sshd;

/* Loads or makes DATA/ssh_host_ed25519_key (0600), listens on addr:port and
 * starts the accepting thread. *ret_fingerprint gets "SHA256:..." (newly
 * allocated). */
int sshd_start(uv_loop_t *loop, struct ws_manager *m, const char *addr, int port, struct sshd **ret,
               char **ret_fingerprint, struct berr **reterr);

/* Serves an SSH connection that reached berthd another way (berth ssh-proxy's
 * WebSocket): fd is one end of a stream socket, owned by the gateway from here on
 * (closed on failure too); peer is the address that counts for the rate limit
 * and the audit log. Any thread. Returns 0, -EAGAIN when the gateway is full,
 * -EACCES when peer is blocked after failed logins, -ENOMEM. */
int sshd_accept_fd(struct sshd *d, int fd, const char *peer);

#endif
