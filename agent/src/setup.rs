//! One agent setup: every run, whether `alp chat --once`, a line of the
//! REPL or a peer's `agent.ask`, gets its provider, tools, approvals,
//! budget, request settings and limits from [`Setup`], and its spending
//! goes to the ledger through it.

use std::collections::BTreeSet;
use std::sync::Arc;

use alp_profiles::Home;
use alp_profiles::config::{Config, Resolved};
use alp_profiles::peers::Peer;

use crate::budget::Budget;
use crate::ledger::{self, Ledger, Totals};
use crate::provider::{Provider, ProviderError, Request};
use crate::run::{Ask, Job, Limits, Policy};
use crate::select::{self, Choice, Selected};
use crate::tools::{Registry, Toolset};

/// Who a run works for; this decides its tools, approvals and budget.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    /// The profile's own user (`alp chat`).
    Local(&'a Local),
    /// A trusted peer, through `agent.ask`: its entry holds its tool
    /// grant and its daily allowance.
    Peer(&'a Peer),
    /// A workgroup task this profile took on: the tools its card offers
    /// the group and the task's budget, within the profile's daily caps.
    Task(&'a TaskGrant),
}

/// What a workgroup task may use on this node.
#[derive(Debug, Clone, Default)]
pub struct TaskGrant {
    /// The name its spending is recorded under in the ledger.
    pub ledger_name: String,
    /// The tools the model is offered (and may run without asking).
    pub tools: Vec<String>,
    /// Most tokens the task may spend.
    pub max_tokens: Option<u64>,
    /// Most US dollars it may spend.
    pub max_cost: Option<f64>,
}

/// What the local user asked for on the command line.
#[derive(Clone, Default)]
pub struct Local {
    /// Tools that may run without asking (on top of `agent.allow_tools`).
    pub allow: Vec<String>,
    /// Every tool may run.
    pub yes: bool,
    /// Most US dollars the run may spend.
    pub max_cost: Option<f64>,
    /// Asks about other calls (interactive mode).
    pub ask: Option<Ask>,
    /// A prompt too long for the model's context is cut to fit.
    pub truncate: bool,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local").field("allow", &self.allow).field("yes", &self.yes).finish_non_exhaustive()
    }
}

impl Caller<'_> {
    /// The name its spending is recorded under.
    pub fn name(&self) -> &str {
        match self {
            Caller::Local(_) => "local",
            Caller::Peer(p) => p.name.as_str(),
            Caller::Task(t) => t.ledger_name.as_str(),
        }
    }
}

/// A run cannot be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// What was asked for cannot work as configured (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The ledger could not be read (exit 1).
    #[error("cannot read the spending ledger: {0}")]
    Ledger(#[from] std::io::Error),
}

/// A profile's agent configuration, resolved once per process (or per
/// serving node): config, prices, the ledger and the tools.
#[derive(Debug, Clone)]
pub struct Setup {
    resolved: Arc<Resolved>,
    home: Home,
    ledger: Option<Ledger>,
    tools: Option<Registry>,
}

impl Setup {
    /// Runs under `resolved` config, with the models of `home`. Spending
    /// is read from and written to `ledger` (none: no profile, so no daily
    /// caps either); `tools` are the tools of the context (none: no tools).
    pub fn new(resolved: Resolved, home: Home, ledger: Option<Ledger>, tools: Option<Registry>) -> Self {
        Self { resolved: Arc::new(resolved), home, ledger, tools }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.resolved.config
    }

    /// The tools of the context.
    pub fn tools(&self) -> Option<&Registry> {
        self.tools.as_ref()
    }

    /// Checks tool names given by the user (`what` says where, e.g.
    /// "--allow-tools") against the tools of the context, before any model
    /// is called: an unknown name is an error naming the closest tool and
    /// listing them all.
    pub fn check_tool_names(&self, what: &str, names: &[String]) -> Result<(), SetupError> {
        let Some(tools) = &self.tools else { return Ok(()) };
        let known: Vec<&str> = tools.names().collect();
        if let Some(name) = names.iter().find(|n| !known.iter().any(|k| crate::tools::name_matches(n, k))) {
            let hint = alp_profiles::suggest::closest(name, known.iter().copied())
                .map(|s| format!("did you mean {s:?}? "))
                .unwrap_or_default();
            return Err(SetupError::Usage(format!(
                "{what}: there is no tool {name:?}; {hint}the tools are: {}",
                known.join(", ")
            )));
        }
        Ok(())
    }

    /// Chooses and loads the provider: `choice` (flags), then config, then
    /// the environment's conventions, then the local model.
    pub fn provider(&self, choice: &Choice) -> Result<Selected, ProviderError> {
        select::select(&self.resolved, &self.home, choice, &select::process_env)
    }

    /// The provider `spec` names, as the REPL's `/model SPEC` does: a
    /// `.gguf` file (local), a provider, `PROVIDER/MODEL`, or a model of
    /// the `current` provider.
    pub fn switch(&self, current: &str, spec: &str) -> Result<Selected, ProviderError> {
        let spec = spec.trim();
        let choice = |provider: &str, model: Option<&str>| Choice {
            provider: Some(provider.to_owned()),
            model: model.map(str::to_owned),
            model_path: None,
        };
        if spec.ends_with(".gguf") {
            return self.provider(&Choice { model_path: Some(spec.into()), ..choice("local", None) });
        }
        let known = select::known_providers(&self.resolved, &select::process_env);
        if known.iter().any(|k| k == spec) {
            return self.provider(&choice(spec, None));
        }
        if let Some((p, m)) = spec.split_once('/')
            && known.iter().any(|k| k == p)
        {
            return self.provider(&choice(p, Some(m)));
        }
        if current == "local" {
            let meant = alp_profiles::suggest::closest(spec, known.iter().map(String::as_str))
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            return Err(ProviderError::Config(format!(
                "{spec:?} is neither a provider{meant} nor a GGUF file: /model PROVIDER, /model PROVIDER/MODEL \
                 or /model FILE.gguf"
            )));
        }
        self.provider(&choice(current, Some(spec)))
    }

    /// Everything one run for `caller` on `provider` works with.
    pub fn job(&self, caller: Caller<'_>, provider: &dyn Provider) -> Result<Job, SetupError> {
        let config = self.config();
        let budget = match caller {
            Caller::Local(local) => self.local_budget(local, provider)?,
            Caller::Peer(peer) => self.peer_budget(peer, provider)?,
            Caller::Task(task) => self.task_budget(task, provider)?,
        };
        let policy = match caller {
            Caller::Local(local) => {
                let allowed = config.agent.allow_tools.iter().chain(&local.allow).cloned().collect();
                Policy { yes: local.yes, allowed, ask: local.ask.clone(), gate: None }
            }
            Caller::Peer(peer) => {
                Policy { yes: false, allowed: peer.ask_tools.iter().cloned().collect(), ask: None, gate: None }
            }
            Caller::Task(task) => {
                Policy { yes: false, allowed: task.tools.iter().cloned().collect(), ask: None, gate: None }
            }
        };
        let tools = self.tools_for(caller);
        let m = &config.model;
        let base = Request {
            messages: Vec::new(),
            tools: Vec::new(),
            max_tokens: m.max_tokens,
            temperature: m.temperature,
            top_p: m.top_p,
            seed: m.seed,
            truncate: matches!(caller, Caller::Local(l) if l.truncate),
        };
        let limits = Limits { max_turns: config.agent.max_turns, turn_timeout: m.timeout.0 };
        Ok(Job { tools, policy, budget, base, limits })
    }

    /// The tools a run for `caller` is offered: every tool of the context
    /// but those `agent.deny_tools` names, and for a peer only those it was
    /// granted (`None` when that leaves nothing).
    pub fn tools_for(&self, caller: Caller<'_>) -> Option<Toolset> {
        let deny: BTreeSet<String> = self.config().agent.deny_tools.iter().cloned().collect();
        match caller {
            Caller::Local(_) => self.tools.as_ref().map(|r| r.offer(&deny, None)),
            Caller::Peer(peer) => {
                let granted: BTreeSet<String> = peer.ask_tools.iter().cloned().collect();
                self.tools.as_ref().map(|r| r.offer(&deny, Some(&granted))).filter(|t| !t.is_empty())
            }
            Caller::Task(task) => {
                let granted: BTreeSet<String> = task.tools.iter().cloned().collect();
                self.tools.as_ref().map(|r| r.offer(&deny, Some(&granted))).filter(|t| !t.is_empty())
            }
        }
    }

    /// The same setup with no tools at all (a planner's run).
    #[must_use]
    pub fn without_tools(&self) -> Self {
        Self { tools: None, ..self.clone() }
    }

    /// The same setup with other tools (a task's, in its own workspace).
    #[must_use]
    pub fn with_tools(&self, tools: Registry) -> Self {
        Self { tools: Some(tools), ..self.clone() }
    }

    /// Records what `job` spent on `provider` for `caller`, whatever the
    /// run's outcome; a failure is logged, never fatal (the answer
    /// already happened).
    pub fn record(&self, caller: Caller<'_>, provider: &dyn Provider, job: &Job) {
        if let Some(ledger) = &self.ledger {
            ledger.record(provider.name(), provider.model(), &job.budget.turns, caller.name());
        }
    }

    /// Today's spending by `caller` (everyone with `None`).
    fn spent_today(&self, caller: Option<&str>) -> Result<Totals, SetupError> {
        match &self.ledger {
            Some(l) => Ok(l.totals(&ledger::day(alp_profiles::unix_now()), caller)?),
            None => Ok(Totals::default()),
        }
    }

    /// The local user's budget: `--max-cost`, and what is left of the
    /// profile's daily caps.
    fn local_budget(&self, local: &Local, provider: &dyn Provider) -> Result<Budget, SetupError> {
        let caps = &self.config().budget;
        let price = self.resolved.prices.get(provider.model()).copied();
        let priced = price.is_some() || provider.name() == "local";
        if let Some(max) = local.max_cost {
            if max.is_nan() || max < 0.0 {
                return Err(SetupError::Usage(format!("--max-cost {max} must be zero or more")));
            }
            if !priced {
                let model = provider.model();
                return Err(SetupError::Usage(format!(
                    "--max-cost needs the price of model {model:?}: add it to config.toml as [prices] \
                     \"{model}\" = {{ input = USD_PER_MTOK, output = USD_PER_MTOK }}"
                )));
            }
        }
        if caps.daily_cost > 0.0 && !priced {
            tracing::warn!(
                model = provider.model(),
                "no price for this model in [prices]: budget.daily_cost cannot count it"
            );
        }
        let today = self.spent_today(None)?;
        Ok(Budget {
            price,
            max_cost: local.max_cost,
            daily_cost_left: (caps.daily_cost > 0.0).then_some(caps.daily_cost - today.cost),
            daily_tokens_left: (caps.daily_tokens > 0).then(|| caps.daily_tokens.saturating_sub(today.tokens)),
            ..Budget::default()
        })
    }

    /// A task's budget: its own limits, within the profile's daily caps.
    fn task_budget(&self, task: &TaskGrant, provider: &dyn Provider) -> Result<Budget, SetupError> {
        let all = self.spent_today(None)?;
        let caps = &self.config().budget;
        Ok(Budget {
            price: self.resolved.prices.get(provider.model()).copied(),
            max_cost: task.max_cost,
            max_tokens: task.max_tokens,
            lookahead: true,
            daily_cost_left: (caps.daily_cost > 0.0).then_some(caps.daily_cost - all.cost),
            daily_tokens_left: (caps.daily_tokens > 0).then(|| caps.daily_tokens.saturating_sub(all.tokens)),
            ..Budget::default()
        })
    }

    /// A peer's budget: its own daily allowance, within the profile's caps.
    fn peer_budget(&self, peer: &Peer, provider: &dyn Provider) -> Result<Budget, SetupError> {
        let (mine, all) = (self.spent_today(Some(peer.name.as_str()))?, self.spent_today(None)?);
        let caps = &self.config().budget;
        let mut tokens_left = peer.ask_daily_tokens.saturating_sub(mine.tokens);
        if caps.daily_tokens > 0 {
            tokens_left = tokens_left.min(caps.daily_tokens.saturating_sub(all.tokens));
        }
        let mut cost_left = (peer.ask_daily_cost > 0.0).then_some(peer.ask_daily_cost - mine.cost);
        if caps.daily_cost > 0.0 {
            let profile_left = caps.daily_cost - all.cost;
            cost_left = Some(cost_left.map_or(profile_left, |c| c.min(profile_left)));
        }
        Ok(Budget {
            price: self.resolved.prices.get(provider.model()).copied(),
            daily_tokens_left: Some(tokens_left),
            daily_cost_left: cost_left,
            ..Budget::default()
        })
    }
}
