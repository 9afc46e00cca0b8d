/* supervise.c - keeps a private `podman system service` alive.
 *
 * The service runs with --time=0 (never exits on idle) on a socket in a 0700
 * directory of the data dir. If it dies it is started again after 0.5 s, then
 * 1 s, 2 s ... up to 10 s; a run that lasted a minute resets the delay.
 */
#include "daemon/supervise.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/log.h"
#include "util/xalloc.h"

struct supervisor {
    uv_loop_t *loop;
    char *podman;
    char *socket;
    char *url;
    uv_process_t proc;
    bool running;
    bool stopping;
    uv_timer_t timer;
    uint64_t delay_ms;
    uint64_t started_at;
};

static void spawn_service(struct supervisor *s);

static void on_timer(uv_timer_t *t)
{
    spawn_service(t->data);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    struct supervisor *s = p->data;
    s->running = false;
    uv_close((uv_handle_t *)p, NULL);
    if (s->stopping)
        return;
    log_warn("podman service exited (status %lld, signal %d); restarting", (long long)status, sig);
    if (uv_now(s->loop) - s->started_at > 60000)
        s->delay_ms = 500;
    uv_timer_start(&s->timer, on_timer, s->delay_ms, 0);
    s->delay_ms = s->delay_ms * 2 > 10000 ? 10000 : s->delay_ms * 2;
}

static void spawn_service(struct supervisor *s)
{
    (void)unlink(s->socket);
    char *args[] = {s->podman, "system", "service", "--time=0", s->url, NULL};
    uv_stdio_container_t stdio[3] = {{.flags = UV_IGNORE},
                                     {.flags = UV_INHERIT_FD, .data.fd = 2},
                                     {.flags = UV_INHERIT_FD, .data.fd = 2}};
    uv_process_options_t o = {
        .file = s->podman,
        .args = args,
        .exit_cb = on_exit_cb,
        .stdio_count = 3,
        .stdio = stdio,
    };
    s->proc.data = s;
    int r = uv_spawn(s->loop, &s->proc, &o);
    if (r < 0) {
        log_error("cannot start '%s system service': %s", s->podman, uv_strerror(r));
        uv_close((uv_handle_t *)&s->proc, NULL);
        uv_timer_start(&s->timer, on_timer, 5000, 0);
        return;
    }
    s->running = true;
    s->started_at = uv_now(s->loop);
    log_info("started podman service (pid %d) on %s", s->proc.pid, s->socket);
}

/* A berthd killed with SIGKILL leaves its service running on an unlinked
 * socket; find such leftovers by their command line and end them. */
static void kill_leftovers(const char *url)
{
    DIR *d = opendir("/proc");
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end = NULL;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 1 || pid == getpid())
            continue;
        _cleanup_free_ char *path = xasprintf("/proc/%ld/cmdline", pid);
        struct buf b = BUF_INIT;
        if (read_file(path, 65536, &b) == 0) {
            for (size_t i = 0; i < b.len; i++)
                if (!b.buf[i])
                    b.buf[i] = ' ';
            if (strstr(b.buf, "system service") && strstr(b.buf, url)) {
                log_info("stopping leftover podman service (pid %ld)", pid);
                (void)kill((pid_t)pid, SIGTERM);
            }
        }
        buf_release(&b);
    }
    closedir(d);
}

int supervisor_start(uv_loop_t *loop, const char *podman, const char *run_dir,
                     struct supervisor **ret)
{
    int r = mkdir_p(run_dir, 0700);
    if (r < 0)
        return r;
    if (chmod(run_dir, 0700) < 0)
        return -errno;
    struct supervisor *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->podman = xstrdup(podman);
    s->socket = xasprintf("%s/podman.sock", run_dir);
    s->url = xasprintf("unix://%s", s->socket);
    s->delay_ms = 500;
    kill_leftovers(s->url);
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    spawn_service(s);
    *ret = s;
    return 0;
}

const char *supervisor_socket(const struct supervisor *s)
{
    return s->socket;
}

void supervisor_stop(struct supervisor *s)
{
    if (!s)
        return;
    s->stopping = true;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, NULL);
    if (s->running)
        (void)uv_process_kill(&s->proc, SIGTERM);
}
