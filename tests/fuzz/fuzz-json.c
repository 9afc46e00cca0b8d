/* fuzz-json.c - libFuzzer target for what berthd does with JSON it is sent:
 * devcontainer.json (JSONC stripping, parsing, validation, merge, variable
 * substitution, the lifecycle command forms) and API request bodies (the
 * create request's fields and their checks). */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devcontainer/devcontainer.h"
#include "git/git.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *j = NULL;
    struct berr *e = NULL;
    if (dc_parse_jsonc((const char *)data, size, "fuzz.json", &j, &e) == 0) {
        struct dc_config c;
        dc_config_init(&c);
        c.raw = j;
        char *text = json_dumps(j, JSON_COMPACT);
        dc_merge_image_metadata(&c, text);
        free(text);
        for (int h = 0; h < _DC_HOOK_MAX; h++) {
            struct dc_command *cmds = NULL;
            struct berr *he = NULL;
            int n = dc_hook_commands(&c, (enum dc_hook)h, &cmds, &he);
            if (n >= 0)
                dc_commands_free(cmds, (size_t)n);
            berr_free(he);
        }
        const char *repo = NULL, *branch = NULL;
        if (json_unpack(c.raw, "{s:s, s?s}", "repo", &repo, "branch", &branch) == 0) {
            struct berr *ue = NULL;
            (void)git_check_url(repo, &ue);
            berr_free(ue);
            char *u = git_url_origin(repo);
            free(u);
        }
        struct dc_vars vars = {.local_workspace_folder = "/data/ws/x",
                               .container_workspace_folder = "/workspaces/x",
                               .devcontainer_id = "x"};
        char *s = strndup((const char *)data, size);
        char *sub = dc_substitute(s, &vars, &c.container_env);
        free(sub);
        free(s);
        dc_config_release(&c);
    }
    berr_free(e);
    return 0;
}
