import PipeEngine
#if canImport(Glibc)
import Glibc
#endif

/// The page size, the unit of kernel pipe buffers.
public let systemPageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
