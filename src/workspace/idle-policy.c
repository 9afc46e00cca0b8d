/* idle-policy.c - parsing, checking and combining idle timeouts. */
#include "workspace/idle-policy.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int idle_parse_minutes(const char *s, int64_t *ret)
{
    if (!s || !*s)
        return -EINVAL;
    if (strcmp(s, "never") == 0 || strcmp(s, "off") == 0) {
        *ret = 0;
        return 0;
    }
    int64_t total = 0;
    const char *p = s;
    bool hours_seen = false, minutes_seen = false;
    while (*p) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        int64_t n = 0;
        while (*p >= '0' && *p <= '9') {
            n = n * 10 + (*p++ - '0');
            if (n > 100000)
                return -EINVAL;
        }
        if (*p == 'h' && !hours_seen && !minutes_seen) {
            hours_seen = true;
            total += n * 60;
            p++;
        } else if (*p == 'm' && !minutes_seen) {
            minutes_seen = true;
            total += n;
            p++;
            if (strncmp(p, "in", 2) == 0)
                p += 2;
        } else if (!*p && !minutes_seen && !hours_seen) {
            total = n; /* bare minutes */
        } else {
            return -EINVAL;
        }
    }
    if (total == 0)
        return -EINVAL; /* "0m" would read as never: say never */
    *ret = total;
    return 0;
}

const char *idle_check(int64_t minutes, int64_t max, bool allow_never)
{
    static char msg[160];
    if (minutes == 0 && allow_never)
        return NULL;
    if (minutes >= IDLE_MIN_MINUTES && minutes <= max)
        return NULL;
    snprintf(msg, sizeof(msg), "the idle timeout must be from %d to %lld minutes%s",
             IDLE_MIN_MINUTES, (long long)max,
             allow_never ? ", or never" : " (this server does not allow never)");
    return msg;
}

int64_t idle_effective(int64_t ws, int64_t user, int64_t max, bool allow_never,
                       const char **ret_source)
{
    if (max < IDLE_MIN_MINUTES)
        max = IDLE_MIN_MINUTES;
    int64_t v = IDLE_DEFAULT_MINUTES;
    const char *source = "default";
    if (ws >= 0) {
        v = ws;
        source = "workspace";
    } else if (user >= 0) {
        v = user;
        source = "user";
    }
    if ((v == 0 && !allow_never) || v > max) {
        v = max;
        source = "admin maximum";
    }
    if (v != 0 && v < IDLE_MIN_MINUTES)
        v = IDLE_MIN_MINUTES;
    *ret_source = source;
    return v;
}

int64_t idle_warn_after(int64_t timeout_ms, int64_t minute_ms)
{
    int64_t lead = IDLE_WARN_MINUTES * minute_ms;
    if (lead > timeout_ms / 2)
        lead = timeout_ms / 2;
    return timeout_ms - lead;
}

const char *idle_format_minutes(int64_t minutes, char *buf, size_t size)
{
    if (minutes == 0)
        snprintf(buf, size, "never");
    else if (minutes % 60 == 0)
        snprintf(buf, size, "%lld h", (long long)(minutes / 60));
    else if (minutes > 60)
        snprintf(buf, size, "%lld h %lld min", (long long)(minutes / 60),
                 (long long)(minutes % 60));
    else
        snprintf(buf, size, "%lld min", (long long)minutes);
    return buf;
}

const char *idle_format_age(int64_t ms, char *buf, size_t size)
{
    int64_t s = ms < 0 ? 0 : ms / 1000;
    if (s < 60)
        snprintf(buf, size, "%lld s", (long long)s);
    else if (s < 2 * 3600)
        snprintf(buf, size, "%lld min", (long long)(s / 60));
    else
        snprintf(buf, size, "%lld h", (long long)(s / 3600));
    return buf;
}
