//   RunReport.swift        `harness report RUN_DIR`: report.html, the run as a picture
//   ReportModel.swift      what the page draws, read from the run's files
//   ReportHarnessLog.swift harness.log read back: header, steps, faults
//   ReportTimeline.swift   the timeline (inline SVG)

import Foundation
import RaftNodeWire

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `report.html` of a run directory (SPEC section 3): one self-contained page (inline SVG
/// and CSS, a few lines of script, nothing fetched) that shows why a run failed without
/// reading JSON. At the top the scenario, seed, world, verdict and each failed check's first
/// evidence, with a link to the first error; then the timeline (a lane per node of `nodes/`:
/// roles and terms, down, paused and cut off, committed configurations, snapshot transfers;
/// the steps; client operations by outcome; the first violation as a red bar at its time);
/// under it write latency percentiles and throughput over time on the same time axis.
///
/// It reads the files alone (harness.log, report.json, history.jsonl, nodes/*/events.jsonl),
/// running the checker only when report.json is missing. The same files give the same bytes.
/// A long run is summarised (narrow role changes merged, many client operations drawn as a
/// histogram), so that the page stays at a few MiB at most.
public enum RunReport {
    /// The page for `runDirectory`.
    public static func html(runDirectory: String) -> String {
        ReportPage(RunPicture(runDirectory: runDirectory)).html()
    }

    /// Writes `runDirectory/report.html` (a temporary file, then renamed over it) and
    /// returns its path.
    @discardableResult
    public static func write(runDirectory: String) throws -> String {
        let page = html(runDirectory: runDirectory)
        let path = runDirectory + "/report.html"
        let temp = runDirectory + "/.report.html.\(getpid()).tmp"
        try Data(page.utf8).write(to: URL(fileURLWithPath: temp))
        guard rename(temp, path) == 0 else {
            let why = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temp)
            throw FileProblem(file: "report.html", "cannot rename \(temp) to \(path): \(why)")
        }
        return path
    }
}

/// The page around the timeline.
struct ReportPage {
    let p: RunPicture
    init(_ p: RunPicture) { self.p = p }

    func html() -> String {
        var timeline = TimelineSVG(p)
        let svg = timeline.render()
        var parts: [String] = []
        parts.append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
        parts.append("<title>\(esc("\(p.verdict.uppercased()) \(p.scenario) seed \(p.seed)"))</title>")
        parts.append("<style>\(Self.css)</style></head>")
        parts.append("<body data-verdict=\"\(esc(p.verdict))\">")
        parts.append(header())
        parts.append("<section id=\"timeline-section\">" + svg + "</section>")
        parts.append(legend())
        if !timeline.notes.isEmpty || !p.problems.isEmpty {
            parts.append("<ul class=\"notes\">" + (p.problems + timeline.notes).map { "<li>\(esc($0))</li>" }.joined() + "</ul>")
        }
        parts.append(charts())
        parts.append(checksTable())
        parts.append(stepsList())
        parts.append("<script>\(Self.script)</script>")
        parts.append("</body></html>\n")
        return parts.joined(separator: "\n")
    }

    static let css = """
        body{font-family:sans-serif;margin:8px 16px;color:#1a1a1a;background:#fff}
        header h1{font-size:20px;margin:2px 0 4px 0}
        .verdict{display:inline-block;padding:1px 10px;border-radius:4px;color:#fff;font-size:18px;margin-right:8px}
        .verdict.pass{background:#2e9e44}.verdict.fail{background:#e0001b}.verdict.unknown{background:#c77700}
        .meta{margin:2px 0;color:#444;font-size:13px}
        .failed{margin:4px 0 6px 0;padding-left:18px;font-size:13px}
        .failed li{margin:1px 0}.failed b{color:#e0001b}
        a#jump-to-first-error{color:#e0001b;font-weight:bold;font-size:14px}
        .ok-line{color:#2e9e44;font-weight:bold;font-size:14px}
        #timeline-section{overflow-x:auto}
        .legend{font-size:12px;color:#333;margin:2px 0 6px 0}
        .legend span.sw{display:inline-block;width:12px;height:10px;margin:0 3px 0 10px;vertical-align:middle;border:1px solid #999}
        .notes{font-size:12px;color:#555}
        h2{font-size:15px;margin:14px 0 4px 0}
        table{border-collapse:collapse;font-size:12px}
        td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
        td.fail{color:#e0001b;font-weight:bold}td.pass{color:#2e9e44}
        pre{font-size:11px;white-space:pre-wrap}
        """

    /// Records where the first error and the timeline are on the screen (the browser test
    /// reads it from the DOM).
    static let script = """
        (function(){function r(e){var b=e.getBoundingClientRect();return [b.left,b.top,b.width,b.height].map(function(v){return v.toFixed(1)}).join(' ')}
        var s=document.getElementById('timeline'),m=document.getElementById('first-error');
        if(s)document.body.setAttribute('data-timeline-rect',r(s));if(m)document.body.setAttribute('data-first-error-rect',r(m));})();
        """

    func header() -> String {
        var h = "<header><h1><span class=\"verdict \(esc(p.verdict))\">\(esc(p.verdict.uppercased()))</span>\(esc(p.scenario))</h1>"
        let duration = p.ms.map { String(format: "%.3fs", Double($0) / 1000) } ?? String(format: "%.3fs", Double(p.t1 - p.t0) / 1_000_000)
        h += "<p class=\"meta\">seed <b>\(esc(p.seed))</b> · world <b>\(esc(p.world))</b> · \(duration) · \(p.lanes.count) nodes · "
            + "\(p.steps.count) steps · \(p.operations.count) client operations · started \(esc(Timestamp.rfc3339(unixMicros: p.t0)))</p>"
        if let e = p.firstError {
            h += "<p><a id=\"jump-to-first-error\" href=\"#first-error\">jump to the first error</a> "
                + "<span class=\"meta\">at \(String(format: "%.3fs", Double(e.ts - p.t0) / 1_000_000)) (\(esc(e.check)), time from the \(esc(e.source)))</span></p>"
        } else {
            h += "<p class=\"ok-line\">no error: every check passed</p>"
        }
        let failed = p.failedChecks
        if !failed.isEmpty {
            h += "<ul class=\"failed\">"
            for c in failed {
                let more = c.evidence.count > 1 ? " <span class=\"meta\">(+\(c.evidence.count - 1) more)</span>" : ""
                h += "<li><b>\(esc(c.name))</b>: \(esc(clip(c.evidence.first ?? "failed", 400)))\(more)</li>"
            }
            h += "</ul>"
        }
        return h + "</header>"
    }

    func legend() -> String {
        func sw(_ colour: String, _ name: String) -> String { "<span class=\"sw\" style=\"background:\(colour)\"></span>\(name)" }
        let roles = ["leader", "candidate", "follower", "learner", "snapshotting"].map { sw(Palette.role($0), $0) }.joined()
        return "<div class=\"legend\">" + roles + sw("#9a9a9a", "down") + sw(Palette.paused, "paused") + sw(Palette.cut, "cut off / loss")
            + sw(Palette.config, "◆ config committed") + sw(Palette.snapshot, "→ snapshot sent (■ taken, ○ installed)")
            + sw(Palette.outcome("ok", op: "put"), "put ok") + sw(Palette.outcome("ok", op: "get"), "get ok") + sw(Palette.outcome("fail", op: ""), "fail")
            + sw(Palette.outcome("unknown", op: ""), "unknown") + sw(Palette.error, "first error") + "</div>"
    }

    // MARK: Charts

    static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((q * Double(sorted.count)).rounded(.up))
        return sorted[min(sorted.count - 1, max(0, rank - 1))]
    }

    func charts() -> String {
        var s = "<h2>Client latency and throughput</h2>"
        var rows: [(String, [Double])] = []
        for op in ["put", "get"] {
            let lat = p.operations.filter { $0.op == op && $0.outcome == "ok" }.compactMap { o in o.end.map { Double($0 - o.start) / 1000 } }.sorted()
            if !lat.isEmpty || op == "put" { rows.append((op, lat)) }
        }
        s += "<table id=\"latency\"><tr><th>operation (ok)</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>"
        for (op, lat) in rows {
            let cells = [0.5, 0.9, 0.99, 1].map { "<td>" + (lat.isEmpty ? "-" : String(format: "%.1fms", Self.percentile(lat, $0))) + "</td>" }.joined()
            s += "<tr data-op=\"\(op)\"><td>\(op == "put" ? "write (put)" : "read (get)")</td><td>\(lat.count)</td>\(cells)</tr>"
        }
        s += "</table>"
        s += latencyBars(rows)
        s += overTime()
        return s
    }

    /// p50/p90/p99/max of each kind as horizontal bars.
    func latencyBars(_ rows: [(String, [Double])]) -> String {
        let values = rows.flatMap { r in [0.5, 0.9, 0.99, 1].map { Self.percentile(r.1, $0) } }
        let peak = max(1, values.max() ?? 1)
        let barH = 13.0
        let height = Double(rows.count) * 4 * (barH + 3) + Double(rows.count) * 6 + 4
        var s = "<svg id=\"latency-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">"
        var y = 2.0
        for (op, lat) in rows {
            for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
                let v = Self.percentile(lat, q)
                let w = 440 * v / peak
                s += "<text x=\"2\" y=\"\(f1(y + 10))\">\(op) \(name)</text><rect x=\"70\" y=\"\(f1(y))\" width=\"\(f1(max(1, w)))\" height=\"\(f1(barH))\" fill=\"\(op == "get" ? Palette.outcome("ok", op: "get") : Palette.outcome("ok", op: "put"))\"/>"
                    + "<text x=\"\(f1(74 + w))\" y=\"\(f1(y + 10))\">\(String(format: "%.1fms", v))</text>"
                y += barH + 3
            }
            y += 6
        }
        return s + "</svg>"
    }

    /// Ok operations per bucket and the worst write latency per bucket, on the timeline's x.
    func overTime() -> String {
        let span = Double(p.t1 - p.t0) / 1000
        let sizes: [Double] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000]
        let bucketMs = sizes.first { span / $0 <= 100 } ?? 1_800_000
        let n = max(1, Int((span / bucketMs).rounded(.up)))
        var ok = [Int](repeating: 0, count: n)
        var worst = [Double](repeating: 0, count: n)
        for o in p.operations where o.outcome == "ok" {
            guard let end = o.end else { continue }
            let b = min(n - 1, max(0, Int(Double(end - p.t0) / 1000 / bucketMs)))
            ok[b] += 1
            if o.op == "put" { worst[b] = max(worst[b], Double(end - o.start) / 1000) }
        }
        let L = TimelineLayout(t0: p.t0, t1: p.t1)
        func chart(id: String, title: String, values: [Double], colour: String, unit: String) -> String {
            let h = 90.0
            let peak = max(values.max() ?? 0, 0.001)
            var s = "<svg id=\"\(id)\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(TimelineLayout.width))\" height=\"\(Int(h + 22))\" font-family=\"sans-serif\" font-size=\"11\">"
            s += "<text x=\"4\" y=\"14\" font-weight=\"bold\">\(esc(title))</text><text x=\"4\" y=\"30\" fill=\"#555\">max \(esc(unit == "ms" ? String(format: "%.1fms", peak) : "\(Int(peak))"))</text>"
            s += "<line x1=\"\(f1(TimelineLayout.x0))\" y1=\"\(f1(h + 4))\" x2=\"\(f1(TimelineLayout.x1))\" y2=\"\(f1(h + 4))\" stroke=\"#999\"/>"
            for (b, v) in values.enumerated() where v > 0 {
                let xs = L.x(p.t0 + Int64(Double(b) * bucketMs * 1000))
                let xe = L.x(p.t0 + Int64(Double(b + 1) * bucketMs * 1000))
                let bh = (h - 10) * v / peak
                s += "<rect x=\"\(f1(xs))\" y=\"\(f1(h + 4 - bh))\" width=\"\(f1(max(1, xe - xs - 1)))\" height=\"\(f1(bh))\" fill=\"\(colour)\"><title>\(String(format: "%.3fs", Double(b) * bucketMs / 1000)): \(unit == "ms" ? String(format: "%.1fms", v) : "\(Int(v))")</title></rect>"
            }
            if let e = p.firstError {
                let x = L.x(e.ts)
                s += "<line x1=\"\(f1(x))\" y1=\"0\" x2=\"\(f1(x))\" y2=\"\(f1(h + 4))\" stroke=\"\(Palette.error)\" stroke-width=\"2\" stroke-dasharray=\"4 3\"/>"
            }
            s += "<text x=\"\(f1(TimelineLayout.x0))\" y=\"\(f1(h + 18))\" fill=\"#555\">0s</text><text x=\"\(f1(TimelineLayout.x1))\" y=\"\(f1(h + 18))\" text-anchor=\"end\" fill=\"#555\">\(L.seconds(p.t1))</text>"
            return s + "</svg>"
        }
        let per = bucketMs >= 1000 ? String(format: "%gs", bucketMs / 1000) : String(format: "%gms", bucketMs)
        return "<div>" + chart(id: "throughput-chart", title: "ok operations per \(per)", values: ok.map(Double.init), colour: "#2e9e44", unit: "ops")
            + "</div><div>" + chart(id: "latency-over-time", title: "slowest ok write per \(per)", values: worst, colour: "#6a5acd", unit: "ms") + "</div>"
    }

    // MARK: Checks and steps

    func checksTable() -> String {
        var s = "<h2>Checks</h2><table id=\"checks\"><tr><th>check</th><th>verdict</th><th>first violation</th><th>evidence</th></tr>"
        for c in p.checks {
            let at = c.at.map { String(format: "%.3fs", Double($0 - p.t0) / 1_000_000) } ?? ""
            let evidence = c.evidence.prefix(5).map { esc(clip($0, 600)) }.joined(separator: "<br>") + (c.evidence.count > 5 ? "<br>(+\(c.evidence.count - 5) more in report.json)" : "")
            s += "<tr><td>\(esc(c.name))</td><td class=\"\(c.passed ? "pass" : "fail")\">\(c.passed ? "pass" : "FAIL")</td><td>\(at)</td><td>\(evidence)</td></tr>"
        }
        return s + "</table>"
    }

    func stepsList() -> String {
        let shown = 400
        var s = "<details><summary>harness.log steps (\(p.steps.count))</summary><pre>"
        for step in p.steps.prefix(shown) {
            let line = step.scenarioLine.map { String(format: "line %-4d", $0) } ?? ""
            s += esc(String(format: "%9.3fs  ", Double(step.end - p.t0) / 1_000_000) + line + step.text + "  " + step.outcome) + "\n"
        }
        if p.steps.count > shown { s += "… \(p.steps.count - shown) more in harness.log\n" }
        return s + "</pre></details>"
    }
}
