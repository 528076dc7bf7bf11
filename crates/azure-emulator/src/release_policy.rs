//! Secure key release policies in Key Vault's documented grammar (version `1.0.0`): an
//! `anyOf` of authorities, each with an `allOf` or `anyOf` of conditions; a condition is a
//! claim compared with one operator (`equals`, `notEquals`, `less`, `lessOrEquals`,
//! `greater`, `greaterOrEquals`, `exists`) or a nested `allOf`/`anyOf`.
//!
//! Claims are named by dotted path (`x-ms-isolation-tee.x-ms-attestation-type`); a claim whose
//! own name holds the whole path wins. Values compare as JSON: numbers by value, strings,
//! booleans and the rest exactly (`"true"` is not `true`). Parsing is strict — an unknown key
//! or a second operator is an error — because a policy that means less than it says would
//! release keys it should not.

use serde_json::{Map, Value};

/// A parsed release policy.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleasePolicy {
    rules: Vec<AuthorityRule>,
}

#[derive(Debug, Clone, PartialEq)]
struct AuthorityRule {
    authority: String,
    condition: Condition,
}

#[derive(Debug, Clone, PartialEq)]
enum Condition {
    AllOf(Vec<Condition>),
    AnyOf(Vec<Condition>),
    Claim {
        claim: String,
        operator: Operator,
        value: Value,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Equals,
    NotEquals,
    Less,
    LessOrEquals,
    Greater,
    GreaterOrEquals,
    Exists,
}

const OPERATORS: &[(&str, Operator)] = &[
    ("equals", Operator::Equals),
    ("notEquals", Operator::NotEquals),
    ("less", Operator::Less),
    ("lessOrEquals", Operator::LessOrEquals),
    ("greater", Operator::Greater),
    ("greaterOrEquals", Operator::GreaterOrEquals),
    ("exists", Operator::Exists),
];

/// The documented version.
pub const POLICY_VERSION: &str = "1.0.0";

impl ReleasePolicy {
    /// Parses the policy JSON (the decoded `release_policy.data`).
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let object = value.as_object().ok_or("not a JSON object")?;
        let mut version = None;
        let mut any_of = None;
        for (key, v) in object {
            match key.to_ascii_lowercase().as_str() {
                "version" => version = Some(v),
                "anyof" => any_of = Some(v),
                _ => return Err(format!("unknown key {key:?} (expected version and anyOf)")),
            }
        }
        match version.and_then(Value::as_str) {
            Some(POLICY_VERSION) => {}
            Some(other) => {
                return Err(format!(
                    "version {other:?} is not supported (expected {POLICY_VERSION:?})"
                ));
            }
            None => return Err(format!("version is missing (expected {POLICY_VERSION:?})")),
        }
        let authorities = non_empty_array(any_of, "anyOf")?;
        let rules = authorities
            .iter()
            .enumerate()
            .map(|(i, a)| parse_authority(a).map_err(|e| format!("anyOf[{i}]: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// The authorities the policy names, in order.
    pub fn authorities(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.authority.as_str())
    }

    /// Whether a token issued by `issuer` with `claims` satisfies the policy: one rule of that
    /// authority must hold. The error says which claim failed, expected and actual.
    pub fn evaluate(&self, issuer: &str, claims: &Value) -> Result<(), String> {
        let matching: Vec<&AuthorityRule> = self
            .rules
            .iter()
            .filter(|r| same_authority(&r.authority, issuer))
            .collect();
        if matching.is_empty() {
            return Err(format!(
                "no rule for authority {issuer} (the policy names {})",
                self.authorities().collect::<Vec<_>>().join(", ")
            ));
        }
        let mut reasons = Vec::new();
        for rule in matching {
            match rule.condition.evaluate(claims) {
                Ok(()) => return Ok(()),
                Err(reason) => reasons.push(reason),
            }
        }
        Err(reasons.join("; and "))
    }
}

/// Authorities compare as URLs: scheme and host case-insensitively, a trailing slash ignored.
fn same_authority(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

fn non_empty_array<'a>(value: Option<&'a Value>, name: &str) -> Result<&'a Vec<Value>, String> {
    match value {
        Some(Value::Array(items)) if !items.is_empty() => Ok(items),
        Some(Value::Array(_)) => Err(format!("{name} is empty (one entry is required)")),
        Some(_) => Err(format!("{name} is not an array")),
        None => Err(format!("{name} is missing")),
    }
}

fn parse_authority(value: &Value) -> Result<AuthorityRule, String> {
    let object = value.as_object().ok_or("not a JSON object")?;
    let mut authority = None;
    let mut rest = Map::new();
    for (key, v) in object {
        if key == "authority" {
            authority = Some(v.as_str().ok_or("authority is not a string")?.to_owned());
        } else {
            rest.insert(key.clone(), v.clone());
        }
    }
    let authority = authority.ok_or("authority is missing")?;
    if authority.is_empty() {
        return Err("authority is empty".into());
    }
    let condition = parse_group(&rest)?.ok_or("needs allOf or anyOf (a list of conditions)")?;
    Ok(AuthorityRule {
        authority,
        condition,
    })
}

/// `{"allOf": [...]}` or `{"anyOf": [...]}`, exactly one key; `None` when neither is there.
fn parse_group(object: &Map<String, Value>) -> Result<Option<Condition>, String> {
    let mut group = None;
    for (key, v) in object {
        let all = match key.to_ascii_lowercase().as_str() {
            "allof" => true,
            "anyof" => false,
            _ => return Err(format!("unknown key {key:?}")),
        };
        if group.is_some() {
            return Err("allOf and anyOf cannot be combined in one object".into());
        }
        let name = if all { "allOf" } else { "anyOf" };
        let items = non_empty_array(Some(v), name)?
            .iter()
            .enumerate()
            .map(|(i, c)| parse_condition(c).map_err(|e| format!("{name}[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        group = Some(if all {
            Condition::AllOf(items)
        } else {
            Condition::AnyOf(items)
        });
    }
    Ok(group)
}

fn parse_condition(value: &Value) -> Result<Condition, String> {
    let object = value.as_object().ok_or("not a JSON object")?;
    let Some(claim) = object.get("claim") else {
        return parse_group(object)?.ok_or_else(|| "needs claim, allOf or anyOf".into());
    };
    let claim = claim.as_str().ok_or("claim is not a string")?.to_owned();
    if claim.is_empty() {
        return Err("claim is empty".into());
    }
    let mut operator = None;
    for (key, v) in object {
        if key == "claim" {
            continue;
        }
        let op = OPERATORS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, op)| *op)
            .ok_or_else(|| {
                format!(
                    "claim {claim:?}: unknown operator {key:?} (expected one of {})",
                    OPERATORS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
        if operator.is_some() {
            return Err(format!("claim {claim:?}: more than one operator"));
        }
        if op == Operator::Exists && !v.is_boolean() {
            return Err(format!("claim {claim:?}: exists takes true or false"));
        }
        if matches!(v, Value::Object(_) | Value::Array(_) | Value::Null) {
            return Err(format!(
                "claim {claim:?}: {key} takes a string, number or boolean"
            ));
        }
        operator = Some((op, v.clone()));
    }
    let (operator, value) = operator.ok_or_else(|| format!("claim {claim:?}: no operator"))?;
    Ok(Condition::Claim {
        claim,
        operator,
        value,
    })
}

impl Condition {
    fn evaluate(&self, claims: &Value) -> Result<(), String> {
        match self {
            Condition::AllOf(items) => items.iter().try_for_each(|c| c.evaluate(claims)),
            Condition::AnyOf(items) => {
                let mut reasons = Vec::new();
                for item in items {
                    match item.evaluate(claims) {
                        Ok(()) => return Ok(()),
                        Err(reason) => reasons.push(reason),
                    }
                }
                Err(format!("none of anyOf holds: {}", reasons.join("; ")))
            }
            Condition::Claim {
                claim,
                operator,
                value,
            } => evaluate_claim(claim, *operator, value, lookup(claims, claim)),
        }
    }
}

/// The claim by its full name, else by walking the dotted path.
fn lookup<'a>(claims: &'a Value, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    name.split('.').try_fold(claims, |v, part| v.get(part))
}

fn evaluate_claim(
    claim: &str,
    operator: Operator,
    expected: &Value,
    actual: Option<&Value>,
) -> Result<(), String> {
    let op_name = OPERATORS
        .iter()
        .find(|(_, op)| *op == operator)
        .map_or("?", |(n, _)| n);
    if operator == Operator::Exists {
        let want = expected.as_bool().unwrap_or(true);
        return if actual.is_some() == want {
            Ok(())
        } else {
            Err(format!(
                "claim {claim}: expected exists {want}, actual {}",
                if actual.is_some() {
                    "present"
                } else {
                    "absent"
                }
            ))
        };
    }
    let Some(actual) = actual else {
        return Err(format!(
            "claim {claim}: expected {op_name} {expected}, actual: the token has no such claim"
        ));
    };
    let holds = match operator {
        Operator::Equals => json_equal(actual, expected),
        Operator::NotEquals => !json_equal(actual, expected),
        ordering => match (actual.as_f64(), expected.as_f64()) {
            (Some(a), Some(e)) => match ordering {
                Operator::Less => a < e,
                Operator::LessOrEquals => a <= e,
                Operator::Greater => a > e,
                _ => a >= e,
            },
            _ => false,
        },
    };
    if holds {
        Ok(())
    } else {
        Err(format!(
            "claim {claim}: expected {op_name} {expected}, actual {actual}"
        ))
    }
}

fn json_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MAA: &str = "https://maa.example";

    fn policy(conditions: Value) -> ReleasePolicy {
        ReleasePolicy::parse(
            json!({ "version": "1.0.0", "anyOf": [ { "authority": MAA, "allOf": conditions } ] })
                .to_string()
                .as_bytes(),
        )
        .unwrap()
    }

    fn claims() -> Value {
        json!({
            "x-ms-sgx-mrenclave": "aa",
            "x-ms-sgx-is-debuggable": false,
            "x-ms-sgx-svn": 2,
            "x-ms-isolation-tee": { "x-ms-attestation-type": "sevsnpvm" },
        })
    }

    #[test]
    fn equals_on_strings_booleans_numbers_and_dotted_paths() {
        let p = policy(json!([
            { "claim": "x-ms-sgx-mrenclave", "equals": "aa" },
            { "claim": "x-ms-sgx-is-debuggable", "equals": false },
            { "claim": "x-ms-sgx-svn", "greaterOrEquals": 2 },
            { "claim": "x-ms-isolation-tee.x-ms-attestation-type", "equals": "sevsnpvm" },
        ]));
        p.evaluate(MAA, &claims()).unwrap();
        p.evaluate(&format!("{MAA}/"), &claims()).unwrap();
    }

    #[test]
    fn refusals_name_claim_expected_and_actual() {
        let p = policy(json!([{ "claim": "x-ms-sgx-mrenclave", "equals": "bb" }]));
        assert_eq!(
            p.evaluate(MAA, &claims()).unwrap_err(),
            r#"claim x-ms-sgx-mrenclave: expected equals "bb", actual "aa""#
        );
        let p = policy(json!([{ "claim": "x-ms-sgx-is-debuggable", "equals": "false" }]));
        assert!(
            p.evaluate(MAA, &claims()).is_err(),
            "a string is not a boolean"
        );
        let p = policy(json!([{ "claim": "x-ms-missing", "equals": 1 }]));
        assert!(
            p.evaluate(MAA, &claims())
                .unwrap_err()
                .contains("no such claim")
        );
        let p = policy(json!([{ "claim": "x-ms-sgx-svn", "greater": 2 }]));
        assert!(p.evaluate(MAA, &claims()).is_err());
        assert!(
            p.evaluate("https://other.example", &claims())
                .unwrap_err()
                .starts_with("no rule for authority https://other.example")
        );
    }

    #[test]
    fn any_of_and_nesting() {
        let p = policy(json!([
            { "anyOf": [
                { "claim": "x-ms-sgx-mrenclave", "equals": "bb" },
                { "claim": "x-ms-sgx-mrenclave", "equals": "aa" },
            ] },
            { "claim": "x-ms-sgx-mrenclave", "exists": true },
            { "claim": "x-ms-nothing", "exists": false },
            { "claim": "x-ms-sgx-mrenclave", "notEquals": "cc" },
        ]));
        p.evaluate(MAA, &claims()).unwrap();
    }

    #[test]
    fn malformed_policies_are_refused_with_the_reason() {
        let cases = [
            (json!({ "anyOf": [] }), "version is missing"),
            (
                json!({ "version": "0.2", "anyOf": [] }),
                "version \"0.2\" is not supported",
            ),
            (json!({ "version": "1.0.0", "anyOf": [] }), "anyOf is empty"),
            (
                json!({ "version": "1.0.0", "anyOf": [ { "authority": MAA } ] }),
                "needs allOf or anyOf",
            ),
            (
                json!({ "version": "1.0.0", "anyOf": [ { "authority": MAA, "allOf": [ { "claim": "c", "equals": 1, "less": 2 } ] } ] }),
                "more than one operator",
            ),
            (
                json!({ "version": "1.0.0", "anyOf": [ { "authority": MAA, "allOf": [ { "claim": "c", "matches": 1 } ] } ] }),
                "unknown operator \"matches\"",
            ),
            (
                json!({ "version": "1.0.0", "anyOf": [ { "authority": MAA, "allOf": [ { "claim": "c", "equals": 1 } ], "anyOf": [ { "claim": "c", "equals": 1 } ] } ] }),
                "cannot be combined",
            ),
        ];
        for (policy, expected) in cases {
            let err = ReleasePolicy::parse(policy.to_string().as_bytes()).unwrap_err();
            assert!(err.contains(expected), "{err} (expected {expected})");
        }
    }
}
