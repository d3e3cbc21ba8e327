//! `curvature_lab::memory`.

use curvature_lab::memory::*;

#[test]
fn glibc_takes_the_settings_and_large_buffers_still_work() {
    let taken = keep_freed_memory();
    assert_eq!(taken, cfg!(all(target_os = "linux", target_env = "gnu")));
    // A 64 MB buffer, freed and allocated again, now from the heap.
    for fill in [1u8, 2] {
        let v = vec![fill; 64 << 20];
        assert!(v.iter().all(|&x| x == fill));
    }
}
