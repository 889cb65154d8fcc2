//! Configuration without a rebuild: override any attribute argument of any policy from TOML
//! or environment variables, before the first call or while calls are in flight.
//!
//! ```toml
//! [circuit_breaker.payments]
//! failure_rate = 0.25
//! cooldown = "10s"
//! [bulkhead.payments]
//! pool = 20
//! ["timeout"."shop::client::fetch"]   # a policy without `name`: its function's key, quoted
//! duration = "300ms"
//! ```
//!
//! The keys and value syntax are the attributes' own; the validator is the one the macros
//! use. `name`, the predicates (`failure`, `when`, `on`) and fallback handlers are fixed at
//! compile time. Every source is validated as a whole before anything is applied: on `Err`
//! no policy has changed.
//!
//! Rule changes: keys of the current trip rule adjust it (`failure_rate = 0.25` on a rate rule
//! keeps its window); keys that make a different rule must give the whole new rule
//! (`threshold = 5` turns any rule into 5 consecutive failures; `last = 50` alone on a time
//! window is an error, `failure_rate = 0.5, last = 50` is not). Any change to the rule, even
//! of its rate alone, starts a new window and keeps the breaker's state. `success_threshold` alone does not change
//! `half_open_calls`. A live change applies to calls admitted after it; in-flight calls keep
//! their permits and trial slots.

use std::fmt;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use crate::literal;
use crate::registry::{Decl, PolicyKind, Site, declarations};
use crate::{BreakerConfig, BulkheadConfig, Jitter, RetryConfig, Strategy, TripRule};

/// Why a configuration was refused. Nothing of it was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where it came from: `"TOML"`, a file path, or `"environment"`.
    pub source: String,
    /// The line in the source, for TOML.
    pub line: Option<usize>,
    /// `kind.name` of the policy, when the error is about one.
    pub policy: Option<String>,
    /// The key (or environment variable), when the error is about one.
    pub key: Option<String>,
    /// What is wrong and what is expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if let Some(p) = &self.policy {
            write!(f, "[{p}] ")?;
        }
        if let Some(k) = &self.key {
            write!(f, "`{k}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A value as written: TOML keeps its type, environment variables are text.
#[derive(Debug, Clone)]
enum Value {
    Text(String),
    Int(String),
    Float(String),
    Bool(bool),
    Other(&'static str),
}

#[derive(Debug)]
struct Entry {
    key: String,
    value: Value,
    line: Option<usize>,
}

#[derive(Debug)]
struct Change {
    kind: PolicyKind,
    name: String,
    line: Option<usize>,
    entries: Vec<Entry>,
}

/// Serialises configuration changes, so two sources never interleave.
static APPLYING: Mutex<()> = Mutex::new(());

/// Applies a TOML document.
///
/// # Errors
/// A [`ConfigError`] naming the line, policy and key; nothing is applied then.
pub fn apply_toml(text: &str) -> Result<(), ConfigError> {
    apply("TOML", &parse_toml("TOML", text)?)
}

/// Reads and applies a TOML file.
///
/// # Errors
/// A [`ConfigError`] naming the file, line, policy and key, or the I/O error; nothing is
/// applied then.
pub fn load(path: impl AsRef<Path>) -> Result<(), ConfigError> {
    let path = path.as_ref();
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        source: source.clone(),
        line: None,
        policy: None,
        key: None,
        message: format!("cannot read the file: {e}"),
    })?;
    apply(&source, &parse_toml(&source, &text)?)
}

/// Applies every `RESILIENT__<KIND>__<NAME>__<KEY>` environment variable, e.g.
/// `RESILIENT__CIRCUIT_BREAKER__PAYMENTS__COOLDOWN=10s` (the name upper-cased, every character
/// other than a letter or digit written `_`).
///
/// # Errors
/// A [`ConfigError`] naming the variable; nothing is applied then.
pub fn apply_env() -> Result<(), ConfigError> {
    let vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().unwrap_or_default())))
        .collect();
    apply_vars(vars)
}

/// [`apply_env`] over the given variables instead of the process environment (tests, or
/// variables gathered elsewhere). Variables without the `RESILIENT__` prefix are ignored.
///
/// # Errors
/// As [`apply_env`].
pub fn apply_vars<K: AsRef<str>, V: AsRef<str>>(
    vars: impl IntoIterator<Item = (K, V)>,
) -> Result<(), ConfigError> {
    let mut changes: Vec<Change> = Vec::new();
    for (var, value) in vars {
        let (var, value) = (var.as_ref(), value.as_ref());
        let Some(rest) = var.strip_prefix("RESILIENT__") else {
            continue;
        };
        let err = |message: String| ConfigError {
            source: "environment".into(),
            line: None,
            policy: None,
            key: Some(var.to_string()),
            message,
        };
        let kind = PolicyKind::ALL
            .into_iter()
            .find(|k| {
                rest.strip_prefix(&k.as_str().to_ascii_uppercase())
                    .is_some_and(|r| r.starts_with("__"))
            })
            .ok_or_else(|| {
                err(format!(
                    "expected RESILIENT__<KIND>__<NAME>__<KEY> with KIND one of {}",
                    kinds_upper()
                ))
            })?;
        let rest = &rest[kind.as_str().len() + 2..];
        let Some((env_name, key)) = rest
            .rsplit_once("__")
            .filter(|(n, k)| !n.is_empty() && !k.is_empty())
        else {
            return Err(err("expected RESILIENT__<KIND>__<NAME>__<KEY>".into()));
        };
        let matches: Vec<&'static str> = names(kind)
            .into_iter()
            .filter(|n| env_form(n) == env_name)
            .collect();
        let name = match matches.as_slice() {
            [one] => (*one).to_string(),
            [] => {
                return Err(err(format!(
                    "no {kind} policy is named `{env_name}` in the environment's spelling{}",
                    suggest(&env_name.to_ascii_lowercase(), &names(kind))
                )));
            }
            many => {
                return Err(err(format!(
                    "`{env_name}` matches several {kind} policies ({}); rename one",
                    many.join(", ")
                )));
            }
        };
        let entry = Entry {
            key: key.to_ascii_lowercase(),
            value: Value::Text(value.to_string()),
            line: None,
        };
        match changes
            .iter_mut()
            .find(|c| c.kind == kind && c.name == name)
        {
            Some(c) => c.entries.push(entry),
            None => changes.push(Change {
                kind,
                name,
                line: None,
                entries: vec![entry],
            }),
        }
    }
    apply("environment", &changes)
}

fn kinds_upper() -> String {
    PolicyKind::ALL
        .map(|k| k.as_str().to_ascii_uppercase())
        .join(", ")
}

fn env_form(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |t| t.matches('\n').count() + 1)
}

fn parse_toml(source: &str, text: &str) -> Result<Vec<Change>, ConfigError> {
    use toml::de::{DeTable, DeValue};
    let err =
        |line: Option<usize>, policy: Option<String>, key: Option<String>, message: String| {
            ConfigError {
                source: source.to_string(),
                line,
                policy,
                key,
                message,
            }
        };
    let doc = DeTable::parse(text).map_err(|e| {
        err(
            e.span().map(|s| line_of(text, s.start)),
            None,
            None,
            format!("invalid TOML: {}", e.message().trim()),
        )
    })?;
    let mut changes = Vec::new();
    for (kind_key, kind_value) in doc.get_ref() {
        let kind_line = Some(line_of(text, kind_key.span().start));
        let kind_name: &str = kind_key.get_ref();
        let Some(kind) = PolicyKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind_name)
        else {
            let known: Vec<&str> = PolicyKind::ALL.iter().map(|k| k.as_str()).collect();
            return Err(err(
                kind_line,
                None,
                None,
                format!(
                    "unknown policy kind `{kind_name}`{}; expected one of {}",
                    suggest(kind_name, &known),
                    known.join(", ")
                ),
            ));
        };
        let DeValue::Table(policies) = kind_value.get_ref() else {
            return Err(err(
                kind_line,
                None,
                None,
                format!("`{kind_name}` must be a table of policies: [{kind_name}.<name>]"),
            ));
        };
        for (name_key, body) in policies {
            let name: &str = name_key.get_ref();
            let line = Some(line_of(text, name_key.span().start));
            let DeValue::Table(keys) = body.get_ref() else {
                return Err(err(
                    line,
                    Some(format!("{kind}.{name}")),
                    None,
                    format!("expected a table: [{kind}.{name}] with its arguments"),
                ));
            };
            let mut entries = Vec::new();
            for (key, value) in keys {
                let value_line = Some(line_of(text, value.span().start));
                let value = match value.get_ref() {
                    DeValue::String(s) => Value::Text(s.to_string()),
                    DeValue::Integer(i) => Value::Int(i.as_str().to_string()),
                    DeValue::Float(f) => Value::Float(f.as_str().to_string()),
                    DeValue::Boolean(b) => Value::Bool(*b),
                    DeValue::Datetime(_) => Value::Other("a date"),
                    DeValue::Array(_) => Value::Other("an array"),
                    DeValue::Table(_) => Value::Other("a table"),
                };
                entries.push(Entry {
                    key: key.get_ref().to_string(),
                    value,
                    line: value_line,
                });
            }
            changes.push(Change {
                kind,
                name: name.to_string(),
                line,
                entries,
            });
        }
    }
    Ok(changes)
}

fn suggest(found: &str, candidates: &[&str]) -> String {
    literal::did_you_mean(found, candidates)
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// Every name declared for `kind`.
fn names(kind: PolicyKind) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = declarations(kind)
        .into_iter()
        .map(|(_, d)| d.name())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// A validated change, ready to apply.
enum Plan {
    Breaker(&'static crate::CircuitBreaker, BreakerConfig),
    Bulkhead(&'static crate::Bulkhead, BulkheadConfig),
    Timeout(Vec<&'static crate::__private::TimeoutSite>, Duration),
    Retry(Vec<&'static crate::__private::RetrySite>, RetryConfig),
}

fn apply(source: &str, changes: &[Change]) -> Result<(), ConfigError> {
    let _serial = APPLYING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut plans = Vec::with_capacity(changes.len());
    for change in changes {
        plans.push(plan(source, change)?);
    }
    for plan in plans {
        match plan {
            Plan::Breaker(b, config) => {
                // Validated above with the same rules, so this cannot fail.
                let _ = b.reconfigure(config);
            }
            Plan::Bulkhead(b, config) => {
                let _ = b.reconfigure(config);
            }
            Plan::Timeout(sites, limit) => {
                for s in sites {
                    s.limit.set(limit);
                }
            }
            Plan::Retry(sites, config) => {
                for s in sites {
                    s.config.set(config);
                }
            }
        }
    }
    Ok(())
}

fn plan(source: &str, change: &Change) -> Result<Plan, ConfigError> {
    let policy = format!("{}.{}", change.kind, change.name);
    let fail = |line: Option<usize>, key: Option<&str>, message: String| ConfigError {
        source: source.to_string(),
        line,
        policy: Some(policy.clone()),
        key: key.map(str::to_string),
        message,
    };
    let targets: Vec<(&'static Site, Decl)> = declarations(change.kind)
        .into_iter()
        .filter(|(_, d)| d.name() == change.name)
        .collect();
    if targets.is_empty() {
        return Err(fail(
            change.line,
            None,
            format!(
                "no {} policy is named `{}` in this binary{}",
                change.kind,
                change.name,
                suggest(&change.name, &names(change.kind))
            ),
        ));
    }
    // A key derived by two functions (no `name`) is ambiguous.
    let derived: Vec<&'static Site> = targets
        .iter()
        .filter(|(_, d)| !d.explicit())
        .map(|(s, _)| *s)
        .collect();
    if derived.len() > 1 && derived.iter().any(|s| !std::ptr::eq(*s, derived[0])) {
        return Err(fail(
            change.line,
            None,
            format!(
                "`{}` is derived by two functions, at {}:{} and {}:{}; give them `name = \"...\"`",
                change.name, derived[0].file, derived[0].line, derived[1].file, derived[1].line
            ),
        ));
    }
    let at = |e: &Entry| e.line.or(change.line);
    match targets[0].1 {
        Decl::Breaker(site) => {
            let breaker = site.get();
            let config = breaker_config(*breaker.config(), &change.entries)
                .map_err(|(e, m)| fail(at(e), Some(&e.key), m))?;
            config.validate().map_err(|m| fail(change.line, None, m))?;
            Ok(Plan::Breaker(breaker, config))
        }
        Decl::Bulkhead(site) => {
            let bulkhead = site.get();
            let mut config = bulkhead.config();
            for e in &change.entries {
                bulkhead_entry(&mut config, e).map_err(|m| fail(at(e), Some(&e.key), m))?;
            }
            config.validate().map_err(|m| fail(change.line, None, m))?;
            Ok(Plan::Bulkhead(bulkhead, config))
        }
        Decl::Timeout(_) => {
            let mut limit = None;
            for e in &change.entries {
                limit = Some(timeout_entry(e).map_err(|m| fail(at(e), Some(&e.key), m))?);
            }
            let sites = targets.iter().filter_map(|(_, d)| d.timeout()).collect();
            let limit = limit.ok_or_else(|| {
                fail(
                    change.line,
                    None,
                    "nothing to change: the key is `duration`".into(),
                )
            })?;
            Ok(Plan::Timeout(sites, limit))
        }
        Decl::Retry(first) => {
            let mut config = *first.config.get();
            for e in &change.entries {
                retry_entry(&mut config, e).map_err(|m| fail(at(e), Some(&e.key), m))?;
            }
            config.validate().map_err(|m| fail(change.line, None, m))?;
            let sites = targets.iter().filter_map(|(_, d)| d.retry()).collect();
            Ok(Plan::Retry(sites, config))
        }
        Decl::Fallback(_) => Err(match change.entries.first() {
            Some(e) => fail(at(e), Some(&e.key), unknown(&e.key, PolicyKind::Fallback)),
            None => fail(
                change.line,
                None,
                "a fallback has nothing to configure".into(),
            ),
        }),
    }
}

fn unknown(key: &str, kind: PolicyKind) -> String {
    let all: &[&str] = match kind {
        PolicyKind::CircuitBreaker => literal::BREAKER_KEYS,
        PolicyKind::Bulkhead => literal::BULKHEAD_KEYS,
        PolicyKind::Retry => literal::RETRY_KEYS,
        PolicyKind::Timeout => literal::TIMEOUT_KEYS,
        PolicyKind::Fallback => literal::FALLBACK_KEYS,
    };
    if literal::FIXED_KEYS.contains(&key) {
        return format!("`{key}` is fixed at compile time and cannot be configured");
    }
    // The attribute's own keys, less those fixed at compile time.
    let keys: Vec<&str> = all
        .iter()
        .copied()
        .filter(|k| !literal::FIXED_KEYS.contains(k))
        .collect();
    if keys.is_empty() {
        return format!(
            "unknown key `{key}`: a fallback has nothing to configure (its handler, `on` and \
             `name` are fixed at compile time)"
        );
    }
    format!(
        "unknown {kind} key `{key}`{}; expected one of: {}",
        suggest(key, &keys),
        keys.join(", ")
    )
}

fn text(v: &Value) -> Result<&str, String> {
    match v {
        Value::Text(s) | Value::Int(s) | Value::Float(s) => Ok(s),
        Value::Bool(_) => Err("expected a value, found a boolean".into()),
        Value::Other(what) => Err(format!("expected a value, found {what}")),
    }
}

fn duration(v: &Value, zero_ok: bool) -> Result<Duration, String> {
    let s = match v {
        Value::Text(s) => s,
        Value::Int(_) | Value::Float(_) => {
            return Err("expected a duration string like \"200ms\", found a number".into());
        }
        _ => {
            return Err(format!(
                "expected a duration string like \"200ms\", {}",
                text(v).err().unwrap_or_default()
            ));
        }
    };
    let d = literal::parse_duration(s)?;
    if d.is_zero() && !zero_ok {
        return Err("expected a duration longer than zero (only `backoff` may be \"0s\")".into());
    }
    Ok(d)
}

fn count(v: &Value, min: u32) -> Result<u32, String> {
    let s = match v {
        Value::Int(s) | Value::Text(s) => s,
        Value::Float(s) => return Err(format!("expected an integer, found `{s}`")),
        _ => {
            return Err(format!(
                "expected an integer, {}",
                text(v).err().unwrap_or_default()
            ));
        }
    };
    let n: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("expected an integer of at least {min}, found `{s}`"))?;
    if n < min {
        return Err(format!("expected an integer of at least {min}, found {n}"));
    }
    Ok(n)
}

fn float(v: &Value) -> Result<f64, String> {
    let s = match v {
        Value::Float(s) | Value::Text(s) => s,
        Value::Int(s) => return Err(format!("expected a float literal; write `{s}.0`")),
        _ => {
            return Err(format!(
                "expected a number, {}",
                text(v).err().unwrap_or_default()
            ));
        }
    };
    s.trim()
        .parse::<f64>()
        .map_err(|_| format!("expected a number like 0.5, found `{s}`"))
}

fn boolean(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Text(s) if s == "true" => Ok(true),
        Value::Text(s) if s == "false" => Ok(false),
        _ => Err("expected `true` or `false`".into()),
    }
}

fn choice<'a>(v: &Value, options: &[&'a str]) -> Result<&'a str, String> {
    let s = text(v)?;
    options.iter().find(|o| **o == s).copied().ok_or_else(|| {
        format!(
            "unknown value \"{s}\"{}; expected one of {}",
            suggest(s, options),
            options.join(", ")
        )
    })
}

#[derive(Default)]
struct RuleKeys {
    threshold: Option<u32>,
    window: Option<Duration>,
    failure_rate: Option<f64>,
    last: Option<u32>,
    min_calls: Option<u32>,
}

impl RuleKeys {
    fn of(rule: TripRule) -> RuleKeys {
        match rule {
            TripRule::Consecutive { threshold } => RuleKeys {
                threshold: Some(threshold),
                ..RuleKeys::default()
            },
            TripRule::CountInWindow { threshold, window } => RuleKeys {
                threshold: Some(threshold),
                window: Some(window),
                ..RuleKeys::default()
            },
            TripRule::RateOverTime {
                failure_rate,
                window,
                min_calls,
            } => RuleKeys {
                failure_rate: Some(failure_rate),
                window: Some(window),
                min_calls: Some(min_calls),
                ..RuleKeys::default()
            },
            TripRule::RateOverCalls {
                failure_rate,
                last,
                min_calls,
            } => RuleKeys {
                failure_rate: Some(failure_rate),
                last: Some(last),
                min_calls: Some(min_calls),
                ..RuleKeys::default()
            },
        }
    }

    fn overlay(&self, over: &RuleKeys) -> RuleKeys {
        RuleKeys {
            threshold: over.threshold.or(self.threshold),
            window: over.window.or(self.window),
            failure_rate: over.failure_rate.or(self.failure_rate),
            last: over.last.or(self.last),
            min_calls: over.min_calls.or(self.min_calls),
        }
    }

    /// The rule these keys describe, by the attribute's shapes.
    fn rule(&self) -> Result<TripRule, String> {
        match (
            self.threshold,
            self.window,
            self.failure_rate,
            self.last,
            self.min_calls,
        ) {
            (Some(threshold), None, None, None, None) => Ok(TripRule::Consecutive { threshold }),
            (Some(threshold), Some(window), None, None, None) => {
                Ok(TripRule::CountInWindow { threshold, window })
            }
            (Some(_), ..) => Err("`threshold` combines only with `window`".into()),
            (None, Some(_), _, Some(_), _) => {
                Err("`window` and `last` are two kinds of window; choose one".into())
            }
            (None, _, None, Some(_), _) => Err("`last` needs `failure_rate`".into()),
            (None, None, None, None, Some(_)) => {
                Err("`min_calls` needs `failure_rate` or `window`".into())
            }
            (None, None, None, None, None) => Ok(TripRule::DEFAULT),
            (None, _, rate, Some(last), min) => Ok(TripRule::RateOverCalls {
                failure_rate: rate.unwrap_or(0.5),
                last,
                min_calls: min.unwrap_or(last),
            }),
            (None, window, rate, None, min) => Ok(TripRule::RateOverTime {
                failure_rate: rate.unwrap_or(0.5),
                window: window.unwrap_or(Duration::from_secs(30)),
                min_calls: min.unwrap_or(20),
            }),
        }
    }
}

fn breaker_config(
    mut config: BreakerConfig,
    entries: &[Entry],
) -> Result<BreakerConfig, (&Entry, String)> {
    let mut given = RuleKeys::default();
    let mut any_rule_key = None;
    for e in entries {
        let r: Result<(), String> = match e.key.as_str() {
            "threshold" => count(&e.value, 1).map(|n| given.threshold = Some(n)),
            "window" => duration(&e.value, false).map(|d| given.window = Some(d)),
            "failure_rate" => float(&e.value)
                .and_then(literal::check_ratio)
                .map(|r| given.failure_rate = Some(r)),
            "last" => count(&e.value, 1).map(|n| given.last = Some(n)),
            "min_calls" => count(&e.value, 1).map(|n| given.min_calls = Some(n)),
            "cooldown" => duration(&e.value, false).map(|d| config.cooldown = d),
            "max_cooldown" => duration(&e.value, false).map(|d| config.max_cooldown = Some(d)),
            "half_open_calls" => count(&e.value, 1).map(|n| config.half_open_calls = n),
            "success_threshold" => count(&e.value, 1).map(|n| config.success_threshold = n),
            "ramp" => duration(&e.value, false).map(|d| config.ramp = Some(d)),
            "slow_call" => duration(&e.value, false).map(|d| config.slow_call = Some(d)),
            "critical" => boolean(&e.value).map(|b| config.critical = b),
            other => Err(unknown(other, PolicyKind::CircuitBreaker)),
        };
        r.map_err(|m| (e, m))?;
        if matches!(
            e.key.as_str(),
            "threshold" | "window" | "failure_rate" | "last" | "min_calls"
        ) {
            any_rule_key.get_or_insert(e);
        }
    }
    if let Some(first) = any_rule_key {
        // Adjust the current rule if the result is still a legal rule; otherwise the given
        // keys must make a whole rule on their own.
        config.rule = match RuleKeys::of(config.rule).overlay(&given).rule() {
            Ok(rule) => rule,
            Err(_) => given.rule().map_err(|m| {
                (
                    first,
                    format!("changing the kind of trip rule needs the whole new rule: {m}"),
                )
            })?,
        };
    }
    if let (Some(slow), Some(inner)) = (config.slow_call, config.inner_timeout)
        && slow >= inner
    {
        let e = entries
            .iter()
            .find(|e| e.key == "slow_call")
            .unwrap_or(&entries[0]);
        return Err((
            e,
            format!(
                "`slow_call` must be shorter than the inner timeout ({})",
                literal::format_duration(inner)
            ),
        ));
    }
    Ok(config)
}

fn bulkhead_entry(config: &mut BulkheadConfig, e: &Entry) -> Result<(), String> {
    let size = |n: u32| usize::try_from(n).map_err(|_| "too large".to_string());
    match e.key.as_str() {
        "pool" => config.pool = size(count(&e.value, 1)?)?,
        "queue" => config.queue = size(count(&e.value, 0)?)?,
        "max_wait" => config.max_wait = Some(duration(&e.value, false)?),
        other => return Err(unknown(other, PolicyKind::Bulkhead)),
    }
    Ok(())
}

fn timeout_entry(e: &Entry) -> Result<Duration, String> {
    match e.key.as_str() {
        "duration" => duration(&e.value, false),
        other => Err(unknown(other, PolicyKind::Timeout)),
    }
}

fn retry_entry(config: &mut RetryConfig, e: &Entry) -> Result<(), String> {
    match e.key.as_str() {
        "attempts" => config.attempts = count(&e.value, 1)?,
        "backoff" => config.backoff = duration(&e.value, true)?,
        "strategy" => {
            config.strategy = match choice(&e.value, &["exponential", "linear", "constant"])? {
                "linear" => Strategy::Linear,
                "constant" => Strategy::Constant,
                _ => Strategy::Exponential,
            }
        }
        "multiplier" => {
            let m = float(&e.value)?;
            if !(m.is_finite() && m >= 1.0) {
                return Err(format!("expected a multiplier of at least 1.0, found {m}"));
            }
            config.multiplier = m;
        }
        "max_backoff" => config.max_backoff = duration(&e.value, false)?,
        "jitter" => {
            config.jitter = match choice(&e.value, &["full", "equal", "none", "decorrelated"])? {
                "equal" => Jitter::Equal,
                "none" => Jitter::None,
                "decorrelated" => Jitter::Decorrelated,
                _ => Jitter::Full,
            }
        }
        "max_duration" => config.max_duration = Some(duration(&e.value, false)?),
        other => return Err(unknown(other, PolicyKind::Retry)),
    }
    Ok(())
}
