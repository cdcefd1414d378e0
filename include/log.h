/* log — levelled logging to stderr (common/log.c).
 *
 * It lives in common/, below api/ and daemon/, the two layers that log, so
 * neither reaches into the other for it. The level is part of the daemon's
 * own configuration (the one global the style allows); the macros test it
 * before formatting anything, so a disabled LOGD costs one comparison. Only
 * top levels log (the worker pool, main, the HTTP server's request
 * lifecycle and its 5xx replies): spec, core and storage return errors
 * instead of printing them. */
#ifndef SAED_LOG_H
#define SAED_LOG_H

typedef enum { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG } log_level;

extern log_level log_threshold; /* set once at start-up from --log-level */

void log_write(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int log_parse_level(const char *name, log_level *out); /* "error|warn|info|debug" -> 0, else -1 */

#define LOG_AT(lvl, ...) do { if ((lvl) <= log_threshold) log_write((lvl), __VA_ARGS__); } while (0)
#define LOGE(...) LOG_AT(LOG_LEVEL_ERROR, __VA_ARGS__)
#define LOGW(...) LOG_AT(LOG_LEVEL_WARN, __VA_ARGS__)
#define LOGI(...) LOG_AT(LOG_LEVEL_INFO, __VA_ARGS__)
#define LOGD(...) LOG_AT(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
