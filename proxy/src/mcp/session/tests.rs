use super::*;

fn settings() -> SessionSettings {
    SessionSettings { ttl: Duration::from_secs(3600), idle_ttl: Duration::from_secs(600), max_active: 1000, max_ended: 1000, initialize_rate: 0, initialize_burst: 0 }
}

fn mgr() -> SessionManager {
    SessionManager::new(Some([7u8; 32]), settings(), None)
}

#[tokio::test]
async fn tokens_round_trip_and_are_bound_to_their_route() {
    let m = mgr();
    let t = m.issue("petstore", ProtocolVersion::V2025_06_18, 0);
    assert!(t.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    let c = m.check(&t, "petstore", 0).await.unwrap();
    assert_eq!(c.version, ProtocolVersion::V2025_06_18);
    assert_eq!(m.check(&t, "other", 0).await, Err(SessionRejection::Unknown));
    assert_eq!(m.check(&t, "petstore", 0).await, Ok(c), "the hot path gives the same answer");
    assert!(!t.contains("petstore"));
}

#[tokio::test]
async fn tokens_are_bound_to_the_caller_that_initialized_them() {
    let m = mgr();
    let alice = m.issue("a", ProtocolVersion::V2025_06_18, 0x1111);
    assert!(m.check(&alice, "a", 0x1111).await.is_ok());
    // Whether the table already holds the session or not, another caller gets no session.
    assert_eq!(m.check(&alice, "a", 0x2223).await, Err(SessionRejection::Unknown));
    assert_eq!(m.check(&alice, "a", crate::auth::ANONYMOUS).await, Err(SessionRejection::Unknown));
    let fresh = m.issue("a", ProtocolVersion::V2025_06_18, 0x1111);
    assert_eq!(mgr().check(&fresh, "a", 0x2223).await, Err(SessionRejection::Unknown), "another instance checks the binding from the token");
    assert!(m.check(&alice, "a", 0x1111).await.is_ok(), "the owner keeps its session");
}

#[tokio::test]
async fn issuing_stores_nothing_until_first_use() {
    let m = mgr();
    let tokens: Vec<String> = (0..500).map(|_| m.issue("a", ProtocolVersion::V2025_06_18, 0)).collect();
    assert_eq!(m.counts(), (0, 0));
    m.check(&tokens[0], "a", 0).await.unwrap();
    m.check(&tokens[0], "a", 0).await.unwrap();
    assert_eq!(m.counts(), (1, 0));
}

#[tokio::test]
async fn another_gateway_with_the_same_key_accepts_the_token() {
    let t = mgr().issue("a", ProtocolVersion::V2025_11_25, 0);
    assert!(mgr().check(&t, "a", 0).await.is_ok());
    let other = SessionManager::new(Some([8u8; 32]), settings(), None);
    assert_eq!(other.check(&t, "a", 0).await, Err(SessionRejection::Unknown));
}

#[tokio::test]
async fn deleted_sessions_stay_ended_in_the_compact_set() {
    let m = mgr();
    let t = m.issue("a", ProtocolVersion::V2025_03_26, 0);
    let id = m.check(&t, "a", 0).await.unwrap().id;
    m.delete(id).await;
    assert_eq!(m.counts(), (0, 1), "moved from the active table to the ended set");
    assert_eq!(m.check(&t, "a", 0).await, Err(SessionRejection::Ended));
    m.sweep();
    assert_eq!(m.check(&t, "a", 0).await, Err(SessionRejection::Ended));
}

#[tokio::test]
async fn tampered_tokens_are_unknown() {
    let m = mgr();
    let mut t = m.issue("a", ProtocolVersion::V2025_03_26, 0).into_bytes();
    let first = 2;
    t[first] = if t[first] == b'A' { b'B' } else { b'A' };
    assert_eq!(m.check(std::str::from_utf8(&t).unwrap(), "a", 0).await, Err(SessionRejection::Unknown));
    assert_eq!(m.check("garbage", "a", 0).await, Err(SessionRejection::Unknown));
    assert_eq!(m.check(&"A".repeat(600), "a", 0).await, Err(SessionRejection::Unknown));
    assert_eq!(m.counts(), (0, 0), "nothing that failed to open is kept");
}

#[tokio::test]
async fn a_token_variant_sharing_the_tag_is_the_same_session() {
    // The local table is keyed by the token's tag: a holder of the token who alters other
    // bytes gets the claims that opened, never claims of their own.
    let m = mgr();
    let t = m.issue("a", ProtocolVersion::V2025_06_18, 0);
    let id = m.check(&t, "a", 0).await.unwrap().id;
    let mut v = t.clone().into_bytes();
    v[3] = if v[3] == b'A' { b'B' } else { b'A' };
    let v = String::from_utf8(v).unwrap();
    assert_eq!(m.check(&v, "a", 0).await.map(|u| u.id), Ok(id));
    assert_eq!(m.check(&v, "b", 0).await, Err(SessionRejection::Unknown), "still bound to its route");
    m.delete(id).await;
    assert_eq!(m.check(&t, "a", 0).await, Err(SessionRejection::Ended));
    assert!(m.check(&v, "a", 0).await.is_err(), "the variant no longer opens once the session left the table");
}

#[tokio::test]
async fn expired_tokens_are_ended() {
    let m = mgr();
    let (t, _) = token::seal(&m.cipher, "a", ProtocolVersion::V2025_06_18, now_secs() - 1, 0);
    assert_eq!(m.check(&t, "a", 0).await, Err(SessionRejection::Ended));
}

#[tokio::test]
async fn at_the_cap_new_sessions_are_refused_and_sessions_in_use_keep_working() {
    let m = SessionManager::new(Some([7u8; 32]), SessionSettings { max_active: 2, ..settings() }, None);
    let a = m.issue("a", ProtocolVersion::V2025_06_18, 0);
    let b = m.issue("a", ProtocolVersion::V2025_06_18, 0);
    let c = m.issue("a", ProtocolVersion::V2025_06_18, 0);
    m.check(&a, "a", 0).await.unwrap();
    m.check(&b, "a", 0).await.unwrap();
    assert_eq!(m.check(&c, "a", 0).await, Err(SessionRejection::Full));
    assert_eq!(m.admission(None), Err(NewSessionRefusal::Full(2)));
    assert!(m.check(&a, "a", 0).await.is_ok() && m.check(&b, "a", 0).await.is_ok());
    let id = m.check(&a, "a", 0).await.unwrap().id;
    m.delete(id).await;
    assert!(m.check(&c, "a", 0).await.is_ok(), "room again once a session ended");
}

#[tokio::test]
async fn a_full_ended_set_keeps_ended_sessions_in_place_never_forgets_them() {
    let m = SessionManager::new(Some([7u8; 32]), SessionSettings { max_ended: 1, ..settings() }, None);
    let tokens: Vec<String> = (0..3).map(|_| m.issue("a", ProtocolVersion::V2025_06_18, 0)).collect();
    for t in &tokens {
        let id = m.check(t, "a", 0).await.unwrap().id;
        m.delete(id).await;
    }
    assert_eq!(m.counts(), (2, 1), "two ended in place, one in the full ended set");
    assert_eq!(m.sweep(), 0, "none in use");
    for t in &tokens {
        assert_eq!(m.check(t, "a", 0).await, Err(SessionRejection::Ended));
    }
}

#[tokio::test]
async fn idle_sessions_end_on_use_and_on_sweep() {
    let m = SessionManager::new(Some([7u8; 32]), SessionSettings { idle_ttl: Duration::from_millis(200), ..settings() }, None);
    let a = m.issue("a", ProtocolVersion::V2025_06_18, 0);
    let b = m.issue("a", ProtocolVersion::V2025_06_18, 0);
    m.check(&a, "a", 0).await.unwrap();
    m.check(&b, "a", 0).await.unwrap();
    assert_eq!(m.sweep(), 2);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(m.check(&a, "a", 0).await, Err(SessionRejection::Ended));
    assert_eq!(m.sweep(), 0);
    assert_eq!(m.counts(), (0, 2));
    assert_eq!(m.check(&b, "a", 0).await, Err(SessionRejection::Ended));
}

#[tokio::test]
async fn a_reload_keeps_ended_sessions_while_the_key_is_the_same() {
    let m = mgr();
    let t = m.issue("a", ProtocolVersion::V2025_06_18, 0);
    let live = m.issue("a", ProtocolVersion::V2025_06_18, 0);
    let id = m.check(&t, "a", 0).await.unwrap().id;
    m.check(&live, "a", 0).await.unwrap();
    m.delete(id).await;
    let reloaded = SessionManager::new(Some([7u8; 32]), SessionSettings { ttl: Duration::from_secs(60), idle_ttl: Duration::from_secs(30), ..settings() }, Some(&m));
    assert_eq!(reloaded.check(&t, "a", 0).await, Err(SessionRejection::Ended));
    assert!(reloaded.check(&live, "a", 0).await.is_ok());
    let rekeyed = SessionManager::new(Some([9u8; 32]), settings(), Some(&reloaded));
    assert_eq!(rekeyed.check(&live, "a", 0).await, Err(SessionRejection::Unknown));
}

#[tokio::test]
async fn an_ephemeral_key_survives_a_reload() {
    let m = SessionManager::new(None, settings(), None);
    let t = m.issue("a", ProtocolVersion::V2025_06_18, 0);
    let reloaded = SessionManager::new(None, SessionSettings { idle_ttl: Duration::from_secs(5), ..settings() }, Some(&m));
    assert!(reloaded.check(&t, "a", 0).await.is_ok());
}

#[tokio::test]
async fn a_shared_store_carries_ended_sessions_to_other_gateways_and_restarts() {
    let store: Arc<dyn EndedSessions> = Arc::new(LocalEnded::new(100));
    let a = mgr().with_shared("fake", store.clone());
    let b = mgr().with_shared("fake", store.clone());
    let t = a.issue("r", ProtocolVersion::V2025_06_18, 0);
    let id = a.check(&t, "r", 0).await.unwrap().id;
    a.delete(id).await;
    assert_eq!(b.check(&t, "r", 0).await, Err(SessionRejection::Ended), "gateway B refuses it on first use");
    let restarted = mgr().with_shared("fake", store);
    assert_eq!(restarted.check(&t, "r", 0).await, Err(SessionRejection::Ended));
}

struct Broken;

#[async_trait::async_trait]
impl EndedSessions for Broken {
    async fn is_ended(&self, _: u128) -> Result<bool, StoreError> {
        Err(StoreError::Timeout(Duration::from_millis(1)))
    }
    async fn record(&self, _: &[(u128, u64)]) -> Result<(), StoreError> {
        Err(StoreError::Backoff)
    }
}

#[tokio::test]
async fn a_failing_store_fails_open_and_is_counted() {
    let m = mgr().with_shared("broken", Arc::new(Broken));
    let before = METRICS.session_store_errors.get();
    let t = m.issue("r", ProtocolVersion::V2025_06_18, 0);
    let id = m.check(&t, "r", 0).await.unwrap().id;
    m.delete(id).await;
    assert_eq!(m.check(&t, "r", 0).await, Err(SessionRejection::Ended), "still ended locally");
    assert!(METRICS.session_store_errors.get() >= before + 2);
}

#[test]
fn new_sessions_are_rate_limited_per_client() {
    let m = SessionManager::new(Some([7u8; 32]), SessionSettings { initialize_rate: 1, initialize_burst: 2, ..settings() }, None);
    let ip: IpAddr = "198.51.100.7".parse().unwrap();
    assert!(m.admission(Some(ip)).is_ok() && m.admission(Some(ip)).is_ok());
    assert!(matches!(m.admission(Some(ip)), Err(NewSessionRefusal::RateLimited(Limited { per_second: 1, burst: 2, .. }))));
    assert!(m.admission(Some("198.51.100.8".parse().unwrap())).is_ok());
}

#[test]
fn keys_parse_from_base64_and_hex() {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    assert!(parse_key(&STANDARD.encode([1u8; 32])).is_ok());
    assert!(parse_key(&"ab".repeat(32)).is_ok());
    assert!(parse_key("short").is_err());
    assert!(parse_key(&STANDARD.encode([1u8; 16])).is_err());
}
