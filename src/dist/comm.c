/* Joining a communicator, waiting with a timeout, naming lost ranks. */
#define _POSIX_C_SOURCE 200809L

#include "../tape/internal.h"
#include "dist_internal.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TG_STR_(x) #x
#define TG_STR(x)  TG_STR_(x)
/* The version this library was built with: ranks started from different
 * installs must not train together (their ops may differ). */
#define TG_DIST_VERSION_STR                                                                        \
    TG_STR(TG_VERSION_MAJOR) "." TG_STR(TG_VERSION_MINOR) "." TG_STR(TG_VERSION_PATCH)

MPI_Datatype dist_mpi_type(tg_dtype dt) {
    return dt == TG_F64 ? MPI_DOUBLE : MPI_FLOAT;
}

tg_status dist_mpi_fail(tg_dist *d, int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "code %d", rc);
    if (d) d->broken = 1;
    return tg_fail(TG_ERR_IO, "dist: %s failed on rank %d: %s", what, d ? d->rank : -1, msg);
}

/* A process on this host that no longer exists. kill(pid, 0) probes without
 * sending anything; a pid reused since is a false "alive" (rare, harmless:
 * the message then says less, the timeout still fires). */
static int peer_gone(const tg_dist *d, int r) {
    const dist_peer *me = &d->peers[d->rank], *p = &d->peers[r];
    return r != d->rank && p->host == me->host && kill((pid_t)p->pid, 0) != 0 && errno == ESRCH;
}

/* The lost ranks in a message: Open MPI's shared-memory transport (vader)
 * never reports a dead peer; a collective with one simply never completes,
 * so the timeout is the detection and the pids tell who is gone. */
static tg_status dist_lost(tg_dist *d, const char *what) {
    char names[256] = "";
    size_t len = 0;
    int found = 0;
    for (int r = 0; r < d->size && len < sizeof names - 48; r++)
        if (peer_gone(d, r)) {
            int k = snprintf(names + len, sizeof names - len, "%srank %d (pid %d)",
                             found++ ? ", " : "", r, (int)d->peers[r].pid);
            len += k > 0 ? (size_t)k : 0;
        }
    d->broken = 1;
    if (found)
        return tg_fail(TG_ERR_IO, "dist: %s: rank %d waited %.0f s for the others: %s %s gone",
                       what, d->rank, d->timeout, names, found > 1 ? "are" : "is");
    return tg_fail(TG_ERR_IO,
                   "dist: %s: rank %d waited %.0f s for the others: no rank on this host is gone; "
                   "a rank on another host died or is stuck",
                   what, d->rank, d->timeout);
}

tg_status dist_wait_all(tg_dist *d, int n, MPI_Request *reqs, const char *what) {
    double t0 = MPI_Wtime();
    for (unsigned long spin = 1;; spin++) {
        int done = 0;
        int rc = MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) return dist_mpi_fail(d, rc, what);
        if (done) return TG_OK;
        /* Poll as MPI's blocking calls do, but look at the clock and let the
         * other ranks' processes run (2 ranks on 2 busy cores) now and then. */
        if (spin % 256 == 0) {
            if (MPI_Wtime() - t0 > d->timeout) return dist_lost(d, what);
            sched_yield();
        }
    }
}

tg_status dist_wait(tg_dist *d, MPI_Request *req, const char *what) {
    return dist_wait_all(d, 1, req, what);
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static double env_timeout(void) {
    const char *s = getenv("TAPEGRAD_DIST_TIMEOUT");
    char *end;
    double v = s ? strtod(s, &end) : 0;
    return s && end != s && !*end && v > 0 && v < 1e6 ? v : 20.0;
}

/* Every rank's version, pid and host; a version that differs from rank 0's
 * fails on every rank, since every rank sees the same table. */
static tg_status exchange(tg_dist *d, const char *version) {
    dist_peer me;
    memset(&me, 0, sizeof me);
    snprintf(me.version, sizeof me.version, "%s", version);
    me.pid = (int32_t)getpid();
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    me.host = fnv1a(host);
    MPI_Request req;
    int rc = MPI_Iallgather(&me, (int)sizeof me, MPI_BYTE, d->peers, (int)sizeof me, MPI_BYTE,
                            d->comm, &req);
    tg_status s = rc == MPI_SUCCESS ? dist_wait(d, &req, "start-up exchange")
                                    : dist_mpi_fail(d, rc, "start-up exchange");
    if (s) return s;
    for (int r = 0; r < d->size; r++) {
        d->peers[r].version[sizeof me.version - 1] = 0;
        d->local_size += d->peers[r].host == me.host;
        if (strcmp(d->peers[r].version, d->peers[0].version))
            return tg_fail(TG_ERR_STATE,
                           "dist: tapegrad versions differ across ranks: rank 0 has %s, rank %d "
                           "has %s",
                           d->peers[0].version, r, d->peers[r].version);
    }
    return TG_OK;
}

tg_status tg_dist_init_as(tg_dist **out, MPI_Comm comm, const char *version) {
    if (!out || !version) return tg_fail(TG_ERR_ARG, "dist: init: NULL argument");
    *out = NULL;
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (finalized) return tg_fail(TG_ERR_STATE, "dist: init: MPI was already finalized");
    tg_dist *d = tg_calloc(1, sizeof *d);
    if (!d) return tg_fail(TG_ERR_NOMEM, "dist: init: out of memory");
    d->comm = MPI_COMM_NULL;
    d->timeout = env_timeout();
    int provided, rc = MPI_SUCCESS;
    if (!inited) {
        rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        d->owns_mpi = rc == MPI_SUCCESS;
    }
    /* Our own duplicate: the caller's error handler and messages stay theirs,
     * and errors return to us instead of aborting the job. */
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_dup(comm == MPI_COMM_NULL ? MPI_COMM_WORLD : comm, &d->comm);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(d->comm, &d->rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(d->comm, &d->size);
    tg_status s = rc == MPI_SUCCESS ? TG_OK : dist_mpi_fail(d, rc, "init");
    if (!s) {
        d->peers = tg_calloc((size_t)d->size, sizeof *d->peers);
        s = d->peers ? exchange(d, version) : tg_fail(TG_ERR_NOMEM, "dist: init: out of memory");
    }
    if (s) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", tg_last_error()); /* free may not touch it, but be sure */
        tg_dist_free(d);
        return tg_fail(s, "%s", msg);
    }
    *out = d;
    return TG_OK;
}

tg_status tg_dist_init(tg_dist **out, MPI_Comm comm) {
    return tg_dist_init_as(out, comm, TG_DIST_VERSION_STR);
}

void tg_dist_free(tg_dist *d) {
    if (!d) return;
    dist_buckets_free(d);
    tg_free(d->peers);
    if (!d->broken) {
        if (d->comm != MPI_COMM_NULL) MPI_Comm_free(&d->comm);
        if (d->owns_mpi) MPI_Finalize();
    }
    tg_free(d);
}

int tg_dist_rank(const tg_dist *d) {
    return d ? d->rank : 0;
}

int tg_dist_size(const tg_dist *d) {
    return d ? d->size : 1;
}

int tg_dist_local_size(const tg_dist *d) {
    return d && d->local_size > 0 ? d->local_size : 1;
}

void tg_dist_set_timeout(tg_dist *d, double seconds) {
    if (d && seconds > 0) d->timeout = seconds;
}

/* ---------------------------------------------------------------- SIGTERM */

/* What the handler reads: set before it is installed, never freed while it
 * is (tg_dist_watch_signals(d, 0) first). */
static const tg_dist *watched;

static size_t put_str(char *buf, size_t len, size_t cap, const char *s) {
    while (*s && len + 1 < cap)
        buf[len++] = *s++;
    return len;
}

static size_t put_int(char *buf, size_t len, size_t cap, long v) {
    char digits[24];
    int n = 0;
    unsigned long u = v < 0 ? (unsigned long)-v : (unsigned long)v;
    do
        digits[n++] = (char)('0' + u % 10);
    while ((u /= 10) && n < 23);
    if (v < 0 && len + 1 < cap) buf[len++] = '-';
    while (n && len + 1 < cap)
        buf[len++] = digits[--n];
    return len;
}

/* Async-signal-safe only: kill, write, signal, raise; no stdio. */
static void on_term(int sig) {
    int e = errno;
    const tg_dist *d = watched;
    char msg[512];
    size_t len = put_str(msg, 0, sizeof msg, "tapegrad: rank ");
    len = put_int(msg, len, sizeof msg, d ? d->rank : -1);
    len = put_str(msg, len, sizeof msg, " stopped by SIGTERM");
    int found = 0;
    for (int r = 0; d && r < d->size && len < sizeof msg - 64; r++)
        if (peer_gone(d, r)) {
            len = put_str(msg, len, sizeof msg, found++ ? ", rank " : ": rank ");
            len = put_int(msg, len, sizeof msg, r);
            len = put_str(msg, len, sizeof msg, " (pid ");
            len = put_int(msg, len, sizeof msg, d->peers[r].pid);
            len = put_str(msg, len, sizeof msg, ")");
        }
    len = put_str(msg, len, sizeof msg,
                  found ? (found > 1 ? " are gone\n" : " is gone\n")
                        : " (no rank on this host is gone)\n");
    ssize_t w = write(STDERR_FILENO, msg, len);
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig);
    errno = e;
}

void tg_dist_watch_signals(const tg_dist *d, int on) {
    struct sigaction act;
    memset(&act, 0, sizeof act);
    sigemptyset(&act.sa_mask);
    if (on && d) {
        watched = d;
        act.sa_handler = on_term;
        act.sa_flags = SA_RESETHAND;
    } else {
        act.sa_handler = SIG_DFL;
    }
    sigaction(SIGTERM, &act, NULL);
    if (!on) watched = NULL;
}
