//! The portal's signature vectors, copied into the repository
//! (`tests/fixtures/portal-signatures.json`, from the design's shared fixtures) so a
//! fresh clone tests on its own.

pub fn read_fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}
