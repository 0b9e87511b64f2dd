//! What the tool measures besides deliveries: CPU time of a process (the server's from
//! `/proc/<pid>`, its own from `/proc/self`) and the other work on the core it is pinned to,
//! resident memory, the load average, system calls (with `perf stat`), and the tool's clock for
//! latencies.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;

/// Highest latency the histograms keep, in microseconds (one minute); longer ones count as that.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Microseconds since the tool's first call of this function: the clock of the publish times
/// carried in events and of their receipt (one process, so one monotonic clock).
pub fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// A latency histogram in microseconds.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant bounds are valid")
}

/// Which process a [`CpuSample`] reads.
#[derive(Debug, Clone, Copy)]
pub enum Proc {
    /// This process.
    Own,
    /// Another process (the server).
    Pid(u32),
}

impl Proc {
    fn dir(self) -> String {
        match self {
            Proc::Own => "/proc/self".to_owned(),
            Proc::Pid(pid) => format!("/proc/{pid}"),
        }
    }

    /// Resident memory in bytes (`VmRSS`).
    pub fn rss_bytes(self) -> anyhow::Result<u64> {
        let path = format!("{}/status", self.dir());
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .with_context(|| format!("no VmRSS in {path}"))?;
        Ok(kib * 1024)
    }
}

/// CPU time of a process at one moment, and of the core it is pinned to.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    at: Instant,
    /// utime + stime of every thread, from `stat` (clock ticks turned into time).
    cpu: Duration,
    /// Busy and stolen time of the one core the process may run on (`/proc/stat`), when it is
    /// pinned to one: the part of the busy time that is not the process's own is other work on
    /// that core.
    core: Option<CoreTimes>,
}

impl CpuSample {
    /// Reads `process` now.
    pub fn take(process: Proc) -> anyhow::Result<Self> {
        let dir = process.dir();
        let path = format!("{dir}/stat");
        let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        // The command name (field 2) may hold spaces; fields after its closing parenthesis are
        // plain. utime and stime are fields 14 and 15, i.e. the 12th and 13th after it.
        let after = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .with_context(|| format!("malformed {path}"))?;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| -> anyhow::Result<u64> {
            fields
                .get(i)
                .and_then(|f| f.parse().ok())
                .with_context(|| format!("malformed {path}"))
        };
        let cpu = ticks_to_duration(ticks(11)? + ticks(12)?);
        Ok(Self {
            at: Instant::now(),
            cpu,
            core: pinned_core(&dir).and_then(core_times),
        })
    }

    /// What happened between `self` and the later `end`.
    pub fn until(&self, end: &CpuSample) -> CpuUse {
        let cpu = end.cpu.saturating_sub(self.cpu);
        let (others, steal) = match (self.core, end.core) {
            (Some(start), Some(end)) => {
                let steal = end.steal.saturating_sub(start.steal);
                let busy = end.busy.saturating_sub(start.busy);
                (
                    Some(busy.saturating_sub(cpu).saturating_sub(steal)),
                    Some(steal),
                )
            }
            _ => (None, None),
        };
        CpuUse {
            wall: end.at.duration_since(self.at),
            cpu,
            others,
            steal,
        }
    }
}

/// CPU used over an interval.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    /// The interval.
    pub wall: Duration,
    /// CPU time (user + system) the process used in it.
    pub cpu: Duration,
    /// Busy time of its core that was neither its own nor stolen (other processes, interrupts),
    /// when it is pinned to one core: how disturbed the run was.
    pub others: Option<Duration>,
    /// Time the hypervisor ran something else while its core wanted to run (`steal` in
    /// `/proc/stat`), when it is pinned to one core: on a shared host, what makes the same
    /// binary slower from one hour to the next.
    pub steal: Option<Duration>,
}

impl CpuUse {
    /// CPU time as a share of one core over the interval.
    pub fn utilization(&self) -> f64 {
        self.cpu.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }

    /// CPU microseconds per unit of work (`count` deliveries, events ...).
    pub fn micros_per(&self, count: u64) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / count.max(1) as f64
    }
}

/// The clock ticks of `/proc/*/stat` are USER_HZ, 100 on Linux.
fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_millis(ticks * 10)
}

/// The core the process at `dir` is pinned to, if it may run on exactly one.
fn pinned_core(dir: &str) -> Option<usize> {
    let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
    let list = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))?
        .trim();
    list.parse().ok()
}

/// A core's times since boot, from `/proc/stat`.
#[derive(Debug, Clone, Copy)]
struct CoreTimes {
    /// Every column but idle and iowait (steal included).
    busy: Duration,
    /// The steal column.
    steal: Duration,
}

/// The times of core `core` since boot.
fn core_times(core: usize) -> Option<CoreTimes> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let name = format!("cpu{core}");
    let line = stat
        .lines()
        .find(|line| line.split_whitespace().next() == Some(name.as_str()))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    Some(CoreTimes {
        busy: ticks_to_duration(busy),
        steal: ticks_to_duration(ticks.get(7).copied().unwrap_or(0)),
    })
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// `perf stat` counting the system calls of a process while it runs.
pub struct SyscallCounter {
    perf: std::process::Child,
}

impl SyscallCounter {
    /// Starts counting the system calls of process `pid` (all its threads).
    pub fn start(pid: u32) -> anyhow::Result<Self> {
        let perf = std::process::Command::new("perf")
            .args(["stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "-p"])
            .arg(pid.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("starting `perf stat` (is perf installed, and may it trace the server?)")?;
        Ok(Self { perf })
    }

    /// Stops counting (SIGINT, as perf expects) and returns the count.
    pub fn finish(self) -> anyhow::Result<u64> {
        let interrupted = std::process::Command::new("kill")
            .args(["-INT", &self.perf.id().to_string()])
            .status()
            .context("signalling perf")?;
        anyhow::ensure!(interrupted.success(), "could not signal perf");
        let output = self.perf.wait_with_output().context("waiting for perf")?;
        let text = String::from_utf8_lossy(&output.stderr);
        text.lines()
            .find(|line| line.contains("raw_syscalls:sys_enter"))
            .and_then(|line| line.split(',').next())
            .and_then(|count| count.trim().parse().ok())
            .with_context(|| format!("no syscall count in perf's output: {text}"))
    }
}
