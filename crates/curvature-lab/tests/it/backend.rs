//! `curvature_lab::backend`.

use clap::ValueEnum;
use curvature_lab::backend::*;
use curvature_lab::{BackendKind, Precision};

#[test]
fn choices_are_checked() {
    // Unknown names are refused by the enums' parsers (clap lists the possible values).
    assert!(BackendKind::from_str("tpu", false).is_err());
    assert!(Precision::from_str("f16", false).is_err());
    assert_eq!(BackendKind::from_str("wgpu", false), Ok(BackendKind::Wgpu));
    let e = BackendChoice::new(BackendKind::Cuda, Some(1), Precision::F64).unwrap_err();
    assert!(e.to_string().contains("only the ndarray backend"), "{e}");
    let c = BackendChoice::new(BackendKind::Ndarray, Some(3), Precision::F64).unwrap();
    assert_eq!(c.to_string(), "ndarray f64", "no device index on the CPU");
    let g = BackendChoice::new(BackendKind::Wgpu, Some(1), Precision::F32).unwrap();
    assert_eq!(g.to_string(), "wgpu:1 f32");
    assert_eq!(BackendChoice::default().to_string(), "ndarray f32");
}
