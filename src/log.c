#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "util.h"

dmp_log_level_t dmp_log_level = DMP_LOG_INFO;

static const char *level_names[] = {"error", "warn", "info", "debug"};

/* The destination: stderr, or [log] file (reopened after SIGHUP, for log
 * rotation). Lines are written whole under the lock. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_fp;         /* NULL: stderr */
static char log_path[4096];  /* "" : stderr */
static int log_json;
static atomic_int reopen_requested;

int dmp_log_configure(int json, const char *file, char *errstr, size_t errstr_size) {
        FILE *fp = NULL;
        if (file && *file && !(fp = fopen(file, "a"))) {
                snprintf(errstr, errstr_size, "[log] file %s: %s", file, strerror(errno));
                return -1;
        }
        if (fp)
                setvbuf(fp, NULL, _IOLBF, 0);
        pthread_mutex_lock(&log_lock);
        if (log_fp)
                fclose(log_fp);
        log_fp = fp;
        snprintf(log_path, sizeof(log_path), "%s", fp ? file : "");
        log_json = json;
        pthread_mutex_unlock(&log_lock);
        return 0;
}

void dmp_log_request_reopen(void) {
        atomic_store(&reopen_requested, 1);
}

/* Under the lock. A failed reopen keeps the old file. */
static void reopen(void) {
        if (!log_path[0])
                return;
        FILE *fp = fopen(log_path, "a");
        if (!fp)
                return;
        setvbuf(fp, NULL, _IOLBF, 0);
        fclose(log_fp);
        log_fp = fp;
}

static void json_escaped(FILE *fp, const char *s) {
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                if (c == '"' || c == '\\')
                        fprintf(fp, "\\%c", c);
                else if (c < 0x20)
                        fprintf(fp, "\\u%04x", c);
                else
                        fputc(c, fp);
        }
}

/* Writes one line, whole. */
static void write_line(dmp_log_level_t level, const char *msg) {
        struct timeval tv;
        struct tm tm;
        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        char ts[64];
        snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(tv.tv_usec / 1000));
        pthread_mutex_lock(&log_lock);
        if (atomic_exchange(&reopen_requested, 0))
                reopen();
        FILE *fp = log_fp ? log_fp : stderr;
        if (log_json) {
                fprintf(fp, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts, level_names[level]);
                json_escaped(fp, msg);
                fputs("\"}\n", fp);
        } else {
                fprintf(fp, "%s %-5s %s\n", ts, level_names[level], msg);
        }
        pthread_mutex_unlock(&log_lock);
}

static void repeated(dmp_log_level_t level, const char *cls, const char *msg);

/* dmp_log and dmp_log_repeated (cls != NULL). */
static void vlog(dmp_log_level_t level, const char *cls, const char *fmt, va_list ap) {
        if (level > dmp_log_level)
                return;
        char msg[2048];
        vsnprintf(msg, sizeof(msg), fmt, ap);
        if (cls)
                repeated(level, cls, msg);
        else
                write_line(level, msg);
}

void dmp_log(dmp_log_level_t level, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vlog(level, NULL, fmt, ap);
        va_end(ap);
}

void dmp_log_repeated(dmp_log_level_t level, const char *cls, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vlog(level, cls, fmt, ap);
        va_end(ap);
}

/* ---- repeated messages (log.h) ---- */

#define REPEAT_CLASSES 64 /* classes counted at once; beyond them, lines are written */

typedef struct repeat {
        char cls[160];
        dmp_log_level_t level;
        int64_t start, until; /* the counting interval (monotonic ms); until 0: free */
        uint64_t count;       /* messages counted, not written, in it */
        char first[1024];     /* the first of them */
} repeat_t;

/* Taken before log_lock, never after it. */
static pthread_mutex_t repeat_lock = PTHREAD_MUTEX_INITIALIZER;
static repeat_t repeats[REPEAT_CLASSES];
static int64_t repeat_interval = 10000;

void dmp_log_set_repeat_interval(int64_t ms) {
        pthread_mutex_lock(&repeat_lock);
        repeat_interval = ms > 0 ? ms : 0;
        pthread_mutex_unlock(&repeat_lock);
}

/* Under repeat_lock: the count lines of intervals ended by now. A class
 * that repeated in its interval is counted for one more; a quiet one is
 * freed. */
static void repeats_expire(int64_t now) {
        for (int i = 0; i < REPEAT_CLASSES; i++) {
                repeat_t *r = &repeats[i];
                if (!r->until || now < r->until)
                        continue;
                if (!r->count) {
                        r->until = 0;
                        continue;
                }
                int64_t end = now == INT64_MAX ? dmp_mono_ms() : now; /* (INT64_MAX: at exit) */
                char line[1200];
                snprintf(line, sizeof(line),
                         "%" PRIu64 " more like this in the last %.1f s, the first: %s", r->count,
                         (double)(end - r->start) / 1000.0, r->first);
                write_line(r->level, line);
                r->count = 0;
                r->start = end;
                r->until = now == INT64_MAX ? 0 : end + repeat_interval;
        }
}

void dmp_log_repeats_tick(int64_t now) {
        pthread_mutex_lock(&repeat_lock);
        repeats_expire(now);
        pthread_mutex_unlock(&repeat_lock);
}

static void repeated(dmp_log_level_t level, const char *cls, const char *msg) {
        pthread_mutex_lock(&repeat_lock);
        int64_t now = dmp_mono_ms();
        repeats_expire(now);
        repeat_t *free_slot = NULL;
        for (int i = 0; repeat_interval > 0 && i < REPEAT_CLASSES; i++) {
                repeat_t *r = &repeats[i];
                if (!r->until) {
                        if (!free_slot)
                                free_slot = r;
                } else if (!strncmp(r->cls, cls, sizeof(r->cls) - 1)) {
                        if (!r->count++)
                                snprintf(r->first, sizeof(r->first), "%.*s",
                                         (int)sizeof(r->first) - 1, msg);
                        pthread_mutex_unlock(&repeat_lock);
                        return;
                }
        }
        write_line(level, msg);
        if (free_slot) {
                snprintf(free_slot->cls, sizeof(free_slot->cls), "%s", cls);
                free_slot->level = level;
                free_slot->count = 0;
                free_slot->start = now;
                free_slot->until = now + repeat_interval;
        }
        pthread_mutex_unlock(&repeat_lock);
}
