//! The optdigits dataset, embedded: 1 797 real handwritten digits, 8×8 pixels, 10 classes.
//!
//! UCI "Optical Recognition of Handwritten Digits" (Alpaydin & Kaynak, 1998), test split, as
//! redistributed with scikit-learn (`digits.csv.gz`). Licence CC BY 4.0; see
//! `data/OPTDIGITS-LICENCE.md`. Cite: Alpaydin, E. & Kaynak, C. (1998). Optical Recognition of
//! Handwritten Digits [Dataset]. UCI Machine Learning Repository.
//! <https://doi.org/10.24432/C50P49>
//!
//! Softmax regression on it has `P = 64·10 + 10 = 650` parameters: small enough to form and
//! eigendecompose the Hessian exactly, which makes it the reference problem of the test suite
//! and the offline default data of the quickstart.

use std::io::Read;

use flate2::read::GzDecoder;

use crate::classification::ClassificationData;
use crate::error::{DataError, Result};

const OPTDIGITS_GZ: &[u8] = include_bytes!("../data/optdigits.csv.gz");
const NAME: &str = "optdigits.csv.gz (embedded)";

/// Number of examples.
pub const OPTDIGITS_LEN: usize = 1_797;

/// Load the embedded optdigits data: inputs `[64]` scaled to `[0, 1]` (pixel counts 0–16
/// divided by 16), labels `0..10`.
///
/// # Errors
/// [`DataError::Format`] if the embedded file is corrupt (it is checked by the tests).
pub fn optdigits() -> Result<ClassificationData> {
    parse_optdigits(OPTDIGITS_GZ, NAME)
}

/// Parse optdigits CSV (gzip-compressed, no header, 64 integers 0..=16 then the label).
///
/// # Errors
/// [`DataError::Format`] naming the line and what is wrong.
pub fn parse_optdigits(gz: &[u8], name: &str) -> Result<ClassificationData> {
    let fmt = |reason: String| DataError::Format {
        file: name.to_string(),
        reason,
    };
    let mut text = String::new();
    GzDecoder::new(gz)
        .read_to_string(&mut text)
        .map_err(|e| fmt(format!("not valid gzip-compressed UTF-8: {e}")))?;
    let mut inputs = Vec::with_capacity(OPTDIGITS_LEN * 64);
    let mut labels = Vec::with_capacity(OPTDIGITS_LEN);
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != 65 {
            return Err(fmt(format!(
                "line {}: {} fields, expected 65",
                i + 1,
                fields.len()
            )));
        }
        for f in &fields[..64] {
            let v: u8 = f
                .parse()
                .map_err(|_| fmt(format!("line {}: pixel `{f}` is not an integer", i + 1)))?;
            if v > 16 {
                return Err(fmt(format!("line {}: pixel {v} outside 0..=16", i + 1)));
            }
            inputs.push(v as f32 / 16.0);
        }
        let l: usize = fields[64].parse().map_err(|_| {
            fmt(format!(
                "line {}: label `{}` is not an integer",
                i + 1,
                fields[64]
            ))
        })?;
        if l > 9 {
            return Err(fmt(format!("line {}: label {l} outside 0..=9", i + 1)));
        }
        labels.push(l);
    }
    if labels.is_empty() {
        return Err(fmt("no examples".into()));
    }
    ClassificationData::new(inputs, vec![64], labels, 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_optdigits_is_complete() {
        let d = optdigits().unwrap();
        assert_eq!(d.len(), OPTDIGITS_LEN);
        assert_eq!(d.example_len(), 64);
        assert!(d.inputs.iter().all(|&x| (0.0..=1.0).contains(&x)));
        let mut counts = [0usize; 10];
        d.labels.iter().for_each(|&l| counts[l] += 1);
        assert!(
            counts.iter().all(|&c| c > 150),
            "every digit is well represented: {counts:?}"
        );
    }

    #[test]
    fn corrupt_files_give_specific_errors() {
        let e = parse_optdigits(b"not gzip", "x.csv.gz")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.csv.gz") && e.contains("gzip"), "{e}");
        let gz = |s: &str| {
            use std::io::Write;
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(s.as_bytes()).unwrap();
            enc.finish().unwrap()
        };
        let row = |label: &str| format!("{}{label}\n", "0,".repeat(64));
        let e = parse_optdigits(&gz(&row("12")), "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("label 12"), "{e}");
        let e = parse_optdigits(&gz("1,2,3\n"), "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("3 fields"), "{e}");
        let e = parse_optdigits(&gz(&row("x")), "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an integer"), "{e}");
        assert!(parse_optdigits(&gz(&row("3")), "f").is_ok());
    }
}
