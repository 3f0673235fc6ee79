import Harness
import Testing

@Suite("The network as a scenario sets it (both worlds read it)")
struct NetworkStateTests {
    @Test("isolate adds to the cuts in place, partition replaces them, heal removes them")
    func cuts() {
        let net = NetworkState(seed: 1)
        net.isolate("n1")
        #expect(net.isCut(from: "n1", to: "n2") && net.isCut(from: "n3", to: "n1") && !net.isCut(from: "n2", to: "n3"))
        net.isolate("n2")
        #expect(net.isCut(from: "n1", to: "n2") && net.isCut(from: "n2", to: "n3") && net.isCut(from: "n3", to: "n1"))
        net.partition([["n1", "n2"]])
        #expect(!net.isCut(from: "n1", to: "n2") && net.isCut(from: "n2", to: "n3") && net.isCut(from: "n3", to: "n1"))
        #expect(!net.isCut(from: "n3", to: "n4"), "the nodes not named form one more group")
        net.isolate("n4")
        #expect(net.isCut(from: "n3", to: "n4") && !net.isCut(from: "n1", to: "n2"))
        net.partition(nil)
        for (a, b) in [("n1", "n2"), ("n2", "n3"), ("n3", "n4"), ("n4", "n1")] { #expect(!net.isCut(from: a, to: b)) }
    }
}
