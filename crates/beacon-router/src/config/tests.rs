//! Unit tests of configuration parsing and validation.

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

const ONE: &str = r#"
    listen = "127.0.0.1:0"
    auth.allow_unauthenticated = true
    [[providers]]
    name = "sim-eu-west"
    kind = "modal"
    region = "EU"
    url = "http://127.0.0.1:9/"
    models = ["llama3.2-1b", "mistral-7b"]
"#;

#[test]
fn a_minimal_file_reads_with_defaults() {
    let c = Config::from_toml(ONE, &no_env).unwrap();
    let p = &c.providers[0];
    assert_eq!(
        (p.region.as_str(), p.probe_model.as_str()),
        ("eu-west", "llama3.2-1b")
    );
    assert_eq!(c.health.unhealthy_after, 3);
    assert!(c.admin_token.is_none());
    // No provider URL (the CORS origins are public: every CORS answer names them).
    assert!(
        !c.summary().contains("http://127.0.0.1:9"),
        "{}",
        c.summary()
    );
}

#[test]
fn the_deploy_example_is_valid() {
    let text = include_str!("../../../../deploy/router.example.toml");
    let env = |k: &str| {
        matches!(
            k,
            "ROUTER_ADMIN_TOKEN" | "MODAL_TOKEN" | "ROUTER_INFERENCE_TOKEN"
        )
        .then(|| "t0123456789abcdef".to_string())
    };
    let c = Config::from_toml(text, &env).unwrap();
    assert!(matches!(c.inference_auth, InferenceAuth::Tokens(_)));
    let regions: Vec<String> = c.regions().iter().map(|r| r.to_string()).collect();
    assert_eq!(regions, ["us-east", "eu-west", "asia-pacific"]);
    assert!(
        Config::from_toml(text, &no_env).is_err(),
        "tokens are required"
    );
}

#[test]
fn port_overrides_the_listen_port() {
    let env = |k: &str| (k == "PORT").then(|| "8123".to_string());
    assert_eq!(Config::from_toml(ONE, &env).unwrap().listen.port(), 8123);
}

#[test]
fn refusals_name_the_key() {
    let cases = [
        (format!("{ONE}\ncolour = 1"), "line"),
        (
            ONE.replace("kind = \"modal\"", "kind = \"modal\"\nsurprise = true"),
            "line",
        ),
        (
            "listen = \"127.0.0.1:0\"\nauth.allow_unauthenticated = true".to_string(),
            "providers",
        ),
        (
            format!("{ONE}\n[idempotency]\nmax_bytes = 0\n"),
            "idempotency.max_bytes",
        ),
        (
            format!("{ONE}\n[idempotency]\nttl = \"0s\"\n"),
            "idempotency.ttl",
        ),
        (
            format!("{ONE}{}", &ONE[ONE.find("[[providers]]").unwrap()..]),
            "providers[1].name",
        ),
        (
            ONE.replace("region = \"EU\"", "region = \"Mars Base\""),
            "providers[0].region",
        ),
        (
            ONE.replace("[\"llama3.2-1b\", \"mistral-7b\"]", "[]"),
            "providers[0].models",
        ),
        (
            ONE.replace("models =", "auth_header_env = \"NOPE_TOKEN\"\nmodels ="),
            "providers[0].auth_header_env",
        ),
        (
            format!("admin_token_env = \"NOPE_ADMIN\"\n{ONE}"),
            "admin_token_env",
        ),
        (
            ONE.replace("http://127.0.0.1:9/", "http://u:p@127.0.0.1:9/"),
            "providers[0].url",
        ),
        (
            ONE.replace("models =", "probe_model = \"qwen\"\nmodels ="),
            "providers[0].probe_model",
        ),
        (
            format!("{ONE}\n[limits]\nmax_response_bytes = 0\n"),
            "limits.max_response_bytes",
        ),
        (
            format!("{ONE}\n[limits]\nmax_request_bytes = 0\n"),
            "limits.max_request_bytes",
        ),
        (
            ONE.replace("models =", "max_response_bytes = 0\nmodels ="),
            "providers[0].max_response_bytes",
        ),
        (
            ONE.replace("models =", "max_response_bytes = 2000000000\nmodels ="),
            "providers[0].max_response_bytes",
        ),
        (
            format!("cors_origins = [\"https://portal.example.org/\"]\n{ONE}"),
            "cors_origins[0]",
        ),
        (
            format!("cors_origins = \"https://portal.example.org\"\n{ONE}"),
            "line",
        ),
    ];
    for (text, key) in cases {
        let e = Config::from_toml(&text, &no_env).unwrap_err();
        assert!(e.key.starts_with(key), "want {key}, got {e}");
    }
}

#[test]
fn env_names_resolve_and_models_may_map_to_upstream_names() {
    let text = ONE
        .replace("models = [\"llama3.2-1b\", \"mistral-7b\"]", "models = { \"llama3.2-1b\" = \"meta-llama/Llama-3.2-1B-Instruct\" }\nauth_header_env = \"EU_TOKEN\"");
    let env = |k: &str| (k == "EU_TOKEN").then(|| "s3cret".to_string());
    let c = Config::from_toml(&text, &env).unwrap();
    assert_eq!(
        c.providers[0].upstream_model("llama3.2-1b"),
        Some("meta-llama/Llama-3.2-1B-Instruct")
    );
    assert_eq!(c.providers[0].auth_token.as_deref(), Some("s3cret"));
    assert!(!format!("{c:?} {:?}", c.providers[0]).contains("s3cret"));
}

#[test]
fn byte_limits_default_and_a_provider_may_override_them() {
    let c = Config::from_toml(ONE, &no_env).unwrap();
    assert_eq!(c.limits.max_request_bytes, 1024 * 1024);
    assert_eq!(c.providers[0].max_response_bytes, 1024 * 1024);
    // `[limits]` last: keys after a table header belong to that table.
    let text = format!(
        "{ONE}{}\n[limits]\nmax_response_bytes = 1000\nmax_request_bytes = 2000\n",
        ONE[ONE.find("[[providers]]").unwrap()..]
            .replace("sim-eu-west", "other")
            .replace("models =", "max_response_bytes = 5000\nmodels =")
    );
    let c = Config::from_toml(&text, &no_env).unwrap();
    assert_eq!(c.limits.max_request_bytes, 2000);
    let limits: Vec<u64> = c.providers.iter().map(|p| p.max_response_bytes).collect();
    assert_eq!(limits, [1000, 5000]);
    assert!(c.summary().contains("max_response_bytes=5000"));
    let unknown = format!("{ONE}\n[limits]\nmax_body = 1\n");
    assert!(Config::from_toml(&unknown, &no_env).is_err());
}

#[test]
fn cors_origins_default_to_local_development_and_show_in_the_summary() {
    let c = Config::from_toml(ONE, &no_env).unwrap();
    assert_eq!(
        c.cors_origins,
        CorsOrigins::List(DEFAULT_CORS_ORIGINS.map(String::from).to_vec())
    );
    assert!(
        c.summary().contains("cors=http://localhost:3000,"),
        "{}",
        c.summary()
    );
    let env = |k: &str| (k == "CORS_ORIGINS").then(|| "localhost:3000".to_string());
    let e = Config::from_toml(ONE, &env).unwrap_err();
    assert_eq!(e.key, "CORS_ORIGINS", "{e}");
}

/// Without tokens (`ONE` minus its `auth` line).
fn without_auth() -> String {
    ONE.replace("auth.allow_unauthenticated = true", "")
}

#[test]
fn inference_needs_a_token_unless_unauthenticated_use_is_stated() {
    // Neither a token nor allow_unauthenticated: a configuration error naming the key.
    let e = Config::from_toml(&without_auth(), &no_env).unwrap_err();
    assert_eq!(e.key, "auth.inference_token_env", "{e}");
    assert!(e.message.contains("allow_unauthenticated"), "{e}");
    let with_env = format!(
        "{}\n[auth]\ninference_token_env = \"ROUTER_INFERENCE_TOKEN\"\n",
        without_auth()
    );
    // Named but not set.
    let e = Config::from_toml(&with_env, &no_env).unwrap_err();
    assert_eq!(e.key, "auth.inference_token_env", "{e}");
    assert!(e.message.contains("ROUTER_INFERENCE_TOKEN"), "{e}");
    // Too short to be a secret.
    let short = |k: &str| (k == "ROUTER_INFERENCE_TOKEN").then(|| "abc".to_string());
    let e = Config::from_toml(&with_env, &short).unwrap_err();
    assert_eq!(e.key, "auth.inference_token_env", "{e}");
    // Both: a contradiction.
    let both = format!("{with_env}allow_unauthenticated = true\n");
    let e = Config::from_toml(&both, &no_env).unwrap_err();
    assert_eq!(e.key, "auth.allow_unauthenticated", "{e}");
    // Two tokens (rotation); neither appears in the summary or Debug.
    let two = |k: &str| {
        (k == "ROUTER_INFERENCE_TOKEN")
            .then(|| " old-token-0123456789 , new-token-0123456789 ".to_string())
    };
    let c = Config::from_toml(&with_env, &two).unwrap();
    let InferenceAuth::Tokens(tokens) = &c.inference_auth else {
        panic!("tokens expected")
    };
    assert_eq!(tokens, &["old-token-0123456789", "new-token-0123456789"]);
    let shown = format!("{} {c:?} {:?}", c.summary(), c.inference_auth);
    assert!(!shown.contains("token-0123456789"), "{shown}");
    assert!(
        shown.contains("inference_auth=bearer(2 token(s))"),
        "{shown}"
    );
    // Stated unauthenticated use.
    let c = Config::from_toml(ONE, &no_env).unwrap();
    assert!(matches!(c.inference_auth, InferenceAuth::Open));
}

#[test]
fn the_idempotency_cache_defaults_to_ten_minutes_and_64_mib() {
    let c = Config::from_toml(ONE, &no_env).unwrap();
    assert_eq!(c.idempotency.ttl, Duration::from_secs(600));
    assert_eq!(c.idempotency.max_bytes, 64 * 1024 * 1024);
    let text = format!("{ONE}\n[idempotency]\nttl = \"30s\"\nmax_bytes = 1000000\n");
    let c = Config::from_toml(&text, &no_env).unwrap();
    assert_eq!(
        (c.idempotency.ttl, c.idempotency.max_bytes),
        (Duration::from_secs(30), 1_000_000)
    );
}

fn health(interval: &str, skip: Option<&str>) -> String {
    let skip = skip.map_or(String::new(), |s| {
        format!("skip_probe_if_live_success_within = \"{s}\"\n")
    });
    format!(
        "listen = \"127.0.0.1:0\"\nauth.allow_unauthenticated = true\n[health]\nprobe_interval = \"{interval}\"\n{skip}[[providers]]\nname = \"p\"\nkind = \"modal\"\nregion = \"eu-west\"\nurl = \"http://127.0.0.1:9/\"\nmodels = [\"llama3.2-1b\"]\n"
    )
}

#[test]
fn a_probe_skip_longer_than_the_probe_interval_is_clamped_naming_the_key() {
    use std::time::Duration;
    let skip = |interval: &str, skip: Option<&str>| {
        Config::from_toml(&health(interval, skip), &no_env)
            .unwrap()
            .health
            .skip_probe_if_live_success_within
    };
    // The defaults are coherent and kept.
    assert_eq!(skip("30s", None), Duration::from_secs(30));
    assert_eq!(skip("30s", Some("10s")), Duration::from_secs(10));
    // The demo's 10 s interval and the tests' 2 s still start, with the skip clamped
    // below the staleness window (3 x probe_interval).
    assert_eq!(skip("10s", None), Duration::from_secs(10));
    assert_eq!(skip("2s", Some("30s")), Duration::from_secs(2));
    assert_eq!(skip("200ms", Some("1h")), Duration::from_millis(200));

    let mut h = HealthConfig {
        probe_interval: Duration::from_secs(2),
        skip_probe_if_live_success_within: Duration::from_secs(30),
        ..HealthConfig::default()
    };
    let warning = coherent_skip(&mut h).unwrap();
    assert!(
        warning.contains("health.skip_probe_if_live_success_within") && warning.contains("2s"),
        "{warning}"
    );
    assert!(h.skip_probe_if_live_success_within < h.probe_interval * 3);
    assert!(
        coherent_skip(&mut h).is_none(),
        "a coherent value stays quiet"
    );
}
