//! `beacon keygen` and `beacon sign`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value, json};

use crate::exit;
use crate::keys;

pub fn keygen(out: Option<PathBuf>, force: bool, as_json: bool) -> anyhow::Result<u8> {
    let path = out.unwrap_or_else(keys::default_key_path);
    let key = keys::generate();
    keys::write(&path, &key, force)?;
    let public = beacon_core::signing::encode_public_key(&key.verifying_key());
    if as_json {
        println!("{}", json!({"key_file": path, "public_key": public}));
    } else {
        println!("wrote {} (mode 0600)\npublic key: {public}", path.display());
    }
    Ok(exit::OK)
}

pub fn read_spec(file: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))
}

pub fn key_path(key: Option<PathBuf>) -> PathBuf {
    key.unwrap_or_else(keys::default_key_path)
}

pub fn sign(file: &Path, key: Option<PathBuf>, out: Option<PathBuf>) -> anyhow::Result<u8> {
    let spec = read_spec(file)?;
    let key = keys::read(&key_path(key))?;
    let signed = keys::sign_spec(&spec, &key)?;
    let text = serde_json::to_string_pretty(&signed)?;
    match out {
        Some(path) => std::fs::write(&path, text + "\n")
            .with_context(|| format!("writing {}", path.display()))?,
        None => println!("{text}"),
    }
    Ok(exit::OK)
}
