//! A private PostgreSQL server started from the machine's own PostgreSQL
//! binaries.
//!
//! `marketplace dev` and the integration tests need a real PostgreSQL without
//! asking anyone to install and configure a cluster first. This module
//! initialises a data directory with `initdb` on first use (and reuses it
//! afterwards), runs the `postgres` binary as a child process that listens
//! only on 127.0.0.1 with trust authentication, waits until it accepts
//! connections, and shuts it down again.
//!
//! PostgreSQL refuses to run as root, so when this process is root the server
//! (and `initdb`) run as the `postgres` system account instead.
//!
//! The server is tied to our process with `PR_SET_PDEATHSIG`, so it shuts
//! down even if we crash or are killed and no `Drop` runs.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sqlx::{Connection, PgConnection};

/// Role created by `initdb -U`; also the OS account used when we are root.
const SUPERUSER: &str = "postgres";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// A single connection attempt must not eat the whole startup budget if the
/// server accepts the TCP connection but never answers.
const CONNECT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// With port 0 another process can grab the port between our probe and the
/// server's bind; retrying with a fresh port makes that race harmless.
const AUTO_PORT_ATTEMPTS: u32 = 3;
/// Unix socket paths are limited by `sun_path` (108 bytes including the NUL);
/// PostgreSQL appends `/.s.PGSQL.<port>` (up to 15 bytes) to the directory.
const MAX_SOCKET_DIR_LEN: usize = 92;
const LOG_TAIL_LINES: usize = 30;

/// How to run the embedded server.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// PGDATA. Initialised with `initdb` when it has no `PG_VERSION` file,
    /// reused as is otherwise.
    pub data_dir: PathBuf,
    /// TCP port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// `false` turns off fsync, synchronous_commit and full_page_writes: much
    /// faster, but a machine crash can corrupt the cluster (fine for tests).
    pub durable: bool,
    pub max_connections: u32,
}

/// A running PostgreSQL server owned by this process.
///
/// Call [`EmbeddedPostgres::stop`] for an orderly shutdown; dropping it only
/// asks the server to stop without waiting.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    /// `None` once stopped, so `Drop` knows there is nothing left to do.
    child: Option<Child>,
    port: u16,
    data_dir: PathBuf,
    superuser: String,
}

impl EmbeddedPostgres {
    /// Initialises the data directory if needed, starts the server and waits
    /// until it accepts connections.
    pub async fn start(opts: EmbeddedOptions) -> anyhow::Result<Self> {
        let bins = find_binaries()?;
        tracing::info!(
            initdb = %bins.initdb.display(),
            postgres = %bins.postgres.display(),
            "embedded PostgreSQL: using the machine's PostgreSQL binaries"
        );

        // SAFETY: geteuid has no preconditions and cannot fail.
        let run_as = if unsafe { libc::geteuid() } == 0 {
            Some(postgres_account()?)
        } else {
            None
        };

        let data_dir = prepare_data_dir(&opts.data_dir, run_as)?;
        if data_dir.join("PG_VERSION").exists() {
            tracing::info!(
                data_dir = %data_dir.display(),
                "embedded PostgreSQL: reusing existing data directory"
            );
        } else {
            tracing::info!(
                data_dir = %data_dir.display(),
                "embedded PostgreSQL: initialising new data directory"
            );
            run_initdb(&bins, &data_dir, run_as, opts.durable).await?;
        }

        remove_stale_pid_file(&data_dir)?;

        let log_path = data_dir.join("server.log");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = if opts.port == 0 {
                free_port()?
            } else {
                opts.port
            };

            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .with_context(|| format!("opening {}", log_path.display()))?;
            // Remember where this run's output starts so errors show only it.
            let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
            if let Some(account) = run_as {
                // Keep everything in the data directory owned by the server's
                // account so a later non-root run can use it too.
                std::os::unix::fs::chown(&log_path, Some(account.uid), Some(account.gid))
                    .with_context(|| format!("chown {}", log_path.display()))?;
            }

            let cmd = server_command(&bins, &data_dir, port, &opts, run_as, log)?;
            let child = spawn_from_spawner_thread(cmd)
                .await
                .with_context(|| format!("starting {}", bins.postgres.display()))?;
            let mut server = EmbeddedPostgres {
                child: Some(child),
                port,
                data_dir: data_dir.clone(),
                superuser: SUPERUSER.to_owned(),
            };

            match server.wait_until_ready(&log_path, log_start).await {
                Ok(()) => {
                    tracing::info!(
                        port,
                        data_dir = %data_dir.display(),
                        log = %log_path.display(),
                        "embedded PostgreSQL: listening on 127.0.0.1:{port}"
                    );
                    return Ok(server);
                }
                Err(NotReady::Exited { log_tail, .. })
                    if opts.port == 0
                        && attempt < AUTO_PORT_ATTEMPTS
                        && log_tail.contains("could not bind") =>
                {
                    tracing::warn!(
                        port,
                        "embedded PostgreSQL: port was taken before the server bound it; retrying"
                    );
                }
                Err(not_ready) => {
                    if let (NotReady::TimedOut { .. }, Some(child)) =
                        (&not_ready, server.child.take())
                    {
                        // The server is unusable; don't leave it half-started.
                        let _ = shutdown(child, Duration::from_secs(5)).await;
                    }
                    return Err(not_ready.into_error(&log_path));
                }
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://USER@127.0.0.1:PORT/DB` (trust auth on loopback).
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{}",
            percent_encode(&self.superuser),
            self.port,
            percent_encode(database)
        )
    }

    /// Creates the database if missing.
    pub async fn ensure_database(&self, database: &str) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect(&self.url("postgres"))
            .await
            .context("connecting to the embedded PostgreSQL server")?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(database)
                .fetch_one(&mut conn)
                .await
                .context("looking up database")?;
        if !exists {
            let sql = format!("CREATE DATABASE {}", quote_ident(database));
            match sqlx::query(&sql).execute(&mut conn).await {
                Ok(_) => tracing::info!(database, "embedded PostgreSQL: created database"),
                // Someone else created it between our check and our CREATE
                // (duplicate_database, or unique_violation on pg_database).
                Err(sqlx::Error::Database(e))
                    if matches!(e.code().as_deref(), Some("42P04") | Some("23505")) => {}
                Err(e) => return Err(e).with_context(|| format!("creating database {database:?}")),
            }
        }
        // Best effort: the connection is going away either way.
        let _ = conn.close().await;
        Ok(())
    }

    /// Fast shutdown (SIGINT to the postmaster), waits for exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let Some(child) = self.child.take() else {
            return Ok(());
        };
        shutdown(child, STOP_TIMEOUT).await?;
        tracing::info!(
            data_dir = %self.data_dir.display(),
            "embedded PostgreSQL: stopped"
        );
        Ok(())
    }

    async fn wait_until_ready(&mut self, log_path: &Path, log_start: u64) -> Result<(), NotReady> {
        let url = self.url("postgres");
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            // An error from try_wait is treated as "still running": the
            // connection attempt and the deadline still bound the wait.
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(NotReady::Exited {
                    status,
                    log_tail: read_log_tail(log_path, log_start),
                });
            }
            let last_error =
                match tokio::time::timeout(CONNECT_ATTEMPT_TIMEOUT, PgConnection::connect(&url))
                    .await
                {
                    Ok(Ok(conn)) => {
                        let _ = conn.close().await;
                        return Ok(());
                    }
                    // Refused while the postmaster is still starting, or "the
                    // database system is starting up": both mean try again.
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "connection attempt timed out".to_owned(),
                };
            if Instant::now() >= deadline {
                return Err(NotReady::TimedOut {
                    last_error,
                    log_tail: read_log_tail(log_path, log_start),
                });
            }
            tokio::time::sleep(POLL_INTERVAL * 2).await;
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            send_signal(&child, libc::SIGINT);
            // Reap it in the background so it does not linger as a zombie; we
            // cannot block here (Drop may run inside the async runtime).
            let _ = std::thread::Builder::new()
                .name("embedded-pg-reaper".into())
                .spawn(move || {
                    let _ = child.wait();
                });
        }
    }
}

enum NotReady {
    Exited {
        status: ExitStatus,
        log_tail: String,
    },
    TimedOut {
        last_error: String,
        log_tail: String,
    },
}

impl NotReady {
    fn into_error(self, log_path: &Path) -> anyhow::Error {
        match self {
            NotReady::Exited { status, log_tail } => anyhow::anyhow!(
                "embedded PostgreSQL exited during startup ({status}); last lines of {}:\n{log_tail}",
                log_path.display()
            ),
            NotReady::TimedOut {
                last_error,
                log_tail,
            } => anyhow::anyhow!(
                "embedded PostgreSQL did not accept connections within {}s (last error: {last_error}); last lines of {}:\n{log_tail}",
                STARTUP_TIMEOUT.as_secs(),
                log_path.display()
            ),
        }
    }
}

struct Binaries {
    initdb: PathBuf,
    postgres: PathBuf,
}

/// `initdb` and `postgres` from PATH, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian/Ubuntu keep the server
/// binaries there, off PATH).
fn find_binaries() -> anyhow::Result<Binaries> {
    if let (Some(initdb), Some(postgres)) = (find_on_path("initdb"), find_on_path("postgres")) {
        return Ok(Binaries { initdb, postgres });
    }

    let mut candidates: Vec<(Vec<u32>, PathBuf)> = Vec::new();
    if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(version) = name.to_str().and_then(parse_version) else {
                continue;
            };
            let bin = entry.path().join("bin");
            if is_executable(&bin.join("initdb")) && is_executable(&bin.join("postgres")) {
                candidates.push((version, bin));
            }
        }
    }
    // Numeric order, so 10 beats 9.6.
    candidates.sort();
    if let Some((_, bin)) = candidates.pop() {
        return Ok(Binaries {
            initdb: bin.join("initdb"),
            postgres: bin.join("postgres"),
        });
    }

    bail!(
        "PostgreSQL server binaries (initdb, postgres) not found on PATH or in \
         /usr/lib/postgresql/*/bin; install PostgreSQL (e.g. `apt-get install postgresql`) \
         or set DATABASE_URL to use an existing server"
    )
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn parse_version(s: &str) -> Option<Vec<u32>> {
    s.split('.').map(|part| part.parse().ok()).collect()
}

#[derive(Debug, Clone, Copy)]
struct Account {
    uid: u32,
    gid: u32,
}

/// The `postgres` system account, which the server runs as when we are root.
fn postgres_account() -> anyhow::Result<Account> {
    lookup_user(SUPERUSER)?.with_context(|| {
        format!(
            "running as root, and PostgreSQL refuses to run as root, but there is no \
             `{SUPERUSER}` system user to run it as; create one (e.g. `useradd --system \
             {SUPERUSER}`, or install the postgresql package), run as a non-root user, or set \
             DATABASE_URL"
        )
    })
}

fn lookup_user(name: &str) -> anyhow::Result<Option<Account>> {
    let c_name = CString::new(name).context("user name contains a NUL byte")?;
    // getpwnam_r rather than getpwnam: the latter returns a static buffer
    // that other threads may overwrite.
    let mut buf: Vec<libc::c_char> = vec![0; 4096];
    loop {
        // SAFETY: passwd is plain old data; all-zero is a valid value that
        // getpwnam_r overwrites.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the duration of the call and
        // buf.len() is the real size of buf.
        let rc = unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc))
                .with_context(|| format!("looking up user {name:?}"));
        }
        if result.is_null() {
            return Ok(None);
        }
        return Ok(Some(Account {
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        }));
    }
}

/// Creates the data directory if needed and returns its absolute path.
///
/// Before a first `initdb`, the directory (and any parents we create) are
/// handed to the server's account, since it must write there.
fn prepare_data_dir(dir: &Path, run_as: Option<Account>) -> anyhow::Result<PathBuf> {
    let dir = std::path::absolute(dir)
        .with_context(|| format!("resolving data directory {}", dir.display()))?;

    if let Some(account) = run_as {
        // Before creating anything, so a hopeless location leaves no debris.
        check_reachable(&dir, account)?;
    }

    let mut created = Vec::new();
    let mut next = Some(dir.as_path());
    while let Some(d) = next {
        if d.exists() {
            break;
        }
        created.push(d.to_path_buf());
        next = d.parent();
    }
    fs::create_dir_all(&dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    // Canonical, because the stale-lock check compares it with /proc/PID/cwd.
    let dir = fs::canonicalize(&dir)
        .with_context(|| format!("resolving data directory {}", dir.display()))?;

    if dir.join("PG_VERSION").exists() {
        return Ok(dir);
    }

    // initdb would refuse anyway, but this says why in our terms.
    let not_empty = fs::read_dir(&dir)
        .with_context(|| format!("reading data directory {}", dir.display()))?
        .next()
        .is_some();
    if not_empty {
        bail!(
            "data directory {} is not empty but is not a PostgreSQL data directory (no \
             PG_VERSION file, perhaps from an interrupted initdb); remove it or choose another",
            dir.display()
        );
    }

    if let Some(account) = run_as {
        for d in created.iter().rev().chain(std::iter::once(&dir)) {
            std::os::unix::fs::chown(d, Some(account.uid), Some(account.gid))
                .with_context(|| format!("chown {} to {SUPERUSER}", d.display()))?;
        }
    }
    // PostgreSQL insists that nobody else can read the cluster.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 0700 {}", dir.display()))?;
    Ok(dir)
}

/// When the server runs as another account, every parent directory must be
/// searchable by it; a data dir under root's 0700 home is the usual trap, and
/// initdb's own "Permission denied" does not say which directory is the
/// problem.
///
/// Ancestors that do not exist yet are skipped: we create them owned by that
/// account.
fn check_reachable(dir: &Path, account: Account) -> anyhow::Result<()> {
    for ancestor in dir.ancestors().skip(1) {
        let meta = match fs::metadata(ancestor) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("reading permissions of {}", ancestor.display()))
            }
        };
        let mode = meta.mode();
        let searchable = (meta.uid() == account.uid && mode & 0o100 != 0)
            || (meta.gid() == account.gid && mode & 0o010 != 0)
            || mode & 0o001 != 0;
        if !searchable {
            bail!(
                "PostgreSQL must run as the `{SUPERUSER}` user because we are root, but \
                 `{SUPERUSER}` cannot enter {} (needed to reach data directory {}); choose a \
                 data directory elsewhere (e.g. under /var/tmp) or allow access with \
                 `chmod o+x {}`",
                ancestor.display(),
                dir.display(),
                ancestor.display()
            );
        }
    }
    Ok(())
}

async fn run_initdb(
    bins: &Binaries,
    data_dir: &Path,
    run_as: Option<Account>,
    durable: bool,
) -> anyhow::Result<()> {
    let mut cmd = tokio::process::Command::new(&bins.initdb);
    cmd.arg("-D")
        .arg(data_dir)
        .args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ])
        // Our cwd may be unreadable for the server account (e.g. /root).
        .current_dir(data_dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if !durable {
        // Skipping the final fsync of the new cluster saves seconds per test run.
        cmd.arg("--no-sync");
    }
    if let Some(account) = run_as {
        cmd.uid(account.uid).gid(account.gid);
    }
    let output = cmd
        .output()
        .await
        .with_context(|| format!("running {}", bins.initdb.display()))?;
    if !output.status.success() {
        bail!(
            "initdb failed ({}) for {}:\n{}{}",
            output.status,
            data_dir.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Removes a `postmaster.pid` left behind by a server that is gone.
///
/// PostgreSQL copes with a dead PID itself, but not with the PID having been
/// recycled by an unrelated process (common after a reboot or container
/// restart): it then refuses to start forever. So we decide ourselves, and
/// only keep the file if a process still runs in the data directory.
fn remove_stale_pid_file(data_dir: &Path) -> anyhow::Result<()> {
    let pid_file = data_dir.join("postmaster.pid");
    let contents = match fs::read_to_string(&pid_file) {
        Ok(contents) => contents,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", pid_file.display())),
    };

    let recorded_pid = contents
        .lines()
        .next()
        .and_then(|line| line.trim().parse::<libc::pid_t>().ok())
        .filter(|pid| *pid > 0);
    if let Some(pid) = recorded_pid {
        if process_alive(pid) && process_in_data_dir(pid, data_dir).unwrap_or(true) {
            bail!(
                "data directory {} is in use by a running PostgreSQL server (PID {pid}); stop \
                 it first or use another data directory",
                data_dir.display()
            );
        }
    }
    // A postmaster killed outright can leave backends running for a moment;
    // starting a second server over them would corrupt the cluster. A
    // PostgreSQL process's working directory is its data directory.
    let leftovers = processes_in_dir(data_dir);
    if !leftovers.is_empty() {
        bail!(
            "data directory {} is still in use by PostgreSQL processes {leftovers:?} whose \
             postmaster is gone; wait for them to exit or stop them first",
            data_dir.display()
        );
    }

    tracing::info!(
        file = %pid_file.display(),
        "embedded PostgreSQL: removing stale postmaster.pid"
    );
    fs::remove_file(&pid_file).with_context(|| format!("removing {}", pid_file.display()))
}

fn process_alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 performs only the existence and permission check.
    let rc = unsafe { libc::kill(pid, 0) };
    // EPERM: it exists but belongs to someone else.
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether `pid` runs with `dir` as its working directory; `None` if we
/// cannot tell (another user's process while we are not root).
fn process_in_data_dir(pid: libc::pid_t, dir: &Path) -> Option<bool> {
    match fs::read_link(format!("/proc/{pid}/cwd")) {
        Ok(cwd) => Some(cwd == dir),
        // Fall back to the name: an unrelated process that recycled the PID
        // is very unlikely to be called postgres.
        Err(_) => fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .map(|comm| comm.trim() == "postgres"),
    }
}

fn processes_in_dir(dir: &Path) -> Vec<libc::pid_t> {
    let own = std::process::id() as libc::pid_t;
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|pid| *pid != own)
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/cwd"))
                .map(|cwd| cwd == dir)
                .unwrap_or(false)
        })
        .collect()
}

/// Asks the OS for a free port on 127.0.0.1; the listener is closed before
/// the server binds it, so the caller must tolerate losing the race.
fn free_port() -> anyhow::Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

fn server_command(
    bins: &Binaries,
    data_dir: &Path,
    port: u16,
    opts: &EmbeddedOptions,
    run_as: Option<Account>,
    log: File,
) -> anyhow::Result<Command> {
    // Our own socket directory, because the default (/var/run/postgresql)
    // may not exist or be writable. Quoted because the setting is a list
    // split on commas. Too long a path would make startup fail, and we only
    // use TCP, so in that case go without a socket.
    let dir_str = data_dir.to_string_lossy();
    let socket_dirs = if dir_str.len() <= MAX_SOCKET_DIR_LEN {
        format!("\"{}\"", dir_str.replace('"', "\"\""))
    } else {
        String::new()
    };

    let mut cmd = Command::new(&bins.postgres);
    cmd.arg("-D")
        .arg(data_dir)
        .arg("-p")
        .arg(port.to_string())
        .arg("-c")
        .arg("listen_addresses=127.0.0.1")
        .arg("-c")
        .arg(format!("unix_socket_directories={socket_dirs}"))
        .arg("-c")
        .arg(format!("max_connections={}", opts.max_connections));
    if !opts.durable {
        for setting in [
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
        ] {
            cmd.arg("-c").arg(setting);
        }
    }
    // Extra server settings for a profiling run, `;`-separated (e.g.
    // `shared_preload_libraries=pg_stat_statements`); dev and benches only.
    if let Ok(extra) = std::env::var("MARKETPLACE_PG_SETTINGS") {
        for setting in extra.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            cmd.arg("-c").arg(setting);
        }
    }
    let log_err = log.try_clone().context("duplicating server log handle")?;
    cmd.current_dir(data_dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        // Own process group: a terminal Ctrl-C goes to our process only, and
        // we stop the server after the app has drained, not under it.
        .process_group(0);
    if let Some(account) = run_as {
        cmd.uid(account.uid).gid(account.gid);
    }

    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the hook only makes async-signal-safe syscalls and does not
    // allocate (from_raw_os_error / last_os_error do not allocate).
    unsafe {
        cmd.pre_exec(move || {
            // Fast shutdown if the thread that forked us (the spawner thread,
            // which lives as long as the process) dies. std runs this after
            // setuid, which would otherwise clear the setting.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // If we died between fork and prctl, the signal will never come.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    Ok(cmd)
}

type SpawnRequest = (Command, tokio::sync::oneshot::Sender<io::Result<Child>>);

/// Spawns `cmd` from the thread that lives as long as the process, so a
/// `PR_SET_PDEATHSIG` the command sets in its `pre_exec` fires when this
/// process ends, not when some runtime thread does. Test harnesses use it to
/// tie their brokers and child processes to the test binary.
pub async fn spawn_tied(cmd: Command) -> anyhow::Result<Child> {
    spawn_from_spawner_thread(cmd).await
}

/// Spawns `cmd` from a dedicated thread that lives as long as the process.
///
/// PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not
/// the process, and tokio worker and blocking threads come and go; spawning
/// from one of them would shut the server down at a random moment.
async fn spawn_from_spawner_thread(cmd: Command) -> anyhow::Result<Child> {
    let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
    spawner()?
        .send((cmd, reply_tx))
        .map_err(|_| anyhow::anyhow!("embedded PostgreSQL spawner thread is gone"))?;
    let child = reply_rx
        .await
        .context("embedded PostgreSQL spawner thread dropped the request")??;
    Ok(child)
}

fn spawner() -> anyhow::Result<&'static mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    if let Some(sender) = SPAWNER.get() {
        return Ok(sender);
    }
    let (tx, rx) = mpsc::channel::<SpawnRequest>();
    std::thread::Builder::new()
        .name("embedded-pg-spawner".into())
        .spawn(move || {
            // Ends only when the sender is dropped, which for the installed
            // sender is never.
            for (mut cmd, reply) in rx {
                let _ = reply.send(cmd.spawn());
            }
        })
        .context("starting the embedded PostgreSQL spawner thread")?;
    // If two callers race here, the loser's sender is dropped and its thread
    // exits without ever having spawned anything, which is harmless.
    Ok(SPAWNER.get_or_init(|| tx))
}

fn send_signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions. The child has not been
    // reaped (callers check try_wait first), so the PID is still ours.
    unsafe {
        libc::kill(child.id() as libc::pid_t, signal);
    }
}

/// SIGINT (PostgreSQL's fast shutdown), then SIGKILL if it takes too long.
async fn shutdown(mut child: Child, timeout: Duration) -> anyhow::Result<()> {
    if let Some(status) = child.try_wait().context("checking server process")? {
        tracing::warn!(%status, "embedded PostgreSQL had already exited");
        return Ok(());
    }
    send_signal(&child, libc::SIGINT);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().context("waiting for server process")? {
            if !status.success() {
                tracing::warn!(%status, "embedded PostgreSQL exited abnormally on shutdown");
            }
            return Ok(());
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    send_signal(&child, libc::SIGKILL);
    // SIGKILL cannot be ignored, so this wait is short.
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .context("waiting for killed server process")?
        .context("waiting for killed server process")?;
    bail!(
        "embedded PostgreSQL did not shut down within {}s and was killed",
        timeout.as_secs()
    )
}

/// The last lines the server wrote since `start` (this run only).
fn read_log_tail(log_path: &Path, start: u64) -> String {
    let read = || -> io::Result<String> {
        let mut file = File::open(log_path)?;
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(LOG_TAIL_LINES);
            lines[from..].join("\n")
        }
        Err(e) => format!("(could not read {}: {e})", log_path.display()),
    }
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so any
/// database name survives the URL.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[path = "embedded_pg_tests.rs"]
mod tests;
