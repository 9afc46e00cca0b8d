/* ide-activity.h - telling VS Code's user actions from its keep-alives.
 *
 * VS Code (code-server) talks to its server over WebSockets carrying its
 * PersistentProtocol: messages with a 13-byte header (type u8, id u32,
 * ack u32, length u32, big-endian) and a body. A tab that nobody touches
 * still sends KeepAlive (type 9) and Ack (type 3) messages every few
 * seconds, and Regular (type 1) messages of its own too: a telemetry
 * ping and an agent-host ping every 5 s, the chat session's state written
 * to the IDE's storage every 5 s, log-file events (measured with code-server
 * 4.x: docs/idle.md). What a person does shows as requests of the
 * workbench's IPC channels (files of the workspace, terminals, search) and
 * as editor events to the extension host (cursor, selection, edits, saves).
 * This parser follows the bytes a browser sends (masked WebSocket frames,
 * the permessage-deflate extension refused by the proxy so that they are
 * readable), reads the start of each Regular message and counts those that
 * are a person's doing (ide_is_user_action).
 */
#ifndef BERTH_API_IDE_ACTIVITY_H
#define BERTH_API_IDE_ACTIVITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { IDE_MSG_REGULAR = 1, IDE_MSG_CONTROL = 2, IDE_MSG_ACK = 3, IDE_MSG_KEEPALIVE = 9 };

struct ide_activity {
    /* the WebSocket frame */
    unsigned char fhead[14];
    size_t fhead_len;
    uint64_t fleft; /* payload bytes left in the frame */
    unsigned char mask[4];
    uint64_t fpos; /* payload offset, for the mask */
    bool fdata;    /* the frame carries data (binary, text, continuation) */
    bool broken;   /* not a WebSocket stream we understand: stop looking */
    /* the protocol message */
    unsigned char mhead[13];
    size_t mhead_len;
    uint64_t mleft; /* body bytes left in the message */
    /* what was seen */
    uint64_t regular;  /* Regular messages */
    uint64_t other;    /* every other message */
    uint64_t last_len; /* the body length of the last Regular message */
    uint64_t actions;  /* Regular messages that are a person's doing */
    /* the start of the current Regular message's body */
    unsigned char sample[256];
    size_t sample_len;
    bool sampling; /* a Regular message's body is being read and not yet judged */
};

/* Feeds bytes the client sent; returns how many of a person's actions were
 * seen complete in them. */
unsigned ide_activity_feed(struct ide_activity *a, const unsigned char *data, size_t len);

/* Whether a Regular message whose body starts with body[0..len) is a
 * person's doing; *ret_what (may be NULL) names it ("remoteFilesystem.stat",
 * "$acceptEditorPropertiesChanged") in a static buffer. */
bool ide_is_user_action(const unsigned char *body, size_t len, const char **ret_what);

#endif
