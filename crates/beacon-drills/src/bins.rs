//! The service binaries under drill (`beacon-runner`, `beacon-router`, `beacon-sim`) of
//! the build profile this test runs in. Integration tests of another package get no
//! `CARGO_BIN_EXE_*`, so the first caller in a test process runs
//! `cargo build --bins -p beacon-runner -p beacon-router -p beacon-sim` once and every
//! caller gets the same paths.
//!
//! That build goes to `<target dir>/drills/<profile>`, not to the test's own
//! `<target dir>/<profile>`: `cargo test --workspace` unifies the dev-dependencies'
//! features into the service binaries (tokio's `test-util`, beacon-store's
//! `test-support`), a `-p` build does not, so sharing one directory would make each
//! build undo the other and recompile the whole stack every time. Apart, both stay
//! no-ops once built.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::{Context, bail};

/// The packages whose binaries the drills start.
const PACKAGES: [&str; 3] = ["beacon-runner", "beacon-router", "beacon-sim"];

/// Paths of the three service binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub runner: PathBuf,
    pub router: PathBuf,
    pub sim: PathBuf,
    /// `target/drills/<profile>`, where they are.
    pub dir: PathBuf,
}

/// Builds the binaries once per process (later calls wait for the first and share its
/// result, an error included) and returns where they are.
pub fn binaries() -> anyhow::Result<&'static Binaries> {
    static BUILT: OnceLock<Result<Binaries, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Where the drills' build of this executable's profile puts binaries, and the
/// profile's cargo flags.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layout {
    /// `target/drills/<profile>`.
    profile_dir: PathBuf,
    /// `target/drills`.
    target_dir: PathBuf,
    /// `[]` for `debug`, `["--release"]`, or `["--profile", NAME]`.
    profile_args: Vec<String>,
}

/// A test runs as `target/<profile>/deps/<name>-<hash>`; a plain binary as
/// `target/<profile>/<name>`.
fn layout_of(exe: &Path) -> anyhow::Result<Layout> {
    let parent = exe
        .parent()
        .with_context(|| format!("{} has no directory", exe.display()))?;
    let profile_dir = if parent.file_name().is_some_and(|n| n == "deps") {
        parent.parent().unwrap_or(parent)
    } else {
        parent
    };
    let target_dir = profile_dir
        .parent()
        .with_context(|| format!("{} has no parent", profile_dir.display()))?;
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("no profile name in {}", profile_dir.display()))?;
    let profile_args = match profile {
        "debug" => Vec::new(),
        "release" => vec!["--release".to_string()],
        other => vec!["--profile".to_string(), other.to_string()],
    };
    let drills = target_dir.join("drills");
    Ok(Layout {
        profile_dir: drills.join(profile),
        target_dir: drills,
        profile_args,
    })
}

fn build() -> anyhow::Result<Binaries> {
    let exe = std::env::current_exe().context("cannot locate this test executable")?;
    let layout = layout_of(&exe)?;
    // The workspace root, two levels above this crate's manifest directory.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .current_dir(&workspace)
        .arg("build")
        .arg("--bins")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        // Under the directory this test was built into (= CARGO_TARGET_DIR when set).
        .arg("--target-dir")
        .arg(&layout.target_dir)
        .args(&layout.profile_args);
    for p in PACKAGES {
        command.arg("-p").arg(p);
    }
    // What cargo set for this test process describes this package, not the build: a
    // build script that reads one (ring reads CARGO_MANIFEST_DIR) would otherwise be
    // rerun, and everything above it rebuilt, whenever the caller changes.
    for (key, _) in std::env::vars_os() {
        let Some(k) = key.to_str() else { continue };
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_MANIFEST_")
            || k.starts_with("CARGO_BIN_")
            || matches!(
                k,
                "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR" | "OUT_DIR"
            )
        {
            command.env_remove(&key);
        }
    }
    let started = Instant::now();
    let out = command
        .output()
        .with_context(|| format!("cannot run {}", Path::new(&cargo).display()))?;
    if !out.status.success() {
        bail!(
            "`cargo build --bins -p {}` failed ({}):\n{}",
            PACKAGES.join(" -p "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let took = started.elapsed();
    if took.as_secs() >= 5 {
        // A rebuild, not the usual no-op: worth a line (past libtest's capture), since
        // it eats into the first drill's time.
        let line = format!(
            "beacon-drills: built {} in {took:.1?}\n",
            PACKAGES.join(", ")
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
    let bin = |name: &str| -> anyhow::Result<PathBuf> {
        let path = layout.profile_dir.join(name);
        if !path.is_file() {
            bail!("cargo built, but there is no {}", path.display());
        }
        Ok(path)
    };
    Ok(Binaries {
        runner: bin("beacon-runner")?,
        router: bin("beacon-router")?,
        sim: bin("beacon-sim")?,
        dir: layout.profile_dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_comes_from_the_executable_path() {
        let l = layout_of(Path::new("/w/target/debug/deps/chaos-0123abcd"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.profile_dir, Path::new("/w/target/drills/debug"));
        assert_eq!(l.target_dir, Path::new("/w/target/drills"));
        assert!(l.profile_args.is_empty());
        let l = layout_of(Path::new("/t/release/beacon-bench")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.profile_dir, Path::new("/t/drills/release"));
        assert_eq!(l.profile_args, ["--release"]);
        let l = layout_of(Path::new("/t/bench/deps/x")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.profile_args, ["--profile", "bench"]);
    }
}
