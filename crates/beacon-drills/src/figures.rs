//! A drill's figures as a short two-column table, written straight to the process's
//! stderr: libtest captures `println!`/`eprintln!` of passing tests, and the figures are
//! the point of running a drill.

use std::io::Write as _;

/// Prints `rows` under `drill` as `name  value` lines.
pub fn print_figures(drill: &str, rows: &[(&str, String)]) {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut text = format!("\n== drill: {drill}\n");
    for (k, v) in rows {
        text.push_str(&format!("  {k:<width$}  {v}\n"));
    }
    let _ = std::io::stderr().write_all(text.as_bytes());
}
