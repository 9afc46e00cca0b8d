/* ide-activity.c - a streaming reader of VS Code's client-to-server messages,
 * and the judgement of which of them a person caused.
 *
 * Two kinds of Regular message carry requests:
 *   the workbench's IPC (base/parts/ipc): a serialized array
 *     [100 (request), id, channel, command] then the argument, where an
 *     array is 0x04 + count, an integer 0x06 + varint, a string 0x01 +
 *     varint length + bytes;
 *   the extension host's RPC: type u8 (1-4: a request), request id u32,
 *     proxy id u8, method name u8 length + bytes ("$acceptModelChanged").
 * Everything else (replies, acknowledgements) answers the server and is no
 * action of anyone's.
 */
#include "api/ide-activity.h"

#include <stdio.h>
#include <string.h>

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* IPC channels that the IDE uses on its own, whatever the user does. */
static const char *const background_channels[] = {
    "telemetry",
    "agentHostProxy",
    "logger",
    "extensions",
    "request",
    "remoteExtensionsScanner",
    "userDataProfiles",
    "remoteextensionsenvironment",
    "extensionTipsService",
    "download",
    "languagePacks",
    "mcpManagement",
    "storage",
    "urlHandler",
    "timer",
};

/* Extension host methods that follow the user's editor. */
static const char *const action_methods[] = {
    "$acceptEditor",       "$acceptModel", "$acceptDocumentsAndEditorsDelta",
    "$acceptActiveEditor", "$acceptDirty", "$execute",
};

/* Paths of the IDE's own state: its storage, caches and logs. */
static const char *const own_state[] = {
    "/.local/share/code-server/",
    "vscode-userdata:",
    "vscode-log:",
    "/.vscode-server/",
};

static bool in_list(const char *s, size_t n, const char *const *list, size_t count, bool prefix)
{
    for (size_t i = 0; i < count; i++) {
        size_t l = strlen(list[i]);
        if (prefix ? n >= l && memcmp(s, list[i], l) == 0 : n == l && memcmp(s, list[i], l) == 0)
            return true;
    }
    return false;
}

static bool contains(const unsigned char *b, size_t n, const char *needle)
{
    size_t l = strlen(needle);
    for (size_t i = 0; i + l <= n; i++)
        if (memcmp(b + i, needle, l) == 0)
            return true;
    return false;
}

/* A varint of the IPC serializer at *at; false past the end. */
static bool varint(const unsigned char *b, size_t n, size_t *at, uint64_t *ret)
{
    uint64_t v = 0;
    for (int shift = 0; *at < n && shift < 63; shift += 7) {
        unsigned char c = b[(*at)++];
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *ret = v;
            return true;
        }
    }
    return false;
}

static bool ipc_string(const unsigned char *b, size_t n, size_t *at, const char **s, size_t *sl)
{
    uint64_t l;
    if (*at >= n || b[(*at)++] != 0x01 || !varint(b, n, at, &l) || l > n - *at)
        return false;
    *s = (const char *)b + *at;
    *sl = (size_t)l;
    *at += l;
    return true;
}

bool ide_is_user_action(const unsigned char *b, size_t n, const char **ret_what)
{
    static char what[96];
    const char *dummy;
    if (!ret_what)
        ret_what = &dummy;
    *ret_what = "reply";
    /* IPC: [0x04 0x04] [0x06 100] [0x06 id] channel command */
    if (n >= 4 && b[0] == 0x04 && b[1] == 0x04 && b[2] == 0x06) {
        size_t at = 3;
        uint64_t type, id;
        const char *ch, *cmd;
        size_t chl, cmdl;
        if (!varint(b, n, &at, &type) || at >= n || b[at++] != 0x06 || !varint(b, n, &at, &id) ||
            !ipc_string(b, n, &at, &ch, &chl) || !ipc_string(b, n, &at, &cmd, &cmdl))
            return false;
        snprintf(what, sizeof(what), "%.*s.%.*s", (int)(chl > 40 ? 40 : chl), ch,
                 (int)(cmdl > 40 ? 40 : cmdl), cmd);
        *ret_what = what;
        if (type != 100) /* event subscriptions */
            return false;
        if (in_list(ch, chl, background_channels,
                    sizeof(background_channels) / sizeof(*background_channels), false))
            return false;
        if (chl == 16 && memcmp(ch, "remoteFilesystem", 16) == 0) {
            if ((cmdl == 5 && memcmp(cmd, "watch", 5) == 0) ||
                (cmdl == 7 && memcmp(cmd, "unwatch", 7) == 0))
                return false;
            for (size_t i = 0; i < sizeof(own_state) / sizeof(*own_state); i++)
                if (contains(b + at, n - at, own_state[i]))
                    return false;
        }
        if (chl == 14 && memcmp(ch, "remoteterminal", 14) == 0 && cmdl >= 4 &&
            memcmp(cmd, "$get", 4) == 0)
            return false;
        return true;
    }
    /* extension host RPC request: type, id u32, proxy u8, method */
    if (n >= 8 && b[0] >= 1 && b[0] <= 4 && b[6] >= 2 && b[7] == '$' && (size_t)b[6] + 7 <= n) {
        const char *m = (const char *)b + 7;
        size_t ml = b[6];
        snprintf(what, sizeof(what), "%.*s", (int)(ml > 80 ? 80 : ml), m);
        *ret_what = what;
        return in_list(m, ml, action_methods, sizeof(action_methods) / sizeof(*action_methods),
                       true);
    }
    return false;
}

/* Judges the sampled message once its body ended or the sample is full. */
static unsigned judge(struct ide_activity *a)
{
    a->sampling = false;
    if (!ide_is_user_action(a->sample, a->sample_len, NULL))
        return 0;
    a->actions++;
    return 1;
}

/* Unmasked payload bytes of a data frame: the protocol's stream. */
static unsigned feed_messages(struct ide_activity *a, const unsigned char *p, size_t n)
{
    unsigned done = 0;
    while (n) {
        if (a->mleft) {
            size_t take = n < a->mleft ? n : (size_t)a->mleft;
            if (a->sampling) {
                size_t room = sizeof(a->sample) - a->sample_len;
                size_t k = take < room ? take : room;
                memcpy(a->sample + a->sample_len, p, k);
                a->sample_len += k;
            }
            a->mleft -= take;
            p += take;
            n -= take;
            if (a->sampling && (a->mleft == 0 || a->sample_len == sizeof(a->sample)))
                done += judge(a);
            continue;
        }
        a->mhead[a->mhead_len++] = *p++;
        n--;
        if (a->mhead_len < sizeof(a->mhead))
            continue;
        a->mhead_len = 0;
        a->mleft = be32(a->mhead + 9);
        a->sample_len = 0;
        a->sampling = a->mhead[0] == IDE_MSG_REGULAR;
        if (a->sampling) {
            a->regular++;
            a->last_len = a->mleft;
            if (!a->mleft)
                done += judge(a);
        } else {
            a->other++;
        }
    }
    return done;
}

unsigned ide_activity_feed(struct ide_activity *a, const unsigned char *data, size_t len)
{
    unsigned done = 0;
    while (len && !a->broken) {
        if (a->fleft == 0) {
            a->fhead[a->fhead_len++] = *data++;
            len--;
            if (a->fhead_len < 2)
                continue;
            const unsigned char *h = a->fhead;
            unsigned l7 = h[1] & 0x7f;
            size_t need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((h[1] & 0x80) ? 4 : 0);
            if (a->fhead_len < need)
                continue;
            /* a complete frame header */
            uint64_t plen = l7;
            size_t at = 2;
            if (l7 == 126) {
                plen = (uint64_t)h[2] << 8 | h[3];
                at = 4;
            } else if (l7 == 127) {
                plen = 0;
                for (int i = 0; i < 8; i++)
                    plen = plen << 8 | h[2 + i];
                at = 10;
            }
            if (h[0] & 0x70) {
                a->broken = true; /* an extension we refused: compressed */
                break;
            }
            if (h[1] & 0x80)
                memcpy(a->mask, h + at, 4);
            else
                memset(a->mask, 0, 4);
            unsigned op = h[0] & 0x0f;
            a->fdata = op == 0 || op == 1 || op == 2;
            a->fleft = plen;
            a->fpos = 0;
            a->fhead_len = 0;
            continue;
        }
        size_t take = len < a->fleft ? len : (size_t)a->fleft;
        if (a->fdata) {
            unsigned char buf[512];
            for (size_t off = 0; off < take;) {
                size_t k = take - off < sizeof(buf) ? take - off : sizeof(buf);
                for (size_t i = 0; i < k; i++)
                    buf[i] = data[off + i] ^ a->mask[(a->fpos + off + i) & 3];
                done += feed_messages(a, buf, k);
                off += k;
            }
        }
        a->fpos += take;
        a->fleft -= take;
        data += take;
        len -= take;
    }
    return done;
}
