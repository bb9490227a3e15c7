/* log.h — leveled log lines to stderr. Lines are written whole (one
 * write(2) holds only complete lines), so threads never interleave inside a
 * line; an event-loop thread batches its info/debug lines per iteration. */
#ifndef WSN_LOG_H
#define WSN_LOG_H

#include "wsedge/native.h"

enum { WSN_LOG_ERROR = WSE_LOG_ERROR, WSN_LOG_WARN = WSE_LOG_WARN,
       WSN_LOG_INFO = WSE_LOG_INFO, WSN_LOG_DEBUG = WSE_LOG_DEBUG };

extern int wsn_log_level;

/* Returns the level for "error"/"warn"/"info"/"debug", or -1. */
int wsn_log_parse_level(const char *s);

#define wsn_log_on(lvl) ((lvl) <= wsn_log_level)
#define wsn_log(lvl, ...) \
  do { if (wsn_log_on(lvl)) wsn_log_write((lvl), __VA_ARGS__); } while (0)

void wsn_log_write(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* This thread buffers info/debug lines until wsn_log_flush (on = 1), or
 * writes every line at once (on = 0, flushing first). */
void wsn_log_buffered(int on);
void wsn_log_flush(void);

#endif
