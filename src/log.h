/* Leveled logging to stderr, one line per message.
 * Thread-safe: each line is written with a single fprintf on stderr, which
 * POSIX stdio locks. */
#ifndef DMP_LOG_H
#define DMP_LOG_H

typedef enum {
        DMP_LOG_ERROR = 0,
        DMP_LOG_WARN  = 1,
        DMP_LOG_INFO  = 2,
        DMP_LOG_DEBUG = 3,
} dmp_log_level_t;

extern dmp_log_level_t dmp_log_level;

/* Parses "error|warn|info|debug"; returns -1 if unknown. */
int dmp_log_level_parse(const char *s);
void dmp_log(dmp_log_level_t level, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

#define dmp_error(...) dmp_log(DMP_LOG_ERROR, __VA_ARGS__)
#define dmp_warn(...)  dmp_log(DMP_LOG_WARN, __VA_ARGS__)
#define dmp_info(...)  dmp_log(DMP_LOG_INFO, __VA_ARGS__)
#define dmp_debug(...) \
        do { if (dmp_log_level >= DMP_LOG_DEBUG) dmp_log(DMP_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
