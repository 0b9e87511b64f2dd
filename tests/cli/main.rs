//! The binary's first hour: serve flags without `serve`, and startup failures that say in one line
//! what failed, where, and what to do. Each test runs the real binary.

// The shared test kit; this suite uses only part of it.
#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use socket_bridge::store::EventLog;

use support::binary::{HubProcess, run};

/// The one error line a failed start prints.
fn error_line(output: &Output) -> String {
    assert!(!output.status.success(), "expected a failure: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got: {stderr}");
    lines[0].to_owned()
}

fn free_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind")
}

/// `--help` lists the serve flags at the top level, and they parse without `serve`.
#[test]
fn serve_flags_work_at_the_top_level() {
    let help = run(&["--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in ["--listen", "--data-dir", "--nats-url", "--prune-schedule"] {
        assert!(text.contains(flag), "--help lacks {flag}: {text}");
    }
    // A taken port fails after parsing: the flags were accepted without `serve`.
    let taken = free_listener();
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("dir");
    let line = error_line(&run(&[
        "--listen",
        &addr,
        "--data-dir",
        &dir.path().join("d").display().to_string(),
    ]));
    assert!(line.contains(&addr), "{line}");
}

/// `--insecure-dev-auth` is refused at start, in one line that says why, on an address other
/// than loopback; on 127.0.0.1 the hub starts and takes the tokenless `{ userId, clientId }`
/// handshake.
#[tokio::test]
async fn insecure_dev_auth_only_on_loopback() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let data = data.display().to_string();
    let line = error_line(&run(&[
        "--listen",
        "0.0.0.0:0",
        "--insecure-dev-auth",
        "--data-dir",
        &data,
    ]));
    assert!(
        line.contains("--insecure-dev-auth") && line.contains("0.0.0.0:0"),
        "{line}"
    );
    assert!(!dir.path().join("data").exists(), "nothing written");

    let hub = HubProcess::start(dir.path(), |command| {
        command.arg("--insecure-dev-auth");
    })
    .await;
    let mut client = hub
        .client(serde_json::json!({ "userId": "u1", "clientId": "c1" }))
        .await;
    let established = client.next_named("connection:established").await;
    assert_eq!(established["userId"], "u1");
    client.close().await;
    hub.kill();
}

/// A port in use is named, with what to do, before anything is written to the data dir.
#[test]
fn port_in_use_is_found_before_the_data_dir_is_touched() {
    let taken = free_listener();
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let line = error_line(&run(&[
        "serve",
        "--listen",
        &addr,
        "--data-dir",
        &data.display().to_string(),
    ]));
    assert!(line.contains(&format!("cannot listen on {addr}")), "{line}");
    assert!(line.contains("pass --listen"), "{line}");
    assert!(!data.exists(), "the data dir was created: {line}");
}

/// A data dir held by another process names the store directory and the holder's pid.
#[test]
fn held_data_dir_names_the_holder() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let held = EventLog::open(data.join("store")).expect("open the store in this process");
    let line = error_line(&run(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data.display().to_string(),
    ]));
    assert!(
        line.contains(&data.join("store").display().to_string()),
        "{line}"
    );
    assert!(
        line.contains(&format!("pid {}", std::process::id())),
        "{line}"
    );
    assert!(line.contains("in use by another socket-bridge"), "{line}");
    held.close().expect("close");
}

/// A read-only place for the data dir is named, with what to do.
#[test]
fn read_only_data_dir_names_the_path() {
    let dir = tempfile::tempdir().expect("dir");
    let read_only = ReadOnlyDir::new(dir.path());
    let data = read_only.path().join("data");
    let line = error_line(&run(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data.display().to_string(),
    ]));
    assert!(line.contains(&data.display().to_string()), "{line}");
    assert!(line.contains("make the data dir writable"), "{line}");
}

/// A bad cron expression and a bad duration say what they want.
#[test]
fn bad_schedule_and_duration_say_what_they_want() {
    let line = error_line(&run(&["--prune-schedule", "often"]));
    assert!(line.contains("--prune-schedule `often`"), "{line}");
    assert!(line.contains("seconds field"), "{line}");
    let out = run(&["token", "--user", "u1", "--ttl", "soon"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("use e.g. 30s, 15m, 1h or 7d"), "{text}");
}

/// `token --permission` refuses a typo and lists the valid permissions.
#[test]
fn unknown_permission_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let out = run(&[
        "token",
        "--data-dir",
        &dir.path().display().to_string(),
        "--user",
        "u1",
        "--permission",
        "read:photo",
    ]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("unknown permission `read:photo`"), "{text}");
    assert!(text.contains("read:photos, write:photos"), "{text}");
}

/// Every long flag of `serve --help` is a row of README's configuration table with the same
/// environment variable, and every flag the table lists exists.
#[test]
fn readme_configuration_table_lists_every_serve_flag() {
    let help = run(&["serve", "--help"]);
    assert!(help.status.success(), "{help:?}");
    let help = help_flags(&String::from_utf8_lossy(&help.stdout));
    let readme = readme_flags();
    let in_help: BTreeSet<&String> = help.keys().collect();
    let in_readme: BTreeSet<&String> = readme.keys().collect();
    assert!(
        in_help.difference(&in_readme).next().is_none(),
        "serve flags missing from README.md's configuration table: {:?}",
        in_help.difference(&in_readme).collect::<Vec<_>>()
    );
    assert!(
        in_readme.difference(&in_help).next().is_none(),
        "README.md's configuration table lists flags `serve --help` lacks: {:?}",
        in_readme.difference(&in_help).collect::<Vec<_>>()
    );
    for (flag, env) in &help {
        if let Some(env) = env {
            assert_eq!(
                readme[flag].as_deref(),
                Some(env.as_str()),
                "README.md's env var for {flag}"
            );
        }
    }
}

/// The long flags of a `--help` text (without `--help` itself), each with the environment
/// variable it names (`[env: NAME=...]`), if any.
fn help_flags(help: &str) -> BTreeMap<String, Option<String>> {
    let mut flags = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in help.lines() {
        let option = line.trim_start().trim_start_matches("-h, ");
        if let Some(rest) = option.strip_prefix("--") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            let flag = format!("--{name}");
            current = (flag != "--help").then(|| flag.clone());
            if let Some(flag) = &current {
                flags.insert(flag.clone(), None);
            }
        }
        if let (Some(flag), Some((_, env))) = (&current, line.split_once("[env: ")) {
            let env = env.split(['=', ']']).next().unwrap_or_default();
            flags.insert(flag.clone(), Some(env.to_owned()));
        }
    }
    flags
}

/// The flags of README.md's configuration table (first column), each with its env var column.
fn readme_flags() -> BTreeMap<String, Option<String>> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README.md has a Configuration section");
    let mut flags = BTreeMap::new();
    for row in section.lines().filter(|l| l.starts_with("| `--")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let env = cells
            .get(2)
            .map(|cell| cell.trim_matches('`').to_owned())
            .filter(|env| !env.is_empty());
        for flag in cells[1].split('`').filter(|part| part.starts_with("--")) {
            flags.insert(flag.to_owned(), env.clone());
        }
    }
    flags
}

/// A directory in which nothing can be created. Root ignores permission bits, so as root it is
/// a read-only tmpfs (or, where mounting is not allowed, sysfs); otherwise a directory without
/// write permission.
struct ReadOnlyDir {
    path: PathBuf,
    mounted: bool,
}

impl ReadOnlyDir {
    fn new(parent: &Path) -> Self {
        let path = parent.join("read-only");
        std::fs::create_dir(&path).expect("mkdir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k,ro", "tmpfs"])
            .arg(&path)
            .output()
            .is_ok_and(|o| o.status.success());
        if mounted {
            return Self { path, mounted };
        }
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if root {
            return Self {
                path: PathBuf::from("/sys"),
                mounted,
            };
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o555)).expect("chmod");
        Self { path, mounted }
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ReadOnlyDir {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.path).status();
        } else if self.path != Path::new("/sys") {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o755));
        }
    }
}
