/* cluster.h — native rooms across processes and hosts on Redis pub/sub
 * (`serve --redis`). The core decides what crosses nodes (PUBLISH and
 * PRESENCE actions, wse_app_cluster_input); this file only moves bytes
 * to and from Redis, on thread 0's loop, with hiredis and its libuv
 * adapter. Every function but wsn_cluster_new runs under the app lock
 * unless said otherwise. */
#ifndef WSN_CLUSTER_H
#define WSN_CLUSTER_H

#include "server.h"

typedef struct wsn_cluster wsn_cluster_t;

/* Reach Redis (a blocking PING, 1 s), pick a node id, join the app to the
 * cluster, set up the handles on thread 0's loop. Returns 0, or 2 after
 * printing why when Redis cannot be reached and redis_optional is off. */
int wsn_cluster_new(wsn_server_t *srv);
/* PUBLISH, PRESENCE and HISTORY actions. */
void wsn_cluster_exec(wsn_server_t *srv, const wse_action_t *a);
/* Before a session opens / an HTTP route of a room runs: a room with no
 * member on this node is brought up to the cluster's history and
 * numbering first (one Redis round trip). */
void wsn_cluster_before_open(wsn_server_t *srv, const wse_session_t *s);
void wsn_cluster_before_http(wsn_server_t *srv, const wse_request_t *req);
/* The "cluster" member of /stats (a JSON object) into buf; its length. */
int wsn_cluster_stats(wsn_server_t *srv, char *buf, size_t cap);
/* Thread 0, when its loop ends: say goodbye, flush, disconnect, close the
 * handles (not under the app lock). */
void wsn_cluster_close(wsn_server_t *srv);
/* After the loops ended. */
void wsn_cluster_free(wsn_server_t *srv);

#endif
