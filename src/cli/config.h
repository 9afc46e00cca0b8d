/* config.h - the CLI's stored logins: $XDG_CONFIG_HOME/berth/config.json.
 *
 * The file holds one login per server URL, so one person can be logged in to
 * several servers:
 *
 *     {"servers": {"http://127.0.0.1:7878": {"token": "berth_…", "user": "alice"}}}
 *
 * It is the only place a token is kept on disk: mode 0600 in a 0700 directory,
 * replaced atomically (temp file + rename) so a crash leaves the old or the new
 * file, never half of one. Keys other than these are kept as they are.
 *
 * A struct config is the file as loaded. config_open() takes an exclusive lock
 * on the directory that lasts until config_free(), so that two logins at once
 * cannot lose one another's update; config_read() only reads.
 */
#ifndef BERTH_CLI_CONFIG_H
#define BERTH_CLI_CONFIG_H

#include <stdbool.h>

#include "util/err.h"

struct config;

/* Loads the file; a missing file is an empty config. -EINVAL when it is not
 * the JSON above, -EFBIG past CONFIG_MAX_SIZE, else the errno of the failure.
 * Warns on stderr (the CLI's one place for it) when others may read the file. */
int config_read(struct config **ret_cfg, struct berr **reterr);
/* Like config_read(), for a change: creates the directory (0700) and holds the
 * lock until config_free(). */
int config_open(struct config **ret_cfg, struct berr **reterr);
/* Frees the config and drops its lock; accepts NULL; returns NULL. */
struct config *config_free(struct config *cfg);

/* The token stored for `url`, or NULL. Valid until the config changes or is freed. */
const char *config_token(const struct config *cfg, const char *url);
/* Stores a login for `url` in memory (both strings copied; user may be NULL).
 * Returns 0, or -EINVAL when a string is not UTF-8. */
int config_set(struct config *cfg, const char *url, const char *token, const char *user,
               struct berr **reterr);
/* Forgets the login for `url` in memory; returns whether there was one. */
bool config_remove(struct config *cfg, const char *url);
/* Writes the config back (config_open()ed configs only). Returns 0 or -errno. */
int config_save(struct config *cfg, struct berr **reterr);

#define CONFIG_MAX_SIZE (1024u * 1024)

DEFINE_TRIVIAL_CLEANUP_FUNC(struct config *, config_free)

#endif
