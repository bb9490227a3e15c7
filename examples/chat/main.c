/* main.c — the chat example's program: the library's `serve` command with
 * the chat page (worker/chat.html, embedded at build time) served at /. */
#include "wsedge/native.h"

extern const unsigned char chat_page[];
extern const size_t chat_page_len;

int main(int argc, char **argv) {
  wse_native_options_t o;
  wse_native_options_default(&o);
  o.index_html = chat_page;
  o.index_html_len = chat_page_len;
  return wse_native_main_with(argc, argv, wsedge_app, &o);
}
