/* Leveled logging, one line per message, to stderr or a file ([log] file),
 * as text or JSON lines ([log] format).
 * Thread-safe: each line is written whole under a lock. */
#ifndef DMP_LOG_H
#define DMP_LOG_H

#include <stddef.h>
#include <stdint.h>

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

/* Repeated messages. A message of class cls (a short string naming what
 * repeats, e.g. "delivery to out: Broker: Message size too large") is
 * written at once when its class has been quiet; the next ones of the
 * class within the repeat interval are only counted, and when the
 * interval ends one line gives their count and the first of them:
 *   "<n> more like this in the last 10.0 s, the first: <message>"
 * A class stays counted while it keeps repeating (one line per interval);
 * after an interval without one it is quiet again. So a flood (a broker
 * refusing every result, librdkafka's "Connection refused" at each
 * reconnect, a dead letter per record) writes one line per class per
 * interval, and nothing is hidden: the counts add up to every message.
 * Interval 0: every message is written. Thread-safe. */
void dmp_log_repeated(dmp_log_level_t level, const char *cls, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Sets the repeat interval ([log] repeat.interval.ms; default 10 s). */
void dmp_log_set_repeat_interval(int64_t ms);
/* Writes the count lines of the classes whose interval has ended by now
 * (dmp_mono_ms()); the daemon calls it periodically. now = INT64_MAX
 * writes every pending count (at exit). */
void dmp_log_repeats_tick(int64_t now);

#define dmp_error(...) dmp_log(DMP_LOG_ERROR, __VA_ARGS__)
#define dmp_warn(...)  dmp_log(DMP_LOG_WARN, __VA_ARGS__)
#define dmp_info(...)  dmp_log(DMP_LOG_INFO, __VA_ARGS__)
#define dmp_debug(...) \
        do { if (dmp_log_level >= DMP_LOG_DEBUG) dmp_log(DMP_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
