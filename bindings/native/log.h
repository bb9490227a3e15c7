/* log.h — leveled log lines to stderr, one write(2) per line so lines from
 * different threads never interleave. */
#ifndef WSN_LOG_H
#define WSN_LOG_H

enum { WSN_LOG_ERROR = 0, WSN_LOG_WARN, WSN_LOG_INFO, WSN_LOG_DEBUG };

extern int wsn_log_level;

/* Returns the level for "error"/"warn"/"info"/"debug", or -1. */
int wsn_log_parse_level(const char *s);

#define wsn_log_on(lvl) ((lvl) <= wsn_log_level)
#define wsn_log(lvl, ...) \
  do { if (wsn_log_on(lvl)) wsn_log_write((lvl), __VA_ARGS__); } while (0)

void wsn_log_write(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
