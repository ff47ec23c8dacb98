//! The process's own resources, read from `/proc` at each scrape under the names every Prometheus
//! client library uses (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...), so the
//! usual dashboards and alerts apply. Off Linux there is no `/proc` and nothing is reported.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Linux reports CPU time and start time in clock ticks of `USER_HZ`, which is 100 on every
/// architecture's userspace ABI.
const TICKS_PER_SECOND: f64 = 100.0;

/// What `/proc` says of this process.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: f64,
    pub virtual_bytes: f64,
    pub threads: f64,
    pub start_time_seconds: f64,
    pub open_fds: f64,
    pub max_fds: Option<f64>,
}

/// The fields of `/proc/self/stat` after the command name (which may hold spaces and parentheses,
/// so it is cut at its last `)`), with the boot time from `/proc/stat`. Resident memory comes from
/// `/proc/self/status` ([`parse_resident_bytes`]): `stat` counts it in pages, whose size varies.
pub fn parse_stat(stat: &str, boot_time_seconds: f64) -> Option<ProcessStats> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 of proc(5) (state) is the first after the name.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |number: usize| -> Option<f64> { fields.get(number - 3)?.parse().ok() };
    Some(ProcessStats {
        cpu_seconds: (field(14)? + field(15)?) / TICKS_PER_SECOND,
        threads: field(20)?,
        start_time_seconds: boot_time_seconds + field(22)? / TICKS_PER_SECOND,
        virtual_bytes: field(23)?,
        resident_bytes: 0.0,
        open_fds: 0.0,
        max_fds: None,
    })
}

/// `btime` of `/proc/stat`: when the machine booted, in seconds since the epoch.
pub fn parse_boot_time(proc_stat: &str) -> Option<f64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit on open files from `/proc/self/limits`.
pub fn parse_max_fds(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `VmRSS` of `/proc/self/status`, which the kernel states in kB whatever its page size.
pub fn parse_resident_bytes(status: &str) -> Option<f64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: f64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024.0)
}

fn read() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot = parse_boot_time(&std::fs::read_to_string("/proc/stat").ok()?)?;
    let mut stats = parse_stat(&stat, boot)?;
    stats.resident_bytes =
        parse_resident_bytes(&std::fs::read_to_string("/proc/self/status").ok()?)?;
    stats.open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
    stats.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| parse_max_fds(&l));
    Some(stats)
}

/// Reads `/proc` at each scrape.
#[derive(Debug)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(stats) = read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(stats.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time spent, in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let mut gauges = vec![
            (
                "process_resident_memory_bytes",
                "Resident memory, in bytes",
                stats.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory, in bytes",
                stats.virtual_bytes,
            ),
            ("process_threads", "OS threads", stats.threads),
            (
                "process_start_time_seconds",
                "When the process started, in seconds since the epoch",
                stats.start_time_seconds,
            ),
            ("process_open_fds", "Open file descriptors", stats.open_fds),
        ];
        if let Some(max) = stats.max_fds {
            gauges.push(("process_max_fds", "The limit on open file descriptors", max));
        }
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_a_name_with_spaces_and_parentheses() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
        // stime cutime cstime priority nice num_threads itrealvalue starttime vsize rss ...
        let stat = "4242 (sluice (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 7 0 12345 104857600 2560 18446744073709551615";
        let stats = parse_stat(stat, 1_700_000_000.0).expect("parses");
        assert_eq!(stats.cpu_seconds, 3.0);
        assert_eq!(stats.threads, 7.0);
        assert!((stats.start_time_seconds - 1_700_000_123.45).abs() < 1e-3);
        assert_eq!(stats.virtual_bytes, 104_857_600.0);
        assert_eq!(parse_stat("4242 (cut", 0.0), None);
    }

    #[test]
    fn resident_memory_is_read_in_kilobytes_from_status() {
        let status = "Name:\tsluice\nVmPeak:\t  900 kB\nVmRSS:\t   51200 kB\nThreads:\t7\n";
        assert_eq!(parse_resident_bytes(status), Some(51_200.0 * 1024.0));
        assert_eq!(parse_resident_bytes("Name:\tsluice\n"), None);
    }

    #[test]
    fn boot_time_and_the_file_limit_are_read_from_their_lines() {
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(1.7e9)
        );
        assert_eq!(parse_boot_time("cpu 1\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1048576              1048576              files\n";
        assert_eq!(parse_max_fds(limits), Some(1_048_576.0));
    }

    #[test]
    fn this_process_is_read_from_proc() {
        let stats = read().expect("Linux has /proc");
        assert!(stats.resident_bytes > 1_000_000.0, "{stats:?}");
        assert!(stats.threads >= 1.0 && stats.open_fds >= 3.0, "{stats:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        assert!(
            stats.start_time_seconds <= now + 1.0
                && stats.start_time_seconds > now - 86_400.0 * 365.0
        );
    }
}
