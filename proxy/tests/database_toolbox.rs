//! Google MCP Toolbox `tools.yaml` files, in both forms, served through the gateway against
//! the real PostgreSQL, MariaDB and a SQLite file: bound parameters, allow-listed
//! identifiers and their quoting, `map` parameters, `excludedValues`, per-tool caps,
//! annotations, `${VAR:?message}`, validation before the query runs, one route per
//! toolset, and a `type: database` source given as fields.

mod support;

use serde_json::{json, Value};
use support::{text, Gateway, Raw};

async fn session(gw: &Gateway, name: &str) -> Raw {
    let mut c = Raw::new(gw.url(name));
    c.initialize("2025-06-18").await;
    c
}

fn reachable(port: u16, name: &str) -> bool {
    let ok = std::net::TcpStream::connect_timeout(&format!("127.0.0.1:{port}").parse().unwrap(), std::time::Duration::from_secs(2)).is_ok();
    assert!(ok || std::env::var("CI").as_deref() != Ok("true"), "{name} is not reachable and CI=true");
    ok
}

fn pg_up() -> bool {
    reachable(5432, "PostgreSQL")
}

fn my_up() -> bool {
    reachable(3306, "MariaDB")
}

/// A read-write server on the test database as its administrator, given by fields, for
/// set-up and checks (the administrator's free SQL only because this says so).
fn admin() -> Gateway {
    Gateway::start("servers:\n  - name: admin\n    type: database\n    source: {engine: postgres, host: 127.0.0.1, port: 5432, database: test, user: postgres}\n    access: read-write\n    allow_privileged_account: true\n")
}

async fn exec(a: &Raw, sql: &str) -> Value {
    let r = a.call("execute", json!({"sql": sql})).await;
    assert_ne!(r["isError"], true, "{sql}: {r}");
    r
}

fn tool_names(list: &Value) -> Vec<&str> {
    list["result"]["tools"].as_array().map(|a| a.iter().filter_map(|t| t["name"].as_str()).collect()).unwrap_or_default()
}

fn tool_def<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["result"]["tools"].as_array().and_then(|a| a.iter().find(|t| t["name"] == name)).unwrap_or(&Value::Null)
}

#[tokio::test]
async fn nested_toolbox_file_on_postgres() {
    if !pg_up() {
        return;
    }
    let table = format!("mcpgate_tb_{}", std::process::id());
    // Set-up as the database's administrator: the custom tools themselves are fixed
    // statements, served under any account.
    support::db::pg_admin(&format!("DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id int PRIMARY KEY, name text, stars int); INSERT INTO {table} VALUES (1, 'Harbour View', 4), (2, 'Alpine Lodge', 5), (3, 'City Central', 3)")).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tools.yaml"),
        format!(
            r#"sources:
  my-pg:
    kind: postgres
    host: 127.0.0.1
    port: 5432
    database: test
    user: ${{MCPGATE_TB_USER:postgres}}
    password: ""
tools:
  search-hotels:
    kind: postgres-sql
    source: my-pg
    description: Search hotels by name.
    parameters:
      - {{name: name, type: string, description: Part of the name}}
      - {{name: min_stars, type: integer, default: 1, minValue: 1, maxValue: 5}}
    statement: SELECT id, name FROM {table} WHERE name ILIKE '%' || $1 || '%' AND stars >= $2 ORDER BY id
  count-rows:
    kind: postgres-sql
    source: my-pg
    description: Count the rows of an allowed table.
    templateParameters:
      - {{name: table, type: string, allowedValues: [{table}]}}
    statement: SELECT COUNT(*) AS n FROM {{{{.table}}}}
toolsets:
  search: [search-hotels]
"#
        ),
    )
    .unwrap();
    let gw = Gateway::start(&format!("servers:\n  - name: shop\n    type: database\n    tools_file: {}\n", dir.path().join("tools.yaml").display()));
    let c = session(&gw, "shop").await;
    let tools = c.request(1, "tools/list", json!({})).await;
    let names: Vec<&str> = tools["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["search-hotels", "count-rows"]);

    let r = c.call("search-hotels", json!({"name": "o"})).await;
    assert_eq!(r["structuredContent"]["rows"], json!([[1, "Harbour View"], [2, "Alpine Lodge"]]), "{r}");
    let r = c.call("search-hotels", json!({"name": "o", "min_stars": 5})).await;
    assert_eq!(r["structuredContent"]["rows"], json!([[2, "Alpine Lodge"]]));
    // Injection attempts are bound values: they match nothing.
    let r = c.call("search-hotels", json!({"name": "' OR 1=1 --"})).await;
    assert_eq!(r["structuredContent"]["row_count"], 0, "{r}");
    // Validation happens before the query runs.
    let r = c.call("search-hotels", json!({"name": "o", "min_stars": 9})).await;
    assert_eq!(r["isError"], true);
    assert!(text(&r).contains("min_stars") && text(&r).contains("maximum"), "{r}");
    let r = c.call("count-rows", json!({"table": table})).await;
    assert_eq!(r["structuredContent"]["rows"], json!([[3]]), "{r}");
    let r = c.call("count-rows", json!({"table": "pg_authid"})).await;
    assert_eq!(r["isError"], true, "identifiers outside the allow-list are refused");

    // One route per toolset, with just its tools.
    let s = session(&gw, "shop.search").await;
    let tools = s.request(1, "tools/list", json!({})).await;
    assert_eq!(tools["result"]["tools"].as_array().unwrap().len(), 1);
    assert_eq!(tools["result"]["tools"][0]["name"], "search-hotels");

    support::db::pg_admin(&format!("DROP TABLE {table}")).await;
}

/// A server `name` over the SQLite file `things.db` in `dir`, seeded with a `things`
/// table, whose `source:` is `source(db path, seed path)`, serving `dir/tools.yaml`.
fn things_server(name: &str, dir: &std::path::Path, source: &dyn Fn(&str, &str) -> String) -> Gateway {
    let seed = dir.join("seed.sql");
    std::fs::write(&seed, "CREATE TABLE things (id INTEGER PRIMARY KEY, tag TEXT, name TEXT);\nINSERT INTO things VALUES (1, 'a', 'apple'), (2, 'b', 'banana'), (3, 'a', 'avocado');\n").unwrap();
    let source = source(&dir.join("things.db").display().to_string(), &seed.display().to_string());
    Gateway::start(&format!("servers:\n  - name: {name}\n    type: database\n    source: {source}\n    tools_file: {}\n", dir.join("tools.yaml").display()))
}

#[tokio::test]
async fn flat_toolbox_file_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("things.db");
    std::fs::write(
        dir.path().join("tools.yaml"),
        format!(
            "kind: source\nname: lite\ntype: sqlite\ndatabase: {}\n---\nkind: tool\nname: by-tag\ntype: sqlite-sql\nsource: lite\ndescription: Things with a tag\nparameters:\n  - {{name: tag, type: string, allowedValues: [a, b]}}\nstatement: SELECT name FROM things WHERE tag = ? ORDER BY id\n---\nkind: toolset\nname: basic\ntools: [by-tag]\n",
            db.display()
        ),
    )
    .unwrap();
    // The server's own source seeds the file and serves the instance tools too.
    let gw = things_server("things", dir.path(), &|db, seed| format!("{{url: \"sqlite://{db}\", seed: {seed}}}"));
    let c = session(&gw, "things").await;
    let names: Vec<String> = c.request(1, "tools/list", json!({})).await["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["list_tables", "describe_table", "query", "by-tag"]);
    let r = c.call("by-tag", json!({"tag": "a"})).await;
    assert_eq!(r["structuredContent"]["rows"], json!([["apple"], ["avocado"]]));
    let r = c.call("by-tag", json!({"tag": "a' OR '1'='1"})).await;
    assert_eq!(r["isError"], true);
    let basic = session(&gw, "things.basic").await;
    assert_eq!(basic.request(2, "tools/list", json!({})).await["result"]["tools"].as_array().map(Vec::len), Some(1));
    let v: Value = basic.call("by-tag", json!({"tag": "b"})).await;
    assert_eq!(v["structuredContent"]["rows"], json!([["banana"]]));
}

/// The constructs added for Toolbox parity, on the real PostgreSQL: a `map` parameter
/// reaches the database as JSON, an excluded value never reaches it, `escape` quotes as
/// asked, a tool's own `maxRows` replaces the server's, and the file's annotations are
/// served, except that a read-only server's tools are always read-only.
#[tokio::test]
async fn toolbox_parity_constructs_on_postgres() {
    if !pg_up() {
        return;
    }
    let table = format!("mcpgate_tbp_{}", std::process::id());
    let setup = admin();
    let a = session(&setup, "admin").await;
    exec(&a, &format!("DROP TABLE IF EXISTS {table}")).await;
    exec(&a, &format!("CREATE TABLE {table} (id serial PRIMARY KEY, name text)")).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tools.yaml");
    std::fs::write(
        &file,
        format!(
            r#"kind: sources
name: pg
type: postgres
host: 127.0.0.1
port: 5432
database: test
user: postgres
password: ""
queryParams: {{sslmode: disable, application_name: mcpgate-toolbox-test}}
---
kind: tools
name: attr
type: postgres-sql
source: pg
description: One attribute of a JSON object.
parameters:
  - {{name: attrs, type: map, valueType: string, description: Attributes}}
  - {{name: key, type: string, description: Which one}}
statement: SELECT $1::jsonb ->> $2 AS value, jsonb_typeof($1::jsonb) AS kind
---
kind: tools
name: add-user
type: postgres-sql
source: pg
description: Record a user name.
parameters:
  - name: name
    type: string
    description: The name
    excludedValues: ["^postgres$", "^pg_"]
statement: INSERT INTO {table} (name) VALUES ($1) RETURNING name
annotations: {{readOnlyHint: false, destructiveHint: false, idempotentHint: false, title: Add a user}}
---
kind: tools
name: pick
type: postgres-sql
source: pg
description: A column, quoted as asked, and a literal.
templateParameters:
  - {{name: col, type: string, escape: double-quotes, allowedValues: [name, id]}}
  - {{name: label, type: string, escape: single-quotes, allowedValues: ["it's"]}}
statement: SELECT {{{{.col}}}} AS picked, {{{{.label}}}} AS label FROM {table} ORDER BY id LIMIT 1
---
kind: tools
name: series
type: postgres-sql
source: pg
description: Numbers.
maxRows: 5
maxResponseBytes: 64KiB
statement: SELECT generate_series(1, 50) AS n
---
kind: tools
name: many
type: postgres-sql
source: pg
description: More numbers than the server returns.
maxRows: 20
statement: SELECT generate_series(1, 50) AS n
---
kind: tools
name: plain
type: postgres-sql
source: pg
description: The server's own cap.
statement: SELECT generate_series(1, 50) AS n
---
kind: toolsets
name: reads
tools: [attr, series]
"#
        ),
    )
    .unwrap();
    let body = |access: &str| format!("servers:\n  - name: tb\n    type: database\n    tools_file: {}\n    access: {access}\n    limits: {{max_rows: 10}}\n", file.display());
    let gw = Gateway::start(&body("read-write"));
    let c = session(&gw, "tb").await;
    let list = c.request(1, "tools/list", json!({})).await;
    assert_eq!(tool_names(&list), ["attr", "add-user", "pick", "series", "many", "plain"]);
    assert_eq!(tool_def(&list, "attr")["inputSchema"]["properties"]["attrs"], json!({"type": "object", "description": "Attributes", "additionalProperties": {"type": "string"}}));

    // A map reaches PostgreSQL as one JSON object.
    let r = c.call("attr", json!({"attrs": {"colour": "blue", "size": "L"}, "key": "colour"})).await;
    assert_eq!(r["structuredContent"]["rows"], json!([["blue", "object"]]), "{r}");
    let r = c.call("attr", json!({"attrs": {"size": 3}, "key": "size"})).await;
    assert_eq!(r["isError"], true, "valueType: string refuses a number: {r}");

    // Excluded values are refused before the statement runs: nothing is inserted.
    for name in ["postgres", "pg_monitor"] {
        let r = c.call("add-user", json!({"name": name})).await;
        assert_eq!(r["isError"], true, "{name}: {r}");
        assert!(text(&r).contains("name"), "{r}");
    }
    let r = a.call("query", json!({"sql": format!("SELECT count(*) FROM {table}")})).await;
    assert_eq!(r["structuredContent"]["rows"], json!([[0]]), "an excluded value never reached the database");
    let r = c.call("add-user", json!({"name": "alice"})).await;
    assert_eq!(r["structuredContent"]["rows"], json!([["alice"]]), "{r}");

    // escape: double quotes make an identifier, single quotes a literal.
    let r = c.call("pick", json!({"col": "name", "label": "it's"})).await;
    assert_eq!(r["structuredContent"]["rows"], json!([["alice", "it's"]]), "{r}");
    let r = c.call("pick", json!({"col": "name; DROP TABLE x", "label": "it's"})).await;
    assert_eq!(r["isError"], true);

    // A tool's maxRows replaces the server's max_rows (10), lower or higher.
    for (tool, rows) in [("series", 5), ("many", 20), ("plain", 10)] {
        let r = c.call(tool, json!({})).await;
        assert_eq!(r["structuredContent"]["row_count"], rows, "{tool}: {r}");
        assert_eq!(r["structuredContent"]["truncated"], true, "{tool}");
    }

    // The file's annotations on a read-write server; always read-only on a read-only one.
    let add = tool_def(&list, "add-user");
    assert_eq!(add["annotations"], json!({"title": "Add a user", "readOnlyHint": false, "destructiveHint": false, "idempotentHint": false, "openWorldHint": false}));
    assert_eq!(add["title"], "Add a user");
    assert_eq!(tool_def(&list, "series")["annotations"], json!({"readOnlyHint": false, "destructiveHint": true, "openWorldHint": false}));
    let ro = Gateway::start(&body("read-only"));
    let c = session(&ro, "tb").await;
    let list = c.request(1, "tools/list", json!({})).await;
    assert_eq!(tool_def(&list, "add-user")["annotations"], json!({"title": "Add a user", "readOnlyHint": true, "idempotentHint": false, "openWorldHint": false}));
    let r = c.call("add-user", json!({"name": "bob"})).await;
    assert_eq!(r["isError"], true, "a read-only server cannot write, whatever the file says: {r}");
    assert!(text(&r).contains("ERROR 25006"), "refused by the database as a read-only transaction: {r}");
    let s = session(&ro, "tb.reads").await;
    assert_eq!(tool_names(&s.request(1, "tools/list", json!({})).await), ["attr", "series"]);

    exec(&a, &format!("DROP TABLE {table}")).await;
}

/// `${VAR:?message}` in a Toolbox file (and in the gateway config) fails `--test` with the
/// message and the variable's name; unsupported constructs fail it naming them.
#[test]
fn required_variables_and_unsupported_constructs_fail_the_test_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = |config: &str, tools: &str| {
        std::fs::write(dir.path().join("tools.yaml"), tools).unwrap();
        let path = dir.path().join("mcpgate.yaml");
        std::fs::write(&path, config).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcpgate")).arg("--config").arg(&path).arg("--test").env_remove("MCPGATE_TB_UNSET").output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let server = "servers:\n  - {name: tb, type: database, tools_file: tools.yaml}\n";
    let tools = |password: &str, extra: &str| {
        format!("sources:\n  pg: {{kind: postgres, host: 127.0.0.1, database: test, user: postgres, password: \"{password}\"}}\ntools:\n  t:\n    kind: postgres-sql\n    source: pg\n    description: d\n    statement: SELECT 1\n{extra}")
    };

    let (ok, err) = run(server, &tools("${MCPGATE_TB_UNSET:?set the test database password}", ""));
    assert!(!ok);
    assert!(err.contains("tools_file `tools.yaml`: environment variable `MCPGATE_TB_UNSET` is not set: set the test database password"), "{err}");
    let (ok, err) = run("servers:\n  - {name: tb, type: database, source: {url: \"${MCPGATE_TB_UNSET:?the database URL}\"}}\n", "");
    assert!(!ok && err.contains("field `servers[0].source.url`") && err.contains("`MCPGATE_TB_UNSET` is not set: the database URL"), "{err}");
    let (ok, err) = run(server, &tools("", "    authRequired: [google]\n"));
    assert!(!ok && err.contains("tool `t`: `authRequired` is not supported"), "{err}");
    let (ok, err) = run(server, &tools("", "").replace("postgres-sql", "postgres-list-tables"));
    assert!(!ok && err.contains("tool `t`: kind `postgres-list-tables` is not supported"), "{err}");
    let (ok, err) = run("servers:\n  - {name: db, type: database, source: {url: \"postgres://a@b/c\", host: b}}\n", "");
    assert!(!ok && err.contains("server `db`, field `source`: give either `url` or the connection fields"), "{err}");
    let (ok, out) = run(server, &tools("", ""));
    assert!(ok, "{out}");
}

/// A `type: database` server whose source is given as fields, on PostgreSQL and MariaDB.
#[tokio::test]
async fn a_database_source_given_as_fields() {
    // The least-privileged accounts the tests create: the free-SQL tools are served.
    let mut sources = Vec::new();
    if pg_up() {
        support::db::pg_app().await;
        sources.push(("pg", "{engine: postgres, host: 127.0.0.1, port: 5432, database: test, user: mcpgate_test_app, password: \"\", tls: {mode: prefer}}"));
    }
    if my_up() {
        support::db::my_app().await;
        sources.push(("my", "{engine: mariadb, host: 127.0.0.1, port: \"3306\", database: test, user: mcpgate_test_app}"));
    }
    for (name, source) in sources {
        let gw = Gateway::start(&format!("servers:\n  - name: {name}\n    type: database\n    source: {source}\n"));
        let c = session(&gw, name).await;
        let r = c.call("query", json!({"sql": "SELECT 40 + 2 AS answer"})).await;
        assert_eq!(r["structuredContent"]["rows"], json!([[42]]), "{name}: {r}");
    }
}

/// The same constructs on a SQLite file, in the flat form: a map bound as JSON text,
/// square-bracket identifiers, an excluded value, and a tool's own row cap.
#[tokio::test]
async fn toolbox_parity_constructs_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tools.yaml"),
        "kind: source\nname: lite\ntype: sqlite\ndatabase: things.db\n---\n\
kind: tool\nname: field\ntype: sqlite-sql\nsource: lite\ndescription: d\nparameters:\n  - {name: doc, type: map, description: a document}\nstatement: SELECT json_extract(?, '$.k') AS k\n---\n\
kind: tool\nname: col\ntype: sqlite-sql\nsource: lite\ndescription: d\nmaxRows: 2\ntemplateParameters:\n  - {name: c, type: string, escape: square-brackets, allowedValues: [name, tag]}\nparameters:\n  - {name: not_tag, type: string, excludedValues: [\"^z$\"]}\nstatement: SELECT {{.c}} FROM things WHERE tag <> ? ORDER BY id\n",
    )
    .unwrap();
    let gw = things_server("lite", dir.path(), &|db, seed| format!("{{engine: sqlite, database: \"{db}\", seed: {seed}}}"));
    let c = session(&gw, "lite").await;
    let r = c.call("field", json!({"doc": {"k": [1, 2]}})).await;
    assert_eq!(r["structuredContent"]["rows"], json!([["[1,2]"]]), "{r}");
    let r = c.call("col", json!({"c": "name", "not_tag": "b"})).await;
    assert_eq!(r["structuredContent"]["rows"], json!([["apple"], ["avocado"]]), "{r}");
    let r = c.call("col", json!({"c": "tag", "not_tag": "q"})).await;
    assert_eq!((r["structuredContent"]["row_count"].clone(), r["structuredContent"]["truncated"].clone()), (json!(2), json!(true)), "{r}");
    let r = c.call("col", json!({"c": "name", "not_tag": "z"})).await;
    assert_eq!(r["isError"], true, "{r}");
    let r = c.call("query", json!({"sql": "SELECT count(*) FROM things"})).await;
    assert_eq!(r["structuredContent"]["rows"], json!([[3]]), "the field-form SQLite source serves the instance tools: {r}");
}

/// A reload picks up an edited Toolbox file even when the server's config entry is the
/// same (the entry alone would let the reload keep the old routes and pools).
#[tokio::test]
async fn a_reload_serves_the_edited_toolbox_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    std::fs::write(dir.path().join("seed.sql"), "CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('one');").unwrap();
    let tools = |statement: &str| format!("kind: sources\nname: lite\ntype: sqlite\ndatabase: {}\n---\nkind: tools\nname: read\ntype: sqlite-sql\nsource: lite\ndescription: read\nstatement: {statement}\n", db.display());
    std::fs::write(dir.path().join("tools.yaml"), tools("SELECT v FROM t")).unwrap();
    let body = format!("servers:\n  - name: r\n    type: database\n    source: {{url: \"sqlite://{}\", seed: {}}}\n    tools_file: {}\n", db.display(), dir.path().join("seed.sql").display(), dir.path().join("tools.yaml").display());
    let gw = Gateway::start(&body);
    let c = session(&gw, "r").await;
    assert_eq!(c.call("read", json!({})).await["structuredContent"]["rows"], json!([["one"]]));
    std::fs::write(dir.path().join("tools.yaml"), tools("SELECT upper(v) AS v FROM t")).unwrap();
    gw.sighup();
    let mut seen = Value::Null;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        seen = c.call("read", json!({})).await["structuredContent"]["rows"].clone();
        if seen == json!([["ONE"]]) {
            return;
        }
    }
    panic!("the edited statement was not served after the reload: {seen}\n{}", gw.log_text());
}
