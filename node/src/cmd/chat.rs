//! `alp chat`: one prompt with `--once`, or an interactive session.
//!
//! Output conventions: stdout carries only the answer (streamed as it
//! arrives when stdout is a terminal, written whole otherwise, so a failed
//! run leaves no half answer in a pipe); tool activity, progress and logs
//! go to stderr. With a prompt argument stdin is never read, so an
//! inherited open pipe cannot make the command hang, and one-shot mode
//! never prompts: tools needing approval are denied unless allowed.

use crate::say::status;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::sync::Arc;

use alp_agent::budget::Budget;
use alp_agent::ledger::Ledger;
use alp_agent::run::{self, AgentError, Event, Outcome, ToolRecord};
use alp_agent::select::{Choice, Selected};
use alp_agent::session::{self, Redactor, Session, SessionError};
use alp_agent::tools::{ShellConfig, Tier, Workspace};
use alp_agent::{Caller, Local, Message, Provider, ProviderError, Role, Setup, SetupError, ToolCall};
use alp_profiles::Profile;
use alp_profiles::config::{Config, Layers, Override, Resolved};
use serde::Serialize;

use crate::bar::{Bar, count_bar};
use crate::cli::{ChatArgs, SessionsCmd};
use crate::ctx::{Ctx, alp_env};
use crate::error::{CliError, CliResult, DENIED, INTERRUPTED, LIMIT, RUNTIME, USAGE, usage};
use crate::peer_tools::{self, Peers};

/// Piped input larger than this is refused rather than read into memory.
const MAX_STDIN: u64 = 4 << 20;

pub(crate) fn run(ctx: &Ctx, args: ChatArgs) -> CliResult {
    // Chatting needs no identity: without a profile, the defaults apply
    // and there are no tools, sessions or ledger.
    let profile = ctx.open().ok();
    let setup = setup(ctx, &args, profile.as_ref())?;
    setup.check_tool_names("--allow-tools", &args.allow_tools).map_err(setup_error)?;
    for (key, names) in [
        ("agent.allow_tools", &setup.config().agent.allow_tools),
        ("agent.deny_tools", &setup.config().agent.deny_tools),
    ] {
        if let Err(e) = setup.check_tool_names(key, names) {
            tracing::warn!("{e}");
        }
    }
    let Some(once) = &args.prompt else {
        return interactive(ctx, &args, profile.as_ref(), &setup);
    };
    let mut prompt = prompt(once, args.stdin)?;
    for r in &args.resource {
        prompt.push_str(&attach(ctx, profile.as_ref(), setup.config(), r)?);
    }
    let output = Output::new(ctx, &args);
    if let Some(p) = &profile
        && let Ok(dir) = workspace_dir(p, setup.config())
    {
        output.workspace(&dir);
    }
    let mut session_id = None;
    let result = choose(&setup, &args).and_then(|selected| {
        let provider = selected.provider();
        output.answered_by(provider.name(), provider.model());
        say_who_answers(ctx, &args, setup.config(), provider);
        let (mut session, mut messages, start) = open_session(ctx, &args, profile.as_ref(), provider)?;
        session_id = session.as_ref().map(|s| s.id.clone());
        messages.push(Message::new(Role::User, prompt));
        let (outcome, _) = exchange(&setup, &local(&args, None), provider, &mut messages, &output)?;
        record(&mut session, &messages[start..]);
        let outcome = outcome?;
        Ok(outcome)
    });
    output.finish(result.as_ref(), session_id.as_deref())?;
    // After the answer's last line is closed, so a warning starts its own.
    if let (Ok(outcome), Some((_, model))) = (&result, output.answered()) {
        report(&model, outcome, setup.config());
    }
    result.map(drop)
}

/// The agent setup of this run: config with the chat flags on top, and,
/// with a profile, its tools (working in its workspace) and its ledger.
fn setup(ctx: &Ctx, args: &ChatArgs, profile: Option<&Profile>) -> CliResult<Setup> {
    let resolved = config(ctx, args, profile)?;
    let Some(profile) = profile else {
        tracing::info!("no profile '{}': tools are off (run `alp init` to get a workspace)", ctx.profile);
        return Ok(Setup::new(resolved, ctx.home.clone(), None, None));
    };
    let c = &resolved.config;
    let dir = workspace_dir(profile, c)?;
    tracing::info!(workspace = %dir.display(), "tools work here");
    let workspace = Workspace::open(&dir)?;
    let peers = Peers::new(ctx.home.clone(), ctx.profile.clone(), c.clone());
    let mcp = alp_mcp::tools(&resolved.mcp, &profile.paths().mcp_cache(), &dir, false);
    let tools = peer_tools::registry(peers, &workspace, &ShellConfig::local(&c.agent)).with_all(mcp);
    let ledger = Ledger::new(&profile.paths().ledger());
    Ok(Setup::new(resolved, ctx.home.clone(), Some(ledger), Some(tools)))
}

/// Where this profile's own runs work with files (`agent.workspace`).
pub(crate) fn workspace_dir(profile: &Profile, config: &Config) -> CliResult<std::path::PathBuf> {
    match config.agent.workspace.as_str() {
        "" => Ok(profile.paths().workspace()),
        "." => Ok(std::env::current_dir()?),
        dir => {
            let path = std::path::PathBuf::from(dir);
            if !path.is_dir() {
                return Err(usage(format!("the workspace {dir} is not a directory (agent.workspace, or --workspace)")));
            }
            Ok(path)
        }
    }
}

/// The local user's flags for the run.
fn local(args: &ChatArgs, ask: Option<alp_agent::run::Ask>) -> Local {
    Local { allow: args.allow_tools.clone(), yes: args.yes, max_cost: args.max_cost, ask, truncate: args.truncate }
}

/// The session to record into and the conversation so far: a resumed
/// one's messages, or a new one's system prompt. `start` is where this
/// run's new messages begin.
fn open_session(
    ctx: &Ctx,
    args: &ChatArgs,
    profile: Option<&Profile>,
    provider: &dyn Provider,
) -> CliResult<(Option<Session>, Vec<Message>, usize)> {
    let system: Vec<Message> = args.system.iter().map(|s| Message::new(Role::System, s.clone())).collect();
    let resume = args.continue_last || args.session.is_some();
    let Some(profile) = profile else {
        if resume {
            // Says why there is nothing to resume: no profile.
            ctx.open()?;
        }
        return Ok((None, system, 0));
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

/// One user message's worth of work: a job set up for it (its budget
/// reads today's ledger), the loop, and the ledger charged afterwards
/// whatever the outcome. The outer error is a setup failure; the inner
/// result is the run's.
fn exchange(
    setup: &Setup,
    local: &Local,
    provider: &dyn Provider,
    messages: &mut Vec<Message>,
    output: &Output,
) -> CliResult<(CliResult<Outcome>, Budget)> {
    let caller = Caller::Local(local);
    let mut job = setup.job(caller, provider).map_err(setup_error)?;
    let outcome = block_on_interruptible(run::run(provider, &mut job, messages, &mut |ev| output.event(ev)));
    setup.record(caller, provider, &job);
    Ok((outcome, job.budget))
}

fn setup_error(e: SetupError) -> CliError {
    let code = if matches!(e, SetupError::Usage(_)) { USAGE } else { RUNTIME };
    CliError { code, error: e.into() }
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
                status!("no sessions yet");
                return Ok(());
            }
            ctx.print(text.trim_end())
        }
        SessionsCmd::Rm { ids } => {
            for id in ids {
                let id = session::remove(&dir, &id).map_err(session_error)?;
                status!("removed session {id}");
            }
            Ok(())
        }
        SessionsCmd::Prune { older_than } => {
            let cutoff = std::time::SystemTime::now() - older_than;
            let gone = session::prune(&dir, cutoff).map_err(session_error)?;
            status!("removed {} session{}", gone.len(), if gone.len() == 1 { "" } else { "s" });
            if ctx.json { ctx.print_json(&gone) } else { Ok(()) }
        }
        SessionsCmd::Show { id } => {
            let (_, messages) = Session::resume(&dir, id.as_deref(), Redactor::default()).map_err(session_error)?;
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

fn config(ctx: &Ctx, args: &ChatArgs, profile: Option<&Profile>) -> CliResult<Resolved> {
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
    flag("--workspace", "agent.workspace", args.workspace.clone());
    if let Some(t) = args.temperature
        && !(0.0..=100.0).contains(&t)
    {
        return Err(usage(format!("--temperature {t} is out of range (0 to 100)")));
    }
    match profile {
        Some(profile) => ctx.config_with(profile, extra),
        None => {
            let mut cli = ctx.cli_overrides();
            cli.extend(extra);
            Ok(alp_profiles::config::load(&Layers { file: None, env: alp_env(), cli })?)
        }
    }
}

/// `--resource SERVER:URI`: the resource's text, as a block to append to
/// the prompt.
fn attach(ctx: &Ctx, profile: Option<&Profile>, config: &Config, spec: &str) -> CliResult<String> {
    let Some(profile) = profile else {
        ctx.open()?;
        return Ok(String::new());
    };
    let (server, uri) = spec.split_once(':').ok_or_else(|| usage(format!("--resource {spec}: expected SERVER:URI")))?;
    let servers = ctx.config(profile)?.mcp;
    let Some(mcp) = servers.get(server) else {
        let meant = alp_profiles::suggest::closest(server, servers.keys().map(String::as_str))
            .map(|s| format!("; did you mean {s}?"))
            .unwrap_or_default();
        return Err(usage(format!("--resource: there is no MCP server {server}{meant} (`alp mcp list`)")));
    };
    let workspace = workspace_dir(profile, config)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let cache = profile.paths().mcp_cache();
    let text = rt
        .block_on(alp_mcp::read_resource(server, mcp, &workspace, &cache, uri))
        .map_err(|e| CliError { code: RUNTIME, error: anyhow::anyhow!("--resource {spec}: {e}") })?;
    if text.len() as u64 > MAX_STDIN {
        return Err(usage(format!("--resource {spec} is larger than {} MiB", MAX_STDIN >> 20)));
    }
    Ok(format!("\n\n[resource {uri} from {server}]\n{text}"))
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
fn choose(setup: &Setup, args: &ChatArgs) -> CliResult<Selected> {
    let choice =
        Choice { provider: args.provider.clone(), model: args.model.clone(), model_path: args.model_path.clone() };
    let selected = setup.provider(&choice).map_err(provider_error)?;
    tracing::info!(provider = selected.provider().name(), model = selected.provider().model(), "provider chosen");
    Ok(selected)
}

/// One line on a terminal when the environment, not a flag or the
/// config, chose a remote provider (an `OPENAI_API_KEY` left set should
/// not silently replace the local model).
fn say_who_answers(ctx: &Ctx, args: &ChatArgs, config: &Config, provider: &dyn Provider) {
    let chosen_here = args.provider.is_some() || !config.model.provider.is_empty();
    if chosen_here || provider.name() == "local" || ctx.quiet || !std::io::stderr().is_terminal() {
        return;
    }
    eprintln!(
        "answering with {} ({}), found in the environment; --provider local for the local model",
        provider.name(),
        provider.model()
    );
}

fn report(model: &str, outcome: &Outcome, config: &Config) {
    if outcome.truncated {
        tracing::warn!(max_tokens = config.model.max_tokens, "the answer was cut at max_tokens");
    }
    let Some(t) = outcome.timings else { return };
    let rate = |n: u64, d: std::time::Duration| n as f64 / d.as_secs_f64().max(1e-9);
    tracing::info!(
        model,
        prompt_tokens = outcome.usage.input_tokens,
        prefill_tok_s = format_args!("{:.1}", rate(outcome.usage.input_tokens, t.prefill)),
        output_tokens = outcome.usage.output_tokens,
        decode_tok_s = format_args!("{:.1}", rate(outcome.usage.output_tokens, t.decode)),
        "generation done"
    );
}

/// Runs `fut` to completion, or returns exit code 130 on Ctrl-C (dropping
/// the future cancels the request and kills any running tool). When the
/// reader of stdout goes away, the run stops too: nobody would see the
/// rest of the answer, so the model stops generating it.
fn block_on_interruptible<T>(fut: impl Future<Output = Result<T, AgentError>>) -> CliResult<T> {
    // One runtime for every exchange of the process: an MCP server started
    // in one REPL turn keeps its tasks (its pipes) for the next.
    static SHARED: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    let rt = match SHARED.get() {
        Some(rt) => rt,
        None => {
            let built = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            SHARED.get_or_init(|| built)
        }
    };
    rt.block_on(async {
        tokio::select! {
            r = fut => r.map_err(agent_error),
            _ = tokio::signal::ctrl_c() => {
                Err(CliError { code: INTERRUPTED, error: anyhow::anyhow!("interrupted") })
            }
            () = stdout_closed() => {
                tracing::info!("stdout was closed: stopped generating");
                Err(CliError { code: RUNTIME, error: std::io::Error::from(std::io::ErrorKind::BrokenPipe).into() })
            }
        }
    })
}

/// Resolves once stdout is a pipe or socket whose reader has gone
/// (`poll` reports an error or hang-up on it); never for files and
/// terminals that stay open.
async fn stdout_closed() {
    use std::os::fd::AsFd;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let stdout = std::io::stdout();
        let mut fds = [nix::poll::PollFd::new(stdout.as_fd(), nix::poll::PollFlags::POLLOUT)];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).is_ok()
            && fds[0]
                .revents()
                .is_some_and(|r| r.intersects(nix::poll::PollFlags::POLLERR | nix::poll::PollFlags::POLLHUP))
        {
            return;
        }
    }
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
    /// The provider and model that answered, once chosen.
    answered_by: std::sync::Mutex<Option<(String, String)>>,
    /// Where tools worked, if they could.
    workspace: std::sync::Mutex<Option<String>>,
    /// Progress through a long prompt, on a terminal.
    prefill: std::sync::Mutex<Option<Bar>>,
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
    /// Which provider answered (`local` for the in-process model).
    provider: Option<String>,
    /// And which model.
    model: Option<String>,
    /// Where tools read and wrote files (absent without a profile).
    workspace: Option<String>,
    session_id: Option<&'a str>,
    usage: Option<alp_agent::Usage>,
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
        provider: None,
        model: None,
        workspace: None,
        session_id,
        usage: outcome.map(|o| o.usage),
        cost: outcome.and_then(|o| o.cost),
        tool_calls: outcome.map_or(&[], |o| o.tool_calls.as_slice()),
        error: result.err().map(|e| e.error.to_string()),
    }
}

/// A call in one line: name and arguments, cut to fit.
fn summary(call: &ToolCall) -> String {
    if call.arguments.is_null() {
        // A peer's ask reports which tool ran, not its arguments.
        return call.name.clone();
    }
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
        Output::in_mode(mode, ctx.quiet)
    }

    fn in_mode(mode: Mode, quiet: bool) -> Self {
        Output {
            mode,
            quiet,
            answered_by: Default::default(),
            workspace: Default::default(),
            prefill: Default::default(),
        }
    }

    /// Takes a progress bar left by a run that stopped while reading.
    fn clear_progress(&self) {
        if let Some(bar) = self.prefill.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            bar.finish();
        }
    }

    /// Draws progress through the prompt, once it is long enough to wait
    /// for, and clears it when the prompt is read.
    fn prefill(&self, done: usize, total: usize) {
        let mut slot = self.prefill.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if done >= total {
            if let Some(bar) = slot.take() {
                bar.finish();
            }
            return;
        }
        if slot.is_none() && total >= 512 {
            let bar = count_bar(self.quiet, "reading the prompt", "tokens");
            if bar.shown() {
                *slot = Some(bar);
            }
        }
        if let Some(bar) = slot.as_ref() {
            bar.update(done as u64, total as u64);
        }
    }

    pub(crate) fn event(&self, ev: Event<'_>) {
        if let Event::Prefill { done, total } = ev {
            return self.prefill(done, total);
        }
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

    /// Records where tools work.
    pub(crate) fn workspace(&self, dir: &std::path::Path) {
        *self.workspace.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(dir.display().to_string());
    }

    /// Which provider and model answered, if one was chosen.
    pub(crate) fn answered(&self) -> Option<(String, String)> {
        self.answered_by.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Records which provider and model answer.
    pub(crate) fn answered_by(&self, provider: &str, model: &str) {
        *self.answered_by.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((provider.to_owned(), model.to_owned()));
    }

    pub(crate) fn finish(&self, result: Result<&Outcome, &CliError>, session_id: Option<&str>) -> CliResult {
        self.clear_progress();
        let by = self.answered_by.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let workspace = self.workspace.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let json_result = |r| JsonResult {
            provider: by.as_ref().map(|b| b.0.clone()),
            model: by.as_ref().map(|b| b.1.clone()),
            workspace: workspace.clone(),
            ..json_result(r, session_id)
        };
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
                serde_json::to_writer_pretty(&mut out, &json_result(r))?;
                writeln!(out)?;
            }
            (Mode::StreamJson, r) => writeln_json(&mut out, &JsonEvent::Done(json_result(r)))?,
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

/// Asks on the terminal whether a tool may run: yes once, no, or always
/// (that tool runs without asking for the rest of the session).
fn ask_on_terminal() -> alp_agent::run::Ask {
    let always = std::sync::Mutex::new(std::collections::BTreeSet::<String>::new());
    Arc::new(move |call: &ToolCall, tier: Tier| {
        let mut always = always.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if always.contains(&call.name) {
            status!("tool {} runs: allowed for this session", call.name);
            return true;
        }
        // A privileged tool (a shell) is asked about every time.
        let offer_always = tier != Tier::Privileged;
        let choices = if offer_always { "[y]es, [N]o, [a]lways this session" } else { "[y]es, [N]o" };
        eprint!("allow {:?} tool {}? {choices}: ", tier, summary(call));
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).is_err() {
            return false;
        }
        match line.trim() {
            "y" | "Y" | "yes" => true,
            "a" | "A" | "always" if offer_always => {
                always.insert(call.name.clone());
                true
            }
            _ => false,
        }
    })
}

/// A line-by-line session on a terminal. `/reset` forgets the conversation,
/// `/exit` (or Ctrl-D) leaves.
fn interactive(ctx: &Ctx, args: &ChatArgs, profile: Option<&Profile>, setup: &Setup) -> CliResult {
    if !std::io::stdin().is_terminal() {
        return Err(usage(
            "interactive chat needs a terminal; for scripts give the prompt: alp chat \"PROMPT\" (or alp chat - to read it from stdin)",
        ));
    }
    let mut selected = choose(setup, args)?;
    let local = local(args, Some(ask_on_terminal()));
    let (mut session, mut messages, mut recorded) = open_session(ctx, args, profile, selected.provider())?;
    // Tokens, dollars, and whether every turn had a price.
    let mut spent = (alp_agent::Usage::default(), 0.0f64, true);
    let base = messages.len();
    eprintln!(
        "alp chat: {} ({}). /help lists the commands; /exit or Ctrl-D leaves.",
        selected.provider().model(),
        selected.provider().name()
    );
    let output = Output::in_mode(Mode::Stream, ctx.quiet);
    // Line editing, and input history kept per profile across sessions.
    let mut editor = rustyline::DefaultEditor::new()
        .map_err(|e| CliError { code: RUNTIME, error: anyhow::anyhow!("cannot set up the terminal: {e}") })?;
    let history = profile.map(|p| p.paths().root().join("chat_history"));
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
        let provider = selected.provider();
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" => break Ok(()),
            "/help" | "/?" => {
                eprintln!(
                    "/model    which provider and model answer; /model NAME switches: a provider,\n\
                     \x20         PROVIDER/MODEL, a model of this provider, or a FILE.gguf\n\
                     /tools    the tools the model may call, and where they work\n\
                     /cost     tokens and dollars this session\n\
                     /session  this session's id (`alp chat --session ID` continues it)\n\
                     /reset    forget the conversation so far\n\
                     /exit     leave (Ctrl-D too); Ctrl-C stops an answer"
                );
                continue;
            }
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
            cmd if cmd.starts_with("/model ") => {
                match setup.switch(provider.name(), &cmd["/model ".len()..]) {
                    Ok(s) => {
                        selected = s;
                        let p = selected.provider();
                        eprintln!("now answering: provider {}, model {}", p.name(), p.model());
                    }
                    Err(e) => eprintln!("alp: error: {e}"),
                }
                continue;
            }
            "/tools" => {
                match (setup.tools_for(Caller::Local(&local)), provider.supports_tools()) {
                    (Some(tools), true) => {
                        if let Some(p) = profile
                            && let Ok(dir) = workspace_dir(p, setup.config())
                        {
                            eprintln!("tools work in {}", dir.display());
                        }
                        for t in tools.specs() {
                            eprintln!("{} ({:?})", t.name, tools.tier(&t.name).unwrap_or(Tier::Privileged));
                        }
                    }
                    _ => eprintln!("no tools here (the provider cannot call tools, or there is no profile)"),
                }
                continue;
            }
            "/cost" => {
                let cost = if spent.2 {
                    format!("${:.4}", spent.1)
                } else {
                    "cost unknown (no price for this model: see [prices] in config.toml)".to_owned()
                };
                eprintln!(
                    "this session: {} input + {} output tokens, {cost}",
                    spent.0.input_tokens, spent.0.output_tokens
                );
                continue;
            }
            "/session" => {
                eprintln!("session: {}", session.as_ref().map_or("(not recorded)", |s| s.id.as_str()));
                continue;
            }
            cmd if cmd.starts_with('/') => {
                eprintln!("unknown command {cmd}; /help lists them");
                continue;
            }
            text => messages.push(Message::new(Role::User, text)),
        }
        let before = messages.len() - 1;
        let (result, budget) = match exchange(setup, &local, provider, &mut messages, &output) {
            Ok(r) => r,
            Err(e) => (Err(e), Budget::default()),
        };
        let used = budget.usage();
        spent.0.input_tokens += used.input_tokens;
        spent.0.output_tokens += used.output_tokens;
        match budget.cost() {
            Some(c) => spent.1 += c,
            None if used.input_tokens + used.output_tokens > 0 => spent.2 = false,
            None => {}
        }
        println!();
        match result {
            Ok(outcome) => {
                report(provider.model(), &outcome, setup.config());
                record(&mut session, &messages[recorded..]);
                recorded = messages.len();
            }
            Err(e) => {
                output.clear_progress();
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
