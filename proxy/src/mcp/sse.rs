//! The legacy HTTP+SSE transport (2024-11-05): open streams by session, so that a POST to
//! the message endpoint can deliver its responses on the session's stream.
//!
//! Streams are local to the gateway instance that holds the GET connection; a fleet needs
//! sticky routing for this transport (Streamable HTTP needs none).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::version::ProtocolVersion;

/// Messages buffered per stream before senders wait.
const STREAM_BUFFER: usize = 64;

/// Frames a JSON-RPC message as an SSE `message` event. JSON may hold line breaks as
/// whitespace (an upstream's pretty-printed object passed through): each line becomes its
/// own `data:` line, which SSE clients join back with `\n`.
pub fn message_event(json: &str) -> String {
    let mut event = String::with_capacity(json.len() + 24);
    event.push_str("event: message\n");
    for line in json.split(['\n', '\r']).filter(|l| !l.is_empty()) {
        event.push_str("data: ");
        event.push_str(line);
        event.push('\n');
    }
    event.push('\n');
    event
}

/// One open SSE stream.
pub struct SseStream {
    tx: mpsc::Sender<Bytes>,
    version: AtomicU8,
}

impl SseStream {
    /// Queues a JSON-RPC message as an SSE `message` event; false if the stream is gone.
    pub async fn send(&self, json: &str) -> bool {
        self.tx.send(Bytes::from(message_event(json))).await.is_ok()
    }

    /// The version negotiated by `initialize` on this stream.
    pub fn version(&self) -> ProtocolVersion {
        ProtocolVersion::from_index(self.version.load(Ordering::Relaxed)).unwrap_or(ProtocolVersion::V2024_11_05)
    }

    /// Records the negotiated version.
    pub fn set_version(&self, v: ProtocolVersion) {
        self.version.store(v as u8, Ordering::Relaxed);
    }
}

/// Open streams by session id.
#[derive(Default)]
pub struct SseHub {
    streams: Mutex<HashMap<u128, Arc<SseStream>>>,
}

impl SseHub {
    /// Registers a stream; the receiver feeds the GET response.
    pub fn open(&self, id: u128) -> (Arc<SseStream>, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let stream = Arc::new(SseStream { tx, version: AtomicU8::new(ProtocolVersion::V2024_11_05 as u8) });
        self.lock().insert(id, stream.clone());
        (stream, rx)
    }

    /// The stream of a session, if open here.
    pub fn get(&self, id: u128) -> Option<Arc<SseStream>> {
        self.lock().get(&id).cloned()
    }

    /// Forgets a stream (its GET connection ended).
    pub fn close(&self, id: u128) {
        self.lock().remove(&id);
    }

    /// Number of open streams.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no stream is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u128, Arc<SseStream>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::message_event;

    #[test]
    fn multi_line_json_becomes_several_data_lines() {
        assert_eq!(message_event("{\"a\":1}"), "event: message\ndata: {\"a\":1}\n\n");
        let e = message_event("{\r\n  \"a\": 1\n}");
        assert_eq!(e, "event: message\ndata: {\ndata:   \"a\": 1\ndata: }\n\n");
        let joined: Vec<&str> = e.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
        assert_eq!(serde_json::from_str::<serde_json::Value>(&joined.join("\n")).unwrap(), serde_json::json!({"a": 1}));
    }
}
