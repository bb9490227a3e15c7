/* wsedge/utf8.h — incremental, fail-fast UTF-8 validation (RFC 3629):
 * rejects overlongs, surrogates and code points above U+10FFFF on the very
 * byte where the sequence becomes impossible. */
#ifndef WSEDGE_UTF8_H
#define WSEDGE_UTF8_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WSE_UTF8_ACCEPT 0u  /* state at a character boundary */

/* Continue validation from *state over p[0..n). Returns 0 when every byte is
 * still possible (then *state is ACCEPT or mid-sequence), or -1 with *bad
 * set to the index of the first impossible byte. */
int wse_utf8_feed(uint32_t *state, const uint8_t *p, size_t n, size_t *bad);

/* Whole-buffer check: 1 valid and complete, 0 otherwise. */
int wse_utf8_valid(const uint8_t *p, size_t n);

#ifdef __cplusplus
}
#endif
#endif
