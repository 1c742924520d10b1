//! Tests of the cgroup layer: fixture trees shaped like cgroupfs for v1 and
//! v2, the device rule engine and BPF program, the stats JSON, and (as root)
//! the real kernel.

mod devices;
mod fixture;
mod host;
mod paths;
mod stats_json;
mod v1;
mod v1_stats;
mod v2;
