/* test-idle.c - idle timeouts (parsing, ranges, which one applies, when the
 * warning comes) and the reader that tells VS Code's user actions from its
 * keep-alives, on messages as code-server 4.x sends them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "api/ide-activity.h"
#include "workspace/idle-policy.h"

static void test_idle__parse_minutes(void **state)
{
    (void)state;
    int64_t m = -1;
    assert_int_equal(idle_parse_minutes("45m", &m), 0);
    assert_int_equal(m, 45);
    assert_int_equal(idle_parse_minutes("45", &m), 0);
    assert_int_equal(m, 45);
    assert_int_equal(idle_parse_minutes("2h", &m), 0);
    assert_int_equal(m, 120);
    assert_int_equal(idle_parse_minutes("1h30m", &m), 0);
    assert_int_equal(m, 90);
    assert_int_equal(idle_parse_minutes("10min", &m), 0);
    assert_int_equal(m, 10);
    assert_int_equal(idle_parse_minutes("never", &m), 0);
    assert_int_equal(m, 0);
    const char *bad[] = {"", "0m", "0", "m", "h", "-5m", "5s", "30m2h", "5 m", "1h1h", "999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        assert_int_equal(idle_parse_minutes(bad[i], &m), -22);
}

static void test_idle__range_check(void **state)
{
    (void)state;
    assert_null(idle_check(5, 240, false));
    assert_null(idle_check(240, 240, false));
    assert_non_null(idle_check(4, 240, false));
    assert_non_null(idle_check(241, 240, false));
    const char *why = idle_check(0, 240, false);
    assert_non_null(why);
    assert_non_null(strstr(why, "5 to 240"));
    assert_null(idle_check(0, 240, true));
}

static void test_idle__which_timeout_applies(void **state)
{
    (void)state;
    const char *src = NULL;
    assert_int_equal(idle_effective(-1, -1, 240, false, &src), IDLE_DEFAULT_MINUTES);
    assert_string_equal(src, "default");
    assert_int_equal(idle_effective(-1, 45, 240, false, &src), 45);
    assert_string_equal(src, "user");
    assert_int_equal(idle_effective(10, 45, 240, false, &src), 10);
    assert_string_equal(src, "workspace");
    /* the admin lowered the maximum, or took "never" away, after it was set */
    assert_int_equal(idle_effective(200, -1, 60, false, &src), 60);
    assert_string_equal(src, "admin maximum");
    assert_int_equal(idle_effective(0, -1, 60, false, &src), 60);
    assert_int_equal(idle_effective(0, -1, 60, true, &src), 0);
    assert_string_equal(src, "workspace");
    /* a maximum below the minimum is the minimum */
    assert_int_equal(idle_effective(-1, -1, 0, false, &src), IDLE_MIN_MINUTES);
}

static void test_idle__warning_time(void **state)
{
    (void)state;
    /* five minutes before, or half-way for short timeouts */
    assert_int_equal(idle_warn_after(30 * 60000, 60000), 25 * 60000);
    assert_int_equal(idle_warn_after(5 * 60000, 60000), 150000);
    assert_int_equal(idle_warn_after(30 * 1000, 1000), 25 * 1000);
    char buf[32];
    assert_string_equal(idle_format_minutes(30, buf, sizeof(buf)), "30 min");
    assert_string_equal(idle_format_minutes(120, buf, sizeof(buf)), "2 h");
    assert_string_equal(idle_format_minutes(90, buf, sizeof(buf)), "1 h 30 min");
    assert_string_equal(idle_format_age(125000, buf, sizeof(buf)), "2 min");
}

/* ---- VS Code's messages ---- */

/* An IPC request [100, id, channel, command] with an argument text. */
static size_t ipc(unsigned char *b, unsigned id, const char *ch, const char *cmd, const char *arg)
{
    size_t n = 0;
    b[n++] = 0x04, b[n++] = 0x04, b[n++] = 0x06, b[n++] = 100, b[n++] = 0x06;
    b[n++] = (unsigned char)(id & 0x7f);
    b[n++] = 0x01, b[n++] = (unsigned char)strlen(ch);
    memcpy(b + n, ch, strlen(ch)), n += strlen(ch);
    b[n++] = 0x01, b[n++] = (unsigned char)strlen(cmd);
    memcpy(b + n, cmd, strlen(cmd)), n += strlen(cmd);
    memcpy(b + n, arg, strlen(arg)), n += strlen(arg);
    return n;
}

/* An extension host RPC request for method. */
static size_t rpc(unsigned char *b, const char *method, const char *arg)
{
    size_t n = 0;
    b[n++] = 1, b[n++] = 0, b[n++] = 0, b[n++] = 0, b[n++] = 0x29, b[n++] = 'b';
    b[n++] = (unsigned char)strlen(method);
    memcpy(b + n, method, strlen(method)), n += strlen(method);
    memcpy(b + n, arg, strlen(arg)), n += strlen(arg);
    return n;
}

static void test_ide__what_a_person_does(void **state)
{
    (void)state;
    unsigned char b[512];
    size_t n;
    n = ipc(b, 5, "remoteFilesystem", "readFile",
            "{\"path\":\"/workspaces/repo/main.c\",\"scheme\":\"vscode-remote\"}");
    assert_true(ide_is_user_action(b, n, NULL));
    n = ipc(b, 6, "remoteterminal", "$input", "[1,\"ls\\r\"]");
    assert_true(ide_is_user_action(b, n, NULL));
    n = ipc(b, 7, "search", "fileSearch", "{}");
    assert_true(ide_is_user_action(b, n, NULL));
    n = rpc(b, "$acceptEditorPropertiesChanged", "[\"vs.editor.ICodeEditor:2\"]");
    const char *what = NULL;
    assert_true(ide_is_user_action(b, n, &what));
    assert_string_equal(what, "$acceptEditorPropertiesChanged");
    n = rpc(b, "$acceptModelChanged", "[]");
    assert_true(ide_is_user_action(b, n, NULL));
}

static void test_ide__what_an_untouched_tab_sends(void **state)
{
    (void)state;
    unsigned char b[512];
    size_t n;
    n = ipc(b, 8, "telemetry", "ping", "");
    assert_false(ide_is_user_action(b, n, NULL));
    n = ipc(b, 9, "agentHostProxy", "send", "{\"jsonrpc\":\"2.0\",\"method\":\"ping\"}");
    assert_false(ide_is_user_action(b, n, NULL));
    n = ipc(b, 10, "remoteFilesystem", "writeFile",
            "{\"path\":\"/home/vscode/.local/share/code-server/User/workspaceStorage/x/"
            "chatEditingSessions/y/state.json\"}");
    assert_false(ide_is_user_action(b, n, NULL));
    n = ipc(b, 11, "remoteterminal", "$getEnvironment", "");
    assert_false(ide_is_user_action(b, n, NULL));
    n = rpc(b, "$onFileEvent", "[{\"changed\":[{\"external\":\"vscode-log:/window.log\"}]}]");
    assert_false(ide_is_user_action(b, n, NULL));
    n = rpc(b, "$acceptConfigurationChanged", "[]");
    assert_false(ide_is_user_action(b, n, NULL));
    /* replies and acknowledgements */
    const unsigned char ack[] = {0x07, 0x00, 0x00, 0x00, 0x0d};
    assert_false(ide_is_user_action(ack, sizeof(ack), NULL));
    /* truncated or odd input */
    assert_false(ide_is_user_action(b, 0, NULL));
    const unsigned char cut[] = {0x04, 0x04, 0x06, 100, 0x06, 0x01, 0x01, 0x7f, 'x'};
    assert_false(ide_is_user_action(cut, sizeof(cut), NULL));
}

/* Wraps a protocol message of type t around body, in masked WebSocket
 * frames of at most frag payload bytes each (continuations after the first). */
static size_t ws_frames(unsigned char *out, int t, const unsigned char *body, size_t n, size_t frag)
{
    unsigned char msg[600];
    msg[0] = (unsigned char)t;
    memset(msg + 1, 0, 8);
    msg[9] = (unsigned char)(n >> 24), msg[10] = (unsigned char)(n >> 16);
    msg[11] = (unsigned char)(n >> 8), msg[12] = (unsigned char)n;
    memcpy(msg + 13, body, n);
    size_t total = 13 + n, o = 0;
    const unsigned char key[4] = {0x12, 0x34, 0x56, 0x78};
    for (size_t at = 0; at < total; at += frag) {
        size_t k = total - at < frag ? total - at : frag;
        out[o++] = (unsigned char)((at + k == total ? 0x80 : 0) | (at == 0 ? 0x02 : 0x00));
        if (k < 126) {
            out[o++] = (unsigned char)(0x80 | k);
        } else {
            out[o++] = 0x80 | 126;
            out[o++] = (unsigned char)(k >> 8), out[o++] = (unsigned char)k;
        }
        memcpy(out + o, key, 4), o += 4;
        for (size_t i = 0; i < k; i++)
            out[o++] = msg[at + i] ^ key[i & 3];
    }
    return o;
}

static void test_ide__reads_frames_in_any_pieces(void **state)
{
    (void)state;
    unsigned char body[512] = {0}, wire[2048];
    size_t o = 0;
    /* a keep-alive, a ping to the server, then a user's request, fragmented */
    o += ws_frames(wire + o, IDE_MSG_KEEPALIVE, body, 0, 100);
    const unsigned char ping[] = {0x89, 0x80, 1, 2, 3, 4};
    memcpy(wire + o, ping, sizeof(ping)), o += sizeof(ping);
    size_t n = ipc(body, 3, "telemetry", "ping", "");
    o += ws_frames(wire + o, IDE_MSG_REGULAR, body, n, 7);
    n = ipc(body, 4, "remoteFilesystem", "readFile", "{\"path\":\"/workspaces/r/a.c\"}");
    o += ws_frames(wire + o, IDE_MSG_REGULAR, body, n, 11);
    /* byte by byte, and all at once, give the same */
    struct ide_activity a = {0};
    unsigned got = 0;
    for (size_t i = 0; i < o; i++)
        got += ide_activity_feed(&a, wire + i, 1);
    assert_int_equal(got, 1);
    assert_int_equal(a.regular, 2);
    assert_int_equal(a.other, 1);
    struct ide_activity b = {0};
    assert_int_equal(ide_activity_feed(&b, wire, o), 1);
    /* a compressed frame (RSV1) stops the reader rather than misread */
    struct ide_activity c = {0};
    unsigned char z[] = {0xc2, 0x81, 0, 0, 0, 0, 0};
    assert_int_equal(ide_activity_feed(&c, z, sizeof(z)), 0);
    assert_true(c.broken);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle__parse_minutes),
        cmocka_unit_test(test_idle__range_check),
        cmocka_unit_test(test_idle__which_timeout_applies),
        cmocka_unit_test(test_idle__warning_time),
        cmocka_unit_test(test_ide__what_a_person_does),
        cmocka_unit_test(test_ide__what_an_untouched_tab_sends),
        cmocka_unit_test(test_ide__reads_frames_in_any_pieces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
