/* fuzz-yaml.c - libFuzzer target for a repository's .gitpod.yml: the YAML
 * reader with its limits, the translation into devcontainer.json keys, and
 * what is done with the result (validation through the hook forms). */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "devcontainer/devcontainer.h"
#include "devcontainer/gitpod.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *j = NULL;
    struct berr *e = NULL;
    struct strv warnings = STRV_INIT;
    if (gitpod_load((const char *)data, size, ".gitpod.yml", &j, &warnings, &e) == 0) {
        struct dc_config c;
        dc_config_init(&c);
        c.raw = j;
        dc_merge_image_metadata(&c, "[]");
        for (int h = 0; h < _DC_HOOK_MAX; h++) {
            struct dc_command *cmds = NULL;
            struct berr *he = NULL;
            int n = dc_hook_commands(&c, (enum dc_hook)h, &cmds, &he);
            if (n >= 0)
                dc_commands_free(cmds, (size_t)n);
            berr_free(he);
        }
        json_t *merged = dc_config_merged_json(&c);
        char *text = json_dumps(merged, JSON_COMPACT);
        free(text);
        json_decref(merged);
        dc_config_release(&c);
    }
    strv_release(&warnings);
    berr_free(e);
    return 0;
}
