/* main.c — the main() of libwsedge-native.a, linked only into a program
 * that defines none: it serves the app's well-known entry point. A program
 * with options of its own (an embedded page, defaults) writes its own main
 * around wse_native_main_with(). */
#include "wsedge/native.h"

int main(int argc, char **argv) {
  return wse_native_main(argc, argv, wsedge_app);
}
