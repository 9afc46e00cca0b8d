/* fs.h - file-system helpers. */
#ifndef BERTH_FS_H
#define BERTH_FS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/buf.h"

/* Creates dir and its parents with the given mode; returns 0 or -errno. */
int mkdir_p(const char *dir, mode_t mode);
/* Removes path and everything below it without following symlinks; a missing
 * path is not an error. Returns 0 or -errno. */
int rm_rf(const char *path);
/* lchown()s path and everything below it. Returns 0 or -errno. */
int chown_r(const char *path, uid_t uid, gid_t gid);
/* The bytes path and everything below it take on disk (not crossing mount
 * points), or -errno. */
int64_t disk_usage(const char *path);
/* Reads exactly len bytes, waiting at most timeout_ms in total (-1: forever).
 * 0, -EPIPE at EOF, -ETIMEDOUT or -errno. */
int read_full(int fd, void *data, size_t len, int timeout_ms);
/* read() that also takes a stream socket passed along (SCM_RIGHTS) into
 * *ret_fd when ret_fd is given and *ret_fd < 0; anything else passed is closed. */
ssize_t recv_with_fd(int fd, void *data, size_t len, int *ret_fd);
/* Writes all of data to fd, retrying short writes and EINTR. 0 or -errno. */
int write_all(int fd, const void *data, size_t len);
/* Reads a whole file of at most max bytes into out. -EFBIG past the limit. */
int read_file(const char *path, size_t max, struct buf *out);
/* Writes data to path atomically (temp file + rename) with the given mode. */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* Opens the unix socket `name` inside `dir` without following symlinks and
 * connects to it; returns a connected, blocking, CLOEXEC fd or -errno (-ENOTSOCK
 * when the name is not a socket, -EAGAIN when its listener's backlog is full:
 * the connect itself never waits). Used for sockets inside a workspace's run dir,
 * which the untrusted container can write. */
int unix_connect_nofollow(const char *dir, const char *name);

#endif
