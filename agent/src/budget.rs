//! What a run may spend and what it has spent: `--max-cost`, and what is
//! left of the day's caps (the profile's, and a peer's own allowance).

use crate::provider::{Reply, Usage};
use crate::run::AgentError;

/// Spending limits of one run, and what it has spent so far (readable
/// after the run even when it stopped early, for the ledger).
#[derive(Debug, Default, Clone)]
pub struct Budget {
    /// The model's price, when configured (remote providers).
    pub price: Option<alp_profiles::config::Price>,
    /// `--max-cost` (or a task's budget): most US dollars this run may spend.
    pub max_cost: Option<f64>,
    /// A task's budget: most tokens this run may spend.
    pub max_tokens: Option<u64>,
    /// Stop before a call that could take the run past `max_tokens` or
    /// `max_cost`, reckoning the next call costs as much as the dearest
    /// so far (workgroup tasks: their budgets are reserved from the
    /// group's, which must not be overspent).
    pub lookahead: bool,
    /// What is left of today's cost cap, if there is one.
    pub daily_cost_left: Option<f64>,
    /// What is left of today's token cap, if there is one.
    pub daily_tokens_left: Option<u64>,
    /// What this run spent, turn by turn, in order.
    pub turns: Vec<(Usage, Option<f64>)>,
}

impl Budget {
    /// Tokens spent by this run.
    pub fn usage(&self) -> Usage {
        self.turns.iter().fold(Usage::default(), |acc, (u, _)| Usage {
            input_tokens: acc.input_tokens + u.input_tokens,
            output_tokens: acc.output_tokens + u.output_tokens,
        })
    }

    /// Dollars spent by this run; `None` when no turn had a price.
    pub fn cost(&self) -> Option<f64> {
        self.turns.iter().filter_map(|(_, c)| *c).reduce(|a, b| a + b)
    }

    pub(crate) fn check(&self) -> Result<(), AgentError> {
        let cost = self.cost().unwrap_or(0.0);
        let usage = self.usage();
        let tokens = usage.input_tokens + usage.output_tokens;
        if let Some(max) = self.max_cost
            && cost >= max
        {
            return Err(AgentError::Budget(format!("this request spent ${cost:.4}, reaching --max-cost ${max}")));
        }
        if let Some(max) = self.max_tokens
            && tokens >= max
        {
            return Err(AgentError::Budget(format!("this task spent {tokens} tokens, reaching its budget of {max}")));
        }
        if self.lookahead {
            let dearest = self.turns.iter().map(|(u, _)| u.input_tokens + u.output_tokens).max().unwrap_or(0);
            if let Some(max) = self.max_tokens
                && tokens + dearest > max
            {
                return Err(AgentError::Budget(format!(
                    "the next model call could take this task past its budget: {tokens} of {max} tokens spent, \
                     the dearest call took {dearest}"
                )));
            }
            let dearest = self.turns.iter().filter_map(|(_, c)| *c).fold(0.0, f64::max);
            if let Some(max) = self.max_cost
                && cost + dearest > max
            {
                return Err(AgentError::Budget(format!(
                    "the next model call could take this task past its budget: ${cost:.4} of ${max} spent"
                )));
            }
        }
        if let Some(left) = self.daily_cost_left
            && cost >= left
        {
            return Err(AgentError::Budget(format!(
                "today's cost cap is reached (budget.daily_cost; ${:.4} left before this request)",
                left.max(0.0)
            )));
        }
        if let Some(left) = self.daily_tokens_left
            && tokens >= left
        {
            return Err(AgentError::Budget(format!(
                "today's token cap is reached (budget.daily_tokens; {left} tokens left before this request)"
            )));
        }
        Ok(())
    }

    pub(crate) fn charge(&mut self, reply: &Reply) {
        let u = reply.usage;
        let cost = reply.cost.or_else(|| self.price.map(|p| crate::ledger::cost(u, p)));
        self.turns.push((u, cost));
    }
}
