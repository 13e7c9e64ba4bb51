// Logging: spdlog on stderr, or sd_journal_send() with structured fields. See logging.hpp.
//
// The logger is process-wide state, set by init_logging() on the loop's thread before the
// loop runs and used only from that thread afterwards. spdlog's stderr sink is the
// single-threaded variant for that reason.
#include "logging.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-journal.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <sys/stat.h>
#include <syslog.h>

namespace shmbus::daemon {

namespace {

struct LoggerState {
    std::shared_ptr<spdlog::logger> stderr_logger;
    bool journal{false};
    LogLevel level{LogLevel::info};
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
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_st>();
    s.stderr_logger = std::make_shared<spdlog::logger>("shmbusd", std::move(sink));
    s.stderr_logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %l %v");
    s.stderr_logger->set_level(to_spdlog(level));
    s.stderr_logger->flush_on(spdlog::level::trace);
}

void set_log_level(LogLevel level) {
    auto& s = state();
    s.level = level;
    if (s.stderr_logger) {
        s.stderr_logger->set_level(to_spdlog(level));
    }
}

bool logging_to_journal() noexcept {
    return state().journal;
}

void log(LogLevel level, std::string_view message, const LogFields& fields) {
    auto& s = state();
    if (level < s.level) {
        return;
    }
    if (s.journal) {
        // Fields are passed as "KEY=value" strings; absent ones become an empty CHANNEL= etc.
        // which journald stores as empty — so give them only when known.
        const std::string msg = "MESSAGE=" + std::string{message};
        const std::string prio = "PRIORITY=" + std::to_string(to_syslog_priority(level));
        const std::string channel =
            fields.channel.empty() ? std::string{} : "CHANNEL=" + std::string{fields.channel};
        const std::string pid =
            fields.client_pid ? "CLIENT_PID=" + std::to_string(*fields.client_pid) : std::string{};
        const std::string uid =
            fields.client_uid ? "CLIENT_UID=" + std::to_string(*fields.client_uid) : std::string{};
        const std::string name = fields.client_name.empty()
                                     ? std::string{}
                                     : "CLIENT_NAME=" + std::string{fields.client_name};
        const char* extra[4];
        int n = 0;
        for (const std::string* f : {&channel, &pid, &uid, &name}) {
            if (!f->empty()) {
                extra[n++] = f->c_str();
            }
        }
        // sd_journal_send is variadic and NULL-terminated; pass the fields we have.
        switch (n) {
        case 0:
            sd_journal_send(msg.c_str(), prio.c_str(), "SYSLOG_IDENTIFIER=shmbusd", nullptr);
            break;
        case 1:
            sd_journal_send(msg.c_str(), prio.c_str(), "SYSLOG_IDENTIFIER=shmbusd", extra[0],
                            nullptr);
            break;
        case 2:
            sd_journal_send(msg.c_str(), prio.c_str(), "SYSLOG_IDENTIFIER=shmbusd", extra[0],
                            extra[1], nullptr);
            break;
        case 3:
            sd_journal_send(msg.c_str(), prio.c_str(), "SYSLOG_IDENTIFIER=shmbusd", extra[0],
                            extra[1], extra[2], nullptr);
            break;
        default:
            sd_journal_send(msg.c_str(), prio.c_str(), "SYSLOG_IDENTIFIER=shmbusd", extra[0],
                            extra[1], extra[2], extra[3], nullptr);
            break;
        }
        return;
    }
    if (!s.stderr_logger) {
        init_logging(s.level);
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
