// shmbus-bench: latency, throughput and bandwidth of shmbus channels, measured side by side
// with the kernel's IPC (FIFOs, Unix sockets, TCP loopback, POSIX message queues) and the
// machine's floors (raw futex wake-up, memcpy), in one run; and the control plane: channel
// opens per second through a real shmbusd, the daemon's memory and its idle CPU.
//
// This file is the command line: it picks a suite, applies the filters, runs every
// scenario the configured number of times, in rounds (each run in freshly forked processes), and
// writes the reports. Options are parsed by CLI11 (Debian libcli11-dev): the one place
// that may throw, fenced here together with the JSON writer, so a bad option or an
// unwritable file is a message and an exit status, never a crash.
//
// Exit status: 0 when every scenario ran, 1 when some run failed (the reports still say
// which), 2 for a usage error.

#include "format.hpp"
#include "machine.hpp"
#include "nats_transport.hpp"
#include "python_transport.hpp"
#include "report.hpp"
#include "runner.hpp"
#include "scenario.hpp"
#include "shmbusd_process.hpp"
#include "targets.hpp"
#include "team.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

using namespace bench;

template <typename T, typename Parse>
bool parse_names(const std::vector<std::string>& names, const char* what, Parse parse,
                 std::vector<T>& out) {
    for (const std::string& n : names) {
        const std::optional<T> v = parse(n);
        if (!v) {
            std::cerr << "shmbus-bench: unknown " << what << " '" << n << "'\n";
            return false;
        }
        out.push_back(*v);
    }
    return true;
}

/// "128", "4K", "4KiB", "1M", "1MiB" -> bytes.
std::optional<std::uint64_t> parse_size(const std::string& s) {
    std::size_t used = 0;
    std::uint64_t n = 0;
    try {
        n = std::stoull(s, &used);
    } catch (const std::exception&) {
        return std::nullopt;
    }
    const std::string unit = s.substr(used);
    if (unit.empty() || unit == "B") {
        return n;
    }
    if (unit == "K" || unit == "KiB" || unit == "k") {
        return n << 10;
    }
    if (unit == "M" || unit == "MiB") {
        return n << 20;
    }
    return std::nullopt;
}

class Progress {
public:
    Progress() : on_{::isatty(STDERR_FILENO) == 1} {}
    void show(std::size_t index, std::size_t total, const Scenario& s, std::uint32_t round,
              std::uint32_t rounds) const {
        if (on_) {
            std::fprintf(stderr, "\r\033[Kround %u/%u [%zu/%zu] %s %s %s batch %u", round, rounds,
                         index, total, s.label().c_str(), std::string{to_string(s.test)}.c_str(),
                         format_size(s.msg_size).c_str(), s.batch);
            std::fflush(stderr);
        }
    }
    void done() const {
        if (on_) {
            std::fputs("\r\033[K", stderr);
            std::fflush(stderr);
        }
    }

private:
    bool on_;
};

bool write_text(const std::string& path, const std::string& text) {
    std::ofstream out{path};
    out << text;
    out.close();
    if (!out) {
        std::cerr << "shmbus-bench: cannot write " << path << '\n';
        return false;
    }
    return true;
}

int run(int argc, char** argv) {
    CLI::App app{"shmbus-bench: shmbus latency, throughput and bandwidth against FIFOs, Unix "
                 "sockets, TCP loopback and POSIX message queues, in one run."};
    std::string suite_name = "quick";
    bool smoke = false;
    std::vector<std::string> transports, kinds, waits, tests, sizes;
    std::optional<std::uint32_t> runs;
    std::optional<double> duration_s;
    bool no_pin = false;
    bool list = false;
    std::string json_path, markdown_path, plot_dir;
    std::string shmbusd_path;
    std::optional<int> bridge_nice;

    app.add_option("--suite", suite_name, "tiny (seconds), quick (< 1 min) or full (minutes)")
        ->check(CLI::IsMember({"tiny", "quick", "full"}));
    app.add_flag("--smoke", smoke, "Same as --suite tiny: a few seconds, for the smoke test");
    app.add_option(
           "--transport", transports,
           "Only these: shmbus, shmbus-c (the C ABI), python (the Python package), fifo, "
           "uds-stream, uds-seqpacket, tcp, posix-mq, futex-raw, memcpy, raw-ring, shmbusd (the "
           "control plane), blackboard-read, local-read, bridge (two shmbusd joined by a bridge "
           "over TCP loopback), pool-handoff, queue-copy, nats (two shmbusd through a NATS "
           "server), nats-raw (the same messages with libnats alone)")
        ->delimiter(',');
    app.add_option("--kind", kinds,
                   "Only these shmbus kinds: queue-spsc, queue-mpmc, broadcast-block, "
                   "broadcast-drop")
        ->delimiter(',');
    app.add_option("--wait", waits, "Only these shmbus wait modes: spin, adaptive, futex")
        ->delimiter(',');
    app.add_option("--test", tests,
                   "Only these tests: latency, throughput, bandwidth, control-open, daemon-rss, "
                   "daemon-idle-cpu")
        ->delimiter(',');
    app.add_option("--size", sizes, "Only these message sizes (128, 4K, 64KiB, 1M)")
        ->delimiter(',');
    app.add_option("--runs", runs, "Runs per configuration (default 3)")->check(CLI::Range(1, 100));
    app.add_option("--duration", duration_s, "Seconds per run (default: the suite's)")
        ->check(CLI::Range(0.001, 600.0));
    app.add_flag("--no-pin", no_pin, "Do not pin each process to its own core");
    app.add_flag("--list", list, "Print the configurations and exit");
    app.add_option("--json", json_path, "Write the results as JSON to this file");
    app.add_option("--markdown", markdown_path, "Write the results as Markdown tables");
    app.add_option("--plot-data", plot_dir, "Write gnuplot data files into this directory");
    app.add_option("--shmbusd", shmbusd_path,
                   "The shmbusd the control-plane and bridge tests start (default: the one "
                   "built with shmbus-bench, else shmbusd on PATH)");
    app.add_option("--bridge-nice", bridge_nice,
                   "The bridge rows' 'nice' (0-19) for both daemons' bridges (default: the "
                   "daemon's own default)")
        ->check(CLI::Range(0, 19));
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    if (smoke) {
        suite_name = "tiny";
    }

    std::optional<Suite> suite = make_suite(suite_name);
    Filters filters;
    bool names_ok =
        parse_names(transports, "transport", transport_from_string, filters.transports) &&
        parse_names(kinds, "kind", kind_from_string, filters.kinds) &&
        parse_names(waits, "wait mode", wait_from_string, filters.waits) &&
        parse_names(tests, "test", test_from_string, filters.tests) &&
        parse_names(sizes, "size", parse_size, filters.sizes);
    if (!suite || !names_ok) {
        return 2;
    }
    RunSettings settings = suite->settings;
    if (runs) {
        settings.runs = *runs;
    }
    if (duration_s) {
        settings.duration = std::chrono::nanoseconds{static_cast<std::int64_t>(*duration_s * 1e9)};
    }
    settings.pin = !no_pin;
    settings.bridge_nice = bridge_nice;
    std::string shmbusd_error;
    settings.shmbusd = find_shmbusd(shmbusd_path, shmbusd_error);
    if (!shmbusd_error.empty()) {
        std::cerr << "shmbus-bench: " << shmbusd_error << '\n';
        return 2;
    }
    const bool have_shmbusd = !settings.shmbusd.empty();
    settings.nats_server = find_nats_server();
    const std::string no_nats =
        !nats_built() ? "shmbus-bench was built without libnats (Debian: libnats-dev)"
        : settings.nats_server.empty()
            ? "nats-server is not installed (Debian: apt-get install nats-server)"
            : "";
    const std::vector<Scenario> plan = apply_filters(suite->scenarios, filters);
    if (plan.empty()) {
        std::cerr << "shmbus-bench: the filters leave nothing of suite " << suite_name << '\n';
        return 2;
    }
    // Looked for only when the plan has a Python row: it starts python3 once.
    std::string no_python;
    if (std::any_of(plan.begin(), plan.end(),
                    [](const Scenario& s) { return s.transport == Transport::python; })) {
        no_python = find_python(settings);
    }

    RunInfo info;
    info.machine = probe_machine();
    for (int i = 0; i < argc; ++i) {
        info.command += (i > 0 ? " " : "") + std::string{argv[i]};
    }
    info.suite = suite_name;
    info.settings = settings;

    if (list) {
        for (const Scenario& s : plan) {
            const auto skip =
                skip_reason(s, info.machine.usable_cores, have_shmbusd, no_python, no_nats);
            std::cout << s.label() << ' ' << to_string(s.test) << ' ' << format_size(s.msg_size);
            if (s.control_test()) {
                std::cout << " channels " << s.channels << " clients " << s.clients;
            } else {
                std::cout << " batch " << s.batch << " subs " << s.subscribers;
            }
            std::cout << (skip ? " (skipped: " + *skip + ")" : std::string{}) << '\n';
        }
        return 0;
    }

    info.load_before = load_average();
    if (std::atof(info.load_before.c_str()) >= 0.5) {
        std::cerr << "shmbus-bench: warning: load average " << info.load_before
                  << " before starting: other processes will disturb the figures\n";
    }
    const Progress progress;
    std::vector<Summary> summaries(plan.size());
    for (std::size_t i = 0; i < plan.size(); ++i) {
        summaries[i].scenario = plan[i];
        summaries[i].skipped =
            skip_reason(plan[i], info.machine.usable_cores, have_shmbusd, no_python, no_nats);
    }
    // Rounds: every scenario runs once per round, so the runs of one scenario are spread over
    // the whole invocation and two scenarios that a target compares are sampled at the same
    // times. On a machine whose speed changes from one minute to the next, this is what makes
    // their ratio a comparison of transports rather than of moments.
    for (std::uint32_t r = 1; r <= settings.runs; ++r) {
        for (std::size_t i = 0; i < plan.size(); ++i) {
            if (!summaries[i].skipped) {
                progress.show(i + 1, plan.size(), plan[i], r, settings.runs);
                summaries[i].runs.push_back(run_once(plan[i], settings));
            }
        }
    }
    bool all_ok = true;
    for (Summary& sum : summaries) {
        if (!sum.skipped) {
            summarise_runs(sum);
            all_ok = all_ok && sum.good_runs() == sum.runs.size();
        }
    }
    progress.done();
    info.load_after = load_average();

    const std::vector<Target> targets = evaluate_targets(summaries);
    print_report(std::cout, summaries, targets);
    std::cout.flush();

    bool written = true;
    if (!json_path.empty()) {
        written = write_text(json_path, json_report(info, summaries, targets)) && written;
    }
    if (!markdown_path.empty()) {
        written = write_text(markdown_path, markdown_report(info, summaries, targets)) && written;
    }
    if (!plot_dir.empty()) {
        if (const std::string e = write_plot_data(plot_dir, summaries); !e.empty()) {
            std::cerr << "shmbus-bench: " << e << '\n';
            written = false;
        }
    }
    return all_ok && written ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "shmbus-bench: " << e.what() << '\n';
        return 1;
    }
}
