use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/mcpgate/test.yaml"))
}

#[test]
fn empty_config_gets_safe_defaults() {
    let c = parse("").unwrap();
    assert_eq!(c.listen, vec!["127.0.0.1:8080".to_string()]);
    assert_eq!(c.admin.listen, "127.0.0.1:9090");
    assert!(c.servers.is_empty());
}

#[test]
fn unknown_fields_are_errors_naming_the_field() {
    let e = parse("listen: [\"127.0.0.1:1\"]\nlisten_typo: 1\n").unwrap_err().to_string();
    assert!(e.contains("listen_typo"), "{e}");
    assert!(e.contains("/etc/mcpgate/test.yaml"), "{e}");
}

#[test]
fn unknown_top_level_keys_list_every_valid_key_and_the_near_match() {
    let e = parse("server:\n  - {name: a, type: rest}\n").unwrap_err().to_string();
    assert!(e.ends_with("unknown top-level key `server` (did you mean `servers`?); valid keys: listen, admin, session, limits, connections, security, upstream, auth, consumers, quotas, pingora, servers"), "{e}");
    let e = parse("servers:\n  - {name: a, type: rest, tool: []}\n").unwrap_err().to_string();
    assert!(e.contains("server `a`: unknown key `tool` (did you mean `tools`?); valid keys of a `type: rest` server: name, type, description, policy, file,"), "{e}");
    // The check comes before `${ENV}`: the misspelt key is the news, not a variable in it.
    let e = parse("sesion: {key: \"${MCPGATE_TEST_UNSET_SESSION_KEY:?unset}\"}\n").unwrap_err().to_string();
    assert!(e.contains("unknown top-level key `sesion` (did you mean `session`?)"), "{e}");
}

#[test]
fn server_errors_name_the_file_the_server_and_the_field() {
    let e = parse("servers:\n  - name: pets\n    type: openapi\n    spec: x.yaml\n    bogus: 1\n").unwrap_err().to_string();
    assert!(e.contains("server `pets`") && e.contains("bogus") && e.contains("test.yaml"), "{e}");
    let e = parse("servers:\n  - name: pets\n    type: nope\n").unwrap_err().to_string();
    assert!(e.contains("unknown server type `nope`"), "{e}");
    let e = parse("servers:\n  - {name: a, type: openapi, spec: x}\n  - {name: a, type: openapi, spec: y}\n").unwrap_err().to_string();
    assert!(e.contains("duplicate server name"), "{e}");
}

#[test]
fn env_references_are_substituted_in_values() {
    std::env::set_var("MCPGATE_TEST_SPEC", "from-env.yaml");
    let c = parse("servers:\n  - {name: a, type: openapi, spec: \"${MCPGATE_TEST_SPEC}\"}\n").unwrap();
    match &c.servers[0].kind {
        ServerKind::Openapi(o) => assert_eq!(o.spec, "from-env.yaml"),
        _ => panic!("wrong kind"),
    }
    let e = parse("session: {key: \"${MCPGATE_TEST_UNSET_VAR}\"}\n").unwrap_err().to_string();
    assert!(e.contains("session.key") && e.contains("MCPGATE_TEST_UNSET_VAR"), "{e}");
}

#[test]
fn bad_listen_and_key_are_rejected() {
    assert!(parse("listen: [\"nowhere\"]\n").is_err());
    assert!(parse("session: {key: tooshort}\n").unwrap_err().to_string().contains("session.key"));
}

#[test]
fn required_env_references_name_the_field_and_say_why() {
    let e = parse("session: {key: \"${MCPGATE_TEST_UNSET_KEY:?generate one with openssl rand -hex 32}\"}\n").unwrap_err().to_string();
    assert!(e.contains("field `session.key`") && e.contains("environment variable `MCPGATE_TEST_UNSET_KEY` is not set: generate one with openssl rand -hex 32"), "{e}");
}

#[test]
fn database_sources_are_checked_at_load() {
    let c = parse("servers:\n  - name: shop\n    type: database\n    source: {engine: postgres, host: db, port: 5432, database: shop, user: app}\n").unwrap();
    match &c.servers[0].kind {
        ServerKind::Database(d) => assert_eq!(d.source.as_ref().map(|s| s.connection_url().unwrap()).as_deref(), Some("postgres://app@db:5432/shop")),
        _ => panic!("wrong kind"),
    }
    let e = parse("servers:\n  - name: shop\n    type: database\n    source: {url: \"postgres://app@db/shop\", user: app}\n").unwrap_err().to_string();
    assert!(e.contains("test.yaml") && e.contains("server `shop`, field `source`: give either `url` or the connection fields"), "{e}");
    let e = parse("servers:\n  - name: shop\n    type: database\n    source: {engine: postgres, host: db, database: shop, user: app, sslmode: require}\n").unwrap_err().to_string();
    assert!(e.contains("server `shop`") && e.contains("unknown field `sslmode`"), "{e}");
}

#[test]
fn legacy_sse_limits_have_defaults_and_are_checked() {
    let l = parse("").unwrap().limits;
    assert_eq!((l.max_sse_streams, l.max_sse_inflight, l.max_sse_queued.0, l.sse_write_timeout.0.as_secs()), (10_000, 16, 4 << 20, 30));
    let l = parse("limits: {max_sse_streams: 5, max_sse_inflight: 2, max_sse_queued: 64KiB, sse_write_timeout: 2s}\n").unwrap().limits;
    assert_eq!((l.max_sse_streams, l.max_sse_inflight, l.max_sse_queued.0, l.sse_write_timeout.0.as_secs()), (5, 2, 64 << 10, 2));
    for (bad, field) in [
        ("max_sse_streams: 0", "limits.max_sse_streams"),
        ("max_sse_inflight: 0", "limits.max_sse_inflight"),
        ("max_sse_queued: 10", "limits.max_sse_queued"),
        ("max_sse_queued: 8GiB", "limits.max_sse_queued"),
        ("sse_write_timeout: 0s", "limits.sse_write_timeout"),
    ] {
        let e = parse(&format!("limits: {{{bad}}}\n")).unwrap_err().to_string();
        assert!(e.contains(field), "{bad}: {e}");
    }
}
