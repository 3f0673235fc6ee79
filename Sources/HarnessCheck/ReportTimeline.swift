import Foundation
import RaftNodeWire

/// The timeline of report.html as one inline SVG: x is time (the same mapping for every row
/// and for the charts under it), a lane per node. Rows from the top: the first error's label,
/// the time axis, the scenario's steps, the network, the configurations, the node lanes
/// (role and term bands; down, paused and cut off bands; config markers; snapshot arrows),
/// the client operations. The first error is a red bar across all of them, drawn last.
///
/// Machine-readable attributes (the browser test reads them): the `svg#timeline` has
/// `data-t0`/`data-t1` (µs since the epoch) and `data-x0`/`data-x1` (their x); each lane is
/// `g.lane[data-lane]`; each committed config event a `.config-marker`; each `snapshot-sent`
/// a `.snapshot-arrow`; the first error `rect#first-error[data-ts][data-x]`.
struct TimelineLayout {
    static let width = 1360.0
    static let x0 = 130.0
    static let x1 = 1345.0
    static let laneHeight = 46.0
    /// Client operations drawn one by one up to this many; above, a histogram.
    static let maxDrawnOperations = 1500
    /// Markers, arrows and steps drawn at most (a long explore run has few more).
    static let maxMarks = 4000

    let t0: Int64
    let t1: Int64

    func x(_ t: Int64) -> Double {
        let f = Double(t - t0) / Double(max(1, t1 - t0))
        return Self.x0 + min(1, max(0, f)) * (Self.x1 - Self.x0)
    }

    /// Seconds since the start, as the page writes them.
    func seconds(_ t: Int64) -> String { String(format: "%.3fs", Double(t - t0) / 1_000_000) }
}

enum Palette {
    static let error = "#e0001b"
    static func role(_ r: String) -> String {
        switch r {
        case "leader": "#1f4e9c"
        case "candidate": "#f0b429"
        case "pre-candidate": "#f7dc8f"
        case "follower": "#c5d3e6"
        case "learner": "#d5c2ee"
        case "snapshotting": "#4fb3a0"
        default: "#dddddd"
        }
    }
    static func roleText(_ r: String) -> String { r == "leader" || r == "snapshotting" ? "#ffffff" : "#1a1a1a" }
    static func short(_ r: String) -> String {
        switch r {
        case "leader": "L"
        case "candidate": "C"
        case "pre-candidate": "pre"
        case "follower": "F"
        case "learner": "learner"
        case "snapshotting": "snap"
        default: r
        }
    }
    static let terms = ["#8dd3c7", "#e5d8a0", "#bebada", "#80b1d3", "#fdb462", "#b3de69"]
    static let down = "#4a4a4a"
    static let paused = "#8e44ad"
    static let cut = "#d35400"
    static let snapshot = "#0a8f6a"
    static let config = "#111111"
    static func outcome(_ o: String, op: String) -> String {
        switch o {
        case "ok": op == "get" ? "#3b7dd8" : "#2e9e44"
        case "fail": "#a0a0a0"
        default: "#f08c00"
        }
    }
}

/// Text for HTML and SVG, escaped.
func esc(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for c in s.unicodeScalars {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case _ where c.value < 0x20 && c != "\n" && c != "\t": out += " "
        default: out.unicodeScalars.append(c)
        }
    }
    return out
}

/// `s` cut to `n` characters, with an ellipsis when cut.
func clip(_ s: String, _ n: Int) -> String { s.count <= n ? s : String(s.prefix(max(1, n - 1))) + "…" }

func f1(_ v: Double) -> String { String(format: "%.1f", v) }

func sizeText(_ bytes: UInt64) -> String {
    bytes >= 1 << 20 ? String(format: "%.1fMiB", Double(bytes) / 1_048_576) : bytes >= 1024 ? String(format: "%.1fKiB", Double(bytes) / 1024) : "\(bytes)B"
}

struct TimelineSVG {
    let p: RunPicture
    let L: TimelineLayout
    var out: [String] = []
    /// What was summarised instead of drawn, said under the timeline.
    var notes: [String] = []

    init(_ picture: RunPicture) {
        p = picture
        L = TimelineLayout(t0: picture.t0, t1: picture.t1)
    }

    // Rows (y of their tops).
    let errorRow = 0.0
    let axisRow = 22.0
    let stepsRow = 40.0
    let stepRows = 3
    var networkRow: Double { stepsRow + Double(stepRows) * 13 + 8 }
    var configRow: Double { networkRow + 16 }
    var lanesTop: Double { configRow + 26 }
    func laneTop(_ k: Int) -> Double { lanesTop + Double(k) * TimelineLayout.laneHeight }
    var lanesBottom: Double { laneTop(p.lanes.count) }
    var clientsTop: Double { lanesBottom + 10 }
    let clientRowHeight = 6.0
    let maxClientRows = 16

    mutating func render() -> String {
        let lanesIndex = Dictionary(p.lanes.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
        drawSteps()
        drawNetwork()
        drawConfigLabels()
        for (k, lane) in p.lanes.enumerated() { drawLane(lane, top: laneTop(k)) }
        drawConfigMarkers(lanesIndex)
        drawSnapshots(lanesIndex)
        let clientsBottom = drawOperations()
        let height = clientsBottom + 24
        // The axis's grid under everything, the first error over everything.
        let content = out
        out = []
        drawAxis(bottom: clientsBottom)
        out += content
        drawFirstError(bottom: clientsBottom)
        let head =
            "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(TimelineLayout.width))\" height=\"\(Int(height))\" "
            + "viewBox=\"0 0 \(Int(TimelineLayout.width)) \(Int(height))\" data-t0=\"\(p.t0)\" data-t1=\"\(p.t1)\" "
            + "data-x0=\"\(f1(TimelineLayout.x0))\" data-x1=\"\(f1(TimelineLayout.x1))\" font-family=\"sans-serif\" font-size=\"11\">"
        let defs =
            "<defs><marker id=\"arrowhead\" markerWidth=\"8\" markerHeight=\"8\" refX=\"7\" refY=\"4\" orient=\"auto\" markerUnits=\"userSpaceOnUse\">"
            + "<path d=\"M0,0 L8,4 L0,8 z\" fill=\"\(Palette.snapshot)\"/></marker>"
            + "<pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">"
            + "<rect width=\"6\" height=\"6\" fill=\"#e6e6e6\"/><rect width=\"3\" height=\"6\" fill=\"#9a9a9a\"/></pattern></defs>"
        return ([head, defs] + out + ["</svg>"]).joined(separator: "\n")
    }

    // MARK: Axis

    mutating func drawAxis(bottom: Double) {
        let span = Double(p.t1 - p.t0) / 1000  // ms
        let steps: [Double] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_800_000, 3_600_000]
        let tick = steps.first { span / $0 <= 12 } ?? 7_200_000
        out.append("<g class=\"axis\">")
        var ms = 0.0
        while ms <= span + 0.0001 && ms <= tick * 40 {
            let x = L.x(p.t0 + Int64(ms * 1000))
            let label = span >= 1500 ? String(format: "%gs", ms / 1000) : String(format: "%gms", ms)
            out.append(
                "<line x1=\"\(f1(x))\" y1=\"\(f1(axisRow + 14))\" x2=\"\(f1(x))\" y2=\"\(f1(bottom))\" stroke=\"#e4e4e4\"/>"
                    + "<text x=\"\(f1(x))\" y=\"\(f1(axisRow + 11))\" text-anchor=\"middle\" fill=\"#555\">\(label)</text>")
            ms += tick
        }
        out.append("</g>")
    }

    // MARK: Steps

    mutating func drawSteps() {
        out.append("<text x=\"6\" y=\"\(f1(stepsRow + 10))\" fill=\"#333\" font-weight=\"bold\">steps</text>")
        out.append("<g class=\"steps\">")
        let steps = p.steps.filter { !$0.outcome.hasPrefix("pass ") }
        if steps.count > TimelineLayout.maxMarks { notes.append("\(steps.count - TimelineLayout.maxMarks) later steps not drawn") }
        // Labels on three rows, none over another; the failed step's first, so that it always
        // has a place, beside its end (where the first error's bar may be).
        var taken = [[(Double, Double)]](repeating: [], count: stepRows)
        let order = steps.prefix(TimelineLayout.maxMarks).enumerated().sorted { ($0.1.failed ? 0 : 1, $0.0) < ($1.1.failed ? 0 : 1, $1.0) }
        var labels: [Int: String] = [:]
        for (k, s) in order {
            let text = clip((s.scenarioLine.map { "\($0) " } ?? "") + s.text, 28)
            let w = Double(text.count) * 6.0 + 4
            let end = L.x(s.end)
            // Near the right edge a label ends at the edge (the failed one before its end).
            let lx = s.failed ? (end + 4 + w <= TimelineLayout.width ? end + 4 : end - 4 - w) : min(L.x(s.start) + 2, TimelineLayout.width - w)
            guard let row = taken.firstIndex(where: { $0.allSatisfy { lx >= $0.1 || lx + w <= $0.0 } }) else { continue }
            taken[row].append((lx, lx + w))
            labels[k] =
                "<text x=\"\(f1(lx))\" y=\"\(f1(stepsRow + 10 + Double(row) * 13))\" fill=\"\(s.failed ? Palette.error : "#333")\"\(s.failed ? " font-weight=\"bold\"" : "")>\(esc(text))</text>"
        }
        for (k, s) in steps.prefix(TimelineLayout.maxMarks).enumerated() {
            let xs = L.x(s.start)
            let xe = max(L.x(s.end), xs + 1)
            let colour = s.failed ? Palette.error : "#7a7a7a"
            let title = esc("\(s.scenarioLine.map { "line \($0): " } ?? "")\(s.text) — \(s.outcome) (\(L.seconds(s.start))–\(L.seconds(s.end)))")
            out.append(
                "<g class=\"step\(s.failed ? " failed-step" : "")\" data-ts=\"\(Timestamp.rfc3339(unixMicros: s.start))\"><title>\(title)</title>"
                    + "<rect x=\"\(f1(xs))\" y=\"\(f1(stepsRow))\" width=\"\(f1(xe - xs))\" height=\"\(f1(Double(stepRows) * 13))\" fill=\"\(colour)\" opacity=\"0.12\"/>"
                    + "<line x1=\"\(f1(xs))\" y1=\"\(f1(stepsRow))\" x2=\"\(f1(xs))\" y2=\"\(f1(stepsRow + Double(stepRows) * 13))\" stroke=\"\(colour)\"/>"
                    + (labels[k] ?? "") + "</g>")
        }
        out.append("</g>")
    }

    // MARK: Network and configurations

    mutating func drawNetwork() {
        out.append("<text x=\"6\" y=\"\(f1(networkRow + 10))\" fill=\"#333\" font-weight=\"bold\">network</text>")
        for b in p.faults.loss {
            let xs = L.x(b.start)
            let w = max(1, L.x(b.end) - xs)
            out.append(
                "<g class=\"fault loss\"><title>\(esc(b.label)) (\(L.seconds(b.start))–\(L.seconds(b.end)))</title><rect x=\"\(f1(xs))\" y=\"\(f1(networkRow + 1))\" width=\"\(f1(w))\" height=\"11\" fill=\"\(Palette.cut)\" opacity=\"0.35\"/>"
                    + (w > 60 ? "<text x=\"\(f1(xs + 3))\" y=\"\(f1(networkRow + 10))\" fill=\"#5a2400\">\(esc(clip(b.label, Int(w / 6))))</text>" : "") + "</g>")
        }
    }

    /// Each configuration once, where it was first committed: its index and members.
    mutating func drawConfigLabels() {
        out.append("<text x=\"6\" y=\"\(f1(configRow + 10))\" fill=\"#333\" font-weight=\"bold\">configuration</text>")
        var firstByIndex: [UInt64: ConfigMark] = [:]
        for c in p.configs where firstByIndex[c.index].map({ c.ts < $0.ts }) ?? true { firstByIndex[c.index] = c }
        // Two rows of labels; one that fits in neither is left to the markers' titles.
        var rowEnds = [-1.0, -1.0]
        for c in firstByIndex.values.sorted(by: { ($0.ts, $0.index) < ($1.ts, $1.index) }) {
            let x = L.x(c.ts)
            let text = "#\(c.index) " + c.members.joined(separator: " ") + (c.learners.isEmpty ? "" : " +learner " + c.learners.joined(separator: " "))
            let w = Double(text.count) * 5.6 + 8
            let lx = min(x + 3, TimelineLayout.width - w)
            out.append("<line x1=\"\(f1(x))\" y1=\"\(f1(configRow))\" x2=\"\(f1(x))\" y2=\"\(f1(configRow + 22))\" stroke=\"\(Palette.config)\" stroke-width=\"1.5\"/>")
            if let row = rowEnds.firstIndex(where: { $0 < lx }) {
                rowEnds[row] = lx + w
                out.append("<text class=\"config-label\" x=\"\(f1(lx))\" y=\"\(f1(configRow + 9 + Double(row) * 11))\" font-size=\"10\" fill=\"\(Palette.config)\">\(esc(text))</text>")
            }
        }
    }

    // MARK: Lanes

    mutating func drawLane(_ lane: Lane, top: Double) {
        let h = TimelineLayout.laneHeight
        out.append("<g class=\"lane\" data-lane=\"\(esc(lane.name))\">")
        out.append("<rect x=\"0\" y=\"\(f1(top))\" width=\"\(Int(TimelineLayout.width))\" height=\"\(f1(h))\" fill=\"none\" stroke=\"#e8e8e8\"/>")
        out.append("<text x=\"6\" y=\"\(f1(top + 18))\" font-size=\"14\" font-weight=\"bold\" fill=\"#111\">\(esc(lane.name))</text>")
        // Down: the whole lane hatched.
        for b in lane.down {
            let xs = L.x(b.start)
            let w = max(1, L.x(b.end) - xs)
            out.append(
                "<g class=\"fault down\" data-node=\"\(esc(lane.name))\"><title>\(esc(lane.name)) \(esc(b.label)) \(L.seconds(b.start))–\(L.seconds(b.end))</title>"
                    + "<rect x=\"\(f1(xs))\" y=\"\(f1(top + 3))\" width=\"\(f1(w))\" height=\"\(f1(h - 6))\" fill=\"url(#hatch)\"/>"
                    + (w > 50 ? "<text x=\"\(f1(xs + 4))\" y=\"\(f1(top + 17))\" fill=\"#111\" font-weight=\"bold\">\(esc(clip(b.label.split(separator: " ").first.map(String.init) ?? "down", Int(w / 7))))</text>" : "")
                    + "</g>")
        }
        drawRoles(lane, top: top)
        drawFaultStrip(lane.name, top: top)
        out.append("</g>")
    }

    /// Role bands (with the term), merging those too narrow to see into one grey band
    /// that says how many changes it holds.
    mutating func drawRoles(_ lane: Lane, top: Double) {
        var pending: (xs: Double, xe: Double, count: Int, first: RoleBand, last: RoleBand)?
        func flushPending(_ me: inout TimelineSVG) {
            guard let q = pending else { return }
            pending = nil
            if q.count == 1 { me.drawRole(q.first, top: top, lane: lane.name); return }
            me.out.append(
                "<g class=\"role churn\"><title>\(esc(lane.name)): \(q.count) role changes \(me.L.seconds(q.first.start))–\(me.L.seconds(q.last.end)), terms \(q.first.term)–\(q.last.term)</title>"
                    + "<rect x=\"\(f1(q.xs))\" y=\"\(f1(top + 4))\" width=\"\(f1(max(1, q.xe - q.xs)))\" height=\"18\" fill=\"\(Palette.role("candidate"))\"/></g>")
        }
        for b in lane.roles {
            let xs = L.x(b.start)
            let xe = L.x(b.end)
            if xe - xs >= 2 {
                flushPending(&self)
                drawRole(b, top: top, lane: lane.name)
                continue
            }
            if let q = pending, xs - q.xe < 1 {
                pending = (q.xs, max(q.xe, xe), q.count + 1, q.first, b)
            } else {
                flushPending(&self)
                pending = (xs, xe, 1, b, b)
            }
        }
        flushPending(&self)
        // The term strip: consecutive bands of one term as one.
        var terms: [RoleBand] = []
        for b in lane.roles {
            if var last = terms.last, last.term == b.term, b.start <= last.end {
                last.end = max(last.end, b.end)
                terms[terms.count - 1] = last
            } else {
                terms.append(b)
            }
        }
        // Terms too narrow to see, side by side, as one grey stretch that says which.
        var narrow: (xs: Double, xe: Double, first: UInt64, last: UInt64)?
        func flushNarrow(_ me: inout TimelineSVG) {
            guard let n = narrow else { return }
            narrow = nil
            me.out.append(
                "<rect class=\"term churn\" x=\"\(f1(n.xs))\" y=\"\(f1(top + 24))\" width=\"\(f1(max(0.5, n.xe - n.xs)))\" height=\"7\" fill=\"#999999\"><title>terms \(n.first)–\(n.last)</title></rect>")
        }
        for t in terms {
            let xs = L.x(t.start)
            let w = max(0.5, L.x(t.end) - xs)
            if w < 2 {
                if let n = narrow, xs - n.xe < 1 {
                    narrow = (n.xs, max(n.xe, xs + w), n.first, t.term)
                } else {
                    flushNarrow(&self)
                    narrow = (xs, xs + w, t.term, t.term)
                }
                continue
            }
            flushNarrow(&self)
            out.append(
                "<rect class=\"term\" data-term=\"\(t.term)\" x=\"\(f1(xs))\" y=\"\(f1(top + 24))\" width=\"\(f1(w))\" height=\"7\" fill=\"\(Palette.terms[Int(t.term % UInt64(Palette.terms.count))])\"><title>term \(t.term)</title></rect>"
                    + (w > 34 ? "<text x=\"\(f1(xs + 2))\" y=\"\(f1(top + 30.5))\" font-size=\"8\" fill=\"#222\">term \(t.term)</text>" : ""))
        }
        flushNarrow(&self)
    }

    mutating func drawRole(_ b: RoleBand, top: Double, lane: String) {
        let xs = L.x(b.start)
        let w = max(0.5, L.x(b.end) - xs)
        let label = Palette.short(b.role) + " t\(b.term)"
        out.append(
            "<g class=\"role\" data-role=\"\(b.role)\" data-term=\"\(b.term)\"><title>\(esc(lane)): \(b.role), term \(b.term), \(L.seconds(b.start))–\(L.seconds(b.end))</title>"
                + "<rect x=\"\(f1(xs))\" y=\"\(f1(top + 4))\" width=\"\(f1(w))\" height=\"18\" fill=\"\(Palette.role(b.role))\"/>"
                + (w > Double(label.count) * 6.5 + 4
                    ? "<text x=\"\(f1(xs + 3))\" y=\"\(f1(top + 17))\" fill=\"\(Palette.roleText(b.role))\">\(esc(label))</text>" : "")
                + "</g>")
    }

    /// Paused and cut off, under the term strip.
    mutating func drawFaultStrip(_ node: String, top: Double) {
        let y = top + 33
        for (kind, colour, bands) in [("paused", Palette.paused, p.faults.paused[node] ?? []), ("cut", Palette.cut, p.faults.cut[node] ?? [])] {
            for b in bands {
                let xs = L.x(b.start)
                let w = max(1, L.x(b.end) - xs)
                let label = kind == "cut" ? "cut off: " + b.label : b.label
                out.append(
                    "<g class=\"fault \(kind)\" data-node=\"\(esc(node))\"><title>\(esc(node)) \(esc(label)) \(L.seconds(b.start))–\(L.seconds(b.end))</title>"
                        + "<rect x=\"\(f1(xs))\" y=\"\(f1(y))\" width=\"\(f1(w))\" height=\"10\" fill=\"\(colour)\"/>"
                        + (w > 40 ? "<text x=\"\(f1(xs + 3))\" y=\"\(f1(y + 8.5))\" font-size=\"9\" fill=\"#fff\">\(esc(clip(label, Int(w / 5.5))))</text>" : "")
                        + "</g>")
            }
        }
    }

    // MARK: Configuration markers and snapshot arrows

    mutating func drawConfigMarkers(_ lanes: [String: Int]) {
        if p.configs.count > TimelineLayout.maxMarks { notes.append("\(p.configs.count - TimelineLayout.maxMarks) later committed config events not drawn") }
        for c in p.configs.prefix(TimelineLayout.maxMarks) {
            guard let k = lanes[c.node] else { continue }
            let x = L.x(c.ts)
            let y = laneTop(k) + 13
            let members = c.members.joined(separator: " ")
            out.append(
                "<path class=\"config-marker\" data-node=\"\(esc(c.node))\" data-index=\"\(c.index)\" data-members=\"\(esc(members))\" data-ts=\"\(Timestamp.rfc3339(unixMicros: c.ts))\" data-x=\"\(f1(x))\" "
                    + "d=\"M\(f1(x)),\(f1(y - 7)) L\(f1(x + 5)),\(f1(y)) L\(f1(x)),\(f1(y + 7)) L\(f1(x - 5)),\(f1(y)) z\" fill=\"\(Palette.config)\" stroke=\"#fff\" stroke-width=\"1\">"
                    + "<title>\(esc(c.node)) committed configuration #\(c.index) at \(L.seconds(c.ts)): members \(esc(members))\(c.learners.isEmpty ? "" : "; learners " + esc(c.learners.joined(separator: " ")))</title></path>")
        }
    }

    mutating func drawSnapshots(_ lanes: [String: Int]) {
        for t in p.snapshotsTaken.prefix(TimelineLayout.maxMarks) {
            guard let k = lanes[t.node] else { continue }
            let x = L.x(t.ts)
            out.append(
                "<rect class=\"snapshot-taken\" data-node=\"\(esc(t.node))\" x=\"\(f1(x - 3))\" y=\"\(f1(laneTop(k) + 1))\" width=\"6\" height=\"6\" fill=\"\(Palette.snapshot)\">"
                    + "<title>\(esc(t.node)) took a snapshot at index \(t.index), \(sizeText(t.bytes)), at \(L.seconds(t.ts))</title></rect>")
        }
        for s in p.snapshotsInstalled.prefix(TimelineLayout.maxMarks) {
            guard let k = lanes[s.node] else { continue }
            let x = L.x(s.ts)
            out.append(
                "<circle class=\"snapshot-installed\" data-node=\"\(esc(s.node))\" cx=\"\(f1(x))\" cy=\"\(f1(laneTop(k) + 13))\" r=\"4.5\" fill=\"#fff\" stroke=\"\(Palette.snapshot)\" stroke-width=\"2.5\">"
                    + "<title>\(esc(s.node)) installed a snapshot from \(esc(s.peer)) at index \(s.index), \(sizeText(s.bytes)), \(s.ms)ms, at \(L.seconds(s.ts))</title></circle>")
        }
        if p.snapshotsSent.count > TimelineLayout.maxMarks { notes.append("\(p.snapshotsSent.count - TimelineLayout.maxMarks) later snapshot transfers not drawn") }
        for s in p.snapshotsSent.prefix(TimelineLayout.maxMarks) {
            guard let from = lanes[s.node] else { continue }
            let xe = L.x(s.ts)
            let xs = min(xe - 6, L.x(s.ts - Int64(s.ms) * 1000))
            let y1 = laneTop(from) + 13
            let y2 = lanes[s.peer].map { laneTop($0) + 13 } ?? lanesBottom
            let dy = y2 > y1 ? -7.0 : 7.0
            let label = "#\(s.index) \(sizeText(s.bytes)) \(s.ms)ms"
            out.append(
                "<g class=\"snapshot-arrow\" data-from=\"\(esc(s.node))\" data-to=\"\(esc(s.peer))\" data-index=\"\(s.index)\" data-bytes=\"\(s.bytes)\" data-ms=\"\(s.ms)\" data-ts=\"\(Timestamp.rfc3339(unixMicros: s.ts))\" data-x1=\"\(f1(xs))\" data-x2=\"\(f1(xe))\">"
                    + "<title>snapshot \(esc(s.node)) → \(esc(s.peer)): index \(s.index), \(sizeText(s.bytes)), \(s.ms)ms, done at \(L.seconds(s.ts))</title>"
                    + "<line x1=\"\(f1(xs))\" y1=\"\(f1(y1))\" x2=\"\(f1(xe))\" y2=\"\(f1(y2 + dy))\" stroke=\"\(Palette.snapshot)\" stroke-width=\"2.5\" marker-end=\"url(#arrowhead)\"/>"
                    + "<text x=\"\(f1(xe + 4))\" y=\"\(f1((y1 + y2) / 2 + 4))\" font-size=\"10\" fill=\"\(Palette.snapshot)\" font-weight=\"bold\">\(esc(label))</text></g>")
        }
    }

    // MARK: Client operations

    /// Each operation as an interval coloured by its outcome, packed into rows; a long run's
    /// as a histogram of outcomes over time, its unknown operations still one by one.
    /// Returns the y under the area.
    mutating func drawOperations() -> Double {
        let ops = p.operations
        out.append("<text x=\"6\" y=\"\(f1(clientsTop + 10))\" fill=\"#333\" font-weight=\"bold\">clients</text>")
        out.append("<text x=\"6\" y=\"\(f1(clientsTop + 22))\" fill=\"#777\" font-size=\"9\">\(ops.count) operations</text>")
        guard !ops.isEmpty else { return clientsTop + 26 }
        out.append("<g class=\"operations\">")
        defer { out.append("</g>") }
        if ops.count <= TimelineLayout.maxDrawnOperations {
            var rowEnds = [Double](repeating: -1, count: maxClientRows)
            var overflow = 0
            var used = 0
            for op in ops.sorted(by: { ($0.start, $0.client) < ($1.start, $1.client) }) {
                let xs = L.x(op.start)
                let xe = max(xs + 1.5, L.x(op.end ?? p.t1))
                guard let row = rowEnds.firstIndex(where: { $0 + 0.5 < xs }) else {
                    overflow += 1
                    continue
                }
                rowEnds[row] = xe
                used = max(used, row + 1)
                out.append(
                    "<rect class=\"op\" data-outcome=\"\(op.outcome)\" x=\"\(f1(xs))\" y=\"\(f1(clientsTop + Double(row) * clientRowHeight))\" width=\"\(f1(xe - xs))\" height=\"\(f1(clientRowHeight - 1))\" fill=\"\(Palette.outcome(op.outcome, op: op.op))\">"
                        + "<title>\(esc(op.client)) \(esc(op.op)) \(esc(clip(op.key, 40))): \(op.outcome) \(L.seconds(op.start))–\(op.end.map(L.seconds) ?? "end")</title></rect>")
            }
            if overflow > 0 { notes.append("\(overflow) client operations overlapping \(maxClientRows) others not drawn") }
            return clientsTop + max(26, Double(used) * clientRowHeight) + 4
        }
        // A histogram: per 4 px, how many operations started there, by outcome.
        let buckets = Int((TimelineLayout.x1 - TimelineLayout.x0) / 4)
        var counts = [[Int]](repeating: [0, 0, 0, 0], count: buckets)
        func bucket(_ t: Int64) -> Int { min(buckets - 1, max(0, Int((L.x(t) - TimelineLayout.x0) / 4))) }
        for op in ops {
            let kind = op.outcome == "ok" ? (op.op == "get" ? 1 : 0) : op.outcome == "fail" ? 2 : 3
            counts[bucket(op.start)][kind] += 1
        }
        let peak = max(1, counts.map { $0.reduce(0, +) }.max() ?? 1)
        let height = 70.0
        for (b, c) in counts.enumerated() where c.reduce(0, +) > 0 {
            var y = clientsTop + height
            for (kind, n) in c.enumerated() where n > 0 {
                let h = height * Double(n) / Double(peak)
                y -= h
                let colour = [Palette.outcome("ok", op: "put"), Palette.outcome("ok", op: "get"), Palette.outcome("fail", op: ""), Palette.outcome("unknown", op: "")][kind]
                out.append("<rect class=\"op-bucket\" x=\"\(f1(TimelineLayout.x0 + Double(b) * 4))\" y=\"\(f1(y))\" width=\"3.5\" height=\"\(f1(h))\" fill=\"\(colour)\"/>")
            }
        }
        out.append("<text x=\"\(f1(TimelineLayout.x1))\" y=\"\(f1(clientsTop + 9))\" text-anchor=\"end\" fill=\"#777\" font-size=\"9\">at most \(peak) operations started in \(f1(4 / (TimelineLayout.x1 - TimelineLayout.x0) * Double(p.t1 - p.t0) / 1000))ms</text>")
        notes.append("\(ops.count) client operations, drawn as a histogram of when they started (by outcome); unknown ones also one by one")
        let unknownRow = clientsTop + height + 3
        for op in ops where op.outcome == "unknown" {
            let xs = L.x(op.start)
            let xe = max(xs + 1.5, L.x(op.end ?? p.t1))
            out.append("<rect class=\"op\" data-outcome=\"unknown\" x=\"\(f1(xs))\" y=\"\(f1(unknownRow))\" width=\"\(f1(xe - xs))\" height=\"4\" fill=\"\(Palette.outcome("unknown", op: ""))\"/>")
        }
        return unknownRow + 8
    }

    // MARK: The first error

    mutating func drawFirstError(bottom: Double) {
        guard let e = p.firstError else { return }
        let x = L.x(e.ts)
        let ts = Timestamp.rfc3339(unixMicros: e.ts)
        let text = clip("first error at \(L.seconds(e.ts)) — \(e.check): \(e.detail)", 150)
        let w = Double(text.count) * 6.3 + 12
        let boxX = x + w + 4 <= TimelineLayout.width ? x - 2 : max(0, x - w + 2)
        out.append(
            "<g class=\"first-error-label\"><rect x=\"\(f1(boxX))\" y=\"\(f1(errorRow + 1))\" width=\"\(f1(w))\" height=\"18\" rx=\"3\" fill=\"\(Palette.error)\"/>"
                + "<text x=\"\(f1(boxX + 6))\" y=\"\(f1(errorRow + 14))\" fill=\"#fff\" font-weight=\"bold\">\(esc(text))</text></g>")
        out.append(
            "<rect id=\"first-error\" class=\"first-error\" data-ts=\"\(ts)\" data-x=\"\(f1(x))\" data-check=\"\(esc(e.check))\" data-source=\"\(esc(e.source))\" "
                + "x=\"\(f1(x - 2))\" y=\"\(f1(errorRow + 1))\" width=\"4\" height=\"\(f1(bottom - errorRow - 1))\" fill=\"\(Palette.error)\">"
                + "<title>\(esc("first error at \(L.seconds(e.ts)) (\(ts), from the \(e.source)): \(e.check): \(e.detail)"))</title></rect>")
    }
}
