use super::*;

const NESTED: &str = r#"
sources:
  my-pg:
    kind: postgres
    host: 127.0.0.1
    port: 5432
    database: test
    user: postgres
    password: ${TOOLBOX_TEST_PW:p@ss}
tools:
  search-hotels:
    kind: postgres-sql
    source: my-pg
    description: Search hotels by name.
    parameters:
      - {name: name, type: string, description: Hotel name}
      - {name: limit, type: integer, default: 10, minValue: 1, maxValue: 100}
    statement: SELECT * FROM hotels WHERE name ILIKE '%' || $1 || '%' LIMIT $2
  by-table:
    kind: postgres-sql
    source: my-pg
    description: Count rows.
    templateParameters:
      - {name: table, type: string, allowedValues: [hotels, bookings]}
    statement: SELECT COUNT(*) FROM {{.table}}
toolsets:
  hotels: [search-hotels]
"#;

const FLAT: &str = r#"
kind: source
name: lite
type: sqlite
database: /tmp/x.db
---
kind: tool
name: list-things
type: sqlite-sql
source: lite
description: things
parameters:
  - {name: tag, type: string, allowedValues: [a, b]}
statement: SELECT * FROM things WHERE tag = ?
---
kind: toolset
name: basic
tools: [list-things]
"#;

fn args(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// A one-tool PostgreSQL file with `tool` as the tool's body (indented by 4).
fn pg_tool(tool: &str) -> String {
    format!("sources:\n  pg: {{kind: postgres, host: h, database: d, user: u}}\ntools:\n  t:\n    kind: postgres-sql\n    source: pg\n    description: d\n{tool}")
}

#[test]
fn both_forms_parse() {
    let tb = parse(NESTED).unwrap();
    assert_eq!(tb.sources["my-pg"].url, "postgres://postgres:p%40ss@127.0.0.1:5432/test");
    assert_eq!(tb.tools.len(), 2);
    assert_eq!(tb.toolsets["hotels"], ["search-hotels"]);
    let schema = input_schema(&tb.tools[0]);
    assert_eq!(schema["required"], json!(["name"]));
    assert_eq!(schema["properties"]["limit"]["maximum"], 100);
    let tb = parse(FLAT).unwrap();
    assert_eq!(tb.sources["lite"].url, "sqlite:///tmp/x.db");
    assert_eq!(tb.tools[0].parameters[0].allowed, Some(vec![json!("a"), json!("b")]));
    assert_eq!(tb.toolsets["basic"], ["list-things"]);
}

#[test]
fn toolbox_plural_kinds_and_type_in_nested_entries_parse() {
    // Toolbox's own v2 documents say `kind: sources|tools|toolsets`; its converter also
    // turns a nested entry's `kind` into `type`.
    let flat = FLAT.replace("kind: source\n", "kind: sources\n").replace("kind: tool\n", "kind: tools\n").replace("kind: toolset\n", "kind: toolsets\n");
    assert_eq!(parse(&flat).unwrap().tools.len(), 1);
    let nested = NESTED.replace("    kind: postgres\n", "    type: postgres\n");
    assert_eq!(parse(&nested).unwrap().sources["my-pg"].engine, EngineKind::Postgres);
    assert!(parse(&NESTED.replace("    kind: postgres\n", "    kind: postgres\n    type: postgres\n")).unwrap_err().contains("give `kind` or `type`, not both"));
}

#[test]
fn the_shipped_examples_load() {
    for text in [include_str!("../../../../conf/toolbox/hotels-nested.yaml"), include_str!("../../../../conf/toolbox/hotels-flat.yaml")] {
        let tb = parse(text).unwrap();
        assert!(!tb.tools.is_empty() && tb.toolsets.contains_key("guest-desk"));
    }
}

#[test]
fn template_parameters_only_take_allowed_identifiers() {
    let tb = parse(NESTED).unwrap();
    let t = &tb.tools[1];
    assert_eq!(prepare(t, &args(json!({"table": "hotels"}))).unwrap().0, "SELECT COUNT(*) FROM \"hotels\"");
    assert!(prepare(t, &args(json!({"table": "pg_authid; --"}))).is_err());
    let bad = NESTED.replace("allowedValues: [hotels, bookings]", "description: any");
    assert!(parse(&bad).unwrap_err().contains("allowedValues"));
}

#[test]
fn escape_picks_the_quote_style() {
    let lite = |escape: &str| {
        let text = format!("kind: source\nname: l\ntype: sqlite\ndatabase: x.db\n---\nkind: tool\nname: t\ntype: sqlite-sql\nsource: l\nstatement: SELECT {{{{.c}}}} FROM {{{{ .tbl }}}}\ntemplateParameters:\n  - {{name: c, type: string, escape: {escape}, allowedValues: [name]}}\n  - {{name: tbl, type: string, allowedValues: [things]}}\n");
        let tb = parse(&text).unwrap();
        prepare(&tb.tools[0], &args(json!({"c": "name", "tbl": "things"}))).unwrap().0
    };
    assert_eq!(lite("double-quotes"), "SELECT \"name\" FROM \"things\"");
    assert_eq!(lite("backticks"), "SELECT `name` FROM \"things\"");
    assert_eq!(lite("square-brackets"), "SELECT [name] FROM \"things\"");
    assert_eq!(lite("single-quotes"), "SELECT 'name' FROM \"things\"");
    let e = parse(&pg_tool("    statement: SELECT {{.c}}\n    templateParameters:\n      - {name: c, escape: backticks, allowedValues: [a]}\n")).unwrap_err();
    assert!(e.contains("escape Backticks is not SQL that postgres reads"), "{e}");
}

#[test]
fn numeric_template_parameters_are_written_as_numbers() {
    let tb = parse(&pg_tool("    statement: SELECT * FROM t LIMIT {{.n}}\n    templateParameters:\n      - {name: n, type: integer, default: 10, allowedValues: [10, 100]}\n")).unwrap();
    assert_eq!(prepare(&tb.tools[0], &args(json!({}))).unwrap().0, "SELECT * FROM t LIMIT 10");
    assert_eq!(prepare(&tb.tools[0], &args(json!({"n": 100}))).unwrap().0, "SELECT * FROM t LIMIT 100");
    assert!(parse(&pg_tool("    statement: SELECT {{.b}}\n    templateParameters:\n      - {name: b, type: boolean, allowedValues: [true]}\n")).unwrap_err().contains("type `boolean` is not supported for a template parameter"));
}

#[test]
fn statement_templates_are_checked_at_load() {
    let e = parse(&pg_tool("    statement: SELECT {{array .cols}} FROM t\n    templateParameters:\n      - {name: cols, allowedValues: [a]}\n")).unwrap_err();
    assert!(e.contains("tool `t`: statement: `{{array .cols}}` is not supported"), "{e}");
    let e = parse(&pg_tool("    statement: SELECT {{.nope}} FROM t\n")).unwrap_err();
    assert!(e.contains("`{{.nope}}` names no template parameter"), "{e}");
    // Without template parameters, `{{` is SQL text (a PostgreSQL array literal).
    let tb = parse(&pg_tool("    statement: \"SELECT '{{1,2},{3,4}}'::int[]\"\n")).unwrap();
    assert_eq!(prepare(&tb.tools[0], &args(json!({}))).unwrap().0, "SELECT '{{1,2},{3,4}}'::int[]");
}

#[test]
fn map_parameters_bind_as_json_objects() {
    let tb = parse(&pg_tool("    statement: SELECT $1::jsonb ->> 'k'\n    parameters:\n      - {name: attrs, type: map, valueType: string, description: attributes}\n")).unwrap();
    let t = &tb.tools[0];
    assert_eq!(t.parameters[0].kind, "map");
    assert_eq!(t.parameters[0].value_type.as_deref(), Some("string"));
    assert_eq!(input_schema(t)["properties"]["attrs"], json!({"type": "object", "description": "attributes", "additionalProperties": {"type": "string"}}));
    assert_eq!(prepare(t, &args(json!({"attrs": {"k": "v"}}))).unwrap().1, [json!({"k": "v"})]);
}

#[test]
fn excluded_values_are_refused_before_the_query() {
    let tb = parse(&pg_tool("    statement: SELECT * FROM users WHERE name = $1\n    parameters:\n      - {name: user, type: string, excludedValues: [\"^postgres$\", \"^pg_\"]}\n")).unwrap();
    let t = &tb.tools[0];
    assert_eq!(input_schema(t)["properties"]["user"]["not"], json!({"anyOf": [{"pattern": "^postgres$"}, {"pattern": "^pg_"}]}));
    assert_eq!(prepare(t, &args(json!({"user": "pg_monitor"}))).unwrap_err(), "`user`: \"pg_monitor\" is an excluded value");
    assert!(prepare(t, &args(json!({"user": "alice"}))).is_ok());
}

#[test]
fn per_tool_caps_replace_the_servers_and_the_timeout_only_shortens() {
    let tb = parse(&pg_tool("    statement: SELECT 1\n    maxRows: 5000\n    maxResponseBytes: 64KiB\n")).unwrap();
    let server = DbLimits::default();
    let l = tb.tools[0].limits(&server);
    assert_eq!((l.max_rows, l.max_response_bytes.0, l.statement_timeout), (5000, 64 << 10, server.statement_timeout));
    let tb = parse(&pg_tool("    statement: SELECT 1\n    maxResponseBytes: 2048\n")).unwrap();
    assert_eq!(tb.tools[0].limits(&server).max_response_bytes.0, 2048);
    assert_eq!(tb.tools[0].limits(&server).max_rows, server.max_rows);
    for (bad, want) in [("maxRows: 0", "`maxRows` must be a positive whole number"), ("maxRows: many", "`maxRows` must be"), ("maxResponseBytes: 1 parsec", "unknown unit"), ("maxResponseBytes: 0", "must be positive")] {
        let e = parse(&pg_tool(&format!("    statement: SELECT 1\n    {bad}\n"))).unwrap_err();
        assert!(e.contains(want), "{bad}: {e}");
    }
    let my = "sources:\n  my: {kind: mysql, host: h, database: d, user: u, queryTimeout: 2s}\ntools:\n  t: {kind: mysql-sql, source: my, statement: SELECT 1}\n";
    let tool = &parse(my).unwrap().tools[0];
    assert_eq!(tool.limits(&server).statement_timeout.0, Duration::from_secs(2));
    let short = DbLimits { statement_timeout: Dur(Duration::from_secs(1)), ..DbLimits::default() };
    assert_eq!(tool.limits(&short).statement_timeout.0, Duration::from_secs(1), "a source cannot lengthen the server's timeout");
}

#[test]
fn annotations_never_claim_less_writing_than_possible() {
    let tb = parse(&pg_tool("    statement: DELETE FROM t\n    annotations: {readOnlyHint: false, destructiveHint: true, idempotentHint: true, title: Purge}\n")).unwrap();
    let t = &tb.tools[0];
    let ro = t.annotations_for(true);
    assert_eq!((ro.read_only_hint, ro.destructive_hint, ro.idempotent_hint, ro.title.as_deref()), (Some(true), None, Some(true), Some("Purge")), "a read-only server cannot write");
    let rw = t.annotations_for(false);
    assert_eq!((rw.read_only_hint, rw.destructive_hint, rw.open_world_hint), (Some(false), Some(true), Some(false)));
    let tb = parse(&pg_tool("    statement: SELECT 1\n    annotations: {readOnlyHint: true}\n")).unwrap();
    assert_eq!(tb.tools[0].annotations_for(false).read_only_hint, Some(true), "a read-write server takes the file's hints");
    let tb = parse(&pg_tool("    statement: SELECT 1\n")).unwrap();
    assert_eq!(tb.tools[0].annotations_for(false), ToolAnnotations { read_only_hint: Some(false), destructive_hint: Some(true), open_world_hint: Some(false), ..Default::default() });
    assert!(parse(&pg_tool("    statement: SELECT 1\n    annotations: {readOnly: true}\n")).unwrap_err().contains("tool `t`, annotations: unknown key `readOnly`"));
    assert!(parse(&pg_tool("    statement: SELECT 1\n    annotations: {readOnlyHint: maybe}\n")).unwrap_err().contains("tool `t`, annotations:"));
}

#[test]
fn required_variables_fail_with_their_message() {
    let text = NESTED.replace("${TOOLBOX_TEST_PW:p@ss}", "${MCPGATE_TB_UNSET_PW:?set the shop database password}");
    assert_eq!(parse(&text).unwrap_err(), "environment variable `MCPGATE_TB_UNSET_PW` is not set: set the shop database password");
    // Toolbox's one-colon default still works next to it.
    assert!(parse(NESTED).is_ok());
}

#[test]
fn unsupported_constructs_are_errors_naming_them() {
    let cases = [
        (NESTED.replace("kind: postgres-sql", "kind: postgres-list-tables"), "tool `search-hotels`: kind `postgres-list-tables` is not supported"),
        (NESTED.replace("kind: postgres-sql", "kind: postgres-execute-sql"), "the server's own `query` tool"),
        (NESTED.replace("hotels: [search-hotels]", "hotels: [nope]"), "toolset `hotels`: tool `nope` is not defined"),
        (NESTED.replace("    source: my-pg\n    description: Count", "    source: other\n    description: Count"), "tool `by-table`: source `other` is not defined"),
        (NESTED.replace("    description: Search hotels by name.\n", "    description: Search hotels by name.\n    authRequired: [my-google-auth]\n"), "tool `search-hotels`: `authRequired` is not supported"),
        (NESTED.replace("    description: Count rows.\n", "    description: Count rows.\n    limit: 5\n"), "tool `by-table`: unknown key `limit`"),
        (
            NESTED.replace("{name: name, type: string, description: Hotel name}", "{name: name, type: string, description: Hotel name, authServices: [{name: g, field: email}]}"),
            "tool `search-hotels`, parameter `name`: `authServices` is not supported",
        ),
        (format!("{NESTED}authServices:\n  g: {{kind: google, clientId: x}}\n"), "`authServices` is not supported: the gateway serves sources, SQL tools and toolsets"),
        (format!("{NESTED}prompts:\n  p: {{description: x}}\n"), "`prompts` is not supported"),
        (format!("{NESTED}extra: {{}}\n"), "unknown section `extra`"),
        (format!("{FLAT}---\nkind: authServices\nname: g\ntype: google\n"), "authServices `g` is not supported"),
        (format!("{FLAT}---\nkind: toolset\nname: more\ntools: [list-things]\ndescription: x\n"), "toolset `more`: unknown key `description`"),
        (format!("{FLAT}---\nkind: source\nname: lite\ntype: sqlite\ndatabase: /tmp/y.db\n"), "source `lite` is defined twice"),
        (FLAT.replace("type: sqlite-sql", "type: postgres-sql"), "tool `list-things`: a `postgres-sql` tool cannot use source `lite`"),
        (FLAT.replace("- {name: tag, type: string, allowedValues: [a, b]}", "- {name: tag, type: string}\n  - {name: tag, type: integer}"), "parameter `tag` is declared twice"),
    ];
    for (text, want) in cases {
        let e = parse(&text).unwrap_err();
        assert!(e.contains(want), "want `{want}` in: {e}");
    }
    // An empty auth list is what Toolbox fills in itself: nothing to refuse.
    assert!(parse(&NESTED.replace("    description: Count rows.\n", "    description: Count rows.\n    authRequired: []\n")).is_ok());
    assert!(parse(&format!("{NESTED}authServices: {{}}\n")).is_ok());
}
