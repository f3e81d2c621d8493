//! Reads the fixtures in `tests/fixtures/`: the portal's signature vectors (copied from
//! the design's shared fixtures) and the number vectors Node.js generated
//! (`make-number-vectors.mjs`), all in the repository so a fresh clone tests on its own.

pub fn read_fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}
