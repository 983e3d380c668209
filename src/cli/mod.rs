//! Parts of the `edge-ssl` command that are too large for `main.rs`.

pub mod user;

/// A JSON number, or `null` for NaN and infinities.
pub fn json_num(v: f64) -> String {
    if v.is_finite() { format!("{v:.6}") } else { "null".into() }
}
