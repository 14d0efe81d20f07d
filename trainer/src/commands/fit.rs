//! `synth-train fit`: train one model with a progress bar, then print where the bundle is.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::FitArgs;
use crate::fit::{FitObserver, fit};
use crate::train::EpochStats;

pub fn run(args: FitArgs) -> anyhow::Result<()> {
    let settings = args.to_settings()?;
    let mut progress =
        ProgressObserver::new(args.quiet, &format!("{} {}", args.family, args.data.display()));
    let outcome = fit(&settings, &mut progress).with_context(|| {
        // The library names no flag; an existing --out is refused for want of --force.
        let hint = if !args.force && args.out.exists() {
            format!(" ({} exists: choose another --out, or pass --force)", args.out.display())
        } else {
            String::new()
        };
        format!("fit {} on {}{hint}", args.family, args.data.display())
    })?;
    progress.finish();
    let manifest = &outcome.manifest;
    let last = outcome.history.last();
    println!(
        "wrote {} ({}; {} train rows, {} held out; {} epochs in {:.1} s on {}; final loss {:.4}{})",
        args.out.display(),
        manifest.architecture,
        manifest.provenance.n_train,
        manifest.provenance.n_holdout,
        outcome.hyper.epochs,
        outcome.wall_time_s,
        settings.device,
        manifest.provenance.final_loss,
        last.and_then(|stats| stats.moment_gap)
            .map(|gap| format!(", moment gap {gap:.4}"))
            .unwrap_or_default()
    );
    Ok(())
}

/// A progress bar over epochs showing the loss (hidden when stderr is not a terminal).
pub struct ProgressObserver {
    bar: ProgressBar,
}

impl ProgressObserver {
    pub fn new(quiet: bool, prefix: &str) -> Self {
        let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(0) };
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} epochs  loss {msg}  {elapsed}<{eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(prefix.to_owned());
        ProgressObserver { bar }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl FitObserver for ProgressObserver {
    fn start(&mut self, epochs: usize) {
        self.bar.set_length(epochs as u64);
    }

    fn epoch(&mut self, stats: &EpochStats) {
        self.bar.set_message(format!("{:.4}", stats.loss));
        self.bar.inc(1);
    }
}
