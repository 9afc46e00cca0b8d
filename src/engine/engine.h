/* engine.h - the container engine, spoken to through the Docker Engine API v1.41.
 *
 * Works against `podman system service` and dockerd alike. Only this module
 * knows the wire format. Every call is blocking (libcurl over a unix socket) and
 * is meant for berthd's worker threads, never for the event loop. Calls are
 * thread-safe: each uses its own curl handle.
 *
 * Errors carry the engine's own message: "no such image: 'x'".
 */
#ifndef BERTH_ENGINE_H
#define BERTH_ENGINE_H

#include <jansson.h>
#include <stdbool.h>

#include "util/err.h"

#define ENGINE_API_VERSION "v1.41"

struct engine;

typedef void (*engine_line_cb)(const char *line, void *data);

/* Creates a client for the engine listening on the unix socket at path. */
struct engine *engine_new(const char *socket_path);
struct engine *engine_free(struct engine *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct engine *, engine_free)
const char *engine_socket(const struct engine *e);

int engine_ping(struct engine *e, struct berr **reterr);
/* One request with a JSON body (may be NULL) and a JSON answer (ret may be
 * NULL); a non-2xx answer is an error "what: the engine's message", with
 * ENOENT for 404, EBUSY for 409, EINVAL for 400. For the API's other parts
 * (swarm.c). */
int engine_call(struct engine *e, const char *method, const char *path, json_t *body, json_t **ret,
                const char *what, struct berr **reterr);

/* -ENOENT when the image does not exist locally. *ret is the inspect JSON. */
int engine_image_inspect(struct engine *e, const char *image, json_t **ret, struct berr **reterr);
/* Pulls an image; progress lines ("Pulling fs layer") go to cb. */
int engine_image_pull(struct engine *e, const char *image, engine_line_cb cb, void *data,
                      struct berr **reterr);
/* Loads an image archive (docker save / podman save format) from a file. */
int engine_image_load(struct engine *e, const char *archive_path, struct berr **reterr);

/* Creates a container from a ContainerConfig JSON body; *ret_id is its id. */
int engine_container_create(struct engine *e, const char *name, json_t *config, char **ret_id,
                            struct berr **reterr);
int engine_container_start(struct engine *e, const char *id, struct berr **reterr);
/* Stops with SIGTERM, then SIGKILL after timeout_s. Stopping a stopped container is fine. */
int engine_container_stop(struct engine *e, const char *id, int timeout_s, struct berr **reterr);
/* Removes the container (force: even when running) and its anonymous volumes;
 * -ENOENT when it does not exist. */
int engine_container_remove(struct engine *e, const char *id, bool force, struct berr **reterr);
/* -ENOENT when the container does not exist. */
/* Makes image repo:tag of what the container's filesystem holds now. */
int engine_container_commit(struct engine *e, const char *id, const char *repo, const char *tag,
                            struct berr **reterr);
/* Removes an image (not one a container uses). */
int engine_image_remove(struct engine *e, const char *image, struct berr **reterr);
int engine_container_inspect(struct engine *e, const char *id, json_t **ret, struct berr **reterr);
/* Lists containers (running or not) that carry the label "key=value" or "key". */
int engine_container_list(struct engine *e, const char *label, json_t **ret, struct berr **reterr);

int engine_volume_create(struct engine *e, const char *name, json_t *labels, struct berr **reterr);
int engine_volume_remove(struct engine *e, const char *name, struct berr **reterr);
/* Lists the volumes that carry the label "key=value"; *ret is a JSON array. */
int engine_volume_list(struct engine *e, const char *label, json_t **ret, struct berr **reterr);

/* Gives image the further name repo:tag. */
int engine_image_tag(struct engine *e, const char *image, const char *repo, const char *tag,
                     struct berr **reterr);
/* Pushes repo:tag to its registry (one that asks no credentials); *ret_digest
 * is what the registry stored ("sha256:..."), by which to pull exactly it. */
int engine_image_push(struct engine *e, const char *repo, const char *tag, char **ret_digest,
                      struct berr **reterr);
/* "BASE?filters=" with {"key": ["value"]} percent-encoded, newly allocated. */
char *engine_filter_path(const char *base, const char *key, const char *value);

/* Builds an image from a tar archive of the build context. */
struct engine_build {
    const char *tag;
    const char *dockerfile; /* inside the context; NULL: "Dockerfile" */
    const char *target;     /* may be NULL */
    json_t *buildargs;      /* object of strings, may be NULL */
    json_t *labels;         /* object of strings, may be NULL */
};
/* The builder's output goes to cb line by line; a failing step is the error. */
int engine_image_build(struct engine *e, const char *context_tar, const struct engine_build *b,
                       engine_line_cb cb, void *data, struct berr **reterr);

#endif
