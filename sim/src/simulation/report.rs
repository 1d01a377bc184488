//! Reports: a self-contained HTML page for a violation (a timeline per process, the longest
//! linearizable prefix, the operation that could not be placed and the object states), and a
//! markdown summary for a sweep.

use std::fmt::Write as _;

use super::run::SimOutcome;
use super::verify::{describe, Violation};

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The HTML page for a violation found in `outcome`; `replay` is the command that reproduces it.
pub fn violation_html(outcome: &SimOutcome, violation: &Violation, replay: &str) -> String {
    let ops: Vec<usize> =
        (0..outcome.history.len()).filter(|i| outcome.history[*i].key == violation.key).collect();
    let mut processes: Vec<u64> = ops.iter().map(|i| outcome.history[*i].process).collect();
    processes.sort_unstable();
    processes.dedup();
    let end_ms = outcome.simulated_ms.max(1);
    let (width, row, left) = (1100.0, 26.0, 90.0);
    let x = |ms: u64| left + (ms.min(end_ms) as f64 / end_ms as f64) * (width - left - 10.0);
    let mut svg = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{}' font-family='monospace' font-size='11'>",
        processes.len() as f64 * row + 30.0
    );
    for (lane, process) in processes.iter().enumerate() {
        let y = lane as f64 * row + 10.0;
        let _ = write!(svg, "<text x='4' y='{}'>process {process}</text>", y + 14.0);
        for &index in ops.iter().filter(|i| outcome.history[**i].process == *process) {
            let record = &outcome.history[index];
            let (colour, label) = if index == violation.stuck {
                ("#d62728", "cannot be placed".to_string())
            } else if let Some(position) = violation.prefix.iter().position(|p| *p == index) {
                ("#2ca02c", format!("#{}", position + 1))
            } else {
                ("#9e9e9e", String::new())
            };
            let (start, stop) = (x(record.call_ms), x(record.ret_ms));
            let title = escape(&format!(
                "{} .. {} ms: {}",
                record.call_ms,
                record.ret_ms.min(end_ms),
                describe(record)
            ));
            let _ = write!(
                svg,
                "<g><title>{title}</title><rect x='{start:.1}' y='{y}' width='{:.1}' height='{}' fill='{colour}' opacity='0.8'/>\
                 <text x='{:.1}' y='{}' fill='{colour}'>{label}</text></g>",
                (stop - start).max(3.0),
                row - 6.0,
                stop.max(start + 3.0) + 2.0,
                y + 14.0
            );
        }
    }
    let _ = write!(
        svg,
        "<text x='{left}' y='{}'>0 ms</text><text x='{}' y='{}'>{end_ms} ms</text></svg>",
        processes.len() as f64 * row + 25.0,
        width - 70.0,
        processes.len() as f64 * row + 25.0
    );

    let mut prefix_rows = String::new();
    for (position, (index, state)) in violation.prefix.iter().zip(&violation.states).enumerate() {
        let record = &outcome.history[*index];
        let _ = write!(
            prefix_rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            position + 1,
            record.process,
            escape(&describe(record)),
            escape(state)
        );
    }
    let stuck = &outcome.history[violation.stuck];
    format!(
        "<!doctype html><html><head><meta charset='utf-8'><title>Violation: seed {seed}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;font-family:monospace;font-size:12px}}</style></head><body>\
         <h1>NOT linearizable: key <code>{key}</code>, seed {seed}</h1>\
         <p>Replay: <code>{replay}</code></p>\
         <p>Faults: {faults}</p>\
         <h2>Timeline of <code>{key}</code> per process</h2>\
         <p>Green: the longest linearizable prefix (in order); red: the operation that could not be placed after it; grey: the rest. Hover for details.</p>{svg}\
         <h2>Longest linearizable prefix</h2><table><tr><th>#</th><th>process</th><th>operation</th><th>state after</th></tr>{prefix_rows}</table>\
         <h2>Could not be placed next</h2><p>process {process}, {from} .. {to} ms: <code>{stuck}</code></p>\
         </body></html>",
        seed = outcome.config.seed,
        key = escape(&violation.key),
        replay = escape(replay),
        faults = escape(&format!("{:?}", outcome.faults.iter().map(|f| format!("{} {}..{} ms", f.kind, f.start_ms, f.end_ms)).collect::<Vec<_>>())),
        process = stuck.process,
        from = stuck.call_ms,
        to = if stuck.ret_ms == u64::MAX { "unknown".to_string() } else { stuck.ret_ms.to_string() },
        stuck = escape(&describe(stuck)),
    )
}
