extension WorkloadKind {
    /// Every workload, in the order of `--workload`'s help and of the summary tables: the one
    /// list of them. A new workload is its folder and one line here.
    public static let registered: [any WorkloadDefinition.Type] = [
        StreamWorkload.self,
        PingPongWorkload.self,
        PairsWorkload.self,
        FanInWorkload.self,
        KVAPressureWorkload.self,
        ContendWorkload.self,
        JobserverWorkload.self,
        ReplayWorkload.self,
    ]
}
