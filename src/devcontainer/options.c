/* options.c - container options from devcontainer.json, checked against the
 * admin's policy. See options.h for the allow-list's entries.
 *
 * One pass reads the merged configuration's settings and then runArgs into a
 * struct dc_run_options. Each setting the policy does not allow is noted in
 * the pass's list of refusals and the pass goes on, so that the caller learns
 * of every one; a malformed value ends the pass at once. dc_run_options_build
 * turns a non-empty list into one error, and dc_policy_check hands the list
 * itself to `berth config`.
 */
#include "devcontainer/options.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/buf.h"
#include "util/path.h"
#include "util/size.h"
#include "util/xalloc.h"

void dc_run_options_release(struct dc_run_options *o)
{
    struct strv *lists[] = {&o->cap_add, &o->cap_drop, &o->security_opt, &o->devices,
                            &o->env,     &o->labels,   &o->granted};
    for (size_t i = 0; i < ELEMENTSOF(lists); i++)
        strv_release(lists[i]);
    free(o->network);
    free(o->hostname);
    for (size_t i = 0; i < o->n_mounts; i++) {
        free(o->mounts[i].source);
        free(o->mounts[i].target);
    }
    free(o->mounts);
    *o = (struct dc_run_options){0};
}

static void options_init(struct dc_run_options *o)
{
    *o = (struct dc_run_options){.cap_add = STRV_INIT,
                                 .cap_drop = STRV_INIT,
                                 .security_opt = STRV_INIT,
                                 .devices = STRV_INIT,
                                 .env = STRV_INIT,
                                 .labels = STRV_INIT,
                                 .granted = STRV_INIT};
}

/* What the parser works with: the configuration, the policy, the file's name
 * for messages, the options being filled and the refusals gathered so far. */
struct ctx {
    const char *file;
    const struct dc_config *c;
    const struct dc_policy *p;
    struct dc_run_options *o;
    struct dc_refusals refused;
};

void dc_refusals_release(struct dc_refusals *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].what);
        free(r->v[i].why);
        strv_release(&r->v[i].allow);
        free(r->v[i].fix);
    }
    free(r->v);
    *r = (struct dc_refusals){0};
}

/* Notes a refused setting (why is taken); the pass goes on. */
static struct dc_refusal *refusal_add(struct ctx *x, const char *what, char *why)
{
    struct dc_refusals *r = &x->refused;
    r->v = xrealloc(r->v, (r->n + 1) * sizeof(*r->v));
    struct dc_refusal *f = &r->v[r->n++];
    *f = (struct dc_refusal){.what = xstrdup(what), .why = why, .allow = STRV_INIT};
    return f;
}

/* What each kind of allow-list entry lets a container do, for the refusal. */
static const struct {
    const char *kind;
    const char *why;
} kinds[] = {
    {"privileged", "gives the container every capability and the host's devices"},
    {"capAdd", "adds a Linux capability to the container"},
    {"securityOpt", "changes how the container is confined"},
    {"network", "puts the container on a network other than its own"},
    {"device", "gives the container a device of the host"},
    {"bind", "mounts a folder of the host into the container"},
};

/* A refusal that the entries (up to a NULL) would lift. */
__attribute__((sentinel)) static void refuse(struct ctx *x, const char *what, const char *kind, ...)
{
    const char *why = "needs an allow-list entry";
    for (size_t i = 0; i < ELEMENTSOF(kinds); i++)
        if (strcmp(kinds[i].kind, kind) == 0)
            why = kinds[i].why;
    struct dc_refusal *f = refusal_add(x, what, xstrdup(why));
    struct buf fix = BUF_INIT;
    buf_adds(&fix, "berth admin settings");
    va_list ap;
    va_start(ap, kind);
    for (const char *e = va_arg(ap, const char *); e; e = va_arg(ap, const char *)) {
        strv_push(&f->allow, e);
        buf_addf(&fix, " --allow %s", e);
    }
    va_end(ap);
    f->fix = buf_detach(&fix, NULL);
}

static bool allowed_by(const struct strv *allow, const char *kind, const char *value)
{
    size_t klen = strlen(kind);
    for (size_t i = 0; allow && i < allow->n; i++) {
        const char *e = allow->v[i];
        if (strncmp(e, kind, klen) != 0 || e[klen] != (value ? ':' : 0))
            continue;
        if (!value || strcmp(e + klen + 1, value) == 0 || strcmp(e + klen + 1, "*") == 0)
            return true;
        /* an entry saved before capabilities had one spelling */
        if (strcmp(kind, "capAdd") == 0) {
            _cleanup_free_ char *cap = dc_cap_name(e + klen + 1);
            if (cap && strcmp(cap, value) == 0)
                return true;
        }
    }
    return false;
}

/* Whether one allow-listed option may be had; `what` names where it came
 * from. A refusal is noted and the pass goes on. */
static bool need(struct ctx *x, const char *what, const char *kind, const char *value)
{
    _cleanup_free_ char *entry = xasprintf("%s%s%s", kind, value ? ":" : "", value ? value : "");
    if (!allowed_by(x->p->allow, kind, value)) {
        refuse(x, what, kind, entry, NULL);
        return false;
    }
    strv_push(&x->o->granted, entry);
    return true;
}

static bool bind_allowed(const struct strv *allow, const char *path)
{
    for (size_t i = 0; allow && i < allow->n; i++)
        if (strncmp(allow->v[i], "bind:/", 6) == 0 && path_is_under(path, allow->v[i] + 5))
            return true;
    return false;
}

bool dc_policy_allows(const struct dc_policy *p, const char *granted)
{
    if (strncmp(granted, "bind:", 5) == 0)
        return bind_allowed(p->allow, granted + 5);
    const char *colon = strchr(granted, ':');
    _cleanup_free_ char *kind = colon ? xstrndup(granted, (size_t)(colon - granted)) : NULL;
    return allowed_by(p->allow, kind ? kind : granted, colon ? colon + 1 : NULL);
}

/* A bind of a host path: only under an allowed prefix, and never over
 * (or around) the engine socket, the data directory or other forbidden paths.
 * Returns 1 with the path to mount, 0 when refused (noted), or an error. */
static int check_bind(struct ctx *x, const char *what, const char *source, char **ret_real,
                      struct berr **reterr)
{
    if (source[0] != '/')
        return berr_make(reterr, EINVAL, "'%s': %s: a bind mount's source must be an absolute path",
                         x->file, what);
    /* judged by the path as written (without "." and "..") and by where it
     * really leads (symlinks resolved), when it exists */
    _cleanup_free_ char *lexical = path_normalize(source);
    char resolved[PATH_MAX];
    const char *real = realpath(source, resolved) ? resolved : lexical;
    /* first what no entry can allow: an entry would not help there */
    const struct strv *forbidden = x->p->forbidden;
    const char *forms[] = {real, lexical};
    for (size_t i = 0; forbidden && i < forbidden->n; i++)
        for (size_t k = 0; k < ELEMENTSOF(forms); k++)
            if (path_is_under(forms[k], forbidden->v[i]) ||
                path_is_under(forbidden->v[i], forms[k])) {
                (void)refusal_add(
                    x, what,
                    xasprintf("would expose '%s', which no workspace may mount", forbidden->v[i]));
                return 0;
            }
    bool real_ok = bind_allowed(x->p->allow, real);
    bool lexical_ok = bind_allowed(x->p->allow, lexical);
    if (!real_ok || !lexical_ok) {
        /* the entry for each form that is not allowed yet */
        _cleanup_free_ char *e1 = xasprintf("bind:%s", real_ok ? lexical : real);
        _cleanup_free_ char *e2 = !real_ok && !lexical_ok && strcmp(real, lexical) != 0
                                      ? xasprintf("bind:%s", lexical)
                                      : NULL;
        refuse(x, what, "bind", e1, e2, NULL);
        return 0;
    }
    /* the engine mounts the path that was checked, not the symlink */
    *ret_real = xstrdup(real);
    /* both were judged: both are judged again at each start */
    strv_pushf(&x->o->granted, "bind:%s", real);
    if (strcmp(real, lexical) != 0)
        strv_pushf(&x->o->granted, "bind:%s", lexical);
    return 1;
}

static bool valid_volume_name(const char *n)
{
    if (!n || !*n || strlen(n) > 64 ||
        !strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                "0123456789",
                n[0]))
        return false;
    return strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
           strlen(n);
}

static int add_mount(struct ctx *x, const char *what, enum dc_mount_type type, const char *source,
                     const char *target, bool readonly, struct berr **reterr)
{
    if (!target || target[0] != '/')
        return berr_make(reterr, EINVAL, "'%s': %s: a mount needs an absolute target", x->file,
                         what);
    /* judged (and mounted) without "..", "." or doubled slashes */
    _cleanup_free_ char *clean = path_normalize(target);
    if (path_is_under(clean, "/.berth") || path_is_under(clean, "/.berth-agent") ||
        path_is_under(clean, "/.berth-ide") || path_is_under(clean, "/.berth-vsix") ||
        strcmp(clean, "/") == 0)
        return berr_make(reterr, EPERM, "'%s': %s: '%s' is reserved by Berth", x->file, what,
                         target);
    target = clean;
    int r = 1;
    _cleanup_free_ char *real = NULL;
    if (type == DC_MOUNT_BIND)
        r = check_bind(x, what, source ? source : "", &real, reterr);
    else if (type == DC_MOUNT_VOLUME && source && !valid_volume_name(source))
        r = berr_make(reterr, EINVAL,
                      "'%s': %s: volume name '%s' must be letters, digits, '_', '.' or '-'",
                      x->file, what, source);
    if (r <= 0)
        return r;
    struct dc_run_options *o = x->o;
    o->mounts = xrealloc(o->mounts, (o->n_mounts + 1) * sizeof(*o->mounts));
    o->mounts[o->n_mounts++] = (struct dc_mount){.type = type,
                                                 .source = real     ? TAKE_PTR(real)
                                                           : source ? xstrdup(source)
                                                                    : NULL,
                                                 .target = xstrdup(target),
                                                 .readonly = readonly};
    return 0;
}

static int parse_type(const struct ctx *x, const char *what, const char *t, enum dc_mount_type *ret,
                      struct berr **reterr)
{
    if (!t || strcmp(t, "volume") == 0)
        *ret = DC_MOUNT_VOLUME;
    else if (strcmp(t, "tmpfs") == 0)
        *ret = DC_MOUNT_TMPFS;
    else if (strcmp(t, "bind") == 0)
        *ret = DC_MOUNT_BIND;
    else
        return berr_make(reterr, EINVAL, "'%s': %s: mount type '%s' is not supported", x->file,
                         what, t);
    return 0;
}

/* "type=volume,source=x,target=/y,readonly" (the --mount syntax). */
static int mount_from_string(struct ctx *x, const char *what, const char *spec,
                             struct berr **reterr)
{
    _cleanup_free_ char *copy = xstrdup(spec);
    char *type = NULL, *source = NULL, *target = NULL;
    bool readonly = false;
    for (char *save = NULL, *f = strtok_r(copy, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(f, '=');
        const char *val = eq ? eq + 1 : "";
        if (eq)
            *eq = 0;
        if (strcmp(f, "type") == 0)
            type = (char *)val;
        else if (strcmp(f, "source") == 0 || strcmp(f, "src") == 0)
            source = (char *)val;
        else if (strcmp(f, "target") == 0 || strcmp(f, "dst") == 0 || strcmp(f, "destination") == 0)
            target = (char *)val;
        else if (strcmp(f, "readonly") == 0 || strcmp(f, "ro") == 0)
            readonly = !eq || strcmp(val, "true") == 0 || strcmp(val, "1") == 0;
        else if (strcmp(f, "consistency") != 0 && strcmp(f, "external") != 0)
            return berr_make(reterr, EINVAL, "'%s': %s: mount option '%s' is not supported",
                             x->file, what, f);
    }
    enum dc_mount_type t;
    int r = parse_type(x, what, type, &t, reterr);
    if (r < 0)
        return r;
    return add_mount(x, what, t, source && *source ? source : NULL, target, readonly, reterr);
}

/* A merged mount named by its place in the file, or as the image's when it
 * came from the image's metadata (or a feature's). */
static char *mount_place(const struct ctx *x, json_t *m)
{
    size_t i;
    json_t *v;
    json_array_foreach (json_object_get(x->c->raw, "mounts"), i, v)
        if (json_equal(v, m))
            return xasprintf("\"mounts\"[%zu]", i);
    return xstrdup("a mount of the image's metadata");
}

static int mount_from_json(struct ctx *x, json_t *m, struct berr **reterr)
{
    _cleanup_free_ char *place = mount_place(x, m);
    _cleanup_free_ char *what = NULL;
    if (json_is_string(m)) {
        what = xasprintf("%s \"%s\"", place, json_string_value(m));
        return mount_from_string(x, what, json_string_value(m), reterr);
    }
    what = TAKE_PTR(place);
    const char *type = json_string_value(json_object_get(m, "type"));
    const char *source = json_string_value(json_object_get(m, "source"));
    const char *target = json_string_value(json_object_get(m, "target"));
    enum dc_mount_type t;
    int r = parse_type(x, what, type, &t, reterr);
    if (r < 0)
        return r;
    return add_mount(x, what, t, source && *source ? source : NULL, target,
                     json_is_true(json_object_get(m, "readonly")), reterr);
}

/* -v SRC:DST[:ro]: a bind when SRC is a path, a named volume otherwise. */
static int mount_from_volume_flag(struct ctx *x, const char *what, const char *spec,
                                  struct berr **reterr)
{
    _cleanup_free_ char *copy = xstrdup(spec);
    char *parts[3] = {NULL, NULL, NULL};
    size_t n = 0;
    for (char *save = NULL, *f = strtok_r(copy, ":", &save); f && n < 3;
         f = strtok_r(NULL, ":", &save))
        parts[n++] = f;
    if (n == 1)
        return add_mount(x, what, DC_MOUNT_VOLUME, NULL, parts[0], false, reterr);
    bool ro = n == 3 && strcmp(parts[2], "ro") == 0;
    enum dc_mount_type t = parts[0][0] == '/' || parts[0][0] == '.' || parts[0][0] == '~'
                               ? DC_MOUNT_BIND
                               : DC_MOUNT_VOLUME;
    return add_mount(x, what, t, parts[0], parts[1], ro, reterr);
}

static void push_unique(struct strv *v, const char *s)
{
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->v[i], s) == 0)
            return;
    strv_push(v, s);
}

static int set_cpus(struct ctx *x, const char *what, double cpus, struct berr **reterr)
{
    if (!isfinite(cpus) || cpus <= 0 || cpus > 1e6)
        return berr_make(reterr, EINVAL, "'%s': %s: the number of CPUs must be positive", x->file,
                         what);
    if (x->p->max_cpus > 0 && cpus > (double)x->p->max_cpus) {
        struct dc_refusal *f = refusal_add(
            x, what,
            xasprintf("asks for %g CPUs, but this server allows at most %lld per workspace", cpus,
                      (long long)x->p->max_cpus));
        /* whole CPUs, rounded up (without libm, which the CLI does not link) */
        long long whole = (long long)cpus + ((double)(long long)cpus < cpus);
        f->fix = xasprintf("berth admin settings --max-cpus %lld", whole);
        return 0;
    }
    x->o->nano_cpus = (int64_t)(cpus * 1e9);
    return 0;
}

static int set_memory(struct ctx *x, const char *what, int64_t bytes, struct berr **reterr)
{
    if (bytes <= 0)
        return berr_make(reterr, EINVAL, "'%s': %s: not a memory size", x->file, what);
    if (x->p->max_memory > 0 && bytes > x->p->max_memory) {
        long long mib = (long long)((bytes + (1 << 20) - 1) >> 20);
        struct dc_refusal *f =
            refusal_add(x, what,
                        xasprintf("asks for %lld MiB of memory, but this server allows at most "
                                  "%lld MiB per workspace",
                                  (long long)(bytes >> 20), (long long)(x->p->max_memory >> 20)));
        f->fix = xasprintf("berth admin settings --max-memory %lldmb", mib);
        return 0;
    }
    x->o->memory = bytes;
    return 0;
}

/* Docker's size suffixes are single letters (512m, 2g); the spec's are "mb". */
static int64_t parse_flag_size(const char *v)
{
    int64_t r = size_parse(v);
    if (r >= 0)
        return r;
    _cleanup_free_ char *with_b = xasprintf("%sb", v);
    return size_parse(with_b);
}

static void set_network(struct ctx *x, const char *what, const char *net)
{
    if (strcmp(net, "bridge") != 0 && strcmp(net, "default") != 0 && !need(x, what, "network", net))
        return;
    free(x->o->network);
    x->o->network = xstrdup(net);
}

enum flag_id {
    F_PRIVILEGED,
    F_INIT,
    F_CAP_ADD,
    F_CAP_DROP,
    F_SECURITY_OPT,
    F_NETWORK,
    F_DEVICE,
    F_ENV,
    F_LABEL,
    F_SHM_SIZE,
    F_CPUS,
    F_MEMORY,
    F_MOUNT,
    F_VOLUME,
    F_TMPFS,
    F_HOSTNAME,
};

static const struct {
    const char *name;
    const char *alias;
    enum flag_id id;
    bool value;
} flags[] = {
    {"--privileged", NULL, F_PRIVILEGED, false},
    {"--init", NULL, F_INIT, false},
    {"--cap-add", NULL, F_CAP_ADD, true},
    {"--cap-drop", NULL, F_CAP_DROP, true},
    {"--security-opt", NULL, F_SECURITY_OPT, true},
    {"--network", "--net", F_NETWORK, true},
    {"--device", NULL, F_DEVICE, true},
    {"--env", "-e", F_ENV, true},
    {"--label", "-l", F_LABEL, true},
    {"--shm-size", NULL, F_SHM_SIZE, true},
    {"--cpus", NULL, F_CPUS, true},
    {"--memory", "-m", F_MEMORY, true},
    {"--mount", NULL, F_MOUNT, true},
    {"--volume", "-v", F_VOLUME, true},
    {"--tmpfs", NULL, F_TMPFS, true},
    {"--hostname", "-h", F_HOSTNAME, true},
};

char *dc_cap_name(const char *name)
{
    static const char *const caps[] = {"ALL",
                                       "CHOWN",
                                       "DAC_OVERRIDE",
                                       "DAC_READ_SEARCH",
                                       "FOWNER",
                                       "FSETID",
                                       "KILL",
                                       "SETGID",
                                       "SETUID",
                                       "SETPCAP",
                                       "LINUX_IMMUTABLE",
                                       "NET_BIND_SERVICE",
                                       "NET_BROADCAST",
                                       "NET_ADMIN",
                                       "NET_RAW",
                                       "IPC_LOCK",
                                       "IPC_OWNER",
                                       "SYS_MODULE",
                                       "SYS_RAWIO",
                                       "SYS_CHROOT",
                                       "SYS_PTRACE",
                                       "SYS_PACCT",
                                       "SYS_ADMIN",
                                       "SYS_BOOT",
                                       "SYS_NICE",
                                       "SYS_RESOURCE",
                                       "SYS_TIME",
                                       "SYS_TTY_CONFIG",
                                       "MKNOD",
                                       "LEASE",
                                       "AUDIT_WRITE",
                                       "AUDIT_CONTROL",
                                       "SETFCAP",
                                       "MAC_OVERRIDE",
                                       "MAC_ADMIN",
                                       "SYSLOG",
                                       "WAKE_ALARM",
                                       "BLOCK_SUSPEND",
                                       "AUDIT_READ",
                                       "PERFMON",
                                       "BPF",
                                       "CHECKPOINT_RESTORE"};
    if (strncasecmp(name, "CAP_", 4) == 0)
        name += 4;
    for (size_t i = 0; i < ELEMENTSOF(caps); i++)
        if (strcasecmp(name, caps[i]) == 0)
            return xstrdup(caps[i]);
    return NULL;
}

static int apply_flag(struct ctx *x, enum flag_id id, const char *what, const char *v,
                      struct berr **reterr)
{
    struct dc_run_options *o = x->o;
    switch (id) {
    case F_PRIVILEGED:
        o->privileged = need(x, what, "privileged", NULL);
        return 0;
    case F_INIT:
        o->init = true;
        return 0;
    case F_CAP_ADD:
    case F_CAP_DROP: {
        /* one spelling for the allow-list and the engine */
        _cleanup_free_ char *cap = dc_cap_name(v);
        if (!cap)
            return berr_make(reterr, EINVAL, "'%s': %s: '%s' is not a Linux capability", x->file,
                             what, v);
        if (id == F_CAP_DROP) {
            push_unique(&o->cap_drop, cap);
            return 0;
        }
        if (need(x, what, "capAdd", cap))
            push_unique(&o->cap_add, cap);
        return 0;
    }
    case F_SECURITY_OPT:
        if (need(x, what, "securityOpt", v))
            push_unique(&o->security_opt, v);
        return 0;
    case F_NETWORK:
        set_network(x, what, v);
        return 0;
    case F_DEVICE:
        if (need(x, what, "device", v))
            push_unique(&o->devices, v);
        return 0;
    case F_ENV:
        if (!strchr(v, '=') || v[0] == '=')
            return berr_make(reterr, EINVAL, "'%s': %s: expected NAME=value", x->file, what);
        strv_push(&o->env, v);
        return 0;
    case F_LABEL:
        if (strncmp(v, "berth.", 6) == 0)
            return berr_make(reterr, EPERM, "'%s': %s: labels starting 'berth.' are Berth's",
                             x->file, what);
        strv_push(&o->labels, v);
        return 0;
    case F_SHM_SIZE:
        o->shm_size = parse_flag_size(v);
        if (o->shm_size <= 0)
            return berr_make(reterr, EINVAL, "'%s': %s: not a size", x->file, what);
        return 0;
    case F_CPUS:
        return set_cpus(x, what, strtod(v, NULL), reterr);
    case F_MEMORY:
        return set_memory(x, what, parse_flag_size(v), reterr);
    case F_MOUNT:
        return mount_from_string(x, what, v, reterr);
    case F_VOLUME:
        return mount_from_volume_flag(x, what, v, reterr);
    case F_TMPFS: {
        _cleanup_free_ char *target = xstrndup(v, strcspn(v, ":"));
        return add_mount(x, what, DC_MOUNT_TMPFS, NULL, target, false, reterr);
    }
    case F_HOSTNAME:
        free(o->hostname);
        o->hostname = xstrdup(v);
        return 0;
    default:
        return 0;
    }
}

/* runArgs, flag by flag: "--flag=value", "--flag value", "-f value". */
static int parse_run_args(struct ctx *x, json_t *args, struct berr **reterr)
{
    size_t n = json_array_size(args);
    for (size_t i = 0; i < n; i++) {
        const char *arg = json_string_value(json_array_get(args, i));
        if (!arg)
            continue;
        const char *eq = strchr(arg, '=');
        size_t name_len = eq && arg[1] == '-' ? (size_t)(eq - arg) : strlen(arg);
        size_t f = 0;
        while (f < ELEMENTSOF(flags) &&
               !(strlen(flags[f].name) == name_len && strncmp(arg, flags[f].name, name_len) == 0) &&
               !(flags[f].alias && strlen(flags[f].alias) == name_len &&
                 strncmp(arg, flags[f].alias, name_len) == 0))
            f++;
        if (f == ELEMENTSOF(flags))
            return berr_make(reterr, ENOTSUP,
                             "'%s': runArgs \"%s\" is not supported by Berth (it accepts: "
                             "--cap-add, --cap-drop, --security-opt, --privileged, --init, "
                             "--network, --device, --env, --label, --shm-size, --cpus, "
                             "--memory, --mount, --volume, --tmpfs, --hostname)",
                             x->file, arg);
        const char *value = NULL;
        if (flags[f].value) {
            if (eq && arg[1] == '-')
                value = eq + 1;
            else if (i + 1 < n && json_is_string(json_array_get(args, i + 1)))
                value = json_string_value(json_array_get(args, ++i));
            else
                return berr_make(reterr, EINVAL, "'%s': runArgs \"%s\" needs a value", x->file,
                                 arg);
        }
        _cleanup_free_ char *what = value ? xasprintf("runArgs \"%s %s\"", flags[f].name, value)
                                          : xasprintf("runArgs \"%s\"", flags[f].name);
        int r = apply_flag(x, flags[f].id, what, value, reterr);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Whether the file itself, not the image's metadata, has value in its array key. */
static bool in_file(const struct ctx *x, const char *key, const char *value)
{
    size_t i;
    json_t *v;
    json_array_foreach (json_object_get(x->c->raw, key), i, v)
        if (json_is_string(v) && strcmp(json_string_value(v), value) == 0)
            return true;
    return false;
}

#define FROM_IMAGE " (from the image's metadata)"

/* The one pass (see the top of the file): x->o is filled, refusals gathered. */
static int read_options(struct ctx *x, struct berr **reterr)
{
    const struct dc_config *c = x->c;
    int r = 0;
    if (c->privileged)
        r = apply_flag(x, F_PRIVILEGED,
                       json_is_true(json_object_get(c->raw, "privileged"))
                           ? "\"privileged\": true"
                           : "\"privileged\": true" FROM_IMAGE,
                       NULL, reterr);
    x->o->init = c->init;
    for (size_t i = 0; r == 0 && i < c->cap_add.n; i++) {
        const char *v = c->cap_add.v[i];
        _cleanup_free_ char *what =
            xasprintf("capAdd \"%s\"%s", v, in_file(x, "capAdd", v) ? "" : FROM_IMAGE);
        r = apply_flag(x, F_CAP_ADD, what, v, reterr);
    }
    for (size_t i = 0; r == 0 && i < c->security_opt.n; i++) {
        const char *v = c->security_opt.v[i];
        _cleanup_free_ char *what =
            xasprintf("securityOpt \"%s\"%s", v, in_file(x, "securityOpt", v) ? "" : FROM_IMAGE);
        r = apply_flag(x, F_SECURITY_OPT, what, v, reterr);
    }
    size_t i;
    json_t *m;
    json_array_foreach (c->mounts, i, m) {
        if (r < 0)
            break;
        r = mount_from_json(x, m, reterr);
    }
    if (r == 0 && c->host_cpus)
        r = set_cpus(x, "hostRequirements.cpus", (double)c->host_cpus, reterr);
    if (r == 0 && c->host_memory)
        r = set_memory(x, "hostRequirements.memory", c->host_memory, reterr);
    if (r == 0)
        r = parse_run_args(x, json_object_get(c->raw, "runArgs"), reterr);
    return r;
}

char *dc_refusal_text(const struct dc_refusal *r)
{
    struct buf b = BUF_INIT;
    buf_addf(&b, "%s: %s", r->what, r->why);
    if (r->allow.n) {
        buf_adds(&b, r->allow.n == 1 ? "; allow-list entry " : "; allow-list entries ");
        for (size_t i = 0; i < r->allow.n; i++)
            buf_addf(&b, "%s\"%s\"", i == 0 ? "" : " and ", r->allow.v[i]);
    }
    if (r->fix)
        buf_addf(&b, " (%s)", r->fix);
    return buf_detach(&b, NULL);
}

char *dc_refusals_message(const char *file, const struct dc_refusals *r)
{
    struct buf b = BUF_INIT;
    buf_addf(&b, "'%s': %zu %s refused by this server's policy:", file, r->n,
             r->n == 1 ? "setting is" : "settings are");
    for (size_t i = 0; i < r->n; i++) {
        _cleanup_free_ char *line = dc_refusal_text(&r->v[i]);
        buf_addf(&b, "\n  %s", line);
    }
    return buf_detach(&b, NULL);
}

/* -EDQUOT when every refusal is a maximum an admin may raise, else -EPERM. */
static int refused_error(const struct ctx *x, struct berr **reterr)
{
    int code = EDQUOT;
    for (size_t i = 0; i < x->refused.n; i++)
        if (x->refused.v[i].allow.n || !x->refused.v[i].fix)
            code = EPERM;
    _cleanup_free_ char *msg = dc_refusals_message(x->file, &x->refused);
    return berr_make(reterr, code, "%s", msg);
}

int dc_run_options_build(const struct dc_config *c, const char *file, const struct dc_policy *p,
                         struct dc_run_options *o, struct berr **reterr)
{
    options_init(o);
    struct ctx x = {.file = file ? file : "devcontainer.json", .c = c, .p = p, .o = o};
    int r = read_options(&x, reterr);
    if (r == 0 && x.refused.n)
        r = refused_error(&x, reterr);
    dc_refusals_release(&x.refused);
    /* a config that asks for nothing gets the server's maximum, not more */
    if (r == 0 && !o->nano_cpus && p->max_cpus > 0)
        o->nano_cpus = p->max_cpus * 1000000000LL;
    if (r == 0 && !o->memory && p->max_memory > 0)
        o->memory = p->max_memory;
    if (r < 0)
        dc_run_options_release(o);
    return r;
}

int dc_policy_check(const struct dc_config *c, const char *file, const struct dc_policy *p,
                    struct dc_refusals *ret_refusals, struct berr **reterr)
{
    struct dc_run_options o;
    options_init(&o);
    struct ctx x = {.file = file ? file : "devcontainer.json", .c = c, .p = p, .o = &o};
    int r = read_options(&x, reterr);
    dc_run_options_release(&o);
    if (r < 0) {
        dc_refusals_release(&x.refused);
        return r;
    }
    *ret_refusals = x.refused;
    return 0;
}
