/* Leveled logging, one line per message, to stderr or a file ([log] file),
 * as text or JSON lines ([log] format).
 * Thread-safe: each line is written whole under a lock. */
#ifndef DMP_LOG_H
#define DMP_LOG_H

#include <stddef.h>

typedef enum {
        DMP_LOG_ERROR = 0,
        DMP_LOG_WARN  = 1,
        DMP_LOG_INFO  = 2,
        DMP_LOG_DEBUG = 3,
} dmp_log_level_t;

extern dmp_log_level_t dmp_log_level;

/* Sets the format (json: JSON lines, else text) and the file (NULL or "":
 * stderr), opened for appending. Returns 0, or -1 with errstr (nothing
 * changed). */
int dmp_log_configure(int json, const char *file, char *errstr, size_t errstr_size);
/* Asks for the file to be reopened before the next line (log rotation);
 * async-signal-safe: call it from a SIGHUP handler. */
void dmp_log_request_reopen(void);
void dmp_log(dmp_log_level_t level, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

#define dmp_error(...) dmp_log(DMP_LOG_ERROR, __VA_ARGS__)
#define dmp_warn(...)  dmp_log(DMP_LOG_WARN, __VA_ARGS__)
#define dmp_info(...)  dmp_log(DMP_LOG_INFO, __VA_ARGS__)
#define dmp_debug(...) \
        do { if (dmp_log_level >= DMP_LOG_DEBUG) dmp_log(DMP_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
