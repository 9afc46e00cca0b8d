/* build.h - images a devcontainer.json builds: its Dockerfile, and its
 * features installed on top.
 *
 * Both go through the engine's build endpoint with a tar of the context made
 * deterministically (sorted names, zero times, numeric owners), so the same
 * configuration and files give the same cache key and the image is reused by
 * every workspace of that configuration: `localhost/berth/build-<key>` and
 * `localhost/berth/features-<key>`.
 *
 * Everything read from the repository stays inside it: the Dockerfile and the
 * context must be in the checkout, symlinks are archived as links (never
 * followed), and features downloaded from a URL or a registry are unpacked by
 * an unprivileged user.
 */
#ifndef BERTH_BUILD_H
#define BERTH_BUILD_H

#include <jansson.h>

#include "engine/runtime.h"
#include "util/err.h"

struct wsb {
    struct runtime *rt;
    const char *repo_dir;   /* the checkout on the host */
    const char *config_rel; /* the devcontainer.json, relative to repo_dir */
    const char *work_dir;   /* scratch space, removed by the caller */
    engine_line_cb log;     /* progress and the builder's output */
    void *data;
};

/* Builds the image of a "build" object (dockerfile, context, args, target),
 * or finds it built already. *ret_image is its tag. */
int wsb_dockerfile(const struct wsb *b, json_t *build, char **ret_image, struct berr **reterr);

/* Installs "features" (local folders, tarball URLs, OCI references) in the
 * spec's order on top of base_image, whose devcontainer.metadata label is
 * extended with the features' own metadata. *ret_image is the derived image. */
int wsb_features(const struct wsb *b, json_t *features, json_t *override_order,
                 const char *base_image, const char *remote_user, char **ret_image,
                 struct berr **reterr);

#endif
