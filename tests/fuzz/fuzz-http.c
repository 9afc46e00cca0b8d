/* fuzz-http.c - libFuzzer target for berthd's HTTP request parser.
 *
 * The real server (src/http/server.c) listens on a loopback port; each input
 * is sent by a client socket, the loop runs until the server has answered and
 * closed or the client's bytes are consumed, and the handler touches every
 * parsed field the way the API does (headers, query, JSON body). A crash or a
 * sanitizer report is a finding; any answer, including 4xx, is fine.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "http/server.h"

static struct http_server *server;
static int port;

static void handler(struct http_conn *c, struct http_request *req, void *data)
{
    (void)data;
    (void)http_request_header(req, "authorization");
    (void)http_request_header(req, "cookie");
    char *q = http_request_query(req, "follow");
    free(q);
    json_t *j = json_loadb(req->body.buf, req->body.len, 0, NULL);
    const char *repo = NULL;
    if (j)
        (void)json_unpack(j, "{s:s}", "repo", &repo);
    json_decref(j);
    if (req->upgrade)
        http_respond_error(c, 400, "no upgrades here");
    else
        http_respond(c, 200, "text/plain", req->path, strlen(req->path));
}

static void init(void)
{
    uv_loop_t *loop = uv_default_loop();
    for (port = 41000; port < 42000; port++)
        if (http_server_new(loop, "127.0.0.1", port, handler, NULL, &server) == 0)
            return;
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!server)
        init();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        abort();
    fcntl(fd, F_SETFL, O_NONBLOCK);
    size_t off = 0;
    char sink[65536];
    /* write what fits, let the server read, repeat; then half-close */
    for (int rounds = 0; rounds < 10000; rounds++) {
        if (off < size) {
            ssize_t n = write(fd, data + off, size - off);
            if (n > 0)
                off += (size_t)n;
        } else if (off == size) {
            shutdown(fd, SHUT_WR);
            off++;
        }
        uv_run(uv_default_loop(), UV_RUN_NOWAIT);
        ssize_t r = read(fd, sink, sizeof(sink));
        if (r == 0 && off > size)
            break;
        if (r < 0 && off > size) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            poll(&p, 1, 1);
        }
    }
    close(fd);
    for (int i = 0; i < 10; i++)
        uv_run(uv_default_loop(), UV_RUN_NOWAIT);
    return 0;
}
