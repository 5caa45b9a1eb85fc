import SIPTransactions
import Testing

@Suite struct TransactionTimersTests {
    @Test func defaultsAreRFC3261s() {
        let timers = TransactionTimers()
        #expect(timers.t1 == 500)
        #expect(timers.t2 == 4_000)
        #expect(timers.t4 == 5_000)
    }
}
