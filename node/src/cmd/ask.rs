//! `alp ask PEER PROMPT`: a prompt answered by a peer's agent, with the
//! output conventions and exit codes of `alp chat --once`.

use alp_agent::run::{Event, Outcome, ToolRecord};
use alp_agent::{ToolCall, Usage};
use alp_protocol::envelope::{AskEvent, AskFailure, AskRequest};

use super::chat::{Output, prompt};
use crate::cli::AskArgs;
use crate::ctx::Ctx;
use crate::error::{CliError, CliResult, DENIED, INTERRUPTED, LIMIT, RUNTIME};

/// Shows one event of the peer's answer, keeping the text of the last
/// turn and the tools used.
fn show(ev: &AskEvent, answer: &mut String, tools: &mut Vec<ToolRecord>, output: &Output) {
    match ev {
        AskEvent::Text { text } => {
            answer.push_str(text);
            output.event(Event::Text(text));
        }
        AskEvent::TurnEnd => {
            answer.clear();
            output.event(Event::TurnEnd);
        }
        AskEvent::Tool { name, ok } => {
            tools.push(ToolRecord { name: name.clone(), arguments: serde_json::Value::Null, ok: *ok });
            let call = ToolCall { id: String::new(), name: name.clone(), arguments: serde_json::Value::Null };
            output.event(Event::ToolStart(&call));
            output.event(Event::ToolDone { call: &call, ok: *ok, output: "" });
        }
        AskEvent::Done { .. } | AskEvent::Failed { .. } => {}
    }
}

pub(crate) fn run(ctx: &Ctx, args: AskArgs) -> CliResult {
    let profile = ctx.open()?;
    let peer = profile.peers().get(&args.peer)?;
    let config = ctx.config(&profile)?.config;
    let prompt = prompt(&args.prompt, args.stdin)?;
    let output = Output::with(ctx, args.stream_json);
    let mut ask_id = [0u8; 16];
    getrandom::fill(&mut ask_id)
        .map_err(|e| CliError { code: RUNTIME, error: anyhow::anyhow!("no randomness: {e}") })?;
    let request = AskRequest { prompt, system: args.system.clone(), ask_id: ask_id.to_vec() };

    let mut answer = String::new();
    let mut tools = Vec::new();
    let node = super::wg::Control::of(&profile);
    let last: Result<AskEvent, CliError> = if node.is_running() {
        // The running node asks over the link it keeps (a peer behind a NAT
        // included); Ctrl-C ends this command, and the node cancels the ask.
        use crate::service::ask;
        let request = ask::Args {
            op: ask::OP.name.into(),
            peer: peer.name.to_string(),
            request: request.clone(),
            wait_secs: args.wait.as_secs_f64(),
        };
        let asked = node.run_with::<AskEvent>(&ask::OP, &request, |v| {
            if let Ok(ev) = serde_json::from_value::<AskEvent>(v) {
                show(&ev, &mut answer, &mut tools, &output);
            }
        });
        super::net::client_runtime()?.block_on(async {
            tokio::select! {
                r = asked => r,
                // Leaving closes the connection: the node cancels the ask.
                _ = tokio::signal::ctrl_c() => Err(CliError { code: INTERRUPTED, error: anyhow::anyhow!("interrupted") }),
            }
        })
    } else {
        super::net::client_runtime()?.block_on(super::net::with_peer(&profile, &config, &peer, async |dialled| {
            let asked = dialled.link.ask(&request, args.wait, |ev| show(ev, &mut answer, &mut tools, &output));
            tokio::select! {
                r = asked => r.map_err(|e| match e {
                    alp_link::RequestError::Remote(r) => {
                        let exit = crate::error::remote_code(&alp_link::RequestError::Remote(r.clone()));
                        CliError { code: exit, error: anyhow::anyhow!("peer {}: {}", peer.name, r.message) }
                    }
                    e => e.into(),
                }),
                _ = tokio::signal::ctrl_c() => {
                    // Stop the work on the peer too, then leave.
                    let cancel = dialled.link.cancel_ask(ask_id);
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), cancel).await;
                    Err(CliError { code: INTERRUPTED, error: anyhow::anyhow!("interrupted") })
                }
            }
        }))
    };
    let name = &peer.name;
    let result = match last {
        Ok(AskEvent::Done { input_tokens, output_tokens, cost }) => Ok(Outcome {
            answer,
            usage: Usage { input_tokens, output_tokens },
            tool_calls: tools,
            turns: 0,
            truncated: false,
            cost,
            timings: None,
        }),
        Ok(AskEvent::Failed { code, message }) => {
            let exit = match code {
                AskFailure::Limit => LIMIT,
                AskFailure::Denied => DENIED,
                AskFailure::Runtime | AskFailure::Config | AskFailure::Cancelled => RUNTIME,
            };
            Err(CliError { code: exit, error: anyhow::anyhow!("peer {name}: {message}") })
        }
        Ok(_) => Err(CliError { code: RUNTIME, error: anyhow::anyhow!("peer {name} ended the answer oddly") }),
        Err(e) => Err(e),
    };
    output.finish(result.as_ref(), None)?;
    result.map(drop)
}
