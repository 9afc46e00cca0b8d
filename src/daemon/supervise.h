/* supervise.h - the embedded engine: `podman system service` run and restarted
 * by berthd when no engine socket is configured or found. */
#ifndef BERTH_SUPERVISE_H
#define BERTH_SUPERVISE_H

#include <uv.h>

struct supervisor;

/* Starts `podman system service --time=0 unix://SOCKET` with the socket in
 * run_dir (mode 0700 dir, so only root reaches it) and restarts it whenever it
 * exits, with a growing delay. Returns 0 or -errno. */
int supervisor_start(uv_loop_t *loop, const char *podman, const char *run_dir,
                     struct supervisor **ret);
const char *supervisor_socket(const struct supervisor *s);
/* Stops the service (SIGTERM) and frees the supervisor from the loop. */
void supervisor_stop(struct supervisor *s);

#endif
