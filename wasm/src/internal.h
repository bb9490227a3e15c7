/* internal.h — helpers shared inside the core. The core is built both with
 * a libc (native) and without one (wasm32, -ffreestanding -nostdlib), so it
 * uses compiler builtins instead of <string.h>; with -mbulk-memory the wasm
 * build lowers them to memory.copy / memory.fill. */
#ifndef WSE_INTERNAL_H
#define WSE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "wsedge.h"

/* 1 in the wasm build (the edge: the runtime owns the frame layer and
 * permessage-deflate), 0 natively. */
#ifndef WSE_WASM
#define WSE_WASM 0
#endif

#define wse__memcpy(d, s, n) __builtin_memcpy((d), (s), (n))
#define wse__memmove(d, s, n) __builtin_memmove((d), (s), (n))
#define wse__memset(d, c, n) __builtin_memset((d), (c), (n))

#if WSE_WASM /* out of line in the module: smaller than inlined everywhere */
int wse__memeq(const void *a, const void *b, size_t n);
#else
static inline int wse__memeq(const void *a, const void *b, size_t n) {
  const uint8_t *x = (const uint8_t *)a, *y = (const uint8_t *)b;
  for (size_t i = 0; i < n; i++)
    if (x[i] != y[i]) return 0;
  return 1;
}
#endif

static inline size_t wse__strlen(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

static inline uint8_t wse__lower(uint8_t c) {
  return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

/* Case-insensitive ASCII comparison of two byte strings. */
static inline int wse__caseeq(const char *a, size_t an, const char *b, size_t bn) {
  if (an != bn) return 0;
  for (size_t i = 0; i < an; i++)
    if (wse__lower((uint8_t)a[i]) != wse__lower((uint8_t)b[i])) return 0;
  return 1;
}

/* Allocation through the host's allocator (in the module out of line: a
 * call is smaller than the indirect call inlined at every site). */
#if WSE_WASM
void *wse__alloc(const wse_allocator_t *a, size_t n);
void wse__free(const wse_allocator_t *a, void *p, size_t n);
#else
static inline void *wse__alloc(const wse_allocator_t *a, size_t n) {
  return a->alloc_fn(a->ud, n);
}
static inline void wse__free(const wse_allocator_t *a, void *p, size_t n) {
  if (p) a->free_fn(a->ud, p, n);
}
#endif
void *wse__realloc(const wse_allocator_t *a, void *p, size_t old_n, size_t new_n);

#endif
