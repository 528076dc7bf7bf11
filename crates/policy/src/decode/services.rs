//! `images` and `services`.

use std::collections::{BTreeMap, HashMap};

use custos_ids::{MrEnclave, MrSigner};

use super::reader::{Field, Item, Unsupported, shorten};
use super::{Decoder, values};
use crate::diagnostic::{Position, Problem};
use crate::model::{AttestationMode, EnclavePolicy, Image, InjectionFile, Service, SignerPolicy};
use crate::names::{ImageName, ServiceName};
use crate::suggest;
use crate::yaml::Value;

const IMAGE_KEYS: &[&str] = &["name", "injection_files"];
const IMAGE_UNSUPPORTED: Unsupported =
    &[("volumes", "encrypted volumes are a SCONE runtime feature")];
const FILE_KEYS: &[&str] = &["path", "content", "permission"];
const SERVICE_KEYS: &[&str] = &[
    "name",
    "image_name",
    "command",
    "environment",
    "pwd",
    "mrenclaves",
    "attestation",
    "platforms",
    "refresh",
];
const SERVICE_UNSUPPORTED: Unsupported = &[
    (
        "fspf_path",
        "SCONE file-system protection is not part of Custos",
    ),
    (
        "fspf_key",
        "SCONE file-system protection is not part of Custos",
    ),
    (
        "fspf_tag",
        "SCONE file-system protection is not part of Custos",
    ),
];
const ALTERNATIVE_KEYS: &[&str] = &["mrenclave", "signer"];
const SIGNER_KEYS: &[&str] = &[
    "mrsigner",
    "isvprodid",
    "isvsvn",
    "isvsvn_min",
    "isvsvn_max",
];

impl<'n> Decoder<'n> {
    pub(super) fn images(&mut self, items: &[Item<'n>]) -> Vec<Image> {
        let mut images = Vec::with_capacity(items.len());
        let mut first_at: HashMap<String, Position> = HashMap::new();
        for item in items {
            let f = item.field();
            let Some(fields) = self.r.fields(f, IMAGE_KEYS, IMAGE_UNSUPPORTED) else {
                continue;
            };
            let name_item = self.r.required(&fields, "name", "the image's name");
            let name = name_item
                .as_ref()
                .and_then(|i| self.r.parsed::<ImageName>(i.field(), "an image name"));
            if let (Some(name), Some(i)) = (&name, &name_item)
                && let Some(first) = first_at.insert(name.to_string(), i.node.at)
            {
                self.r.report(
                    i.node.at,
                    &i.path,
                    Problem::DuplicateName,
                    format!(
                        "an image named `{name}` is already defined at line {}",
                        first.line
                    ),
                );
            }
            let files = match fields.get("injection_files") {
                Some(i) => self.injection_files(i.field()),
                None => Some(Vec::new()),
            };
            if let (Some(name), Some(injection_files)) = (name, files) {
                images.push(Image {
                    name,
                    injection_files,
                });
            }
        }
        images
    }

    fn injection_files(&mut self, f: Field<'_, '_>) -> Option<Vec<InjectionFile>> {
        let items = self.r.list(f, "injection files ({path, content})")?;
        let mut files = Vec::with_capacity(items.len());
        let mut first_at: HashMap<&str, Position> = HashMap::new();
        let mut ok = true;
        for item in &items {
            let Some(fields) = self.r.fields(item.field(), FILE_KEYS, &[]) else {
                ok = false;
                continue;
            };
            let path = self
                .r
                .required(&fields, "path", "the absolute path of the file")
                .and_then(|i| {
                    let text = self.r.text(i.field())?;
                    if let Err(e) = values::absolute_path(text, false) {
                        self.r.invalid(i.field(), e);
                        return None;
                    }
                    self.not_templated(i.field(), text);
                    if let Some(first) = first_at.insert(text, i.node.at) {
                        self.r.report(
                            i.node.at,
                            &i.path,
                            Problem::DuplicateName,
                            format!("`{text}` is already injected at line {}", first.line),
                        );
                        return None;
                    }
                    Some(text.to_owned())
                });
            let content = self
                .r
                .required(
                    &fields,
                    "content",
                    "the file's content (may contain placeholders)",
                )
                .and_then(|i| {
                    let text = self.r.text(i.field())?;
                    self.templated(i.field(), text);
                    Some(text.to_owned())
                });
            let mode = match fields.get("permission") {
                Some(i) => match self.r.text(i.field()).map(values::octal_mode) {
                    Some(Ok(m)) => Some(Some(m)),
                    Some(Err(e)) => {
                        self.r.invalid(i.field(), e);
                        None
                    }
                    None => None,
                },
                None => Some(None),
            };
            match (path, content, mode) {
                (Some(path), Some(content), Some(mode)) => files.push(InjectionFile {
                    path,
                    content,
                    mode,
                }),
                _ => ok = false,
            }
        }
        ok.then_some(files)
    }

    pub(super) fn services(
        &mut self,
        f: Field<'n, '_>,
        images: &[&str],
        mode: Option<AttestationMode>,
    ) -> Vec<Service> {
        let Some(items) = self.r.list(f, "services") else {
            return Vec::new();
        };
        let mut services = Vec::with_capacity(items.len());
        let mut first_at: HashMap<String, Position> = HashMap::new();
        for item in &items {
            let before = self.r.sink.len();
            let Some(service) = self.service(item.field(), images, mode) else {
                continue;
            };
            if let Some(first) = first_at.insert(service.name.to_string(), item.node.at) {
                self.r.report(
                    item.node.at,
                    &item.path.key("name"),
                    Problem::DuplicateName,
                    format!(
                        "a service named `{}` is already defined at line {}",
                        service.name, first.line
                    ),
                );
            }
            if self.r.sink.len() == before {
                services.push(service);
            }
        }
        services
    }

    fn service(
        &mut self,
        f: Field<'_, '_>,
        images: &[&str],
        mode: Option<AttestationMode>,
    ) -> Option<Service> {
        let fields = self.r.fields(f, SERVICE_KEYS, SERVICE_UNSUPPORTED)?;
        let mut ok = true;
        let name = self
            .r
            .required(&fields, "name", "the service's name")
            .and_then(|i| self.r.parsed::<ServiceName>(i.field(), "a service name"));

        let image_name = match fields.get("image_name") {
            Some(i) => {
                let f = i.field();
                let image = self.r.parsed::<ImageName>(f, "an image name");
                if let Some(image) = &image
                    && !images.contains(&image.as_str())
                {
                    let hint = suggest::hint(image.as_str(), images.iter().copied());
                    self.r.report(
                        f.at(),
                        f.path,
                        Problem::DanglingReference,
                        format!("`{image}` names no image of this session{hint}"),
                    );
                    ok = false;
                }
                ok &= image.is_some();
                image
            }
            None => None,
        };

        let command = match fields.get("command") {
            Some(i) => {
                let c = self.command(i.field());
                ok &= c.is_some();
                c
            }
            None => None,
        };

        let environment = match fields.get("environment") {
            Some(i) => self.environment(i.field()),
            None => Some(BTreeMap::new()),
        };
        ok &= environment.is_some();

        let pwd = match fields.get("pwd") {
            Some(i) => {
                let f = i.field();
                let p = self.r.text(f).and_then(|text| {
                    self.not_templated(f, text);
                    match values::absolute_path(text, true) {
                        Ok(()) => Some(text.to_owned()),
                        Err(e) => {
                            self.r.invalid(f, e);
                            None
                        }
                    }
                });
                ok &= p.is_some();
                p
            }
            None => None,
        };

        let attestation = match (fields.get("mrenclaves"), fields.get("attestation")) {
            (Some(_), Some(a)) => {
                self.r.report(
                    a.key_or_value_at(),
                    &a.path,
                    Problem::Conflict,
                    "write the admitted enclaves either as `mrenclaves` (legacy) or as `attestation`, not both",
                );
                None
            }
            (Some(m), None) => self.mrenclaves(m.field()).map(|mrenclaves| {
                vec![EnclavePolicy {
                    mrenclaves,
                    signer: None,
                }]
            }),
            (None, Some(a)) => self.alternatives(a.field()),
            (None, None) => {
                if mode.is_some_and(|m| m != AttestationMode::None) {
                    self.r.report(
                        fields.at,
                        &fields.path.key("mrenclaves"),
                        Problem::Missing,
                        "a service must name the enclaves it admits, with `mrenclaves` or `attestation` (only `security.attestation.mode: none` admits any caller)",
                    );
                    None
                } else {
                    Some(Vec::new())
                }
            }
        };
        ok &= attestation.is_some();

        let platforms = match fields.get("platforms") {
            Some(i) => self.key_hashes(i.field()),
            None => Some(Vec::new()),
        };
        ok &= platforms.is_some();

        let refresh = match fields.get("refresh") {
            Some(i) => {
                let r = self.refresh(i.field());
                ok &= r.is_some();
                r
            }
            None => None,
        };

        if !ok {
            return None;
        }
        Some(Service {
            name: name?,
            image_name,
            command,
            environment: environment?,
            pwd,
            attestation: attestation?,
            platforms: platforms?,
            refresh,
        })
    }

    fn command(&mut self, f: Field<'_, '_>) -> Option<Vec<String>> {
        let mut args = Vec::new();
        match &f.node.value {
            Value::Scalar(line) => {
                let Some(split) = shlex::split(line) else {
                    self.r.invalid(
                        f,
                        "cannot split the command into arguments: a quote is not closed or it ends in `\\`",
                    );
                    return None;
                };
                for arg in split {
                    self.argument(f, &arg)?;
                    args.push(arg);
                }
            }
            Value::Seq(_) => {
                for item in self.r.list(f, "arguments")? {
                    let arg = self.r.text(item.field())?;
                    self.argument(item.field(), arg)?;
                    args.push(arg.to_owned());
                }
            }
            _ => {
                self.r
                    .wrong_type(f, "a command line or a list of arguments");
                return None;
            }
        }
        if args.first().is_none_or(|program| program.is_empty()) {
            self.r
                .invalid(f, "the command is empty: it must name a program");
            return None;
        }
        Some(args)
    }

    fn argument(&mut self, f: Field<'_, '_>, arg: &str) -> Option<()> {
        if arg.contains('\0') {
            self.r.invalid(f, "arguments must not contain NUL");
            return None;
        }
        if host_argument(arg) {
            self.r.invalid(f, HOST_ARGUMENTS);
            return None;
        }
        self.templated(f, arg);
        Some(())
    }

    fn environment(&mut self, f: Field<'_, '_>) -> Option<BTreeMap<String, String>> {
        let Value::Map(entries) = &f.node.value else {
            self.r
                .wrong_type(f, "a mapping of variable names to values");
            return None;
        };
        let mut env = BTreeMap::new();
        let mut ok = true;
        for (k, v) in entries {
            let Value::Scalar(key) = &k.value else {
                self.r.report(
                    k.at,
                    f.path,
                    Problem::WrongType,
                    format!(
                        "variable names must be strings, found {}",
                        k.value.describe()
                    ),
                );
                ok = false;
                continue;
            };
            let path = f.path.key(key);
            if key.starts_with("@@") {
                self.r.report(
                    k.at,
                    &path,
                    Problem::InvalidValue,
                    format!(
                        "`{}`: SCONE's host environment variables (`@@NAME`: the host's value of NAME) are not supported by Custos, which never takes values from the host",
                        shorten(key)
                    ),
                );
                ok = false;
                continue;
            }
            if key.is_empty() || key.contains(['=', '\0']) {
                self.r.report(
                    k.at,
                    &path,
                    Problem::InvalidValue,
                    format!(
                        "`{}` is not a variable name (non-empty, without `=`)",
                        shorten(key)
                    ),
                );
                ok = false;
                continue;
            }
            let value_field = Field {
                node: v,
                path: &path,
                key_at: Some(k.at),
            };
            let value = match &v.value {
                Value::Scalar(s) => s,
                Value::Null => {
                    self.r.report(
                        k.at,
                        &path,
                        Problem::WrongType,
                        "expected a string, found null (write \"\" for an empty value)",
                    );
                    ok = false;
                    continue;
                }
                _ => {
                    self.r.wrong_type(value_field, "a string");
                    ok = false;
                    continue;
                }
            };
            if value.contains('\0') {
                self.r.invalid(value_field, "values must not contain NUL");
                ok = false;
                continue;
            }
            self.templated(value_field, value);
            if let Some(first) = env.insert(key.clone(), value.clone()).map(|_| k.at) {
                self.r.report(
                    first,
                    &path,
                    Problem::DuplicateKey,
                    format!("duplicate variable `{key}`"),
                );
                ok = false;
            }
        }
        ok.then_some(env)
    }

    fn mrenclaves(&mut self, f: Field<'_, '_>) -> Option<Vec<MrEnclave>> {
        let mut list = Vec::new();
        let mut ok = true;
        for item in self.r.one_or_list(f) {
            match self.r.parsed::<MrEnclave>(item.field(), "an MRENCLAVE") {
                Some(m) => list.push(m),
                None => ok = false,
            }
        }
        if ok && list.is_empty() {
            self.r
                .invalid(f, "the list is empty: it would admit no enclave");
            return None;
        }
        ok.then_some(list)
    }

    fn alternatives(&mut self, f: Field<'_, '_>) -> Option<Vec<EnclavePolicy>> {
        let items = self.r.one_or_list(f);
        if items.is_empty() {
            self.r
                .invalid(f, "the list is empty: it would admit no enclave");
            return None;
        }
        let mut alternatives = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in &items {
            match self.alternative(item.field()) {
                Some(a) => alternatives.push(a),
                None => ok = false,
            }
        }
        ok.then_some(alternatives)
    }

    fn alternative(&mut self, f: Field<'_, '_>) -> Option<EnclavePolicy> {
        let fields = self.r.fields(f, ALTERNATIVE_KEYS, &[])?;
        let mrenclaves = match fields.get("mrenclave") {
            Some(i) => Some(self.mrenclaves(i.field())?),
            None => None,
        };
        let signer = match fields.get("signer") {
            Some(i) => Some(self.signer(i.field())?),
            None => None,
        };
        if mrenclaves.is_none() && signer.is_none() {
            self.r.report(
                fields.at,
                &fields.path.key("mrenclave"),
                Problem::Missing,
                "an attestation alternative needs `mrenclave`, `signer`, or both",
            );
            return None;
        }
        Some(EnclavePolicy {
            mrenclaves: mrenclaves.unwrap_or_default(),
            signer,
        })
    }

    fn signer(&mut self, f: Field<'_, '_>) -> Option<SignerPolicy> {
        let fields = self.r.fields(f, SIGNER_KEYS, &[])?;
        let mrsigner = self
            .r
            .required(&fields, "mrsigner", "the signer's MRSIGNER (64 hex digits)")
            .and_then(|i| self.r.parsed::<MrSigner>(i.field(), "an MRSIGNER"));
        let isvprodid = self
            .r
            .required(
                &fields,
                "isvprodid",
                "the product id (ISVPRODID); without it every product of the signer would be admitted",
            )
            .and_then(|i| self.r.integer(i.field(), 0, u64::from(u16::MAX)));
        // SCONE: `isvsvn` is one exact version; `isvsvn_min` / `isvsvn_max` an inclusive
        // range; the two forms exclude each other; none of them: the version is not checked.
        let mut svn = |key: &str| {
            fields.get(key).map(|i| {
                let n = self.r.integer(i.field(), 0, u64::from(u16::MAX));
                (i, n.and_then(|n| u16::try_from(n).ok()))
            })
        };
        let exact = svn("isvsvn");
        let min = svn("isvsvn_min");
        let max = svn("isvsvn_max");
        let (min_isvsvn, max_isvsvn) = if let Some((_, n)) = exact {
            if let Some((range, _)) = min.as_ref().or(max.as_ref()) {
                self.r.report(
                    range.key_or_value_at(),
                    &range.path,
                    Problem::Conflict,
                    "`isvsvn` (one exact version) and `isvsvn_min`/`isvsvn_max` (a range) cannot be used together",
                );
                return None;
            }
            (n?, n?)
        } else {
            let lo = match &min {
                Some((_, n)) => (*n)?,
                None => 0,
            };
            let hi = match &max {
                Some((_, n)) => (*n)?,
                None => u16::MAX,
            };
            if lo > hi {
                let (item, _) = max?;
                self.r.report(
                    item.field().at(),
                    &item.path,
                    Problem::InvalidValue,
                    format!(
                        "`isvsvn_max` {hi} is below `isvsvn_min` {lo}: the range admits no version"
                    ),
                );
                return None;
            }
            (lo, hi)
        };
        Some(SignerPolicy {
            mrsigner: mrsigner?,
            isvprodid: u16::try_from(isvprodid?).ok()?,
            min_isvsvn,
            max_isvsvn,
        })
    }
}

const HOST_ARGUMENTS: &str = "SCONE's host program arguments (`@@1`: the host's first argument) are not supported by Custos, which never takes arguments from the host";

/// Whether `arg` uses SCONE's host-argument syntax, `@@` followed by a position: Custos would
/// pass it literally where SCONE substitutes the host's argument, so it is refused.
fn host_argument(arg: &str) -> bool {
    arg.match_indices("@@")
        .any(|(i, _)| arg[i + 2..].starts_with(|c: char| c.is_ascii_digit()))
}
