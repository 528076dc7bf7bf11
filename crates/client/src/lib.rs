//! `custos-client`: a client of the Custos CAS, for the `custos` CLI and for any Rust program
//! that embeds one.
//!
//! - [`CasClient`]: the CAS's client API (`docs/cas.md` § The client API) over mutual TLS —
//!   sessions, public values, the audit log, version and health as the `custos_protocol`
//!   types; refusals as [`ClientError::Refused`] with the CAS's code, message and reasons.
//!   The CAS may be several replicas serving one key (`a:8081,b:8081`, or a name resolving to
//!   several addresses): a call moves to another replica only when the one it asked did not
//!   process it ([`failover`]).
//! - [`ClientIdentity`]: the key and self-signed certificate the client presents; the CAS knows
//!   the client by its key hash ([`ClientIdentity::id`]).
//! - [`attest`]: "attest this CAS" — fetch its evidence, check it binds the CAS's TLS key and
//!   a fresh nonce, verify it against the caller's [`attest::Expectations`], and return the key
//!   hash to pin. A client trusts a CAS only by that pin ([`ServerTrust::Pinned`]); a server
//!   with another key is refused with [`ClientError::PinMismatch`].
//!
//! Embedding it: attest a simulated CAS once (testing only), then use it by its pin.
//!
//! ```no_run
//! use custos_attestation::claims::Claims;
//! use custos_attestation::policy::{IdentityPolicy, ServicePolicy, Toleration, Tolerations};
//! use custos_client::attest::{self, Expectations, HardwareError};
//! use custos_client::{CasClient, ClientIdentity, ServerTrust};
//!
//! /// Any simulated CAS in debug mode: for a test setup, never for production secrets.
//! struct AnySimulatedCas;
//!
//! impl Expectations for AnySimulatedCas {
//!     fn accepts_simulation(&self) -> bool {
//!         true
//!     }
//!     fn verify_sgx_quote(&self, _: &[u8], _: &[u8]) -> Result<Claims, HardwareError> {
//!         Err(HardwareError::Unverifiable("this program does not verify SGX quotes".into()))
//!     }
//!     fn policy(&self, claims: &Claims) -> Result<ServicePolicy, String> {
//!         Ok(ServicePolicy {
//!             identities: vec![IdentityPolicy { mrenclave: Some(claims.mrenclave()), signer: None }],
//!             tolerations: Tolerations::of([Toleration::DebugMode]),
//!             platforms: Vec::new(),
//!         })
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let cas = attest::attest("127.0.0.1:8081", &AnySimulatedCas).await?;
//! let me = ClientIdentity::generate("my-program")?;
//! let client = CasClient::new(&cas.addr, Some(&me), ServerTrust::Pinned(cas.key_hash))?;
//! let written = client
//!     .create_session("name: my-namespace\nversion: \"0.3\"\n")
//!     .await?;
//! println!("{} {}", written.name, written.hash);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod attest;
pub mod candidates;
mod cas;
mod connection;
pub mod failover;
mod identity;

pub use candidates::{Candidate, StartAt};
pub use cas::{CasClient, ClientError, Response, ServerTrust};
pub use connection::{Connection, Timeouts};
pub use custos_ids::KeyHash;
pub use failover::Attempt;
/// The HTTP method and status types of [`CasClient::request`] and [`Response`].
pub use hyper::{Method, StatusCode};
pub use identity::{ClientIdentity, IdentityError};
