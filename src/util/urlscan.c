/* urlscan.c - local URLs in program output (see urlscan.h). */
#include "util/urlscan.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

#define URLSCAN_MAX_LINE 4096

static const char *const hosts[] = {"localhost", "127.0.0.1", "0.0.0.0", "[::]", "[::1]"};

/* Finds the URLs of one line. */
static void scan_line(const char *line, urlscan_cb cb, void *data)
{
    for (const char *p = strstr(line, "http"); p; p = strstr(p + 1, "http")) {
        const char *q = p + 4;
        if (*q == 's')
            q++;
        if (strncmp(q, "://", 3) != 0)
            continue;
        q += 3;
        size_t i = 0;
        while (i < sizeof(hosts) / sizeof(hosts[0]) && strncmp(q, hosts[i], strlen(hosts[i])) != 0)
            i++;
        if (i == sizeof(hosts) / sizeof(hosts[0]))
            continue;
        q += strlen(hosts[i]);
        if (*q != ':' || !isdigit((unsigned char)q[1]))
            continue;
        char *end = NULL;
        long port = strtol(q + 1, &end, 10);
        if (port < 1 || port > 65535 || end - (q + 1) > 5)
            continue;
        /* the path: up to whitespace or a character that ends a URL in prose */
        size_t n = strcspn(end, " \t\"'<>`)]}|");
        while (n > 0 && strchr(".,;:!", end[n - 1]))
            n--;
        _cleanup_free_ char *path = (*end == '/' && n > 0) ? xstrndup(end, n) : xstrdup("/");
        cb((int)port, path, data);
    }
}

void urlscan_feed(struct urlscan *s, const char *data, size_t len, urlscan_cb cb, void *data_)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        /* escape sequences: ESC [ params final-letter, or ESC and one char */
        if (s->esc == 1) {
            s->esc = c == '[' || c == ']' ? 2 : 0;
            continue;
        }
        if (s->esc == 2) {
            if ((c >= 0x40 && c <= 0x7e) || c == 0x07)
                s->esc = 0;
            continue;
        }
        if (c == 0x1b) {
            s->esc = 1;
            continue;
        }
        if (c == '\n') {
            scan_line(s->line.buf ? s->line.buf : "", cb, data_); /* a zeroed struct too */
            buf_reset(&s->line);
            continue;
        }
        if (c == '\r' || c < 0x20)
            continue;
        if (s->line.len < URLSCAN_MAX_LINE)
            buf_addch(&s->line, (char)c);
    }
}

void urlscan_flush(struct urlscan *s, urlscan_cb cb, void *data)
{
    if (s->line.len)
        scan_line(s->line.buf, cb, data);
    buf_reset(&s->line);
}

void urlscan_release(struct urlscan *s)
{
    buf_release(&s->line);
    s->esc = 0;
}
