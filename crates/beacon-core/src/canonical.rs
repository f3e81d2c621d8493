//! Canonical JSON text exactly as the portal's signing code produces it.
//!
//! The portal signs `JSON.stringify(sortKeysRecursively(spec))`. That is RFC 8785 (JCS)
//! in every respect the fixtures exercise: keys sorted by UTF-16 code units, numbers in
//! ECMAScript `Number#toString` form, strings escaped the `JSON.stringify` way and
//! non-ASCII left as is. One difference is kept on purpose: a JavaScript object lists
//! array-index keys (`"0"`, `"17"`) first, in numeric order, whatever order they were
//! inserted in, so a sorted object holding such keys serialises them that way. JCS
//! would not; the portal does, and the portal is what signs (see docs/signing.md).

use std::cmp::Ordering;
use std::fmt::Write;

use serde_json::{Map, Number, Value};

/// Serialises `value` to its canonical text.
pub fn to_canonical_string(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

fn write_object(out: &mut String, map: &Map<String, Value>) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by(|a, b| js_property_order(a, b));
    out.push('{');
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        if let Some(v) = map.get(*key) {
            write_value(out, v);
        }
    }
    out.push('}');
}

/// Order of own properties of a JavaScript object built from sorted keys: array
/// indices ascending by value, then the other keys by UTF-16 code units.
fn js_property_order(a: &str, b: &str) -> Ordering {
    match (array_index(a), array_index(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.encode_utf16().cmp(b.encode_utf16()),
    }
}

/// An ECMAScript array index: the canonical decimal form of an integer in [0, 2^32 - 2].
fn array_index(key: &str) -> Option<u32> {
    if key.is_empty() || key.len() > 10 || (key.len() > 1 && key.starts_with('0')) {
        return None;
    }
    if !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse::<u64>()
        .ok()
        .filter(|v| *v < u64::from(u32::MAX))
        .and_then(|v| u32::try_from(v).ok())
}

/// Escapes like `JSON.stringify`: the two mandatory escapes, the short forms for
/// control characters that have one, `\u00xx` (lower-case hex) for the rest below
/// U+0020, everything else (including U+2028) verbatim.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{0c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Numbers as JavaScript prints them. JSON numbers are IEEE doubles in JavaScript, so
/// every number is first the double `JSON.parse` would make of its text: integers
/// beyond 2^53 (serde_json keeps u64/i64 exactly) are rounded to the nearest double as
/// the browser rounds them (`9007199254740993` → `9007199254740992`), and decimals are
/// parsed correctly rounded (the workspace enables serde_json's `float_roundtrip`; its
/// default fast path is off by one ulp for some texts, e.g. `1.602176634e-19`).
fn write_number(out: &mut String, n: &Number) {
    match n.as_f64() {
        // `as f64` on u64/i64 rounds to nearest, ties to even: what JavaScript does.
        Some(f) => out.push_str(&js_number_to_string(f)),
        // Unreachable without serde_json's arbitrary_precision; keep the text as given.
        None => out.push_str(&n.to_string()),
    }
}

/// ECMAScript `Number::toString(x)` for finite doubles (ECMA-262, 6.1.6.1.20).
pub fn js_number_to_string(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        // JSON has no NaN or infinity; -0 prints as "0" in JavaScript.
        return "0".to_string();
    }
    if x < 0.0 {
        return format!("-{}", js_number_to_string(-x));
    }
    let (digits, n) = shortest_digits(x);
    let k = digits.len() as i32;
    // value = 0.d1d2…dk × 10^n; the layout rules of the spec, step by step.
    if k <= n && n <= 21 {
        let mut s = digits;
        s.extend(std::iter::repeat_n('0', (n - k) as usize));
        s
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(n as usize);
        format!("{int}.{frac}")
    } else if -6 < n && n <= 0 {
        format!("0.{}{}", "0".repeat((-n) as usize), digits)
    } else {
        let sign = if n - 1 < 0 { '-' } else { '+' };
        let e = (n - 1).abs();
        if k == 1 {
            format!("{digits}e{sign}{e}")
        } else {
            let (first, rest) = digits.split_at(1);
            format!("{first}.{rest}e{sign}{e}")
        }
    }
}

/// The digits ECMAScript asks for (the fewest that round-trip; of those, the closest to
/// `x`; of two equally close, the even one) and the decimal exponent `n` such that
/// `x = 0.d1d2…dk × 10^n`, for a finite `x > 0`.
///
/// Ryu makes exactly that choice, ties included. Rust's own `{:e}` does not always:
/// 816838353447964.25 lies halfway between the 16-digit candidates …964.2 and …964.3;
/// JavaScript prints the even one (…964.2), `{:e}` the other.
fn shortest_digits(x: f64) -> (String, i32) {
    let mut buffer = ryu::Buffer::new();
    // Ryu writes "1e21", "1.5e-7", "0.001" or "123.0": a mantissa, maybe an exponent.
    let text = buffer.format_finite(x);
    let (mantissa, exp) = text.split_once('e').unwrap_or((text, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all: String = int.chars().chain(frac.chars()).collect();
    let leading = all.len() - all.trim_start_matches('0').len();
    let digits = all
        .trim_start_matches('0')
        .trim_end_matches('0')
        .to_string();
    // The decimal point sits after `int`; each leading zero moves the first digit right.
    let n = int.len() as i32 + exp - leading as i32;
    if digits.is_empty() {
        return ("0".to_string(), 1);
    }
    (digits, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // The tie cases are written exactly (…964.25 is the double itself); clippy's
    // shorter suggestion would be Rust's tie choice, the very thing under test.
    #[allow(clippy::excessive_precision)]
    #[test]
    fn numbers_print_like_javascript() {
        for (x, want) in [
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (0.1, "0.1"),
            (-0.5, "-0.5"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (123.456, "123.456"),
            (600000000000.0, "600000000000"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (9007199254740993.0, "9007199254740992"),
            (0.67, "0.67"),
            (816838353447964.25, "816838353447964.2"),
            (97452501062780.125, "97452501062780.12"),
            (1.602176634e-19, "1.602176634e-19"),
            (0.001, "0.001"),
            (123.0, "123"),
            (1e-6, "0.000001"),
            (12345678901234567890.0, "12345678901234567000"),
        ] {
            assert_eq!(js_number_to_string(x), want, "{x:e}");
        }
    }

    #[test]
    fn keys_sort_by_utf16_with_array_indices_first() {
        let v = json!({"b": 1, "a": [3, {"z": null, "y": false}], "B": "", "é": 0, "10": 1, "9": 2, "01": 3, "\u{1F600}": 4, "\u{FF61}": 5});
        assert_eq!(
            to_canonical_string(&v),
            "{\"9\":2,\"10\":1,\"01\":3,\"B\":\"\",\"a\":[3,{\"y\":false,\"z\":null}],\"b\":1,\"é\":0,\"\u{1F600}\":4,\"\u{FF61}\":5}"
        );
    }

    #[test]
    fn strings_escape_like_json_stringify() {
        let v = json!("q\"b\\s\u{08}\u{0c}\n\r\t\u{01}\u{1f}\u{7f}\u{2028}天");
        assert_eq!(
            to_canonical_string(&v),
            "\"q\\\"b\\\\s\\b\\f\\n\\r\\t\\u0001\\u001f\u{7f}\u{2028}天\""
        );
    }
}
