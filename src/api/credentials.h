/* credentials.h - git credentials offered to running workspaces on demand.
 *
 * While a workspace runs, berthd listens on credentials.sock in the remote
 * user's run directory (/.berth/ide inside); git's credential helper there
 * (`berth-agent git-credential get`) asks it for a host, and berthd answers
 * with the owner's stored credential for exactly that scheme://host, or
 * nothing. Nothing is written into the container, the image or the repo.
 * On a remote runtime (a cluster) the run dir is not where the workspace
 * runs: berthd keeps a CRED_SERVE session with its agent instead, which
 * listens in the container in the socket's place (agent-proto.h). */
#ifndef BERTH_CREDENTIALS_H
#define BERTH_CREDENTIALS_H

struct creds;
struct ws_manager;

struct creds *creds_new(struct ws_manager *m);
void creds_free(struct creds *c);
/* Opens listeners for running workspaces, closes those of the others. */
void creds_sync(struct creds *c);

#endif
