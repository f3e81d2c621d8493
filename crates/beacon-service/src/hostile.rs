//! Hostile inputs for the HTTP fuzz tests of both services (feature `hostile`, dev
//! only): strings with NUL, lone surrogates, bidi controls, SQL and markup; JSON values
//! that parsers find awkward; URL segments of arbitrary bytes; header values of
//! arbitrary legal bytes; and the verdict every answer must pass (no 5xx, and a 4xx is
//! `{"error", "error_code"}`).

use proptest::prelude::*;
use serde_json::Value;

/// Characters that broke or could break something: NUL and other controls, bidi
/// overrides, a BOM, quotes, markup, path and URL syntax, the last code point.
const NASTY_CHARS: &[char] = &[
    '\0',
    '\u{1}',
    '\u{7}',
    '\u{1b}',
    '\u{7f}',
    '\u{85}',
    '\u{202e}',
    '\u{2066}',
    '\u{200f}',
    '\u{feff}',
    '\u{fffd}',
    '\u{10ffff}',
    '"',
    '\'',
    '\\',
    '<',
    '>',
    '&',
    '/',
    '.',
    '%',
    '?',
    '#',
    ';',
    ' ',
    '\n',
    '\r',
    '\t',
    'a',
    'Z',
    '0',
    '-',
    '_',
    'é',
    '天',
];

/// Whole tokens worth trying as a value or inside one.
const NASTY_WORDS: &[&str] = &[
    "'; DROP TABLE jobs; --",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "%00",
    "${jndi:ldap://x}",
    "US",
    "eu-west",
    "math_basic",
    "llama3.2-1b",
    "v1",
    "10m",
    "NaN",
    "-1",
];

fn nasty_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::sample::select(NASTY_CHARS),
        1 => any::<char>(),
    ]
}

/// A Rust string (so it can sit inside a `serde_json::Value` and be signed) made of
/// nasty characters and words, sometimes long.
pub fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::collection::vec(nasty_char(), 0..24).prop_map(|c| c.into_iter().collect()),
        2 => proptest::sample::select(NASTY_WORDS).prop_map(str::to_string),
        1 => (nasty_char(), 1000usize..70_000).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
}

/// A JSON string literal, quotes included, that may hold escapes no Rust string can:
/// lone surrogates (`\ud800`, `\udfff`), a reversed pair, NUL as `\u0000`.
pub fn json_string_literal() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => nasty_string().prop_map(|s| {
            let quoted = Value::String(s).to_string();
            quoted[1..quoted.len() - 1].to_string()
        }),
        1 => proptest::sample::select(&[
            "\\ud800", "\\udfff", "\\udc00\\ud800", "\\ud83d\\ude00", "\\u0000", "\\u202e",
            "\\uffff", "\\x41", "\\", "\\u12",
        ][..])
        .prop_map(str::to_string),
    ];
    proptest::collection::vec(piece, 0..4).prop_map(|p| format!("\"{}\"", p.concat()))
}

/// JSON text for a value: strings as above, awkward numbers, nesting deeper than any
/// parser's limit, and some text that is not JSON at all.
pub fn json_value_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => json_string_literal(),
        2 => proptest::sample::select(&[
            "0", "-0", "1e400", "-1e400", "1e-400", "99999999999999999999999", "-1", "0.5",
            "1.7976931348623157e308", "true", "null", "[]", "{}", "[null]", "{\"\":null}",
            "NaN", "Infinity", "01", "1.", ".5", "", "]", "{", "\"unterminated",
        ][..])
        .prop_map(str::to_string),
        1 => (1usize..400).prop_map(|d| format!("{}{}", "[".repeat(d), "]".repeat(d))),
        1 => proptest::collection::vec(json_string_literal(), 0..4)
            .prop_map(|items| format!("[{}]", items.join(","))),
        1 => (json_string_literal(), json_string_literal())
            .prop_map(|(k, v)| format!("{{{k}:{v}}}")),
    ]
}

/// A parseable JSON value built from nasty strings (so it can be put into a spec and
/// signed, reaching the checks behind the signature).
pub fn nasty_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        4 => nasty_string().prop_map(Value::String),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((nasty_string(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// One URL path segment or query value: arbitrary bytes, percent-encoded where they
/// must be (so `%00`, `%FF`, `%2F`, `%2e%2e` and invalid UTF-8 all arrive).
pub fn url_segment() -> impl Strategy<Value = String> {
    let byte = prop_oneof![
        3 => proptest::sample::select(&b"\0\x01\x7f\xff\xfe\xc3\xa9/.%?#&=+ ;'\"<>\\aZ09-_"[..]),
        1 => any::<u8>(),
    ];
    prop_oneof![
        4 => proptest::collection::vec(byte, 0..24).prop_map(|b| percent_encode(&b)),
        1 => (1000usize..9000).prop_map(|n| "x".repeat(n)),
        1 => proptest::sample::select(&["..", ".", "%2e%2e", "%", "%zz", "%e2%80%ae"][..])
            .prop_map(str::to_string),
    ]
}

/// Percent-encodes every byte outside the unreserved set.
pub fn percent_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Bytes a header value may legally carry (visible ASCII, space, tab, obs-text): what a
/// hostile client can put in `Idempotency-Key`, `Authorization` or `traceparent`.
pub fn header_value() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        3 => 0x20u8..0x7f,
        1 => 0x80u8..=0xff,
        1 => Just(b'\t'),
    ];
    prop_oneof![
        4 => proptest::collection::vec(byte, 0..64),
        1 => (300usize..4000).prop_map(|n| vec![b'k'; n]),
    ]
}

/// The rule every answer of every route obeys: never a 5xx, and every 4xx is JSON with
/// a string `error` and an `error_code`. Returns what was wrong.
pub fn verdict(status: u16, content_type: &str, body: &[u8]) -> Result<(), String> {
    let text = || String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned();
    if status >= 500 {
        return Err(format!("status {status}: {}", text()));
    }
    if (400..500).contains(&status) {
        if !content_type.starts_with("application/json") {
            return Err(format!(
                "status {status} with content type {content_type:?}: {}",
                text()
            ));
        }
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| format!("status {status}: body is not JSON ({e}): {}", text()))?;
        let code = v.get("error_code").or_else(|| v.pointer("/error/code"));
        let message = v
            .get("error")
            .filter(|e| e.is_string())
            .or_else(|| v.pointer("/error/message"));
        if code.is_none_or(|c| !c.is_string()) || message.is_none() {
            return Err(format!("status {status}: no error/error_code: {}", text()));
        }
    }
    Ok(())
}

/// Runs `strategy`'s cases from a fixed seed (so CI is repeatable; `PROPTEST_CASES`
/// cases, default 400) through `send`, which answers (status, content type, body), and
/// checks each answer with [`verdict`] (no 5xx at all). Panics with the first failing
/// case, shrunk, cut to 600 characters.
pub fn check_every_answer<S>(strategy: &S, send: impl Fn(&S::Value) -> (u16, String, Vec<u8>))
where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
    let config = Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(400),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let result = runner.run(strategy, |case| {
        let (status, content_type, body) = send(&case);
        verdict(status, &content_type, &body).map_err(|e| {
            let case: String = format!("{case:?}").chars().take(600).collect();
            TestCaseError::fail(format!("{case}: {e}"))
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
