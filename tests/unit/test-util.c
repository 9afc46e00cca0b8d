/* test-util.c - buf, strv, err and run: the invariants their headers promise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "util/buf.h"
#include "util/size.h"
#include "util/urlscan.h"
#include "util/path.h"
#include "util/err.h"
#include "util/run.h"
#include "util/strv.h"
#include "util/xalloc.h"

static void assert_sane(const struct buf *b)
{
    assert_non_null(b->buf);
    assert_int_equal(b->buf[b->len], 0);
}

static void test_util__buf_static_init_is_empty_string(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    assert_sane(&b);
    assert_string_equal(b.buf, "");
    buf_release(&b);
    assert_sane(&b);
}

static void test_util__buf_grows_and_detaches(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    for (int i = 0; i < 1000; i++)
        buf_addf(&b, "%d,", i);
    assert_sane(&b);
    assert_true(strncmp(b.buf, "0,1,2,", 6) == 0);
    buf_remove_front(&b, 2);
    assert_true(strncmp(b.buf, "1,2,", 4) == 0);
    size_t len;
    char *s = buf_detach(&b, &len);
    assert_int_equal(strlen(s), len);
    assert_sane(&b);
    assert_int_equal(b.len, 0);
    free(s);
}

static void test_util__strv_env_set_replaces(void **state)
{
    (void)state;
    struct strv s = STRV_INIT;
    assert_null(s.v[0]);
    strv_setenv(&s, "A", "1");
    strv_setenv(&s, "AB", "2");
    strv_setenv(&s, "A", "3");
    assert_int_equal(s.n, 2);
    assert_string_equal(strv_getenv(&s, "A"), "3");
    assert_string_equal(strv_getenv(&s, "AB"), "2");
    assert_null(strv_getenv(&s, "B"));
    assert_null(s.v[s.n]);
    strv_release(&s);
}

static void test_util__err_wrap_adds_context(void **state)
{
    (void)state;
    struct berr *e = NULL;
    assert_int_equal(berr_make(&e, ENOENT, "manifest unknown"), -ENOENT);
    assert_int_equal(berr_wrap(&e, "pull image '%s'", "x"), -ENOENT);
    assert_string_equal(e->msg, "pull image 'x': manifest unknown");
    /* a second make keeps the first cause */
    assert_int_equal(berr_make(&e, EIO, "later"), -EIO);
    assert_string_equal(e->msg, "pull image 'x': manifest unknown");
    berr_free(e);
}

static void test_util__run_reports_exit_code_and_output(void **state)
{
    (void)state;
    struct run_cmd c = RUN_CMD_INIT;
    strv_pushl(&c.args, "sh", "-c", "echo one; echo two >&2; exit 7", NULL);
    c.capture = true;
    assert_int_equal(run_cmd(&c, NULL), 7);
    assert_non_null(strstr(c.output.buf, "one"));
    assert_non_null(strstr(c.output.buf, "two"));
    run_cmd_release(&c);
}

static void test_util__run_args_are_not_a_shell_string(void **state)
{
    (void)state;
    struct run_cmd c = RUN_CMD_INIT;
    strv_pushl(&c.args, "echo", "$(id); rm -rf /nonexistent", NULL);
    c.capture = true;
    assert_int_equal(run_cmd(&c, NULL), 0);
    assert_string_equal(c.output.buf, "$(id); rm -rf /nonexistent\n");
    run_cmd_release(&c);
}

static void test_util__run_times_out(void **state)
{
    (void)state;
    struct run_cmd c = RUN_CMD_INIT;
    strv_pushl(&c.args, "sleep", "30", NULL);
    c.timeout_ms = 200;
    struct berr *e = NULL;
    assert_int_equal(run_cmd(&c, &e), -ETIMEDOUT);
    berr_free(e);
    run_cmd_release(&c);
}

static void collect_url(int port, const char *path, void *data)
{
    buf_addf(data, "%d%s ", port, path);
}

/* Local URLs in program output, as dev servers print them. */
static void test_util__urlscan_finds_local_urls(void **state)
{
    (void)state;
    static const struct {
        const char *chunks[3]; /* fed one after the other */
        const char *found;
    } cases[] = {
        {{"Listening on http://localhost:3000\n"}, "3000/ "},
        {{"  \x1b[32m➜\x1b[39m  Local:   \x1b[36mhttp://localhost:\x1b[1m5173\x1b[22m/\x1b[39m\n"},
         "5173/ "},
        {{"Serving HTTP on 0.0.0.0 port 8000 (http://0.0.0.0:8000/) ...\n"}, "8000/ "},
        {{"open http://127.0.", "0.1:8080/app/index.html, or ", "https://[::]:8443/x.\n"},
         "8080/app/index.html 8443/x "},
        {{"http://example.com:80/ is not local\n"}, ""},
        {{"http://localhost:99999/ is no port\nhttp://localhost/ has none\n"}, ""},
        {{"no newline at the end: http://localhost:4000/done"}, "4000/done "},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        struct urlscan s = URLSCAN_INIT;
        struct buf got = BUF_INIT;
        for (size_t k = 0; k < 3 && cases[i].chunks[k]; k++)
            urlscan_feed(&s, cases[i].chunks[k], strlen(cases[i].chunks[k]), collect_url, &got);
        urlscan_flush(&s, collect_url, &got);
        if (strcmp(got.buf, cases[i].found) != 0)
            fail_msg("case %zu: found '%s', expected '%s'", i, got.buf, cases[i].found);
        buf_release(&got);
        urlscan_release(&s);
    }
}

static void test_util__path_normalize(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *out; /* NULL: climbs out */
    } cases[] = {
        {"/a/./b//c/", "/a/b/c"},
        {"/a/../../etc", "/etc"},
        {"/", "/"},
        {"/srv/../var/lib", "/var/lib"},
        {"a/b/../c", "a/c"},
        {".", ""},
        {"a/..", ""},
        {"../x", NULL},
        {"a/../../x", NULL},
        {".devcontainer/../Dockerfile", "Dockerfile"},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        char *got = path_normalize(cases[i].in);
        if (cases[i].out ? !got || strcmp(got, cases[i].out) != 0 : got != NULL)
            fail_msg("'%s': got %s, expected %s", cases[i].in, got ? got : "NULL",
                     cases[i].out ? cases[i].out : "NULL");
        free(got);
    }
}

static void test_util__size_parse(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t bytes;
    } cases[] = {
        {"4gb", 4LL << 30},
        {"512mb", 512LL << 20},
        {"1.5GB", 3LL << 29},
        {"1024", 1024},
        {"8kb", 8192},
        {"2tb", 2LL << 40},
        {"gb", -1},
        {"4 parsecs", -1},
        {"-1gb", -1},
        {"nan", -1},
        {"inf", -1},
        {"1e30gb", -1},
        {"1e18", 1000000000000000000LL},
        {"2e15", 2000000000000000LL},
        {"1000000tb", -1},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++)
        if (size_parse(cases[i].text) != cases[i].bytes)
            fail_msg("'%s': got %lld", cases[i].text, (long long)size_parse(cases[i].text));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_util__buf_static_init_is_empty_string),
        cmocka_unit_test(test_util__buf_grows_and_detaches),
        cmocka_unit_test(test_util__strv_env_set_replaces),
        cmocka_unit_test(test_util__err_wrap_adds_context),
        cmocka_unit_test(test_util__run_reports_exit_code_and_output),
        cmocka_unit_test(test_util__run_args_are_not_a_shell_string),
        cmocka_unit_test(test_util__run_times_out),
        cmocka_unit_test(test_util__urlscan_finds_local_urls),
        cmocka_unit_test(test_util__path_normalize),
        cmocka_unit_test(test_util__size_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
