//! `cors_origins`: the browser origins allowed to read `/health` and `/providers` (the
//! portal's infrastructure panel calls them from the page). Each entry must be exactly
//! an origin as a browser sends it, so a typo fails at start instead of silently never
//! matching.

use beacon_service::config_error as err;

use super::ConfigError;

/// Local development origins the portal runs on (the runner's defaults too).
pub const DEFAULT_CORS_ORIGINS: [&str; 4] = [
    "http://localhost:3000",
    "http://localhost:5173",
    "http://127.0.0.1:3000",
    "http://127.0.0.1:5173",
];

/// Which origins may read the browser routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// `["*"]`: any origin (the routes carry no secrets and no credentials are allowed).
    Any,
    /// Exactly these origins, in their serialised form (`https://host[:port]`).
    List(Vec<String>),
}

impl CorsOrigins {
    /// For the summary line.
    pub fn describe(&self) -> String {
        match self {
            CorsOrigins::Any => "*".into(),
            CorsOrigins::List(l) if l.is_empty() => "none".into(),
            CorsOrigins::List(l) => l.join(","),
        }
    }
}

/// Reads the allowlist: `CORS_ORIGINS` (comma-separated) wins over the file's
/// `cors_origins`; neither means the local development defaults.
pub fn read(
    file: Option<&[String]>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<CorsOrigins, ConfigError> {
    let from_env = env("CORS_ORIGINS").filter(|v| !v.trim().is_empty());
    let (key, entries): (&str, Vec<String>) = match (&from_env, file) {
        (Some(list), _) => (
            "CORS_ORIGINS",
            list.split(',').map(|s| s.trim().to_string()).collect(),
        ),
        (None, Some(list)) => ("cors_origins", list.to_vec()),
        (None, None) => {
            return Ok(CorsOrigins::List(
                DEFAULT_CORS_ORIGINS.iter().map(|s| s.to_string()).collect(),
            ));
        }
    };
    let name = |i: usize| {
        if key == "CORS_ORIGINS" {
            key.to_string()
        } else {
            format!("{key}[{i}]")
        }
    };
    if entries.iter().any(|e| e == "*") {
        if entries.len() > 1 {
            return Err(err(
                key,
                "\"*\" (any origin) must be the only entry; list origins or use \"*\" alone",
            ));
        }
        return Ok(CorsOrigins::Any);
    }
    let mut out: Vec<String> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let origin = parse_origin(entry).map_err(|why| err(name(i), why))?;
        if !out.contains(&origin) {
            out.push(origin);
        }
    }
    Ok(CorsOrigins::List(out))
}

/// An origin exactly as browsers send it in `Origin`: `http(s)://host[:port]`, lower
/// case, no default port, no path, no trailing slash.
fn parse_origin(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text).map_err(|e| {
        format!("{text:?} is not an origin ({e}); write scheme://host[:port], e.g. https://portal.example.org")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{text:?} is not an http or https origin"));
    }
    let origin = url.origin().ascii_serialization();
    if origin != text {
        return Err(format!(
            "{text:?} is not an origin as a browser sends it (no path, no trailing slash, lower case, no default port); write {origin:?}"
        ));
    }
    Ok(origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_env_wins_and_star_alone_means_any() {
        assert_eq!(
            read(None, &no_env).unwrap(),
            CorsOrigins::List(DEFAULT_CORS_ORIGINS.map(String::from).to_vec())
        );
        let file = vec!["https://portal.example.org".to_string()];
        assert_eq!(
            read(Some(&file), &no_env).unwrap(),
            CorsOrigins::List(file.clone())
        );
        let env = |k: &str| {
            (k == "CORS_ORIGINS").then(|| " https://a.example , http://localhost:8081 ".into())
        };
        assert_eq!(
            read(Some(&file), &env).unwrap(),
            CorsOrigins::List(vec![
                "https://a.example".into(),
                "http://localhost:8081".into()
            ])
        );
        let blank = |k: &str| (k == "CORS_ORIGINS").then(|| "  ".to_string());
        assert_eq!(
            read(Some(&file), &blank).unwrap(),
            CorsOrigins::List(file.clone())
        );
        assert_eq!(
            read(Some(&["*".to_string()]), &no_env).unwrap(),
            CorsOrigins::Any
        );
        assert_eq!(read(Some(&[]), &no_env).unwrap(), CorsOrigins::List(vec![]));
    }

    #[test]
    fn invalid_origins_are_refused_naming_the_key() {
        for (entry, hint) in [
            ("localhost:3000", "not an http or https origin"),
            ("portal.example.org", "not an origin"),
            (
                "https://portal.example.org/",
                "write \"https://portal.example.org\"",
            ),
            ("https://Portal.example.org", "lower case"),
            ("https://portal.example.org:443", "default port"),
            ("https://portal.example.org/app", "no path"),
            ("ftp://portal.example.org", "not an http or https origin"),
        ] {
            let file = vec!["http://localhost:3000".to_string(), entry.to_string()];
            let e = read(Some(&file), &no_env).unwrap_err();
            assert_eq!(e.key, "cors_origins[1]", "{entry}");
            assert!(e.message.contains(hint), "{entry}: {}", e.message);
        }
        let env = |k: &str| (k == "CORS_ORIGINS").then(|| "http://ok.example,nope".to_string());
        assert_eq!(read(None, &env).unwrap_err().key, "CORS_ORIGINS");
        let mixed = vec!["*".to_string(), "https://a.example".to_string()];
        assert_eq!(read(Some(&mixed), &no_env).unwrap_err().key, "cors_origins");
    }
}
