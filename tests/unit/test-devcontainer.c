/* test-devcontainer.c - JSONC, the command forms, merging and variables,
 * written from the devcontainer spec's text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "devcontainer/devcontainer.h"
#include "util/xalloc.h"

static void test_devcontainer__jsonc_comments_and_trailing_commas(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *key;
        const char *value;
    } cases[] = {
        {"{\"image\": \"a\" // note\n}", "image", "a"},
        {"{/* block */ \"image\": \"b\",}", "image", "b"},
        {"{\"image\": \"c\", \"x\": [1, 2,],\n}", "image", "c"},
        {"{\"image\": \"http://d//e\"}", "image", "http://d//e"},
        {"{\"image\": \"f /* not a comment */\"}", "image", "f /* not a comment */"},
        {"{\"image\": \"g\\\",}\"}", "image", "g\",}"},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        json_t *j = NULL;
        struct berr *e = NULL;
        assert_int_equal(dc_parse_jsonc(cases[i].text, strlen(cases[i].text), "t.json", &j, &e), 0);
        assert_string_equal(json_string_value(json_object_get(j, cases[i].key)), cases[i].value);
        json_decref(j);
    }
}

static void test_devcontainer__syntax_error_names_line_and_column(void **state)
{
    (void)state;
    const char *text = "{\n  // comment\n  \"image\": \"x\"\n  \"postCreateCommand\": 1\n}\n";
    json_t *j = NULL;
    struct berr *e = NULL;
    int r = dc_parse_jsonc(text, strlen(text), ".devcontainer/devcontainer.json", &j, &e);
    assert_true(r < 0);
    assert_non_null(e);
    assert_non_null(strstr(e->msg, "'.devcontainer/devcontainer.json' line 4, column"));
    berr_free(e);
}

static struct dc_config load_text(const char *text)
{
    struct dc_config c;
    dc_config_init(&c);
    json_t *j = NULL;
    assert_int_equal(dc_parse_jsonc(text, strlen(text), "t", &j, NULL), 0);
    c.raw = j;
    dc_merge_image_metadata(&c, "[]");
    return c;
}

static void test_devcontainer__three_command_forms(void **state)
{
    (void)state;
    struct dc_config c =
        load_text("{\"postCreateCommand\": \"echo hi && true\","
                  " \"postStartCommand\": [\"echo\", \"a b\"],"
                  " \"onCreateCommand\": {\"one\": \"echo 1\", \"two\": [\"echo\", \"2\"]}}");
    struct dc_command *cmds = NULL;
    int n = dc_hook_commands(&c, DC_POST_CREATE, &cmds, NULL);
    assert_int_equal(n, 1);
    assert_string_equal(cmds[0].argv.v[0], "/bin/sh");
    assert_string_equal(cmds[0].argv.v[1], "-c");
    assert_string_equal(cmds[0].argv.v[2], "echo hi && true");
    dc_commands_free(cmds, (size_t)n);

    n = dc_hook_commands(&c, DC_POST_START, &cmds, NULL);
    assert_int_equal(n, 1);
    assert_int_equal(cmds[0].argv.n, 2);
    assert_string_equal(cmds[0].argv.v[1], "a b");
    dc_commands_free(cmds, (size_t)n);

    n = dc_hook_commands(&c, DC_ON_CREATE, &cmds, NULL);
    assert_int_equal(n, 2);
    assert_string_equal(cmds[0].label, "one");
    assert_string_equal(cmds[1].label, "two");
    assert_int_equal(cmds[0].group, cmds[1].group);
    dc_commands_free(cmds, (size_t)n);
    dc_config_release(&c);
}

static void test_devcontainer__bad_command_is_an_error(void **state)
{
    (void)state;
    struct dc_config c = load_text("{\"postCreateCommand\": {\"x\": 5}}");
    struct dc_command *cmds = NULL;
    struct berr *e = NULL;
    assert_true(dc_hook_commands(&c, DC_POST_CREATE, &cmds, &e) < 0);
    assert_non_null(strstr(e->msg, "postCreateCommand.x"));
    berr_free(e);
    dc_config_release(&c);
}

static void test_devcontainer__metadata_merges_under_the_file(void **state)
{
    (void)state;
    struct dc_config c = load_text("{\"containerEnv\": {\"A\": \"file\"},"
                                   " \"postCreateCommand\": \"file-cmd\"}");
    dc_merge_image_metadata(&c, "[{\"remoteUser\": \"vscode\", \"containerEnv\": {\"A\": \"img\","
                                " \"B\": \"img\"}, \"postCreateCommand\": \"img-cmd\"}]");
    assert_string_equal(c.remote_user, "vscode");
    assert_string_equal(strv_getenv(&c.container_env, "A"), "file");
    assert_string_equal(strv_getenv(&c.container_env, "B"), "img");
    struct dc_command *cmds = NULL;
    int n = dc_hook_commands(&c, DC_POST_CREATE, &cmds, NULL);
    assert_int_equal(n, 2);
    assert_string_equal(cmds[0].argv.v[2], "img-cmd");
    assert_string_equal(cmds[1].argv.v[2], "file-cmd");
    dc_commands_free(cmds, (size_t)n);
    dc_config_release(&c);
}

static void test_devcontainer__variables(void **state)
{
    (void)state;
    struct strv env = STRV_INIT;
    strv_setenv(&env, "TOKEN", "s3cret");
    struct dc_vars v = {.local_workspace_folder = "/data/ws/abc/hello",
                        .container_workspace_folder = "/workspaces/hello",
                        .devcontainer_id = "abc",
                        .local_env = &env};
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"${containerWorkspaceFolder}/x", "/workspaces/hello/x"},
        {"${localWorkspaceFolderBasename}", "hello"},
        {"${containerWorkspaceFolderBasename}", "hello"},
        {"${devcontainerId}", "abc"},
        {"${localEnv:TOKEN}", "s3cret"},
        {"${localEnv:MISSING:fallback}", "fallback"},
        {"${localEnv:PATH}", ""}, /* never berthd's own environment */
        {"${unknownVar}", "${unknownVar}"},
        {"no vars", "no vars"},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        char *s = dc_substitute(cases[i].in, &v, NULL);
        assert_string_equal(s, cases[i].out);
        free(s);
    }
    strv_release(&env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_devcontainer__jsonc_comments_and_trailing_commas),
        cmocka_unit_test(test_devcontainer__syntax_error_names_line_and_column),
        cmocka_unit_test(test_devcontainer__three_command_forms),
        cmocka_unit_test(test_devcontainer__bad_command_is_an_error),
        cmocka_unit_test(test_devcontainer__metadata_merges_under_the_file),
        cmocka_unit_test(test_devcontainer__variables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
