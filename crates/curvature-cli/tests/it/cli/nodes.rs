//! Several machines: `curvature orchestrator` and two `curvature spectrum --nodes 2` processes
//! on the loopback interface give the spectrum of one process; a node that never joins stops
//! the other with a time-out naming the missing peers instead of a hang; a node killed in
//! training stops the other, the checkpoint stays and the run resumes on two nodes (through
//! the same orchestrator) exactly as one process would have run it.
//!
//! The reference is the single-process dense eigendecomposition of the same f64 logistic
//! Hessian (`--peers 1`, itself checked against analytic Hessians in the library's tests); the
//! two nodes each hold half the batches and sum through burn-collective's orchestrator and
//! data services, so a lost or doubled share changes the eigenvalues far beyond 1e-12.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{
    assert_spectrum_close, curvature, dense_logistic_spectrum, numbers, read_json, refs, rows,
    text, train_mlp as train,
};

/// A TCP port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped (a failing test leaves nothing running).
struct Killed(Option<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Start the binary with `args` in `cwd`, its output going to `cwd/log` (a file, not a pipe
/// nobody reads while it runs: a full pipe would block the child).
fn spawn(args: &[&str], cwd: &Path, log: &str) -> Killed {
    let file = std::fs::File::create(cwd.join(log)).unwrap();
    Killed(Some(
        Command::new(env!("CARGO_BIN_EXE_curvature"))
            .args(args)
            .current_dir(cwd)
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("the binary starts"),
    ))
}

/// Wait for `child` at most `limit`; whether it succeeded and its output (from `cwd/log`), or
/// a panic naming what hung (the child is then killed).
fn finish(mut child: Killed, limit: Duration, cwd: &Path, log: &str) -> (bool, String) {
    let start = Instant::now();
    let output = || std::fs::read_to_string(cwd.join(log)).unwrap_or_default();
    let running = child.0.as_mut().expect("a child");
    loop {
        if let Some(status) = running.try_wait().unwrap() {
            child.0 = None;
            return (status.success(), output());
        }
        assert!(
            start.elapsed() < limit,
            "{log}: still running after {limit:?}: {}",
            output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Start the orchestrator on a free port and wait until it accepts connections.
fn orchestrator(cwd: &Path) -> (Killed, u16) {
    let port = free_port();
    let child = spawn(
        &["orchestrator", "--port", &port.to_string()],
        cwd,
        "orchestrator.log",
    );
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the orchestrator never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

/// The flags that make a command node `rank` of two meeting at the orchestrator on `port`
/// (its tensor data service on a free port), waiting at most `timeout` seconds for the other.
fn node_flags(rank: usize, port: u16, timeout: &str) -> Vec<String> {
    let flags = [
        "--nodes".to_string(),
        "2".into(),
        "--node-rank".into(),
        rank.to_string(),
        "--orchestrator".into(),
        format!("127.0.0.1:{port}"),
        "--node-host".into(),
        "127.0.0.1".into(),
        "--data-port".into(),
        free_port().to_string(),
        "--peer-timeout".into(),
        timeout.into(),
    ];
    flags.to_vec()
}

fn eigenvalues(path: &Path) -> Vec<f64> {
    numbers(&read_json(path)["eigenvalues"])
}

#[test]
fn two_nodes_on_loopback_give_the_spectrum_of_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = curvature(&dense_logistic_spectrum("one.json", &[]), d);
    assert!(o.status.success(), "{}", text(&o));
    let want = eigenvalues(&d.join("one.json"));

    let (orchestrator, port) = orchestrator(d);
    let nodes: Vec<Killed> = (0..2)
        .map(|i| {
            let (json, flags) = (format!("node{i}.json"), node_flags(i, port, "60"));
            spawn(
                &dense_logistic_spectrum(&json, &refs(&flags)),
                d,
                &format!("node{i}.log"),
            )
        })
        .collect();
    for (i, node) in nodes.into_iter().enumerate() {
        let (ok, out) = finish(node, Duration::from_secs(120), d, &format!("node{i}.log"));
        assert!(ok, "node {i}: {out}");
        assert!(out.contains("data parallel: 2 peers"), "node {i}: {out}");
    }
    drop(orchestrator);
    for i in 0..2 {
        let got = eigenvalues(&d.join(format!("node{i}.json")));
        assert_spectrum_close(&got, &want, 1e-12, &format!("node {i}"));
    }
}

#[test]
fn a_node_that_never_joins_stops_the_other_with_a_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_orchestrator, port) = orchestrator(d);
    let flags = node_flags(0, port, "3");
    let start = Instant::now();
    let node = spawn(
        &dense_logistic_spectrum("node0.json", &refs(&flags)),
        d,
        "node0.log",
    );
    let (ok, out) = finish(node, Duration::from_secs(60), d, "node0.log");
    assert!(!ok, "{out}");
    assert!(
        out.contains("time-out after 3 s") && out.contains("peer(s) [1]"),
        "{out}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_node_killed_mid_run_stops_the_other_with_an_error_naming_its_peers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_orchestrator, port) = orchestrator(d);
    let mut nodes: Vec<Killed> = (0..2)
        .map(|i| {
            let mut args = vec!["spectrum", "--quiet", "--model", "mlp", "--steps", "200"];
            args.extend(["--batch-size", "100"]);
            let flags = node_flags(i, port, "5");
            args.extend(refs(&flags));
            spawn(&args, d, &format!("node{i}.log"))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    // SIGKILL: node 1 leaves without a word, in the middle of the run (or of joining).
    drop(nodes.pop());
    assert_node_0_stops_naming_peer_1(nodes.pop().unwrap(), d, "5");
}

/// Node 0 (its output in `d/node0.log`), whose peer 1 was just killed, fails within 30 s with
/// the time-out (`--peer-timeout timeout`) or the lost-node error, naming peer 1.
fn assert_node_0_stops_naming_peer_1(node0: Killed, d: &Path, timeout: &str) {
    let start = Instant::now();
    let (ok, out) = finish(node0, Duration::from_secs(60), d, "node0.log");
    assert!(!ok, "{out}");
    // The message is looked for on any line, not only the one starting with `error:`: a
    // backtrace that a burn-communication thread prints when its connection drops can land
    // on stderr between our `error: ` and the rest of the line (seen in CI on 360b048).
    let names_peer_1 = out.lines().any(|l| {
        (l.contains(&format!("time-out after {timeout} s")) || l.contains("lost the other node(s)"))
            && l.contains("peer(s) [1]")
    });
    assert!(out.contains("error:") && names_peer_1, "{out}");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}

/// The weights a run wrote.
fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("weights.safetensors")).unwrap()
}

#[test]
fn two_nodes_train_like_one_process_and_only_node_0_writes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The reference: one process, two peers (the same two shares of every global batch).
    let o = curvature(
        &refs(&train("single", 2, &["--peers".into(), "2".into()])),
        d,
    );
    assert!(o.status.success(), "{}", text(&o));

    let (orchestrator, port) = orchestrator(d);
    let nodes: Vec<Killed> = (0..2)
        .map(|i| {
            let (out, flags) = (format!("node{i}"), node_flags(i, port, "60"));
            let args = train(&out, 2, &flags);
            spawn(&refs(&args), d, &format!("node{i}.log"))
        })
        .collect();
    for (i, node) in nodes.into_iter().enumerate() {
        let (ok, out) = finish(node, Duration::from_secs(120), d, &format!("node{i}.log"));
        assert!(ok, "node {i}: {out}");
    }
    drop(orchestrator);
    assert_eq!(
        rows(&d.join("node0")),
        rows(&d.join("single")),
        "node 0's metrics are the one-process run's"
    );
    assert_eq!(
        weights(&d.join("node0")),
        weights(&d.join("single")),
        "final weights"
    );
    assert!(
        !d.join("node1").exists(),
        "node 1 writes nothing: {:?}",
        std::fs::read_dir(d.join("node1")).map(|r| r.count())
    );
}

/// The epochs a run's checkpoint holds (0 before the first).
fn epochs_done(dir: &Path) -> u64 {
    let state = dir.join("checkpoint/state.json");
    std::fs::read_to_string(&state)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| v["epochs_done"].as_u64())
        .unwrap_or(0)
}

#[test]
fn a_node_killed_mid_training_loses_no_checkpoint_and_the_run_resumes_on_two_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let planned = 400;
    let (orchestrator, port) = orchestrator(d);
    let mut nodes: Vec<Killed> = (0..2)
        .map(|i| {
            let (out, flags) = (format!("node{i}"), node_flags(i, port, "10"));
            spawn(
                &refs(&train(&out, planned, &flags)),
                d,
                &format!("node{i}.log"),
            )
        })
        .collect();
    let start = Instant::now();
    while epochs_done(&d.join("node0")) < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no second checkpoint: {}",
            std::fs::read_to_string(d.join("node0.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGKILL node 1 in the middle of the run.
    drop(nodes.pop());
    assert_node_0_stops_naming_peer_1(nodes.pop().unwrap(), d, "10");

    // Nothing checkpointed is lost: node 0's last checkpoint is whole and resumes. Across
    // machines: node 0's directory is copied to node 1's `--out`, every node resumes.
    let done = epochs_done(&d.join("node0"));
    assert!(
        (2..planned as u64).contains(&done),
        "{done} epochs checkpointed"
    );
    let config = d.join("node0/config.json");
    let mut json = read_json(&config);
    json["epochs"] = (done + 1).into();
    std::fs::write(&config, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    std::fs::create_dir(d.join("node1")).unwrap();
    for entry in [
        "config.json",
        "checkpoint/model.bin",
        "checkpoint/optimizer.bin",
        "checkpoint/state.json",
    ] {
        let to = d.join("node1").join(entry);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(d.join("node0").join(entry), to).unwrap();
    }
    let nodes: Vec<Killed> = (0..2)
        .map(|i| {
            let mut args = vec!["train".to_string(), "--quiet".into(), "--resume".into()];
            args.push(format!("node{i}"));
            args.extend(node_flags(i, port, "60"));
            spawn(&refs(&args), d, &format!("resume{i}.log"))
        })
        .collect();
    for (i, node) in nodes.into_iter().enumerate() {
        let (ok, out) = finish(node, Duration::from_secs(120), d, &format!("resume{i}.log"));
        assert!(ok, "node {i}: {out}");
    }
    drop(orchestrator);
    assert_eq!(epochs_done(&d.join("node0")), done + 1);

    // The reference: one process, two peers, the same epochs without a break.
    let epochs = usize::try_from(done + 1).unwrap();
    let o = curvature(
        &refs(&train("single", epochs, &["--peers".into(), "2".into()])),
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(rows(&d.join("node0")), rows(&d.join("single")), "metrics");
    assert_eq!(
        weights(&d.join("node0")),
        weights(&d.join("single")),
        "final weights"
    );
}
