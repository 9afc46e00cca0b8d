/* dcconfig.c - `berth config DIR`: the devcontainer.json of a local checkout,
 * merged with its image's metadata and substituted, in the shape of
 * `devcontainer read-configuration --include-merged-configuration`, with the
 * settings this server's policy would refuse marked.
 *
 * The file is read here, with the user's own permissions; only the image's
 * metadata label (GET /api/v1/images/metadata) and the policy (GET
 * /api/v1/policy) come from berthd. As with the devcontainer CLI on one's own
 * machine, ${localEnv:VAR} comes from this shell's environment; on the server
 * it comes from the owner's settings. The marks go to stderr, and with --json
 * into "berthPolicy", so that stdout stays the reference CLI's shape; when
 * berthd cannot say, the configuration is printed anyway and a warning says
 * the marks are missing and why. A .gitpod.yml is shown as the devcontainer.json
 * it was translated to, with what of it was ignored.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/client.h"
#include "cli/commands.h"
#include "devcontainer/devcontainer.h"
#include "devcontainer/options.h"
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

static json_t *refusal_json(const struct dc_refusal *f)
{
    json_t *allow = json_array();
    for (size_t i = 0; i < f->allow.n; i++)
        json_array_append_new(allow, json_string(f->allow.v[i]));
    return json_pack("{s:s, s:s, s:o, s:s?}", "setting", f->what, "reason", f->why, "allow", allow,
                     "fix", f->fix);
}

/* What this server would refuse of cfg, read from `file` (relative, for
 * messages): the lines for stderr go to `marks`, and the same for --json is
 * returned as {"server", "refused": [...]}, {"server", "error"} when a value is
 * malformed, or {"server", "unavailable"} when the policy cannot be had. */
static json_t *mark_refusals(struct client *c, const struct dc_config *cfg, const char *file,
                             struct strv *marks)
{
    const char *url = client_url(c);
    _cleanup_(json_decrefp) json_t *answer = NULL;
    _cleanup_berr_ struct berr *e = NULL;
    if (client_json(c, "GET", "/api/v1/policy", NULL, &answer, &e) < 0) {
        strv_pushf(marks,
                   "berth: warning: the settings this server would refuse are not marked: cannot "
                   "read its policy: %s",
                   berr_msg(e));
        return json_pack("{s:s, s:s}", "server", url, "unavailable", berr_msg(e));
    }
    _cleanup_strv_ struct strv allow = STRV_INIT;
    size_t i;
    json_t *v;
    json_array_foreach (json_object_get(answer, "devcontainer_allow"), i, v)
        if (json_is_string(v))
            strv_push(&allow, json_string_value(v));
    json_int_t max_mb = json_integer_value(json_object_get(answer, "max_memory_mb_per_workspace"));
    /* no forbidden paths: they are the server's own, and it judges them */
    struct dc_policy p = {
        .allow = &allow,
        .max_cpus = json_integer_value(json_object_get(answer, "max_cpus_per_workspace")),
        .max_memory = max_mb > 0 && max_mb < (INT64_MAX >> 20) ? (int64_t)max_mb << 20 : 0,
    };
    struct dc_refusals refused = {0};
    if (dc_policy_check(cfg, file, &p, &refused, &e) < 0) {
        strv_pushf(marks, "berth: warning: a workspace of this configuration would fail: %s",
                   berr_msg(e));
        return json_pack("{s:s, s:s}", "server", url, "error", berr_msg(e));
    }
    json_t *list = json_array();
    if (refused.n)
        strv_pushf(marks, "berth: warning: %zu %s of '%s' would be refused by the policy of %s:",
                   refused.n, refused.n == 1 ? "setting" : "settings", file, url);
    for (i = 0; i < refused.n; i++) {
        _cleanup_free_ char *line = dc_refusal_text(&refused.v[i]);
        strv_pushf(marks, "  %s", line);
        json_array_append_new(list, refusal_json(&refused.v[i]));
    }
    dc_refusals_release(&refused);
    return json_pack("{s:s, s:o}", "server", url, "refused", list);
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
                         "no .devcontainer/devcontainer.json, .devcontainer.json or .gitpod.yml "
                         "in '%s'",
                         dir);
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
    _cleanup_strv_ struct strv marks = STRV_INIT;
    json_object_set_new(out, "berthPolicy", mark_refusals(c, &cfg, rel, &marks));
    if (cfg.gitpod) {
        /* what the configuration was read from, and what of it was not used */
        json_t *warnings = json_array();
        for (size_t i = 0; i < cfg.warnings.n; i++) {
            json_array_append_new(warnings, json_string(cfg.warnings.v[i]));
            strv_pushf(&marks, "berth: warning: %s", cfg.warnings.v[i]);
        }
        json_object_set_new(out, "berthGitpod",
                            json_pack("{s:s, s:o}", "file", rel, "warnings", warnings));
        strv_pushf(&marks, "berth: note: read from '%s', translated to devcontainer.json", rel);
    }
    if (a->json)
        cmd_print_json(out);
    else
        cmd_print_json(json_object_get(out, "mergedConfiguration"));
    /* after the configuration, where a reader of the terminal sees them last */
    (void)fflush(stdout);
    for (size_t i = 0; i < marks.n; i++)
        fprintf(stderr, "%s\n", marks.v[i]);
    json_decref(out);
    dc_config_release(&cfg);
    return 0;
}
