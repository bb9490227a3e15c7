/* fuzz_attachment.c — libFuzzer target for the attachment decoder. Any
 * input either fails with a WSE_ATT_E* error leaving the session untouched,
 * or decodes to fields within their limits that re-encode to exactly the
 * same bytes (the format has one spelling per session). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "wsedge.h"

static uint8_t user[WSE_USERDATA_MAX], out[WSE_ATTACHMENT_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wse_session_t s, before;
  memset(&s, 0xA5, sizeof s);
  memcpy(&before, &s, sizeof s);
  int r = wse_attachment_decode(data, size, &s, user);
  if (r != WSE_OK) {
    if (r != WSE_ATT_ETRUNC && r != WSE_ATT_EMAGIC && r != WSE_ATT_EVERSION &&
        r != WSE_ATT_ECHECKSUM && r != WSE_ATT_ESIZE && r != WSE_ATT_EFIELD)
      abort();
    if (memcmp(&s, &before, sizeof s) != 0) abort(); /* never partial */
    return 0;
  }
  if (s.room_len > WSE_ROOM_MAX || s.name_len > WSE_NAME_MAX ||
      s.user_len > WSE_USERDATA_MAX || s.user != user ||
      !wse_utf8_valid((const uint8_t *)s.room, s.room_len) ||
      !wse_utf8_valid((const uint8_t *)s.name, s.name_len))
    abort();
  long n = wse_attachment_encode(&s, out, sizeof out);
  if (n < 0 || (size_t)n != size || memcmp(out, data, size) != 0) abort();
  /* one byte short of room: refused, never written past */
  if (wse_attachment_encode(&s, out, size - 1) != WSE_ENOSPC) abort();
  return 0;
}
