//! `alp chat`: one prompt with `--once`, or an interactive session.
//!
//! Output conventions: stdout carries only the answer (streamed as it
//! arrives when stdout is a terminal, written whole otherwise, so a failed
//! run leaves no half answer in a pipe); everything else goes to stderr.
//! With a prompt argument stdin is never read, so an inherited open pipe
//! cannot make the command hang.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::time::{Duration, Instant};

use alp_node::agent::select::{self, Choice, Selected};
use alp_node::agent::{Message, Provider, ProviderError, Reply, Request, Role};
use alp_profiles::config::{Config, Layers, Override, Resolved};
use serde::Serialize;

use crate::cli::ChatArgs;
use crate::ctx::{Ctx, alp_env};
use crate::error::{CliError, CliResult, INTERRUPTED, RUNTIME, USAGE, usage};

/// Piped input larger than this is refused rather than read into memory.
const MAX_STDIN: u64 = 4 << 20;

pub(crate) fn run(ctx: &Ctx, args: ChatArgs) -> CliResult {
    let resolved = config(ctx, &args)?;
    let config = &resolved.config;
    let mut messages = Vec::new();
    if let Some(system) = &args.system {
        messages.push(Message::new(Role::System, system.clone()));
    }
    let Some(once) = &args.once else {
        return interactive(ctx, &args, &resolved, messages);
    };
    let prompt = prompt(once, args.stdin)?;
    let output = Output::new(ctx, &args);
    let outcome = choose(ctx, &args, &resolved).and_then(|selected| {
        messages.push(Message::new(Role::User, prompt));
        let request = request(config, messages);
        let provider = selected.provider();
        complete(provider, &request, config.model.timeout.0, &mut |piece| output.piece(piece))
            .map(|reply| (selected, reply))
    });
    match outcome {
        Ok((selected, reply)) => {
            report_timings(selected.provider(), &reply);
            if reply.truncated {
                tracing::warn!(max_tokens = config.model.max_tokens, "the answer was cut at max_tokens");
            }
            output.finish(Ok(&reply))
        }
        Err(e) => {
            output.finish(Err(&e))?;
            Err(e)
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
    Request { messages, max_tokens: m.max_tokens, temperature: m.temperature, top_p: m.top_p, seed: m.seed }
}

/// The prompt of `--once`: the argument, or stdin for "-", plus piped
/// stdin with `--stdin`.
fn prompt(arg: &str, attach_stdin: bool) -> CliResult<String> {
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

/// One request with the per-request timeout, interruptible by Ctrl-C.
fn complete(
    provider: &dyn Provider,
    request: &Request,
    timeout: Duration,
    on_text: &mut (dyn FnMut(&str) + Send),
) -> CliResult<Reply> {
    block_on_interruptible(async {
        match tokio::time::timeout(timeout, provider.complete(request, on_text)).await {
            Ok(r) => r,
            Err(_) => Err(ProviderError::Runtime(format!(
                "no complete answer from provider {} within {} (model.timeout)",
                provider.name(),
                humantime::format_duration(timeout)
            ))),
        }
    })
}

fn report_timings(provider: &dyn Provider, reply: &Reply) {
    let Some(t) = reply.timings else { return };
    let rate = |n: u64, d: std::time::Duration| n as f64 / d.as_secs_f64().max(1e-9);
    tracing::info!(
        model = provider.model(),
        prompt_tokens = reply.usage.input_tokens,
        prefill_tok_s = format_args!("{:.1}", rate(reply.usage.input_tokens, t.prefill)),
        output_tokens = reply.usage.output_tokens,
        decode_tok_s = format_args!("{:.1}", rate(reply.usage.output_tokens, t.decode)),
        "generation done"
    );
}

/// Runs `fut` to completion, or returns exit code 130 on Ctrl-C.
fn block_on_interruptible<T>(fut: impl Future<Output = Result<T, ProviderError>>) -> CliResult<T> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        tokio::select! {
            r = fut => r.map_err(provider_error),
            _ = tokio::signal::ctrl_c() => {
                Err(CliError { code: INTERRUPTED, error: anyhow::anyhow!("interrupted") })
            }
        }
    })
}

fn provider_error(e: ProviderError) -> CliError {
    let code = match e {
        ProviderError::Config(_) => USAGE,
        ProviderError::Runtime(_) | ProviderError::Unavailable(_) => RUNTIME,
    };
    CliError { code, error: e.into() }
}

/// Where the answer goes, decided once from the flags and the terminal.
struct Output {
    mode: Mode,
    started: Instant,
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
    tool_calls: [(); 0],
    error: Option<String>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    Text { text: &'a str },
    Done(JsonResult<'a>),
}

fn json_result<'a>(reply: Option<&'a Reply>, error: Option<&CliError>) -> JsonResult<'a> {
    JsonResult {
        answer: reply.map(|r| r.text.as_str()),
        session_id: None,
        usage: reply.map(|r| r.usage),
        cost: reply.and_then(|r| r.cost),
        tool_calls: [],
        error: error.map(|e| e.error.to_string()),
    }
}

impl Output {
    fn new(ctx: &Ctx, args: &ChatArgs) -> Self {
        let mode = if args.stream_json {
            Mode::StreamJson
        } else if ctx.json {
            Mode::Json
        } else if std::io::stdout().is_terminal() {
            Mode::Stream
        } else {
            Mode::Whole
        };
        Output { mode, started: Instant::now() }
    }

    fn piece(&self, piece: &str) {
        let mut out = std::io::stdout().lock();
        // A closed stdout is noticed when the answer is finished.
        let _ = match self.mode {
            Mode::Stream => write!(out, "{piece}").and_then(|()| out.flush()),
            Mode::StreamJson => writeln_json(&mut out, &Event::Text { text: piece }),
            Mode::Whole | Mode::Json => Ok(()),
        };
    }

    fn finish(&self, result: Result<&Reply, &CliError>) -> CliResult {
        let mut out = std::io::stdout().lock();
        tracing::debug!(elapsed_ms = self.started.elapsed().as_millis() as u64, "chat finished");
        match (self.mode, result) {
            (Mode::Stream, Ok(reply)) => {
                if !reply.text.ends_with('\n') {
                    writeln!(out)?;
                }
            }
            (Mode::Whole, Ok(reply)) => writeln!(out, "{}", reply.text.trim_end_matches('\n'))?,
            (Mode::Stream | Mode::Whole, Err(_)) => {}
            (Mode::Json, r) => {
                serde_json::to_writer_pretty(&mut out, &json_result(r.ok(), r.err()))?;
                writeln!(out)?;
            }
            (Mode::StreamJson, r) => writeln_json(&mut out, &Event::Done(json_result(r.ok(), r.err())))?,
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

/// A line-by-line session on a terminal. `/reset` forgets the conversation,
/// `/exit` (or Ctrl-D) leaves.
fn interactive(ctx: &Ctx, args: &ChatArgs, resolved: &Resolved, mut messages: Vec<Message>) -> CliResult {
    let config = &resolved.config;
    if !std::io::stdin().is_terminal() {
        return Err(usage(
            "interactive chat needs a terminal; for scripts use --once PROMPT (or --once - to read stdin)",
        ));
    }
    let selected = choose(ctx, args, resolved)?;
    let provider = selected.provider();
    let base = messages.len();
    eprintln!("alp chat: {} ({}). /reset forgets, /exit or Ctrl-D leaves.", provider.model(), provider.name());
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        eprint!("> ");
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 {
            eprintln!();
            return Ok(());
        }
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" => return Ok(()),
            "/reset" => {
                messages.truncate(base);
                eprintln!("(conversation cleared)");
                continue;
            }
            cmd if cmd.starts_with('/') => {
                eprintln!("unknown command {cmd}; try /reset or /exit");
                continue;
            }
            text => messages.push(Message::new(Role::User, text)),
        }
        let request = request(config, messages.clone());
        let mut out = std::io::stdout();
        let result = complete(provider, &request, config.model.timeout.0, &mut |piece| {
            let _ = write!(out, "{piece}").and_then(|()| out.flush());
        });
        println!();
        match result {
            Ok(reply) => {
                report_timings(provider, &reply);
                messages.push(Message::new(Role::Assistant, reply.text));
            }
            // Ctrl-C stops the answer, not the session.
            Err(e) if e.code == INTERRUPTED => {
                messages.pop();
                eprintln!("(interrupted)");
            }
            Err(e) => {
                messages.pop();
                eprintln!("alp: error: {}", e.error);
            }
        }
    }
}
