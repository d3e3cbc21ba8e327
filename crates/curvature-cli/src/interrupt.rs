//! Ctrl-C: checkpoint and stop.

use curvature_lab::progress::Interrupt;

/// A flag raised by the first Ctrl-C (the run then checkpoints and stops); a second Ctrl-C
/// exits at once.
pub fn ctrl_c() -> Interrupt {
    let flag = Interrupt::new();
    let raised = flag.clone();
    let result = ctrlc::set_handler(move || {
        if raised.raised() {
            std::process::exit(130);
        }
        eprintln!(
            "\nCtrl-C: stopping after this step and writing a checkpoint (Ctrl-C again to quit now)"
        );
        raised.raise();
    });
    if let Err(e) = result {
        eprintln!(
            "warning: cannot catch Ctrl-C ({e}); an interrupted run resumes from its last epoch"
        );
    }
    flag
}
