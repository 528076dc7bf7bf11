//! `services[].refresh`, a Custos extension: how `custos-run` keeps a service's secrets fresh.

use super::Decoder;
use super::reader::{Field, Fields};
use crate::diagnostic::Problem;
use crate::model::{
    DEFAULT_REFRESH_GRACE, MAX_REFRESH_GRACE, OnChange, OnDenial, Refresh, RefreshSignal,
};

const REFRESH_KEYS: &[&str] = &["interval", "on_change", "signal", "grace", "on_denial"];

impl Decoder<'_> {
    pub(super) fn refresh(&mut self, f: Field<'_, '_>) -> Option<Refresh> {
        let fields = self.r.fields(f, REFRESH_KEYS, &[])?;
        let mut ok = true;
        let interval = self
            .r
            .required(
                &fields,
                "interval",
                "how often the service re-attests for fresh secrets, e.g. `10 minutes`",
            )
            .and_then(|i| self.r.duration(i.field()));
        ok &= interval.is_some();

        let on_change = self.keyword_or(
            &fields,
            "on_change",
            OnChange::from_keyword,
            OnChange::KEYWORDS,
            OnChange::Signal,
        );
        ok &= on_change.is_some();

        let signal = match fields.get("signal") {
            Some(i) => {
                let signal = self.r.keyword(
                    i.field(),
                    "signal",
                    RefreshSignal::from_keyword,
                    RefreshSignal::KEYWORDS,
                );
                // A signal the runtime would never send is a mistake, not a no-op.
                if let Some(other) = on_change.filter(|c| *c != OnChange::Signal) {
                    self.r.report(
                        i.key_or_value_at(),
                        &i.path,
                        Problem::Conflict,
                        format!(
                            "`signal` is only used with `on_change: signal`, but `on_change` is `{other}`"
                        ),
                    );
                    ok = false;
                }
                signal
            }
            None => Some(RefreshSignal::Sighup),
        };
        ok &= signal.is_some();

        let grace = match fields.get("grace") {
            Some(i) => self.r.duration(i.field()).and_then(|grace| {
                if grace > MAX_REFRESH_GRACE {
                    self.r.invalid(
                        i.field(),
                        format!(
                            "a grace period of {} seconds is too long: at most {} seconds (1 hour)",
                            grace.as_secs(),
                            MAX_REFRESH_GRACE.as_secs()
                        ),
                    );
                    return None;
                }
                Some(grace)
            }),
            None => Some(DEFAULT_REFRESH_GRACE),
        };
        ok &= grace.is_some();

        let on_denial = self.keyword_or(
            &fields,
            "on_denial",
            OnDenial::from_keyword,
            OnDenial::KEYWORDS,
            OnDenial::Keep,
        );
        ok &= on_denial.is_some();

        if !ok {
            return None;
        }
        Some(Refresh {
            interval: interval?,
            on_change: on_change?,
            signal: signal?,
            grace: grace?,
            on_denial: on_denial?,
        })
    }

    /// The keyword at `key`, or `default` when the key is absent.
    fn keyword_or<T>(
        &mut self,
        fields: &Fields<'_>,
        key: &str,
        from_keyword: fn(&str) -> Option<T>,
        keywords: &'static [&'static str],
        default: T,
    ) -> Option<T> {
        match fields.get(key) {
            Some(i) => self.r.keyword(i.field(), key, from_keyword, keywords),
            None => Some(default),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Diagnostics;

    fn parse_refresh(refresh: &str) -> Result<Option<Refresh>, Diagnostics> {
        let text = format!(
            "name: ns/app\nversion: \"0.3\"\nsecurity: {{ attestation: {{ mode: none }} }}\nservices:\n  - name: app\n{refresh}"
        );
        crate::parse("s.yml", &text).map(|s| s.services[0].refresh)
    }

    fn rejected(refresh: &str) -> Vec<String> {
        parse_refresh(refresh)
            .unwrap_err()
            .iter()
            .map(|d| {
                format!(
                    "{}:{} {} {}",
                    d.position.line, d.position.column, d.path, d.message
                )
            })
            .collect()
    }

    #[test]
    fn absent_refresh_is_none() {
        assert_eq!(parse_refresh("").unwrap(), None);
    }

    #[test]
    fn defaults_apply_to_everything_but_the_interval() {
        let refresh = parse_refresh("    refresh: { interval: 10 minutes }\n").unwrap();
        assert_eq!(
            refresh,
            Some(Refresh {
                interval: Duration::from_secs(600),
                on_change: OnChange::Signal,
                signal: RefreshSignal::Sighup,
                grace: Duration::from_secs(10),
                on_denial: OnDenial::Keep,
            })
        );
    }

    #[test]
    fn every_setting_is_read() {
        let refresh = parse_refresh(
            "    refresh:\n      interval: 1 second\n      on_change: signal\n      signal: SIGUSR2\n      grace: 1 hour\n      on_denial: stop\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(refresh.interval, Duration::from_secs(1));
        assert_eq!(refresh.signal, RefreshSignal::Sigusr2);
        assert_eq!(refresh.grace, MAX_REFRESH_GRACE);
        assert_eq!(refresh.on_denial, OnDenial::Stop);

        for (written, expected) in [("restart", OnChange::Restart), ("none", OnChange::None)] {
            let refresh = parse_refresh(&format!(
                "    refresh: {{ interval: 2 hours, on_change: {written} }}\n"
            ))
            .unwrap()
            .unwrap();
            assert_eq!(refresh.on_change, expected);
            assert_eq!(refresh.interval, Duration::from_secs(7200));
        }
    }

    #[test]
    fn problems_name_the_field_and_the_values() {
        assert_eq!(
            rejected("    refresh: { on_denial: stop }\n"),
            [
                "6:5 services[0].refresh.interval missing `interval`: how often the service re-attests for fresh secrets, e.g. `10 minutes`"
            ]
        );
        assert_eq!(
            rejected("    refresh: { interval: 1 minute, on_change: none, signal: SIGHUP }\n"),
            [
                "6:53 services[0].refresh.signal `signal` is only used with `on_change: signal`, but `on_change` is `none`"
            ]
        );
        assert_eq!(
            rejected("    refresh: { interval: 1 minute, grace: 61 minutes }\n"),
            [
                "6:43 services[0].refresh.grace a grace period of 3660 seconds is too long: at most 3600 seconds (1 hour)"
            ]
        );
        let unknown = rejected("    refresh: { interval: 0 seconds, on_change: reload }\n");
        assert_eq!(unknown.len(), 2, "{unknown:?}");
        assert!(
            unknown[0].starts_with("6:26 services[0].refresh.interval `0 seconds` is out of range"),
            "{unknown:?}"
        );
        assert!(
            unknown[1].starts_with("6:48 services[0].refresh.on_change unknown on_change `reload`"),
            "{unknown:?}"
        );
        assert!(
            unknown[1].ends_with("(expected one of: signal, restart, none)"),
            "{unknown:?}"
        );
    }
}
