/* test-agent-auth.c - the handshake of berth-agent's TCP listener (agent-proto.h,
 * AUTH), between the real agent binary on loopback and berthd's client
 * (agentc_auth), and against fake agents on a socket pair: the right key
 * opens the session; a wrong key, another workspace's id or a request before
 * the handshake is refused; an agent without the key cannot pass its proof,
 * not even by sending berthd's own proof back. The unix socket keeps working
 * without a handshake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent-auth.h"
#include "agent/agent-proto.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/fs.h"
#include "workspace/agentc.h"

extern char **environ;

static char dir[64];
static unsigned char key[AGENT_KEY_SIZE];
static int port;
static pid_t agent_pid;

static int tcp_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        return -1;
    close(fd);
    return ntohs(a.sin_port);
}

/* Sends a frame and reads the answer's type (and payload into buf, NUL-ended). */
static unsigned exchange(int fd, unsigned type, const void *p, size_t n, char *buf, size_t max)
{
    unsigned char h[AGENT_HEADER_SIZE];
    agent_put_header(h, (enum agent_frame_type)type, (uint32_t)n);
    /* a refused connection may be gone already: no answer, then */
    if (write_all(fd, h, sizeof(h)) < 0 || (n && write_all(fd, p, n) < 0))
        return 0;
    size_t got = 0;
    while (got < sizeof(h)) {
        ssize_t r = read(fd, h + got, sizeof(h) - got);
        if (r <= 0)
            return 0;
        got += (size_t)r;
    }
    size_t len = agent_get_u32(h + 4);
    assert_true(len < max);
    for (got = 0; got < len;) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r <= 0)
            return 0;
        got += (size_t)r;
    }
    buf[len] = 0;
    return h[0];
}

static void test_agent_auth__the_right_key_opens_the_session(void **state)
{
    (void)state;
    int fd = tcp_connect();
    assert_true(fd >= 0);
    _cleanup_berr_ struct berr *e = NULL;
    assert_int_equal(agentc_auth(fd, key, "ws1", 5000, &e), 0);
    char buf[256];
    assert_int_equal(exchange(fd, AGENT_HELLO, NULL, 0, buf, sizeof(buf)), AGENT_HELLO);
    assert_string_equal(buf, AGENT_PROTO_VERSION);
    close(fd);
}

static void test_agent_auth__a_wrong_key_or_another_id_is_refused(void **state)
{
    (void)state;
    unsigned char other[AGENT_KEY_SIZE];
    memcpy(other, key, sizeof(other));
    other[0] ^= 1;
    const struct {
        const unsigned char *key;
        const char *id;
    } tries[] = {{other, "ws1"}, {key, "ws2"}};
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        int fd = tcp_connect();
        assert_true(fd >= 0);
        _cleanup_berr_ struct berr *e = NULL;
        assert_int_equal(agentc_auth(fd, tries[i].key, tries[i].id, 5000, &e), -EACCES);
        assert_non_null(strstr(berr_msg(e), "refused the handshake: authentication failed"));
        /* and the connection takes nothing more */
        char buf[256];
        assert_int_not_equal(exchange(fd, AGENT_HELLO, NULL, 0, buf, sizeof(buf)), AGENT_HELLO);
        close(fd);
    }
}

static void test_agent_auth__a_request_before_the_handshake_is_refused(void **state)
{
    (void)state;
    int fd = tcp_connect();
    assert_true(fd >= 0);
    char buf[1024];
    unsigned char h[AGENT_HEADER_SIZE + AGENT_NONCE_SIZE];
    size_t got = 0;
    while (got < sizeof(h)) {
        ssize_t r = read(fd, h + got, sizeof(h) - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    assert_int_equal(h[0], AGENT_AUTH_CHALLENGE);
    assert_int_equal(exchange(fd, AGENT_HELLO, NULL, 0, buf, sizeof(buf)), AGENT_ERROR);
    assert_non_null(strstr(buf, "authentication first"));
    close(fd);
}

/* A fake agent on the other end of a socket pair: it sends a challenge and
 * answers AUTH with zeros, or with the proof it was sent (replay). */
struct fake {
    int fd;
    bool replay;
};

static void *fake_agent(void *arg)
{
    struct fake *f = arg;
    unsigned char msg[AGENT_HEADER_SIZE + AGENT_NONCE_SIZE] = {0};
    agent_put_header(msg, AGENT_AUTH_CHALLENGE, AGENT_NONCE_SIZE);
    randombytes_buf(msg + AGENT_HEADER_SIZE, AGENT_NONCE_SIZE);
    if (write_all(f->fd, msg, sizeof(msg)) < 0)
        return NULL;
    unsigned char auth[AGENT_HEADER_SIZE + AGENT_MAC_SIZE + AGENT_NONCE_SIZE];
    size_t got = 0;
    while (got < sizeof(auth)) {
        ssize_t r = read(f->fd, auth + got, sizeof(auth) - got);
        if (r <= 0)
            return NULL;
        got += (size_t)r;
    }
    unsigned char ok[AGENT_HEADER_SIZE + AGENT_MAC_SIZE] = {0};
    agent_put_header(ok, AGENT_AUTH_OK, AGENT_MAC_SIZE);
    if (f->replay)
        memcpy(ok + AGENT_HEADER_SIZE, auth + AGENT_HEADER_SIZE, AGENT_MAC_SIZE);
    (void)write_all(f->fd, ok, sizeof(ok));
    return NULL;
}

static void test_agent_auth__an_agent_without_the_key_fails_its_proof(void **state)
{
    (void)state;
    for (int replay = 0; replay < 2; replay++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        struct fake f = {.fd = sv[1], .replay = replay};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, fake_agent, &f), 0);
        _cleanup_berr_ struct berr *e = NULL;
        assert_int_equal(agentc_auth(sv[0], key, "ws1", 5000, &e), -EACCES);
        assert_non_null(strstr(berr_msg(e), "proof is wrong"));
        pthread_join(t, NULL);
        close(sv[0]);
        close(sv[1]);
    }
}

static void test_agent_auth__the_unix_socket_needs_no_handshake(void **state)
{
    (void)state;
    int fd = unix_connect_nofollow(dir, AGENT_SOCKET_NAME);
    assert_true(fd >= 0);
    char buf[256];
    assert_int_equal(exchange(fd, AGENT_HELLO, NULL, 0, buf, sizeof(buf)), AGENT_HELLO);
    close(fd);
}

static int start_agent(void)
{
    char key_file[128], sock[128], tcp[64];
    snprintf(key_file, sizeof(key_file), "%s/key", dir);
    snprintf(sock, sizeof(sock), "%s/" AGENT_SOCKET_NAME, dir);
    randombytes_buf(key, sizeof(key));
    int fd = open(key_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write_all(fd, key, sizeof(key)) < 0)
        return -1;
    close(fd);
    port = free_port();
    snprintf(tcp, sizeof(tcp), "127.0.0.1:%d", port);
    char *argv[] = {BERTH_AGENT_BIN, "--socket", sock,   "--tcp", tcp,
                    "--key",         key_file,   "--id", "ws1",   NULL};
    if (posix_spawn(&agent_pid, argv[0], NULL, NULL, argv, environ) != 0)
        return -1;
    for (int64_t end = mono_ms() + 20000; mono_ms() < end; usleep(50000)) {
        int c = tcp_connect();
        if (c >= 0) {
            close(c);
            return 0;
        }
    }
    return -1;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    strcpy(dir, "/tmp/berth-test-agent-auth-XXXXXX");
    if (!mkdtemp(dir) || sodium_init() < 0 || start_agent() < 0) {
        fprintf(stderr, "cannot start %s\n", BERTH_AGENT_BIN);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agent_auth__the_right_key_opens_the_session),
        cmocka_unit_test(test_agent_auth__a_wrong_key_or_another_id_is_refused),
        cmocka_unit_test(test_agent_auth__a_request_before_the_handshake_is_refused),
        cmocka_unit_test(test_agent_auth__an_agent_without_the_key_fails_its_proof),
        cmocka_unit_test(test_agent_auth__the_unix_socket_needs_no_handshake),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    kill(agent_pid, SIGTERM);
    waitpid(agent_pid, NULL, 0);
    (void)rm_rf(dir);
    return r;
}
