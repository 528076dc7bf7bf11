//! One orchestrator for Custos's processes, and the readiness contract it relies on.
//!
//! - [`ready`]: the documents `custos-cas`, `custos-las` and `custos-azure-emulator` write to
//!   `--ready-file` once every listener is bound (written atomically; removed at start-up).
//!   The servers link this module; nothing else of the crate runs in them.
//! - [`process`]: a child process with its output in log files, waited on for a ready file or
//!   a log line, within deadlines, and killed when dropped.
//! - [`services`]: starting a LAS, the Azure emulator and a CAS on loopback ports the kernel
//!   picks, and the sample's variables, written once.
//! - [`postgres`]: a real PostgreSQL server in a cluster of its own, for the tests and
//!   benchmarks of the replicated CAS.
//!
//! Users: `custos demo`, the end-to-end tests and benchmarks (`custos-e2e`), the CAS's process
//! tests and its throughput benchmark.

#![warn(missing_docs)]

pub mod postgres;
pub mod process;
pub mod ready;
pub mod services;

pub use process::{Log, Process};
pub use services::{Cas, Emulator, Las, Launcher, SAMPLE_AZURE_VARS, sample_vars};
