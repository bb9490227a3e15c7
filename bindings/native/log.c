/* log.c — leveled log lines to stderr with a UTC timestamp.
 *
 * An event-loop thread buffers its info/debug lines and writes them with one
 * write(2) per callback, before that callback's network output goes out
 * (wsn_finish), and once per loop iteration as a backstop (a uv_check
 * handle): a line never trails what it reports by more than that. Lines
 * stay whole: a buffer only ever holds complete lines. Warnings and errors,
 * and every line from other threads, are written at once (after whatever
 * the thread had buffered, keeping the order). */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int wsn_log_level = WSN_LOG_INFO;

static const char *const names[] = {"error", "warn", "info", "debug"};

#define LOG_BUF 16384
#define LINE_MAX_ 1024

typedef struct {
  int on;
  size_t n;
  time_t sec;       /* second the cached stamp is for */
  char stamp[24];   /* "YYYY-MM-DDTHH:MM:SS" */
  char buf[LOG_BUF];
} tl_log_t;

static _Thread_local tl_log_t tl;

int wsn_log_parse_level(const char *s) {
  for (int i = 0; i < 4; i++)
    if (strcmp(s, names[i]) == 0) return i;
  return -1;
}

static void write_all(const char *p, size_t n) {
  while (n) {
    ssize_t w = write(2, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return; /* stderr gone: nothing better to do */
    }
    p += w;
    n -= (size_t)w;
  }
}

void wsn_log_flush(void) {
  if (!tl.n) return;
  write_all(tl.buf, tl.n);
  tl.n = 0;
}

void wsn_log_buffered(int on) {
  if (!on) wsn_log_flush();
  tl.on = on;
}

void wsn_log_write(int level, const char *fmt, ...) {
  char line[LINE_MAX_];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  if (ts.tv_sec != tl.sec || !tl.stamp[0]) { /* gmtime_r takes glibc's tz lock: once a second */
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(tl.stamp, sizeof tl.stamp, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    tl.sec = ts.tv_sec;
  }
  int n = snprintf(line, sizeof line, "%s.%03dZ %s ", tl.stamp,
                   (int)(ts.tv_nsec / 1000000), names[level]);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if (m < 0) m = 0;
  size_t len = (size_t)n + (size_t)m;
  if (len > sizeof line - 2) len = sizeof line - 2;
  line[len++] = '\n';
  if (tl.on && level >= WSN_LOG_INFO) {
    if (tl.n + len > sizeof tl.buf) wsn_log_flush();
    memcpy(tl.buf + tl.n, line, len);
    tl.n += len;
    return;
  }
  wsn_log_flush();
  write_all(line, len);
}
