// Runner: see runner.hpp.

#include "runner.hpp"

#include "baselines.hpp"
#include "bridge_transport.hpp"
#include "calibration.hpp"
#include "control_plane.hpp"
#include "nats_transport.hpp"
#include "pool_handoff.hpp"
#include "python_transport.hpp"
#include "rpc.hpp"
#include "shared_state.hpp"
#include "shmbus_c_transport.hpp"
#include "shmbus_transport.hpp"

#include <algorithm>
#include <limits>

namespace bench {
namespace {

constexpr double kNsPerS = 1e9;

RunResult reduce_latency(std::vector<Report>& reports) {
    RunResult r;
    std::vector<std::uint32_t> samples;
    for (Report& rep : reports) {
        if (rep.role == Report::Role::pinger || rep.role == Report::Role::clock_reader) {
            samples.insert(samples.end(), rep.samples.begin(), rep.samples.end());
            std::vector<std::uint32_t>().swap(rep.samples);
        }
    }
    if (samples.empty()) {
        r.error = "no latency samples";
        return r;
    }
    summarise_latency(samples, r);
    return r;
}

RunResult reduce_solo(const Scenario& s, const std::vector<Report>& reports) {
    RunResult r;
    if (reports.size() != 1 || reports[0].messages == 0) {
        r.error = "no iterations";
        return r;
    }
    const Report& rep = reports[0];
    const double seconds = static_cast<double>(rep.t_end_ns - rep.t_start_ns) / kNsPerS;
    const auto n = static_cast<double>(rep.messages);
    r.msgs_per_s = n / seconds;
    r.bytes_per_s = *r.msgs_per_s * static_cast<double>(s.msg_size);
    r.cpu_send_ns_per_msg = static_cast<double>(rep.cpu_ns) / n;
    r.cpu_recv_ns_per_msg = 0.0;
    r.cpu_ns_per_msg = r.cpu_send_ns_per_msg;
    return r;
}

RunResult reduce_stream(const Scenario& s, const std::vector<Report>& reports) {
    RunResult r;
    std::int64_t start = std::numeric_limits<std::int64_t>::max();
    std::int64_t end = 0;
    std::uint64_t sent = 0;
    std::uint64_t received = 0;
    std::uint64_t corrupt = 0;
    std::int64_t cpu_send = 0;
    std::int64_t cpu_recv = 0;
    for (const Report& rep : reports) {
        if (rep.role == Report::Role::sender) {
            start = std::min(start, rep.t_start_ns);
            sent += rep.messages;
            cpu_send += rep.cpu_ns;
        } else if (rep.role == Report::Role::receiver) {
            end = std::max(end, rep.t_end_ns);
            received += rep.messages;
            corrupt += rep.corrupt;
            cpu_recv += rep.cpu_ns;
        }
    }
    if (corrupt > 0) {
        r.error = std::to_string(corrupt) + " received messages failed their checksum";
        return r;
    }
    if (sent == 0 || received == 0 || end <= start) {
        r.error = "nothing was received";
        return r;
    }
    const double seconds = static_cast<double>(end - start) / kNsPerS;
    const double per_reader = static_cast<double>(received) / s.deliveries();
    r.msgs_per_s = per_reader / seconds;
    r.bytes_per_s = *r.msgs_per_s * static_cast<double>(s.msg_size);
    double slowest = std::numeric_limits<double>::max();
    for (const Report& rep : reports) {
        if (rep.role == Report::Role::receiver && rep.t_end_ns > start) {
            const double own = static_cast<double>(rep.t_end_ns - start) / kNsPerS;
            slowest = std::min(slowest, static_cast<double>(rep.messages) / own);
        }
    }
    r.min_sub_msgs_per_s = slowest;
    r.cpu_send_ns_per_msg = static_cast<double>(cpu_send) / static_cast<double>(sent);
    r.cpu_recv_ns_per_msg = static_cast<double>(cpu_recv) / static_cast<double>(received);
    r.cpu_ns_per_msg = *r.cpu_send_ns_per_msg + *r.cpu_recv_ns_per_msg;
    const std::uint64_t expected = sent * s.deliveries();
    r.lost = expected > received ? expected - received : 0;
    return r;
}

} // namespace

RunResult reduce_reports(const Scenario& s, std::vector<Report>& reports) {
    if (s.test == Test::latency || s.test == Test::round_trip) {
        return reduce_latency(reports);
    }
    if (s.solo()) {
        return reduce_solo(s, reports);
    }
    return reduce_stream(s, reports);
}

RunResult run_once(const Scenario& s, const RunSettings& settings) {
    if (s.control_plane()) {
        return run_control_plane(s, settings);
    }
    if (s.transport == Transport::bridge) {
        return run_bridge(s, settings);
    }
    // Every run with a second core in it: how far apart the cores are right now.
    const std::optional<double> line_rtt = s.solo() ? std::nullopt : measure_line_rtt(settings);
    std::vector<Report> reports;
    std::string error;
    switch (s.transport) {
    case Transport::shmbus:
        error =
            s.kind == Kind::rpc ? run_rpc(s, settings, reports) : run_shmbus(s, settings, reports);
        break;
    case Transport::shmbus_c:
        error = run_shmbus_c(s, settings, reports);
        break;
    case Transport::python:
        error = run_python(s, settings, reports);
        break;
    case Transport::futex_raw:
        error = run_futex_raw(s, settings, reports);
        break;
    case Transport::memory_copy:
        error = run_memcpy(s, settings, reports);
        break;
    case Transport::raw_ring:
        error = run_raw_ring(s, settings, reports);
        break;
    case Transport::blackboard_read:
    case Transport::local_read:
        error = run_shared_state_read(s, settings, reports);
        break;
    case Transport::pool_handoff:
    case Transport::queue_copy:
        error = run_payload_handoff(s, settings, reports);
        break;
    case Transport::nats:
    case Transport::nats_raw:
        error = run_nats(s, settings, reports);
        break;
    default:
        error = run_baseline(s, settings, reports);
        break;
    }
    if (!error.empty()) {
        RunResult r;
        r.error = error;
        return r;
    }
    RunResult r = reduce_reports(s, reports);
    r.line_rtt_ns = line_rtt;
    return r;
}

} // namespace bench
