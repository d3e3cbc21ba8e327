//! Reading criterion's stored estimates, so benches can print ratios after their report.

use std::path::PathBuf;

/// Median time in milliseconds of `group/function` from criterion's `estimates.json`.
pub fn median_ms(group: &str, function: &str) -> Option<f64> {
    let dir = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("target"));
    let text = std::fs::read_to_string(
        dir.join("criterion")
            .join(group)
            .join(function)
            .join("new/estimates.json"),
    )
    .ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(json["median"]["point_estimate"].as_f64()? / 1e6)
}
