//! Child processes of the kit (`nats-server`, the `socket-bridge` binary): started with their
//! output read line by line, ready when a line of it says so (a server reports the port it bound,
//! nothing probes for a free one), stopped with SIGTERM or SIGKILL, and killed when dropped.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::WAIT;

/// A running child process, killed when dropped.
pub struct Process {
    child: Child,
    /// Every line of its output so far (stdout and stderr, in the order read).
    output: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Starts `command` with stdout and stderr piped and waits (up to [`WAIT`]) until `ready`
    /// returns a value for a line of either; returns the process and that value. Every line is
    /// read to the end of the process, and written to this process's stderr when `echo` is set.
    /// Only failing to start is an error; not getting ready in time panics with the output so far.
    /// Every line stays readable with [`output`](Self::output).
    pub async fn start<T: Send + 'static>(
        command: Command,
        echo: bool,
        ready: impl FnMut(&str) -> Option<T> + Send + 'static,
    ) -> std::io::Result<(Self, T)> {
        tokio::task::spawn_blocking(move || Self::start_blocking(command, echo, ready))
            .await
            .expect("process start task")
    }

    fn start_blocking<T>(
        mut command: Command,
        echo: bool,
        mut ready: impl FnMut(&str) -> Option<T>,
    ) -> std::io::Result<(Self, T)> {
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let (tx, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            forward(stdout, tx.clone(), echo);
        }
        if let Some(stderr) = child.stderr.take() {
            forward(stderr, tx, echo);
        }
        // Owned from here on, so that a panic below kills it.
        let output = Arc::new(Mutex::new(Vec::new()));
        let process = Self {
            child,
            output: Arc::clone(&output),
        };
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let line = match lines.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "{program} was not ready within {WAIT:?}; its output:\n{}",
                        seen.join("\n")
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "{program} ended before it was ready; its output:\n{}",
                        seen.join("\n")
                    )
                }
            };
            let value = ready(&line);
            seen.push(line);
            if let Some(value) = value {
                output.lock().expect("output lock").append(&mut seen);
                std::thread::spawn(move || {
                    for line in lines {
                        output.lock().expect("output lock").push(line);
                    }
                });
                return Ok((process, value));
            }
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Every line of its output so far.
    pub fn output(&self) -> Vec<String> {
        self.output.lock().expect("output lock").clone()
    }

    /// SIGTERM (what an operator's restart sends), then waits until it has exited.
    pub fn terminate(&mut self) -> ExitStatus {
        let terminated = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !terminated {
            let _ = self.child.kill();
        }
        self.child.wait().expect("reaped")
    }

    /// Waits up to `limit` for the process to exit by itself; its exit status, if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, then waits until it is gone.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `output` line by line on a thread until it ends, sending each line to `lines` and
/// echoing it to stderr when `echo` is set.
fn forward(output: impl Read + Send + 'static, lines: Sender<String>, echo: bool) {
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            if echo {
                eprintln!("{line}");
            }
            let _ = lines.send(line);
        }
    });
}
