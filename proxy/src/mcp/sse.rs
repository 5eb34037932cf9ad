//! The legacy HTTP+SSE transport (2024-11-05): open streams by session, so that a POST to
//! the message endpoint can deliver its responses on the session's stream.
//!
//! Streams are local to the gateway instance that holds the GET connection; a fleet needs
//! sticky routing for this transport (Streamable HTTP needs none).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::version::ProtocolVersion;

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

/// What one stream may hold, fixed when it opens (`limits.max_sse_*`).
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// POSTed bodies being worked on at once.
    pub max_inflight: usize,
    /// Reply bytes queued for the client.
    pub max_queued: u32,
}

/// An event waiting for the GET connection, with the queue room it holds.
pub struct Queued {
    /// The SSE event text.
    pub event: Bytes,
    room: u32,
}

/// One open SSE stream. The queue is bounded in bytes, not messages: a reply waits for room
/// (its POST still counting as in flight), so a client that stops reading holds at most
/// `max_queued` bytes plus `max_inflight` bodies, and its further POSTs are refused.
pub struct SseStream {
    tx: mpsc::UnboundedSender<Queued>,
    room: Semaphore,
    max_room: u32,
    inflight: Arc<Semaphore>,
    version: AtomicU8,
}

impl SseStream {
    /// Queues a JSON-RPC message as an SSE `message` event once the queue has room for it
    /// (a message larger than the whole queue waits for it to be empty); false if the
    /// stream is gone.
    pub async fn send(&self, json: &str) -> bool {
        let event = Bytes::from(message_event(json));
        let room = u32::try_from(event.len()).unwrap_or(u32::MAX).min(self.max_room);
        match self.room.acquire_many(room).await {
            // Given back by the GET connection once the event is written.
            Ok(permit) => permit.forget(),
            Err(_) => return false,
        }
        self.tx.send(Queued { event, room }).is_ok()
    }

    /// Gives a written event's room back to the queue.
    pub fn written(&self, queued: &Queued) {
        self.room.add_permits(queued.room as usize);
    }

    /// A slot for one POSTed body, held until its replies are queued; `None` when
    /// `max_inflight` bodies are already being worked on.
    pub fn try_start(&self) -> Option<OwnedSemaphorePermit> {
        self.inflight.clone().try_acquire_owned().ok()
    }

    /// Completes when the GET connection has gone (its queue dropped).
    pub async fn closed(&self) {
        self.tx.closed().await
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
    /// Registers a stream unless `max_streams` are open; the receiver feeds the GET
    /// response, and dropping it frees the queue and cancels the session's work.
    pub fn open(&self, id: u128, max_streams: usize, limits: StreamLimits) -> Option<(Arc<SseStream>, mpsc::UnboundedReceiver<Queued>)> {
        let mut streams = self.lock();
        if streams.len() >= max_streams {
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let max_room = limits.max_queued.max(1);
        let stream = Arc::new(SseStream { tx, room: Semaphore::new(max_room as usize), max_room, inflight: Arc::new(Semaphore::new(limits.max_inflight.clamp(1, Semaphore::MAX_PERMITS))), version: AtomicU8::new(ProtocolVersion::V2024_11_05 as u8) });
        if streams.insert(id, stream.clone()).is_none() {
            crate::metrics::METRICS.sse_streams.inc();
        }
        Some((stream, rx))
    }

    /// The stream of a session, if open here.
    pub fn get(&self, id: u128) -> Option<Arc<SseStream>> {
        self.lock().get(&id).cloned()
    }

    /// Forgets a stream (its GET connection ended); replies still waiting for room give up.
    pub fn close(&self, id: u128) {
        if let Some(stream) = self.lock().remove(&id) {
            stream.room.close();
            crate::metrics::METRICS.sse_streams.dec();
        }
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
    use std::time::Duration;

    use super::{message_event, SseHub, StreamLimits};

    const LIMITS: StreamLimits = StreamLimits { max_inflight: 2, max_queued: 100 };

    #[tokio::test]
    async fn a_full_queue_holds_replies_back_until_written() {
        let hub = SseHub::default();
        let (stream, mut rx) = hub.open(1, 10, LIMITS).expect("room for a stream");
        assert!(stream.send(&"x".repeat(40)).await, "62 bytes fit in 100");
        let blocked = tokio::time::timeout(Duration::from_millis(50), stream.send(&"y".repeat(40))).await;
        assert!(blocked.is_err(), "a second 62-byte event must wait for room");
        let first = rx.recv().await.expect("queued");
        stream.written(&first);
        assert!(tokio::time::timeout(Duration::from_millis(50), stream.send(&"y".repeat(40))).await.expect("room again"));
        // An event larger than the whole queue waits for it to be empty, then goes alone.
        let big = tokio::spawn({
            let stream = stream.clone();
            async move { stream.send(&"z".repeat(500)).await }
        });
        let second = rx.recv().await.expect("queued");
        stream.written(&second);
        assert!(big.await.expect("task"));
        assert!(rx.recv().await.expect("queued").event.len() > 500);
    }

    #[tokio::test]
    async fn in_flight_slots_and_the_stream_cap_are_bounded() {
        let hub = SseHub::default();
        let (stream, _rx) = hub.open(1, 2, LIMITS).expect("first");
        let (a, b) = (stream.try_start(), stream.try_start());
        assert!(a.is_some() && b.is_some() && stream.try_start().is_none(), "two slots");
        drop(a);
        assert!(stream.try_start().is_some(), "a finished body frees its slot");
        let _second = hub.open(2, 2, LIMITS).expect("second");
        assert!(hub.open(3, 2, LIMITS).is_none(), "at most two streams");
        hub.close(1);
        assert!(hub.get(1).is_none() && hub.len() == 1);
    }

    #[tokio::test]
    async fn closing_a_stream_releases_waiting_replies() {
        let hub = SseHub::default();
        let (stream, rx) = hub.open(1, 10, LIMITS).expect("stream");
        assert!(stream.send(&"x".repeat(90)).await);
        let waiting = tokio::spawn({
            let stream = stream.clone();
            async move { stream.send(&"y".repeat(90)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(rx);
        hub.close(1);
        assert!(!waiting.await.expect("task"), "a reply waiting for room gives up when the stream goes");
        tokio::time::timeout(Duration::from_millis(50), stream.closed()).await.expect("closed() completes once the GET is gone");
    }

    #[test]
    fn multi_line_json_becomes_several_data_lines() {
        assert_eq!(message_event("{\"a\":1}"), "event: message\ndata: {\"a\":1}\n\n");
        let e = message_event("{\r\n  \"a\": 1\n}");
        assert_eq!(e, "event: message\ndata: {\ndata:   \"a\": 1\ndata: }\n\n");
        let joined: Vec<&str> = e.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
        assert_eq!(serde_json::from_str::<serde_json::Value>(&joined.join("\n")).unwrap(), serde_json::json!({"a": 1}));
    }
}
