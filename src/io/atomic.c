/* Atomic file replacement, shared by model files and the CLI's plots and
 * logs: write a temporary file in the same folder, fsync it, rename it over
 * the target, fsync the folder. A crash at any point leaves the old file or
 * the new one, never a mix. */
#define _POSIX_C_SOURCE 200809L

#include "../tape/internal.h"
#include "tapegrad_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_all(int fd, const unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t k = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k, n -= (size_t)k;
    }
    return 0;
}

/* mkstemp creates the file 0600. What we write is not a secret: give it the mode
 * of the file it replaces, or 0644 for a new one (reading the umask is not
 * thread-safe). */
static mode_t mode_for(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (st.st_mode & 07777) : 0644;
}

/* The directory holding path ("." for a bare name), for its fsync. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    size_t n = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    char *d = tg_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, slash ? path : ".", n);
    d[n] = '\0';
    return d;
}

/* After the rename, make the new directory entry durable. A failure is
 * ignored on purpose: the file itself is complete and in place, some file
 * systems refuse fsync on directories, and there is nothing left to undo. */
static void sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

/* Write buf to tmp (an open mkstemp file), make it durable, put it in
 * place. Always closes fd. Returns the failing step's name with errno set,
 * or NULL. */
static const char *commit(int fd, const char *tmp, const char *path, const unsigned char *buf,
                          size_t len) {
    const char *step = NULL;
    if (fchmod(fd, mode_for(path)) != 0)
        step = "chmod";
    else if (write_all(fd, buf, len) != 0)
        step = "write";
    else if (fsync(fd) != 0)
        step = "fsync";
    int e = errno;
    /* close can report a deferred write error (NFS): it counts. */
    if (close(fd) != 0 && !step) step = "close", e = errno;
    if (!step && rename(tmp, path) != 0) step = "rename", e = errno;
    errno = e;
    return step;
}

tg_status tg_write_file_atomic(const char *path, const void *buf, size_t len) {
    if (!path || (len && !buf)) return tg_fail(TG_ERR_ARG, "write: path or buffer is NULL");
    size_t n = strlen(path);
    char *tmp = tg_malloc(n + sizeof ".tmp.XXXXXX");
    char *dir = dir_of(path);
    tg_status s = TG_OK;
    if (!tmp || !dir) {
        s = tg_fail(TG_ERR_NOMEM, "%s: out of memory", path);
    } else {
        memcpy(tmp, path, n);
        memcpy(tmp + n, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
        int fd = mkstemp(tmp);
        const char *step = fd < 0 ? "cannot create temporary file"
                                  : commit(fd, tmp, path, (const unsigned char *)buf, len);
        if (step) {
            int e = errno;
            if (fd >= 0) unlink(tmp); /* the target is untouched */
            s = tg_fail(TG_ERR_IO, "%s: %s: %s", path, step, strerror(e));
        } else {
            sync_dir(dir);
        }
    }
    tg_free(tmp);
    tg_free(dir);
    return s;
}
