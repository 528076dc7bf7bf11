//! `--use-env` templating: `$VAR` and `${VAR}` replaced before the text is parsed.
//!
//! This is what the client does before uploading a session (the CAS never sees variables).
//! `$$` is copied as is, so `$$SCONE::name$$` placeholders survive; a `$` that does not start a
//! variable is copied as is too. Variable names are `[A-Za-z_][A-Za-z0-9_]*`. Substitution is
//! textual, as in SCONE: a value with YAML syntax in it (`: `, a leading `*`, a newline) changes
//! the document's structure, so quote such variables in the template (`"$VAR"`).

use std::fmt;

use zeroize::Zeroizing;

use crate::diagnostic::Position;

/// Variables a template needs but that are not set, and malformed `${…}`s; all of them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct TemplateError {
    /// Every problem, in text order.
    pub problems: Vec<TemplateProblem>,
}

/// One templating problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateProblem {
    /// `$NAME` or `${NAME}` with `NAME` not set.
    Missing {
        /// The variable.
        name: String,
        /// Where it is used.
        position: Position,
    },
    /// `${` not followed by a variable name and `}`.
    Malformed {
        /// Where the `${` is.
        position: Position,
    },
}

impl TemplateError {
    /// The names of the missing variables, each once, in order of first use.
    pub fn missing(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for p in &self.problems {
            if let TemplateProblem::Missing { name, .. } = p
                && !names.contains(&name.as_str())
            {
                names.push(name);
            }
        }
        names
    }
}

impl fmt::Display for TemplateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateProblem::Missing { name, position } => write!(
                f,
                "{}:{}: variable {name} is not set",
                position.line, position.column
            ),
            TemplateProblem::Malformed { position } => write!(
                f,
                "{}:{}: `${{` must be followed by a variable name and `}}`",
                position.line, position.column
            ),
        }
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let missing = self.missing();
        let mut sep = "";
        if !missing.is_empty() {
            write!(f, "missing variables: {}", missing.join(", "))?;
            sep = "; ";
        }
        for p in &self.problems {
            if matches!(p, TemplateProblem::Malformed { .. }) {
                write!(f, "{sep}{p}")?;
                sep = "; ";
            }
        }
        Ok(())
    }
}

/// Substitutes every `$VAR` and `${VAR}` in `template` with `lookup(VAR)`.
///
/// Fails, listing every unset variable and malformed `${`, if any; nothing is substituted then.
/// The result may hold secrets from the environment: it is zeroized when dropped.
pub fn expand(
    template: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Zeroizing<String>, TemplateError> {
    let bytes = template.as_bytes();
    let mut out = Zeroizing::new(String::with_capacity(template.len()));
    let mut problems = Vec::new();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) == Some(&b'$') {
            i += 2;
            continue;
        }
        let (name_range, end) = if bytes.get(i + 1) == Some(&b'{') {
            let len = ident_len(&bytes[i + 2..]);
            if len == 0 || bytes.get(i + 2 + len) != Some(&b'}') {
                problems.push(TemplateProblem::Malformed {
                    position: position_at(template, i),
                });
                i += 2;
                continue;
            }
            (i + 2..i + 2 + len, i + 3 + len)
        } else {
            let len = ident_len(&bytes[i + 1..]);
            if len == 0 {
                i += 1;
                continue;
            }
            (i + 1..i + 1 + len, i + 1 + len)
        };
        let name = &template[name_range];
        match lookup(name) {
            Some(value) => {
                out.push_str(&template[copied..i]);
                out.push_str(&value);
                drop(Zeroizing::new(value));
            }
            None => problems.push(TemplateProblem::Missing {
                name: name.to_owned(),
                position: position_at(template, i),
            }),
        }
        copied = end;
        i = end;
    }
    if !problems.is_empty() {
        return Err(TemplateError { problems });
    }
    out.push_str(&template[copied..]);
    Ok(out)
}

fn ident_len(bytes: &[u8]) -> usize {
    match bytes.first() {
        Some(b) if b.is_ascii_alphabetic() || *b == b'_' => bytes
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count(),
        _ => 0,
    }
}

/// Line and column (in characters) of byte `offset` in `text`.
pub(crate) fn position_at(text: &str, offset: usize) -> Position {
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    Position {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "NS" => Some("azure-integration-1".into()),
            "S" => Some("demo".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_both_forms_and_keeps_double_dollars() {
        let out = expand(
            "name: $NS/${S}\nx: $$SCONE::AAD_TOKEN$$ $5 $ ${EMPTY}end $NS_",
            |n| {
                if n == "NS_" {
                    Some("u".into())
                } else {
                    vars(n)
                }
            },
        )
        .unwrap();
        assert_eq!(
            out.as_str(),
            "name: azure-integration-1/demo\nx: $$SCONE::AAD_TOKEN$$ $5 $ end u"
        );
    }

    #[test]
    fn reports_every_missing_variable_with_its_place() {
        let err = expand("a: $X\nbé: ${Y} $X ${ bad} ${", vars).unwrap_err();
        assert_eq!(err.missing(), ["X", "Y"]);
        assert_eq!(
            err.problems,
            vec![
                TemplateProblem::Missing {
                    name: "X".into(),
                    position: Position { line: 1, column: 4 }
                },
                TemplateProblem::Missing {
                    name: "Y".into(),
                    position: Position { line: 2, column: 5 }
                },
                TemplateProblem::Missing {
                    name: "X".into(),
                    position: Position {
                        line: 2,
                        column: 10
                    }
                },
                TemplateProblem::Malformed {
                    position: Position {
                        line: 2,
                        column: 13
                    }
                },
                TemplateProblem::Malformed {
                    position: Position {
                        line: 2,
                        column: 21
                    }
                },
            ]
        );
        assert_eq!(
            err.to_string(),
            "missing variables: X, Y; 2:13: `${` must be followed by a variable name and `}`; 2:21: `${` must be followed by a variable name and `}`"
        );
    }

    #[test]
    fn text_without_variables_is_unchanged() {
        let t = "a: b\n# $$ only\nc: \"$$SCONE::x:hex$$\"\n";
        assert_eq!(expand(t, |_| None).unwrap().as_str(), t);
    }
}
