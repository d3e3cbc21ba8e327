//! Keeping freed memory in the process, so large tensors stop costing page faults.
//!
//! On the CPU, burn's NdArray backend allocates a fresh buffer for (almost) every tensor op.
//! glibc's `malloc` serves blocks above its mmap threshold (at most 32 MiB) with a fresh
//! `mmap` and returns them with `munmap` when freed, so every op on a large tensor — a
//! parameter-sized vector of VGG-16 is 61 MB — page-faults its whole output in again: a
//! 100-step Lanczos run on VGG-16 (P = 15.2 M, batch 8) spent 1 346 s of its 2 264 s of CPU
//! time in the kernel, 416 million minor page faults (docs/benchmarks.md, "Large-model Lanczos").
//! [`keep_freed_memory`] makes glibc serve every block from its heap and keep freed memory
//! for reuse instead (the resident size then stays at the peak): the same run's first 20
//! steps took 116 s instead of 177 s, 2 s of them in the kernel instead of 78.
//!
//! Without code, the same holds for any program through the environment:
//! `GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647`.

/// Tell glibc's allocator to serve every block from its heap (`M_MMAP_MAX = 0`) and never to
/// return freed heap memory to the system below 2 GiB of free space at the top
/// (`M_TRIM_THRESHOLD`). Returns whether both settings were taken; on targets other than
/// Linux with glibc it does nothing and returns `false`.
///
/// Call it first in `main` (the `curvature` command and the criterion benches do). It changes
/// speed and the resident size, never results.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only changes the allocator's tuning parameters, under its lock.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
