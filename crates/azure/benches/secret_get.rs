//! Secret-get latency against the emulator on loopback, with a cold and a cached token, and
//! the number of token requests while 1,000 secrets are fetched.
//!
//! `cargo bench -p custos-azure --bench secret_get` (the emulator runs in the same process).

use std::sync::Arc;
use std::time::{Duration, Instant};

use custos_azure::{AzureCredential, CredentialOptions, CredentialSpec, HttpOptions, KeyVault};
use custos_azure_emulator::demo;
use secrecy::SecretString;

const COLD_RUNS: usize = 50;
const SECRETS: usize = 1000;

fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    format!(
        "n={:>4}  mean {:>8.3} ms  p50 {:>8.3} ms  p90 {:>8.3} ms  p99 {:>8.3} ms",
        samples.len(),
        ms(mean),
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99))
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (config, secret) = demo::config();
        let running = custos_azure_emulator::start(config).await.unwrap();
        let http = HttpOptions::trusting_only_pem(running.ca_pem().as_bytes()).unwrap();
        let options = CredentialOptions { authority_host: running.urls().authority_host.clone(), http: http.clone() };
        let credential = || {
            AzureCredential::new(
                CredentialSpec::ClientSecret {
                    tenant_id: demo::TENANT_ID.into(),
                    client_id: demo::CLIENT_ID.into(),
                    secret: SecretString::from(secret.clone()),
                },
                &options,
            )
            .unwrap()
        };

        // Cold: new credential, new connections; the SDK's 401 challenge, a token request, the read.
        let mut cold = Vec::new();
        for _ in 0..COLD_RUNS {
            let vault = KeyVault::new(&running.urls().vault, &credential(), &http).unwrap();
            let started = Instant::now();
            vault.get_secret(demo::SECRET_NAME, None).await.unwrap();
            cold.push(started.elapsed());
        }

        // Cached token: one client, serial reads.
        let before = running.stats();
        let vault = Arc::new(KeyVault::new(&running.urls().vault, &credential(), &http).unwrap());
        vault.get_secret(demo::SECRET_NAME, None).await.unwrap();
        let mut cached = Vec::new();
        for _ in 0..SECRETS {
            let started = Instant::now();
            vault.get_secret(demo::SECRET_NAME, None).await.unwrap();
            cached.push(started.elapsed());
        }
        let serial_tokens = running.stats().token_requests - before.token_requests;

        // A fresh client, 1,000 reads at once.
        let before = running.stats();
        let vault = Arc::new(KeyVault::new(&running.urls().vault, &credential(), &http).unwrap());
        let started = Instant::now();
        let reads: Vec<_> = (0..SECRETS)
            .map(|_| {
                let vault = vault.clone();
                tokio::spawn(async move { vault.get_secret(demo::SECRET_NAME, None).await.map(drop) })
            })
            .collect();
        for read in reads {
            read.await.unwrap().unwrap();
        }
        let concurrent_wall = started.elapsed();
        let concurrent_tokens = running.stats().token_requests - before.token_requests;

        println!("secret get, emulator on loopback (HTTPS, same process), {} cores", std::thread::available_parallelism().map_or(0, |n| n.get()));
        println!("  cold token (challenge + token + read): {}", summary(cold));
        println!("  cached token (read only):              {}", summary(cached));
        println!("  token requests for {SECRETS} serial reads:     {serial_tokens}");
        println!(
            "  token requests for {SECRETS} concurrent reads: {concurrent_tokens}  (wall {:.1} ms, {:.0} reads/s)",
            ms(concurrent_wall),
            SECRETS as f64 / concurrent_wall.as_secs_f64()
        );
        if serial_tokens != 1 || concurrent_tokens != 1 {
            eprintln!("FAIL: expected exactly one token request per credential");
            std::process::exit(1);
        }
    });
}
