use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::auth::ConsumerConfig;
use crate::tools::{Catalog, ToolDef};

fn tools(names: &[&str]) -> Vec<ToolDef> {
    names.iter().map(|n| ToolDef { name: (*n).into(), title: None, description: None, input_schema: json!({"type": "object"}), output_schema: None, annotations: None }).collect()
}

fn consumer(name: &str, groups: &[&str]) -> ConsumerConfig {
    ConsumerConfig { name: name.into(), groups: groups.iter().map(|g| (*g).into()).collect(), api_keys: vec![], jwt_subjects: vec![], upstream: Default::default() }
}

fn quotas(yaml: &str, tools: &[ToolDef], consumers: &[ConsumerConfig], store: &Arc<QuotaStore>) -> Result<RouteQuotas, String> {
    let rules: Vec<QuotaRuleConfig> = serde_yaml::from_str(yaml).expect("quota yaml");
    RouteQuotas::build(&rules, tools, consumers, store, "pets", true)
}

#[tokio::test]
async fn limits_count_per_caller_and_tool_and_name_themselves_when_refusing() {
    let t = tools(&["get_pet", "list_pets"]);
    let cs = [consumer("alice", &[]), consumer("bob", &["batch"])];
    let store = QuotaStore::local();
    let q = quotas(
        r#"
- tools: ["get_*"]
  quota: 2/hour
- tools: [list_pets]
  groups: [batch]
  rate: 1/min
"#,
        &t,
        &cs,
        &store,
    )
    .unwrap();
    let catalog = Catalog::new(&t).unwrap();
    let (get, _) = catalog.find("get_pet").unwrap();
    let (list, _) = catalog.find("list_pets").unwrap();
    let alice = crate::auth::Principal::consumer("alice", &[], 0);
    let bob = crate::auth::Principal::consumer("bob", &["batch".into()], 1);
    for _ in 0..2 {
        q.take(Some(&alice), get).await.unwrap();
    }
    let refused = q.take(Some(&alice), get).await.unwrap_err();
    assert_eq!(refused.limit, "quota 2/hour on `get_pet`");
    assert!(refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_secs(3600), "{refused:?}");
    // Bob has his own counter; alice's list calls match no rule.
    q.take(Some(&bob), get).await.unwrap();
    for _ in 0..5 {
        q.take(Some(&alice), list).await.unwrap();
    }
    q.take(Some(&bob), list).await.unwrap();
    let refused = q.take(Some(&bob), list).await.unwrap_err();
    assert_eq!(refused.limit, "rate 1/min (burst 1) on `list_pets`");
    assert!(refused.retry_after > Duration::from_secs(58), "{refused:?}");
}

#[tokio::test]
async fn counters_survive_a_rebuild_of_the_same_rule() {
    let t = tools(&["get_pet"]);
    let store = QuotaStore::local();
    let yaml = "- { quota: 1/day }";
    let catalog = Catalog::new(&t).unwrap();
    let (get, _) = catalog.find("get_pet").unwrap();
    quotas(yaml, &t, &[], &store).unwrap().take(None, get).await.unwrap();
    let rebuilt = quotas(yaml, &t, &[], &QuotaStore::new(&QuotaStoreConfig::default(), Some(&store))).unwrap();
    assert!(rebuilt.take(None, get).await.is_err(), "a reload keeping the rule keeps its count");
    let changed = quotas("- { quota: 2/day }", &t, &[], &store).unwrap();
    assert!(changed.take(None, get).await.is_ok(), "a changed rule starts a new count");
}

#[test]
fn bad_rules_are_config_errors_naming_the_field() {
    let t = tools(&["get_pet"]);
    let store = QuotaStore::local();
    let cases = [
        ("- { rate: 10/s, consumers: [nobody] }", "[0].consumers: no consumer named `nobody`"),
        ("- { rate: 10/fortnight }", "[0].rate: `10/fortnight`: unknown unit `fortnight`"),
        ("- { quota: 0/day }", "[0].quota: `0/day`: the count must be a whole number from 1"),
        ("- { quota: 10/s }", "[0].quota: `10/s`: unknown unit `s`"),
        ("- { tools: [nope], rate: 1/s }", "[0].tools: `nope` names no tool of this server"),
        ("- { burst: 5 }", "[0].burst: applies to a `rate`"),
        ("- { tools: [get_pet] }", "[0].rate: set a `rate`"),
        ("- { rate: 1/s, burst: 0 }", "[0].burst: must be at least 1"),
    ];
    for (yaml, want) in cases {
        let e = quotas(yaml, &t, &[], &store).err().unwrap_or_else(|| panic!("{yaml} was accepted"));
        assert!(e.starts_with(want), "{yaml}: {e}");
    }
}

#[test]
fn default_burst_is_one_seconds_worth() {
    let r: QuotaRuleConfig = serde_yaml::from_str("{ rate: 600/min }").unwrap();
    assert_eq!(rule_kinds(&r).unwrap()[0].0, Kind::Rate { interval_us: 100_000, burst: 10 });
    let r: QuotaRuleConfig = serde_yaml::from_str("{ rate: 2/min }").unwrap();
    assert_eq!(rule_kinds(&r).unwrap()[0].0, Kind::Rate { interval_us: 30_000_000, burst: 1 });
}

#[test]
fn the_store_section_is_validated() {
    let c: QuotaStoreConfig = serde_yaml::from_str("{ backend: redis }").unwrap();
    assert_eq!(c.validate().unwrap_err().0, "field `quotas.redis`");
    let c: QuotaStoreConfig = serde_yaml::from_str("{ backend: redis, redis: 'redis://127.0.0.1:6379', timeout: 0ms }").unwrap();
    assert_eq!(c.validate().unwrap_err().0, "field `quotas.timeout`");
}
