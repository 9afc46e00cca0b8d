/* pbtrigger.c - what starts prebuilds besides a person: a configuration's
 * poll for new commits, and a git host's push webhook.
 *
 * A configuration names a repository (and devcontainer path), the branches to
 * keep prebuilt (fnmatch patterns: "main", "release/[0-9]*"), how often to poll and how many
 * ready prebuilds to keep. Every PB_TICK_S the poller looks for configurations
 * that are due; a worker thread fetches each one's mirror and lists the
 * matching branches whose head has no prebuild yet (a ready, building or
 * failed one at that commit counts: a broken commit is not retried every
 * poll); back on the loop, a prebuild is started for each.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "git/git.h"
#include "store/accounts.h"
#include "util/log.h"
#include "workspace/ws-internal.h"

#define PB_TICK_S 5

bool prebuild_config_matches(const struct pb_config *c, const char *branch)
{
    json_t *patterns = json_object_get(c->settings, "branches");
    size_t i;
    json_t *v;
    json_array_foreach (patterns, i, v)
        if (json_is_string(v) && fnmatch(json_string_value(v), branch, 0) == 0)
            return true;
    return false;
}

/* Whether the owner has a prebuild of this config's repo, path and branch at
 * commit (one that is ready, building or failed there). */
static bool has_prebuild(struct ws_manager *m, const struct pb_config *c, const char *branch,
                         const char *commit)
{
    struct ws_record *list = NULL;
    size_t n = 0;
    if (store_pb_list(m->store, &list, &n, NULL) < 0)
        return true; /* no store, no new prebuilds */
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        struct ws_record *p = &list[i];
        /* the path it was asked for: the record's own is the one provision found */
        if (!found && p->owner && strcmp(p->owner, c->owner) == 0 &&
            prebuild_is_of(p, c->repo, branch,
                           *c->devcontainer_path ? c->devcontainer_path : NULL) &&
            p->commit && strcmp(p->commit, commit) == 0 && strcmp(p->state, "skipped") != 0 &&
            strcmp(p->state, "removed") != 0)
            found = true;
        ws_record_release(p);
    }
    free(list);
    return found;
}

int prebuild_from_config(struct ws_manager *m, const struct pb_config *c, const char *branch,
                         const char *commit, const char *trigger, struct ws_record *ret,
                         struct berr **reterr)
{
    struct user_rec u = {0};
    bool admin = store_user_get(m->store, c->owner, &u, NULL) == 0 && u.admin;
    user_rec_release(&u);
    struct ws_prebuild_request req = {
        .repo = c->repo,
        .branch = branch,
        .devcontainer_path = *c->devcontainer_path ? c->devcontainer_path : NULL,
        .owner = c->owner,
        .owner_is_admin = admin,
        .config_id = c->id,
        .keep = json_integer_value(json_object_get(c->settings, "keep")),
        .trigger = trigger,
        .commit = commit,
    };
    return ws_prebuild(m, &req, ret, reterr);
}

/* ---- the poller ---- */

struct poll_item {
    struct pb_config c;
    struct strv branches; /* found: branch names that need a prebuild */
    struct strv heads;    /* and their commits */
};

struct poll_work {
    uv_work_t w;
    struct ws_manager *m;
    struct poll_item *items;
    size_t n;
};

static void poll_run(uv_work_t *w)
{
    struct poll_work *pw = w->data;
    for (size_t i = 0; i < pw->n; i++) {
        struct poll_item *it = &pw->items[i];
        _cleanup_free_ char *mirror = NULL;
        _cleanup_berr_ struct berr *e = NULL;
        if (mirror_fetch(pw->m, it->c.repo, it->c.owner, NULL, NULL, &mirror, &e) < 0) {
            log_error("prebuild config %s: %s", it->c.id, berr_msg(e));
            continue;
        }
        _cleanup_buf_ struct buf out = BUF_INIT;
        if (git_run(mirror, NULL, NULL, &out, &e, "for-each-ref",
                    "--format=%(refname:lstrip=2) %(objectname)", "refs/heads", NULL) < 0) {
            log_error("prebuild config %s: %s", it->c.id, berr_msg(e));
            continue;
        }
        /* no patterns: the default branch */
        bool patterns = json_array_size(json_object_get(it->c.settings, "branches")) > 0;
        _cleanup_free_ char *def = patterns ? NULL : git_mirror_default_branch(mirror);
        char *save = NULL;
        for (char *line = strtok_r(out.buf, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
            char *sp = strrchr(line, ' ');
            if (!sp)
                continue;
            *sp = 0;
            bool wanted =
                patterns ? prebuild_config_matches(&it->c, line) : def && strcmp(def, line) == 0;
            if (wanted && !has_prebuild(pw->m, &it->c, line, sp + 1)) {
                strv_push(&it->branches, line);
                strv_push(&it->heads, sp + 1);
            }
        }
    }
}

static void poll_done(uv_work_t *w, int status)
{
    struct poll_work *pw = w->data;
    for (size_t i = 0; i < pw->n; i++) {
        struct poll_item *it = &pw->items[i];
        for (size_t b = 0; status == 0 && b < it->branches.n; b++) {
            struct ws_record rec;
            _cleanup_berr_ struct berr *e = NULL;
            if (prebuild_from_config(pw->m, &it->c, it->branches.v[b], it->heads.v[b], "poll", &rec,
                                     &e) < 0) {
                log_error("prebuild config %s: branch %s: %s", it->c.id, it->branches.v[b],
                          berr_msg(e));
                continue;
            }
            log_info("prebuild config %s: new commit on %s: prebuild %s", it->c.id,
                     it->branches.v[b], rec.id);
            ws_record_release(&rec);
        }
        strv_release(&it->branches);
        strv_release(&it->heads);
        pb_config_release(&it->c);
    }
    pw->m->polling = false;
    free(pw->items);
    free(pw);
}

static void poll_tick(uv_timer_t *t)
{
    struct ws_manager *m = t->data;
    if (m->polling)
        return;
    struct pb_config *list = NULL;
    size_t n = 0;
    if (store_pbc_list(m->store, &list, &n, NULL) < 0)
        return;
    int64_t now = store_now();
    struct poll_work *pw = xcalloc(1, sizeof(*pw));
    pw->m = m;
    for (size_t i = 0; i < n; i++) {
        int64_t every = json_integer_value(json_object_get(list[i].settings, "poll"));
        /* a clock that went back polls again rather than never */
        bool due = every > 0 && (now - list[i].last_poll >= every || now < list[i].last_poll);
        if (!due) {
            pb_config_release(&list[i]);
            continue;
        }
        (void)store_pbc_set_polled(m->store, list[i].id, now);
        pw->items = xrealloc(pw->items, (pw->n + 1) * sizeof(*pw->items));
        pw->items[pw->n++] =
            (struct poll_item){.c = list[i], .branches = STRV_INIT, .heads = STRV_INIT};
    }
    free(list);
    if (!pw->n) {
        free(pw);
        return;
    }
    m->polling = true;
    pw->w.data = pw;
    uv_queue_work(m->loop, &pw->w, poll_run, poll_done);
}

void prebuild_poller_start(struct ws_manager *m)
{
    uv_timer_init(m->loop, &m->poll_timer);
    m->poll_timer.data = m;
    uv_timer_start(&m->poll_timer, poll_tick, PB_TICK_S * 1000, PB_TICK_S * 1000);
    uv_unref((uv_handle_t *)&m->poll_timer);
}
