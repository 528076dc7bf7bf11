//! Parse+validate benchmark: a session with 1,000 secrets and 100 services.
//!
//! Run with `cargo run --release -p custos-policy --example parse_bench [ITERATIONS]`.
//! Prints the session size and the time per `parse` (YAML, decoding, every check, hash):
//! minimum, median, mean and maximum wall time over the iterations, and on Linux the CPU time
//! per parse and the time spent waiting for a core (a busy machine inflates wall time, not CPU
//! time). Target: under 20 ms.

use std::fmt::Write;
use std::time::{Duration, Instant};

const SECRETS: usize = 1000;
const SERVICES: usize = 100;

/// 1,000 secrets of every kind and source, and 100 services that use them through placeholders.
pub fn session_text() -> String {
    let mut s = String::from(
        "name: bench/namespace/session\nversion: \"0.3\"\n\
         security:\n  attestation:\n    mode: maa\n    url: https://sharedcus.cus.attest.azure.net\n    tolerate: [debug-mode, maa-managed-tcb]\n\
         secrets:\n\
         \x20 - name: AAD\n    kind: aad-token\n    tenant_id: 72f988bf-86f1-41af-91ab-2d7cd011db47\n    client_id: 6e8ad3c4-6b06-4c2a-a3c0-4a1b7c4e3b2f\n    application_secret: not-a-real-secret\n\
         \x20 - name: CA_KEY\n    kind: private-key\n\
         \x20 - name: CA\n    kind: x509-ca\n    private_key: CA_KEY\n    common_name: Bench CA\n",
    );
    for i in 3..SECRETS {
        match i % 6 {
            0 => writeln!(s, "  - name: S{i}\n    kind: ascii\n    size: 32"),
            1 => writeln!(s, "  - name: S{i}\n    kind: binary\n    value: deadbeef"),
            2 => writeln!(s, "  - name: S{i}\n    kind: private-key\n    key_type: P-384"),
            3 if i > 3 => writeln!(
                s,
                "  - name: S{i}\n    kind: x509\n    private_key: S{}\n    issuer: CA\n    dns: [svc{i}.example.com]\n    valid_for: 90 days",
                i - 1
            ),
            4 => writeln!(
                s,
                "  - name: S{i}\n    kind: ascii\n    import_akv:\n      vault: https://bench.vault.azure.net/\n      secret_name: secret-{i}\n      token: $$SCONE::AAD$$"
            ),
            _ => writeln!(
                s,
                "  - name: S{i}\n    kind: ascii\n    export:\n      - session: bench/namespace/other{i}"
            ),
        }
        .unwrap();
    }
    s.push_str("services:\n");
    for i in 0..SERVICES {
        writeln!(
            s,
            "  - name: service-{i}\n    image_name: image-{i}\n    command: [\"/app/server\", \"--id\", \"{i}\", \"--token=$$SCONE::S{}$$\"]\n    pwd: /app\n    mrenclaves: [\"{:064x}\"]\n    environment:",
            6 * (i % 160) + 6,
            i + 1
        )
        .unwrap();
        for j in 0..10 {
            let secret = 6 * ((i * 10 + j) % 160) + 6;
            writeln!(s, "      VAR_{j}: \"$$SCONE::S{secret}:hex$$\"").unwrap();
        }
    }
    s.push_str("images:\n");
    for i in 0..SERVICES {
        let cert = 6 * (i % 160) + 9;
        writeln!(
            s,
            "  - name: image-{i}\n    injection_files:\n      - path: /tls/cert.pem\n        content: $$SCONE::S{cert}:chain$$\n      - path: /tls/key.pem\n        content: $$SCONE::S{cert}.key$$\n        permission: \"0600\""
        )
        .unwrap();
    }
    s
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// This thread's time on a CPU and time waiting for one, from Linux's schedstat: unlike wall
/// time, CPU time does not grow when other processes compete for the cores.
fn schedstat() -> Option<(Duration, Duration)> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    let (run, wait) = (fields.next()??, fields.next()??);
    Some((Duration::from_nanos(run), Duration::from_nanos(wait)))
}

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("ITERATIONS is a number"))
        .unwrap_or(50);
    let text = session_text();
    let parsed = custos_policy::parse("bench.yml", &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed.secrets.len(), SECRETS);
    assert_eq!(parsed.services.len(), SERVICES);

    let mut times = Vec::with_capacity(iterations);
    let before = schedstat();
    for _ in 0..iterations {
        let start = Instant::now();
        let session = custos_policy::parse("bench.yml", &text);
        times.push(start.elapsed());
        assert!(session.is_ok());
    }
    let after = schedstat();
    times.sort();
    let mean = times.iter().sum::<Duration>() / iterations as u32;
    println!(
        "parse+validate+hash: {SECRETS} secrets, {SERVICES} services, {} KiB, {iterations} iterations",
        text.len() / 1024
    );
    println!(
        "  min {:.2} ms   median {:.2} ms   mean {:.2} ms   max {:.2} ms   (target < 20 ms)",
        ms(times[0]),
        ms(times[iterations / 2]),
        ms(mean),
        ms(times[iterations - 1])
    );
    if let (Some((run0, wait0)), Some((run1, wait1))) = (before, after) {
        let n = iterations as u32;
        println!(
            "  cpu {:.2} ms per parse; waited {:.2} ms per parse for a free core",
            ms((run1 - run0) / n),
            ms((wait1 - wait0) / n)
        );
    }
}
