//! `alp wg …`: workgroups, through the running node's control socket
//! (`alp wg verify` also works without it, on the files).

use crate::say::status;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alp_blobstore::BlobHash;
use alp_profiles::Profile;
use alp_workgroup::body::Artefact;
use clap::Subcommand;
use serde_json::Value;

use crate::ctx::Ctx;
use crate::error::{CliError, CliResult, RUNTIME, usage};
use crate::wg::api::{EventView, GroupView, Reply, Request, TaskView};
use crate::wg::control;

/// `alp wg` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum WgCmd {
    /// Create a workgroup; this profile is its first admin
    Create {
        #[arg(help = "The workgroup's name")]
        name: String,
        /// What the group is for (given to every task's agent)
        #[arg(long, default_value = "")]
        briefing: String,
        /// The group's total budget in US dollars
        #[arg(long, value_name = "USD")]
        budget_usd: Option<f64>,
        /// The group's total budget in model tokens
        #[arg(long, value_name = "N")]
        budget_tokens: Option<u64>,
        /// This profile's roles in it (repeatable)
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// How long a member may stay silent on a task before it is reassigned
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        lease: Option<Duration>,
        /// Attempts per task before it fails
        #[arg(long, value_name = "N")]
        max_attempts: Option<u8>,
        /// How deep tasks may delegate
        #[arg(long, value_name = "N")]
        max_depth: Option<u8>,
    },
    /// Invite a trusted peer into a workgroup
    Invite {
        #[arg(help = "The workgroup's name (see `alp wg list`)")]
        group: String,
        /// The peer's name (see `alp peer list`)
        peer: String,
        /// Its roles (repeatable)
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// Make it an admin
        #[arg(long)]
        admin: bool,
    },
    /// Accept an invitation to a workgroup
    Join {
        #[arg(help = "The workgroup's name (see `alp wg list`)")]
        group: String,
    },
    /// Leave a workgroup
    Leave {
        #[arg(help = "The workgroup's name (see `alp wg list`)")]
        group: String,
    },
    /// Drop an invitation (or a group you are no longer in) from this node
    Decline {
        #[arg(help = "The workgroup's name (see `alp wg list`)")]
        group: String,
    },
    /// Remove a member (admins only)
    #[command(visible_alias = "rm")]
    Remove {
        #[arg(help = "The workgroup's name (see `alp wg list`)")]
        group: String,
        #[arg(help = "The member's peer name")]
        member: String,
    },
    /// Publish this profile's capability card again (after changing the workgroup.* config)
    Card {
        #[arg(help = "The workgroup's name (see `alp wg list`)")]
        group: String,
    },
    /// Add a note to a workgroup's transcript
    Note {
        #[arg(help = "The workgroup's name (see `alp wg list`)")]
        group: String,
        #[arg(help = "The note")]
        text: String,
    },
    /// List the workgroups this profile is in or invited to
    #[command(visible_alias = "ls")]
    List,
    /// A workgroup's roster: roles, cards, who is online, spend
    Show {
        #[arg(help = "The workgroup's name (see `alp wg list`)")]
        group: String,
    },
    /// Ask a workgroup for work; prints the task id
    Task {
        #[arg(help = "The workgroup's name (see `alp wg list`)")]
        group: String,
        #[arg(help = "What the task is to achieve")]
        goal: String,
        /// The member to run it
        #[arg(long, conflicts_with = "role")]
        to: Option<String>,
        /// Pick a member with this role (the least loaded with room)
        #[arg(long)]
        role: Option<String>,
        /// An input: a file (imported as a blob) or a stored blob's hash (repeatable)
        #[arg(long = "input", value_name = "FILE|HASH")]
        inputs: Vec<String>,
        /// The task's budget in US dollars
        #[arg(long, value_name = "USD")]
        budget_usd: Option<f64>,
        /// The task's budget in tokens
        #[arg(long, value_name = "N")]
        budget_tokens: Option<u64>,
        /// Cancel it if it is not done by then (e.g. 10m)
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        deadline: Option<Duration>,
        /// A task it waits for: it starts once that one has completed, and gets its result (repeatable)
        #[arg(long, value_name = "TASK")]
        after: Vec<String>,
        /// A task whose result it uses if there is one, and goes on without if it fails (repeatable)
        #[arg(long, value_name = "TASK")]
        after_optional: Vec<String>,
        /// Its risk tier: low, medium, high or critical [default: the group's]
        #[arg(long, value_name = "TIER")]
        tier: Option<String>,
        /// Wait for the task to end and print its result
        #[arg(long)]
        wait: bool,
    },
    /// Run a graph of tasks: `--pipeline research,writer`, `--fanout a,b --then c`, or `--graph plan.toml`.
    /// Steps name roles (or members); each task starts when those it waits for have completed, with their results
    Run {
        #[arg(help = "The workgroup's name (see `alp wg list`)")]
        group: String,
        #[arg(help = "What the work is to achieve (every step gets it; a graph file may give its own)")]
        goal: Option<String>,
        /// Steps one after another, each given the previous one's result
        #[arg(long, value_name = "A,B,...", value_delimiter = ',', conflicts_with_all = ["fanout", "graph"])]
        pipeline: Vec<String>,
        /// Steps run at once
        #[arg(long, value_name = "A,B,...", value_delimiter = ',', conflicts_with = "graph")]
        fanout: Vec<String>,
        /// The step that merges the fan-out's results
        #[arg(long, value_name = "STEP", requires = "fanout")]
        then: Option<String>,
        /// A graph file: `[[task]]` tables with id, goal, role or to, after, optional_after, budget_tokens
        #[arg(long, value_name = "FILE")]
        graph: Option<PathBuf>,
        /// Let a model propose the graph (a member with the `planner` role, through a task; else this profile's); it is checked, shown, and run once confirmed
        #[arg(long, conflicts_with_all = ["pipeline", "fanout", "graph"])]
        plan: bool,
        /// Run the plan without asking (scripts)
        #[arg(long, requires = "plan")]
        yes: bool,
        /// Each task's budget in tokens (a graph file's own budgets win)
        #[arg(long, value_name = "N")]
        budget_tokens: Option<u64>,
        /// Each task's budget in US dollars
        #[arg(long, value_name = "USD")]
        budget_usd: Option<f64>,
        /// Wait for the work to end and print the final results
        #[arg(long)]
        wait: bool,
    },
    /// Show a group's governance, or change it (admins): concurrency, risk tiers, approvers, timeouts, submitters
    Policy {
        #[arg(help = "The workgroup's name (see `alp wg list`)")]
        group: String,
        #[command(flatten)]
        change: super::wg_govern::PolicyArgs,
    },
    /// Approve a task or tool call waiting for approval (see `alp wg status`)
    Approve {
        #[arg(help = "The task's or approval request's id (or a prefix)")]
        id: String,
        /// Why (kept in the signed log)
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Deny a task or tool call waiting for approval
    Deny {
        #[arg(help = "The task's or approval request's id (or a prefix)")]
        id: String,
        /// Why (kept in the signed log)
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Answer a task that needs input
    Reply {
        #[arg(help = "The task's id (see `alp wg status`)")]
        task: String,
        #[arg(help = "The answer")]
        text: String,
    },
    /// Cancel a task, or with --all every open task of a group
    Cancel {
        /// The task (its id or a prefix)
        #[arg(required_unless_present = "all")]
        task: Option<String>,
        /// Cancel every open task of this group
        #[arg(long, value_name = "GROUP", conflicts_with = "task")]
        all: Option<String>,
        /// Why (kept in the transcript)
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// A workgroup's members and tasks, or one task
    Status {
        #[arg(help = "The workgroup's name (see `alp wg list`)")]
        group: String,
        #[arg(help = "One task's id [default: the whole group]")]
        task: Option<String>,
    },
    /// Every change as it happens (Ctrl-C to stop)
    Watch {
        #[arg(help = "The workgroup's name (see `alp wg list`)")]
        group: String,
    },
    /// The transcript, oldest first
    Log {
        #[arg(help = "The workgroup's name (see `alp wg list`)")]
        group: String,
    },
    /// Re-check every signature, chain link and reference of the stored log, or of an exported one (--file)
    Verify {
        #[arg(help = "The workgroup's name (see `alp wg list`)", required_unless_present = "file")]
        group: Option<String>,
        /// A log written by `alp wg export`, checked on its own (no profile or node needed)
        #[arg(long, value_name = "FILE", conflicts_with = "group")]
        file: Option<PathBuf>,
    },
    /// Write a group's signed log to a file, for `alp wg verify --file` on any machine
    Export {
        #[arg(help = "The workgroup's name (see `alp wg list`)")]
        group: String,
        #[arg(help = "Where to write it (not over an existing file)")]
        file: PathBuf,
    },
    /// The dashboard (as `alp ui`): task graphs live, spend, approvals; prints its address
    Dashboard(super::wg_dashboard::UiArgs),
    /// How an artefact came to be: the tasks, members, models, inputs and signed events behind it
    Provenance {
        #[arg(help = "The artefact's blob hash (or a unique prefix of a blob here)")]
        hash: String,
        /// Trace it in a log written by `alp wg export`, checked first (no profile or node needed)
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

pub(crate) fn run(ctx: &Ctx, cmd: WgCmd) -> CliResult {
    // An exported log is checked on its own: no profile, no node.
    if let WgCmd::Verify { file: Some(file), .. } = &cmd {
        return verify_file(ctx, file);
    }
    if let WgCmd::Provenance { hash, file: Some(file) } = &cmd {
        return provenance_file(ctx, hash, file);
    }
    let profile = ctx.open()?;
    let node = Control::of(&profile);
    match cmd {
        WgCmd::Create { name, briefing, budget_usd, budget_tokens, roles, lease, max_attempts, max_depth } => {
            let budget = control::budget(budget_usd, budget_tokens).map_err(usage)?;
            let lease_secs = lease.map(|d| d.as_secs().clamp(1, u64::from(u32::MAX)) as u32);
            let v = node.call(&Request::Create {
                name: name.clone(),
                briefing,
                budget,
                roles,
                lease_secs,
                max_attempts,
                max_depth,
            })?;
            status!("created workgroup {name}; invite members with `alp wg invite {name} PEER --role ROLE`");
            print_id(ctx, &v, "id")
        }
        WgCmd::Invite { group, peer, roles, admin } => {
            let v = node.call(&Request::Invite { group: group.clone(), peer: peer.clone(), roles, admin })?;
            status!("invited {peer} to {group}; it joins with `alp wg join {group}`");
            print_id(ctx, &v, "event")
        }
        WgCmd::Join { group } => {
            done(ctx, node.call(&Request::Join { group: group.clone() })?, &format!("joined {group}"))
        }
        WgCmd::Leave { group } => {
            done(ctx, node.call(&Request::Leave { group: group.clone() })?, &format!("left {group}"))
        }
        WgCmd::Decline { group } => {
            done(ctx, node.call(&Request::Decline { group: group.clone() })?, &format!("declined {group}"))
        }
        WgCmd::Remove { group, member } => {
            let v = node.call(&Request::Remove { group, member: member.clone() })?;
            done(ctx, v, &format!("removed {member}"))
        }
        WgCmd::Card { group } => done(ctx, node.call(&Request::Card { group })?, "published this profile's card"),
        WgCmd::Note { group, text } => done(ctx, node.call(&Request::Note { group, text })?, "noted"),
        WgCmd::List => list(ctx, node.call(&Request::List)?),
        WgCmd::Show { group } => show(ctx, node.call(&Request::Status { group, task: None })?),
        WgCmd::Run { group, goal, pipeline, fanout, then, graph, plan, yes, budget_tokens, budget_usd, wait } => {
            let view: Value = node.call(&Request::Status { group: group.clone(), task: None })?;
            let roles: Vec<String> = view["members"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|m| m["roles"].as_array().into_iter().flatten().filter_map(|r| r.as_str().map(str::to_owned)))
                .collect();
            let plan = match (graph, goal.as_deref()) {
                (None, Some(goal)) if plan => {
                    // The node's model proposes; the node checks the proposal.
                    let v = node.call(&Request::Plan { group: group.clone(), goal: goal.to_owned() })?;
                    for why in v["refused"].as_array().into_iter().flatten() {
                        status!("{}", why.as_str().unwrap_or_default());
                    }
                    let proposed: super::wg_graph::Graph = serde_json::from_value(v["graph"].clone())?;
                    super::wg_plan::confirm(&proposed, yes)?;
                    proposed
                }
                (Some(file), goal) => {
                    let text = std::fs::read_to_string(&file)
                        .map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?;
                    super::wg_graph::parse(&text, goal)?
                }
                (None, None) => return Err(usage("give the goal of the work")),
                (None, Some(goal)) if !pipeline.is_empty() => super::wg_graph::pipeline(goal, &pipeline, &roles)?,
                (None, Some(goal)) if !fanout.is_empty() => {
                    super::wg_graph::fanout(goal, &fanout, then.as_deref(), &roles)?
                }
                (None, Some(_)) => {
                    return Err(usage("say how: --pipeline A,B, --fanout A,B [--then C], or --graph FILE"));
                }
            };
            run_graph(ctx, &node, &group, plan, budget_tokens, budget_usd, wait)
        }
        WgCmd::Task {
            group,
            goal,
            to,
            role,
            inputs,
            budget_usd,
            budget_tokens,
            deadline,
            after,
            after_optional,
            tier,
            wait,
        } => {
            super::wg_govern::check_tier(tier.as_deref())?;
            let config = ctx.config(&profile)?.config;
            let store = crate::store::open(&profile, &config)?;
            let (files, hashes): (Vec<String>, Vec<String>) = inputs.into_iter().partition(|i| Path::new(i).is_file());
            let inputs = files.iter().map(|f| input(&store, f)).collect::<CliResult<Vec<_>>>()?;
            let budget = control::budget(budget_usd, budget_tokens).map_err(usage)?;
            let deadline_secs = deadline.map(|d| d.as_secs().max(1));
            let request = Request::Task {
                group: group.clone(),
                goal,
                to,
                role,
                inputs,
                input_hashes: hashes,
                budget,
                deadline_secs,
                after,
                optional: after_optional,
                tier,
            };
            let v = node.call(&request)?;
            let id = v["task"].as_str().unwrap_or_default().to_owned();
            if v["status"] == "rejected" {
                let reason = v["reason"].as_str().unwrap_or("no reason given");
                return Err(CliError {
                    code: crate::error::LIMIT,
                    error: anyhow::anyhow!("the group refused the task: {reason}"),
                });
            }
            if !wait {
                status!("task {} submitted; follow it with `alp wg status {group} {}`", short_id(&id), short_id(&id));
                return print_id(ctx, &v, "task");
            }
            wait_for(ctx, &node, &group, &id)
        }
        WgCmd::Policy { group, change } => super::wg_govern::policy(ctx, &node, group, change),
        WgCmd::Approve { id, reason } => super::wg_govern::decide(ctx, &node, id, true, reason),
        WgCmd::Deny { id, reason } => super::wg_govern::decide(ctx, &node, id, false, reason),
        WgCmd::Reply { task, text } => done(ctx, node.call(&Request::Reply { task, text })?, "answered"),
        WgCmd::Cancel { task, all, reason } => {
            let v = node.call(&Request::Cancel { group: all, task, reason })?;
            done(ctx, v, "canceled")
        }
        WgCmd::Status { group, task } => {
            let v = node.call(&Request::Status { group, task: task.clone() })?;
            if ctx.json {
                return ctx.print_json(&v);
            }
            match task {
                Some(_) => print_task(ctx, &serde_json::from_value(v)?),
                None => print_group(ctx, &serde_json::from_value(v)?),
            }
        }
        WgCmd::Watch { group } => watch(ctx, &node, &group),
        WgCmd::Log { group } => {
            let v = node.call(&Request::Log { group })?;
            if ctx.json {
                // One event per line, like `watch --json`.
                for e in v.as_array().into_iter().flatten() {
                    ctx.print(&serde_json::to_string(e)?)?;
                }
                return Ok(());
            }
            let events: Vec<EventView> = serde_json::from_value(v)?;
            for e in &events {
                say(ctx, &event_line(e))?;
            }
            Ok(())
        }
        WgCmd::Verify { group, .. } => verify(ctx, &profile, &node, group.as_deref().unwrap_or_default()),
        WgCmd::Export { group, file } => export(ctx, &profile, &group, &file),
        WgCmd::Dashboard(args) => super::wg_dashboard::serve(ctx, node, args.listen),
        WgCmd::Provenance { hash, .. } => {
            let full = match crate::store::open(&profile, &ctx.config(&profile)?.config)
                .ok()
                .and_then(|s| s.resolve(&hash).ok())
            {
                Some(h) => h.to_string(),
                None => hash,
            };
            let v = node.call(&Request::Provenance { hash: full })?;
            if ctx.json {
                return ctx.print_json(&v);
            }
            print_provenance(ctx, &v)
        }
    }
}

/// The control socket of a profile's running node.
pub(crate) struct Control {
    socket: PathBuf,
    profile: String,
}

impl Control {
    pub(crate) fn of(profile: &Profile) -> Self {
        Self { socket: profile.paths().control_socket(), profile: profile.name().to_string() }
    }

    /// The socket's path.
    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// Whether a node answers on the socket.
    pub(crate) fn is_running(&self) -> bool {
        UnixStream::connect(&self.socket).is_ok()
    }

    fn connect(&self) -> CliResult<UnixStream> {
        UnixStream::connect(&self.socket).map_err(|_| self.not_running())
    }

    fn not_running(&self) -> CliError {
        CliError {
            code: RUNTIME,
            error: anyhow::anyhow!(
                "the node of profile '{p}' is not running: workgroup commands act through it; start it with \
                 `alp -p {p} serve`",
                p = self.profile
            ),
        }
    }

    fn send(&self, request: &impl serde::Serialize) -> CliResult<BufReader<UnixStream>> {
        let mut stream = self.connect()?;
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        stream.write_all(&line)?;
        Ok(BufReader::new(stream))
    }

    /// Sends one request and reads its answer.
    pub(crate) fn call(&self, request: &Request) -> CliResult<Value> {
        let mut reader = self.send(request)?;
        read_reply(&mut reader)
    }

    /// [`Self::run`] for an operation that reports progress, as a future
    /// (so that Ctrl-C can drop it, which closes the connection and makes
    /// the node cancel the operation): each progress line goes to
    /// `on_progress` as it comes.
    pub(crate) async fn run_with<T: serde::de::DeserializeOwned>(
        &self,
        op: &crate::service::Op,
        request: &impl serde::Serialize,
        mut on_progress: impl FnMut(Value),
    ) -> CliResult<T> {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let mut stream = tokio::net::UnixStream::connect(&self.socket).await.map_err(|_| self.not_running())?;
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        stream.write_all(&line).await?;
        let mut reader = tokio::io::BufReader::new(stream);
        let limit = op.timeout + std::time::Duration::from_secs(5);
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(limit, reader.read_line(&mut line)).await.map_err(|_| CliError {
                code: RUNTIME,
                error: anyhow::anyhow!("the node did not answer within {:?}", op.timeout),
            })??;
            if n == 0 {
                return Err(CliError {
                    code: RUNTIME,
                    error: anyhow::anyhow!("the node closed the connection (its log says why)"),
                });
            }
            let v: Value = serde_json::from_str(&line)?;
            if let Some(p) = v.get("progress") {
                on_progress(p.clone());
                continue;
            }
            return match serde_json::from_value::<Reply>(v)? {
                Reply::Ok(v) => Ok(serde_json::from_value(v)?),
                Reply::Error { message, exit } => {
                    Err(CliError { code: exit.max(1), error: anyhow::anyhow!("{message}") })
                }
            };
        }
    }

    /// Runs one operation of the node's registry (`service::OPS`), giving
    /// up after the operation's own timeout (progress lines, if any, are
    /// not shown).
    pub(crate) fn run<T: serde::de::DeserializeOwned>(
        &self,
        op: &crate::service::Op,
        request: &impl serde::Serialize,
    ) -> CliResult<T> {
        super::net::client_runtime()?.block_on(self.run_with(op, request, |_| {}))
    }
}

fn read_reply(reader: &mut impl BufRead) -> CliResult<Value> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(CliError {
            code: RUNTIME,
            error: anyhow::anyhow!("the node closed the connection (its log says why)"),
        });
    }
    match serde_json::from_str::<Reply>(&line)? {
        Reply::Ok(v) => Ok(v),
        Reply::Error { message, exit } => Err(CliError { code: exit.max(1), error: anyhow::anyhow!("{message}") }),
    }
}

/// Submits a checked graph in its order, each task naming the ids of those
/// it waits for; prints the graph's names beside the task ids, and with
/// `wait`, the results of the tasks nothing waits for.
fn run_graph(
    ctx: &Ctx,
    node: &Control,
    group: &str,
    plan: super::wg_graph::Graph,
    budget_tokens: Option<u64>,
    budget_usd: Option<f64>,
    wait: bool,
) -> CliResult {
    let mut ids: Vec<(String, String)> = Vec::new();
    let id_of = |ids: &[(String, String)], name: &str| ids.iter().find(|(n, _)| n == name).map(|(_, id)| id.clone());
    for t in &plan.tasks {
        let budget = control::budget(t.budget_usd.or(budget_usd), t.budget_tokens.or(budget_tokens)).map_err(usage)?;
        let request = Request::Task {
            group: group.to_owned(),
            goal: t.goal.clone().unwrap_or_else(|| plan.goal.clone()),
            to: t.to.clone(),
            role: t.role.clone(),
            inputs: Vec::new(),
            input_hashes: Vec::new(),
            budget,
            deadline_secs: None,
            after: t.after.iter().filter_map(|d| id_of(&ids, d)).collect(),
            optional: t.optional_after.iter().filter_map(|d| id_of(&ids, d)).collect(),
            tier: t.tier.clone(),
        };
        // A graph runs whole or not at all: what was submitted before a
        // failure is canceled.
        let undo = |ids: &[(String, String)]| {
            for (_, id) in ids {
                let cancel = Request::Cancel {
                    group: None,
                    task: Some(id.clone()),
                    reason: "the rest of its graph was refused".into(),
                };
                let _ = node.call(&cancel);
            }
        };
        let v = match node.call(&request) {
            Ok(v) => v,
            Err(e) => {
                undo(&ids);
                return Err(e);
            }
        };
        if v["status"] == "rejected" {
            undo(&ids);
            let reason = v["reason"].as_str().unwrap_or("no reason given");
            return Err(CliError {
                code: crate::error::LIMIT,
                error: anyhow::anyhow!(
                    "the group refused task {} of the graph: {reason} (nothing of the graph runs)",
                    t.id
                ),
            });
        }
        ids.push((t.id.clone(), v["task"].as_str().unwrap_or_default().to_owned()));
    }
    let sinks: Vec<&(String, String)> = ids
        .iter()
        .filter(|(name, _)| !plan.tasks.iter().any(|t| t.after.contains(name) || t.optional_after.contains(name)))
        .collect();
    if ctx.json && !wait {
        let list: Vec<Value> = ids.iter().map(|(n, id)| serde_json::json!({"step": n, "task": id})).collect();
        return ctx.print_json(&list);
    }
    for (name, id) in &ids {
        status!("{name}: task {}", short_id(id));
    }
    if !wait {
        status!("follow it with `alp wg status {group}` or `alp wg watch {group}`");
        // The result: each step's task id, by its name in the graph.
        for (name, id) in &ids {
            ctx.print(&format!("{name}\t{id}"))?;
        }
        return Ok(());
    }
    for (_, id) in sinks {
        wait_for(ctx, node, group, id)?;
    }
    Ok(())
}

fn print_id(ctx: &Ctx, v: &Value, key: &str) -> CliResult {
    if ctx.json { ctx.print_json(v) } else { ctx.print(v[key].as_str().unwrap_or_default()) }
}

fn done(ctx: &Ctx, v: Value, what: &str) -> CliResult {
    if ctx.json {
        return ctx.print_json(&v);
    }
    status!("{what}");
    Ok(())
}

/// A task input from a file, imported into the store.
fn input(store: &alp_blobstore::store::Store, file: &str) -> CliResult<Artefact> {
    let path = Path::new(file);
    let info = store.import_file(path)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("input").to_owned();
    Ok(Artefact { name, hash: *info.hash.as_bytes(), size: info.size })
}

/// Waits for the task to end; prints its result (exit 1 if it failed).
fn wait_for(ctx: &Ctx, node: &Control, group: &str, id: &str) -> CliResult {
    let mut last_status = String::new();
    loop {
        let v = node.call(&Request::Status { group: group.to_owned(), task: Some(id.to_owned()) })?;
        let task: TaskView = serde_json::from_value(v.clone())?;
        let changed = task.status != last_status;
        if changed {
            status!("task {}: {}", short_id(id), task.status);
            last_status = task.status.clone();
        }
        match task.status.as_str() {
            "completed" => {
                if ctx.json {
                    return ctx.print_json(&v);
                }
                for a in &task.artefacts {
                    status!(
                        "artefact {} ({} bytes): {}",
                        a.name,
                        a.size,
                        BlobHash::from(blake3::Hash::from_bytes(a.hash))
                    );
                }
                return say(ctx, task.output.as_deref().unwrap_or_default());
            }
            "failed" | "canceled" | "rejected" => {
                if ctx.json {
                    ctx.print_json(&v)?;
                }
                let reason = task.reason.unwrap_or_default();
                return Err(CliError { code: RUNTIME, error: anyhow::anyhow!("task {}: {reason}", task.status) });
            }
            "input-required" if changed => {
                if let Some(q) = &task.question {
                    status!("it asks: {}\nanswer with `alp wg reply {} TEXT`", clean(q), short_id(id));
                }
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn list(ctx: &Ctx, v: Value) -> CliResult {
    if ctx.json {
        return ctx.print_json(&v);
    }
    let groups = v.as_array().cloned().unwrap_or_default();
    if groups.is_empty() {
        status!("no workgroups yet: create one with `alp wg create NAME`");
    }
    for g in groups {
        let line = format!(
            "{:<20} {}  {:<8} {} members, {} open tasks of {}",
            g["name"].as_str().unwrap_or_default(),
            short_id(g["id"].as_str().unwrap_or_default()),
            g["me"].as_str().unwrap_or_default(),
            g["members"],
            g["open_tasks"],
            g["tasks"]
        );
        ctx.print(&line)?;
    }
    Ok(())
}

fn show(ctx: &Ctx, v: Value) -> CliResult {
    if ctx.json {
        return ctx.print_json(&v);
    }
    let g: GroupView = serde_json::from_value(v)?;
    print_header(ctx, &g)?;
    print_members(ctx, &g)
}

fn print_header(ctx: &Ctx, g: &GroupView) -> CliResult {
    say(ctx, &format!("{} ({})  you: {}", g.name, short_id(&g.id), g.me))?;
    if !g.briefing.is_empty() {
        say(ctx, &format!("briefing: {}", g.briefing))?;
    }
    let mut budget = format!("spent {} tokens, ${:.4}", g.spent_tokens, g.spent_usd);
    if let Some(t) = g.budget.tokens {
        budget.push_str(&format!("; tokens {} of {t} left", g.available_tokens.unwrap_or(0)));
    }
    if let Some(u) = g.budget.usd_micros {
        budget.push_str(&format!("; ${:.4} of ${:.4} left", g.available_usd.unwrap_or(0.0), u as f64 / 1e6));
    }
    ctx.print(&budget)?;
    for (who, seq) in &g.equivocations {
        say(
            ctx,
            &format!("WARNING: {who} equivocated (two events numbered {seq}); its events from there are set aside"),
        )?;
    }
    Ok(())
}

fn print_members(ctx: &Ctx, g: &GroupView) -> CliResult {
    ctx.print("members:")?;
    for m in &g.members {
        let seen = m.last_seen_ms.map(|t| alp_profiles::format_time(t / 1000)).unwrap_or_else(|| "never".into());
        let card = m
            .card
            .as_ref()
            .map(|c| format!(" models {} tools {} capacity {}", c.models.join(","), c.tools.join(","), c.capacity));
        say(
            ctx,
            &format!(
                "  {:<16} {:<8}{} roles [{}] {} last seen {} load {} spent {} tokens ${:.4}{}",
                m.name,
                m.status,
                if m.admin { " admin" } else { "" },
                m.roles.join(", "),
                if m.online { "online" } else { "offline" },
                seen,
                m.load,
                m.spent_tokens,
                m.spent_usd,
                card.unwrap_or_default()
            ),
        )?;
    }
    Ok(())
}

fn print_group(ctx: &Ctx, g: &GroupView) -> CliResult {
    print_header(ctx, g)?;
    print_members(ctx, g)?;
    ctx.print("tasks:")?;
    for t in &g.tasks {
        let who = t.assignee.clone().or_else(|| t.output_by.clone()).unwrap_or_else(|| "-".into());
        let detail = t.reason.clone().or_else(|| t.question.as_ref().map(|q| format!("asks: {q}"))).unwrap_or_default();
        say(ctx, &format!("  {}  {:<14} {:<12} {}  {}", short_id(&t.id), t.status, who, short(&t.goal, 50), detail))?;
    }
    if !g.pending_approvals.is_empty() {
        ctx.print("awaiting approval (`alp wg approve ID` or `alp wg deny ID --reason ...`):")?;
        for a in &g.pending_approvals {
            say(ctx, &approval_line(a))?;
        }
    }
    Ok(())
}

/// One approval, on one line.
fn approval_line(a: &Value) -> String {
    let text = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
    let approved: Vec<&str> = a["approved_by"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let left = a["expires_ms"].as_u64().map(|t| {
        let secs = t.saturating_sub(crate::wg::now_ms()) / 1000;
        format!(", {} left", humantime::format_duration(Duration::from_secs(secs)))
    });
    // The action whole: an approver must read all of what they approve.
    format!(
        "  {}  {} {} by {}: {}  ({} of {}{}{})",
        short_id(&text("id")),
        text("tier"),
        text("kind"),
        text("requester"),
        text("action").replace(['\n', '\r'], " "),
        approved.len(),
        a["needed"].as_u64().unwrap_or(0),
        if approved.is_empty() { String::new() } else { format!(": {}", approved.join(", ")) },
        left.unwrap_or_else(|| ", waits for the tasks before it".to_owned())
    )
}

fn print_task(ctx: &Ctx, t: &TaskView) -> CliResult {
    say(ctx, &format!("task {}  {}", short_id(&t.id), t.status))?;
    say(ctx, &format!("goal: {}", t.goal))?;
    say(ctx, &format!("created by {}; spent {} tokens, ${:.4}", t.creator, t.spent_tokens, t.spent_usd))?;
    if !t.tier.is_empty() {
        say(ctx, &format!("risk tier: {}", t.tier))?;
    }
    for a in &t.approvals {
        let verdict = a["verdict"].as_str().unwrap_or_default();
        say(ctx, &format!("approval {verdict}:{}", approval_line(a)))?;
    }
    for a in &t.attempts {
        let end = a.ended.as_deref().map(|e| format!(" ended: {e}")).unwrap_or_default();
        say(ctx, &format!("  attempt {} by {}{}{}", a.n, a.member, if a.claimed { " (claimed)" } else { "" }, end))?;
    }
    if let Some(q) = &t.question {
        say(ctx, &format!("asks: {q}"))?;
    }
    if let Some(p) = &t.progress {
        say(ctx, &format!("progress: {p}"))?;
    }
    if let Some(r) = &t.reason {
        say(ctx, &format!("reason: {r}"))?;
    }
    for a in &t.artefacts {
        say(
            ctx,
            &format!("artefact {} ({} bytes) {}", a.name, a.size, BlobHash::from(blake3::Hash::from_bytes(a.hash))),
        )?;
    }
    if let Some(o) = &t.output {
        say(ctx, &format!("result by {}:\n{o}", t.output_by.clone().unwrap_or_default()))?;
    }
    Ok(())
}

/// Prints text that holds what other members wrote: on a terminal, with
/// control characters made visible (see [`clean`]).
fn say(ctx: &Ctx, text: &str) -> CliResult {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() { ctx.print(&clean(text)) } else { ctx.print(text) }
}

/// The first 12 characters of an id.
fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Text from other members, made safe for a terminal: control characters
/// (escape sequences could rewrite the screen or the clipboard) become
/// visible escapes; new lines and tabs stay.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() && c != '\n' && c != '\t' { c.escape_default().to_string() } else { c.to_string() })
        .collect()
}

fn short(text: &str, n: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > n { format!("{}…", line.chars().take(n).collect::<String>()) } else { line.to_owned() }
}

fn event_line(e: &EventView) -> String {
    let time = alp_profiles::format_time(e.time_ms / 1000);
    let refused = e.refused.as_ref().map(|r| format!("  [refused: {r}]")).unwrap_or_default();
    format!("{time}  {:<10} {}{refused}", e.author, e.summary)
}

fn watch(ctx: &Ctx, node: &Control, group: &str) -> CliResult {
    let mut reader = node.send(&Request::Watch { group: group.to_owned() })?;
    read_reply(&mut reader)?;
    status!("watching {group}; Ctrl-C to stop");
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(CliError { code: RUNTIME, error: anyhow::anyhow!("the node stopped") });
        }
        if ctx.json {
            ctx.print(line.trim_end())?;
        } else {
            let e: EventView = serde_json::from_str(&line)?;
            say(ctx, &event_line(&e))?;
        }
    }
}

fn verify(ctx: &Ctx, profile: &Profile, node: &Control, group: &str) -> CliResult {
    // Without a running node: check the files directly.
    let v = if node.is_running() {
        node.call(&Request::Verify { group: group.to_owned() })?
    } else {
        offline_verify(profile, group)?
    };
    if ctx.json {
        ctx.print_json(&v)?;
    } else {
        match v["problem"].as_str() {
            None => status!("{} events: every signature, chain link and reference checks out", v["events"]),
            Some(p) => status!("{}", clean(p)),
        }
        for e in v["equivocations"].as_array().into_iter().flatten() {
            status!("equivocation: {}", clean(e.as_str().unwrap_or_default()));
        }
    }
    if v["ok"] == true {
        Ok(())
    } else {
        Err(CliError { code: RUNTIME, error: anyhow::anyhow!("workgroup {group}: the log does not check out") })
    }
}

/// `alp wg verify --file`: an exported log, checked on its own.
/// `alp wg provenance HASH --file FILE`: the chain behind an artefact in
/// an exported log, which must check out first.
fn provenance_file(ctx: &Ctx, hash: &str, file: &Path) -> CliResult {
    let bytes = std::fs::read(file).map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?;
    let report = alp_workgroup::verify::verify(&bytes);
    let log = match (report.problem, report.log) {
        (None, Some(log)) => log,
        (problem, _) => {
            let why = problem.map_or_else(|| "it holds no group".to_owned(), |p| p.to_string());
            return Err(CliError {
                code: RUNTIME,
                error: anyhow::anyhow!("{} does not check out, so no provenance from it holds: {why}", file.display()),
            });
        }
    };
    let key: [u8; 32] =
        alp_profiles::unhex(hash.trim()).ok_or_else(|| usage("give the artefact's full hash (64 hex digits)"))?;
    let state = alp_workgroup::State::fold(&log);
    let namer = crate::wg::api::Namer { me: None, names: Default::default() };
    let v = crate::wg::provenance::trace(&state, &key, &namer, &|_| Vec::new())
        .ok_or_else(|| usage(format!("blob {hash} was not made by a task of the group in {}", file.display())))?;
    if ctx.json {
        return ctx.print_json(&v);
    }
    print_provenance(ctx, &v)
}

fn verify_file(ctx: &Ctx, file: &Path) -> CliResult {
    let bytes = std::fs::read(file).map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?;
    let report = alp_workgroup::verify::verify(&bytes);
    let v = serde_json::json!({
        "file": file.display().to_string(),
        "events": report.events,
        "ok": report.problem.is_none(),
        "problem": report.problem.as_ref().map(ToString::to_string),
    });
    if ctx.json {
        ctx.print_json(&v)?;
    } else {
        match &report.problem {
            None => status!("{} events: every signature, chain link and reference checks out", report.events),
            Some(p) => status!("{}", clean(&p.to_string())),
        }
    }
    if report.problem.is_none() {
        Ok(())
    } else {
        Err(CliError { code: RUNTIME, error: anyhow::anyhow!("{}: the log does not check out", file.display()) })
    }
}

/// `alp wg export`: the group's events file, cut after its last whole
/// frame (the node may be appending), written beside the target and
/// renamed into place, never over an existing file.
fn export(ctx: &Ctx, profile: &Profile, group: &str, file: &Path) -> CliResult {
    if file.exists() {
        return Err(usage(format!("{} exists: give a new file name", file.display())));
    }
    let dir = group_dir(profile, group)?;
    let bytes = std::fs::read(dir.join("events"))?;
    let mut whole = 0usize;
    for frame in alp_workgroup::verify::frames(&bytes) {
        match frame {
            Ok((start, frame)) => whole = start as usize + 4 + frame.len(),
            Err(_) => break,
        }
    }
    // Written new (never through a link someone left), private like the
    // log it copies, and linked into place only if nothing is there.
    let tmp = file.with_file_name(format!(".{}.part", file.file_name().and_then(|n| n.to_str()).unwrap_or("export")));
    let _ = std::fs::remove_file(&tmp);
    let mut out = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    std::io::Write::write_all(&mut out, &bytes[..whole.min(bytes.len())])?;
    out.sync_all()?;
    let linked = std::fs::hard_link(&tmp, file);
    let _ = std::fs::remove_file(&tmp);
    linked.map_err(|e| usage(format!("cannot write {}: {e}", file.display())))?;
    let events = alp_workgroup::verify::verify(&bytes[..whole.min(bytes.len())]).events;
    status!("wrote {events} events to {}; check it anywhere with `alp wg verify --file`", file.display());
    if ctx.json { ctx.print_json(&serde_json::json!({"file": file, "events": events})) } else { Ok(()) }
}

/// A provenance chain, one step per task. Every text in it comes from the
/// group (anyone's words), so each is shown on one line, escaped.
/// The receipts of a file this node received, one line each.
fn receipt_lines(receipts: &Value) -> String {
    receipts
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let sig = if r["signature_valid"] == true { "signature valid" } else { "SIGNATURE INVALID" };
            let from = clean(r["from"].as_str().unwrap_or_default());
            format!("      received from {from}: {} bytes, receipt {sig}\n", r["size"])
        })
        .collect()
}

fn print_provenance(ctx: &Ctx, v: &Value) -> CliResult {
    let one = |x: &Value| clean(x.as_str().unwrap_or_default()).replace('\n', " ");
    let mut out =
        format!("{} ({}) was made in workgroup {}:\n", one(&v["name"]), one(&v["hash"]), one(&v["group_name"]));
    for s in v["steps"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "- task {} \"{}\" ({}): asked by {}, run by {} (attempt {}, {}); result event {}\n",
            short_id(&one(&s["task"])),
            one(&s["goal"]),
            one(&s["status"]),
            one(&s["created_by"]),
            if s["run_by"].is_null() { "nobody".to_owned() } else { one(&s["run_by"]) },
            s["attempt"],
            if s["model"].is_null() { "model unknown".to_owned() } else { one(&s["model"]) },
            short_id(&one(&s["result_event"])),
        ));
        for i in s["inputs"].as_array().into_iter().flatten() {
            let from = if i["made_by"].is_null() {
                "given by its creator".to_owned()
            } else {
                format!("made by task {}", short_id(&one(&i["made_by"])))
            };
            out.push_str(&format!("    input {} ({from})\n", one(&i["name"])));
            out.push_str(&receipt_lines(&i["receipts"]));
        }
        for a in s["artefacts"].as_array().into_iter().flatten() {
            let receipts = receipt_lines(&a["receipts"]);
            if !receipts.is_empty() {
                out.push_str(&format!("    made {}\n{receipts}", one(&a["name"])));
            }
        }
        for a in s["after"].as_array().into_iter().flatten() {
            out.push_str(&format!("    after task {}\n", short_id(&one(&a["task"]))));
        }
        for a in s["approvals"].as_array().into_iter().flatten() {
            let by: Vec<String> = a["approved_by"].as_array().into_iter().flatten().map(one).collect();
            out.push_str(&format!(
                "    {} {} {}: {}{}\n",
                one(&a["tier"]),
                one(&a["kind"]),
                one(&a["verdict"]),
                short(&one(&a["action"]), 60),
                if by.is_empty() { String::new() } else { format!(" (approved by {})", by.join(", ")) }
            ));
        }
    }
    out.push_str("(every step is a signed event of the group's log: `alp wg verify` checks them)");
    ctx.print(&out)
}

/// Verifies a group's files without the node: by id, or by the name in
/// each group's first event.
fn offline_verify(profile: &Profile, group: &str) -> CliResult<Value> {
    let dir = group_dir(profile, group)?;
    let namer = crate::wg::api::Namer { me: Some(profile.identity().node_id()), names: Default::default() };
    control::verify_dir(&dir, &namer).map_err(|e| CliError { code: RUNTIME, error: anyhow::anyhow!("{e}") })
}

/// A group's directory of this profile: by id (a prefix of 6 or more), or
/// by the name in its first event.
fn group_dir(profile: &Profile, group: &str) -> CliResult<PathBuf> {
    let root = profile.paths().workgroups();
    let dirs = alp_workgroup::store::list(&root).map_err(|e| CliError { code: RUNTIME, error: e.into() })?;
    let named = |dir: &PathBuf| -> bool {
        let by_id = dir.file_name().and_then(|n| n.to_str()).is_some_and(|n| group.len() >= 6 && n.starts_with(group));
        by_id || first_event_name(dir).as_deref() == Some(group)
    };
    let found: Vec<&PathBuf> = dirs.iter().filter(|d| named(d)).collect();
    let [dir] = found[..] else {
        return Err(usage(format!("no single workgroup {group} here (see `alp wg list` with the node running)")));
    };
    Ok(dir.clone())
}

fn first_event_name(dir: &Path) -> Option<String> {
    let bytes = std::fs::read(dir.join("events")).ok()?;
    let (_, frame) = alp_workgroup::verify::frames(&bytes).next()?.ok()?;
    match alp_workgroup::Event::decode(frame).ok()?.body() {
        alp_workgroup::Body::Create(c) => Some(c.name.clone()),
        _ => None,
    }
}
