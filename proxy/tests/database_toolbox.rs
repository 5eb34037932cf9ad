//! Google MCP Toolbox `tools.yaml` files, in both forms, served through the gateway against
//! the real PostgreSQL and a SQLite file: bound parameters, allow-listed identifiers,
//! validation before the query runs, and one route per toolset.

mod support;

use serde_json::{json, Value};
use support::{text, Gateway, Raw};

async fn session(gw: &Gateway, name: &str) -> Raw {
    let mut c = Raw::new(gw.url(name));
    c.initialize("2025-06-18").await;
    c
}

fn pg_up() -> bool {
    let ok = std::net::TcpStream::connect_timeout(&"127.0.0.1:5432".parse().unwrap(), std::time::Duration::from_secs(2)).is_ok();
    assert!(ok || std::env::var("CI").as_deref() != Ok("true"), "PostgreSQL is not reachable and CI=true");
    ok
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

#[tokio::test]
async fn flat_toolbox_file_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("things.db");
    std::fs::write(dir.path().join("seed.sql"), "CREATE TABLE things (id INTEGER PRIMARY KEY, tag TEXT, name TEXT);\nINSERT INTO things VALUES (1, 'a', 'apple'), (2, 'b', 'banana'), (3, 'a', 'avocado');\n").unwrap();
    std::fs::write(
        dir.path().join("tools.yaml"),
        format!(
            "kind: source\nname: lite\ntype: sqlite\ndatabase: {}\n---\nkind: tool\nname: by-tag\ntype: sqlite-sql\nsource: lite\ndescription: Things with a tag\nparameters:\n  - {{name: tag, type: string, allowedValues: [a, b]}}\nstatement: SELECT name FROM things WHERE tag = ? ORDER BY id\n---\nkind: toolset\nname: basic\ntools: [by-tag]\n",
            db.display()
        ),
    )
    .unwrap();
    // The server's own source seeds the file and serves the instance tools too.
    let gw = Gateway::start(&format!(
        "servers:\n  - name: things\n    type: database\n    source: {{url: \"sqlite://{}\", seed: {}}}\n    tools_file: {}\n",
        db.display(),
        dir.path().join("seed.sql").display(),
        dir.path().join("tools.yaml").display()
    ));
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
