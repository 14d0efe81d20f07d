//! A tiny study end to end: one table, two families, two fractions, few epochs. The logbook holds
//! every cell's figures on all six axes, the report names every cell, and a second run resumes
//! (skips everything) instead of starting over; a run at another `--size` runs every cell again.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly too; clippy.toml's allow-unwrap-in-tests covers #[test] fns only"
)]

use std::path::Path;
use std::process::Command;

use edge_runtime::logbook::{Logbook, RunStatus};
use edge_runtime::metrics::Axis;
use edge_runtime::metrics::catalogue::{CATALOGUE, Shown};

const CELLS: [&str; 4] = [
    "wheat_splitsplit/vae/f1/s0",
    "wheat_splitsplit/vae/f0.5/s0",
    "wheat_splitsplit/ddpm/f1/s0",
    "wheat_splitsplit/ddpm/f0.5/s0",
];

fn study(out: &Path, extra: &[&str]) -> String {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/wheat_splitsplit.csv");
    let output = Command::new(env!("CARGO_BIN_EXE_synth-train"))
        .args(["study", "--data"])
        .arg(&data)
        .args([
            "--label",
            "gen",
            "--families",
            "vae,ddpm",
            "--fractions",
            "1,0.5",
            "--epochs",
            "3",
            "--n",
            "150",
            "--bootstrap",
            "20",
            "--quiet",
            "--out",
        ])
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_tiny_grid_is_logged_reported_and_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("study");
    let first = study(&out, &[]);
    assert!(first.contains("4 cells (4 run now, 0 already done)"), "{first}");

    let logbook = Logbook::open(&out.join("study.sqlite")).unwrap();
    let runs = logbook.runs().unwrap();
    assert_eq!(runs.len(), 4);
    for cell in CELLS {
        let run = runs
            .iter()
            .find(|run| run.params["cell"] == cell)
            .unwrap_or_else(|| panic!("no run for {cell}"));
        assert_eq!(run.status, RunStatus::Done, "{cell}");
        for axis in Axis::ALL {
            assert!(run.metrics.iter().any(|m| m.axis == axis), "{cell}: no {axis:?} figure");
        }
        // Every figure the report charts, and the training figures.
        let wanted = CATALOGUE
            .iter()
            .filter(|spec| spec.shown == Shown::SummaryAndChart || spec.axis == Axis::Training);
        for name in wanted.map(|spec| spec.name) {
            assert!(run.metrics.iter().any(|m| m.name == name), "{cell}: no {name}");
        }
        let bundle = out.join(run.params["bundle"].as_str().unwrap_or_default());
        assert!(bundle.join("model.onnx").is_file(), "{cell}: bundle kept");
        assert!(
            out.join(run.params["samples"].as_str().unwrap_or_default()).is_file(),
            "{cell}: samples kept"
        );
    }

    let html = std::fs::read_to_string(out.join("report/report.html")).unwrap();
    let markdown = std::fs::read_to_string(out.join("report/report.md")).unwrap();
    for text in [&html, &markdown] {
        for family in ["vae", "ddpm"] {
            assert!(text.contains(family), "the report names {family}");
        }
        assert!(text.contains("wheat_splitsplit"));
        for cell in CELLS {
            assert!(text.contains(cell), "the report names the cell {cell}");
        }
        for axis in Axis::ALL {
            assert!(
                text.to_lowercase().contains(axis.as_str()),
                "the report has the {axis:?} axis"
            );
        }
    }

    let second = study(&out, &[]);
    assert!(second.contains("4 cells (0 run now, 4 already done)"), "{second}");
    assert_eq!(
        logbook.runs().map(|runs| runs.len()).unwrap_or_default(),
        4,
        "resuming adds no runs"
    );

    // Cells done at `tiny` are not done at `small` (tables train the same MLP at every size,
    // which keeps this cheap).
    let third = study(&out, &["--size", "small"]);
    assert!(third.contains("4 cells (4 run now, 0 already done)"), "{third}");
    let runs = logbook.runs().unwrap();
    assert_eq!(runs.len(), 8);
    assert_eq!(runs.iter().filter(|run| run.params["size"] == "small").count(), 4);
}
