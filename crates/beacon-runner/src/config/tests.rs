//! The configuration rules, one test per rule: env over file, aliases, secrets never shown.

use super::*;

fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |k| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    }
}

#[test]
fn router_url_is_required_and_named() {
    let e = Config::from_toml("", &env_of(&[])).unwrap_err();
    assert_eq!(e.key, "ROUTER_URL");
    assert!(e.message.contains("no fallback executor"));
}

#[test]
fn aliases_work_and_conflicts_name_both_keys() {
    let c = Config::from_toml("", &env_of(&[("HYBRID_BASE", "http://r:8000")])).unwrap();
    assert_eq!(c.router_url.as_str(), "http://r:8000/");
    assert_eq!(c.router_url_source, "HYBRID_BASE");
    let same = env_of(&[
        ("ROUTER_URL", "http://r:8000/"),
        ("HYBRID_BASE", "http://r:8000"),
    ]);
    assert!(Config::from_toml("", &same).is_ok());
    let e = Config::from_toml(
        "",
        &env_of(&[
            ("ROUTER_URL", "http://a"),
            ("HYBRID_ROUTER_URL", "http://b"),
        ]),
    )
    .unwrap_err();
    assert_eq!(e.key, "ROUTER_URL/HYBRID_ROUTER_URL");
    let e = Config::from_toml(
        "",
        &env_of(&[("ROUTER_URL", "http://a"), ("HYBRID_TIMEOUT", "soon")]),
    )
    .unwrap_err();
    assert_eq!(e.key, "HYBRID_TIMEOUT");
}

#[test]
fn defaults_env_overrides_and_strictness() {
    let c = Config::from_toml(
        "",
        &env_of(&[
            ("ROUTER_URL", "http://r"),
            ("PORT", "9999"),
            ("ROUTER_TIMEOUT", "30"),
        ]),
    )
    .unwrap();
    assert_eq!(c.database_url, "sqlite://beacon.db");
    assert_eq!(c.listen.port(), 9999);
    assert_eq!(c.router_timeout, Duration::from_secs(30));
    assert_eq!(c.signatures.policy, SignaturePolicy::Required);
    let e = Config::from_toml("colour = 1", &env_of(&[("ROUTER_URL", "http://r")])).unwrap_err();
    assert!(e.key.starts_with("line"));
    let e = Config::from_toml(
        "",
        &env_of(&[("ROUTER_URL", "http://r"), ("DATABASE_URL", "mysql://x")]),
    )
    .unwrap_err();
    assert_eq!(e.key, "DATABASE_URL");
    let e = Config::from_toml(
        "",
        &env_of(&[("ROUTER_URL", "http://r"), ("RUNNER_SIGNING_KEY", "nope")]),
    )
    .unwrap_err();
    assert_eq!(e.key, "RUNNER_SIGNING_KEY");
    let e = Config::from_toml(
        "[scheduler]\nheartbeat = \"1m\"",
        &env_of(&[("ROUTER_URL", "http://r")]),
    )
    .unwrap_err();
    assert_eq!(e.key, "scheduler.heartbeat");
}

#[test]
fn the_router_token_comes_from_router_token_or_the_named_variable_and_is_never_shown() {
    let c = Config::from_toml("", &env_of(&[("ROUTER_URL", "http://r")])).unwrap();
    assert!(c.router_token.is_none());
    assert!(c.summary().contains("router_token=not set"));
    let c = Config::from_toml(
        "",
        &env_of(&[("ROUTER_URL", "http://r"), ("ROUTER_TOKEN", "s3cret-token")]),
    )
    .unwrap();
    assert_eq!(c.router_token.as_deref(), Some("s3cret-token"));
    let shown = format!("{} {c:?}", c.summary());
    assert!(
        shown.contains("router_token=set") && !shown.contains("s3cret"),
        "{shown}"
    );
    let file = "router_token_env = \"RAILWAY_ROUTER_TOKEN\"";
    let e = Config::from_toml(file, &env_of(&[("ROUTER_URL", "http://r")])).unwrap_err();
    assert_eq!(e.key, "router_token_env", "{e}");
    let c = Config::from_toml(
        file,
        &env_of(&[
            ("ROUTER_URL", "http://r"),
            ("RAILWAY_ROUTER_TOKEN", "from-file-var"),
        ]),
    )
    .unwrap();
    assert_eq!(c.router_token.as_deref(), Some("from-file-var"));
    let e = Config::from_toml(
        "",
        &env_of(&[("ROUTER_URL", "http://r"), ("ROUTER_TOKEN", "two words")]),
    )
    .unwrap_err();
    assert_eq!(e.key, "ROUTER_TOKEN", "{e}");
}

#[test]
fn the_deploy_example_is_valid() {
    let text = include_str!("../../../../deploy/runner.example.toml");
    let c = Config::from_toml(text, &env_of(&[("ROUTER_URL", "http://r")])).unwrap();
    assert_eq!(c.scheduler.max_concurrency_per_region, 6);
}

#[test]
fn summary_has_no_secrets() {
    let c = Config::from_toml(
        "",
        &env_of(&[
            (
                "ROUTER_URL",
                "https://alice:pa55@router.example/base?token=t0ken",
            ),
            (
                "DATABASE_URL",
                "postgres://u:hunter2@db/beacon?password=qwerty&sslmode=require",
            ),
            ("RUNNER_ADMIN_TOKEN", "tok-123"),
            ("RUNNER_CONTROL_TOKEN", "ctl-456"),
            ("ROUTER_TOKEN", "router-token-789"),
        ]),
    )
    .unwrap();
    let s = c.summary();
    for secret in [
        "hunter2", "qwerty", "tok-123", "ctl-456", "alice", "pa55", "t0ken",
    ] {
        assert!(!s.contains(secret), "{secret} in {s}");
    }
    assert!(
        s.contains("postgres://***@db/beacon?password=***&sslmode=require"),
        "{s}"
    );
    assert!(
        s.contains("https://***@router.example/base?token=***"),
        "{s}"
    );
}

#[test]
fn the_judge_is_off_by_default_and_checked_when_on() {
    let url = env_of(&[("ROUTER_URL", "http://r:8000")]);
    let c = Config::from_toml("", &url).unwrap();
    assert!(!c.judge.enabled);
    assert_eq!(c.judge.target(), None);
    assert_eq!((c.judge.max_concurrency, c.judge.max_tokens), (4, 16));
    assert!(c.summary().contains("judge=off"));

    for (toml_text, key) in [
        ("[judge]\nenabled = true\nregion = \"EU\"\n", "judge.model"),
        (
            "[judge]\nenabled = true\nmodel = \" \"\nregion = \"EU\"\n",
            "judge.model",
        ),
        ("[judge]\nenabled = true\nmodel = \"m\"\n", "judge.region"),
        (
            "[judge]\nenabled = true\nmodel = \"m\"\nregion = \"mars-base\"\n",
            "judge.region",
        ),
        (
            "[judge]\nenabled = true\nmodel = \"m\"\nregion = \"EU\"\nmax_concurrency = 0\n",
            "judge.max_concurrency",
        ),
    ] {
        let e = Config::from_toml(toml_text, &url).unwrap_err();
        assert_eq!(e.key, key, "{toml_text}");
    }
    let e = Config::from_toml("[judge]\nenabled = true\nmodle = \"m\"\n", &url).unwrap_err();
    assert!(e.to_string().contains("modle"), "{e}");

    let c = Config::from_toml(
        "[judge]\nenabled = true\nmodel = \"mistral-7b\"\nregion = \"EU\"\nmax_concurrency = 2\n",
        &url,
    )
    .unwrap();
    assert_eq!(c.judge.target(), Some(("mistral-7b", "eu-west")));
    assert_eq!(c.judge.max_concurrency, 2);
    assert!(
        c.summary().contains("judge=mistral-7b@eu-west"),
        "{}",
        c.summary()
    );
}
