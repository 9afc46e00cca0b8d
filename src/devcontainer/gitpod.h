/* gitpod.h - reading a repository's .gitpod.yml as if it were a devcontainer.json.
 *
 * Gitpod's configuration is YAML; it is parsed with libyaml into JSON (with
 * limits: a YAML file is untrusted input whose aliases could otherwise expand
 * exponentially) and translated into the devcontainer.json keys that mean the
 * same, so everything after loading (validation, substitution, the image's
 * metadata, lifecycle commands, port attributes, policy) is one code path:
 *
 *   image: NAME                   "image": NAME
 *   image: {file, context}        "build": {"dockerfile": file, "context": context}
 *   tasks[].init (after before)   updateContentCommand, one named entry per task
 *   tasks[].before + command      customizations.berth.tasks, one named terminal per task
 *   tasks[].env                   exported at the top of that task's commands
 *   ports[]                       forwardPorts + portsAttributes
 *   vscode.extensions             customizations.vscode.extensions
 *   workspaceLocation             workspaceFolder (inside the checkout)
 *
 * Keys Berth does not know or does not use are warnings, not errors; a value
 * of the wrong type is an error. Both name the file, line and column.
 */
#ifndef BERTH_GITPOD_H
#define BERTH_GITPOD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"
#include "util/strv.h"

#define GITPOD_FILE ".gitpod.yml"
#define GITPOD_MAX_FILE (256 * 1024) /* bytes of YAML */
#define GITPOD_MAX_NODES 20000       /* values, with every alias counted as what it repeats */
#define GITPOD_MAX_DEPTH 32          /* nesting, aliases included */

/* Whether relpath names a Gitpod configuration (its file name is .gitpod.yml). */
bool gitpod_is_config(const char *relpath);

/* Parses YAML text (one document; none is an empty mapping) into JSON:
 * mappings become objects, sequences arrays, plain scalars null, true/false,
 * integers or reals where YAML's core schema says so, and strings otherwise.
 * An alias shares the node of its anchor (no copy is made). `name` is used in
 * messages: "'.gitpod.yml' line 3, column 7: ...". Sets *ret, and
 * *ret_positions (may be NULL) to an object mapping each key's path
 * ("tasks[0].init") to [line, column]. Fails with -EFBIG for text over
 * GITPOD_MAX_FILE, -E2BIG past GITPOD_MAX_NODES or GITPOD_MAX_DEPTH, -EINVAL
 * otherwise. */
int gitpod_parse_yaml(const char *text, size_t len, const char *name, json_t **ret,
                      json_t **ret_positions, struct berr **reterr);

/* Reads .gitpod.yml text into a devcontainer.json object (*ret, new). Each
 * key that is ignored adds a message to `warnings`. */
int gitpod_load(const char *text, size_t len, const char *name, json_t **ret, struct strv *warnings,
                struct berr **reterr);

#endif
