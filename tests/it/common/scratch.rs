//! This test process's scratch directory, `marketplace-test-<pid>` in the
//! temporary folder: the private PostgreSQL servers' data (about 280 MB
//! each), the Kafka brokers' data, the child processes' logs.
//!
//! It is removed when the process ends, however it ends: a run that passes,
//! one where tests panic, one killed with SIGKILL or Ctrl-C. Statics are
//! never dropped and a killed process runs no code at all, so the removal
//! is left to a watchdog: a small `sh` process, in a process group of its
//! own (a Ctrl-C does not reach it), that reads its stdin until end of file.
//! Only this process holds the pipe's write end, so the end of file comes
//! when the kernel closes it, as this process ends. The watchdog then waits
//! for the PostgreSQL servers in the directory to finish their shutdown
//! (they get SIGINT when this process ends, see `embedded_pg`) and removes
//! the directory.
//!
//! A directory whose watchdog never ran (a machine that lost power, or runs
//! from before it existed) is swept by the next run: at start, every
//! `marketplace-test-<pid>` whose process is gone and that no process
//! works in is removed.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

const PREFIX: &str = "marketplace-test-";

/// The watchdog: `$1` is the directory; stdin reaches end of file when the
/// test process has ended. A server shuts down within seconds; one that
/// does not (its postmaster killed outright left its lock file behind) is
/// waited for a minute at most.
const WATCHDOG: &str = r#"
trap '' INT HUP
cat >/dev/null
i=0
while [ "$i" -lt 600 ] && [ -n "$(find "$1" -name postmaster.pid 2>/dev/null | head -n 1)" ]; do
  sleep 0.1
  i=$((i + 1))
done
rm -rf -- "$1"
"#;

/// This process's scratch directory, created (and its watchdog started) on
/// first use, after stale directories of earlier runs are swept.
pub fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let temp = std::env::temp_dir();
        sweep(&temp);
        let dir = temp.join(format!("{PREFIX}{}", std::process::id()));
        // A directory of a process that had our pid before us.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        // The private servers may run as `postgres` (when we are root): they
        // must be able to reach their data directories inside.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .expect("chmod the scratch directory");
        let mut watchdog = Command::new("sh")
            .args(["-c", WATCHDOG, "sh"])
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start the scratch directory's watchdog");
        // Never closed by us: the kernel closes it when this process ends.
        // (std opens pipes close-on-exec, so no other child inherits it.)
        std::mem::forget(watchdog.stdin.take());
        // It outlives us; should it end first (killed), reap it.
        std::thread::spawn(move || watchdog.wait());
        dir
    })
}

/// Removes every `marketplace-test-<pid>` directory in `temp` whose process
/// is gone, unless some process still works in it (a server still shutting
/// down: its watchdog will remove it).
pub fn sweep(temp: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    let own = std::process::id();
    let busy = working_directories();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        // Canonical, as /proc shows working directories.
        let path = std::fs::canonicalize(entry.path()).unwrap_or_else(|_| entry.path());
        if pid == own || alive(pid) || busy.iter().any(|cwd| cwd.starts_with(&path)) {
            continue;
        }
        let _ = std::fs::remove_dir_all(&path);
    }
}

fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    // EPERM: it exists, as another user's process.
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The working directory of every process we may look at.
fn working_directories() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter_map(|e| std::fs::read_link(e.path().join("cwd")).ok())
        .collect()
}
