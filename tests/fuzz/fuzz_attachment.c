/* fuzz_attachment.c — libFuzzer target for the attachment decoder (layout
 * version 2). Any input either fails with a WSE_ATT_E* error leaving *out
 * untouched, or decodes to fields within their limits, every slice inside
 * the input, that re-encode to exactly the same bytes (the format has one
 * spelling per session). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "wsedge.h"

static uint8_t out[WSE_ATTACHMENT_MAX];

static int inside(const void *p, size_t n, const uint8_t *data, size_t size) {
  const uint8_t *q = (const uint8_t *)p;
  return n == 0 || (q >= data && q + n <= data + size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wse_attachment_t a, before;
  memset(&a, 0xA5, sizeof a);
  memcpy(&before, &a, sizeof a);
  int r = wse_attachment_decode(data, size, &a);
  if (r != WSE_OK) {
    if (r != WSE_ATT_ETRUNC && r != WSE_ATT_EMAGIC && r != WSE_ATT_EVERSION &&
        r != WSE_ATT_ECHECKSUM && r != WSE_ATT_ESIZE && r != WSE_ATT_EFIELD)
      abort();
    if (memcmp(&a, &before, sizeof a) != 0) abort(); /* never partial */
    return 0;
  }
  if (size > WSE_ATTACHMENT_MAX || a.pattern.n > WSE_PATTERN_MAX ||
      a.n_topics > WSE_TOPICS_MAX || a.user_len > WSE_USERDATA_MAX ||
      !inside(a.pattern.p, a.pattern.n, data, size) ||
      !inside(a.user, a.user_len, data, size) || (a.user_len == 0) != (a.user == NULL))
    abort();
  /* slots past n_topics are not written */
  if (memcmp(&a.topics[a.n_topics], &before.topics[a.n_topics],
             (WSE_TOPICS_MAX - a.n_topics) * sizeof a.topics[0]) != 0)
    abort();
  for (size_t i = 0; i < a.n_topics; i++) {
    wse_str_t t = a.topics[i];
    if (t.n < 1 || t.n > WSE_TOPIC_MAX || !inside(t.p, t.n, data, size) ||
        !wse_utf8_valid((const uint8_t *)t.p, t.n))
      abort();
  }
  long n = wse_attachment_encode(&a, out, sizeof out);
  if (n < 0 || (size_t)n != size || memcmp(out, data, size) != 0) abort();
  /* one byte short of room: refused, never written past */
  if (wse_attachment_encode(&a, out, size - 1) != WSE_ENOSPC) abort();
  return 0;
}
