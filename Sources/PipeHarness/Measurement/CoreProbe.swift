import CPipeSys
import PipeResults

/// What a core-to-core probe measured: the cost of moving one cache line back and forth
/// between two CPUs, which on a VM changes as the host moves the vCPUs (results/README.md);
/// recorded beside results so that runs on different placements are not compared blindly.
public struct CoreProbeResult: Codable, Sendable {
    public var cpuA: Int
    public var cpuB: Int
    public var roundTrips: Int
    public var batchSize: Int
    /// Per round trip, ns: the median, minimum and maximum of the batch means.
    public var medianNs: Double
    public var minNs: Double
    public var maxNs: Double
    /// CPUs (sched_getcpu) the two threads ran on, checked after pinning.
    public var cpusSeen: [Int]
}

public enum CoreProbe {
    /// The round trips a probe makes unless told otherwise.
    public static let defaultRoundTrips = 20_000

    /// Two threads pinned to `cpuA` and `cpuB` pass a counter back and forth through one
    /// cache line: A stores an odd value and spins until B has stored the next even one.
    /// Round trips are timed in batches of `batchSize` because one clock read (~20 ns) is a
    /// large part of one round trip (tens to hundreds of ns between spinning cores).
    ///
    /// Both threads spin; if they share a CPU, the spin turns into `sched_yield` after a while,
    /// so the probe still finishes, measuring context switches instead.
    public static func measure(cpuA: Int, cpuB: Int, roundTrips: Int = defaultRoundTrips, batchSize: Int = 100) throws -> CoreProbeResult {
        guard roundTrips > 0, batchSize > 0 else {
            throw HarnessError.invalidArgument("core probe needs positive round trips and batch size")
        }
        let batches = max(1, roundTrips / batchSize)
        let total = batches * batchSize
        let flag = SharedCounter(0)
        let barrier = SpinBarrier(parties: 2)

        let responder = try WorkerThread<Int>.start {
            try startTogether(barrier, cpu: cpuB, node: nil, peerFailed: "core probe initiator failed to start") {}
            let cpu = Int(pb_sched_getcpu())
            for j in 0..<total {
                var spins = 0
                while flag.load() != 2 * j + 1 { backoff(&spins) }
                flag.store(2 * j + 2)
            }
            return cpu
        }
        let initiator: WorkerThread<(Int, [Double])>
        do {
            initiator = try WorkerThread<(Int, [Double])>.start {
                try startTogether(barrier, cpu: cpuA, node: nil, peerFailed: "core probe responder failed to start") {}
                let cpu = Int(pb_sched_getcpu())
                var perRoundTrip: [Double] = []
                perRoundTrip.reserveCapacity(batches)
                var j = 0
                for _ in 0..<batches {
                    let t0 = pb_monotonic_ns()
                    for _ in 0..<batchSize {
                        flag.store(2 * j + 1)
                        var spins = 0
                        while flag.load() != 2 * j + 2 { backoff(&spins) }
                        j += 1
                    }
                    perRoundTrip.append(Double(pb_monotonic_ns() - t0) / Double(batchSize))
                }
                return (cpu, perRoundTrip)
            }
        } catch {
            barrier.arriveAndWait(failed: true)
            _ = try? responder.join()
            throw error
        }
        let a = Swift.Result { try initiator.join() }
        let b = Swift.Result { try responder.join() }
        let (cpuSeenA, samples) = try a.get()
        let cpuSeenB = try b.get()
        return CoreProbeResult(
            cpuA: cpuA, cpuB: cpuB, roundTrips: total, batchSize: batchSize,
            medianNs: Statistics.median(samples), minNs: samples.min()!, maxNs: samples.max()!,
            cpusSeen: [cpuSeenA, cpuSeenB])
    }
}
