use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::auth::ConsumerConfig;
use crate::tools::ToolDef;

fn tools(names: &[&str]) -> Vec<ToolDef> {
    names.iter().map(|n| ToolDef { name: (*n).into(), title: None, description: None, input_schema: json!({"type": "object"}), output_schema: None, annotations: None }).collect()
}

fn consumer(name: &str, groups: &[&str]) -> ConsumerConfig {
    ConsumerConfig { name: name.into(), groups: groups.iter().map(|g| (*g).into()).collect(), api_keys: vec![], jwt_subjects: vec![], upstream: Default::default() }
}

fn access(yaml: &str, tools: &[ToolDef], consumers: &[ConsumerConfig]) -> Result<ServerAccess, String> {
    let cfg: AccessConfig = serde_yaml::from_str(yaml).expect("access yaml");
    let store = quota::QuotaStore::new(&Default::default(), None);
    ServerAccess::build(&cfg, tools, true, consumers, &store, "pets", true)
}

fn visible(a: &ServerAccess, p: Option<&Principal>, n: usize) -> Vec<usize> {
    match a.allowed(p) {
        Allowed::All => (0..n).collect(),
        Allowed::Some(m) => m.iter().collect(),
    }
}

#[test]
fn deny_wins_over_allow_and_nothing_is_allowed_once_rules_exist() {
    let t = tools(&["get_pet", "list_pets", "delete_pet"]);
    let cs = [consumer("alice", &["admins"]), consumer("bob", &["readers"]), consumer("carol", &[])];
    let a = access(
        r#"
rules:
  - tools: ["get_*", "list_*"]
    allow: { groups: [readers, admins] }
  - tools: [delete_pet]
    allow: { consumers: [alice] }
  - tools: ["*"]
    deny: { consumers: [bob] , scopes: [] }
    "#
        .replace("[bob] , scopes: []", "[carol]")
        .as_str(),
        &t,
        &cs,
    )
    .unwrap();
    let p = |i: usize| Principal::consumer(&cs[i].name, &cs[i].groups, i);
    assert_eq!(visible(&a, Some(&p(0)), 3), vec![0, 1, 2]);
    assert_eq!(visible(&a, Some(&p(1)), 3), vec![0, 1]);
    assert_eq!(visible(&a, Some(&p(2)), 3), Vec::<usize>::new(), "denied everything, allowed nothing");
    assert_eq!(visible(&a, None, 3), Vec::<usize>::new(), "anonymous matches no named subject");
    // The per-call check agrees with the lists, for consumers, anonymous and a caller
    // whose mask is not prebuilt (a JWT subject in bob's group).
    let jwt = Principal::from_jwt("idp", "dave", None, vec!["readers".into()], vec![], Default::default());
    let catalog = crate::tools::Catalog::new(&t).unwrap();
    for who in [Some(p(0)), Some(p(1)), Some(p(2)), None, Some(jwt)] {
        let seen = visible(&a, who.as_ref(), 3);
        for (i, def) in t.iter().enumerate() {
            let (tool, _) = catalog.find(&def.name).unwrap();
            assert_eq!(a.permits(who.as_ref(), tool), seen.contains(&i), "tool {i} for {:?}", who.as_ref().map(Principal::name));
        }
    }
}

#[test]
fn rules_naming_what_does_not_exist_are_errors() {
    let t = tools(&["get_pet"]);
    let cs = [consumer("alice", &[])];
    assert!(access("rules: [{tools: [nope], allow: {}}]", &t, &cs).unwrap_err().contains("`nope` names no tool"));
    assert!(access("rules: [{tools: [get_pet], allow: {consumers: [mallory]}}]", &t, &cs).unwrap_err().contains("no consumer named `mallory`"));
    assert!(access("consumers: [mallory]", &t, &cs).unwrap_err().contains("mallory"));
    assert!(access("rules: [{tools: [get_pet]}]", &t, &cs).unwrap_err().contains("exactly one of allow, deny"));
    assert!(access("methods: [password]", &t, &cs).unwrap_err().contains("unknown method"));
}

#[test]
fn connect_rules_name_consumers_and_groups() {
    let t = tools(&["get_pet"]);
    let cs = [consumer("alice", &["ops"]), consumer("bob", &[])];
    let a = access("groups: [ops]", &t, &cs).unwrap();
    assert!(a.admit(&Principal::consumer("alice", &cs[0].groups, 0)).is_ok());
    assert_eq!(a.admit(&Principal::consumer("bob", &[], 1)), Err(AuthFailure::NotAllowed("bob".into())));
    let only_jwt = access("methods: [jwt]", &t, &cs).unwrap();
    assert!(matches!(only_jwt.admit(&Principal::consumer("bob", &[], 1)), Err(AuthFailure::MethodNotAccepted(_))));
    assert!(!a.public(), "servers are private once credentials exist");
    let _ = Arc::new(());
}

#[test]
fn claims_and_scopes_match_jwt_callers() {
    let t = tools(&["read", "write"]);
    let a = access("rules: [{tools: [read], allow: {scopes: [pets.read]}}, {tools: [write], allow: {claims: {department: eng}}}]", &t, &[]).unwrap();
    let mut claims = serde_json::Map::new();
    claims.insert("department".into(), json!(["eng", "ops"]));
    let p = Principal::from_jwt("kc", "u1", None, vec![], vec!["pets.read".into()], claims);
    assert_eq!(visible(&a, Some(&p), 2), vec![0, 1]);
    let q = Principal::from_jwt("kc", "u2", None, vec![], vec![], Default::default());
    assert_eq!(visible(&a, Some(&q), 2), Vec::<usize>::new());
}
