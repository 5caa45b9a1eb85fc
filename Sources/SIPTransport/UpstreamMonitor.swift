import SIPBytes
import SIPProxyCore
import SIPSettings

/// Health checks of the upstream set, run by one worker (worker 0) between batches: an OPTIONS probe to every
/// member each interval over the worker's own upstream socket or pooled connections, so the answers come back to
/// it. A probe still unanswered when the next is due has failed; passive failures reported by any worker count as
/// failed probes at once. The verdicts go to the ``UpstreamBoard`` for every worker.
///
/// Pure bookkeeping: the worker sends the probes it is handed and feeds the answers in; time comes as arguments.
struct UpstreamMonitor {
    struct Probe: Equatable {
        var member: Int
        var address: EndpointAddress
        var callID: String
        var sequence: UInt32
    }

    let settings: UpstreamHealthSettings
    private(set) var generation: UInt64 = 0
    private(set) var members: [UpstreamSet.Member] = []
    private var health: [UpstreamHealth] = []
    /// A member has answered since start: readiness needs a real answer, not the optimistic start.
    private var answered: [Bool] = []
    /// The Call-ID of each member's probe in flight.
    private var inFlight: [String?] = []
    private var nextRound: UInt64 = 0
    private var sequence: UInt32 = 0
    /// Distinguishes this process's probes from another edge's (or a previous run's) sharing the core.
    private let nonce: UInt64

    init(settings: UpstreamHealthSettings, nonce: UInt64) {
        self.settings = settings
        self.nonce = nonce
    }

    /// Takes a new membership; members that stay keep their health, new ones start up.
    mutating func adopt(_ membership: UpstreamBoard.Membership, upBits: UInt64) {
        var nextHealth: [UpstreamHealth] = []
        var nextAnswered: [Bool] = []
        for (index, member) in membership.members.enumerated() {
            if let old = members.firstIndex(where: { $0.address == member.address }) {
                nextHealth.append(health[old])
                nextAnswered.append(answered[old])
            } else {
                nextHealth.append(UpstreamHealth(fall: settings.fall, rise: settings.rise,
                                                 startsUp: upBits & (1 << UInt64(index)) != 0))
                nextAnswered.append(false)
            }
        }
        generation = membership.generation
        members = membership.members
        health = nextHealth
        answered = nextAnswered
        inFlight = Array(repeating: nil, count: members.count)
    }

    var upBits: UInt64 {
        var bits: UInt64 = 0
        for (index, state) in health.enumerated() where state.isUp { bits |= 1 << UInt64(index) }
        return bits
    }

    /// Some member is up and has answered since start.
    var isReady: Bool { health.indices.contains { health[$0].isUp && answered[$0] } }

    /// When the next probe round is due: before then, with the membership unchanged and no failure reported, the
    /// monitor has nothing to do (the worker loop asks this every turn instead of running it).
    var nextRoundDue: UInt64 { members.isEmpty ? .max : nextRound }

    /// When a round is due: the probes still in flight from the last one fail, and a new probe per member is
    /// returned to send. The state changes that made go into `changes`.
    mutating func startRoundIfDue(now: UInt64, changes: inout [(EndpointAddress, Bool)]) -> [Probe] {
        guard now >= nextRound, !members.isEmpty else { return [] }
        nextRound = now + settings.intervalMilliseconds
        var probes: [Probe] = []
        for index in members.indices {
            if inFlight[index] != nil { fail(index, &changes) }
            sequence &+= 1
            let callID = "\(StatelessProxy.probeCallIDPrefix)\(String(nonce, radix: 16))-\(sequence)"
            inFlight[index] = callID
            probes.append(Probe(member: index, address: members[index].address, callID: callID, sequence: sequence))
        }
        return probes
    }

    /// A final response to a probe in flight; anything else (a 1xx, another run's probe) changes nothing.
    mutating func answered(callID: String, status: Int, changes: inout [(EndpointAddress, Bool)]) {
        guard status >= 200, let index = inFlight.firstIndex(of: callID) else { return }
        inFlight[index] = nil
        if status != 503 { answered[index] = true }
        if health[index].probeAnswered(status: status) { changes.append((members[index].address, health[index].isUp)) }
    }

    /// A probe that could not even be sent (no pooled connection up), or a passive failure: a failed probe now.
    /// A probe of that member still in flight is judged by it, so one outage is not counted twice.
    mutating func failed(_ address: EndpointAddress, changes: inout [(EndpointAddress, Bool)]) {
        guard let index = members.firstIndex(where: { $0.address == address }) else { return }
        inFlight[index] = nil
        fail(index, &changes)
    }

    private mutating func fail(_ index: Int, _ changes: inout [(EndpointAddress, Bool)]) {
        inFlight[index] = nil
        if health[index].probeFailed() { changes.append((members[index].address, health[index].isUp)) }
    }
}
