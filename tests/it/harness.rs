//! The harness cleans up after itself: a run of this test binary leaves no
//! scratch directory behind (each holds a private PostgreSQL's data, about
//! 280 MB), whether its tests pass, panic, or the process is killed with
//! SIGKILL; and a run sweeps the directories of earlier runs whose process
//! is gone. See `common::scratch`.
//!
//! The first two tests run this binary again as a child, on one test of
//! its own ([`child_starts_postgres`]) that does what the child was asked.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::{fresh_database, scratch};

/// What the child does, when set: `panic` or `hang`.
const CHILD: &str = "MARKETPLACE_TEST_CHILD";
/// What the child prints once its server is up, before the directory (after
/// the harness's `test <name> ... `, with `--nocapture`).
const READY: &str = "scratch directory ready: ";

/// Run only as a child of the tests below (and a no-op otherwise, so that
/// `cargo test -- --ignored` passes it): starts the shared private
/// PostgreSQL, says where its scratch directory is, then panics or hangs.
#[tokio::test]
#[ignore = "a child process of the scratch directory tests"]
async fn child_starts_postgres() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    fresh_database().await;
    let dir = scratch::dir();
    assert!(
        dir.join("pgdata/PG_VERSION").exists(),
        "the server's data is there"
    );
    println!("{READY}{}", dir.display());
    match mode.as_str() {
        "panic" => panic!("this child test panics on purpose"),
        "hang" => tokio::time::sleep(Duration::from_secs(600)).await,
        other => panic!("unknown {CHILD}={other}"),
    }
}

/// This binary on [`child_starts_postgres`], with `mode`, and a temporary
/// folder of its own (so its sweep sees only its own directory).
fn child(mode: &str) -> (tokio::process::Command, PathBuf) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let temp = scratch::dir().join(format!("child-tmp-{}", N.fetch_add(1, Ordering::SeqCst)));
    std::fs::create_dir_all(&temp).expect("child temp folder");
    // The child's servers may run as `postgres` (when we are root).
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o755))
        .expect("chmod the child temp folder");
    let mut cmd = tokio::process::Command::new(std::env::current_exe().expect("this binary"));
    cmd.args([
        "harness::child_starts_postgres",
        "--exact",
        "--include-ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD, mode)
    .env("TMPDIR", &temp)
    .stdin(Stdio::null())
    .kill_on_drop(true);
    (cmd, temp)
}

/// The scratch directory the child announced in `output`; asserts it is the
/// one named after the child's pid.
fn announced(output: &str, temp: &Path, pid: u32) -> PathBuf {
    let line = output
        .lines()
        .find_map(|l| l.split_once(READY).map(|(_, dir)| dir))
        .unwrap_or_else(|| panic!("the child never started its server; its output:\n{output}"));
    let dir = PathBuf::from(line);
    assert_eq!(dir, temp.join(format!("marketplace-test-{pid}")));
    dir
}

/// Waits (bounded) for the dead child's directory to be removed.
async fn assert_removed(dir: &Path) {
    let started = Instant::now();
    while dir.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} is still there a minute after its process ended",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_run_whose_test_panics_leaves_no_scratch_directory() {
    let (mut cmd, temp) = child("panic");
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the child");
    let pid = child.id().expect("pid");
    let out = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .expect("the child finished in time")
        .expect("the child's output");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success() && output.contains("panics on purpose"),
        "the child test failed as asked:\n{output}"
    );
    let dir = announced(&output, &temp, pid);
    assert_removed(&dir).await;
}

#[tokio::test]
async fn a_run_killed_with_sigkill_leaves_no_scratch_directory() {
    let (mut cmd, temp) = child("hang");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the child");
    let pid = child.id().expect("pid");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = String::new();
    let ready = tokio::time::timeout(Duration::from_secs(180), async {
        while let Some(line) = lines.next_line().await.expect("read the child") {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(READY) {
                return;
            }
        }
    })
    .await;
    assert!(ready.is_ok(), "the child did not start in time:\n{seen}");
    let dir = announced(&seen, &temp, pid);
    assert!(dir.exists());
    child.kill().await.expect("SIGKILL the child");
    assert_removed(&dir).await;
}

#[test]
fn directories_of_processes_that_are_gone_are_swept() {
    let temp = scratch::dir().join("sweep");
    let gone = {
        let mut exited = std::process::Command::new("true").spawn().expect("spawn");
        let pid = exited.id();
        exited.wait().expect("wait");
        pid
    };
    let stale = temp.join(format!("marketplace-test-{gone}"));
    // PID 1 never ends; our own directory is never swept.
    let live = temp.join("marketplace-test-1");
    let own = temp.join(format!("marketplace-test-{}", std::process::id()));
    let other = temp.join(format!("marketplace-other-{gone}"));
    for dir in [&stale, &live, &own, &other] {
        std::fs::create_dir_all(dir.join("pgdata")).expect("mkdir");
        std::fs::write(dir.join("pgdata/PG_VERSION"), "15\n").expect("write");
    }
    scratch::sweep(&temp);
    assert!(!stale.exists(), "a dead process's directory is swept");
    assert!(live.exists(), "a live process's directory is kept");
    assert!(own.exists(), "our own directory is kept");
    assert!(
        other.exists(),
        "only marketplace-test-<pid> is ours to sweep"
    );
}
