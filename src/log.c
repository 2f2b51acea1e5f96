#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

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

void dmp_log(dmp_log_level_t level, const char *fmt, ...) {
        if (level > dmp_log_level)
                return;
        char msg[2048];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);

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
