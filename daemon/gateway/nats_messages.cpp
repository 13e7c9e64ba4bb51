// NATS messages without libnats' costs per message; the design is in nats_messages.hpp.
#include "gateway/nats_messages.hpp"

#include <charconv>
#include <cstring>
#include <string>

#if SHMBUS_NATS_ENCODED_HEADERS && NATS_VERSION_MAJOR >= 2 && NATS_VERSION_MAJOR <= 3
#define SHMBUS_NATS_USE_ENCODED 1
// libnats' own, exported and undeclared (nats_messages.hpp says why they are used); its
// natsBuffer, a type of its own too, is passed as void*.
// NOLINTBEGIN(readability-identifier-naming): libnats' names
extern "C" {
natsStatus natsMsg_create(natsMsg** newMsg, const char* subject, int subjLen, const char* reply,
                          int replyLen, const char* buf, int bufLen, int hdrLen);
void natsMsg_free(void* object);
int natsMsgHeader_encodedLen(natsMsg* msg);
natsStatus natsMsgHeader_encode(void* buf, natsMsg* msg);
natsStatus natsBuf_CreateWithBackend(void** newBuf, char* data, int len, int capacity);
void natsBuf_Reset(void* buf);
void natsBuf_Destroy(void* buf);
}
// NOLINTEND(readability-identifier-naming)
#else
#define SHMBUS_NATS_USE_ENCODED 0
#endif

namespace shmbus::gateway {

namespace {

constexpr std::string_view kStatusLine = "NATS/1.0";
constexpr std::string_view kCrlf = "\r\n";
constexpr std::string_view kSeparator = ": ";

/// The characters libnats trims around a value (C's isspace()).
constexpr bool is_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/// Sets `headers` one by one through libnats' table.
natsStatus set_each(natsMsg* m, std::span<const NatsHeader> headers) {
    std::string key;
    std::string value;
    for (const auto& h : headers) {
        key.assign(h.key);
        value.assign(h.value);
        if (const natsStatus s = natsMsgHeader_Set(m, key.c_str(), value.c_str()); s != NATS_OK) {
            return s;
        }
    }
    return NATS_OK;
}

} // namespace

bool nats_encoded_headers() noexcept {
    return SHMBUS_NATS_USE_ENCODED != 0;
}

std::size_t nats_encoded_size(std::span<const NatsHeader> headers) noexcept {
    std::size_t n = kStatusLine.size() + kCrlf.size() + kCrlf.size();
    for (const auto& h : headers) {
        n += h.key.size() + kSeparator.size() + h.value.size() + kCrlf.size();
    }
    return n;
}

natsStatus nats_message(natsMsg** out, const std::string& subject, std::span<std::byte> buf,
                        std::size_t room, std::size_t size,
                        std::span<const NatsHeader> headers) noexcept {
    *out = nullptr;
    const auto payload = buf.subspan(room, size);
    try {
#if SHMBUS_NATS_USE_ENCODED
        if (const std::size_t header_size = nats_encoded_size(headers); header_size <= room) {
            char* const start = reinterpret_cast<char*>(payload.data()) - header_size;
            char* p = start;
            const auto put = [&p](std::string_view s) {
                std::memcpy(p, s.data(), s.size());
                p += s.size();
            };
            put(kStatusLine);
            put(kCrlf);
            for (const auto& h : headers) {
                put(h.key);
                put(kSeparator);
                put(h.value);
                put(kCrlf);
            }
            put(kCrlf);
            return natsMsg_create(out, subject.c_str(), static_cast<int>(subject.size()), nullptr,
                                  0, start, static_cast<int>(header_size + size),
                                  static_cast<int>(header_size));
        }
#endif
        natsStatus s =
            natsMsg_Create(out, subject.c_str(), nullptr,
                           reinterpret_cast<const char*>(payload.data()), static_cast<int>(size));
        if (s == NATS_OK) {
            s = set_each(*out, headers);
        }
        if (s != NATS_OK) {
            natsMsg_Destroy(*out);
            *out = nullptr;
        }
        return s;
    } catch (const std::bad_alloc&) {
        return NATS_NO_MEMORY;
    }
}

const char* nats_header(natsMsg* m, const char* key) noexcept {
    const char* v = nullptr;
    return natsMsgHeader_Get(m, key, &v) == NATS_OK ? v : nullptr;
}

void nats_free(natsMsg* m) noexcept {
#if SHMBUS_NATS_USE_ENCODED
    natsMsg_free(m);
#else
    natsMsg_Destroy(m);
#endif
}

std::optional<OriginFields> parse_origin(const char* text) noexcept {
    // One pass: every message imported comes through here.
    if (text == nullptr) {
        return std::nullopt;
    }
    std::string_view rest{text};
    OriginFields f;
    // The next word: up to a space, not empty.
    const auto word = [&rest](std::string_view& out) {
        const auto space = rest.find(' ');
        if (space == 0 || space == std::string_view::npos) {
            return false;
        }
        out = rest.substr(0, space);
        rest.remove_prefix(space + 1);
        return true;
    };
    // The next number: decimal digits, then a space or (`last`) the end.
    const auto number = [&rest](std::uint64_t& out, bool last) {
        const char* const end = rest.data() + rest.size();
        const auto [stop, ec] = std::from_chars(rest.data(), end, out);
        if (ec != std::errc{} || (last ? stop != end : stop == end || *stop != ' ')) {
            return false;
        }
        rest.remove_prefix(static_cast<std::size_t>(stop - rest.data()) + (last ? 0 : 1));
        return true;
    };
    if (word(f.node) && number(f.incarnation, false) && word(f.channel) && number(f.number, true)) {
        return f;
    }
    return std::nullopt;
}

NatsHeaderReader::NatsHeaderReader() noexcept {
#if SHMBUS_NATS_USE_ENCODED
    if (natsBuf_CreateWithBackend(&buffer_, bytes_.data(), 0, static_cast<int>(kCapacity)) !=
        NATS_OK) {
        buffer_ = nullptr; // every message is left to libnats
    }
#endif
}

NatsHeaderReader::~NatsHeaderReader() {
#if SHMBUS_NATS_USE_ENCODED
    if (buffer_ != nullptr) {
        natsBuf_Destroy(buffer_);
    }
#endif
}

void NatsHeaderReader::read(natsMsg* m) noexcept {
    line_count_ = 0;
    msg_ = m;
#if SHMBUS_NATS_USE_ENCODED
    if (buffer_ == nullptr) {
        return;
    }
    const int size = natsMsgHeader_encodedLen(m);
    if (size == 0) {
        msg_ = nullptr; // no headers
        return;
    }
    if (size < 0 || static_cast<std::size_t>(size) > kCapacity) {
        return;
    }
    natsBuf_Reset(buffer_);
    if (natsMsgHeader_encode(buffer_, m) == NATS_OK && parse(static_cast<std::size_t>(size))) {
        msg_ = nullptr;
    }
#endif
}

bool NatsHeaderReader::parse(std::size_t size) noexcept {
    char* const begin = bytes_.data();
    char* const end = begin + size;
    // The status line: "NATS/1.0" and CRLF. One with a status after it ("NATS/1.0 503")
    // is libnats' to read: it shows the status as a header of its own.
    if (size < kStatusLine.size() + 2 * kCrlf.size() ||
        std::string_view{begin, kStatusLine.size()} != kStatusLine) {
        return false;
    }
    // A NUL anywhere (where libnats' C-string parsing stops): libnats' reading of it is its
    // own. One look at the whole block, so that a line needs only its CR and LF found.
    if (std::memchr(begin, '\0', size) != nullptr) {
        return false;
    }
    // The CRLF that ends the line starting at `from`; null if its first CR is not followed
    // by LF, or an LF comes before it (a lone CR or LF: libnats' to read).
    const auto line_end = [end](char* from) -> char* {
        const auto n = static_cast<std::size_t>(end - from);
        auto* const cr = static_cast<char*>(std::memchr(from, '\r', n));
        if (cr == nullptr || cr + 1 == end || cr[1] != '\n' ||
            std::memchr(from, '\n', static_cast<std::size_t>(cr - from)) != nullptr) {
            return nullptr;
        }
        return cr;
    };
    char* eol = begin + kStatusLine.size();
    while (eol < end && *eol == ' ') {
        ++eol;
    }
    if (eol != line_end(eol)) {
        return false;
    }
    for (char* p = eol + kCrlf.size();; p = eol + kCrlf.size()) {
        eol = line_end(p);
        if (eol == nullptr) {
            return false;
        }
        if (eol == p) {
            return eol + kCrlf.size() == end; // the blank line ends the block
        }
        if (is_space(*p) || line_count_ == kMaxLines) {
            return false; // a folded line, or more than a bridge writes
        }
        char* const colon =
            static_cast<char*>(std::memchr(p, ':', static_cast<std::size_t>(eol - p)));
        if (colon == nullptr || colon == p) {
            return false;
        }
        char* value = colon + 1;
        char* value_end = eol;
        while (value < value_end && is_space(*value)) {
            ++value;
        }
        while (value_end > value && is_space(value_end[-1])) {
            --value_end;
        }
        if (value == value_end) {
            return false; // libnats refuses a key without a value
        }
        *value_end = '\0';
        lines_[line_count_++] = {std::string_view{p, static_cast<std::size_t>(colon - p)}, value};
    }
}

const char* NatsHeaderReader::find(const char* key) noexcept {
    if (msg_ != nullptr) {
        return nats_header(msg_, key);
    }
    const std::string_view wanted{key};
    for (std::size_t i = 0; i < line_count_; ++i) {
        if (lines_[i].key == wanted) {
            return lines_[i].value;
        }
    }
    return nullptr;
}

} // namespace shmbus::gateway
