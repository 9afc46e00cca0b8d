/* agent-ports.c - PORTS_WATCH: the container's listening TCP ports, as they change.
 *
 * While anyone watches, /proc/net/tcp{,6} is read twice a second and the difference to the last
 * look is sent as "+ PORT ADDR PID COMM" and "- PORT ADDR" lines; /proc/PID/fd is searched for
 * the owners of new sockets only. Nobody watching costs nothing.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-internal.h"

static int port_key_cmp(const void *pa, const void *pb)
{
    const struct port *a = pa, *b = pb;

    if (a->port != b->port)
        return a->port < b->port ? -1 : 1;
    if (a->family != b->family)
        return a->family < b->family ? -1 : 1;
    return memcmp(a->addr, b->addr, sizeof(a->addr));
}

/* By address and port, then lowest inode first. */
static int port_cmp(const void *pa, const void *pb)
{
    const struct port *a = pa, *b = pb;
    int r = port_key_cmp(a, b);

    if (r != 0)
        return r;
    return a->inode < b->inode ? -1 : a->inode > b->inode;
}

static int port_inode_cmp(const void *pa, const void *pb)
{
    const struct port *a = *(struct port *const *)pa, *b = *(struct port *const *)pb;

    return a->inode < b->inode ? -1 : a->inode > b->inode;
}

static bool hex_u32(const char *s, size_t len, uint32_t *ret)
{
    uint32_t v = 0;

    if (len == 0 || len > 8)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        unsigned d = ch >= '0' && ch <= '9'   ? (unsigned)(ch - '0')
                     : ch >= 'A' && ch <= 'F' ? (unsigned)(ch - 'A' + 10)
                     : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10)
                                              : 16;
        if (d > 15)
            return false;
        v = v << 4 | d;
    }
    *ret = v;
    return true;
}

/* Parses a listening socket's line of /proc/net/tcp or tcp6:
 *     "  0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000  0 4711"
 * (slot, local address:port, remote, state, queues, timer, retransmits, uid, timeout, inode).
 * The kernel prints an address as the words it holds in memory, so storing the numbers back
 * as native words restores the address bytes on either byte order. */
static bool port_parse_line(char *line, struct port *ret)
{
    char *tok[10], *save = NULL;
    size_t n = 0;

    for (char *t = strtok_r(line, " \t\n", &save); t && n < 10; t = strtok_r(NULL, " \t\n", &save))
        tok[n++] = t;
    uint32_t state, port;
    if (n < 10 || !hex_u32(tok[3], strlen(tok[3]), &state) || state != 0x0A /* LISTEN */)
        return false;
    char *colon = strchr(tok[1], ':');
    size_t addr_len = colon ? (size_t)(colon - tok[1]) : 0;
    if ((addr_len != 8 && addr_len != 32) || !hex_u32(colon + 1, strlen(colon + 1), &port) ||
        port == 0 || port > 0xffff)
        return false;
    struct port p = {.family = addr_len == 8 ? AF_INET : AF_INET6, .port = (unsigned short)port};
    for (size_t i = 0; i < addr_len / 8; i++) {
        uint32_t word;
        if (!hex_u32(tok[1] + 8 * i, 8, &word))
            return false;
        memcpy(p.addr + 4 * i, &word, sizeof(word));
    }
    char *end;
    errno = 0;
    p.inode = strtoul(tok[9], &end, 10);
    if (errno != 0 || *end != '\0' || end == tok[9] || p.inode == 0)
        return false;
    *ret = p;
    return true;
}

/* Appends the listeners in path. Returns 0 or -errno. */
static int ports_read(const char *path, struct port **v, size_t *n, size_t *cap)
{
    FILE *f = fopen(path, "re");
    char line[512]; /* the kernel pads lines to 150 (tcp) and about 180 (tcp6) bytes */

    if (!f)
        return -errno;
    /* The kernel walks its socket tables again for every read(); stdio's 1 KiB reads made
     * that several walks per file. Nothing else uses scratch while the table is read. */
    (void)setvbuf(f, (char *)scratch, _IOFBF, sizeof(scratch));
    while (fgets(line, sizeof(line), f)) {
        if (!strchr(line, '\n') && !feof(f)) {
            int ch;
            while ((ch = fgetc(f)) != EOF && ch != '\n')
                ; /* not a line this parser knows: skip all of it */
            continue;
        }
        struct port p;
        if (*n >= AGENT_PORTS_MAX || !port_parse_line(line, &p))
            continue;
        /* Docker's embedded DNS server listens in the container on 127.0.0.11 (a
         * Swarm's workspaces have it): the engine's, not the user's */
        static const unsigned char docker_dns[4] = {127, 0, 0, 11};
        if (p.family == AF_INET && memcmp(p.addr, docker_dns, 4) == 0)
            continue;
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 32;
            *v = xrealloc(*v, *cap * sizeof(**v));
        }
        (*v)[(*n)++] = p;
    }
    fclose(f);
    return 0;
}

static void port_read_comm(int pid_dfd, char *comm, size_t size)
{
    char raw[64];
    int fd = openat(pid_dfd, "comm", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, raw, sizeof(raw)) : -1;

    if (fd >= 0)
        close(fd);
    if (n > 0 && raw[n - 1] == '\n')
        n--;
    if (n <= 0) {
        snprintf(comm, size, "?");
        return;
    }
    if ((size_t)n >= size)
        n = (ssize_t)size - 1;
    /* Any process can name itself anything; a newline would forge a line of the protocol. */
    for (ssize_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)raw[i];
        comm[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    comm[n] = '\0';
}

/* Passing -1 changes nothing and returns the current value, which shows whether the switch
 * back really happened: the agent must never go on with a user's file-system identity. */
static void agent_restore_fsid(uid_t uid, gid_t gid)
{
    (void)setfsuid(uid);
    (void)setfsgid(gid);
    if ((uid_t)setfsuid((uid_t)-1) != uid || (gid_t)setfsgid((gid_t)-1) != gid)
        die("cannot restore the file-system uid and gid after a look into /proc");
}

/* Marks the wanted sockets (sorted by inode) that process pid holds. */
static void ports_scan_fds(int pid_dfd, pid_t pid, struct port **want, size_t nwant, size_t *left)
{
    int fd = openat(pid_dfd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    char comm[sizeof(want[0]->comm)] = "";
    struct dirent *de;

    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    while (*left > 0 && (de = readdir(d))) {
        char link[64];
        ssize_t n = readlinkat(fd, de->d_name, link, sizeof(link) - 1);
        if (n <= 8 || memcmp(link, "socket:[", 8) != 0)
            continue;
        link[n] = '\0';
        char *end;
        struct port key = {.inode = strtoul(link + 8, &end, 10)};
        struct port *keyp = &key;
        if (*end != ']')
            continue;
        struct port **hit = bsearch(&keyp, want, nwant, sizeof(*want), port_inode_cmp);
        if (!hit || (*hit)->resolved)
            continue;
        if (!comm[0])
            port_read_comm(pid_dfd, comm, sizeof(comm));
        (*hit)->pid = pid;
        (*hit)->own = pid == getpid();
        (*hit)->resolved = true;
        memcpy((*hit)->comm, comm, sizeof(comm));
        (*left)--;
    }
    closedir(d);
}

/* Finds the process holding each socket not resolved yet, by the "socket:[INODE]" links in
 * /proc/PID/fd; the lowest pid wins, which for a socket shared after fork() is the parent.
 * Reading another user's links takes CAP_SYS_PTRACE, which containers lack; the kernel also
 * lets a caller whose file-system uid and gid are the owner's, so root takes those for the
 * look into each process. */
static void ports_find_owners(struct port *v, size_t n)
{
    struct port **want = NULL;
    size_t nwant = 0;
    uid_t fsuid = geteuid();
    gid_t fsgid = getegid();

    for (size_t i = 0; i < n; i++) {
        if (v[i].resolved)
            continue;
        want = xrealloc(want, (nwant + 1) * sizeof(*want));
        want[nwant++] = &v[i];
    }
    if (nwant == 0)
        return;
    qsort(want, nwant, sizeof(*want), port_inode_cmp);
    DIR *proc = opendir("/proc");
    struct dirent *de;
    size_t left = nwant;
    while (proc && left > 0 && (de = readdir(proc))) {
        char *end;
        errno = 0;
        unsigned long pid = strtoul(de->d_name, &end, 10);
        if (de->d_name[0] < '1' || de->d_name[0] > '9' || *end != '\0' || errno != 0 ||
            pid > INT_MAX)
            continue;
        int pid_dfd = openat(dirfd(proc), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pid_dfd < 0)
            continue;
        struct stat st; /* a process's directory belongs to its effective uid and gid */
        bool as_owner = fsuid == 0 && fstat(pid_dfd, &st) == 0 && (st.st_uid || st.st_gid);
        if (as_owner) {
            (void)setfsgid(st.st_gid);
            (void)setfsuid(st.st_uid);
        }
        ports_scan_fds(pid_dfd, (pid_t)pid, want, nwant, &left);
        if (as_owner)
            agent_restore_fsid(fsuid, fsgid);
        close(pid_dfd);
    }
    if (proc)
        closedir(proc);
    for (size_t i = 0; i < nwant; i++) {
        if (want[i]->resolved)
            continue;
        want[i]->resolved = true;
        want[i]->pid = 0;
        snprintf(want[i]->comm, sizeof(want[i]->comm), "?");
    }
    free(want);
}

static void port_line(struct buf *b, char sign, const struct port *p)
{
    char addr[INET6_ADDRSTRLEN], line[128];
    int n;

    if (!inet_ntop(p->family, p->addr, addr, sizeof(addr)))
        snprintf(addr, sizeof(addr), "?");
    if (sign == '+')
        n = snprintf(line, sizeof(line), "+ %u %s %d %s\n", p->port, addr, (int)p->pid, p->comm);
    else
        n = snprintf(line, sizeof(line), "- %u %s\n", p->port, addr);
    buf_add(b, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* Takes a new look at the listeners and writes what changed since the last one to diff.
 * Returns 0 or -errno. */
static int ports_scan(struct buf *diff)
{
    struct port *v = NULL;
    size_t n = 0, cap = 0;
    int r = ports_read("/proc/net/tcp", &v, &n, &cap);

    if (r < 0) {
        free(v);
        return r;
    }
    (void)ports_read("/proc/net/tcp6", &v, &n, &cap); /* absent without IPv6 */
    if (n > 0)
        qsort(v, n, sizeof(*v), port_cmp);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (kept == 0 || port_key_cmp(&v[kept - 1], &v[i]) != 0)
            v[kept++] = v[i]; /* SO_REUSEPORT: one entry, for the lowest inode */
    n = kept;

    /* What was known about a socket seen before is kept, so /proc/PID/fd is searched only
     * when a new one appears. */
    for (size_t i = 0; i < n; i++) {
        struct port *old = agent.nports
                               ? bsearch(&v[i], agent.ports, agent.nports, sizeof(*v), port_key_cmp)
                               : NULL;
        if (old && old->inode == v[i].inode) {
            v[i].pid = old->pid;
            v[i].own = old->own;
            v[i].resolved = old->resolved;
            memcpy(v[i].comm, old->comm, sizeof(v[i].comm));
        }
    }
    ports_find_owners(v, n);

    /* All "-" lines first: a listener replaced since the last look reads as closed, then
     * opened. */
    for (size_t i = 0; i < agent.nports; i++) {
        const struct port *o = &agent.ports[i];
        const struct port *now = n ? bsearch(o, v, n, sizeof(*v), port_key_cmp) : NULL;
        if (!o->own && (!now || now->inode != o->inode))
            port_line(diff, '-', o);
    }
    for (size_t i = 0; i < n; i++) {
        const struct port *old =
            agent.nports ? bsearch(&v[i], agent.ports, agent.nports, sizeof(*v), port_key_cmp)
                         : NULL;
        if (!v[i].own && (!old || old->inode != v[i].inode))
            port_line(diff, '+', &v[i]);
    }
    free(agent.ports);
    agent.ports = v;
    agent.nports = n;
    return 0;
}

/* Sends text as PORTS frames of whole lines. */
static void ports_send(struct conn *c, const struct buf *text)
{
    const unsigned char *p = text->data + text->head;
    size_t n = buf_pending(text);

    while (n > 0) {
        size_t take = n;
        if (take > AGENT_CHUNK) {
            take = AGENT_CHUNK;
            while (take > 0 && p[take - 1] != '\n')
                take--;
            if (take == 0)
                take = AGENT_CHUNK; /* cannot happen: lines are short */
        }
        conn_send(c, AGENT_PORTS, p, take);
        p += take;
        n -= take;
    }
}

/* Looks at the listeners when it is time and someone watches; lowers *next to the time of
 * the next look. */
void ports_tick(int64_t now, int64_t *next)
{
    bool watched = false, fresh = false;

    for (size_t i = 0; i < agent.nconns; i++) {
        const struct conn *c = agent.conns[i];
        if (c->state == CONN_WATCH && !c->watch_ttys && c->fd >= 0) {
            watched = true;
            fresh |= !c->watch_listed;
        }
    }
    if (!watched) {
        /* Nobody watches: no looking, and the next watch starts from a clean look. */
        free(agent.ports);
        agent.ports = NULL;
        agent.nports = 0;
        return;
    }
    if (fresh || now >= agent.ports_next_scan) {
        struct buf diff = {0}, list = {0};
        int r = ports_scan(&diff);
        agent.ports_next_scan = now + AGENT_PORTS_SCAN_MS;
        if (r == 0 && fresh) {
            for (size_t i = 0; i < agent.nports; i++)
                if (!agent.ports[i].own)
                    port_line(&list, '+', &agent.ports[i]);
            buf_add(&list, ".\n", 2);
        }
        for (size_t i = 0; i < agent.nconns; i++) {
            struct conn *c = agent.conns[i];
            if (c->state != CONN_WATCH || c->watch_ttys || c->fd < 0)
                continue;
            if (r < 0) {
                conn_fail(c, now, "cannot read '/proc/net/tcp': %s", strerror(-r));
                continue;
            }
            ports_send(c, c->watch_listed ? &diff : &list);
            c->watch_listed = true;
            /* A stream of changes cannot skip any; a client that stopped reading starts
             * over with a new list when it reconnects. */
            if (buf_pending(&c->out) > AGENT_OUT_LIMIT)
                conn_drop_client(c, now);
        }
        buf_release(&diff);
        buf_release(&list);
    }
    if (agent.ports_next_scan < *next)
        *next = agent.ports_next_scan;
}
