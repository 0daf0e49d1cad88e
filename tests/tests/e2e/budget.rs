//! Budgets: per-request cost caps, daily caps from the ledger, prices.

use crate::common::{Home, Run, output};
use crate::fake_provider::{FakeProvider, openai_stream, openai_tool_call};

fn chat(h: &Home, fake: &FakeProvider, args: &[&str]) -> Run {
    let mut c = h.cmd(args);
    c.env("OPENAI_BASE_URL", fake.url("/v1")).env("OPENAI_API_KEY", "sk-budget-test");
    output(c)
}

fn home_with_prices() -> Home {
    let h = Home::new();
    h.init("personal");
    let config = h.path().join("profiles/personal/config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    // $1 per input token, $2 per output token: easy numbers.
    text.push_str("\n[prices]\n\"gpt-test\" = { input = 1000000.0, output = 2000000.0 }\n");
    std::fs::write(&config, text).unwrap();
    h
}

#[test]
fn cost_is_reported_and_max_cost_stops_the_loop() {
    let h = home_with_prices();
    let fake = FakeProvider::start(vec![openai_stream(&["ok"], 3, 1)]);
    let v = chat(&h, &fake, &["--json", "chat", "--once", "hi", "--model", "gpt-test"]).json();
    assert_eq!(v["cost"], 5.0);

    // The first turn (a tool call, 10 in + 5 out) costs $20: over --max-cost 5.
    let fake = FakeProvider::start(vec![openai_tool_call("c", "list_dir", "{}"), openai_stream(&["never"], 1, 1)]);
    let run = chat(&h, &fake, &["chat", "--once", "hi", "--model", "gpt-test", "--max-cost", "5"]);
    run.fails(3, &["budget exhausted", "--max-cost"]);
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn max_cost_needs_a_price() {
    let h = home_with_prices();
    let fake = FakeProvider::start(vec![]);
    chat(&h, &fake, &["chat", "--once", "hi", "--max-cost", "1"])
        .fails(2, &["needs the price", "[prices]", "gpt-4o-mini"]);
    assert!(fake.requests().is_empty());
}

#[test]
fn the_daily_token_cap_counts_the_ledger() {
    let h = home_with_prices();
    let fake = FakeProvider::start(vec![openai_stream(&["one"], 10, 5), openai_stream(&["two"], 10, 5)]);
    let cap = ["--set", "budget.daily_tokens=20"];
    chat(&h, &fake, &[&cap[..], &["chat", "--once", "a"]].concat()).ok();
    chat(&h, &fake, &[&cap[..], &["chat", "--once", "b"]].concat()).ok();
    // 30 tokens spent today: the third request is refused before it is sent.
    chat(&h, &fake, &[&cap[..], &["chat", "--once", "c"]].concat())
        .fails(3, &["today's token cap", "budget.daily_tokens"]);
    assert_eq!(fake.requests().len(), 2);
    let ledger = h.path().join("profiles/personal/ledger");
    let day = std::fs::read_dir(&ledger).unwrap().next().unwrap().unwrap().path();
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(day).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!((lines[0]["input_tokens"].as_u64(), lines[0]["provider"].as_str()), (Some(10), Some("openai")));
}
