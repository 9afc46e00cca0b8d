/* build.c - Dockerfile builds and features (see build.h). */
#include "workspace/build.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devcontainer/devcontainer.h"
#include "util/buf.h"
#include "util/fs.h"
#include "util/path.h"
#include "util/run.h"
#include "util/xalloc.h"

#define NOBODY 65534
#define FEATURE_MAX_BYTES "200M"

static void say(const struct wsb *b, const char *fmt, ...) _printf_(2, 3);
static void say(const struct wsb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *line = NULL;
    if (vasprintf(&line, fmt, ap) < 0)
        line = NULL;
    va_end(ap);
    if (line && b->log)
        b->log(line, b->data);
}

/* `rel` under `dir` (both relative to the repository) with "." and ".."
 * resolved; NULL when it would leave the repository. "" is its root. */
static char *join_inside(const char *dir, const char *rel)
{
    if (rel[0] == '/')
        return NULL;
    _cleanup_free_ char *joined = *dir ? xasprintf("%s/%s", dir, rel) : xstrdup(rel);
    return path_normalize(joined);
}

/* The directory of the devcontainer.json, relative to the repository. */
static char *config_dir(const struct wsb *b)
{
    const char *slash = b->config_rel ? strrchr(b->config_rel, '/') : NULL;
    return slash ? xstrndup(b->config_rel, (size_t)(slash - b->config_rel)) : xstrdup("");
}

/* Whether a path in the checkout really is inside it (no symlink out). */
static bool really_inside(const char *repo_dir, const char *rel)
{
    _cleanup_free_ char *root = realpath(repo_dir, NULL);
    _cleanup_free_ char *p = xasprintf("%s/%s", repo_dir, rel);
    _cleanup_free_ char *real = realpath(p, NULL);
    size_t n = root ? strlen(root) : 0;
    return root && real && strncmp(real, root, n) == 0 && (real[n] == 0 || real[n] == '/');
}

static int run_argv(struct strv *argv, bool as_nobody, const char *what, struct berr **reterr)
{
    _cleanup_run_cmd_ struct run_cmd c = RUN_CMD_INIT;
    for (size_t i = 0; i < argv->n; i++)
        strv_push(&c.args, argv->v[i]);
    c.capture = true;
    c.max_output = 4096;
    c.timeout_ms = 10 * 60 * 1000;
    if (as_nobody) {
        c.set_ids = true;
        c.uid = NOBODY;
        c.gid = NOBODY;
    }
    int r = run_cmd(&c, reterr);
    if (r < 0)
        return berr_wrap(reterr, "%s", what);
    if (r != 0) {
        buf_rtrim(&c.output);
        return berr_make(reterr, EIO, "%s: %s", what,
                         c.output.len ? c.output.buf : "the command failed");
    }
    return 0;
}

/* A tar of dir that depends only on the files' names, contents and modes. */
static int make_tar(const char *dir, const char *out, struct berr **reterr)
{
    _cleanup_strv_ struct strv argv = STRV_INIT;
    strv_pushl(&argv, "tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0",
               "--numeric-owner", "--exclude=./.git", "-cf", out, "-C", dir, ".", NULL);
    return run_argv(&argv, false, "cannot archive the build context", reterr);
}

static int hash_file(crypto_generichash_state *st, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    unsigned char chunk[65536];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        crypto_generichash_update(st, chunk, (size_t)n);
    close(fd);
    return n < 0 ? -EIO : 0;
}

/* 24 hex digits of BLAKE2b over the tar and the other inputs of a build. */
static char *build_key(const char *tar, const char *const *parts, size_t n)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 16);
    if (tar)
        (void)hash_file(&st, tar);
    for (size_t i = 0; i < n; i++)
        crypto_generichash_update(&st, (const unsigned char *)(parts[i] ? parts[i] : ""),
                                  strlen(parts[i] ? parts[i] : "") + 1);
    unsigned char h[16];
    crypto_generichash_final(&st, h, sizeof(h));
    char hex[33];
    sodium_bin2hex(hex, sizeof(hex), h, 12);
    return xstrdup(hex);
}

static bool image_exists(const struct wsb *b, const char *tag)
{
    json_t *info = NULL;
    if (rt_image_inspect(b->rt, tag, &info, NULL) < 0)
        return false;
    json_decref(info);
    return true;
}

/* The engine fetches an ADD's URL itself, from the host's network, where a
 * workspace's own requests never come from: a repository's Dockerfile may
 * not ask for that (RUN curl, inside the build container, still works). */
static int check_dockerfile(const char *path, const char *name, struct berr **reterr)
{
    _cleanup_buf_ struct buf text = BUF_INIT;
    int r = read_file(path, 4 * 1024 * 1024, &text);
    if (r < 0)
        return berr_make(reterr, -r, "cannot read '%s': %s", name, strerror(-r));
    int line = 1;
    for (const char *p = text.buf; *p; line++) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        _cleanup_free_ char *l = xstrndup(p, n);
        char *w = l + strspn(l, " \t");
        if (strncasecmp(w, "ADD", 3) == 0 && (w[3] == ' ' || w[3] == '\t') &&
            (strstr(w, "://") || strstr(w, "git@")))
            return berr_make(reterr, EPERM,
                             "'%s' line %d: ADD from a URL is refused (the server would fetch it "
                             "from its own network); download it with RUN instead",
                             name, line);
        p += n + (nl ? 1 : 0);
    }
    return 0;
}

int wsb_dockerfile(const struct wsb *b, json_t *build, char **ret_image, struct berr **reterr)
{
    const char *dockerfile = json_string_value(json_object_get(build, "dockerfile"));
    const char *context = json_string_value(json_object_get(build, "context"));
    const char *target = json_string_value(json_object_get(build, "target"));
    json_t *args = json_object_get(build, "args");
    _cleanup_free_ char *dir = config_dir(b);
    _cleanup_free_ char *df = join_inside(dir, dockerfile ? dockerfile : "Dockerfile");
    _cleanup_free_ char *ctx = join_inside(dir, context ? context : ".");
    if (!df || !ctx || !really_inside(b->repo_dir, ctx) || !really_inside(b->repo_dir, df))
        return berr_make(reterr, EPERM,
                         "'%s': build.dockerfile and build.context must be inside the repository",
                         b->config_rel);
    size_t cl = strlen(ctx);
    if (cl && (strncmp(df, ctx, cl) != 0 || df[cl] != '/'))
        return berr_make(reterr, EINVAL,
                         "'%s': the Dockerfile '%s' must be inside build.context '%s'",
                         b->config_rel, df, *ctx ? ctx : ".");
    const char *df_in_ctx = cl ? df + cl + 1 : df;
    _cleanup_free_ char *df_path = xasprintf("%s/%s", b->repo_dir, df);
    int r = check_dockerfile(df_path, df, reterr);
    if (r < 0)
        return r;
    json_t *buildargs = json_object();
    const char *k;
    json_t *v;
    json_object_foreach (args, k, v)
        if (json_is_string(v))
            json_object_set(buildargs, k, v);
    _cleanup_free_ char *ctx_path = xasprintf("%s/%s", b->repo_dir, ctx);
    _cleanup_free_ char *tar = xasprintf("%s/context.tar", b->work_dir);
    r = make_tar(ctx_path, tar, reterr);
    if (r < 0) {
        json_decref(buildargs);
        return r;
    }
    _cleanup_free_ char *args_text = json_dumps(buildargs, JSON_COMPACT | JSON_SORT_KEYS);
    const char *parts[] = {"dockerfile", df_in_ctx, target, args_text};
    _cleanup_free_ char *key = build_key(tar, parts, ELEMENTSOF(parts));
    _cleanup_free_ char *tag = xasprintf("localhost/berth/build-%s:latest", key);
    if (image_exists(b, tag)) {
        say(b, "using the image built before from '%s' (%s)", df, tag);
    } else {
        say(b, "building '%s' (context '%s')%s%s", df, *ctx ? ctx : ".", target ? ", target " : "",
            target ? target : "");
        json_t *labels = json_pack("{s:s}", "berth.managed", "1");
        struct engine_build eb = {.tag = tag,
                                  .dockerfile = df_in_ctx,
                                  .target = target,
                                  .buildargs = buildargs,
                                  .labels = labels};
        r = rt_image_build(b->rt, tar, &eb, b->log, b->data, reterr);
        json_decref(labels);
    }
    json_decref(buildargs);
    (void)unlink(tar);
    if (r < 0)
        return berr_wrap(reterr, "building '%s' failed", df);
    *ret_image = TAKE_PTR(tag);
    return 0;
}

/* ---- features ---- */

struct feature {
    char *ref;    /* the key in "features" */
    char *id;     /* the ref without its version: what installsAfter names */
    char *dir;    /* unpacked, under the work dir */
    json_t *meta; /* devcontainer-feature.json */
    json_t *opts; /* the user's options */
};

/* "ghcr.io/devcontainers/features/node:1" -> "ghcr.io/devcontainers/features/node" */
static char *feature_id(const char *ref)
{
    const char *slash = strrchr(ref, '/');
    const char *colon = strrchr(slash ? slash : ref, ':');
    const char *at = strrchr(slash ? slash : ref, '@');
    const char *end = at ? at : colon;
    if (strncmp(ref, "./", 2) == 0 || strncmp(ref, "http", 4) == 0)
        end = NULL;
    return end ? xstrndup(ref, (size_t)(end - ref)) : xstrdup(ref);
}

static bool is_url(const char *ref)
{
    return strncmp(ref, "https://", 8) == 0 || strncmp(ref, "http://", 7) == 0;
}

/* Unpacks an archive as nobody into dir (owned by nobody). */
static int unpack(const char *archive, const char *dir, struct berr **reterr)
{
    _cleanup_strv_ struct strv argv = STRV_INIT;
    strv_pushl(&argv, "tar", "--no-same-owner", "--no-same-permissions", "-xf", archive, "-C", dir,
               NULL);
    return run_argv(&argv, true, "cannot unpack the feature", reterr);
}

static int download(const char *url, const char *accept, const char *out, struct berr **reterr)
{
    _cleanup_strv_ struct strv argv = STRV_INIT;
    strv_pushl(&argv, "curl", "-fsSL", "--proto", "=http,https", "--max-filesize",
               FEATURE_MAX_BYTES, "--max-time", "300", "-o", out, NULL);
    if (accept)
        strv_pushl(&argv, "-H", accept, NULL);
    strv_pushl(&argv, "--", url, NULL);
    _cleanup_free_ char *what = xasprintf("cannot download '%s'", url);
    return run_argv(&argv, true, what, reterr);
}

/* "localhost:5000" -> "localhost", "[::1]:5000" -> "[::1]". */
static char *host_without_port(const char *host)
{
    const char *close = host[0] == '[' ? strchr(host, ']') : NULL;
    if (close)
        return xstrndup(host, (size_t)(close - host) + 1);
    return xstrndup(host, strcspn(host, ":"));
}

/* Whether the file's SHA-256 is the "sha256:HEX" digest. */
static bool digest_matches(const char *path, const char *digest)
{
    if (strncmp(digest, "sha256:", 7) != 0)
        return false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    unsigned char chunk[65536];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        crypto_hash_sha256_update(&st, chunk, (size_t)n);
    close(fd);
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, h);
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
    return n == 0 && strcmp(hex, digest + 7) == 0;
}

/* An OCI reference "host[:port]/path:tag": the manifest names one layer, the
 * feature's tar. Loopback registries are spoken to over plain HTTP. */
static int fetch_oci(const char *ref, const char *dir, struct berr **reterr)
{
    const char *slash = strchr(ref, '/');
    if (!slash)
        return berr_make(reterr, EINVAL, "feature '%s' is not a registry reference", ref);
    _cleanup_free_ char *host = xstrndup(ref, (size_t)(slash - ref));
    _cleanup_free_ char *id = feature_id(ref);
    const char *tag = ref + strlen(id);
    _cleanup_free_ char *path = xstrdup(id + strlen(host) + 1);
    _cleanup_free_ char *version = xstrdup(*tag ? tag + 1 : "latest");
    /* plain HTTP only for this machine's own registry */
    _cleanup_free_ char *name = host_without_port(host);
    bool local = strcmp(name, "localhost") == 0 || strcmp(name, "127.0.0.1") == 0 ||
                 strcmp(name, "[::1]") == 0;
    const char *scheme = local ? "http" : "https";
    _cleanup_free_ char *manifest_url =
        xasprintf("%s://%s/v2/%s/manifests/%s", scheme, host, path, version);
    _cleanup_free_ char *manifest = xasprintf("%s/manifest.json", dir);
    int r = download(manifest_url, "Accept: application/vnd.oci.image.manifest.v1+json", manifest,
                     reterr);
    if (r < 0)
        return r;
    json_t *m = json_load_file(manifest, 0, NULL);
    const char *digest = json_string_value(
        json_object_get(json_array_get(json_object_get(m, "layers"), 0), "digest"));
    if (!digest || strspn(digest, "sha256:0123456789abcdef") != strlen(digest)) {
        json_decref(m);
        return berr_make(reterr, EPROTO, "feature '%s': the registry's manifest names no layer",
                         ref);
    }
    _cleanup_free_ char *blob_url = xasprintf("%s://%s/v2/%s/blobs/%s", scheme, host, path, digest);
    _cleanup_free_ char *want = xstrdup(digest);
    json_decref(m);
    _cleanup_free_ char *blob = xasprintf("%s/layer.tar", dir);
    r = download(blob_url, NULL, blob, reterr);
    if (r < 0)
        return r;
    if (!digest_matches(blob, want))
        return berr_make(reterr, EPROTO, "feature '%s': the layer does not match its digest %s",
                         ref, want);
    _cleanup_free_ char *out = xasprintf("%s/out", dir);
    return unpack(blob, out, reterr);
}

/* Downloads and unpacks a tarball or OCI feature as nobody in a scratch
 * directory of its own (berthd's data dir is not nobody's to enter), then
 * copies the files (links as links) to `dest`. */
static int fetch_remote(const char *ref, const char *dest, struct berr **reterr)
{
    char tmp[] = "/tmp/berth-feature-XXXXXX";
    if (!mkdtemp(tmp))
        return berr_make(reterr, errno, "cannot create a scratch directory: %s", strerror(errno));
    _cleanup_free_ char *out = xasprintf("%s/out", tmp);
    int r = 0;
    if (chown(tmp, NOBODY, NOBODY) < 0 || mkdir(out, 0755) < 0 || chown(out, NOBODY, NOBODY) < 0)
        r = berr_make(reterr, errno, "cannot prepare '%s': %s", tmp, strerror(errno));
    if (r == 0 && is_url(ref)) {
        _cleanup_free_ char *archive = xasprintf("%s/feature.tgz", tmp);
        r = download(ref, NULL, archive, reterr);
        if (r == 0)
            r = unpack(archive, out, reterr);
    } else if (r == 0) {
        r = fetch_oci(ref, tmp, reterr);
    }
    if (r == 0) {
        _cleanup_free_ char *src = xasprintf("%s/.", out);
        _cleanup_strv_ struct strv argv = STRV_INIT;
        strv_pushl(&argv, "cp", "-R", "-P", "--", src, dest, NULL);
        r = run_argv(&argv, false, "cannot copy the feature", reterr);
    }
    (void)rm_rf(tmp);
    return r;
}

/* Puts the feature's files at f->dir (dir/feature). */
static int fetch_feature(const struct wsb *b, struct feature *f, const char *dir,
                         struct berr **reterr)
{
    f->dir = xasprintf("%s/feature", dir);
    if (mkdir(dir, 0755) < 0 || mkdir(f->dir, 0755) < 0)
        return berr_make(reterr, errno, "cannot prepare '%s': %s", dir, strerror(errno));
    if (strncmp(f->ref, "./", 2) == 0 || strncmp(f->ref, "../", 3) == 0) {
        _cleanup_free_ char *cdir = config_dir(b);
        _cleanup_free_ char *rel = join_inside(cdir, f->ref);
        if (!rel || !*rel || !really_inside(b->repo_dir, rel))
            return berr_make(reterr, EPERM, "feature '%s' must be a folder inside the repository",
                             f->ref);
        _cleanup_free_ char *src = xasprintf("%s/%s/.", b->repo_dir, rel);
        _cleanup_strv_ struct strv argv = STRV_INIT;
        /* -P: symlinks are copied as links, never followed out of the repo */
        strv_pushl(&argv, "cp", "-R", "-P", "--", src, f->dir, NULL);
        _cleanup_free_ char *what = xasprintf("cannot copy feature '%s'", f->ref);
        return run_argv(&argv, false, what, reterr);
    }
    return fetch_remote(f->ref, f->dir, reterr);
}

static int load_meta(struct feature *f, struct berr **reterr)
{
    _cleanup_free_ char *path = xasprintf("%s/devcontainer-feature.json", f->dir);
    _cleanup_buf_ struct buf text = BUF_INIT;
    struct stat st;
    /* a downloaded feature could name a host file through a symlink */
    int r = lstat(path, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -EINVAL;
    if (r == 0)
        r = read_file(path, 1024 * 1024, &text);
    if (r < 0)
        return berr_make(reterr, -r, "feature '%s' has no devcontainer-feature.json", f->ref);
    _cleanup_free_ char *name = xasprintf("%s: devcontainer-feature.json", f->ref);
    r = dc_parse_jsonc(text.buf, text.len, name, &f->meta, reterr);
    if (r < 0)
        return r;
    _cleanup_free_ char *install = xasprintf("%s/install.sh", f->dir);
    if (lstat(install, &st) < 0 || !S_ISREG(st.st_mode))
        return berr_make(reterr, ENOENT, "feature '%s' has no install.sh", f->ref);
    return 0;
}

static bool id_matches(const struct feature *f, const char *want)
{
    _cleanup_free_ char *wid = feature_id(want);
    const char *own = json_string_value(json_object_get(f->meta, "id"));
    return strcmp(f->id, wid) == 0 || strcmp(f->ref, want) == 0 || (own && strcmp(own, wid) == 0);
}

/* The option's name as an environment variable: "version" -> VERSION. */
static char *option_env_name(const char *id)
{
    char *s = xstrdup(id);
    for (char *p = s; *p; p++)
        *p = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
    if (isdigit((unsigned char)s[0]))
        s[0] = '_';
    return s;
}

static void add_quoted(struct buf *out, const char *s)
{
    buf_addch(out, '\'');
    for (; *s; s++)
        if (*s == '\'')
            buf_adds(out, "'\\''");
        else
            buf_addch(out, *s);
    buf_addch(out, '\'');
}

static char *value_text(json_t *v)
{
    if (json_is_string(v))
        return xstrdup(json_string_value(v));
    if (json_is_true(v))
        return xstrdup("true");
    if (json_is_false(v))
        return xstrdup("false");
    if (json_is_number(v))
        return json_dumps(v, JSON_ENCODE_ANY);
    return xstrdup("");
}

/* The options file install.sh is run with: defaults, then the user's. */
static int write_options(const struct feature *f, const char *remote_user, struct berr **reterr)
{
    struct buf env = BUF_INIT;
    json_t *defaults = json_object_get(f->meta, "options");
    const char *k;
    json_t *v;
    json_object_foreach (defaults, k, v) {
        json_t *given = json_object_get(f->opts, k);
        _cleanup_free_ char *name = option_env_name(k);
        _cleanup_free_ char *val = value_text(given ? given : json_object_get(v, "default"));
        buf_addf(&env, "%s=", name);
        add_quoted(&env, val);
        buf_addch(&env, '\n');
    }
    const char *user = remote_user ? remote_user : "root";
    _cleanup_free_ char *home =
        strcmp(user, "root") == 0 ? xstrdup("/root") : xasprintf("/home/%s", user);
    const char *vars[][2] = {{"_REMOTE_USER", user},
                             {"_CONTAINER_USER", user},
                             {"_REMOTE_USER_HOME", home},
                             {"_CONTAINER_USER_HOME", home}};
    for (size_t i = 0; i < ELEMENTSOF(vars); i++) {
        buf_addf(&env, "%s=", vars[i][0]);
        add_quoted(&env, vars[i][1]);
        buf_addch(&env, '\n');
    }
    _cleanup_free_ char *path = xasprintf("%s/devcontainer-features.env", f->dir);
    int r = write_file_atomic(path, env.buf, env.len, 0644);
    buf_release(&env);
    if (r < 0)
        return berr_make(reterr, -r, "cannot write the options of feature '%s'", f->ref);
    return 0;
}

/* The feature's metadata entry: what it contributes to the configuration. */
static json_t *feature_metadata(const struct feature *f)
{
    static const char *const keys[] = {"containerEnv",
                                       "mounts",
                                       "capAdd",
                                       "securityOpt",
                                       "privileged",
                                       "init",
                                       "entrypoint",
                                       "customizations",
                                       "onCreateCommand",
                                       "updateContentCommand",
                                       "postCreateCommand",
                                       "postStartCommand",
                                       "postAttachCommand"};
    json_t *m = json_pack("{s:s}", "id", f->ref);
    for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
        json_t *v = json_object_get(f->meta, keys[i]);
        if (v)
            json_object_set(m, keys[i], v);
    }
    return m;
}

static void features_free(struct feature *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(list[i].ref);
        free(list[i].id);
        free(list[i].dir);
        json_decref(list[i].meta);
        json_decref(list[i].opts);
    }
    free(list);
}

/* The "after" map of wsb_feature_order from installsAfter and dependsOn. */
static int feature_dependencies(struct feature *list, size_t n, json_t **ret_ids,
                                json_t **ret_after, struct berr **reterr)
{
    json_t *ids = json_array(), *after = json_object();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(ids, json_string(list[i].ref));
        json_t *deps = json_array();
        json_t *soft = json_object_get(list[i].meta, "installsAfter");
        json_t *hard = json_object_get(list[i].meta, "dependsOn");
        size_t k;
        json_t *d;
        json_array_foreach (soft, k, d)
            for (size_t j = 0; j < n; j++)
                if (j != i && json_is_string(d) && id_matches(&list[j], json_string_value(d)))
                    json_array_append_new(deps, json_string(list[j].ref));
        const char *dk;
        json_object_foreach (hard, dk, d) {
            size_t j = 0;
            while (j < n && !(j != i && id_matches(&list[j], dk)))
                j++;
            if (j == n) {
                json_decref(deps);
                json_decref(ids);
                json_decref(after);
                return berr_make(reterr, ENOENT,
                                 "feature '%s' depends on '%s': add it to \"features\"",
                                 list[i].ref, dk);
            }
            json_array_append_new(deps, json_string(list[j].ref));
        }
        json_object_set_new(after, list[i].ref, deps);
    }
    *ret_ids = ids;
    *ret_after = after;
    return 0;
}

int wsb_features(const struct wsb *b, json_t *features, json_t *override_order,
                 const char *base_image, const char *remote_user, char **ret_image,
                 struct berr **reterr)
{
    size_t n = json_object_size(features);
    struct feature *list = xcalloc(n ? n : 1, sizeof(*list));
    json_t *ids = NULL, *after = NULL, *order = NULL, *meta = NULL, *base = NULL;
    struct buf dockerfile = BUF_INIT;
    _cleanup_free_ char *ctx = xasprintf("%s/features", b->work_dir);
    _cleanup_free_ char *tar = xasprintf("%s/features.tar", b->work_dir);
    _cleanup_free_ char *df_path = NULL, *names_text = NULL, *meta_text = NULL, *key = NULL,
                        *tag = NULL;
    int r = mkdir_p(ctx, 0755) < 0 ? berr_make(reterr, EIO, "cannot create '%s'", ctx) : 0;
    size_t i = 0;
    const char *ref;
    json_t *opts;
    json_object_foreach (features, ref, opts) {
        if (r < 0)
            break;
        list[i].ref = xstrdup(ref);
        list[i].id = feature_id(ref);
        /* a string is the version; true or an object of options */
        list[i].opts = json_is_object(opts) ? json_incref(opts) : json_object();
        _cleanup_free_ char *dir = xasprintf("%s/%zu", ctx, i);
        say(b, "fetching feature '%s'", ref);
        r = fetch_feature(b, &list[i], dir, reterr);
        if (r == 0)
            r = load_meta(&list[i], reterr);
        i++;
    }
    if (r == 0)
        r = feature_dependencies(list, n, &ids, &after, reterr);
    if (r == 0)
        r = dc_feature_order(ids, after, override_order, &order, reterr);
    if (r < 0)
        goto out;
    if (rt_image_inspect(b->rt, base_image, &base, reterr) < 0) {
        r = -ENOENT;
        goto out;
    }
    const char *label = json_string_value(json_object_get(
        json_object_get(json_object_get(base, "Config"), "Labels"), "devcontainer.metadata"));
    meta = dc_metadata_entries(label);
    if (!meta)
        meta = json_array();
    /* the image inspected, by id: nothing of the config's text in FROM */
    const char *base_id = json_string_value(json_object_get(base, "Id"));
    buf_addf(&dockerfile, "FROM %s\nUSER root\n", base_id ? base_id : base_image);
    size_t k;
    json_t *o;
    struct strv names = STRV_INIT;
    json_array_foreach (order, k, o) {
        size_t idx = 0;
        while (strcmp(list[idx].ref, json_string_value(o)) != 0)
            idx++;
        struct feature *f = &list[idx];
        r = write_options(f, remote_user, reterr);
        if (r < 0)
            break;
        strv_push(&names, f->ref);
        buf_addf(&dockerfile,
                 "COPY %zu/feature /tmp/berth-features/%zu\n"
                 "RUN cd /tmp/berth-features/%zu && chmod +x install.sh && set -a && "
                 ". ./devcontainer-features.env && set +a && ./install.sh\n",
                 idx, idx, idx);
        const char *ek;
        json_t *ev;
        json_object_foreach (json_object_get(f->meta, "containerEnv"), ek, ev) {
            if (!*ek ||
                strspn(ek, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") !=
                    strlen(ek) ||
                isdigit((unsigned char)ek[0]))
                continue;
            _cleanup_free_ char *val = value_text(ev);
            /* one instruction per line: a value cannot start another */
            if (strpbrk(val, "\n\r"))
                continue;
            buf_addf(&dockerfile, "ENV %s=", ek);
            add_quoted(&dockerfile, val);
            buf_addch(&dockerfile, '\n');
        }
        json_array_append_new(meta, feature_metadata(f));
    }
    if (r < 0) {
        strv_release(&names);
        goto out;
    }
    buf_adds(&dockerfile, "RUN rm -rf /tmp/berth-features\n");
    df_path = xasprintf("%s/Dockerfile", ctx);
    r = write_file_atomic(df_path, dockerfile.buf, dockerfile.len, 0644);
    if (r == 0)
        r = make_tar(ctx, tar, reterr);
    else
        r = berr_make(reterr, -r, "cannot write the features' Dockerfile");
    if (r < 0) {
        strv_release(&names);
        goto out;
    }
    names_text = strv_join(&names, ", ");
    strv_release(&names);
    const char *image_id = json_string_value(json_object_get(base, "Id"));
    meta_text = json_dumps(meta, JSON_COMPACT);
    const char *parts[] = {"features", image_id, meta_text};
    key = build_key(tar, parts, ELEMENTSOF(parts));
    tag = xasprintf("localhost/berth/features-%s:latest", key);
    if (image_exists(b, tag)) {
        say(b, "using the image with features %s built before (%s)", names_text, tag);
    } else {
        say(b, "installing features in this order: %s", names_text);
        json_t *labels =
            json_pack("{s:s, s:s}", "berth.managed", "1", "devcontainer.metadata", meta_text);
        struct engine_build eb = {.tag = tag, .dockerfile = "Dockerfile", .labels = labels};
        r = rt_image_build(b->rt, tar, &eb, b->log, b->data, reterr);
        json_decref(labels);
        if (r < 0)
            berr_wrap(reterr, "installing the features failed");
    }
    if (r == 0)
        *ret_image = TAKE_PTR(tag);
out:
    (void)unlink(tar);
    buf_release(&dockerfile);
    json_decref(ids);
    json_decref(after);
    json_decref(order);
    json_decref(meta);
    json_decref(base);
    features_free(list, n);
    return r;
}
