//! Signing keys on disk: base64 of the 32-byte Ed25519 seed, one line, mode 0600.
//! `beacon keygen` writes one; `sign` and `submit` read it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

/// Where keys live unless `--key` or `BEACON_KEY_FILE` says otherwise.
pub fn default_key_path() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("beacon").join("signing.key")
}

pub fn generate() -> SigningKey {
    let mut seed = [0u8; 32];
    let _ = getrandom::fill(&mut seed);
    SigningKey::from_bytes(&seed)
}

/// Writes a key file readable by its owner only. Refuses to overwrite unless `force`.
pub fn write(path: &Path, key: &SigningKey, force: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        anyhow::bail!("{} exists; pass --force to replace it", path.display());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = format!("{}\n", beacon_core::signing::encode_signing_key(key));
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("writing {}", path.display()))?;
        f.write_all(text.as_bytes())?;
    }
    #[cfg(not(unix))]
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub fn read(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading the key file {} (make one with `beacon keygen`)",
            path.display()
        )
    })?;
    beacon_core::signing::parse_signing_key(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Reads the key, creating it first if it does not exist (used by the demo).
pub fn read_or_create(path: &Path) -> anyhow::Result<SigningKey> {
    if path.exists() {
        read(path)
    } else {
        let key = generate();
        write(path, &key, false)?;
        Ok(key)
    }
}

/// Adds a fresh `metadata.nonce`, `metadata.timestamp` and `created_at`, then signs the
/// spec the portal's way.
pub fn sign_spec(spec: &Value, key: &SigningKey) -> anyhow::Result<Value> {
    let mut spec = spec.clone();
    let Some(obj) = spec.as_object_mut() else {
        anyhow::bail!("a job spec must be a JSON object");
    };
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut nonce = [0u8; 16];
    let _ = getrandom::fill(&mut nonce);
    let meta = obj.entry("metadata").or_insert_with(|| json!({}));
    let Some(meta) = meta.as_object_mut() else {
        anyhow::bail!("metadata must be an object");
    };
    meta.insert("nonce".into(), json!(hex::encode(nonce)));
    meta.insert("timestamp".into(), json!(now));
    obj.insert("created_at".into(), json!(now));
    obj.remove("signature");
    obj.remove("public_key");
    beacon_core::signing::sign(&spec, key).map_err(|e| anyhow::anyhow!("signing failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_with_owner_only_mode() {
        let dir = std::env::temp_dir().join(format!("beacon-keys-{}", std::process::id()));
        let path = dir.join("k.key");
        let key = generate();
        write(&path, &key, false).unwrap();
        assert!(write(&path, &key, false).is_err(), "no silent overwrite");
        assert_eq!(read(&path).unwrap().to_bytes(), key.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn signed_specs_verify_and_carry_fresh_metadata() {
        let key = generate();
        let signed = sign_spec(&json!({"id": "j", "questions": ["math_basic"]}), &key).unwrap();
        assert!(beacon_core::signing::verify(&signed).is_ok());
        assert!(signed["metadata"]["nonce"].as_str().unwrap().len() >= 16);
        let again = sign_spec(&signed, &key).unwrap();
        assert_ne!(
            again["metadata"]["nonce"], signed["metadata"]["nonce"],
            "a new nonce each time"
        );
    }
}
