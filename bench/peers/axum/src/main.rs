//! Axum peer for bench/ (tokio-tungstenite underneath): the idiomatic Axum
//! WebSocket server, on tokio's current-thread runtime (the benchmark gives
//! every server one pinned core). Usage: wsedge-bench-axum PORT
//!   /ws          echo (text stays text, binary stays binary)
//!   /chat/:room  room as a tokio broadcast channel (Axum's chat example):
//!                binary relayed as-is to the other members, text broadcast
//!                as JSON {"type":"message",...} to every member incl. sender.
//! Defaults as users get them (tungstenite's 128 KiB read/write buffers).
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast;

type Room = broadcast::Sender<(u64, Message)>;

#[derive(Default)]
struct AppState {
    rooms: Mutex<HashMap<String, Room>>,
    next_id: AtomicU64,
}

#[derive(Deserialize)]
struct Join {
    name: Option<String>,
}

async fn echo(ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(16 << 20).on_upgrade(|mut socket: WebSocket| async move {
        // Tungstenite answers pings and queues the reply to a Close itself;
        // reading on until the stream ends is what flushes that reply (a
        // `break` on Close would drop the socket with the reply unsent).
        while let Some(Ok(msg)) = socket.recv().await {
            if matches!(msg, Message::Text(_) | Message::Binary(_)) && socket.send(msg).await.is_err() {
                break;
            }
        }
    })
}

async fn chat(
    ws: WebSocketUpgrade,
    Path(room): Path<String>,
    Query(join): Query<Join>,
    State(state): State<Arc<AppState>>,
) -> Response {
    let name = join.name.unwrap_or_else(|| "anonymous".into());
    ws.max_message_size(16 << 20).on_upgrade(move |socket| member(socket, state, room, name))
}

async fn member(socket: WebSocket, state: Arc<AppState>, room: String, name: String) {
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    let tx = state
        .rooms
        .lock()
        .unwrap()
        .entry(room.clone())
        .or_insert_with(|| broadcast::channel(4096).0)
        .clone();
    let mut rx = tx.subscribe();
    let (mut sink, mut stream) = socket.split();
    let mut send_task = tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok((from, msg)) => {
                    if from == id && matches!(msg, Message::Binary(_)) {
                        continue;
                    }
                    if sink.send(msg).await.is_err() {
                        break;
                    }
                }
                // A member that falls this far behind loses messages; the
                // load generator reports that as an order error.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    let tx2 = tx.clone();
    let mut recv_task = tokio::spawn(async move {
        // Read until the stream ends, also after a Close, so tungstenite
        // gets to flush its reply to it.
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                Message::Binary(b) => {
                    let _ = tx2.send((id, Message::Binary(b)));
                }
                Message::Text(t) => {
                    let json = format!(
                        "{{\"type\":\"message\",\"name\":{},\"text\":{}}}",
                        json_str(&name),
                        json_str(t.as_str())
                    );
                    let _ = tx2.send((id, Message::Text(json.into())));
                }
                _ => {}
            }
        }
    });
    tokio::select! {
        _ = &mut send_task => recv_task.abort(),
        _ = &mut recv_task => send_task.abort(),
    }
    drop(tx);
    let mut rooms = state.rooms.lock().unwrap();
    if rooms.get(&room).map(|t| t.receiver_count() == 0).unwrap_or(false) {
        rooms.remove(&room);
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| {
            eprintln!("usage: wsedge-bench-axum PORT");
            std::process::exit(2)
        });
    let app = Router::new()
        .route("/ws", any(echo))
        .route("/chat/{room}", any(chat))
        .with_state(Arc::new(AppState::default()));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    eprintln!("axum peer listening on 127.0.0.1:{port}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
            term.recv().await;
        })
        .await
        .unwrap();
}
