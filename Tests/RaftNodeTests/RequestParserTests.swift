import Foundation
import Raft
import Testing

@testable import RaftNode
import RaftNodeHost
@testable import RaftNodeMachine
@testable import RaftNodeWire

// The client protocol's request lines (SPEC section 5), read by RequestFields: strict JSON,
// one object a line; what is wrong is said, with the id when it could be read.
@Suite("client request lines")
struct RequestParserTests {
    @Test("the operations of SPEC section 5")
    func operations() {
        let cases: [(String, ClientOp)] = [
            (#"{"id":1,"op":"put","key":"k","value":"v"}"#, .put(key: "k", value: "v")),
            (#"{"id":2,"op":"get","key":"k"}"#, .get(key: "k")),
            (#"{"id":3,"op":"delete","key":"k"}"#, .delete(key: "k")),
            (#"{"id":4,"op":"status"}"#, .status),
            (#"{"id":5,"op":"snapshot"}"#, .snapshot),
            (#"{"id":6,"op":"add","node":"n4","address":"/tmp/n4.sock"}"#, .add(node: "n4", address: "/tmp/n4.sock")),
            (#"{"id":7,"op":"remove","node":"n2"}"#, .remove(node: "n2")),
        ]
        for (line, op) in cases {
            let r = parseClientRequest(line)
            #expect(r.op == op, "\(line)")
            #expect(r.problem == nil)
        }
    }

    @Test("ids: integers and strings are kept; anything else reads as null")
    func ids() {
        #expect(parseClientRequest(#"{"id":-42,"op":"status"}"#).id == .int(-42))
        #expect(parseClientRequest(#"{"id":"a-1","op":"status"}"#).id == .string("a-1"))
        #expect(parseClientRequest(#"{"op":"status"}"#).id == .null)
        #expect(parseClientRequest(#"{"id":1.5,"op":"status"}"#).id == .null)
        #expect(parseClientRequest(#"{"id":[1],"op":"status"}"#).id == .null)
        #expect(parseClientRequest(#"{"id":99999999999999999999,"op":"status"}"#).id == .null)
        #expect(parseClientRequest(#"{"id":7}"#) .problem == #"missing "op""#)
        #expect(parseClientRequest(#"{"id":7}"#).id == .int(7), "the id comes back with the complaint")
    }

    @Test("escapes, whitespace and members that are not ours")
    func escapesAndExtras() {
        let r = parseClientRequest(
            " \t{ \"id\" : 9 , \"op\":\"put\", \"key\":\"a\\\"b\\\\c\\/\", \"extra\": {\"x\":[1, 2.5e-3, true, false, null, {}]},"
                + " \"value\":\"line\\nnext \\u00e9 \\ud83d\\ude00 \\t\\b\\f\\r\" }\r ")
        #expect(r.op == .put(key: "a\"b\\c/", value: "line\nnext é 😀 \t\u{8}\u{c}\r"))
        #expect(r.id == .int(9))
        #expect(parseClientRequest("{}").problem == #"missing "op""#)
        #expect(parseClientRequest(#"{"op":"put","key":5,"value":"v"}"#).problem?.contains("put needs") == true)
        #expect(parseClientRequest(#"{"op":"fly"}"#).problem == #"unknown op "fly""#)
    }

    @Test(
        "lines that are not one JSON object are refused, without a crash",
        arguments: [
            "", "42", "[1]", "\"s\"", "{", "}", #"{"op":"put""#, #"{"op":"status"} x"#, #"{}{}"#, #"{"op" "status"}"#,
            #"{"op":"status",}"#, #"{,"op":"status"}"#, #"{op:"status"}"#, #"{"op":'status'}"#, #"{"op":"st\x"}"#,
            "{\"op\":\"a\u{1}b\"}", #"{"op":"\ud800"}"#, #"{"op":"\udc00"}"#, #"{"op":"\u12"}"#, #"{"a":01}"#, #"{"a":1.}"#,
            #"{"a":-}"#, #"{"a":1e}"#, #"{"a":tru}"#, #"{"a":nul}"#, #"{"a":[1,]}"#, #"{"a":[1 2]}"#, #"{"a":{"b"}}"#,
            String(repeating: "[", count: 10_000), "{\"a\":" + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "}",
        ])
    func refused(line: String) {
        let r = parseClientRequest(line)
        #expect(r.op == nil)
        #expect(r.problem == "not a JSON object")
    }

    @Test("invalid UTF-8 in a string is refused")
    func invalidUTF8() {
        var bytes = Array(#"{"op":"put","key":"k","value":"#.utf8)
        bytes += [0x22, 0x61, 0xFF, 0x62, 0x22, 0x7D]
        let r = bytes.withUnsafeBytes { parseClientRequest($0) }
        #expect(r.problem == "not a JSON object")
    }

    @Test("any string the node's own JSON writer quotes reads back as it was (seeded)", arguments: 1...20)
    func roundTrip(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let alphabet: [Unicode.Scalar] = ["a", "Z", "0", " ", "\"", "\\", "/", "\n", "\r", "\t", "\u{0}", "\u{1f}", "é", "€", "😀", "\u{FFFF}", "{", "}", ",", ":"]
        var key = String.UnicodeScalarView(), value = String.UnicodeScalarView()
        for _ in 0..<Int(rng.next() % 40) { key.append(alphabet[Int(rng.next() % UInt64(alphabet.count))]) }
        for _ in 0..<Int(rng.next() % 2000) { value.append(alphabet[Int(rng.next() % UInt64(alphabet.count))]) }
        let k = String(key), v = String(value)
        let line = JSONValue.object([("id", .int(Int64(seed))), ("op", .string("put")), ("key", .string(k)), ("value", .string(v))]).serialized
        let r = parseClientRequest(line)
        #expect(r.op == .put(key: k, value: v))
        #expect(r.id == .int(Int64(seed)))
    }
}
