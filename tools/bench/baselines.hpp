// Baselines: the same patterns over the kernel's IPC, measured in the same run as shmbus.
//
// Named pipes (a FIFO pair for ping-pong), Unix stream and seqpacket sockets, TCP over
// 127.0.0.1 with TCP_NODELAY, and POSIX message queues, each used the way an application
// would: blocking calls, default buffer sizes, one write() (or sendmmsg() for seqpacket)
// per publish, so "batch 64" writes 64 messages with one system call.
//
// The parent creates every descriptor before forking (FIFOs are opened at both ends in the
// parent and unlinked at once; message queues are unlinked right after mq_open), so
// nothing is left in the file system when a run ends or crashes.
#pragma once

#include "scenario.hpp"
#include "team.hpp"

#include <string>
#include <vector>

namespace bench {

/// Runs baseline scenario `s` (fifo, uds-stream, uds-seqpacket, tcp, posix-mq) once and
/// collects its children's reports. Returns an error sentence, or empty.
[[nodiscard]] std::string run_baseline(const Scenario& s, const RunSettings& settings,
                                       std::vector<Report>& reports);

} // namespace bench
