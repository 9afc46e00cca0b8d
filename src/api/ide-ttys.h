/* ide-ttys.h - output in VS Code's terminals is activity while VS Code is open.
 *
 * VS Code's terminals are ptys that code-server opens inside the container;
 * their output reaches the page inside the IDE's own messages, which this
 * server does not take apart. While at least one IDE connection to a
 * workspace is open, berthd keeps a TTY_WATCH session with its agent
 * (agent-proto.h), which reports when terminals the agent did not open last
 * printed; each time that moves forward, the workspace had "VS Code terminal
 * output". A long build in an IDE terminal keeps the workspace running, as
 * Codespaces does; an IDE tab left open over a quiet terminal does not.
 * Everything here runs on the event loop.
 */
#ifndef BERTH_API_IDE_TTYS_H
#define BERTH_API_IDE_TTYS_H

struct ws_manager;
struct ide_ttys;

struct ide_ttys *ide_ttys_new(struct ws_manager *m);
/* An IDE connection to workspace ws_id opened: the watch starts with the first. */
void ide_ttys_hold(struct ide_ttys *t, const char *ws_id);
/* It closed: the watch ends with the last. */
void ide_ttys_release(struct ide_ttys *t, const char *ws_id);

#endif
