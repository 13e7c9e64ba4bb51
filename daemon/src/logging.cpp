// Logging: spdlog on stderr, or journald's native protocol with structured fields. See
// logging.hpp.
//
// The logger is process-wide state, set by init_logging() on the loop's thread before the
// loop runs and any bridge thread starts; after that, log() runs on any thread: the stderr
// sink is spdlog's locking variant and the level an atomic.
#include "logging.hpp"

#include "systemd_protocol.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <sys/stat.h>
#include <sys/uio.h>
#include <syslog.h>

namespace shmbus::daemon {

namespace {

struct LoggerState {
    std::shared_ptr<spdlog::logger> stderr_logger;
    bool journal{false};
    std::atomic<LogLevel> level{LogLevel::info};
};

LoggerState& state() {
    static LoggerState s;
    return s;
}

spdlog::level::level_enum to_spdlog(LogLevel level) {
    switch (level) {
    case LogLevel::trace:
        return spdlog::level::trace;
    case LogLevel::debug:
        return spdlog::level::debug;
    case LogLevel::info:
        return spdlog::level::info;
    case LogLevel::warning:
        return spdlog::level::warn;
    case LogLevel::error:
        return spdlog::level::err;
    }
    return spdlog::level::info;
}

int to_syslog_priority(LogLevel level) {
    switch (level) {
    case LogLevel::trace:
    case LogLevel::debug:
        return LOG_DEBUG;
    case LogLevel::info:
        return LOG_INFO;
    case LogLevel::warning:
        return LOG_WARNING;
    case LogLevel::error:
        return LOG_ERR;
    }
    return LOG_INFO;
}

// systemd sets JOURNAL_STREAM=<dev>:<ino> of the stream it connected to stdout/stderr; the
// variable is inherited by children whose stderr may be elsewhere, so compare with stderr.
bool stderr_is_journal() {
    const char* env = std::getenv("JOURNAL_STREAM");
    if (env == nullptr) {
        return false;
    }
    unsigned long long dev = 0;
    unsigned long long ino = 0;
    if (std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) {
        return false;
    }
    struct stat st {};
    if (::fstat(STDERR_FILENO, &st) != 0) {
        return false;
    }
    return st.st_dev == dev && st.st_ino == ino;
}

} // namespace

void init_logging(LogLevel level) {
    auto& s = state();
    s.journal = stderr_is_journal();
    s.level = level;
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    s.stderr_logger = std::make_shared<spdlog::logger>("shmbusd", std::move(sink));
    s.stderr_logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %l %v");
    s.stderr_logger->set_level(to_spdlog(level));
    s.stderr_logger->flush_on(spdlog::level::trace);
}

void set_log_level(LogLevel level) {
    auto& s = state();
    s.level.store(level, std::memory_order_relaxed);
    if (s.stderr_logger) {
        s.stderr_logger->set_level(to_spdlog(level));
    }
}

bool logging_to_journal() noexcept {
    return state().journal;
}

void log(LogLevel level, std::string_view message, const LogFields& fields) {
    auto& s = state();
    if (level < s.level.load(std::memory_order_relaxed)) { // a threshold: no data to order
        return;
    }
    if (s.journal) {
        // Each field is one iovec, passed as it is (never through a printf format: messages
        // carry client-chosen text). Fields that are not known are left out rather than sent
        // empty.
        std::array<std::string, 9> entry;
        std::size_t n = 0;
        entry[n++] = "MESSAGE=" + std::string{message};
        entry[n++] = "PRIORITY=" + std::to_string(to_syslog_priority(level));
        entry[n++] = "SYSLOG_IDENTIFIER=shmbusd";
        if (!fields.channel.empty()) {
            entry[n++] = "CHANNEL=" + std::string{fields.channel};
        }
        if (fields.client_pid) {
            entry[n++] = "CLIENT_PID=" + std::to_string(*fields.client_pid);
        }
        if (fields.client_uid) {
            entry[n++] = "CLIENT_UID=" + std::to_string(*fields.client_uid);
        }
        if (!fields.client_name.empty()) {
            entry[n++] = "CLIENT_NAME=" + std::string{fields.client_name};
        }
        if (!fields.bridge.empty()) {
            entry[n++] = "BRIDGE=" + std::string{fields.bridge};
        }
        if (!fields.peer.empty()) {
            entry[n++] = "PEER=" + std::string{fields.peer};
        }
        std::array<iovec, 9> iov{};
        for (std::size_t k = 0; k < n; ++k) {
            iov[k] = iovec{entry[k].data(), entry[k].size()};
        }
        (void)sd::journal_send(std::span{iov.data(), n}); // a refused entry is dropped
        return;
    }
    if (!s.stderr_logger) {
        init_logging(s.level.load(std::memory_order_relaxed));
    }
    s.stderr_logger->log(to_spdlog(level), "{}", message);
}

std::optional<LogLevel> parse_log_level(std::string_view text) noexcept {
    if (text == "trace") {
        return LogLevel::trace;
    }
    if (text == "debug") {
        return LogLevel::debug;
    }
    if (text == "info") {
        return LogLevel::info;
    }
    if (text == "warning" || text == "warn") {
        return LogLevel::warning;
    }
    if (text == "error") {
        return LogLevel::error;
    }
    return std::nullopt;
}

} // namespace shmbus::daemon
