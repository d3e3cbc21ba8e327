//! One file per subcommand, each with its flags and its `run`.

pub mod bench;
pub mod interpolate;
pub mod orchestrator;
pub mod presets;
pub mod quickstart;
pub mod spectrum;
pub mod sweep;
pub mod train;
pub mod tune;
pub mod variance;
pub mod verify;
