/* engine.c - Docker Engine API client over a unix socket (libcurl).
 *
 * engine_request() is the one place that talks HTTP: it sends an optional JSON
 * body, collects the response (bounded), or hands streamed lines to a callback
 * for long operations such as pulls. The public functions map HTTP statuses to
 * -errno and the engine's {"message": ...} body into the error object.
 */
#include "engine/engine.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/buf.h"
#include "util/xalloc.h"

#define ENGINE_MAX_RESPONSE (64 * 1024 * 1024)

struct engine {
    char *socket_path;
};

static void curl_init_once(void)
{
    (void)curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct engine *engine_new(const char *socket_path)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    (void)pthread_once(&once, curl_init_once);
    struct engine *e = xcalloc(1, sizeof(*e));
    e->socket_path = xstrdup(socket_path);
    return e;
}

struct engine *engine_free(struct engine *e)
{
    if (e) {
        free(e->socket_path);
        free(e);
    }
    return NULL;
}

const char *engine_socket(const struct engine *e)
{
    return e->socket_path;
}

struct response {
    struct buf body;
    struct buf pending; /* for line streaming */
    engine_line_cb line_cb;
    void *data;
    bool too_big;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct response *r = userdata;
    size_t n = size * nmemb;
    if (r->line_cb) {
        buf_add(&r->pending, ptr, n);
        char *nl;
        while ((nl = memchr(r->pending.buf, '\n', r->pending.len))) {
            *nl = 0;
            r->line_cb(r->pending.buf, r->data);
            buf_remove_front(&r->pending, (size_t)(nl - r->pending.buf) + 1);
        }
        /* keep the tail of the stream for the error check */
        if (r->body.len > 65536)
            buf_reset(&r->body);
    }
    if (r->body.len + n > ENGINE_MAX_RESPONSE) {
        r->too_big = true;
        return 0;
    }
    buf_add(&r->body, ptr, n);
    return n;
}

static void curl_easy_cleanupp(CURL **c)
{
    if (*c)
        curl_easy_cleanup(*c);
}

static void curl_slist_free_allp(struct curl_slist **l)
{
    if (*l)
        curl_slist_free_all(*l);
}

/* Performs one request. *ret_status is the HTTP status; the body is appended to
 * ret_body (if not NULL). A body_file uploads that file instead of JSON. */
static int request_with(struct engine *e, const char *method, const char *path, json_t *body,
                        const char *body_file, const char *header, long timeout_s,
                        engine_line_cb cb, void *data, long *ret_status, struct buf *ret_body,
                        struct berr **reterr)
{
    _cleanup_(curl_easy_cleanupp) CURL *c = curl_easy_init();
    _cleanup_(curl_slist_free_allp) struct curl_slist *headers = NULL;
    _cleanup_free_ char *url = xasprintf("http://d/%s%s", ENGINE_API_VERSION, path);
    _cleanup_free_ char *payload = NULL;
    _cleanup_fclose_ FILE *upload = NULL;
    struct response r = {.body = BUF_INIT, .pending = BUF_INIT, .line_cb = cb, .data = data};

    if (!c)
        return berr_make(reterr, ENOMEM, "cannot create HTTP client");
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, e->socket_path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    if (timeout_s > 0)
        curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    if (body) {
        payload = json_dumps(body, JSON_COMPACT);
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
    } else if (body_file) {
        upload = fopen(body_file, "rbe");
        if (!upload)
            return berr_make(reterr, errno, "cannot open '%s': %s", body_file, strerror(errno));
        struct stat st;
        if (fstat(fileno(upload), &st) < 0)
            return berr_make(reterr, errno, "cannot stat '%s'", body_file);
        headers = curl_slist_append(headers, "Content-Type: application/x-tar");
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READDATA, upload);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    }
    headers = curl_slist_append(headers, "Expect:");
    if (header)
        headers = curl_slist_append(headers, header);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);

    CURLcode rc = curl_easy_perform(c);
    int ret = 0;
    if (rc != CURLE_OK) {
        if (r.too_big)
            ret = berr_make(reterr, EFBIG, "engine response to %s %s is too large", method, path);
        else
            ret = berr_make(reterr, rc == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT : ECONNREFUSED,
                            "cannot reach the container engine at '%s': %s", e->socket_path,
                            curl_easy_strerror(rc));
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, ret_status);
        if (r.pending.len && cb)
            cb(r.pending.buf, data);
        if (ret_body)
            buf_add(ret_body, r.body.buf, r.body.len);
    }
    buf_release(&r.body);
    buf_release(&r.pending);
    return ret;
}

static int engine_request(struct engine *e, const char *method, const char *path, json_t *body,
                          const char *body_file, long timeout_s, engine_line_cb cb, void *data,
                          long *ret_status, struct buf *ret_body, struct berr **reterr)
{
    return request_with(e, method, path, body, body_file, NULL, timeout_s, cb, data, ret_status,
                        ret_body, reterr);
}

/* Turns a non-2xx answer into an error: the engine's "message", else the body. */
static int status_error(long status, const struct buf *body, struct berr **reterr, const char *what)
{
    int code = status == 404 ? ENOENT : status == 409 ? EBUSY : status == 400 ? EINVAL : EIO;
    json_t *j = json_loadb(body->buf, body->len, 0, NULL);
    const char *msg = NULL;
    if (j)
        (void)json_unpack(j, "{s:s}", "message", &msg);
    int r = berr_make(reterr, code, "%s: %s", what,
                      msg         ? msg
                      : body->len ? body->buf
                                  : "engine answered an error");
    json_decref(j);
    return r;
}

static int request_json(struct engine *e, const char *method, const char *path, json_t *body,
                        json_t **ret, const char *what, struct berr **reterr)
{
    long status = 0;
    _cleanup_buf_ struct buf resp = BUF_INIT;
    int r = engine_request(e, method, path, body, NULL, 120, NULL, NULL, &status, &resp, reterr);
    if (r < 0)
        return berr_wrap(reterr, "%s", what);
    if (status < 200 || status >= 300) {
        if (status == 304) /* already started / already stopped */
            return 0;
        return status_error(status, &resp, reterr, what);
    }
    if (ret) {
        json_error_t jerr;
        json_t *j = resp.len ? json_loadb(resp.buf, resp.len, 0, &jerr) : json_null();
        if (!j)
            return berr_make(reterr, EPROTO, "%s: engine sent invalid JSON: %s", what, jerr.text);
        *ret = j;
    }
    return 0;
}

int engine_call(struct engine *e, const char *method, const char *path, json_t *body, json_t **ret,
                const char *what, struct berr **reterr)
{
    return request_json(e, method, path, body, ret, what, reterr);
}

static char *escape(const char *s)
{
    CURL *c = curl_easy_init();
    char *q = curl_easy_escape(c, s, 0);
    char *r = xstrdup(q ? q : "");
    curl_free(q);
    curl_easy_cleanup(c);
    return r;
}

int engine_ping(struct engine *e, struct berr **reterr)
{
    long status = 0;
    _cleanup_buf_ struct buf resp = BUF_INIT;
    int r = engine_request(e, "GET", "/_ping", NULL, NULL, 5, NULL, NULL, &status, &resp, reterr);
    if (r < 0)
        return r;
    if (status != 200)
        return status_error(status, &resp, reterr, "ping the container engine");
    return 0;
}

int engine_image_inspect(struct engine *e, const char *image, json_t **ret, struct berr **reterr)
{
    _cleanup_free_ char *q = escape(image);
    _cleanup_free_ char *path = xasprintf("/images/%s/json", q);
    _cleanup_free_ char *what = xasprintf("inspect image '%s'", image);
    return request_json(e, "GET", path, NULL, ret, what, reterr);
}

struct pull_state {
    engine_line_cb cb;
    void *data;
    char *error;
    char *digest; /* a push's aux.Digest */
};

static void pull_line(const char *line, void *data)
{
    struct pull_state *p = data;
    json_t *j = json_loads(line, 0, NULL);
    if (!j)
        return;
    const char *status = NULL, *error = NULL, *progress_id = NULL;
    (void)json_unpack(j, "{s?s, s?s, s?s}", "status", &status, "error", &error, "id", &progress_id);
    const char *digest = json_string_value(json_object_get(json_object_get(j, "aux"), "Digest"));
    if (digest && !p->digest)
        p->digest = xstrdup(digest);
    if (error && !p->error)
        p->error = xstrdup(error);
    else if (status && p->cb) {
        _cleanup_free_ char *l =
            progress_id ? xasprintf("%s: %s", progress_id, status) : xstrdup(status);
        p->cb(l, p->data);
    }
    json_decref(j);
}

/* A pull or a push: a stream of JSON lines whose "error" is the failure. */
static int image_stream(struct engine *e, const char *path, const char *header, const char *what,
                        engine_line_cb cb, void *data, char **ret_digest, struct berr **reterr)
{
    struct pull_state p = {.cb = cb, .data = data};
    _cleanup_free_ char *digest = NULL;
    long status = 0;
    _cleanup_buf_ struct buf resp = BUF_INIT;
    int r = request_with(e, "POST", path, NULL, NULL, header, 3600, pull_line, &p, &status, &resp,
                         reterr);
    _cleanup_free_ char *err = p.error;
    digest = p.digest;
    if (r < 0)
        return berr_wrap(reterr, "%s", what);
    if (status < 200 || status >= 300)
        return status_error(status, &resp, reterr, what);
    if (err)
        return berr_make(reterr, ENOENT, "%s: %s", what, err);
    if (ret_digest) {
        if (!digest)
            return berr_make(reterr, EIO, "%s: the registry gave no digest", what);
        *ret_digest = TAKE_PTR(digest);
    }
    return 0;
}

int engine_image_pull(struct engine *e, const char *image, engine_line_cb cb, void *data,
                      struct berr **reterr)
{
    _cleanup_free_ char *q = escape(image);
    _cleanup_free_ char *path = xasprintf("/images/create?fromImage=%s", q);
    _cleanup_free_ char *what = xasprintf("pull image '%s'", image);
    return image_stream(e, path, NULL, what, cb, data, NULL, reterr);
}

int engine_image_push(struct engine *e, const char *repo, const char *tag, char **ret_digest,
                      struct berr **reterr)
{
    _cleanup_free_ char *q = escape(tag);
    _cleanup_free_ char *path = xasprintf("/images/%s/push?tag=%s", repo, q);
    _cleanup_free_ char *what = xasprintf("push image '%s:%s'", repo, tag);
    /* the engine wants credentials even for a registry that needs none: {} */
    return image_stream(e, path, "X-Registry-Auth: e30=", what, NULL, NULL, ret_digest, reterr);
}

int engine_image_tag(struct engine *e, const char *image, const char *repo, const char *tag,
                     struct berr **reterr)
{
    _cleanup_free_ char *qi = escape(image), *qr = escape(repo), *qt = escape(tag);
    _cleanup_free_ char *path = xasprintf("/images/%s/tag?repo=%s&tag=%s", qi, qr, qt);
    _cleanup_free_ char *what = xasprintf("tag image '%s' as '%s:%s'", image, repo, tag);
    return engine_call(e, "POST", path, NULL, NULL, what, reterr);
}

char *engine_filter_path(const char *base, const char *key, const char *value)
{
    _cleanup_free_ char *json = xasprintf("{\"%s\":[\"%s\"]}", key, value);
    _cleanup_free_ char *q = escape(json);
    return xasprintf("%s?filters=%s", base, q);
}

int engine_image_load(struct engine *e, const char *archive_path, struct berr **reterr)
{
    long status = 0;
    _cleanup_buf_ struct buf resp = BUF_INIT;
    int r = engine_request(e, "POST", "/images/load", NULL, archive_path, 3600, NULL, NULL, &status,
                           &resp, reterr);
    if (r < 0)
        return berr_wrap(reterr, "load image archive '%s'", archive_path);
    if (status < 200 || status >= 300) {
        _cleanup_free_ char *what = xasprintf("load image archive '%s'", archive_path);
        return status_error(status, &resp, reterr, what);
    }
    return 0;
}

int engine_container_create(struct engine *e, const char *name, json_t *config, char **ret_id,
                            struct berr **reterr)
{
    _cleanup_free_ char *q = escape(name);
    _cleanup_free_ char *path = xasprintf("/containers/create?name=%s", q);
    _cleanup_free_ char *what = xasprintf("create container '%s'", name);
    json_t *resp = NULL;
    int r = request_json(e, "POST", path, config, &resp, what, reterr);
    if (r < 0)
        return r;
    const char *id = NULL;
    if (json_unpack(resp, "{s:s}", "Id", &id) < 0) {
        json_decref(resp);
        return berr_make(reterr, EPROTO, "%s: engine sent no container id", what);
    }
    *ret_id = xstrdup(id);
    json_decref(resp);
    return 0;
}

int engine_container_start(struct engine *e, const char *id, struct berr **reterr)
{
    _cleanup_free_ char *path = xasprintf("/containers/%s/start", id);
    _cleanup_free_ char *what = xasprintf("start container '%.12s'", id);
    return request_json(e, "POST", path, NULL, NULL, what, reterr);
}

int engine_container_stop(struct engine *e, const char *id, int timeout_s, struct berr **reterr)
{
    _cleanup_free_ char *path = xasprintf("/containers/%s/stop?t=%d", id, timeout_s);
    _cleanup_free_ char *what = xasprintf("stop container '%.12s'", id);
    return request_json(e, "POST", path, NULL, NULL, what, reterr);
}

int engine_container_remove(struct engine *e, const char *id, bool force, struct berr **reterr)
{
    _cleanup_free_ char *path =
        xasprintf("/containers/%s?v=1&force=%s", id, force ? "true" : "false");
    _cleanup_free_ char *what = xasprintf("remove container '%.12s'", id);
    return request_json(e, "DELETE", path, NULL, NULL, what, reterr);
}

int engine_container_inspect(struct engine *e, const char *id, json_t **ret, struct berr **reterr)
{
    _cleanup_free_ char *path = xasprintf("/containers/%s/json", id);
    _cleanup_free_ char *what = xasprintf("inspect container '%.12s'", id);
    return request_json(e, "GET", path, NULL, ret, what, reterr);
}

int engine_container_commit(struct engine *e, const char *id, const char *repo, const char *tag,
                            struct berr **reterr)
{
    _cleanup_free_ char *path =
        xasprintf("/commit?container=%s&repo=%s&tag=%s&pause=true", id, repo, tag);
    _cleanup_free_ char *what = xasprintf("commit container '%.12s'", id);
    long status = 0;
    _cleanup_buf_ struct buf resp = BUF_INIT;
    /* a commit copies what the container wrote: minutes for gigabytes */
    json_t *body = json_object();
    int r = engine_request(e, "POST", path, body, NULL, 3600, NULL, NULL, &status, &resp, reterr);
    json_decref(body);
    if (r < 0)
        return berr_wrap(reterr, "%s", what);
    if (status < 200 || status >= 300)
        return status_error(status, &resp, reterr, what);
    return 0;
}

int engine_image_remove(struct engine *e, const char *image, struct berr **reterr)
{
    /* only Berth's own names come here (no query characters) */
    _cleanup_free_ char *path = xasprintf("/images/%s?force=false", image);
    _cleanup_free_ char *what = xasprintf("remove image '%s'", image);
    return request_json(e, "DELETE", path, NULL, NULL, what, reterr);
}

/* The escaped query value of a filter on one label, "key" or "key=value". */
static char *label_filter(const char *label)
{
    json_t *filters = json_pack("{s:[s]}", "label", label);
    _cleanup_free_ char *fs = json_dumps(filters, JSON_COMPACT);
    json_decref(filters);
    return escape(fs);
}

int engine_container_list(struct engine *e, const char *label, json_t **ret, struct berr **reterr)
{
    _cleanup_free_ char *q = label_filter(label);
    _cleanup_free_ char *path = xasprintf("/containers/json?all=true&filters=%s", q);
    return request_json(e, "GET", path, NULL, ret, "list containers", reterr);
}

int engine_volume_create(struct engine *e, const char *name, json_t *labels, struct berr **reterr)
{
    json_t *body = json_pack("{s:s, s:O}", "Name", name, "Labels", labels ? labels : json_object());
    _cleanup_free_ char *what = xasprintf("create volume '%s'", name);
    int r = request_json(e, "POST", "/volumes/create", body, NULL, what, reterr);
    json_decref(body);
    return r;
}

int engine_volume_remove(struct engine *e, const char *name, struct berr **reterr)
{
    _cleanup_free_ char *q = escape(name);
    _cleanup_free_ char *path = xasprintf("/volumes/%s?force=true", q);
    _cleanup_free_ char *what = xasprintf("remove volume '%s'", name);
    return request_json(e, "DELETE", path, NULL, NULL, what, reterr);
}

int engine_volume_list(struct engine *e, const char *label, json_t **ret, struct berr **reterr)
{
    _cleanup_free_ char *q = label_filter(label);
    _cleanup_free_ char *path = xasprintf("/volumes?filters=%s", q);
    json_t *answer = NULL;
    int r = request_json(e, "GET", path, NULL, &answer, "list volumes", reterr);
    if (r < 0)
        return r;
    *ret = json_incref(json_object_get(answer, "Volumes"));
    if (!*ret)
        *ret = json_array();
    json_decref(answer);
    return 0;
}

/* The build endpoint streams JSON lines: {"stream": text} with the builder's
 * output (several lines at once, or half a line), {"error": message}. */
struct build_state {
    engine_line_cb cb;
    void *data;
    char *error;
    struct buf partial;
};

static void build_line(const char *line, void *data)
{
    struct build_state *b = data;
    json_t *j = json_loads(line, 0, NULL);
    if (!j)
        return;
    const char *stream = json_string_value(json_object_get(j, "stream"));
    const char *error = json_string_value(json_object_get(j, "error"));
    if (error && !b->error)
        b->error = xstrdup(error);
    if (stream) {
        buf_adds(&b->partial, stream);
        char *nl;
        while ((nl = memchr(b->partial.buf, '\n', b->partial.len))) {
            *nl = 0;
            if (b->cb && nl > b->partial.buf)
                b->cb(b->partial.buf, b->data);
            buf_remove_front(&b->partial, (size_t)(nl - b->partial.buf) + 1);
        }
    }
    json_decref(j);
}

int engine_image_build(struct engine *e, const char *context_tar, const struct engine_build *b,
                       engine_line_cb cb, void *data, struct berr **reterr)
{
    _cleanup_free_ char *tag = escape(b->tag);
    _cleanup_free_ char *dockerfile = escape(b->dockerfile ? b->dockerfile : "Dockerfile");
    struct buf path = BUF_INIT;
    buf_addf(&path, "/build?t=%s&dockerfile=%s&rm=1&forcerm=1", tag, dockerfile);
    if (b->target && *b->target) {
        _cleanup_free_ char *t = escape(b->target);
        buf_addf(&path, "&target=%s", t);
    }
    json_t *params[] = {b->buildargs, b->labels};
    const char *names[] = {"buildargs", "labels"};
    for (size_t i = 0; i < ELEMENTSOF(params); i++) {
        if (!params[i])
            continue;
        _cleanup_free_ char *text = json_dumps(params[i], JSON_COMPACT);
        _cleanup_free_ char *q = escape(text);
        buf_addf(&path, "&%s=%s", names[i], q);
    }
    struct build_state st = {.cb = cb, .data = data, .partial = BUF_INIT};
    long status = 0;
    _cleanup_buf_ struct buf resp = BUF_INIT;
    int r = engine_request(e, "POST", path.buf, NULL, context_tar, 3600, build_line, &st, &status,
                           &resp, reterr);
    buf_release(&path);
    if (st.partial.len && cb)
        cb(st.partial.buf, data);
    buf_release(&st.partial);
    _cleanup_free_ char *err = st.error;
    if (r < 0)
        return berr_wrap(reterr, "build image '%s'", b->tag);
    if (status < 200 || status >= 300) {
        _cleanup_free_ char *what = xasprintf("build image '%s'", b->tag);
        return status_error(status, &resp, reterr, what);
    }
    if (err)
        return berr_make(reterr, EINVAL, "build image '%s': %s", b->tag, err);
    return 0;
}
