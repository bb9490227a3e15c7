/* test.h — a tiny test harness shared by tests/c/test_*.c: CHECK macros that
 * count and report, a malloc-backed allocator, and guard-page buffers that
 * put input right before a PROT_NONE page so any over-read faults. Each test
 * program ends with TEST_REPORT() printing "N passed, N failed". */
#ifndef WSE_TEST_H
#define WSE_TEST_H

#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS under -D_POSIX_C_SOURCE */
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "wsedge.h"

static int t_pass, t_fail;

#define CHECK(cond)                                                         \
  do {                                                                      \
    if (cond) t_pass++;                                                     \
    else { t_fail++; fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, \
                             __LINE__, #cond); }                            \
  } while (0)

#define CHECK_EQ(a, b)                                                       \
  do {                                                                       \
    long long _a = (long long)(a), _b = (long long)(b);                      \
    if (_a == _b) t_pass++;                                                  \
    else { t_fail++; fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", \
                             __FILE__, __LINE__, #a, _a, #b, _b); }          \
  } while (0)

#define CHECK_MEM(p, n, q, m)                                                \
  do {                                                                       \
    size_t _n = (size_t)(n), _m = (size_t)(m);                               \
    if (_n == _m && memcmp((p), (q), _n) == 0) t_pass++;                     \
    else { t_fail++; fprintf(stderr, "%s:%d: %s (%zu bytes) != %s (%zu bytes)\n", \
                             __FILE__, __LINE__, #p, _n, #q, _m);           \
           fprintf(stderr, "  got:      %.*s\n  expected: %.*s\n", (int)_n,  \
                   (const char *)(p), (int)_m, (const char *)(q)); }         \
  } while (0)

#define CHECK_STR(p, n, s) CHECK_MEM(p, n, s, strlen(s))

#define TEST_REPORT()                                                        \
  do {                                                                       \
    printf("%s: %d passed, %d failed\n", __FILE__, t_pass, t_fail);          \
    return t_fail ? 1 : 0;                                                   \
  } while (0)

static void *t_alloc(void *ud, size_t n) { (void)ud; return malloc(n ? n : 1); }
static void *t_realloc(void *ud, void *p, size_t o, size_t n) { (void)ud; (void)o; return realloc(p, n ? n : 1); }
static void t_free(void *ud, void *p, size_t n) { (void)ud; (void)n; free(p); }
static const wse_allocator_t t_allocator = {t_alloc, t_realloc, t_free, NULL};

/* A copy of p[0..n) placed so its last byte is followed by a PROT_NONE page.
 * Free with guard_free. */
typedef struct { uint8_t *base; size_t map; uint8_t *data; } guard_t;
static guard_t guard_copy(const void *p, size_t n) {
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  size_t span = (n + pg - 1) / pg * pg + pg;
  guard_t g;
  g.map = span + (n % pg == 0 && n ? 0 : 0);
  g.base = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (g.base == MAP_FAILED) { perror("mmap"); exit(2); }
  mprotect(g.base + span - pg, pg, PROT_NONE);
  g.data = g.base + span - pg - n;
  if (n) memcpy(g.data, p, n);
  g.map = span;
  return g;
}
static void guard_free(guard_t *g) { munmap(g->base, g->map); }

#endif
