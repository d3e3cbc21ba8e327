//! The experiment runner's tests: one integration-test binary (the library itself is built
//! once; unit tests would compile the whole crate, every backend and model, a second time).

mod backend;
mod bench;
mod config;
#[cfg(feature = "flex")]
mod flex_layout;
#[cfg(feature = "flex")]
mod flex_threads;
mod memory;
mod plot;
mod presets;
mod raster;
mod setup;
mod sweep;
mod verify;
