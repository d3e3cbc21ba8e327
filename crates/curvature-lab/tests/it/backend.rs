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
    // The default: Flex for f32 in a build with it, NdArray otherwise; NdArray for f64.
    let f32_default = if cfg!(feature = "flex") {
        "flex f32"
    } else {
        "ndarray f32"
    };
    assert_eq!(BackendChoice::default().to_string(), f32_default);
    assert_eq!(
        BackendKind::default_for(Precision::F64),
        BackendKind::Ndarray
    );
    assert!(BackendKind::default_for(Precision::F64).has_f64());
}
