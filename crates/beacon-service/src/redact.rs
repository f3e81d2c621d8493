//! Connection strings shown to operators (startup log, diagnostics routes) without the
//! secrets they may carry, whatever form carries them: `user:password@` in the
//! authority, a token as the user name, `?password=`/`?token=`/`?sslpassword=` in the
//! query, a fragment, or a libpq key/value string (`host=db password=secret`).

/// Query and key/value parameters whose values are shown: they configure the connection
/// and never carry a credential. Every other value is replaced by `***`.
const SHOWN_PARAMS: [&str; 9] = [
    "host",
    "hostaddr",
    "port",
    "dbname",
    "sslmode",
    "mode",
    "cache",
    "connect_timeout",
    "application_name",
];

const HIDDEN: &str = "***";

/// A URL or libpq connection string with every credential replaced by `***`: the whole
/// user information (a user name can be a token), every query value not in a short list
/// of harmless connection settings, and the fragment.
pub fn connection_string(text: &str) -> String {
    match text.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", url_rest(rest)),
        None if text.contains('=') => key_values(text),
        // A bare path (a SQLite file) carries nothing secret.
        None => text.to_string(),
    }
}

/// The part of a URL after `scheme://`.
fn url_rest(rest: &str) -> String {
    let rest = rest.split('#').next().unwrap_or("");
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => before_query.split_at(i),
        None => (before_query, ""),
    };
    let host = match authority.rsplit_once('@') {
        Some((_, host)) => format!("{HIDDEN}@{host}"),
        None => authority.to_string(),
    };
    let mut out = format!("{host}{path}");
    if let Some(q) = query {
        out.push('?');
        let pairs: Vec<String> = q
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) => format!("{k}={}", shown(k, v)),
                // A bare word (`?s3cr3t`) could itself be the token.
                None => HIDDEN.to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

/// A libpq key/value string: `host=db user=app password=secret` (values may be quoted).
fn key_values(text: &str) -> String {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('\'') {
            // A quoted value ends at the next unescaped quote.
            let mut end = quoted.len();
            let mut escaped = false;
            for (i, c) in quoted.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '\'' if !escaped => {
                        end = i;
                        break;
                    }
                    _ => escaped = false,
                }
            }
            (&quoted[..end], quoted.get(end + 1..).unwrap_or(""))
        } else {
            match after.find(char::is_whitespace) {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            }
        };
        out.push(format!("{key}={}", shown(key, value)));
        rest = next.trim_start();
    }
    out.join(" ")
}

fn shown<'a>(key: &str, value: &'a str) -> &'a str {
    if SHOWN_PARAMS
        .iter()
        .any(|k| k.eq_ignore_ascii_case(key.trim()))
    {
        value
    } else {
        HIDDEN
    }
}

#[cfg(test)]
mod tests {
    use super::connection_string as c;

    #[test]
    fn credentials_in_any_url_form_are_hidden() {
        assert_eq!(
            c("postgres://app:s3cret@db:5432/beacon"),
            "postgres://***@db:5432/beacon"
        );
        assert_eq!(
            c("https://t0ken@router.example/path"),
            "https://***@router.example/path"
        );
        assert_eq!(
            c("https://alice:pw@r.example:8/x?token=t0k&sslmode=require&x#frag"),
            "https://***@r.example:8/x?token=***&sslmode=require&***"
        );
        assert_eq!(
            c("postgres://db/beacon?user=app&password=s3cret&sslmode=disable"),
            "postgres://db/beacon?user=***&password=***&sslmode=disable"
        );
        assert_eq!(c("http://router:8000"), "http://router:8000");
        assert_eq!(
            c("sqlite://beacon.db?mode=rwc"),
            "sqlite://beacon.db?mode=rwc"
        );
        assert_eq!(c("beacon.db"), "beacon.db");
        // An `@` inside the password: the host is what follows the last one.
        assert_eq!(c("postgres://u:p@ss@h/db"), "postgres://***@h/db");
    }

    #[test]
    fn libpq_key_value_strings_hide_passwords() {
        assert_eq!(
            c("host=db port=5432 dbname=beacon user=app password=s3cret"),
            "host=db port=5432 dbname=beacon user=*** password=***"
        );
        assert_eq!(
            c("host=db password='with space \\' quote' sslmode=require"),
            "host=db password=*** sslmode=require"
        );
    }
}
