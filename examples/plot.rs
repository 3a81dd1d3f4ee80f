//! Draws the performance curves that `benches/curves/run.sh` measured: one
//! PNG per sweep, with throughput above and p99 latency below.
//!
//! ```sh
//! cargo run --release --example plot -- docs/curves/curves.json docs/curves
//! ```
//!
//! The input holds the load tool's JSON reports by sweep (`connections`,
//! `payload`, `destinations`, `lanes`) and the restart benchmark's figures
//! (`recovery`). Text is drawn with a TrueType font: `FERROX_PLOT_FONT`, or
//! DejaVu Sans or Liberation Sans where Debian installs them.

#![allow(clippy::print_stdout)]

use std::{path::Path, process::ExitCode};

use plotters::{
    coord::{
        Shift,
        ranged1d::{Ranged, ValueFormatter},
    },
    prelude::*,
};
use serde_json::Value;

const FONTS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];
const SIZE: (u32, u32) = (960, 720);
const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);

/// One line of a panel: its label, colour and points.
struct Series {
    label: &'static str,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, out] = args.as_slice() else {
        eprintln!("usage: plot CURVES.json OUT_DIR");
        return ExitCode::FAILURE;
    };
    match run(Path::new(input), Path::new(out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plot: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(input: &Path, out: &Path) -> Result<(), String> {
    register_font()?;
    let text = std::fs::read_to_string(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let curves: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", input.display()))?;
    let context = curves["context"].as_str().unwrap_or_default();
    let sweeps = [
        ("connections", "connections", "HTTP connections sending (closed loop)"),
        ("payload", "payload_bytes", "payload size, bytes"),
        ("destinations", "destinations", "destinations each message fans out to"),
        ("lanes", "lanes", "lanes of one destination (max_in_flight)"),
    ];
    for (sweep, key, axis) in sweeps {
        let Some(runs) = curves[sweep].as_array().filter(|r| !r.is_empty()) else { continue };
        let at = |r: &Value| r[key].as_f64().unwrap_or(0.0);
        let series = |label, color, field: &str| Series {
            label,
            color,
            points: runs.iter().map(|r| (at(r), r[field].as_f64().unwrap_or(0.0))).collect(),
        };
        // Accept → delivered only where every delivery arrived: with a
        // backlog left behind, its percentiles would describe the lucky.
        let p99 = |label, color, field: &str| Series {
            label,
            color,
            points: runs
                .iter()
                .filter(|r| field == "accept_ms" || r["drained"].as_bool() == Some(true))
                .map(|r| (at(r), r[field]["p99"].as_f64().unwrap_or(0.0)))
                .collect(),
        };
        let throughput =
            [series("accepted SENDs/s", BLUE, "accepted_per_s"), series("deliveries/s", ORANGE, "delivered_per_s")];
        let latency =
            [p99("accept p99", BLUE, "accept_ms"), p99("accept → delivered p99", ORANGE, "accept_to_delivered_ms")];
        let title = format!("ferrox: throughput and p99 against {}", sweep);
        let path = out.join(format!("{sweep}.png"));
        let root = BitMapBackend::new(&path, SIZE).into_drawing_area();
        draw(&root, &title, context, axis, (&throughput, "per second"), (&latency, "p99, ms"))?;
        root.present().map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if let Some(runs) = curves["recovery"].as_array().filter(|r| !r.is_empty()) {
        let at = |r: &Value, f: &str| r[f].as_f64().unwrap_or(0.0);
        let points = |n: &str, f: &str| runs.iter().map(|r| (at(r, n) / 1000.0, at(r, f))).collect();
        let series = [
            Series { label: "ready after a clean stop", color: BLUE, points: points("pending", "clean_ms") },
            Series { label: "ready after kill -9", color: ORANGE, points: points("crash_pending", "crash_ms") },
        ];
        let path = out.join("recovery.png");
        let root = BitMapBackend::new(&path, (SIZE.0, SIZE.1 / 2 + 40)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (head, body) = root.split_vertically(60);
        heading(&head, "ferrox: restart to ready against the messages pending (1 KiB each, all in the WAL)", context)?;
        panel(&body, "pending messages, thousands", "ready in, ms", &series, Scale::Linear)?;
        root.present().map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn register_font() -> Result<(), String> {
    let candidates = std::env::var("FERROX_PLOT_FONT").into_iter().chain(FONTS.iter().map(|f| (*f).to_owned()));
    for path in candidates {
        if let Ok(bytes) = std::fs::read(&path) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            return register_font_bytes(bytes).map_err(|()| format!("{path}: not a TrueType font"));
        }
    }
    Err(format!("no font: set FERROX_PLOT_FONT to a .ttf file, or install fonts-dejavu-core ({})", FONTS[0]))
}

fn register_font_bytes(bytes: &'static [u8]) -> Result<(), ()> {
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).map_err(|_| ())
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn heading(area: &Area, title: &str, context: &str) -> Result<(), String> {
    area.draw_text(title, &("sans-serif", 22).into_font().color(&BLACK), (20, 8)).map_err(|e| e.to_string())?;
    area.draw_text(context, &("sans-serif", 14).into_font().color(&RGBColor(90, 90, 90)), (20, 36))
        .map_err(|e| e.to_string())
}

fn draw(
    root: &Area,
    title: &str,
    context: &str,
    x_label: &str,
    top: (&[Series], &str),
    bottom: (&[Series], &str),
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (head, body) = root.split_vertically(60);
    heading(&head, title, context)?;
    let panels = body.split_evenly((2, 1));
    panel(&panels[0], x_label, top.1, top.0, Scale::LogX)?;
    panel(&panels[1], x_label, bottom.1, bottom.0, Scale::LogXY)
}

#[derive(Clone, Copy)]
enum Scale {
    Linear,
    LogX,
    /// Latencies that span milliseconds to seconds.
    LogXY,
}

/// One chart of `series`, y from 0 (from the least value on a log scale).
fn panel(area: &Area, x_label: &str, y_label: &str, series: &[Series], scale: Scale) -> Result<(), String> {
    let points = || series.iter().flat_map(|s| s.points.iter().copied());
    let (x_min, x_max) = points().fold((f64::MAX, f64::MIN), |(lo, hi), (x, _)| (lo.min(x), hi.max(x)));
    let (y_min, y_max) = points().fold((f64::MAX, 0.0f64), |(lo, hi), (_, y)| (lo.min(y), hi.max(y)));
    let (x_range, y_top) = (x_min.max(1e-9)..x_max * 1.05, y_max.max(1.0) * 1.1);
    let mut builder = ChartBuilder::on(area);
    builder.margin(12).x_label_area_size(40).y_label_area_size(70);
    let chart = match scale {
        Scale::Linear => lines(builder.build_cartesian_2d(0.0..x_max * 1.05, 0.0..y_top), x_label, y_label, series),
        Scale::LogX => lines(builder.build_cartesian_2d(x_range.log_scale(), 0.0..y_top), x_label, y_label, series),
        Scale::LogXY => {
            let y_range = (y_min.clamp(0.01, y_top) * 0.8..y_top).log_scale();
            lines(builder.build_cartesian_2d(x_range.log_scale(), y_range), x_label, y_label, series)
        }
    };
    chart.map_err(|e| e.to_string())
}

type Error = DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>;

/// Draws the mesh, each series as a line with its points, and the legend.
fn lines<'a, X, Y>(
    chart: Result<ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>, Error>,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(), Error>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut chart = chart?;
    let big = chart.y_range().end >= 100.0;
    let small = chart.y_range().start > 0.0 && chart.y_range().start < 1.0;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| if big && !small { format!("{y:.0}") } else { format!("{y:.1}") })
        .light_line_style(WHITE.mix(0.0))
        .label_style(("sans-serif", 14))
        .draw()?;
    for s in series {
        let style = s.color.stroke_width(2);
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), style))?
            .label(s.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 4, s.color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
}
