/* test-devcontainer.c - JSONC, the command forms, merging and variables,
 * written from the devcontainer spec's text. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "devcontainer/devcontainer.h"
#include "devcontainer/options.h"
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

/* A config from text, merged under an image's devcontainer.metadata label. */
static struct dc_config load_with_metadata(const char *text, const char *label)
{
    struct dc_config c;
    dc_config_init(&c);
    json_t *j = NULL;
    assert_int_equal(dc_parse_jsonc(text, strlen(text), "t", &j, NULL), 0);
    c.raw = j;
    dc_merge_image_metadata(&c, label);
    return c;
}

static struct dc_config load_text(const char *text)
{
    return load_with_metadata(text, "[]");
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

/* The spec's merge rules, one property per row: the image metadata (two
 * entries) and then the file, and what the merged configuration holds. */
static void test_devcontainer__merge_rules_per_property(void **state)
{
    (void)state;
    static const struct {
        const char *rule;
        const char *meta;
        const char *file;
        const char *key;      /* in dc_config_merged_json's output */
        const char *expected; /* compact JSON, keys sorted */
    } cases[] = {
        {"init: true if any", "[{\"init\": true}, {}]", "{\"init\": false}", "init", "true"},
        {"privileged: true if any", "[{}, {\"privileged\": true}]", "{}", "privileged", "true"},
        {"capAdd: union", "[{\"capAdd\": [\"A\", \"B\"]}]", "{\"capAdd\": [\"B\", \"C\"]}",
         "capAdd", "[\"A\",\"B\",\"C\"]"},
        {"securityOpt: union", "[{\"securityOpt\": [\"x\"]}]", "{\"securityOpt\": [\"x\"]}",
         "securityOpt", "[\"x\"]"},
        {"forwardPorts: union", "[{\"forwardPorts\": [3000]}]",
         "{\"forwardPorts\": [3000, \"db:5432\"]}", "forwardPorts", "[3000,\"db:5432\"]"},
        {"mounts: collected, last source wins for a target",
         "[{\"mounts\": [\"type=volume,source=a,target=/x\", \"type=volume,source=b,target=/y\"]}]",
         "{\"mounts\": [{\"type\": \"volume\", \"source\": \"c\", \"target\": \"/x\"}]}", "mounts",
         "[\"type=volume,source=b,target=/y\",{\"source\":\"c\",\"target\":\"/"
         "x\",\"type\":\"volume\"}]"},
        {"containerEnv: last wins per name", "[{\"containerEnv\": {\"A\": \"1\", \"B\": \"1\"}}]",
         "{\"containerEnv\": {\"B\": \"2\"}}", "containerEnv", "{\"A\":\"1\",\"B\":\"2\"}"},
        {"remoteEnv: last wins per name",
         "[{\"remoteEnv\": {\"A\": \"1\"}}, {\"remoteEnv\": {\"A\": \"2\"}}]", "{}", "remoteEnv",
         "{\"A\":\"2\"}"},
        {"portsAttributes: last wins per port",
         "[{\"portsAttributes\": {\"3000\": {\"label\": \"a\"}, \"4000\": {\"label\": \"b\"}}}]",
         "{\"portsAttributes\": {\"3000\": {\"label\": \"c\"}}}", "portsAttributes",
         "{\"3000\":{\"label\":\"c\"},\"4000\":{\"label\":\"b\"}}"},
        {"hostRequirements: the maximum",
         "[{\"hostRequirements\": {\"cpus\": 4, \"memory\": \"1gb\"}}]",
         "{\"hostRequirements\": {\"cpus\": 2, \"memory\": \"2gb\"}}", "hostRequirements",
         "{\"cpus\":4,\"memory\":\"2147483648\"}"},
        {"remoteUser: last wins", "[{\"remoteUser\": \"a\"}, {\"remoteUser\": \"b\"}]", "{}",
         "remoteUser", "\"b\""},
        {"waitFor: last wins", "[{\"waitFor\": \"onCreateCommand\"}]",
         "{\"waitFor\": \"postCreateCommand\"}", "waitFor", "\"postCreateCommand\""},
        {"lifecycle commands: collected in order, metadata first",
         "[{\"postCreateCommand\": \"one\"}, {\"postCreateCommand\": [\"two\"]}]",
         "{\"postCreateCommand\": {\"x\": \"three\"}}", "postCreateCommands",
         "[\"one\",[\"two\"],{\"x\":\"three\"}]"},
        {"customizations: every entry's, per tool",
         "[{\"customizations\": {\"vscode\": {\"extensions\": [\"a\"]}}}]",
         "{\"customizations\": {\"vscode\": {\"extensions\": [\"b\"]}}}", "customizations",
         "{\"vscode\":[{\"extensions\":[\"a\"]},{\"extensions\":[\"b\"]}]}"},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        struct dc_config c;
        dc_config_init(&c);
        json_t *j = NULL;
        assert_int_equal(dc_parse_jsonc(cases[i].file, strlen(cases[i].file), "t", &j, NULL), 0);
        c.raw = j;
        dc_merge_image_metadata(&c, cases[i].meta);
        json_t *merged = dc_config_merged_json(&c);
        char *got = json_dumps(json_object_get(merged, cases[i].key),
                               JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        if (!got || strcmp(got, cases[i].expected) != 0)
            fail_msg("%s: got %s, expected %s", cases[i].rule, got ? got : "nothing",
                     cases[i].expected);
        free(got);
        json_decref(merged);
        dc_config_release(&c);
    }
}

/* What a config may ask for against a policy: allowed or the refusal's text. */
static void test_devcontainer__options_and_policy(void **state)
{
    (void)state;
    static const struct {
        const char *config;
        const char *allow;   /* comma-separated entries */
        const char *error;   /* substring, NULL: accepted */
        const char *granted; /* accepted: the entries it needed, comma-separated */
    } cases[] = {
        {"{}", "", NULL, NULL},
        {"{\"privileged\": true}", "", "\"privileged\": true: gives the container every", NULL},
        {"{\"privileged\": true}", "privileged", NULL, "privileged"},
        {"{\"capAdd\": [\"SYS_PTRACE\"]}", "", "allow-list entry \"capAdd:SYS_PTRACE\"", NULL},
        {"{\"capAdd\": [\"SYS_PTRACE\"]}", "capAdd:*", NULL, "capAdd:SYS_PTRACE"},
        /* one spelling: podman's "cap_sys_ptrace" is the allow-list's SYS_PTRACE */
        {"{\"capAdd\": [\"cap_sys_ptrace\"]}", "capAdd:SYS_PTRACE", NULL, "capAdd:SYS_PTRACE"},
        {"{\"runArgs\": [\"--cap-add=net_admin\"]}", "capAdd:NET_ADMIN", NULL, "capAdd:NET_ADMIN"},
        {"{\"capAdd\": [\"NOT_A_CAP\"]}", "capAdd:*", "'NOT_A_CAP' is not a Linux capability",
         NULL},
        {"{\"securityOpt\": [\"seccomp=unconfined\"]}", "capAdd:*", "securityOpt", NULL},
        {"{\"runArgs\": [\"--cap-add\", \"NET_ADMIN\"]}", "", "runArgs \"--cap-add NET_ADMIN\"",
         NULL},
        {"{\"runArgs\": [\"--network=host\"]}", "", "allow-list entry \"network:host\"", NULL},
        {"{\"runArgs\": [\"--network\", \"bridge\", \"--init\", \"-e\", \"A=b\"]}", "", NULL, NULL},
        {"{\"runArgs\": [\"--pid=host\"]}", "privileged", "is not supported by Berth", NULL},
        {"{\"runArgs\": [\"--shm-size\"]}", "", "needs a value", NULL},
        {"{\"runArgs\": [\"--label\", \"berth.workspace=x\"]}", "", "are Berth's", NULL},
        /* no entry could let "/" in: it holds what no workspace may mount */
        {"{\"mounts\": [\"type=bind,source=/,target=/host\"]}", "bind:/",
         "would expose '/var/lib/berth'", NULL},
        {"{\"mounts\": [\"type=bind,source=/srv/a,target=/a\"]}", "",
         "allow-list entry \"bind:/srv/a\" (berth admin settings --allow bind:/srv/a)", NULL},
        {"{\"mounts\": [\"type=bind,source=/srv/a,target=/a\"]}", "bind:/srv", NULL, "bind:/srv/a"},
        {"{\"mounts\": [\"type=bind,source=/srv/../var/lib/berth,target=/a\"]}", "bind:/srv",
         "refused", NULL},
        {"{\"mounts\": [\"type=bind,source=/var/lib/berth/x,target=/a\"]}", "bind:/var",
         "which no workspace may mount", NULL},
        {"{\"mounts\": [\"type=bind,source=/var,target=/a\"]}", "bind:/var",
         "which no workspace may mount", NULL},
        {"{\"mounts\": [\"type=volume,source=../x,target=/a\"]}", "", "volume name", NULL},
        {"{\"mounts\": [\"type=volume,source=cache,target=/.berth-agent\"]}", "", "reserved", NULL},
        {"{\"mounts\": [\"type=volume,source=c,target=/x/../.berth/y\"]}", "", "reserved", NULL},
        {"{\"mounts\": [\"type=tmpfs,target=//.berth-agent\"]}", "", "reserved", NULL},
        {"{\"runArgs\": [\"--cpus=nan\"]}", "", "must be positive", NULL},
        {"{\"mounts\": [{\"type\": \"tmpfs\", \"target\": \"/tmp/x\"}]}", "", NULL, NULL},
        {"{\"mounts\": [\"type=nfs,target=/x\"]}", "", "mount type 'nfs' is not supported", NULL},
        {"{\"runArgs\": [\"-v\", \"/etc:/host-etc\"]}", "", "bind:/etc", NULL},
        {"{\"hostRequirements\": {\"cpus\": 64}}", "", "allows at most 8", NULL},
        {"{\"hostRequirements\": {\"memory\": \"32gb\"}}", "", "at most 16384 MiB", NULL},
        {"{\"runArgs\": [\"--memory=1g\", \"--cpus=2\"]}", "", NULL, NULL},
    };
    struct strv forbidden = STRV_INIT;
    strv_pushl(&forbidden, "/var/lib/berth", "/run/podman", NULL);
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        struct strv allow = STRV_INIT;
        char *copy = xstrdup(cases[i].allow);
        char *save = NULL;
        for (char *e = strtok_r(copy, ",", &save); e; e = strtok_r(NULL, ",", &save))
            strv_push(&allow, e);
        free(copy);
        struct dc_policy p = {
            .allow = &allow, .forbidden = &forbidden, .max_cpus = 8, .max_memory = 16LL << 30};
        struct dc_config c = load_text(cases[i].config);
        struct dc_run_options o;
        struct berr *e = NULL;
        int r = dc_run_options_build(&c, "t.json", &p, &o, &e);
        if (cases[i].error && (r >= 0 || !strstr(berr_msg(e), cases[i].error)))
            fail_msg("%s: wanted an error with '%s', got %s", cases[i].config, cases[i].error,
                     r < 0 ? berr_msg(e) : "success");
        if (!cases[i].error && r < 0)
            fail_msg("%s: refused: %s", cases[i].config, berr_msg(e));
        if (r == 0) {
            _cleanup_free_ char *got = strv_join(&o.granted, ",");
            if (strcmp(got, cases[i].granted ? cases[i].granted : "") != 0)
                fail_msg("%s: granted '%s', wanted '%s'", cases[i].config, got,
                         cases[i].granted ? cases[i].granted : "");
            dc_run_options_release(&o);
        }
        berr_free(e);
        dc_config_release(&c);
        strv_release(&allow);
    }
    strv_release(&forbidden);
}

/* A config that asks for several refused settings is told of all of them at
 * once, each with the entry (or the maximum) that would let it in, in the
 * file's order; what the policy allows is not listed; a malformed value still
 * stops the check. */
static void test_devcontainer__policy_refuses_every_setting_at_once(void **state)
{
    (void)state;
    static const struct {
        const char *config;
        const char *metadata; /* the image's devcontainer.metadata label */
        const char *allow;    /* comma-separated entries */
        const char *error;    /* a malformed value: the check's own error; else NULL */
        /* each refusal as "WHAT|ENTRIES|FIX", entries comma-separated */
        const char *refused[6];
    } cases[] = {
        {"{\"privileged\": true, \"capAdd\": [\"SYS_ADMIN\", \"SYS_PTRACE\"],"
         " \"mounts\": [\"type=bind,source=/srv/data,target=/data\","
         " \"type=volume,source=cache,target=/cache\"],"
         " \"runArgs\": [\"--init\", \"--network=host\"]}",
         "[]",
         "capAdd:SYS_PTRACE",
         NULL,
         {"\"privileged\": true|privileged|berth admin settings --allow privileged",
          "capAdd \"SYS_ADMIN\"|capAdd:SYS_ADMIN|berth admin settings --allow capAdd:SYS_ADMIN",
          "\"mounts\"[0] \"type=bind,source=/srv/data,target=/data\"|bind:/srv/data|"
          "berth admin settings --allow bind:/srv/data",
          "runArgs \"--network host\"|network:host|berth admin settings --allow network:host"}},
        /* a maximum is raised, not allowed; a forbidden path has no remedy */
        {"{\"hostRequirements\": {\"memory\": \"20gb\"},"
         " \"runArgs\": [\"--cpus=12.5\", \"--device=/dev/fuse\","
         " \"--security-opt\", \"seccomp=unconfined\","
         " \"-v\", \"/run/podman/podman.sock:/var/run/docker.sock\"]}",
         "[]",
         "device:/dev/fuse,bind:/run",
         NULL,
         {"hostRequirements.memory||berth admin settings --max-memory 20480mb",
          "runArgs \"--cpus 12.5\"||berth admin settings --max-cpus 13",
          "runArgs \"--security-opt seccomp=unconfined\"|securityOpt:seccomp=unconfined|"
          "berth admin settings --allow securityOpt:seccomp=unconfined",
          "runArgs \"--volume /run/podman/podman.sock:/var/run/docker.sock\"||"}},
        /* what came from the image says so, and the file's mounts keep their place */
        {"{\"mounts\": [\"type=bind,source=/srv/b,target=/b\"]}",
         "[{\"privileged\": true, \"capAdd\": [\"NET_ADMIN\"],"
         " \"mounts\": [\"type=bind,source=/srv/a,target=/a\"]}]",
         "",
         NULL,
         {"\"privileged\": true (from the image's metadata)|privileged|"
          "berth admin settings --allow privileged",
          "capAdd \"NET_ADMIN\" (from the image's metadata)|capAdd:NET_ADMIN|"
          "berth admin settings --allow capAdd:NET_ADMIN",
          "a mount of the image's metadata \"type=bind,source=/srv/a,target=/a\"|bind:/srv/a|"
          "berth admin settings --allow bind:/srv/a",
          "\"mounts\"[0] \"type=bind,source=/srv/b,target=/b\"|bind:/srv/b|"
          "berth admin settings --allow bind:/srv/b"}},
        /* everything allowed: nothing listed */
        {"{\"privileged\": true, \"capAdd\": [\"SYS_PTRACE\"], \"runArgs\": [\"--network=host\"]}",
         "[]",
         "privileged,capAdd:*,network:host",
         NULL,
         {NULL}},
        /* a malformed value is its own error, whatever was refused before it */
        {"{\"privileged\": true, \"runArgs\": [\"--pid=host\"]}",
         "[]",
         "",
         "runArgs \"--pid=host\" is not supported by Berth",
         {NULL}},
    };
    struct strv forbidden = STRV_INIT;
    strv_pushl(&forbidden, "/var/lib/berth", "/run/podman", NULL);
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        _cleanup_strv_ struct strv allow = STRV_INIT;
        _cleanup_free_ char *copy = xstrdup(cases[i].allow);
        char *save = NULL;
        for (char *e = strtok_r(copy, ",", &save); e; e = strtok_r(NULL, ",", &save))
            strv_push(&allow, e);
        struct dc_policy p = {
            .allow = &allow, .forbidden = &forbidden, .max_cpus = 8, .max_memory = 16LL << 30};
        struct dc_config c = load_with_metadata(cases[i].config, cases[i].metadata);

        struct dc_refusals got = {0};
        struct berr *e = NULL;
        int r = dc_policy_check(&c, "t.json", &p, &got, &e);
        if (cases[i].error) {
            if (r >= 0 || !strstr(berr_msg(e), cases[i].error))
                fail_msg("%s: wanted '%s', got %s", cases[i].config, cases[i].error,
                         r < 0 ? berr_msg(e) : "no error");
            e = berr_free(e);
        } else if (r < 0) {
            fail_msg("%s: %s", cases[i].config, berr_msg(e));
        }
        size_t want = 0;
        while (want < ELEMENTSOF(cases[i].refused) && cases[i].refused[want])
            want++;
        if (got.n != want)
            fail_msg("%s: %zu refusals, wanted %zu", cases[i].config, got.n, want);
        for (size_t k = 0; k < got.n; k++) {
            _cleanup_free_ char *entries = strv_join(&got.v[k].allow, ",");
            _cleanup_free_ char *line =
                xasprintf("%s|%s|%s", got.v[k].what, entries, got.v[k].fix ? got.v[k].fix : "");
            if (strcmp(line, cases[i].refused[k]) != 0)
                fail_msg("%s: refusal %zu is '%s', wanted '%s'", cases[i].config, k, line,
                         cases[i].refused[k]);
        }

        /* the workspace's error is the same list, one line each, with the remedy */
        struct dc_run_options o;
        r = dc_run_options_build(&c, "t.json", &p, &o, &e);
        if (!cases[i].error && want == 0 && r < 0)
            fail_msg("%s: refused: %s", cases[i].config, berr_msg(e));
        if (r == 0)
            dc_run_options_release(&o);
        if (want) {
            _cleanup_free_ char *header =
                xasprintf("'t.json': %zu settings are refused by this server's policy:\n", want);
            if (r != -EPERM || strncmp(berr_msg(e), header, strlen(header)) != 0)
                fail_msg("%s: the error is '%s'", cases[i].config, berr_msg(e));
            for (size_t k = 0; k < got.n; k++) {
                _cleanup_free_ char *text = dc_refusal_text(&got.v[k]);
                _cleanup_free_ char *line = xasprintf("\n  %s", text);
                if (!strstr(berr_msg(e), line))
                    fail_msg("%s: '%s' is not a line of '%s'", cases[i].config, text, berr_msg(e));
            }
        }
        berr_free(e);
        dc_refusals_release(&got);
        dc_config_release(&c);
    }
    strv_release(&forbidden);
}

/* Maxima alone are a quota (EDQUOT), and one refusal reads in the singular. */
static void test_devcontainer__policy_maximum_alone(void **state)
{
    (void)state;
    struct dc_policy p = {.max_cpus = 2};
    struct dc_config c = load_text("{\"hostRequirements\": {\"cpus\": 4}}");
    struct dc_run_options o;
    struct berr *e = NULL;
    assert_int_equal(dc_run_options_build(&c, "t.json", &p, &o, &e), -EDQUOT);
    assert_string_equal(berr_msg(e),
                        "'t.json': 1 setting is refused by this server's policy:\n"
                        "  hostRequirements.cpus: asks for 4 CPUs, but this server allows at most "
                        "2 per workspace (berth admin settings --max-cpus 4)");
    berr_free(e);
    dc_config_release(&c);
}

/* What a container was granted, judged again by a later policy (at start). */
static void test_devcontainer__granted_against_a_later_policy(void **state)
{
    (void)state;
    static const struct {
        const char *granted;
        bool allowed;
    } cases[] = {
        {"capAdd:NET_ADMIN", true}, /* by capAdd:* */
        {"privileged", false},      {"bind:/srv/a/b", true}, {"bind:/srv", true},
        {"bind:/srvx", false},      {"network:host", false}, {"securityOpt:label=disable", true},
    };
    struct strv allow = STRV_INIT;
    strv_pushl(&allow, "capAdd:*", "bind:/srv/", "securityOpt:label=disable", NULL);
    struct dc_policy p = {.allow = &allow};
    for (size_t i = 0; i < ELEMENTSOF(cases); i++)
        if (dc_policy_allows(&p, cases[i].granted) != cases[i].allowed)
            fail_msg("%s: wanted %s", cases[i].granted, cases[i].allowed ? "allowed" : "refused");
    strv_release(&allow);
}

static void test_devcontainer__feature_order(void **state)
{
    (void)state;
    static const struct {
        const char *ids;
        const char *after;
        const char *override;
        const char *expected; /* NULL: a cycle */
    } cases[] = {
        {"[\"a\", \"b\", \"c\"]", "{}", "[]", "[\"a\",\"b\",\"c\"]"},
        {"[\"a\", \"b\", \"c\"]", "{\"a\": [\"c\"]}", "[]", "[\"b\",\"c\",\"a\"]"},
        {"[\"a\", \"b\", \"c\"]", "{\"a\": [\"b\"], \"b\": [\"c\"]}", "[]", "[\"c\",\"b\",\"a\"]"},
        {"[\"a\", \"b\", \"c\"]", "{}", "[\"c\", \"b\"]", "[\"c\",\"b\",\"a\"]"},
        /* the override cannot put a feature before what it must follow */
        {"[\"a\", \"b\"]", "{\"a\": [\"b\"]}", "[\"a\"]", "[\"b\",\"a\"]"},
        {"[\"a\", \"b\"]", "{\"a\": [\"b\"], \"b\": [\"a\"]}", "[]", NULL},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        json_t *ids = json_loads(cases[i].ids, 0, NULL);
        json_t *after = json_loads(cases[i].after, 0, NULL);
        json_t *over = json_loads(cases[i].override, 0, NULL);
        json_t *order = NULL;
        struct berr *e = NULL;
        int r = dc_feature_order(ids, after, over, &order, &e);
        if (!cases[i].expected) {
            assert_true(r < 0);
            assert_non_null(strstr(berr_msg(e), "cycle"));
        } else {
            assert_int_equal(r, 0);
            char *got = json_dumps(order, JSON_COMPACT);
            if (strcmp(got, cases[i].expected) != 0)
                fail_msg("case %zu: got %s, expected %s", i, got, cases[i].expected);
            free(got);
        }
        berr_free(e);
        json_decref(order);
        json_decref(ids);
        json_decref(after);
        json_decref(over);
    }
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
        cmocka_unit_test(test_devcontainer__merge_rules_per_property),
        cmocka_unit_test(test_devcontainer__feature_order),
        cmocka_unit_test(test_devcontainer__options_and_policy),
        cmocka_unit_test(test_devcontainer__policy_refuses_every_setting_at_once),
        cmocka_unit_test(test_devcontainer__policy_maximum_alone),
        cmocka_unit_test(test_devcontainer__granted_against_a_later_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
