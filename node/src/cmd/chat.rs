//! `alp chat`: one prompt with `--once`, or an interactive session.
//!
//! Output conventions: stdout carries only the answer (streamed as it
//! arrives when stdout is a terminal, written whole otherwise, so a failed
//! run leaves no half answer in a pipe); tool activity, progress and logs
//! go to stderr. With a prompt argument stdin is never read, so an
//! inherited open pipe cannot make the command hang, and one-shot mode
//! never prompts: tools needing approval are denied unless allowed.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Read, Write};

use alp_node::agent::ledger::{self, Ledger};
use alp_node::agent::link_tools::LinkTools;
use alp_node::agent::run::{self, AgentError, Ask, Budget, Event, Limits, Outcome, Policy, ToolRecord};
use alp_node::agent::select::{self, Choice, Selected};
use alp_node::agent::session::{self, Redactor, Session, SessionError};
use alp_node::agent::tools::{Tier, ToolBox};
use alp_node::agent::{Message, Provider, ProviderError, Request, Role, ToolCall};
use alp_profiles::config::{Config, Layers, Override, Resolved};
use serde::Serialize;

use crate::cli::{ChatArgs, SessionsCmd};
use crate::ctx::{Ctx, alp_env};
use crate::error::{CliError, CliResult, DENIED, INTERRUPTED, LIMIT, RUNTIME, USAGE, usage};

/// Piped input larger than this is refused rather than read into memory.
const MAX_STDIN: u64 = 4 << 20;

pub(crate) fn run(ctx: &Ctx, args: ChatArgs) -> CliResult {
    let resolved = config(ctx, &args)?;
    let config = &resolved.config;
    let Some(once) = &args.once else {
        return interactive(ctx, &args, &resolved);
    };
    let prompt = prompt(once, args.stdin)?;
    let output = Output::new(ctx, &args);
    let mut session_id = None;
    let result = choose(ctx, &args, &resolved).and_then(|selected| {
        let tools = toolbox(ctx, config)?;
        let mut policy = policy(&args, config, None);
        let (mut session, mut messages, start) = open_session(ctx, &args, selected.provider())?;
        session_id = session.as_ref().map(|s| s.id.clone());
        messages.push(Message::new(Role::User, prompt));
        let turn =
            Exchange { ctx, args: &args, resolved: &resolved, provider: selected.provider(), tools: tools.as_ref() };
        let (outcome, _) = turn.run(&mut policy, &mut messages, &output)?;
        record(&mut session, &messages[start..]);
        let outcome = outcome?;
        report(selected.provider(), &outcome, config);
        Ok(outcome)
    });
    output.finish(result.as_ref(), session_id.as_deref())?;
    result.map(drop)
}

/// The session to record into and the conversation so far: a resumed
/// one's messages, or a new one's system prompt. `start` is where this
/// run's new messages begin.
fn open_session(
    ctx: &Ctx,
    args: &ChatArgs,
    provider: &dyn Provider,
) -> CliResult<(Option<Session>, Vec<Message>, usize)> {
    let system: Vec<Message> = args.system.iter().map(|s| Message::new(Role::System, s.clone())).collect();
    let resume = args.continue_last || args.session.is_some();
    let profile = match ctx.open() {
        Ok(p) => p,
        Err(e) if resume => return Err(e),
        Err(_) => return Ok((None, system, 0)),
    };
    if args.no_session {
        return Ok((None, system, 0));
    }
    let dir = profile.paths().sessions();
    let redactor = Redactor::from_env([]);
    if resume {
        let (session, history) = Session::resume(&dir, args.session.as_deref(), redactor).map_err(session_error)?;
        let start = history.len();
        tracing::info!(session = %session.id, messages = start, "continuing session");
        return Ok((Some(session), history, start));
    }
    let session = Session::create(&dir, provider.name(), provider.model(), redactor).map_err(session_error)?;
    Ok((Some(session), system, 0))
}

/// The budget of one request: `--max-cost`, and what is left of today's
/// caps according to the profile's ledger.
fn budget(
    ctx: &Ctx,
    args: &ChatArgs,
    resolved: &Resolved,
    provider: &dyn Provider,
) -> CliResult<(Budget, Option<Ledger>)> {
    let caps = &resolved.config.budget;
    let price = resolved.prices.get(provider.model()).copied();
    let local = provider.name() == "local";
    if let Some(max) = args.max_cost {
        if max.is_nan() || max < 0.0 {
            return Err(usage(format!("--max-cost {max} must be zero or more")));
        }
        if price.is_none() && !local {
            return Err(usage(format!(
                "--max-cost needs the price of model {:?}: add it to config.toml as [prices] \"{}\" = {{ input = USD_PER_MTOK, output = USD_PER_MTOK }}",
                provider.model(),
                provider.model()
            )));
        }
    }
    if caps.daily_cost > 0.0 && price.is_none() && !local {
        tracing::warn!(
            model = provider.model(),
            "no price for this model in [prices]: budget.daily_cost cannot count it"
        );
    }
    let ledger = ctx.open().ok().map(|p| Ledger::new(&p.paths().ledger()));
    let today = match &ledger {
        Some(l) => l.totals(&ledger::day(alp_profiles::unix_now()), None)?,
        None => Default::default(),
    };
    let budget = Budget {
        price,
        max_cost: args.max_cost,
        daily_cost_left: (caps.daily_cost > 0.0).then_some(caps.daily_cost - today.cost),
        daily_tokens_left: (caps.daily_tokens > 0).then(|| caps.daily_tokens.saturating_sub(today.tokens)),
        ..Budget::default()
    };
    Ok((budget, ledger))
}

/// One user message's worth of work: the loop under this request's budget,
/// charged to the ledger afterwards whatever the outcome.
struct Exchange<'a> {
    ctx: &'a Ctx,
    args: &'a ChatArgs,
    resolved: &'a Resolved,
    provider: &'a dyn Provider,
    tools: Option<&'a ToolBox>,
}

impl Exchange<'_> {
    /// The outer error is a setup failure; the inner result is the run's.
    fn run(
        &self,
        policy: &mut Policy,
        messages: &mut Vec<Message>,
        output: &Output,
    ) -> CliResult<(CliResult<Outcome>, Budget)> {
        let config = &self.resolved.config;
        let (mut budget, ledger) = budget(self.ctx, self.args, self.resolved, self.provider)?;
        let request = request(config, Vec::new());
        let outcome = block_on_interruptible(run::run(
            self.provider,
            self.tools,
            policy,
            &mut budget,
            messages,
            &request,
            limits(config),
            &mut |ev| output.event(ev),
        ));
        if let Some(l) = &ledger {
            l.record(self.provider.name(), self.provider.model(), &budget.turns, "local");
        }
        Ok((outcome, budget))
    }
}

/// Appends to the session; a failure is reported but does not undo the answer.
fn record(session: &mut Option<Session>, messages: &[Message]) {
    if let Some(s) = session
        && let Err(e) = s.append(messages)
    {
        tracing::warn!("could not record the session: {e}");
    }
}

fn session_error(e: SessionError) -> CliError {
    let code = if matches!(e, SessionError::Io { .. }) { RUNTIME } else { USAGE };
    CliError { code, error: e.into() }
}

/// `alp sessions list|show`.
pub(crate) fn sessions(ctx: &Ctx, cmd: SessionsCmd) -> CliResult {
    let profile = ctx.open()?;
    let dir = profile.paths().sessions();
    match cmd {
        SessionsCmd::List => {
            let list = session::summaries(&dir).map_err(session_error)?;
            if ctx.json {
                return ctx.print_json(&list);
            }
            let mut text = String::new();
            for s in &list {
                text.push_str(&format!("{}  {:>3} msgs  {}/{}  {}\n", s.id, s.messages, s.provider, s.model, s.title));
            }
            if list.is_empty() {
                eprintln!("no sessions yet");
                return Ok(());
            }
            ctx.print(text.trim_end())
        }
        SessionsCmd::Show { id } => {
            let (_, messages) = Session::resume(&dir, Some(&id), Redactor::default()).map_err(session_error)?;
            if ctx.json {
                return ctx.print_json(&messages);
            }
            let mut text = String::new();
            for m in &messages {
                let role =
                    serde_json::to_value(m.role).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
                text.push_str(&format!("[{role}] {}\n", m.content));
                for c in &m.tool_calls {
                    text.push_str(&format!("[tool call] {}\n", summary(c)));
                }
            }
            ctx.print(text.trim_end())
        }
    }
}

fn config(ctx: &Ctx, args: &ChatArgs) -> CliResult<Resolved> {
    let mut extra = Vec::new();
    let mut flag = |name: &str, key: &str, value: Option<String>| {
        if let Some(v) = value {
            extra.push(Override { flag: format!("{name} {v}"), assignment: format!("{key}={v}") });
        }
    };
    flag("--max-tokens", "model.max_tokens", args.max_tokens.map(|v| v.to_string()));
    flag("--temperature", "model.temperature", args.temperature.map(|v| v.to_string()));
    flag("--seed", "model.seed", args.seed.map(|v| v.to_string()));
    flag("--max-turns", "agent.max_turns", args.max_turns.map(|v| v.to_string()));
    if let Some(t) = args.temperature
        && !(0.0..=100.0).contains(&t)
    {
        return Err(usage(format!("--temperature {t} is out of range (0 to 100)")));
    }
    // Chatting needs no identity: without a profile, the defaults apply.
    let resolved = match ctx.open() {
        Ok(profile) => ctx.config_with(&profile, extra)?,
        Err(_) => {
            let mut cli = ctx.cli_overrides();
            cli.extend(extra);
            alp_profiles::config::load(&Layers { file: None, env: alp_env(), cli })?
        }
    };
    Ok(resolved)
}

fn request(config: &Config, messages: Vec<Message>) -> Request {
    let m = &config.model;
    Request {
        messages,
        tools: Vec::new(),
        max_tokens: m.max_tokens,
        temperature: m.temperature,
        top_p: m.top_p,
        seed: m.seed,
    }
}

fn limits(config: &Config) -> Limits {
    Limits { max_turns: config.agent.max_turns, turn_timeout: config.model.timeout.0 }
}

fn policy(args: &ChatArgs, config: &Config, ask: Option<Ask>) -> Policy {
    let allowed: BTreeSet<String> = config.agent.allow_tools.iter().chain(&args.allow_tools).cloned().collect();
    Policy { yes: args.yes, allowed, ask }
}

/// The profile's tools, working in its workspace. Without a profile there
/// is no workspace, and no tools are offered.
fn toolbox(ctx: &Ctx, config: &Config) -> CliResult<Option<ToolBox>> {
    let Ok(profile) = ctx.open() else {
        tracing::info!("no profile '{}': tools are off (run `alp init` to get a workspace)", ctx.profile);
        return Ok(None);
    };
    let denied: BTreeSet<String> = config.agent.deny_tools.iter().cloned().collect();
    let tb = ToolBox::new(&profile.paths().workspace(), denied, config.agent.shell_timeout.0)?;
    let link = LinkTools::new(ctx.home.clone(), ctx.profile.clone(), config.clone());
    Ok(Some(tb.with_link(link)))
}

/// The prompt of `--once`: the argument, or stdin for "-", plus piped
/// stdin with `--stdin`.
pub(crate) fn prompt(arg: &str, attach_stdin: bool) -> CliResult<String> {
    let read_stdin = || -> CliResult<String> {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            return Err(usage("stdin is a terminal, not a pipe: pipe the input in, or pass the prompt as an argument"));
        }
        let mut text = String::new();
        stdin
            .lock()
            .take(MAX_STDIN + 1)
            .read_to_string(&mut text)
            .map_err(|e| usage(format!("cannot read stdin: {e}")))?;
        if text.len() as u64 > MAX_STDIN {
            return Err(usage(format!("stdin is larger than {} MiB; pass a smaller input", MAX_STDIN >> 20)));
        }
        Ok(text)
    };
    let mut prompt = if arg == "-" { read_stdin()? } else { arg.to_owned() };
    if attach_stdin && arg != "-" {
        let input = read_stdin()?;
        prompt = format!("{prompt}\n\n{input}");
    }
    if prompt.trim().is_empty() {
        return Err(usage("the prompt is empty"));
    }
    Ok(prompt)
}

/// Chooses the provider from flags, config and environment.
fn choose(ctx: &Ctx, args: &ChatArgs, resolved: &Resolved) -> CliResult<Selected> {
    let choice =
        Choice { provider: args.provider.clone(), model: args.model.clone(), model_path: args.model_path.clone() };
    let selected = select::select(resolved, &ctx.home, &choice, &select::process_env).map_err(provider_error)?;
    tracing::debug!(provider = selected.provider().name(), model = selected.provider().model(), "provider chosen");
    Ok(selected)
}

fn report(provider: &dyn Provider, outcome: &Outcome, config: &Config) {
    if outcome.truncated {
        tracing::warn!(max_tokens = config.model.max_tokens, "the answer was cut at max_tokens");
    }
    let Some(t) = outcome.timings else { return };
    let rate = |n: u64, d: std::time::Duration| n as f64 / d.as_secs_f64().max(1e-9);
    tracing::info!(
        model = provider.model(),
        prompt_tokens = outcome.usage.input_tokens,
        prefill_tok_s = format_args!("{:.1}", rate(outcome.usage.input_tokens, t.prefill)),
        output_tokens = outcome.usage.output_tokens,
        decode_tok_s = format_args!("{:.1}", rate(outcome.usage.output_tokens, t.decode)),
        "generation done"
    );
}

/// Runs `fut` to completion, or returns exit code 130 on Ctrl-C (dropping
/// the future cancels the request and kills any running tool).
fn block_on_interruptible<T>(fut: impl Future<Output = Result<T, AgentError>>) -> CliResult<T> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        tokio::select! {
            r = fut => r.map_err(agent_error),
            _ = tokio::signal::ctrl_c() => {
                Err(CliError { code: INTERRUPTED, error: anyhow::anyhow!("interrupted") })
            }
        }
    })
}

fn agent_error(e: AgentError) -> CliError {
    let code = match &e {
        AgentError::Provider(p) => provider_code(p),
        AgentError::TurnLimit(_) | AgentError::Budget(_) => LIMIT,
        AgentError::Denied { .. } => DENIED,
        AgentError::TurnTimeout(_) => RUNTIME,
    };
    CliError { code, error: e.into() }
}

/// A misconfigured provider is the user's to fix (2); the rest is runtime (1).
fn provider_code(e: &ProviderError) -> u8 {
    match e {
        ProviderError::Config(_) => USAGE,
        ProviderError::Runtime(_) | ProviderError::Unavailable(_) => RUNTIME,
    }
}

fn provider_error(e: ProviderError) -> CliError {
    CliError { code: provider_code(&e), error: e.into() }
}

/// Where the answer goes, decided once from the flags and the terminal.
pub(crate) struct Output {
    mode: Mode,
    quiet: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Text streamed to a terminal as it arrives.
    Stream,
    /// Text written whole at the end (stdout is a pipe or file).
    Whole,
    /// One JSON object at the end.
    Json,
    /// One JSON event per line.
    StreamJson,
}

#[derive(Serialize)]
struct JsonResult<'a> {
    answer: Option<&'a str>,
    session_id: Option<&'a str>,
    usage: Option<alp_node::agent::Usage>,
    /// In US dollars when known: 0 for the local model; null for remote
    /// providers until model prices are configured.
    cost: Option<f64>,
    tool_calls: &'a [ToolRecord],
    error: Option<String>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum JsonEvent<'a> {
    Text { text: &'a str },
    ToolCall { name: &'a str, arguments: &'a serde_json::Value },
    ToolResult { name: &'a str, ok: bool },
    Done(JsonResult<'a>),
}

fn json_result<'a>(result: Result<&'a Outcome, &CliError>, session_id: Option<&'a str>) -> JsonResult<'a> {
    let outcome = result.ok();
    JsonResult {
        answer: outcome.map(|o| o.answer.as_str()),
        session_id,
        usage: outcome.map(|o| o.usage),
        cost: outcome.and_then(|o| o.cost),
        tool_calls: outcome.map_or(&[], |o| o.tool_calls.as_slice()),
        error: result.err().map(|e| e.error.to_string()),
    }
}

/// A call in one line: name and arguments, cut to fit.
fn summary(call: &ToolCall) -> String {
    let args = call.arguments.to_string();
    let args: String = args.chars().take(160).collect();
    format!("{} {args}", call.name)
}

impl Output {
    fn new(ctx: &Ctx, args: &ChatArgs) -> Self {
        Self::with(ctx, args.stream_json)
    }

    pub(crate) fn with(ctx: &Ctx, stream_json: bool) -> Self {
        let mode = if stream_json {
            Mode::StreamJson
        } else if ctx.json {
            Mode::Json
        } else if std::io::stdout().is_terminal() {
            Mode::Stream
        } else {
            Mode::Whole
        };
        Output { mode, quiet: ctx.quiet }
    }

    pub(crate) fn event(&self, ev: Event<'_>) {
        let mut out = std::io::stdout().lock();
        // A closed stdout is noticed when the answer is finished.
        let _ = match (self.mode, ev) {
            (Mode::Stream, Event::Text(t)) => write!(out, "{t}").and_then(|()| out.flush()),
            (Mode::Stream, Event::TurnEnd) => writeln!(out),
            (Mode::StreamJson, Event::Text(text)) => writeln_json(&mut out, &JsonEvent::Text { text }),
            (Mode::StreamJson, Event::ToolStart(c)) => {
                writeln_json(&mut out, &JsonEvent::ToolCall { name: &c.name, arguments: &c.arguments })
            }
            (Mode::StreamJson, Event::ToolDone { call, ok, .. }) => {
                writeln_json(&mut out, &JsonEvent::ToolResult { name: &call.name, ok })
            }
            _ => Ok(()),
        };
        if self.quiet {
            return;
        }
        match ev {
            Event::ToolStart(c) => eprintln!("tool: {}", summary(c)),
            Event::ToolDone { call, ok: false, output } => {
                eprintln!("tool: {} failed: {}", call.name, output.lines().next().unwrap_or(""))
            }
            _ => {}
        }
    }

    pub(crate) fn finish(&self, result: Result<&Outcome, &CliError>, session_id: Option<&str>) -> CliResult {
        let mut out = std::io::stdout().lock();
        match (self.mode, result) {
            (Mode::Stream, Ok(o)) => {
                if !o.answer.ends_with('\n') {
                    writeln!(out)?;
                }
            }
            (Mode::Whole, Ok(o)) => writeln!(out, "{}", o.answer.trim_end_matches('\n'))?,
            (Mode::Stream | Mode::Whole, Err(_)) => {}
            (Mode::Json, r) => {
                serde_json::to_writer_pretty(&mut out, &json_result(r, session_id))?;
                writeln!(out)?;
            }
            (Mode::StreamJson, r) => writeln_json(&mut out, &JsonEvent::Done(json_result(r, session_id)))?,
        }
        out.flush()?;
        Ok(())
    }
}

fn writeln_json(out: &mut impl Write, value: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out)?;
    out.flush()
}

/// Asks on the terminal whether a tool may run.
fn ask_on_terminal(call: &ToolCall, tier: Tier) -> bool {
    eprint!("allow {:?} tool {}? [y/N] ", tier, summary(call));
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).is_ok() && matches!(line.trim(), "y" | "Y" | "yes")
}

/// A line-by-line session on a terminal. `/reset` forgets the conversation,
/// `/exit` (or Ctrl-D) leaves.
fn interactive(ctx: &Ctx, args: &ChatArgs, resolved: &Resolved) -> CliResult {
    let config = &resolved.config;
    if !std::io::stdin().is_terminal() {
        return Err(usage(
            "interactive chat needs a terminal; for scripts use --once PROMPT (or --once - to read stdin)",
        ));
    }
    let selected = choose(ctx, args, resolved)?;
    let provider = selected.provider();
    let tools = toolbox(ctx, config)?;
    let mut policy = policy(args, config, Some(Box::new(ask_on_terminal)));
    let (mut session, mut messages, mut recorded) = open_session(ctx, args, provider)?;
    let mut spent = (alp_node::agent::Usage::default(), 0.0f64);
    let base = messages.len();
    eprintln!(
        "alp chat: {} ({}). /model, /tools, /cost, /session; /reset forgets; /exit or Ctrl-D leaves.",
        provider.model(),
        provider.name()
    );
    let output = Output { mode: Mode::Stream, quiet: ctx.quiet };
    // Line editing, and input history kept per profile across sessions.
    let mut editor = rustyline::DefaultEditor::new()
        .map_err(|e| CliError { code: RUNTIME, error: anyhow::anyhow!("cannot set up the terminal: {e}") })?;
    let history = ctx.open().ok().map(|p| p.paths().root().join("chat_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    loop {
        let line = match editor.readline("> ") {
            Ok(line) => line,
            // Ctrl-C at the prompt clears the line; Ctrl-D leaves.
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(rustyline::error::ReadlineError::Eof) => break Ok(()),
            Err(e) => return Err(CliError { code: RUNTIME, error: anyhow::anyhow!("reading input: {e}") }),
        };
        if !line.trim().is_empty() {
            let _ = editor.add_history_entry(line.trim());
            if let Some(h) = &history {
                let _ = editor.save_history(h);
            }
        }
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" => break Ok(()),
            "/reset" => {
                messages.truncate(base);
                recorded = recorded.min(base);
                eprintln!("(conversation cleared)");
                continue;
            }
            "/model" => {
                eprintln!("provider {}, model {}", provider.name(), provider.model());
                continue;
            }
            "/tools" => {
                match (&tools, provider.supports_tools()) {
                    (Some(tb), true) => {
                        for t in tb.specs() {
                            eprintln!(
                                "{} ({:?})",
                                t.name,
                                alp_node::agent::tools::tier(&t.name).unwrap_or(Tier::Privileged)
                            );
                        }
                    }
                    _ => eprintln!("no tools here (the provider cannot call tools, or there is no profile)"),
                }
                continue;
            }
            "/cost" => {
                eprintln!(
                    "this session: {} input + {} output tokens, ${:.4}",
                    spent.0.input_tokens, spent.0.output_tokens, spent.1
                );
                continue;
            }
            "/session" => {
                eprintln!("session: {}", session.as_ref().map_or("(not recorded)", |s| s.id.as_str()));
                continue;
            }
            cmd if cmd.starts_with('/') => {
                eprintln!("unknown command {cmd}; try /model, /tools, /cost, /session, /reset or /exit");
                continue;
            }
            text => messages.push(Message::new(Role::User, text)),
        }
        let before = messages.len() - 1;
        let turn = Exchange { ctx, args, resolved, provider, tools: tools.as_ref() };
        let (result, budget) = match turn.run(&mut policy, &mut messages, &output) {
            Ok(r) => r,
            Err(e) => (Err(e), Budget::default()),
        };
        let used = budget.usage();
        spent.0.input_tokens += used.input_tokens;
        spent.0.output_tokens += used.output_tokens;
        spent.1 += budget.cost().unwrap_or(0.0);
        println!();
        match result {
            Ok(outcome) => {
                report(provider, &outcome, config);
                record(&mut session, &messages[recorded..]);
                recorded = messages.len();
            }
            Err(e) => {
                // Forget the failed exchange so the next one starts clean.
                messages.truncate(before);
                if e.code == INTERRUPTED {
                    eprintln!("(interrupted)");
                } else {
                    eprintln!("alp: error: {}", e.error);
                }
            }
        }
    }
}
