//! `curvature orchestrator`: the rendezvous of a data-parallel group spread over several
//! machines (burn-collective's global orchestrator). Start it on one machine, then every node
//! with `--nodes K --node-rank i --orchestrator HOST:PORT` (docs/distributed.md).

use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct OrchestratorArgs {
    /// TCP port to listen on (the nodes' --orchestrator HOST:PORT).
    #[arg(long, default_value_t = 3100)]
    pub port: u16,
}

/// Run the command: serve until Ctrl-C or SIGTERM.
pub fn run(args: &OrchestratorArgs) -> Result<()> {
    if args.port == 0 {
        anyhow::bail!("--port 0: the nodes need a fixed port to reach; choose one, e.g. 3100");
    }
    eprintln!(
        "orchestrator listening on port {} (all interfaces); start the nodes (spectrum, variance, train, bench) with --nodes K --node-rank i --orchestrator THIS_HOST:{} --node-host THEIR_HOST; Ctrl-C stops it",
        args.port, args.port
    );
    curvature_collective::run_orchestrator(args.port)?;
    Ok(())
}
