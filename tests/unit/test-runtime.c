/* test-runtime.c - the docker runtime's create body: a workspace spec, its
 * mounts by role and the configuration's options, as the Docker API's
 * ContainerConfig berthd has always sent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/runtime.h"

static void assert_json_eq(json_t *got, const char *want_text)
{
    json_error_t err;
    json_t *want = json_loads(want_text, 0, &err);
    if (!want)
        fail_msg("bad expected JSON at %d: %s", err.line, err.text);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_SORT_KEYS | JSON_INDENT(1));
        char *w = json_dumps(want, JSON_SORT_KEYS | JSON_INDENT(1));
        print_error("got:\n%s\nwant:\n%s\n", g, w);
        free(g);
        free(w);
        fail();
    }
    json_decref(want);
}

static const struct rt_role_mount roles[] = {
    {RT_ROLE_FILES, "/d/workspaces/abc/files/repo", "/workspaces/repo"},
    {RT_ROLE_RUN, "/d/run/abc", "/.berth"},
    {RT_ROLE_AGENT, "/d/agent", "/.berth-agent"},
    {RT_ROLE_IDE, "/d/ide", "/.berth-ide"},
    {RT_ROLE_VSIX, "/d/vsix", "/.berth-vsix"},
};

static void test_runtime__body_with_every_option(void **state)
{
    (void)state;
    struct strv cmd = STRV_INIT, env = STRV_INIT, cap_add = STRV_INIT, cap_drop = STRV_INIT,
                secopt = STRV_INIT, devices = STRV_INIT;
    strv_pushl(&cmd, "--", "/bin/sh", "-c", "sleep infinity", NULL);
    strv_pushl(&env, "A=1", "GIT_CONFIG_COUNT=1", NULL);
    strv_push(&cap_add, "SYS_PTRACE");
    strv_push(&secopt, "seccomp=unconfined");
    strv_push(&devices, "/dev/fuse");
    const struct rt_mount mounts[] = {
        {RT_MOUNT_VOLUME, "berth-abc-cache", "/cache", false},
        {RT_MOUNT_BIND, "/srv/data", "/data", true},
        {RT_MOUNT_TMPFS, NULL, "/scratch", false},
    };
    json_t *labels = json_pack("{s:s, s:s}", "berth.managed", "1", "berth.workspace", "abc");
    struct rt_ws_spec spec = {
        .name = "berth-abc",
        .image = "localhost/berth/base:bookworm",
        .entrypoint = "/.berth-agent/berth-agent",
        .cmd = &cmd,
        .env = &env,
        .user = "root",
        .working_dir = "/workspaces/repo",
        .hostname = "api",
        .stop_timeout_s = 10,
        .labels = labels,
        .roles = roles,
        .n_roles = 5,
        .mounts = mounts,
        .n_mounts = 3,
        .privileged = true,
        .cap_add = &cap_add,
        .cap_drop = &cap_drop,
        .security_opt = &secopt,
        .devices = &devices,
        .network = "host",
        .shm_size = 1 << 30,
        .nano_cpus = 2000000000,
        .memory = 1 << 30,
    };
    json_t *body = runtime_docker_body(&spec);
    assert_json_eq(
        body,
        "{\"Image\": \"localhost/berth/base:bookworm\","
        " \"Entrypoint\": [\"/.berth-agent/berth-agent\"],"
        " \"Cmd\": [\"--\", \"/bin/sh\", \"-c\", \"sleep infinity\"],"
        " \"Env\": [\"A=1\", \"GIT_CONFIG_COUNT=1\"], \"User\": \"root\","
        " \"WorkingDir\": \"/workspaces/repo\", \"Hostname\": \"api\", \"StopTimeout\": 10,"
        " \"Labels\": {\"berth.managed\": \"1\", \"berth.workspace\": \"abc\"},"
        " \"HostConfig\": {"
        "  \"Binds\": [\"/d/workspaces/abc/files/repo:/workspaces/repo\", "
        "\"/d/run/abc:/.berth:rw\","
        "   \"/d/agent:/.berth-agent:ro\", \"/d/ide:/.berth-ide:ro\", \"/d/vsix:/.berth-vsix:ro\"],"
        "  \"Init\": false,"
        "  \"Ulimits\": [{\"Name\": \"nofile\", \"Soft\": 20000, \"Hard\": 20000},"
        "   {\"Name\": \"nproc\", \"Soft\": 32768, \"Hard\": 32768}],"
        "  \"Privileged\": true, \"CapAdd\": [\"SYS_PTRACE\"],"
        "  \"SecurityOpt\": [\"seccomp=unconfined\"], \"NetworkMode\": \"host\","
        "  \"ShmSize\": 1073741824, \"NanoCpus\": 2000000000, \"Memory\": 1073741824,"
        "  \"Devices\": [{\"PathOnHost\": \"/dev/fuse\", \"PathInContainer\": \"/dev/fuse\","
        "   \"CgroupPermissions\": \"rwm\"}],"
        "  \"Mounts\": [{\"Type\": \"volume\", \"Source\": \"berth-abc-cache\", \"Target\": "
        "\"/cache\","
        "    \"ReadOnly\": false},"
        "   {\"Type\": \"bind\", \"Source\": \"/srv/data\", \"Target\": \"/data\", \"ReadOnly\": "
        "true}],"
        "  \"Tmpfs\": {\"/scratch\": \"rw,nosuid,nodev\"}}}");
    json_decref(body);
    json_decref(labels);
    strv_release(&cmd);
    strv_release(&env);
    strv_release(&cap_add);
    strv_release(&cap_drop);
    strv_release(&secopt);
    strv_release(&devices);
}

static void test_runtime__body_without_options(void **state)
{
    (void)state;
    struct strv none = STRV_INIT;
    json_t *labels = json_object();
    struct rt_ws_spec spec = {
        .name = "berth-abc",
        .image = "img",
        .entrypoint = "/.berth-agent/berth-agent",
        .cmd = &none,
        .env = &none,
        .user = "root",
        .working_dir = "/w",
        .hostname = "h",
        .stop_timeout_s = 10,
        .labels = labels,
        .roles = roles,
        .n_roles = 3,
    };
    json_t *body = runtime_docker_body(&spec);
    assert_json_eq(
        body, "{\"Image\": \"img\", \"Entrypoint\": [\"/.berth-agent/berth-agent\"], \"Cmd\": [],"
              " \"Env\": [], \"User\": \"root\", \"WorkingDir\": \"/w\", \"Hostname\": \"h\","
              " \"StopTimeout\": 10, \"Labels\": {},"
              " \"HostConfig\": {"
              "  \"Binds\": [\"/d/workspaces/abc/files/repo:/workspaces/repo\", "
              "\"/d/run/abc:/.berth:rw\","
              "   \"/d/agent:/.berth-agent:ro\"],"
              "  \"Init\": false,"
              "  \"Ulimits\": [{\"Name\": \"nofile\", \"Soft\": 20000, \"Hard\": 20000},"
              "   {\"Name\": \"nproc\", \"Soft\": 32768, \"Hard\": 32768}],"
              "  \"Devices\": [], \"Mounts\": [], \"Tmpfs\": {}}}");
    json_decref(body);
    json_decref(labels);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runtime__body_with_every_option),
        cmocka_unit_test(test_runtime__body_without_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
