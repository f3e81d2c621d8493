//! Feature test-support: the checks both services' tests/openapi.rs run on their served
//! OpenAPI document: equal to the committed copy under docs/openapi/ (`BEACON_BLESS=1`
//! rewrites it), OpenAPI 3.1, and describing exactly the routes of the router table.

use std::collections::BTreeSet;

use serde_json::Value;

/// Panics unless `served` equals the file at `committed`; with `BEACON_BLESS=1` the
/// file is rewritten instead (and the test passes), so docs cannot go stale unnoticed.
pub fn assert_committed(served: &str, committed: &str, test_command: &str) {
    let text = format!("{served}\n");
    if std::env::var("BEACON_BLESS").is_ok_and(|v| v == "1") {
        if let Err(e) = std::fs::write(committed, &text) {
            panic!("cannot write {committed}: {e}");
        }
        return;
    }
    let on_disk = std::fs::read_to_string(committed).unwrap_or_default();
    assert!(
        on_disk == text,
        "{committed} differs from the document the service serves at /openapi.json; \
         if the change is intended, run `BEACON_BLESS=1 {test_command}` and commit the file"
    );
}

/// Panics unless `doc` is OpenAPI 3.1.x and its operations are exactly `routes`
/// (method, full path), and unless the router table's source (`table_sources`: each
/// `.route(` call registers one path) has as many routes as `routes` has paths: a route
/// added to the table without a path annotation, or without a line in the test's list,
/// fails.
pub fn assert_describes(doc: &Value, routes: &[(&str, &str)], table_sources: &[&str]) {
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(
        version.starts_with("3.1."),
        "openapi is {version:?}, want 3.1.x"
    );
    let mut documented = BTreeSet::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in ["get", "put", "post", "delete", "options", "head", "patch"] {
                if item.get(method).is_some() {
                    documented.insert((method.to_string(), path.clone()));
                }
            }
        }
    }
    let listed: BTreeSet<(String, String)> = routes
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = listed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&listed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes without a #[utoipa::path] in the document: {missing:?}; documented but not \
         in the test's route list: {extra:?}"
    );
    let paths: BTreeSet<&str> = routes.iter().map(|(_, p)| *p).collect();
    let registered: usize = table_sources
        .iter()
        .map(|s| s.matches(".route(").count())
        .sum();
    assert_eq!(
        registered,
        paths.len(),
        "the router table registers {registered} paths (`.route(` calls), the test lists {}: \
         a route was added or removed; document it (#[utoipa::path], the OpenApi derive) and \
         update the list",
        paths.len()
    );
}
