/* wsedge.h — the wsedge core: include this one header. */
#ifndef WSEDGE_H
#define WSEDGE_H
#include "wsedge/common.h"
#include "wsedge/utf8.h"
#include "wsedge/handshake.h"
#include "wsedge/frame.h"
#include "wsedge/app.h"
#include "wsedge/json.h"
#endif
