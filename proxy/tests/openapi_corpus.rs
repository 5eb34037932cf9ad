//! Every document of the shared OpenAPI corpus imports: each operation becomes a tool or
//! is skipped with a specific reason, and every generated tool can be served (valid,
//! unique names; input schemas that compile).
//!
//! The expected counts are the number of operations under `paths` in each document
//! (counted independently of the converter), minus the operations whose *required* body
//! can only be sent as multipart/form-data (readme.json: `POST /api-specification` and
//! `PUT /api-specification/{id}`).

use std::path::{Path, PathBuf};

use mcpgate::tools::Catalog;

fn corpus() -> PathBuf {
    std::env::var_os("MCPGATE_SHARED").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")).join("openapi-corpus")
}

/// (file, tools, skipped)
const EXPECTED: &[(&str, usize, usize)] = &[
    ("museum/openapi.yaml", 8, 0),
    ("oai-examples/api-with-examples.yaml", 2, 0),
    ("oai-examples/callback-example.yaml", 1, 0),
    ("oai-examples/link-example.yaml", 6, 0),
    ("oai-examples/petstore-expanded.yaml", 4, 0),
    ("oai-examples/petstore.yaml", 3, 0),
    ("oai-examples/uspto.yaml", 3, 0),
    ("petstore/openapi.yaml", 19, 0),
    ("readme-oas-examples/2.0/api-with-examples.json", 2, 0),
    ("readme-oas-examples/2.0/petstore-expanded.json", 4, 0),
    ("readme-oas-examples/2.0/petstore-minimal.json", 1, 0),
    ("readme-oas-examples/2.0/petstore-simple.json", 3, 0),
    ("readme-oas-examples/2.0/petstore-with-external-docs.json", 4, 0),
    ("readme-oas-examples/2.0/petstore.json", 20, 0),
    ("readme-oas-examples/2.0/schema-circular.json", 1, 0),
    ("readme-oas-examples/3.0/callbacks.json", 1, 0),
    ("readme-oas-examples/3.0/circular-paths.json", 3, 0),
    ("readme-oas-examples/3.0/circular.json", 1, 0),
    ("readme-oas-examples/3.0/complex-nesting.json", 5, 0),
    ("readme-oas-examples/3.0/discriminators.json", 10, 0),
    ("readme-oas-examples/3.0/file-uploads.json", 3, 0),
    ("readme-oas-examples/3.0/form-data.json", 1, 0),
    ("readme-oas-examples/3.0/http-status-codes.json", 89, 0),
    ("readme-oas-examples/3.0/link-example.json", 6, 0),
    ("readme-oas-examples/3.0/parameters-common.json", 5, 0),
    ("readme-oas-examples/3.0/parameters-cookies.json", 1, 0),
    ("readme-oas-examples/3.0/parameters-extreme.json", 1, 0),
    ("readme-oas-examples/3.0/parameters-style.json", 25, 0),
    ("readme-oas-examples/3.0/petstore-expanded.json", 4, 0),
    ("readme-oas-examples/3.0/petstore-simple-no-tags.json", 2, 0),
    ("readme-oas-examples/3.0/petstore-simple.json", 2, 0),
    ("readme-oas-examples/3.0/petstore.json", 20, 0),
    ("readme-oas-examples/3.0/polymorphism.json", 13, 0),
    ("readme-oas-examples/3.0/readme-extensions.json", 12, 0),
    ("readme-oas-examples/3.0/readme.json", 34, 2),
    ("readme-oas-examples/3.0/request-examples.json", 11, 0),
    ("readme-oas-examples/3.0/response-examples.json", 2, 0),
    ("readme-oas-examples/3.0/response-http-behavior.json", 3, 0),
    ("readme-oas-examples/3.0/response-multiple-mediatypes.json", 4, 0),
    ("readme-oas-examples/3.0/response-schemas.json", 8, 0),
    ("readme-oas-examples/3.0/schema-additional-properties.json", 1, 0),
    ("readme-oas-examples/3.0/schema-circular.json", 3, 0),
    ("readme-oas-examples/3.0/schema-deprecated.json", 1, 0),
    ("readme-oas-examples/3.0/schema-encoding-style.json", 1, 0),
    ("readme-oas-examples/3.0/schema-enums.json", 3, 0),
    ("readme-oas-examples/3.0/schema-types.json", 21, 0),
    ("readme-oas-examples/3.0/schema-validation.json", 5, 0),
    ("readme-oas-examples/3.0/schema-visibility.json", 1, 0),
    ("readme-oas-examples/3.0/security-multiple.json", 4, 0),
    ("readme-oas-examples/3.0/security.json", 15, 0),
    ("readme-oas-examples/3.0/server-variables.json", 4, 0),
    ("readme-oas-examples/3.0/star-trek.json", 120, 0),
    ("readme-oas-examples/3.0/uspto.json", 3, 0),
    ("readme-oas-examples/3.1/parameters-style.json", 25, 0),
    ("readme-oas-examples/3.1/petstore-simple.json", 2, 0),
    ("readme-oas-examples/3.1/petstore.json", 20, 0),
    ("readme-oas-examples/3.1/readme-extensions.json", 10, 0),
    ("readme-oas-examples/3.1/schema-encoding-style.json", 1, 0),
    ("readme-oas-examples/3.1/schema-types.json", 23, 0),
    ("readme-oas-examples/3.1/schema-validation-local.json", 5, 0),
    ("readme-oas-examples/3.1/schema-validation-top-level.json", 1, 0),
    ("readme-oas-examples/3.1/security.json", 15, 0),
    ("readme-oas-examples/3.1/train-travel.json", 7, 0),
    ("readme-oas-examples/3.1/webhooks.json", 0, 0),
    ("twilio/twilio_api_v2010.json", 197, 0),
    ("twilio/twilio_verify_v2.json", 57, 0),
];

#[tokio::test]
async fn every_corpus_document_imports_with_the_expected_tools() {
    let root = corpus();
    assert!(root.is_dir(), "the OpenAPI corpus is missing at {} (set MCPGATE_SHARED)", root.display());
    let mut seen = 0;
    let (mut tools_total, mut skipped_total) = (0, 0);
    for (file, tools, skipped) in EXPECTED {
        let conv = mcpgate::openapi::convert_source(file, &root, Some("http://127.0.0.1:9")).await.unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(conv.file.tools.len(), *tools, "{file}: tool count");
        assert_eq!(conv.skipped.len(), *skipped, "{file}: skipped {:?}", conv.skipped);
        let defs = mcpgate::rest::server::tool_defs(&conv.file);
        Catalog::new(&defs).unwrap_or_else(|e| panic!("{file}: {e}"));
        for s in &conv.skipped {
            assert!(s.reason.contains("multipart/form-data") && s.reason.contains("required"), "{file}: unexpected skip {s}");
        }
        tools_total += tools;
        skipped_total += skipped;
        seen += 1;
    }
    // Every file of the corpus is in the table.
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    assert_eq!(files.len(), seen, "corpus files not in EXPECTED: {:?}", files.iter().filter(|f| !EXPECTED.iter().any(|(e, _, _)| e == f)).collect::<Vec<_>>());
    assert_eq!((tools_total, skipped_total), (892, 2));
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            collect(root, &p, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("json" | "yaml" | "yml")) {
            out.push(p.strip_prefix(root).unwrap().display().to_string());
        }
    }
}

#[tokio::test]
async fn generated_tools_round_trip_through_the_rest_tool_format() {
    let conv = mcpgate::openapi::convert_source("petstore/openapi.yaml", &corpus(), None).await.unwrap();
    let yaml = mcpgate::openapi::to_yaml(&conv.file);
    let back: mcpgate::rest::model::RestToolsFile = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(back, conv.file);
    let get = back.tools.iter().find(|t| t.name == "getPetById").unwrap();
    assert_eq!(get.request_template.url, "https://petstore3.swagger.io/api/v3/pet/{petId}");
    assert_eq!(get.annotations.as_ref().unwrap().read_only_hint, Some(true));
    assert!(get.output_schema.is_some());
    let del = back.tools.iter().find(|t| t.name == "deletePet").unwrap();
    assert_eq!(del.annotations.as_ref().unwrap().destructive_hint, Some(true));
}

#[tokio::test]
async fn broken_documents_fail_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("not-openapi.yaml"), "hello: world\n").unwrap();
    std::fs::write(dir.path().join("garbage.json"), "{ this is not json").unwrap();
    let e = mcpgate::openapi::convert_source("not-openapi.yaml", dir.path(), None).await.err().unwrap().to_string();
    assert!(e.contains("not an OpenAPI document"), "{e}");
    let e = mcpgate::openapi::convert_source("garbage.json", dir.path(), None).await.err().unwrap().to_string();
    assert!(e.contains("not valid JSON or YAML"), "{e}");
    let e = mcpgate::openapi::convert_source("missing.yaml", dir.path(), None).await.err().unwrap().to_string();
    assert!(e.contains("cannot read"), "{e}");
}
