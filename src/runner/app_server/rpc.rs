//! Our side of the JSON-RPC line protocol: one JSON object a line on the server's stdin,
//! numbered requests, answers to the server's requests (results or errors). Reading is
//! the driver's (`runner::io::LineReader`, bounded line length, parsed by
//! [`super::protocol::Incoming`]).

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe::Sender as ChildStdin;

/// Writes to the server's stdin; numbers our requests.
pub struct Writer {
    stdin: Option<ChildStdin>,
    next: i64,
}

impl Writer {
    /// Over the server's stdin.
    pub fn new(stdin: Option<ChildStdin>) -> Self {
        Self { stdin, next: 0 }
    }

    async fn send(&mut self, message: &Value) {
        let Some(stdin) = self.stdin.as_mut() else {
            return;
        };
        let mut line = message.to_string();
        line.push('\n');
        // A server that died shows as EOF on its stdout; its exit status tells the story.
        if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
            self.stdin = None;
        }
    }

    /// Send a request; its id.
    pub async fn request(&mut self, method: &str, params: Value) -> i64 {
        self.next += 1;
        let id = self.next;
        self.send(&json!({"id": id, "method": method, "params": params}))
            .await;
        id
    }

    /// Send a notification.
    pub async fn notify(&mut self, method: &str) {
        self.send(&json!({"method": method})).await;
    }

    /// Answer the server's request `id`.
    pub async fn reply(&mut self, id: Value, result: Value) {
        self.send(&json!({"id": id, "result": result})).await;
    }

    /// Refuse the server's request `id`.
    pub async fn refuse(&mut self, id: Value, message: &str) {
        self.send(&json!({"id": id, "error": {"code": -32601, "message": message}}))
            .await;
    }

    /// Close stdin: the server ends once it has nothing left to do.
    pub fn close(&mut self) {
        self.stdin = None;
    }
}
