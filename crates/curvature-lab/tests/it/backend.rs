//! `curvature_lab::backend`.

use curvature_lab::backend::*;

#[test]
fn choices_are_checked() {
    assert!(BackendChoice::new("tpu", None, "f32").is_err());
    assert!(BackendChoice::new("ndarray", None, "f16").is_err());
    let e = BackendChoice::new("cuda", Some(1), "f64").unwrap_err();
    assert!(e.to_string().contains("only the ndarray backend"), "{e}");
    let c = BackendChoice::new("ndarray", None, "f64").unwrap();
    assert_eq!(c.to_string(), "ndarray f64");
}
