/* Atomic file replacement, shared by model files and the CLI's plots and
 * logs: write a temporary file in the same folder, fsync it, rename it over
 * the target, fsync the folder. A crash at any point leaves the old file or
 * the new one, never a mix; a user's SIGINT, SIGTERM, SIGHUP or SIGQUIT
 * also leaves no temporary file behind (see "signals" below). */
#define _POSIX_C_SOURCE 200809L

#include "../tape/internal.h"
#include "tapegrad_io.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- signals */

/* ^C or kill while a file is written used to leave PATH.tmp.XXXXXX beside
 * the old file (issue 12 §5). Blocking the signals around the write does
 * not work in a threaded process: a process-directed signal goes to any
 * thread that does not block it, and threads we do not own (OpenBLAS's
 * pool, the program's) do not; its default action then ends the process
 * mid-write. So the choice is unlink and re-raise: while a write is under
 * way, each of these signals whose action is the default gets a handler
 * that unlinks the temporary files being written, restores the default
 * and raises the signal again, so the process still dies of it (the shell
 * sees the same status). A signal the program handles or ignores is left
 * alone: the program decides, and the write completes or fails as usual.
 * SIGKILL cannot be caught; its leftover file is unavoidable. */
static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define N_STOP  (sizeof stop_signals / sizeof *stop_signals)
#define N_SLOTS 16 /* writes protected at once; more are written unprotected */

/* The temporary files being written: read by the handler, so lock-free
 * atomics. A slot is cleared before its name is freed. */
static _Atomic(char *) pending[N_SLOTS];
static pthread_mutex_t guard_mu = PTHREAD_MUTEX_INITIALIZER;
static int writers;                /* writes under way, under guard_mu */
static unsigned char ours[N_STOP]; /* 1 where our handler is installed */

static void on_stop(int sig) {
    int e = errno;
    for (int i = 0; i < N_SLOTS; i++) {
        char *p = atomic_load(&pending[i]);
        if (p) unlink(p);
    }
    /* SA_RESETHAND restored the default; the signal is blocked until this
     * returns, then it ends the process. */
    raise(sig);
    errno = e;
}

static void install(void) {
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = on_stop;
    act.sa_flags = SA_RESETHAND | SA_RESTART;
    sigemptyset(&act.sa_mask);
    for (size_t i = 0; i < N_STOP; i++)
        if (sigaction(stop_signals[i], NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) &&
            old.sa_handler == SIG_DFL)
            ours[i] = sigaction(stop_signals[i], &act, NULL) == 0;
}

/* Back to the default, unless the program installed its own meanwhile. */
static void uninstall(void) {
    struct sigaction dfl, cur;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (size_t i = 0; i < N_STOP; i++) {
        if (ours[i] && sigaction(stop_signals[i], NULL, &cur) == 0 && cur.sa_handler == on_stop)
            sigaction(stop_signals[i], &dfl, NULL);
        ours[i] = 0;
    }
}

/* Registers tmp (a mkstemp template, filled in place later) before the
 * file exists; returns its slot, or -1 when all are taken. */
static int guard_begin(char *tmp) {
    pthread_mutex_lock(&guard_mu);
    if (writers++ == 0) install();
    pthread_mutex_unlock(&guard_mu);
    for (int i = 0; i < N_SLOTS; i++) {
        char *none = NULL;
        if (atomic_compare_exchange_strong(&pending[i], &none, tmp)) return i;
    }
    return -1;
}

/* After the rename or the unlink: the name is no longer ours to remove. */
static void guard_end(int slot) {
    if (slot >= 0) atomic_store(&pending[slot], NULL);
    pthread_mutex_lock(&guard_mu);
    if (--writers == 0) uninstall();
    pthread_mutex_unlock(&guard_mu);
}

/* ---------------------------------------------------------------- writing */

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

/* "PATH.tmp.XXXXXX", for mkstemp. */
static char *tmp_template(const char *path) {
    size_t n = strlen(path);
    char *tmp = tg_malloc(n + sizeof ".tmp.XXXXXX");
    if (!tmp) return NULL;
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    return tmp;
}

/* Say so plainly rather than let rename report EISDIR after the work. */
static tg_status not_a_folder(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return tg_fail(TG_ERR_IO, "%s: is a directory", path);
    return TG_OK;
}

tg_status tg_write_check(const char *path) {
    if (!path) return tg_fail(TG_ERR_ARG, "write: path is NULL");
    tg_status s = not_a_folder(path);
    if (s) return s;
    char *tmp = tmp_template(path);
    if (!tmp) return tg_fail(TG_ERR_NOMEM, "%s: out of memory", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        s = tg_fail(TG_ERR_IO, "%s: cannot create a file there: %s", path, strerror(errno));
    } else {
        close(fd);
        unlink(tmp);
    }
    tg_free(tmp);
    return s;
}

/* mkstemp, commit, and the unlink of a failed write, with the signal
 * guard around the time the temporary file exists. */
static tg_status write_guarded(const char *path, char *tmp, const void *buf, size_t len) {
    int slot = guard_begin(tmp);
    int fd = mkstemp(tmp);
    const char *step = fd < 0 ? "cannot create temporary file"
                              : commit(fd, tmp, path, (const unsigned char *)buf, len);
    int e = errno;
    if (step && fd >= 0) unlink(tmp); /* the target is untouched */
    guard_end(slot);
    return step ? tg_fail(TG_ERR_IO, "%s: %s: %s", path, step, strerror(e)) : TG_OK;
}

tg_status tg_write_file_atomic(const char *path, const void *buf, size_t len) {
    if (!path || (len && !buf)) return tg_fail(TG_ERR_ARG, "write: path or buffer is NULL");
    tg_status s = not_a_folder(path);
    if (s) return s;
    char *tmp = tmp_template(path);
    char *dir = dir_of(path);
    if (!tmp || !dir)
        s = tg_fail(TG_ERR_NOMEM, "%s: out of memory", path);
    else if (!(s = write_guarded(path, tmp, buf, len)))
        sync_dir(dir);
    tg_free(tmp);
    tg_free(dir);
    return s;
}
