/* client.c - blocking HTTP requests to berthd for the CLI, on libcurl.
 *
 * client_json() and client_stream() share one transfer: client_perform() sets
 * up the curl handle (headers from client_headers(), the only place that knows
 * what every request carries), runs it, and turns curl failures and HTTP error
 * statuses into berr messages. The write callback decides per response: a 2xx
 * body goes to the caller's stream callback or into a bounded buffer; an error
 * body is always buffered so that its {"error": …} can be read.
 */
#include "cli/client.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "util/buf.h"
#include "util/xalloc.h"

#define CLIENT_MAX_ERROR_BODY (64u * 1024)
#define CLIENT_CONNECT_TIMEOUT_S 10L
#define CLIENT_REQUEST_TIMEOUT_S 120L

struct client {
    char *url; /* without a trailing slash */
    char *token;
    CURL *curl;
    /* libcurl writes its detailed message here; the size is curl's contract. */
    char curl_error[CURL_ERROR_SIZE];
};

/* One request in flight. */
struct transfer {
    CURL *curl;
    long status; /* 0 until the status line has arrived */
    struct buf body;
    client_data_cb cb; /* NULL: buffer a 2xx body */
    void *data;
    struct berr *err; /* a failure inside the write callback */
};

static void transfer_release(struct transfer *t)
{
    buf_release(&t->body);
    t->err = berr_free(t->err);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct curl_slist *, curl_slist_free_all)

int client_new(const char *url, const char *token, struct client **ret_client, struct berr **reterr)
{
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return berr_make(reterr, EINVAL, "server URL '%s' is not http:// or https://", url);
    CURL *curl = curl_easy_init();
    if (!curl)
        return berr_make(reterr, ENOMEM, "cannot initialize libcurl");
    struct client *c = xcalloc(1, sizeof(*c));
    c->curl = curl;
    c->url = xstrdup(url);
    size_t n = strlen(c->url);
    while (n > 0 && c->url[n - 1] == '/')
        c->url[--n] = 0;
    client_set_token(c, token);
    *ret_client = c;
    return 0;
}

struct client *client_free(struct client *c)
{
    if (!c)
        return NULL;
    curl_easy_cleanup(c->curl);
    free(c->url);
    client_set_token(c, NULL);
    free(c);
    return NULL;
}

const char *client_url(const struct client *c)
{
    return c->url;
}

const char *client_cacert(void)
{
    const char *cacert = getenv("BERTH_CACERT");
    return cacert && *cacert ? cacert : NULL;
}

void client_set_token(struct client *c, const char *token)
{
    if (c->token)
        explicit_bzero(c->token, strlen(c->token));
    free(c->token);
    c->token = token && *token ? xstrdup(token) : NULL;
}

/* Every header a request carries is decided here. A header with no value
 * removes one curl would add: its form content type on a POST without a body,
 * and "Expect: 100-continue", which berthd does not need to implement. */
static struct curl_slist *client_headers(const struct client *c, bool has_body)
{
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    h = curl_slist_append(h, has_body ? "Content-Type: application/json" : "Content-Type:");
    h = curl_slist_append(h, "Expect:");
    if (c->token) {
        _cleanup_free_ char *auth = xasprintf("Authorization: Bearer %s", c->token);
        h = curl_slist_append(h, auth);
    }
    if (!h)
        abort(); /* curl_slist_append fails only when out of memory */
    return h;
}

static size_t transfer_write_cb(char *chunk, size_t size, size_t nmemb, void *userdata)
{
    struct transfer *t = userdata;
    size_t n = size * nmemb;
    if (!t->status)
        (void)curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &t->status);
    bool ok = t->status >= 200 && t->status < 300;
    if (ok && t->cb)
        return t->cb(chunk, n, t->data, &t->err) < 0 ? 0 : n;
    size_t max = ok ? CLIENT_MAX_JSON : CLIENT_MAX_ERROR_BODY;
    if (t->body.len + n > max) {
        (void)berr_make(&t->err, EFBIG, "response from berthd is larger than %zu bytes", max);
        return 0;
    }
    buf_add(&t->body, chunk, n);
    return n;
}

const char *client_token(const struct client *c)
{
    return c->token;
}

int client_status_error(long status, const char *body, size_t len, struct berr **reterr)
{
    int code;
    switch (status) {
    case 400:
        code = EINVAL;
        break;
    case 401:
        code = EKEYREJECTED;
        break;
    case 403:
        code = EPERM;
        break;
    case 404:
        code = ENOENT;
        break;
    case 409:
        code = EBUSY;
        break;
    default:
        code = EIO;
        break;
    }
    _cleanup_(json_decrefp) json_t *j = len ? json_loadb(body, len, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(j, "error"));
    if (msg)
        return berr_make(reterr, code, "%s", msg);
    return berr_make(reterr, code, "berthd answered HTTP %ld", status);
}

static int client_perform(struct client *c, const char *method, const char *path, json_t *body,
                          struct transfer *t, struct berr **reterr)
{
    CURL *curl = c->curl;
    _cleanup_free_ char *url = xasprintf("%s%s", c->url, path);
    _cleanup_free_ char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (body && !payload)
        return berr_make(reterr, EINVAL, "cannot encode the request as JSON");
    _cleanup_(curl_slist_free_allp) struct curl_slist *headers = client_headers(c, body);

    curl_easy_reset(curl);
    t->curl = curl;
    c->curl_error[0] = 0;
    (void)curl_easy_setopt(curl, CURLOPT_URL, url);
    (void)curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    (void)curl_easy_setopt(curl, CURLOPT_USERAGENT, "berth-cli");
    (void)curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, c->curl_error);
    (void)curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    (void)curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, CLIENT_CONNECT_TIMEOUT_S);
    /* https:// is verified against the system's CAs; a server whose
     * certificate comes from a private CA names that CA's file here. Peer and
     * host verification stay on either way (curl's default). */
    const char *cacert = client_cacert();
    if (cacert)
        (void)curl_easy_setopt(curl, CURLOPT_CAINFO, cacert);
    if (!t->cb)
        (void)curl_easy_setopt(curl, CURLOPT_TIMEOUT, CLIENT_REQUEST_TIMEOUT_S);
    (void)curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, transfer_write_cb);
    (void)curl_easy_setopt(curl, CURLOPT_WRITEDATA, t);
    /* A body is sent the way curl sends a POST's; any other method with one
     * (PUT) is then named with CUSTOMREQUEST. */
    if (payload || strcmp(method, "POST") == 0) {
        (void)curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, payload ? (long)strlen(payload) : 0L);
        (void)curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload ? payload : "");
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        (void)curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);

    CURLcode res = curl_easy_perform(curl);
    if (t->err) {
        int r = -t->err->code;
        if (reterr && !*reterr)
            *reterr = TAKE_PTR(t->err);
        return r;
    }
    if (res != CURLE_OK) {
        const char *why = c->curl_error[0] ? c->curl_error : curl_easy_strerror(res);
        if (!t->status)
            (void)curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &t->status);
        if (!t->status)
            return berr_make(reterr, ECONNREFUSED, "cannot reach berthd at %s: %s", c->url, why);
        return berr_make(reterr, ECONNRESET, "connection to berthd at %s lost: %s", c->url, why);
    }
    (void)curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &t->status);
    if (t->status < 200 || t->status >= 300)
        return client_status_error(t->status, t->body.buf, t->body.len, reterr);
    return 0;
}

int client_json(struct client *c, const char *method, const char *path, json_t *body,
                json_t **ret_json, struct berr **reterr)
{
    _cleanup_(transfer_release) struct transfer t = {.body = BUF_INIT};
    int r = client_perform(c, method, path, body, &t, reterr);
    if (r < 0)
        return r;
    json_t *j = NULL;
    if (t.body.len) {
        json_error_t jerr;
        j = json_loadb(t.body.buf, t.body.len, 0, &jerr);
        if (!j)
            return berr_make(reterr, EBADMSG, "%s %s: berthd sent invalid JSON: %s", method, path,
                             jerr.text);
    }
    *ret_json = j;
    return 0;
}

int client_stream(struct client *c, const char *method, const char *path, json_t *body,
                  client_data_cb cb, void *data, struct berr **reterr)
{
    _cleanup_(transfer_release) struct transfer t = {.body = BUF_INIT, .cb = cb, .data = data};
    return client_perform(c, method, path, body, &t, reterr);
}
