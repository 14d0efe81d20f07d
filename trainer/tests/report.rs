//! The study report on hand-made logbooks: two datasets (a table and an image set), three
//! families, two fractions, one cell with two seeds. Metrics are built so that a known family
//! wins each priority, with intervals that overlap only where the test wants a caveat; the tests
//! read the report back as a person would rely on it: every cell named, every axis there, plots
//! that are SVG, grids that decode as PNG, nothing fetched from the network, the right winners,
//! and no file from outside the study folder read or copied whatever the logbook names.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly too; clippy.toml's allow-unwrap-in-tests covers #[test] fns only"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use edge_runtime::logbook::Logbook;
use edge_runtime::metrics::{Axis, Metric, MetricId};
use trainer::report::write_report;

const FAMILIES: [&str; 3] = ["vae", "gan", "ddpm"];
const FRACTIONS: [f64; 2] = [0.5, 1.0];
/// A column name that must be escaped in HTML.
const HOSTILE_COLUMN: &str = "dose<b>&\"mg\"";

/// Who is best on each axis: 2 best, 0 worst.
#[derive(Clone, Copy)]
enum Scenario {
    /// vae: fidelity, efficiency (by overlapping intervals); gan: privacy; ddpm: diversity,
    /// utility, robustness.
    Mixed,
    /// vae best on every axis, by clear margins.
    VaeEverywhere,
}

fn quality(scenario: Scenario, family: &str, axis: Axis) -> f64 {
    let rank = |order: [&str; 3]| {
        order.iter().position(|name| *name == family).map_or(0.0, |idx| 2.0 - idx as f64)
    };
    match scenario {
        Scenario::VaeEverywhere => rank(["vae", "gan", "ddpm"]),
        Scenario::Mixed => match axis {
            Axis::Fidelity | Axis::Efficiency => rank(["vae", "gan", "ddpm"]),
            Axis::Diversity | Axis::Utility | Axis::Robustness => rank(["ddpm", "vae", "gan"]),
            _ => rank(["gan", "ddpm", "vae"]),
        },
    }
}

/// The figure `id` (or `id/detail`) at `value ± half_width`.
fn metric(id: MetricId, value: f64, half_width: f64, n: u64) -> Metric {
    Metric::new(id, value, value - half_width, value + half_width, n)
}

/// Every metric of a cell. Higher-is-better figures are 0.5 + 0.2 q, lower-is-better 1 − 0.3 q,
/// AUCs 0.5 + 0.1 (2 − q) (q the family's quality on the axis), each ± 0.03: apart for different
/// q. In the mixed scenario sampling speeds differ by 2 % with ± 10 % intervals, so they overlap;
/// otherwise they are a decade apart.
fn cell_metrics(scenario: Scenario, family: &str, fraction: f64, seed: u64) -> Vec<Metric> {
    use MetricId::*;
    let q = |id: MetricId| quality(scenario, family, id.axis());
    let shift = 0.01 * fraction + 0.005 * seed as f64;
    let higher = |id: MetricId| metric(id, 0.5 + 0.2 * q(id) + shift, 0.03, 200);
    let lower = |id: MetricId| metric(id, 1.0 - 0.3 * q(id) + shift, 0.03, 200);
    let auc = |id: MetricId| metric(id, 0.5 + 0.1 * (2.0 - q(id)), 0.03, 120);
    let speed = match scenario {
        Scenario::Mixed => 50_000.0 * (1.0 - 0.02 * (2.0 - q(SamplesPerSecond))),
        Scenario::VaeEverywhere => 50_000.0 * 10f64.powf(q(SamplesPerSecond)),
    };
    vec![
        higher(Precision),
        metric(Density, 1.0 + 0.3 * (2.0 - q(Density)), 0.03, 200),
        lower(FrechetDistance),
        higher(ColumnShapeSimilarity),
        lower(CorrelationDifference),
        auc(DetectionAuc),
        higher(ConditionalAccuracy),
        higher(Recall),
        higher(Coverage),
        lower(ClassBalanceTv),
        metric(SamplesPerSecond, speed, speed * 0.1, 1000),
        metric(MsPerSample, 1000.0 / speed, 100.0 / speed, 1000),
        higher(TstrAccuracy),
        metric(TrtrAccuracy, 0.95, 0.02, 60),
        higher(TstrTrtrRatio),
        higher(TstrMacroF1),
        higher(AugmentationGain),
        higher(TstrPerturbedAccuracyRatio),
        higher(TstrPerturbedAccuracyRatio).detail("gaussian_0.1"),
        higher(TstrAdversarialAccuracy),
        auc(MiaAuc),
        lower(ExactCopyRate),
        lower(CloserToTrainShare),
        higher(DcrTrainMedian),
        higher(DcrTrainP05),
        higher(NndrMean),
        metric(TrainSeconds, 12.0, 0.0, 200),
        metric(FinalLoss, 0.3, 0.0, 200),
    ]
}

/// The three augmentation gains of a cell, chosen so that a known way wins each dataset ×
/// fraction (means over seeds where clinic/vae/f1 has two): clinic 0.5 → combined (ddpm 0.050),
/// clinic 1 → classical (0.040 against synthetic ddpm 0.030, combined vae 0.030), leaves →
/// synthetic (ddpm 0.080 against combined ddpm 0.060, classical 0.010). The synthetic gains keep
/// the mixed scenario's utility order (ddpm, vae, gan).
fn gain_metrics(dataset: &str, family: &str, fraction: f64, seed: u64) -> Vec<Metric> {
    use MetricId::{AugmentationGain, ClassicalAugmentationGain, CombinedAugmentationGain};
    let by_family = |values: [f64; 3]| {
        FAMILIES.iter().position(|name| *name == family).map_or(0.0, |idx| values[idx])
    };
    let (synthetic, classical, combined) = match (dataset, fraction == 1.0) {
        ("clinic", false) => (by_family([0.02, 0.01, 0.03]), 0.04, by_family([0.03, 0.02, 0.05])),
        // vae's two seeds: 0.0 and 0.04, mean 0.02.
        ("clinic", true) => {
            (by_family([0.04 * seed as f64, 0.01, 0.03]), 0.04, by_family([0.03, 0.01, 0.02]))
        }
        _ => (by_family([0.02, 0.01, 0.08]), 0.01, by_family([0.02, 0.04, 0.06])),
    };
    vec![
        metric(AugmentationGain, synthetic, 0.02, 60),
        metric(ClassicalAugmentationGain, classical, 0.02, 60),
        metric(CombinedAugmentationGain, combined, 0.02, 60),
    ]
}

/// A study folder with its logbook, real data and samples, and the cells it holds.
struct Study {
    dir: tempfile::TempDir,
    cells: Vec<String>,
}

impl Study {
    fn db(&self) -> PathBuf {
        self.dir.path().join("study").join("study.sqlite")
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("study").join("report")
    }
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|err| panic!("{}: {err}", parent.display()));
    }
    std::fs::write(path, bytes).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
}

/// A table of `n_rows`: two numeric columns (one with a name to escape), a category, label `y`.
fn table_csv(n_rows: usize, offset: f64) -> String {
    let mut csv = format!("age,\"{}\",site,y\n", HOSTILE_COLUMN.replace('"', "\"\""));
    for row in 0..n_rows {
        let _ = std::fmt::Write::write_fmt(
            &mut csv,
            format_args!(
                "{:.1},{:.2},{},{}\n",
                30.0 + (row * 7 % 40) as f64 + offset,
                1.5 + (row % 9) as f64 * 0.25,
                ["north", "south", "east"][row % 3],
                ["p", "q"][row % 2]
            ),
        );
    }
    csv
}

/// A grayscale PNG of `width` × `height` with a pattern set by `seed`.
fn grid_png(width: u32, height: u32, seed: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, width, height);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        let pixels: Vec<u8> = (0..width * height)
            .map(|idx| ((idx * 7) as u8).wrapping_add(seed.wrapping_mul(31)))
            .collect();
        writer.write_image_data(&pixels).unwrap();
    }
    bytes
}

fn fraction_text(fraction: f64) -> String {
    format!("{fraction}")
}

/// A study run's params as `synth-train study` records them, plus a field a later study may add.
fn cell_params(
    cell: &str,
    modality: &str,
    samples: &str,
    real_path: &Path,
    extra_field: bool,
) -> serde_json::Value {
    let parts: Vec<&str> = cell.split('/').collect();
    let (dataset, family) = (parts[0], parts[1]);
    let fraction: f64 = parts[2].trim_start_matches('f').parse().unwrap();
    let seed: u64 = parts[3].trim_start_matches('s').parse().unwrap();
    let stem = cell.replace('/', "-");
    let mut params = serde_json::json!({
        "cell": cell, "dataset": dataset, "family": family, "fraction": fraction, "seed": seed,
        "data_path": if modality == "image" { "elsewhere/leaves".to_owned() } else { real_path.display().to_string() },
        "label": if modality == "image" { "species" } else { "y" },
        "modality": modality, "samples": samples, "bundle": format!("models/{stem}"),
        "budget": "quick", "holdout": 0.2, "n_synthetic": 45, "device": "cpu", "sampler": "ddpm", "sampling_steps": 1,
    });
    if extra_field {
        params["a_field_a_later_trainer_adds"] = serde_json::json!([1, 2, 3]);
    }
    params
}

/// Builds the study: datasets `clinic` (table) and `leaves` (images), three families, two
/// fractions, seed 0, plus seed 1 for clinic/vae/f1; a failed run of an extra cell.
fn build_study(scenario: Scenario) -> Study {
    let dir = tempfile::tempdir().unwrap();
    let study_dir = dir.path().join("study");
    let real_path = dir.path().join("data").join("clinic.csv");
    write(&real_path, table_csv(60, 0.0).as_bytes());
    std::fs::create_dir_all(&study_dir).unwrap();
    let logbook = Logbook::open(&study_dir.join("study.sqlite")).unwrap();
    let mut cells = Vec::new();
    for (dataset, modality) in [("clinic", "tabular"), ("leaves", "image")] {
        for family in FAMILIES {
            for fraction in FRACTIONS {
                let seeds: &[u64] = if dataset == "clinic" && family == "vae" && fraction == 1.0 {
                    &[0, 1]
                } else {
                    &[0]
                };
                for &seed in seeds {
                    let cell = format!("{dataset}/{family}/f{}/s{seed}", fraction_text(fraction));
                    let stem = cell.replace('/', "-");
                    let samples = if modality == "image" {
                        format!("samples/{stem}.png")
                    } else {
                        format!("samples/{stem}.csv")
                    };
                    if modality == "image" {
                        write(&study_dir.join(&samples), &grid_png(40, 30, cells.len() as u8));
                    } else {
                        write(
                            &study_dir.join(&samples),
                            table_csv(45, 3.0 * (cells.len() % 3) as f64).as_bytes(),
                        );
                    }
                    let params = cell_params(&cell, modality, &samples, &real_path, true);
                    let run_id = logbook.start_run("study", None, &params).unwrap();
                    let mut metrics = cell_metrics(scenario, family, fraction, seed);
                    if matches!(scenario, Scenario::Mixed) {
                        metrics.retain(|metric| metric.name != MetricId::AugmentationGain.name());
                        metrics.extend(gain_metrics(dataset, family, fraction, seed));
                    }
                    logbook.finish_run(&run_id, &metrics).unwrap();
                    cells.push(cell);
                }
            }
        }
    }
    let failed = cell_params(
        "clinic/vae/f0.1/s0",
        "tabular",
        "samples/clinic-vae-f0.1-s0.csv",
        &real_path,
        false,
    );
    let run_id = logbook.start_run("study", None, &failed).unwrap();
    logbook.fail_run(&run_id, "training diverged at epoch 3").unwrap();
    let other = logbook.start_run("evaluate", None, &serde_json::json!({"real": "x.csv"})).unwrap();
    logbook.finish_run(&other, &[metric(MetricId::Precision, 0.1, 0.01, 5)]).unwrap();
    cells.push("clinic/vae/f0.1/s0".to_owned());
    Study { dir, cells }
}

struct Written {
    html: String,
    markdown: String,
}

fn report(study: &Study) -> Written {
    write_report(&study.db(), &study.out()).unwrap();
    let read = |name: &str| {
        std::fs::read_to_string(study.out().join(name))
            .unwrap_or_else(|err| panic!("{name}: {err}"))
    };
    Written { html: read("report.html"), markdown: read("report.md") }
}

/// The Markdown between the heading `### {title}` and the next heading of level 3 or above.
fn md_section<'a>(markdown: &'a str, title: &str) -> &'a str {
    let start =
        markdown.find(&format!("\n### {title}\n")).unwrap_or_else(|| panic!("no section {title}"));
    let rest = &markdown[start + 1..];
    let end = rest[4..].find("\n#").map_or(rest.len(), |idx| idx + 4);
    &rest[..end]
}

/// A minimal well-formedness check: one root `<svg>`, every tag closed in order.
fn check_svg(text: &str, name: &str) {
    assert!(text.starts_with("<svg"), "{name} does not start with <svg");
    assert!(text.trim_end().ends_with("</svg>"), "{name} does not end with </svg>");
    let mut open: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        let end = rest[start..]
            .find('>')
            .map(|idx| start + idx)
            .unwrap_or_else(|| panic!("{name}: unclosed `<`"));
        let tag = &rest[start + 1..end];
        if let Some(closing) = tag.strip_prefix('/') {
            assert_eq!(
                open.pop().as_deref(),
                Some(closing.trim()),
                "{name}: </{closing}> closes the wrong element"
            );
        } else if !tag.ends_with('/') && !tag.starts_with('?') && !tag.starts_with('!') {
            open.push(tag.split_whitespace().next().unwrap_or_default().to_owned());
        }
        rest = &rest[end + 1..];
    }
    assert!(open.is_empty(), "{name}: unclosed elements {open:?}");
}

/// The payloads of the `data:` URIs of `mime` in the page.
fn data_uris(html: &str, mime: &str) -> Vec<Vec<u8>> {
    let marker = format!("src=\"data:{mime};base64,");
    html.match_indices(&marker)
        .map(|(idx, _)| {
            let payload = &html[idx + marker.len()..];
            let payload = &payload[..payload.find('"').unwrap_or(payload.len())];
            base64::engine::general_purpose::STANDARD
                .decode(payload)
                .unwrap_or_else(|err| panic!("bad base64 in a data URI: {err}"))
        })
        .collect()
}

#[test]
fn the_report_names_every_cell_and_shows_all_six_axes() {
    let study = build_study(Scenario::Mixed);
    let written = report(&study);
    for cell in &study.cells {
        assert!(written.html.contains(cell.as_str()), "report.html does not name {cell}");
        assert!(written.markdown.contains(cell.as_str()), "report.md does not name {cell}");
    }
    assert!(
        written.markdown.contains("training diverged at epoch 3"),
        "the failed run's reason is shown"
    );
    assert!(!written.html.contains("x.csv"), "runs of other kinds are not study cells");
    // The findings table has a column per axis; each dataset's full table a section per axis.
    assert!(
        written.markdown.contains(
            "| dataset | fidelity | diversity | efficiency | utility | robustness | privacy |"
        ),
        "{}",
        written.markdown
    );
    for dataset in ["clinic", "leaves"] {
        let start = written
            .markdown
            .find(&format!("**Every metric on {dataset}"))
            .unwrap_or_else(|| panic!("no full table for {dataset}"));
        let table = &written.markdown[start..];
        let table = &table[..table.find("\n\n## ").unwrap_or(table.len())];
        for axis in Axis::ALL.into_iter().chain([Axis::Training]) {
            assert!(
                table.contains(&format!("| **{axis}** |")),
                "{dataset}'s full table has no {axis} section"
            );
        }
        assert!(
            table.contains(&MetricId::TstrPerturbedAccuracyRatio.detailed("gaussian_0.1")),
            "perturbation rows are listed"
        );
        // Six-axis table: one section per fraction, three families in each.
        for fraction in FRACTIONS {
            assert!(
                written.markdown.contains(&format!("| **fraction {fraction}** |")),
                "no fraction {fraction} in the six-axis table"
            );
        }
    }
    // clinic/vae/f1 has two seeds: precision is their mean, with the spread across seeds.
    // Seed 0: 0.5 + 0.4 + 0.01 = 0.91; seed 1: 0.915; mean 0.9125 → "0.912" or "0.913" (binary).
    assert!(written.markdown.contains("±0.004 sd, 2 seeds"), "{}", written.markdown);
}

#[test]
fn plots_are_svg_files_beside_the_report_and_grids_embed_as_png() {
    let study = build_study(Scenario::Mixed);
    let written = report(&study);
    let linked: Vec<&str> = written
        .markdown
        .match_indices("](plots/")
        .map(|(idx, _)| &written.markdown[idx + 2..])
        .map(|rest| &rest[..rest.find(')').unwrap_or(0)])
        .collect();
    // Per dataset 8 metric charts and a trade-off chart; for the table, marginals of its three
    // columns (two numeric, one categorical).
    assert_eq!(linked.len(), 2 * 9 + 3, "{linked:?}");
    for path in &linked {
        let text = std::fs::read_to_string(study.out().join(path))
            .unwrap_or_else(|err| panic!("{path}: {err}"));
        check_svg(&text, path);
    }
    let embedded_svgs = data_uris(&written.html, "image/svg+xml");
    assert_eq!(embedded_svgs.len(), linked.len(), "every chart is embedded in the HTML");
    for (idx, svg) in embedded_svgs.iter().enumerate() {
        check_svg(&String::from_utf8_lossy(svg), &format!("embedded chart {idx}"));
    }
    // The image set's grids: one per family and fraction, decoding as the PNGs written.
    let pngs = data_uris(&written.html, "image/png");
    assert_eq!(pngs.len(), FAMILIES.len() * FRACTIONS.len());
    for bytes in &pngs {
        let reader = png::Decoder::new(std::io::Cursor::new(bytes.as_slice()))
            .read_info()
            .unwrap_or_else(|err| panic!("embedded PNG does not decode: {err}"));
        assert_eq!((reader.info().width, reader.info().height), (40, 30));
    }
    let copied =
        std::fs::read_dir(study.out().join("samples")).map(|entries| entries.count()).unwrap_or(0);
    assert_eq!(copied, pngs.len(), "each grid is copied beside the report");
    // The table's marginals include the column that needs escaping, drawn from the real data.
    assert!(
        linked
            .iter()
            .any(|path| path.starts_with("plots/clinic-marginal-") && path.contains("dose_b__")),
        "{linked:?}"
    );
    assert!(
        linked.iter().all(|path| !path.starts_with("plots/leaves-marginal")),
        "images have grids, not marginals"
    );
}

#[test]
fn the_page_is_offline_and_escapes_names_from_the_data() {
    let study = build_study(Scenario::Mixed);
    let written = report(&study);
    for forbidden in ["http://", "https://", "<script", "<link", "@import"] {
        assert!(!written.html.contains(forbidden), "report.html contains {forbidden}");
    }
    let sources: Vec<&str> = written
        .html
        .match_indices("src=\"")
        .map(|(idx, _)| &written.html[idx + 5..idx + 10])
        .collect();
    assert!(
        !sources.is_empty() && sources.iter().all(|source| *source == "data:"),
        "every image is embedded: {sources:?}"
    );
    assert!(!written.html.contains(HOSTILE_COLUMN), "the column name reaches the page unescaped");
    assert!(
        written.html.contains("dose&lt;b&gt;&amp;&quot;mg&quot;"),
        "the column's marginal is captioned with its escaped name"
    );
}

#[test]
fn the_recommendation_names_the_winners_and_flags_overlapping_intervals_only() {
    let study = build_study(Scenario::Mixed);
    let markdown = report(&study).markdown;
    let overlap = "The intervals overlap, so this lead may be chance.";
    let expectations = [
        ("Privacy first", "gan", false),
        ("Utility first", "ddpm", false),
        ("Fastest on the device", "vae", true),
    ];
    for (title, winner, overlapping) in expectations {
        let section = md_section(&markdown, title);
        // Two datasets × two fractions judged, each won by the same family.
        assert_eq!(
            section.matches(&format!("**{winner}** wins")).count(),
            4,
            "{title}:\n{section}"
        );
        for other in FAMILIES.iter().filter(|family| **family != winner) {
            assert!(
                !section.contains(&format!("**{other}** wins")),
                "{title}: {other} should not win:\n{section}"
            );
        }
        assert_eq!(
            section.contains(overlap),
            overlapping,
            "{title}: overlap caveat expected {overlapping}:\n{section}"
        );
        assert_eq!(
            section.matches("The intervals do not overlap.").count(),
            if overlapping { 0 } else { 4 },
            "{title}:\n{section}"
        );
        assert!(
            section.contains(&format!("the winner is {winner} on clinic and {winner} on leaves")),
            "{title}:\n{section}"
        );
    }
    // gan's MIA AUC is 0.5 exactly, the runner-up ddpm's 0.6: 0.100 closer to 0.5.
    let privacy = md_section(&markdown, "Privacy first");
    assert!(privacy.contains("**gan** wins: 0.500 [0.470, 0.530] against ddpm's 0.600 [0.570, 0.630] (0.100 closer to 0.5)"), "{privacy}");
    assert!(markdown.contains("**No single family won every axis**"), "mixed winners:\n{markdown}");
}

#[test]
fn the_report_says_which_augmentation_wins_per_dataset_and_fraction() {
    let study = build_study(Scenario::Mixed);
    let markdown = report(&study).markdown;
    let start = markdown.find("# Synthetic or classical augmentation").unwrap_or_else(|| {
        panic!("no augmentation section:\n{markdown}");
    });
    let section = &markdown[start..];
    let section = &section[..section[2..].find("\n## ").map_or(section.len(), |idx| idx + 2)];
    for line in [
        "**clinic at fraction 0.5**: **combined (ddpm)** wins with +0.050 against synthetic (ddpm) +0.030 and classical +0.040.",
        "**clinic at fraction 1**: **classical** wins with +0.040 against synthetic (ddpm) +0.030 and combined (vae) +0.030.",
        "**leaves at fraction 0.5**: **synthetic (ddpm)** wins with +0.080 against classical +0.010 and combined (ddpm) +0.060.",
        "**leaves at fraction 1**: **synthetic (ddpm)** wins with +0.080 against classical +0.010 and combined (ddpm) +0.060.",
    ] {
        assert!(section.contains(line), "missing `{line}` in:\n{section}");
    }
    assert_eq!(section.matches(" wins with ").count(), 4, "{section}");
}

#[test]
fn a_family_that_wins_every_axis_is_called_out() {
    let study = build_study(Scenario::VaeEverywhere);
    let markdown = report(&study).markdown;
    assert!(
        markdown.contains(
            "**One family won every axis on 2 of 2 datasets**: vae on clinic and vae on leaves."
        ),
        "{markdown}"
    );
    assert!(!markdown.contains("No single family won every axis"));
    let speed = md_section(&markdown, "Fastest on the device");
    assert!(speed.contains("(10.0× as fast)"), "speeds a decade apart:\n{speed}");
    assert!(!speed.contains("may be chance"), "{speed}");
}

#[test]
fn a_missing_logbook_or_one_without_study_runs_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.sqlite");
    let err = write_report(&missing, &dir.path().join("report"))
        .map(|()| "written".to_owned())
        .unwrap_or_else(|err| err.to_string());
    assert!(err.contains("nowhere.sqlite") && err.contains("no such file"), "{err}");
    assert!(!missing.exists(), "the missing logbook must not be created");

    let other = dir.path().join("field.sqlite");
    let logbook = Logbook::open(&other).unwrap();
    let run_id = logbook.start_run("evaluate", None, &serde_json::json!({})).unwrap();
    logbook.finish_run(&run_id, &[metric(MetricId::Precision, 0.5, 0.1, 10)]).unwrap();
    let err = write_report(&other, &dir.path().join("report"))
        .map(|()| "written".to_owned())
        .unwrap_or_else(|err| err.to_string());
    assert!(err.contains("field.sqlite") && err.contains("no study runs"), "{err}");
    assert!(!dir.path().join("report").exists(), "nothing is written on failure");
}

#[test]
fn an_earlier_report_is_replaced_whole_and_a_foreign_folder_never() {
    let study = build_study(Scenario::Mixed);
    report(&study);
    let stale = study.out().join("plots").join("from-an-older-study.svg");
    write(&stale, b"<svg></svg>");
    let before = std::fs::read_to_string(study.out().join("report.md")).unwrap_or_default();
    report(&study);
    assert!(!stale.exists(), "the old report's files go with it");
    let after = std::fs::read_to_string(study.out().join("report.md")).unwrap_or_default();
    assert!(after.contains("clinic/vae/f1/s1") && before.contains("clinic/vae/f1/s1"));
    let leftovers: Vec<String> = std::fs::read_dir(study.db().parent().unwrap_or(Path::new(".")))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        leftovers.iter().all(|name| !name.starts_with(".report.")),
        "staging folders are cleaned up: {leftovers:?}"
    );

    let foreign = study.dir.path().join("notes");
    write(&foreign.join("field-notes.txt"), b"do not delete");
    let err = write_report(&study.db(), &foreign)
        .map(|()| "written".to_owned())
        .unwrap_or_else(|err| err.to_string());
    assert!(err.contains("field-notes.txt") && err.contains("refusing"), "{err}");
    assert_eq!(
        std::fs::read_to_string(foreign.join("field-notes.txt")).unwrap_or_default(),
        "do not delete"
    );
}

#[test]
fn synth_train_report_writes_the_report_and_names_both_files() {
    let study = build_study(Scenario::Mixed);
    let output = Command::new(env!("CARGO_BIN_EXE_synth-train"))
        .arg("report")
        .arg("--db")
        .arg(study.db())
        .arg("--out")
        .arg(study.out())
        .output()
        .unwrap_or_else(|err| panic!("cannot run synth-train: {err}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "synth-train report failed: {stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!(
            "report: {} and {}\n",
            study.out().join("report.html").display(),
            study.out().join("report.md").display()
        )
    );
    let markdown = std::fs::read_to_string(study.out().join("report.md")).unwrap();
    assert!(markdown.contains("clinic/vae/f1/s1"), "{markdown}");

    let missing = study.dir.path().join("nowhere.sqlite");
    let output = Command::new(env!("CARGO_BIN_EXE_synth-train"))
        .arg("report")
        .arg("--db")
        .arg(&missing)
        .arg("--out")
        .arg(study.dir.path().join("elsewhere"))
        .output()
        .unwrap_or_else(|err| panic!("cannot run synth-train: {err}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("nowhere.sqlite") && stderr.contains("no such file"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn samples_outside_the_study_folder_are_never_read_or_copied() {
    let study = build_study(Scenario::Mixed);
    let study_dir = study.dir.path().join("study");
    let real_path = study.dir.path().join("data").join("clinic.csv");
    // Beside the study folder: a grid of another size, and rows that would show in marginals.
    write(&study.dir.path().join("outside.png"), &grid_png(7, 5, 1));
    write(&study.dir.path().join("outside.csv"), table_csv(45, 500.0).as_bytes());
    let mut hostile = vec![
        ("leaves/gan/f0.5/s0", "image", "/etc/passwd".to_owned()),
        ("leaves/gan/f1/s0", "image", "../outside.png".to_owned()),
        ("leaves/vae/f1/s0", "image", "samples/../../outside.png".to_owned()),
        ("clinic/gan/f1/s0", "tabular", "/etc/passwd".to_owned()),
        ("clinic/ddpm/f1/s0", "tabular", "../outside.csv".to_owned()),
    ];
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("../../outside.png", study_dir.join("samples/link.png"))
            .unwrap();
        hostile.push(("leaves/ddpm/f1/s0", "image", "samples/link.png".to_owned()));
    }
    // A cell run again counts once, the later run: these replace the cells' first runs.
    let logbook = Logbook::open(&study.db()).unwrap();
    for (cell, modality, samples) in &hostile {
        let params = cell_params(cell, modality, samples, &real_path, false);
        let run_id = logbook.start_run("study", None, &params).unwrap();
        let parts: Vec<&str> = cell.split('/').collect();
        let fraction: f64 = parts[2].trim_start_matches('f').parse().unwrap();
        logbook.finish_run(&run_id, &cell_metrics(Scenario::Mixed, parts[1], fraction, 0)).unwrap();
    }
    drop(logbook);

    let written = report(&study);
    let copied: Vec<String> = std::fs::read_dir(study.out().join("samples"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let image_cells = hostile.iter().filter(|(_, modality, _)| *modality == "image").count();
    assert_eq!(
        copied.len(),
        FAMILIES.len() * FRACTIONS.len() - image_cells,
        "only the grids inside the study folder are copied: {copied:?}"
    );
    for name in ["passwd", "outside.png", "link.png"] {
        assert!(!copied.iter().any(|copy| copy == name), "{name} was copied: {copied:?}");
    }
    let pngs = data_uris(&written.html, "image/png");
    assert_eq!(pngs.len(), copied.len(), "only the grids inside are embedded");
    for bytes in &pngs {
        let reader = png::Decoder::new(std::io::Cursor::new(bytes.as_slice())).read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), (40, 30), "a grid from outside");
    }
    for text in [&written.html, &written.markdown] {
        assert!(!text.contains("root:x:0"), "/etc/passwd reached the report");
    }
    // Each refused file is named with the reason, in the grids' and the marginals' notes.
    let expected = [
        "Sample grids not shown: ",
        "/etc/passwd: is an absolute path; the report reads only files inside the study folder",
        "../outside.png: leads out of the study folder",
        "samples/../../outside.png: leads out of the study folder",
        "gan's samples could not be read: /etc/passwd: is an absolute path",
        "ddpm's samples could not be read: ../outside.csv: leads out of the study folder",
    ];
    for part in expected {
        assert!(written.markdown.contains(part), "report.md does not say `{part}`");
    }
    #[cfg(unix)]
    assert!(written.markdown.contains("samples/link.png: resolves to"), "{}", written.markdown);
    // The marginals still draw the real data and vae's samples, the ones inside.
    let marginal_svg = std::fs::read_dir(study.out().join("plots"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.to_string_lossy().contains("clinic-marginal-1-"))
        .expect("the clinic marginals are drawn");
    let svg = std::fs::read_to_string(marginal_svg).unwrap();
    let legend = |name: &str| svg.contains(&format!(">\n{name}\n</text>"));
    assert!(legend("real") && legend("vae") && !legend("gan") && !legend("ddpm"), "{svg}");
}
