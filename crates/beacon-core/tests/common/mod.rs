//! Where the shared fixtures live: `$BEACON_SHARED_DIR`, else `shared/` beside the
//! repository (how the workplace and CI lay it out).

use std::path::PathBuf;

fn shared_file(relative: &str) -> PathBuf {
    let root = std::env::var_os("BEACON_SHARED_DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")),
        PathBuf::from,
    );
    root.join(relative)
}

pub fn read_shared(relative: &str) -> String {
    let path = shared_file(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e} (set BEACON_SHARED_DIR to the shared/ folder)",
            path.display()
        )
    })
}
