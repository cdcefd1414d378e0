/* common/log.c — levelled lines on stderr: "2026-11-25T16:26:32Z INFO message".
 * One fprintf per line, so lines from different threads do not interleave. */
#include "log.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

log_level log_threshold = LOG_LEVEL_INFO;

static const char *const log_names[] = { "error", "warn", "info", "debug" };

int log_parse_level(const char *name, log_level *out)
{
    for (int i = 0; i <= LOG_LEVEL_DEBUG; i++) {
        if (strcmp(name, log_names[i]) == 0) { *out = (log_level)i; return 0; }
    }
    return -1;
}

void log_write(log_level level, const char *fmt, ...)
{
    char msg[1024], stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s %-5s %s\n", stamp, log_names[level], msg);
}
