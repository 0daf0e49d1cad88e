//! Progress on a terminal.

use crate::ctx::Ctx;

/// A progress bar on stderr (bytes, rate, ETA), drawn only when stderr is
/// a terminal and diagnostics are not silenced; otherwise nothing.
pub(crate) struct Bar(Option<indicatif::ProgressBar>);

pub(crate) fn progress_bar(ctx: &Ctx, message: &str) -> Bar {
    styled(ctx.quiet, message, "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
}

/// A bar counting things other than bytes (`unit`: "tokens").
pub(crate) fn count_bar(quiet: bool, message: &str, unit: &str) -> Bar {
    styled(quiet, message, &format!("{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit} ETA {{eta}}"))
}

fn styled(quiet: bool, message: &str, template: &str) -> Bar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() || quiet {
        return Bar(None);
    }
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message.to_owned());
    Bar(Some(bar))
}

impl Bar {
    pub(crate) fn update(&self, done: u64, total: u64) {
        if let Some(bar) = &self.0 {
            bar.set_length(total);
            bar.set_position(done);
        }
    }

    /// Whether anything is drawn.
    pub(crate) fn shown(&self) -> bool {
        self.0.is_some()
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
