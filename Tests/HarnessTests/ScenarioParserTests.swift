import Harness
import RaftNodeMachine
import RaftNodeWire
import Testing

@Suite("Scenario language")
struct ScenarioParserTests {
    func parse(_ text: String) throws -> Scenario {
        try ScenarioParser.parse(text, file: "t.scenario")
    }

    func error(_ text: String) -> ScenarioError? {
        do {
            _ = try ScenarioParser.parse(text, file: "t.scenario")
            return nil
        } catch {
            return error
        }
    }

    @Test("Every required step parses, with comments and blank lines ignored")
    func everyRequiredStepParses() throws {
        let s = try parse("""
            # a comment
            set election-timeout 150ms
            set snapshot-chunk 64KiB
            set value-size 100
            set snapshot-threshold 50
            cluster n1 n2 n3

            await leader within 5s as first   # trailing comment
            kill leader as old
            start $old
            stop n1
            pause follower as f
            resume $f
            wipe n1
            isolate n2
            partition $old $f | n3
            heal
            network loss 10% delay 5ms..50ms
            write 100
            submit 20 to leader as s1
            await committed s1 within 10s
            await not-committed s1 for 1s
            snapshot n1
            add n4
            remove n4
            sleep 150ms
            await leader among n1 n2 within 2s
            expect leader $first
            await no-leader among n1 n2 for 1s
            await converged within 30s
            expect n4 installed-snapshot
            expect leader sent-snapshot
            expect n3 no-snapshot
            repeat 3
              kill follower as v
              start $v
            end
            check
            """)
        #expect(s.name == "t")
        #expect(s.nodes == ["n1", "n2", "n3", "n4"])
        #expect(s.steps.count == 33)
        #expect(s.steps[0].step == .set(key: "election-timeout", value: "150ms"))
        #expect(s.steps[5].step == .awaitLeader(among: [], withinMs: 5000, binding: "first"))
        #expect(s.steps[6].step == .kill(NodeRef(selector: .leader, binding: "old")))
        #expect(s.steps[7].step == .start(NodeRef(selector: .variable("old"), binding: nil)))
        #expect(s.steps[13].step == .partition([[NodeRef(selector: .variable("old")), NodeRef(selector: .variable("f"))], [NodeRef(selector: .named("n3"))]]))
        #expect(s.steps[15].step == .networkLoss(percent: 10, delayMs: 5...50))
        #expect(s.steps[17].step == .submit(count: 20, to: NodeRef(selector: .leader), batch: "s1"))
        #expect(s.steps[29].step == .expectSnapshot(NodeRef(selector: .leader), .sent))
        #expect(s.steps[29].line == 32)
        guard case let .repeat(3, body) = s.steps[31].step else {
            Issue.record("expected a repeat, got \(s.steps[31].step)")
            return
        }
        #expect(body.count == 2)
    }

    @Test("Errors name the file, the line and what is wrong, before anything runs", arguments: [
        ("cluster n1 n2\nfly n1", 2, "unknown step 'fly'"),
        ("cluster n1\nsleep 10 seconds", 2, "is not a duration"),
        ("cluster n1\nsleep 10x", 2, "'10x' is not a duration"),
        ("cluster n1\nkill n9", 2, "unknown node 'n9'"),
        ("cluster n1\nstart $x", 2, "'$x' is not bound"),
        ("cluster n1\nset colour blue", 2, "unknown setting 'colour'"),
        ("cluster n1\nset heartbeat fast", 2, "is not a duration"),
        ("cluster n1\nrepeat 2\nkill n1", 3, "'repeat' without 'end'"),
        ("cluster n1\nend", 2, "'end' without 'repeat'"),
        ("cluster n1\nawait committed b within 1s", 2, "no batch 'b'"),
        ("cluster N1", 1, "is not a node name"),
        ("cluster n1\nwrite -3", 2, "not a positive whole number"),
        ("cluster n1\nnetwork loss 150% ", 2, "is not a percentage"),
        ("cluster n1\nkill n1 now", 2, "unexpected 'now'"),
        ("cluster n1\nexpect n1 fancy", 2, "expected installed-snapshot"),
    ])
    func errorsNameFileAndLine(text: String, line: Int, message: String) throws {
        let e = try #require(error(text))
        #expect(e.file == "t.scenario")
        #expect(e.line == line)
        #expect(e.message.contains(message), "\(e)")
        #expect(e.description.hasPrefix("t.scenario:\(line): "))
    }

    @Test("add takes a variable bound to a removed node; await snapshotting names a node")
    func addAgainAndAwaitSnapshotting() throws {
        let s = try parse("cluster n1 n2 n3\nkill follower as f\nwipe $f\nremove $f\nadd $f\nawait snapshotting $f within 5s")
        #expect(s.steps[4].step == .add(NodeRef(selector: .variable("f"))))
        #expect(s.steps[5].step == .awaitSnapshotting(NodeRef(selector: .variable("f")), withinMs: 5000))
    }

    @Test("A node declared by add may be named before its add")
    func addDeclaresNodes() throws {
        let s = try parse("cluster n1 n2 n3\nrepeat 2\nstart n4\nend\nadd n4")
        #expect(s.nodes.contains("n4"))
    }

    @Test("Durations and sizes")
    func durationsAndSizes() {
        #expect(parseDuration("150ms") == 150)
        #expect(parseDuration("2s") == 2000)
        #expect(parseDuration("1m") == 60_000)
        #expect(parseDuration("1.5s") == nil)
        #expect(parseDuration("ms") == nil)
        #expect(parseSize("64KiB") == 65536)
        #expect(parseSize("1MiB") == 1 << 20)
        #expect(parseSize("100") == 100)
        #expect(parseSize("x") == nil)
    }

    @Test("Wherever a step takes a NODE it takes leader, follower and `as X`, groups and lists included")
    func selectorsAndBindingsEverywhere() throws {
        let s = try parse("""
            cluster n1 n2 n3 n4 n5
            await leader within 5s as l
            partition $l follower as f
            start $f
            partition leader as a follower as b | n5
            start $a
            start $b
            await leader among follower as c n1 within 5s as d
            start $c
            start $d
            await no-leader among leader as e $l for 1s
            start $e
            await snapshotting follower as g within 5s
            start $g
            expect leader follower as h
            start $h
            expect leader as i installed-snapshot
            expect follower as j no-snapshot
            start $i
            start $j
            add n6 as k
            start $k
            """)
        let f = NodeRef(selector: .follower, binding: "f")
        #expect(s.steps[2].step == .partition([[NodeRef(selector: .variable("l")), f]]))
        #expect(s.steps[4].step == .partition([[NodeRef(selector: .leader, binding: "a"), NodeRef(selector: .follower, binding: "b")], [NodeRef(selector: .named("n5"))]]))
        #expect(s.steps[7].step == .awaitLeader(among: [NodeRef(selector: .follower, binding: "c"), NodeRef(selector: .named("n1"))], withinMs: 5000, binding: "d"))
        #expect(s.steps[10].step == .awaitNoLeader(among: [NodeRef(selector: .leader, binding: "e"), NodeRef(selector: .variable("l"))], forMs: 1000))
        #expect(s.steps[12].step == .awaitSnapshotting(NodeRef(selector: .follower, binding: "g"), withinMs: 5000))
        #expect(s.steps[14].step == .expectLeader(NodeRef(selector: .follower, binding: "h")))
        #expect(s.steps[16].step == .expectSnapshot(NodeRef(selector: .leader, binding: "i"), .installed))
        #expect(s.steps[17].step == .expectSnapshot(NodeRef(selector: .follower, binding: "j"), .none))
        #expect(s.steps[20].step == .add(NodeRef(selector: .named("n6"), binding: "k")))
        // In submit, `as` names the batch.
        let t = try parse("cluster n1 n2 n3\nsubmit 3 to leader as s\nawait committed s within 5s")
        #expect(t.steps[1].step == .submit(count: 3, to: NodeRef(selector: .leader), batch: "s"))
        #expect(error("cluster n1 n2\nexpect leader")?.message.contains("installed-snapshot, sent-snapshot or no-snapshot") == true)
        #expect(error("cluster n1 n2\nexpect n1 leader")?.message.contains("expected installed-snapshot") == true)
    }

    @Test("load takes clients, a share of reads and a number of keys; load stop ends it; installed-snapshot takes a bound")
    func loadAndBounds() throws {
        let s = try parse("cluster n1 n2 n3\nload 4 clients\nload stop\nload 2 clients reads 30% keys 8\nexpect n1 installed-snapshot at most 2")
        #expect(s.steps[1].step == .load(clients: 4, readsPercent: 0, keys: 16))
        #expect(s.steps[2].step == .loadStop)
        #expect(s.steps[3].step == .load(clients: 2, readsPercent: 30, keys: 8))
        #expect(s.steps[4].step == .expectSnapshot(NodeRef(selector: .named("n1")), .installed, atMost: 2))
        #expect(error("cluster n1\nload 2 clients reads 130%")?.message.contains("percentage") == true)
        #expect(error("cluster n1\nload 2 clients writes")?.message.contains("unexpected 'writes'") == true)
        #expect(error("cluster n1\nload clients")?.message.contains("not a positive whole number") == true)
    }
}
