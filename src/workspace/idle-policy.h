/* idle-policy.h - the arithmetic of idle auto-stop, apart from any state.
 *
 * Timeouts are whole minutes: 0 is "never", a user may pick
 * IDLE_MIN_MINUTES up to the admin's maximum, and "never" only where the
 * admin allows it. A workspace's own value wins over its owner's, which wins
 * over the default; the admin's maximum caps them all.
 */
#ifndef BERTH_WORKSPACE_IDLE_POLICY_H
#define BERTH_WORKSPACE_IDLE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IDLE_DEFAULT_MINUTES 30
#define IDLE_MIN_MINUTES 5
#define IDLE_DEFAULT_MAX_MINUTES 240
/* how long before the stop open terminals and the dashboard are told */
#define IDLE_WARN_MINUTES 5

/* "45m", "45", "2h", "1h30m" or "never" (0); -EINVAL otherwise. */
int idle_parse_minutes(const char *s, int64_t *ret);
/* Whether minutes may be chosen; NULL, or a message for the user (static
 * buffer: use it before the next call). */
const char *idle_check(int64_t minutes, int64_t max, bool allow_never);
/* The timeout that applies (0: never) and where it came from ("workspace",
 * "user", "default", "admin maximum"); ws and user are -1 when unset. */
int64_t idle_effective(int64_t ws, int64_t user, int64_t max, bool allow_never,
                       const char **ret_source);
/* When the warning is due, in ms after the last activity: IDLE_WARN_MINUTES
 * before the stop, or half-way for a timeout shorter than twice that. */
int64_t idle_warn_after(int64_t timeout_ms, int64_t minute_ms);
/* "30 min", "2 h", "1 h 30 min" into buf. */
const char *idle_format_minutes(int64_t minutes, char *buf, size_t size);
/* "45 s", "2 min", "3 h" for an age in ms, into buf. */
const char *idle_format_age(int64_t ms, char *buf, size_t size);

#endif
