#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

dmp_log_level_t dmp_log_level = DMP_LOG_INFO;

static const char *level_names[] = {"error", "warn", "info", "debug"};

int dmp_log_level_parse(const char *s) {
        for (int i = 0; i < 4; i++)
                if (!strcmp(s, level_names[i]))
                        return i;
        return -1;
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
        fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s %s\n",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000),
                level_names[level], msg);
}
