/* config.c - the stored logins (config.h): where the file is, reading it,
 * changing it under a lock, and writing it back so that it is never readable
 * by anyone else, not even for a moment.
 *
 * The file is small, so it is read whole into a jansson object and written
 * whole. Its bytes hold tokens: buffers that held them are wiped before they
 * are freed.
 */
#include "cli/config.h"

#include <fcntl.h>
#include <pwd.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <jansson.h>

#include "cli/commands.h"
#include "util/buf.h"
#include "util/fs.h"
#include "util/xalloc.h"

struct config {
    char *dir;
    char *path;
    json_t *root; /* an object whose "servers" is an object */
    int lock_fd;  /* the directory, flock()ed; -1 for config_read() */
};

/* $XDG_CONFIG_HOME/berth, else ~/.config/berth. The base directory specification
 * says a relative XDG_CONFIG_HOME is to be ignored. */
static int config_dir(char **ret_dir, struct berr **reterr)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    if (xdg && xdg[0] == '/') {
        *ret_dir = xasprintf("%s/berth", xdg);
        return 0;
    }
    const char *home = getenv("HOME");
    if (!home || home[0] != '/') {
        const struct passwd *pw = getpwuid(getuid());
        home = pw ? pw->pw_dir : NULL;
    }
    if (!home || home[0] != '/')
        return berr_make(reterr, ENOENT,
                         "cannot find where to keep logins: set HOME or XDG_CONFIG_HOME");
    *ret_dir = xasprintf("%s/.config/berth", home);
    return 0;
}

static void wipe_buf(struct buf *b)
{
    explicit_bzero(b->buf, b->len);
    buf_release(b);
}

static int config_load(struct config *cfg, struct berr **reterr)
{
    _cleanup_(wipe_buf) struct buf text = BUF_INIT;
    int r = read_file(cfg->path, CONFIG_MAX_SIZE, &text);
    if (r == -ENOENT) {
        cfg->root = json_pack("{s:{}}", "servers");
        return 0;
    }
    if (r == -EFBIG)
        return berr_make(reterr, EFBIG, "'%s' is larger than %u bytes", cfg->path, CONFIG_MAX_SIZE);
    if (r < 0)
        return berr_make(reterr, -r, "cannot read '%s': %s", cfg->path, strerror(-r));

    json_error_t jerr;
    cfg->root = json_loadb(text.buf, text.len, 0, &jerr);
    if (!cfg->root)
        return berr_make(reterr, EINVAL, "'%s' is not valid JSON: line %d: %s", cfg->path,
                         jerr.line, jerr.text);
    json_t *servers = json_object_get(cfg->root, "servers");
    if (!json_is_object(cfg->root) || (servers && !json_is_object(servers)))
        return berr_make(reterr, EINVAL, "'%s' is not a berth config: \"servers\" is not an object",
                         cfg->path);
    if (!servers)
        (void)json_object_set_new(cfg->root, "servers", json_object());

    struct stat st;
    if (stat(cfg->path, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
        fprintf(stderr,
                "berth: warning: '%s' holds tokens but other users may read it: "
                "run 'chmod 600 %s'\n",
                cfg->path, cfg->path);
    return 0;
}

static int config_new(struct config **ret_cfg, bool lock, struct berr **reterr)
{
    _cleanup_free_ char *dir = NULL;
    int r = config_dir(&dir, reterr);
    if (r < 0)
        return r;
    _cleanup_(config_freep) struct config *cfg = xcalloc(1, sizeof(*cfg));
    cfg->lock_fd = -1;
    cfg->path = xasprintf("%s/config.json", dir);
    cfg->dir = TAKE_PTR(dir);
    if (lock) {
        r = mkdir_p(cfg->dir, 0700);
        if (r < 0)
            return berr_make(reterr, -r, "cannot create '%s': %s", cfg->dir, strerror(-r));
        cfg->lock_fd = open(cfg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (cfg->lock_fd < 0)
            return berr_make(reterr, errno, "cannot open '%s': %s", cfg->dir, strerror(errno));
        /* The directory is ours alone even if it was made before, by hand. */
        struct stat st;
        if (fstat(cfg->lock_fd, &st) == 0 && st.st_uid == getuid() &&
            (st.st_mode & (S_IRWXG | S_IRWXO)))
            (void)fchmod(cfg->lock_fd, 0700);
        while (flock(cfg->lock_fd, LOCK_EX) < 0)
            if (errno != EINTR)
                return berr_make(reterr, errno, "cannot lock '%s': %s", cfg->dir, strerror(errno));
    }
    r = config_load(cfg, reterr);
    if (r < 0)
        return r;
    *ret_cfg = TAKE_PTR(cfg);
    return 0;
}

int config_read(struct config **ret_cfg, struct berr **reterr)
{
    return config_new(ret_cfg, false, reterr);
}

int config_open(struct config **ret_cfg, struct berr **reterr)
{
    return config_new(ret_cfg, true, reterr);
}

struct config *config_free(struct config *cfg)
{
    if (!cfg)
        return NULL;
    closep(&cfg->lock_fd); /* drops the lock */
    json_decref(cfg->root);
    free(cfg->dir);
    free(cfg->path);
    free(cfg);
    return NULL;
}

static const json_t *config_server(const struct config *cfg, const char *url)
{
    return json_object_get(json_object_get(cfg->root, "servers"), url);
}

const char *config_token(const struct config *cfg, const char *url)
{
    const char *token = json_string_value(json_object_get(config_server(cfg, url), "token"));
    return token && *token ? token : NULL;
}

int config_set(struct config *cfg, const char *url, const char *token, const char *user,
               struct berr **reterr)
{
    _cleanup_(json_decrefp) json_t *server = json_object();
    if (json_object_set_new(server, "token", json_string(token)) < 0)
        return berr_make(reterr, EINVAL, "the token is not valid UTF-8");
    int r = cmd_json_set(server, "user", user, reterr);
    if (r < 0)
        return r;
    if (json_object_set(json_object_get(cfg->root, "servers"), url, server) < 0)
        return berr_make(reterr, EINVAL, "server URL '%s' is not valid UTF-8", url);
    return 0;
}

bool config_remove(struct config *cfg, const char *url)
{
    return json_object_del(json_object_get(cfg->root, "servers"), url) == 0;
}

static void wipe_str(char **s)
{
    if (*s)
        explicit_bzero(*s, strlen(*s));
    free(*s);
}

/* Writes the whole of data to a new 0600 file in the config directory, then
 * renames it over the config: mkostemp() creates it with O_EXCL and mode 0600,
 * so the token is never in a file another user could open. */
int config_save(struct config *cfg, struct berr **reterr)
{
    if (cfg->lock_fd < 0)
        return berr_make(reterr, EBADF, "'%s' was opened read-only", cfg->path);
    _cleanup_(wipe_str) char *text = json_dumps(cfg->root, JSON_INDENT(2));
    if (!text)
        return berr_make(reterr, ENOMEM, "cannot encode '%s'", cfg->path);
    _cleanup_free_ char *tmp = xasprintf("%s/.config.json.XXXXXX", cfg->dir);
    _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return berr_make(reterr, errno, "cannot create a file in '%s': %s", cfg->dir,
                         strerror(errno));
    size_t len = strlen(text);
    int r = fchmod(fd, 0600) < 0 ? -errno : 0;
    if (r >= 0)
        r = write_all(fd, text, len);
    if (r >= 0)
        r = write_all(fd, "\n", 1);
    if (r >= 0 && fsync(fd) < 0)
        r = -errno;
    if (r >= 0 && close(TAKE_FD(fd)) < 0)
        r = -errno;
    if (r >= 0 && rename(tmp, cfg->path) < 0)
        r = -errno;
    if (r < 0) {
        (void)unlink(tmp);
        return berr_make(reterr, -r, "cannot write '%s': %s", cfg->path, strerror(-r));
    }
    (void)fsync(cfg->lock_fd); /* the rename, on file systems that need it */
    return 0;
}
