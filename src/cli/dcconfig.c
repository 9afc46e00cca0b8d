/* dcconfig.c - `berth config DIR`: the devcontainer.json of a local checkout,
 * merged with its image's metadata and substituted, in the shape of
 * `devcontainer read-configuration --include-merged-configuration`.
 *
 * The file is read here, with the user's own permissions; only the image's
 * metadata label comes from berthd (GET /api/v1/images/metadata). As with the
 * devcontainer CLI on one's own machine, ${localEnv:VAR} comes from this
 * shell's environment; on the server it comes from the owner's settings.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/client.h"
#include "cli/commands.h"
#include "devcontainer/devcontainer.h"
#include "util/xalloc.h"

extern char **environ;

/* The image's metadata from berthd; a warning (not an error) when it cannot be had. */
static void merge_image_metadata(struct client *c, struct dc_config *cfg)
{
    CURL *h = curl_easy_init();
    char *q = h ? curl_easy_escape(h, cfg->image, 0) : NULL;
    _cleanup_free_ char *path = xasprintf("/api/v1/images/metadata?image=%s", q ? q : "");
    curl_free(q);
    if (h)
        curl_easy_cleanup(h);
    _cleanup_(json_decrefp) json_t *answer = NULL;
    _cleanup_berr_ struct berr *e = NULL;
    if (client_json(c, "GET", path, NULL, &answer, &e) < 0) {
        fprintf(stderr, "berth: warning: the metadata of image '%s' is not merged: %s\n",
                cfg->image, berr_msg(e));
        return;
    }
    dc_merge_image_metadata(cfg, json_string_value(json_object_get(answer, "metadata")));
    const char *user = json_string_value(json_object_get(answer, "user"));
    if (!cfg->remote_user && !cfg->container_user && user)
        cfg->remote_user = xstrdup(user);
}

int cmd_config(struct client *c, const struct cli_args *a, struct berr **reterr)
{
    const char *dir = a->pos.v[0];
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return berr_make(reterr, ENOENT, "'%s' is not a folder: give the checkout to read", dir);
    _cleanup_free_ char *abs = realpath(dir, NULL);
    if (!abs)
        return berr_make(reterr, errno, "cannot resolve '%s': %s", dir, strerror(errno));
    _cleanup_free_ char *rel = NULL;
    int r = dc_find(abs, a->devcontainer, &rel, reterr);
    if (r < 0)
        return r;
    if (!rel)
        return berr_make(reterr, ENOENT,
                         "no .devcontainer/devcontainer.json or .devcontainer.json in '%s'", dir);
    _cleanup_strv_ struct strv env = STRV_INIT;
    for (char **e = environ; e && *e; e++)
        strv_push(&env, *e);
    const char *base = strrchr(abs, '/');
    _cleanup_free_ char *folder = xasprintf("/workspaces/%s", base && base[1] ? base + 1 : abs);
    struct dc_vars vars = {
        .local_workspace_folder = abs, .container_workspace_folder = folder, .local_env = &env};
    struct dc_config cfg;
    dc_config_init(&cfg);
    r = dc_load(abs, rel, &vars, &cfg, reterr);
    if (r < 0)
        return r;
    if (cfg.image)
        merge_image_metadata(c, &cfg);
    else if (json_object_get(cfg.raw, "build"))
        fprintf(stderr, "berth: note: the image is built from a Dockerfile; its metadata is "
                        "merged when a workspace is created\n");
    json_t *out = json_pack("{s:O, s:{s:s}, s:o}", "configuration", cfg.raw, "workspace",
                            "workspaceFolder", cfg.workspace_folder ? cfg.workspace_folder : folder,
                            "mergedConfiguration", dc_config_merged_json(&cfg));
    json_object_set_new(json_object_get(out, "configuration"), "configFilePath",
                        json_sprintf("%s/%s", abs, rel));
    if (a->json)
        cmd_print_json(out);
    else
        cmd_print_json(json_object_get(out, "mergedConfiguration"));
    json_decref(out);
    dc_config_release(&cfg);
    return 0;
}
