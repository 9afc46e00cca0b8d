/* gitpod.c - .gitpod.yml: YAML into JSON with libyaml, then into devcontainer.json keys.
 *
 * The first half walks libyaml's event stream with an explicit stack of open
 * mappings and sequences (never recursion, so nesting cannot exhaust the C
 * stack). An alias takes a reference to its anchor's node instead of a copy;
 * what stays bounded is what the tree would be if every alias were expanded:
 * each anchor remembers how many values and how many levels it holds, an
 * alias counts as all of them, and the totals are capped. Everything that
 * later walks the tree (validation, substitution, printing) is therefore
 * linear in a limit, however the file nests its aliases. While parsing, the
 * path and position of every key are recorded, so the second half can name
 * line and column for the values it refuses or ignores.
 *
 * The second half is a table of Gitpod's top-level keys, each with a function
 * that writes what it means in devcontainer.json terms.
 */
#include "devcontainer/gitpod.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util/buf.h"
#include "util/path.h"
#include "util/xalloc.h"

bool gitpod_is_config(const char *relpath)
{
    if (!relpath)
        return false;
    const char *slash = strrchr(relpath, '/');
    return strcmp(slash ? slash + 1 : relpath, GITPOD_FILE) == 0;
}

/* ---- YAML to JSON ---- */

struct anchor {
    char *name;
    json_t *node;
    size_t nodes;
    int height;
};

/* An open mapping or sequence. */
struct frame {
    json_t *node;
    char *key; /* a mapping's key whose value is being read */
    yaml_mark_t key_mark;
    char *anchor;
    size_t path_len;     /* the length of this node's own path in yp.path */
    size_t nodes_before; /* yp.nodes before this node was counted */
    int height;          /* the tallest child so far */
};

struct yp {
    const char *name;
    struct frame stack[GITPOD_MAX_DEPTH];
    int depth;
    struct anchor *anchors;
    size_t n_anchors;
    size_t nodes;
    json_t *root;
    json_t *positions;
    struct buf path;
    struct berr **reterr;
};

static int yp_fail(struct yp *y, int code, yaml_mark_t mark, const char *fmt, ...) _printf_(4, 5);
static int yp_fail(struct yp *y, int code, yaml_mark_t mark, const char *fmt, ...)
{
    _cleanup_buf_ struct buf msg = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vaddf(&msg, fmt, ap);
    va_end(ap);
    return berr_make(y->reterr, code, "'%s' line %zu, column %zu: %s", y->name, mark.line + 1,
                     mark.column + 1, msg.buf);
}

static void yp_release(struct yp *y)
{
    for (int i = 0; i < y->depth; i++) {
        json_decref(y->stack[i].node);
        free(y->stack[i].key);
        free(y->stack[i].anchor);
    }
    for (size_t i = 0; i < y->n_anchors; i++) {
        free(y->anchors[i].name);
        json_decref(y->anchors[i].node);
    }
    free(y->anchors);
    json_decref(y->root);
    json_decref(y->positions);
    buf_release(&y->path);
}

static struct frame *top(struct yp *y)
{
    return y->depth ? &y->stack[y->depth - 1] : NULL;
}

/* Whether the next event is a mapping's key. */
static bool wants_key(struct yp *y)
{
    struct frame *f = top(y);
    return f && json_is_object(f->node) && !f->key;
}

/* Counts n more values (an alias counts as what it repeats). */
static int count_nodes(struct yp *y, size_t n, yaml_mark_t mark)
{
    if (n > GITPOD_MAX_NODES - y->nodes)
        return yp_fail(y, E2BIG, mark,
                       "more than %d values (counting what each alias repeats): not a "
                       "configuration Berth reads",
                       GITPOD_MAX_NODES);
    y->nodes += n;
    return 0;
}

/* Sets yp.path to the path of the value about to be added, and records its position. */
static void enter_child(struct yp *y, yaml_mark_t mark)
{
    struct frame *f = top(y);
    if (!f)
        return;
    y->path.len = f->path_len;
    y->path.buf[y->path.len] = 0;
    if (json_is_object(f->node)) {
        buf_addf(&y->path, "%s%s", y->path.len ? "." : "", f->key);
        mark = f->key_mark; /* a value is shown where its key is */
    } else {
        buf_addf(&y->path, "[%zu]", json_array_size(f->node));
    }
    json_object_set_new(
        y->positions, y->path.buf,
        json_pack("[I, I]", (json_int_t)mark.line + 1, (json_int_t)mark.column + 1));
}

/* Adds a finished value (taken) to the open node, or makes it the document. */
static void add_value(struct yp *y, json_t *v, int height)
{
    struct frame *f = top(y);
    if (!f) {
        json_decref(y->root);
        y->root = v;
        return;
    }
    if (json_is_object(f->node)) {
        json_object_set_new(f->node, f->key, v);
        free(f->key);
        f->key = NULL;
    } else {
        json_array_append_new(f->node, v);
    }
    if (height > f->height)
        f->height = height;
}

static void remember_anchor(struct yp *y, char *name, json_t *node, size_t nodes, int height)
{
    if (!name)
        return;
    y->anchors = xrealloc(y->anchors, (y->n_anchors + 1) * sizeof(*y->anchors));
    y->anchors[y->n_anchors++] =
        (struct anchor){.name = name, .node = json_incref(node), .nodes = nodes, .height = height};
}

static bool is_int_text(const char *s, int base)
{
    if (*s == '-' || *s == '+')
        s++;
    if (base == 16 && strncmp(s, "0x", 2) == 0)
        s += 2;
    else if (base == 8 && strncmp(s, "0o", 2) == 0)
        s += 2;
    else if (base != 10)
        return false;
    static const char *const digits[] = {
        [8] = "01234567", [10] = "0123456789", [16] = "0123456789abcdefABCDEF"};
    return *s && strspn(s, digits[base]) == strlen(s);
}

/* A plain scalar by YAML 1.2's core schema: null, a boolean, a number, else a string. */
static json_t *resolve_plain(const char *s, size_t n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    static const char *const trues[] = {"true", "True", "TRUE"};
    static const char *const falses[] = {"false", "False", "FALSE"};
    if (strlen(s) != n) /* an escaped NUL: only a string can hold it */
        return json_stringn(s, n);
    for (size_t i = 0; i < ELEMENTSOF(nulls); i++)
        if (strcmp(s, nulls[i]) == 0)
            return json_null();
    for (size_t i = 0; i < ELEMENTSOF(trues); i++) {
        if (strcmp(s, trues[i]) == 0)
            return json_true();
        if (strcmp(s, falses[i]) == 0)
            return json_false();
    }
    static const int bases[] = {10, 16, 8};
    for (size_t i = 0; i < ELEMENTSOF(bases); i++) {
        if (!is_int_text(s, bases[i]))
            continue;
        const char *digits = s + (*s == '-' || *s == '+');
        if (bases[i] != 10)
            digits += 2;
        errno = 0;
        char *end = NULL;
        long long v = strtoll(digits, &end, bases[i]);
        if (errno == 0 && *end == 0)
            return json_integer(*s == '-' ? -v : v);
        return json_stringn(s, n); /* too large: kept as written */
    }
    if (strspn(s, "0123456789.eE+-") == n && strpbrk(s, "0123456789")) {
        char *end = NULL;
        double d = strtod(s, &end);
        if (*end == 0)
            return json_real(d);
    }
    return json_stringn(s, n);
}

static json_t *scalar_json(const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    if (tag && strcmp(tag, YAML_STR_TAG) == 0)
        return json_stringn(s, n);
    if ((plain && !tag) || (tag && strncmp(tag, "tag:yaml.org,2002:", 18) == 0))
        return resolve_plain(s, n);
    return json_stringn(s, n);
}

/* The line and column of a byte offset (the reader's errors have only that). */
static yaml_mark_t mark_at(const char *text, size_t len, size_t offset)
{
    yaml_mark_t m = {0};
    for (size_t i = 0; i < offset && i < len; i++) {
        if (text[i] == '\n') {
            m.line++;
            m.column = 0;
        } else {
            m.column++;
        }
    }
    return m;
}

static int parser_error(struct yp *y, const yaml_parser_t *p, const char *text, size_t len)
{
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->error == YAML_READER_ERROR)
        return yp_fail(y, EINVAL, mark_at(text, len, p->problem_offset), "%s", problem);
    if (p->error == YAML_MEMORY_ERROR)
        return berr_make(y->reterr, ENOMEM, "'%s': out of memory reading YAML", y->name);
    if (p->context)
        return yp_fail(y, EINVAL, p->problem_mark, "%s (%s, at line %zu, column %zu)", problem,
                       p->context, p->context_mark.line + 1, p->context_mark.column + 1);
    return yp_fail(y, EINVAL, p->problem_mark, "%s", problem);
}

/* One event of the stream; 1 at its end. */
static int on_event(struct yp *y, yaml_event_t *ev, int *documents)
{
    yaml_mark_t mark = ev->start_mark;
    int r;
    switch (ev->type) {
    case YAML_STREAM_END_EVENT:
        return 1;
    case YAML_DOCUMENT_START_EVENT:
        if (++*documents > 1)
            return yp_fail(y, EINVAL, mark, "only one YAML document is read; remove the second");
        return 0;
    case YAML_SCALAR_EVENT: {
        if (wants_key(y)) {
            const char *k = (const char *)ev->data.scalar.value;
            if (strlen(k) != ev->data.scalar.length)
                return yp_fail(y, EINVAL, mark, "a key cannot hold a NUL character");
            if (json_object_get(top(y)->node, k))
                return yp_fail(y, EINVAL, mark, "duplicate key \"%s\"", k);
            top(y)->key = xstrdup(k);
            top(y)->key_mark = mark;
            return count_nodes(y, 1, mark);
        }
        if ((r = count_nodes(y, 1, mark)) < 0)
            return r;
        json_t *v = scalar_json(ev);
        if (!v)
            return yp_fail(y, EINVAL, mark, "a value is not valid UTF-8");
        enter_child(y, mark);
        char *anchor = ev->data.scalar.anchor ? xstrdup((char *)ev->data.scalar.anchor) : NULL;
        remember_anchor(y, anchor, v, 1, 1);
        add_value(y, v, 1);
        return 0;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        if (wants_key(y))
            return yp_fail(y, EINVAL, mark, "a key must be a plain value, not a %s",
                           ev->type == YAML_MAPPING_START_EVENT ? "mapping" : "sequence");
        if (y->depth >= GITPOD_MAX_DEPTH)
            return yp_fail(y, E2BIG, mark, "nested deeper than %d levels", GITPOD_MAX_DEPTH);
        size_t before = y->nodes;
        if ((r = count_nodes(y, 1, mark)) < 0)
            return r;
        enter_child(y, mark);
        const yaml_char_t *anchor = ev->type == YAML_MAPPING_START_EVENT
                                        ? ev->data.mapping_start.anchor
                                        : ev->data.sequence_start.anchor;
        y->stack[y->depth++] = (struct frame){
            .node = ev->type == YAML_MAPPING_START_EVENT ? json_object() : json_array(),
            .anchor = anchor ? xstrdup((const char *)anchor) : NULL,
            .path_len = y->path.len,
            .nodes_before = before};
        return 0;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
        struct frame f = y->stack[--y->depth];
        remember_anchor(y, f.anchor, f.node, y->nodes - f.nodes_before, f.height + 1);
        add_value(y, f.node, f.height + 1);
        return 0;
    }
    case YAML_ALIAS_EVENT: {
        if (wants_key(y))
            return yp_fail(y, EINVAL, mark, "a key must be a plain value, not an alias");
        const char *name = (const char *)ev->data.alias.anchor;
        const struct anchor *a = NULL;
        for (size_t i = y->n_anchors; i-- > 0 && !a;)
            if (strcmp(y->anchors[i].name, name) == 0)
                a = &y->anchors[i];
        if (!a)
            return yp_fail(y, EINVAL, mark, "alias *%s names no anchor before it", name);
        if ((r = count_nodes(y, a->nodes, mark)) < 0)
            return r;
        if (y->depth + a->height > GITPOD_MAX_DEPTH)
            return yp_fail(y, E2BIG, mark, "nested deeper than %d levels (through alias *%s)",
                           GITPOD_MAX_DEPTH, name);
        enter_child(y, mark);
        add_value(y, json_incref(a->node), a->height);
        return 0;
    }
    default:
        return 0;
    }
}

int gitpod_parse_yaml(const char *text, size_t len, const char *name, json_t **ret,
                      json_t **ret_positions, struct berr **reterr)
{
    if (len > GITPOD_MAX_FILE)
        return berr_make(reterr, EFBIG, "'%s' is larger than %d KiB", name, GITPOD_MAX_FILE / 1024);
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return berr_make(reterr, ENOMEM, "'%s': cannot start the YAML parser", name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    struct yp y = {.name = name, .positions = json_object(), .path = BUF_INIT, .reterr = reterr};
    int documents = 0;
    int r = 0;
    while (r == 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            r = parser_error(&y, &parser, text, len);
            break;
        }
        r = on_event(&y, &ev, &documents);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    if (r < 0) {
        yp_release(&y);
        return r;
    }
    if (!y.root || json_is_null(y.root)) {
        json_decref(y.root);
        y.root = json_object();
    }
    if (!json_is_object(y.root)) {
        yp_release(&y);
        return berr_make(reterr, EINVAL, "'%s': the top level must be a mapping (key: value)",
                         name);
    }
    *ret = TAKE_PTR(y.root);
    if (ret_positions)
        *ret_positions = TAKE_PTR(y.positions);
    yp_release(&y);
    return 0;
}

/* ---- .gitpod.yml to devcontainer.json ---- */

struct tr {
    const char *name;
    json_t *positions;
    struct strv *warnings;
    struct berr **reterr;
    json_t *out;
    json_t *update_content; /* per task label, its init */
    json_t *post_start;     /* per task label, its before and command (a Berth task) */
};

/* "'.gitpod.yml' line 3, column 5" for a path that was parsed, else "'.gitpod.yml'". */
static char *where(const struct tr *t, const char *path)
{
    json_t *p = json_object_get(t->positions, path);
    if (!p)
        return xasprintf("'%s'", t->name);
    return xasprintf("'%s' line %lld, column %lld", t->name,
                     (long long)json_integer_value(json_array_get(p, 0)),
                     (long long)json_integer_value(json_array_get(p, 1)));
}

static void warn(struct tr *t, const char *path, const char *fmt, ...) _printf_(3, 4);
static void warn(struct tr *t, const char *path, const char *fmt, ...)
{
    _cleanup_free_ char *at = where(t, path);
    _cleanup_buf_ struct buf msg = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vaddf(&msg, fmt, ap);
    va_end(ap);
    if (t->warnings)
        strv_pushf(t->warnings, "%s: %s", at, msg.buf);
}

static int fail(struct tr *t, const char *path, const char *fmt, ...) _printf_(3, 4);
static int fail(struct tr *t, const char *path, const char *fmt, ...)
{
    _cleanup_free_ char *at = where(t, path);
    _cleanup_buf_ struct buf msg = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vaddf(&msg, fmt, ap);
    va_end(ap);
    return berr_make(t->reterr, EINVAL, "%s: %s", at, msg.buf);
}

/* A string value, or NULL when absent or null; -EINVAL (reported) for another type. */
static int get_string(struct tr *t, json_t *o, const char *key, const char *path, const char **ret)
{
    json_t *v = json_object_get(o, key);
    _cleanup_free_ char *p = xasprintf("%s.%s", path, key);
    *ret = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return fail(t, p, "\"%s\" must be a string", p);
    *ret = json_string_value(v);
    return 0;
}

/* Warns about each key of o that is not in `known` (a NULL-terminated list). */
static void warn_unknown(struct tr *t, json_t *o, const char *path, const char *const *known)
{
    const char *k;
    json_t *v;
    json_object_foreach (o, k, v) {
        bool found = false;
        for (const char *const *q = known; *q && !found; q++)
            found = strcmp(*q, k) == 0;
        if (found)
            continue;
        _cleanup_free_ char *p = xasprintf("%s.%s", path, k);
        warn(t, p, "unknown key \"%s\" ignored", p);
    }
}

static int tr_image(struct tr *t, json_t *v)
{
    if (json_is_string(v) && *json_string_value(v)) {
        json_object_set(t->out, "image", v);
        return 0;
    }
    if (!json_is_object(v))
        return fail(t, "image", "\"image\" must be an image name or {file, context}");
    static const char *const known[] = {"file", "context", NULL};
    warn_unknown(t, v, "image", known);
    const char *file = NULL, *context = NULL;
    int r = get_string(t, v, "file", "image", &file);
    if (r == 0)
        r = get_string(t, v, "context", "image", &context);
    if (r < 0)
        return r;
    if (!file || !*file)
        return fail(t, "image", "\"image\" as a mapping needs \"file\": the Dockerfile to build");
    /* the paths are the repository's, as .gitpod.yml sits at its top (a
     * devcontainer.json's build paths are relative to the file, the same here) */
    json_t *build = json_pack("{s:s}", "dockerfile", file);
    if (context && *context)
        json_object_set_new(build, "context", json_string(context));
    json_object_set_new(t->out, "build", build);
    return 0;
}

static bool is_env_name(const char *s)
{
    if (!*s || (*s >= '0' && *s <= '9'))
        return false;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") ==
           strlen(s);
}

/* `export NAME='value'` for each of a task's env, the value quoted for sh. */
static int task_exports(struct tr *t, json_t *env, const char *path, struct buf *out)
{
    if (!env || json_is_null(env))
        return 0;
    _cleanup_free_ char *p = xasprintf("%s.env", path);
    if (!json_is_object(env))
        return fail(t, p, "\"%s\" must be a mapping of NAME: value", p);
    const char *k;
    json_t *v;
    json_object_foreach (env, k, v) {
        _cleanup_free_ char *kp = xasprintf("%s.%s", p, k);
        if (!is_env_name(k))
            return fail(t, kp, "\"%s\" is not a variable name (letters, digits and _)", k);
        _cleanup_free_ char *text = NULL;
        if (json_is_string(v))
            text = xstrdup(json_string_value(v));
        else if (json_is_number(v) || json_is_boolean(v))
            text = json_dumps(v, JSON_ENCODE_ANY);
        else if (json_is_null(v))
            text = xstrdup("");
        else
            return fail(t, kp, "\"%s\" must be a string, a number or true/false", kp);
        buf_addf(out, "export %s='", k);
        for (const char *c = text; *c; c++) {
            if (*c == '\'')
                buf_adds(out, "'\\''");
            else
                buf_addch(out, *c);
        }
        buf_adds(out, "'\n");
    }
    return 0;
}

/* Gitpod runs a task in bash; a script runs in bash where the image has it,
 * else in sh. The script is an argument, never pasted into the wrapper. */
static json_t *task_argv(const char *script)
{
    return json_pack("[s, s, s, s, s]", "/bin/sh", "-c",
                     "if command -v bash >/dev/null 2>&1; then exec bash -c \"$1\"; fi; "
                     "exec sh -c \"$1\"",
                     "gitpod-task", script);
}

static void add_script(json_t *hook, const char *label, const struct buf *exports,
                       const char *before, const char *main)
{
    _cleanup_buf_ struct buf s = BUF_INIT;
    buf_add(&s, exports->buf, exports->len);
    const char *parts[] = {before, main};
    for (size_t i = 0; i < ELEMENTSOF(parts); i++) {
        if (!parts[i] || !*parts[i])
            continue;
        buf_adds(&s, parts[i]);
        if (parts[i][strlen(parts[i]) - 1] != '\n')
            buf_addch(&s, '\n');
    }
    json_object_set_new(hook, label, task_argv(s.buf));
}

static int tr_task(struct tr *t, json_t *task, size_t i)
{
    _cleanup_free_ char *path = xasprintf("tasks[%zu]", i);
    if (!json_is_object(task))
        return fail(t, path, "\"%s\" must be a mapping (name, before, init, command, env)", path);
    static const char *const known[] = {"name",     "before", "init",     "command", "env",
                                        "openMode", "openIn", "prebuild", NULL};
    warn_unknown(t, task, path, known);
    const char *name = NULL, *before = NULL, *init = NULL, *command = NULL;
    int r = get_string(t, task, "name", path, &name);
    if (r == 0)
        r = get_string(t, task, "before", path, &before);
    if (r == 0)
        r = get_string(t, task, "init", path, &init);
    if (r == 0)
        r = get_string(t, task, "command", path, &command);
    if (r < 0)
        return r;
    static const char *const unused[] = {"openMode", "openIn"};
    for (size_t k = 0; k < ELEMENTSOF(unused); k++)
        if (json_object_get(task, unused[k])) {
            _cleanup_free_ char *p = xasprintf("%s.%s", path, unused[k]);
            warn(t, p, "\"%s\" is not used: Berth does not lay out terminals", unused[k]);
        }
    if (json_object_get(task, "prebuild")) {
        _cleanup_free_ char *p = xasprintf("%s.prebuild", path);
        warn(t, p, "\"prebuild\" is not used: Gitpod replaced it with \"init\"");
    }
    _cleanup_buf_ struct buf exports = BUF_INIT;
    r = task_exports(t, json_object_get(task, "env"), path, &exports);
    if (r < 0)
        return r;
    /* a label per task: its name, unique among the tasks */
    _cleanup_free_ char *label = name && *name ? xstrdup(name) : xasprintf("task-%zu", i + 1);
    for (int n = 2;
         json_object_get(t->update_content, label) || json_object_get(t->post_start, label); n++) {
        free(label);
        label = name && *name ? xasprintf("%s-%d", name, n) : xasprintf("task-%zu-%d", i + 1, n);
    }
    if (init && *init)
        add_script(t->update_content, label, &exports, before, init);
    if ((before && *before) || (command && *command))
        add_script(t->post_start, label, &exports, before, command);
    return 0;
}

static int tr_tasks(struct tr *t, json_t *v)
{
    if (json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return fail(t, "tasks", "\"tasks\" must be a list of tasks");
    size_t i;
    json_t *task;
    json_array_foreach (v, i, task) {
        int r = tr_task(t, task, i);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Gitpod's onOpen and the devcontainer onAutoForward that does the same. */
static const char *const on_open_map[][2] = {
    {"open-browser", "openBrowser"},
    {"open-preview", "openPreview"},
    {"notify", "notify"},
    {"ignore", "silent"},
    {"ignore-completely", "ignore"},
};

/* The port of an entry: its number, or "FROM-TO" for a range (*ret_single 0). */
static int port_key(struct tr *t, json_t *port, const char *path, char **ret_key, int *ret_single)
{
    _cleanup_free_ char *p = xasprintf("%s.port", path);
    if (json_is_integer(port) && json_integer_value(port) >= 1 &&
        json_integer_value(port) <= 65535) {
        *ret_single = (int)json_integer_value(port);
        *ret_key = xasprintf("%d", *ret_single);
        return 0;
    }
    const char *s = json_string_value(port);
    unsigned from = 0, to = 0;
    int used = 0;
    if (s && sscanf(s, "%5u-%5u%n", &from, &to, &used) == 2 && (size_t)used == strlen(s) &&
        from >= 1 && from <= to && to <= 65535) {
        *ret_single = 0;
        *ret_key = xasprintf("%u-%u", from, to);
        return 0;
    }
    return fail(t, p, "\"%s\" must be a port (1-65535) or a range such as 3000-3999", p);
}

static int tr_port(struct tr *t, json_t *entry, size_t i, json_t *forward, json_t *attrs)
{
    _cleanup_free_ char *path = xasprintf("ports[%zu]", i);
    if (!json_is_object(entry))
        return fail(t, path, "\"%s\" must be a mapping (port, onOpen, visibility, name)", path);
    static const char *const known[] = {"port",        "onOpen",   "visibility", "name",
                                        "description", "protocol", NULL};
    warn_unknown(t, entry, path, known);
    if (!json_object_get(entry, "port"))
        return fail(t, path, "\"%s\" needs \"port\"", path);
    _cleanup_free_ char *key = NULL;
    int single = 0;
    int r = port_key(t, json_object_get(entry, "port"), path, &key, &single);
    const char *on_open = NULL, *visibility = NULL, *name = NULL, *description = NULL,
               *protocol = NULL;
    if (r == 0)
        r = get_string(t, entry, "onOpen", path, &on_open);
    if (r == 0)
        r = get_string(t, entry, "visibility", path, &visibility);
    if (r == 0)
        r = get_string(t, entry, "name", path, &name);
    if (r == 0)
        r = get_string(t, entry, "description", path, &description);
    if (r == 0)
        r = get_string(t, entry, "protocol", path, &protocol);
    if (r < 0)
        return r;
    json_t *a = json_object();
    const char *label = name && *name ? name : description;
    if (label && *label)
        json_object_set_new(a, "label", json_string(label));
    const char *auto_forward = NULL;
    for (size_t k = 0; on_open && k < ELEMENTSOF(on_open_map) && !auto_forward; k++)
        if (strcmp(on_open, on_open_map[k][0]) == 0)
            auto_forward = on_open_map[k][1];
    if (on_open && !auto_forward) {
        json_decref(a);
        _cleanup_free_ char *p = xasprintf("%s.onOpen", path);
        return fail(t, p,
                    "\"%s\" must be open-browser, open-preview, notify, ignore or "
                    "ignore-completely",
                    p);
    }
    if (auto_forward)
        json_object_set_new(a, "onAutoForward", json_string(auto_forward));
    if (protocol && strcmp(protocol, "http") != 0 && strcmp(protocol, "https") != 0) {
        json_decref(a);
        _cleanup_free_ char *p = xasprintf("%s.protocol", path);
        return fail(t, p, "\"%s\" must be http or https", p);
    }
    if (protocol)
        json_object_set_new(a, "protocol", json_string(protocol));
    if (visibility && strcmp(visibility, "public") != 0 && strcmp(visibility, "private") != 0) {
        json_decref(a);
        _cleanup_free_ char *p = xasprintf("%s.visibility", path);
        return fail(t, p, "\"%s\" must be public or private", p);
    }
    if (visibility && strcmp(visibility, "public") == 0) {
        _cleanup_free_ char *p = xasprintf("%s.visibility", path);
        warn(t, p,
             "port %s stays private: a repository cannot make a port public; its owner can, "
             "with `berth ports WS visibility %s public`",
             key, single ? key : "PORT");
    }
    json_object_set_new(attrs, key, a);
    /* listed before anything listens, as Gitpod shows a configured port */
    if (single && !(auto_forward && strcmp(auto_forward, "ignore") == 0)) {
        bool seen = false;
        size_t k;
        json_t *f;
        json_array_foreach (forward, k, f)
            seen = seen || json_integer_value(f) == single;
        if (!seen)
            json_array_append_new(forward, json_integer(single));
    }
    return 0;
}

static int tr_ports(struct tr *t, json_t *v)
{
    if (json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return fail(t, "ports", "\"ports\" must be a list of ports");
    json_t *forward = json_array();
    json_t *attrs = json_object();
    size_t i;
    json_t *entry;
    int r = 0;
    json_array_foreach (v, i, entry)
        if (r == 0)
            r = tr_port(t, entry, i, forward, attrs);
    if (r == 0 && json_array_size(forward))
        json_object_set(t->out, "forwardPorts", forward);
    if (r == 0 && json_object_size(attrs))
        json_object_set(t->out, "portsAttributes", attrs);
    json_decref(forward);
    json_decref(attrs);
    return r;
}

static int tr_vscode(struct tr *t, json_t *v)
{
    if (json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return fail(t, "vscode", "\"vscode\" must be a mapping (extensions)");
    static const char *const known[] = {"extensions", NULL};
    warn_unknown(t, v, "vscode", known);
    json_t *exts = json_object_get(v, "extensions");
    if (!exts || json_is_null(exts))
        return 0;
    if (!json_is_array(exts))
        return fail(t, "vscode.extensions",
                    "\"vscode.extensions\" must be a list of extension ids");
    size_t i;
    json_t *e;
    json_array_foreach (exts, i, e)
        if (!json_is_string(e)) {
            _cleanup_free_ char *p = xasprintf("vscode.extensions[%zu]", i);
            return fail(t, p, "\"%s\" must be an extension id such as ms-python.python", p);
        }
    json_t *cust = json_object_get(t->out, "customizations");
    if (!cust)
        json_object_set_new(t->out, "customizations", cust = json_object());
    json_object_set_new(cust, "vscode", json_pack("{s:O}", "extensions", exts));
    return 0;
}

/* checkoutLocation and workspaceLocation are relative to Gitpod's /workspace,
 * where the checkout is checkoutLocation (the repository's name unless set).
 * Berth's checkout is always at /workspaces/<repository name> (the
 * devcontainer's ${containerWorkspaceFolder}): a workspaceLocation inside the
 * checkout becomes workspaceFolder there. */
static int tr_locations(struct tr *t, json_t *yml)
{
    const char *checkout = NULL, *location = NULL;
    json_t *c = json_object_get(yml, "checkoutLocation");
    json_t *w = json_object_get(yml, "workspaceLocation");
    if (c && !json_is_null(c) && !json_is_string(c))
        return fail(t, "checkoutLocation", "\"checkoutLocation\" must be a path");
    if (w && !json_is_null(w) && !json_is_string(w))
        return fail(t, "workspaceLocation", "\"workspaceLocation\" must be a path");
    checkout = json_string_value(c);
    location = json_string_value(w);
    if (checkout && *checkout)
        warn(t, "checkoutLocation",
             "the checkout stays at /workspaces/<repository name>: Berth does not move it");
    if (!location || !*location)
        return 0;
    const char *rel = location;
    if (strncmp(rel, "/workspace/", 11) == 0)
        rel += 11;
    _cleanup_free_ char *norm = rel[0] == '/' ? NULL : path_normalize(rel);
    _cleanup_free_ char *co = checkout && *checkout ? path_normalize(checkout) : NULL;
    const char *sub = NULL;
    if (norm && co && *co) {
        size_t n = strlen(co);
        if (strcmp(norm, co) == 0)
            sub = "";
        else if (strncmp(norm, co, n) == 0 && norm[n] == '/')
            sub = norm + n + 1;
    } else if (norm && *norm) {
        /* no checkoutLocation: the first component is the repository's folder */
        const char *slash = strchr(norm, '/');
        sub = slash ? slash + 1 : "";
    }
    if (!sub) {
        warn(t, "workspaceLocation",
             "\"%s\" is outside the checkout: the workspace opens at the checkout", location);
        return 0;
    }
    _cleanup_free_ char *dir = xstrdup(sub);
    size_t n = strlen(dir);
    if (n > 15 && strcmp(dir + n - 15, ".code-workspace") == 0) {
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = 0;
        else
            *dir = 0;
        warn(t, "workspaceLocation", "\"%s\" is a VS Code workspace file: its folder is opened",
             location);
    }
    if (*dir)
        json_object_set_new(t->out, "workspaceFolder",
                            json_sprintf("${containerWorkspaceFolder}/%s", dir));
    return 0;
}

/* Gitpod keys with no meaning in Berth, and why. */
static const struct {
    const char *key;
    const char *why;
} unused_keys[] = {
    {"github", "prebuilds are configured with `berth prebuild config`"},
    {"prebuilds", "prebuilds are configured with `berth prebuild config`"},
    {"jetbrains", "Berth's IDE is VS Code in the browser"},
    {"gitConfig", "set git options in a task's init or the image"},
    {"additionalRepositories", "a Berth workspace holds one repository"},
    {"mainConfiguration", "a Berth workspace holds one repository"},
    {"coreDump", "core dumps are the server's setting"},
    {"experimentalNetwork", "the network is the server's setting"},
};

static const struct {
    const char *key;
    int (*fn)(struct tr *t, json_t *v);
} top_keys[] = {
    {"image", tr_image},
    {"tasks", tr_tasks},
    {"ports", tr_ports},
    {"vscode", tr_vscode},
};

int gitpod_load(const char *text, size_t len, const char *name, json_t **ret, struct strv *warnings,
                struct berr **reterr)
{
    _cleanup_(json_decrefp) json_t *yml = NULL;
    _cleanup_(json_decrefp) json_t *positions = NULL;
    int r = gitpod_parse_yaml(text, len, name, &yml, &positions, reterr);
    if (r < 0)
        return r;
    _cleanup_(json_decrefp) json_t *out = json_object();
    _cleanup_(json_decrefp) json_t *update_content = json_object();
    _cleanup_(json_decrefp) json_t *post_start = json_object();
    struct tr t = {.name = name,
                   .positions = positions,
                   .warnings = warnings,
                   .reterr = reterr,
                   .out = out,
                   .update_content = update_content,
                   .post_start = post_start};
    const char *k;
    json_t *v;
    json_object_foreach (yml, k, v) {
        bool handled = strcmp(k, "checkoutLocation") == 0 || strcmp(k, "workspaceLocation") == 0;
        for (size_t i = 0; i < ELEMENTSOF(top_keys) && !handled; i++) {
            if (strcmp(k, top_keys[i].key) != 0)
                continue;
            handled = true;
            if ((r = top_keys[i].fn(&t, v)) < 0)
                return r;
        }
        for (size_t i = 0; i < ELEMENTSOF(unused_keys) && !handled; i++) {
            if (strcmp(k, unused_keys[i].key) != 0)
                continue;
            handled = true;
            warn(&t, k, "\"%s\" is not used: %s", k, unused_keys[i].why);
        }
        if (!handled)
            warn(&t, k, "unknown key \"%s\" ignored", k);
    }
    if ((r = tr_locations(&t, yml)) < 0)
        return r;
    /* init: side by side, before the workspace is ready; before + command: at
     * each start, each in a terminal of its own (Berth's tasks), as Gitpod's are */
    if (json_object_size(update_content))
        json_object_set(out, "updateContentCommand", update_content);
    if (json_object_size(post_start)) {
        json_t *cust = json_object_get(out, "customizations");
        if (!cust)
            json_object_set_new(out, "customizations", cust = json_object());
        json_object_set_new(cust, "berth", json_pack("{s:O}", "tasks", post_start));
    }
    *ret = TAKE_PTR(out);
    return 0;
}
