//! The rows of `curvature bench`: one [`BenchRow`] per measurement, as a text table and as
//! the CSV shared with `benches/pytorch/bench.py`.

use std::fmt::Write as _;

use serde::Serialize;

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    /// Model name.
    pub model: String,
    /// Number of parameters `P`.
    pub params: usize,
    /// Operation (see the module docs).
    pub operation: String,
    /// Median milliseconds (or the estimate's milliseconds for `estimate` rows).
    pub ms: f64,
    /// `ms` divided by the baseline's (`gradient` for curvature rows, `sgd step` for
    /// optimiser rows); 1 for the baselines themselves.
    pub ratio: Option<f64>,
    /// What `ratio` divides by.
    pub baseline: &'static str,
    /// Free-form detail (throughput, memory, how an estimate was made).
    pub note: String,
    /// Milliseconds of the first (untimed) call: kernel compilation and autotuning on a GPU.
    pub first_ms: Option<f64>,
}

/// `x` with at least three significant digits, without exponent: `109423`, `476`, `12.3`,
/// `0.742` (a throughput of under one image per second still reads).
pub fn three_digits(x: f64) -> String {
    let decimals = if x.is_finite() && x > 0.0 {
        (2 - x.log10().floor() as i64).clamp(0, 12) as usize
    } else {
        0
    };
    format!("{x:.decimals$}")
}

/// The CSV columns shared with `benches/pytorch/bench.py`.
pub const CSV_HEADER: [&str; 8] = [
    "model",
    "params",
    "operation",
    "ms",
    "ratio",
    "baseline",
    "note",
    "first_ms",
];

/// The rows as CSV (header [`CSV_HEADER`]).
pub fn to_csv(rows: &[BenchRow]) -> String {
    let table: Vec<Vec<String>> =
        std::iter::once(CSV_HEADER.iter().map(|h| h.to_string()).collect())
            .chain(rows.iter().map(|r| {
                vec![
                    r.model.clone(),
                    r.params.to_string(),
                    r.operation.clone(),
                    format!("{:.4}", r.ms),
                    r.ratio.map(|x| format!("{x:.3}")).unwrap_or_default(),
                    r.baseline.to_string(),
                    r.note.clone(),
                    r.first_ms.map(|x| format!("{x:.1}")).unwrap_or_default(),
                ]
            }))
            .collect();
    let bytes = crate::csv_table::to_bytes(std::path::Path::new("bench.csv"), &table)
        .expect("rows of one width");
    String::from_utf8(bytes).expect("UTF-8 fields")
}

/// The header line of [`table_row`]'s table.
pub fn table_header() -> String {
    format!(
        "{:<14} {:>11} {:<34} {:>12} {:>8}  {}",
        "model", "P", "operation", "ms", "ratio", "note"
    )
}

/// One row of the text table.
pub fn table_row(r: &BenchRow) -> String {
    let ratio = match r.ratio {
        Some(x) => format!("{x:.2}"),
        None => "-".into(),
    };
    format!(
        "{:<14} {:>11} {:<34} {:>12.3} {:>8}  {}",
        r.model, r.params, r.operation, r.ms, ratio, r.note
    )
}

/// The rows as a one-screen text table.
pub fn to_table(rows: &[BenchRow]) -> String {
    let mut out = table_header() + "\n";
    for r in rows {
        let _ = writeln!(out, "{}", table_row(r));
    }
    out
}
