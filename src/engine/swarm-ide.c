/* swarm-ide.c - VS Code's tree on the nodes of a Swarm (swarm-ide.h). */
#include "engine/swarm-ide.h"
#include "engine/swarm-job.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "util/buf.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/run.h"
#include "util/strv.h"
#include "util/xalloc.h"

#define IDE_LABEL "berth.ide"
/* on the image: "FILES BYTES", the regular files of the tree and their size */
#define IDE_TREE_LABEL "berth.ide.tree"
/* check-tree's exit status when it found the volume partly filled and emptied it */
#define CHECK_EMPTIED 3
#define IDE_TARGET "/.berth-ide"
#define FILL_TIMEOUT_MS (600 * 1000) /* a first pull of the tree on a slow node */

struct swarm_ide {
    struct engine *e; /* borrowed */
    char *ide_dir;
    char *work_dir;
    char *repo;   /* REGISTRY/berth/ide */
    char *tag;    /* the tree's hash */
    char *volume; /* berth-ide-<tag> */
    pthread_mutex_t lock;
    char *ref;          /* REPO@DIGEST once pushed */
    char *tree;         /* the image's IDE_TREE_LABEL; NULL for an image made without */
    struct strv filled; /* node ids */
};

struct swarm_ide *swarm_ide_new(struct engine *manager, const char *registry, const char *ide_dir,
                                const char *work_dir)
{
    /* the tree as setup.sh installs it: the launcher and the package's
     * manifest name its version */
    static const char *const parts[] = {"bin/code-server",
                                        "lib/node_modules/code-server/package.json"};
    _cleanup_buf_ struct buf text = BUF_INIT;
    for (size_t k = 0; k < ELEMENTSOF(parts); k++) {
        _cleanup_free_ char *path = xasprintf("%s/%s", ide_dir, parts[k]);
        if (read_file(path, 1 << 20, &text) < 0)
            return NULL;
    }
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)text.buf, text.len);
    char hex[2 * sizeof(h) + 1];
    sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
    struct swarm_ide *i = xcalloc(1, sizeof(*i));
    i->e = manager;
    i->ide_dir = xstrdup(ide_dir);
    i->work_dir = xstrdup(work_dir);
    i->repo = xasprintf("%s/berth/ide", registry);
    i->tag = xstrndup(hex, 12);
    i->volume = xasprintf("berth-ide-%s", i->tag);
    pthread_mutex_init(&i->lock, NULL);
    i->filled = (struct strv)STRV_INIT;
    return i;
}

void swarm_ide_free(struct swarm_ide *i)
{
    if (!i)
        return;
    pthread_mutex_destroy(&i->lock);
    strv_release(&i->filled);
    free(i->ide_dir);
    free(i->work_dir);
    free(i->repo);
    free(i->tag);
    free(i->volume);
    free(i->ref);
    free(i->tree);
    free(i);
}

const char *swarm_ide_volume(const struct swarm_ide *i)
{
    return i->volume;
}

static int build_image(struct swarm_ide *i, const char *image, struct berr **reterr);

/* The image built from the tree (on the manager, once: a later berthd finds
 * it there) and pushed; *ret_ref pins what the registry stored, by digest,
 * so that a tag someone else pushed there is never what a node runs. */
static int push_image(struct swarm_ide *i, char **ret_ref, struct berr **reterr)
{
    _cleanup_free_ char *image = xasprintf("%s:%s", i->repo, i->tag);
    _cleanup_(json_decrefp) json_t *have = NULL;
    int r = 0;
    if (engine_image_inspect(i->e, image, &have, NULL) < 0) {
        r = build_image(i, image, reterr);
        if (r == 0)
            r = engine_image_inspect(i->e, image, &have, reterr);
    }
    const char *tree = json_string_value(json_object_get(
        json_object_get(json_object_get(have, "Config"), "Labels"), IDE_TREE_LABEL));
    free(i->tree);
    i->tree = tree && strchr(tree, ' ') ? xstrdup(tree) : NULL;
    _cleanup_free_ char *digest = NULL;
    if (r == 0)
        r = engine_image_push(i->e, i->repo, i->tag, &digest, reterr);
    if (r < 0)
        return berr_wrap(reterr, "the nodes pull VS Code from the registry");
    *ret_ref = xasprintf("%s@%s", i->repo, digest);
    return 0;
}

/* The tree's regular files and their bytes, as a fill job counts them in
 * the volume (nftw has no user data: the counts are the thread's, under
 * i->lock). */
static __thread uint64_t tree_files, tree_bytes;

static int tree_count(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)path, (void)f;
    if (flag == FTW_F && S_ISREG(st->st_mode)) {
        tree_files++;
        tree_bytes += (uint64_t)st->st_size;
    }
    return 0;
}

static int build_image(struct swarm_ide *i, const char *image, struct berr **reterr)
{
    /* the context: a Dockerfile and the tree beside it */
    _cleanup_free_ char *ctx = xasprintf("%s/ide-build", i->work_dir);
    _cleanup_free_ char *tar = xasprintf("%s/ide-build.tar", i->work_dir);
    (void)rm_rf(ctx);
    int r = mkdir_p(ctx, 0700);
    if (r < 0)
        return berr_make(reterr, -r, "cannot create '%s': %s", ctx, strerror(-r));
    _cleanup_free_ char *copy = xstrdup(i->ide_dir), *copy2 = xstrdup(i->ide_dir);
    const char *base = basename(copy), *parent = dirname(copy2);
    _cleanup_(json_decrefp) json_t *src = json_pack("[s, s]", base, IDE_TARGET);
    _cleanup_free_ char *src_text = json_dumps(src, JSON_COMPACT);
    tree_files = tree_bytes = 0;
    if (nftw(i->ide_dir, tree_count, 16, FTW_PHYS) < 0)
        return berr_make(reterr, errno, "cannot read VS Code's tree '%s': %s", i->ide_dir,
                         strerror(errno));
    _cleanup_free_ char *dockerfile =
        xasprintf("FROM scratch\nCOPY %s\nLABEL " IDE_TREE_LABEL "=\"%" PRIu64 " %" PRIu64 "\"\n",
                  src_text, tree_files, tree_bytes);
    _cleanup_free_ char *dpath_file = xasprintf("%s/Dockerfile", ctx);
    r = write_file_atomic(dpath_file, dockerfile, strlen(dockerfile), 0600);
    if (r < 0)
        r = berr_make(reterr, -r, "cannot write '%s': %s", dpath_file, strerror(-r));
    _cleanup_(run_cmd_releasep) struct run_cmd t = RUN_CMD_INIT;
    strv_pushl(&t.args, "tar", "-cf", tar, "-C", ctx, "Dockerfile", "-C", parent, base, NULL);
    t.timeout_ms = 600000;
    t.capture = true;
    if (r == 0) {
        r = run_cmd(&t, reterr);
        if (r > 0)
            r = berr_make(reterr, EIO, "cannot pack VS Code's tree '%s'", i->ide_dir);
    }
    if (r == 0) {
        struct engine_build b = {.tag = image};
        r = engine_image_build(i->e, tar, &b, NULL, NULL, reterr);
    }
    (void)unlink(tar);
    (void)rm_rf(ctx);
    return r;
}

/* One fill job on node_id: the volume is mounted empty the first time, so
 * Docker copies the image's tree into it; the job checks that the tree is
 * whole (check-tree: as many files and bytes as the image's label says), or,
 * for an image without the label, that code-server is there. */
static int fill_job(struct swarm_ide *i, const char *node_id, const char *cfg_id,
                    const char *cfg_name, struct berr **reterr)
{
    _cleanup_free_ char *name = xasprintf("berth-ide-fill-%.12s", node_id);
    json_t *args = json_pack("[s, s]", i->tree ? "check-tree" : "check",
                             i->tree ? IDE_TARGET : IDE_TARGET "/bin/code-server");
    if (i->tree) {
        _cleanup_free_ char *files = xstrndup(i->tree, (size_t)(strchr(i->tree, ' ') - i->tree));
        json_array_append_new(args, json_string(files));
        json_array_append_new(args, json_string(strchr(i->tree, ' ') + 1));
    }
    json_t *container = json_pack(
        "{s:s, s:[s], s:o, s:[{s:s, s:s, s:s, s:{s:{s:s}}}], s:o}", "Image", i->ref, "Command",
        "/.berth-agent/berth-agent", "Args", args, "Mounts", "Type", "volume", "Source", i->volume,
        "Target", IDE_TARGET, "VolumeOptions", "Labels", IDE_LABEL, i->tag, "Configs",
        swarm_agent_configs("/.berth-agent/berth-agent", cfg_id, cfg_name));
    return swarm_job_run(i->e, name, node_id, container, json_pack("{s:s}", IDE_LABEL, i->tag),
                         FILL_TIMEOUT_MS, reterr);
}

static bool job_exited(struct berr *e, int status)
{
    char want[32];
    snprintf(want, sizeof(want), "(exit %d)", status);
    return e && strstr(berr_msg(e), want);
}

static int fill_node(struct swarm_ide *i, const char *node_id, const char *cfg_id,
                     const char *cfg_name, struct berr **reterr)
{
    struct berr *e = NULL;
    int r = fill_job(i, node_id, cfg_id, cfg_name, &e);
    /* a fill cut short (its node's dockerd killed in the middle) left part
     * of the tree, which Docker never copies into again: check-tree emptied
     * it, and the next job's mount fills it anew */
    if (r < 0 && job_exited(e, CHECK_EMPTIED)) {
        log_warn("VS Code's copy in the volume %s on node %.12s was not whole: emptied, and "
                 "filled again",
                 i->volume, node_id);
        berr_free(e);
        e = NULL;
        r = fill_job(i, node_id, cfg_id, cfg_name, &e);
    }
    if (r < 0 && (job_exited(e, 1) || job_exited(e, CHECK_EMPTIED))) {
        berr_free(e);
        return berr_make(reterr, EIO, "the tree is not whole in the volume %s on node %.12s",
                         i->volume, node_id);
    }
    if (r < 0 && reterr)
        *reterr = e;
    else
        berr_free(e);
    return r;
}

int swarm_ide_push(struct swarm_ide *i, struct berr **reterr)
{
    pthread_mutex_lock(&i->lock);
    int r = i->ref ? 0 : push_image(i, &i->ref, reterr);
    pthread_mutex_unlock(&i->lock);
    return r;
}

int swarm_ide_fill(struct swarm_ide *i, const char *node_id, const char *cfg_id,
                   const char *cfg_name, struct berr **reterr)
{
    pthread_mutex_lock(&i->lock);
    int r = i->ref ? 0 : push_image(i, &i->ref, reterr);
    if (r == 0 && !strv_contains(&i->filled, node_id)) {
        r = fill_node(i, node_id, cfg_id, cfg_name, reterr);
        if (r == 0)
            strv_push(&i->filled, node_id);
    }
    pthread_mutex_unlock(&i->lock);
    return r < 0 ? berr_wrap(reterr, "bring VS Code to the node") : 0;
}
