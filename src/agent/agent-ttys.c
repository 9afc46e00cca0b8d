/* agent-ttys.c - TTY_WATCH: when the container's other terminals last printed.
 *
 * The kernel stamps a terminal's inode with the time of the last output written to it (its
 * mtime; input is its atime), rounded to 8 s so that it tells no keystroke timings. VS Code's
 * terminals are ptys that code-server opens itself, so this stamp is the one sign of their
 * output that does not depend on how the IDE talks to its page. While anyone watches,
 * /dev/pts is read every AGENT_TTYS_SCAN_MS; the terminals of the agent's own sessions are
 * left out (berthd sees their output on their connections). Nobody watching costs nothing.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-internal.h"

static bool own_terminal(dev_t rdev)
{
    for (size_t i = 0; i < agent.nconns; i++) {
        const struct conn *c = agent.conns[i];
        if (c->tty && c->pid != 0 && !c->reaped && c->pty_rdev == rdev)
            return true;
    }
    return false;
}

/* The newest output time of the terminals that are not the agent's, 0 when there are none. */
static int64_t ttys_newest(void)
{
    DIR *d = opendir("/dev/pts");
    if (!d)
        return 0;
    int64_t newest = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue; /* ".", "..", "ptmx" */
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISCHR(st.st_mode))
            continue;
        if (st.st_mtim.tv_sec > newest && !own_terminal(st.st_rdev))
            newest = st.st_mtim.tv_sec;
    }
    closedir(d);
    return newest;
}

static void ttys_send(struct conn *c, int64_t t)
{
    unsigned char p[8];

    agent_put_u32(p, (uint32_t)((uint64_t)t >> 32));
    agent_put_u32(p + 4, (uint32_t)t);
    conn_send(c, AGENT_TTYS, p, sizeof(p));
    c->ttys_sent = t;
    c->watch_listed = true;
}

void ttys_tick(int64_t now, int64_t *next)
{
    bool watched = false, fresh = false;

    for (size_t i = 0; i < agent.nconns; i++) {
        const struct conn *c = agent.conns[i];
        if (c->state == CONN_WATCH && c->watch_ttys && c->fd >= 0) {
            watched = true;
            fresh |= !c->watch_listed;
        }
    }
    if (!watched || (!fresh && now < agent.ttys_next_scan)) {
        if (watched && agent.ttys_next_scan < *next)
            *next = agent.ttys_next_scan;
        return;
    }
    int64_t newest = ttys_newest();
    agent.ttys_next_scan = now + AGENT_TTYS_SCAN_MS;
    for (size_t i = 0; i < agent.nconns; i++) {
        struct conn *c = agent.conns[i];
        if (c->state != CONN_WATCH || !c->watch_ttys || c->fd < 0)
            continue;
        if (!c->watch_listed || newest > c->ttys_sent)
            ttys_send(c, newest);
        /* 8 bytes every 5 s at most: only a client that stopped reading gets here */
        if (buf_pending(&c->out) > AGENT_OUT_LIMIT)
            conn_drop_client(c, now);
    }
    if (agent.ttys_next_scan < *next)
        *next = agent.ttys_next_scan;
}
