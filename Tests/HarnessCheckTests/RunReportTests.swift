import CZlib
import Foundation
import HarnessCheck
import RaftNodeKit
import RaftNodeWire
import Testing

/// report.html (`RunReport`): what the page holds, read from fixtures/runs/report-failed (a
/// simulator run: four nodes, a follower killed and caught up by a snapshot, a node added,
/// one cut off, one paused, client load, and a failed last step), and what a real browser
/// shows of it.
@Suite struct RunReportTests {
    let run = fixture("runs/report-failed")

    // MARK: The page

    @Test func thePageHasOneLanePerNodeDirectory() throws {
        let html = RunReport.html(runDirectory: run)
        #expect(lanes(html) == nodeNames(run))
        #expect(nodeNames(run) == ["n1", "n2", "n3", "n4"])
    }

    @Test func thePageHasOneMarkerPerCommittedConfigEvent() throws {
        let html = RunReport.html(runDirectory: run)
        let committed = events(run).filter { if case .config(_, _, _, true) = $0.event { true } else { false } }
        #expect(committed.count > nodeNames(run).count, "a configuration beyond the first is committed")
        #expect(count(html, "class=\"config-marker\"") == committed.count)
        // Each on its node's lane with its members.
        for e in committed {
            guard case let .config(index, members, _, _) = e.event else { continue }
            #expect(html.contains("class=\"config-marker\" data-node=\"\(e.node)\" data-index=\"\(index)\" data-members=\"\(members.joined(separator: " "))\" data-ts=\"\(e.ts)\""))
        }
    }

    @Test func thePageHasOneArrowPerSnapshotSent() throws {
        let html = RunReport.html(runDirectory: run)
        let sent = events(run).compactMap { e -> (String, String, UInt64, UInt64)? in
            if case let .snapshotSent(to, index, _, bytes, _) = e.event { (e.node, to, index, bytes) } else { nil }
        }
        #expect(!sent.isEmpty)
        #expect(count(html, "class=\"snapshot-arrow\"") == sent.count)
        for (from, to, index, bytes) in sent {
            #expect(html.contains("class=\"snapshot-arrow\" data-from=\"\(from)\" data-to=\"\(to)\" data-index=\"\(index)\" data-bytes=\"\(bytes)\""))
        }
    }

    @Test func theFirstErrorIsTheFailedStepMarkedAndLinkedFromTheTop() throws {
        let html = RunReport.html(runDirectory: run)
        // `  1.490s  line 27  expect leader $lagging FAILED: ...` after `started 2026-01-01T00:00:00.000000Z`.
        #expect(count(html, "id=\"first-error\"") == 1)
        #expect(attribute("data-ts", of: "id=\"first-error\"", in: html) == "2026-01-01T00:00:01.490000Z")
        #expect(attribute("data-source", of: "id=\"first-error\"", in: html) == "failed step")
        let link = try #require(html.range(of: "<a id=\"jump-to-first-error\" href=\"#first-error\">jump to the first error</a>"))
        #expect(link.lowerBound < html.range(of: "<svg id=\"timeline\"")!.lowerBound, "the link is above the timeline")
        #expect(html.contains("the leader is n1, not n2"), "the failed step's evidence is in the header")
    }

    @Test func aChecksTimeOfViolationComesFirstWhenEarlier() throws {
        let dir = try copyOfFixture()
        defer { remove(dir) }
        // As the harness will write it: the check's first violation, `at`.
        var report = try String(contentsOfFile: dir + "/report.json", encoding: .utf8)
        report = report.replacingOccurrences(
            of: #"{"name":"linearizable","passed":true,"evidence":[]"#,
            with: #"{"name":"linearizable","passed":false,"at":"2026-01-01T00:00:01.250000Z","evidence":["key k1: planted"]"#)
        try report.write(toFile: dir + "/report.json", atomically: true, encoding: .utf8)
        let html = RunReport.html(runDirectory: dir)
        #expect(attribute("data-ts", of: "id=\"first-error\"", in: html) == "2026-01-01T00:00:01.250000Z")
        #expect(attribute("data-check", of: "id=\"first-error\"", in: html) == "linearizable")
        #expect(html.contains("<b>linearizable</b>: key k1: planted"))
    }

    @Test func faultsComeFromTheStepsWithTheNodesTheyChose() {
        let html = RunReport.html(runDirectory: run)
        // kill follower as lagging ok (n2); isolate n3; pause n4.
        #expect(html.contains("class=\"fault down\" data-node=\"n2\""))
        #expect(html.contains("class=\"fault cut\" data-node=\"n3\""))
        #expect(html.contains("class=\"fault paused\" data-node=\"n4\""))
        #expect(count(html, "class=\"fault down\"") == 1, "the stops at the end of the run are not faults")
    }

    @Test func theSameFilesGiveTheSameBytesAndWriteRenamesIntoPlace() throws {
        let dir = try copyOfFixture()
        defer { remove(dir) }
        let html = RunReport.html(runDirectory: dir)
        #expect(RunReport.html(runDirectory: dir) == html)
        let path = try RunReport.write(runDirectory: dir)
        #expect(path == dir + "/report.html")
        #expect(bytes(path) == Array(html.utf8))
        #expect(files(under: dir).filter { $0.contains("tmp") }.isEmpty, "no temporary file left")
        #expect(!html.contains("<link") && !html.contains("src=") && !html.contains("url(http") && !html.contains("href=\"http"), "self-contained: nothing fetched")
    }

    @Test func anOlderRunWithoutReportJsonIsCheckedNow() throws {
        // fixtures/runs/two-leaders: the synthetic harness.log format, and no report.json here.
        let dir = makeTempDir("report-old")
        defer { remove(dir) }
        try FileManager.default.removeItem(atPath: dir)
        try FileManager.default.copyItem(atPath: fixture("runs/two-leaders"), toPath: dir)
        try FileManager.default.removeItem(atPath: dir + "/report.json")
        let html = RunReport.html(runDirectory: dir)
        #expect(lanes(html) == ["n1", "n2", "n3"])
        #expect(count(html, "<g class=\"step\"") == 8, "the eight step lines of the older format (the converged line is not one)")
        #expect(html.contains("<b>one-leader-per-term</b>: term 1 had 2 leaders"))
        #expect(count(html, "id=\"first-error\"") == 1)
        #expect(attribute("data-source", of: "id=\"first-error\"", in: html) == "end of run")
    }

    @Test func aLongRunIsSummarisedToAFewMiB() throws {
        let dir = makeTempDir("report-long")
        defer { remove(dir) }
        try writeLongRun(dir, operations: 60_000, roleChanges: 20_000)
        let clock = ContinuousClock()
        var html = ""
        let took = clock.measure { html = RunReport.html(runDirectory: dir) }
        #expect(html.utf8.count < 1 << 20, "\(html.utf8.count) bytes")
        print("a long run's report.html: \(html.utf8.count) bytes in \(took)")
        #expect(took < .seconds(20), "\(took)")
        #expect(html.contains("class=\"op-bucket\""), "operations as a histogram")
        #expect(html.contains("class=\"role churn\""), "narrow role bands merged")
        #expect(lanes(html) == ["n1", "n2", "n3"])
        let ok = (0..<60_000).filter { $0 % 97 != 0 && $0 % 31 != 0 }.count
        #expect(html.contains("<tr data-op=\"put\"><td>write (put)</td><td>\(ok)</td><td>3.0ms</td>"), "latency of every ok put")
        // Throughput in 10 s buckets: the first holds the ok puts of the first thousand.
        let first = (0..<1000).filter { $0 % 97 != 0 && $0 % 31 != 0 }.count
        #expect(html.contains("ok operations per 10s") && html.contains("<title>0.000s: \(first)</title>"))
    }

    // MARK: In a real browser

    /// Chromium renders the fixture's report to its DOM and to a PNG: one lane per node, one
    /// marker per committed config event, one arrow per snapshot-sent, and the first error's
    /// red bar on the first screen at the x of its time.
    @Test func chromiumShowsTheFirstErrorOnTheFirstScreenAtItsTime() throws {
        guard let chromium = findChromium() else {
            Issue.record("chromium is not installed: apt-get install -y chromium (Debian; .ci/run installs it); this test needs a real browser")
            return
        }
        let dir = try copyOfFixture()
        defer { remove(dir) }
        let page = try RunReport.write(runDirectory: dir)
        let (width, height) = (1400, 1000)
        let common = [
            "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1", "--no-first-run",
            "--window-size=\(width),\(height)",
        ]
        let url = URL(fileURLWithPath: page).absoluteString
        let png = dir + "/shot.png"
        try runChromium(chromium, common + ["--user-data-dir=\(dir)/profile-1", "--screenshot=\(png)", url], stdout: dir + "/screenshot.out")
        try runChromium(chromium, common + ["--user-data-dir=\(dir)/profile-2", "--dump-dom", url], stdout: dir + "/dom.html")
        let dom = try String(contentsOfFile: dir + "/dom.html", encoding: .utf8)

        // The DOM: lanes, markers, arrows.
        #expect(lanes(dom) == nodeNames(run))
        let all = events(run)
        #expect(count(dom, "class=\"config-marker\"") == all.filter { if case .config(_, _, _, true) = $0.event { true } else { false } }.count)
        #expect(count(dom, "class=\"snapshot-arrow\"") == all.filter { if case .snapshotSent = $0.event { true } else { false } }.count)

        // The first error: at the x of its time on the axis, inside the first screen.
        let t0 = try #require(attribute("data-t0", of: "id=\"timeline\"", in: dom).flatMap { Double($0) })
        let t1 = try #require(attribute("data-t1", of: "id=\"timeline\"", in: dom).flatMap { Double($0) })
        let x0 = try #require(attribute("data-x0", of: "id=\"timeline\"", in: dom).flatMap { Double($0) })
        let x1 = try #require(attribute("data-x1", of: "id=\"timeline\"", in: dom).flatMap { Double($0) })
        let ts = try #require(attribute("data-ts", of: "id=\"first-error\"", in: dom).flatMap(Timestamp.unixMicros(rfc3339:)))
        let markX = try #require(attribute("data-x", of: "id=\"first-error\"", in: dom).flatMap { Double($0) })
        let expectedX = x0 + (Double(ts) - t0) / (t1 - t0) * (x1 - x0)
        #expect(abs(markX - expectedX) < 0.1, "the mark's x \(markX), its time's x \(expectedX)")
        let svg = try #require(rect(attribute("data-timeline-rect", of: "<body", in: dom)), "the page's script records the timeline's place")
        let mark = try #require(rect(attribute("data-first-error-rect", of: "<body", in: dom)), "the page's script records the mark's place")
        let centreX = mark.x + mark.w / 2
        #expect(abs(centreX - (svg.x + expectedX)) < 1.5, "on screen at x \(centreX), the axis puts its time at \(svg.x + expectedX)")
        #expect(mark.y >= 0 && mark.y < Double(height) && mark.h > 50, "inside the first screen: \(mark)")

        // The picture: the mark's colour where the DOM says it is, and not beside it.
        let image = try decodePNG(bytes(png))
        #expect(image.width == width && image.height == height)
        let py = Int(min(mark.y + mark.h * 0.6, Double(height - 5)))
        let px = Int(centreX.rounded(.down))
        let red = (r: 0xe0, g: 0x00, b: 0x1b)
        func isRed(_ x: Int, _ y: Int) -> Bool {
            let p = image.pixel(x, y)
            return abs(p.r - red.r) <= 12 && abs(p.g - red.g) <= 12 && abs(p.b - red.b) <= 12
        }
        #expect(isRed(px, py), "pixel (\(px), \(py)) is \(image.pixel(px, py)), the mark is #e0001b")
        #expect(isRed(px, Int(mark.y + 30)), "near its top too")
        #expect(!isRed(px - 10, py) && !isRed(px + 10, py), "a bar, not a red area")
    }

    // MARK: Helpers

    func copyOfFixture() throws -> String {
        let dir = makeTempDir("report")
        try FileManager.default.removeItem(atPath: dir)
        try FileManager.default.copyItem(atPath: run, toPath: dir)
        return dir
    }

    func nodeNames(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/nodes")) ?? []).filter { isDir(dir + "/nodes/" + $0) }.sorted()
    }

    func events(_ dir: String) -> [NodeEventLine] {
        nodeNames(dir).flatMap { n in
            ((try? String(contentsOfFile: "\(dir)/nodes/\(n)/events.jsonl", encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
                NodeEventLine(parsing: String($0))
            }
        }
    }

    func count(_ s: String, _ needle: String) -> Int { s.components(separatedBy: needle).count - 1 }

    /// The `data-lane` of each lane, in page order.
    func lanes(_ html: String) -> [String] {
        html.components(separatedBy: "<g class=\"lane\" data-lane=\"").dropFirst().map { String($0.prefix { $0 != "\"" }) }
    }

    /// The value of `name` in the first tag that contains `marker`.
    func attribute(_ name: String, of marker: String, in html: String) -> String? {
        guard let at = html.range(of: marker) else { return nil }
        let tagStart = html[..<at.lowerBound].range(of: "<", options: .backwards)?.lowerBound ?? at.lowerBound
        let tagEnd = html[at.upperBound...].firstIndex(of: ">") ?? html.endIndex
        let tag = html[tagStart..<tagEnd]
        guard let a = tag.range(of: " " + name + "=\"") else { return nil }
        return String(tag[a.upperBound...].prefix { $0 != "\"" })
    }

    func rect(_ s: String?) -> (x: Double, y: Double, w: Double, h: Double)? {
        guard let parts = s?.split(separator: " ").compactMap({ Double($0) }), parts.count == 4 else { return nil }
        return (parts[0], parts[1], parts[2], parts[3])
    }

    func findChromium() -> String? { NodeBinaries.onPath("chromium", alsoIn: ["/usr/bin"]) }

    /// Runs chromium with its output in `stdout`; stderr (its noise) dropped; killed after
    /// 60 seconds.
    func runChromium(_ binary: String, _ arguments: [String], stdout: String) throws {
        guard FileManager.default.createFile(atPath: stdout, contents: nil) else { throw PNGError(description: "cannot create \(stdout)") }
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: stdout))
        defer { try? out.close() }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(60)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            Issue.record("chromium \(arguments.last ?? "") did not finish within 60 s")
            return
        }
        #expect(p.terminationStatus == 0, "chromium exited \(p.terminationStatus)")
    }

    /// A run of three nodes with many role changes and many client operations.
    func writeLongRun(_ dir: String, operations: Int, roleChanges: Int) throws {
        let t0 = Timestamp.simulationEpochMicros
        func ts(_ us: Int64) -> String { Timestamp.rfc3339(unixMicros: t0 + us) }
        try "scenario long file long.scenario seed 9 world sim started \(ts(0))\n   0.001s  line 1   cluster n1 n2 n3 ok (n1 n2 n3) [1ms]\n   600.000s  line 2   load 8 clients ok (8 clients) [599999ms]\nverdict pass in 600000ms\n"
            .write(toFile: dir + "/harness.log", atomically: true, encoding: .utf8)
        var history = ""
        history.reserveCapacity(operations * 200)
        for k in 0..<operations {
            let start = Int64(k) * 10_000
            let c = "c\(k % 8)"
            history += #"{"type":"invoke","op":"put","client":"\#(c)","key":"k\#(k % 16)","value":"v\#(k)","ts":"\#(ts(start))"}"# + "\n"
            let type = k % 97 == 0 ? "unknown" : k % 31 == 0 ? "fail" : "ok"
            let tail = type == "ok" ? #","index":\#(k + 1),"term":1"# : ""
            history += #"{"type":"\#(type)","op":"put","client":"\#(c)","key":"k\#(k % 16)","value":"v\#(k)"\#(tail),"ts":"\#(ts(start + 3_000))"}"# + "\n"
        }
        try history.write(toFile: dir + "/history.jsonl", atomically: true, encoding: .utf8)
        for (k, n) in ["n1", "n2", "n3"].enumerated() {
            try FileManager.default.createDirectory(atPath: "\(dir)/nodes/\(n)", withIntermediateDirectories: true)
            var lines = [NodeEvent.start(lastIndex: 0, commitIndex: 0, snapshotIndex: 0).line(ts: ts(0), node: n, term: 0)]
            for i in 0..<roleChanges {
                let role = (i + k) % 3 == 0 ? "leader" : (i % 2 == 0 ? "candidate" : "follower")
                lines.append(NodeEvent.role(role, preVote: false).line(ts: ts(Int64(i) * 30_000 + 1), node: n, term: UInt64(i / 3 + 1)))
            }
            try (lines.joined(separator: "\n") + "\n").write(toFile: "\(dir)/nodes/\(n)/events.jsonl", atomically: true, encoding: .utf8)
        }
        try #"{"scenario":"long","seed":9,"world":"sim","verdict":"pass","checks":[],"ms":600000}"#.write(
            toFile: dir + "/report.json", atomically: true, encoding: .utf8)
    }
}

// MARK: A minimal PNG decoder (8-bit RGB or RGBA, not interlaced), inflating with zlib

struct DecodedImage {
    var width: Int
    var height: Int
    var channels: Int
    var pixels: [UInt8]

    func pixel(_ x: Int, _ y: Int) -> (r: Int, g: Int, b: Int) {
        guard x >= 0, y >= 0, x < width, y < height else { return (-1, -1, -1) }
        let i = (y * width + x) * channels
        return (Int(pixels[i]), Int(pixels[i + 1]), Int(pixels[i + 2]))
    }
}

struct PNGError: Error, CustomStringConvertible {
    var description: String
}

func decodePNG(_ b: [UInt8]) throws -> DecodedImage {
    guard b.count > 8, Array(b[0..<8]) == [137, 80, 78, 71, 13, 10, 26, 10] else { throw PNGError(description: "not a PNG") }
    func u32(_ i: Int) -> Int { Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3]) }
    var i = 8
    var width = 0
    var height = 0
    var channels = 0
    var idat: [UInt8] = []
    while i + 8 <= b.count {
        let length = u32(i)
        let type = String(decoding: b[(i + 4)..<(i + 8)], as: UTF8.self)
        let data = i + 8
        guard data + length + 4 <= b.count else { throw PNGError(description: "chunk \(type) runs past the end") }
        switch type {
        case "IHDR":
            width = u32(data)
            height = u32(data + 4)
            let depth = b[data + 8]
            let colour = b[data + 9]
            guard depth == 8, colour == 2 || colour == 6, b[data + 12] == 0 else {
                throw PNGError(description: "depth \(depth) colour type \(colour) interlace \(b[data + 12]): this decoder reads 8-bit RGB or RGBA")
            }
            channels = colour == 6 ? 4 : 3
        case "IDAT":
            idat += b[data..<(data + length)]
        default:
            break
        }
        i = data + length + 4
        if type == "IEND" { break }
    }
    guard width > 0, height > 0 else { throw PNGError(description: "no IHDR") }
    let stride = width * channels
    var raw = [UInt8](repeating: 0, count: height * (stride + 1))
    var rawLength = uLongf(raw.count)
    let status = raw.withUnsafeMutableBytes { out in
        idat.withUnsafeBytes { input in
            uncompress(out.baseAddress!.assumingMemoryBound(to: Bytef.self), &rawLength, input.baseAddress!.assumingMemoryBound(to: Bytef.self), uLong(input.count))
        }
    }
    guard status == Z_OK, Int(rawLength) == raw.count else { throw PNGError(description: "zlib status \(status), \(rawLength) of \(raw.count) bytes") }
    // Undo each scanline's filter.
    var pixels = [UInt8](repeating: 0, count: height * stride)
    for y in 0..<height {
        let filter = raw[y * (stride + 1)]
        let src = y * (stride + 1) + 1
        let dst = y * stride
        for x in 0..<stride {
            let a = x >= channels ? Int(pixels[dst + x - channels]) : 0
            let up = y > 0 ? Int(pixels[dst - stride + x]) : 0
            let c = x >= channels && y > 0 ? Int(pixels[dst - stride + x - channels]) : 0
            let v = Int(raw[src + x])
            let out: Int
            switch filter {
            case 0: out = v
            case 1: out = v + a
            case 2: out = v + up
            case 3: out = v + (a + up) / 2
            case 4:
                let p = a + up - c
                let pa = abs(p - a)
                let pb = abs(p - up)
                let pc = abs(p - c)
                out = v + (pa <= pb && pa <= pc ? a : pb <= pc ? up : c)
            default: throw PNGError(description: "filter \(filter) on line \(y)")
            }
            pixels[dst + x] = UInt8(truncatingIfNeeded: out)
        }
    }
    return DecodedImage(width: width, height: height, channels: channels, pixels: pixels)
}
