//! `custos-cas`: the CAS server.

fn main() {}
