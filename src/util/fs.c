/* fs.c - file-system helpers: recursive mkdir/remove/chown, whole-file I/O, and
 * a symlink-proof connect to sockets that live in directories a container can
 * write. */
#include "util/fs.h"

#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/macro.h"
#include "util/xalloc.h"

int mkdir_p(const char *dir, mode_t mode)
{
    _cleanup_free_ char *p = xstrdup(dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        if (mkdir(p, mode) < 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    if (mkdir(p, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int r = flag == FTW_DP ? rmdir(path) : unlink(path);
    return r < 0 && errno != ENOENT ? -errno : 0;
}

int rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    int r = nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    return r < 0 ? -errno : r;
}

static uid_t chown_uid;
static gid_t chown_gid;

static int chown_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return lchown(path, chown_uid, chown_gid) < 0 && errno != ENOENT ? -errno : 0;
}

int chown_r(const char *path, uid_t uid, gid_t gid)
{
    /* nftw has no user pointer; serialize callers */
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&lock);
    chown_uid = uid;
    chown_gid = gid;
    int r = nftw(path, chown_one, 32, FTW_PHYS | FTW_MOUNT);
    pthread_mutex_unlock(&lock);
    return r < 0 ? -errno : r;
}

static int64_t du_total;

static int du_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (flag == FTW_F || flag == FTW_SL || flag == FTW_D || flag == FTW_DP)
        du_total += (int64_t)st->st_blocks * 512;
    return 0;
}

int64_t disk_usage(const char *path)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&lock);
    du_total = 0;
    int r = nftw(path, du_one, 32, FTW_PHYS | FTW_MOUNT);
    int64_t total = du_total;
    pthread_mutex_unlock(&lock);
    return r < 0 ? -errno : total;
}

int read_full(int fd, void *data, size_t len, int timeout_ms)
{
    char *p = data;
    while (len) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int r = poll(&pf, 1, timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -ETIMEDOUT;
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EPIPE;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int read_file(const char *path, size_t max, struct buf *out)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char chunk[8192];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return 0;
        if (out->len + (size_t)n > max)
            return -EFBIG;
        buf_add(out, chunk, (size_t)n);
    }
}

int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    _cleanup_free_ char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
    _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int r = -errno;
            (void)unlink(tmp);
            return r;
        }
        p += n;
        len -= (size_t)n;
    }
    if (fsync(fd) < 0 || rename(tmp, path) < 0) {
        int r = -errno;
        (void)unlink(tmp);
        return r;
    }
    return 0;
}

int unix_connect_nofollow(const char *dir, const char *name)
{
    _cleanup_close_ int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (dfd < 0)
        return -errno;
    _cleanup_close_ int sfd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (sfd < 0)
        return -errno;
    struct stat st;
    if (fstat(sfd, &st) < 0)
        return -errno;
    if (!S_ISSOCK(st.st_mode))
        return -ENOTSOCK;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d", sfd);
    /* non-blocking: a listener whose backlog is full (a stalled agent) gives
     * EAGAIN at once instead of holding the caller's thread */
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -errno;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
        return -errno;
    return TAKE_FD(fd);
}

/* read() that also takes a stream socket passed along (SCM_RIGHTS) into
 * *ret_fd when ret_fd is given; anything else passed is closed. */
ssize_t recv_with_fd(int fd, void *data, size_t len, int *ret_fd)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    struct iovec iov = {.iov_base = data, .iov_len = len};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0)
        return n;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
            cm->cmsg_len != CMSG_LEN(sizeof(int)))
            continue;
        int got;
        memcpy(&got, CMSG_DATA(cm), sizeof(int));
        int type = 0;
        socklen_t tl = sizeof(type);
        /* only a stream socket is any use; the container chose what to send */
        if (ret_fd && *ret_fd < 0 && getsockopt(got, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 &&
            type == SOCK_STREAM)
            *ret_fd = got;
        else
            close(got);
    }
    return n;
}
