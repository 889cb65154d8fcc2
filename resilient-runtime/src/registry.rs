//! The process-wide registry of named breakers and bulkheads, and the per-site statics that
//! reach them with one atomic load.
//!
//! Policies are created on first use and live for the rest of the process (they are leaked,
//! which is what lets the hot path hold a `&'static` instead of cloning an `Arc`).

use std::collections::HashMap;
use std::fmt;
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex, OnceLock};

use crate::{
    BreakerConfig, BreakerMetrics, Bulkhead, BulkheadConfig, CircuitBreaker, CircuitState,
};

/// Where an annotated function is: its derived key (`module_path::fn_name`), file and line.
#[derive(Debug)]
pub struct Site {
    /// `module_path::fn_name`, the registry key of policies declared without `name`.
    pub key: &'static str,
    /// Source file.
    pub file: &'static str,
    /// Source line.
    pub line: u32,
}

impl Site {
    /// Used by expansions.
    #[must_use]
    pub const fn new(key: &'static str, file: &'static str, line: u32) -> Self {
        Site { key, file, line }
    }

    fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// A registered policy: who declared it first, and whether its key is ambiguous.
struct Entry<P: 'static, C> {
    policy: &'static P,
    config: C,
    site: &'static Site,
    /// For derived keys: a second site derived the same key, so lookups by it fail.
    ambiguous_with: Option<&'static Site>,
}

struct Registry {
    breakers: HashMap<&'static str, Entry<CircuitBreaker, BreakerConfig>>,
    bulkheads: HashMap<&'static str, Entry<Bulkhead, BulkheadConfig>>,
    conflicts: Vec<String>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| {
    Mutex::new(Registry {
        breakers: HashMap::new(),
        bulkheads: HashMap::new(),
        conflicts: Vec::new(),
    })
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    // A panic while holding the lock cannot leave the maps inconsistent (every update is a
    // single insert), so a poisoned lock is still usable.
    REGISTRY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How a site names its policy.
#[derive(Debug, Clone, Copy)]
enum Naming {
    /// No `name`: private state under the derived key.
    Derived,
    /// `name = "..."` with a full configuration.
    Named(&'static str),
    /// Only `name = "..."`: joins whatever that name already is.
    Join(&'static str),
}

/// Registers or joins. `make` builds a new policy; `kind` is used in messages.
fn register<P: 'static, C: PartialEq + Copy>(
    map: &mut HashMap<&'static str, Entry<P, C>>,
    conflicts: &mut Vec<String>,
    kind: &str,
    site: &'static Site,
    naming: Naming,
    config: C,
    make: impl FnOnce(&'static str, C) -> P,
) -> &'static P {
    let (key, join_any) = match naming {
        Naming::Derived => (site.key, false),
        Naming::Named(n) => (n, false),
        Naming::Join(n) => (n, true),
    };
    if let Some(entry) = map.get_mut(key) {
        match naming {
            Naming::Derived if !std::ptr::eq(entry.site, site) => {
                // Same fn name in two impls of one module: each keeps its own state, and the
                // key no longer finds either.
                entry.ambiguous_with = Some(site);
                return Box::leak(Box::new(make(key, config)));
            }
            Naming::Named(_) if !join_any && entry.config != config => {
                let message = format!(
                    "{kind} \"{key}\" is declared with different configurations at {} and {}; \
                     the first one is used",
                    entry.site.location(),
                    site.location()
                );
                crate::events::conflict(&message);
                conflicts.push(message);
            }
            _ => {}
        }
        return entry.policy;
    }
    let policy: &'static P = Box::leak(Box::new(make(key, config)));
    map.insert(
        key,
        Entry {
            policy,
            config,
            site,
            ambiguous_with: None,
        },
    );
    policy
}

/// The static an expansion declares for a `#[circuit_breaker]`.
#[derive(Debug)]
pub struct BreakerSite {
    site: &'static Site,
    naming: Naming,
    config: BreakerConfig,
    cell: OnceLock<&'static CircuitBreaker>,
}

impl BreakerSite {
    /// A breaker with this configuration; `name` shares it with other sites.
    #[must_use]
    pub const fn new(
        site: &'static Site,
        name: Option<&'static str>,
        config: BreakerConfig,
    ) -> Self {
        BreakerSite {
            site,
            naming: match name {
                Some(n) => Naming::Named(n),
                None => Naming::Derived,
            },
            config,
            cell: OnceLock::new(),
        }
    }

    /// `#[circuit_breaker(name = "...")]` alone: joins the breaker of that name, or creates it
    /// with the defaults if this site is the first to run.
    #[must_use]
    pub const fn join(site: &'static Site, name: &'static str) -> Self {
        BreakerSite {
            site,
            naming: Naming::Join(name),
            config: BreakerConfig::new(crate::TripRule::DEFAULT),
            cell: OnceLock::new(),
        }
    }

    /// `name`, or the function's key.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self.naming {
            Naming::Derived => self.site.key,
            Naming::Named(n) | Naming::Join(n) => n,
        }
    }

    /// The configuration in force: the live breaker's once created, else the declared one.
    pub(crate) fn effective_config(&self) -> BreakerConfig {
        self.cell.get().map_or(self.config, |b| *b.config())
    }

    /// The breaker, created on first use. After that, one atomic load.
    #[inline]
    pub fn get(&'static self) -> &'static CircuitBreaker {
        match self.cell.get() {
            Some(b) => b,
            None => self.init(),
        }
    }

    #[cold]
    fn init(&'static self) -> &'static CircuitBreaker {
        self.cell.get_or_init(|| {
            let reg = &mut *registry();
            register(
                &mut reg.breakers,
                &mut reg.conflicts,
                "circuit breaker",
                self.site,
                self.naming,
                self.config,
                |name, config| {
                    crate::metrics::created(name);
                    CircuitBreaker::new(name, config).unwrap_or_else(|_| {
                        // The macro validated this configuration with the same rules, so this
                        // only happens for hand-built sites; keep the call path panic-free.
                        CircuitBreaker::new(name, BreakerConfig::default())
                            .unwrap_or_else(|_| unreachable!("the default config is valid"))
                    })
                },
            )
        })
    }
}

/// The static an expansion declares for a `#[bulkhead]`.
#[derive(Debug)]
pub struct BulkheadSite {
    site: &'static Site,
    naming: Naming,
    config: BulkheadConfig,
    cell: OnceLock<&'static Bulkhead>,
}

impl BulkheadSite {
    /// A bulkhead with this configuration; `name` shares it with other sites.
    #[must_use]
    pub const fn new(
        site: &'static Site,
        name: Option<&'static str>,
        config: BulkheadConfig,
    ) -> Self {
        BulkheadSite {
            site,
            naming: match name {
                Some(n) => Naming::Named(n),
                None => Naming::Derived,
            },
            config,
            cell: OnceLock::new(),
        }
    }

    /// `name`, or the function's key.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self.naming {
            Naming::Derived => self.site.key,
            Naming::Named(n) | Naming::Join(n) => n,
        }
    }

    /// The configuration in force: the live bulkhead's once created, else the declared one.
    pub(crate) fn effective_config(&self) -> BulkheadConfig {
        self.cell.get().map_or(self.config, |b| b.config())
    }

    /// The bulkhead, created on first use. After that, one atomic load.
    #[inline]
    pub fn get(&'static self) -> &'static Bulkhead {
        match self.cell.get() {
            Some(b) => b,
            None => self.init(),
        }
    }

    #[cold]
    fn init(&'static self) -> &'static Bulkhead {
        self.cell.get_or_init(|| {
            let reg = &mut *registry();
            register(
                &mut reg.bulkheads,
                &mut reg.conflicts,
                "bulkhead",
                self.site,
                self.naming,
                self.config,
                |name, config| {
                    Bulkhead::new(name, config).unwrap_or_else(|_| {
                        Bulkhead::new(
                            name,
                            BulkheadConfig {
                                pool: 1,
                                queue: 0,
                                max_wait: None,
                            },
                        )
                        .unwrap_or_else(|_| unreachable!("pool 1 is valid"))
                    })
                },
            )
        })
    }
}

/// Run-time control of a registered circuit breaker. Cheap to copy.
#[derive(Debug, Clone, Copy)]
pub struct BreakerHandle(&'static CircuitBreaker);

impl BreakerHandle {
    /// The current state (`HalfOpen` once the cooldown has elapsed). Never takes a trial slot.
    #[must_use]
    pub fn state(&self) -> CircuitState {
        self.0.state()
    }
    /// Counters of the current window. Never counts as a call.
    #[must_use]
    pub fn metrics(&self) -> BreakerMetrics {
        self.0.metrics()
    }
    /// Opens the breaker until `reset()`.
    pub fn force_open(&self) {
        self.0.force_open();
    }
    /// Lets every call through, recording nothing, until `reset()`.
    pub fn disable(&self) {
        self.0.disable();
    }
    /// Back to `Closed`, window cleared, base cooldown.
    pub fn reset(&self) {
        self.0.reset();
    }
    /// The breaker itself.
    #[must_use]
    pub fn breaker(&self) -> &'static CircuitBreaker {
        self.0
    }
}

/// Run-time view of a registered bulkhead. Cheap to copy.
#[derive(Debug, Clone, Copy)]
pub struct BulkheadHandle(&'static Bulkhead);

impl BulkheadHandle {
    /// Calls running now.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.0.in_flight()
    }
    /// Callers waiting now.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.0.queued()
    }
    /// Free permits now.
    #[must_use]
    pub fn available(&self) -> usize {
        self.0.available()
    }
    /// The bulkhead itself.
    #[must_use]
    pub fn bulkhead(&self) -> &'static Bulkhead {
        self.0
    }
}

/// The breaker registered under `name` (its `name = "..."`, or `module_path::fn_name` for one
/// declared without a name). `None` if no call has created it yet, or if two sites derive the
/// same key (then name them explicitly).
#[must_use]
pub fn breaker(name: &str) -> Option<BreakerHandle> {
    let reg = registry();
    let entry = reg.breakers.get(name)?;
    entry
        .ambiguous_with
        .is_none()
        .then_some(BreakerHandle(entry.policy))
}

/// The bulkhead registered under `name`; see [`breaker`] for the naming rules.
#[must_use]
pub fn bulkhead(name: &str) -> Option<BulkheadHandle> {
    let reg = registry();
    let entry = reg.bulkheads.get(name)?;
    entry
        .ambiguous_with
        .is_none()
        .then_some(BulkheadHandle(entry.policy))
}

/// Conflicting declarations found by [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckError {
    /// One message per conflict, naming both sites by file and line.
    pub conflicts: Vec<String>,
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.conflicts.join("; "))
    }
}

impl std::error::Error for CheckError {}

/// Reports sites that share a `name` with different configurations, and derived keys used by
/// two sites, among the policies created so far.
///
/// # Errors
/// A [`CheckError`] listing every conflict.
pub fn check() -> Result<(), CheckError> {
    let reg = registry();
    let mut conflicts = reg.conflicts.clone();
    let ambiguous = |kind: &str, key: &str, a: &Site, b: &Site| {
        format!(
            "{kind} key \"{key}\" is derived by two functions, at {} and {}; give them `name = \"...\"`",
            a.location(),
            b.location()
        )
    };
    for (key, e) in &reg.breakers {
        if let Some(other) = e.ambiguous_with {
            conflicts.push(ambiguous("circuit breaker", key, e.site, other));
        }
    }
    for (key, e) in &reg.bulkheads {
        if let Some(other) = e.ambiguous_with {
            conflicts.push(ambiguous("bulkhead", key, e.site, other));
        }
    }
    if conflicts.is_empty() {
        Ok(())
    } else {
        Err(CheckError { conflicts })
    }
}

/// Every registered breaker with an unambiguous name, sorted by name.
pub(crate) fn all_breakers() -> Vec<(&'static str, &'static CircuitBreaker)> {
    let reg = registry();
    let mut v: Vec<_> = reg
        .breakers
        .iter()
        .filter(|(_, e)| e.ambiguous_with.is_none())
        .map(|(k, e)| (*k, e.policy))
        .collect();
    v.sort_by_key(|(k, _)| *k);
    v
}

/// One policy of an annotated function, as listed at link time.
#[derive(Debug, Clone, Copy)]
pub enum Decl {
    /// A `#[circuit_breaker]`.
    Breaker(&'static BreakerSite),
    /// A `#[timeout]`.
    Timeout(&'static crate::__private::TimeoutSite),
    /// A `#[bulkhead]`.
    Bulkhead(&'static BulkheadSite),
    /// A `#[retry]`.
    Retry(&'static crate::__private::RetrySite),
    /// A `#[fallback]`.
    Fallback(&'static crate::__private::FallbackSite),
}

/// What every annotated function submits at link time (with `inventory`), so the whole
/// resilience strategy of a binary is known before any call.
#[derive(Debug)]
pub struct Registration {
    /// The function.
    pub site: &'static Site,
    /// Its policies, outermost first.
    pub policies: &'static [Decl],
}

inventory::collect!(Registration);

/// The five kinds of policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyKind {
    /// `#[circuit_breaker]`
    CircuitBreaker,
    /// `#[timeout]`
    Timeout,
    /// `#[bulkhead]`
    Bulkhead,
    /// `#[retry]`
    Retry,
    /// `#[fallback]`
    Fallback,
}

impl PolicyKind {
    /// The attribute's name, which is also the table name in configuration files.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::CircuitBreaker => "circuit_breaker",
            PolicyKind::Timeout => "timeout",
            PolicyKind::Bulkhead => "bulkhead",
            PolicyKind::Retry => "retry",
            PolicyKind::Fallback => "fallback",
        }
    }

    pub(crate) const ALL: [PolicyKind; 5] = [
        PolicyKind::CircuitBreaker,
        PolicyKind::Timeout,
        PolicyKind::Bulkhead,
        PolicyKind::Retry,
        PolicyKind::Fallback,
    ];
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Decl {
    pub(crate) fn timeout(self) -> Option<&'static crate::__private::TimeoutSite> {
        match self {
            Decl::Timeout(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn retry(self) -> Option<&'static crate::__private::RetrySite> {
        match self {
            Decl::Retry(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn kind(self) -> PolicyKind {
        match self {
            Decl::Breaker(_) => PolicyKind::CircuitBreaker,
            Decl::Timeout(_) => PolicyKind::Timeout,
            Decl::Bulkhead(_) => PolicyKind::Bulkhead,
            Decl::Retry(_) => PolicyKind::Retry,
            Decl::Fallback(_) => PolicyKind::Fallback,
        }
    }

    /// The name configuration, metrics and chaos use: `name`, or the function's key.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Decl::Breaker(s) => s.name(),
            Decl::Bulkhead(s) => s.name(),
            Decl::Timeout(s) => s.name(),
            Decl::Retry(s) => s.name(),
            Decl::Fallback(s) => s.name(),
        }
    }

    /// Whether the name was given with `name = "..."`.
    pub(crate) fn explicit(self) -> bool {
        match self {
            Decl::Breaker(s) => !matches!(s.naming, Naming::Derived),
            Decl::Bulkhead(s) => !matches!(s.naming, Naming::Derived),
            Decl::Timeout(s) => s.explicit(),
            Decl::Retry(s) => s.explicit(),
            Decl::Fallback(s) => s.explicit(),
        }
    }

    /// The effective configuration in the attribute's own syntax.
    pub(crate) fn describe(self) -> String {
        use crate::literal::format_duration as d;
        match self {
            Decl::Breaker(s) => describe_breaker(s.effective_config()),
            Decl::Bulkhead(s) => {
                let c = s.effective_config();
                let mut out = format!("pool = {}, queue = {}", c.pool, c.queue);
                if let Some(w) = c.max_wait {
                    let _ = write!(out, ", max_wait = \"{}\"", d(w));
                }
                out
            }
            Decl::Timeout(s) => format!("\"{}\"", d(*s.limit.get())),
            Decl::Retry(s) => {
                let c = s.config.get();
                let mut out = format!(
                    "attempts = {}, backoff = \"{}\", strategy = \"{}\"",
                    c.attempts,
                    d(c.backoff),
                    match c.strategy {
                        crate::Strategy::Exponential => "exponential",
                        crate::Strategy::Linear => "linear",
                        crate::Strategy::Constant => "constant",
                    }
                );
                if c.strategy == crate::Strategy::Exponential {
                    let _ = write!(out, ", multiplier = {:?}", c.multiplier);
                }
                let _ = write!(
                    out,
                    ", max_backoff = \"{}\", jitter = \"{}\"",
                    d(c.max_backoff),
                    match c.jitter {
                        crate::Jitter::Full => "full",
                        crate::Jitter::Equal => "equal",
                        crate::Jitter::None => "none",
                        crate::Jitter::Decorrelated => "decorrelated",
                    }
                );
                if let Some(m) = c.max_duration {
                    let _ = write!(out, ", max_duration = \"{}\"", d(m));
                }
                out
            }
            Decl::Fallback(s) => s.handler.to_string(),
        }
    }
}

fn describe_breaker(c: BreakerConfig) -> String {
    use crate::TripRule;
    use crate::literal::format_duration as d;
    let mut out = match c.rule {
        TripRule::Consecutive { threshold } => format!("threshold = {threshold}"),
        TripRule::CountInWindow { threshold, window } => {
            format!("threshold = {threshold}, window = \"{}\"", d(window))
        }
        TripRule::RateOverTime {
            failure_rate,
            window,
            min_calls,
        } => format!(
            "failure_rate = {failure_rate:?}, window = \"{}\", min_calls = {min_calls}",
            d(window)
        ),
        TripRule::RateOverCalls {
            failure_rate,
            last,
            min_calls,
        } => format!("failure_rate = {failure_rate:?}, last = {last}, min_calls = {min_calls}"),
    };
    let _ = write!(out, ", cooldown = \"{}\"", d(c.cooldown));
    if let Some(m) = c.max_cooldown {
        let _ = write!(out, ", max_cooldown = \"{}\"", d(m));
    }
    let _ = write!(
        out,
        ", half_open_calls = {}, success_threshold = {}",
        c.half_open_calls, c.success_threshold
    );
    if let Some(r) = c.ramp {
        let _ = write!(out, ", ramp = \"{}\"", d(r));
    }
    if let Some(s) = c.slow_call {
        let _ = write!(out, ", slow_call = \"{}\"", d(s));
    }
    if c.critical {
        out.push_str(", critical = true");
    }
    out
}

/// One policy of one annotated function, as [`policies`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyInfo {
    /// The function: `module_path::fn_name`.
    pub function: &'static str,
    /// Source file of the function.
    pub file: &'static str,
    /// Source line of the function.
    pub line: u32,
    /// Which policy.
    pub kind: PolicyKind,
    /// Its name: `name = "..."`, or the function's key.
    pub name: &'static str,
    /// The effective configuration (attribute values with any configuration override applied),
    /// written in the attribute's own syntax.
    pub config: String,
    /// Position in the function's stack, 0 for the outermost.
    pub layer: usize,
}

/// Every policy of every annotated function linked into this binary, known before any call
/// (link-time registration), sorted by function and then outermost first.
#[must_use]
pub fn policies() -> Vec<PolicyInfo> {
    let mut out = Vec::new();
    for reg in inventory::iter::<Registration> {
        for (layer, decl) in reg.policies.iter().enumerate() {
            out.push(PolicyInfo {
                function: reg.site.key,
                file: reg.site.file,
                line: reg.site.line,
                kind: decl.kind(),
                name: decl.name(),
                config: decl.describe(),
                layer,
            });
        }
    }
    out.sort_by(|a, b| {
        (a.function, a.file, a.line, a.layer).cmp(&(b.function, b.file, b.line, b.layer))
    });
    out
}

/// Every declared policy of `kind` named `name`, with its site.
pub(crate) fn declarations(kind: PolicyKind) -> Vec<(&'static Site, Decl)> {
    inventory::iter::<Registration>
        .into_iter()
        .flat_map(|reg| reg.policies.iter().map(move |d| (reg.site, *d)))
        .filter(|(_, d)| d.kind() == kind)
        .collect()
}
