/* test-gitpod.c - .gitpod.yml: the YAML reader and its limits, each key's
 * translation into devcontainer.json terms, and the loader's fallback to it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "devcontainer/devcontainer.h"
#include "devcontainer/gitpod.h"
#include "util/buf.h"
#include "util/fs.h"
#include "util/xalloc.h"

/* The devcontainer.json a .gitpod.yml text becomes; fails the test on an error. */
static json_t *load_ok(const char *text, struct strv *warnings)
{
    json_t *j = NULL;
    struct berr *e = NULL;
    int r = gitpod_load(text, strlen(text), ".gitpod.yml", &j, warnings, &e);
    if (r < 0)
        fail_msg("unexpected error: %s", berr_msg(e));
    assert_non_null(j);
    return j;
}

/* The error a text gives; the caller frees it. */
static struct berr *load_error(const char *text, size_t len, int code)
{
    json_t *j = NULL;
    struct berr *e = NULL;
    int r = gitpod_load(text, len, ".gitpod.yml", &j, NULL, &e);
    assert_int_equal(r, -code);
    assert_null(j);
    assert_non_null(e);
    return e;
}

static bool has_warning(const struct strv *w, const char *part)
{
    for (size_t i = 0; i < w->n; i++)
        if (strstr(w->v[i], part))
            return true;
    return false;
}

/* The script of one task's command (the argv's last element). */
/* The tasks' terminals are Berth's: customizations.berth.tasks. */
static json_t *berth_tasks(json_t *dc)
{
    return json_object_get(json_object_get(json_object_get(dc, "customizations"), "berth"),
                           "tasks");
}

static const char *task_script(json_t *dc, const char *hook, const char *label)
{
    json_t *argv = json_object_get(
        strcmp(hook, "tasks") == 0 ? berth_tasks(dc) : json_object_get(dc, hook), label);
    assert_true(json_is_array(argv));
    assert_string_equal(json_string_value(json_array_get(argv, 0)), "/bin/sh");
    return json_string_value(json_array_get(argv, json_array_size(argv) - 1));
}

static void test_gitpod__yaml_scalars_by_the_core_schema(void **state)
{
    (void)state;
    static const struct {
        const char *yaml;
        const char *json;
    } cases[] = {
        {"a: 1", "{\"a\": 1}"},
        {"a: -0x10", "{\"a\": -16}"},
        {"a: 0o17", "{\"a\": 15}"},
        {"a: 1.5", "{\"a\": 1.5}"},
        {"a: true\nb: False\nc: ~\nd: null\ne:", "{\"a\": true, \"b\": false, \"c\": null, "
                                                 "\"d\": null, \"e\": null}"},
        {"a: '1'\nb: \"true\"\nc: !!str 2", "{\"a\": \"1\", \"b\": \"true\", \"c\": \"2\"}"},
        {"a: yes\nb: 1.2.3\nc: 99999999999999999999", "{\"a\": \"yes\", \"b\": \"1.2.3\", "
                                                      "\"c\": \"99999999999999999999\"}"},
        {"a: |\n  one\n  two\nb: >\n  x\n  y\n", "{\"a\": \"one\\ntwo\\n\", \"b\": \"x y\\n\"}"},
        {"a: [1, {b: c}]\nd:\n  - e\n  - f: g", "{\"a\": [1, {\"b\": \"c\"}], "
                                                "\"d\": [\"e\", {\"f\": \"g\"}]}"},
        {"", "{}"},
        {"# only a comment\n", "{}"},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        json_t *j = NULL;
        struct berr *e = NULL;
        int r = gitpod_parse_yaml(cases[i].yaml, strlen(cases[i].yaml), "t.yml", &j, NULL, &e);
        if (r < 0)
            fail_msg("case %zu: %s", i, berr_msg(e));
        json_t *want = json_loads(cases[i].json, 0, NULL);
        assert_non_null(want);
        if (!json_equal(j, want)) {
            char *got = json_dumps(j, JSON_COMPACT);
            fail_msg("case %zu: got %s", i, got);
        }
        json_decref(want);
        json_decref(j);
    }
}

static void test_gitpod__image_name_or_dockerfile(void **state)
{
    (void)state;
    json_t *dc = load_ok("image: gitpod/workspace-full:latest\n", NULL);
    assert_string_equal(json_string_value(json_object_get(dc, "image")),
                        "gitpod/workspace-full:latest");
    json_decref(dc);

    dc = load_ok("image:\n  file: .gitpod.Dockerfile\n  context: docker\n", NULL);
    assert_null(json_object_get(dc, "image"));
    json_t *want = json_pack("{s:s, s:s}", "dockerfile", ".gitpod.Dockerfile", "context", "docker");
    assert_true(json_equal(json_object_get(dc, "build"), want));
    json_decref(want);
    json_decref(dc);

    /* no context: the devcontainer default, the folder of the file (the repository's top) */
    dc = load_ok("image:\n  file: .gitpod.Dockerfile\n", NULL);
    assert_null(json_object_get(json_object_get(dc, "build"), "context"));
    json_decref(dc);

    struct berr *e = load_error("image:\n  context: .\n", 20, EINVAL);
    assert_non_null(strstr(e->msg, "'.gitpod.yml' line 1, column 1: \"image\" as a mapping needs"));
    berr_free(e);
    e = load_error("image: [a]\n", 11, EINVAL);
    assert_non_null(strstr(e->msg, "must be an image name or {file, context}"));
    berr_free(e);
}

static void test_gitpod__tasks_init_then_before_and_command_at_each_start(void **state)
{
    (void)state;
    const char *text = "tasks:\n"
                       "  - name: deps\n"
                       "    before: export PATH=$HOME/bin:$PATH\n"
                       "    init: npm ci\n"
                       "    command: npm run dev\n"
                       "    env:\n"
                       "      GREETING: it's here\n"
                       "      PORT: 3000\n"
                       "  - init: make\n"
                       "  - name: deps\n"
                       "    command: tail -f log\n";
    json_t *dc = load_ok(text, NULL);
    /* init after before, with the task's env exported first (quoted for sh) */
    assert_string_equal(task_script(dc, "updateContentCommand", "deps"),
                        "export GREETING='it'\\''s here'\nexport PORT='3000'\n"
                        "export PATH=$HOME/bin:$PATH\nnpm ci\n");
    assert_string_equal(task_script(dc, "tasks", "deps"),
                        "export GREETING='it'\\''s here'\nexport PORT='3000'\n"
                        "export PATH=$HOME/bin:$PATH\nnpm run dev\n");
    /* an unnamed task is named for its place; a repeated name is made unique */
    assert_string_equal(task_script(dc, "updateContentCommand", "task-2"), "make\n");
    assert_null(json_object_get(berth_tasks(dc), "task-2"));
    assert_string_equal(task_script(dc, "tasks", "deps-2"), "tail -f log\n");
    /* init: the object form, side by side; before + command: a terminal each */
    assert_int_equal(json_object_size(json_object_get(dc, "updateContentCommand")), 2);
    assert_int_equal(json_object_size(berth_tasks(dc)), 2);
    assert_null(json_object_get(dc, "postStartCommand"));
    assert_null(json_object_get(dc, "onCreateCommand"));

    /* through the loader's command forms: one group, labelled by task */
    struct dc_config c;
    dc_config_init(&c);
    c.raw = dc;
    dc_merge_image_metadata(&c, "[]");
    struct dc_command *cmds = NULL;
    int n = dc_hook_commands(&c, DC_UPDATE_CONTENT, &cmds, NULL);
    assert_int_equal(n, 2);
    assert_string_equal(cmds[0].label, "deps");
    assert_string_equal(cmds[1].label, "task-2");
    assert_int_equal(cmds[0].group, cmds[1].group);
    assert_string_equal(cmds[0].argv.v[3], "gitpod-task");
    dc_commands_free(cmds, (size_t)n);
    dc_config_release(&c);

    struct berr *e = load_error("tasks:\n  - init: [a]\n", 21, EINVAL);
    assert_non_null(strstr(e->msg, "line 2, column 5: \"tasks[0].init\" must be a string"));
    berr_free(e);
    e = load_error("tasks:\n  - env:\n      BAD-NAME: x\n", 34, EINVAL);
    assert_non_null(strstr(e->msg, "line 3, column 7: \"BAD-NAME\" is not a variable name"));
    berr_free(e);
}

static void test_gitpod__ports_become_forward_ports_and_attributes(void **state)
{
    (void)state;
    static const struct {
        const char *on_open;
        const char *on_auto_forward;
        bool forwarded;
    } cases[] = {
        {"open-browser", "openBrowser", true},
        {"open-preview", "openPreview", true},
        {"notify", "notify", true},
        {"ignore", "silent", true},
        {"ignore-completely", "ignore", false},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        _cleanup_free_ char *text = xasprintf(
            "ports:\n  - port: 3000\n    onOpen: %s\n    name: web\n    protocol: https\n",
            cases[i].on_open);
        json_t *dc = load_ok(text, NULL);
        json_t *a = json_object_get(json_object_get(dc, "portsAttributes"), "3000");
        assert_string_equal(json_string_value(json_object_get(a, "label")), "web");
        assert_string_equal(json_string_value(json_object_get(a, "onAutoForward")),
                            cases[i].on_auto_forward);
        assert_string_equal(json_string_value(json_object_get(a, "protocol")), "https");
        assert_int_equal(json_array_size(json_object_get(dc, "forwardPorts")),
                         cases[i].forwarded ? 1 : 0);
        json_decref(dc);
    }
    /* a range has attributes only; "public" is not the repository's to give */
    _cleanup_strv_ struct strv w = STRV_INIT;
    json_t *dc = load_ok("ports:\n  - port: 8000-8009\n    description: workers\n"
                         "  - port: 5432\n    visibility: public\n  - port: 5432\n",
                         &w);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(dc, "portsAttributes"), "8000-8009"), "label")),
        "workers");
    json_t *want = json_pack("[i]", 5432);
    assert_true(json_equal(json_object_get(dc, "forwardPorts"), want));
    json_decref(want);
    assert_true(has_warning(&w, "'.gitpod.yml' line 5, column 5: port 5432 stays private"));
    assert_null(json_object_get(json_object_get(json_object_get(dc, "portsAttributes"), "5432"),
                                "visibility"));
    json_decref(dc);

    static const char *const bad[] = {
        "ports:\n  - port: 0\n",
        "ports:\n  - port: 9-3\n",
        "ports:\n  - port: 80\n    onOpen: open-tab\n",
        "ports:\n  - name: x\n",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        berr_free(load_error(bad[i], strlen(bad[i]), EINVAL));
}

static void test_gitpod__vscode_extensions_become_the_ides(void **state)
{
    (void)state;
    json_t *dc = load_ok("vscode:\n  extensions:\n    - ms-python.python\n"
                         "    - golang.go@0.38.0\n",
                         NULL);
    json_t *want =
        json_pack("{s:{s:[s, s]}}", "vscode", "extensions", "ms-python.python", "golang.go@0.38.0");
    assert_true(json_equal(json_object_get(dc, "customizations"), want));
    json_decref(want);
    json_decref(dc);
    struct berr *e = load_error("vscode:\n  extensions:\n    - {a: b}\n", 34, EINVAL);
    assert_non_null(strstr(e->msg, "line 3, column 7: \"vscode.extensions[0]\" must be"));
    berr_free(e);
}

static void test_gitpod__workspace_location_inside_the_checkout(void **state)
{
    (void)state;
    static const struct {
        const char *yaml;
        const char *folder; /* NULL: the checkout itself */
        const char *warning;
    } cases[] = {
        {"workspaceLocation: repo/backend", "${containerWorkspaceFolder}/backend", NULL},
        {"workspaceLocation: /workspace/repo/a/b", "${containerWorkspaceFolder}/a/b", NULL},
        {"workspaceLocation: repo", NULL, NULL},
        {"checkoutLocation: src\nworkspaceLocation: src/web", "${containerWorkspaceFolder}/web",
         "the checkout stays at /workspaces/<repository name>"},
        {"checkoutLocation: src\nworkspaceLocation: other", NULL, "is outside the checkout"},
        {"workspaceLocation: ../etc", NULL, "is outside the checkout"},
        {"workspaceLocation: repo/all.code-workspace", NULL, "is a VS Code workspace file"},
        {"workspaceLocation: repo/x/all.code-workspace", "${containerWorkspaceFolder}/x",
         "is a VS Code workspace file"},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        _cleanup_strv_ struct strv w = STRV_INIT;
        json_t *dc = load_ok(cases[i].yaml, &w);
        const char *folder = json_string_value(json_object_get(dc, "workspaceFolder"));
        if (cases[i].folder)
            assert_string_equal(folder, cases[i].folder);
        else
            assert_null(folder);
        if (cases[i].warning && !has_warning(&w, cases[i].warning))
            fail_msg("case %zu: no warning \"%s\"", i, cases[i].warning);
        if (!cases[i].warning)
            assert_int_equal(w.n, 0);
        json_decref(dc);
    }
}

static void test_gitpod__unknown_keys_are_warnings_with_line_and_column(void **state)
{
    (void)state;
    _cleanup_strv_ struct strv w = STRV_INIT;
    json_t *dc = load_ok("image: x\n"
                         "imgae: y\n"
                         "github:\n  prebuilds:\n    master: true\n"
                         "tasks:\n  - name: a\n    comand: make\n"
                         "    openMode: split-right\n"
                         "vscode:\n  extension: [a.b]\n",
                         &w);
    assert_string_equal(json_string_value(json_object_get(dc, "image")), "x");
    assert_int_equal(w.n, 5);
    assert_string_equal(w.v[0], "'.gitpod.yml' line 2, column 1: unknown key \"imgae\" ignored");
    assert_true(has_warning(&w, "'.gitpod.yml' line 3, column 1: \"github\" is not used"));
    assert_true(has_warning(&w, "line 8, column 5: unknown key \"tasks[0].comand\" ignored"));
    assert_true(has_warning(&w, "line 9, column 5: \"openMode\" is not used"));
    assert_true(has_warning(&w, "line 11, column 3: unknown key \"vscode.extension\" ignored"));
    json_decref(dc);
}

static void test_gitpod__broken_yaml_names_line_and_column(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *where;
    } cases[] = {
        {"image: x\ntasks:\n  - init: a\n   command: b\n",
         "'.gitpod.yml' line 4, column 4: did not find expected '-' indicator"},
        {"a: [1, 2\n", "'.gitpod.yml' line 2, column 1:"},
        {"a: \"unterminated\n", "'.gitpod.yml' line 2, column 1:"},
        {"a: 1\n\tb: 2\n", "'.gitpod.yml' line 2, column 1:"},
        {"a: 1\na: 2\n", "'.gitpod.yml' line 2, column 1: duplicate key \"a\""},
        {"a: *nowhere\n", "'.gitpod.yml' line 1, column 4: alias *nowhere names no anchor"},
        {"? [a]\n: b\n", "'.gitpod.yml' line 1, column 3: a key must be a plain value"},
        {"a: 1\n---\nb: 2\n", "'.gitpod.yml' line 2, column 1: only one YAML document"},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        struct berr *e = load_error(cases[i].text, strlen(cases[i].text), EINVAL);
        if (!strstr(e->msg, cases[i].where))
            fail_msg("case %zu: \"%s\" does not contain \"%s\"", i, e->msg, cases[i].where);
        berr_free(e);
    }
    struct berr *e = load_error("- a\n- b\n", 8, EINVAL);
    assert_string_equal(e->msg, "'.gitpod.yml': the top level must be a mapping (key: value)");
    berr_free(e);
    e = load_error("a: \"\\0\"\n\x01", 9, EINVAL);
    assert_non_null(strstr(e->msg, "'.gitpod.yml' line 2, column 1:"));
    berr_free(e);
}

/* The billion laughs: ten levels of ten aliases would be 10^10 values. */
static void test_gitpod__alias_bomb_is_refused_early(void **state)
{
    (void)state;
    struct buf t = BUF_INIT;
    buf_adds(&t, "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for (int i = 1; i < 10; i++) {
        buf_addf(&t, "a%d: &a%d [", i, i);
        for (int k = 0; k < 10; k++)
            buf_addf(&t, "%s*a%d", k ? ", " : "", i - 1);
        buf_adds(&t, "]\n");
    }
    struct berr *e = load_error(t.buf, t.len, E2BIG);
    assert_non_null(strstr(e->msg, "more than 20000 values (counting what each alias repeats)"));
    /* it stops at the level where the count passes the limit (10^5 > 20000) */
    assert_non_null(strstr(e->msg, "line 5, column"));
    berr_free(e);
    buf_release(&t);

    /* a few aliases, as people use them, are shared and fine */
    json_t *j = NULL;
    const char *ok = "x-env: &env {A: 1}\ntasks:\n  - env: *env\n    command: a\n"
                     "  - env: *env\n    command: b\n";
    assert_int_equal(gitpod_parse_yaml(ok, strlen(ok), "t", &j, NULL, NULL), 0);
    json_t *tasks = json_object_get(j, "tasks");
    assert_ptr_equal(json_object_get(json_array_get(tasks, 0), "env"),
                     json_object_get(json_array_get(tasks, 1), "env"));
    json_decref(j);
}

static void test_gitpod__depth_limit(void **state)
{
    (void)state;
    struct buf t = BUF_INIT;
    buf_adds(&t, "a: ");
    for (int i = 0; i < 100; i++)
        buf_addch(&t, '[');
    for (int i = 0; i < 100; i++)
        buf_addch(&t, ']');
    struct berr *e = load_error(t.buf, t.len, E2BIG);
    assert_non_null(strstr(e->msg, "nested deeper than 32 levels"));
    berr_free(e);
    buf_release(&t);

    /* depth through aliases counts as well: each level nests the one before */
    buf_init(&t);
    buf_adds(&t, "l0: &l0 [x]\n");
    for (int i = 1; i < 40; i++)
        buf_addf(&t, "l%d: &l%d [[[*l%d]]]\n", i, i, i - 1);
    e = load_error(t.buf, t.len, E2BIG);
    assert_non_null(strstr(e->msg, "through alias"));
    berr_free(e);
    buf_release(&t);
}

static void test_gitpod__size_limit(void **state)
{
    (void)state;
    size_t n = GITPOD_MAX_FILE + 1;
    char *text = xmalloc(n);
    memset(text, '#', n);
    struct berr *e = load_error(text, n, EFBIG);
    assert_string_equal(e->msg, "'.gitpod.yml' is larger than 256 KiB");
    berr_free(e);
    free(text);
}

/* A checkout with the given files (path, content; NULL-terminated pairs). */
static char *make_checkout(const char *first, ...)
{
    char tmpl[] = "/tmp/test-gitpod-XXXXXX";
    char *dir = xstrdup(mkdtemp(tmpl));
    va_list ap;
    va_start(ap, first);
    for (const char *path = first; path; path = va_arg(ap, const char *)) {
        const char *content = va_arg(ap, const char *);
        _cleanup_free_ char *full = xasprintf("%s/%s", dir, path);
        char *slash = strrchr(full, '/');
        *slash = 0;
        (void)mkdir(full, 0755);
        *slash = '/';
        assert_int_equal(write_file_atomic(full, content, strlen(content), 0644), 0);
    }
    va_end(ap);
    return dir;
}

static void test_gitpod__loader_falls_back_to_gitpod_yml(void **state)
{
    (void)state;
    const char *yml = "image: localhost/berth/base:bookworm\nports:\n  - port: 8080\n"
                      "tasks:\n  - init: echo hi > x\n    command: sleep 1\nunknown: 1\n"
                      "workspaceLocation: r/sub\n";
    _cleanup_free_ char *dir = make_checkout(".gitpod.yml", yml, NULL);
    _cleanup_free_ char *rel = NULL;
    assert_int_equal(dc_find(dir, NULL, &rel, NULL), 0);
    assert_string_equal(rel, ".gitpod.yml");

    struct dc_vars vars = {.local_workspace_folder = dir,
                           .container_workspace_folder = "/workspaces/r"};
    struct dc_config c;
    dc_config_init(&c);
    assert_int_equal(dc_load(dir, rel, &vars, &c, NULL), 0);
    assert_true(c.gitpod);
    assert_string_equal(c.image, "localhost/berth/base:bookworm");
    assert_string_equal(c.workspace_folder, "/workspaces/r/sub");
    assert_int_equal(json_integer_value(json_array_get(c.forward_ports, 0)), 8080);
    assert_int_equal(c.warnings.n, 1);
    assert_non_null(strstr(c.warnings.v[0], "line 7, column 1: unknown key \"unknown\""));
    /* merging the image's metadata keeps what the file said and its warnings */
    dc_merge_image_metadata(&c, "[{\"remoteUser\": \"dev\", \"postStartCommand\": \"true\"}]");
    assert_true(c.gitpod);
    assert_int_equal(c.warnings.n, 1);
    assert_string_equal(c.remote_user, "dev");
    /* the image's postStartCommand only: the task's command is a terminal of its own */
    assert_int_equal(json_array_size(c.hooks[DC_POST_START]), 1);
    assert_int_equal(json_array_size(c.hooks[DC_UPDATE_CONTENT]), 1);
    json_t *tasks =
        json_object_get(json_array_get(json_object_get(c.customizations, "berth"), 0), "tasks");
    assert_int_equal(json_object_size(tasks), 1);
    dc_config_release(&c);
    (void)rm_rf(dir);

    /* a devcontainer.json wins over .gitpod.yml */
    _cleanup_free_ char *both = make_checkout(".gitpod.yml", yml, ".devcontainer/devcontainer.json",
                                              "{\"image\": \"y\"}", NULL);
    _cleanup_free_ char *rel2 = NULL;
    assert_int_equal(dc_find(both, NULL, &rel2, NULL), 0);
    assert_string_equal(rel2, ".devcontainer/devcontainer.json");
    dc_config_init(&c);
    assert_int_equal(dc_load(both, rel2, NULL, &c, NULL), 0);
    assert_false(c.gitpod);
    dc_config_release(&c);
    (void)rm_rf(both);

    /* broken YAML through the loader: the error names the file */
    _cleanup_free_ char *broken = make_checkout(".gitpod.yml", "tasks:\n  - init: [\n", NULL);
    struct berr *e = NULL;
    dc_config_init(&c);
    assert_true(dc_load(broken, ".gitpod.yml", NULL, &c, &e) < 0);
    assert_non_null(strstr(e->msg, "'.gitpod.yml' line 3, column 1:"));
    berr_free(e);
    dc_config_release(&c);
    (void)rm_rf(broken);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gitpod__yaml_scalars_by_the_core_schema),
        cmocka_unit_test(test_gitpod__image_name_or_dockerfile),
        cmocka_unit_test(test_gitpod__tasks_init_then_before_and_command_at_each_start),
        cmocka_unit_test(test_gitpod__ports_become_forward_ports_and_attributes),
        cmocka_unit_test(test_gitpod__vscode_extensions_become_the_ides),
        cmocka_unit_test(test_gitpod__workspace_location_inside_the_checkout),
        cmocka_unit_test(test_gitpod__unknown_keys_are_warnings_with_line_and_column),
        cmocka_unit_test(test_gitpod__broken_yaml_names_line_and_column),
        cmocka_unit_test(test_gitpod__alias_bomb_is_refused_early),
        cmocka_unit_test(test_gitpod__depth_limit),
        cmocka_unit_test(test_gitpod__size_limit),
        cmocka_unit_test(test_gitpod__loader_falls_back_to_gitpod_yml),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
